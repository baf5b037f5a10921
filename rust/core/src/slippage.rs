//! Slippage models: how far the fill price moves against the trader from the reference price.
//!
//! A market-like fill (market, market-on-close, stop, trailing stop, margin-call liquidation)
//! at `reference` gets [`SlippageModel::fill_price`]: the model's price, clamped into the bar's
//! `[low, high]`. Limit fills are slippage-free. The models (see `docs/semantics.md`,
//! "Fill price"):
//!
//! - [`SlippageModel::Fixed`] / [`SlippageModel::Percent`]: an amount per share / a fraction;
//! - [`SlippageModel::Spread`]: the bar's `bid`/`ask` columns (a buy fills at the ask, a sell
//!   at the bid), else a `spread` column (half of it on each side), else `bps` basis points
//!   of full spread;
//! - [`SlippageModel::VolumeShare`]: `impact × quantity / bar volume`, capped at `cap`;
//! - [`SlippageModel::SquareRootImpact`]: `k · σ · sqrt(quantity / ADV)` with σ and ADV from
//!   feature columns;
//! - [`SlippageModel::Custom`]: any [`CustomSlippage`] (the Python bindings wrap a Python
//!   `SlippageModel` subclass in one).
//!
//! The model is configuration only. Its column positions are resolved once per chunk by
//! [`SlippageModel::bind`] (the engine calls it when a chunk starts, as it calls
//! `Strategy::on_chunk` and `RiskRule::bind`) and passed back with every fill, never looked up
//! per fill.

use std::fmt;
use std::sync::Arc;

use crate::error::{BacktestError, Result};
use crate::feed::MarketData;
use crate::types::Side;

/// Names of the quote columns the spread model looks for.
pub const BID_COLUMN: &str = "bid";
/// See [`BID_COLUMN`].
pub const ASK_COLUMN: &str = "ask";
/// See [`BID_COLUMN`].
pub const SPREAD_COLUMN: &str = "spread";

/// One market-like fill as a slippage model sees it.
#[derive(Debug, Clone, Copy)]
pub struct SlippageFill<'a> {
    /// The chunk holding the bar.
    pub data: &'a MarketData,
    /// Row of the asset's bar in `data`.
    pub row: usize,
    /// Buy or sell.
    pub side: Side,
    /// Shares to fill (absolute; after the volume cap, before any cash resize).
    pub quantity: f64,
    /// Price before slippage (the open, the close or a stop level).
    pub reference: f64,
}

/// A user-defined slippage model. Implementations must be thread-safe: the engine may run on
/// a worker thread.
pub trait CustomSlippage: Send + Sync {
    /// The fill price for `fill`, before it is clamped into the bar. An error stops the run.
    fn price(&self, fill: &SlippageFill<'_>) -> Result<f64>;

    /// A name for messages.
    fn name(&self) -> String {
        "custom".to_string()
    }
}

/// A shared [`CustomSlippage`]; two handles are equal when they point at the same model.
#[derive(Clone)]
pub struct CustomModel(pub Arc<dyn CustomSlippage>);

impl fmt::Debug for CustomModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomModel({})", self.0.name())
    }
}

