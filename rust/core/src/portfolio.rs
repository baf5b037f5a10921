//! Portfolio accounting: cash, signed positions with average cost, last prices.

use crate::fx::CurrencyId;
use crate::types::AssetId;

/// A signed position in one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position {
    /// Shares held: positive long, negative short.
    pub quantity: f64,
    /// Average entry price of the shares held (0 when flat).
    pub avg_cost: f64,
}

/// What a fill did to a position, for the trade tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillEffect {
    /// Position before the fill.
    pub before: f64,
    /// Position after the fill.
    pub after: f64,
    /// Average cost before the fill.
    pub avg_cost_before: f64,
    /// PnL realised by the closing part of the fill (before fees).
    pub realized: f64,
}

/// Cash, positions and marks of the whole account. Vectors are indexed by [`AssetId`].
#[derive(Debug, Clone)]
pub struct Portfolio {
    cash: f64,
    positions: Vec<Position>,
    last_price: Vec<f64>,
    open_assets: Vec<AssetId>,
    open_slot: Vec<u32>,
    /// Contract terms when some asset is not a plain share (`None`: every asset is one, and
    /// every path below is the share path).
    terms: Option<Box<ContractTerms>>,
    /// Cash per currency when some asset is quoted in a foreign one (`None`: one currency,
    /// and `cash` is the only balance). With it, `cash` is the total in base, recomputed
    /// whenever a balance or a rate changes.
    ledger: Option<Box<Ledger>>,
}

/// Cash kept per currency, and the rates that value it in the base currency.
#[derive(Debug, Clone)]
struct Ledger {
    /// Per asset: its quote currency (0: the base).
    currency: Vec<CurrencyId>,
    /// Per currency: cash held in it (the base at 0).
    balance: Vec<f64>,
    /// Per currency: base units per unit (1 for the base; NaN before its first rate).
    rate: Vec<f64>,
}

/// Per-asset contract terms: the multiplier and, for assets marked to market (futures,
/// perpetuals), the price the position was last settled at.
#[derive(Debug, Clone)]
struct ContractTerms {
    multiplier: Vec<f64>,
    marked: Vec<bool>,
    /// Marked-to-market assets: the price cash was last settled to (the last fill or close);
    /// the position's marked value is `quantity × (last − settled) × multiplier`.
    settled: Vec<f64>,
}

const NOT_OPEN: u32 = u32::MAX;

/// Relative size below which a position or an order difference is float rounding, not shares:
/// `|x| <= DUST × scale` counts as zero (see `docs/semantics.md`).
pub const DUST: f64 = 1e-9;

/// Whether `x` is float residue next to `scale` (`|x| <= DUST × |scale|`): a quantity, order
/// remainder or position that counts as zero.
#[inline]
pub fn is_dust(x: f64, scale: f64) -> bool {
    x.abs() <= DUST * scale.abs()
}

impl Portfolio {
    /// A flat account with `cash` and a universe of `n_assets` assets.
    pub fn new(cash: f64, n_assets: usize) -> Self {
        Portfolio {
            cash,
            positions: vec![Position::default(); n_assets],
            last_price: vec![f64::NAN; n_assets],
            open_assets: Vec::with_capacity(n_assets),
            open_slot: vec![NOT_OPEN; n_assets],
            terms: None,
            ledger: None,
        }
    }

    /// Keeps cash per currency: `currency` is each asset's quote currency (0: the base) among
    /// `n_currencies`. Every cash movement of an asset (fill, fee, variation, dividend,
    /// funding, borrow fee) then settles in its currency, and values read in base: `cash()` is
    /// `Σ balance × rate`, [`Self::value`] and [`Self::notional`] are converted at the
    /// asset's rate. Implies contract terms (multiplier 1, not marked, when none were set).
    /// Call before the first fill.
    pub fn set_currencies(&mut self, currency: Vec<CurrencyId>, n_currencies: usize) {
        let n = self.positions.len();
        debug_assert!(currency.len() == n && n_currencies >= 1);
        if self.terms.is_none() {
            self.set_contract_terms(vec![1.0; n], vec![false; n]);
        }
        let mut balance = vec![0.0; n_currencies];
        balance[0] = self.cash;
        let mut rate = vec![f64::NAN; n_currencies];
        rate[0] = 1.0;
        self.ledger = Some(Box::new(Ledger {
            currency,
            balance,
            rate,
        }));
    }

