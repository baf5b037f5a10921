//! # ml4t-backtest-core
//!
//! The pure-Rust heart of ml4t-backtest: market data views over Arrow buffers, the event loop,
//! order matching, slippage and commission, portfolio accounting and the result builders.
//! It has no Python dependency; the `ml4t-backtest-py` crate binds it to Python.
//!
//! The contract of the loop is documented in `docs/semantics.md` at the repository root.

pub mod commission;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod feed;
pub mod matching;
pub mod orders;
pub mod portfolio;
pub mod progress;
pub mod records;
pub mod results;
pub mod risk;
pub mod slippage;
pub mod strategies;
pub mod strategy;
pub mod trades;
pub mod types;

pub use config::{EngineConfig, ExecutionMode, ShareRounding, StopBasis};
pub use engine::{run_backtest, run_backtest_with_rules, Engine};
pub use error::{BacktestError, Result};
pub use feed::MarketData;
pub use progress::Progress;
pub use results::BacktestOutput;
pub use strategy::{Strategy, StrategyContext, TimestampView};
pub use types::{AssetId, OrderId, Side, Ts};
