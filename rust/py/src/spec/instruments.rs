//! The universe dict's `instruments` list (one dict per asset code, or `None` for a plain
//! share), as the core's [`Instruments`]. Python has resolved names, durations and datetimes:
//! `expiry` and `funding_interval` arrive as nanoseconds.

use ml4t_backtest_core::instruments::{AssetClass, InstrumentSpec, Instruments, MarginRule};
use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::dict::Spec;

/// Reads the `instruments` list of the universe dict.
pub fn read_instruments(list: &Bound<'_, PyAny>) -> Result<Instruments, BacktestError> {
    let list = list.cast::<PyList>().map_err(|_| {
        BacktestError::config("universe.instruments", "wrong type: expected a list")
    })?;
    let mut specs = Vec::with_capacity(list.len());
    for (code, item) in list.iter().enumerate() {
        if item.is_none() {
            specs.push(InstrumentSpec::default());
            continue;
        }
        let dict = item.cast_into::<PyDict>().map_err(|_| {
            BacktestError::config(
                &format!("universe.instruments[{code}]"),
                "wrong type: expected a dict",
            )
        })?;
        specs.push(spec(&Spec::root(&dict), code)?);
    }
    Instruments::new(specs)
}

fn spec(d: &Spec<'_>, code: usize) -> Result<InstrumentSpec, BacktestError> {
    let class_name: String = d.get_or("asset_class", "equity".to_string())?;
    let class = AssetClass::from_name(&class_name).ok_or_else(|| {
        BacktestError::config(
            &format!("instruments[{code}].asset_class"),
            format!("must be one of {:?}, got {class_name:?}", AssetClass::NAMES),
        )
    })?;
    let margin = |amount: &str, pct: &str| -> Result<Option<MarginRule>, BacktestError> {
        let per_contract: Option<f64> = d.get(amount)?;
        let fraction: Option<f64> = d.get(pct)?;
        match (per_contract, fraction) {
            (Some(_), Some(_)) => Err(BacktestError::config(
                &format!("instruments[{code}].{amount}"),
                format!("give {amount} (per contract) or {pct} (of notional), not both"),
            )),
            (Some(v), None) => Ok(Some(MarginRule::PerContract(v))),
            (None, Some(v)) => Ok(Some(MarginRule::Fraction(v))),
            (None, None) => Ok(None),
        }
    };
    let default = InstrumentSpec::default();
    Ok(InstrumentSpec {
        class,
        multiplier: d.get_or("multiplier", 1.0)?,
        tick_size: d.get("tick_size")?,
        lot_size: d.get("lot_size")?,
        margin_initial: margin("margin_initial", "margin_initial_pct")?,
        margin_maintenance: margin("margin_maintenance", "margin_maintenance_pct")?,
        expiry: d.get("expiry")?,
        commission_per_contract: d.get("commission_per_contract")?,
        funding_interval: d.get_or("funding_interval", default.funding_interval)?,
    })
}
