//! The engine dict of `BacktestConfig.engine_dict()` -> [`EngineConfig`].
//!
//! The dict is nested like the pydantic sections (`{"initial_cash": ..., "execution": {...},
//! "commission": {...}, "slippage": {...}, "account": {...}}`), so every error names its
//! dotted location (`execution.mode`), derived from where the key sits.

use std::sync::Arc;

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::matching::{LimitFill, PathPolicy};
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{
    BacktestError, EngineConfig, ExecutionMode, ShareRounding, StopBasis, TargetSizing,
};
use pyo3::types::PyDict;
use pyo3::Bound;

use crate::dict::Spec;
use crate::errors::ErrorSlot;
use crate::slippage::PySlippage;
use crate::spec::account::account_rules;
use crate::universe::Universe;

/// Builds an [`EngineConfig`] from the engine dict, with the error slot of a custom Python
/// slippage model (where the exception that stopped the run is kept, to be chained as the
/// cause). `universe` names the assets for a custom model's `bar["asset"]`.
pub fn engine_config(
    d: &Bound<'_, PyDict>,
    universe: &Arc<Universe>,
) -> Result<(EngineConfig, Option<ErrorSlot>), BacktestError> {
    let root = Spec::root(d);
    let execution = root.section("execution")?;
    let account = root.section("account")?;
    let (slippage, slippage_error) = slippage_model(&root.section("slippage")?, universe)?;
    let config = EngineConfig {
        initial_cash: root.req("initial_cash")?,
        execution: execution_mode(&execution)?,
        sizing: target_sizing(&execution)?,
        rounding: share_rounding(&execution)?,
        commission: commission_model(&root.section("commission")?)?,
        slippage,
        allow_short: account.req("allow_short")?,
        account: account_rules(&account)?,
        borrow_rate_column: account.get("borrow_rate_column")?,
        funding_rate_column: account.get("funding_rate_column")?,
        stop_basis: stop_basis(&execution)?,
        path_policy: path_policy(&execution)?,
        limit_fill: limit_fill(&execution)?,
        max_volume_fraction: execution.get("max_volume_fraction")?,
    };
    config.validate()?;
    Ok((config, slippage_error))
}

fn execution_mode(execution: &Spec<'_>) -> Result<ExecutionMode, BacktestError> {
    match execution.req::<String>("mode")?.as_str() {
        "next_open" => Ok(ExecutionMode::NextOpen),
        "same_close" => Ok(ExecutionMode::SameClose),
        "next_close" => Ok(ExecutionMode::NextClose),
        other => Err(BacktestError::config(
            &execution.at("mode"),
            format!("unknown mode '{other}'"),
        )),
    }
}

fn target_sizing(execution: &Spec<'_>) -> Result<TargetSizing, BacktestError> {
    match execution.get::<String>("sizing")?.as_deref() {
        None | Some("decision") => Ok(TargetSizing::Decision),
        Some("fill") => Ok(TargetSizing::Fill),
        Some(other) => Err(BacktestError::config(
            &execution.at("sizing"),
            format!("expected 'decision' or 'fill', got '{other}'"),
        )),
    }
}

fn share_rounding(execution: &Spec<'_>) -> Result<ShareRounding, BacktestError> {
    match execution.req::<String>("share_rounding")?.as_str() {
        "fractional" => Ok(ShareRounding::Fractional),
        "integer" => Ok(ShareRounding::Integer),
        other => Err(BacktestError::config(
            &execution.at("share_rounding"),
            format!("unknown rounding '{other}'"),
        )),
    }
}

fn stop_basis(execution: &Spec<'_>) -> Result<StopBasis, BacktestError> {
    match execution.get::<String>("stop_basis")?.as_deref() {
        None | Some("fill") => Ok(StopBasis::Fill),
        Some("signal_close") => Ok(StopBasis::SignalClose),
        Some(other) => Err(BacktestError::config(
            &execution.at("stop_basis"),
            format!("expected 'fill' or 'signal_close', got '{other}'"),
        )),
    }
}

