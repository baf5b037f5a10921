//! Runs a Python `Strategy` from the core loop: one Python call per timestamp in batch mode, one
//! per asset bar in per-bar mode. Orders go through the shared `Context` and are drained into the
//! engine after each callback.
//!
//! Orders submitted in `on_order` or `on_fill` join the orders of the next strategy callback.
//! Those still waiting when the data has ended (submitted after the last timestamp's callback,
//! typically while the `end_of_data` rejections are delivered) can never be decided: they are
//! recorded as rejections of the last timestamp (see [`PyStrategy::with_late_rejections`]) without
//! order events, so a strategy that resubmits on every rejection still ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_array::{ArrowPrimitiveType, PrimitiveArray, UInt8Array};
use ml4t_backtest_core::orders::{CommandBuffer, Intent};
use ml4t_backtest_core::portfolio::Portfolio;
use ml4t_backtest_core::records::Fill;
use ml4t_backtest_core::types::RejectReason;
use ml4t_backtest_core::{
    AssetId, BacktestError, MarketData, OrderId, Strategy, StrategyContext, TimestampView, Ts,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::features::{FeatureGroups, Layout};
use crate::strategy::context::PyContext;
use crate::strategy::event::{refcount, EventColumns, FillEvent, MarketEvent, OrderUpdate};
use crate::universe::Universe;

/// How often the progress callback is called at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How the Python strategy wants to be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// `driver.on_timestamp(start, end, ts)` once per timestamp.
    Batch,
    /// `strategy.on_market_data(event, context)` once per asset bar.
    PerBar,
}

/// A Python strategy seen as a core [`Strategy`].
pub struct PyStrategy {
    mode: CallMode,
    /// Batch mode: the Python driver; per-bar mode: the user's strategy object.
    target: Py<PyAny>,
    /// Per-bar mode: the bound `on_market_data` method, looked up once.
    on_market_data: Option<Py<PyAny>>,
    context: Py<PyContext>,
    /// The context's flag: its order buffer may hold intents to drain.
    orders_waiting: Arc<AtomicBool>,
    universe: Arc<Universe>,
    /// Which feature columns are indicators and market-wide context.
    groups: Arc<FeatureGroups>,
    wants_fills: bool,
    /// Whether the user overrides `on_order`.
    pub wants_orders: bool,
    columns: Option<Arc<EventColumns>>,
    /// Per-bar mode: the last call's arguments, reused while the strategy keeps none of them.
    bar_args: Option<BarArgs>,
    /// The Python exception that stopped the run, kept to be re-raised with its traceback.
    pub error: Option<PyErr>,
    /// Where the error happened.
    pub error_site: String,
    progress: Option<Py<PyAny>>,
    rows_seen: u64,
    last_report: Instant,
    /// The timestamp of the last callback.
    last_ts: Ts,
    /// Orders left in the context when the data ended, as rejections (see the module docs).
    late: Vec<LateRejection>,
}

/// The arguments of the last `on_market_data` call, `(event, context)`, kept to be reused.
struct BarArgs {
    event: Py<MarketEvent>,
    args: Py<PyTuple>,
}

/// A row of the rejections table for an order submitted after the last timestamp's callback.
struct LateRejection {
    order_id: OrderId,
    asset: AssetId,
    quantity: f64,
    reason: RejectReason,
}

impl PyStrategy {
    /// Wraps `target` (the batch driver or the per-bar strategy).
    pub fn new(
        py: Python<'_>,
        mode: CallMode,
        target: Py<PyAny>,
        context: Py<PyContext>,
        universe: Arc<Universe>,
        wants_fills: bool,
        groups: Arc<FeatureGroups>,
    ) -> PyResult<Self> {
        let on_market_data = match mode {
            CallMode::PerBar => Some(target.getattr(py, "on_market_data")?),
            CallMode::Batch => None,
        };
        let orders_waiting = context.borrow(py).orders_waiting();
        Ok(PyStrategy {
            mode,
            target,
            on_market_data,
            context,
            orders_waiting,
            universe,
            groups,
            wants_fills,
            wants_orders: false,
            columns: None,
            bar_args: None,
            error: None,
            error_site: String::new(),
            progress: None,
            rows_seen: 0,
            last_report: Instant::now(),
            last_ts: 0,
            late: Vec::new(),
        })
    }

    /// Calls `progress(rows_done)` about ten times a second during the run, and at its end.
    pub fn set_progress(&mut self, progress: Option<Py<PyAny>>) {
        self.progress = progress;
    }

    fn report_progress(&mut self, py: Python<'_>, force: bool) -> PyResult<()> {
        let Some(callback) = &self.progress else {
            return Ok(());
        };
        if force || self.last_report.elapsed() >= PROGRESS_INTERVAL {
            self.last_report = Instant::now();
            callback.call1(py, (self.rows_seen,))?;
        }
        Ok(())
    }