    /// Whether cash is kept in several currencies.
    #[inline]
    pub fn has_currencies(&self) -> bool {
        self.ledger.is_some()
    }

    /// Sets currency `c`'s rate (base units per unit); the base total is recomputed.
    pub fn set_rate(&mut self, c: CurrencyId, rate: f64) {
        if let Some(l) = self.ledger.as_mut() {
            l.rate[c as usize] = rate;
        }
        self.refresh_cash();
    }

    /// The rate of `asset`'s quote currency (1 in a one-currency account).
    #[inline]
    pub fn rate_of(&self, asset: AssetId) -> f64 {
        match &self.ledger {
            Some(l) => l.rate[l.currency[asset as usize] as usize],
            None => 1.0,
        }
    }

    /// The quote currency of `asset` (0, the base, in a one-currency account).
    #[inline]
    pub fn currency_of(&self, asset: AssetId) -> CurrencyId {
        self.ledger
            .as_ref()
            .map_or(0, |l| l.currency[asset as usize])
    }

    /// Cash per currency (the base first) and each currency's rate; empty in a one-currency
    /// account.
    pub fn balances(&self) -> (&[f64], &[f64]) {
        match &self.ledger {
            Some(l) => (&l.balance, &l.rate),
            None => (&[], &[]),
        }
    }

    /// Converts every foreign balance into the base at its rate, charging `fee` (a fraction of
    /// the base amount); calls `converted(currency, amount, rate, fee_charged)` for each
    /// non-zero one.
    pub fn sweep_to_base(
        &mut self,
        fee: f64,
        mut converted: impl FnMut(CurrencyId, f64, f64, f64),
    ) {
        let Some(l) = self.ledger.as_mut() else {
            return;
        };
        for c in 1..l.balance.len() {
            let amount = l.balance[c];
            let rate = l.rate[c];
            if amount == 0.0 || !rate.is_finite() {
                continue;
            }
            let base = amount * rate;
            let charged = base.abs() * fee;
            l.balance[0] += base - charged;
            l.balance[c] = 0.0;
            converted(c as CurrencyId, amount, rate, charged);
        }
        self.refresh_cash();
    }

    /// Adds `amount` in `asset`'s quote currency to cash.
    #[inline]
    pub fn credit(&mut self, asset: AssetId, amount: f64) {
        match self.ledger.as_mut() {
            None => self.cash += amount,
            Some(l) => {
                l.balance[l.currency[asset as usize] as usize] += amount;
                self.refresh_cash();
            }
        }
    }

    /// `cash = Σ balance × rate`, in currency order (a balance of 0 adds nothing, so a
    /// currency without a rate yet is no NaN).
    fn refresh_cash(&mut self) {
        if let Some(l) = &self.ledger {
            let mut total = l.balance[0];
            for (b, r) in l.balance.iter().zip(&l.rate).skip(1) {
                if *b != 0.0 {
                    total += b * r;
                }
            }
            self.cash = total;
        }
    }

    /// Sets each asset's contract multiplier and whether it is marked to market (futures and
    /// perpetuals: a fill moves cash by its fee and the variation since the last settlement,
    /// never by its notional). Call before the first fill.
    pub fn set_contract_terms(&mut self, multiplier: Vec<f64>, marked: Vec<bool>) {
        let n = self.positions.len();
        debug_assert!(multiplier.len() == n && marked.len() == n);
        self.terms = Some(Box::new(ContractTerms {
            multiplier,
            marked,
            settled: vec![0.0; n],
        }));
    }

    /// Whether some asset has contract terms (a multiplier or marking to market).
    #[inline]
    pub fn has_contract_terms(&self) -> bool {
        self.terms.is_some()
    }

    /// The contract multiplier of `asset` (1 for a share).
    #[inline]
    pub fn multiplier(&self, asset: AssetId) -> f64 {
        match &self.terms {
            Some(t) => t.multiplier[asset as usize],
            None => 1.0,
        }
    }

