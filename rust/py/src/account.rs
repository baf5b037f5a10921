//! Reads the account rules (`account_*` keys of the engine dict) into [`AccountRules`].

use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient};
use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::optional_at;

/// Account rules from the engine dict; absent keys keep the defaults (a margin account with no
/// buying-power limit, no margin calls and no financing).
pub fn account_rules(d: &Bound<'_, PyDict>) -> Result<AccountRules, BacktestError> {
    let defaults = AccountRules::default();
    let kind = match optional_at::<String>(d, "account_type", "account.type")?.as_deref() {
        None | Some("margin") => AccountKind::Margin,
        Some("cash") => AccountKind::Cash,
        Some(other) => {
            return Err(BacktestError::config(
                "account.type",
                format!("must be 'cash' or 'margin', got '{other}'"),
            ))
        }
    };
    let on_insufficient =
        match optional_at::<String>(d, "account_on_insufficient", "account.on_insufficient")?
            .as_deref()
        {
            None | Some("reject") => Insufficient::Reject,
            Some("resize") => Insufficient::Resize,
            Some(other) => {
                return Err(BacktestError::config(
                    "account.on_insufficient",
                    format!("must be 'reject' or 'resize', got '{other}'"),
                ))
            }
        };
    let rate = |key: &str, field: &str, default: f64| -> Result<f64, BacktestError> {
        Ok(optional_at::<f64>(d, key, field)?.unwrap_or(default))
    };
    let rules = AccountRules {
        kind,
        initial_margin: optional_at(d, "account_initial_margin", "account.initial_margin")?,
        maintenance_margin: optional_at(
            d,
            "account_maintenance_margin",
            "account.maintenance_margin",
        )?,
        on_insufficient,
        borrow_rate: rate(
            "account_borrow_rate",
            "account.borrow_rate",
            defaults.borrow_rate,
        )?,
        margin_interest_rate: rate(
            "account_margin_interest_rate",
            "account.margin_interest_rate",
            defaults.margin_interest_rate,
        )?,
        cash_interest_rate: rate(
            "account_cash_interest_rate",
            "account.cash_interest_rate",
            defaults.cash_interest_rate,
        )?,
    };
    rules.validate()?;
    Ok(rules)
}
