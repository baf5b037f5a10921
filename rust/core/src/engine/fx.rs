//! Several currencies inside the loop: FX rates take effect at the start of their timestamp
//! (before any fill, with the other dated events), a bar of an asset whose currency has no
//! rate yet stops the run, and at each close foreign cash is swept to the base (with
//! `auto_convert`) and the per-currency cash table gets a row for every currency whose balance
//! or rate changed. The portfolio keeps the balances ([`crate::portfolio::Portfolio`]); this
//! file owns the rates' cursor and what was last recorded (`FxState`).

use super::contracts::Contracts;
use super::Engine;
use crate::error::{BacktestError, Result};
use crate::fx::{Conversion, Currencies};
use crate::instruments::{InstrumentSpec, Instruments};
use crate::types::{AssetId, Ts};

/// The run's currencies and the cash table's last row per currency.
#[derive(Debug)]
pub(super) struct FxState {
    currencies: Currencies,
    /// Per currency: the (balance, rate) of its last row in the cash table (NaN: none yet).
    recorded: Vec<(f64, f64)>,
    /// Per currency: the amount swept to the base at this close and its fee.
    swept: Vec<(f64, f64)>,
}

impl Engine {
    /// Sets the run's currencies (each asset's quote currency, the rates, the conversion
    /// policy). With more than one currency, cash is kept per currency and every value the
    /// account reads is in base (`docs/semantics.md`, *Instruments*, "Currencies"); with one,
    /// nothing changes. Call before the first chunk, after [`Engine::set_instruments`].
    pub fn set_currencies(&mut self, currencies: Currencies) -> Result<()> {
        let n = self.n_assets as usize;
        if currencies.asset_currency.len() != n {
            return Err(BacktestError::config(
                "currencies",
                format!(
                    "one currency per asset: got {}, the universe has {n}",
                    currencies.asset_currency.len()
                ),
            ));
        }
        if currencies.n_currencies == 1 {
            return Ok(());
        }
        self.portfolio
            .set_currencies(currencies.asset_currency.clone(), currencies.n_currencies);
        self.tracker.keep_base_pnl();
        if self.contracts.is_none() {
            // Margins and buying power read values in base through the instrument path.
            let plain = Instruments::new(vec![InstrumentSpec::default(); n])?;
            self.contracts = Some(Box::new(Contracts::new(plain)));
        }
        let k = currencies.n_currencies;
        self.fx = Some(Box::new(FxState {
            currencies,
            recorded: vec![(f64::NAN, f64::NAN); k],
            swept: vec![(0.0, 0.0); k],
        }));
        self.next_dated = self.next_dated_event();
        Ok(())
    }

    /// The date of the next FX rate not applied yet (`Ts::MAX`: none, or one currency).
    #[inline]
    pub(super) fn next_fx_ts(&self) -> Ts {
        self.fx.as_ref().map_or(Ts::MAX, |f| f.currencies.next_ts())
    }

    /// Step 0: the rates dated at or before `ts` take effect.
    pub(super) fn apply_fx_rates(&mut self, ts: Ts) {
        let Some(fx) = self.fx.as_mut() else {
            return;
        };
        for rate in fx.currencies.take_due(ts) {
            self.portfolio.set_rate(rate.currency, rate.rate);
        }
    }

    /// Before the bar pass: every asset with a bar now (rows of `group` from `start`) must
    /// have a rate for its currency, or nothing it does could be valued in base.
    pub(super) fn check_fx_rates(&self, ts: Ts, start: usize, group: &[AssetId]) -> Result<()> {
        for (offset, &asset) in group.iter().enumerate() {
            if !self.portfolio.rate_of(asset).is_finite() {
                return Err(BacktestError::data_at(
                    "fx.rate",
                    start + offset,
                    ts,
                    format!(
                        "no_fx_rate: asset {asset} has a bar before the first rate of its \
                         currency (code {}); start the prices at or after it",
                        self.portfolio.currency_of(asset)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// At the end of timestamp `ts`: with `auto_convert`, foreign cash is swept to the base at
    /// this close's rates (less the fee); then each currency whose balance or rate changed gets
    /// a row in the cash table.
    pub(super) fn close_fx(&mut self, ts: Ts) {
        let Some(fx) = self.fx.as_mut() else {
            return;
        };
        if let Conversion::AutoConvert { fee } = fx.currencies.conversion {
            let swept = &mut fx.swept;
            self.portfolio
                .sweep_to_base(fee, |c, amount, _rate, charged| {
                    swept[c as usize] = (amount, charged);
                });
        }
        let (balances, rates) = self.portfolio.balances();
        for (c, (&balance, &rate)) in balances.iter().zip(rates).enumerate() {
            let (amount, fee) = std::mem::take(&mut fx.swept[c]);
            let last = fx.recorded[c];
            let same = last.0 == balance && (last.1 == rate || (last.1.is_nan() && rate.is_nan()));
            if same && amount == 0.0 {
                continue;
            }
            fx.recorded[c] = (balance, rate);
            self.record
                .cash
                .push(ts, c as u32, balance, rate, amount, fee);
        }
    }

    /// Per asset, the rate of its currency now (empty with one currency).
    pub(super) fn asset_rates(&self) -> Vec<f64> {
        if self.fx.is_none() {
            return Vec::new();
        }
        (0..self.n_assets)
            .map(|a| self.portfolio.rate_of(a))
            .collect()
    }
}
