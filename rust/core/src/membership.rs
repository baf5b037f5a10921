//! A point-in-time universe: when each asset joins and leaves the tradable set (an index's
//! membership as it was), as one small list of changes in time order. An asset's membership
//! at `t` is its latest change at or before `t`; before its first change it is not a member
//! (`docs/semantics.md`, *Point-in-time universe*).

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// One change of an asset's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipChange {
    /// When (engine nanoseconds): the change holds from the first timestamp `>=` it.
    pub ts: Ts,
    /// The asset.
    pub asset: AssetId,
    /// Whether the asset is a member from then on.
    pub member: bool,
}

/// A run's membership changes, sorted by (timestamp, asset) with one change per key, and a
/// cursor at the first one not yet applied.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    changes: Vec<MembershipChange>,
    next: usize,
}

impl Membership {
    /// Checks and keeps `changes` for a universe of `n_assets`: each asset inside it, rows
    /// strictly increasing in (timestamp, asset). Errors name the row
    /// (`universe.asset_id: unknown_asset: ...`).
    pub fn new(changes: Vec<MembershipChange>, n_assets: u32) -> Result<Self> {
        for (row, change) in changes.iter().enumerate() {
            if change.asset >= n_assets {
                return Err(BacktestError::data(
                    "universe.asset_id",
                    row,
                    format!(
                        "unknown_asset: code {} is outside the universe of {n_assets} assets",
                        change.asset
                    ),
                ));
            }
            if row > 0 {
                let before = changes[row - 1];
                if (before.ts, before.asset) >= (change.ts, change.asset) {
                    return Err(BacktestError::data(
                        "universe.ts",
                        row,
                        "sort_order: rows must be strictly increasing in (timestamp, asset): \
                         one row per key",
                    ));
                }
            }
        }
        Ok(Membership { changes, next: 0 })
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The date of the next change not yet applied (`Ts::MAX` when none is left).
    #[inline]
    pub fn next_ts(&self) -> Ts {
        self.changes.get(self.next).map_or(Ts::MAX, |c| c.ts)
    }

    /// Takes the changes due at timestamp `ts` (dated at or before it), moving past them:
    /// their positions in the list (see [`Self::get`]).
    pub fn take_due(&mut self, ts: Ts) -> std::ops::Range<usize> {
        let start = self.next;
        while self.next < self.changes.len() && self.changes[self.next].ts <= ts {
            self.next += 1;
        }
        start..self.next
    }

    /// The change at position `index`.
    #[inline]
    pub fn get(&self, index: usize) -> MembershipChange {
        self.changes[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(ts: Ts, asset: AssetId, member: bool) -> MembershipChange {
        MembershipChange { ts, asset, member }
    }

    #[test]
    fn changes_are_checked_and_taken_when_due() {
        let mut list = Membership::new(
            vec![change(1, 0, true), change(1, 1, true), change(5, 0, false)],
            2,
        )
        .unwrap();
        assert_eq!(list.next_ts(), 1);
        assert!(list.take_due(0).is_empty());
        assert_eq!(list.take_due(4), 0..2);
        assert_eq!(list.take_due(9), 2..3);
        assert_eq!(list.get(2), change(5, 0, false));
        assert_eq!(list.next_ts(), Ts::MAX);
        for (bad, column) in [
            (vec![change(1, 2, true)], "universe.asset_id"),
            (vec![change(1, 0, true), change(1, 0, false)], "universe.ts"),
            (vec![change(2, 0, true), change(1, 1, true)], "universe.ts"),
        ] {
            let err = Membership::new(bad, 2).unwrap_err().to_string();
            assert!(err.contains(&format!("'{column}'")), "{err}");
        }
    }
}
