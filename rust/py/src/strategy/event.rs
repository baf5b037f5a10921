//! Per-bar and per-fill objects handed to Python callbacks. Each is a small handle (a shared
//! pointer to the chunk and a row number); values are read lazily from the Arrow buffers.
//!
//! A [`MarketEvent`] (and the [`Signals`] it hands out) is moved to the next bar in place when
//! nothing but the engine holds it ([`MarketEvent::rebind`]): a strategy that keeps an event or
//! its signals keeps that bar's values, one that does not costs no allocation per bar.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use ml4t_backtest_core::records::Fill;
use ml4t_backtest_core::MarketData;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::features::Layout;
use crate::universe::Universe;

/// One data chunk, the universe and where the feature groups sit, shared by every event of
/// the chunk.
pub struct EventColumns {
    /// The chunk.
    pub data: MarketData,
    /// Names and time conversion.
    pub universe: Arc<Universe>,
    /// Positions of the indicator and context columns.
    pub layout: Layout,
}

/// The number of strong references to `object`. With the GIL held (this crate is built for
/// the GIL-enabled ABI) every stored reference counts, so 1 means the caller's is the only one.
pub fn refcount<T>(object: &Py<T>) -> isize {
    // SAFETY: `object` is a live, owned reference, so its pointer is valid to read.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) }
}

/// Which feature columns a [`Signals`] mapping shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    All,
    Indicators,
    Context,
}

/// One asset's bar at one timestamp, as seen by `Strategy.on_market_data`.
#[pyclass(module = "ml4t.backtest._core", name = "MarketEvent", frozen)]
pub struct MarketEvent {
    columns: Arc<EventColumns>,
    /// The bar's row in the chunk (moved only by [`MarketEvent::rebind`]).
    row: AtomicUsize,
    /// The `signals` mapping handed out for this bar, reused while only this event holds it:
    /// a strong reference owned by this event, or null. Only read and written with the GIL
    /// held (this crate is built for the GIL-enabled ABI), so relaxed loads and stores are
    /// never concurrent; unlike a lock they cost no atomic read-modify-write a bar.
    signals: AtomicPtr<pyo3::ffi::PyObject>,
}

impl Drop for MarketEvent {
    fn drop(&mut self) {
        let cached = std::mem::replace(self.signals.get_mut(), std::ptr::null_mut());
        if !cached.is_null() {
            // SAFETY: `cached` is the strong reference this event owned, released here (an
            // event is dropped by its deallocator, with the GIL held: attaching is a no-op).
            Python::attach(|py| drop(unsafe { Bound::<PyAny>::from_owned_ptr(py, cached) }));
        }
    }
}

impl MarketEvent {
    /// The event of `row`.
    pub fn new(columns: Arc<EventColumns>, row: usize) -> Self {
        MarketEvent {
            columns,
            row: AtomicUsize::new(row),
            signals: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Moves this event to `row` of the same chunk. Only call it while the caller holds the
    /// only other reference (the strategy kept nothing), so no Python code can see the change;
    /// the cached `signals` mapping moves too when nothing else holds it, else it is let go.
    pub fn rebind(&self, py: Python<'_>, row: usize) {
        self.row.store(row, Ordering::Relaxed);
        let cached = self.signals.load(Ordering::Relaxed);
        if cached.is_null() {
            return;
        }
        // SAFETY: a non-null `cached` is the live strong reference this event owns to a
        // `Signals` (only `signals()` stores one); the GIL is held.
        let signals =
            unsafe { Bound::from_borrowed_ptr(py, cached).cast_into_unchecked::<Signals>() };
        // 2: this event's reference and `signals`' own.
        if unsafe { pyo3::ffi::Py_REFCNT(cached) } == 2 {
            signals.get().row.store(row, Ordering::Relaxed);
        } else {
            self.signals.store(std::ptr::null_mut(), Ordering::Relaxed);
            // SAFETY: the reference this event owned, now let go.
            drop(unsafe { Bound::from_owned_ptr(py, cached) });
        }
    }

    fn row(&self) -> usize {
        self.row.load(Ordering::Relaxed)
    }

    fn group(&self, group: Group) -> Signals {
        Signals {
            columns: self.columns.clone(),
            row: AtomicUsize::new(self.row()),
            group,
        }
    }
}

#[pymethods]
impl MarketEvent {
    /// Bar time as a datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ns = self.columns.data.ts()[self.row()];
        self.columns.universe.datetime(py, ns)
    }

    /// Bar time in nanoseconds since the epoch.
    #[getter]
    fn timestamp_ns(&self) -> i64 {
        self.columns.data.ts()[self.row()]
    }

    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        let code = self.columns.data.asset_ids()[self.row()];
        self.columns.universe.name(py, code)
    }

