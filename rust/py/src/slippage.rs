//! A Python `ml4t.backtest.SlippageModel` subclass seen as a core [`CustomSlippage`]: its
//! `price(side, quantity, reference, bar)` is called once per market-like fill (the slow path:
//! one Python call and one dict per fill, taking the GIL when the engine runs without it).

use std::sync::Arc;

use ml4t_backtest_core::slippage::{CustomSlippage, SlippageFill};
use ml4t_backtest_core::{BacktestError, Side};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{class_name, keep, ErrorSlot};
use crate::universe::Universe;

/// The Python model and what the adapter needs to call it.
pub struct PySlippage {
    /// The bound `price` method, looked up once.
    price: Py<PyAny>,
    /// `ClassName.price`, for messages.
    site: String,
    /// Asset names by code (for `bar["asset"]`).
    universe: Arc<Universe>,
    error: ErrorSlot,
}

impl PySlippage {
    /// Wraps `model` (a `SlippageModel` instance) over the run's `universe`.
    pub fn new(model: &Bound<'_, PyAny>, universe: Arc<Universe>) -> PyResult<(Self, ErrorSlot)> {
        let price = model.getattr("price")?.unbind();
        let class = model.get_type().name()?.to_string();
        let error: ErrorSlot = Arc::default();
        let adapter = PySlippage {
            price,
            site: format!("{class}.price"),
            universe,
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
        bar.set_item("asset", self.universe.name(py, asset))?;
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
                let message = format!(
                    "slippage model raised {} in {}: {}",
                    class_name(py, &err),
                    self.site,
                    err.value(py)
                );
                keep(&self.error, err);
                Err(BacktestError::Strategy(message))
            }
        })
    }

    fn name(&self) -> String {
        self.site.trim_end_matches(".price").to_string()
    }
}
