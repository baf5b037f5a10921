//! Round-trip trades: a trade opens when a position leaves zero and closes when it returns.
//! The tracker keeps each asset's open trade and hands back a [`TradeRecord`] when one closes;
//! the engine stores it.

use crate::portfolio::FillEffect;
use crate::records::TradeRecord;
use crate::types::{AssetId, ExitReason, Ts};

/// The running totals of one asset's open trade.
#[derive(Debug, Clone, Copy, Default)]
struct OpenTrade {
    active: bool,
    long: bool,
    entry_ts: Ts,
    entry_bar: u64,
    entry_quantity: f64,
    entry_notional: f64,
    exit_quantity: f64,
    exit_notional: f64,
    gross_pnl: f64,
    commission: f64,
    slippage: f64,
    funding: f64,
    multiplier: f64,
    /// Best and worst return seen while open (fraction of the mean entry price).
    mfe: f64,
    mae: f64,
    /// `±1 / mean entry price` (sign of the side), kept current on entry fills so that the
    /// per-bar excursion update is a multiply.
    signed_inv_entry: f64,
}

impl OpenTrade {
    /// Refreshes the cached inverse entry price after an entry fill.
    #[inline]
    fn entry_changed(&mut self) {
        let side = if self.long { 1.0 } else { -1.0 };
        self.signed_inv_entry = side * self.entry_quantity / self.entry_notional;
    }

    /// Folds a price seen while the trade is open into MFE/MAE.
    #[inline]
    fn excursion(&mut self, price: f64) {
        let side = if self.long { 1.0 } else { -1.0 };
        let r = price * self.signed_inv_entry - side;
        self.mfe = self.mfe.max(r);
        self.mae = self.mae.min(r);
    }
}

/// A trade's totals converted to base as they happen (several currencies only).
#[derive(Debug, Clone, Copy, Default)]
struct BaseTotals {
    /// Average cost in base of the position held, per unit (before the multiplier): moved by
    /// entries like the portfolio's average cost, kept by reductions.
    mean_entry: f64,
    gross_pnl: f64,
    commission: f64,
    slippage: f64,
    funding: f64,
}

/// One fill as the trade tracker needs it.
#[derive(Debug, Clone, Copy)]
pub struct TradeFill {
    /// Asset.
    pub asset: AssetId,
    /// Time of the fill.
    pub ts: Ts,
    /// The asset's bar counter at the fill.
    pub bar: u64,
    /// Signed shares.
    pub quantity: f64,
    /// Fill price.
    pub price: f64,
    /// Fee.
    pub fee: f64,
    /// Slippage cost of the fill.
    pub slippage: f64,
    /// Reason carried by the order.
    pub reason: ExitReason,
    /// The asset's contract multiplier.
    pub multiplier: f64,
    /// The rate of the asset's currency at the fill (1 with one currency).
    pub rate: f64,
}

/// Tracks the open trade of every asset and returns the closed ones.
#[derive(Debug, Clone)]
pub struct TradeTracker {
    open: Vec<OpenTrade>,
    /// Per asset, the open trade's totals in base beside the local ones (several currencies;
    /// empty with one, where base = local).
    base: Vec<BaseTotals>,
}

impl TradeTracker {
    /// A tracker for `n_assets`.
    pub fn new(n_assets: usize) -> Self {
        TradeTracker {
            open: vec![OpenTrade::default(); n_assets],
            base: Vec::new(),
        }
    }

    /// Keeps every trade's PnL and costs in base as well (several currencies): each amount is
    /// converted at its fill's (or payment's) rate.
    pub fn keep_base_pnl(&mut self) {
        self.base = vec![BaseTotals::default(); self.open.len()];
    }

