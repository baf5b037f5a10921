//! What Python describes, as core values: the engine dict ([`config`], with its [`account`]
//! section), a built-in strategy spec ([`strategy`]) and the risk rule specs ([`risk`]).

pub mod account;
pub mod config;
pub mod risk;
pub mod strategy;
