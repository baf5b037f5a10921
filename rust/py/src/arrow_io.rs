//! Arrow PyCapsule interface: import a stream from any object with `__arrow_c_stream__`
//! (a Polars DataFrame shares its buffers without a copy) and export result batches the same way.

use std::sync::Arc;

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{
    Array, ArrayRef, LargeListArray, RecordBatch, RecordBatchIterator, StructArray, UInt64Array,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, Schema};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// Reads every record batch of `source`'s Arrow C stream.
pub fn import_batches(source: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    let capsule = source.call_method0("__arrow_c_stream__").map_err(|err| {
        PyTypeError::new_err(format!(
            "expected an object implementing the Arrow PyCapsule interface \
             (__arrow_c_stream__), such as a polars DataFrame: {err}"
        ))
    })?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(STREAM_CAPSULE))?;
    // SAFETY: the capsule is named "arrow_array_stream", so it holds an ArrowArrayStream; the
    // reader moves the stream out and leaves a released one behind for the capsule destructor.
    let reader =
        unsafe { RecordBatchStreamReader::from_raw(pointer.as_ptr() as *mut FFI_ArrowArrayStream) }
            .map_err(|err| PyTypeError::new_err(format!("invalid Arrow stream: {err}")))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| PyTypeError::new_err(format!("failed to read the Arrow stream: {err}")))
}

/// A result table that Polars (or pyarrow) reads through `__arrow_c_stream__` without copying.
#[pyclass(module = "ml4t.backtest._core", frozen)]
pub struct ArrowTable {
    batch: RecordBatch,
}

impl ArrowTable {
    /// Wraps a batch.
    pub fn new(batch: RecordBatch) -> Self {
        ArrowTable { batch }
    }
}

#[pymethods]
impl ArrowTable {
    /// Exports the table as an Arrow C stream capsule.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let schema = self.batch.schema();
        let reader = RecordBatchIterator::new(vec![Ok(self.batch.clone())], schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }

    /// The table as one single-column table per column, sharing the buffers. Imported one by
    /// one, each column is its own Arrow C import and is freed on its own (one import of the
    /// whole table keeps every column alive while any one of them is).
    fn columns(&self) -> PyResult<Vec<ArrowTable>> {
        (0..self.batch.num_columns())
            .map(|i| {
                self.batch
                    .project(&[i])
                    .map(ArrowTable::new)
                    .map_err(|err| PyValueError::new_err(format!("ArrowTable.columns: {err}")))
            })
            .collect()
    }

    /// Number of rows.
    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }
}

/// Groups the rows of `data` (one chunk, sorted by its non-null `UInt64` column `key`) into
/// runs of equal keys: a table of each run's `key` and, as `name`, the list of the run's rows
/// of the other columns (as structs, in their order). The lists share `data`'s buffers; only
/// the run keys and the offsets are new (the order journal's histories, without a grouping
/// that copies them).
#[pyfunction]
pub fn group_runs(data: &Bound<'_, PyAny>, key: &str, name: &str) -> PyResult<ArrowTable> {
    let mut batches = import_batches(data)?;
    let batch = match batches.len() {
        1 => batches.remove(0),
        n => {
            return Err(PyValueError::new_err(format!(
                "group_runs: expected one chunk, got {n}"
            )))
        }
    };
    let index = batch
        .schema()
        .index_of(key)
        .map_err(|_| PyValueError::new_err(format!("group_runs: no column {key}")))?;
    let keys = batch
        .column(index)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .filter(|keys| keys.null_count() == 0)
        .ok_or_else(|| PyValueError::new_err(format!("group_runs: {key} is not non-null UInt64")))?
        .values()
        .clone();
    // At most one run a row: reserved at that (untouched capacity is never resident), so
    // that growing them leaves no freed copies behind.
    let mut run_keys = Vec::with_capacity(keys.len());
    let mut offsets = Vec::with_capacity(keys.len() + 1);
    offsets.push(0i64);
    for (i, &k) in keys.iter().enumerate() {
        match run_keys.last() {
            Some(&last) if last == k => continue,
            Some(&last) if last > k => {
                return Err(PyValueError::new_err(format!(
                    "group_runs: {key} is not sorted"
                )))
            }
            Some(_) => offsets.push(i as i64),
            None => {}
        }
        run_keys.push(k);
    }
    if !keys.is_empty() {
        offsets.push(keys.len() as i64);
    }
    let mut rest = batch;
    rest.remove_column(index);
    let rows = StructArray::from(rest);
    let item = Arc::new(Field::new_list_field(rows.data_type().clone(), true));
    // The offsets rise from 0 to the row count by construction.
    let lists = LargeListArray::new(
        item,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(rows),
        None,
    );
    let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(run_keys)), Arc::new(lists)];
    let schema = Schema::new(vec![
        Field::new(key, columns[0].data_type().clone(), false),
        Field::new(name, columns[1].data_type().clone(), false),
    ]);
    let table = RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|err| PyValueError::new_err(format!("group_runs: {err}")))?;
    Ok(ArrowTable::new(table))
}
