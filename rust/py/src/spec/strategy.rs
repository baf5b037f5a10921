//! A built-in strategy spec (`{"kind": "signal" | "top_k", ...}` from `SignalStrategy.spec()`
//! or `TopKStrategy.spec()`) -> the core strategy that runs without Python.

use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy, TopKStrategy};
use ml4t_backtest_core::BacktestError;
use pyo3::types::PyDict;
use pyo3::Bound;

use crate::dict::Spec;

/// A built-in strategy that runs without Python.
pub enum BuiltinStrategy {
    /// See [`SignalStrategy`].
    Signal(SignalStrategy),
    /// See [`TopKStrategy`].
    TopK(TopKStrategy),
}

/// Builds a built-in strategy from its spec dict (`{"kind": "signal" | "top_k", ...}`).
pub fn builtin_strategy(d: &Bound<'_, PyDict>) -> Result<BuiltinStrategy, BacktestError> {
    let d = Spec::root(d);
    match d.req::<String>("kind")?.as_str() {
        "signal" => {
            let sizing = match (d.get::<f64>("quantity")?, d.get::<f64>("weight")?) {
                (Some(q), None) => SignalSizing::Quantity(q),
                (None, Some(w)) => SignalSizing::Weight(w),
                _ => {
                    return Err(BacktestError::config(
                        "strategy",
                        "give exactly one of quantity or weight",
                    ))
                }
            };
            let strategy = SignalStrategy::new(
                d.req::<String>("column")?,
                sizing,
                d.req("long_threshold")?,
                d.req("short_threshold")?,
                d.req("allow_short")?,
            )?;
            let strategy = match (d.get::<f64>("take_profit")?, d.get::<f64>("stop_loss")?) {
                (None, None) => strategy,
                (Some(tp), Some(sl)) => strategy.with_bracket(tp, sl)?,
                _ => {
                    return Err(BacktestError::config(
                        "strategy.take_profit",
                        "give both take_profit and stop_loss for a bracket, or neither",
                    ))
                }
            };
            Ok(BuiltinStrategy::Signal(strategy))
        }
        "top_k" => Ok(BuiltinStrategy::TopK(TopKStrategy::new(
            d.req::<String>("score")?,
            d.req("k")?,
            d.req("bottom_k")?,
            d.req("rebalance_every")?,
        )?)),
        other => Err(BacktestError::config(
            "strategy.kind",
            format!("unknown built-in strategy '{other}'"),
        )),
    }
}
