//! An asset's life in the run: the close of a delisted asset's position at its last bar (at the
//! close, or at the value its delisting return gives), the cancellation of its pending orders,
//! and the refusal of orders for it afterwards.

use super::Engine;
use crate::error::{BacktestError, Result};
use crate::events::OrderOrigin;
use crate::feed::MarketData;
use crate::orders::{Order, OrderKind};
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, RejectReason, Ts};

/// Per asset, the timestamp of its last bar when the asset is delisted in this run (its data
/// ends before the run's does); empty when no asset is.
#[derive(Debug, Default)]
pub(super) struct Delistings {
    /// `Ts::MAX` for an asset that is not delisted.
    last_bar: Vec<Ts>,
    /// Per asset, the delisting return applied to its last close (CRSP's DLRET; 0.0 when
    /// none); empty when no asset has one.
    returns: Vec<f64>,
}

impl Delistings {
    /// Delistings from each asset's last bar (`None`: not delisted).
    pub(super) fn new(last_bar: &[Option<Ts>]) -> Self {
        if last_bar.iter().all(Option::is_none) {
            return Delistings::default();
        }
        Delistings {
            last_bar: last_bar.iter().map(|t| t.unwrap_or(Ts::MAX)).collect(),
            returns: Vec::new(),
        }
    }

    /// The return from `asset`'s last close to what its holders receive (0.0 when none).
    #[inline]
    fn return_of(&self, asset: AssetId) -> f64 {
        self.returns.get(asset as usize).copied().unwrap_or(0.0)
    }

    /// Whether any asset is delisted in the run.
    #[inline]
    pub(super) fn any(&self) -> bool {
        !self.last_bar.is_empty()
    }

    /// Whether `asset` is delisted at `ts`: its last bar is at or before `ts` (an order decided
    /// at its last bar could never fill).
    #[inline]
    pub(super) fn delisted(&self, asset: AssetId, ts: Ts) -> bool {
        self.last_bar
            .get(asset as usize)
            .is_some_and(|&last| last <= ts)
    }

    /// Whether `ts` is the last bar of delisted `asset`.
    #[inline]
    fn ends_at(&self, asset: AssetId, ts: Ts) -> bool {
        self.last_bar.get(asset as usize) == Some(&ts)
    }
}

impl Engine {
    /// Sets each asset's delisting: the timestamp of its last bar when its data ends before the
    /// run's (`None` otherwise). At that bar, after marking, its pending orders are cancelled
    /// (`delisted`) and its position is closed at the close (no slippage, commission as
    /// configured, exit reason `delisted`); later orders for it are refused (`delisted`).
    pub fn set_delistings(&mut self, last_bar: &[Option<Ts>]) {
        self.delistings = Delistings::new(last_bar);
    }

    /// Sets each asset's delisting return (CRSP's DLRET; `None`: none), applied first when a
    /// delisted asset's position is closed: it is closed at `close × (1 + return)` instead of
    /// the close. Call after [`Self::set_delistings`]; a return of an asset that is not
    /// delisted in the run is not used. Each must be finite and `>= -1` (a `DataValidation`
    /// error naming `actions.delisting_return` and the asset code otherwise).
    pub fn set_delisting_returns(&mut self, returns: &[Option<f64>]) -> Result<()> {
        for (code, r) in returns.iter().enumerate() {
            if let Some(r) = *r {
                if !(r.is_finite() && r >= -1.0) {
                    return Err(BacktestError::data(
                        "actions.delisting_return",
                        code,
                        format!("delisting_return: must be finite and >= -1, got {r}"),
                    ));
                }
            }
        }
        if self.delistings.any() {
            self.delistings.returns = returns.iter().map(|r| r.unwrap_or(0.0)).collect();
        }
        Ok(())
    }

    /// Step 3, for the assets of this timestamp's `group` (rows from `start`) whose last bar
    /// this is.
    pub(super) fn delist_ending<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        start: usize,
        group: &[AssetId],
        strategy: &mut S,
    ) -> Result<()> {
        for (offset, &asset) in group.iter().enumerate() {
            if self.delistings.ends_at(asset, ts) {
                self.delist(data, ts, start + offset, asset, strategy)?;
            }
        }
        Ok(())
    }

    fn delist<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        row: usize,
        asset: AssetId,
        strategy: &mut S,
    ) -> Result<()> {
        let close = data.close()[row] * (1.0 + self.delistings.return_of(asset));
        let why = Retirement {
            rejected: RejectReason::Delisted,
            exit: ExitReason::Delisted,
            origin: OrderOrigin::Delisting,
        };
        self.retire(ts, asset, close, why, strategy)
    }

    /// Ends `asset`'s trading at `ts` (a delisting, a contract's expiry): its live orders are
    /// rejected with `why.rejected`, and its position is closed at `price` by a market-on-close
    /// fill with exit reason `why.exit`, journalled as `why.origin`. A close whose value would
    /// overflow is skipped: the position is held on, marked at the last close, like a
    /// position that cannot trade.
    pub(super) fn retire<S: Strategy + ?Sized>(
        &mut self,
        ts: Ts,
        asset: AssetId,
        price: f64,
        why: Retirement,
        strategy: &mut S,
    ) -> Result<()> {
        let mut cancelled = false;
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if order.asset == asset && order.is_live() {
                self.reject(order.id, ts, asset, order.quantity, why.rejected);
                self.book.mark_filled(index);
                cancelled = true;
            }
        }
        if cancelled {
            self.book.sweep();
        }
        let quantity = -self.portfolio.quantity(asset);
        if quantity == 0.0 || self.overflows(asset, quantity, price) {
            return Ok(());
        }
        let id = self.take_order_id();
        let order = Order {
            kind: OrderKind::MarketOnClose,
            reason: why.exit,
            ..Order::market(id, asset, quantity, ts, self.timestamps)
        };
        self.accept_direct(&order, ts, why.origin);
        let fill = self.book_fill(ts, &order, quantity, (price, price), false, usize::MAX);
        self.after_fill(&order, &fill);
        strategy.on_fill(&fill, &self.portfolio)
    }
}

/// Why an asset stops trading: the words [`Engine::retire`] records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retirement {
    /// The rejection reason of its live orders.
    pub(super) rejected: RejectReason,
    /// The exit reason of its closing fill.
    pub(super) exit: ExitReason,
    /// The journal origin of the closing order.
    pub(super) origin: OrderOrigin,
}
