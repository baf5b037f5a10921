//! The feed's feature groups and where they sit in a chunk, shared by the strategy's events
//! (`MarketEvent.indicators`, `.context`) and the risk rules' objects (`features`,
//! `market_features`).
//!
//! Every feature column of a chunk is a per-asset signal, an indicator (the feed's
//! `indicators` frame) or a market-wide context column (its `context` frame).

use std::sync::Arc;

use ml4t_backtest_core::MarketData;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::dict::Spec;
use crate::errors::Error;

/// How the feed's feature columns are grouped (its `FeatureProvider.groups()`).
#[derive(Debug, Default)]
pub struct FeatureGroups {
    /// Names of the market-wide columns (the `context` frame).
    pub market: Vec<String>,
    /// Names of the indicator columns.
    pub indicators: Vec<String>,
}

impl FeatureGroups {
    /// Reads `{"context": [...], "indicators": [...]}` (missing keys: empty).
    pub fn from_dict(d: Option<&Bound<'_, PyDict>>) -> Result<Self, Error> {
        let Some(d) = d else {
            return Ok(FeatureGroups::default());
        };
        let spec = Spec::root(d);
        Ok(FeatureGroups {
            market: spec.get_or("context", Vec::new())?,
            indicators: spec.get_or("indicators", Vec::new())?,
        })
    }
}

/// The column positions of each feature group in one chunk.
#[derive(Debug, Default, Clone)]
pub struct Layout {
    /// Names of the per-asset columns (signals and indicators), in chunk order.
    pub asset_names: Arc<Vec<String>>,
    /// Their positions.
    pub asset_columns: Vec<usize>,
    /// Names of the market-wide columns, in chunk order.
    pub market_names: Arc<Vec<String>>,
    /// Their positions.
    pub market_columns: Vec<usize>,
    /// Positions of the indicator columns, in the order the groups name them.
    pub indicators: Vec<usize>,
    /// Positions of the context columns, in the order the groups name them.
    pub context: Vec<usize>,
}

impl Layout {
    /// Where `groups` sit in `data`.
    pub fn of(data: &MarketData, groups: &FeatureGroups) -> Self {
        let mut layout = Layout::default();
        let (mut asset_names, mut market_names) = (Vec::new(), Vec::new());
        for (pos, name) in data.feature_names().iter().enumerate() {
            if groups.market.iter().any(|m| m == name) {
                market_names.push(name.clone());
                layout.market_columns.push(pos);
            } else {
                asset_names.push(name.clone());
                layout.asset_columns.push(pos);
            }
        }
        layout.asset_names = Arc::new(asset_names);
        layout.market_names = Arc::new(market_names);
        let positions = |names: &[String]| {
            names
                .iter()
                .filter_map(|n| data.feature_position(n))
                .collect::<Vec<_>>()
        };
        layout.indicators = positions(&groups.indicators);
        layout.context = positions(&groups.market);
        layout
    }

    /// The per-asset feature values of `row` (NaN for every column when there is no row).
    pub fn asset_values(&self, data: &MarketData, row: Option<usize>) -> Vec<f64> {
        self.asset_columns
            .iter()
            .map(|&c| row.map_or(f64::NAN, |r| data.feature_at(c)[r]))
            .collect()
    }

    /// The market-wide feature values of `row`.
    pub fn market_values(&self, data: &MarketData, row: usize) -> Vec<f64> {
        self.market_columns
            .iter()
            .map(|&c| data.feature_at(c)[row])
            .collect()
    }
}
