//! The `context` object a Python strategy receives: account state and order methods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use ml4t_backtest_core::orders::{CommandBuffer, OrderKind, OrderRequest, TimeInForce, Trail};
use ml4t_backtest_core::{BacktestError, StrategyContext};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyMapping, PyString};

use crate::arrow_io::ArrowTable;
use crate::errors::{chain, to_py_err, BacktestError as PyBacktestError, OrderError};
use crate::universe::Universe;

pyo3::import_exception!(ml4t.backtest.errors, UnitsWarning);

/// Emits a `UnitsWarning` (an error when the user's filters turn warnings into errors).
fn warn_units(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = std::ffi::CString::new(message).unwrap_or_default();
    PyErr::warn(py, &py.get_type::<UnitsWarning>(), &message, 1)
}

/// Account state at the current timestamp and the order buffer the engine drains after each
/// callback. Assets are given by name or by integer code.
#[pyclass(module = "ml4t.backtest._core", name = "Context")]
pub struct PyContext {
    ts: i64,
    cash: f64,
    equity: f64,
    positions: Vec<f64>,
    prices: Vec<f64>,
    /// Each asset's membership of the point-in-time universe (empty: no universe).
    members: Vec<bool>,
    integer_shares: bool,
    /// Orders submitted during the current callback.
    pub buffer: CommandBuffer,
    /// Set by every method that writes to `buffer`, so the adapter borrows the context after
    /// a callback only when there is something to drain (see [`PyContext::orders_waiting`]).
    waiting: Arc<AtomicBool>,
    universe: Arc<Universe>,
    records: UserRecords,
    /// A `rebalance` weight outside ±[`WEIGHT_SANITY`] has been warned about (once per run).
    warned_weight: bool,
    /// `rebalance`'s resolved weights, kept between calls (no allocation per call).
    weights: Vec<(u32, f64)>,
}

/// Beyond this absolute weight a `rebalance` weight is most likely a percent meant as a
/// fraction (25 for 25%): the run warns once with the value.
const WEIGHT_SANITY: f64 = 10.0;

/// Values recorded with `context.record(name=value)`, in long format.
#[derive(Default)]
struct UserRecords {
    names: Vec<String>,
    index: HashMap<String, u32>,
    ts: Vec<i64>,
    name: Vec<u32>,
    value: Vec<f64>,
}

impl PyContext {
    /// A context over `universe`.
    pub fn new(universe: Arc<Universe>, integer_shares: bool, cash: f64) -> Self {
        let n = universe.len();
        PyContext {
            ts: 0,
            cash,
            equity: cash,
            positions: vec![0.0; n],
            prices: vec![f64::NAN; n],
            members: Vec::new(),
            integer_shares,
            buffer: CommandBuffer::new(n as u32),
            waiting: Arc::new(AtomicBool::new(false)),
            universe,
            records: UserRecords::default(),
            warned_weight: false,
            weights: Vec::new(),
        }
    }

    /// Copies the engine's account state in before a callback.
    pub fn refresh(&mut self, ctx: &StrategyContext<'_>) {
        self.ts = ctx.ts;
        self.buffer.share_ids(ctx.orders.ids());
        self.refresh_account(ctx.portfolio(), ctx.equity());
        if let Some(members) = ctx.members() {
            if self.members.len() != members.len() {
                self.members.resize(members.len(), false); // once, at the first callback
            }
            self.members.copy_from_slice(members);
        }
    }

    /// Copies cash, positions and marks (used before `on_fill` and `on_end` too).
    pub fn refresh_account(
        &mut self,
        portfolio: &ml4t_backtest_core::portfolio::Portfolio,
        equity: f64,
    ) {
        self.cash = portfolio.cash();
        self.equity = equity;
        for (slot, pos) in self.positions.iter_mut().zip(portfolio.positions()) {
            *slot = pos.quantity;
        }
        self.prices.copy_from_slice(portfolio.last_prices());
    }