    fn fail(&mut self, py: Python<'_>, err: PyErr, site: String) -> BacktestError {
        let message = format!("{site}: {}", err.value(py));
        self.error = Some(err);
        self.error_site = site;
        BacktestError::Strategy(message)
    }

    fn call_hook(&mut self, hook: &str) -> Result<(), BacktestError> {
        Python::attach(|py| {
            let result = self
                .target
                .call_method1(py, hook, (self.context.clone_ref(py),));
            self.drain_or_fail(py, result.map(|_| ()), || format!("{hook}()"))
        })
    }

    /// `result`, or the failure it names; `site` (where the strategy raised, with the time)
    /// is only built on failure, so a bar that succeeds creates no Python object for it.
    fn drain_or_fail(
        &mut self,
        py: Python<'_>,
        result: PyResult<()>,
        site: impl FnOnce() -> String,
    ) -> Result<(), BacktestError> {
        result.map_err(|err| {
            let site = site();
            self.fail(py, err, site)
        })
    }
}

impl Strategy for PyStrategy {
    fn on_start(&mut self, _n_assets: u32) -> Result<(), BacktestError> {
        self.call_hook("on_start")
    }

    fn on_chunk(&mut self, data: &MarketData) -> Result<(), BacktestError> {
        if self.mode == CallMode::PerBar {
            self.bar_args = None;
            self.columns = Some(Arc::new(EventColumns {
                data: data.clone(),
                universe: self.universe.clone(),
                layout: Layout::of(data, &self.groups),
            }));
        }
        Ok(())
    }

    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<(), BacktestError> {
        Python::attach(|py| {
            self.context.borrow_mut(py).refresh(ctx);
            let result = match self.mode {
                CallMode::Batch => self
                    .target
                    .call_method1(
                        py,
                        intern!(py, "on_timestamp"),
                        (view.start, view.end, view.ts),
                    )
                    .map(|_| ()),
                CallMode::PerBar => self.call_per_bar(py, view),
            };
            // Borrow the context again only when the callback gave orders (or earlier hooks
            // left some): most bars give none, and a borrow is an atomic operation.
            if self.orders_waiting.load(Ordering::Relaxed) {
                self.orders_waiting.store(false, Ordering::Relaxed);
                ctx.orders.append(&mut self.context.borrow_mut(py).buffer);
            }
            self.rows_seen += (view.end - view.start) as u64;
            self.last_ts = view.ts;
            let result = match result {
                Ok(()) if view.index % 64 == 0 => self.report_progress(py, false),
                other => other,
            };
            // The error site is formatted only when the callback failed.
            result.map_err(|err| {
                let site = match self.mode {
                    CallMode::Batch => "on_timestamp_batch()",
                    CallMode::PerBar => "on_market_data()",
                };
                let site = format!("{site}: {}", self.universe.time_text(py, view.ts));
                self.fail(py, err, site)
            })
        })
    }

    fn wants_order_events(&self) -> bool {
        self.wants_orders
    }

    fn on_order(
        &mut self,
        event: &ml4t_backtest_core::events::OrderEvent,
        portfolio: &Portfolio,
    ) -> Result<(), BacktestError> {
        Python::attach(|py| {
            let result = (|| -> PyResult<()> {
                {
                    let mut context = self.context.borrow_mut(py);
                    context.set_ts(event.ts);
                    context.refresh_account(portfolio, portfolio.equity());
                }
                let update = Py::new(py, OrderUpdate::new(*event, self.universe.clone()))?;
                self.user_strategy(py)?.call_method1(
                    py,
                    intern!(py, "on_order"),
                    (update, self.context.clone_ref(py)),
                )?;
                Ok(())
            })();
            let (universe, ts) = (self.universe.clone(), event.ts);
            self.drain_or_fail(py, result, || {
                format!("on_order(): {}", universe.time_text(py, ts))
            })
        })
    }

    fn on_fill(&mut self, fill: &Fill, portfolio: &Portfolio) -> Result<(), BacktestError> {
        if !self.wants_fills {
            return Ok(());
        }
        Python::attach(|py| {
            let result = (|| -> PyResult<()> {
                {
                    let mut context = self.context.borrow_mut(py);
                    context.set_ts(fill.ts);
                    context.refresh_account(portfolio, portfolio.equity());
                }
                let event = Py::new(py, FillEvent::new(*fill, self.universe.clone()))?;
                self.user_strategy(py)?.call_method1(
                    py,
                    intern!(py, "on_fill"),
                    (event, self.context.clone_ref(py)),
                )?;
                Ok(())
            })();
            let (universe, ts) = (self.universe.clone(), fill.ts);
            self.drain_or_fail(py, result, || {
                format!("on_fill(): {}", universe.time_text(py, ts))
            })
        })
    }