    /// Every asset's multiplier (empty when all are 1).
    pub fn multipliers(&self) -> &[f64] {
        match &self.terms {
            Some(t) => &t.multiplier,
            None => &[],
        }
    }

    /// Whether `asset` is marked to market.
    #[inline]
    pub fn is_marked(&self, asset: AssetId) -> bool {
        self.terms
            .as_ref()
            .is_some_and(|t| t.marked[asset as usize])
    }

    /// The signed notional of `asset`'s position at its last mark: quantity × price ×
    /// multiplier (its exposure, whatever its class).
    #[inline]
    pub fn notional(&self, asset: AssetId) -> f64 {
        let a = asset as usize;
        self.positions[a].quantity
            * self.last_price[a]
            * self.multiplier(asset)
            * self.rate_of(asset)
    }

    /// The marked value of `asset`'s position, what it adds to equity: its notional for a
    /// share, its unsettled PnL for an asset marked to market (in base, at its currency's
    /// rate).
    #[inline]
    pub fn value(&self, asset: AssetId) -> f64 {
        let a = asset as usize;
        let pos = self.positions[a].quantity;
        match &self.terms {
            None => pos * self.last_price[a],
            Some(t) if t.marked[a] => {
                pos * (self.last_price[a] - t.settled[a]) * t.multiplier[a] * self.rate_of(asset)
            }
            Some(t) => pos * self.last_price[a] * t.multiplier[a] * self.rate_of(asset),
        }
    }

    /// What `asset`'s position would add to equity marked at `price` instead of its last mark.
    #[inline]
    pub fn value_at(&self, asset: AssetId, price: f64) -> f64 {
        let a = asset as usize;
        let pos = self.positions[a].quantity;
        match &self.terms {
            None => pos * price,
            Some(t) if t.marked[a] => {
                pos * (price - t.settled[a]) * t.multiplier[a] * self.rate_of(asset)
            }
            Some(t) => pos * price * t.multiplier[a] * self.rate_of(asset),
        }
    }

    /// Long and short exposure at the last marks: `(Σ long notional, Σ short notional)`, the
    /// gross exposure margin rules read. Equal to [`Self::market_values`] for shares.
    pub fn exposures(&self) -> (f64, f64) {
        if self.terms.is_none() {
            return self.market_values();
        }
        let mut long = 0.0;
        let mut short = 0.0;
        for &asset in &self.open_assets {
            let value = self.notional(asset);
            if value >= 0.0 {
                long += value;
            } else {
                short += value;
            }
        }
        (long, short)
    }

    /// Settles the variation of marked-to-market `asset` at its last mark: cash (in its
    /// currency) moves by the position's unsettled PnL, which becomes zero. Returns the amount
    /// (0 for other assets).
    #[inline]
    pub fn settle(&mut self, asset: AssetId) -> f64 {
        let a = asset as usize;
        let Some(t) = self.terms.as_mut() else {
            return 0.0;
        };
        if !t.marked[a] {
            return 0.0;
        }
        let pos = self.positions[a].quantity;
        let last = self.last_price[a];
        let amount = if pos != 0.0 {
            pos * (last - t.settled[a]) * t.multiplier[a]
        } else {
            0.0
        };
        t.settled[a] = last;
        if amount != 0.0 {
            self.credit(asset, amount);
        }
        amount
    }

    /// Cash balance (in base: the sum of every currency's balance at its rate).
    #[inline]
    pub fn cash(&self) -> f64 {
        self.cash
    }

    /// The position in `asset`.
    #[inline]
    pub fn position(&self, asset: AssetId) -> Position {
        self.positions[asset as usize]
    }

    /// Signed share count in `asset`.
    #[inline]
    pub fn quantity(&self, asset: AssetId) -> f64 {
        self.positions[asset as usize].quantity
    }

    /// All positions, indexed by asset code.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Last close seen for `asset`, NaN before its first bar.
    #[inline]
    pub fn last_price(&self, asset: AssetId) -> f64 {
        self.last_price[asset as usize]
    }

