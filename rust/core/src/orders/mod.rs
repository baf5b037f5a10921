//! Orders: the vocabulary of an order (its [`OrderKind`], [`Trail`] and [`TimeInForce`]), the
//! [`OrderRequest`] a strategy submits and the accepted [`Order`] the book holds. The two rooms
//! an order passes through have their own files:
//!
//! - `intents.rs`: [`Intent`] and [`CommandBuffer`], a strategy's outbox, checked at submission
//!   and drained by the engine after the callback;
//! - `book.rs`: [`OrderBook`], the accepted orders waiting to fill, in submission order.

mod book;
mod intents;

pub use book::OrderBook;
pub use intents::{CommandBuffer, Intent, OrderIds};

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
    ///
    /// Two more names follow the kinds: `delisting`, the type of the fill that closes a
    /// delisted asset's position, and `cash_in_lieu`, the sale of the fractional share a split
    /// left in an integer-share account ([`Order::fill_type`]; no order of either kind is ever
    /// placed).
    pub const NAMES: [&'static str; 8] = [
        "market",
        "limit",
        "stop",
        "stop_limit",
        "market_on_close",
        "trailing_stop",
        "delisting",
        "cash_in_lieu",
    ];

    /// The type code of a delisting close.
    pub const DELISTING: u8 = 6;

    /// The type code of a cash-in-lieu sale (the last of [`Self::NAMES`]).
    pub const CASH_IN_LIEU: u8 = 7;

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

    /// The limit price (limit and stop-limit orders), else NaN.
    pub fn limit_price(&self) -> f64 {
        match *self {
            OrderKind::Limit { limit } | OrderKind::StopLimit { limit, .. } => limit,
            _ => f64::NAN,
        }
    }

    /// The stop price (stop and stop-limit orders), else NaN.
    pub fn stop_price(&self) -> f64 {
        match *self {
            OrderKind::Stop { stop } | OrderKind::StopLimit { stop, .. } => stop,
            _ => f64::NAN,
        }
    }

    /// A trailing stop's distance as (amount, percent), the one it does not have NaN.
    pub fn trail_distance(&self) -> (f64, f64) {
        match *self {
            OrderKind::TrailingStop {
                trail: Trail::Amount(a),
            } => (a, f64::NAN),
            OrderKind::TrailingStop {
                trail: Trail::Percent(p),
            } => (f64::NAN, p),
            _ => (f64::NAN, f64::NAN),
        }
    }
}

/// The largest order quantity (2^53 shares): beyond it an `f64` no longer holds every whole
/// share, so fills and positions would silently lose shares.
pub const MAX_QUANTITY: f64 = 9_007_199_254_740_992.0;

/// `quantity: too_large: ...` when `|quantity|` exceeds [`MAX_QUANTITY`].
pub(crate) fn check_magnitude(quantity: f64) -> Result<()> {
    if quantity.abs() > MAX_QUANTITY {
        return Err(BacktestError::order(
            "quantity",
            format!(
                "too_large: |{:e}| exceeds 2^53 (9007199254740992) shares",
                quantity.abs()
            ),
        ));
    }
    Ok(())
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

impl TimeInForce {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 3] = ["gtc", "day", "ioc"];

    /// Stable code (index into [`Self::NAMES`]).
    pub fn code(self) -> u8 {
        match self {
            TimeInForce::Gtc => 0,
            TimeInForce::Day => 1,
            TimeInForce::Ioc => 2,
        }
    }
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
        check_magnitude(quantity)?;
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
    /// What the loop tracks for this kind of order beyond its request.
    pub state: OrderState,
}

/// The per-kind state of an accepted order: what the loop learns about it while it waits, which
/// the request cannot say. It sits beside [`Order::kind`] rather than inside [`OrderKind`] so
/// that a request names only what the strategy decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderState {
    /// Market, limit, stop and market-on-close orders track nothing.
    Stateless,
    /// A trailing stop's water mark: the best price since placement (the highest high for a
    /// sell stop, the lowest low for a buy stop), which its stop level trails by its [`Trail`].
    TrailingStop {
        /// The best price so far.
        water_mark: f64,
    },
    /// A stop-limit's trigger.
    StopLimit {
        /// True once a bar reached the stop without reaching the limit: the order now rests
        /// as a limit order.
        armed: bool,
    },
    /// A market order sized when its fill bar begins (fill-time target sizing, ruin
    /// liquidations): its quantity is the decision-time estimate until then.
    Target {
        /// What the position should be worth.
        target: TargetSize,
        /// Whether part of it has filled: its side is then fixed, and a re-size to the other
        /// side (the target passed) ends it instead of turning it into the opposite trade.
        filled: bool,
    },
}

/// A target a fill-time-sized order aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetSize {
    /// This market value (0: flat).
    Value(f64),
    /// This fraction of the account's value at the fill bar's reference prices.
    Fraction(f64),
}

impl TargetSize {
    /// The target position in shares at `price`, the account being worth `account_value`.
    #[inline]
    pub fn shares(&self, account_value: f64, price: f64) -> f64 {
        match *self {
            TargetSize::Value(value) => value / price,
            TargetSize::Fraction(fraction) => fraction * account_value / price,
        }
    }
}

impl OrderState {
    /// The state a new order of `kind` starts with; `water_mark` is the trailing stop's first
    /// mark (the last close at placement) and is ignored for other kinds.
    #[inline]
    pub fn new(kind: OrderKind, water_mark: f64) -> Self {
        match kind {
            OrderKind::TrailingStop { .. } => OrderState::TrailingStop { water_mark },
            OrderKind::StopLimit { .. } => OrderState::StopLimit { armed: false },
            _ => OrderState::Stateless,
        }
    }
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
            state: OrderState::Stateless,
        }
    }

    /// The type its fills record: the kind's code, [`OrderKind::DELISTING`] for the close
    /// of a delisted asset's position, or [`OrderKind::CASH_IN_LIEU`] for the sale of a
    /// split's fractional share.
    #[inline]
    pub fn fill_type(&self) -> u8 {
        match self.reason {
            crate::types::ExitReason::Delisted => OrderKind::DELISTING,
            crate::types::ExitReason::CashInLieu => OrderKind::CASH_IN_LIEU,
            _ => self.kind.code(),
        }
    }

    /// A stop-limit whose stop was reached: it rests as a limit order.
    #[inline]
    pub fn armed(&self) -> bool {
        matches!(self.state, OrderState::StopLimit { armed: true })
    }

    /// Whether the order still waits in the book: shares left, an inactive bracket leg, or a
    /// fill-time-sized order (whose decision-time estimate may be zero) not yet done.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.quantity != 0.0 || !self.active || self.target().is_some()
    }

    /// The target of a fill-time-sized order (`None` for orders of a fixed size).
    #[inline]
    pub fn target(&self) -> Option<TargetSize> {
        match self.state {
            OrderState::Target { target, .. } => Some(target),
            _ => None,
        }
    }

    /// A trailing stop's water mark (`None` for other kinds).
    #[inline]
    pub fn water_mark(&self) -> Option<f64> {
        match self.state {
            OrderState::TrailingStop { water_mark } => Some(water_mark),
            _ => None,
        }
    }

    /// Whether the order counts toward the asset's pending quantity: active market and
    /// market-on-close orders, which will fill; resting limit and stop orders may never fill,
    /// so target sizing does not count them.
    #[inline]
    pub fn counts_as_pending(&self) -> bool {
        self.active && matches!(self.kind, OrderKind::Market | OrderKind::MarketOnClose)
    }
}

/// `value` when finite; an order error naming `field` otherwise.
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
