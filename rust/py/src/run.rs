//! The entry points Python calls: run a backtest with a built-in or a Python strategy.

use std::sync::Arc;

use arrow_array::RecordBatch;
use ml4t_backtest_core::{BacktestError, BacktestOutput, Engine, MarketData};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};

use crate::adapter::{CallMode, PyStrategy};
use crate::arrow_io::{import_batches, ArrowTable};
use crate::config::{builtin_strategy, engine_config};
use crate::context::PyContext;
use crate::errors::{catch_panic, python_error, to_py_err};
use crate::observer::{run_observed, Observed};
use crate::risk_adapter::FeatureGroups;
use crate::risk_specs::{risk_setup, RiskSetup};
use crate::slippage::{chained_error, chained_error_as, take_error, ErrorSlot};
use crate::universe::Universe;

/// Where the data comes from: one object exporting an Arrow stream (every batch of it is a
/// chunk), or a Python iterator of such objects (streaming: one chunk at a time, so only the
/// current chunk is in memory).
enum ChunkSource<'py> {
    Batches(std::vec::IntoIter<RecordBatch>),
    Stream(Bound<'py, PyIterator>, std::vec::IntoIter<RecordBatch>),
}

impl<'py> ChunkSource<'py> {
    fn new(data: &Bound<'py, PyAny>) -> PyResult<Self> {
        if data.hasattr("__arrow_c_stream__")? {
            return Ok(ChunkSource::Batches(import_batches(data)?.into_iter()));
        }
        let iter = data.try_iter().map_err(|_| {
            python_error(
                data.py(),
                "DataValidationError",
                format!(
                    "data: expected a frame with __arrow_c_stream__ or an iterator of them, got {}",
                    data.get_type()
                ),
            )
        })?;
        Ok(ChunkSource::Stream(iter, Vec::new().into_iter()))
    }

    /// The next non-empty chunk, checked against the universe.
    fn next_chunk(&mut self, py: Python<'py>, n_assets: u32) -> PyResult<Option<MarketData>> {
        loop {
            let batch = match self {
                ChunkSource::Batches(batches) => batches.next(),
                ChunkSource::Stream(iter, pending) => match pending.next() {
                    Some(batch) => Some(batch),
                    None => match iter.next() {
                        Some(frame) => {
                            *pending = import_batches(&frame?)?.into_iter();
                            continue;
                        }
                        None => None,
                    },
                },
            };
            let Some(batch) = batch else {
                return Ok(None);
            };
            if batch.num_rows() == 0 {
                continue;
            }
            return MarketData::new(batch, n_assets)
                .map(Some)
                .map_err(|e| to_py_err(py, &e));
        }
    }
}

fn output_dict(py: Python<'_>, output: BacktestOutput) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("fills", ArrowTable::new(output.fills))?;
    out.set_item("trades", ArrowTable::new(output.trades))?;
    out.set_item("equity", ArrowTable::new(output.equity))?;
    out.set_item("rejections", ArrowTable::new(output.rejections))?;
    out.set_item("financing", ArrowTable::new(output.financing))?;
    Ok(out)
}

