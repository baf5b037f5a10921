//! Instrument-aware accounting inside the loop: per-contract fees, tick and lot rounding,
//! instrument margins at fill time and at the close, variation margin at every close, and the
//! expiry of futures (owns `Contracts`).
//!
//! An equity run has no `Contracts` (`Engine::contracts` is `None`) and reaches none of this.

use super::lifecycle::Retirement;
use super::Engine;
use crate::commission::CommissionModel;
use crate::config::{AccountKind, ShareRounding};
use crate::error::{BacktestError, Result};
use crate::events::OrderOrigin;
use crate::feed::MarketData;
use crate::instruments::{AssetClass, InstrumentSpec, Instruments};
use crate::orders::OrderKind;
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, RejectReason, Side, Ts};

/// The run's instruments and the working state of their expiries.
#[derive(Debug)]
pub(super) struct Contracts {
    /// The specs, by asset code.
    pub(super) instruments: Instruments,
    /// Per asset, its expiry (`Ts::MAX`: none).
    expiry: Vec<Ts>,
    /// Assets that expire, by expiry then code; `cursor` is the next one not yet due.
    expiring: Vec<AssetId>,
    cursor: usize,
    /// Assets past their expiry whose position is not closed yet (they had no bar since).
    due: Vec<AssetId>,
}

impl Contracts {
    pub(super) fn new(instruments: Instruments) -> Self {
        let expiry: Vec<Ts> = instruments
            .specs()
            .iter()
            .map(|s| s.expiry.unwrap_or(Ts::MAX))
            .collect();
        let mut expiring: Vec<AssetId> = (0..expiry.len() as AssetId)
            .filter(|&a| expiry[a as usize] != Ts::MAX)
            .collect();
        expiring.sort_by_key(|&a| (expiry[a as usize], a));
        Contracts {
            instruments,
            expiry,
            expiring,
            cursor: 0,
            due: Vec::new(),
        }
    }

    /// Whether `asset`'s contract has expired at `ts` (its expiry is at or before it).
    #[inline]
    pub(super) fn expired(&self, asset: AssetId, ts: Ts) -> bool {
        self.expiry[asset as usize] <= ts
    }

    /// The timestamp of the next expiry not yet due (`Ts::MAX`: none).
    #[inline]
    fn next_expiry(&self) -> Ts {
        self.expiring
            .get(self.cursor)
            .map_or(Ts::MAX, |&a| self.expiry[a as usize])
    }
}

impl Engine {
    /// Sets each asset's instrument (one spec per asset code). Specs that are all plain shares
    /// change nothing; otherwise multipliers, marking to market, ticks, lots, margins, expiries
    /// and funding apply as `docs/semantics.md` ("Instruments") describes. Call before the
    /// first chunk.
    pub fn set_instruments(&mut self, instruments: Instruments) -> Result<()> {
        if instruments.len() != self.n_assets as usize {
            return Err(BacktestError::config(
                "instruments",
                format!(
                    "one spec per asset: got {}, the universe has {}",
                    instruments.len(),
                    self.n_assets
                ),
            ));
        }
        if instruments.is_plain() {
            self.contracts = None;
            return Ok(());
        }
        if instruments.any_multiplier || instruments.any_marked {
            let specs = instruments.specs();
            self.portfolio.set_contract_terms(
                specs.iter().map(|s| s.multiplier).collect(),
                specs.iter().map(|s| s.class.marked_to_market()).collect(),
            );
        }
        self.margin_checked |= instruments.any_maintenance;
        self.record_exposure = instruments.any_marked;
        self.funding.setup(&instruments);
        self.contracts = Some(Box::new(Contracts::new(instruments)));
        self.enable_funding();
        Ok(())
    }