    fn on_end(&mut self, portfolio: &Portfolio) -> Result<(), BacktestError> {
        Python::attach(|py| {
            let result = self.report_progress(py, true);
            self.drain_or_fail(py, result, || "progress()".to_string())
        })?;
        Python::attach(|py| {
            let mut context = self.context.borrow_mut(py);
            late_rejections(&context.buffer, &mut self.late);
            context.buffer.clear();
            context.refresh_account(portfolio, portfolio.equity())
        });
        self.call_hook("on_end")?;
        Python::attach(|py| {
            let mut context = self.context.borrow_mut(py);
            if context.buffer.is_empty() {
                return Ok(());
            }
            context.buffer.clear();
            Err(BacktestError::order(
                "on_end",
                "orders submitted in on_end can never fill (the data has ended)",
            ))
        })
    }
}

impl PyStrategy {
    /// `rejections` (the engine's rejections table) with the orders left in the context when
    /// the data ended appended, all at the last timestamp.
    pub fn with_late_rejections(&self, rejections: RecordBatch) -> RecordBatch {
        if self.late.is_empty() {
            return rejections;
        }
        let ts = self.last_ts;
        let late = &self.late;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(extended::<UInt64Type>(
                &rejections,
                "order_id",
                late.iter().map(|r| r.order_id),
            ))),
            Arc::new(Int64Array::from(extended::<Int64Type>(
                &rejections,
                "ts",
                late.iter().map(|_| ts),
            ))),
            Arc::new(UInt32Array::from(extended::<UInt32Type>(
                &rejections,
                "asset_id",
                late.iter().map(|r| r.asset),
            ))),
            Arc::new(Float64Array::from(extended::<Float64Type>(
                &rejections,
                "quantity",
                late.iter().map(|r| r.quantity),
            ))),
            Arc::new(UInt8Array::from(extended::<UInt8Type>(
                &rejections,
                "reason",
                late.iter().map(|r| r.reason as u8),
            ))),
        ];
        // The engine's schema, and one column of each of its types, in its order.
        RecordBatch::try_new(rejections.schema(), columns).expect("rejections schema")
    }

    fn call_per_bar(&mut self, py: Python<'_>, view: &TimestampView<'_>) -> PyResult<()> {
        let (Some(method), Some(columns)) = (&self.on_market_data, &self.columns) else {
            return Ok(());
        };
        for row in view.rows() {
            let args = match self.bar_args.take() {
                // Only this adapter holds the arguments (the tuple, and the event in it): the
                // strategy kept neither, so the event moves to this bar in place.
                Some(bar) if refcount(&bar.args) == 1 && refcount(&bar.event) == 2 => {
                    bar.event.get().rebind(py, row);
                    bar
                }
                _ => {
                    let event = Py::new(py, MarketEvent::new(columns.clone(), row))?;
                    let args = PyTuple::new(
                        py,
                        [
                            event.clone_ref(py).into_any(),
                            self.context.clone_ref(py).into_any(),
                        ],
                    )?
                    .unbind();
                    BarArgs { event, args }
                }
            };
            let result = method.call1(py, args.args.bind(py));
            self.bar_args = Some(args);
            result?;
        }
        Ok(())
    }

    /// The user's strategy object (the driver forwards hooks in batch mode).
    fn user_strategy(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.mode {
            CallMode::PerBar => Ok(self.target.clone_ref(py)),
            CallMode::Batch => self.target.getattr(py, intern!(py, "strategy")),
        }
    }
}

/// The rejections for the intents left in `buffer` when the data ended, appended to `out`: an
/// explicit order is `end_of_data` with its id and quantity; a target order (never sized)
/// `end_of_data` with id 0 and quantity NaN for each asset it names; a cancel or a modification
/// `not_pending`, as for any order no longer pending.
fn late_rejections(buffer: &CommandBuffer, out: &mut Vec<LateRejection>) {
    let unsized_target = |asset| LateRejection {
        order_id: 0,
        asset,
        quantity: f64::NAN,
        reason: RejectReason::EndOfData,
    };
    for intent in buffer.intents() {
        match *intent {
            Intent::Submit { id, request } => out.push(LateRejection {
                order_id: id,
                asset: request.asset,
                quantity: request.quantity,
                reason: RejectReason::EndOfData,
            }),
            Intent::Cancel { id } | Intent::Modify { id, .. } => out.push(LateRejection {
                order_id: id,
                asset: 0,
                quantity: f64::NAN,
                reason: RejectReason::NotPending,
            }),
            Intent::TargetQuantity { asset, .. }
            | Intent::TargetValue { asset, .. }
            | Intent::TargetPercent { asset, .. }
            | Intent::Close { asset } => out.push(unsized_target(asset)),
            Intent::Rebalance { start, end } => out.extend(
                buffer.weights()[start as usize..end as usize]
                    .iter()
                    .map(|&(asset, _)| unsized_target(asset)),
            ),
        }
    }
}

/// The values of primitive column `name` of `batch` followed by `more`.
fn extended<T: ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
    more: impl Iterator<Item = T::Native>,
) -> Vec<T::Native> {
    let column: &PrimitiveArray<T> = batch
        .column_by_name(name)
        .expect("rejections column")
        .as_primitive();
    column.values().iter().copied().chain(more).collect()
}