    /// Takes the recorded user values: the names, and a table (ts, name code, value).
    pub fn take_records(&mut self) -> (Vec<String>, ArrowTable) {
        let records = std::mem::take(&mut self.records);
        let schema = Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("name", DataType::UInt32, false),
            Field::new("value", DataType::Float64, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(records.ts)),
            Arc::new(UInt32Array::from(records.name)),
            Arc::new(Float64Array::from(records.value)),
        ];
        // Three columns of equal length matching the schema by construction.
        let batch = RecordBatch::try_new(Arc::new(schema), columns).expect("records schema");
        (records.names, ArrowTable::new(batch))
    }

    /// A flag that is true whenever `buffer` may hold intents: set (never cleared) by the
    /// order methods before they write; the adapter clears it when it drains the buffer.
    pub fn orders_waiting(&self) -> Arc<AtomicBool> {
        self.waiting.clone()
    }

    /// The order buffer, for a method about to write to it (raises the waiting flag).
    fn orders(&mut self) -> &mut CommandBuffer {
        self.waiting.store(true, Ordering::Relaxed);
        &mut self.buffer
    }

    /// Sets the current timestamp.
    pub fn set_ts(&mut self, ts: i64) {
        self.ts = ts;
    }
}

impl PyContext {
    /// `rebalance`'s fast path: an exact `dict` of exact `int` or `str` keys and exact `float`
    /// values, read in place (no items list, no pair tuples). It runs no user code, so it
    /// gives what [`PyContext::any_weights`] would; it returns false, leaving the general path
    /// to start over, at the first entry it does not take (another type, or a weight the
    /// sanity warning must see).
    fn plain_weights(&mut self, weights: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(dict) = weights.cast_exact::<PyDict>() else {
            return Ok(false);
        };
        for (asset, weight) in dict.iter() {
            let plain_key =
                asset.is_exact_instance_of::<PyInt>() || asset.is_exact_instance_of::<PyString>();
            let Ok(weight) = weight.cast_exact::<PyFloat>() else {
                return Ok(false);
            };
            let value = weight.value();
            if !plain_key || (value.abs() > WEIGHT_SANITY && !self.warned_weight) {
                return Ok(false);
            }
            self.weights.push((self.universe.resolve(&asset)?, value));
        }
        Ok(true)
    }

    /// `rebalance`'s general path: any mapping or iterable of `(asset, weight)` pairs.
    fn any_weights(&mut self, weights: &Bound<'_, PyAny>) -> PyResult<()> {
        const EXPECTED: &str = "{asset: weight} or (asset, weight) pairs";
        let pairs = if let Ok(mapping) = weights.cast::<PyMapping>() {
            mapping.items()?.into_any()
        } else {
            weights.clone()
        };
        let items = pairs
            .try_iter()
            .map_err(|err| bad_argument("weights", EXPECTED, weights, err))?;
        for item in items {
            let item = item?;
            let (asset, weight): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item
                .extract()
                .map_err(|err| bad_argument("weights", EXPECTED, &item, err))?;
            let value = number("weight", &weight)?;
            if value.abs() > WEIGHT_SANITY && !self.warned_weight {
                self.warned_weight = true;
                warn_units(
                    weights.py(),
                    &format!(
                        "rebalance: weight {value} for {asset} is outside ±{WEIGHT_SANITY}: \
                         weights are fractions of equity (0.25 = 25%), not percent"
                    ),
                )?;
            }
            let code = self.universe.resolve(&asset)?;
            self.weights.push((code, value));
        }
        Ok(())
    }
}

fn order_result(result: Result<(), BacktestError>) -> PyResult<()> {
    result.map_err(to_py_err)
}

