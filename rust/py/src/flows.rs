//! The capital-flows table a run receives (`flows=`): an Arrow-exportable frame of `ts` Int64
//! nanoseconds and `amount` Float64, strictly increasing in time (one row per timestamp), read
//! into the core's [`CapitalFlows`] with the engine dict's `account.on_withdrawal` policy (the
//! core checks the rows again: finite amounts, order).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use ml4t_backtest_core::flows::{CapitalFlow, CapitalFlows, WithdrawalShortfall};
use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrow_io::import_batches;
use crate::dict::Spec;
use crate::errors::{DataValidationError, Error};

/// The flows of `frame` (any object with `__arrow_c_stream__`), with the withdrawal policy of
/// the engine dict `config` (`account.on_withdrawal`: `"error"`, the default, or
/// `"liquidate"`).
pub fn read_flows(
    frame: &Bound<'_, PyAny>,
    config: &Bound<'_, PyDict>,
) -> Result<CapitalFlows, Error> {
    let account = Spec::root(config).section("account")?;
    let shortfall = match account.get::<String>("on_withdrawal")?.as_deref() {
        None | Some("error") => WithdrawalShortfall::Error,
        Some("liquidate") => WithdrawalShortfall::Liquidate,
        Some(other) => {
            return Err(BacktestError::config(
                &account.at("on_withdrawal"),
                format!("must be 'error' or 'liquidate', got '{other}'"),
            )
            .into())
        }
    };
    let mut rows = Vec::new();
    for batch in import_batches(frame)? {
        let ts = column(&batch, "ts", &DataType::Int64)?.as_primitive::<Int64Type>();
        let amount = column(&batch, "amount", &DataType::Float64)?.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            rows.push(CapitalFlow {
                ts: ts.value(i),
                amount: amount.value(i),
            });
        }
    }
    Ok(CapitalFlows::new(rows, shortfall)?)
}

/// Column `name` of `batch`, of type `dtype` and without nulls.
fn column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    dtype: &DataType,
) -> Result<&'a dyn Array, Error> {
    let bad = |rule: String| DataValidationError::new_err(format!("flows.{name}: {rule}"));
    let Some(array) = batch.column_by_name(name) else {
        return Err(bad("missing_column: the flows table needs ts and amount".into()).into());
    };
    if array.data_type() != dtype {
        return Err(bad(format!("dtype: must be {dtype}, got {}", array.data_type())).into());
    }
    if array.null_count() > 0 {
        return Err(bad(format!("null: {} null values", array.null_count())).into());
    }
    Ok(array.as_ref())
}
