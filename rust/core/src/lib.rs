//! # ml4t-backtest-core
//!
//! The pure-Rust heart of ml4t-backtest: market data views over Arrow buffers, the event loop,
//! order matching, slippage and commission, portfolio accounting and the result builders.
//! It has no Python dependency; the `ml4t-backtest-py` crate binds it to Python.
//!
//! The contract of the loop is documented in `docs/semantics.md` at the repository root.
//!
//! # Layout
//!
//! From the bottom up; a module uses only modules of the groups above its own:
//!
//! - vocabulary: [`types`], [`error`], [`progress`], [`feed`] (the market data), [`actions`]
//!   (corporate actions), [`flows`] (capital flows), [`fx`] (currencies and FX rates),
//!   [`membership`] (a point-in-time universe);
//! - an order's words and rooms: [`orders`] (kinds, requests, the strategy's outbox, the book),
//!   [`events`] (status changes), [`records`] (fills and trades as the loop produces them);
//! - models and accounts: [`instruments`] (what a unit of an asset is), [`matching`], [`slippage`], [`commission`], [`portfolio`],
//!   [`trades`] (round trips), [`results`] (columnar recorders, Arrow output), then
//!   [`config`], which holds the models;
//! - extension points: [`strategy`] (the trait), [`strategies`] (built-ins), [`risk`];
//! - [`engine`]: the loop that drives them all.
//!
//! Every public item is documented: `missing_docs` is denied through the workspace's
//! `[workspace.lints]` table.

pub mod actions;
pub mod commission;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod feed;
pub mod flows;
pub mod fx;
pub mod instruments;
pub mod matching;
pub mod membership;
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

pub use config::{EngineConfig, ExecutionMode, ShareRounding, StopBasis, TargetSizing};
pub use engine::{run_backtest, run_backtest_with_rules, Engine};
pub use error::{BacktestError, Result};
pub use feed::MarketData;
pub use progress::Progress;
pub use results::BacktestOutput;
pub use strategy::{Strategy, StrategyContext, TimestampView};
pub use types::{AssetId, OrderId, Side, Ts};
