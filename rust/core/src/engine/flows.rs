//! Capital flows inside the loop: at the start of a flow's timestamp, after financing and
//! corporate actions and before any fill, cash moves by the flow's amount (`docs/semantics.md`,
//! *Capital flows*). A withdrawal beyond the cash held stops the run, or first sells whole long
//! positions at the open ([`WithdrawalShortfall::Liquidate`]). The table itself is
//! [`crate::flows::CapitalFlows`]; the loop compares one timestamp with its next date per
//! timestamp.

use super::Engine;
use crate::error::{BacktestError, Result};
use crate::events::OrderOrigin;
use crate::feed::MarketData;
use crate::flows::{CapitalFlows, WithdrawalShortfall};
use crate::orders::Order;
use crate::strategy::Strategy;
use crate::types::{AssetId, ExitReason, Ts};

impl Engine {
    /// Sets the run's capital flows. Each applies at the start of the first timestamp at or
    /// after its date; one dated before the run's first timestamp, or left when the data ends,
    /// is a `DataValidation` error (`flows.ts: outside_run`).
    pub fn set_capital_flows(&mut self, flows: CapitalFlows) {
        self.flows = flows;
        self.next_dated = self.next_dated_event();
    }

    /// The flows due at `ts`, before its fills: their sum moves cash and is the timestamp's
    /// `flow` in the financing table.
    pub(super) fn apply_flows<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<()> {
        let row = self.flows.next_row();
        if self.timestamps == 1 && self.flows.next_ts() < ts {
            return Err(BacktestError::data_at(
                "flows.ts",
                row,
                self.flows.next_ts(),
                "outside_run: a flow dated before the first timestamp (add it to initial_cash)",
            ));
        }
        let amount = self.flows.take_due(ts);
        if amount < 0.0 && self.portfolio.cash() < -amount {
            if self.flows.shortfall == WithdrawalShortfall::Liquidate && !self.ruined {
                self.liquidate_for_withdrawal(data, ts, -amount, strategy)?;
            }
            let cash = self.portfolio.cash();
            if cash < -amount {
                return Err(BacktestError::data_at(
                    "flows.amount",
                    row,
                    ts,
                    format!(
                        "withdrawal_exceeds_cash: withdrawing {} with cash {cash}; \
                         account.on_withdrawal='liquidate' sells long positions at the open \
                         to raise it",
                        -amount
                    ),
                ));
            }
        }
        self.portfolio.adjust_cash(amount);
        self.record.financing.add_flow(ts, amount);
        Ok(())
    }

    /// Sells whole long positions that have a bar now, largest market value first (ties to the
    /// lower asset code), at this bar's open with slippage and commission, until the cash
    /// covers `needed`. Trades record `withdrawal`.
    fn liquidate_for_withdrawal<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        needed: f64,
        strategy: &mut S,
    ) -> Result<()> {
        let epoch = self.timestamps;
        while self.portfolio.cash() < needed {
            let value = |a: AssetId| self.portfolio.quantity(a) * self.portfolio.last_price(a);
            let largest = self
                .portfolio
                .open_assets()
                .iter()
                .copied()
                .filter(|&a| {
                    self.portfolio.quantity(a) > 0.0 && self.bar_epoch[a as usize] == epoch
                })
                .max_by(|&a, &b| value(a).total_cmp(&value(b)).then(b.cmp(&a)));
            let Some(asset) = largest else {
                return Ok(());
            };
            let quantity = -self.portfolio.quantity(asset);
            let row = self.bar_row[asset as usize];
            let reference = data.open()[row];
            let price = self.slipped_price(data, row, quantity, reference)?;
            if self.overflows(asset, quantity, price) {
                return Ok(());
            }
            let id = self.take_order_id();
            let order = Order {
                reason: ExitReason::Withdrawal,
                ..Order::market(id, asset, quantity, ts, epoch)
            };
            self.accept_direct(&order, ts, OrderOrigin::Withdrawal);
            let fill = self.book_fill(ts, &order, quantity, (price, reference), false, usize::MAX);
            self.after_fill(&order, &fill);
            strategy.on_fill(&fill, &self.portfolio)?;
        }
        Ok(())
    }

    /// The end-of-run check: a flow dated after the last timestamp never applied.
    pub(super) fn check_flows_done(&self) -> Result<()> {
        let next = self.flows.next_ts();
        if next == Ts::MAX {
            return Ok(());
        }
        Err(BacktestError::data_at(
            "flows.ts",
            self.flows.next_row(),
            next,
            "outside_run: a flow dated after the last timestamp of the data",
        ))
    }
}
