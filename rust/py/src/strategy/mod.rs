//! What a Python strategy sees and drives: the adapter the engine calls ([`PyStrategy`]), the
//! `Context` it trades through and the events it receives (`MarketEvent`, `FillEvent`,
//! `OrderUpdate`).

mod adapter;
pub mod context;
pub mod event;

pub use adapter::{CallMode, PyStrategy};
