//! Emitting and delivering order events inside the loop: an event is queued only when the
//! strategy listens ([`crate::Strategy::wants_order_events`]) and the queue is delivered after
//! each step of the loop, in the order the events happened.
//!
//! The same places keep the order journal (`result.orders`, `result.order_events`) whether the
//! strategy listens or not: [`Engine::accept`] is the one way into the book and writes an
//! order's row; every status change after it passes through [`Engine::emit_status`],
//! [`Engine::after_fill`] or [`Engine::reject`], which append its event. An order refused
//! before it reached the book gets its row from the intent being resolved.

use super::Engine;
use crate::error::Result;
use crate::events::{JournalStatus, OrderEvent, OrderOrigin, OrderStatus};
use crate::orders::{Intent, Order, OrderState};
use crate::portfolio::is_dust;
use crate::records::Fill;
use crate::results::JournalEvent;
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, OrderId, RejectReason, Ts};

/// The order events not yet delivered; collected only while the strategy listens.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    /// Whether the strategy listens ([`Strategy::wants_order_events`]).
    listening: bool,
    events: Vec<OrderEvent>,
}

impl EventQueue {
    /// Starts (or stops) collecting events.
    pub(super) fn listen(&mut self, listening: bool) {
        self.listening = listening;
    }

    /// True when no event waits.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether events are collected (none ever waits otherwise).
    pub(super) fn listening(&self) -> bool {
        self.listening
    }
}

/// The order journal's working state (its tables are in the recorders).
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// Per order id: [`NO_ROW`], [`OPEN`] (its row is written) or [`ENDED`] (and its terminal
    /// event).
    state: Vec<u8>,
    /// The intent being resolved: the row of an order refused before it reached the book.
    deciding: Option<Intent>,
}

const NO_ROW: u8 = 0;
const OPEN: u8 = 1;
const ENDED: u8 = 2;

impl Journal {
    #[inline]
    fn state(&self, id: OrderId) -> u8 {
        self.state.get(id as usize).copied().unwrap_or(NO_ROW)
    }

    /// Whether order `id` has its row.
    #[inline]
    fn has_row(&self, id: OrderId) -> bool {
        self.state(id) != NO_ROW
    }

    /// Notes the state of order `id`.
    #[inline]
    fn mark(&mut self, id: OrderId, state: u8) {
        let slot = id as usize;
        if slot >= self.state.len() {
            let len = (slot + 1).max(2 * self.state.len());
            self.state.resize(len, NO_ROW);
        }
        self.state[slot] = state;
    }

    /// Whether a rejection of order `id` refuses a cancel or modification of it (the intent
    /// being resolved), not the order itself.
    fn refuses_request(&self, id: OrderId) -> bool {
        matches!(
            self.deciding,
            Some(Intent::Cancel { id: named } | Intent::Modify { id: named, .. }) if named == id
        )
    }

    /// The engine resolves `intent` next (see the module doc).
    #[inline]
    pub(super) fn decide(&mut self, intent: &Intent) {
        self.deciding = Some(*intent);
    }

    /// The intents are resolved: later rejections belong to orders already recorded.
    #[inline]
    pub(super) fn decided(&mut self) {
        self.deciding = None;
    }
}

impl Engine {
    /// Queues `order` in the book: its journal row (created by `origin`) and its `accepted`
    /// event.
    pub(super) fn accept(&mut self, mut order: Order, ts: Ts, origin: OrderOrigin) {
        if self.contracts.is_some() {
            order.kind = self.round_levels(order.asset, order.quantity, order.kind);
        }
        self.book.push(order);
        self.journal_accepted(&order, ts, origin);
        self.queue_status(&order, ts, OrderStatus::Accepted);
    }

    /// An order the engine books at once, outside the book (a risk level exit, a margin call):
    /// its journal row and `accepted` event; its fill follows.
    pub(super) fn accept_direct(&mut self, order: &Order, ts: Ts, origin: OrderOrigin) {
        self.book.note_asset(order.id, order.asset);
        self.journal_accepted(order, ts, origin);
    }

    fn journal_accepted(&mut self, order: &Order, ts: Ts, origin: OrderOrigin) {
        self.journal_row(order, origin);
        self.journal_event(JournalEvent::status(
            order.id,
            ts,
            JournalStatus::Accepted,
            0.0,
            order.quantity,
        ));
    }

    /// Writes the row of `order` unless it has one.
    fn journal_row(&mut self, order: &Order, origin: OrderOrigin) {
        if order.id != 0 && !self.journal.has_row(order.id) {
            self.journal.mark(order.id, OPEN);
            self.record.orders.push(order, origin);
        }
    }

