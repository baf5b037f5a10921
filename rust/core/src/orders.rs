//! Orders: what a strategy asks for ([`Intent`]), and accepted orders waiting to fill ([`Order`],
//! [`OrderBook`]).

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, OrderId, Ts};

/// How an order executes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderKind {
    /// At the execution mode's reference price (next open or this close).
    Market,
    /// At `limit` or better.
    Limit {
        /// Limit price.
        limit: f64,
    },
    /// A market order once the price reaches `stop`.
    Stop {
        /// Trigger price.
        stop: f64,
    },
    /// A limit order at `limit` once the price reaches `stop`.
    StopLimit {
        /// Trigger price.
        stop: f64,
        /// Limit price after the trigger.
        limit: f64,
    },
    /// At the close of the bar it becomes eligible on.
    MarketOnClose,
    /// A stop that follows the best price since placement by a fixed distance.
    TrailingStop {
        /// The distance.
        trail: Trail,
    },
}

impl OrderKind {
    /// Names of the order types in code order, for the Python side.
    pub const NAMES: [&'static str; 6] = [
        "market",
        "limit",
        "stop",
        "stop_limit",
        "market_on_close",
        "trailing_stop",
    ];

    /// Stable code of the type (index into [`Self::NAMES`]).
    pub fn code(&self) -> u8 {
        match self {
            OrderKind::Market => 0,
            OrderKind::Limit { .. } => 1,
            OrderKind::Stop { .. } => 2,
            OrderKind::StopLimit { .. } => 3,
            OrderKind::MarketOnClose => 4,
            OrderKind::TrailingStop { .. } => 5,
        }
    }
}

/// Distance of a trailing stop from the water mark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trail {
    /// A price amount.
    Amount(f64),
    /// A fraction of the water mark (0.05 = 5%).
    Percent(f64),
}

impl Trail {
    /// The stop level for a water mark `extreme`; a sell stop trails below, a buy stop above.
    #[inline]
    pub fn level(&self, extreme: f64, sell: bool) -> f64 {
        let distance = match *self {
            Trail::Amount(a) => a,
            Trail::Percent(p) => p * extreme,
        };
        if sell {
            extreme - distance
        } else {
            extreme + distance
        }
    }
}

/// How long an order lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeInForce {
    /// Until filled or cancelled.
    Gtc,
    /// Only on the first bar it is eligible for; expires after it.
    Day,
    /// Whatever fills on the first eligible bar; the rest is cancelled.
    Ioc,
}

/// An explicit order as a strategy submits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRequest {
    /// Asset.
    pub asset: AssetId,
    /// Signed shares (+ buys).
    pub quantity: f64,
    /// Execution type.
    pub kind: OrderKind,
    /// Lifetime.
    pub tif: TimeInForce,
    /// Bracket: a limit exit at this price once the entry fills (one-cancels-other with the stop).
    pub take_profit: Option<f64>,
    /// Bracket: a stop exit at this price once the entry fills.
    pub stop_loss: Option<f64>,
}

impl OrderRequest {
    /// A plain good-till-cancelled market order.
    pub fn market(asset: AssetId, quantity: f64) -> Self {
        OrderRequest {
            asset,
            quantity,
            kind: OrderKind::Market,
            tif: TimeInForce::Gtc,
            take_profit: None,
            stop_loss: None,
        }
    }

