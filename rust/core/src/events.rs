//! Order status events, the vocabulary shared by [`crate::Strategy::on_order`] and the loop that
//! emits them: an order is accepted, partially filled, filled, cancelled, expired or rejected.
//! The loop's queue lives in `engine/events.rs`.

use crate::types::{AssetId, OrderId, RejectReason, Ts};

/// The life-cycle state an order moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OrderStatus {
    /// Queued in the book.
    Accepted = 0,
    /// Filled in part; the rest waits.
    PartiallyFilled = 1,
    /// Completely filled.
    Filled = 2,
    /// Cancelled by the strategy, by its bracket sibling, or because its position ended.
    Cancelled = 3,
    /// Its time in force ran out.
    Expired = 4,
    /// Refused (see the reason).
    Rejected = 5,
}

impl OrderStatus {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 6] = [
        "accepted",
        "partially_filled",
        "filled",
        "cancelled",
        "expired",
        "rejected",
    ];
}

/// One status change of one order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderEvent {
    /// The order.
    pub order_id: OrderId,
    /// When.
    pub ts: Ts,
    /// Asset.
    pub asset: AssetId,
    /// The new status.
    pub status: OrderStatus,
    /// Signed shares filled by this event (fills only; else 0).
    pub filled: f64,
    /// Signed shares still open after it.
    pub remaining: f64,
    /// Why, for rejections and expiries.
    pub reason: Option<RejectReason>,
}
