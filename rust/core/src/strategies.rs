//! Built-in strategies that run entirely in Rust (no Python, the GIL released).

use crate::error::{BacktestError, Result};
use crate::feed::MarketData;
use crate::orders::OrderRequest;
use crate::strategy::{Strategy, StrategyContext, TimestampView};
use crate::types::AssetId;

/// How a [`SignalStrategy`] sizes an entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalSizing {
    /// A fixed number of shares.
    Quantity(f64),
    /// A fraction of equity at the decision bar.
    Weight(f64),
}

/// Trades a precomputed signal column: long while `signal > long_threshold`, short (or flat, when
/// shorting is off) while `signal < short_threshold`, otherwise holds. A position is sized when it
/// is entered and held until the signal changes side. With a point-in-time universe it enters
/// members only: for a non-member an entry is skipped and a flip only closes the position.
#[derive(Debug, Clone)]
pub struct SignalStrategy {
    column: String,
    sizing: SignalSizing,
    long_threshold: f64,
    short_threshold: f64,
    allow_short: bool,
    /// Bracket on every entry: (take-profit, stop-loss) as fractions of the decision close.
    bracket: Option<(f64, f64)>,
    column_pos: usize,
}

impl SignalStrategy {
    /// Attaches a bracket to every entry: a take-profit `take_profit` and a stop-loss
    /// `stop_loss` away from the decision bar's close (fractions, e.g. 0.04 and 0.02).
    pub fn with_bracket(mut self, take_profit: f64, stop_loss: f64) -> Result<Self> {
        for (field, v) in [
            ("strategy.take_profit", take_profit),
            ("strategy.stop_loss", stop_loss),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return Err(BacktestError::config(
                    field,
                    format!("must be in (0, 1), got {v}"),
                ));
            }
        }
        self.bracket = Some((take_profit, stop_loss));
        Ok(self)
    }

    /// A signal strategy over feature column `column`.
    pub fn new(
        column: impl Into<String>,
        sizing: SignalSizing,
        long_threshold: f64,
        short_threshold: f64,
        allow_short: bool,
    ) -> Result<Self> {
        let size = match sizing {
            SignalSizing::Quantity(q) => q,
            SignalSizing::Weight(w) => w,
        };
        if !size.is_finite() || size <= 0.0 {
            return Err(BacktestError::config(
                "strategy.size",
                format!("must be finite and > 0, got {size}"),
            ));
        }
        if !(long_threshold.is_finite() && short_threshold.is_finite())
            || short_threshold > long_threshold
        {
            return Err(BacktestError::config(
                "strategy.short_threshold",
                format!(
                    "thresholds must be finite with short_threshold <= long_threshold, got \
                     {short_threshold} > {long_threshold}"
                ),
            ));
        }
        Ok(SignalStrategy {
            column: column.into(),
            sizing,
            long_threshold,
            short_threshold,
            allow_short,
            bracket: None,
            column_pos: 0,
        })
    }
}

impl SignalStrategy {
    /// Flattens any opposite position, then enters `desired` (±1) with a bracket around `close`.
    #[cold]
    fn enter_with_bracket(
        &self,
        ctx: &mut StrategyContext<'_>,
        asset: AssetId,
        desired: f64,
        current: f64,
        close: f64,
        (take_profit, stop_loss): (f64, f64),
    ) -> Result<()> {
        let size = match self.sizing {
            SignalSizing::Quantity(q) => q,
            SignalSizing::Weight(w) => w * ctx.equity() / close,
        };
        if current != 0.0 {
            ctx.orders.close_position(asset)?;
        }
        ctx.orders.submit(OrderRequest {
            take_profit: Some(close * (1.0 + desired * take_profit)),
            stop_loss: Some(close * (1.0 - desired * stop_loss)),
            ..OrderRequest::market(asset, desired * size)
        })?;
        Ok(())
    }
}

impl Strategy for SignalStrategy {
    fn on_chunk(&mut self, data: &MarketData) -> Result<()> {
        self.column_pos = data.require_feature(&self.column, "strategy.column")?;
        Ok(())
    }

    // Always: the engine's loop is generic over the strategy, and this test is the hot part.
    #[inline(always)]
    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()> {
        let signal = &view.data.feature_at(self.column_pos)[view.rows()];
        let assets = &view.data.asset_ids()[view.rows()];
        for (offset, (&s, &asset)) in signal.iter().zip(assets).enumerate() {
            let desired = if s > self.long_threshold {
                1.0
            } else if s < self.short_threshold {
                if self.allow_short {
                    -1.0
                } else {
                    0.0
                }
            } else {
                continue;
            };
            let current = ctx.position(asset) + ctx.pending(asset);
            // The side held (NaN counts as flat) is the side wanted: nothing to do. Tested
            // against the wanted side directly, without building the held side's sign.
            let same = if desired > 0.0 {
                current > 0.0
            } else if desired < 0.0 {
                current < 0.0
            } else {
                current == 0.0 || current.is_nan()
            };
            if !same {
                self.act(view.data, ctx, view.start + offset, asset, desired, current)?;
            }
        }
        Ok(())
    }
}

