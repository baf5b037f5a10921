//! Market data: typed, zero-copy column views over one Arrow `RecordBatch`.
//!
//! The normalised schema is `ts: Int64` (ns), `asset_id: UInt32` and `Float64` columns `open`,
//! `high`, `low`, `close`, `volume`; every other `Float64` column is a feature (signal) column.
//! Rows are sorted by `(ts, asset_id)` with unique keys, so each timestamp's rows are contiguous.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// Names of the required price columns, in schema order after `ts` and `asset_id`.
pub const PRICE_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// One chunk of bars with typed views of its columns. Cloning is cheap (shared buffers).
#[derive(Debug, Clone)]
pub struct MarketData {
    batch: RecordBatch,
    n_assets: u32,
    n_timestamps: usize,
    // Typed views sharing the batch's buffers (cloning a ScalarBuffer only bumps a refcount),
    // so the accessors below are plain slice reads with no downcast.
    ts: ScalarBuffer<i64>,
    asset_ids: ScalarBuffer<u32>,
    prices: [ScalarBuffer<f64>; 5],
    feature_names: Vec<String>,
    features: Vec<ScalarBuffer<f64>>,
    /// Process-unique identity of the chunk (shared by its clones): lets a per-chunk lookup,
    /// such as bound slippage columns, check which chunk it belongs to.
    id: u64,
}

/// Source of [`MarketData::id`].
static NEXT_CHUNK_ID: AtomicU64 = AtomicU64::new(1);

impl MarketData {
    /// Wraps `batch`, checking the schema and, in one pass, the row order and price sanity.
    ///
    /// `n_assets` is the size of the asset universe; every `asset_id` must be below it.
    pub fn new(batch: RecordBatch, n_assets: u32) -> Result<Self> {
        let mut data = Self::wrap(batch, n_assets)?;
        data.n_timestamps = data.check_rows()?;
        Ok(data)
    }

    /// Wraps `batch` whose rows a validator already proved to hold every rule
    /// [`MarketData::new`] checks (time order, increasing asset codes within a timestamp, codes
    /// below `n_assets`, finite positive prices, finite non-negative volume, consistent OHLC):
    /// the schema, dtypes and nulls are still checked, the rows only counted. The Python feed
    /// uses it for the frame it validated itself (`tests/test_fuzz_frames.py` proves on hostile
    /// frames that every frame the feed builds passes [`MarketData::new`]'s checks).
    pub fn new_validated(batch: RecordBatch, n_assets: u32) -> Result<Self> {
        let mut data = Self::wrap(batch, n_assets)?;
        let ts = data.ts();
        data.n_timestamps =
            usize::from(!ts.is_empty()) + ts.windows(2).filter(|w| w[1] != w[0]).count();
        Ok(data)
    }

