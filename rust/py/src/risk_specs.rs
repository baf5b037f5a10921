//! Builds core risk rules from the plain dicts the Python rule models produce
//! (`{"type": "stop_loss", "pct": 0.02, ...}`), or wraps a Python `RiskRule` subclass instance.

use std::sync::Arc;

use ml4t_backtest_core::risk::rules::{
    AllOf, AnyOf, BreakevenStop, DailyLossLimit, Distance, ForAssets, MaxDrawdownHalt,
    MaxGrossExposure, MaxNetExposure, MaxPositionSize, MaxPositions, PositionLimit, RegimeRule,
    RuleChain, ScaleSize, ScaledExit, StopLoss, TakeProfit, TimeExit, TrailMark, TrailUpdate,
    TrailingStop, VolatilityScaledSizing,
};
use ml4t_backtest_core::risk::BoxedRule;
use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::config::{optional, required};
use crate::risk_adapter::{FeatureGroups, PyRiskRule};
use crate::slippage::ErrorSlot;
use crate::universe::Universe;

/// What building rules needs besides the specs.
pub struct RuleBuilder {
    /// Asset names and datetime conversion (scopes and Python rules).
    pub universe: Arc<Universe>,
    /// Which feature columns are market-wide.
    pub groups: Arc<FeatureGroups>,
    /// Where a Python rule leaves the exception that stopped the run.
    pub error: ErrorSlot,
}

fn risk_err(rule: &str, err: BacktestError) -> BacktestError {
    match err {
        BacktestError::Config {
            field,
            rule: detail,
        } => BacktestError::risk(&format!("{rule}.{field}"), detail),
        other => other,
    }
}

/// The distance of a stop, target or trailing rule: `pct`, `amount`, or `feature` × `multiple`.
fn distance(d: &Bound<'_, PyDict>, rule: &str) -> Result<Distance, BacktestError> {
    let pct = optional::<f64>(d, "pct")?;
    let amount = optional::<f64>(d, "amount")?;
    let feature = optional::<String>(d, "feature")?;
    match (pct, amount, feature) {
        (Some(p), None, None) => Ok(Distance::Percent(p)),
        (None, Some(a), None) => Ok(Distance::Absolute(a)),
        (None, None, Some(f)) => {
            let multiple = optional::<f64>(d, "multiple")?.unwrap_or(1.0);
            Ok(Distance::feature(f, multiple))
        }
        _ => Err(BacktestError::risk(
            rule,
            "give exactly one of pct, amount or feature (with multiple)",
        )),
    }
}

impl RuleBuilder {
    /// Builds every rule of `specs` in order.
    pub fn build_all(&self, specs: &Bound<'_, PyList>) -> Result<Vec<BoxedRule>, BacktestError> {
        specs.iter().map(|spec| self.build(&spec)).collect()
    }

