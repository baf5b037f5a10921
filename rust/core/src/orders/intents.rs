//! A strategy's outbox: the [`Intent`]s it submits during its callback, checked at submission
//! (errors name the field) and drained by the engine, which turns them into orders.

use super::{check_magnitude, finite, OrderRequest};
use crate::error::{BacktestError, Result};
use crate::types::{AssetId, OrderId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The run's one order-id counter, shared by the engine and every buffer that submits into it,
/// so an id handed out at submission is never handed out again (risk exits, margin calls and
/// target orders take theirs from the same counter).
#[derive(Debug, Clone)]
pub struct OrderIds(Arc<AtomicU64>);

impl Default for OrderIds {
    fn default() -> Self {
        OrderIds(Arc::new(AtomicU64::new(1)))
    }
}

impl OrderIds {
    /// Takes `n` consecutive ids; returns the first.
    #[inline]
    pub fn take(&self, n: u64) -> OrderId {
        self.0.fetch_add(n, Ordering::Relaxed)
    }

    /// The id the next order gets.
    pub fn peek(&self) -> OrderId {
        self.0.load(Ordering::Relaxed)
    }
}

/// A strategy's request, resolved into an order quantity at decision time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intent {
    /// An explicit order, with the id it was given at submission.
    Submit {
        /// Id reserved at submission.
        id: OrderId,
        /// The order.
        request: OrderRequest,
    },
    /// Cancel a pending order (and, for a bracket entry, its legs).
    Cancel {
        /// The order to cancel.
        id: OrderId,
    },
    /// Change a pending order: its remaining quantity and/or its limit / stop price (NaN: keep).
    Modify {
        /// The order to change.
        id: OrderId,
        /// New signed remaining quantity (same side), or NaN.
        quantity: f64,
        /// New limit price, or NaN.
        limit: f64,
        /// New stop price, or NaN.
        stop: f64,
    },
    /// Reach a target position in shares.
    TargetQuantity {
        /// Asset to trade.
        asset: AssetId,
        /// Target position.
        target: f64,
    },
    /// Reach a target market value.
    TargetValue {
        /// Asset to trade.
        asset: AssetId,
        /// Target value (negative for shorts).
        value: f64,
    },
    /// Reach a target fraction of equity.
    TargetPercent {
        /// Asset to trade.
        asset: AssetId,
        /// Target fraction (negative for shorts).
        fraction: f64,
    },
    /// Go flat.
    Close {
        /// Asset to close.
        asset: AssetId,
    },
    /// Hold exactly the weights in `CommandBuffer::weights[start..end]`, flat elsewhere.
    Rebalance {
        /// First weight.
        start: u32,
        /// One past the last weight.
        end: u32,
    },
}

/// The buffer a strategy writes into during its callback; the engine drains it afterwards.
#[derive(Debug, Default, Clone)]
pub struct CommandBuffer {
    intents: Vec<Intent>,
    weights: Vec<(AssetId, f64)>,
    n_assets: u32,
    ids: OrderIds,
}

impl CommandBuffer {
    /// An empty buffer for a universe of `n_assets`.
    pub fn new(n_assets: u32) -> Self {
        CommandBuffer {
            intents: Vec::with_capacity(64),
            weights: Vec::with_capacity(64),
            n_assets,
            ids: OrderIds::default(),
        }
    }

    /// The id the next submitted order gets.
    pub fn next_id(&self) -> OrderId {
        self.ids.peek()
    }

    /// The id counter this buffer hands out from.
    pub fn ids(&self) -> &OrderIds {
        &self.ids
    }

    /// Hands out ids from `ids` from now on (an adapter's own buffer shares the engine's
    /// counter: `buffer.share_ids(ctx.orders.ids())`).
    pub fn share_ids(&mut self, ids: &OrderIds) {
        // Called before every callback: skip the reference-count traffic when already shared.
        if !Arc::ptr_eq(&self.ids.0, &ids.0) {
            self.ids = ids.clone();
        }
    }

    fn asset(&self, asset: AssetId) -> Result<AssetId> {
        if asset < self.n_assets {
            Ok(asset)
        } else {
            Err(BacktestError::order(
                "asset",
                format!(
                    "unknown asset code {asset} (universe has {})",
                    self.n_assets
                ),
            ))
        }
    }

    /// A market order for `quantity` shares (signed). Zero, NaN and infinite quantities are
    /// errors. Returns the order id.
    pub fn submit_order(&mut self, asset: AssetId, quantity: f64) -> Result<OrderId> {
        self.submit(OrderRequest::market(asset, quantity))
    }

    /// Any order type; checked now (errors name the field). Returns the order id.
    pub fn submit(&mut self, request: OrderRequest) -> Result<OrderId> {
        self.asset(request.asset)?;
        request.validate()?;
        // A bracket reserves ids for its two legs right after the entry.
        let id = self.ids.take(
            1 + u64::from(request.take_profit.is_some()) + u64::from(request.stop_loss.is_some()),
        );
        self.intents.push(Intent::Submit { id, request });
        Ok(id)
    }

