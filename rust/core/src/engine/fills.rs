//! Filling pending orders against a bar: which orders trigger, in what order along the bar's
//! price path, at what price and for how many shares (volume participation), then the
//! bookkeeping after the bar (trailing water marks, armed stop-limits, DAY/IOC expiry).

use super::Engine;
use crate::config::ExecutionMode;
use crate::error::Result;
use crate::events::OrderStatus;
use crate::feed::MarketData;
use crate::matching::{limit_trigger, stop_trigger, BarPath};
use crate::orders::{Order, OrderKind, OrderState, TargetSize, TimeInForce, MAX_QUANTITY};
use crate::portfolio::is_dust;
use crate::records::Fill;
use crate::strategy::Strategy;
use crate::trades::TradeFill;
use crate::types::{AssetId, RejectReason, Side, Ts};

/// An order that executes on this bar: when along the path, at which reference price.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    time: f64,
    exit_rank: u8,
    source: CandidateSource,
    reference: f64,
    limit_like: bool,
}

/// Where a candidate comes from. The derived order is the last tie-break of the pass: book
/// orders (in book, that is submission, order) before the risk manager's level exits (in the
/// order they were found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CandidateSource {
    /// The order at this index of the book.
    Book(usize),
    /// The level exit in this slot of the pass's level hits.
    Level(usize),
}

/// The fill passes' working state, kept between bars so that a pass allocates nothing.
#[derive(Debug)]
pub(super) struct FillScratch {
    /// The pass's executable book orders and level exits.
    candidates: Vec<Candidate>,
    /// Book indexes of the stop-limits whose stop the pass reached (armed after it).
    armed: Vec<usize>,
    /// Bracket legs activated by the last fill, with the path time they start from.
    activated: Vec<(usize, f64)>,
    /// An order was removed during the current pass (cut to nothing at fill time), so the
    /// book needs a sweep.
    pub(super) removed: bool,
    /// Set by a fill that ended a position: (asset, index of the executing order).
    ended_position: Option<(AssetId, usize)>,
}

impl FillScratch {
    /// Empty scratch, with room for a typical pass.
    pub(super) fn new() -> Self {
        FillScratch {
            candidates: Vec::with_capacity(64),
            armed: Vec::new(),
            activated: Vec::new(),
            removed: false,
            ended_position: None,
        }
    }
}

/// What an order's condition does on this bar.
enum Trigger {
    /// It executes at `reference` at path time `time`.
    Fill {
        time: f64,
        reference: f64,
        limit_like: bool,
    },
    /// A stop-limit whose stop was reached but whose limit was not: it rests as a limit.
    Armed,
    /// Nothing happens.
    Wait,
}

impl Candidate {
    /// A risk level exit (an exit) in slot `slot` of the pass's level hits.
    pub(super) fn level(time: f64, reference: f64, slot: usize) -> Self {
        Candidate {
            time,
            exit_rank: 0,
            source: CandidateSource::Level(slot),
            reference,
            limit_like: false,
        }
    }
}

/// Path time, then exits before entries, then the source (book orders in submission order,
/// then level exits).
fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        a.time
            .total_cmp(&b.time)
            .then(a.exit_rank.cmp(&b.exit_rank))
            .then(a.source.cmp(&b.source))
    });
}

/// +1, -1 or 0 (`f64::signum` gives 1 for 0).
#[inline]
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Whether a bar with this `low`/`high` can trigger `order` at all (a necessary condition;
/// [`Engine::trigger`] decides exactly).
#[inline]
fn reachable(order: &Order, bar: [f64; 3], limit_fill: crate::matching::LimitFill) -> bool {
    let [open, low, high] = bar;
    let buy = order.quantity > 0.0;
    let stop_hit = |stop: f64| if buy { high >= stop } else { low <= stop };
    // An open already better than the limit fills (gap rule) whatever the through rule says.
    let limit_hit = |limit: f64| {
        let margin = limit_fill.margin(limit);
        // With a through rule an open *at* the limit is only a touch.
        let strict = margin > 0.0;
        if buy {
            (open < limit || (!strict && open == limit)) || low <= limit - margin
        } else {
            (open > limit || (!strict && open == limit)) || high >= limit + margin
        }
    };
    match order.kind {
        OrderKind::Market | OrderKind::MarketOnClose => true,
        OrderKind::Limit { limit } => limit_hit(limit),
        OrderKind::Stop { stop } => stop_hit(stop),
        OrderKind::StopLimit { stop, limit } => {
            if order.armed() {
                limit_hit(limit)
            } else {
                stop_hit(stop)
            }
        }
        OrderKind::TrailingStop { trail } => order
            .water_mark()
            .is_some_and(|mark| stop_hit(trail.level(mark, !buy))),
    }
}

/// Which pass of the timestamp is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Step 1: every eligible order against the whole bar.
    Bar,
    /// Same-close mode, after the strategy: this bar's market and on-close orders at the close.
    Close,
}

