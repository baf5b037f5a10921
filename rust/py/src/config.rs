//! Reads the engine configuration and built-in strategy specs from the plain dicts that the
//! Python side produces from its pydantic models.

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::matching::{LimitFill, PathPolicy};
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy, TopKStrategy};
use ml4t_backtest_core::{
    BacktestError, EngineConfig, ExecutionMode, ShareRounding, StopBasis, Strategy,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::slippage::{ErrorSlot, PySlippage};

pub(crate) fn required<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
) -> Result<T, BacktestError> {
    let value = d
        .get_item(key)
        .ok()
        .flatten()
        .ok_or_else(|| BacktestError::config(key, "missing"))?;
    value.extract::<T>().map_err(|err| {
        BacktestError::config(key, format!("wrong type: {}", Into::<PyErr>::into(err)))
    })
}

pub(crate) fn optional<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
) -> Result<Option<T>, BacktestError> {
    optional_at(d, key, key)
}

/// The value under `key` (`None` when absent or None); a wrong type is a config error at
/// `field` (the user-facing location, e.g. `account.type` for `account_type`).
pub(crate) fn optional_at<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
    field: &str,
) -> Result<Option<T>, BacktestError> {
    match d.get_item(key).ok().flatten() {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v.extract::<T>().map(Some).map_err(|err| {
            BacktestError::config(field, format!("wrong type: {}", Into::<PyErr>::into(err)))
        }),
    }
}

/// The slippage model of the engine dict (`slippage_*` keys). A custom model is the Python
/// object under `slippage_custom` (with asset names under `slippage_assets`); its error slot
/// is returned with it.
fn slippage_model(
    d: &Bound<'_, PyDict>,
) -> Result<(SlippageModel, Option<ErrorSlot>), BacktestError> {
    let number = |key: &str| optional::<f64>(d, key).map(|v| v.unwrap_or(0.0));
    let column = |key: &str| optional::<String>(d, key).map(Option::unwrap_or_default);
    let model = match required::<String>(d, "slippage_model")?.as_str() {
        "none" => SlippageModel::None,
        "fixed" => SlippageModel::Fixed {
            amount: required(d, "slippage_amount")?,
        },
        "percent" => SlippageModel::Percent {
            rate: required(d, "slippage_rate")?,
        },
        "spread" => SlippageModel::spread(number("slippage_bps")?),
        "volume_share" => SlippageModel::VolumeShare {
            impact: number("slippage_impact")?,
            cap: number("slippage_cap")?,
        },
        "sqrt_impact" => SlippageModel::square_root_impact(
            number("slippage_k")?,
            column("slippage_sigma_column")?,
            column("slippage_adv_column")?,
        ),
        "custom" => {
            let Some(object) = d
                .get_item("slippage_custom")
                .ok()
                .flatten()
                .filter(|o| !o.is_none())
            else {
                return Err(BacktestError::config(
                    "slippage.model",
                    "'custom' needs a SlippageModel instance: Backtest(..., slippage_model=...)",
                ));
            };
            let assets = optional::<Vec<String>>(d, "slippage_assets")?;
            let (adapter, slot) = PySlippage::new(&object, assets).map_err(|err| {
                BacktestError::config("slippage_model", format!("unusable custom model: {err}"))
            })?;
            return Ok((SlippageModel::custom(adapter), Some(slot)));
        }
        other => {
            return Err(BacktestError::config(
                "slippage.model",
                format!(
                    "unknown model '{other}' (none, fixed, percent, spread, volume_share, \
                     sqrt_impact, custom)"
                ),
            ))
        }
    };
    Ok((model, None))
}