impl PartialEq for CustomModel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The columns a model reads, resolved for one chunk by [`SlippageModel::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SlippageColumns {
    /// [`MarketData::id`] of the chunk they were resolved in.
    chunk: u64,
    resolved: Resolved,
}

/// Column positions of one chunk, by model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Resolved {
    Spread {
        bid_ask: Option<(usize, usize)>,
        spread: Option<usize>,
    },
    Impact {
        sigma: usize,
        adv: usize,
    },
    #[default]
    Nothing,
}

/// Price adjustment applied before the fill price is clamped into the bar's range.
#[derive(Debug, Clone, PartialEq)]
pub enum SlippageModel {
    /// Fill at the reference price.
    None,
    /// A fixed amount per share against the trader.
    Fixed {
        /// Currency per share.
        amount: f64,
    },
    /// A fraction of the reference price against the trader.
    Percent {
        /// Fraction, e.g. `0.0005` for 5 basis points.
        rate: f64,
    },
    /// The bid/ask spread: `bid`/`ask` feature columns when the data has them (buy at the ask,
    /// sell at the bid), else a `spread` column (full spread in price units, half on each
    /// side), else `bps` basis points of full spread (half on each side). A row whose quotes
    /// are missing (NaN) or crossed falls back to the next source.
    Spread {
        /// Full spread in basis points of the reference, used without quote columns.
        bps: f64,
    },
    /// Impact growing with the order's share of the bar's volume: the price moves by
    /// `min(impact × quantity / volume, cap)` of the reference (`cap` on a zero-volume bar).
    VolumeShare {
        /// Impact per unit of volume share.
        impact: f64,
        /// Largest price move, as a fraction of the reference.
        cap: f64,
    },
    /// Square-root market impact: the price moves by `k · σ · sqrt(quantity / ADV)` of the
    /// reference, σ (volatility, a fraction) and ADV (average daily volume, shares) read from
    /// the bar's feature columns.
    SquareRootImpact {
        /// Impact coefficient.
        k: f64,
        /// Feature column with σ.
        sigma_column: String,
        /// Feature column with the ADV.
        adv_column: String,
    },
    /// A user model, called once per market-like fill.
    Custom(CustomModel),
}

impl SlippageModel {
    /// [`SlippageModel::Spread`] with `bps` basis points of full spread as its fallback.
    pub fn spread(bps: f64) -> Self {
        SlippageModel::Spread { bps }
    }

    /// [`SlippageModel::SquareRootImpact`] reading σ and ADV from the named columns.
    pub fn square_root_impact(
        k: f64,
        sigma_column: impl Into<String>,
        adv_column: impl Into<String>,
    ) -> Self {
        SlippageModel::SquareRootImpact {
            k,
            sigma_column: sigma_column.into(),
            adv_column: adv_column.into(),
        }
    }

    /// [`SlippageModel::Custom`] wrapping `model`.
    pub fn custom(model: impl CustomSlippage + 'static) -> Self {
        SlippageModel::Custom(CustomModel(Arc::new(model)))
    }

    /// The slipped price for a fill on `side` at `reference` from the model's parameters alone
    /// (before clamping to the bar): exact for `None`, `Fixed` and `Percent`, the `bps`
    /// fallback for `Spread`; the data-driven models (volume share, square-root impact,
    /// custom) need the bar and return `reference` here.
    #[inline]
    fn apply(&self, side: Side, reference: f64) -> f64 {
        match *self {
            SlippageModel::None => reference,
            SlippageModel::Fixed { amount } => reference + side.sign() * amount,
            SlippageModel::Percent { rate } => reference * (1.0 + side.sign() * rate),
            SlippageModel::Spread { bps, .. } => half_spread_bps(side, reference, bps),
            SlippageModel::VolumeShare { .. }
            | SlippageModel::SquareRootImpact { .. }
            | SlippageModel::Custom(_) => reference,
        }
    }

    /// Resolves the columns the model reads in `data` (a `Config` error naming a missing
    /// column). Call it once per chunk and pass the result to [`Self::fill_price_in`] for every
    /// fill on that chunk.
    pub fn bind(&self, data: &MarketData) -> Result<SlippageColumns> {
        Ok(SlippageColumns {
            chunk: data.id(),
            resolved: self.resolve(data)?,
        })
    }

    /// Checks that the columns the model needs are in `data` (a `Config` error naming the
    /// missing column otherwise), to fail before a chunk runs.
    pub fn check_columns(&self, data: &MarketData) -> Result<()> {
        self.bind(data).map(drop)
    }

    /// The price of a market-like fill of `quantity` shares (absolute) on `side` at
    /// `reference`, on row `row` of `data` (bound in `columns`): the model's price clamped
    /// into the bar's `[low, high]`.
    pub fn fill_price_in(
        &self,
        columns: SlippageColumns,
        data: &MarketData,
        row: usize,
        side: Side,
        quantity: f64,
        reference: f64,
    ) -> Result<f64> {
        debug_assert_eq!(
            columns.chunk,
            data.id(),
            "slippage columns of another chunk"
        );
        let fill = SlippageFill {
            data,
            row,
            side,
            quantity: quantity.abs(),
            reference,
        };
        let price = self.price(columns.resolved, &fill)?;
        Ok(price.clamp(data.low()[row], data.high()[row]))
    }

    /// [`Self::fill_price_in`] for a single fill: binds `data` first (a column lookup by name,
    /// so the loop binds once per chunk instead).
    pub fn fill_price(
        &self,
        data: &MarketData,
        row: usize,
        side: Side,
        quantity: f64,
        reference: f64,
    ) -> Result<f64> {
        let columns = self.bind(data)?;
        self.fill_price_in(columns, data, row, side, quantity, reference)
    }

    /// The model's price for `fill` (its columns in `resolved`) before clamping to the bar.
    fn price(&self, resolved: Resolved, fill: &SlippageFill<'_>) -> Result<f64> {
        let (side, reference) = (fill.side, fill.reference);
        let sign = side.sign();
        match self {
            SlippageModel::None | SlippageModel::Fixed { .. } | SlippageModel::Percent { .. } => {
                Ok(self.apply(side, reference))
            }
            SlippageModel::Spread { bps } => {
                let Resolved::Spread { bid_ask, spread } = resolved else {
                    unreachable!("a spread model resolves to spread columns")
                };
                let row = fill.row;
                if let Some((bid, ask)) = bid_ask {
                    let (bid, ask) = (
                        fill.data.feature_at(bid)[row],
                        fill.data.feature_at(ask)[row],
                    );
                    if bid.is_finite() && ask.is_finite() && bid > 0.0 && ask >= bid {
                        return Ok(if side == Side::Buy { ask } else { bid });
                    }
                }
                if let Some(spread) = spread {
                    let spread = fill.data.feature_at(spread)[row];
                    if spread.is_finite() && spread >= 0.0 {
                        return Ok(reference + sign * spread / 2.0);
                    }
                }
                Ok(half_spread_bps(side, reference, *bps))
            }
            SlippageModel::VolumeShare { impact, cap } => {
                let volume = fill.data.volume()[fill.row];
                let fraction = volume_share_fraction(*impact, *cap, fill.quantity, volume);
                Ok(reference * (1.0 + sign * fraction))
            }
            SlippageModel::SquareRootImpact {
                k,
                sigma_column,
                adv_column,
            } => {
                let Resolved::Impact { sigma, adv } = resolved else {
                    unreachable!("an impact model resolves to impact columns")
                };
                let sigma = fill.data.feature_at(sigma)[fill.row];
                let adv = fill.data.feature_at(adv)[fill.row];
                if !(sigma.is_finite() && sigma >= 0.0) {
                    return Err(BacktestError::data(
                        sigma_column,
                        fill.row,
                        format!("slippage needs a finite σ >= 0 at a fill, got {sigma}"),
                    ));
                }
                if !(adv.is_finite() && adv > 0.0) {
                    return Err(BacktestError::data(
                        adv_column,
                        fill.row,
                        format!("slippage needs a finite ADV > 0 at a fill, got {adv}"),
                    ));
                }
                let fraction = sqrt_impact_fraction(*k, sigma, fill.quantity, adv);
                Ok(reference * (1.0 + sign * fraction))
            }
            SlippageModel::Custom(model) => {
                let price = model.0.price(fill)?;
                if !(price.is_finite() && price > 0.0) {
                    return Err(BacktestError::Strategy(format!(
                        "slippage model {} returned {price}: a fill price must be finite and > 0",
                        model.0.name()
                    )));
                }
                Ok(price)
            }
        }
    }

    /// The columns of `data` the model reads.
    fn resolve(&self, data: &MarketData) -> Result<Resolved> {
        match self {
            SlippageModel::Spread { .. } => {
                let bid = data.feature_position(BID_COLUMN);
                let ask = data.feature_position(ASK_COLUMN);
                Ok(Resolved::Spread {
                    bid_ask: bid.zip(ask),
                    spread: data.feature_position(SPREAD_COLUMN),
                })
            }
            SlippageModel::SquareRootImpact {
                sigma_column,
                adv_column,
                ..
            } => {
                let find = |field: &str, name: &str| data.require_feature(name, field);
                Ok(Resolved::Impact {
                    sigma: find("slippage.sigma_column", sigma_column)?,
                    adv: find("slippage.adv_column", adv_column)?,
                })
            }
            _ => Ok(Resolved::Nothing),
        }
    }

    /// Checks every parameter: finite, non-negative, and positive where a zero makes no sense.
    pub fn validate(&self) -> Result<()> {
        let non_negative = |name: &str, value: f64| {
            if !value.is_finite() || value < 0.0 {
                return Err(BacktestError::config(
                    &format!("slippage.{name}"),
                    format!("must be finite and >= 0, got {value}"),
                ));
            }
            Ok(())
        };
        let positive = |name: &str, value: f64| {
            if !(value.is_finite() && value > 0.0) {
                return Err(BacktestError::config(
                    &format!("slippage.{name}"),
                    format!("must be > 0, got {value}"),
                ));
            }
            Ok(())
        };
        match self {
            SlippageModel::None | SlippageModel::Custom(_) => Ok(()),
            SlippageModel::Fixed { amount } => non_negative("amount", *amount),
            SlippageModel::Percent { rate } => non_negative("rate", *rate),
            SlippageModel::Spread { bps, .. } => non_negative("bps", *bps),
            SlippageModel::VolumeShare { impact, cap } => {
                positive("impact", *impact)?;
                if !(cap.is_finite() && *cap > 0.0 && *cap <= 1.0) {
                    return Err(BacktestError::config(
                        "slippage.cap",
                        format!("must be in (0, 1], got {cap}"),
                    ));
                }
                Ok(())
            }
            SlippageModel::SquareRootImpact {
                k,
                sigma_column,
                adv_column,
                ..
            } => {
                positive("k", *k)?;
                for (field, name) in [
                    ("slippage.sigma_column", sigma_column),
                    ("slippage.adv_column", adv_column),
                ] {
                    if name.is_empty() {
                        return Err(BacktestError::config(field, "must name a feature column"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// `reference` moved by half of `bps` basis points against the trader.
#[inline]
fn half_spread_bps(side: Side, reference: f64, bps: f64) -> f64 {
    reference * (1.0 + side.sign() * bps / 20_000.0)
}

/// `min(impact × quantity / volume, cap)`; `cap` when the bar has no volume.
#[inline]
fn volume_share_fraction(impact: f64, cap: f64, quantity: f64, volume: f64) -> f64 {
    if quantity == 0.0 {
        return 0.0;
    }
    if volume <= 0.0 {
        return cap;
    }
    (impact * quantity / volume).min(cap)
}

/// `k · σ · sqrt(quantity / ADV)`.
#[inline]
fn sqrt_impact_fraction(k: f64, sigma: f64, quantity: f64, adv: f64) -> f64 {
    k * sigma * (quantity / adv).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, RecordBatch, UInt32Array};
    use std::sync::Arc as StdArc;

    /// One bar (open 100, high 110, low 90, close 105, volume 1000) plus `features`.
    fn bar(features: &[(&str, f64)]) -> MarketData {
        let mut columns: Vec<(String, arrow_array::ArrayRef)> = vec![
            ("ts".into(), StdArc::new(Int64Array::from(vec![0i64]))),
            (
                "asset_id".into(),
                StdArc::new(UInt32Array::from(vec![0u32])),
            ),
        ];
        for (name, v) in [
            ("open", 100.0),
            ("high", 110.0),
            ("low", 90.0),
            ("close", 105.0),
            ("volume", 1000.0),
        ]
        .iter()
        .chain(features.iter())
        {
            columns.push(((*name).into(), StdArc::new(Float64Array::from(vec![*v]))));
        }
        MarketData::new(RecordBatch::try_from_iter(columns).unwrap(), 1).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn slippage_moves_against_the_trader() {
        let f = SlippageModel::Fixed { amount: 0.05 };
        assert_eq!(f.apply(Side::Buy, 10.0), 10.05);
        assert_eq!(f.apply(Side::Sell, 10.0), 9.95);
        let p = SlippageModel::Percent { rate: 0.01 };
        assert_eq!(p.apply(Side::Buy, 100.0), 101.0);
        assert_eq!(p.apply(Side::Sell, 100.0), 99.0);
        assert_eq!(SlippageModel::None.apply(Side::Buy, 7.0), 7.0);
        // Through fill_price: the same numbers, clamped into [90, 110].
        let data = bar(&[]);
        assert_eq!(
            p.fill_price(&data, 0, Side::Buy, 5.0, 100.0).unwrap(),
            101.0
        );
        let big = SlippageModel::Fixed { amount: 20.0 };
        assert_eq!(
            big.fill_price(&data, 0, Side::Buy, 5.0, 100.0).unwrap(),
            110.0
        );
        assert_eq!(
            big.fill_price(&data, 0, Side::Sell, 5.0, 100.0).unwrap(),
            90.0
        );
    }

    #[test]
    fn spread_prefers_quotes_then_spread_column_then_bps() {
        let model = SlippageModel::spread(10.0);
        // bid/ask: buy at the ask, sell at the bid.
        let quotes = bar(&[("bid", 99.9), ("ask", 100.2), ("spread", 4.0)]);
        assert_eq!(
            model.fill_price(&quotes, 0, Side::Buy, 1.0, 100.0).unwrap(),
            100.2
        );
        assert_eq!(
            model
                .fill_price(&quotes, 0, Side::Sell, 1.0, 100.0)
                .unwrap(),
            99.9
        );
        // spread column 0.5: half (0.25) on each side of the reference.
        let spread = bar(&[("spread", 0.5)]);
        assert_eq!(
            model.fill_price(&spread, 0, Side::Buy, 1.0, 100.0).unwrap(),
            100.25
        );
        assert_eq!(
            model
                .fill_price(&spread, 0, Side::Sell, 1.0, 100.0)
                .unwrap(),
            99.75
        );
        // 10 bps full spread: 5 bps per side = 0.05 on 100.
        let plain = bar(&[]);
        assert!(close(
            model.fill_price(&plain, 0, Side::Buy, 1.0, 100.0).unwrap(),
            100.05
        ));
        assert!(close(
            model.fill_price(&plain, 0, Side::Sell, 1.0, 100.0).unwrap(),
            99.95
        ));
        assert!(close(model.apply(Side::Buy, 100.0), 100.05));
        // Crossed or missing quotes fall back to the spread column.
        let crossed = bar(&[("bid", 101.0), ("ask", 100.0), ("spread", 1.0)]);
        assert_eq!(
            model
                .fill_price(&crossed, 0, Side::Buy, 1.0, 100.0)
                .unwrap(),
            100.5
        );
        let missing = bar(&[("bid", f64::NAN), ("ask", 100.2)]);
        assert!(close(
            model
                .fill_price(&missing, 0, Side::Buy, 1.0, 100.0)
                .unwrap(),
            100.05
        ));
        // Only one quote column: not a quote pair.
        let bid_only = bar(&[("bid", 99.0)]);
        assert!(close(
            model
                .fill_price(&bid_only, 0, Side::Sell, 1.0, 100.0)
                .unwrap(),
            99.95
        ));
        // Quotes outside the bar are clamped into it.
        let wide = bar(&[("bid", 80.0), ("ask", 120.0)]);
        assert_eq!(
            model.fill_price(&wide, 0, Side::Buy, 1.0, 100.0).unwrap(),
            110.0
        );
        assert_eq!(
            model.fill_price(&wide, 0, Side::Sell, 1.0, 100.0).unwrap(),
            90.0
        );
    }

    #[test]
    fn volume_share_grows_with_the_share_and_is_capped() {
        let model = SlippageModel::VolumeShare {
            impact: 0.1,
            cap: 0.02,
        };
        let data = bar(&[]); // volume 1000
                             // 100 of 1000 shares: 0.1 × 0.1 = 1% → 101 / 99.
        assert!(close(
            model.fill_price(&data, 0, Side::Buy, 100.0, 100.0).unwrap(),
            101.0
        ));
        assert!(close(
            model
                .fill_price(&data, 0, Side::Sell, -100.0, 100.0)
                .unwrap(),
            99.0
        ));
        // 500 shares: 5% > cap 2% → 102.
        assert!(close(
            model.fill_price(&data, 0, Side::Buy, 500.0, 100.0).unwrap(),
            102.0
        ));
        assert_eq!(volume_share_fraction(0.1, 0.02, 10.0, 0.0), 0.02);
        assert_eq!(volume_share_fraction(0.1, 0.02, 0.0, 0.0), 0.0);
    }

    #[test]
    fn square_root_impact_is_hand_computed() {
        let model = SlippageModel::square_root_impact(0.5, "vol", "adv");
        // σ = 0.02, ADV = 10_000, q = 400: 0.5 × 0.02 × sqrt(0.04) = 0.002 → 100.2 / 99.8.
        let data = bar(&[("vol", 0.02), ("adv", 10_000.0)]);
        assert!(close(
            model.fill_price(&data, 0, Side::Buy, 400.0, 100.0).unwrap(),
            100.2
        ));
        assert!(close(
            model
                .fill_price(&data, 0, Side::Sell, 400.0, 100.0)
                .unwrap(),
            99.8
        ));
        // A missing column is a Config error naming it.
        let err = model.check_columns(&bar(&[("vol", 0.02)])).unwrap_err();
        assert!(
            matches!(&err, BacktestError::Config { field, rule }
                if field == "slippage.adv_column" && rule.contains("'adv'")),
            "{err}"
        );
        let err = model
            .fill_price(&bar(&[("adv", 1.0)]), 0, Side::Buy, 1.0, 100.0)
            .unwrap_err();
        assert!(
            matches!(err, BacktestError::Config { field, .. } if field == "slippage.sigma_column")
        );
        // A NaN σ at a fill is a data error naming the column.
        let nan = bar(&[("vol", f64::NAN), ("adv", 10_000.0)]);
        let err = model
            .fill_price(&nan, 0, Side::Buy, 1.0, 100.0)
            .unwrap_err();
        assert!(matches!(err, BacktestError::DataValidation { column, .. } if column == "vol"));
    }

    #[test]
    fn the_column_cache_follows_the_chunk() {
        let model = SlippageModel::spread(0.0);
        let a = bar(&[("spread", 2.0)]);
        let b = bar(&[("x", 5.0), ("spread", 4.0)]); // other position
        assert_eq!(
            model.fill_price(&a, 0, Side::Buy, 1.0, 100.0).unwrap(),
            101.0
        );
        assert_eq!(
            model.fill_price(&b, 0, Side::Buy, 1.0, 100.0).unwrap(),
            102.0
        );
        assert_eq!(
            model.fill_price(&a, 0, Side::Buy, 1.0, 100.0).unwrap(),
            101.0
        );
        // Columns are resolved per chunk, never stored in the model: equality is the parameters.
        assert_eq!(model.clone(), SlippageModel::spread(0.0));
    }

    struct Tick(f64);

    impl CustomSlippage for Tick {
        fn price(&self, fill: &SlippageFill<'_>) -> Result<f64> {
            if fill.quantity > 1e6 {
                return Err(BacktestError::Strategy("too big".into()));
            }
            let volume = fill.data.volume()[fill.row];
            Ok(fill.reference + fill.side.sign() * self.0 * fill.quantity / volume)
        }
    }

    #[test]
    fn custom_models_are_called_and_checked() {
        let model = SlippageModel::custom(Tick(10.0));
        let data = bar(&[]);
        // 10 × 50 / 1000 = 0.5.
        assert_eq!(
            model.fill_price(&data, 0, Side::Buy, 50.0, 100.0).unwrap(),
            100.5
        );
        assert_eq!(
            model.fill_price(&data, 0, Side::Sell, 50.0, 100.0).unwrap(),
            99.5
        );
        assert!(model.fill_price(&data, 0, Side::Buy, 2e6, 100.0).is_err());
        // A non-positive price is refused.
        let err = model
            .fill_price(&data, 0, Side::Sell, 20_000.0, 100.0)
            .unwrap_err();
        assert!(matches!(err, BacktestError::Strategy(m) if m.contains("finite and > 0")));
        assert_eq!(model.apply(Side::Buy, 100.0), 100.0);
        assert_eq!(model.clone(), model);
        assert_ne!(model, SlippageModel::custom(Tick(10.0)));
    }

    #[test]
    fn parameters_are_validated() {
        let field = |m: SlippageModel| match m.validate() {
            Err(BacktestError::Config { field, rule }) => format!("{field}: {rule}"),
            other => panic!("{other:?}"),
        };
        assert!(field(SlippageModel::spread(-1.0)).starts_with("slippage.bps"));
        assert!(field(SlippageModel::VolumeShare {
            impact: 0.0,
            cap: 0.1
        })
        .starts_with("slippage.impact: must be > 0"));
        assert!(field(SlippageModel::VolumeShare {
            impact: 0.1,
            cap: 1.5
        })
        .starts_with("slippage.cap"));
        assert!(field(SlippageModel::square_root_impact(0.0, "v", "a"))
            .starts_with("slippage.k: must be > 0"));
        assert!(field(SlippageModel::square_root_impact(1.0, "", "a"))
            .starts_with("slippage.sigma_column"));
        assert!(SlippageModel::square_root_impact(1.0, "v", "a")
            .validate()
            .is_ok());
        assert!(SlippageModel::custom(Tick(1.0)).validate().is_ok());
    }
}
