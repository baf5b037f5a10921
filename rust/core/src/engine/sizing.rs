//! Turning a strategy's intents into orders at decision time: target sizing at this bar's marks
//! and equity, share rounding, the short-selling cut, explicit orders with their bracket legs,
//! cancels.

use super::risk_step::Step;
use super::Engine;
use crate::config::{ExecutionMode, ShareRounding, TargetSizing};
use crate::error::{BacktestError, Result};
use crate::events::{OrderOrigin, OrderStatus};
use crate::orders::{
    CommandBuffer, Intent, Order, OrderKind, OrderRequest, OrderState, TargetSize, TimeInForce,
    MAX_QUANTITY,
};
use crate::portfolio::is_dust;
use crate::types::{AssetId, ExitReason, OrderId, RejectReason, Ts};

impl Engine {
    /// Turns the strategy's intents into orders (sizing at this bar's marks) and queues them.
    pub(super) fn resolve_commands(&mut self, step: Step, equity: f64) -> Result<()> {
        // Swapped out (not taken: a fresh buffer would allocate) while the engine resolves it.
        let spare = self
            .spare
            .take()
            .unwrap_or_else(|| CommandBuffer::new(self.n_assets));
        let mut commands = std::mem::replace(&mut self.commands, spare);
        let result = self.resolve_intents(&commands, step, equity);
        self.journal.decided();
        commands.clear();
        self.spare = Some(std::mem::replace(&mut self.commands, commands));
        result
    }

    fn resolve_intents(&mut self, commands: &CommandBuffer, step: Step, equity: f64) -> Result<()> {
        let ts = step.ts;
        if self.ruined {
            self.refuse_ruined(commands, ts);
            return Ok(());
        }
        for intent in commands.intents() {
            self.journal.decide(intent);
            if (self.delistings.any() || self.any_expiry()) && self.refuse_delisted(intent, ts) {
                continue;
            }
            match *intent {
                Intent::Submit { id, request } => self.submit(step, id, &request)?,
                Intent::Cancel { id } => self.cancel(id, ts),
                Intent::Modify {
                    id,
                    quantity,
                    limit,
                    stop,
                } => self.modify(id, quantity, limit, stop, ts),
                Intent::TargetQuantity { asset, target } => {
                    self.queue_target(step, asset, target)?
                }
                Intent::TargetValue { asset, value } => {
                    self.queue_value(step, asset, TargetSize::Value(value), equity)?
                }
                Intent::TargetPercent { asset, fraction } => {
                    self.queue_value(step, asset, TargetSize::Fraction(fraction), equity)?;
                }
                Intent::Close { asset } => self.queue_target(step, asset, 0.0)?,
                Intent::Rebalance { start, end } => {
                    self.rebalance_epoch += 1;
                    let weights = &commands.weights()[start as usize..end as usize];
                    for &(asset, weight) in weights {
                        self.listed[asset as usize] = self.rebalance_epoch;
                        let ended = if self.delistings.delisted(asset, ts) {
                            Some(RejectReason::Delisted)
                        } else if self.contract_expired(asset, ts) {
                            Some(RejectReason::ContractExpired)
                        } else {
                            None
                        };
                        if let Some(reason) = ended {
                            if weight != 0.0 {
                                let id = self.take_order_id();
                                self.reject(id, ts, asset, f64::NAN, reason);
                            }
                            continue;
                        }
                        self.queue_value(step, asset, TargetSize::Fraction(weight), equity)?;
                    }
                    // Only a held asset or one with a pending market order can be exposed: those,
                    // in asset order (the order a scan of every asset closes them in).
                    let mut exposed = std::mem::take(&mut self.exposed);
                    exposed.clear();
                    exposed.extend_from_slice(self.portfolio.open_assets());
                    exposed.extend(
                        self.book
                            .orders()
                            .iter()
                            .filter(|o| o.counts_as_pending())
                            .map(|o| o.asset),
                    );
                    exposed.sort_unstable();
                    exposed.dedup();
                    let mut result = Ok(());
                    for &asset in &exposed {
                        let a = asset as usize;
                        let open = self.portfolio.quantity(asset) != 0.0
                            || self.book.pending_quantity(asset) != 0.0;
                        if open && self.listed[a] != self.rebalance_epoch {
                            result = self.queue_target(step, asset, 0.0);
                            if result.is_err() {
                                break;
                            }
                        }
                    }
                    self.exposed = exposed;
                    result?;
                }
            }
        }
        Ok(())
    }

    /// Signed shares held plus those in active pending orders.
    pub(super) fn current(&self, asset: AssetId) -> f64 {
        self.portfolio.quantity(asset) + self.book.pending_quantity(asset)
    }