/// `OrderError` for argument `name`, which is not `expected` (an int is shown by value, cut
/// to 32 characters; anything else by type); the conversion's exception (a user's `__float__`
/// or `__index__` may raise) is its `__cause__`.
fn bad_argument(name: &str, expected: &str, value: &Bound<'_, PyAny>, cause: PyErr) -> PyErr {
    let got = match value.cast::<PyInt>() {
        Ok(int) => {
            let digits = int.to_string();
            match digits.char_indices().nth(32) {
                Some((cut, _)) => format!("{}...", &digits[..cut]),
                None => digits,
            }
        }
        Err(_) => value.get_type().to_string(),
    };
    let message = format!("{name}: expected {expected}, got {got}");
    chain(value.py(), cause, message, OrderError::new_err)
}

/// Argument `name` as a number (what Python's `float()` accepts without parsing a string).
fn number(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    value
        .extract()
        .map_err(|err| bad_argument(name, "a number", value, err))
}

/// An optional numeric argument (`None` when left out or given as `None`).
fn opt_number(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    match value {
        Some(value) if !value.is_none() => number(name, value).map(Some),
        _ => Ok(None),
    }
}

/// Argument `name` as a string.
fn text<'a>(name: &str, value: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match value.cast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => Err(OrderError::new_err(format!(
            "{name}: expected a str, got {}",
            value.get_type()
        ))),
    }
}

/// The `tif` argument: "gtc", "day" or "ioc".
fn time_in_force(value: &Bound<'_, PyAny>) -> PyResult<TimeInForce> {
    match text("tif", value)? {
        "gtc" => Ok(TimeInForce::Gtc),
        "day" => Ok(TimeInForce::Day),
        "ioc" => Ok(TimeInForce::Ioc),
        other => Err(OrderError::new_err(format!(
            "tif: must be 'gtc', 'day' or 'ioc', got '{other}'"
        ))),
    }
}

/// An order id argument (a non-negative int below 2**64).
fn order_id(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    value
        .extract()
        .map_err(|err| bad_argument("order_id", "an order id (int >= 0)", value, err))
}