/// Runs a built-in Rust strategy over `data` with the GIL released. With `progress`, the run
/// happens on a worker thread and `progress(rows_done)` is called about ten times a second.
///
/// `risk` (optional) holds the risk rules: `rules` (spec dicts or Python `RiskRule` objects),
/// `asset_names` and `to_datetime`; `feature_groups` names the feed's `context` and
/// `indicators` columns.
#[pyfunction]
#[pyo3(signature = (data, n_assets, config, strategy, progress=None, risk=None, feature_groups=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_builtin<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    n_assets: u32,
    config: &Bound<'py, PyDict>,
    strategy: &Bound<'py, PyDict>,
    progress: Option<Py<PyAny>>,
    risk: Option<&Bound<'py, PyDict>>,
    feature_groups: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(py, || {
        let groups = Arc::new(FeatureGroups::from_dict(feature_groups)?);
        let mut source = ChunkSource::new(data)?;
        let (config, slippage_error) = engine_config(config).map_err(|e| to_py_err(py, &e))?;
        let universe = match risk {
            Some(r) => Arc::new(Universe::new(
                py,
                r.get_item("asset_names")?
                    .map(|v| v.extract())
                    .transpose()?
                    .unwrap_or_default(),
                r.get_item("to_datetime")?
                    .map(Bound::unbind)
                    .unwrap_or_else(|| py.None()),
            )),
            None => Arc::new(Universe::new(py, Vec::new(), py.None())),
        };
        let setup = risk_setup(py, risk, universe, groups)?;
        let risk_error = setup.as_ref().map(|s| s.error.clone());
        let fail = |err: BacktestError| fail_with(py, err, &slippage_error, &risk_error);
        let slippage = config.slippage.clone();
        let mut builtin = builtin_strategy(strategy).map_err(|e| to_py_err(py, &e))?;
        let strategy = builtin.as_strategy();
        let mut engine = Engine::new(config, n_assets).map_err(|e| to_py_err(py, &e))?;
        if let Some(RiskSetup { rules, .. }) = setup {
            engine.set_risk_rules(rules);
        }
        while let Some(chunk) = source.next_chunk(py, n_assets)? {
            // Columns the slippage model needs are checked before the chunk runs.
            slippage
                .check_columns(&chunk)
                .map_err(|e| to_py_err(py, &e))?;
            let result = match &progress {
                None => py.detach(|| engine.process_chunk(&chunk, &mut *strategy)),
                Some(callback) => {
                    let job = |p| {
                        engine.set_progress(p);
                        engine.process_chunk(&chunk, &mut *strategy)
                    };
                    match run_observed(py, callback, job) {
                        Observed::Finished(result) => result,
                        Observed::Interrupted(err) => return Err(err),
                    }
                }
            };
            result.map_err(fail)?;
        }
        let output = engine.finish(strategy).map_err(fail)?;
        output_dict(py, output)
    })
}

/// The exception for a run stopped by `err`: chained to the Python exception of a custom
/// slippage model (`StrategyError`) or risk rule (`RiskRuleError`) when one caused it.
fn fail_with(
    py: Python<'_>,
    err: BacktestError,
    slippage: &Option<ErrorSlot>,
    risk: &Option<ErrorSlot>,
) -> PyErr {
    if let Some(cause) = take_error(slippage) {
        return chained_error(py, cause, &err);
    }
    if let Some(cause) = take_error(risk) {
        return chained_error_as(py, cause, &err, "RiskRuleError");
    }
    to_py_err(py, &err)
}

/// Runs a Python strategy over `data`. `mode` is "batch" (then `target` is the driver with
/// `on_timestamp(start, end, ts)`) or "bar" (then `target` is the strategy with
/// `on_market_data(event, context)`).
#[pyfunction]
#[pyo3(signature = (data, n_assets, config, asset_names, to_datetime, target, mode, wants_fills, context_out=None, progress=None, wants_orders=false, risk=None, feature_groups=None))]
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
    wants_orders: bool,
    risk: Option<&Bound<'py, PyDict>>,
    feature_groups: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(py, || {
        let mut source = ChunkSource::new(data)?;
        let (config, slippage_error) = engine_config(config).map_err(|e| to_py_err(py, &e))?;
        let slippage = config.slippage.clone();
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
        let groups = Arc::new(FeatureGroups::from_dict(feature_groups)?);
        let setup = risk_setup(py, risk, universe.clone(), groups.clone())?;
        let risk_error = setup.as_ref().map(|s| s.error.clone());
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
            groups,
        )?;
        strategy.set_progress(progress);
        strategy.wants_orders = wants_orders;
        let run = |strategy: &mut PyStrategy| -> PyResult<Result<BacktestOutput, BacktestError>> {
            let mut engine = match Engine::new(config, n_assets) {
                Ok(engine) => engine,
                Err(err) => return Ok(Err(err)),
            };
            if let Some(RiskSetup { rules, .. }) = setup {
                engine.set_risk_rules(rules);
            }
            while let Some(chunk) = source.next_chunk(py, n_assets)? {
                // Columns the slippage model needs are checked before the chunk runs.
                if let Err(err) = slippage.check_columns(&chunk) {
                    return Ok(Err(err));
                }
                if let Err(err) = engine.process_chunk(&chunk, strategy) {
                    return Ok(Err(err));
                }
            }
            Ok(engine.finish(strategy))
        };
        match run(&mut strategy)? {
            Ok(output) => {
                let out = output_dict(py, output)?;
                let (names, table) = context.borrow_mut(py).take_records();
                out.set_item("records", table)?;
                out.set_item("record_names", names)?;
                Ok(out)
            }
            Err(err) => Err(if let Some(cause) = take_error(&slippage_error) {
                chained_error(py, cause, &err)
            } else if let Some(cause) = strategy.error.take() {
                strategy_error(py, cause, &strategy.error_site)
            } else {
                fail_with(py, err, &None, &risk_error)
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
