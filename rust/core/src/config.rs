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
}

/// Whether positions are whole shares or fractional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRounding {
    /// Any quantity.
    Fractional,
    /// Target orders round toward zero; explicit quantities must be whole.
    Integer,
}

/// Everything the loop needs to know besides the data and the strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Starting cash.
    pub initial_cash: f64,
    /// Fill timing of market orders.
    pub execution: ExecutionMode,
    /// Share rounding.
    pub rounding: ShareRounding,
    /// Fee per fill.
    pub commission: CommissionModel,
    /// Price adjustment per fill.
    pub slippage: SlippageModel,
    /// Whether positions may go below zero.
    pub allow_short: bool,
    /// Order in which a bar's extremes are visited when several levels lie inside it.
    pub path_policy: PathPolicy,
    /// When a limit counts as executable.
    pub limit_fill: LimitFill,
    /// At most this fraction of a bar's volume fills per order (None: no limit).
    pub max_volume_fraction: Option<f64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            initial_cash: 100_000.0,
            execution: ExecutionMode::NextOpen,
            rounding: ShareRounding::Fractional,
            commission: CommissionModel::None,
            slippage: SlippageModel::None,
            allow_short: true,
            path_policy: PathPolicy::OhlcWalk,
            limit_fill: LimitFill::Touch,
            max_volume_fraction: None,
        }
    }
}

impl EngineConfig {
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
        self.commission.validate()?;
        self.slippage.validate()
    }
}
