//! A Python risk rule: the adapter the engine calls ([`PyRiskRule`]) and the objects the rule
//! sees and returns ([`objects`]).

mod adapter;
pub mod objects;

pub use adapter::PyRiskRule;
