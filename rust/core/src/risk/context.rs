//! What a risk rule sees: the position, the portfolio, this bar's features, a proposed order.

use crate::feed::MarketData;
use crate::types::{AssetId, Ts};

/// The state of one open position at this bar's close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionState {
    /// Signed shares held.
    pub quantity: f64,
    /// Average entry price of the shares held.
    pub entry_price: f64,
    /// The price stop and target distances are measured from (see
    /// [`crate::config::StopBasis`]).
    pub basis_price: f64,
    /// Time of the first entry fill of the open trade.
    pub entry_ts: Ts,
    /// The asset's bars since the entry bar (0 on the entry bar).
    pub bars_held: u64,
    /// `quantity × (close − entry_price)`.
    pub unrealized_pnl: f64,
    /// Highest bar high since entry (the entry fill price on a same-close entry bar).
    pub high_water: f64,
    /// Lowest bar low since entry.
    pub low_water: f64,
    /// Highest close since entry.
    pub high_close: f64,
    /// Lowest close since entry.
    pub low_close: f64,
    /// Best return of the trade so far (fraction of the entry price, marks and fills).
    pub mfe: f64,
    /// Worst return of the trade so far.
    pub mae: f64,
    /// This bar's close.
    pub close: f64,
    /// How many times the rules have evaluated this position before (0 the first time: rules
    /// that fix a value at entry, such as an ATR distance, take it then).
    pub evaluations: u64,
    /// Take-profit level exits already filled for this position (a scaled exit's stage).
    pub target_exits: u32,
}

impl PositionState {
    /// +1 long, −1 short.
    #[inline]
    pub fn side(&self) -> f64 {
        if self.quantity > 0.0 {
            1.0
        } else {
            -1.0
        }
    }

    /// `basis_price × (1 + side × fraction)`: a level `fraction` in the position's favour
    /// (a negative fraction: against it).
    #[inline]
    pub fn basis_offset(&self, fraction: f64) -> f64 {
        self.basis_price * (1.0 + self.side() * fraction)
    }
}

/// The account as the risk rules see it at this bar's close.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PortfolioState {
    /// Cash plus positions marked.
    pub equity: f64,
    /// Cash balance.
    pub cash: f64,
    /// Sum of |market value| of the positions.
    pub gross_exposure: f64,
    /// Sum of signed market values.
    pub net_exposure: f64,
    /// Highest equity seen at a close so far.
    pub peak_equity: f64,
    /// Equity at the start of the current UTC day (the last close of the previous day).
    pub day_start_equity: f64,
    /// UTC day number of this timestamp (days since 1970-01-01).
    pub day: i64,
    /// Positions open.
    pub open_positions: usize,
}

impl PortfolioState {
    /// `1 − equity / peak_equity`: the drawdown from the peak (0 at a new peak).
    #[inline]
    pub fn drawdown(&self) -> f64 {
        if self.peak_equity > 0.0 {
            (1.0 - self.equity / self.peak_equity).max(0.0)
        } else {
            0.0
        }
    }
}

/// Where this timestamp's values live, shared by every rule call of one step.
#[derive(Clone, Copy)]
pub struct RiskEnv<'a> {
    /// This timestamp.
    pub ts: Ts,
    /// The current chunk of market data.
    pub data: &'a MarketData,
    /// A row of this timestamp (market-wide features are read from it).
    pub market_row: usize,
    /// The account.
    pub portfolio: &'a PortfolioState,
    /// With a trading calendar, the last data timestamp of each session (empty: none).
    pub session_closes: &'a [Ts],
}

impl RiskEnv<'_> {
    /// Market-wide feature in column `column` (as bound by a rule) at this timestamp.
    #[inline]
    pub fn market_feature(&self, column: usize) -> f64 {
        self.data.feature_at(column)[self.market_row]
    }

    /// Per-asset feature `column` in `row` (NaN without a row).
    #[inline]
    pub fn feature(&self, column: usize, row: Option<usize>) -> f64 {
        row.map_or(f64::NAN, |r| self.data.feature_at(column)[r])
    }
}

/// One open position to evaluate: its asset, its bar's row and its state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionView {
    /// Asset held.
    pub asset: AssetId,
    /// Row of the asset's bar at this timestamp in the chunk.
    pub row: usize,
    /// Its state.
    pub state: PositionState,
}

/// A new order before it is accepted. Only its opening part (what goes beyond flat) is subject
/// to pre-trade checks; reducing a position is always allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderCheck {
    /// Asset.
    pub asset: AssetId,
    /// Signed shares that open or add to a position (the order's closing part removed).
    pub opening: f64,
    /// Signed position after the closing part: shares held plus pending orders, then the
    /// order's closing part. Same side as `opening` or zero.
    pub position: f64,
    /// The price the order is valued at: its limit (or stop), else the asset's last close (in
    /// the asset's currency).
    pub price: f64,
    /// What one unit is worth in the account's base currency at `price`: price × multiplier ×
    /// the currency's rate (`price` for a share in the base currency). Rules that size by
    /// value divide by it.
    pub unit_value: f64,
    /// Row of the asset's bar at this timestamp, if it has one.
    pub row: Option<usize>,
    /// Positions open or being opened in this step, before this order.
    pub open_positions: usize,
    /// Gross and net exposure after the orders already accepted in this step.
    pub gross_exposure: f64,
    /// See `gross_exposure`.
    pub net_exposure: f64,
}
