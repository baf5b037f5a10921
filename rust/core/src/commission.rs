//! Commission models: the fee charged on every fill.

use crate::error::{BacktestError, Result};

/// How the fee of a fill is computed. Every model takes a minimum fee per fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CommissionModel {
    /// No fee.
    None,
    /// `rate × |quantity| × price`, e.g. `0.001` for 10 basis points.
    Percent {
        /// Fraction of the notional.
        rate: f64,
        /// Minimum fee per fill.
        minimum: f64,
    },
    /// `rate × |quantity|`.
    PerShare {
        /// Currency per share.
        rate: f64,
        /// Minimum fee per fill.
        minimum: f64,
    },
    /// A flat amount per fill.
    PerOrder {
        /// Currency per fill.
        amount: f64,
        /// Minimum fee per fill.
        minimum: f64,
    },
}

impl CommissionModel {
    /// The fee for a fill of `quantity` shares (sign ignored) at `price`; never negative.
    #[inline]
    pub fn fee(&self, quantity: f64, price: f64) -> f64 {
        let (raw, minimum) = match *self {
            CommissionModel::None => return 0.0,
            CommissionModel::Percent { rate, minimum } => (rate * quantity.abs() * price, minimum),
            CommissionModel::PerShare { rate, minimum } => (rate * quantity.abs(), minimum),
            CommissionModel::PerOrder { amount, minimum } => (amount, minimum),
        };
        raw.max(minimum)
    }

    /// The largest quantity `q ≥ 0` with `q × price + fee(q) ≤ cash`: what a cash account can
    /// buy. The fee is `max(raw(q), minimum)` with `raw` linear in `q`, so the answer is the
    /// minimum-fee branch when its quantity still pays no more than the minimum, else the
    /// linear branch's closed form.
    pub fn affordable(&self, cash: f64, price: f64) -> f64 {
        if !(cash > 0.0 && price > 0.0) {
            return 0.0;
        }
        // raw(q) = per_share × q (+ fixed); the minimum-fee branch first.
        let (per_share, fixed, minimum) = match *self {
            CommissionModel::None => (0.0, 0.0, 0.0),
            CommissionModel::Percent { rate, minimum } => (rate * price, 0.0, minimum),
            CommissionModel::PerShare { rate, minimum } => (rate, 0.0, minimum),
            CommissionModel::PerOrder { amount, minimum } => (0.0, amount, minimum),
        };
        let at_minimum = (cash - minimum) / price;
        let mut q = if per_share * at_minimum + fixed <= minimum {
            at_minimum
        } else {
            (cash - fixed) / (price + per_share)
        };
        // One step down when rounding left the cost a hair above the cash.
        let over = q * price + self.fee(q, price) - cash;
        if over > 0.0 {
            q -= over / price;
        }
        q.max(0.0)
    }

    /// Checks that every parameter is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        let params: [(&str, f64); 2] = match *self {
            CommissionModel::None => return Ok(()),
            CommissionModel::Percent { rate, minimum } => [("rate", rate), ("minimum", minimum)],
            CommissionModel::PerShare { rate, minimum } => [("rate", rate), ("minimum", minimum)],
            CommissionModel::PerOrder { amount, minimum } => {
                [("amount", amount), ("minimum", minimum)]
            }
        };
        for (name, value) in params {
            if !value.is_finite() || value < 0.0 {
                return Err(BacktestError::config(
                    &format!("commission.{name}"),
                    format!("must be finite and >= 0, got {value}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_fee_scales_with_notional_and_respects_minimum() {
        let m = CommissionModel::Percent {
            rate: 0.001,
            minimum: 1.0,
        };
        assert_eq!(m.fee(100.0, 50.0), 5.0);
        assert_eq!(m.fee(-10.0, 50.0), 1.0);
    }

    #[test]
    fn per_share_and_per_order_fees() {
        let s = CommissionModel::PerShare {
            rate: 0.01,
            minimum: 0.0,
        };
        assert!((s.fee(-300.0, 10.0) - 3.0).abs() < 1e-12);
        let o = CommissionModel::PerOrder {
            amount: 2.5,
            minimum: 0.0,
        };
        assert_eq!(o.fee(1.0, 1000.0), 2.5);
        assert_eq!(CommissionModel::None.fee(10.0, 10.0), 0.0);
    }

    #[test]
    fn negative_rate_is_rejected() {
        let m = CommissionModel::Percent {
            rate: -0.1,
            minimum: 0.0,
        };
        assert!(matches!(m.validate(), Err(BacktestError::Config { .. })));
    }
}
