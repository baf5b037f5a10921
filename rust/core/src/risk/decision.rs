//! What a rule decides, and how the decisions of several rules on one position combine.

use crate::orders::Trail;
use crate::types::ExitReason;

/// One rule's decision about a position or an order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RiskDecision {
    /// Nothing to do.
    Allow,
    /// Pre-trade: refuse the order's opening part.
    Reject,
    /// Pre-trade: cut the order's opening part to this many shares (absolute, >= 0).
    Resize(f64),
    /// Position: exit `fraction` (0, 1] of it at the next fill opportunity (the next open, or
    /// this close in same-close mode).
    Exit {
        /// Fraction of the position.
        fraction: f64,
        /// Recorded on the trade.
        reason: ExitReason,
    },
    /// Position: a protective stop at `level` from the next bar (fills at the level, or at the
    /// open when the bar gaps through it).
    Stop {
        /// Price level.
        level: f64,
        /// Recorded on the trade.
        reason: ExitReason,
    },
    /// Position: a trailing stop that follows the water mark *inside* the next bar.
    Trail {
        /// Distance from the water mark.
        trail: Trail,
        /// Recorded on the trade.
        reason: ExitReason,
    },
    /// Position: a profit target at `level` that exits `fraction` of the position.
    Target {
        /// Price level.
        level: f64,
        /// Fraction (0, 1] of the position held when it fills.
        fraction: f64,
        /// Recorded on the trade.
        reason: ExitReason,
    },
}

impl RiskDecision {
    /// Whether the rule did anything.
    #[inline]
    pub fn triggered(&self) -> bool {
        !matches!(self, RiskDecision::Allow)
    }
}

/// The merged decisions of all rules for one position at one bar: the levels live for the
/// next bar and an exit to queue now.
///
/// Merging: the tightest stop wins (the highest for a long; at equal levels the reason seen
/// first, so rule order breaks ties), the nearest target wins, the largest exit fraction wins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionPlan {
    /// +1 long, −1 short (decides which stop is tighter).
    pub side: f64,
    /// Stop level (NaN: none).
    pub stop: f64,
    /// Reason of the stop.
    pub stop_reason: ExitReason,
    /// Intrabar trailing stop.
    pub trail: Option<(Trail, ExitReason)>,
    /// Target level (NaN: none).
    pub target: f64,
    /// Fraction the target exits.
    pub target_fraction: f64,
    /// Reason of the target.
    pub target_reason: ExitReason,
    /// Fraction to exit now (0: none).
    pub exit_fraction: f64,
    /// Reason of the exit.
    pub exit_reason: ExitReason,
}

impl PositionPlan {
    /// An empty plan for a position of sign `side`.
    pub fn new(side: f64) -> Self {
        PositionPlan {
            side,
            stop: f64::NAN,
            stop_reason: ExitReason::StopLoss,
            trail: None,
            target: f64::NAN,
            target_fraction: 1.0,
            target_reason: ExitReason::TakeProfit,
            exit_fraction: 0.0,
            exit_reason: ExitReason::RiskLimit,
        }
    }

    /// Whether any level is set.
    #[inline]
    pub fn has_levels(&self) -> bool {
        !self.stop.is_nan() || self.trail.is_some() || !self.target.is_nan()
    }

    /// Folds `decision` in. Pre-trade decisions are ignored here.
    #[inline]
    pub fn apply(&mut self, decision: RiskDecision) {
        match decision {
            RiskDecision::Allow | RiskDecision::Reject | RiskDecision::Resize(_) => {}
            RiskDecision::Exit { fraction, reason } => {
                if fraction > self.exit_fraction {
                    self.exit_fraction = fraction.min(1.0);
                    self.exit_reason = reason;
                }
            }
            RiskDecision::Stop { level, reason } => {
                if level.is_finite()
                    && (self.stop.is_nan() || self.side * (level - self.stop) > 0.0)
                {
                    self.stop = level;
                    self.stop_reason = reason;
                }
            }
            RiskDecision::Trail { trail, reason } => {
                let tighter = match (self.trail, trail) {
                    (None, _) => true,
                    (Some((Trail::Percent(a), _)), Trail::Percent(b)) => b < a,
                    (Some((Trail::Amount(a), _)), Trail::Amount(b)) => b < a,
                    _ => false, // different kinds: the first one stays
                };
                if tighter {
                    self.trail = Some((trail, reason));
                }
            }
            RiskDecision::Target {
                level,
                fraction,
                reason,
            } => {
                if level.is_finite()
                    && (self.target.is_nan() || self.side * (level - self.target) < 0.0)
                {
                    self.target = level;
                    self.target_fraction = fraction.clamp(0.0, 1.0);
                    self.target_reason = reason;
                }
            }
        }
    }

    /// Folds every part of `other` in.
    pub fn merge(&mut self, other: &PositionPlan) {
        if !other.stop.is_nan() {
            self.apply(RiskDecision::Stop {
                level: other.stop,
                reason: other.stop_reason,
            });
        }
        if let Some((trail, reason)) = other.trail {
            self.apply(RiskDecision::Trail { trail, reason });
        }
        if !other.target.is_nan() {
            self.apply(RiskDecision::Target {
                level: other.target,
                fraction: other.target_fraction,
                reason: other.target_reason,
            });
        }
        if other.exit_fraction > 0.0 {
            self.apply(RiskDecision::Exit {
                fraction: other.exit_fraction,
                reason: other.exit_reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightest_stop_and_nearest_target_win() {
        let mut long = PositionPlan::new(1.0);
        long.apply(RiskDecision::Stop {
            level: 95.0,
            reason: ExitReason::StopLoss,
        });
        long.apply(RiskDecision::Stop {
            level: 97.0,
            reason: ExitReason::TrailingStop,
        });
        long.apply(RiskDecision::Stop {
            level: 96.0,
            reason: ExitReason::StopLoss,
        });
        long.apply(RiskDecision::Target {
            level: 110.0,
            fraction: 1.0,
            reason: ExitReason::TakeProfit,
        });
        long.apply(RiskDecision::Target {
            level: 105.0,
            fraction: 0.5,
            reason: ExitReason::TakeProfit,
        });
        assert_eq!(
            (long.stop, long.stop_reason),
            (97.0, ExitReason::TrailingStop)
        );
        assert_eq!((long.target, long.target_fraction), (105.0, 0.5));
        let mut short = PositionPlan::new(-1.0);
        short.apply(RiskDecision::Stop {
            level: 105.0,
            reason: ExitReason::StopLoss,
        });
        short.apply(RiskDecision::Stop {
            level: 103.0,
            reason: ExitReason::StopLoss,
        });
        assert_eq!(short.stop, 103.0);
    }

    #[test]
    fn equal_stops_keep_the_first_reason_and_exits_keep_the_largest() {
        let mut plan = PositionPlan::new(1.0);
        plan.apply(RiskDecision::Stop {
            level: 97.0,
            reason: ExitReason::StopLoss,
        });
        plan.apply(RiskDecision::Stop {
            level: 97.0,
            reason: ExitReason::TrailingStop,
        });
        assert_eq!(plan.stop_reason, ExitReason::StopLoss);
        plan.apply(RiskDecision::Exit {
            fraction: 0.5,
            reason: ExitReason::TimeExit,
        });
        plan.apply(RiskDecision::Exit {
            fraction: 1.0,
            reason: ExitReason::RiskLimit,
        });
        assert_eq!(
            (plan.exit_fraction, plan.exit_reason),
            (1.0, ExitReason::RiskLimit)
        );
    }
}
