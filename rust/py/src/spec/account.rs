//! The `account` section of the engine dict -> [`AccountRules`].

use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient};
use ml4t_backtest_core::BacktestError;

use crate::dict::Spec;

/// Account rules from the `account` section. An absent or `None` margin fraction is no limit
/// (`BacktestConfig` always sends both: Reg-T's 0.5 / 0.25 unless the user chose `None`); other
/// absent keys keep the defaults (a margin account, rejections, no financing).
pub fn account_rules(account: &Spec<'_>) -> Result<AccountRules, BacktestError> {
    let defaults = AccountRules::default();
    let kind = match account.get::<String>("type")?.as_deref() {
        None | Some("margin") => AccountKind::Margin,
        Some("cash") => AccountKind::Cash,
        Some(other) => {
            return Err(BacktestError::config(
                &account.at("type"),
                format!("must be 'cash' or 'margin', got '{other}'"),
            ))
        }
    };
    let on_insufficient = match account.get::<String>("on_insufficient")?.as_deref() {
        None | Some("reject") => Insufficient::Reject,
        Some("resize") => Insufficient::Resize,
        Some(other) => {
            return Err(BacktestError::config(
                &account.at("on_insufficient"),
                format!("must be 'reject' or 'resize', got '{other}'"),
            ))
        }
    };
    let rules = AccountRules {
        kind,
        initial_margin: account.get("initial_margin")?,
        maintenance_margin: account.get("maintenance_margin")?,
        on_insufficient,
        borrow_rate: account.get_or("borrow_rate", defaults.borrow_rate)?,
        margin_interest_rate: account
            .get_or("margin_interest_rate", defaults.margin_interest_rate)?,
        cash_interest_rate: account.get_or("cash_interest_rate", defaults.cash_interest_rate)?,
    };
    rules.validate()?;
    Ok(rules)
}
