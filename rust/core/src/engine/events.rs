//! Emitting and delivering order events inside the loop: an event is queued only when the
//! strategy listens ([`crate::Strategy::wants_order_events`]) and the queue is delivered after
//! each step of the loop, in the order the events happened.

use super::Engine;
use crate::error::Result;
use crate::events::{OrderEvent, OrderStatus};
use crate::orders::Order;
use crate::strategy::Strategy;
use crate::types::{AssetId, OrderId, RejectReason, Ts};

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
}

impl Engine {
    /// Queues an event when the strategy listens.
    #[inline]
    pub(super) fn emit(&mut self, event: OrderEvent) {
        if self.events.listening {
            self.events.events.push(event);
        }
    }

    /// Queues a status change of `order` without a fill.
    #[inline]
    pub(super) fn emit_status(&mut self, order: &Order, ts: Ts, status: OrderStatus) {
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

    /// After a fill of `quantity` shares of `order` (its quantity before the fill): the
    /// `filled` / `partially_filled` event, then the cancellation of the bracket legs the fill
    /// orphaned (so a sibling's `cancelled` follows the fill that caused it). Runs before the
    /// order's own legs are activated.
    pub(super) fn after_fill(&mut self, order: &Order, ts: Ts, quantity: f64) {
        let remaining = order.quantity - quantity;
        self.emit(OrderEvent {
            order_id: order.id,
            ts,
            asset: order.asset,
            status: if remaining != 0.0 {
                OrderStatus::PartiallyFilled
            } else {
                OrderStatus::Filled
            },
            filled: quantity,
            remaining,
            reason: None,
        });
        self.cancel_legs_of_ended_position(ts);
    }

    /// Records a rejected (or expired) order and its event.
    pub(super) fn reject(
        &mut self,
        order_id: OrderId,
        ts: Ts,
        asset: AssetId,
        quantity: f64,
        reason: RejectReason,
    ) {
        if reason != RejectReason::NotPending && order_id != 0 {
            self.book.note_asset(order_id, asset);
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
