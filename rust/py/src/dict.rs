//! Typed reads of the spec dicts Python hands over (the engine dict of
//! `BacktestConfig.engine_dict()`, strategy and rule specs), in the manner of pydantic-core's
//! `get_as` / `get_as_req`: a [`Spec`] is a dict and its path, so the location of a missing or
//! wrong-typed key is derived from where it sits (`account.type`), never spelled by the caller.
//!
//! A missing required key is a `Config` error `"<path>: missing"`; a value of the wrong type is
//! `"<path>: wrong type: <PyO3's conversion error>"`. A key holding `None` counts as absent.

use ml4t_backtest_core::BacktestError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A spec dict and its dotted path from the root (`""` at the root).
#[derive(Clone)]
pub struct Spec<'py> {
    dict: Bound<'py, PyDict>,
    path: String,
}

impl<'py> Spec<'py> {
    /// The root of a spec: locations are the bare keys.
    pub fn root(dict: &Bound<'py, PyDict>) -> Self {
        Spec {
            dict: dict.clone(),
            path: String::new(),
        }
    }

    /// The dotted location of `key` (`execution.mode`).
    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The object under `key`, `None` when absent or `None`.
    pub fn object(&self, key: &str) -> Option<Bound<'py, PyAny>> {
        self.dict
            .get_item(key)
            .ok()
            .flatten()
            .filter(|value| !value.is_none())
    }

    /// The value under `key`, `None` when absent or `None`.
    pub fn get<T: FromPyObjectOwned<'py>>(&self, key: &str) -> Result<Option<T>, BacktestError> {
        let Some(value) = self.object(key) else {
            return Ok(None);
        };
        value.extract::<T>().map(Some).map_err(|err| {
            BacktestError::config(
                &self.at(key),
                format!("wrong type: {}", Into::<PyErr>::into(err)),
            )
        })
    }

    /// The value under `key`, which must be there.
    pub fn req<T: FromPyObjectOwned<'py>>(&self, key: &str) -> Result<T, BacktestError> {
        self.get(key)?
            .ok_or_else(|| BacktestError::config(&self.at(key), "missing"))
    }

    /// The value under `key`, or `default` when absent.
    pub fn get_or<T: FromPyObjectOwned<'py>>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, BacktestError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The nested section under `key` (a dict), which must be there.
    pub fn section(&self, key: &str) -> Result<Spec<'py>, BacktestError> {
        let value = self
            .object(key)
            .ok_or_else(|| BacktestError::config(&self.at(key), "missing"))?;
        let dict = value
            .cast_into::<PyDict>()
            .map_err(|_| BacktestError::config(&self.at(key), "wrong type: expected a dict"))?;
        Ok(Spec {
            dict,
            path: self.at(key),
        })
    }
}