    /// Asset code.
    #[getter]
    fn asset_id(&self) -> u32 {
        self.columns.data.asset_ids()[self.row()]
    }

    /// Open price.
    #[getter]
    fn open(&self) -> f64 {
        self.columns.data.open()[self.row()]
    }

    /// High price.
    #[getter]
    fn high(&self) -> f64 {
        self.columns.data.high()[self.row()]
    }

    /// Low price.
    #[getter]
    fn low(&self) -> f64 {
        self.columns.data.low()[self.row()]
    }

    /// Close price.
    #[getter]
    fn close(&self) -> f64 {
        self.columns.data.close()[self.row()]
    }

    /// Volume.
    #[getter]
    fn volume(&self) -> f64 {
        self.columns.data.volume()[self.row()]
    }

    /// Every feature column of the bar (signals, indicators, context) as a read-only mapping
    /// `{name: value}`.
    #[getter]
    fn signals(&self, py: Python<'_>) -> PyResult<Py<Signals>> {
        let cached = self.signals.load(Ordering::Relaxed);
        if !cached.is_null() {
            // SAFETY: the live strong reference this event owns to a `Signals` (see `rebind`).
            let signals = unsafe { Bound::from_borrowed_ptr(py, cached).cast_into_unchecked() };
            return Ok(signals.unbind());
        }
        let signals = Py::new(py, self.group(Group::All))?;
        self.signals
            .store(signals.clone_ref(py).into_ptr(), Ordering::Relaxed);
        Ok(signals)
    }

    /// The bar's indicator columns (the feed's `indicators` frame).
    #[getter]
    fn indicators(&self) -> Signals {
        self.group(Group::Indicators)
    }

    /// This timestamp's market-wide context columns (the feed's `context` frame).
    #[getter]
    fn context(&self) -> Signals {
        self.group(Group::Context)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let code = self.columns.data.asset_ids()[self.row()];
        format!(
            "MarketEvent(asset={}, timestamp={}, close={})",
            self.columns.universe.name(py, code),
            self.columns.universe.time_text(py, self.timestamp_ns()),
            self.close()
        )
    }
}

/// Read-only mapping of a bar's signal values.
#[pyclass(module = "ml4t.backtest._core", name = "Signals", frozen, mapping)]
pub struct Signals {
    columns: Arc<EventColumns>,
    /// The bar's row (moved with its event, see [`MarketEvent::rebind`]).
    row: AtomicUsize,
    group: Group,
}

impl Signals {
    fn row(&self) -> usize {
        self.row.load(Ordering::Relaxed)
    }

    /// Positions of the columns shown.
    fn positions(&self) -> Vec<usize> {
        match self.group {
            Group::All => (0..self.columns.data.feature_names().len()).collect(),
            Group::Indicators => self.columns.layout.indicators.clone(),
            Group::Context => self.columns.layout.context.clone(),
        }
    }

    fn shows(&self, pos: usize) -> bool {
        match self.group {
            Group::All => true,
            Group::Indicators => self.columns.layout.indicators.contains(&pos),
            Group::Context => self.columns.layout.context.contains(&pos),
        }
    }

    fn lookup(&self, name: &str) -> Option<f64> {
        let pos = self.columns.data.feature_position(name)?;
        self.shows(pos)
            .then(|| self.columns.data.feature_at(pos)[self.row()])
    }
}

#[pymethods]
impl Signals {
    fn __getitem__(&self, name: &str) -> PyResult<f64> {
        self.lookup(name).ok_or_else(|| {
            PyKeyError::new_err(format!("no column '{name}' (have {:?})", self.keys()))
        })
    }

    fn __len__(&self) -> usize {
        self.positions().len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.keys()
            .into_pyobject(py)?
            .try_iter()
            .map(|it| it.into_any().unbind())
    }