    /// Step 3 for instruments (rows of `group` from `start`): expiries, then funding, then
    /// variation margin. Out of line: an equity run never calls it.
    #[inline(never)]
    pub(super) fn contract_step<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        start: usize,
        group: &[AssetId],
        strategy: &mut S,
    ) -> Result<()> {
        if self.expiry_due(ts) {
            self.expire_contracts(data, ts, strategy)?;
        }
        if self.funding.on {
            self.pay_funding(data, ts, start, group);
        }
        if self.portfolio.has_contract_terms() {
            self.settle_variation();
        }
        Ok(())
    }

    /// The spec of `asset`, when the run has instruments.
    #[inline]
    pub(super) fn spec(&self, asset: AssetId) -> Option<&InstrumentSpec> {
        self.contracts.as_ref().map(|c| c.instruments.spec(asset))
    }

    /// The commission model of `asset`: its per-contract fee, else the account's.
    #[inline]
    fn commission_of(&self, asset: AssetId) -> CommissionModel {
        match self.spec(asset).and_then(|s| s.commission_per_contract) {
            Some(rate) => CommissionModel::PerShare { rate, minimum: 0.0 },
            None => self.config.commission,
        }
    }

    /// The fee of a fill of `quantity` units of `asset` at `price`: a per-contract fee, or the
    /// account's model on the notional (price × multiplier).
    #[inline]
    pub(super) fn fee(&self, asset: AssetId, quantity: f64, price: f64) -> f64 {
        if self.contracts.is_none() {
            return self.config.commission.fee(quantity, price);
        }
        let notional_price = price * self.portfolio.multiplier(asset);
        self.commission_of(asset).fee(quantity, notional_price)
    }

    /// `quantity` on the quantity grid of `asset`: whole shares with integer rounding, then
    /// whole lots (both toward zero).
    #[inline]
    pub(super) fn step_quantity(&self, asset: AssetId, quantity: f64) -> f64 {
        let mut q = quantity;
        if self.config.rounding == ShareRounding::Integer {
            q = q.trunc();
        }
        match self.spec(asset) {
            Some(spec) => spec.round_lot(q),
            None => q,
        }
    }

    /// Checks an explicit quantity against `asset`'s lot size.
    pub(super) fn check_lot(&self, asset: AssetId, quantity: f64) -> Result<()> {
        match self.spec(asset) {
            Some(spec) if !spec.is_lot_multiple(quantity) => Err(BacktestError::order(
                "quantity",
                format!(
                    "must be a multiple of asset {asset}'s lot_size {}, got {quantity}",
                    spec.lot_size.unwrap_or(f64::NAN)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `kind`'s limit and stop levels rounded to `asset`'s tick against the order (a buy limit
    /// down, a sell limit up; a buy stop up, a sell stop down).
    pub(super) fn round_levels(&self, asset: AssetId, quantity: f64, kind: OrderKind) -> OrderKind {
        let Some(spec) = self.spec(asset).filter(|s| s.tick_size.is_some()) else {
            return kind;
        };
        let side = Side::of(quantity);
        match kind {
            OrderKind::Limit { limit } => OrderKind::Limit {
                limit: spec.round_level(limit, side, true),
            },
            OrderKind::Stop { stop } => OrderKind::Stop {
                stop: spec.round_level(stop, side, false),
            },
            OrderKind::StopLimit { stop, limit } => OrderKind::StopLimit {
                stop: spec.round_level(stop, side, false),
                limit: spec.round_level(limit, side, true),
            },
            other => other,
        }
    }

    /// A market-like fill price rounded to `asset`'s tick against the trader, kept inside the
    /// bar `[low, high]`.
    #[inline]
    pub(super) fn round_fill(
        &self,
        asset: AssetId,
        quantity: f64,
        price: f64,
        (low, high): (f64, f64),
    ) -> f64 {
        match self.spec(asset) {
            Some(spec) if spec.tick_size.is_some() => {
                spec.round_fill(price, Side::of(quantity)).clamp(low, high)
            }
            _ => price,
        }
    }

    /// The initial margin of `|quantity|` units of `asset` at `price`: its own rule, else the
    /// account's (`initial_margin` of the notional in a margin account; the whole notional of
    /// a marked-to-market asset in a cash account; nothing for a share in a cash account, which
    /// pays in cash instead).
    fn initial_requirement(&self, asset: AssetId, quantity: f64, price: f64) -> f64 {
        let multiplier = self.portfolio.multiplier(asset);
        let spec = self.spec(asset);
        if let Some(rule) = spec.and_then(|s| s.margin_initial) {
            return rule.requirement(quantity, price, multiplier);
        }
        let marked = spec.is_some_and(|s| s.class.marked_to_market());
        let account = self.config.account;
        match account.kind {
            AccountKind::Margin => account
                .initial_margin
                .map_or(0.0, |f| f * quantity.abs() * price * multiplier),
            AccountKind::Cash if marked => quantity.abs() * price * multiplier,
            AccountKind::Cash => 0.0,
        }
    }

    /// The maintenance margin of `asset`'s position at its last mark, in its currency: its own
    /// rule; none when it has only its own initial margin; else the account's
    /// `maintenance_margin` of the notional.
    fn maintenance_requirement(&self, asset: AssetId) -> f64 {
        let quantity = self.portfolio.quantity(asset);
        let price = self.portfolio.last_price(asset);
        let multiplier = self.portfolio.multiplier(asset);
        let spec = self.spec(asset);
        if let Some(rule) = spec.and_then(|s| s.margin_maintenance) {
            return rule.requirement(quantity, price, multiplier);
        }
        if spec.is_some_and(|s| s.margin_initial.is_some()) {
            return 0.0;
        }
        self.config
            .account
            .maintenance_margin
            .map_or(0.0, |f| f * quantity.abs() * price * multiplier)
    }

    /// The account's maintenance requirement in base: the sum over open positions (each at
    /// its currency's rate).
    pub(super) fn maintenance_total(&self) -> f64 {
        self.portfolio
            .open_assets()
            .iter()
            .map(|&a| self.maintenance_requirement(a) * self.portfolio.rate_of(a))
            .sum()
    }

    /// [`Engine::afford`]'s limit with instruments: the part of `quantity` (signed) of `asset`
    /// the account can take at `price`, with the reason a cut would carry; `None` when nothing
    /// limits it. The part that closes the position held is always allowed; the rest needs its
    /// initial margin out of the collateral (equity in a margin account, cash in a cash
    /// account) left after the initial margin of everything that stays open. A share bought in
    /// a cash account needs its cost out of the cash left after the margin posted for
    /// marked-to-market positions.
    pub(super) fn instrument_room(
        &self,
        asset: AssetId,
        quantity: f64,
        price: f64,
    ) -> Option<(f64, RejectReason)> {
        let held = self.portfolio.quantity(asset);
        let closing = if held != 0.0 && held.signum() != quantity.signum() {
            quantity.abs().min(held.abs())
        } else {
            0.0
        };
        let cash_account = self.config.account.kind == AccountKind::Cash;
        let staying = |engine: &Engine| -> f64 {
            engine
                .portfolio
                .open_assets()
                .iter()
                .map(|&a| {
                    let mut q = engine.portfolio.quantity(a);
                    if a == asset && closing > 0.0 {
                        q -= closing * q.signum();
                    }
                    engine.initial_requirement(a, q, engine.portfolio.last_price(a))
                        * engine.portfolio.rate_of(a)
                })
                .sum()
        };
        let marked = self.portfolio.is_marked(asset);
        if cash_account && !marked {
            if quantity <= 0.0 {
                return None; // a sale of shares needs nothing
            }
            // The cost and fee are in the asset's currency: the free base cash is converted.
            let free = (self.portfolio.cash() - staying(self)) / self.portfolio.rate_of(asset);
            let notional_price = price * self.portfolio.multiplier(asset);
            let q = self
                .commission_of(asset)
                .affordable(free, notional_price)
                .min(quantity);
            return Some((q, RejectReason::InsufficientCash));
        }
        let unit = self.initial_requirement(asset, 1.0, price) * self.portfolio.rate_of(asset);
        if unit <= 0.0 {
            return None;
        }
        let collateral = if cash_account {
            self.portfolio.cash()
        } else {
            self.portfolio.cash() + {
                let (long, short) = self.portfolio.market_values();
                long + short
            }
        };
        let room = (collateral - staying(self)).max(0.0) / unit;
        let q = (closing + room).min(quantity.abs()) * quantity.signum();
        let reason = if cash_account {
            RejectReason::InsufficientCash
        } else {
            RejectReason::InsufficientMargin
        };
        Some((q, reason))
    }

    /// Step 2b: variation margin. Every marked-to-market position whose asset has a bar now
    /// settles its unsettled PnL into cash at this close; with sessions, every open one at the
    /// session's last timestamp only.
    pub(super) fn settle_variation(&mut self) {
        if self.sessions.on {
            // With sessions, the exchange's daily settlement: every open position at the
            // session's last timestamp, at its last mark.
            if self.sessions.at_close {
                for i in 0..self.portfolio.open_assets().len() {
                    let asset = self.portfolio.open_assets()[i];
                    self.portfolio.settle(asset);
                }
            }
            return;
        }
        let epoch = self.timestamps;
        for i in 0..self.portfolio.open_assets().len() {
            let asset = self.portfolio.open_assets()[i];
            if self.bar_epoch[asset as usize] == epoch {
                self.portfolio.settle(asset);
            }
        }
    }

    /// Whether any asset expires in the run.
    #[inline]
    pub(super) fn any_expiry(&self) -> bool {
        self.contracts
            .as_ref()
            .is_some_and(|c| c.instruments.any_expiry)
    }

    /// Whether `asset`'s contract has expired at `ts`.
    #[inline]
    pub(super) fn contract_expired(&self, asset: AssetId, ts: Ts) -> bool {
        self.contracts
            .as_ref()
            .is_some_and(|c| c.expired(asset, ts))
    }

    /// Step 3b: the contracts whose expiry has come. At an expired asset's first bar at or
    /// after its expiry, its pending orders are cancelled (`contract_expired`) and its position
    /// is closed at the close (no slippage, commission as configured, exit reason
    /// `contract_expired`).
    pub(super) fn expire_contracts<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<()> {
        let Some(contracts) = self.contracts.as_mut() else {
            return Ok(());
        };
        while contracts.next_expiry() <= ts {
            let asset = contracts.expiring[contracts.cursor];
            contracts.due.push(asset);
            contracts.cursor += 1;
        }
        if contracts.due.is_empty() {
            return Ok(());
        }
        let epoch = self.timestamps;
        let mut i = 0;
        while let Some(&asset) = self.contracts.as_ref().and_then(|c| c.due.get(i)) {
            if self.bar_epoch[asset as usize] != epoch {
                i += 1;
                continue;
            }
            if let Some(c) = self.contracts.as_mut() {
                c.due.swap_remove(i);
            }
            let row = self.bar_row[asset as usize];
            self.expire(data.close()[row], ts, asset, strategy)?;
        }
        Ok(())
    }

    fn expire<S: Strategy + ?Sized>(
        &mut self,
        close: f64,
        ts: Ts,
        asset: AssetId,
        strategy: &mut S,
    ) -> Result<()> {
        let why = Retirement {
            rejected: RejectReason::ContractExpired,
            exit: ExitReason::ContractExpired,
            origin: OrderOrigin::Expiry,
        };
        self.retire(ts, asset, close, why, strategy)
    }

    /// The exit reason of a margin call's liquidation of `asset`: `liquidation` for a crypto
    /// perpetual, `margin_call` otherwise.
    #[inline]
    pub(super) fn margin_call_reason(&self, asset: AssetId) -> ExitReason {
        match self.spec(asset) {
            Some(s) if s.class == AssetClass::CryptoPerp => ExitReason::Liquidation,
            _ => ExitReason::MarginCall,
        }
    }

    /// Whether step 3b has anything to look at this timestamp.
    #[inline]
    pub(super) fn expiry_due(&self, ts: Ts) -> bool {
        self.contracts
            .as_ref()
            .is_some_and(|c| c.next_expiry() <= ts || !c.due.is_empty())
    }
}
