//! `ml4t.backtest._core`: the thin PyO3 layer over `ml4t-backtest-core`. This file only
//! registers what the extension exports; the rooms behind it:
//!
//! - [`run`]: the entry points and their one chunk loop; [`arrow_io`] imports the frames
//!   through the Arrow PyCapsule interface without copying and exports the results;
//!   [`checked`] holds a frame imported and row-checked once, for any number of runs;
//!   [`actions`] reads the corporate-actions table, [`flows`] the capital flows, [`fx`] the
//!   currencies and FX rates;
//!   [`observer`] reports progress from a GIL-free run.
//! - [`spec`]: what Python describes (engine dict, built-in strategy, risk rules) -> core
//!   values, read through [`dict`]'s path-based helpers.
//! - [`universe`]: asset names and the time zone as data, datetimes built in Rust.
//! - [`strategy`]: a Python strategy and the `Context` and events it sees; [`risk`]: a Python
//!   risk rule and its objects; [`features`]: the feature groups both see; [`slippage`]: a
//!   Python slippage model.
//! - [`errors`]: the `ml4t.backtest.errors` classes and the one mapping of core errors to them.

mod actions;
mod arrow_io;
mod checked;
mod dict;
mod errors;
mod features;
mod flows;
mod fx;
mod observer;
mod risk;
mod run;
mod slippage;
mod spec;
mod strategy;
mod universe;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "EXIT_REASONS",
        ml4t_backtest_core::types::ExitReason::NAMES.to_vec(),
    )?;
    m.add(
        "REJECT_REASONS",
        ml4t_backtest_core::types::RejectReason::NAMES.to_vec(),
    )?;
    m.add(
        "ORDER_TYPES",
        ml4t_backtest_core::orders::OrderKind::NAMES.to_vec(),
    )?;
    m.add(
        "TIME_IN_FORCE",
        ml4t_backtest_core::orders::TimeInForce::NAMES.to_vec(),
    )?;
    m.add(
        "ORDER_ORIGINS",
        ml4t_backtest_core::events::OrderOrigin::NAMES.to_vec(),
    )?;
    m.add(
        "ORDER_EVENT_STATUSES",
        ml4t_backtest_core::events::JournalStatus::NAMES.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(run::run_builtin, m)?)?;
    m.add_function(wrap_pyfunction!(run::run_python, m)?)?;
    m.add_function(wrap_pyfunction!(run::column_address, m)?)?;
    m.add_function(wrap_pyfunction!(checked::rows_clear, m)?)?;
    m.add_function(wrap_pyfunction!(arrow_io::group_runs, m)?)?;
    m.add_function(wrap_pyfunction!(spec::risk::check_risk_rules, m)?)?;
    m.add_class::<risk::objects::PyRiskDecision>()?;
    m.add_class::<risk::objects::PyRiskContext>()?;
    m.add_class::<risk::objects::PyOrderContext>()?;
    m.add_class::<risk::objects::PortfolioView>()?;
    m.add_class::<arrow_io::ArrowTable>()?;
    m.add_class::<checked::CheckedData>()?;
    m.add_class::<strategy::context::PyContext>()?;
    m.add_class::<strategy::event::MarketEvent>()?;
    m.add_class::<strategy::event::Signals>()?;
    m.add_class::<strategy::event::FillEvent>()?;
    m.add_class::<strategy::event::OrderUpdate>()?;
    Ok(())
}