    /// Last closes of all assets (NaN where none was seen yet).
    pub fn last_prices(&self) -> &[f64] {
        &self.last_price
    }

    /// Assets with a non-zero position, in the order they were opened (swap-removed on close).
    pub fn open_assets(&self) -> &[AssetId] {
        &self.open_assets
    }

    /// Adds `delta` to the base currency's cash (interest, capital flows).
    #[inline]
    pub fn adjust_cash(&mut self, delta: f64) {
        match self.ledger.as_mut() {
            None => self.cash += delta,
            Some(l) => {
                l.balance[0] += delta;
                self.refresh_cash();
            }
        }
    }

    /// Records a new mark for `asset`.
    #[inline]
    pub fn mark(&mut self, asset: AssetId, price: f64) {
        self.last_price[asset as usize] = price;
    }

    /// Long and short market value at the last marks: `(Σ long q·p, Σ short q·p)`.
    #[inline]
    pub fn market_values(&self) -> (f64, f64) {
        if self.terms.is_some() {
            return self.contract_market_values();
        }
        let mut long = 0.0;
        let mut short = 0.0;
        for &asset in &self.open_assets {
            let value = self.positions[asset as usize].quantity * self.last_price[asset as usize];
            if value >= 0.0 {
                long += value;
            } else {
                short += value;
            }
        }
        (long, short)
    }

    /// [`Self::market_values`] with contract terms, out of line so that the share path stays
    /// small enough to inline.
    #[inline(never)]
    fn contract_market_values(&self) -> (f64, f64) {
        let mut long = 0.0;
        let mut short = 0.0;
        for &asset in &self.open_assets {
            let value = self.value(asset);
            if value >= 0.0 {
                long += value;
            } else {
                short += value;
            }
        }
        (long, short)
    }

    /// Cash plus positions marked at the last prices.
    #[inline]
    pub fn equity(&self) -> f64 {
        let (long, short) = self.market_values();
        self.cash + long + short
    }

    /// Applies a split of `ratio` new shares per old one to `asset`: the position is multiplied
    /// ([`crate::actions::split_shares`]), its average cost and last mark divided, so its
    /// market value is unchanged. Returns the new (possibly fractional) quantity.
    pub fn split(&mut self, asset: AssetId, ratio: f64) -> f64 {
        let slot = asset as usize;
        let pos = &mut self.positions[slot];
        pos.quantity = crate::actions::split_shares(pos.quantity, ratio);
        pos.avg_cost /= ratio;
        self.last_price[slot] /= ratio;
        if let Some(t) = self.terms.as_mut() {
            t.settled[slot] /= ratio;
        }
        pos.quantity
    }

    /// Books a fill of signed `quantity` at `price` with fee `fee`. An asset that has no mark
    /// yet (bought before its first close) is marked at the fill price until its first close.
    /// A share's fill pays its notional (× multiplier); an asset marked to market first settles
    /// the position held at the fill price, then pays only the fee.
    pub fn apply_fill(
        &mut self,
        asset: AssetId,
        quantity: f64,
        price: f64,
        fee: f64,
    ) -> FillEffect {
        let slot = asset as usize;
        let mut multiplier = 1.0;
        match self.terms.as_mut() {
            None => self.cash -= quantity * price + fee,
            Some(t) => {
                multiplier = t.multiplier[slot];
                let ledger = self.ledger.is_some();
                if t.marked[slot] {
                    let held = self.positions[slot].quantity;
                    let mut variation = 0.0;
                    if held != 0.0 {
                        variation = held * (price - t.settled[slot]) * multiplier;
                    }
                    t.settled[slot] = price;
                    if ledger {
                        self.credit(asset, variation - fee);
                    } else {
                        self.cash += variation;
                        self.cash -= fee;
                    }
                } else if ledger {
                    self.credit(asset, -(quantity * price * multiplier + fee));
                } else {
                    self.cash -= quantity * price * multiplier + fee;
                }
            }
        }
        if !self.last_price[slot].is_finite() {
            self.last_price[slot] = price;
        }
        let pos = self.positions[slot];
        let before = pos.quantity;
        let mut after = before + quantity;
        if is_dust(after, before.abs().max(quantity.abs())) {
            // Float rounding left dust (e.g. 0.1 + 0.2 - 0.3): the position is closed.
            after = 0.0;
        }
        let mut realized = 0.0;
        let mut avg_cost = pos.avg_cost;
        if before == 0.0 || before.signum() == quantity.signum() {
            // Opening or adding: the average cost moves to the weighted mean.
            avg_cost = (before.abs() * pos.avg_cost + quantity.abs() * price) / after.abs();
        } else {
            let closed = quantity.abs().min(before.abs());
            realized = closed * (price - pos.avg_cost) * before.signum() * multiplier;
            if after == 0.0 {
                avg_cost = 0.0;
            } else if after.signum() != before.signum() {
                // Crossed zero: the remainder opens a new position at this price.
                avg_cost = price;
            }
        }
        self.positions[slot] = Position {
            quantity: after,
            avg_cost,
        };
        self.track_open(asset, before, after);
        FillEffect {
            before,
            after,
            avg_cost_before: pos.avg_cost,
            realized,
        }
    }