    /// Value of `name`, or `default` when the feed has no such column.
    #[pyo3(signature = (name, default=None))]
    fn get(&self, name: &str, default: Option<f64>) -> Option<f64> {
        self.lookup(name).or(default)
    }

    /// Column names.
    fn keys(&self) -> Vec<String> {
        let names = self.columns.data.feature_names();
        self.positions()
            .into_iter()
            .map(|pos| names[pos].clone())
            .collect()
    }

    /// Values, in column order.
    fn values(&self) -> Vec<f64> {
        self.positions()
            .into_iter()
            .map(|pos| self.columns.data.feature_at(pos)[self.row()])
            .collect()
    }

    /// `(name, value)` pairs.
    fn items(&self) -> Vec<(String, f64)> {
        self.keys().into_iter().zip(self.values()).collect()
    }

    fn __repr__(&self) -> String {
        format!("Signals({:?})", self.items())
    }
}

/// One execution, as seen by `Strategy.on_fill`.
#[pyclass(module = "ml4t.backtest._core", name = "FillEvent", frozen)]
pub struct FillEvent {
    fill: Fill,
    universe: Arc<Universe>,
}

impl FillEvent {
    /// Wraps a core fill.
    pub fn new(fill: Fill, universe: Arc<Universe>) -> Self {
        FillEvent { fill, universe }
    }
}

#[pymethods]
impl FillEvent {
    /// Id of the order filled.
    #[getter]
    fn order_id(&self) -> u64 {
        self.fill.order_id
    }

    /// Fill time as a datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.fill.ts)
    }

    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.universe.name(py, self.fill.asset)
    }

    /// "buy" or "sell".
    #[getter]
    fn side(&self) -> &'static str {
        if self.fill.quantity >= 0.0 {
            "buy"
        } else {
            "sell"
        }
    }

    /// Signed shares (+ bought).
    #[getter]
    fn quantity(&self) -> f64 {
        self.fill.quantity
    }

    /// Fill price.
    #[getter]
    fn price(&self) -> f64 {
        self.fill.price
    }

    /// Bar price the fill referenced (open or close).
    #[getter]
    fn reference_price(&self) -> f64 {
        self.fill.reference_price
    }

    /// Slippage cost.
    #[getter]
    fn slippage(&self) -> f64 {
        self.fill.slippage
    }

    /// Fee.
    #[getter]
    fn commission(&self) -> f64 {
        self.fill.commission
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "FillEvent(order_id={}, asset={}, quantity={}, price={})",
            self.fill.order_id,
            self.universe.name(py, self.fill.asset),
            self.fill.quantity,
            self.fill.price
        )
    }
}

/// One order status change, as seen by `Strategy.on_order`.
#[pyclass(module = "ml4t.backtest._core", name = "OrderUpdate", frozen)]
pub struct OrderUpdate {
    event: ml4t_backtest_core::events::OrderEvent,
    universe: Arc<Universe>,
}

impl OrderUpdate {
    /// Wraps a core event.
    pub fn new(event: ml4t_backtest_core::events::OrderEvent, universe: Arc<Universe>) -> Self {
        OrderUpdate { event, universe }
    }
}

#[pymethods]
impl OrderUpdate {
    /// The order's id (as returned by `submit_order`).
    #[getter]
    fn order_id(&self) -> u64 {
        self.event.order_id
    }

    /// When it happened, as a datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.event.ts)
    }

    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.universe.name(py, self.event.asset)
    }

    /// "accepted", "partially_filled", "filled", "cancelled", "expired" or "rejected".
    #[getter]
    fn status(&self) -> &'static str {
        ml4t_backtest_core::events::OrderStatus::NAMES[self.event.status as usize]
    }

    /// Signed shares filled by this event (0 unless a fill).
    #[getter]
    fn filled(&self) -> f64 {
        self.event.filled
    }

    /// Signed shares still open after it.
    #[getter]
    fn remaining(&self) -> f64 {
        self.event.remaining
    }

    /// The reason of a rejection or expiry (e.g. "insufficient_cash"), else None.
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        self.event
            .reason
            .map(|r| ml4t_backtest_core::types::RejectReason::NAMES[r as usize])
    }

    fn __repr__(&self) -> String {
        format!(
            "OrderUpdate(order_id={}, status={}, filled={}, remaining={})",
            self.event.order_id,
            self.status(),
            self.event.filled,
            self.event.remaining
        )
    }
}
