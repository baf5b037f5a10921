//! Account rules inside the loop: financing accruals between timestamps, buying power when an
//! order fills, and margin-call liquidation at the close.

use super::Engine;
use crate::config::{AccountKind, EngineConfig, Insufficient};
use crate::error::Result;
use crate::events::OrderOrigin;
use crate::feed::MarketData;
use crate::orders::Order;
use crate::portfolio::is_dust;
use crate::strategy::Strategy;
use crate::types::{AssetId, RejectReason, Ts};

/// Nanoseconds in a 365.25-day year: accruals use calendar time.
const YEAR_NS: f64 = 365.25 * 86_400.0 * 1e9;

/// The run's financing inputs: whether anything accrues, and the per-asset borrow rates read
/// from the configured column.
#[derive(Debug)]
pub(super) struct Financing {
    /// Whether any financing rate (or a borrow-rate column) is configured.
    pub(super) on: bool,
    /// Per-asset borrow rates, the last seen in the column (empty without one).
    borrow_rates: Vec<f64>,
    /// The column's position in the current chunk.
    borrow_column: Option<usize>,
}

impl Financing {
    /// The financing of a run under `config`.
    pub(super) fn new(config: &EngineConfig) -> Self {
        let account = &config.account;
        Financing {
            on: account.borrow_rate != 0.0
                || account.margin_interest_rate != 0.0
                || account.cash_interest_rate != 0.0
                || config.borrow_rate_column.is_some(),
            borrow_rates: Vec::new(),
            borrow_column: None,
        }
    }

    /// Takes the borrow rates of the bars of `group` (rows from `start`): they apply from now
    /// on (the accrual of this timestamp used the previous ones).
    #[inline]
    pub(super) fn read_borrow_rates(&mut self, data: &MarketData, start: usize, group: &[AssetId]) {
        if let Some(column) = self.borrow_column {
            let rates = data.feature_at(column);
            for (offset, &asset) in group.iter().enumerate() {
                self.borrow_rates[asset as usize] = rates[start + offset];
            }
        }
    }
}

impl Engine {
    /// Accrues borrow fees on short market value and interest on the cash balance for the time
    /// since the previous timestamp, at the previous close's marks.
    pub(super) fn accrue_financing(&mut self, ts: Ts) {
        let rules = self.config.account;
        if rules.borrow_rate == 0.0
            && rules.margin_interest_rate == 0.0
            && rules.cash_interest_rate == 0.0
            && self.financing.borrow_rates.is_empty()
        {
            return;
        }
        let Some(last) = self.last_ts else {
            return;
        };
        let years = (ts - last) as f64 / YEAR_NS;
        if self.portfolio.has_currencies() {
            return self.accrue_in_currencies(ts, years);
        }
        let mut borrow_fee = 0.0;
        for &asset in self.portfolio.open_assets() {
            let value = self.portfolio.quantity(asset) * self.portfolio.last_price(asset);
            if value < 0.0 {
                let rate = self.borrow_rate_of(asset);
                borrow_fee += rate * (-value) * years;
            }
        }
        let cash = self.portfolio.cash();
        let rate = if cash < 0.0 {
            rules.margin_interest_rate
        } else {
            rules.cash_interest_rate
        };
        let interest = cash * rate * years;
        if borrow_fee != 0.0 || interest != 0.0 {
            self.portfolio.adjust_cash(interest - borrow_fee);
            self.record
                .financing
                .push(ts, borrow_fee, interest, 0.0, 0.0);
        }
    }

    /// The annual borrow rate of a short in `asset`: its own (a finite value of the feed's
    /// borrow-rate column), else the account's.
    #[inline]
    fn borrow_rate_of(&self, asset: AssetId) -> f64 {
        let own = self
            .financing
            .borrow_rates
            .get(asset as usize)
            .copied()
            .unwrap_or(f64::NAN);
        if own.is_finite() {
            own
        } else {
            self.config.account.borrow_rate
        }
    }

