//! The risk manager inside the loop: level exits (stop, trailing-stop and target levels
//! against the bar's path, candidates of the bar pass alongside the book's orders), the
//! position step after marking (rules decide levels and exits) and the pre-trade check on new
//! orders.

use super::fills::Candidate;
use super::Engine;
use crate::error::Result;
use crate::events::{OrderOrigin, OrderStatus};
use crate::feed::MarketData;
use crate::matching::{limit_trigger, stop_trigger, trailing_trigger, BarPath};
use crate::orders::{Order, OrderKind};
use crate::risk::{BoxedRule, HeldPosition, RiskManager};
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, OrderId, RejectReason, Side, Ts};

/// The level that fires first on a bar.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelHit {
    /// The position it protects (see `RiskManager::position_id`; a flip opens a new one).
    position: u64,
    time: f64,
    reference: f64,
    kind: OrderKind,
    reason: ExitReason,
    fraction: f64,
    limit_like: bool,
}

/// Where the current step's market data is: the chunk, the timestamp and its first row.
#[derive(Clone, Copy)]
pub(super) struct Step<'a> {
    pub data: &'a MarketData,
    pub ts: Ts,
    pub row: usize,
}

impl Engine {
    /// Attaches risk rules (evaluated in this order). Call before the first chunk.
    pub fn set_risk_rules(&mut self, rules: Vec<BoxedRule>) {
        if rules.is_empty() {
            self.risk = None;
            return;
        }
        let mut manager = RiskManager::new(rules, self.config.stop_basis);
        manager.start(self.n_assets as usize, self.config.initial_cash);
        if self.sessions.on {
            manager.set_session_closes(self.sessions.closes().to_vec());
        }
        self.risk = Some(Box::new(manager));
    }

    /// Adds the level exits of this bar to the pass's `candidates`: for each held asset with a
    /// bar, the first of its stop, trailing-stop and target levels reached along the path (at
    /// equal times: stop, trailing stop, target). They then fill in path-time order with the
    /// book's orders (a level exit is an exit; at equal times book orders go first).
    pub(super) fn consider_levels(&mut self, data: &MarketData, candidates: &mut Vec<Candidate>) {
        self.level_hits.clear();
        let epoch = self.timestamps;
        for i in 0..self.portfolio.open_assets().len() {
            let asset = self.portfolio.open_assets()[i];
            if self.bar_epoch[asset as usize] != epoch {
                continue;
            }
            if let Some(hit) = self.level_hit(data, asset) {
                candidates.push(Candidate::level(
                    hit.time,
                    hit.reference,
                    self.level_hits.len(),
                ));
                self.level_hits.push((asset, hit));
            }
        }
    }

