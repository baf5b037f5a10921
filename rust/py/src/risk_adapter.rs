//! Python risk rules: a `ml4t.backtest.RiskRule` subclass instance seen as a core
//! [`RiskRule`], and the objects it sees (`RiskContext`, `OrderContext`, `PortfolioView`) and
//! returns (`RiskDecision`). Position rules are called once per timestamp with every open
//! position (`evaluate_batch`), taking the GIL when the engine runs without it.

use std::sync::{Arc, PoisonError};

use ml4t_backtest_core::risk::{
    OrderCheck, PortfolioState, PositionPlan, PositionState, PositionView, RiskDecision, RiskEnv,
    RiskRule,
};
use ml4t_backtest_core::types::ExitReason;
use ml4t_backtest_core::{AssetId, BacktestError, MarketData, Ts};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySequence, PyTuple};

use crate::errors::python_error;
use crate::slippage::ErrorSlot;
use crate::universe::Universe;

/// How the feed's feature columns are grouped (its `FeatureProvider`): market-wide columns
/// (the `context` frame) and indicator columns; every other feature column is a per-asset
/// signal.
#[derive(Debug, Default)]
pub struct FeatureGroups {
    /// Names of the market-wide columns.
    pub market: Vec<String>,
    /// Names of the indicator columns.
    pub indicators: Vec<String>,
}

impl FeatureGroups {
    /// Reads `{"context": [...], "indicators": [...]}` (missing keys: empty).
    pub fn from_dict(d: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let list = |key: &str| -> PyResult<Vec<String>> {
            match d.map(|d| d.get_item(key)).transpose()?.flatten() {
                Some(v) if !v.is_none() => v.extract(),
                _ => Ok(Vec::new()),
            }
        };
        Ok(FeatureGroups {
            market: list("context")?,
            indicators: list("indicators")?,
        })
    }
}

/// Feature names and their column positions in the current chunk.
#[derive(Debug, Default, Clone)]
struct Layout {
    asset_names: Arc<Vec<String>>,
    asset_columns: Vec<usize>,
    market_names: Arc<Vec<String>>,
    market_columns: Vec<usize>,
}

impl Layout {
    fn of(data: &MarketData, groups: &FeatureGroups) -> Self {
        let mut layout = Layout::default();
        let (mut asset_names, mut market_names) = (Vec::new(), Vec::new());
        for (pos, name) in data.feature_names().iter().enumerate() {
            if groups.market.iter().any(|m| m == name) {
                market_names.push(name.clone());
                layout.market_columns.push(pos);
            } else {
                asset_names.push(name.clone());
                layout.asset_columns.push(pos);
            }
        }
        layout.asset_names = Arc::new(asset_names);
        layout.market_names = Arc::new(market_names);
        layout
    }

    fn asset_values(&self, data: &MarketData, row: Option<usize>) -> Vec<f64> {
        self.asset_columns
            .iter()
            .map(|&c| row.map_or(f64::NAN, |r| data.feature_at(c)[r]))
            .collect()
    }

    fn market_values(&self, data: &MarketData, row: usize) -> Vec<f64> {
        self.market_columns
            .iter()
            .map(|&c| data.feature_at(c)[row])
            .collect()
    }
}