    /// [`Self::accrue_financing`] with several currencies: each short's borrow fee is charged
    /// in its currency (recorded in base at its rate), interest accrues on the cash in base
    /// and is paid in base.
    #[inline(never)]
    fn accrue_in_currencies(&mut self, ts: Ts, years: f64) {
        let rules = self.config.account;
        let mut borrow_fee = 0.0;
        for i in 0..self.portfolio.open_assets().len() {
            let asset = self.portfolio.open_assets()[i];
            let value = self.portfolio.quantity(asset) * self.portfolio.last_price(asset);
            if value < 0.0 {
                let rate = self.borrow_rate_of(asset);
                let fee = rate * (-value) * years;
                if fee != 0.0 {
                    self.portfolio.credit(asset, -fee);
                    borrow_fee += fee * self.portfolio.rate_of(asset);
                }
            }
        }
        let cash = self.portfolio.cash();
        let rate = if cash < 0.0 {
            rules.margin_interest_rate
        } else {
            rules.cash_interest_rate
        };
        let interest = cash * rate * years;
        if interest != 0.0 {
            self.portfolio.adjust_cash(interest);
        }
        if borrow_fee != 0.0 || interest != 0.0 {
            self.record
                .financing
                .push(ts, borrow_fee, interest, 0.0, 0.0);
        }
    }

    /// Resolves the per-asset borrow-rate column of a new chunk.
    pub(super) fn resolve_borrow_column(&mut self, data: &MarketData) -> Result<()> {
        let Some(name) = &self.config.borrow_rate_column else {
            return Ok(());
        };
        let pos = data.require_feature(name, "account.borrow_rate_column")?;
        self.financing.borrow_column = Some(pos);
        if self.financing.borrow_rates.is_empty() {
            self.financing.borrow_rates = vec![f64::NAN; self.n_assets as usize];
        }
        Ok(())
    }

    /// The part of `quantity` (signed) the account can afford at `price`, or `None` when the
    /// order was rejected (and removed). A cash account needs the cash for a buy (fee
    /// included); a margin account with an initial margin needs equity to cover that fraction of
    /// the gross exposure the fill adds. Unaffordable orders are rejected or resized as
    /// configured; the cut part is recorded as `insufficient_cash` / `insufficient_margin`.
    pub(super) fn afford(
        &mut self,
        index: usize,
        quantity: f64,
        price: f64,
        ts: Ts,
    ) -> Option<f64> {
        let rules = self.config.account;
        let order = self.book.orders()[index];
        let (allowed, reason) = if self.contracts.is_some() {
            match self.instrument_room(order.asset, quantity, price) {
                Some(limit) => limit,
                None => return Some(quantity),
            }
        } else {
            match rules.kind {
                AccountKind::Cash if quantity > 0.0 => {
                    let cash = self.portfolio.cash();
                    let q = self.config.commission.affordable(cash, price);
                    (q.min(quantity), RejectReason::InsufficientCash)
                }
                AccountKind::Margin => match rules.initial_margin {
                    Some(margin) => {
                        let held = self.portfolio.quantity(order.asset);
                        let closing = if held != 0.0 && held.signum() != quantity.signum() {
                            quantity.abs().min(held.abs())
                        } else {
                            0.0
                        };
                        let (long, short) = self.portfolio.market_values();
                        let equity = self.portfolio.cash() + long + short;
                        // The gross exposure of everything that stays open: the part this fill
                        // closes no longer counts.
                        let mut staying = long - short;
                        if closing > 0.0 {
                            staying -= closing * self.portfolio.last_price(order.asset);
                        }
                        let room = (equity / margin - staying).max(0.0) / price;
                        let q = (closing + room).min(quantity.abs()) * quantity.signum();
                        (q, RejectReason::InsufficientMargin)
                    }
                    None => return Some(quantity),
                },
                AccountKind::Cash => return Some(quantity),
            }
        };
        let mut allowed = allowed;
        allowed = self.step_quantity(order.asset, allowed);
        if allowed.abs() >= quantity.abs() {
            return Some(quantity);
        }
        // A resize to float residue would book a fill of nothing at a full commission.
        let resize = rules.on_insufficient == Insufficient::Resize && !is_dust(allowed, quantity);
        let cut = if resize {
            order.quantity - allowed
        } else {
            order.quantity
        };
        self.reject_part(
            order.id,
            ts,
            order.asset,
            cut,
            reason,
            resize.then_some(allowed),
        );
        if !resize {
            self.book.mark_filled(index);
            self.cancel_waiting_legs(order.id, index, ts);
            self.scratch.removed = true;
            return None;
        }
        // The order shrinks to exactly what fills now; the rest is gone.
        self.book.reduce(index, cut);
        self.book.set_quantity(index, allowed);
        Some(allowed)
    }