    /// Builds one rule: a spec dict, or a Python `RiskRule` instance.
    pub fn build(&self, spec: &Bound<'_, PyAny>) -> Result<BoxedRule, BacktestError> {
        let Ok(d) = spec.cast::<PyDict>() else {
            let rule = PyRiskRule::new(
                spec,
                self.universe.clone(),
                self.groups.clone(),
                self.error.clone(),
            )
            .map_err(|err| BacktestError::risk("custom", err.to_string()))?;
            return Ok(Box::new(rule));
        };
        let kind: String = required(d, "type").map_err(|e| risk_err("rule", e))?;
        let rule = self.build_kind(d, &kind).map_err(|e| risk_err(&kind, e))?;
        let Some(assets) = optional::<Vec<String>>(d, "assets").map_err(|e| risk_err(&kind, e))?
        else {
            return Ok(rule);
        };
        let ids = assets
            .iter()
            .map(|name| {
                self.universe.code(name).ok_or_else(|| {
                    BacktestError::risk(
                        &format!("{kind}.assets"),
                        format!("unknown asset '{name}' (not in the feed)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(ForAssets::new(ids, rule)?))
    }

    fn children(&self, d: &Bound<'_, PyDict>, key: &str) -> Result<Vec<BoxedRule>, BacktestError> {
        match d.get_item(key).ok().flatten() {
            None => Ok(Vec::new()),
            Some(list) if list.is_none() => Ok(Vec::new()),
            Some(list) => {
                let list = list
                    .cast::<PyList>()
                    .map_err(|_| BacktestError::config(key, "expected a list of rules"))?;
                self.build_all(list)
            }
        }
    }

    fn build_kind(&self, d: &Bound<'_, PyDict>, kind: &str) -> Result<BoxedRule, BacktestError> {
        let flag = |key: &str| optional::<bool>(d, key).map(|v| v.unwrap_or(false));
        Ok(match kind {
            "stop_loss" => Box::new(StopLoss::new(distance(d, kind)?)?),
            "take_profit" => Box::new(TakeProfit::new(distance(d, kind)?)?),
            "trailing_stop" => {
                let mark = match optional::<String>(d, "mark")?.as_deref() {
                    None | Some("close") => TrailMark::Close,
                    Some("extreme") => TrailMark::Extreme,
                    Some(other) => {
                        return Err(BacktestError::config(
                            "mark",
                            format!("expected 'close' or 'extreme', got '{other}'"),
                        ))
                    }
                };
                let update = match optional::<String>(d, "update")?.as_deref() {
                    None | Some("lagged") => TrailUpdate::Lagged,
                    Some("intrabar") => TrailUpdate::Intrabar,
                    Some(other) => {
                        return Err(BacktestError::config(
                            "update",
                            format!("expected 'lagged' or 'intrabar', got '{other}'"),
                        ))
                    }
                };
                Box::new(TrailingStop::new(distance(d, kind)?, mark, update)?)
            }
            "time_exit" => Box::new(TimeExit::new(
                optional::<u64>(d, "max_bars")?,
                optional::<i64>(d, "max_duration_ns")?,
            )?),
            "breakeven_stop" => Box::new(BreakevenStop::new(
                required(d, "trigger")?,
                optional::<f64>(d, "offset")?.unwrap_or(0.0),
            )?),
            "scaled_exit" => Box::new(ScaledExit::new(required(d, "levels")?)?),
            "volatility_scaled_sizing" => Box::new(VolatilityScaledSizing::new(
                required::<String>(d, "feature")?,
                required(d, "risk_fraction")?,
                optional::<f64>(d, "multiple")?.unwrap_or(1.0),
                flag("returns")?,
            )?),
            "max_position_size" => {
                let limit = match (
                    optional::<f64>(d, "shares")?,
                    optional::<f64>(d, "notional")?,
                    optional::<f64>(d, "pct_equity")?,
                ) {
                    (Some(v), None, None) => PositionLimit::Shares(v),
                    (None, Some(v), None) => PositionLimit::Notional(v),
                    (None, None, Some(v)) => PositionLimit::EquityFraction(v),
                    _ => {
                        return Err(BacktestError::risk(
                            kind,
                            "give exactly one of shares, notional or pct_equity",
                        ))
                    }
                };
                Box::new(MaxPositionSize::new(limit)?)
            }
            "max_positions" => Box::new(MaxPositions::new(required(d, "max")?)?),
            "max_gross_exposure" => Box::new(MaxGrossExposure::new(required(d, "max")?)?),
            "max_net_exposure" => Box::new(MaxNetExposure::new(required(d, "max")?)?),
            "max_drawdown_halt" => Box::new(MaxDrawdownHalt::new(
                required(d, "max_drawdown")?,
                flag("liquidate")?,
            )?),
            "daily_loss_limit" => Box::new(DailyLossLimit::new(
                required(d, "max_loss")?,
                flag("liquidate")?,
            )?),
            "scale_size" => Box::new(ScaleSize::new(required(d, "factor")?)?),
            "regime" => Box::new(RegimeRule::new(
                required::<String>(d, "feature")?,
                required(d, "threshold")?,
                self.children(d, "above")?,
                self.children(d, "below")?,
            )?),
            "rule_chain" => Box::new(RuleChain::new(self.children(d, "rules")?)?),
            "any_of" => Box::new(AnyOf::new(self.children(d, "rules")?)?),
            "all_of" => Box::new(AllOf::new(self.children(d, "rules")?)?),
            other => {
                return Err(BacktestError::risk(
                    other,
                    "unknown rule type (see ml4t.backtest.risk)",
                ))
            }
        })
    }
}

/// The rules of a run and the slot their Python exceptions land in.
pub struct RiskSetup {
    /// The rules, in order.
    pub rules: Vec<BoxedRule>,
    /// The exception a Python rule raised, if any.
    pub error: ErrorSlot,
}

/// Reads the `risk` dict of a run: `rules` (specs or Python rules); `groups` tells Python
/// rules which features are market-wide. `None` or no rules: no risk manager.
pub fn risk_setup(
    py: Python<'_>,
    risk: Option<&Bound<'_, PyDict>>,
    universe: Arc<Universe>,
    groups: Arc<FeatureGroups>,
) -> PyResult<Option<RiskSetup>> {
    let Some(risk) = risk else {
        return Ok(None);
    };
    let to_err = |e: BacktestError| crate::errors::to_py_err(py, &e);
    let Some(specs) = risk.get_item("rules")? else {
        return Ok(None);
    };
    let specs = specs.cast::<PyList>().map_err(|_| {
        crate::errors::python_error(py, "RiskRuleError", "risk: expected a list of rules".into())
    })?;
    if specs.is_empty() {
        return Ok(None);
    }
    let builder = RuleBuilder {
        universe,
        groups,
        error: ErrorSlot::default(),
    };
    let rules = builder.build_all(specs).map_err(to_err)?;
    Ok(Some(RiskSetup {
        rules,
        error: builder.error,
    }))
}

/// Builds `rules` (as `Backtest` would) and raises `RiskRuleError` for the first bad one, so
/// that a bad parameter fails when the backtest is built, not midway through the run.
#[pyfunction]
pub fn check_risk_rules(
    py: Python<'_>,
    rules: &Bound<'_, PyList>,
    asset_names: Vec<String>,
) -> PyResult<()> {
    let universe = Arc::new(Universe::new(py, asset_names, py.None()));
    let builder = RuleBuilder {
        universe,
        groups: Arc::new(FeatureGroups::default()),
        error: ErrorSlot::default(),
    };
    builder
        .build_all(rules)
        .map(drop)
        .map_err(|e| crate::errors::to_py_err(py, &e))
}
