//! The entry points Python calls: run a backtest with a built-in or a Python strategy.
//!
//! Both take the same data arguments (the frame or its chunks, the universe dict, the engine
//! dict, the risk rules and the feature groups), read them in [`Run::new`] and share one chunk
//! loop ([`Run::drive`]). They differ only in who holds the GIL while a chunk runs: a built-in
//! strategy runs without it on a worker thread (the calling thread watches for Ctrl-C and
//! reports progress), a Python strategy with it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{
    BacktestError as EngineError, BacktestOutput, Engine, MarketData, ShareRounding, Strategy,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList};

use crate::actions::read_actions;
use crate::arrow_io::{import_batches, ArrowTable};
use crate::checked::CheckedData;
use crate::errors::{
    catch_panic, chain, class_name, take, ConfigError, DataValidationError, Error, ErrorSlot,
    RiskRuleError, StrategyError,
};
use crate::features::FeatureGroups;
use crate::flows::read_flows;
use crate::fx::read_currencies;
use crate::observer::{run_observed, Observed};
use crate::spec::config::engine_config;
use crate::spec::instruments::read_instruments;
use crate::spec::risk::risk_setup;
use crate::spec::strategy::{builtin_strategy, BuiltinStrategy};
use crate::strategy::context::PyContext;
use crate::strategy::{CallMode, PyStrategy};
use crate::universe::Universe;

/// Where the data comes from: one object exporting an Arrow stream (every batch of it is a
/// chunk), or a Python iterator of such objects (streaming: one chunk at a time, so only the
/// current chunk is in memory).
enum ChunkSource<'py> {
    Batches(std::vec::IntoIter<RecordBatch>),
    Stream(Bound<'py, PyIterator>, std::vec::IntoIter<RecordBatch>),
    /// Chunks checked when the [`CheckedData`] was made (for this universe size).
    Checked(std::vec::IntoIter<MarketData>),
}

impl<'py> ChunkSource<'py> {
    fn new(data: &Bound<'py, PyAny>, n_assets: u32) -> Result<Self, Error> {
        if let Ok(checked) = data.cast::<CheckedData>() {
            return Ok(ChunkSource::Checked(
                checked.get().chunks(n_assets)?.into_iter(),
            ));
        }
        if data.hasattr("__arrow_c_stream__")? {
            return Ok(ChunkSource::Batches(import_batches(data)?.into_iter()));
        }
        let iter = data.try_iter().map_err(|_| {
            DataValidationError::new_err(format!(
                "data: expected a frame with __arrow_c_stream__ or an iterator of them, got {}",
                data.get_type()
            ))
        })?;
        Ok(ChunkSource::Stream(iter, Vec::new().into_iter()))
    }

    /// The next non-empty chunk, checked against the universe.
    fn next_chunk(&mut self, n_assets: u32) -> Result<Option<MarketData>, Error> {
        loop {
            let batch = match self {
                ChunkSource::Checked(chunks) => return Ok(chunks.next()),
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
            return Ok(Some(MarketData::new(batch, n_assets)?));
        }
    }
}

/// Who runs a chunk.
enum Driver<'a> {
    /// The calling thread, with the GIL held (a Python strategy, which reports progress
    /// itself).
    Held,
    /// With the GIL released, on a worker thread, while the calling thread checks for Ctrl-C
    /// and reports to the progress callback when there is one.
    Released(Option<&'a Py<PyAny>>),
}

/// A run read from its arguments, before its first chunk.
struct Run<'py> {
    source: ChunkSource<'py>,
    universe: Arc<Universe>,
    groups: Arc<FeatureGroups>,
    engine: Engine,
    /// The engine's slippage model, whose columns each chunk is checked for before it runs
    /// (so that a missing column fails before the strategy's `on_start`).
    slippage: SlippageModel,
    /// Where a custom slippage model leaves the exception that stopped the run.
    slippage_error: Option<ErrorSlot>,
    /// Where a Python risk rule leaves it.
    risk_error: Option<ErrorSlot>,
    /// Integer share rounding (a Python strategy's context checks order quantities).
    integer_shares: bool,
    initial_cash: f64,
}