    /// Executes level exit `slot` of this pass, unless the position it protected has ended,
    /// flipped or been replaced since the bar's start (by an earlier fill on the path: a new
    /// position, flips included, has no levels before its first evaluation). Returns whether
    /// it filled.
    pub(super) fn execute_level<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        slot: usize,
        strategy: &mut S,
    ) -> Result<bool> {
        let (asset, hit) = self.level_hits[slot];
        let held = self.portfolio.quantity(asset);
        let same_position = self
            .risk
            .as_ref()
            .is_some_and(|r| r.position_id(asset) == hit.position);
        if held == 0.0 || !same_position {
            return Ok(false);
        }
        self.fill_level(data, ts, asset, hit, strategy)
    }

    /// The first level of `asset`'s position reached on this bar, if any.
    fn level_hit(&self, data: &MarketData, asset: AssetId) -> Option<LevelHit> {
        let risk = self.risk.as_ref()?;
        let plan = *risk.levels(asset)?;
        let held = self.portfolio.quantity(asset);
        if held == 0.0 {
            return None;
        }
        let long = held > 0.0;
        let position = risk.position_id(asset);
        let row = self.bar_row[asset as usize];
        let (open, high, low, close) = (
            data.open()[row],
            data.high()[row],
            data.low()[row],
            data.close()[row],
        );
        // Cheap test first: most bars reach no level.
        let stop_near = !plan.stop.is_nan()
            && if long {
                low <= plan.stop
            } else {
                high >= plan.stop
            };
        let target_near = !plan.target.is_nan()
            && if long {
                high >= plan.target || open > plan.target
            } else {
                low <= plan.target || open < plan.target
            };
        if !stop_near && !target_near && plan.trail.is_none() {
            return None;
        }
        let side = if long { 1.0 } else { -1.0 };
        let mut path = BarPath::new(open, high, low, close, self.config.path_policy, side);
        if self.sessions.on && !self.sessions.opens(asset) {
            path = path.continuous();
        }
        let exit_side = if long { Side::Sell } else { Side::Buy };
        let hit = |(time, reference): (f64, f64), kind, reason, fraction, limit_like| LevelHit {
            position,
            time,
            reference,
            kind,
            reason,
            fraction,
            limit_like,
        };
        let mut best: Option<LevelHit> = None;
        let mut consider = |candidate: Option<LevelHit>| {
            if let Some(c) = candidate {
                if best.is_none_or(|b| c.time < b.time) {
                    best = Some(c);
                }
            }
        };
        if stop_near {
            let kind = OrderKind::Stop { stop: plan.stop };
            consider(
                stop_trigger(&path, exit_side, plan.stop, 0.0)
                    .map(|t| hit(t, kind, plan.stop_reason, 1.0, false)),
            );
        }
        if let Some((trail, reason)) = plan.trail {
            let mark = risk.water_mark(asset, long);
            let kind = OrderKind::TrailingStop { trail };
            consider(
                trailing_trigger(&path, long, mark, trail)
                    .map(|t| hit(t, kind, reason, 1.0, false)),
            );
        }
        if target_near {
            let kind = OrderKind::Limit { limit: plan.target };
            let limit_fill = self.config.limit_fill;
            consider(
                limit_trigger(&path, exit_side, plan.target, limit_fill, 0.0)
                    .map(|t| hit(t, kind, plan.target_reason, plan.target_fraction, true)),
            );
        }
        best
    }

    /// Books the exit of `hit` for `asset`: slippage on stops, limit-like targets never worse
    /// than their level; commission; the trade's exit reason. Not capped by volume
    /// participation (like a margin call). The asset's pending orders on the closing side then
    /// give way to the exit (see [`Self::yield_closing_orders`]).
    fn fill_level<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        asset: AssetId,
        hit: LevelHit,
        strategy: &mut S,
    ) -> Result<bool> {
        let held = self.portfolio.quantity(asset);
        let mut quantity = if hit.fraction >= 1.0 {
            -held
        } else {
            -held * hit.fraction
        };
        quantity = self.step_quantity(asset, quantity);
        if hit.limit_like {
            // The target was reached (even when it rounds to no whole share): a scaled exit
            // moves on to its next level.
            if let Some(risk) = self.risk.as_mut() {
                risk.record_target_exit(asset);
            }
        }
        if quantity == 0.0 {
            return Ok(false);
        }
        let row = self.bar_row[asset as usize];
        let price = if hit.limit_like {
            hit.reference.clamp(data.low()[row], data.high()[row])
        } else {
            self.slipped_price(data, row, quantity, hit.reference)?
        };
        let id = self.take_order_id();
        let order = Order {
            kind: hit.kind,
            reason: hit.reason,
            ..Order::market(id, asset, quantity, ts, self.timestamps)
        };
        self.accept_direct(&order, ts, OrderOrigin::RiskLevel);
        let fill = self.book_fill(
            ts,
            &order,
            quantity,
            (price, hit.reference),
            false,
            usize::MAX,
        );
        self.after_fill(&order, &fill);
        self.yield_closing_orders(asset, quantity, ts);
        strategy.on_fill(&fill, &self.portfolio)?;
        Ok(true)
    }

    /// After a level exit of `exited` shares of `asset`, its pending non-bracket orders on the
    /// same (closing) side give way: market and on-close orders give up the exited shares in
    /// submission order, so that position plus pending orders — what target sizing and the
    /// pre-trade checks counted — is unchanged (a pending close is cancelled, a flip still ends
    /// where it aimed); resting orders, never counted, are cut to the position left (cancelled
    /// once flat). Neither then sells (or buys back) what the exit already did.
    fn yield_closing_orders(&mut self, asset: AssetId, exited: f64, ts: Ts) {
        let left = self.portfolio.quantity(asset).abs();
        let mut give_up = exited.abs();
        let mut removed = false;
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if order.asset != asset
                || !order.active
                || order.parent != 0
                || order.quantity == 0.0
                || order.quantity.signum() != exited.signum()
            {
                continue;
            }
            let size = order.quantity.abs();
            let keep = if order.counts_as_pending() {
                let cut = size.min(give_up);
                give_up -= cut;
                size - cut
            } else {
                size.min(left)
            };
            if keep == size {
                continue;
            }
            if keep == 0.0 {
                self.book.mark_filled(index);
                self.emit_status(&order, ts, OrderStatus::Cancelled);
                removed = true;
            } else {
                self.book
                    .reduce(index, order.quantity.signum() * (size - keep));
            }
        }
        // The book is swept at the end of the pass this exit happened in.
        self.scratch.removed |= removed;
    }

    /// After marking: updates the portfolio state (`values`: the long and short market values
    /// the loop computed), runs the rules' timestamp hooks and evaluates the position rules on
    /// every held asset with a bar (only the positions not yet evaluated with `only_new`),
    /// storing their levels and queueing their exits.
    pub(super) fn risk_step(
        &mut self,
        step: Step,
        values: (f64, f64),
        only_new: bool,
    ) -> Result<()> {
        let Some(mut risk) = self.risk.take() else {
            return Ok(());
        };
        let result = self.run_risk_step(&mut risk, step, values, only_new);
        self.risk = Some(risk);
        result
    }

    fn run_risk_step(
        &mut self,
        risk: &mut RiskManager,
        step: Step,
        (long, short): (f64, f64),
        only_new: bool,
    ) -> Result<()> {
        let Step { data, ts, row } = step;
        // (With `only_new`, after this close's fills: the rules see the account after them.)
        let open = self.portfolio.open_assets().len();
        // Exposure is notional in base (a future's, not its unsettled PnL; at each rate).
        let exposure = if self.portfolio.has_contract_terms() {
            self.portfolio.exposures()
        } else {
            (long, short)
        };
        risk.update_portfolio(ts, self.portfolio.cash(), (long, short), exposure, open);
        if risk.has_order_rules() && !self.book.is_empty() {
            self.project_pending(risk);
        }
        if !only_new {
            risk.on_timestamp(ts, data, row)?;
        }
        if !risk.has_position_rules() || self.portfolio.open_assets().is_empty() {
            return Ok(());
        }
        let epoch = self.timestamps;
        risk.clear_views();
        for &asset in self.portfolio.open_assets() {
            let a = asset as usize;
            if self.bar_epoch[a] != epoch || (only_new && !risk.is_new(asset)) {
                continue;
            }
            let Some((entry_ts, entry_bar, mfe, mae)) = self.tracker.open_trade(asset) else {
                continue;
            };
            let position = self.portfolio.position(asset);
            risk.push_view(HeldPosition {
                asset,
                row: self.bar_row[a],
                quantity: position.quantity,
                entry_price: position.avg_cost,
                close: self.portfolio.last_price(asset),
                entry_ts,
                bars_held: self.bars_seen[a] - entry_bar,
                mfe,
                mae,
            });
        }
        risk.evaluate(ts, data, row)?;
        for i in 0..risk.plans().len() {
            let plan = &risk.plans()[i];
            if plan.exit_fraction > 0.0 {
                let (fraction, reason) = (plan.exit_fraction, plan.exit_reason);
                self.queue_exit(risk.views()[i].asset, fraction, reason, ts);
            }
        }
        Ok(())
    }

    /// Adds the market and on-close orders still pending from earlier steps (an asset that has
    /// had no bar since) to the pre-trade projection, valued at the last marks, so exposure and
    /// position-count limits see them as the sizing does.
    fn project_pending(&mut self, risk: &mut RiskManager) {
        let stamp = self.timestamps;
        let (mut gross, mut net, mut opening) = (0.0, 0.0, 0);
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            let a = order.asset as usize;
            if !order.counts_as_pending() || order.quantity == 0.0 || self.projected[a] == stamp {
                continue;
            }
            self.projected[a] = stamp;
            let price = self.portfolio.last_price(order.asset) * self.unit_scale(order.asset);
            let held = self.portfolio.quantity(order.asset);
            let pending = self.book.pending_quantity(order.asset);
            if !price.is_finite() || pending == 0.0 {
                continue;
            }
            gross += ((held + pending).abs() - held.abs()) * price;
            net += pending * price;
            opening += usize::from(held == 0.0);
        }
        risk.add_pending(gross, net, opening);
    }

    /// Queues a market order taking `asset`'s position down by `fraction`, net of the orders
    /// already pending for it (so a repeated decision does not exit twice).
    fn queue_exit(&mut self, asset: AssetId, fraction: f64, reason: ExitReason, ts: Ts) {
        let held = self.portfolio.quantity(asset);
        let mut target = held * (1.0 - fraction);
        target = self.step_quantity(asset, target);
        let quantity = target - self.current(asset);
        if quantity == 0.0 || quantity.signum() == held.signum() {
            return;
        }
        // Never past flat: an exit does not open the other side.
        let quantity = quantity.signum() * quantity.abs().min(held.abs());
        let id = self.take_order_id();
        let eligible = self.eligible_from(OrderKind::Market);
        let order = Order {
            reason,
            ..Order::market(id, asset, quantity, ts, eligible)
        };
        self.accept(order, ts, OrderOrigin::RiskExit);
    }

    /// Pre-trade risk check of a new order of `quantity` shares valued at `price_hint` (its
    /// limit or stop; NaN: the last close). Only the opening part is checked; a cut part is
    /// recorded as a `risk_limit` rejection. Returns the quantity to queue, `None` when nothing
    /// is left.
    pub(super) fn pre_trade(
        &mut self,
        step: Step,
        id: OrderId,
        asset: AssetId,
        quantity: f64,
        price_hint: f64,
    ) -> Result<Option<f64>> {
        let Some(risk) = self.risk.as_ref() else {
            return Ok(Some(quantity));
        };
        if !risk.has_order_rules() {
            return Ok(Some(quantity));
        }
        let current = self.current(asset);
        let closing = if current * quantity < 0.0 {
            quantity.signum() * quantity.abs().min(current.abs())
        } else {
            0.0
        };
        let opening = quantity - closing;
        if opening == 0.0 {
            return Ok(Some(quantity));
        }
        let position = current + closing;
        let price = if price_hint.is_finite() {
            price_hint
        } else {
            self.portfolio.last_price(asset)
        };
        let a = asset as usize;
        let row = (self.bar_epoch[a] == self.timestamps).then_some(self.bar_row[a]);
        // An asset never priced yet is checked at price NaN: rules that value the order (size,
        // exposure, volatility sizing) then reject it; the others decide as usual.
        let unit_value = price * self.unit_scale(asset);
        let risk = self.risk.as_mut().expect("checked above");
        let mut allowed = risk.check_order(
            step.ts,
            step.data,
            step.row,
            asset,
            opening,
            position,
            (price, unit_value),
            row,
        )?;
        allowed = self.step_quantity(asset, allowed);
        let total = closing + allowed;
        if allowed.abs() < opening.abs() {
            // What is left (if any) is accepted next: the cut leaves the order alive.
            let rest = (total != 0.0).then_some(total);
            let cut = opening - allowed;
            self.reject_part(id, step.ts, asset, cut, RejectReason::RiskLimit, rest);
        }
        Ok((total != 0.0).then_some(total))
    }

    /// Base value of one unit of `asset` per unit of its price: multiplier × its currency's
    /// rate (1 for a share in the base currency).
    #[inline]
    fn unit_scale(&self, asset: AssetId) -> f64 {
        self.portfolio.multiplier(asset) * self.portfolio.rate_of(asset)
    }
}
