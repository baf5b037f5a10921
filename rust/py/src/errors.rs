//! The Python exceptions of `ml4t.backtest.errors` and the one mapping from core errors to them.
//!
//! Each class is a handle imported once ([`pyo3::import_exception!`]); a core [`EngineError`]
//! becomes a Python exception through [`Error`]'s `From` impl, so a binding function returns
//! `Result<T, Error>` and uses `?` on core and PyO3 results alike. The exception a user's
//! Python code raised inside a run (a custom slippage model, a risk rule) is kept in an
//! [`ErrorSlot`] and chained as the `__cause__` of the library's exception with [`chain`].

use std::sync::{Arc, Mutex, PoisonError};

use ml4t_backtest_core::BacktestError as EngineError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::import_exception!(ml4t.backtest.errors, BacktestError);
pyo3::import_exception!(ml4t.backtest.errors, DataValidationError);
pyo3::import_exception!(ml4t.backtest.errors, ConfigError);
pyo3::import_exception!(ml4t.backtest.errors, OrderError);
pyo3::import_exception!(ml4t.backtest.errors, RiskRuleError);
pyo3::import_exception!(ml4t.backtest.errors, StrategyError);

/// An error on its way to Python: from the core (mapped to its class on conversion) or an
/// exception already raised in Python.
#[derive(Debug)]
pub enum Error {
    /// A core error.
    Engine(EngineError),
    /// A Python exception, passed through unchanged.
    Python(PyErr),
}

impl From<EngineError> for Error {
    fn from(err: EngineError) -> Self {
        Error::Engine(err)
    }
}

impl From<PyErr> for Error {
    fn from(err: PyErr) -> Self {
        Error::Python(err)
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> Self {
        match err {
            Error::Python(err) => err,
            Error::Engine(err) => {
                let message = err.to_string();
                match err {
                    EngineError::DataValidation { .. } => DataValidationError::new_err(message),
                    EngineError::Config { .. } => ConfigError::new_err(message),
                    EngineError::Order { .. } => OrderError::new_err(message),
                    EngineError::Risk { .. } => RiskRuleError::new_err(message),
                    EngineError::Strategy(_) => StrategyError::new_err(message),
                    EngineError::Cancelled { .. } => BacktestError::new_err(message),
                }
            }
        }
    }
}

/// The Python exception of a core error.
pub fn to_py_err(err: EngineError) -> PyErr {
    Error::Engine(err).into()
}

/// Where the Python exception that stopped a run is kept, to be re-raised as the cause.
pub type ErrorSlot = Arc<Mutex<Option<PyErr>>>;

/// Keeps `err` in `slot` (replacing an earlier one).
pub fn keep(slot: &ErrorSlot, err: PyErr) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
}

/// Takes the exception out of `slot`, if one was kept.
pub fn take(slot: &ErrorSlot) -> Option<PyErr> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// The name of `err`'s class, for messages (`ZeroDivisionError`).
pub fn class_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_string())
}

/// The exception to raise for user code that raised `cause`: the library's own errors and
/// non-`Exception` interrupts (`KeyboardInterrupt`, `SystemExit`) pass through unchanged;
/// anything else becomes `wrap(message)` with `cause` (and its traceback) as its `__cause__`.
pub fn chain(py: Python<'_>, cause: PyErr, message: String, wrap: fn(String) -> PyErr) -> PyErr {
    if cause.is_instance_of::<BacktestError>(py) || !cause.is_instance_of::<PyException>(py) {
        return cause;
    }
    let err = wrap(message);
    err.set_cause(py, Some(cause));
    err
}

/// Runs `f`, turning a Rust panic into a `BacktestError` so that it never reaches Python as a
/// `PanicException`.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(PyErr::from),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(BacktestError::new_err(format!(
                "internal error in the engine (please report it): {what}"
            )))
        }
    }
}
