//! A Python `ml4t.backtest.RiskRule` subclass instance seen as a core [`RiskRule`]. Position
//! rules are called once per timestamp with every open position (`evaluate_batch`), taking the
//! GIL when the engine runs without it; an exception the rule raises is kept in the run's
//! [`ErrorSlot`] and chained as the cause of the `RiskRuleError` that stops the run.

use std::sync::Arc;

use ml4t_backtest_core::risk::{
    OrderCheck, PositionPlan, PositionView, RiskDecision, RiskEnv, RiskRule,
};
use ml4t_backtest_core::{BacktestError, MarketData};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySequence, PyTuple};

use crate::errors::{class_name, keep, ErrorSlot};
use crate::features::{FeatureGroups, Layout};
use crate::risk::objects::{Named, PortfolioView, PyOrderContext, PyRiskContext, PyRiskDecision};
use crate::universe::Universe;

/// A Python `RiskRule` subclass instance as a core rule.
pub struct PyRiskRule {
    rule: Py<PyAny>,
    name: String,
    evaluates: bool,
    checks: bool,
    /// The position hook the user wrote (`evaluate` or `evaluate_batch`), named in errors.
    hook: String,
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
        let hook = rule.call_method0("position_hook")?.extract::<String>()?;
        let required = rule.getattr("features")?.extract::<Vec<String>>()?;
        Ok(PyRiskRule {
            rule: rule.clone().unbind(),
            name,
            evaluates,
            checks,
            hook,
            required,
            universe,
            groups,
            layout: Layout::default(),
            error,
        })
    }

    /// Keeps a Python exception for the caller to chain, and describes it.
    fn fail(&self, py: Python<'_>, method: &str, err: PyErr) -> BacktestError {
        let kind = class_name(py, &err);
        let message = format!("raised {kind} in {}.{method}: {}", self.name, err.value(py));
        keep(&self.error, err);
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
            let fail = |e| self.fail(py, &self.hook, e);
            let portfolio = Py::new(py, PortfolioView::of(env.portfolio)).map_err(fail)?;
            let market = self.market(env);
            let contexts = PyList::empty(py);
            for view in positions {
                let ctx = self
                    .context(py, env, view, &portfolio, &market)
                    .map_err(|e| self.fail(py, &self.hook, e))?;
                contexts
                    .append(ctx)
                    .map_err(|e| self.fail(py, &self.hook, e))?;
            }
            let answers = self
                .rule
                .bind(py)
                .call_method1("evaluate_batch", (contexts,))
                .map_err(|e| self.fail(py, &self.hook, e))?;
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
