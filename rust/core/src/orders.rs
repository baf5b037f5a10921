//! Orders: what a strategy asks for ([`Intent`]), and accepted orders waiting to fill ([`Order`],
//! [`OrderBook`]).

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, OrderId, Ts};

/// A strategy's request, resolved into an order quantity at decision time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intent {
    /// Trade a signed number of shares.
    Quantity {
        /// Asset to trade.
        asset: AssetId,
        /// Signed shares (+ buys).
        quantity: f64,
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
}

fn finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(BacktestError::order(
            field,
            format!("must be finite, got {value}"),
        ))
    }
}

impl CommandBuffer {
    /// An empty buffer for a universe of `n_assets`.
    pub fn new(n_assets: u32) -> Self {
        CommandBuffer {
            intents: Vec::with_capacity(64),
            weights: Vec::with_capacity(64),
            n_assets,
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

    /// Trade `quantity` shares (signed). Zero, NaN and infinite quantities are errors.
    pub fn submit_order(&mut self, asset: AssetId, quantity: f64) -> Result<()> {
        let quantity = finite("quantity", quantity)?;
        if quantity == 0.0 {
            return Err(BacktestError::order("quantity", "must not be zero"));
        }
        let asset = self.asset(asset)?;
        self.intents.push(Intent::Quantity { asset, quantity });
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

/// An accepted market order waiting for its fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// Engine-assigned id.
    pub id: OrderId,
    /// Asset traded.
    pub asset: AssetId,
    /// Signed shares still to fill (+ buys).
    pub quantity: f64,
    /// Timestamp of the decision.
    pub created: Ts,
}

/// Accepted orders in submission (time) order, with the pending quantity per asset.
#[derive(Debug, Clone)]
pub struct OrderBook {
    orders: Vec<Order>,
    pending_quantity: Vec<f64>,
    pending_count: Vec<u32>,
}

impl OrderBook {
    /// An empty book for `n_assets`.
    pub fn new(n_assets: usize) -> Self {
        OrderBook {
            orders: Vec::with_capacity(64),
            pending_quantity: vec![0.0; n_assets],
            pending_count: vec![0; n_assets],
        }
    }

    /// Queues `order`.
    #[inline]
    pub fn push(&mut self, order: Order) {
        self.pending_quantity[order.asset as usize] += order.quantity;
        self.pending_count[order.asset as usize] += 1;
        self.orders.push(order);
    }

    /// Signed shares still pending for `asset`.
    #[inline]
    pub fn pending_quantity(&self, asset: AssetId) -> f64 {
        self.pending_quantity[asset as usize]
    }

    /// True when no order waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// The waiting orders in submission order.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// Marks the order at `index` filled; it is removed by the next [`Self::sweep`].
    #[inline]
    pub fn mark_filled(&mut self, index: usize) {
        let order = &mut self.orders[index];
        let slot = order.asset as usize;
        self.pending_count[slot] -= 1;
        if self.pending_count[slot] == 0 {
            // Exact zero once nothing is pending, so rounding residue never accumulates.
            self.pending_quantity[slot] = 0.0;
        } else {
            self.pending_quantity[slot] -= order.quantity;
        }
        order.quantity = 0.0;
    }

    /// Removes filled orders, keeping submission order.
    #[inline]
    pub fn sweep(&mut self) {
        self.orders.retain(|o| o.quantity != 0.0);
    }

    /// Takes every waiting order out of the book (at the end of the data).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Order> {
        self.pending_quantity.iter_mut().for_each(|q| *q = 0.0);
        self.pending_count.iter_mut().for_each(|c| *c = 0);
        self.orders.drain(..)
    }
}