    /// Checks everything that can be checked at submission; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let quantity = finite("quantity", self.quantity)?;
        if quantity == 0.0 {
            return Err(BacktestError::order("quantity", "must not be zero"));
        }
        let price = |field: &str, v: f64| -> Result<f64> {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(BacktestError::order(
                    field,
                    format!("must be finite and > 0, got {v}"),
                ))
            }
        };
        let mut entry_limit = None;
        match self.kind {
            OrderKind::Market | OrderKind::MarketOnClose => {}
            OrderKind::Limit { limit } => entry_limit = Some(price("limit", limit)?),
            OrderKind::Stop { stop } => {
                price("stop", stop)?;
            }
            OrderKind::StopLimit { stop, limit } => {
                price("stop", stop)?;
                entry_limit = Some(price("limit", limit)?);
            }
            OrderKind::TrailingStop { trail } => {
                let (field, v) = match trail {
                    Trail::Amount(a) => ("trail_amount", a),
                    Trail::Percent(p) => ("trail_percent", p),
                };
                if !(v.is_finite() && v > 0.0) || matches!(trail, Trail::Percent(p) if p >= 1.0) {
                    return Err(BacktestError::order(
                        field,
                        format!("must be finite and > 0 (a percent below 1), got {v}"),
                    ));
                }
            }
        }
        let tp = self
            .take_profit
            .map(|v| price("take_profit", v))
            .transpose()?;
        let sl = self.stop_loss.map(|v| price("stop_loss", v)).transpose()?;
        let buy = quantity > 0.0;
        // Legs must lie on the profit / loss side of the entry (its limit when it has one).
        let wrong = |above: Option<f64>, below: Option<f64>| match (above, below) {
            (Some(a), Some(b)) => a <= b,
            _ => false,
        };
        // `wrong(a, b)`: `a` should lie strictly above `b` but does not.
        let (tp_bad, sl_bad) = if buy {
            (
                wrong(tp, entry_limit).then_some(()),
                wrong(entry_limit, sl).then_some(()),
            )
        } else {
            (
                wrong(entry_limit, tp).then_some(()),
                wrong(sl, entry_limit).then_some(()),
            )
        };
        let legs_crossed = match (tp, sl) {
            (Some(t), Some(s)) => (buy && t <= s) || (!buy && t >= s),
            _ => false,
        };
        if tp_bad.is_some() || legs_crossed {
            return Err(BacktestError::order(
                "take_profit",
                format!(
                    "must be on the profit side of the entry ({} for a {}), got {:?} with \
                     entry limit {:?} and stop_loss {:?}",
                    if buy { "above" } else { "below" },
                    if buy { "buy" } else { "sell" },
                    tp,
                    entry_limit,
                    sl
                ),
            ));
        }
        if sl_bad.is_some() {
            return Err(BacktestError::order(
                "stop_loss",
                format!(
                    "must be on the loss side of the entry ({} for a {}), got {:?} with entry \
                     limit {:?}",
                    if buy { "below" } else { "above" },
                    if buy { "buy" } else { "sell" },
                    sl,
                    entry_limit
                ),
            ));
        }
        Ok(())
    }
}

/// A strategy's request, resolved into an order quantity at decision time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intent {
    /// An explicit order, with the id it was given at submission.
    Submit {
        /// Id reserved at submission.
        id: OrderId,
        /// The order.
        request: OrderRequest,
    },
    /// Cancel a pending order (and, for a bracket entry, its legs).
    Cancel {
        /// The order to cancel.
        id: OrderId,
    },
    /// Change a pending order: its remaining quantity and/or its limit / stop price (NaN: keep).
    Modify {
        /// The order to change.
        id: OrderId,
        /// New signed remaining quantity (same side), or NaN.
        quantity: f64,
        /// New limit price, or NaN.
        limit: f64,
        /// New stop price, or NaN.
        stop: f64,
    },
    /// Reach a target position in shares.
    TargetQuantity {
        /// Asset to trade.
        asset: AssetId,
        /// Target position.
        target: f64,
    },
    /// Reach a target market value.
    TargetValue {
        /// Asset to trade.
        asset: AssetId,
        /// Target value (negative for shorts).
        value: f64,
    },
    /// Reach a target fraction of equity.
    TargetPercent {
        /// Asset to trade.
        asset: AssetId,
        /// Target fraction (negative for shorts).
        fraction: f64,
    },
    /// Go flat.
    Close {
        /// Asset to close.
        asset: AssetId,
    },
    /// Hold exactly the weights in `CommandBuffer::weights[start..end]`, flat elsewhere.
    Rebalance {
        /// First weight.
        start: u32,
        /// One past the last weight.
        end: u32,
    },
}

/// The buffer a strategy writes into during its callback; the engine drains it afterwards.
#[derive(Debug, Default, Clone)]
pub struct CommandBuffer {
    intents: Vec<Intent>,
    weights: Vec<(AssetId, f64)>,
    n_assets: u32,
    next_id: OrderId,
}

fn finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(BacktestError::order(
            field,
            format!("must be finite, got {value}"),
        ))
    }
}

impl CommandBuffer {
    /// An empty buffer for a universe of `n_assets`.
    pub fn new(n_assets: u32) -> Self {
        CommandBuffer {
            intents: Vec::with_capacity(64),
            weights: Vec::with_capacity(64),
            n_assets,
            next_id: 1,
        }
    }

    /// The id the next submitted order gets (the engine keeps the buffers in step).
    pub fn next_id(&self) -> OrderId {
        self.next_id
    }

    /// Sets the next order id.
    pub fn set_next_id(&mut self, id: OrderId) {
        self.next_id = id;
    }

