//! The universe dict's currencies (`currencies`: names in code order, the base first;
//! `asset_currency`: each asset's code; `fx`: an Arrow-exportable frame of `ts` Int64
//! nanoseconds, `currency` UInt32 code and `rate` Float64, sorted) with the engine dict's
//! `account.auto_convert` / `account.fx_fee`, read into the core's [`Currencies`] (which checks
//! the rows again: positive finite rates, order, a rate for every quote currency).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use ml4t_backtest_core::fx::{Conversion, Currencies, CurrencyId, FxRate};
use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrow_io::import_batches;
use crate::dict::Spec;
use crate::errors::{DataValidationError, Error};

/// The currencies of `universe`, `None` when it names none (one currency).
pub fn read_currencies(
    universe: &Bound<'_, PyDict>,
    config: &Bound<'_, PyDict>,
) -> Result<Option<Currencies>, Error> {
    let spec = Spec::root(universe);
    let Some(names) = spec.get::<Vec<String>>("currencies")? else {
        return Ok(None);
    };
    let asset_currency: Vec<CurrencyId> = spec.req("asset_currency")?;
    let mut rates = Vec::new();
    if let Some(frame) = spec.object("fx") {
        for batch in import_batches(&frame)? {
            let ts = column(&batch, "ts", &DataType::Int64)?.as_primitive::<Int64Type>();
            let currency =
                column(&batch, "currency", &DataType::UInt32)?.as_primitive::<UInt32Type>();
            let rate = column(&batch, "rate", &DataType::Float64)?.as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                let code = CurrencyId::try_from(currency.value(i)).unwrap_or(CurrencyId::MAX);
                rates.push(FxRate {
                    ts: ts.value(i),
                    currency: code,
                    rate: rate.value(i),
                });
            }
        }
    }
    let account = Spec::root(config).section("account")?;
    let conversion = if account.get_or("auto_convert", false)? {
        Conversion::AutoConvert {
            fee: account.get_or("fx_fee", 0.0)?,
        }
    } else {
        Conversion::Keep
    };
    if names.is_empty() {
        return Err(
            BacktestError::config("universe.currencies", "empty: the base comes first").into(),
        );
    }
    Ok(Some(Currencies::new(
        names.len(),
        asset_currency,
        rates,
        conversion,
    )?))
}

/// Column `name` of `batch`, of type `dtype` and without nulls.
fn column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    dtype: &DataType,
) -> Result<&'a dyn Array, Error> {
    let bad = |rule: String| DataValidationError::new_err(format!("fx.{name}: {rule}"));
    let Some(array) = batch.column_by_name(name) else {
        return Err(bad("missing_column: the fx table needs ts, currency and rate".into()).into());
    };
    if array.data_type() != dtype {
        return Err(bad(format!("dtype: must be {dtype}, got {}", array.data_type())).into());
    }
    if array.null_count() > 0 {
        return Err(bad(format!("null: {} null values", array.null_count())).into());
    }
    Ok(array.as_ref())
}