fn path_policy(execution: &Spec<'_>) -> Result<PathPolicy, BacktestError> {
    match execution.get::<String>("intrabar_path")?.as_deref() {
        None | Some("ohlc") => Ok(PathPolicy::OhlcWalk),
        Some("pessimistic") => Ok(PathPolicy::Pessimistic),
        Some("optimistic") => Ok(PathPolicy::Optimistic),
        Some(other) => Err(BacktestError::config(
            &execution.at("intrabar_path"),
            format!("unknown policy '{other}' (ohlc, pessimistic, optimistic)"),
        )),
    }
}

fn limit_fill(execution: &Spec<'_>) -> Result<LimitFill, BacktestError> {
    let through = execution.get_or("limit_through", 0.0)?;
    match execution.get::<String>("limit_fill")?.as_deref() {
        None | Some("touch") => Ok(LimitFill::Touch),
        Some("through_amount") => Ok(LimitFill::ThroughAmount(through)),
        Some("through_fraction") => Ok(LimitFill::ThroughFraction(through)),
        Some(other) => Err(BacktestError::config(
            &execution.at("limit_fill"),
            format!("unknown rule '{other}' (touch, through_amount, through_fraction)"),
        )),
    }
}

fn commission_model(commission: &Spec<'_>) -> Result<CommissionModel, BacktestError> {
    let rate: f64 = commission.req("rate")?;
    let amount: f64 = commission.req("amount")?;
    let minimum: f64 = commission.req("minimum")?;
    match commission.req::<String>("model")?.as_str() {
        "none" => Ok(CommissionModel::None),
        "percent" => Ok(CommissionModel::Percent { rate, minimum }),
        "per_share" => Ok(CommissionModel::PerShare { rate, minimum }),
        "per_order" => Ok(CommissionModel::PerOrder { amount, minimum }),
        other => Err(BacktestError::config(
            &commission.at("model"),
            format!("unknown model '{other}'"),
        )),
    }
}

/// The `slippage` section's model. A custom model is the Python object under `custom`; its
/// error slot is returned with it.
fn slippage_model(
    slippage: &Spec<'_>,
    universe: &Arc<Universe>,
) -> Result<(SlippageModel, Option<ErrorSlot>), BacktestError> {
    let number = |key: &str| slippage.get_or(key, 0.0);
    let column = |key: &str| slippage.get_or(key, String::new());
    let model = match slippage.req::<String>("model")?.as_str() {
        "none" => SlippageModel::None,
        "fixed" => SlippageModel::Fixed {
            amount: slippage.req("amount")?,
        },
        "percent" => SlippageModel::Percent {
            rate: slippage.req("rate")?,
        },
        "spread" => SlippageModel::spread(number("bps")?),
        "volume_share" => SlippageModel::VolumeShare {
            impact: number("impact")?,
            cap: number("cap")?,
        },
        "sqrt_impact" => SlippageModel::square_root_impact(
            number("k")?,
            column("sigma_column")?,
            column("adv_column")?,
        ),
        "custom" => {
            let Some(object) = slippage.object("custom") else {
                return Err(BacktestError::config(
                    &slippage.at("model"),
                    "'custom' needs a SlippageModel instance: Backtest(..., slippage_model=...)",
                ));
            };
            // The location is the `Backtest` argument the object came from.
            let (adapter, slot) = PySlippage::new(&object, universe.clone()).map_err(|err| {
                BacktestError::config("slippage_model", format!("unusable custom model: {err}"))
            })?;
            return Ok((SlippageModel::custom(adapter), Some(slot)));
        }
        other => {
            return Err(BacktestError::config(
                &slippage.at("model"),
                format!(
                    "unknown model '{other}' (none, fixed, percent, spread, volume_share, \
                     sqrt_impact, custom)"
                ),
            ))
        }
    };
    Ok((model, None))
}