/// Named feature values, turned into a dict on access.
#[derive(Debug, Clone, Default)]
struct Named {
    names: Arc<Vec<String>>,
    values: Vec<f64>,
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
    fn of(p: &PortfolioState) -> Self {
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
    asset: AssetId,
    ts: Ts,
    state: PositionState,
    features: Named,
    market: Named,
    portfolio: Py<PortfolioView>,
    universe: Arc<Universe>,
}

#[pymethods]
impl PyRiskContext {
    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyString> {
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
    check: OrderCheck,
    ts: Ts,
    features: Named,
    market: Named,
    portfolio: Py<PortfolioView>,
    universe: Arc<Universe>,
}

#[pymethods]
impl PyOrderContext {
    /// Asset name.
    #[getter]
    fn asset<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyString> {
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

fn reason_of(py: Python<'_>, name: &str) -> PyResult<ExitReason> {
    ExitReason::from_name(name)
        .filter(|r| RULE_REASONS.contains(r))
        .ok_or_else(|| {
            python_error(
                py,
                "RiskRuleError",
                format!(
                    "RiskDecision.reason: expected one of stop_loss, take_profit, trailing_stop, \
                     time_exit, risk_limit, got '{name}'"
                ),
            )
        })
}

fn check_number(py: Python<'_>, field: &str, value: f64, rule: &str) -> PyResult<f64> {
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
    Err(python_error(
        py,
        "RiskRuleError",
        format!("RiskDecision.{field}: must be {expected}, got {value}"),
    ))
}

/// What a rule decides: build one with `RiskDecision.allow()`, `.reject()`, `.resize(q)`,
/// `.exit(fraction, reason)`, `.stop(level, reason)` or `.target(level, fraction, reason)`.
#[pyclass(module = "ml4t.backtest._core", name = "RiskDecision", frozen)]
#[derive(Debug, Clone)]
pub struct PyRiskDecision {
    decision: RiskDecision,
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
    #[pyo3(signature = (note=String::new()))]
    fn reject(note: String) -> Self {
        PyRiskDecision {
            decision: RiskDecision::Reject,
            note,
        }
    }
    /// Pre-trade: set the order's opening part to `quantity` shares (>= 0; 0 rejects).
    #[staticmethod]
    fn resize(py: Python<'_>, quantity: f64) -> PyResult<Self> {
        let quantity = check_number(py, "quantity", quantity, "non_negative")?;
        Ok(PyRiskDecision {
            decision: RiskDecision::Resize(quantity),
            note: String::new(),
        })
    }
    /// Position: exit `fraction` of it at the next fill opportunity.
    #[staticmethod]
    #[pyo3(signature = (fraction=1.0, reason="risk_limit"))]
    fn exit(py: Python<'_>, fraction: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Exit {
                fraction: check_number(py, "fraction", fraction, "fraction")?,
                reason: reason_of(py, reason)?,
            },
            note: String::new(),
        })
    }
    /// Position: a protective stop at `level`, live from the next bar.
    #[staticmethod]
    #[pyo3(signature = (level, reason="stop_loss"))]
    fn stop(py: Python<'_>, level: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Stop {
                level: check_number(py, "level", level, "positive")?,
                reason: reason_of(py, reason)?,
            },
            note: String::new(),
        })
    }
    /// Position: a profit target at `level` exiting `fraction`, live from the next bar.
    #[staticmethod]
    #[pyo3(signature = (level, fraction=1.0, reason="take_profit"))]
    fn target(py: Python<'_>, level: f64, fraction: f64, reason: &str) -> PyResult<Self> {
        Ok(PyRiskDecision {
            decision: RiskDecision::Target {
                level: check_number(py, "level", level, "positive")?,
                fraction: check_number(py, "fraction", fraction, "fraction")?,
                reason: reason_of(py, reason)?,
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

/// A Python `RiskRule` subclass instance as a core rule.
pub struct PyRiskRule {
    rule: Py<PyAny>,
    name: String,
    evaluates: bool,
    checks: bool,
    required: Vec<String>,
    universe: Arc<Universe>,
    groups: Arc<FeatureGroups>,
    layout: Layout,
    error: ErrorSlot,
}

impl PyRiskRule {
    /// Wraps `rule`; asks it once which hooks it implements and which features it needs.
    pub fn new(
        rule: &Bound<'_, PyAny>,
        universe: Arc<Universe>,
        groups: Arc<FeatureGroups>,
        error: ErrorSlot,
    ) -> PyResult<Self> {
        let name = rule.get_type().name()?.to_string();
        let evaluates = rule
            .call_method0("evaluates_positions")?
            .extract::<bool>()?;
        let checks = rule.call_method0("checks_orders")?.extract::<bool>()?;
        let required = rule.getattr("features")?.extract::<Vec<String>>()?;
        Ok(PyRiskRule {
            rule: rule.clone().unbind(),
            name,
            evaluates,
            checks,
            required,
            universe,
            groups,
            layout: Layout::default(),
            error,
        })
    }

    /// Keeps a Python exception for the caller to chain, and describes it.
    fn fail(&self, py: Python<'_>, method: &str, err: PyErr) -> BacktestError {
        let kind = err
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".to_string());
        let message = format!("raised {kind} in {}.{method}: {}", self.name, err.value(py));
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        BacktestError::risk(&self.name, message)
    }

    fn context(
        &self,
        py: Python<'_>,
        env: &RiskEnv,
        view: &PositionView,
        portfolio: &Py<PortfolioView>,
        market: &Named,
    ) -> PyResult<Py<PyRiskContext>> {
        Py::new(
            py,
            PyRiskContext {
                asset: view.asset,
                ts: env.ts,
                state: view.state,
                features: Named {
                    names: self.layout.asset_names.clone(),
                    values: self.layout.asset_values(env.data, Some(view.row)),
                },
                market: market.clone(),
                portfolio: portfolio.clone_ref(py),
                universe: self.universe.clone(),
            },
        )
    }

    fn market(&self, env: &RiskEnv) -> Named {
        Named {
            names: self.layout.market_names.clone(),
            values: self.layout.market_values(env.data, env.market_row),
        }
    }

    /// Folds a rule's answer (None, a decision, or a list/tuple of decisions) into `plan`.
    fn apply(
        &self,
        answer: &Bound<'_, PyAny>,
        plan: &mut PositionPlan,
        method: &str,
    ) -> Result<bool, BacktestError> {
        let wrong = |what: &Bound<'_, PyAny>| {
            BacktestError::risk(
                &self.name,
                format!(
                    "{}.{method} must return a RiskDecision, a list of them or None, got {}",
                    self.name,
                    what.get_type()
                ),
            )
        };
        if answer.is_none() {
            return Ok(false);
        }
        if let Ok(decision) = answer.cast::<PyRiskDecision>() {
            let decision = decision.get().decision;
            plan.apply(decision);
            return Ok(decision.triggered());
        }
        // Only a list or a tuple, and of decisions: a str is a sequence too (of itself).
        let items = if let Ok(list) = answer.cast::<PyList>() {
            list.iter().collect::<Vec<_>>()
        } else if let Ok(tuple) = answer.cast::<PyTuple>() {
            tuple.iter().collect::<Vec<_>>()
        } else {
            return Err(wrong(answer));
        };
        let mut triggered = false;
        for item in &items {
            if item.is_none() {
                continue;
            }
            let decision = item.cast::<PyRiskDecision>().map_err(|_| wrong(item))?;
            let decision = decision.get().decision;
            plan.apply(decision);
            triggered |= decision.triggered();
        }
        Ok(triggered)
    }
}

impl RiskRule for PyRiskRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, data: &MarketData) -> Result<(), BacktestError> {
        for feature in &self.required {
            if data.feature_position(feature).is_none() {
                return Err(BacktestError::risk(
                    &format!("{}.features", self.name),
                    format!("the feed has no feature column '{feature}'"),
                ));
            }
        }
        self.layout = Layout::of(data, &self.groups);
        Ok(())
    }

    fn evaluates_positions(&self) -> bool {
        self.evaluates
    }

    fn checks_orders(&self) -> bool {
        self.checks
    }

    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool, BacktestError> {
        Python::attach(|py| {
            let portfolio = Py::new(py, PortfolioView::of(env.portfolio))
                .map_err(|e| self.fail(py, "evaluate", e))?;
            let market = self.market(env);
            let ctx = self
                .context(py, env, view, &portfolio, &market)
                .map_err(|e| self.fail(py, "evaluate", e))?;
            let answer = self
                .rule
                .bind(py)
                .call_method1("evaluate", (ctx,))
                .map_err(|e| self.fail(py, "evaluate", e))?;
            self.apply(&answer, plan, "evaluate")
        })
    }

    fn evaluate_all(
        &mut self,
        env: &RiskEnv,
        positions: &[PositionView],
        plans: &mut [PositionPlan],
    ) -> Result<(), BacktestError> {
        if positions.is_empty() {
            return Ok(());
        }
        Python::attach(|py| {
            let fail = |e| self.fail(py, "evaluate_batch", e);
            let portfolio = Py::new(py, PortfolioView::of(env.portfolio)).map_err(fail)?;
            let market = self.market(env);
            let contexts = PyList::empty(py);
            for view in positions {
                let ctx = self
                    .context(py, env, view, &portfolio, &market)
                    .map_err(|e| self.fail(py, "evaluate_batch", e))?;
                contexts
                    .append(ctx)
                    .map_err(|e| self.fail(py, "evaluate_batch", e))?;
            }
            let answers = self
                .rule
                .bind(py)
                .call_method1("evaluate_batch", (contexts,))
                .map_err(|e| self.fail(py, "evaluate_batch", e))?;
            let answers = answers.cast::<PySequence>().map_err(|_| {
                BacktestError::risk(
                    &self.name,
                    format!("{}.evaluate_batch must return a list", self.name),
                )
            })?;
            let n = answers.len().unwrap_or(usize::MAX);
            if n != positions.len() {
                return Err(BacktestError::risk(
                    &self.name,
                    format!(
                        "{}.evaluate_batch returned {n} answers for {} positions",
                        self.name,
                        positions.len()
                    ),
                ));
            }
            for (i, plan) in plans.iter_mut().enumerate() {
                let answer = answers
                    .get_item(i)
                    .map_err(|e| self.fail(py, "evaluate_batch", e))?;
                self.apply(&answer, plan, "evaluate_batch")?;
            }
            Ok(())
        })
    }

    fn check_order(
        &mut self,
        env: &RiskEnv,
        order: &OrderCheck,
    ) -> Result<RiskDecision, BacktestError> {
        Python::attach(|py| {
            let portfolio = Py::new(py, PortfolioView::of(env.portfolio))
                .map_err(|e| self.fail(py, "check_order", e))?;
            let ctx = PyOrderContext {
                check: *order,
                ts: env.ts,
                features: Named {
                    names: self.layout.asset_names.clone(),
                    values: self.layout.asset_values(env.data, order.row),
                },
                market: self.market(env),
                portfolio,
                universe: self.universe.clone(),
            };
            let answer = self
                .rule
                .bind(py)
                .call_method1("check_order", (ctx,))
                .map_err(|e| self.fail(py, "check_order", e))?;
            if answer.is_none() {
                return Ok(RiskDecision::Allow);
            }
            match answer.cast::<PyRiskDecision>() {
                Ok(d) => match d.get().decision {
                    decision @ (RiskDecision::Allow
                    | RiskDecision::Reject
                    | RiskDecision::Resize(_)) => Ok(decision),
                    other => Err(BacktestError::risk(
                        &self.name,
                        format!(
                            "{}.check_order must return allow, reject or resize, got {other:?}",
                            self.name
                        ),
                    )),
                },
                Err(_) => Err(BacktestError::risk(
                    &self.name,
                    format!(
                        "{}.check_order must return a RiskDecision, got {}",
                        self.name,
                        answer.get_type()
                    ),
                )),
            }
        })
    }
}