    /// The first timestamp counter at which an order of `kind` decided now may fill.
    pub(super) fn eligible_from(&self, kind: OrderKind) -> u64 {
        let same_bar = self.config.execution == ExecutionMode::SameClose
            && matches!(kind, OrderKind::Market | OrderKind::MarketOnClose);
        self.timestamps + u64::from(!same_bar)
    }

    /// Refuses (`delisted`, `contract_expired`) an order or a non-zero target for an asset
    /// delisted or expired by now; a close or a zero target of one has nothing to do. Returns
    /// whether the intent is dealt with.
    fn refuse_delisted(&mut self, intent: &Intent, ts: Ts) -> bool {
        let (asset, wants) = match *intent {
            Intent::Submit { request, .. } => (request.asset, true),
            Intent::TargetQuantity { asset, target } => (asset, target != 0.0),
            Intent::TargetValue { asset, value } => (asset, value != 0.0),
            Intent::TargetPercent { asset, fraction } => (asset, fraction != 0.0),
            Intent::Close { asset } => (asset, false),
            Intent::Cancel { .. } | Intent::Modify { .. } | Intent::Rebalance { .. } => {
                return false
            }
        };
        let reason = if self.delistings.delisted(asset, ts) {
            RejectReason::Delisted
        } else if self.contract_expired(asset, ts) {
            RejectReason::ContractExpired
        } else {
            return false;
        };
        if wants {
            let (id, quantity) = match *intent {
                Intent::Submit { id, request } => (id, request.quantity),
                _ => (self.take_order_id(), f64::NAN),
            };
            self.reject(id, ts, asset, quantity, reason);
        }
        true
    }

    /// Every intent of a ruined account is refused (`ruined`): it trades no more.
    fn refuse_ruined(&mut self, commands: &CommandBuffer, ts: Ts) {
        for intent in commands.intents() {
            self.journal.decide(intent);
            let (id, asset, quantity) = match *intent {
                Intent::Submit { id, request } => (id, request.asset, request.quantity),
                Intent::Cancel { id } | Intent::Modify { id, .. } => {
                    (id, self.book.asset_of(id).unwrap_or(0), f64::NAN)
                }
                Intent::TargetQuantity { asset, .. }
                | Intent::TargetValue { asset, .. }
                | Intent::TargetPercent { asset, .. }
                | Intent::Close { asset } => (self.take_order_id(), asset, f64::NAN),
                Intent::Rebalance { start, end } => {
                    for &(asset, _) in &commands.weights()[start as usize..end as usize] {
                        let id = self.take_order_id();
                        self.reject(id, ts, asset, f64::NAN, RejectReason::Ruined);
                    }
                    continue;
                }
            };
            self.reject(id, ts, asset, quantity, RejectReason::Ruined);
        }
    }

    /// Queues the market order that takes `asset` to `target`: sized now at the last close
    /// (`equity` values a fraction), or, with fill-time sizing, re-sized when it fills.
    fn queue_value(
        &mut self,
        step: Step,
        asset: AssetId,
        target: TargetSize,
        equity: f64,
    ) -> Result<()> {
        let price = self.portfolio.last_price(asset);
        if !price.is_finite() {
            let id = self.take_order_id();
            self.reject(id, step.ts, asset, f64::NAN, RejectReason::NoPrice);
            return Ok(());
        }
        // A contract's notional is price × multiplier (1 for a share), in base at its rate.
        let unit = price * self.portfolio.multiplier(asset) * self.portfolio.rate_of(asset);
        let shares = target.shares(equity, unit);
        if self.config.sizing == TargetSizing::Fill {
            return self.queue_fill_sized(step, asset, target, shares);
        }
        self.queue_target(step, asset, shares)
    }

