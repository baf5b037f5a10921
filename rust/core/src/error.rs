//! The error type of the core. Every fallible function returns [`Result`].

use thiserror::Error;

/// Everything that can go wrong in a backtest, with enough context to find the cause.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BacktestError {
    /// The market data breaks a rule (schema, ordering, values).
    #[error("data validation failed: column '{column}', row {row}: {rule}")]
    DataValidation {
        /// Offending column.
        column: String,
        /// First offending row (0-based, in the normalised frame).
        row: usize,
        /// The rule that was broken.
        rule: String,
        /// The timestamp the engine was at, when the error is about one (the Python layer shows
        /// it as a datetime in the data's time zone).
        ts: Option<crate::types::Ts>,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {field}: {rule}")]
    Config {
        /// Dotted path of the field.
        field: String,
        /// The rule that was broken.
        rule: String,
    },
    /// An order that can never be valid.
    #[error("invalid order: {field}: {rule}")]
    Order {
        /// The order field at fault.
        field: String,
        /// The rule that was broken.
        rule: String,
    },
    /// A risk rule has a bad parameter, names a feature the feed lacks, or failed while running.
    #[error("risk rule {rule}: {detail}")]
    Risk {
        /// The rule (and the parameter at fault, dotted), e.g. `stop_loss.pct`.
        rule: String,
        /// What is wrong.
        detail: String,
    },
    /// The strategy failed; the message describes where.
    #[error("strategy failed: {0}")]
    Strategy(String),
    /// The run was cancelled through its [`crate::Progress`] handle.
    #[error("the run was cancelled after {rows} rows")]
    Cancelled {
        /// Rows processed before stopping.
        rows: u64,
    },
}

/// Shorthand for results of the core.
pub type Result<T> = std::result::Result<T, BacktestError>;

impl BacktestError {
    /// Builds a [`BacktestError::DataValidation`].
    pub fn data(column: &str, row: usize, rule: impl Into<String>) -> Self {
        BacktestError::DataValidation {
            column: column.to_string(),
            row,
            rule: rule.into(),
            ts: None,
        }
    }

    /// A [`BacktestError::DataValidation`] found at timestamp `ts`.
    pub fn data_at(
        column: &str,
        row: usize,
        ts: crate::types::Ts,
        rule: impl Into<String>,
    ) -> Self {
        BacktestError::DataValidation {
            column: column.to_string(),
            row,
            rule: rule.into(),
            ts: Some(ts),
        }
    }

    /// Builds a [`BacktestError::Config`].
    pub fn config(field: &str, rule: impl Into<String>) -> Self {
        BacktestError::Config {
            field: field.to_string(),
            rule: rule.into(),
        }
    }

    /// Builds a [`BacktestError::Risk`].
    pub fn risk(rule: &str, detail: impl Into<String>) -> Self {
        BacktestError::Risk {
            rule: rule.to_string(),
            detail: detail.into(),
        }
    }

    /// Builds a [`BacktestError::Order`].
    pub fn order(field: &str, rule: impl Into<String>) -> Self {
        BacktestError::Order {
            field: field.to_string(),
            rule: rule.into(),
        }
    }
}