#[pymethods]
impl PyContext {
    /// The current timestamp as a datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.ts)
    }

    /// The current timestamp in nanoseconds since the epoch.
    #[getter]
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }

    /// Whether `asset` still trades now: false from the last bar of an asset delisted in this
    /// run (its position was closed at that bar's close; orders for it are refused).
    fn is_active(&self, asset: &Bound<'_, PyAny>) -> PyResult<bool> {
        let code = self.universe.resolve(asset)?;
        Ok(self.universe.is_active(code, self.ts))
    }

    /// Whether `asset` is a member of the point-in-time universe now (its latest row at or
    /// before this timestamp; always true when the feed has no universe).
    fn is_member(&self, asset: &Bound<'_, PyAny>) -> PyResult<bool> {
        let code = self.universe.resolve(asset)?;
        Ok(self.members.get(code as usize).copied().unwrap_or(true))
    }

    /// Each asset's membership now by code, one byte each (1: a member), for
    /// `np.frombuffer(..., dtype=bool)`; empty when the feed has no universe.
    #[getter]
    fn member_mask<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        let bytes: Vec<u8> = self.members.iter().map(|&m| u8::from(m)).collect();
        pyo3::types::PyBytes::new(py, &bytes)
    }

    /// Cash balance.
    #[getter]
    fn cash(&self) -> f64 {
        self.cash
    }

    /// Equity: cash plus positions marked at the last closes.
    #[getter]
    fn equity(&self) -> f64 {
        self.equity
    }

    /// Names of every asset in the feed, by code.
    #[getter]
    fn asset_names<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, pyo3::types::PyString>> {
        (0..self.universe.len() as u32)
            .map(|code| self.universe.name(py, code))
            .collect()
    }

    /// Signed shares held in `asset`.
    fn position(&self, asset: &Bound<'_, PyAny>) -> PyResult<f64> {
        Ok(self.positions[self.universe.resolve(asset)? as usize])
    }

    /// Every non-zero position as `{asset: shares}`.
    #[getter]
    fn positions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (code, &quantity) in self.positions.iter().enumerate() {
            if quantity != 0.0 {
                out.set_item(self.universe.name(py, code as u32), quantity)?;
            }
        }
        Ok(out)
    }

    /// Last close of `asset` (NaN before its first bar).
    fn price(&self, asset: &Bound<'_, PyAny>) -> PyResult<f64> {
        Ok(self.prices[self.universe.resolve(asset)? as usize])
    }

    /// Submit an order for a signed number of shares (+ buys, - sells) and return its id.
    ///
    /// The type follows the prices given: none is a market order; `limit`, `stop`, both
    /// (stop-limit), `trail_amount` / `trail_percent` (trailing stop), or
    /// `order_type="market_on_close"`. `tif` is "gtc", "day" or "ioc". `take_profit` and
    /// `stop_loss` attach a bracket: exits that become active once this order fills and cancel
    /// each other.
    #[pyo3(signature = (asset, quantity, *, limit=None, stop=None, trail_amount=None,
        trail_percent=None, order_type=None, tif=TimeInForce::Gtc, take_profit=None, stop_loss=None),
        text_signature = "($self, asset, quantity, *, limit=None, stop=None, trail_amount=None, \
            trail_percent=None, order_type=None, tif='gtc', take_profit=None, stop_loss=None)")]
    #[allow(clippy::too_many_arguments)]
    fn submit_order(
        &mut self,
        asset: &Bound<'_, PyAny>,
        quantity: &Bound<'_, PyAny>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        trail_amount: Option<&Bound<'_, PyAny>>,
        trail_percent: Option<&Bound<'_, PyAny>>,
        order_type: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = time_in_force)] tif: TimeInForce,
        take_profit: Option<&Bound<'_, PyAny>>,
        stop_loss: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let code = self.universe.resolve(asset)?;
        let quantity = number("quantity", quantity)?;
        let limit = opt_number("limit", limit)?;
        let stop = opt_number("stop", stop)?;
        let trail_amount = opt_number("trail_amount", trail_amount)?;
        let trail_percent = opt_number("trail_percent", trail_percent)?;
        let order_type = match order_type {
            Some(value) if !value.is_none() => Some(text("order_type", value)?),
            _ => None,
        };
        let take_profit = opt_number("take_profit", take_profit)?;
        let stop_loss = opt_number("stop_loss", stop_loss)?;
        if self.integer_shares && quantity.is_finite() && quantity.fract() != 0.0 {
            return Err(OrderError::new_err(format!(
                "quantity: must be a whole number of shares with integer share rounding, \
                 got {quantity}"
            )));
        }
        let bad = |field: &str, rule: String| OrderError::new_err(format!("{field}: {rule}"));
        let kind = match (order_type, limit, stop, trail_amount, trail_percent) {
            (None | Some("market"), None, None, None, None) => OrderKind::Market,
            (Some("market_on_close"), None, None, None, None) => OrderKind::MarketOnClose,
            (None | Some("limit"), Some(limit), None, None, None) => OrderKind::Limit { limit },
            (None | Some("stop"), None, Some(stop), None, None) => OrderKind::Stop { stop },
            (None | Some("stop_limit"), Some(limit), Some(stop), None, None) => {
                OrderKind::StopLimit { stop, limit }
            }
            (None | Some("trailing_stop"), None, None, Some(a), None) => OrderKind::TrailingStop {
                trail: Trail::Amount(a),
            },
            (None | Some("trailing_stop"), None, None, None, Some(p)) => OrderKind::TrailingStop {
                trail: Trail::Percent(p),
            },
            _ => {
                return Err(bad(
                    "order_type",
                    format!(
                        "inconsistent order: order_type={order_type:?} with limit={limit:?}, \
                         stop={stop:?}, trail_amount={trail_amount:?}, \
                         trail_percent={trail_percent:?}"
                    ),
                ))
            }
        };
        let request = OrderRequest {
            asset: code,
            quantity,
            kind,
            tif,
            take_profit,
            stop_loss,
        };
        self.orders().submit(request).map_err(to_py_err)
    }

    /// Change pending order `order_id`: its remaining `quantity` (signed, same side) and/or its
    /// `limit` / `stop` price. The change applies after this callback (like a new order); a
    /// change the order cannot take is reported in `rejected_orders` as `invalid_modify`.
    #[pyo3(signature = (order_id, *, quantity=None, limit=None, stop=None))]
    fn modify_order(
        &mut self,
        order_id: &Bound<'_, PyAny>,
        quantity: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let id = self::order_id(order_id)?;
        let quantity = opt_number("quantity", quantity)?;
        let limit = opt_number("limit", limit)?;
        let stop = opt_number("stop", stop)?;
        order_result(self.orders().modify_order(id, quantity, limit, stop))
    }

    /// Cancel pending order `order_id` (and the waiting legs of a bracket entry). Cancelling
    /// an order that is no longer pending is recorded in `rejected_orders` as `not_pending`.
    fn cancel_order(&mut self, order_id: &Bound<'_, PyAny>) -> PyResult<()> {
        self.orders().cancel_order(self::order_id(order_id)?);
        Ok(())
    }

    /// Trade toward a target position in shares.
    fn order_target_quantity(
        &mut self,
        asset: &Bound<'_, PyAny>,
        target: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let code = self.universe.resolve(asset)?;
        let target = number("target", target)?;
        order_result(self.orders().order_target_quantity(code, target))
    }

    /// Trade toward a target market value (negative for a short).
    fn order_target_value(
        &mut self,
        asset: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let code = self.universe.resolve(asset)?;
        let value = number("value", value)?;
        order_result(self.orders().order_target_value(code, value))
    }

    /// Trade toward a target fraction of equity (negative for a short).
    fn order_target_percent(
        &mut self,
        asset: &Bound<'_, PyAny>,
        fraction: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let code = self.universe.resolve(asset)?;
        let fraction = number("fraction", fraction)?;
        order_result(self.orders().order_target_percent(code, fraction))
    }

    /// Go flat in `asset`.
    fn close_position(&mut self, asset: &Bound<'_, PyAny>) -> PyResult<()> {
        let code = self.universe.resolve(asset)?;
        order_result(self.orders().close_position(code))
    }

    /// Hold exactly `weights` (`{asset: fraction of equity}` or `(asset, weight)` pairs) and
    /// close every other position.
    fn rebalance(&mut self, weights: &Bound<'_, PyAny>) -> PyResult<()> {
        self.weights.clear();
        if !self.plain_weights(weights)? {
            self.weights.clear();
            self.any_weights(weights)?;
        }
        self.waiting.store(true, Ordering::Relaxed);
        order_result(self.buffer.rebalance(self.weights.drain(..)))
    }

    /// Records user values for this timestamp, e.g. `context.record(gross=1.2, n_long=25)`;
    /// they come back as `result.records` (timestamp, name, value).
    #[pyo3(signature = (**values))]
    fn record(&mut self, values: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let Some(values) = values else {
            return Ok(());
        };
        for (key, value) in values.iter() {
            let name: String = key.extract()?;
            let value: f64 = value.extract().map_err(|_| {
                PyBacktestError::new_err(format!("record: value of '{name}' must be a number"))
            })?;
            let records = &mut self.records;
            let code = match records.index.get(&name) {
                Some(&code) => code,
                None => {
                    let code = records.names.len() as u32;
                    records.index.insert(name.clone(), code);
                    records.names.push(name);
                    code
                }
            };
            records.ts.push(self.ts);
            records.name.push(code);
            records.value.push(value);
        }
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Context(timestamp={}, cash={:.2}, equity={:.2}, open_positions={})",
            self.universe.time_text(py, self.ts),
            self.cash,
            self.equity,
            self.positions.iter().filter(|q| **q != 0.0).count()
        )
    }
}
