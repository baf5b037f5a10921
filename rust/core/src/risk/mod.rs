//! Risk management inside the loop (see `docs/risk.md`):
//!
//! - **position rules** run after marking, on every open position with a bar: they set the
//!   stop, trailing-stop and target levels live for the next bar, or ask for an exit now;
//! - **pre-trade checks** run on the opening part of every new order before it is queued: they
//!   accept, resize or reject it (`risk_limit`).
//!
//! [`RiskRule`] is the trait; [`rules`] holds the built-in rules and the composites;
//! [`RiskManager`] keeps the per-position state the rules read.

mod context;
mod decision;
mod manager;
mod rule;
pub mod rules;

pub use context::{OrderCheck, PortfolioState, PositionState, PositionView, RiskEnv};
pub use decision::{PositionPlan, RiskDecision};
pub use manager::{HeldPosition, RiskManager};
pub use rule::{apply_verdict, BoxedRule, RiskRule};
