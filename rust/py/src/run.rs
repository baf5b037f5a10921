//! The entry points Python calls: run a backtest with a built-in or a Python strategy.

use std::sync::Arc;

use ml4t_backtest_core::{
    BacktestError, BacktestOutput, Engine, EngineConfig, MarketData, Progress, Strategy,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::adapter::{CallMode, PyStrategy};
use crate::arrow_io::{import_batches, ArrowTable};
use crate::config::{builtin_strategy, engine_config};
use crate::context::PyContext;
use crate::errors::{catch_panic, python_error, to_py_err};
use crate::observer::{run_observed, Observed};
use crate::universe::Universe;

fn market_chunks(data: &Bound<'_, PyAny>, n_assets: u32) -> PyResult<Vec<MarketData>> {
    let py = data.py();
    import_batches(data)?
        .into_iter()
        .filter(|batch| batch.num_rows() > 0)
        .map(|batch| MarketData::new(batch, n_assets).map_err(|e| to_py_err(py, &e)))
        .collect()
}

fn run_engine<S: Strategy + ?Sized>(
    chunks: &[MarketData],
    n_assets: u32,
    config: EngineConfig,
    strategy: &mut S,
    progress: Option<Arc<Progress>>,
) -> Result<BacktestOutput, BacktestError> {
    let mut engine = Engine::new(config, n_assets)?;
    if let Some(progress) = progress {
        engine.set_progress(progress);
    }
    for chunk in chunks {
        engine.process_chunk(chunk, strategy)?;
    }
    engine.finish(strategy)
}

fn output_dict(py: Python<'_>, output: BacktestOutput) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("fills", ArrowTable::new(output.fills))?;
    out.set_item("trades", ArrowTable::new(output.trades))?;
    out.set_item("equity", ArrowTable::new(output.equity))?;
    out.set_item("rejections", ArrowTable::new(output.rejections))?;
    Ok(out)
}

/// Runs a built-in Rust strategy over `data` with the GIL released. With `progress`, the run
/// happens on a worker thread and `progress(rows_done)` is called about ten times a second.
#[pyfunction]
#[pyo3(signature = (data, n_assets, config, strategy, progress=None))]
pub fn run_builtin<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    n_assets: u32,
    config: &Bound<'py, PyDict>,
    strategy: &Bound<'py, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(py, || {
        let chunks = market_chunks(data, n_assets)?;
        let config = engine_config(config).map_err(|e| to_py_err(py, &e))?;
        let mut builtin = builtin_strategy(strategy).map_err(|e| to_py_err(py, &e))?;
        let result = match progress {
            None => {
                py.detach(|| run_engine(&chunks, n_assets, config, builtin.as_strategy(), None))
            }
            Some(callback) => {
                let job = |p| run_engine(&chunks, n_assets, config, builtin.as_strategy(), Some(p));
                match run_observed(py, &callback, job) {
                    Observed::Finished(result) => result,
                    Observed::Interrupted(err) => return Err(err),
                }
            }
        };
        let output = result.map_err(|e| to_py_err(py, &e))?;
        output_dict(py, output)
    })
}

/// Runs a Python strategy over `data`. `mode` is "batch" (then `target` is the driver with
/// `on_timestamp(start, end, ts)`) or "bar" (then `target` is the strategy with
/// `on_market_data(event, context)`).
#[pyfunction]
#[pyo3(signature = (data, n_assets, config, asset_names, to_datetime, target, mode, wants_fills, context_out=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_python<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    n_assets: u32,
    config: &Bound<'py, PyDict>,
    asset_names: Vec<String>,
    to_datetime: Py<PyAny>,
    target: Py<PyAny>,
    mode: &str,
    wants_fills: bool,
    context_out: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(py, || {
        let chunks = market_chunks(data, n_assets)?;
        let config = engine_config(config).map_err(|e| to_py_err(py, &e))?;
        let mode = match mode {
            "batch" => CallMode::Batch,
            "bar" => CallMode::PerBar,
            other => {
                return Err(python_error(
                    py,
                    "ConfigError",
                    format!("strategy mode: unknown mode '{other}'"),
                ))
            }
        };
        if asset_names.len() != n_assets as usize {
            return Err(python_error(
                py,
                "DataValidationError",
                format!(
                    "asset: {} names given for a universe of {n_assets}",
                    asset_names.len()
                ),
            ));
        }
        let universe = Arc::new(Universe::new(py, asset_names, to_datetime));
        let integer = config.rounding == ml4t_backtest_core::ShareRounding::Integer;
        let context = Py::new(
            py,
            PyContext::new(universe.clone(), integer, config.initial_cash),
        )?;
        if let Some(hook) = context_out {
            hook.call1((context.clone_ref(py),))?;
        }
        let mut strategy = PyStrategy::new(
            py,
            mode,
            target,
            context.clone_ref(py),
            universe,
            wants_fills,
        )?;
        strategy.set_progress(progress);
        match run_engine(&chunks, n_assets, config, &mut strategy, None) {
            Ok(output) => {
                let out = output_dict(py, output)?;
                let (names, table) = context.borrow_mut(py).take_records();
                out.set_item("records", table)?;
                out.set_item("record_names", names)?;
                Ok(out)
            }
            Err(err) => Err(match strategy.error.take() {
                Some(cause) => strategy_error(py, cause, &strategy.error_site),
                None => to_py_err(py, &err),
            }),
        }
    })
}

/// Re-raises errors of the library itself unchanged; wraps anything else in `StrategyError`
/// with the user's exception (and traceback) as its `__cause__`.
fn strategy_error(py: Python<'_>, cause: PyErr, site: &str) -> PyErr {
    let is_ours = py
        .import("ml4t.backtest.errors")
        .and_then(|m| m.getattr("BacktestError"))
        .map(|base| cause.is_instance(py, &base))
        .unwrap_or(false);
    // Our own errors and non-Exception interrupts (KeyboardInterrupt, SystemExit) pass through.
    let is_exception = cause.is_instance_of::<pyo3::exceptions::PyException>(py);
    if is_ours || !is_exception {
        return cause;
    }
    let name = cause
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_string());
    let err = python_error(
        py,
        "StrategyError",
        format!("strategy raised {name} in {site}: {}", cause.value(py)),
    );
    err.set_cause(py, Some(cause));
    err
}

/// Address of the first value of column `name` as seen from Rust after importing `data` through
/// the Arrow PyCapsule interface (used to prove the import makes no copy).
#[pyfunction]
pub fn column_address(data: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<usize>> {
    let batches = import_batches(data)?;
    let Some(batch) = batches.first() else {
        return Ok(None);
    };
    let n_assets = u32::MAX;
    let py = data.py();
    let market = MarketData::new(batch.clone(), n_assets).map_err(|e| to_py_err(py, &e))?;
    Ok(market.column_address(name))
}