impl SignalStrategy {
    /// The orders of a change of side at `row`: out of line, so that the test above stays
    /// small enough to inline into the loop.
    #[inline(never)]
    fn act(
        &self,
        data: &MarketData,
        ctx: &mut StrategyContext<'_>,
        row: usize,
        asset: AssetId,
        desired: f64,
        current: f64,
    ) -> Result<()> {
        let flat = current == 0.0 || current.is_nan();
        // With a point-in-time universe a non-member is never entered: an entry is
        // skipped, a flip only closes the position held.
        let desired = if desired != 0.0 && !ctx.is_member(asset) {
            if flat {
                return Ok(());
            }
            0.0
        } else {
            desired
        };
        match (self.bracket, desired != 0.0) {
            (Some(bracket), true) => {
                let close = data.close()[row];
                self.enter_with_bracket(ctx, asset, desired, current, close, bracket)?;
            }
            _ => match self.sizing {
                SignalSizing::Quantity(q) => {
                    ctx.orders.order_target_quantity(asset, desired * q)?
                }
                SignalSizing::Weight(w) => ctx.orders.order_target_percent(asset, desired * w)?,
            },
        }
        Ok(())
    }
}

/// Holds the `k` highest-scoring assets long (and the `bottom_k` lowest short) at equal weight,
/// rebalancing every `rebalance_every` timestamps. Only assets with a bar and a finite score at the
/// rebalance (and, with a point-in-time universe, members then) are candidates; ties go to the
/// lower asset code.
#[derive(Debug, Clone)]
pub struct TopKStrategy {
    column: String,
    k: usize,
    bottom_k: usize,
    rebalance_every: u64,
    column_pos: usize,
    candidates: Vec<(f64, AssetId)>,
    weights: Vec<(AssetId, f64)>,
}

impl TopKStrategy {
    /// A top-k strategy over score column `column`.
    pub fn new(
        column: impl Into<String>,
        k: usize,
        bottom_k: usize,
        rebalance_every: u64,
    ) -> Result<Self> {
        if k + bottom_k == 0 {
            return Err(BacktestError::config(
                "strategy.k",
                "k + bottom_k must be > 0",
            ));
        }
        if rebalance_every == 0 {
            return Err(BacktestError::config(
                "strategy.rebalance_every",
                "must be >= 1",
            ));
        }
        Ok(TopKStrategy {
            column: column.into(),
            k,
            bottom_k,
            rebalance_every,
            column_pos: 0,
            candidates: Vec::new(),
            weights: Vec::new(),
        })
    }
}

impl Strategy for TopKStrategy {
    fn on_start(&mut self, n_assets: u32) -> Result<()> {
        self.candidates.reserve(n_assets as usize);
        self.weights.reserve(self.k + self.bottom_k);
        Ok(())
    }

    fn on_chunk(&mut self, data: &MarketData) -> Result<()> {
        self.column_pos = data.require_feature(&self.column, "strategy.score")?;
        Ok(())
    }

    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()> {
        if view.index % self.rebalance_every != 0 {
            return Ok(());
        }
        let score = view.data.feature_at(self.column_pos);
        let assets = view.data.asset_ids();
        self.candidates.clear();
        self.candidates.extend(
            view.rows()
                .filter(|&row| score[row].is_finite() && ctx.is_member(assets[row]))
                .map(|row| (score[row], assets[row])),
        );
        let n = self.candidates.len();
        let longs = self.k.min(n);
        let shorts = self.bottom_k.min(n - longs);
        select_ends(&mut self.candidates, longs, shorts);
        let weight = 1.0 / (self.k + self.bottom_k) as f64;
        self.weights.clear();
        self.weights
            .extend(self.candidates[..longs].iter().map(|&(_, a)| (a, weight)));
        self.weights.extend(
            self.candidates[n - shorts..]
                .iter()
                .map(|&(_, a)| (a, -weight)),
        );
        ctx.orders.rebalance(self.weights.iter().copied())
    }
}

/// Highest score first; ties by the lower asset code, so the order is total (asset codes are
/// unique) and the selection below equals a full sort's ends.
fn by_score(a: &(f64, AssetId), b: &(f64, AssetId)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Puts the `longs` best candidates, in [`by_score`] order, at the front and the `shorts`
/// worst, in the same order, at the back: two selections (O(n)) and two small sorts instead
/// of sorting every score.
fn select_ends(candidates: &mut [(f64, AssetId)], longs: usize, shorts: usize) {
    let n = candidates.len();
    if longs > 0 {
        if longs < n {
            candidates.select_nth_unstable_by(longs - 1, by_score);
        }
        candidates[..longs].sort_unstable_by(by_score);
    }
    let rest = &mut candidates[longs..];
    let m = rest.len();
    if shorts > 0 {
        if shorts < m {
            rest.select_nth_unstable_by(m - shorts, by_score);
        }
        rest[m - shorts..].sort_unstable_by(by_score);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The selection gives exactly the ends of a full sort, in the same order.
        #[test]
        fn select_ends_equals_the_full_sort(
            scores in proptest::collection::vec(-3i8..3, 0..40),
            k in 0usize..12,
            bottom in 0usize..12,
        ) {
            let mut picked: Vec<(f64, AssetId)> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| (f64::from(s), i as AssetId))
                .rev()
                .collect();
            let mut sorted = picked.clone();
            sorted.sort_unstable_by(by_score);
            let n = picked.len();
            let longs = k.min(n);
            let shorts = bottom.min(n - longs);
            select_ends(&mut picked, longs, shorts);
            prop_assert_eq!(&picked[..longs], &sorted[..longs]);
            prop_assert_eq!(&picked[n - shorts..], &sorted[n - shorts..]);
        }
    }
}
