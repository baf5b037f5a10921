//! Engine configuration: execution timing, share rounding, costs and account rules.

use crate::commission::CommissionModel;
use crate::error::{BacktestError, Result};
use crate::matching::{LimitFill, PathPolicy};
use crate::slippage::SlippageModel;

/// When a market order decided at bar `t` fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    /// At the open of the asset's next bar (no look-ahead; the default).
    NextOpen,
    /// At the close of bar `t` itself.
    SameClose,
    /// At the close of the asset's next bar (zipline's convention): filled in that bar's pass,
    /// after any stop or limit the bar reaches earlier on its path.
    NextClose,
}

/// How target orders (`order_target_value`, `order_target_percent`, `rebalance`) are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSizing {
    /// At decision time: the target value (a percent target at the decision bar's equity) ÷
    /// the decision bar's close, less what is held and pending (backtrader's and zipline's
    /// convention; the default).
    Decision,
    /// At fill time (vectorbt's `targetpercent` at `price=open`): when the order's fill bar
    /// begins, the account is valued once at the orders' reference prices (V′ = cash +
    /// Σ position × reference, before any of that bar's fills) and each target becomes
    /// w × V′ ÷ reference (or value ÷ reference) less what is held.
    Fill,
}

/// The price risk rules measure stop and target distances from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBasis {
    /// The position's average fill price (the default).
    Fill,
    /// The close of the asset's last bar before the entry fill: the bar the decision was made on
    /// in next-open mode (the fill bar's close in same-close mode).
    SignalClose,
}

/// Whether positions are whole shares or fractional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRounding {
    /// Any quantity.
    Fractional,
    /// Target orders round toward zero; explicit quantities must be whole.
    Integer,
}

/// Cash or margin account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// No shorting and no leverage: a buy needs the cash it costs (fee included).
    Cash,
    /// Shorting and leverage within the margin requirements.
    Margin,
}

/// What happens to an order the account cannot afford when it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insufficient {
    /// Reject the order (reason `insufficient_cash` / `insufficient_margin`).
    Reject,
    /// Fill the largest affordable part and reject the rest.
    Resize,
}

/// Account rules: buying power, margin requirements and financing costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountRules {
    /// Cash or margin.
    pub kind: AccountKind,
    /// Margin account: equity must cover this fraction of gross exposure after an entry fill
    /// (0.5, the default, is Reg-T's 2× gross leverage). `None`: no limit.
    pub initial_margin: Option<f64>,
    /// Margin account: when equity falls below this fraction of gross exposure at a close,
    /// positions are liquidated (margin call; 0.25 by default, Reg-T's maintenance). `None`:
    /// never.
    pub maintenance_margin: Option<f64>,
    /// Reject or resize an unaffordable order.
    pub on_insufficient: Insufficient,
    /// Annual fee on the market value of short positions, accrued every bar.
    pub borrow_rate: f64,
    /// Annual interest paid on a negative cash balance, accrued every bar.
    pub margin_interest_rate: f64,
    /// Annual interest earned on a positive cash balance, accrued every bar.
    pub cash_interest_rate: f64,
}

impl Default for AccountRules {
    fn default() -> Self {
        AccountRules {
            kind: AccountKind::Margin,
            initial_margin: Some(Self::REG_T_INITIAL),
            maintenance_margin: Some(Self::REG_T_MAINTENANCE),
            on_insufficient: Insufficient::Reject,
            borrow_rate: 0.0,
            margin_interest_rate: 0.0,
            cash_interest_rate: 0.0,
        }
    }
}

impl AccountRules {
    /// Reg-T's initial margin: equity covers half the gross exposure (2× leverage).
    pub const REG_T_INITIAL: f64 = 0.5;
    /// Reg-T's (FINRA's) maintenance margin for long positions.
    pub const REG_T_MAINTENANCE: f64 = 0.25;

    /// No initial or maintenance margin: leverage without limit (an explicit choice).
    pub fn unlimited() -> Self {
        AccountRules {
            initial_margin: None,
            maintenance_margin: None,
            ..AccountRules::default()
        }
    }

