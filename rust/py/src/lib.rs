//! `ml4t.backtest._core`: the thin PyO3 layer over `ml4t-backtest-core`.
//!
//! It imports Polars frames through the Arrow PyCapsule interface without copying, runs the core
//! loop (with the GIL released for built-in strategies), adapts Python strategies, maps errors to
//! `ml4t.backtest.errors` and exports the results as Arrow streams.

mod account;
mod adapter;
mod arrow_io;
mod config;
mod context;
mod errors;
mod event;
mod observer;
mod risk_adapter;
mod risk_specs;
mod run;
mod slippage;
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
    m.add_function(wrap_pyfunction!(run::run_builtin, m)?)?;
    m.add_function(wrap_pyfunction!(run::run_python, m)?)?;
    m.add_function(wrap_pyfunction!(run::column_address, m)?)?;
    m.add_function(wrap_pyfunction!(risk_specs::check_risk_rules, m)?)?;
    m.add_class::<risk_adapter::PyRiskDecision>()?;
    m.add_class::<risk_adapter::PyRiskContext>()?;
    m.add_class::<risk_adapter::PyOrderContext>()?;
    m.add_class::<risk_adapter::PortfolioView>()?;
    m.add_class::<arrow_io::ArrowTable>()?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<event::MarketEvent>()?;
    m.add_class::<event::Signals>()?;
    m.add_class::<event::FillEvent>()?;
    m.add_class::<event::OrderUpdate>()?;
    Ok(())
}
