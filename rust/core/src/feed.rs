//! Market data: typed, zero-copy column views over one Arrow `RecordBatch`.
//!
//! The normalised schema is `ts: Int64` (ns), `asset_id: UInt32` and `Float64` columns `open`,
//! `high`, `low`, `close`, `volume`; every other `Float64` column is a feature (signal) column.
//! Rows are sorted by `(ts, asset_id)` with unique keys, so each timestamp's rows are contiguous.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// Names of the required price columns, in schema order after `ts` and `asset_id`.
pub const PRICE_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// One chunk of bars with typed views of its columns. Cloning is cheap (shared buffers).
#[derive(Debug, Clone)]
pub struct MarketData {
    batch: RecordBatch,
    n_assets: u32,
    /// Column positions of ts, asset_id, open, high, low, close, volume.
    core_indices: [usize; 7],
    feature_names: Vec<String>,
    feature_indices: Vec<usize>,
}

impl MarketData {
    /// Wraps `batch`, checking the schema and, in one pass, the row order and price sanity.
    ///
    /// `n_assets` is the size of the asset universe; every `asset_id` must be below it.
    pub fn new(batch: RecordBatch, n_assets: u32) -> Result<Self> {
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
        let mut feature_names = Vec::new();
        let mut feature_indices = Vec::new();
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
            feature_indices.push(idx);
        }
        let data = MarketData {
            batch,
            n_assets,
            core_indices,
            feature_names,
            feature_indices,
        };
        data.check_rows()?;
        Ok(data)
    }

    fn check_rows(&self) -> Result<()> {
        let ts = self.ts();
        let asset = self.asset_ids();
        let (open, high, low, close, volume) = (
            self.open(),
            self.high(),
            self.low(),
            self.close(),
            self.volume(),
        );
        for row in 0..self.len() {
            if asset[row] >= self.n_assets {
                return Err(BacktestError::data(
                    "asset_id",
                    row,
                    format!("asset code {} is outside 0..{}", asset[row], self.n_assets),
                ));
            }
            if row > 0 {
                if ts[row] < ts[row - 1] {
                    return Err(BacktestError::data(
                        "ts",
                        row,
                        "rows must be sorted by time",
                    ));
                }
                if ts[row] == ts[row - 1] && asset[row] <= asset[row - 1] {
                    return Err(BacktestError::data(
                        "asset_id",
                        row,
                        "rows of one timestamp must have unique, increasing asset codes",
                    ));
                }
            }
            for (name, value) in [("open", open[row]), ("high", high[row])]
                .into_iter()
                .chain([("low", low[row]), ("close", close[row])])
            {
                if !(value.is_finite() && value > 0.0) {
                    return Err(BacktestError::data(
                        name,
                        row,
                        format!("prices must be finite and > 0, got {value}"),
                    ));
                }
            }
            if !(volume[row].is_finite() && volume[row] >= 0.0) {
                return Err(BacktestError::data(
                    "volume",
                    row,
                    format!("volume must be finite and >= 0, got {}", volume[row]),
                ));
            }
            let (lo, hi) = (open[row].min(close[row]), open[row].max(close[row]));
            if low[row] > lo || high[row] < hi {
                return Err(BacktestError::data(
                    "high/low",
                    row,
                    "OHLC must satisfy low <= open, close <= high",
                ));
            }
        }
        Ok(())
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

    /// Size of the asset universe.
    #[inline]
    pub fn n_assets(&self) -> u32 {
        self.n_assets
    }

    /// The underlying batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Timestamps (ns), one per row.
    #[inline]
    pub fn ts(&self) -> &[Ts] {
        self.batch
            .column(self.core_indices[0])
            .as_primitive::<Int64Type>()
            .values()
    }

    /// Asset codes, one per row.
    #[inline]
    pub fn asset_ids(&self) -> &[AssetId] {
        self.batch
            .column(self.core_indices[1])
            .as_primitive::<UInt32Type>()
            .values()
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
        let pos = self.feature_names.iter().position(|n| n == name)?;
        Some(self.feature_at(pos))
    }

    /// The values of the feature column at position `pos` of [`Self::feature_names`].
    pub fn feature_at(&self, pos: usize) -> &[f64] {
        self.batch
            .column(self.feature_indices[pos])
            .as_primitive::<Float64Type>()
            .values()
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

    fn price_column(&self, slot: usize) -> &[f64] {
        self.batch
            .column(self.core_indices[slot])
            .as_primitive::<Float64Type>()
            .values()
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
