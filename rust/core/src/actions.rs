//! Corporate actions: splits and cash dividends, each dated by its ex-date, as one small table
//! sorted by (timestamp, asset). The engine applies an action at the start of the first
//! timestamp at or after its date, before any fill (`docs/semantics.md`, *Corporate actions*).

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// One asset's corporate action on one ex-date.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorporateAction {
    /// The ex-date (engine nanoseconds): the action applies at the first timestamp `>=` it.
    pub ts: Ts,
    /// The asset.
    pub asset: AssetId,
    /// New shares per old share (2.0 for a 2-for-1 split, 0.1 for a 1-for-10 reverse split);
    /// 1.0 for none.
    pub split_ratio: f64,
    /// Cash per share held at the close before the ex-date (paid to longs, charged to shorts);
    /// 0.0 for none.
    pub dividend: f64,
}

impl CorporateAction {
    /// Whether the action changes the share count.
    #[inline]
    pub fn splits(&self) -> bool {
        self.split_ratio != 1.0
    }
}

/// A run's corporate actions, sorted by (timestamp, asset), at most one per key, with a cursor
/// at the first action not yet applied.
#[derive(Debug, Clone, Default)]
pub struct CorporateActions {
    actions: Vec<CorporateAction>,
    next: usize,
}

impl CorporateActions {
    /// Checks and keeps `actions` for a universe of `n_assets`: each asset in range, each ratio
    /// finite and > 0, each dividend finite, rows sorted by (timestamp, asset) with one per key.
    /// Errors name the row (`actions.split_ratio: must be finite and > 0 ...`).
    pub fn new(actions: Vec<CorporateAction>, n_assets: u32) -> Result<Self> {
        for (row, action) in actions.iter().enumerate() {
            if action.asset >= n_assets {
                return Err(BacktestError::data(
                    "actions.asset_id",
                    row,
                    format!(
                        "unknown_asset: code {} outside the universe of {n_assets} assets",
                        action.asset
                    ),
                ));
            }
            if !(action.split_ratio.is_finite() && action.split_ratio > 0.0) {
                return Err(BacktestError::data(
                    "actions.split_ratio",
                    row,
                    format!(
                        "positive_ratio: must be finite and > 0, got {}",
                        action.split_ratio
                    ),
                ));
            }
            if !action.dividend.is_finite() {
                return Err(BacktestError::data(
                    "actions.dividend",
                    row,
                    format!("not_finite: must be finite, got {}", action.dividend),
                ));
            }
            if row > 0 {
                let before = &actions[row - 1];
                if (before.ts, before.asset) >= (action.ts, action.asset) {
                    return Err(BacktestError::data(
                        "actions.ts",
                        row,
                        "sort_order: rows must be sorted by (ts, asset_id) with one per key",
                    ));
                }
            }
        }
        Ok(CorporateActions { actions, next: 0 })
    }

    /// Number of actions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The date of the next action not yet applied (`Ts::MAX` when none is left): the loop's one
    /// comparison per timestamp.
    #[inline]
    pub fn next_ts(&self) -> Ts {
        self.actions.get(self.next).map_or(Ts::MAX, |a| a.ts)
    }

    /// Takes the actions due at timestamp `ts` (dated at or before it) and moves past them:
    /// their positions in the table (see [`Self::get`]).
    pub fn take_due(&mut self, ts: Ts) -> std::ops::Range<usize> {
        let start = self.next;
        while self.next < self.actions.len() && self.actions[self.next].ts <= ts {
            self.next += 1;
        }
        start..self.next
    }

    /// The action at position `index`.
    #[inline]
    pub fn get(&self, index: usize) -> CorporateAction {
        self.actions[index]
    }
}

/// `quantity` (signed) after a split of `ratio` new shares per old one; a product within float
/// rounding of a whole number is that number (9 shares at a 1-for-3 ratio are 3, not
/// 2.999...). Integer-share accounts keep its whole part ([`f64::trunc`]).
#[inline]
pub fn split_shares(quantity: f64, ratio: f64) -> f64 {
    let scaled = quantity * ratio;
    let nearest = scaled.round();
    if (scaled - nearest).abs() <= 1e-9 * scaled.abs().max(1.0) {
        nearest
    } else {
        scaled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(ts: Ts, asset: AssetId, split_ratio: f64, dividend: f64) -> CorporateAction {
        CorporateAction {
            ts,
            asset,
            split_ratio,
            dividend,
        }
    }

    #[test]
    fn rows_are_checked_and_taken_in_time_order() {
        let mut table =
            CorporateActions::new(vec![action(5, 0, 2.0, 0.0), action(5, 1, 1.0, 0.5)], 2).unwrap();
        assert_eq!(table.next_ts(), 5);
        assert!(table.take_due(4).is_empty());
        assert_eq!(table.take_due(7), 0..2);
        assert_eq!(table.get(1).dividend, 0.5);
        assert_eq!(table.next_ts(), Ts::MAX);
        for (bad, column) in [
            (vec![action(1, 2, 2.0, 0.0)], "actions.asset_id"),
            (vec![action(1, 0, 0.0, 0.0)], "actions.split_ratio"),
            (vec![action(1, 0, f64::NAN, 0.0)], "actions.split_ratio"),
            (vec![action(1, 0, 1.0, f64::INFINITY)], "actions.dividend"),
            (
                vec![action(1, 0, 2.0, 0.0), action(1, 0, 2.0, 0.0)],
                "actions.ts",
            ),
        ] {
            let err = CorporateActions::new(bad, 2).unwrap_err().to_string();
            assert!(err.contains(&format!("'{column}'")), "{err}");
        }
    }

    #[test]
    fn split_shares_forgive_rounding_only() {
        assert_eq!(split_shares(3.0, 1.5), 4.5);
        assert_eq!(split_shares(-3.0, 1.5), -4.5);
        assert_eq!(split_shares(9.0, 1.0 / 3.0), 3.0);
        assert_eq!(split_shares(5.0, 0.1).trunc(), 0.0);
        assert_eq!(split_shares(0.1, 3.0), 0.1 * 3.0);
    }
}