    /// The schema, dtype and null checks, and the column views.
    fn wrap(batch: RecordBatch, n_assets: u32) -> Result<Self> {
        let schema = batch.schema();
        let expect = |name: &str, dtype: DataType| -> Result<usize> {
            let idx = schema.index_of(name).map_err(|_| {
                BacktestError::data(name, 0, "required column is missing".to_string())
            })?;
            let actual = schema.field(idx).data_type();
            if *actual != dtype {
                return Err(BacktestError::data(
                    name,
                    0,
                    format!("dtype must be {dtype}, got {actual}"),
                ));
            }
            if batch.column(idx).null_count() > 0 {
                let row = first_null(batch.column(idx).as_ref());
                return Err(BacktestError::data(
                    name,
                    row,
                    "null values are not allowed",
                ));
            }
            Ok(idx)
        };
        let mut core_indices = [0usize; 7];
        core_indices[0] = expect("ts", DataType::Int64)?;
        core_indices[1] = expect("asset_id", DataType::UInt32)?;
        for (slot, name) in PRICE_COLUMNS.iter().enumerate() {
            core_indices[slot + 2] = expect(name, DataType::Float64)?;
        }
        let f64_values = |idx: usize| {
            batch
                .column(idx)
                .as_primitive::<Float64Type>()
                .values()
                .clone()
        };
        let mut feature_names = Vec::new();
        let mut features = Vec::new();
        for (idx, field) in schema.fields().iter().enumerate() {
            let name = field.name();
            if name == "ts" || name == "asset_id" || PRICE_COLUMNS.contains(&name.as_str()) {
                continue;
            }
            if *field.data_type() != DataType::Float64 {
                return Err(BacktestError::data(
                    name,
                    0,
                    format!("feature columns must be Float64, got {}", field.data_type()),
                ));
            }
            feature_names.push(name.clone());
            features.push(f64_values(idx));
        }
        let prices = [2, 3, 4, 5, 6].map(|slot| f64_values(core_indices[slot]));
        let ts = batch
            .column(core_indices[0])
            .as_primitive::<Int64Type>()
            .values()
            .clone();
        let asset_ids = batch
            .column(core_indices[1])
            .as_primitive::<UInt32Type>()
            .values()
            .clone();
        Ok(MarketData {
            batch,
            n_assets,
            n_timestamps: 0,
            ts,
            asset_ids,
            prices,
            feature_names,
            features,
            id: NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Checks every row; returns the number of distinct timestamps. One fused pass
    /// ([`MarketData::rows_hold`]) tests every rule; only when it finds a violation do the
    /// per-rule passes below run, to name the rule and its first offending row.
    fn check_rows(&self) -> Result<usize> {
        if let Some(n_timestamps) = self.rows_hold() {
            return Ok(n_timestamps);
        }
        self.locate_violation()
    }

    /// Whether every row holds every rule of [`MarketData::new`] (codes below `n_assets`, time
    /// order with increasing codes within a timestamp, finite positive prices, finite
    /// non-negative volume, low <= open, close <= high), tested branch-free in blocks whose
    /// columns stay in cache; `Some(number of distinct timestamps)` when they all hold.
    fn rows_hold(&self) -> Option<usize> {
        const BLOCK: usize = 4096;
        let n = self.len();
        let (ts, asset) = (self.ts(), self.asset_ids());
        let n_assets = self.n_assets;
        // Each rule counts the rows that break it, in a simple zipped loop over equal-length
        // slices (`row_rules`): a sum of flags as wide as the values tested vectorises into
        // compares and adds, where an OR of byte flags stays scalar. A block's columns stay
        // in cache between its loops.
        let k = row_rules::kernels();
        let mut broken = 0u64;
        let mut n_timestamps = usize::from(n > 0);
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            broken += (k.codes_outside)(&asset[start..end], n_assets);
            let from = start.max(1);
            let (t0, t1) = (&ts[from - 1..end - 1], &ts[from..end]);
            let (a0, a1) = (&asset[from - 1..end - 1], &asset[from..end]);
            let (unordered, new_timestamps) = (k.out_of_order)(t0, t1, a0, a1);
            broken += unordered;
            n_timestamps += new_timestamps as usize;
            let (open, high) = (&self.open()[start..end], &self.high()[start..end]);
            let (low, close) = (&self.low()[start..end], &self.close()[start..end]);
            for column in [open, high, low, close] {
                broken += (k.not_positive_finite)(column);
            }
            broken += (k.not_finite_non_negative)(&self.volume()[start..end]);
            broken += (k.outside_bar)(open, high, low, close);
            start = end;
        }
        (broken == 0).then_some(n_timestamps)
    }

    /// The per-rule passes: the first rule broken, at its first row (the rules in the order
    /// [`MarketData::rows_hold`] documents).
    fn locate_violation(&self) -> Result<usize> {
        let n = self.len();
        let (ts, asset) = (self.ts(), self.asset_ids());
        if let Some(row) = asset.iter().position(|&a| a >= self.n_assets) {
            return Err(BacktestError::data(
                "asset_id",
                row,
                format!("asset code {} is outside 0..{}", asset[row], self.n_assets),
            ));
        }
        let mut n_timestamps = usize::from(n > 0);
        for row in 1..n {
            let (t0, t1) = (ts[row - 1], ts[row]);
            if t1 < t0 {
                return Err(BacktestError::data(
                    "ts",
                    row,
                    "rows must be sorted by time",
                ));
            }
            if t1 == t0 && asset[row] <= asset[row - 1] {
                return Err(BacktestError::data(
                    "asset_id",
                    row,
                    "rows of one timestamp must have unique, increasing asset codes",
                ));
            }
            n_timestamps += usize::from(t1 != t0);
        }
        for (name, values) in [
            ("open", self.open()),
            ("high", self.high()),
            ("low", self.low()),
            ("close", self.close()),
        ] {
            // Branch-free (`&`, not `&&`) so the scan vectorises; NaN fails both comparisons.
            let bad = |v: &f64| !((*v > 0.0) & (*v < f64::INFINITY));
            if values.iter().fold(false, |acc, v| acc | bad(v)) {
                let row = values.iter().position(bad).unwrap_or(0);
                return Err(BacktestError::data(
                    name,
                    row,
                    format!("prices must be finite and > 0, got {}", values[row]),
                ));
            }
        }
        let bad_volume = |v: &f64| !((*v >= 0.0) & (*v < f64::INFINITY));
        if self
            .volume()
            .iter()
            .fold(false, |acc, v| acc | bad_volume(v))
        {
            let row = self.volume().iter().position(bad_volume).unwrap_or(0);
            return Err(BacktestError::data(
                "volume",
                row,
                format!("volume must be finite and >= 0, got {}", self.volume()[row]),
            ));
        }
        let (open, high, low, close) = (self.open(), self.high(), self.low(), self.close());
        let inconsistent =
            |r: usize| (low[r] > open[r].min(close[r])) | (high[r] < open[r].max(close[r]));
        if (0..n).fold(false, |acc, r| acc | inconsistent(r)) {
            let row = (0..n).position(inconsistent).unwrap_or(0);
            return Err(BacktestError::data(
                "high/low",
                row,
                "OHLC must satisfy low <= open, close <= high",
            ));
        }
        Ok(n_timestamps)
    }

    /// Whether no feature value is null or infinite (NaN is allowed: a signal may be
    /// missing), the feed's rule for its own feature columns.
    pub fn features_hold(&self) -> bool {
        let schema = self.batch.schema();
        self.feature_names
            .iter()
            .zip(&self.features)
            .all(|(name, values)| {
                let nulls = schema
                    .index_of(name)
                    .map_or(0, |idx| self.batch.column(idx).null_count());
                nulls == 0
                    && values
                        .iter()
                        .map(|v| u64::from(v.is_infinite()))
                        .sum::<u64>()
                        == 0
            })
    }

    /// Number of rows (bars).
    #[inline]
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// True when the chunk has no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct timestamps (timestamp groups).
    #[inline]
    pub fn n_timestamps(&self) -> usize {
        self.n_timestamps
    }

    /// Size of the asset universe.
    #[inline]
    pub fn n_assets(&self) -> u32 {
        self.n_assets
    }

    /// Process-unique identity of this chunk (clones share it); never reused within a process.
    #[inline]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Position of feature column `name` in [`Self::feature_names`], if the chunk has it.
    pub fn feature_position(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }

    /// Position of feature column `name`, or a config error at `field` naming the columns the
    /// chunk has (for settings that name a column: strategies, slippage, borrow rates).
    pub fn require_feature(&self, name: &str, field: &str) -> Result<usize> {
        self.feature_position(name).ok_or_else(|| {
            BacktestError::config(
                field,
                format!(
                    "column '{name}' is not in the feed (feature columns: {:?})",
                    self.feature_names
                ),
            )
        })
    }

    /// The underlying batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Timestamps (ns), one per row.
    #[inline]
    pub fn ts(&self) -> &[Ts] {
        &self.ts
    }

    /// Asset codes, one per row.
    #[inline]
    pub fn asset_ids(&self) -> &[AssetId] {
        &self.asset_ids
    }

    /// Open prices.
    #[inline]
    pub fn open(&self) -> &[f64] {
        self.price_column(2)
    }

    /// High prices.
    #[inline]
    pub fn high(&self) -> &[f64] {
        self.price_column(3)
    }

    /// Low prices.
    #[inline]
    pub fn low(&self) -> &[f64] {
        self.price_column(4)
    }

    /// Close prices.
    #[inline]
    pub fn close(&self) -> &[f64] {
        self.price_column(5)
    }

    /// Volumes.
    #[inline]
    pub fn volume(&self) -> &[f64] {
        self.price_column(6)
    }

    /// Names of the feature (signal) columns, in schema order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The values of feature column `name`, if the chunk has it.
    pub fn feature(&self, name: &str) -> Option<&[f64]> {
        Some(self.feature_at(self.feature_position(name)?))
    }

    /// The values of the feature column at position `pos` of [`Self::feature_names`].
    #[inline]
    pub fn feature_at(&self, pos: usize) -> &[f64] {
        &self.features[pos]
    }

    /// Address of the first value of a Float64 column: used to prove zero-copy ingest.
    pub fn column_address(&self, name: &str) -> Option<usize> {
        let idx = self.batch.schema().index_of(name).ok()?;
        let column = self.batch.column(idx);
        match column.data_type() {
            DataType::Float64 => {
                Some(column.as_primitive::<Float64Type>().values().as_ptr() as usize)
            }
            DataType::Int64 => Some(column.as_primitive::<Int64Type>().values().as_ptr() as usize),
            _ => None,
        }
    }

    #[inline]
    fn price_column(&self, slot: usize) -> &[f64] {
        &self.prices[slot - 2]
    }
}

fn first_null(array: &dyn Array) -> usize {
    (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0)
}

/// Finds the end of the timestamp group that starts at `start`: the first row with another time.
#[inline]
pub fn group_end(ts: &[Ts], start: usize) -> usize {
    let t = ts[start];
    let mut end = start + 1;
    while end < ts.len() && ts[end] == t {
        end += 1;
    }
    end
}

/// The row rules' counting loops. Each is compiled on its own (inside the block loop of
/// `MarketData::rows_hold` LLVM turned the float tests into scalar integer tests of the bits,
/// 25 instructions a value; alone, each loop vectorises), and twice on x86-64: for the
/// baseline (SSE2) and for AVX2, picked at run time (AVX2 compares 64-bit integers, so the
/// time-order loop vectorises too, and holds four floats a register). The counts are exact
/// integers either way.
mod row_rules {
    /// Time order over pairs of neighbouring rows: `(t0, t1, a0, a1) -> (broken, new)`.
    type OrderKernel = fn(&[i64], &[i64], &[u32], &[u32]) -> (u64, u64);
    /// A test over a bar's four prices.
    type BarKernel = fn(&[f64], &[f64], &[f64], &[f64]) -> u64;

    /// The kernels of one instruction set.
    #[derive(Clone, Copy)]
    pub struct Kernels {
        /// Codes at or above `n_assets`.
        pub codes_outside: fn(&[u32], u32) -> u64,
        /// Rows before their predecessor (time, then code) and rows starting a new
        /// timestamp, of the pairs `(t0[i], a0[i])`, `(t1[i], a1[i])`.
        pub out_of_order: OrderKernel,
        /// Values that are not finite and positive (NaN fails every comparison).
        pub not_positive_finite: fn(&[f64]) -> u64,
        /// Values that are not finite and non-negative.
        pub not_finite_non_negative: fn(&[f64]) -> u64,
        /// Bars whose open or close lies outside their low..high.
        pub outside_bar: BarKernel,
    }

    macro_rules! kernels {
        ($(#[$attr:meta])*) => {
            $(#[$attr])*
            #[inline(never)]
            pub fn codes_outside(codes: &[u32], n_assets: u32) -> u64 {
                codes.iter().map(|&a| u64::from(a >= n_assets)).sum()
            }

            $(#[$attr])*
            #[inline(never)]
            pub fn out_of_order(t0: &[i64], t1: &[i64], a0: &[u32], a1: &[u32]) -> (u64, u64) {
                let mut broken = 0u64;
                let mut new_timestamps = 0u64;
                for (((&t0, &t1), &a0), &a1) in t0.iter().zip(t1).zip(a0).zip(a1) {
                    broken += u64::from(t1 < t0) | (u64::from(t1 == t0) & u64::from(a1 <= a0));
                    new_timestamps += u64::from(t1 != t0);
                }
                (broken, new_timestamps)
            }

            $(#[$attr])*
            #[inline(never)]
            pub fn not_positive_finite(values: &[f64]) -> u64 {
                values
                    .iter()
                    .map(|&v| u64::from(!((v > 0.0) & (v <= f64::MAX))))
                    .sum()
            }

            $(#[$attr])*
            #[inline(never)]
            #[allow(clippy::manual_range_contains)] // `&`, not `contains`'s `&&`: branch-free
            pub fn not_finite_non_negative(values: &[f64]) -> u64 {
                values
                    .iter()
                    .map(|&v| u64::from(!((v >= 0.0) & (v <= f64::MAX))))
                    .sum()
            }

            $(#[$attr])*
            #[inline(never)]
            pub fn outside_bar(open: &[f64], high: &[f64], low: &[f64], close: &[f64]) -> u64 {
                open.iter()
                    .zip(high)
                    .zip(low)
                    .zip(close)
                    .map(|(((&o, &h), &l), &c)| {
                        u64::from(l > o) | u64::from(l > c) | u64::from(h < o) | u64::from(h < c)
                    })
                    .sum()
            }
        };
    }

    /// The baseline kernels.
    mod portable {
        kernels!();
    }

    /// The AVX2 kernels: each `unsafe` only for its target feature, and called only after
    /// the CPU was found to have it.
    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        kernels!(#[target_feature(enable = "avx2")]);
    }

    /// The fastest kernels this CPU runs.
    pub fn kernels() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // Safe wrappers: the feature was detected just above.
            return Kernels {
                // SAFETY (each): this CPU has AVX2.
                codes_outside: |c, n| unsafe { avx2::codes_outside(c, n) },
                out_of_order: |t0, t1, a0, a1| unsafe { avx2::out_of_order(t0, t1, a0, a1) },
                not_positive_finite: |v| unsafe { avx2::not_positive_finite(v) },
                not_finite_non_negative: |v| unsafe { avx2::not_finite_non_negative(v) },
                outside_bar: |o, h, l, c| unsafe { avx2::outside_bar(o, h, l, c) },
            };
        }
        portable_kernels()
    }

    /// The baseline kernels (every CPU).
    pub fn portable_kernels() -> Kernels {
        Kernels {
            codes_outside: portable::codes_outside,
            out_of_order: portable::out_of_order,
            not_positive_finite: portable::not_positive_finite,
            not_finite_non_negative: portable::not_finite_non_negative,
            outside_bar: portable::outside_bar,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        fn special() -> impl Strategy<Value = f64> {
            prop_oneof![
                Just(0.0),
                Just(-0.0),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(f64::MAX),
                Just(f64::MIN_POSITIVE),
                -10.0..10.0f64,
            ]
        }

        proptest! {
            /// The kernels this CPU picks count exactly what the baseline ones count.
            #[test]
            fn detected_kernels_equal_the_baseline(
                values in prop::collection::vec(special(), 0..300),
                ts in prop::collection::vec(prop_oneof![Just(i64::MIN), Just(i64::MAX), -3..3i64], 301),
                codes in prop::collection::vec(0..6u32, 301),
            ) {
                let (fast, base) = (kernels(), portable_kernels());
                let n = values.len();
                let (t0, t1, a0, a1) = (&ts[..n], &ts[1..=n], &codes[..n], &codes[1..=n]);
                prop_assert_eq!((fast.codes_outside)(a0, 4), (base.codes_outside)(a0, 4));
                prop_assert_eq!((fast.out_of_order)(t0, t1, a0, a1), (base.out_of_order)(t0, t1, a0, a1));
                prop_assert_eq!((fast.not_positive_finite)(&values), (base.not_positive_finite)(&values));
                prop_assert_eq!(
                    (fast.not_finite_non_negative)(&values),
                    (base.not_finite_non_negative)(&values)
                );
                let mut rotated = values.clone();
                rotated.rotate_left(n / 3);
                let reversed: Vec<f64> = values.iter().rev().copied().collect();
                prop_assert_eq!(
                    (fast.outside_bar)(&values, &rotated, &reversed, &values),
                    (base.outside_bar)(&values, &rotated, &reversed, &values)
                );
            }
        }

        #[test]
        fn the_baseline_counts_each_rule() {
            let k = portable_kernels();
            assert_eq!((k.codes_outside)(&[0, 3, 4, 9], 4), 2);
            assert_eq!(
                (k.out_of_order)(&[1, 2, 2, 5], &[2, 2, 1, 5], &[0, 1, 0, 2], &[1, 1, 0, 3]),
                (2, 2)
            );
            let v = [1.0, 0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::MAX];
            assert_eq!((k.not_positive_finite)(&v), 5);
            assert_eq!((k.not_finite_non_negative)(&v), 3);
            assert_eq!(
                (k.outside_bar)(&[1.0, 5.0], &[2.0, 4.0], &[0.5, 3.0], &[1.5, 3.5]),
                1
            );
        }
    }
}