    /// Cancels pending order `id` (a no-op, recorded as a rejection, if it is not pending).
    pub fn cancel_order(&mut self, id: OrderId) {
        self.intents.push(Intent::Cancel { id });
    }

    /// Changes pending order `id`: its remaining `quantity` (same side) and/or its `limit` /
    /// `stop` price; `None` keeps a field. Values are checked now (errors name the field);
    /// a change the order's type cannot take (a limit on a stop order) is rejected when applied.
    pub fn modify_order(
        &mut self,
        id: OrderId,
        quantity: Option<f64>,
        limit: Option<f64>,
        stop: Option<f64>,
    ) -> Result<()> {
        if let Some(q) = quantity {
            if !q.is_finite() || q == 0.0 {
                return Err(BacktestError::order(
                    "quantity",
                    format!("must be finite and non-zero, got {q}"),
                ));
            }
            check_magnitude(q)?;
        }
        for (field, v) in [("limit", limit), ("stop", stop)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(BacktestError::order(
                        field,
                        format!("must be finite and > 0, got {v}"),
                    ));
                }
            }
        }
        self.intents.push(Intent::Modify {
            id,
            quantity: quantity.unwrap_or(f64::NAN),
            limit: limit.unwrap_or(f64::NAN),
            stop: stop.unwrap_or(f64::NAN),
        });
        Ok(())
    }

    /// Reach `target` shares.
    pub fn order_target_quantity(&mut self, asset: AssetId, target: f64) -> Result<()> {
        let target = finite("target", target)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetQuantity { asset, target });
        Ok(())
    }

    /// Reach a market value of `value`.
    pub fn order_target_value(&mut self, asset: AssetId, value: f64) -> Result<()> {
        let value = finite("value", value)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetValue { asset, value });
        Ok(())
    }

    /// Reach `fraction` of equity.
    pub fn order_target_percent(&mut self, asset: AssetId, fraction: f64) -> Result<()> {
        let fraction = finite("fraction", fraction)?;
        let asset = self.asset(asset)?;
        self.intents.push(Intent::TargetPercent { asset, fraction });
        Ok(())
    }

    /// Go flat in `asset`.
    pub fn close_position(&mut self, asset: AssetId) -> Result<()> {
        let asset = self.asset(asset)?;
        self.intents.push(Intent::Close { asset });
        Ok(())
    }

    /// Hold exactly `weights` (fractions of equity), flat in every other asset.
    pub fn rebalance<I: IntoIterator<Item = (AssetId, f64)>>(&mut self, weights: I) -> Result<()> {
        let start = self.weights.len();
        for (asset, weight) in weights {
            let checked = self
                .asset(asset)
                .and_then(|a| Ok((a, finite("weight", weight)?)));
            match checked {
                Ok(pair) => self.weights.push(pair),
                Err(err) => {
                    self.weights.truncate(start);
                    return Err(err);
                }
            }
        }
        self.intents.push(Intent::Rebalance {
            start: start as u32,
            end: self.weights.len() as u32,
        });
        Ok(())
    }

    /// Moves every intent of `other` into this buffer (used by adapters with their own buffer).
    pub fn append(&mut self, other: &mut CommandBuffer) {
        let offset = self.weights.len() as u32;
        for intent in other.intents.drain(..) {
            self.intents.push(match intent {
                Intent::Rebalance { start, end } => Intent::Rebalance {
                    start: start + offset,
                    end: end + offset,
                },
                other => other,
            });
        }
        self.weights.append(&mut other.weights);
    }

    /// The pending intents, in submission order.
    pub fn intents(&self) -> &[Intent] {
        &self.intents
    }

    /// The weights referenced by [`Intent::Rebalance`].
    pub fn weights(&self) -> &[(AssetId, f64)] {
        &self.weights
    }

    /// True when nothing was submitted.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.intents.clear();
        self.weights.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_sharing_the_counter_never_reuse_an_id() {
        let mut engine = CommandBuffer::new(2);
        let mut adapter = CommandBuffer::new(2);
        adapter.share_ids(engine.ids());
        let a = engine.submit_order(0, 1.0).unwrap();
        let engine_exit = engine.ids().take(1);
        let mut bracket = OrderRequest::market(1, 2.0);
        bracket.take_profit = Some(10.0);
        bracket.stop_loss = Some(5.0);
        let b = adapter.submit(bracket).unwrap();
        let c = adapter.submit_order(1, 1.0).unwrap();
        assert_eq!((a, engine_exit, b, c), (1, 2, 3, 6));
        assert_eq!(engine.next_id(), 7);
    }

    #[test]
    fn quantities_beyond_2_pow_53_are_rejected_at_submission() {
        let mut buffer = CommandBuffer::new(1);
        let err = buffer.submit_order(0, 1e308).unwrap_err().to_string();
        assert!(
            err.contains("quantity: too_large: |1e308| exceeds 2^53 (9007199254740992) shares"),
            "{err}"
        );
        assert!(buffer.submit_order(0, -9_007_199_254_740_992.0).is_ok());
        assert!(buffer.modify_order(1, Some(1e20), None, None).is_err());
    }
}