    /// Who created `order`, for a row written without being told: a bracket leg, a margin
    /// call, an explicit order being resolved, or a target order.
    fn inferred_origin(&self, order: &Order) -> OrderOrigin {
        if order.parent != 0 {
            OrderOrigin::Bracket
        } else if order.reason == ExitReason::MarginCall {
            OrderOrigin::MarginCall
        } else if matches!(self.journal.deciding, Some(Intent::Submit { id, .. }) if id == order.id)
        {
            OrderOrigin::Strategy
        } else {
            OrderOrigin::Target
        }
    }

    /// The row of order `id`, refused before it reached the book, from the intent being
    /// resolved: an explicit order's type and time in force, else a target (market) order.
    fn journal_refused_row(&mut self, id: OrderId, ts: Ts, asset: AssetId, quantity: f64) {
        let mut order = Order::market(id, asset, quantity, ts, 0);
        let mut origin = OrderOrigin::Target;
        if let Some(Intent::Submit {
            id: submitted,
            request,
        }) = self.journal.deciding
        {
            if submitted == id {
                origin = OrderOrigin::Strategy;
                order.kind = request.kind;
                order.tif = request.tif;
                order.state = OrderState::new(request.kind, f64::NAN);
                if let crate::orders::OrderKind::TrailingStop { .. } = request.kind {
                    order.reason = ExitReason::TrailingStop;
                }
            }
        }
        self.journal_row(&order, origin);
    }

    /// Appends `event` to the journal, noting an order's end.
    fn journal_event(&mut self, event: JournalEvent) {
        if event.status.is_terminal() {
            self.journal.mark(event.order_id, ENDED);
        }
        self.record.order_events.push(&event);
    }

    /// A target order sized at the fill bar (`execution.sizing = "fill"`): `order` gets
    /// `quantity` now, journaled as a modification when it changes.
    pub(super) fn journal_sized_at_fill(&mut self, order: &Order, quantity: f64, ts: Ts) {
        if quantity != order.quantity {
            let event = JournalEvent::status(order.id, ts, JournalStatus::Modified, 0.0, quantity);
            self.journal_event(event);
        }
    }

    /// Queues an event when the strategy listens.
    #[inline]
    pub(super) fn emit(&mut self, event: OrderEvent) {
        if self.events.listening {
            self.events.events.push(event);
        }
    }

    /// Records a status change of `order` without a fill in the journal (`accepted` of an
    /// order with a row is its modification) and queues it for the strategy.
    pub(super) fn emit_status(&mut self, order: &Order, ts: Ts, status: OrderStatus) {
        let (status_now, quantity, remaining) = match status {
            OrderStatus::Accepted if self.journal.has_row(order.id) => {
                (JournalStatus::Modified, 0.0, order.quantity)
            }
            OrderStatus::Accepted => {
                let origin = self.inferred_origin(order);
                self.journal_row(order, origin);
                (JournalStatus::Accepted, 0.0, order.quantity)
            }
            // Fills pass through `after_fill`, which records their quantity and price.
            OrderStatus::PartiallyFilled => (JournalStatus::PartiallyFilled, 0.0, order.quantity),
            OrderStatus::Filled => (JournalStatus::Filled, 0.0, 0.0),
            OrderStatus::Cancelled => (JournalStatus::Cancelled, order.quantity, 0.0),
            OrderStatus::Expired => (JournalStatus::Expired, order.quantity, 0.0),
            OrderStatus::Rejected => (JournalStatus::Rejected, order.quantity, 0.0),
        };
        let mut event = JournalEvent::status(order.id, ts, status_now, quantity, remaining);
        if status_now == JournalStatus::Modified {
            event.limit = order.kind.limit_price();
            event.stop = order.kind.stop_price();
        }
        self.journal_event(event);
        self.queue_status(order, ts, status);
    }

    /// Queues a status change of `order` without a fill for the strategy.
    #[inline]
    fn queue_status(&mut self, order: &Order, ts: Ts, status: OrderStatus) {
        self.emit(OrderEvent {
            order_id: order.id,
            ts,
            asset: order.asset,
            status,
            filled: 0.0,
            remaining: if status == OrderStatus::Accepted {
                order.quantity
            } else {
                0.0
            },
            reason: None,
        });
    }