    fn asset(&self, asset: AssetId) -> Result<AssetId> {
        if asset < self.n_assets {
            Ok(asset)
        } else {
            Err(BacktestError::order(
                "asset",
                format!(
                    "unknown asset code {asset} (universe has {})",
                    self.n_assets
                ),
            ))
        }
    }

    /// A market order for `quantity` shares (signed). Zero, NaN and infinite quantities are
    /// errors. Returns the order id.
    pub fn submit_order(&mut self, asset: AssetId, quantity: f64) -> Result<OrderId> {
        self.submit(OrderRequest::market(asset, quantity))
    }

    /// Any order type; checked now (errors name the field). Returns the order id.
    pub fn submit(&mut self, request: OrderRequest) -> Result<OrderId> {
        self.asset(request.asset)?;
        request.validate()?;
        let id = self.next_id;
        // A bracket reserves ids for its two legs right after the entry.
        self.next_id +=
            1 + u64::from(request.take_profit.is_some()) + u64::from(request.stop_loss.is_some());
        self.intents.push(Intent::Submit { id, request });
        Ok(id)
    }

    /// Cancels pending order `id` (a no-op, recorded as a rejection, if it is not pending).
    pub fn cancel_order(&mut self, id: OrderId) {
        self.intents.push(Intent::Cancel { id });
    }

    /// Changes pending order `id`: its remaining `quantity` (same side) and/or its `limit` /
    /// `stop` price; `None` keeps a field. Values are checked now (errors name the field);
    /// a change the order's type cannot take (a limit on a stop order) is rejected when applied.
    pub fn modify_order(
        &mut self,
        id: OrderId,
        quantity: Option<f64>,
        limit: Option<f64>,
        stop: Option<f64>,
    ) -> Result<()> {
        if let Some(q) = quantity {
            if !q.is_finite() || q == 0.0 {
                return Err(BacktestError::order(
                    "quantity",
                    format!("must be finite and non-zero, got {q}"),
                ));
            }
        }
        for (field, v) in [("limit", limit), ("stop", stop)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(BacktestError::order(
                        field,
                        format!("must be finite and > 0, got {v}"),
                    ));
                }
            }
        }
        self.intents.push(Intent::Modify {
            id,
            quantity: quantity.unwrap_or(f64::NAN),
            limit: limit.unwrap_or(f64::NAN),
            stop: stop.unwrap_or(f64::NAN),
        });
        Ok(())
    }

    /// Reach `target` shares.
    pub fn order_target_quantity(&mut self, asset: AssetId, target: f64) -> Result<()> {
        let target = finite("target", target)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetQuantity { asset, target });
        Ok(())
    }

    /// Reach a market value of `value`.
    pub fn order_target_value(&mut self, asset: AssetId, value: f64) -> Result<()> {
        let value = finite("value", value)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetValue { asset, value });
        Ok(())
    }

    /// Reach `fraction` of equity.
    pub fn order_target_percent(&mut self, asset: AssetId, fraction: f64) -> Result<()> {
        let fraction = finite("fraction", fraction)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetPercent { asset, fraction });
        Ok(())
    }

    /// Go flat in `asset`.
    pub fn close_position(&mut self, asset: AssetId) -> Result<()> {
        let asset = self.asset(asset)?;
        self.intents.push(Intent::Close { asset });
        Ok(())
    }

    /// Hold exactly `weights` (fractions of equity), flat in every other asset.
    pub fn rebalance<I: IntoIterator<Item = (AssetId, f64)>>(&mut self, weights: I) -> Result<()> {
        let start = self.weights.len();
        for (asset, weight) in weights {
            let checked = self
                .asset(asset)
                .and_then(|a| Ok((a, finite("weight", weight)?)));
            match checked {
                Ok(pair) => self.weights.push(pair),
                Err(err) => {
                    self.weights.truncate(start);
                    return Err(err);
                }
            }
        }
        self.intents.push(Intent::Rebalance {
            start: start as u32,
            end: self.weights.len() as u32,
        });
        Ok(())
    }

    /// Moves every intent of `other` into this buffer (used by adapters with their own buffer).
    pub fn append(&mut self, other: &mut CommandBuffer) {
        self.next_id = self.next_id.max(other.next_id);
        let offset = self.weights.len() as u32;
        for intent in other.intents.drain(..) {
            self.intents.push(match intent {
                Intent::Rebalance { start, end } => Intent::Rebalance {
                    start: start + offset,
                    end: end + offset,
                },
                other => other,
            });
        }
        self.weights.append(&mut other.weights);
    }

    /// The pending intents, in submission order.
    pub fn intents(&self) -> &[Intent] {
        &self.intents
    }

    /// The weights referenced by [`Intent::Rebalance`].
    pub fn weights(&self) -> &[(AssetId, f64)] {
        &self.weights
    }

    /// True when nothing was submitted.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.intents.clear();
        self.weights.clear();
    }
}

