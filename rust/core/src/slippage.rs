//! Slippage models: how far the fill price moves against the trader from the reference price.

use crate::error::{BacktestError, Result};
use crate::types::Side;

/// Price adjustment applied before the fill price is clamped into the bar's range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlippageModel {
    /// Fill at the reference price.
    None,
    /// A fixed amount per share against the trader.
    Fixed {
        /// Currency per share.
        amount: f64,
    },
    /// A fraction of the reference price against the trader.
    Percent {
        /// Fraction, e.g. `0.0005` for 5 basis points.
        rate: f64,
    },
}

impl SlippageModel {
    /// The slipped price for a fill on `side` at `reference` (before clamping to the bar).
    #[inline]
    pub fn apply(&self, side: Side, reference: f64) -> f64 {
        match *self {
            SlippageModel::None => reference,
            SlippageModel::Fixed { amount } => reference + side.sign() * amount,
            SlippageModel::Percent { rate } => reference * (1.0 + side.sign() * rate),
        }
    }

    /// Checks that every parameter is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        let (name, value) = match *self {
            SlippageModel::None => return Ok(()),
            SlippageModel::Fixed { amount } => ("amount", amount),
            SlippageModel::Percent { rate } => ("rate", rate),
        };
        if !value.is_finite() || value < 0.0 {
            return Err(BacktestError::config(
                &format!("slippage.{name}"),
                format!("must be finite and >= 0, got {value}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slippage_moves_against_the_trader() {
        let f = SlippageModel::Fixed { amount: 0.05 };
        assert_eq!(f.apply(Side::Buy, 10.0), 10.05);
        assert_eq!(f.apply(Side::Sell, 10.0), 9.95);
        let p = SlippageModel::Percent { rate: 0.01 };
        assert_eq!(p.apply(Side::Buy, 100.0), 101.0);
        assert_eq!(p.apply(Side::Sell, 100.0), 99.0);
        assert_eq!(SlippageModel::None.apply(Side::Buy, 7.0), 7.0);
    }
}
