//! What a Python risk rule sees and returns: `RiskContext` (one open position), `OrderContext`
//! (a new order's opening part), `PortfolioView` (the account) and `RiskDecision`. The engine
//! builds the first three for each call; none can be built from Python, and a `RiskDecision`
//! only through its static constructors, which check their values (`RiskRuleError`).

use std::sync::Arc;

use ml4t_backtest_core::risk::{OrderCheck, PortfolioState, PositionState, RiskDecision};
use ml4t_backtest_core::types::ExitReason;
use ml4t_backtest_core::{AssetId, Ts};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::RiskRuleError;
use crate::universe::Universe;

/// Named feature values, turned into a dict on access.
#[derive(Debug, Clone, Default)]
pub(super) struct Named {
    pub(super) names: Arc<Vec<String>>,
    pub(super) values: Vec<f64>,
}

impl Named {
    fn dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.names.iter().zip(&self.values) {
            d.set_item(name, value)?;
        }
        Ok(d)
    }
}

/// The account at this bar's close, as risk rules see it.
#[pyclass(
    module = "ml4t.backtest._core",
    name = "PortfolioView",
    frozen,
    get_all
)]
#[derive(Debug, Clone)]
pub struct PortfolioView {
    /// Cash plus positions marked.
    pub equity: f64,
    /// Cash balance.
    pub cash: f64,
    /// Sum of |market values|.
    pub gross_exposure: f64,
    /// Sum of signed market values.
    pub net_exposure: f64,
    /// Highest equity at a close so far.
    pub peak_equity: f64,
    /// `1 - equity / peak_equity`.
    pub drawdown: f64,
    /// Equity at the start of the UTC day.
    pub day_start_equity: f64,
    /// Positions open.
    pub open_positions: usize,
}

impl PortfolioView {
    pub(super) fn of(p: &PortfolioState) -> Self {
        PortfolioView {
            equity: p.equity,
            cash: p.cash,
            gross_exposure: p.gross_exposure,
            net_exposure: p.net_exposure,
            peak_equity: p.peak_equity,
            drawdown: p.drawdown(),
            day_start_equity: p.day_start_equity,
            open_positions: p.open_positions,
        }
    }
}

#[pymethods]
impl PortfolioView {
    fn __repr__(&self) -> String {
        format!(
            "PortfolioView(equity={}, cash={}, gross_exposure={}, net_exposure={}, drawdown={})",
            self.equity, self.cash, self.gross_exposure, self.net_exposure, self.drawdown
        )
    }
}

/// One open position at this bar's close, as a Python risk rule sees it.
#[pyclass(module = "ml4t.backtest._core", name = "RiskContext", frozen)]
pub struct PyRiskContext {
    pub(super) asset: AssetId,
    pub(super) ts: Ts,
    pub(super) state: PositionState,
    pub(super) features: Named,
    pub(super) market: Named,
    pub(super) portfolio: Py<PortfolioView>,
    pub(super) universe: Arc<Universe>,
}

#[pymethods]
impl PyRiskContext {
    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.universe.name(py, self.asset)
    }
    /// Asset code.
    #[getter]
    fn asset_id(&self) -> u32 {
        self.asset
    }
    /// This bar's time.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.ts)
    }
    /// This bar's time in ns since the epoch.
    #[getter]
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
    /// Signed shares held.
    #[getter]
    fn quantity(&self) -> f64 {
        self.state.quantity
    }
    /// Average entry price.
    #[getter]
    fn entry_price(&self) -> f64 {
        self.state.entry_price
    }
    /// The price stop and target levels are measured from (config `execution.stop_basis`).
    #[getter]
    fn basis_price(&self) -> f64 {
        self.state.basis_price
    }
    /// Time of the first entry fill.
    #[getter]
    fn entry_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.state.entry_ts)
    }
    /// The asset's bars since the entry bar.
    #[getter]
    fn bars_held(&self) -> u64 {
        self.state.bars_held
    }
    /// `quantity * (close - entry_price)`.
    #[getter]
    fn unrealized_pnl(&self) -> f64 {
        self.state.unrealized_pnl
    }
    /// Highest bar high since entry.
    #[getter]
    fn high_water(&self) -> f64 {
        self.state.high_water
    }
    /// Lowest bar low since entry.
    #[getter]
    fn low_water(&self) -> f64 {
        self.state.low_water
    }
    /// Highest close since entry.
    #[getter]
    fn high_close(&self) -> f64 {
        self.state.high_close
    }
    /// Lowest close since entry.
    #[getter]
    fn low_close(&self) -> f64 {
        self.state.low_close
    }
    /// Best return so far (fraction of the entry price).
    #[getter]
    fn mfe(&self) -> f64 {
        self.state.mfe
    }
    /// Worst return so far.
    #[getter]
    fn mae(&self) -> f64 {
        self.state.mae
    }
    /// This bar's close.
    #[getter]
    fn close(&self) -> f64 {
        self.state.close
    }
    /// Take-profit level exits already filled for this position.
    #[getter]
    fn target_exits(&self) -> u32 {
        self.state.target_exits
    }
    /// True on the position's first evaluation (the entry bar's close).
    #[getter]
    fn is_new(&self) -> bool {
        self.state.evaluations == 0
    }
    /// This bar's per-asset features (signals and indicators), by name.
    #[getter]
    fn features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.features.dict(py)
    }
    /// This timestamp's market-wide features (the feed's context columns), by name.
    #[getter]
    fn market_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.market.dict(py)
    }
    /// The account.
    #[getter]
    fn portfolio(&self, py: Python<'_>) -> Py<PortfolioView> {
        self.portfolio.clone_ref(py)
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "RiskContext(asset={}, quantity={}, entry_price={}, close={}, bars_held={})",
            self.universe.name(py, self.asset),
            self.state.quantity,
            self.state.entry_price,
            self.state.close,
            self.state.bars_held
        )
    }
}