    /// Folds one fill into the asset's trade; returns the trade it closed when the position
    /// returns to 0 or flips.
    pub fn on_fill(&mut self, fill: TradeFill, effect: FillEffect) -> Option<TradeRecord> {
        if !self.base.is_empty() {
            self.fold_base(&fill, &effect);
        }
        let trade = &mut self.open[fill.asset as usize];
        let size = fill.quantity.abs();
        if effect.before == 0.0 || effect.before.signum() == fill.quantity.signum() {
            if !trade.active {
                *trade = OpenTrade {
                    active: true,
                    long: fill.quantity > 0.0,
                    entry_ts: fill.ts,
                    entry_bar: fill.bar,
                    multiplier: fill.multiplier,
                    ..OpenTrade::default()
                };
            }
            trade.entry_quantity += size;
            trade.entry_notional += size * fill.price;
            trade.entry_changed();
            trade.commission += fill.fee;
            trade.slippage += fill.slippage;
            trade.excursion(fill.price);
            return None;
        }
        let closed = size.min(effect.before.abs());
        let closing_fee = fill.fee * closed / size;
        let closing_slippage = fill.slippage * closed / size;
        trade.excursion(fill.price);
        trade.slippage += closing_slippage;
        trade.exit_quantity += closed;
        trade.exit_notional += closed * fill.price;
        trade.gross_pnl += effect.realized;
        trade.commission += closing_fee;
        if effect.after == 0.0 || effect.after.signum() != effect.before.signum() {
            let base = self.base.get(fill.asset as usize);
            let mut record = close_record(fill.asset, trade, fill.ts, fill.bar, fill.reason);
            if let Some(b) = base {
                record.set_base(b);
            }
            trade.active = false;
            if effect.after != 0.0 {
                *trade = OpenTrade {
                    active: true,
                    long: effect.after > 0.0,
                    entry_ts: fill.ts,
                    entry_bar: fill.bar,
                    entry_quantity: effect.after.abs(),
                    entry_notional: effect.after.abs() * fill.price,
                    commission: fill.fee - closing_fee,
                    slippage: fill.slippage - closing_slippage,
                    multiplier: fill.multiplier,
                    ..OpenTrade::default()
                };
                trade.entry_changed();
                if let Some(b) = self.base.get_mut(fill.asset as usize) {
                    let r = fill.rate;
                    *b = BaseTotals {
                        mean_entry: fill.price * r,
                        commission: (fill.fee - closing_fee) * r,
                        slippage: (fill.slippage - closing_slippage) * r,
                        ..BaseTotals::default()
                    };
                }
            }
            return Some(record);
        }
        None
    }

    /// Folds `fill` into its asset's base totals, before the local ones change: entries add
    /// their cost at the fill's rate, a closing part realises `closed × (price × rate − mean
    /// average cost in base) × side × multiplier` (the portfolio's average-cost rule, in base); a trade that ends is read by `on_fill` and a
    /// new one (a flip) restarted there.
    #[inline(never)]
    fn fold_base(&mut self, fill: &TradeFill, effect: &FillEffect) {
        let a = fill.asset as usize;
        let trade = &self.open[a];
        let b = &mut self.base[a];
        let r = fill.rate;
        let size = fill.quantity.abs();
        if effect.before == 0.0 || effect.before.signum() == fill.quantity.signum() {
            if !trade.active {
                *b = BaseTotals::default();
            }
            let held = effect.before.abs();
            b.mean_entry = (b.mean_entry * held + size * fill.price * r) / (held + size);
            b.commission += fill.fee * r;
            b.slippage += fill.slippage * r;
            return;
        }
        let closed = size.min(effect.before.abs());
        let side = effect.before.signum();
        b.gross_pnl += closed * (fill.price * r - b.mean_entry) * side * trade.multiplier;
        b.commission += fill.fee * closed / size * r;
        b.slippage += fill.slippage * closed / size * r;
    }

    /// Restates `asset`'s open trade after a split of `ratio` new shares per old one: share
    /// counts are multiplied and prices divided (entry and exit notionals, PnL and excursions,
    /// which are fractions, do not change).
    pub fn split(&mut self, asset: AssetId, ratio: f64) {
        let trade = &mut self.open[asset as usize];
        if trade.active {
            trade.entry_quantity *= ratio;
            trade.exit_quantity *= ratio;
            trade.entry_changed();
            if let Some(b) = self.base.get_mut(asset as usize) {
                b.mean_entry /= ratio;
            }
        }
    }

    /// Adds cash the position earned or owed while held (a dividend: + to a long, − from a
    /// short; in the asset's currency, worth `rate` base units each) to `asset`'s open
    /// trade's gross PnL.
    pub fn add_income(&mut self, asset: AssetId, amount: f64, rate: f64) {
        let trade = &mut self.open[asset as usize];
        if trade.active {
            trade.gross_pnl += amount;
            if let Some(b) = self.base.get_mut(asset as usize) {
                b.gross_pnl += amount * rate;
            }
        }
    }

