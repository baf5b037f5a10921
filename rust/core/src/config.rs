//! Engine configuration: execution timing, share rounding, costs and account rules.

use crate::commission::CommissionModel;
use crate::error::{BacktestError, Result};
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
        self.commission.validate()?;
        self.slippage.validate()
    }
}
