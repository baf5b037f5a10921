//! Arrow PyCapsule interface: import a stream from any object with `__arrow_c_stream__`
//! (a Polars DataFrame shares its buffers without a copy) and export result batches the same way.

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{RecordBatch, RecordBatchIterator};
use pyo3::exceptions::PyTypeError;
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

    /// Number of rows.
    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }
}