impl<'py> Run<'py> {
    fn new(
        data: &Bound<'py, PyAny>,
        universe: &Bound<'py, PyDict>,
        config: &Bound<'py, PyDict>,
        risk: Option<&Bound<'py, PyList>>,
        feature_groups: Option<&Bound<'py, PyDict>>,
        actions: Option<&Bound<'py, PyAny>>,
        flows: Option<&Bound<'py, PyAny>>,
    ) -> Result<Self, Error> {
        let instruments = universe.get_item("instruments")?.filter(|v| !v.is_none());
        let currencies = read_currencies(universe, config)?;
        let universe = Arc::new(Universe::from_dict(universe)?);
        let source = ChunkSource::new(data, universe.len() as u32)?;
        let groups = Arc::new(FeatureGroups::from_dict(feature_groups)?);
        let flows = match flows.filter(|f| !f.is_none()) {
            Some(flows) => Some(read_flows(flows, config)?),
            None => None,
        };
        let (config, slippage_error) = engine_config(config, &universe)?;
        let setup = risk_setup(risk, universe.clone(), groups.clone())?;
        let integer_shares = config.rounding == ShareRounding::Integer;
        let initial_cash = config.initial_cash;
        let slippage = config.slippage.clone();
        let mut engine = Engine::new(config, universe.len() as u32)?;
        if !universe.delisted_at().is_empty() {
            engine.set_delistings(universe.delisted_at());
            engine.set_delisting_returns(universe.delisting_return())?;
        }
        if let Some(list) = instruments {
            engine.set_instruments(read_instruments(&list)?)?;
        }
        if let Some(currencies) = currencies {
            engine.set_currencies(currencies)?;
        }
        if let Some(actions) = actions.filter(|a| !a.is_none()) {
            engine.set_corporate_actions(read_actions(actions)?)?;
        }
        if let Some(flows) = flows {
            engine.set_capital_flows(flows);
        }
        if let Some(closes) = universe.session_closes() {
            engine.set_session_closes(closes.to_vec())?;
        }
        if let Some((changes, reject)) = universe.membership() {
            engine.set_membership(changes.clone(), *reject);
        }
        let risk_error = setup.map(|setup| {
            engine.set_risk_rules(setup.rules);
            setup.error
        });
        Ok(Run {
            source,
            universe,
            groups,
            engine,
            slippage,
            slippage_error,
            risk_error,
            integer_shares,
            initial_cash,
        })
    }

    /// Runs every chunk through `strategy`, then finishes. The outer error is a Python
    /// exception to raise as it is (reading the data, a progress callback); the inner one the
    /// core error that stopped the run (see [`Run::failure`]).
    fn drive<S: Strategy + Send + ?Sized>(
        mut self,
        py: Python<'py>,
        strategy: &mut S,
        driver: Driver<'_>,
    ) -> Result<Result<BacktestOutput, EngineError>, Error> {
        let n_assets = self.universe.len() as u32;
        if let ChunkSource::Checked(chunks) = &self.source {
            let total = chunks.as_slice().iter().map(MarketData::n_timestamps).sum();
            self.engine.reserve_timestamps(total);
        }
        while let Some(chunk) = self.source.next_chunk(n_assets)? {
            if let Err(err) = self.slippage.check_columns(&chunk) {
                return Ok(Err(err));
            }
            let engine = &mut self.engine;
            let result = match driver {
                Driver::Held => engine.process_chunk(&chunk, strategy),
                Driver::Released(callback) => {
                    let job = |progress| {
                        engine.set_progress(progress);
                        engine.process_chunk(&chunk, strategy)
                    };
                    match run_observed(py, callback, job) {
                        Observed::Finished(result) => result,
                        Observed::Interrupted(err) => return Err(err.into()),
                    }
                }
            };
            if let Err(err) = result {
                return Ok(Err(err));
            }
        }
        Ok(self.engine.finish(strategy))
    }
}

/// The exception for a run stopped by `err`, chained to the Python exception that caused it:
/// a custom slippage model's (as `StrategyError`), the strategy's (`StrategyError`, naming
/// where it raised) or a risk rule's (`RiskRuleError`); else `err` itself.
fn failure(
    py: Python<'_>,
    universe: &Universe,
    err: EngineError,
    slippage: &Option<ErrorSlot>,
    strategy: Option<(PyErr, &str)>,
    risk: &Option<ErrorSlot>,
) -> PyErr {
    let message = match &err {
        EngineError::Strategy(message) => message.clone(),
        other => other.to_string(),
    };
    if let EngineError::DataValidation {
        column,
        rule,
        ts: Some(ts),
        ..
    } = &err
    {
        // The one message shape, the user's time after the location.
        let at = universe.time_text(py, *ts);
        return DataValidationError::new_err(format!("{column}: {at}: {rule}"));
    }
    if let Some(cause) = slippage.as_ref().and_then(take) {
        return chain(py, cause, message, StrategyError::new_err);
    }
    if let Some((cause, site)) = strategy {
        let message = format!(
            "{site}: raised {}: {}",
            class_name(py, &cause),
            cause.value(py)
        );
        return chain(py, cause, message, StrategyError::new_err);
    }
    if let Some(cause) = risk.as_ref().and_then(take) {
        return chain(py, cause, message, RiskRuleError::new_err);
    }
    Error::from(err).into()
}

fn output_dict(py: Python<'_>, output: BacktestOutput) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("fills", ArrowTable::new(output.fills))?;
    out.set_item("trades", ArrowTable::new(output.trades))?;
    out.set_item("equity", ArrowTable::new(output.equity))?;
    out.set_item("rejections", ArrowTable::new(output.rejections))?;
    out.set_item("financing", ArrowTable::new(output.financing))?;
    out.set_item("splits", ArrowTable::new(output.splits))?;
    out.set_item("cash", ArrowTable::new(output.cash))?;
    out.set_item("orders", ArrowTable::new(output.orders))?;
    out.set_item("order_events", ArrowTable::new(output.order_events))?;
    out.set_item("non_member_pnl", ArrowTable::new(output.non_member_pnl))?;
    Ok(out)
}