impl Engine {
    /// Step 1: fills eligible orders against this timestamp's bars. Returns whether anything
    /// filled.
    pub(super) fn bar_pass<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<bool> {
        self.run_stage(data, ts, Stage::Bar, strategy)
    }

    /// Same-close mode, after the strategy: fills this bar's market and on-close orders at the
    /// close.
    pub(super) fn close_pass<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<bool> {
        self.run_stage(data, ts, Stage::Close, strategy)
    }

    fn run_stage<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        stage: Stage,
        strategy: &mut S,
    ) -> Result<bool> {
        let epoch = self.timestamps;
        self.scratch.armed.clear();
        let mut candidates = std::mem::take(&mut self.scratch.candidates);
        candidates.clear();
        // Only DAY/IOC, trailing and stop-limit orders need the after-bar bookkeeping.
        let mut needs_settle = false;
        // The account's value at this bar's reference prices, before any of its fills: taken
        // once, when the first fill-time-sized order is due.
        let mut account_value = None;
        for index in 0..self.book.orders().len() {
            let order = &self.book.orders()[index];
            needs_settle |= order.tif != TimeInForce::Gtc
                || matches!(
                    order.kind,
                    OrderKind::TrailingStop { .. } | OrderKind::StopLimit { .. }
                );
            if let Some(target) = order.target() {
                let order = *order;
                if self.due(&order, stage) {
                    let value = *account_value.get_or_insert_with(|| self.value_at(data, stage));
                    self.size_at_fill(data, stage, index, target, value, ts);
                }
            }
            self.consider(data, stage, index, 0.0, &mut candidates);
        }
        if stage == Stage::Bar && self.risk.is_some() {
            self.consider_levels(data, &mut candidates);
        }
        if candidates.is_empty() && !needs_settle && !self.scratch.removed {
            // Nothing executes on this bar and nothing needs its after-bar bookkeeping (the
            // common case with only risk levels live).
            self.scratch.candidates = candidates;
            return Ok(false);
        }
        let mut filled_any = false;
        if candidates.len() > 1 {
            sort_candidates(&mut candidates);
        }
        let mut next = 0;
        while next < candidates.len() {
            let candidate = candidates[next];
            next += 1;
            let index = match candidate.source {
                CandidateSource::Book(index) => index,
                CandidateSource::Level(slot) => {
                    filled_any |= self.execute_level(data, ts, slot, strategy)?;
                    continue;
                }
            };
            self.scratch.activated.clear();
            filled_any |= self.execute(data, ts, index, candidate, strategy)?;
            if !self.scratch.activated.is_empty() {
                // Bracket legs activated by this fill join the queue at their own path times.
                let activated = std::mem::take(&mut self.scratch.activated);
                for &(index, time) in &activated {
                    self.consider(data, stage, index, time, &mut candidates);
                }
                self.scratch.activated = activated;
                sort_candidates(&mut candidates[next..]);
            }
        }
        candidates.clear();
        self.scratch.candidates = candidates;
        let expired = needs_settle && self.settle(data, epoch, stage, ts);
        if filled_any || expired || self.scratch.removed {
            self.book.sweep();
            self.scratch.removed = false;
        }
        Ok(filled_any)
    }

    /// Adds order `index` to `candidates` if it executes on this bar from path time `from`.
    fn consider(
        &mut self,
        data: &MarketData,
        stage: Stage,
        index: usize,
        from: f64,
        candidates: &mut Vec<super::fills::Candidate>,
    ) {
        let epoch = self.timestamps;
        let order = self.book.orders()[index];
        let asset = order.asset as usize;
        if order.quantity == 0.0
            || !order.active
            || order.eligible_from > epoch
            || self.bar_epoch[asset] != epoch
        {
            return;
        }
        if self.stage_of(&order) != stage {
            return;
        }
        if self.sessions.on
            && matches!(order.kind, OrderKind::MarketOnClose)
            && !self.sessions.at_close
        {
            return; // with sessions, on-close means the session's close
        }
        let row = self.bar_row[asset];
        let bar = [data.open()[row], data.low()[row], data.high()[row]];
        // The pre-check reasons from the open; a leg activated inside the bar starts elsewhere.
        if from == 0.0 && !reachable(&order, bar, self.config.limit_fill) {
            return; // the bar never reaches the order's level: the common case, decided cheaply
        }
        let held = self.portfolio.quantity(order.asset);
        let mut path = BarPath::new(
            data.open()[row],
            data.high()[row],
            data.low()[row],
            data.close()[row],
            self.config.path_policy,
            sign(held),
        );
        if self.sessions.on && !self.sessions.opens(order.asset) {
            path = path.continuous();
        }
        match self.trigger(&order, &path, from, stage) {
            Trigger::Fill {
                time,
                reference,
                limit_like,
            } => {
                let exit = held != 0.0
                    && held.signum() != order.quantity.signum()
                    && order.quantity.abs() <= held.abs();
                candidates.push(Candidate {
                    time,
                    exit_rank: u8::from(!exit),
                    source: CandidateSource::Book(index),
                    reference,
                    limit_like,
                });
            }
            Trigger::Armed => self.scratch.armed.push(index),
            Trigger::Wait => {}
        }
    }

    /// Whether `order` may execute in this stage of this timestamp (eligible, its asset has a
    /// bar now, the stage is its own).
    fn due(&self, order: &Order, stage: Stage) -> bool {
        let epoch = self.timestamps;
        order.is_live()
            && order.active
            && order.eligible_from <= epoch
            && self.bar_epoch[order.asset as usize] == epoch
            && self.stage_of(order) == stage
    }

    /// The price a market order of `asset` executes at in this stage (before slippage): the
    /// close in the close stage or in next-close mode, the open otherwise; an asset without a
    /// bar now keeps its last mark.
    fn reference_price(&self, data: &MarketData, stage: Stage, asset: AssetId) -> f64 {
        let a = asset as usize;
        if self.bar_epoch[a] != self.timestamps {
            return self.portfolio.last_price(asset);
        }
        let row = self.bar_row[a];
        if stage == Stage::Close || self.config.execution == ExecutionMode::NextClose {
            data.close()[row]
        } else {
            data.open()[row]
        }
    }

    /// V′: cash plus every position at its reference price in this stage.
    fn value_at(&self, data: &MarketData, stage: Stage) -> f64 {
        let mut value = self.portfolio.cash();
        if self.portfolio.has_contract_terms() {
            for &asset in self.portfolio.open_assets() {
                value += self
                    .portfolio
                    .value_at(asset, self.reference_price(data, stage, asset));
            }
            return value;
        }
        for &asset in self.portfolio.open_assets() {
            value += self.portfolio.quantity(asset) * self.reference_price(data, stage, asset);
        }
        value
    }

    /// Re-sizes the fill-time-sized order at `index` to `target` at its reference price, the
    /// account being worth `value`: the target less what is held and what other pending orders
    /// of the asset will add. An order left with nothing to do is cancelled, and so is a partly
    /// filled one the re-size would turn to the other side (its target passed); one that cannot be
    /// sized (not finite) is a `numeric_overflow`; without shorting it stops at flat.
    fn size_at_fill(
        &mut self,
        data: &MarketData,
        stage: Stage,
        index: usize,
        target: TargetSize,
        value: f64,
        ts: Ts,
    ) {
        let order = self.book.orders()[index];
        let held = self.portfolio.quantity(order.asset);
        let others = self.book.pending_quantity(order.asset) - order.quantity;
        let reference = self.reference_price(data, stage, order.asset);
        let unit = reference
            * self.portfolio.multiplier(order.asset)
            * self.portfolio.rate_of(order.asset);
        let shares = target.shares(value, unit);
        let mut quantity = shares - held - others;
        quantity = self.step_quantity(order.asset, quantity);
        if !quantity.is_finite() || quantity.abs() > MAX_QUANTITY {
            self.reject(
                order.id,
                ts,
                order.asset,
                quantity,
                RejectReason::NumericOverflow,
            );
            self.book.mark_filled(index);
            self.scratch.removed = true;
            return;
        }
        if !self.config.shorting_allowed() && held + others + quantity < 0.0 {
            quantity = -(held + others).max(0.0);
        }
        let passed = matches!(order.state, OrderState::Target { filled: true, .. })
            && quantity.signum() != order.quantity.signum();
        if passed || quantity == 0.0 || is_dust(quantity, shares.abs().max(held.abs())) {
            self.book.mark_filled(index);
            self.emit_status(&order, ts, OrderStatus::Cancelled);
            self.scratch.removed = true;
            return;
        }
        self.book.set_quantity(index, quantity);
        self.journal_sized_at_fill(&order, quantity, ts);
    }

    /// The stage in which `order` can execute: in same-close mode market and on-close orders
    /// fill only in the close stage (after the strategy); everything else against whole bars.
    fn stage_of(&self, order: &Order) -> Stage {
        let at_close_kind = matches!(order.kind, OrderKind::Market | OrderKind::MarketOnClose);
        if at_close_kind && self.config.execution == ExecutionMode::SameClose {
            Stage::Close
        } else {
            Stage::Bar
        }
    }

    fn trigger(&self, order: &Order, path: &BarPath, from: f64, stage: Stage) -> Trigger {
        let side = Side::of(order.quantity);
        let fill = |(time, reference): (f64, f64), limit_like: bool| Trigger::Fill {
            time,
            reference,
            limit_like,
        };
        let at_close = (3.0, path.close());
        match order.kind {
            OrderKind::Market => {
                let time =
                    if stage == Stage::Close || self.config.execution != ExecutionMode::NextOpen {
                        3.0
                    } else {
                        from
                    };
                fill((time, path.price_at(time)), false)
            }
            OrderKind::MarketOnClose => fill(at_close, false),
            OrderKind::Limit { limit } => {
                match limit_trigger(path, side, limit, self.config.limit_fill, from) {
                    Some(hit) => fill(hit, true),
                    None => Trigger::Wait,
                }
            }
            OrderKind::Stop { stop } => match stop_trigger(path, side, stop, from) {
                Some(hit) => fill(hit, false),
                None => Trigger::Wait,
            },
            OrderKind::StopLimit { stop, limit } => {
                if order.armed() {
                    return match limit_trigger(path, side, limit, self.config.limit_fill, from) {
                        Some(hit) => fill(hit, true),
                        None => Trigger::Wait,
                    };
                }
                match stop_trigger(path, side, stop, from) {
                    Some((time, price)) => {
                        let within = match side {
                            Side::Buy => price <= limit,
                            Side::Sell => price >= limit,
                        };
                        if within {
                            fill((time, price), true)
                        } else {
                            Trigger::Armed
                        }
                    }
                    None => Trigger::Wait,
                }
            }
            OrderKind::TrailingStop { trail } => {
                let Some(mark) = order.water_mark() else {
                    return Trigger::Wait;
                };
                let level = trail.level(mark, side == Side::Sell);
                match stop_trigger(path, side, level, from) {
                    Some(hit) => fill(hit, false),
                    None => Trigger::Wait,
                }
            }
        }
    }

    /// Executes `candidate`, the book's order at `index` (capped by volume participation), and
    /// books it.
    fn execute<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        index: usize,
        candidate: Candidate,
        strategy: &mut S,
    ) -> Result<bool> {
        let order = self.book.orders()[index];
        if order.quantity == 0.0 || !order.active {
            return Ok(false); // cancelled by its OCO sibling earlier in this bar
        }
        if !self.cap_at_flat(index, ts) {
            return Ok(false);
        }
        if self.members.reject && !self.cap_non_member(index, ts) {
            return Ok(false);
        }
        let order = self.book.orders()[index];
        let row = self.bar_row[order.asset as usize];
        let mut quantity = order.quantity;
        if let Some(fraction) = self.config.max_volume_fraction {
            let mut cap = fraction * data.volume()[row];
            cap = self.step_quantity(order.asset, cap);
            if cap <= 0.0 {
                return Ok(false);
            }
            if quantity.abs() > cap {
                quantity = cap * quantity.signum();
            }
        }
        let (low, high) = (data.low()[row], data.high()[row]);
        let mut price = if candidate.limit_like {
            candidate.reference.clamp(low, high)
        } else {
            self.slipped_price(data, row, quantity, candidate.reference)?
        };
        if self.contracts.is_some() && !candidate.limit_like {
            price = self.round_fill(order.asset, quantity, price, (low, high));
        }
        if self.overflows(order.asset, quantity, price) {
            self.reject(
                order.id,
                ts,
                order.asset,
                order.quantity,
                RejectReason::NumericOverflow,
            );
            self.book.mark_filled(index);
            self.scratch.removed = true;
            return Ok(false);
        }
        let Some(quantity) = self.afford(index, quantity, price, ts) else {
            return Ok(false);
        };
        let order = self.book.orders()[index]; // `afford` may have shrunk it
                                               // A remainder that is float residue of a resize or cap is no remainder (the dust rule).
        let partial = !is_dust(order.quantity - quantity, order.quantity);
        let fill = self.book_fill(
            ts,
            &order,
            quantity,
            (price, candidate.reference),
            partial,
            index,
        );
        self.after_fill(&order, &fill);
        if partial {
            self.book.reduce(index, quantity);
            if let OrderState::Target { filled, .. } = &mut self.book.order_mut(index).state {
                *filled = true;
            }
        } else {
            self.book.mark_filled(index);
            self.activate_legs(order.id, index, candidate.time);
        }
        if order.oco != 0 {
            self.reduce_sibling(order.oco, quantity, ts);
        }
        strategy.on_fill(&fill, &self.portfolio)?;
        Ok(true)
    }

    /// The price of a market-like fill of `quantity` (signed) shares at `reference` on row
    /// `row`: the slippage model's, clamped into the bar, with the columns bound for this chunk.
    #[inline]
    pub(super) fn slipped_price(
        &self,
        data: &MarketData,
        row: usize,
        quantity: f64,
        reference: f64,
    ) -> Result<f64> {
        let side = Side::of(quantity);
        let columns = self.slippage_columns;
        self.config
            .slippage
            .fill_price_in(columns, data, row, side, quantity, reference)
    }

    /// Books a fill of `quantity` shares of `order` at `price` (referenced to `reference`):
    /// commission, cash and position, the trade tracker, orphaned bracket legs (except the
    /// order at `executing`, once [`Self::cancel_legs_of_ended_position`] runs), the fill record.
    pub(super) fn book_fill(
        &mut self,
        ts: Ts,
        order: &Order,
        quantity: f64,
        prices: (f64, f64),
        partial: bool,
        executing: usize,
    ) -> Fill {
        let fee = self.fee(order.asset, quantity, prices.0);
        self.book_fill_at_fee(ts, order, quantity, prices, partial, executing, fee)
    }

    /// [`Self::book_fill`] with the fee given (none for a cash-in-lieu sale).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn book_fill_at_fee(
        &mut self,
        ts: Ts,
        order: &Order,
        quantity: f64,
        (price, reference): (f64, f64),
        partial: bool,
        executing: usize,
        fee: f64,
    ) -> Fill {
        let prior_close = self.portfolio.last_price(order.asset);
        let before = self
            .members
            .on
            .then(|| (self.portfolio.cash(), self.portfolio.value(order.asset)));
        let effect = self.portfolio.apply_fill(order.asset, quantity, price, fee);
        if let Some((cash, value)) = before {
            // The PnL of a position in a non-member counts its fills' cash.
            let moved = self.portfolio.cash() - cash;
            self.members.cash_moved(order.asset, moved, value);
        }
        if let Some(risk) = self.risk.as_mut() {
            let avg_cost = self.portfolio.position(order.asset).avg_cost;
            risk.on_fill(
                order.asset,
                effect.before,
                effect.after,
                price,
                avg_cost,
                prior_close,
            );
        }
        let position_ended = effect.before != 0.0
            && (effect.after == 0.0 || effect.after.signum() != effect.before.signum());
        let mut slippage = (price - reference).abs() * quantity.abs();
        if self.contracts.is_some() {
            slippage *= self.portfolio.multiplier(order.asset);
        }
        let closed = self.tracker.on_fill(
            TradeFill {
                asset: order.asset,
                ts,
                bar: self.bars_seen[order.asset as usize],
                quantity,
                price,
                fee,
                slippage,
                reason: order.reason,
                multiplier: self.portfolio.multiplier(order.asset),
                rate: self.portfolio.rate_of(order.asset),
            },
            effect,
        );
        if let Some(trade) = closed {
            self.record.trades.push(&trade);
        }
        let fill = Fill {
            order_id: order.id,
            ts,
            asset: order.asset,
            quantity,
            price,
            reference_price: reference,
            slippage,
            commission: fee,
            multiplier: self.portfolio.multiplier(order.asset),
            order_type: order.fill_type(),
            partial,
        };
        self.record.fills.push(&fill);
        if position_ended {
            self.scratch.ended_position = Some((order.asset, executing));
        }
        fill
    }

    /// Cancels the bracket legs orphaned by the last booked fill (after its own events).
    pub(super) fn cancel_legs_of_ended_position(&mut self, ts: Ts) {
        if let Some((asset, executing)) = self.scratch.ended_position.take() {
            self.cancel_orphan_legs(asset, executing, ts);
        }
    }

    /// Bracket legs are exits and never open a position; with shorting disabled no sell goes
    /// below flat. Such an order is cut at the position held now (a bracket leg silently, as the
    /// position it protects shrank; a sell with a `short_not_allowed` rejection for the cut
    /// part). Returns false when nothing is left and the order was removed.
    fn cap_at_flat(&mut self, index: usize, ts: Ts) -> bool {
        let order = self.book.orders()[index];
        let is_leg = order.parent != 0;
        let no_short_sell = !self.config.shorting_allowed() && order.quantity < 0.0;
        if !is_leg && !no_short_sell {
            return true;
        }
        let held = self.portfolio.quantity(order.asset);
        let room = if held.signum() != order.quantity.signum() && held != 0.0 {
            held.abs()
        } else {
            0.0
        };
        if order.quantity.abs() <= room || is_dust(order.quantity.abs() - room, room) {
            return true;
        }
        let excess = order.quantity - room * order.quantity.signum();
        if no_short_sell && !is_leg {
            let rest = (room != 0.0).then(|| room * order.quantity.signum());
            let reason = RejectReason::ShortNotAllowed;
            self.reject_part(order.id, ts, order.asset, excess, reason, rest);
        }
        if room == 0.0 {
            self.book.mark_filled(index);
            self.scratch.removed = true;
            if is_leg {
                self.emit_status(&order, ts, OrderStatus::Cancelled);
            } else {
                self.cancel_waiting_legs(order.id, index, ts);
            }
            return false;
        }
        // Set, not reduced by `excess`: `q - (q - room)` is 0 when `room` is tiny next to `q`.
        self.book
            .set_quantity(index, room * order.quantity.signum());
        true
    }

    /// Cancels the waiting (inactive) bracket legs of entry `entry_id`, removed unfilled: they
    /// could never activate.
    pub(super) fn cancel_waiting_legs(&mut self, entry_id: u64, entry_index: usize, ts: Ts) {
        if !self.book.has_legs() {
            return;
        }
        for index in entry_index + 1..self.book.orders().len() {
            let leg = self.book.orders()[index];
            if leg.parent == entry_id && !leg.active {
                self.book.mark_filled(index);
                self.emit_status(&leg, ts, OrderStatus::Cancelled);
            }
        }
    }

    /// Activates the bracket legs of entry `entry_id` (now fully filled), from path time `time`.
    fn activate_legs(&mut self, entry_id: u64, entry_index: usize, time: f64) {
        if !self.book.has_legs() {
            return;
        }
        let count = self.book.orders().len();
        for index in entry_index + 1..count {
            let leg = self.book.orders()[index];
            if leg.parent == entry_id && !leg.active {
                self.book.activate(index, leg.quantity);
                self.scratch.activated.push((index, time));
            }
        }
    }

    /// Once a position is flat or has flipped, the bracket legs that protected it would open a
    /// new position: they are cancelled.
    fn cancel_orphan_legs(&mut self, asset: AssetId, executing: usize, ts: Ts) {
        if !self.book.has_legs() {
            return;
        }
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if index != executing
                && order.asset == asset
                && order.parent != 0
                && order.active
                && order.quantity != 0.0
            {
                self.book.mark_filled(index);
                self.emit_status(&order, ts, OrderStatus::Cancelled);
            }
        }
    }

    /// A fill of one bracket leg shrinks (or cancels) the other by the same quantity.
    fn reduce_sibling(&mut self, sibling: u64, filled: f64, ts: Ts) {
        if let Some(index) = self.book.position_of(sibling) {
            let order = self.book.orders()[index];
            let excess = order.quantity.abs() - filled.abs();
            if excess <= 0.0 || is_dust(excess, filled) {
                self.book.mark_filled(index);
                self.emit_status(&order, ts, OrderStatus::Cancelled);
            } else {
                self.book.reduce(index, filled);
            }
        }
    }

    /// After a pass: arm stop-limits, move trailing water marks with this bar's extremes, and
    /// expire DAY/IOC orders that had their chance. Returns whether anything was removed.
    fn settle(&mut self, data: &MarketData, epoch: u64, stage: Stage, ts: Ts) -> bool {
        for i in 0..self.scratch.armed.len() {
            let index = self.scratch.armed[i];
            self.book.order_mut(index).state = OrderState::StopLimit { armed: true };
        }
        let mut removed = false;
        let session_closes = self.sessions.on && self.sessions.closes_at(ts);
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if order.quantity == 0.0 || !order.active {
                continue;
            }
            let asset = order.asset as usize;
            if stage == Stage::Bar && self.bar_epoch[asset] == epoch {
                if let OrderState::TrailingStop { water_mark } =
                    &mut self.book.order_mut(index).state
                {
                    let row = self.bar_row[asset];
                    *water_mark = if order.quantity < 0.0 {
                        water_mark.max(data.high()[row])
                    } else {
                        water_mark.min(data.low()[row])
                    };
                }
            }
            // DAY/IOC orders live for the first bar *of their asset* they are eligible for;
            // with sessions, a DAY order lives to the close of its first eligible session.
            let over = if order.tif == TimeInForce::Day && self.sessions.on {
                session_closes
            } else {
                self.bar_epoch[asset] == epoch
            };
            if order.tif != TimeInForce::Gtc
                && order.eligible_from <= epoch
                && over
                && self.stage_of(&order) == stage
            {
                self.reject(
                    order.id,
                    ts,
                    order.asset,
                    order.quantity,
                    RejectReason::Expired,
                );
                self.expire_entry_legs(index, ts);
                self.book.mark_filled(index);
                removed = true;
            }
        }
        removed
    }

    /// An entry that ends partly filled gives its legs the filled quantity; unfilled, it takes
    /// them away.
    fn expire_entry_legs(&mut self, entry_index: usize, ts: Ts) {
        if !self.book.has_legs() {
            return;
        }
        let entry = self.book.orders()[entry_index];
        for index in entry_index + 1..self.book.orders().len() {
            let leg = self.book.orders()[index];
            if leg.parent != entry.id || leg.active {
                continue;
            }
            // The leg was planned as -(original entry); the entry still has `entry.quantity`.
            let quantity = leg.quantity + entry.quantity;
            if quantity.abs() > 0.0 && quantity.signum() == leg.quantity.signum() {
                self.book.activate(index, quantity);
            } else {
                self.book.mark_filled(index);
                self.emit_status(&leg, ts, OrderStatus::Cancelled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CandidateSource::{Book, Level};

    #[test]
    fn book_orders_come_before_level_exits_then_in_their_own_order() {
        assert!(Book(usize::MAX) < Level(0));
        assert!(Book(1) < Book(2));
        assert!(Level(1) < Level(2));
    }
}
