//! Market data imported and row-checked once, then handed to any number of runs.

use ml4t_backtest_core::MarketData;
use pyo3::prelude::*;

use crate::arrow_io::import_batches;
use crate::errors::Error;

/// A frame's chunks, imported through the Arrow C stream and checked once by
/// [`MarketData::new`] (every row rule) for a universe of `n_assets`. Only this constructor
/// makes one, so a run that receives it skips the import and the re-check: an in-memory
/// `PolarsDataFeed` builds it on its first run and reuses it for every later one (a sweep's
/// trials included). The chunks share the frame's buffers; nothing is copied.
#[pyclass(module = "ml4t.backtest._core", name = "CheckedData", frozen)]
pub struct CheckedData {
    chunks: Vec<MarketData>,
    n_assets: u32,
}

impl CheckedData {
    /// The checked chunks, for a universe of `n_assets` (another universe size is a
    /// programming error of the caller's, reported as a data error).
    pub fn chunks(&self, n_assets: u32) -> Result<Vec<MarketData>, Error> {
        if n_assets != self.n_assets {
            return Err(ml4t_backtest_core::BacktestError::data(
                "asset_id",
                0,
                format!(
                    "the data was checked for {} assets, the run has {n_assets}",
                    self.n_assets
                ),
            )
            .into());
        }
        Ok(self.chunks.clone())
    }
}

#[pymethods]
impl CheckedData {
    /// Imports `data` (any object with `__arrow_c_stream__`, or a sequence of them: the pages of
    /// one frame in time order, each imported in place) and checks every row for a universe
    /// of `n_assets`; raises `DataValidationError` naming the column and row. With
    /// `validated=True` the rows were proven by the feed's validation: only the schema, dtypes
    /// and nulls are checked again.
    #[new]
    #[pyo3(signature = (data, n_assets, *, validated = false))]
    fn new(data: &Bound<'_, PyAny>, n_assets: u32, validated: bool) -> Result<Self, Error> {
        let wrap = if validated {
            MarketData::new_validated
        } else {
            MarketData::new
        };
        let batches = if data.hasattr("__arrow_c_stream__")? {
            import_batches(data)?
        } else {
            let mut batches = Vec::new();
            for page in data.try_iter()? {
                batches.extend(import_batches(&page?)?);
            }
            batches
        };
        let chunks = batches
            .into_iter()
            .filter(|batch| batch.num_rows() > 0)
            .map(|batch| wrap(batch, n_assets))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckedData { chunks, n_assets })
    }

    /// The number of rows.
    #[getter]
    fn n_rows(&self) -> usize {
        self.chunks.iter().map(MarketData::len).sum()
    }

    fn __repr__(&self) -> String {
        format!(
            "CheckedData(rows={}, chunks={}, assets={})",
            self.n_rows(),
            self.chunks.len(),
            self.n_assets
        )
    }
}

/// Whether the rows of `pages` (frames in row order, each exporting one batch in place;
/// a timestamp may span two of them) hold every row rule the engine checks and, with
/// `features`, have no null or infinite feature value: the feed's one-pass test of a chunk
/// under the default policy. `False` says only that some rule is broken; the feed's per-rule
/// passes then name it.
#[pyfunction]
#[pyo3(signature = (pages, n_assets, *, features))]
pub fn rows_clear(pages: &Bound<'_, PyAny>, n_assets: u32, features: bool) -> PyResult<bool> {
    let mut last: Option<(i64, u32)> = None;
    for page in pages.try_iter()? {
        for batch in import_batches(&page?)? {
            if batch.num_rows() == 0 {
                continue;
            }
            let Ok(data) = MarketData::new(batch, n_assets) else {
                return Ok(false);
            };
            if features && !data.features_hold() {
                return Ok(false);
            }
            let (t1, a1) = (data.ts()[0], data.asset_ids()[0]);
            if let Some((t0, a0)) = last {
                if t1 < t0 || (t1 == t0 && a1 <= a0) {
                    return Ok(false);
                }
            }
            let end = data.len() - 1;
            last = Some((data.ts()[end], data.asset_ids()[end]));
        }
    }
    Ok(true)
}