/// Runs a built-in Rust strategy over `data` with the GIL released, on a worker thread: the
/// calling thread checks for signals (Ctrl-C stops the run within about 20 ms) and, with
/// `progress`, calls `progress(rows_done)` about ten times a second.
///
/// `universe` is `{"names": [...], "time_zone": ...}`; `risk` (optional) the risk rules (spec
/// dicts or Python `RiskRule` objects); `feature_groups` names the feed's `context` and
/// `indicators` columns; `actions` (optional) the corporate actions (see [`read_actions`]);
/// `flows` (optional) the capital flows (see [`read_flows`]).
#[pyfunction]
#[pyo3(signature = (data, universe, config, strategy, progress=None, risk=None, feature_groups=None, actions=None, flows=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_builtin<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    universe: &Bound<'py, PyDict>,
    config: &Bound<'py, PyDict>,
    strategy: &Bound<'py, PyDict>,
    progress: Option<Py<PyAny>>,
    risk: Option<&Bound<'py, PyList>>,
    feature_groups: Option<&Bound<'py, PyDict>>,
    actions: Option<&Bound<'py, PyAny>>,
    flows: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(|| {
        let run = Run::new(data, universe, config, risk, feature_groups, actions, flows)?;
        let (slippage_error, risk_error) = (run.slippage_error.clone(), run.risk_error.clone());
        let builtin = builtin_strategy(strategy)?;
        let universe = run.universe.clone();
        let driver = Driver::Released(progress.as_ref());
        // Each built-in strategy by its own type, so that the core's loop inlines its callback.
        let result = match builtin {
            BuiltinStrategy::Signal(mut s) => run.drive(py, &mut s, driver),
            BuiltinStrategy::TopK(mut s) => run.drive(py, &mut s, driver),
        };
        match result? {
            Ok(output) => Ok(output_dict(py, output)?),
            Err(err) => Err(failure(py, &universe, err, &slippage_error, None, &risk_error).into()),
        }
    })
}

/// Runs a Python strategy over `data`. `mode` is "batch" (then `target` is the driver with
/// `on_timestamp(start, end, ts)`) or "bar" (then `target` is the strategy with
/// `on_market_data(event, context)`). The other arguments are those of [`run_builtin`].
#[pyfunction]
#[pyo3(signature = (data, universe, config, target, mode, wants_fills, context_out=None, progress=None, wants_orders=false, risk=None, feature_groups=None, actions=None, flows=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_python<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    universe: &Bound<'py, PyDict>,
    config: &Bound<'py, PyDict>,
    target: Py<PyAny>,
    mode: &str,
    wants_fills: bool,
    context_out: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    wants_orders: bool,
    risk: Option<&Bound<'py, PyList>>,
    feature_groups: Option<&Bound<'py, PyDict>>,
    actions: Option<&Bound<'py, PyAny>>,
    flows: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    catch_panic(|| {
        let mode = match mode {
            "batch" => CallMode::Batch,
            "bar" => CallMode::PerBar,
            other => {
                return Err(
                    ConfigError::new_err(format!("strategy mode: unknown mode '{other}'")).into(),
                )
            }
        };
        let run = Run::new(data, universe, config, risk, feature_groups, actions, flows)?;
        let (slippage_error, risk_error) = (run.slippage_error.clone(), run.risk_error.clone());
        let context = Py::new(
            py,
            PyContext::new(run.universe.clone(), run.integer_shares, run.initial_cash),
        )?;
        if let Some(hook) = context_out {
            hook.call1((context.clone_ref(py),))?;
        }
        let mut strategy = PyStrategy::new(
            py,
            mode,
            target,
            context.clone_ref(py),
            run.universe.clone(),
            wants_fills,
            run.groups.clone(),
        )?;
        strategy.set_progress(progress);
        strategy.wants_orders = wants_orders;
        let universe = run.universe.clone();
        match run.drive(py, &mut strategy, Driver::Held)? {
            Ok(mut output) => {
                output.rejections = strategy.with_late_rejections(output.rejections);
                let out = output_dict(py, output)?;
                let (names, table) = context.borrow_mut(py).take_records();
                out.set_item("records", table)?;
                out.set_item("record_names", names)?;
                Ok(out)
            }
            Err(err) => {
                let cause = strategy.error.take();
                let cause = cause.map(|cause| (cause, strategy.error_site.as_str()));
                Err(failure(py, &universe, err, &slippage_error, cause, &risk_error).into())
            }
        }
    })
}

/// Address of the first value of column `name` as seen from Rust after importing `data` through
/// the Arrow PyCapsule interface (used to prove the import makes no copy).
#[pyfunction]
pub fn column_address(data: &Bound<'_, PyAny>, name: &str) -> Result<Option<usize>, Error> {
    let batches = import_batches(data)?;
    let Some(batch) = batches.first() else {
        return Ok(None);
    };
    let market = MarketData::new(batch.clone(), u32::MAX)?;
    Ok(market.column_address(name))
}
