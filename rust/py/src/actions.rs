//! The corporate-actions table a run receives (`actions=`): an Arrow-exportable frame of
//! `ts` Int64 nanoseconds, `asset_id` UInt32, `split_ratio` Float64 and `dividend` Float64,
//! sorted by (ts, asset_id), read into the core's [`CorporateAction`] rows (the core checks
//! them again: ratio, dividend, order, asset range).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use ml4t_backtest_core::actions::CorporateAction;
use pyo3::prelude::*;

use crate::arrow_io::import_batches;
use crate::errors::{DataValidationError, Error};

/// The rows of `frame` (any object with `__arrow_c_stream__`).
pub fn read_actions(frame: &Bound<'_, PyAny>) -> Result<Vec<CorporateAction>, Error> {
    let mut rows = Vec::new();
    for batch in import_batches(frame)? {
        let ts = column(&batch, "ts", &DataType::Int64)?;
        let asset = column(&batch, "asset_id", &DataType::UInt32)?;
        let ratio = column(&batch, "split_ratio", &DataType::Float64)?;
        let dividend = column(&batch, "dividend", &DataType::Float64)?;
        let (ts, asset) = (
            ts.as_primitive::<Int64Type>(),
            asset.as_primitive::<UInt32Type>(),
        );
        let ratio = ratio.as_primitive::<Float64Type>();
        let dividend = dividend.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            rows.push(CorporateAction {
                ts: ts.value(i),
                asset: asset.value(i),
                split_ratio: ratio.value(i),
                dividend: dividend.value(i),
            });
        }
    }
    Ok(rows)
}

/// Column `name` of `batch`, of type `dtype` and without nulls.
fn column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    dtype: &DataType,
) -> Result<&'a dyn Array, Error> {
    let bad = |rule: String| DataValidationError::new_err(format!("actions.{name}: {rule}"));
    let Some(array) = batch.column_by_name(name) else {
        return Err(bad(
            "missing_column: the actions table needs ts, asset_id, split_ratio and \
                        dividend"
                .into(),
        )
        .into());
    };
    if array.data_type() != dtype {
        return Err(bad(format!("dtype: must be {dtype}, got {}", array.data_type())).into());
    }
    if array.null_count() > 0 {
        return Err(bad(format!("null: {} null values", array.null_count())).into());
    }
    Ok(array.as_ref())
}