    fn track_open(&mut self, asset: AssetId, before: f64, after: f64) {
        let slot = asset as usize;
        if before == 0.0 && after != 0.0 {
            self.open_slot[slot] = self.open_assets.len() as u32;
            self.open_assets.push(asset);
        } else if before != 0.0 && after == 0.0 {
            let idx = self.open_slot[slot] as usize;
            self.open_assets.swap_remove(idx);
            if let Some(&moved) = self.open_assets.get(idx) {
                self.open_slot[moved as usize] = idx as u32;
            }
            self.open_slot[slot] = NOT_OPEN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buy_then_sell_realises_pnl_and_conserves_equity() {
        let mut p = Portfolio::new(10_000.0, 2);
        p.apply_fill(0, 100.0, 10.0, 1.0);
        assert_eq!(p.cash(), 10_000.0 - 1_000.0 - 1.0);
        p.mark(0, 12.0);
        assert_eq!(p.equity(), 8_999.0 + 1_200.0);
        let e = p.apply_fill(0, -40.0, 12.0, 0.5);
        assert_eq!(e.realized, 40.0 * 2.0);
        assert_eq!(p.position(0).avg_cost, 10.0);
        assert_eq!(p.open_assets(), &[0]);
        p.apply_fill(0, -60.0, 11.0, 0.0);
        assert_eq!(p.quantity(0), 0.0);
        assert!(p.open_assets().is_empty());
    }

    #[test]
    fn crossing_zero_opens_the_remainder_at_the_fill_price() {
        let mut p = Portfolio::new(1_000.0, 1);
        p.apply_fill(0, 10.0, 5.0, 0.0);
        let e = p.apply_fill(0, -15.0, 6.0, 0.0);
        assert_eq!(e.realized, 10.0);
        assert_eq!(p.position(0).quantity, -5.0);
        assert_eq!(p.position(0).avg_cost, 6.0);
        let e = p.apply_fill(0, 2.0, 4.0, 0.0);
        assert_eq!(e.realized, 4.0);
    }

    #[test]
    fn a_split_keeps_the_market_value_and_the_cost() {
        let mut p = Portfolio::new(1_000.0, 1);
        p.apply_fill(0, 10.0, 40.0, 0.0);
        p.mark(0, 50.0);
        let before = p.equity();
        assert_eq!(p.split(0, 4.0), 40.0);
        assert_eq!(p.position(0).avg_cost, 10.0);
        assert_eq!(p.last_price(0), 12.5);
        assert_eq!(p.equity(), before);
    }

    #[test]
    fn open_asset_list_survives_swap_removal() {
        let mut p = Portfolio::new(1_000.0, 3);
        for a in 0..3 {
            p.apply_fill(a, 1.0, 1.0, 0.0);
        }
        p.apply_fill(0, -1.0, 1.0, 0.0);
        p.apply_fill(2, -1.0, 1.0, 0.0);
        assert_eq!(p.open_assets(), &[1]);
        p.apply_fill(1, -1.0, 1.0, 0.0);
        assert!(p.open_assets().is_empty());
    }
}
