//! The order book: accepted orders waiting to fill, in submission (time) order, with the
//! pending market quantity per asset that target sizing counts.

use super::Order;
use crate::types::{AssetId, OrderId};

/// Accepted orders in submission (time) order, with the pending (market) quantity per asset.
#[derive(Debug, Clone)]
pub struct OrderBook {
    orders: Vec<Order>,
    pending_quantity: Vec<f64>,
    pending_count: Vec<u32>,
    /// Whether `orders` is in increasing id order (the usual case: ids are handed out in
    /// submission order), so that a lookup by id is a binary search.
    ids_sorted: bool,
    /// The asset of every order id the run has used (accepted or rejected), so that a cancel
    /// or modify of an order no longer pending is recorded against the right asset.
    asset_by_id: Vec<AssetId>,
    /// How many orders in `orders` are bracket legs (`parent != 0`), filled ones included until
    /// the next sweep: with none, the fill path skips its scans for legs.
    legs: usize,
}

impl OrderBook {
    /// An empty book for `n_assets`.
    pub fn new(n_assets: usize) -> Self {
        OrderBook {
            orders: Vec::with_capacity(64),
            pending_quantity: vec![0.0; n_assets],
            pending_count: vec![0; n_assets],
            ids_sorted: true,
            asset_by_id: Vec::with_capacity(64),
            legs: 0,
        }
    }

    /// Remembers that order `id` is of `asset` (every accepted and rejected order).
    #[inline]
    pub fn note_asset(&mut self, id: OrderId, asset: AssetId) {
        let slot = id as usize;
        if slot >= self.asset_by_id.len() {
            self.asset_by_id.resize(slot + 1, AssetId::MAX);
        }
        self.asset_by_id[slot] = asset;
    }

    /// The asset of order `id`, if the run has used that id.
    pub fn asset_of(&self, id: OrderId) -> Option<AssetId> {
        let asset = *self.asset_by_id.get(id as usize)?;
        (asset != AssetId::MAX).then_some(asset)
    }

    /// Queues `order`.
    #[inline]
    pub fn push(&mut self, order: Order) {
        self.note_asset(order.id, order.asset);
        if self.orders.last().is_some_and(|last| last.id >= order.id) {
            self.ids_sorted = false;
        }
        if order.counts_as_pending() {
            self.pending_quantity[order.asset as usize] += order.quantity;
            self.pending_count[order.asset as usize] += 1;
        }
        self.legs += usize::from(order.parent != 0);
        self.orders.push(order);
    }

    /// Whether any order in the book is a bracket leg (a scan for one finds nothing when not).
    #[inline]
    pub fn has_legs(&self) -> bool {
        self.legs != 0
    }

    /// Makes the inactive order at `index` active with `quantity` (a bracket leg whose entry
    /// filled).
    pub fn activate(&mut self, index: usize, quantity: f64) {
        let order = &mut self.orders[index];
        order.active = true;
        order.quantity = quantity;
        if order.counts_as_pending() {
            self.pending_quantity[order.asset as usize] += quantity;
            self.pending_count[order.asset as usize] += 1;
        }
    }

    /// Reduces the order at `index` by a partial fill of `filled` signed shares.
    pub fn reduce(&mut self, index: usize, filled: f64) {
        let order = &mut self.orders[index];
        order.quantity -= filled;
        if order.counts_as_pending() {
            self.pending_quantity[order.asset as usize] -= filled;
        }
    }

    /// Sets the order at `index` to exactly `quantity` signed shares after a reduction whose
    /// float arithmetic may have left residue (the pending total follows).
    pub fn set_quantity(&mut self, index: usize, quantity: f64) {
        let order = &mut self.orders[index];
        if order.counts_as_pending() {
            self.pending_quantity[order.asset as usize] += quantity - order.quantity;
        }
        order.quantity = quantity;
    }

    /// Mutable access for engine bookkeeping (trailing marks, triggers); quantities must change
    /// through [`Self::reduce`], [`Self::mark_filled`] or [`Self::activate`].
    pub fn order_mut(&mut self, index: usize) -> &mut Order {
        &mut self.orders[index]
    }

    /// Index of pending order `id`.
    pub fn position_of(&self, id: OrderId) -> Option<usize> {
        let live = |o: &Order| o.id == id && o.is_live();
        if self.ids_sorted {
            let index = self.orders.binary_search_by_key(&id, |o| o.id).ok()?;
            return live(&self.orders[index]).then_some(index);
        }
        self.orders.iter().position(live)
    }

    /// Signed shares of `asset` in pending market and market-on-close orders.
    #[inline]
    pub fn pending_quantity(&self, asset: AssetId) -> f64 {
        self.pending_quantity[asset as usize]
    }

    /// True when no order waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// The waiting orders in submission order.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// Marks the order at `index` filled; it is removed by the next [`Self::sweep`].
    #[inline]
    pub fn mark_filled(&mut self, index: usize) {
        let order = &mut self.orders[index];
        order.state = super::OrderState::Stateless; // a fill-time-sized order is done too
        let slot = order.asset as usize;
        if !order.counts_as_pending() {
            // A resting or inactive order never counted as pending.
            order.active = true;
            order.quantity = 0.0;
            return;
        }
        self.pending_count[slot] -= 1;
        if self.pending_count[slot] == 0 {
            // Exact zero once nothing is pending, so rounding residue never accumulates.
            self.pending_quantity[slot] = 0.0;
        } else {
            self.pending_quantity[slot] -= order.quantity;
        }
        order.quantity = 0.0;
    }

    /// Removes filled and cancelled orders, keeping submission order.
    #[inline]
    pub fn sweep(&mut self) {
        self.orders.retain(Order::is_live);
        if self.legs != 0 {
            self.legs = self.orders.iter().filter(|o| o.parent != 0).count();
        }
        if !self.ids_sorted {
            self.ids_sorted = self.orders.windows(2).all(|w| w[0].id < w[1].id);
        }
    }

    /// Takes every waiting order out of the book (at the end of the data).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Order> {
        self.pending_quantity.iter_mut().for_each(|q| *q = 0.0);
        self.pending_count.iter_mut().for_each(|c| *c = 0);
        self.ids_sorted = true;
        self.legs = 0;
        self.orders.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_id_works_in_and_out_of_id_order() {
        let mut book = OrderBook::new(2);
        for id in [3, 5, 9] {
            book.push(Order::market(id, 0, 1.0, 0, 1));
        }
        assert_eq!(book.position_of(5), Some(1));
        assert_eq!(book.position_of(4), None);
        book.mark_filled(1);
        assert_eq!(book.position_of(5), None, "a filled order is not pending");
        // An id lower than the last one (an explicit order resolved after a target order).
        book.push(Order::market(7, 1, 1.0, 0, 1));
        assert_eq!(book.position_of(7), Some(3));
        assert_eq!(book.position_of(9), Some(2));
        book.sweep();
        assert_eq!(book.position_of(9), Some(1));
        assert_eq!(book.position_of(7), Some(2));
        assert_eq!(book.position_of(3), Some(0));
    }

    #[test]
    fn has_legs_counts_bracket_legs_until_they_are_swept() {
        let mut book = OrderBook::new(1);
        book.push(Order::market(1, 0, 1.0, 0, 1));
        assert!(!book.has_legs());
        book.push(Order {
            parent: 1,
            active: false,
            ..Order::market(2, 0, -1.0, 0, 1)
        });
        assert!(book.has_legs());
        book.mark_filled(1);
        assert!(
            book.has_legs(),
            "a filled leg stays in the book until the sweep"
        );
        book.sweep();
        assert!(!book.has_legs());
    }
}