/// An accepted order waiting for its fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// Engine-assigned id.
    pub id: OrderId,
    /// Asset traded.
    pub asset: AssetId,
    /// Signed shares still to fill (+ buys); 0 once done.
    pub quantity: f64,
    /// Timestamp of the decision.
    pub created: Ts,
    /// Execution type.
    pub kind: OrderKind,
    /// Lifetime.
    pub tif: TimeInForce,
    /// First timestamp counter at which it may fill.
    pub eligible_from: u64,
    /// Bracket legs wait (inactive) until their entry fills.
    pub active: bool,
    /// For a bracket leg: its entry; 0 otherwise.
    pub parent: OrderId,
    /// For a bracket leg: the other leg (one-cancels-other); 0 otherwise.
    pub oco: OrderId,
    /// Why a fill of this order closes a trade.
    pub reason: crate::types::ExitReason,
    /// Trailing stops: the water mark (best price since placement); stop-limits: 1 once
    /// triggered. NaN when unused.
    pub mark: f64,
}

impl Order {
    /// A market order as target-based sizing creates it.
    pub fn market(id: OrderId, asset: AssetId, quantity: f64, created: Ts, eligible: u64) -> Self {
        Order {
            id,
            asset,
            quantity,
            created,
            kind: OrderKind::Market,
            tif: TimeInForce::Gtc,
            eligible_from: eligible,
            active: true,
            parent: 0,
            oco: 0,
            reason: crate::types::ExitReason::Signal,
            mark: f64::NAN,
        }
    }
}

impl Order {
    /// Whether the order counts toward the asset's pending quantity: active market and
    /// market-on-close orders, which will fill; resting limit and stop orders may never fill,
    /// so target sizing does not count them.
    #[inline]
    pub fn counts_as_pending(&self) -> bool {
        self.active && matches!(self.kind, OrderKind::Market | OrderKind::MarketOnClose)
    }
}

/// Accepted orders in submission (time) order, with the pending (market) quantity per asset.
#[derive(Debug, Clone)]
pub struct OrderBook {
    orders: Vec<Order>,
    pending_quantity: Vec<f64>,
    pending_count: Vec<u32>,
    /// Whether `orders` is in increasing id order (the usual case: ids are handed out in
    /// submission order), so that a lookup by id is a binary search.
    ids_sorted: bool,
}

impl OrderBook {
    /// An empty book for `n_assets`.
    pub fn new(n_assets: usize) -> Self {
        OrderBook {
            orders: Vec::with_capacity(64),
            pending_quantity: vec![0.0; n_assets],
            pending_count: vec![0; n_assets],
            ids_sorted: true,
        }
    }

    /// Queues `order`.
    #[inline]
    pub fn push(&mut self, order: Order) {
        if self.orders.last().is_some_and(|last| last.id >= order.id) {
            self.ids_sorted = false;
        }
        if order.counts_as_pending() {
            self.pending_quantity[order.asset as usize] += order.quantity;
            self.pending_count[order.asset as usize] += 1;
        }
        self.orders.push(order);
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

    /// Mutable access for engine bookkeeping (trailing marks, triggers); quantities must change
    /// through [`Self::reduce`], [`Self::mark_filled`] or [`Self::activate`].
    pub fn order_mut(&mut self, index: usize) -> &mut Order {
        &mut self.orders[index]
    }

    /// Index of pending order `id`.
    pub fn position_of(&self, id: OrderId) -> Option<usize> {
        let live = |o: &Order| o.id == id && (o.quantity != 0.0 || !o.active);
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
        self.orders.retain(|o| o.quantity != 0.0 || !o.active);
        if !self.ids_sorted {
            self.ids_sorted = self.orders.windows(2).all(|w| w[0].id < w[1].id);
        }
    }

    /// Takes every waiting order out of the book (at the end of the data).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Order> {
        self.pending_quantity.iter_mut().for_each(|q| *q = 0.0);
        self.pending_count.iter_mut().for_each(|c| *c = 0);
        self.ids_sorted = true;
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
}
