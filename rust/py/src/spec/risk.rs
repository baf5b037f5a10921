//! Risk rule specs -> core rules: the plain dicts the Python rule models produce
//! (`{"type": "stop_loss", "pct": 0.02, ...}`), or a Python `RiskRule` subclass instance
//! wrapped as [`PyRiskRule`]. An error names the rule and its parameter (`stop_loss.pct`).

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

use crate::dict::Spec;
use crate::errors::{Error, ErrorSlot};
use crate::features::FeatureGroups;
use crate::risk::PyRiskRule;
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
fn distance(d: &Spec<'_>, rule: &str) -> Result<Distance, BacktestError> {
    let pct = d.get::<f64>("pct")?;
    let amount = d.get::<f64>("amount")?;
    let feature = d.get::<String>("feature")?;
    match (pct, amount, feature) {
        (Some(p), None, None) => Ok(Distance::Percent(p)),
        (None, Some(a), None) => Ok(Distance::Absolute(a)),
        (None, None, Some(f)) => {
            let multiple = d.get::<f64>("multiple")?.unwrap_or(1.0);
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
        let d = Spec::root(d);
        let kind: String = d.req("type").map_err(|e| risk_err("rule", e))?;
        let rule = self.build_kind(&d, &kind).map_err(|e| risk_err(&kind, e))?;
        let Some(assets) = d
            .get::<Vec<String>>("assets")
            .map_err(|e| risk_err(&kind, e))?
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

    fn children(&self, d: &Spec<'_>, key: &str) -> Result<Vec<BoxedRule>, BacktestError> {
        match d.object(key) {
            None => Ok(Vec::new()),
            Some(list) => {
                let list = list
                    .cast::<PyList>()
                    .map_err(|_| BacktestError::config(&d.at(key), "expected a list of rules"))?;
                self.build_all(list)
            }
        }
    }

    fn build_kind(&self, d: &Spec<'_>, kind: &str) -> Result<BoxedRule, BacktestError> {
        let flag = |key: &str| d.get::<bool>(key).map(|v| v.unwrap_or(false));
        Ok(match kind {
            "stop_loss" => Box::new(StopLoss::new(distance(d, kind)?)?),
            "take_profit" => Box::new(TakeProfit::new(distance(d, kind)?)?),
            "trailing_stop" => {
                let mark = match d.get::<String>("mark")?.as_deref() {
                    None | Some("close") => TrailMark::Close,
                    Some("extreme") => TrailMark::Extreme,
                    Some(other) => {
                        return Err(BacktestError::config(
                            "mark",
                            format!("expected 'close' or 'extreme', got '{other}'"),
                        ))
                    }
                };
                let update = match d.get::<String>("update")?.as_deref() {
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
            "time_exit" => Box::new(TimeExit::with_sessions(
                d.get::<u64>("max_bars")?,
                d.get::<i64>("max_duration_ns")?,
                d.get::<u64>("max_sessions")?,
            )?),
            "breakeven_stop" => Box::new(BreakevenStop::new(
                d.req("trigger")?,
                d.get::<f64>("offset")?.unwrap_or(0.0),
            )?),
            "scaled_exit" => Box::new(ScaledExit::new(d.req("levels")?)?),
            "volatility_scaled_sizing" => Box::new(VolatilityScaledSizing::new(
                d.req::<String>("feature")?,
                d.req("risk_fraction")?,
                d.get::<f64>("multiple")?.unwrap_or(1.0),
                flag("returns")?,
            )?),
            "max_position_size" => {
                let limit = match (
                    d.get::<f64>("shares")?,
                    d.get::<f64>("notional")?,
                    d.get::<f64>("pct_equity")?,
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
            "max_positions" => Box::new(MaxPositions::new(d.req("max")?)?),
            "max_gross_exposure" => Box::new(MaxGrossExposure::new(d.req("max")?)?),
            "max_net_exposure" => Box::new(MaxNetExposure::new(d.req("max")?)?),
            "max_drawdown_halt" => Box::new(MaxDrawdownHalt::new(
                d.req("max_drawdown")?,
                flag("liquidate")?,
            )?),
            "daily_loss_limit" => {
                Box::new(DailyLossLimit::new(d.req("max_loss")?, flag("liquidate")?)?)
            }
            "scale_size" => Box::new(ScaleSize::new(d.req("factor")?)?),
            "regime" => Box::new(RegimeRule::new(
                d.req::<String>("feature")?,
                d.req("threshold")?,
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

/// Reads the `risk` list of a run (spec dicts or Python rules); `groups` tells Python rules
/// which features are market-wide. `None` or no rules: no risk manager.
pub fn risk_setup(
    rules: Option<&Bound<'_, PyList>>,
    universe: Arc<Universe>,
    groups: Arc<FeatureGroups>,
) -> Result<Option<RiskSetup>, Error> {
    let Some(specs) = rules.filter(|specs| !specs.is_empty()) else {
        return Ok(None);
    };
    let builder = RuleBuilder {
        universe,
        groups,
        error: ErrorSlot::default(),
    };
    let rules = builder.build_all(specs)?;
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
) -> Result<(), Error> {
    let builder = RuleBuilder {
        universe: Arc::new(Universe::new(py, asset_names, None)?),
        groups: Arc::new(FeatureGroups::default()),
        error: ErrorSlot::default(),
    };
    builder.build_all(rules)?;
    Ok(())
}
