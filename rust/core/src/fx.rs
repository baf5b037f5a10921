//! Several currencies: the account's currencies by code (0 is the base), each asset's quote
//! currency and the FX rates as one small table in time order (base units per unit of the
//! currency). The engine applies a rate at the start of the first timestamp at or after its
//! date, before any fill, so the rate in force at `t` is the latest row at or before `t`
//! (`docs/semantics.md`, *Instruments*, "Currencies").

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// A currency's code: its position in the run's currency list (0: the base currency).
pub type CurrencyId = u16;

/// The base currency's code.
pub const BASE: CurrencyId = 0;

/// One FX rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FxRate {
    /// When it becomes known (engine nanoseconds): in force from the first timestamp `>=` it.
    pub ts: Ts,
    /// The currency it prices (never the base).
    pub currency: CurrencyId,
    /// Base units per one unit of the currency (finite, > 0).
    pub rate: f64,
}

/// What happens to cash held in a currency other than the base.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Conversion {
    /// It stays in its currency (the default): holding it is the strategy's choice.
    #[default]
    Keep,
    /// Swept to the base at each close at the close's rate, paying `fee` (a fraction of the
    /// amount converted, in base).
    AutoConvert {
        /// Fraction of the converted amount charged (0 ≤ fee < 1).
        fee: f64,
    },
}

/// A run's currencies: each asset's quote currency, the rates with a cursor at the first one
/// not yet applied, and the conversion policy.
#[derive(Debug, Clone)]
pub struct Currencies {
    /// Number of currencies, the base included.
    pub n_currencies: usize,
    /// Per asset: its quote currency.
    pub asset_currency: Vec<CurrencyId>,
    rates: Vec<FxRate>,
    next: usize,
    /// Cash left in foreign currencies, or swept to the base at each close.
    pub conversion: Conversion,
}

impl Currencies {
    /// Checks and keeps the currencies of a run: `asset_currency` one code per asset, each
    /// `< n_currencies`; `rates` sorted by time, one per (timestamp, currency), never for the
    /// base, each finite and > 0; a currency some asset is quoted in has at least one rate; the
    /// fee in `[0, 1)`. Errors name the row or asset.
    pub fn new(
        n_currencies: usize,
        asset_currency: Vec<CurrencyId>,
        rates: Vec<FxRate>,
        conversion: Conversion,
    ) -> Result<Self> {
        if n_currencies == 0 || n_currencies > CurrencyId::MAX as usize {
            return Err(BacktestError::config(
                "currencies",
                format!(
                    "between 1 and {} currencies, got {n_currencies}",
                    CurrencyId::MAX
                ),
            ));
        }
        let mut priced = vec![false; n_currencies];
        for (row, r) in rates.iter().enumerate() {
            if r.currency == BASE || r.currency as usize >= n_currencies {
                return Err(BacktestError::data(
                    "fx.currency",
                    row,
                    format!(
                        "unknown_currency: code {} (1..{} are the foreign currencies)",
                        r.currency, n_currencies
                    ),
                ));
            }
            if !(r.rate.is_finite() && r.rate > 0.0) {
                return Err(BacktestError::data(
                    "fx.rate",
                    row,
                    format!("not_positive: must be finite and > 0, got {}", r.rate),
                ));
            }
            if row > 0 {
                let prev = rates[row - 1];
                if (prev.ts, prev.currency) >= (r.ts, r.currency) {
                    return Err(BacktestError::data(
                        "fx.ts",
                        row,
                        "sort_order: rows must be sorted by (ts, currency), one per pair",
                    ));
                }
            }
            priced[r.currency as usize] = true;
        }
        for (asset, &c) in asset_currency.iter().enumerate() {
            if c as usize >= n_currencies {
                return Err(BacktestError::config(
                    &format!("instruments[{asset}].currency"),
                    format!("unknown currency code {c}"),
                ));
            }
            if c != BASE && !priced[c as usize] {
                return Err(BacktestError::config(
                    &format!("instruments[{asset}].currency"),
                    format!("no_fx_rate: currency {c} has no rates"),
                ));
            }
        }
        if let Conversion::AutoConvert { fee } = conversion {
            if !(fee.is_finite() && (0.0..1.0).contains(&fee)) {
                return Err(BacktestError::config(
                    "account.fx_fee",
                    format!("must be in [0, 1), got {fee}"),
                ));
            }
        }
        Ok(Currencies {
            n_currencies,
            asset_currency,
            rates,
            next: 0,
            conversion,
        })
    }

    /// The quote currency of `asset`.
    #[inline]
    pub fn of(&self, asset: AssetId) -> CurrencyId {
        self.asset_currency[asset as usize]
    }

    /// The date of the next rate not yet applied (`Ts::MAX` when none is left).
    #[inline]
    pub fn next_ts(&self) -> Ts {
        self.rates.get(self.next).map_or(Ts::MAX, |r| r.ts)
    }

    /// The rates dated at or before `ts` not applied yet, in order; the cursor moves past them.
    pub fn take_due(&mut self, ts: Ts) -> &[FxRate] {
        let start = self.next;
        while self.next < self.rates.len() && self.rates[self.next].ts <= ts {
            self.next += 1;
        }
        &self.rates[start..self.next]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(ts: Ts, currency: CurrencyId, rate: f64) -> FxRate {
        FxRate { ts, currency, rate }
    }

    #[test]
    fn rates_apply_at_or_after_their_date() {
        let mut c = Currencies::new(
            2,
            vec![0, 1],
            vec![rate(10, 1, 1.1), rate(20, 1, 1.2)],
            Conversion::Keep,
        )
        .unwrap();
        assert!(c.take_due(9).is_empty());
        assert_eq!(c.take_due(15), &[rate(10, 1, 1.1)]);
        assert_eq!(c.next_ts(), 20);
        assert_eq!(c.take_due(30), &[rate(20, 1, 1.2)]);
        assert_eq!(c.next_ts(), Ts::MAX);
    }

    #[test]
    fn bad_tables_are_named() {
        let err = |rates, assets| {
            Currencies::new(2, assets, rates, Conversion::Keep)
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![rate(1, 1, 0.0)], vec![1]).contains("fx.rate"));
        assert!(err(vec![rate(1, 1, f64::NAN)], vec![1]).contains("fx.rate"));
        assert!(err(vec![rate(1, 1, 1.0), rate(1, 1, 1.0)], vec![1]).contains("fx.ts"));
        assert!(err(vec![rate(1, 0, 1.0)], vec![1]).contains("fx.currency"));
        let e = Currencies::new(3, vec![2], vec![rate(1, 1, 1.0)], Conversion::Keep)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instruments[0].currency") && e.contains("no_fx_rate"),
            "{e}"
        );
        let e = Currencies::new(
            2,
            vec![1],
            vec![rate(1, 1, 1.0)],
            Conversion::AutoConvert { fee: 1.0 },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("account.fx_fee"), "{e}");
    }
}
