//! What Python describes, as core values: the engine dict ([`config`], with its [`account`]
//! section), the universe's instrument specs ([`instruments`]), a built-in strategy spec ([`strategy`]) and the risk rule specs ([`risk`]).

pub mod account;
pub mod config;
pub mod instruments;
pub mod risk;
pub mod strategy;