/// A new order's opening part before it is accepted, as a Python risk rule sees it.
#[pyclass(module = "ml4t.backtest._core", name = "OrderContext", frozen)]
pub struct PyOrderContext {
    pub(super) check: OrderCheck,
    pub(super) ts: Ts,
    pub(super) features: Named,
    pub(super) market: Named,
    pub(super) portfolio: Py<PortfolioView>,
    pub(super) universe: Arc<Universe>,
}

#[pymethods]
impl PyOrderContext {
    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.universe.name(py, self.check.asset)
    }
    /// Asset code.
    #[getter]
    fn asset_id(&self) -> u32 {
        self.check.asset
    }
    /// The decision time.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.universe.datetime(py, self.ts)
    }
    /// Signed shares that open or add to a position (the order's closing part removed).
    #[getter]
    fn quantity(&self) -> f64 {
        self.check.opening
    }
    /// Signed position (with pending orders) the opening part adds to.
    #[getter]
    fn position(&self) -> f64 {
        self.check.position
    }
    /// The price the order is valued at (its limit or stop, else the last close).
    #[getter]
    fn price(&self) -> f64 {
        self.check.price
    }
    /// One unit's value in the base currency at `price` (price × multiplier × FX rate).
    #[getter]
    fn unit_value(&self) -> f64 {
        self.check.unit_value
    }
    /// Positions open or being opened in this step.
    #[getter]
    fn open_positions(&self) -> usize {
        self.check.open_positions
    }
    /// Gross exposure after the orders accepted so far in this step.
    #[getter]
    fn gross_exposure(&self) -> f64 {
        self.check.gross_exposure
    }
    /// Net exposure after the orders accepted so far in this step.
    #[getter]
    fn net_exposure(&self) -> f64 {
        self.check.net_exposure
    }
    /// This bar's per-asset features (NaN when the asset has no bar now).
    #[getter]
    fn features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.features.dict(py)
    }
    /// This timestamp's market-wide features.
    #[getter]
    fn market_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.market.dict(py)
    }
    /// The account.
    #[getter]
    fn portfolio(&self, py: Python<'_>) -> Py<PortfolioView> {
        self.portfolio.clone_ref(py)
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "OrderContext(asset={}, quantity={}, position={}, price={})",
            self.universe.name(py, self.check.asset),
            self.check.opening,
            self.check.position,
            self.check.price
        )
    }
}

/// Exit reasons a rule may give.
const RULE_REASONS: [ExitReason; 5] = [
    ExitReason::StopLoss,
    ExitReason::TakeProfit,
    ExitReason::TrailingStop,
    ExitReason::TimeExit,
    ExitReason::RiskLimit,
];

fn reason_of(name: &str) -> PyResult<ExitReason> {
    ExitReason::from_name(name)
        .filter(|r| RULE_REASONS.contains(r))
        .ok_or_else(|| {
            RiskRuleError::new_err(format!(
                "RiskDecision.reason: expected one of stop_loss, take_profit, trailing_stop, \
                 time_exit, risk_limit, got '{name}'"
            ))
        })
}

fn check_number(field: &str, value: f64, rule: &str) -> PyResult<f64> {
    let ok = match rule {
        "positive" => value.is_finite() && value > 0.0,
        "fraction" => value.is_finite() && value > 0.0 && value <= 1.0,
        _ => value.is_finite() && value >= 0.0,
    };
    if ok {
        return Ok(value);
    }
    let expected = match rule {
        "positive" => "finite and > 0",
        "fraction" => "in (0, 1]",
        _ => "finite and >= 0",
    };
    Err(RiskRuleError::new_err(format!(
        "RiskDecision.{field}: must be {expected}, got {value}"
    )))
}

