//! The asset universe as Python sees it: names, name lookup, timestamp conversion.

use std::collections::HashMap;

use ml4t_backtest_core::AssetId;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

use crate::errors::python_error;

/// Asset names by code, the reverse map, and the Python function turning ns into datetimes.
pub struct Universe {
    names: Vec<Py<PyString>>,
    index: HashMap<String, AssetId>,
    to_datetime: Py<PyAny>,
}

impl Universe {
    /// Builds the universe from the sorted asset names.
    pub fn new(py: Python<'_>, names: Vec<String>, to_datetime: Py<PyAny>) -> Self {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as AssetId))
            .collect();
        let names = names
            .iter()
            .map(|n| PyString::new(py, n).unbind())
            .collect();
        Universe {
            names,
            index,
            to_datetime,
        }
    }

    /// Number of assets.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The code of the asset named `name`.
    pub fn code(&self, name: &str) -> Option<AssetId> {
        self.index.get(name).copied()
    }

    /// The name of asset `code`.
    pub fn name<'py>(&self, py: Python<'py>, code: AssetId) -> Bound<'py, PyString> {
        self.names[code as usize].bind(py).clone()
    }

    /// Resolves an asset given by name (str) or by code (int), or raises `OrderError`.
    pub fn resolve(&self, asset: &Bound<'_, PyAny>) -> PyResult<AssetId> {
        let py = asset.py();
        if let Ok(name) = asset.cast::<PyString>() {
            let name = name.to_str()?;
            return self.index.get(name).copied().ok_or_else(|| {
                python_error(
                    py,
                    "OrderError",
                    format!("asset: unknown asset '{name}' (not in the feed)"),
                )
            });
        }
        if asset.is_instance_of::<PyInt>() {
            let code: i64 = asset.extract().unwrap_or(i64::MAX);
            if code >= 0 && (code as usize) < self.names.len() {
                return Ok(code as AssetId);
            }
            return Err(python_error(
                py,
                "OrderError",
                format!("asset: code {code} is outside 0..{}", self.names.len()),
            ));
        }
        Err(python_error(
            py,
            "OrderError",
            format!(
                "asset: expected a name (str) or code (int), got {}",
                asset.get_type()
            ),
        ))
    }

    /// A Python datetime for `ns` nanoseconds since the epoch, in the feed's time zone.
    pub fn datetime<'py>(&self, py: Python<'py>, ns: i64) -> PyResult<Bound<'py, PyAny>> {
        self.to_datetime.bind(py).call1((ns,))
    }
}