/// Builds an [`EngineConfig`] from the flat engine dict of `BacktestConfig.engine_dict()`, with
/// the error slot of a custom Python slippage model (where the exception that stopped the run
/// is kept, to be chained as the cause).
pub fn engine_config(
    d: &Bound<'_, PyDict>,
) -> Result<(EngineConfig, Option<ErrorSlot>), BacktestError> {
    let execution = match required::<String>(d, "execution_mode")?.as_str() {
        "next_open" => ExecutionMode::NextOpen,
        "same_close" => ExecutionMode::SameClose,
        other => {
            return Err(BacktestError::config(
                "execution.mode",
                format!("unknown mode '{other}'"),
            ))
        }
    };
    let rounding = match required::<String>(d, "share_rounding")?.as_str() {
        "fractional" => ShareRounding::Fractional,
        "integer" => ShareRounding::Integer,
        other => {
            return Err(BacktestError::config(
                "execution.share_rounding",
                format!("unknown rounding '{other}'"),
            ))
        }
    };
    let rate: f64 = required(d, "commission_rate")?;
    let amount: f64 = required(d, "commission_amount")?;
    let minimum: f64 = required(d, "commission_minimum")?;
    let commission = match required::<String>(d, "commission_model")?.as_str() {
        "none" => CommissionModel::None,
        "percent" => CommissionModel::Percent { rate, minimum },
        "per_share" => CommissionModel::PerShare { rate, minimum },
        "per_order" => CommissionModel::PerOrder { amount, minimum },
        other => {
            return Err(BacktestError::config(
                "commission.model",
                format!("unknown model '{other}'"),
            ))
        }
    };
    let (slippage, slippage_error) = slippage_model(d)?;
    let path_policy = match optional::<String>(d, "intrabar_path")?.as_deref() {
        None | Some("ohlc") => PathPolicy::OhlcWalk,
        Some("pessimistic") => PathPolicy::Pessimistic,
        Some("optimistic") => PathPolicy::Optimistic,
        Some(other) => {
            return Err(BacktestError::config(
                "execution.intrabar_path",
                format!("unknown policy '{other}' (ohlc, pessimistic, optimistic)"),
            ))
        }
    };
    let through = optional::<f64>(d, "limit_through")?.unwrap_or(0.0);
    let limit_fill = match optional::<String>(d, "limit_fill")?.as_deref() {
        None | Some("touch") => LimitFill::Touch,
        Some("through_amount") => LimitFill::ThroughAmount(through),
        Some("through_fraction") => LimitFill::ThroughFraction(through),
        Some(other) => {
            return Err(BacktestError::config(
                "execution.limit_fill",
                format!("unknown rule '{other}' (touch, through_amount, through_fraction)"),
            ))
        }
    };
    let config = EngineConfig {
        initial_cash: required(d, "initial_cash")?,
        execution,
        rounding,
        commission,
        slippage,
        allow_short: required(d, "allow_short")?,
        account: crate::account::account_rules(d)?,
        borrow_rate_column: optional(d, "account_borrow_rate_column")?,
        stop_basis: match optional::<String>(d, "stop_basis")?.as_deref() {
            None | Some("fill") => StopBasis::Fill,
            Some("signal_close") => StopBasis::SignalClose,
            Some(other) => {
                return Err(BacktestError::config(
                    "execution.stop_basis",
                    format!("expected 'fill' or 'signal_close', got '{other}'"),
                ))
            }
        },
        path_policy,
        limit_fill,
        max_volume_fraction: optional(d, "max_volume_fraction")?,
    };
    config.validate()?;
    Ok((config, slippage_error))
}

/// A built-in strategy that runs without Python.
pub enum BuiltinStrategy {
    /// See [`SignalStrategy`].
    Signal(SignalStrategy),
    /// See [`TopKStrategy`].
    TopK(TopKStrategy),
}

impl BuiltinStrategy {
    /// The strategy as a trait object.
    pub fn as_strategy(&mut self) -> &mut (dyn Strategy + Send) {
        match self {
            BuiltinStrategy::Signal(s) => s,
            BuiltinStrategy::TopK(s) => s,
        }
    }
}

/// Builds a built-in strategy from its spec dict (`{"kind": "signal" | "top_k", ...}`).
pub fn builtin_strategy(d: &Bound<'_, PyDict>) -> Result<BuiltinStrategy, BacktestError> {
    match required::<String>(d, "kind")?.as_str() {
        "signal" => {
            let sizing = match (
                optional::<f64>(d, "quantity")?,
                optional::<f64>(d, "weight")?,
            ) {
                (Some(q), None) => SignalSizing::Quantity(q),
                (None, Some(w)) => SignalSizing::Weight(w),
                _ => {
                    return Err(BacktestError::config(
                        "strategy",
                        "give exactly one of quantity or weight",
                    ))
                }
            };
            let strategy = SignalStrategy::new(
                required::<String>(d, "column")?,
                sizing,
                required(d, "long_threshold")?,
                required(d, "short_threshold")?,
                required(d, "allow_short")?,
            )?;
            let strategy = match (
                optional::<f64>(d, "take_profit")?,
                optional::<f64>(d, "stop_loss")?,
            ) {
                (None, None) => strategy,
                (Some(tp), Some(sl)) => strategy.with_bracket(tp, sl)?,
                _ => {
                    return Err(BacktestError::config(
                        "strategy.take_profit",
                        "give both take_profit and stop_loss for a bracket, or neither",
                    ))
                }
            };
            Ok(BuiltinStrategy::Signal(strategy))
        }
        "top_k" => Ok(BuiltinStrategy::TopK(TopKStrategy::new(
            required::<String>(d, "score")?,
            required(d, "k")?,
            required(d, "bottom_k")?,
            required(d, "rebalance_every")?,
        )?)),
        other => Err(BacktestError::config(
            "strategy.kind",
            format!("unknown built-in strategy '{other}'"),
        )),
    }
}
