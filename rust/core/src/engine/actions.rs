//! Corporate actions inside the loop: at the start of an ex-date's timestamp, before any fill,
//! cash dividends are paid on the positions held at the previous close and splits restate
//! positions, open trades, resting orders and the risk manager's state (`docs/semantics.md`,
//! *Corporate actions*). The table itself is [`crate::actions::CorporateActions`]; the loop
//! compares one timestamp with its next date per timestamp.

use super::Engine;
use crate::actions::{split_shares, CorporateAction, CorporateActions};
use crate::config::ShareRounding;
use crate::error::Result;
use crate::events::{OrderOrigin, OrderStatus};
use crate::feed::MarketData;
use crate::orders::{Order, OrderKind, OrderState, Trail};
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, RejectReason, Ts};

impl Engine {
    /// Sets the run's corporate actions (sorted by (timestamp, asset), one per key; see
    /// [`CorporateActions::new`] for the checks). Each applies at the start of the first
    /// timestamp at or after its date.
    pub fn set_corporate_actions(&mut self, actions: Vec<CorporateAction>) -> Result<()> {
        self.actions = CorporateActions::new(actions, self.n_assets)?;
        self.next_dated = self.next_dated_event();
        Ok(())
    }

    /// The actions due at `ts`, before its fills: each asset's dividend on the position held
    /// at the previous close, then its split. The dividends of the timestamp are one row of the
    /// financing table.
    pub(super) fn apply_actions<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<()> {
        let (mut received, mut paid) = (0.0, 0.0);
        let mut any = false;
        for index in self.actions.take_due(ts) {
            let action = self.actions.get(index);
            let held = self.portfolio.quantity(action.asset);
            if action.dividend != 0.0 && held != 0.0 {
                let amount = held * action.dividend;
                // Paid in the asset's currency; the financing table is in base.
                let rate = self.portfolio.rate_of(action.asset);
                self.portfolio.credit(action.asset, amount);
                let in_base = amount * rate;
                if self.members.on {
                    let value = self.portfolio.value(action.asset);
                    self.members.cash_moved(action.asset, in_base, value);
                }
                self.tracker.add_income(action.asset, amount, rate);
                if in_base >= 0.0 {
                    received += in_base;
                } else {
                    paid -= in_base;
                }
                any = true;
            }
            if action.splits() {
                self.split(data, ts, action.asset, action.split_ratio, strategy)?;
            }
        }
        if any {
            self.record.financing.add_dividend(ts, received, paid);
        }
        Ok(())
    }

    /// A split of `ratio` new shares per old one of `asset`: position, mark, open trade, risk
    /// state and resting orders are restated; an integer-share account sells the fractional
    /// share left at this timestamp's open (cash in lieu).
    fn split<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        asset: AssetId,
        ratio: f64,
        strategy: &mut S,
    ) -> Result<()> {
        let before = self.portfolio.quantity(asset);
        let after = self.portfolio.split(asset, ratio);
        self.tracker.split(asset, ratio);
        if let Some(risk) = self.risk.as_mut() {
            risk.split(asset, ratio);
        }
        self.split_orders(ts, asset, ratio);
        if before == 0.0 {
            return Ok(());
        }
        self.record.splits.push(ts, asset, ratio, before, after);
        let fraction = after - after.trunc();
        if self.config.rounding != ShareRounding::Integer || fraction == 0.0 {
            return Ok(());
        }
        let a = asset as usize;
        let price = if self.bar_epoch[a] == self.timestamps {
            data.open()[self.bar_row[a]]
        } else {
            self.portfolio.last_price(asset)
        };
        let quantity = -fraction;
        let id = self.take_order_id();
        let order = Order {
            reason: ExitReason::CashInLieu,
            ..Order::market(id, asset, quantity, ts, self.timestamps)
        };
        self.accept_direct(&order, ts, OrderOrigin::CorporateAction);
        let fill =
            self.book_fill_at_fee(ts, &order, quantity, (price, price), false, usize::MAX, 0.0);
        self.after_fill(&order, &fill);
        strategy.on_fill(&fill, &self.portfolio)
    }

    /// Restates `asset`'s orders after a split: quantities × `ratio` (whole shares, toward
    /// zero, in integer mode; an active order left with none is rejected `split`), limit, stop
    /// and trail amount ÷ `ratio`, a trailing stop's water mark ÷ `ratio`. Each change is
    /// journaled as a modification (the strategy sees `accepted` again).
    fn split_orders(&mut self, ts: Ts, asset: AssetId, ratio: f64) {
        if self.book.is_empty() {
            return;
        }
        let integer = self.config.rounding == ShareRounding::Integer;
        let mut removed = false;
        for index in 0..self.book.orders().len() {
            let order = self.book.orders()[index];
            if order.asset != asset || !order.is_live() {
                continue;
            }
            let mut quantity = split_shares(order.quantity, ratio);
            if integer {
                quantity = quantity.trunc();
            }
            if quantity == 0.0 && order.active && order.target().is_none() {
                self.reject(order.id, ts, asset, order.quantity, RejectReason::Split);
                self.book.mark_filled(index);
                removed = true;
                continue;
            }
            self.book.set_quantity(index, quantity);
            let changed = self.book.order_mut(index);
            changed.kind = split_kind(changed.kind, ratio);
            if let OrderState::TrailingStop { water_mark } = &mut changed.state {
                *water_mark /= ratio;
            }
            let changed = *changed;
            self.emit_status(&changed, ts, OrderStatus::Accepted);
        }
        if removed {
            self.book.sweep();
        }
    }
}

/// `kind` with its prices (and a trail amount) divided by `ratio`.
fn split_kind(kind: OrderKind, ratio: f64) -> OrderKind {
    match kind {
        OrderKind::Limit { limit } => OrderKind::Limit {
            limit: limit / ratio,
        },
        OrderKind::Stop { stop } => OrderKind::Stop { stop: stop / ratio },
        OrderKind::StopLimit { stop, limit } => OrderKind::StopLimit {
            stop: stop / ratio,
            limit: limit / ratio,
        },
        OrderKind::TrailingStop {
            trail: Trail::Amount(amount),
        } => OrderKind::TrailingStop {
            trail: Trail::Amount(amount / ratio),
        },
        other => other,
    }
}
