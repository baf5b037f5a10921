//! Capital flows: deposits (+) and withdrawals (−) of cash, each dated, as one small table in
//! time order. The engine applies a flow at the start of the first timestamp at or after its
//! date, after financing and corporate actions and before any fill (`docs/semantics.md`,
//! *Capital flows*).

use crate::error::{BacktestError, Result};
use crate::types::Ts;

/// One deposit or withdrawal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapitalFlow {
    /// When (engine nanoseconds): the flow applies at the first timestamp `>=` it.
    pub ts: Ts,
    /// Cash added (> 0, a deposit) or taken out (< 0, a withdrawal).
    pub amount: f64,
}

/// What a withdrawal larger than the cash held does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WithdrawalShortfall {
    /// Stop the run with a `DataValidation` error naming the flow (the default).
    #[default]
    Error,
    /// Sell whole long positions at the timestamp's open, largest first, until the cash covers
    /// it (an error still when they do not suffice).
    Liquidate,
}

/// A run's capital flows, strictly increasing in time, with a cursor at the first one not yet
/// applied.
#[derive(Debug, Clone, Default)]
pub struct CapitalFlows {
    flows: Vec<CapitalFlow>,
    next: usize,
    /// What a withdrawal beyond the cash held does.
    pub shortfall: WithdrawalShortfall,
}

impl CapitalFlows {
    /// Checks and keeps `flows`: each amount finite, timestamps strictly increasing (one flow
    /// per timestamp: sum the flows of one date first). Errors name the row
    /// (`flows.amount: not_finite: ...`).
    pub fn new(flows: Vec<CapitalFlow>, shortfall: WithdrawalShortfall) -> Result<Self> {
        for (row, flow) in flows.iter().enumerate() {
            if !flow.amount.is_finite() {
                return Err(BacktestError::data(
                    "flows.amount",
                    row,
                    format!("not_finite: must be finite, got {}", flow.amount),
                ));
            }
            if row > 0 && flows[row - 1].ts >= flow.ts {
                return Err(BacktestError::data(
                    "flows.ts",
                    row,
                    "sort_order: rows must be strictly increasing in time (one flow per \
                     timestamp)",
                ));
            }
        }
        Ok(CapitalFlows {
            flows,
            next: 0,
            shortfall,
        })
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The date of the next flow not yet applied (`Ts::MAX` when none is left): the loop's one
    /// comparison per timestamp.
    #[inline]
    pub fn next_ts(&self) -> Ts {
        self.flows.get(self.next).map_or(Ts::MAX, |f| f.ts)
    }

    /// The position of the next flow not yet applied (its row in the table).
    #[inline]
    pub fn next_row(&self) -> usize {
        self.next
    }

    /// Takes the flows due at timestamp `ts` (dated at or before it), moving past them, and
    /// returns their sum.
    pub fn take_due(&mut self, ts: Ts) -> f64 {
        let mut total = 0.0;
        while self.next < self.flows.len() && self.flows[self.next].ts <= ts {
            total += self.flows[self.next].amount;
            self.next += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(ts: Ts, amount: f64) -> CapitalFlow {
        CapitalFlow { ts, amount }
    }

    #[test]
    fn flows_are_checked_and_summed_when_due() {
        let mut table =
            CapitalFlows::new(vec![flow(5, 100.0), flow(7, -30.0)], Default::default()).unwrap();
        assert_eq!(table.next_ts(), 5);
        assert_eq!(table.take_due(4), 0.0);
        assert_eq!(table.take_due(9), 70.0);
        assert_eq!(table.next_ts(), Ts::MAX);
        assert_eq!(table.next_row(), 2);
        for (bad, column) in [
            (vec![flow(1, f64::NAN)], "flows.amount"),
            (vec![flow(1, 1.0), flow(1, 2.0)], "flows.ts"),
            (vec![flow(2, 1.0), flow(1, 2.0)], "flows.ts"),
        ] {
            let err = CapitalFlows::new(bad, WithdrawalShortfall::Error)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("'{column}'")), "{err}");
        }
    }
}
