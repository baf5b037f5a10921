//! The strategy interface the loop calls once per timestamp.

use std::ops::Range;

use crate::error::Result;
use crate::events::OrderEvent;
use crate::feed::MarketData;
use crate::orders::{CommandBuffer, OrderBook};
use crate::portfolio::Portfolio;
use crate::records::Fill;
use crate::types::{AssetId, Ts};

/// The rows of one timestamp group.
#[derive(Debug, Clone, Copy)]
pub struct TimestampView<'a> {
    /// The chunk the rows belong to.
    pub data: &'a MarketData,
    /// The timestamp.
    pub ts: Ts,
    /// Row range of the group inside `data`.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Index of the timestamp since the start of the run (0-based).
    pub index: u64,
}

impl TimestampView<'_> {
    /// The group's rows.
    #[inline]
    pub fn rows(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// What a strategy sees and can do during its callback.
pub struct StrategyContext<'a> {
    /// Current timestamp.
    pub ts: Ts,
    portfolio: &'a Portfolio,
    book: &'a OrderBook,
    equity: f64,
    /// Each asset's membership of the point-in-time universe (`None`: no universe).
    members: Option<&'a [bool]>,
    /// Where orders go; the engine drains it after the callback.
    pub orders: &'a mut CommandBuffer,
}

impl<'a> StrategyContext<'a> {
    /// Builds a context (used by the engine).
    pub fn new(
        ts: Ts,
        portfolio: &'a Portfolio,
        book: &'a OrderBook,
        equity: f64,
        orders: &'a mut CommandBuffer,
    ) -> Self {
        StrategyContext {
            ts,
            portfolio,
            book,
            equity,
            members: None,
            orders,
        }
    }

    /// The context with the point-in-time universe's membership, by asset code (used by the
    /// engine when the run has a universe).
    pub fn with_members(mut self, members: &'a [bool]) -> Self {
        self.members = Some(members);
        self
    }

    /// Whether `asset` is a member of the point-in-time universe now (always, without one).
    #[inline]
    pub fn is_member(&self, asset: AssetId) -> bool {
        self.members.is_none_or(|m| m[asset as usize])
    }

    /// Each asset's membership now, by code (`None`: the run has no universe).
    #[inline]
    pub fn members(&self) -> Option<&[bool]> {
        self.members
    }

    /// Cash balance.
    #[inline]
    pub fn cash(&self) -> f64 {
        self.portfolio.cash()
    }

    /// Equity marked at this timestamp's closes.
    #[inline]
    pub fn equity(&self) -> f64 {
        self.equity
    }

    /// The account (positions, marks).
    #[inline]
    pub fn portfolio(&self) -> &Portfolio {
        self.portfolio
    }

    /// Signed shares held in `asset`.
    #[inline]
    pub fn position(&self, asset: AssetId) -> f64 {
        self.portfolio.quantity(asset)
    }

    /// Signed shares of `asset` in orders not yet filled.
    #[inline]
    pub fn pending(&self, asset: AssetId) -> f64 {
        self.book.pending_quantity(asset)
    }
}

/// A trading strategy driven by the engine. Built-in strategies live in [`crate::strategies`];
/// the Python bindings implement it for user classes.
pub trait Strategy {
    /// Called once before the first timestamp.
    fn on_start(&mut self, _n_assets: u32) -> Result<()> {
        Ok(())
    }

    /// Called before the first timestamp of each data chunk: resolve column positions here.
    fn on_chunk(&mut self, _data: &MarketData) -> Result<()> {
        Ok(())
    }

    /// Called once per timestamp, after marking, with this timestamp's rows.
    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()>;

    /// Whether [`Strategy::on_order`] should be called (order events are not built otherwise).
    fn wants_order_events(&self) -> bool {
        false
    }

    /// Called for each order status change (accepted, partially filled, filled, cancelled,
    /// expired, rejected), after the step of the loop in which it happened.
    fn on_order(&mut self, _event: &OrderEvent, _portfolio: &Portfolio) -> Result<()> {
        Ok(())
    }

    /// Called after each fill.
    fn on_fill(&mut self, _fill: &Fill, _portfolio: &Portfolio) -> Result<()> {
        Ok(())
    }

    /// Called once after the last timestamp.
    fn on_end(&mut self, _portfolio: &Portfolio) -> Result<()> {
        Ok(())
    }
}
