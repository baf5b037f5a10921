//! Maps core errors and panics to the Python hierarchy in `ml4t.backtest.errors`.

use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Instantiates `ml4t.backtest.errors.<class_name>(message)` as a `PyErr`.
pub fn python_error(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = py.import("ml4t.backtest.errors")?.getattr(class_name)?;
        let instance = class.call1(PyTuple::new(py, [message.clone()])?)?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|err| err)
}

/// The Python exception for a core error.
pub fn to_py_err(py: Python<'_>, err: &BacktestError) -> PyErr {
    let class = match err {
        BacktestError::DataValidation { .. } => "DataValidationError",
        BacktestError::Config { .. } => "ConfigError",
        BacktestError::Order { .. } => "OrderError",
        BacktestError::Risk { .. } => "RiskRuleError",
        BacktestError::Strategy(_) => "StrategyError",
        BacktestError::Cancelled { .. } => "BacktestError",
    };
    python_error(py, class, err.to_string())
}

/// Runs `f`, turning a Rust panic into a `BacktestError` so that it never reaches Python as a
/// `PanicException`.
pub fn catch_panic<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(python_error(
                py,
                "BacktestError",
                format!("internal error in the engine (please report it): {what}"),
            ))
        }
    }
}