/// What a rule decides: build one with `RiskDecision.allow()`, `.reject()`, `.resize(q)`,
/// `.exit(fraction, reason)`, `.stop(level, reason)` or `.target(level, fraction, reason)`.
#[pyclass(module = "ml4t.backtest._core", name = "RiskDecision", frozen)]
#[derive(Debug, Clone)]
pub struct PyRiskDecision {
    pub(super) decision: RiskDecision,
    note: String,
}

#[pymethods]
impl PyRiskDecision {
    /// Nothing to do.
    #[staticmethod]
    fn allow() -> Self {
        PyRiskDecision {
            decision: RiskDecision::Allow,
            note: String::new(),
        }
    }
    /// Pre-trade: refuse the order's opening part (recorded as a `risk_limit` rejection).
    #[staticmethod]
    #[pyo3(signature = (note=String::new()), text_signature = "(note='')")]
    fn reject(note: String) -> Self {
        PyRiskDecision {
            decision: RiskDecision::Reject,
            note,
        }
    }
    /// Pre-trade: set the order's opening part to `quantity` shares (>= 0; 0 rejects).
    #[staticmethod]
    fn resize(quantity: f64) -> PyResult<Self> {
        let quantity = check_number("quantity", quantity, "non_negative")?;
        Ok(PyRiskDecision {
            decision: RiskDecision::Resize(quantity),
            note: String::new(),
        })
    }
    /// Position: exit `fraction` of it at the next fill opportunity.
    #[staticmethod]
    #[pyo3(signature = (fraction=1.0, reason="risk_limit"))]
    fn exit(fraction: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Exit {
                fraction: check_number("fraction", fraction, "fraction")?,
                reason: reason_of(reason)?,
            },
            note: String::new(),
        })
    }
    /// Position: a protective stop at `level`, live from the next bar.
    #[staticmethod]
    #[pyo3(signature = (level, reason="stop_loss"))]
    fn stop(level: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Stop {
                level: check_number("level", level, "positive")?,
                reason: reason_of(reason)?,
            },
            note: String::new(),
        })
    }
    /// Position: a profit target at `level` exiting `fraction`, live from the next bar.
    #[staticmethod]
    #[pyo3(signature = (level, fraction=1.0, reason="take_profit"))]
    fn target(level: f64, fraction: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Target {
                level: check_number("level", level, "positive")?,
                fraction: check_number("fraction", fraction, "fraction")?,
                reason: reason_of(reason)?,
            },
            note: String::new(),
        })
    }
    /// `allow`, `reject`, `resize`, `exit`, `stop`, `target` (or `trail` for a built-in
    /// intrabar trailing stop).
    #[getter]
    fn kind(&self) -> &'static str {
        match self.decision {
            RiskDecision::Allow => "allow",
            RiskDecision::Reject => "reject",
            RiskDecision::Resize(_) => "resize",
            RiskDecision::Exit { .. } => "exit",
            RiskDecision::Stop { .. } => "stop",
            RiskDecision::Trail { .. } => "trail",
            RiskDecision::Target { .. } => "target",
        }
    }
    /// The stop or target level (None otherwise).
    #[getter]
    fn level(&self) -> Option<f64> {
        match self.decision {
            RiskDecision::Stop { level, .. } | RiskDecision::Target { level, .. } => Some(level),
            _ => None,
        }
    }
    /// The exit or target fraction (None otherwise).
    #[getter]
    fn fraction(&self) -> Option<f64> {
        match self.decision {
            RiskDecision::Exit { fraction, .. } | RiskDecision::Target { fraction, .. } => {
                Some(fraction)
            }
            _ => None,
        }
    }
    /// The resize quantity (None otherwise).
    #[getter]
    fn quantity(&self) -> Option<f64> {
        match self.decision {
            RiskDecision::Resize(q) => Some(q),
            _ => None,
        }
    }
    /// The exit reason recorded on the trade (None for pre-trade decisions).
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        match self.decision {
            RiskDecision::Exit { reason, .. }
            | RiskDecision::Stop { reason, .. }
            | RiskDecision::Trail { reason, .. }
            | RiskDecision::Target { reason, .. } => Some(ExitReason::NAMES[reason as usize]),
            _ => None,
        }
    }
    /// A free-text note (given to `reject`).
    #[getter]
    fn note(&self) -> &str {
        &self.note
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.decision == other.decision
    }
    fn __repr__(&self) -> String {
        format!("RiskDecision.{:?}", self.decision)
    }
}
