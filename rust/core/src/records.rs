//! What the loop produces, one value per event: a [`Fill`] per execution and a [`TradeRecord`]
//! per round trip. The strategy sees them as they happen; `results.rs` stores them column by
//! column.

use crate::types::{AssetId, ExitReason, OrderId, Ts};

/// One execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    /// The order filled.
    pub order_id: OrderId,
    /// When.
    pub ts: Ts,
    /// Asset.
    pub asset: AssetId,
    /// Signed shares (+ bought).
    pub quantity: f64,
    /// Fill price after slippage and clamping.
    pub price: f64,
    /// The bar price the fill was referenced to (open or close).
    pub reference_price: f64,
    /// `|price - reference| × |quantity|`.
    pub slippage: f64,
    /// Fee charged.
    pub commission: f64,
    /// The asset's contract multiplier (1 for a share): the fill's notional is quantity ×
    /// price × multiplier.
    pub multiplier: f64,
    /// Order type code (see `OrderKind::NAMES`).
    pub order_type: u8,
    /// True when the order still has shares left after this fill.
    pub partial: bool,
}

/// A finished (or, at the end, still open) round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRecord {
    /// Asset.
    pub asset: AssetId,
    /// True for a long trade.
    pub long: bool,
    /// First entry fill.
    pub entry_ts: Ts,
    /// Last exit fill (or the last timestamp for an open trade).
    pub exit_ts: Ts,
    /// Mean entry price.
    pub entry_price: f64,
    /// Mean exit price (or the last mark for an open trade).
    pub exit_price: f64,
    /// Total shares entered.
    pub quantity: f64,
    /// The asset's contract multiplier (1 for a share).
    pub multiplier: f64,
    /// Realised PnL (plus the unrealised part for an open trade), in base: exits at their
    /// fills' rates less the entry cost at the entries' rates, so the FX move while held is
    /// in it.
    pub gross_pnl: f64,
    /// Fees of all the trade's fills, in base (each at its fill's rate).
    pub commission: f64,
    /// Slippage cost of all the trade's fills, in base.
    pub slippage: f64,
    /// Funding received (+) or paid (−) while open (crypto perpetuals; 0 otherwise), in base.
    pub funding: f64,
    /// [`Self::gross_pnl`] in the asset's currency.
    pub gross_pnl_local: f64,
    /// Net PnL in the asset's currency: gross − commission + funding, all in it.
    pub net_pnl_local: f64,
    /// Maximum favourable excursion: the best return (fraction of the entry price) at any mark
    /// or fill while open; never below 0.
    pub mfe: f64,
    /// Maximum adverse excursion: the worst such return; never above 0.
    pub mae: f64,
    /// The asset's bars from entry to exit.
    pub bars_held: u64,
    /// Why it closed.
    pub exit_reason: ExitReason,
    /// True when still open at the end of the data.
    pub open: bool,
}