    /// Whether booking `quantity` (signed) shares of `asset` at `price` would leave the fee,
    /// the notional, the cash or the position's value not finite (a `numeric_overflow`).
    pub(super) fn overflows(&self, asset: AssetId, quantity: f64, price: f64) -> bool {
        let notional = quantity * price * self.portfolio.multiplier(asset);
        let fee = self.fee(asset, quantity, price);
        let cash = self.portfolio.cash() - notional - fee;
        let value =
            (self.portfolio.quantity(asset) + quantity) * price * self.portfolio.multiplier(asset);
        !(notional.is_finite() && fee.is_finite() && cash.is_finite() && value.is_finite())
    }

    /// At the close: while equity is below the maintenance margin of the gross exposure,
    /// liquidates the largest position (by market value; ties to the lower asset code) that has
    /// a bar now, at the close with slippage and commission. Trades record `margin_call`.
    /// `marked` is the (long, short) market value as marked now; returns whether anything was
    /// liquidated (the values then changed).
    #[inline]
    pub(super) fn margin_call<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
        marked: (f64, f64),
    ) -> Result<bool> {
        // The first round's test, inline: most closes of a share account are above the margin.
        if let (Some(m), None) = (self.config.account.maintenance_margin, &self.contracts) {
            let (long, short) = marked;
            let required = m * (long - short);
            let equity = self.portfolio.cash() + long + short;
            if self.portfolio.open_assets().is_empty() || required == 0.0 || equity >= required {
                return Ok(false);
            }
        }
        self.margin_rounds(data, ts, strategy, marked)
    }

    /// [`Self::margin_call`]'s rounds, out of line.
    #[inline(never)]
    fn margin_rounds<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
        marked: (f64, f64),
    ) -> Result<bool> {
        let maintenance = self.config.account.maintenance_margin;
        if maintenance.is_none() && self.contracts.is_none() {
            return Ok(false);
        }
        let mut liquidated = false;
        // Each round flattens one whole position, so this many rounds flatten them all; a
        // liquidation that cannot be booked (not finite) ends the call instead of looping.
        let rounds = self.portfolio.open_assets().len();
        for round in 0..rounds {
            let (long, short) = if round == 0 {
                marked
            } else {
                self.portfolio.market_values()
            };
            let equity = self.portfolio.cash() + long + short;
            let required = match maintenance {
                Some(m) if self.contracts.is_none() => m * (long - short),
                _ => self.maintenance_total(),
            };
            if required == 0.0 || equity >= required {
                return Ok(liquidated);
            }
            let epoch = self.timestamps;
            let value = |a: AssetId| self.portfolio.notional(a).abs();
            let largest = self
                .portfolio
                .open_assets()
                .iter()
                .copied()
                .filter(|&a| self.bar_epoch[a as usize] == epoch)
                .max_by(|&a, &b| value(a).total_cmp(&value(b)).then(b.cmp(&a)));
            let Some(asset) = largest else {
                return Ok(liquidated);
            };
            let quantity = -self.portfolio.quantity(asset);
            let row = self.bar_row[asset as usize];
            let reference = data.close()[row];
            let price = self.slipped_price(data, row, quantity, reference)?;
            if self.overflows(asset, quantity, price) {
                return Ok(liquidated);
            }
            let id = self.take_order_id();
            let order = Order {
                reason: self.margin_call_reason(asset),
                ..Order::market(id, asset, quantity, ts, epoch)
            };
            self.accept_direct(&order, ts, OrderOrigin::MarginCall);
            let fill = self.book_fill(ts, &order, quantity, (price, reference), false, usize::MAX);
            self.after_fill(&order, &fill);
            liquidated = true;
            strategy.on_fill(&fill, &self.portfolio)?;
        }
        Ok(liquidated)
    }
}