    /// Checks the rates and margin fractions.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("account.initial_margin", self.initial_margin),
            ("account.maintenance_margin", self.maintenance_margin),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                    return Err(BacktestError::config(
                        field,
                        format!("must be in (0, 1], got {v}"),
                    ));
                }
            }
        }
        if let (Some(i), Some(m)) = (self.initial_margin, self.maintenance_margin) {
            if m > i {
                return Err(BacktestError::config(
                    "account.maintenance_margin",
                    format!("must not exceed initial_margin ({i}), got {m}"),
                ));
            }
        }
        for (field, v) in [
            ("account.borrow_rate", self.borrow_rate),
            ("account.margin_interest_rate", self.margin_interest_rate),
            ("account.cash_interest_rate", self.cash_interest_rate),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(BacktestError::config(
                    field,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything the loop needs to know besides the data and the strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Starting cash.
    pub initial_cash: f64,
    /// Fill timing of market orders.
    pub execution: ExecutionMode,
    /// When target orders are sized.
    pub sizing: TargetSizing,
    /// Share rounding.
    pub rounding: ShareRounding,
    /// Fee per fill.
    pub commission: CommissionModel,
    /// Price adjustment per fill.
    pub slippage: SlippageModel,
    /// Whether positions may go below zero (always false in a cash account).
    pub allow_short: bool,
    /// Buying power, margin and financing.
    pub account: AccountRules,
    /// Order in which a bar's extremes are visited when several levels lie inside it.
    pub path_policy: PathPolicy,
    /// When a limit counts as executable.
    pub limit_fill: LimitFill,
    /// At most this fraction of a bar's volume fills per order (None: no limit).
    pub max_volume_fraction: Option<f64>,
    /// A feed column with each asset's annual borrow rate (per bar; the last value seen is
    /// used, the global `account.borrow_rate` before the first). `None`: the global rate only.
    pub borrow_rate_column: Option<String>,
    /// A feed column with each crypto perpetual's funding rate (the last value seen is paid
    /// at each funding time; see `engine/funding.rs`). `None`: no funding.
    pub funding_rate_column: Option<String>,
    /// What risk-rule stop and target levels are measured from.
    pub stop_basis: StopBasis,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            initial_cash: 100_000.0,
            execution: ExecutionMode::NextOpen,
            sizing: TargetSizing::Decision,
            rounding: ShareRounding::Fractional,
            commission: CommissionModel::None,
            slippage: SlippageModel::None,
            allow_short: true,
            account: AccountRules::default(),
            path_policy: PathPolicy::OhlcWalk,
            limit_fill: LimitFill::Touch,
            max_volume_fraction: None,
            borrow_rate_column: None,
            funding_rate_column: None,
            stop_basis: StopBasis::Fill,
        }
    }
}

impl EngineConfig {
    /// Whether sells may take a position below zero.
    #[inline]
    pub fn shorting_allowed(&self) -> bool {
        self.allow_short && self.account.kind == AccountKind::Margin
    }

    /// Checks every field; the engine refuses to start on an invalid configuration.
    pub fn validate(&self) -> Result<()> {
        if !self.initial_cash.is_finite() || self.initial_cash <= 0.0 {
            return Err(BacktestError::config(
                "initial_cash",
                format!("must be finite and > 0, got {}", self.initial_cash),
            ));
        }
        if let Some(f) = self.max_volume_fraction {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return Err(BacktestError::config(
                    "execution.max_volume_fraction",
                    format!("must be in (0, 1], got {f}"),
                ));
            }
        }
        let through = match self.limit_fill {
            LimitFill::Touch => 0.0,
            LimitFill::ThroughAmount(v) | LimitFill::ThroughFraction(v) => v,
        };
        if !(through.is_finite() && through >= 0.0) {
            return Err(BacktestError::config(
                "execution.limit_through",
                format!("must be finite and >= 0, got {through}"),
            ));
        }
        self.account.validate()?;
        self.commission.validate()?;
        self.slippage.validate()
    }
}