    /// Fill-time sizing: the newest target of an asset replaces a fill-sized order still
    /// waiting for it, and the order is queued even when the decision-time estimate is zero
    /// (the fill bar's prices decide).
    fn queue_fill_sized(
        &mut self,
        step: Step,
        asset: AssetId,
        target: TargetSize,
        shares: f64,
    ) -> Result<()> {
        let ts = step.ts;
        let mut replaced = false;
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if order.asset == asset && order.target().is_some() {
                self.book.mark_filled(index);
                self.emit_status(&order, ts, OrderStatus::Cancelled);
                replaced = true;
            }
        }
        if replaced {
            self.book.sweep();
        }
        let mut estimate = shares - self.current(asset);
        estimate = self.step_quantity(asset, estimate);
        if !estimate.is_finite() || estimate.abs() > MAX_QUANTITY {
            let id = self.take_order_id();
            self.reject(id, ts, asset, estimate, RejectReason::NumericOverflow);
            return Ok(());
        }
        let id = self.take_order_id();
        if estimate != 0.0 {
            // A zero estimate waits for the fill bar's prices; anything else is checked now.
            let Some(cut) = self.short_cut(id, asset, estimate, ts) else {
                return Ok(());
            };
            let Some(cut) = self.member_cut(id, asset, cut, ts) else {
                return Ok(());
            };
            let Some(checked) = self.pre_trade(step, id, asset, cut, f64::NAN)? else {
                return Ok(());
            };
            estimate = checked;
        }
        let eligible = self.eligible_from(OrderKind::Market);
        let order = Order {
            state: OrderState::Target {
                target,
                filled: false,
            },
            ..Order::market(id, asset, estimate, ts, eligible)
        };
        self.accept(order, ts, OrderOrigin::Target);
        Ok(())
    }

    fn queue_target(&mut self, step: Step, asset: AssetId, target: f64) -> Result<()> {
        let ts = step.ts;
        let current = self.current(asset);
        let mut quantity = target - current;
        // The position is part of the scale: `current` sums it with the pending orders, and
        // orders that undo a position leave float residue next to it (a close after targets
        // at one timestamp must not buy 1e-14 shares).
        let held = self.portfolio.quantity(asset).abs();
        if is_dust(quantity, target.abs().max(current.abs()).max(held)) {
            return Ok(());
        }
        quantity = self.step_quantity(asset, quantity);
        if quantity == 0.0 {
            return Ok(());
        }
        if !quantity.is_finite() || quantity.abs() > MAX_QUANTITY {
            let id = self.take_order_id();
            self.reject(id, ts, asset, quantity, RejectReason::NumericOverflow);
            return Ok(());
        }
        let id = self.take_order_id();
        let Some(quantity) = self.short_cut(id, asset, quantity, ts) else {
            return Ok(());
        };
        let Some(quantity) = self.member_cut(id, asset, quantity, ts) else {
            return Ok(());
        };
        let Some(quantity) = self.pre_trade(step, id, asset, quantity, f64::NAN)? else {
            return Ok(());
        };
        let eligible = self.eligible_from(OrderKind::Market);
        let order = Order::market(id, asset, quantity, ts, eligible);
        self.accept(order, ts, OrderOrigin::Target);
        Ok(())
    }

    /// With shorting disabled, cuts a sell at a flat position; `None` (and a rejection) when
    /// nothing is left.
    fn short_cut(&mut self, id: OrderId, asset: AssetId, requested: f64, ts: Ts) -> Option<f64> {
        if self.config.shorting_allowed() {
            return Some(requested);
        }
        let current = self.current(asset);
        let mut quantity = requested;
        if current + quantity < 0.0 {
            quantity = -current.max(0.0);
        }
        if quantity == 0.0 {
            self.reject(id, ts, asset, requested, RejectReason::ShortNotAllowed);
            return None;
        }
        Some(quantity)
    }

    /// Queues an explicit order (and its bracket legs, inactive until it fills).
    fn submit(&mut self, step: Step, id: OrderId, request: &OrderRequest) -> Result<()> {
        let ts = step.ts;
        let asset = request.asset;
        if self.config.rounding == ShareRounding::Integer && request.quantity.fract() != 0.0 {
            return Err(BacktestError::order(
                "quantity",
                format!(
                    "must be a whole number of shares with integer share rounding, got {}",
                    request.quantity
                ),
            ));
        }
        if self.contracts.is_some() {
            self.check_lot(asset, request.quantity)?;
        }
        let Some(quantity) = self.short_cut(id, asset, request.quantity, ts) else {
            return Ok(());
        };
        let Some(quantity) = self.member_cut(id, asset, quantity, ts) else {
            return Ok(());
        };
        let price_hint = match request.kind {
            OrderKind::Limit { limit } | OrderKind::StopLimit { limit, .. } => limit,
            OrderKind::Stop { stop } => stop,
            _ => f64::NAN,
        };
        let Some(quantity) = self.pre_trade(step, id, asset, quantity, price_hint)? else {
            return Ok(());
        };
        let mut water_mark = f64::NAN;
        if let OrderKind::TrailingStop { .. } = request.kind {
            water_mark = self.portfolio.last_price(asset);
            if !water_mark.is_finite() {
                self.reject(id, ts, asset, quantity, RejectReason::NoPrice);
                return Ok(());
            }
        }
        let eligible_from = self.eligible_from(request.kind);
        let reason = match request.kind {
            OrderKind::TrailingStop { .. } => ExitReason::TrailingStop,
            _ => ExitReason::Signal,
        };
        let entry = Order {
            id,
            asset,
            quantity,
            created: ts,
            kind: request.kind,
            tif: request.tif,
            eligible_from,
            active: true,
            parent: 0,
            oco: 0,
            reason,
            state: OrderState::new(request.kind, water_mark),
        };
        self.accept(entry, ts, OrderOrigin::Strategy);
        let tp_id = request.take_profit.map(|_| id + 1);
        let sl_id = request
            .stop_loss
            .map(|_| id + 1 + u64::from(tp_id.is_some()));
        let leg = |leg_id: OrderId, kind: OrderKind, oco: Option<OrderId>, reason| Order {
            id: leg_id,
            asset,
            quantity: -quantity,
            created: ts,
            kind,
            tif: TimeInForce::Gtc,
            eligible_from,
            active: false,
            parent: id,
            oco: oco.unwrap_or(0),
            reason,
            state: OrderState::Stateless,
        };
        if let (Some(tp_id), Some(limit)) = (tp_id, request.take_profit) {
            let order = leg(
                tp_id,
                OrderKind::Limit { limit },
                sl_id,
                ExitReason::TakeProfit,
            );
            self.accept(order, ts, OrderOrigin::Bracket);
        }
        if let (Some(sl_id), Some(stop)) = (sl_id, request.stop_loss) {
            let order = leg(sl_id, OrderKind::Stop { stop }, tp_id, ExitReason::StopLoss);
            self.accept(order, ts, OrderOrigin::Bracket);
        }
        Ok(())
    }

    /// Applies a modification to pending order `id` (see `CommandBuffer::modify_order`). An
    /// order that is not pending, a quantity on the other side, or a price the order type does
    /// not have is recorded as a `not_pending` / `invalid_modify` rejection and changes nothing.
    fn modify(&mut self, id: OrderId, quantity: f64, limit: f64, stop: f64, ts: Ts) {
        let Some(index) = self.book.position_of(id) else {
            let asset = self.book.asset_of(id).unwrap_or(0);
            self.reject(id, ts, asset, f64::NAN, RejectReason::NotPending);
            return;
        };
        let order = self.book.orders()[index];
        // A quantity of zero is no order (cancel it instead); `0.0.signum()` is 1.
        let wrong_side = quantity.is_finite()
            && (quantity == 0.0 || quantity.signum() != order.quantity.signum());
        let mut kind = order.kind;
        let mut fits = true;
        if limit.is_finite() {
            match &mut kind {
                OrderKind::Limit { limit: l } | OrderKind::StopLimit { limit: l, .. } => *l = limit,
                _ => fits = false,
            }
        }
        if stop.is_finite() {
            match &mut kind {
                OrderKind::Stop { stop: s } | OrderKind::StopLimit { stop: s, .. } => *s = stop,
                _ => fits = false,
            }
        }
        if self.contracts.is_some() {
            kind = self.round_levels(order.asset, order.quantity, kind);
        }
        if wrong_side || !fits || !order.active {
            self.reject(
                id,
                ts,
                order.asset,
                order.quantity,
                RejectReason::InvalidModify,
            );
            return;
        }
        self.book.order_mut(index).kind = kind;
        if quantity.is_finite() && quantity != order.quantity {
            self.book.set_quantity(index, quantity);
        }
        let updated = self.book.orders()[index];
        self.emit_status(&updated, ts, OrderStatus::Accepted);
    }

    /// Cancels pending order `id` and, for a bracket entry, its waiting legs.
    fn cancel(&mut self, id: OrderId, ts: Ts) {
        let Some(index) = self.book.position_of(id) else {
            let asset = self.book.asset_of(id).unwrap_or(0);
            self.reject(id, ts, asset, f64::NAN, RejectReason::NotPending);
            return;
        };
        let order = self.book.orders()[index];
        self.book.mark_filled(index);
        self.emit_status(&order, ts, OrderStatus::Cancelled);
        for leg in index + 1..self.book.orders().len() {
            let order = self.book.orders()[leg];
            if order.parent == id && !order.active {
                self.book.mark_filled(leg);
                self.emit_status(&order, ts, OrderStatus::Cancelled);
            }
        }
        self.book.sweep();
    }

    /// An id for an order the engine creates (target orders, risk exits, margin calls), from
    /// the counter the strategy's submissions use.
    pub(super) fn take_order_id(&mut self) -> u64 {
        self.ids.take(1)
    }
}