    /// Adds funding received (+) or paid (−) by `asset`'s open trade (in its currency, worth
    /// `rate` base units each).
    pub fn add_funding(&mut self, asset: AssetId, amount: f64, rate: f64) {
        let trade = &mut self.open[asset as usize];
        if trade.active {
            trade.funding += amount;
            if let Some(b) = self.base.get_mut(asset as usize) {
                b.funding += amount * rate;
            }
        }
    }

    /// The open trade of `asset`: `(entry_ts, entry_bar, mfe, mae)`, if one is open.
    #[inline]
    pub fn open_trade(&self, asset: AssetId) -> Option<(Ts, u64, f64, f64)> {
        let t = &self.open[asset as usize];
        t.active.then_some((t.entry_ts, t.entry_bar, t.mfe, t.mae))
    }

    /// Folds this timestamp's mark of `asset` into its open trade's MFE/MAE.
    #[inline]
    pub fn mark(&mut self, asset: AssetId, price: f64) {
        let trade = &mut self.open[asset as usize];
        if trade.active {
            trade.excursion(price);
        }
    }

    /// Ends the run: every still-open trade as a record marked `open`, valued at the last
    /// marks (× each asset's multiplier; `multipliers` empty: all 1; in base at `rates`, the
    /// rate of each asset's currency now, with several currencies), in asset order.
    pub fn finish(
        self,
        last_ts: Ts,
        bars: &[u64],
        positions: &[crate::portfolio::Position],
        marks: &[f64],
        multipliers: &[f64],
        rates: &[f64],
    ) -> Vec<TradeRecord> {
        let mut records = Vec::new();
        for (asset, trade) in self.open.iter().enumerate() {
            if !trade.active {
                continue;
            }
            let pos = positions[asset];
            let mut unrealized = pos.quantity * (marks[asset] - pos.avg_cost);
            if let Some(&m) = multipliers.get(asset) {
                unrealized *= m;
            }
            let mut record = close_record(
                asset as AssetId,
                trade,
                last_ts,
                bars[asset],
                ExitReason::EndOfData,
            );
            record.exit_price = marks[asset];
            record.gross_pnl_local += unrealized;
            record.net_pnl_local += unrealized;
            match (self.base.get(asset), rates.get(asset)) {
                (Some(b), Some(&rate)) => {
                    record.set_base(b);
                    let entry = b.mean_entry;
                    let m = multipliers.get(asset).copied().unwrap_or(1.0);
                    record.gross_pnl += pos.quantity * (marks[asset] * rate - entry) * m;
                }
                _ => record.gross_pnl += unrealized,
            }
            record.open = true;
            records.push(record);
        }
        records
    }
}

fn close_record(
    asset: AssetId,
    t: &OpenTrade,
    ts: Ts,
    bar: u64,
    reason: ExitReason,
) -> TradeRecord {
    TradeRecord {
        asset,
        long: t.long,
        entry_ts: t.entry_ts,
        exit_ts: ts,
        entry_price: t.entry_notional / t.entry_quantity,
        exit_price: if t.exit_quantity > 0.0 {
            t.exit_notional / t.exit_quantity
        } else {
            f64::NAN
        },
        quantity: t.entry_quantity,
        multiplier: t.multiplier,
        gross_pnl: t.gross_pnl,
        commission: t.commission,
        slippage: t.slippage,
        funding: t.funding,
        gross_pnl_local: t.gross_pnl,
        net_pnl_local: t.gross_pnl - t.commission + t.funding,
        mfe: t.mfe,
        mae: t.mae,
        bars_held: bar - t.entry_bar,
        exit_reason: reason,
        open: false,
    }
}

impl TradeRecord {
    /// Replaces the PnL and costs (local so far) by the base totals `b`.
    fn set_base(&mut self, b: &BaseTotals) {
        self.gross_pnl = b.gross_pnl;
        self.commission = b.commission;
        self.slippage = b.slippage;
        self.funding = b.funding;
    }
}
