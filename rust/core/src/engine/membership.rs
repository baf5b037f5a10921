//! The point-in-time universe inside the loop: each asset's membership, moved by the change
//! list at the start of each timestamp (with the other dated events, so a run without a
//! universe pays nothing), the refusal of orders that would open or grow a position in a
//! non-member (`execution.on_non_member = "reject"`), and the PnL earned on positions while
//! their asset is not a member (`docs/semantics.md`, *Point-in-time universe*).

use super::Engine;
use crate::membership::Membership;
use crate::portfolio::is_dust;
use crate::types::{AssetId, OrderId, RejectReason, Ts};

/// Membership state: the changes with their cursor, who is a member now, and the PnL
/// bookkeeping of the positions held in non-members.
#[derive(Debug, Default)]
pub(super) struct Members {
    /// Whether the run has a universe at all.
    pub(super) on: bool,
    /// Whether entries into non-members are refused (`on_non_member = "reject"`).
    pub(super) reject: bool,
    changes: Membership,
    member: Vec<bool>,
    /// Per watched asset: its marked value when this timestamp's PnL count started.
    start: Vec<f64>,
    /// Per watched asset: the cash its fills and dividends moved during this timestamp.
    cash: Vec<f64>,
    /// Whether the asset is in `watched`.
    watching: Vec<bool>,
    /// The assets whose PnL this timestamp is counted: every open non-member, and every
    /// non-member that traded now.
    watched: Vec<AssetId>,
}

impl Members {
    /// Whether `asset` is a member now (always, without a universe).
    #[inline]
    pub(super) fn is_member(&self, asset: AssetId) -> bool {
        !self.on || self.member[asset as usize]
    }

    /// Each asset's membership now (`None` without a universe).
    #[inline]
    pub(super) fn members(&self) -> Option<&[bool]> {
        self.on.then_some(self.member.as_slice())
    }

    /// The date of the next change (`Ts::MAX`: none, or no universe).
    #[inline]
    pub(super) fn next_ts(&self) -> Ts {
        self.changes.next_ts()
    }

    fn watch(&mut self, asset: AssetId, value: f64) {
        let a = asset as usize;
        if !self.watching[a] {
            self.watching[a] = true;
            self.start[a] = value;
            self.cash[a] = 0.0;
            self.watched.push(asset);
        }
    }

    /// Counts `amount` of cash moved by `asset` (a fill's, a dividend's) when it is not a
    /// member; `value` is its marked value before the move.
    #[inline]
    pub(super) fn cash_moved(&mut self, asset: AssetId, amount: f64, value: f64) {
        if !self.is_member(asset) {
            self.watch(asset, value);
            self.cash[asset as usize] += amount;
        }
    }
}

impl Engine {
    /// Sets the run's point-in-time universe: its membership changes and whether entries into
    /// non-members are refused (`reject`, reason `non_member`) or allowed. Before its first
    /// change an asset is not a member.
    pub fn set_membership(&mut self, changes: Membership, reject: bool) {
        let n = self.n_assets as usize;
        self.members = Members {
            on: true,
            reject,
            changes,
            member: vec![false; n],
            start: vec![0.0; n],
            cash: vec![0.0; n],
            watching: vec![false; n],
            watched: Vec::with_capacity(n.min(64)),
        };
        self.next_dated = self.next_dated_event();
    }

    /// Step 0, first of the dated events: the membership changes dated at or before `ts`. An
    /// open position whose asset leaves is watched from its value now (the previous close).
    pub(super) fn apply_membership(&mut self, ts: Ts) {
        for index in self.members.changes.take_due(ts) {
            let change = self.members.changes.get(index);
            let asset = change.asset;
            self.members.member[asset as usize] = change.member;
            if !change.member && self.portfolio.quantity(asset) != 0.0 {
                let value = self.portfolio.value(asset);
                self.members.watch(asset, value);
            }
        }
    }

    /// Step 8, before recording equity: the PnL of each watched asset over this timestamp
    /// (value now less value at the start, plus the cash it moved) is recorded when the asset
    /// is not a member now; open non-members stay watched from their value now.
    pub(super) fn count_non_member_pnl(&mut self, ts: Ts) {
        if self.members.watched.is_empty() {
            return;
        }
        let watched = std::mem::take(&mut self.members.watched);
        let mut kept = watched;
        kept.retain(|&asset| {
            let a = asset as usize;
            let value = self.portfolio.value(asset);
            let members = &mut self.members;
            if !members.member[a] {
                let pnl = value - members.start[a] + members.cash[a];
                if pnl != 0.0 {
                    self.record.non_member_pnl.push(ts, asset, pnl);
                }
            }
            let still = !members.member[a] && self.portfolio.quantity(asset) != 0.0;
            members.start[a] = value;
            members.cash[a] = 0.0;
            members.watching[a] = still;
            still
        });
        self.members.watched = kept;
    }

    /// At decision time, with `on_non_member = "reject"`: the part of an order of `quantity`
    /// (signed) that would open or grow a position in non-member `asset` is refused
    /// (`non_member`); what reduces the position and pending orders (`current`) passes. `None`
    /// (and a rejection) when nothing is left.
    pub(super) fn member_cut(
        &mut self,
        id: OrderId,
        asset: AssetId,
        quantity: f64,
        ts: Ts,
    ) -> Option<f64> {
        if !self.members.reject || self.members.is_member(asset) {
            return Some(quantity);
        }
        let current = self.current(asset);
        let closing = if current * quantity < 0.0 {
            quantity.signum() * quantity.abs().min(current.abs())
        } else {
            0.0
        };
        let opening = quantity - closing;
        if opening == 0.0 || is_dust(opening, quantity) {
            return Some(quantity);
        }
        let rest = (closing != 0.0).then_some(closing);
        self.reject_part(id, ts, asset, opening, RejectReason::NonMember, rest);
        rest
    }

    /// At fill time, with `on_non_member = "reject"`: a book order that would open or grow a
    /// position in an asset that is not a member now is cut at flat (the cut part rejected
    /// `non_member`; an order cut to nothing is removed, with its waiting bracket legs).
    /// Returns false when nothing is left.
    pub(super) fn cap_non_member(&mut self, index: usize, ts: Ts) -> bool {
        let order = self.book.orders()[index];
        if order.parent != 0 || self.members.is_member(order.asset) {
            return true; // bracket legs are exits, capped at the position by `cap_at_flat`
        }
        let held = self.portfolio.quantity(order.asset);
        let room = if held != 0.0 && held.signum() != order.quantity.signum() {
            held.abs()
        } else {
            0.0
        };
        if order.quantity.abs() <= room || is_dust(order.quantity.abs() - room, room) {
            return true;
        }
        let excess = order.quantity - room * order.quantity.signum();
        let rest = (room != 0.0).then(|| room * order.quantity.signum());
        self.reject_part(
            order.id,
            ts,
            order.asset,
            excess,
            RejectReason::NonMember,
            rest,
        );
        if room == 0.0 {
            self.book.mark_filled(index);
            self.scratch.removed = true;
            self.cancel_waiting_legs(order.id, index, ts);
            return false;
        }
        self.book.reduce(index, excess);
        true
    }

    /// Whether `asset` is a member now (always, without a universe).
    pub fn is_member(&self, asset: AssetId) -> bool {
        self.members.is_member(asset)
    }
}
