//! Crypto perpetuals' funding: at the first bar at or after each funding time (multiples of the
//! instrument's interval since the epoch), the position held pays (a positive rate: longs pay
//! shorts) position × mark × multiplier × rate, the mark being that bar's close and the rate the
//! last value of the funding column seen for the asset (owns `Funding`).

use super::Engine;
use crate::error::Result;
use crate::feed::MarketData;
use crate::instruments::{AssetClass, Instruments};
use crate::types::{AssetId, Ts};

/// The funding inputs of a run and their per-asset state.
#[derive(Debug, Default)]
pub(super) struct Funding {
    /// Whether some asset is a perpetual and a funding column is configured.
    pub(super) on: bool,
    /// Per asset: the funding interval in ns (0: not a perpetual).
    interval: Vec<i64>,
    /// Per asset: the last funding rate seen (NaN before the first).
    rate: Vec<f64>,
    /// Per asset: the timestamp of its previous bar (`Ts::MIN` before its first).
    previous: Vec<Ts>,
    /// The column's position in the current chunk.
    column: Option<usize>,
}

impl Funding {
    /// Sets up the perpetuals of `instruments`; funding runs once a column is named too.
    pub(super) fn setup(&mut self, instruments: &Instruments) {
        if !instruments.any_perp {
            return;
        }
        let specs = instruments.specs();
        self.interval = specs
            .iter()
            .map(|s| {
                if s.class == AssetClass::CryptoPerp {
                    s.funding_interval
                } else {
                    0
                }
            })
            .collect();
        self.rate = vec![f64::NAN; specs.len()];
        self.previous = vec![Ts::MIN; specs.len()];
    }

    /// The number of funding times of a perpetual with `interval` in `(previous, ts]` (the
    /// first bar counts only a funding time exactly at it).
    #[inline]
    fn crossed(interval: i64, previous: Ts, ts: Ts) -> i64 {
        let previous = if previous == Ts::MIN {
            ts - 1
        } else {
            previous
        };
        ts.div_euclid(interval) - previous.div_euclid(interval)
    }
}

impl Engine {
    /// Resolves the funding-rate column of a new chunk (its name is
    /// `EngineConfig::funding_rate_column`).
    pub(super) fn resolve_funding_column(&mut self, data: &MarketData) -> Result<()> {
        if let Some(name) = &self.config.funding_rate_column {
            let pos = data.require_feature(name, "account.funding_rate_column")?;
            self.funding.column = Some(pos);
        }
        Ok(())
    }

    /// Switches funding on when the run has perpetuals and a funding column.
    pub(super) fn enable_funding(&mut self) {
        self.funding.on =
            !self.funding.interval.is_empty() && self.config.funding_rate_column.is_some();
    }

    /// Step 2c: the funding payments of this timestamp's perpetuals (rows from `start`).
    pub(super) fn pay_funding(
        &mut self,
        data: &MarketData,
        ts: Ts,
        start: usize,
        group: &[AssetId],
    ) {
        let Some(column) = self.funding.column else {
            return;
        };
        let rates = data.feature_at(column);
        let close = data.close();
        let mut total = 0.0;
        for (offset, &asset) in group.iter().enumerate() {
            let a = asset as usize;
            let interval = self.funding.interval[a];
            if interval == 0 {
                continue;
            }
            let row = start + offset;
            if rates[row].is_finite() {
                self.funding.rate[a] = rates[row];
            }
            let crossed = Funding::crossed(interval, self.funding.previous[a], ts);
            self.funding.previous[a] = ts;
            let held = self.portfolio.quantity(asset);
            let rate = self.funding.rate[a];
            if crossed <= 0 || held == 0.0 || !rate.is_finite() {
                continue;
            }
            let multiplier = self.portfolio.multiplier(asset);
            // Signed cash to the account: a long pays a positive rate.
            let amount = -(held * close[row] * multiplier * rate * crossed as f64);
            if amount != 0.0 {
                // Paid in the asset's currency; the financing table is in base.
                let rate = self.portfolio.rate_of(asset);
                self.portfolio.credit(asset, amount);
                self.tracker.add_funding(asset, amount, rate);
                total += amount * rate;
            }
        }
        if total != 0.0 {
            self.record.financing.add_funding(ts, total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Funding;

    #[test]
    fn funding_times_crossed_since_the_previous_bar() {
        let h = 3_600_000_000_000_i64;
        // Hourly bars, 8 h funding: only the bar at 08:00 crosses one.
        assert_eq!(Funding::crossed(8 * h, 7 * h, 8 * h), 1);
        assert_eq!(Funding::crossed(8 * h, 8 * h, 9 * h), 0);
        // A daily gap crosses three.
        assert_eq!(Funding::crossed(8 * h, 0, 24 * h), 3);
        // The first bar counts a funding time only exactly at it.
        assert_eq!(Funding::crossed(8 * h, i64::MIN, 8 * h), 1);
        assert_eq!(Funding::crossed(8 * h, i64::MIN, 9 * h), 0);
    }
}
