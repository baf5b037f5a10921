//! Small value types shared by every module.

/// Dense asset code: `0..n_assets`, the index of the asset in the sorted list of names.
pub type AssetId = u32;

/// Timestamp in nanoseconds since the Unix epoch (UTC).
pub type Ts = i64;

/// Engine-assigned order identifier, increasing in submission order from 1.
pub type OrderId = u64;

/// Direction of a fill or an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buying: the position grows (or a short shrinks).
    Buy,
    /// Selling: the position shrinks (or a short grows).
    Sell,
}

impl Side {
    /// The side of a signed quantity (positive buys).
    #[inline]
    pub fn of(quantity: f64) -> Side {
        if quantity >= 0.0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// +1 for buys, -1 for sells.
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }

    /// Stable code used in result records (0 = buy, 1 = sell).
    pub fn code(self) -> u8 {
        match self {
            Side::Buy => 0,
            Side::Sell => 1,
        }
    }
}

/// Why a trade was closed. Codes are stable and mapped to names in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitReason {
    /// An order of the strategy closed it.
    Signal = 0,
    /// Still open when the data ended.
    EndOfData = 1,
    /// A bracket's take-profit leg.
    TakeProfit = 2,
    /// A bracket's stop-loss leg.
    StopLoss = 3,
    /// A trailing stop order.
    TrailingStop = 4,
    /// Liquidated by a margin call.
    MarginCall = 5,
    /// A time-based risk rule (held too many bars or too long).
    TimeExit = 6,
    /// A portfolio risk limit (drawdown halt, daily loss limit) or a custom rule's exit.
    RiskLimit = 7,
    /// Liquidated because the account's equity reached zero (the ruin rule).
    Ruin = 8,
    /// Closed at the last bar of an asset whose data ended before the run's (a delisting).
    Delisted = 9,
    /// The fractional share a split left in an integer-share account, paid out in cash (cash
    /// in lieu), closed the position.
    CashInLieu = 10,
    /// A futures position still open at its contract's expiry, closed at that bar's close.
    ContractExpired = 11,
    /// A margined position (a crypto perpetual) liquidated at its maintenance margin.
    Liquidation = 12,
    /// Sold at the open to pay a withdrawal larger than the cash held
    /// (`account.on_withdrawal = "liquidate"`).
    Withdrawal = 13,
}

impl ExitReason {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 14] = [
        "signal",
        "end_of_data",
        "take_profit",
        "stop_loss",
        "trailing_stop",
        "margin_call",
        "time_exit",
        "risk_limit",
        "ruin",
        "delisted",
        "cash_in_lieu",
        "contract_expired",
        "liquidation",
        "withdrawal",
    ];

    /// The reason named `name` (one of [`Self::NAMES`] a risk rule may give: `ruin` is the
    /// engine's own).
    pub fn from_name(name: &str) -> Option<Self> {
        const ALL: [ExitReason; 8] = [
            ExitReason::Signal,
            ExitReason::EndOfData,
            ExitReason::TakeProfit,
            ExitReason::StopLoss,
            ExitReason::TrailingStop,
            ExitReason::MarginCall,
            ExitReason::TimeExit,
            ExitReason::RiskLimit,
        ];
        ALL.into_iter().find(|r| Self::NAMES[*r as usize] == name)
    }
}

/// Why an order was not filled. Codes are stable and mapped to names in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectReason {
    /// No price had been seen for the asset, so a value or percent target cannot be sized.
    NoPrice = 0,
    /// Shorting is disabled and the order would have opened a short.
    ShortNotAllowed = 1,
    /// The data ended before the order could fill.
    EndOfData = 2,
    /// A DAY or IOC order (or its unfilled rest) reached the end of its life.
    Expired = 3,
    /// A cancel named an order that is not pending.
    NotPending = 4,
    /// A cash account could not pay for the order.
    InsufficientCash = 5,
    /// A margin account's initial margin would not cover the new exposure.
    InsufficientMargin = 6,
    /// A modification the order cannot take (other side, a price its type does not have).
    InvalidModify = 7,
    /// A pre-trade risk rule refused the order (or the part of it it cut).
    RiskLimit = 8,
    /// The order's size, notional, fee or the cash or equity after it would not be a finite
    /// number (or a target's size exceeds 2^53 shares).
    NumericOverflow = 9,
    /// The account was ruined (equity reached zero): it trades no more.
    Ruined = 10,
    /// The asset was delisted (its data ended before the run's): its pending orders are
    /// cancelled and later orders refused.
    Delisted = 11,
    /// A split left the order less than one whole share (integer-share accounts).
    Split = 12,
    /// The futures contract has expired: its pending orders are cancelled and later orders
    /// refused.
    ContractExpired = 13,
    /// The order would open or grow a position in an asset that is not a member of the
    /// point-in-time universe (`execution.on_non_member = "reject"`).
    NonMember = 14,
}

impl RejectReason {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 15] = [
        "no_price",
        "short_not_allowed",
        "end_of_data",
        "expired",
        "not_pending",
        "insufficient_cash",
        "insufficient_margin",
        "invalid_modify",
        "risk_limit",
        "numeric_overflow",
        "ruined",
        "delisted",
        "split",
        "contract_expired",
        "non_member",
    ];
}
