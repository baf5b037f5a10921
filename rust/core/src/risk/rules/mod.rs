//! The built-in rules: position exits, pre-trade limits, portfolio halts and composition.

mod compose;
mod exits;
mod limits;
mod portfolio;

pub use compose::{AllOf, AnyOf, ForAssets, RegimeRule, RuleChain};
pub use exits::{
    BreakevenStop, Distance, ScaledExit, StopLoss, TakeProfit, TimeExit, TrailingStop,
};
pub use exits::{TrailMark, TrailUpdate};
pub use limits::{
    MaxGrossExposure, MaxNetExposure, MaxPositionSize, MaxPositions, PositionLimit, ScaleSize,
    VolatilityScaledSizing,
};
pub use portfolio::{DailyLossLimit, MaxDrawdownHalt};

use crate::error::{BacktestError, Result};
use crate::feed::MarketData;

/// Checks that `value` is finite and > 0.
pub(crate) fn positive(rule: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(BacktestError::risk(
            &format!("{rule}.{field}"),
            format!("must be finite and > 0, got {value}"),
        ))
    }
}

/// Checks that `value` is in (0, 1].
pub(crate) fn fraction(rule: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(BacktestError::risk(
            &format!("{rule}.{field}"),
            format!("must be in (0, 1], got {value}"),
        ))
    }
}

/// A feature column a rule reads, by name, with its position in the current chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    name: String,
    column: usize,
}

impl FeatureColumn {
    /// A column not yet bound.
    pub fn new(name: impl Into<String>) -> Self {
        FeatureColumn {
            name: name.into(),
            column: usize::MAX,
        }
    }

    /// The feature's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Finds the column in `data`; the error names `rule` and the feature.
    pub fn bind(&mut self, rule: &str, data: &MarketData) -> Result<()> {
        self.column = data.feature_position(&self.name).ok_or_else(|| {
            BacktestError::risk(
                &format!("{rule}.feature"),
                format!(
                    "the feed has no feature column '{}' (features: {})",
                    self.name,
                    data.feature_names().join(", ")
                ),
            )
        })?;
        Ok(())
    }

    /// The bound column position.
    #[inline]
    pub fn column(&self) -> usize {
        self.column
    }
}
