//! Order status events, the vocabulary shared by [`crate::Strategy::on_order`] and the loop that
//! emits them: an order is accepted, partially filled, filled, cancelled, expired or rejected.
//! The order journal's finer statuses ([`JournalStatus`]) and an order's [`OrderOrigin`] are
//! the words of the run's order record (`result.orders`). The loop's queue and journal live in
//! `engine/events.rs`.

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

/// A status change as the order journal records it: [`OrderStatus`] with a modification, a
/// cut that leaves the order alive and a refused modification told apart (the strategy's
/// `on_order` sees them as `accepted`, `rejected` and `rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JournalStatus {
    /// Queued in the book (or, for an exit the engine books at once, created).
    Accepted = 0,
    /// Its remaining quantity, limit or stop changed by `modify_order` (or, for a target order
    /// sized at the fill, its quantity set at the fill bar).
    Modified = 1,
    /// A part was cut (see the reason); the rest stays open.
    Resized = 2,
    /// A modification it could not take (`invalid_modify`); unchanged.
    ModifyRejected = 3,
    /// Filled in part; the rest waits.
    PartiallyFilled = 4,
    /// Completely filled (terminal).
    Filled = 5,
    /// Cancelled by the strategy, by its bracket sibling, or because its position ended
    /// (terminal).
    Cancelled = 6,
    /// Its time in force ran out (terminal).
    Expired = 7,
    /// Refused, or still open when the data ended (terminal; see the reason).
    Rejected = 8,
}

impl JournalStatus {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 9] = [
        "accepted",
        "modified",
        "resized",
        "modify_rejected",
        "partially_filled",
        "filled",
        "cancelled",
        "expired",
        "rejected",
    ];

    /// Whether the order ends with this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JournalStatus::Filled
                | JournalStatus::Cancelled
                | JournalStatus::Expired
                | JournalStatus::Rejected
        )
    }
}

/// Who created an order. Codes are stable and mapped to names in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OrderOrigin {
    /// An explicit order of the strategy (`submit_order`).
    Strategy = 0,
    /// Target sizing: `order_target_*`, `close_position`, `rebalance`.
    Target = 1,
    /// A take-profit or stop-loss leg of a strategy's bracket.
    Bracket = 2,
    /// A risk rule's exit, queued as a market order.
    RiskExit = 3,
    /// A risk rule's stop, trailing-stop or target level reached inside a bar, filled at once.
    RiskLevel = 4,
    /// A margin-call liquidation at the close.
    MarginCall = 5,
    /// The ruin rule's liquidation of a position once equity reached zero.
    Ruin = 6,
    /// The close of a delisted asset's position at its last bar.
    Delisting = 7,
    /// The sale of the fractional share a split left in an integer-share account (cash in
    /// lieu).
    CorporateAction = 8,
    /// The close of a futures position at its contract's expiry.
    Expiry = 9,
    /// The sale of a long position to pay a withdrawal larger than the cash held.
    Withdrawal = 10,
}

impl OrderOrigin {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 11] = [
        "strategy",
        "target",
        "bracket",
        "risk_exit",
        "risk_level",
        "margin_call",
        "ruin",
        "delisting",
        "corporate_action",
        "expiry",
        "withdrawal",
    ];
}