    /// After `fill` of `order` (as it stood before the fill): the `filled` /
    /// `partially_filled` event (a remainder that is float residue is none: the dust rule),
    /// then the cancellation of the bracket legs the fill orphaned (so a sibling's `cancelled`
    /// follows the fill that caused it). Runs before the order's own legs are activated.
    pub(super) fn after_fill(&mut self, order: &Order, fill: &Fill) {
        let (ts, quantity) = (fill.ts, fill.quantity);
        let mut remaining = order.quantity - quantity;
        if is_dust(remaining, order.quantity) {
            remaining = 0.0;
        }
        let (status, journal_status) = if remaining != 0.0 {
            (OrderStatus::PartiallyFilled, JournalStatus::PartiallyFilled)
        } else {
            (OrderStatus::Filled, JournalStatus::Filled)
        };
        if !self.journal.has_row(order.id) {
            // Booked without `accept_direct`: a margin call or a risk level exit.
            let origin = if order.reason == ExitReason::MarginCall {
                OrderOrigin::MarginCall
            } else {
                OrderOrigin::RiskLevel
            };
            self.journal_accepted(order, ts, origin);
        }
        self.journal_event(JournalEvent {
            price: fill.price,
            ..JournalEvent::status(order.id, ts, journal_status, quantity, remaining)
        });
        self.emit(OrderEvent {
            order_id: order.id,
            ts,
            asset: order.asset,
            status,
            filled: quantity,
            remaining,
            reason: None,
        });
        self.cancel_legs_of_ended_position(ts);
    }

    /// Records a rejected (or expired) order and its event. In the journal the rejection of a
    /// modification is `modify_rejected`; a `not_pending` rejection names no order of its own
    /// and is not journaled. A cut that leaves the order open is [`Self::reject_part`].
    pub(super) fn reject(
        &mut self,
        order_id: OrderId,
        ts: Ts,
        asset: AssetId,
        quantity: f64,
        reason: RejectReason,
    ) {
        self.reject_part(order_id, ts, asset, quantity, reason, None);
    }

    /// [`Self::reject`] of a part of an order: with `Some(rest)` the order lives on with `rest`
    /// signed shares (journaled as `resized`); `None` is a whole rejection.
    pub(super) fn reject_part(
        &mut self,
        order_id: OrderId,
        ts: Ts,
        asset: AssetId,
        quantity: f64,
        reason: RejectReason,
        rest: Option<f64>,
    ) {
        // Only ids the run issued are noted: a strategy's raw id (a cancel of 2^47) must not
        // size the id table.
        if reason != RejectReason::NotPending && order_id != 0 && order_id < self.ids.peek() {
            self.book.note_asset(order_id, asset);
            self.journal_rejection(order_id, ts, asset, quantity, reason, rest);
        }
        self.record
            .rejections
            .push(order_id, ts, asset, quantity, reason);
        let status = if reason == RejectReason::Expired {
            OrderStatus::Expired
        } else {
            OrderStatus::Rejected
        };
        self.emit(OrderEvent {
            order_id,
            ts,
            asset,
            status,
            filled: 0.0,
            remaining: 0.0,
            reason: Some(reason),
        });
    }

    /// The journal event of a rejection of `quantity` shares of order `id` (see
    /// [`Self::reject`]).
    fn journal_rejection(
        &mut self,
        id: OrderId,
        ts: Ts,
        asset: AssetId,
        quantity: f64,
        reason: RejectReason,
        rest: Option<f64>,
    ) {
        // A refused cancel or modification of an order (but one it cannot take, which the
        // order's history shows), or a rejection naming an order that has ended, is no event.
        let refused_request =
            self.journal.refuses_request(id) && reason != RejectReason::InvalidModify;
        if refused_request || self.journal.state(id) == ENDED {
            return;
        }
        let (status, cut, remaining) = if reason == RejectReason::InvalidModify {
            (JournalStatus::ModifyRejected, 0.0, quantity)
        } else if let Some(rest) = rest {
            (JournalStatus::Resized, quantity, rest)
        } else if reason == RejectReason::Expired {
            (JournalStatus::Expired, quantity, 0.0)
        } else {
            (JournalStatus::Rejected, quantity, 0.0)
        };
        if status.is_terminal() && !self.journal.has_row(id) {
            // Refused before it reached the book (a cut before it does is followed by its
            // acceptance, which writes the row).
            self.journal_refused_row(id, ts, asset, quantity);
        }
        // An order open when the data ended is rejected at the end, after all its fills.
        let ts = match (reason, self.last_ts) {
            (RejectReason::EndOfData, Some(last)) => ts.max(last),
            _ => ts,
        };
        self.journal_event(JournalEvent {
            reason: Some(reason),
            ..JournalEvent::status(id, ts, status, cut, remaining)
        });
    }

    /// Delivers the queued events to the strategy.
    pub(super) fn deliver_order_events<S: Strategy + ?Sized>(
        &mut self,
        strategy: &mut S,
    ) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.events.events);
        let mut result = Ok(());
        for event in &events {
            result = strategy.on_order(event, &self.portfolio);
            if result.is_err() {
                break;
            }
        }
        events.clear();
        self.events.events = events;
        result
    }
}
