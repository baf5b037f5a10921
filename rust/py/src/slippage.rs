//! A Python `ml4t.backtest.SlippageModel` subclass seen as a core [`CustomSlippage`]: its
//! `price(side, quantity, reference, bar)` is called once per market-like fill (the slow path:
//! one Python call and one dict per fill, taking the GIL when the engine runs without it).

use std::sync::{Arc, Mutex, PoisonError};

use ml4t_backtest_core::slippage::{CustomSlippage, SlippageFill};
use ml4t_backtest_core::{BacktestError, Side};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Where the Python exception that stopped the run is kept, to be re-raised as the cause.
pub type ErrorSlot = Arc<Mutex<Option<PyErr>>>;

/// Takes the exception out of `slot`, if the custom model raised one.
pub fn take_error(slot: &Option<ErrorSlot>) -> Option<PyErr> {
    slot.as_ref()?
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// The Python model and what the adapter needs to call it.
pub struct PySlippage {
    /// The bound `price` method, looked up once.
    price: Py<PyAny>,
    /// `ClassName.price`, for messages.
    site: String,
    /// Asset names by code (for `bar["asset"]`), when given.
    assets: Option<Vec<String>>,
    error: ErrorSlot,
}

impl PySlippage {
    /// Wraps `model` (a `SlippageModel` instance); `assets` names the asset codes.
    pub fn new(
        model: &Bound<'_, PyAny>,
        assets: Option<Vec<String>>,
    ) -> PyResult<(Self, ErrorSlot)> {
        let price = model.getattr("price")?.unbind();
        let class = model.get_type().name()?.to_string();
        let error: ErrorSlot = Arc::default();
        let adapter = PySlippage {
            price,
            site: format!("{class}.price"),
            assets,
            error: error.clone(),
        };
        Ok((adapter, error))
    }

    fn call(&self, py: Python<'_>, fill: &SlippageFill<'_>) -> PyResult<f64> {
        let (data, row) = (fill.data, fill.row);
        let bar = PyDict::new(py);
        bar.set_item("ts", data.ts()[row])?;
        let asset = data.asset_ids()[row];
        bar.set_item("asset_id", asset)?;
        if let Some(name) = self.assets.as_ref().and_then(|a| a.get(asset as usize)) {
            bar.set_item("asset", name)?;
        }
        bar.set_item("open", data.open()[row])?;
        bar.set_item("high", data.high()[row])?;
        bar.set_item("low", data.low()[row])?;
        bar.set_item("close", data.close()[row])?;
        bar.set_item("volume", data.volume()[row])?;
        for (pos, name) in data.feature_names().iter().enumerate() {
            bar.set_item(name, data.feature_at(pos)[row])?;
        }
        let side = if fill.side == Side::Buy {
            "buy"
        } else {
            "sell"
        };
        self.price
            .bind(py)
            .call1((side, fill.quantity, fill.reference, bar))?
            .extract::<f64>()
    }
}

impl CustomSlippage for PySlippage {
    fn price(&self, fill: &SlippageFill<'_>) -> Result<f64, BacktestError> {
        Python::attach(|py| match self.call(py, fill) {
            Ok(price) => Ok(price),
            Err(err) => {
                let name = err
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "Exception".to_string());
                let message = format!(
                    "slippage model raised {name} in {}: {}",
                    self.site,
                    err.value(py)
                );
                *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
                Err(BacktestError::Strategy(message))
            }
        })
    }

    fn name(&self) -> String {
        self.site.trim_end_matches(".price").to_string()
    }
}

/// The error to raise for a run stopped by the custom model: our own errors and non-`Exception`
/// interrupts pass through unchanged; anything else becomes `StrategyError` with the model's
/// exception as its `__cause__`.
pub fn chained_error(py: Python<'_>, cause: PyErr, err: &BacktestError) -> PyErr {
    chained_error_as(py, cause, err, "StrategyError")
}

/// [`chained_error`] raising `class` (a name in `ml4t.backtest.errors`).
pub fn chained_error_as(py: Python<'_>, cause: PyErr, err: &BacktestError, class: &str) -> PyErr {
    let is_ours = py
        .import("ml4t.backtest.errors")
        .and_then(|m| m.getattr("BacktestError"))
        .map(|base| cause.is_instance(py, &base))
        .unwrap_or(false);
    if is_ours || !cause.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return cause;
    }
    let message = match err {
        BacktestError::Strategy(message) => message.clone(),
        other => other.to_string(),
    };
    let wrapped = crate::errors::python_error(py, class, message);
    wrapped.set_cause(py, Some(cause));
    wrapped
}
