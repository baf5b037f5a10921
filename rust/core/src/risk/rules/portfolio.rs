//! Portfolio halts: a drawdown kill switch and a daily loss limit. Both block new entries once
//! tripped and can also liquidate every position (trades record `risk_limit`).

use super::fraction;
use crate::error::Result;
use crate::risk::context::{OrderCheck, PositionView, RiskEnv};
use crate::risk::decision::{PositionPlan, RiskDecision};
use crate::risk::rule::RiskRule;
use crate::types::ExitReason;

fn liquidate(plan: &mut PositionPlan) -> Result<bool> {
    plan.apply(RiskDecision::Exit {
        fraction: 1.0,
        reason: ExitReason::RiskLimit,
    });
    Ok(true)
}

/// Once the drawdown from the equity peak (at a close) reaches `max_drawdown`, rejects every
/// new entry for the rest of the run and, with `liquidate`, exits every position.
#[derive(Debug, Clone)]
pub struct MaxDrawdownHalt {
    max_drawdown: f64,
    liquidate: bool,
    halted: bool,
}

impl MaxDrawdownHalt {
    /// `max_drawdown` in (0, 1].
    pub fn new(max_drawdown: f64, liquidate: bool) -> Result<Self> {
        fraction("max_drawdown_halt", "max_drawdown", max_drawdown)?;
        Ok(MaxDrawdownHalt {
            max_drawdown,
            liquidate,
            halted: false,
        })
    }
}

impl RiskRule for MaxDrawdownHalt {
    fn name(&self) -> &str {
        "max_drawdown_halt"
    }
    fn wants_timestamps(&self) -> bool {
        true
    }
    fn on_timestamp(&mut self, env: &RiskEnv) -> Result<()> {
        self.halted |= env.portfolio.drawdown() >= self.max_drawdown;
        Ok(())
    }
    fn evaluates_positions(&self) -> bool {
        self.liquidate
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn evaluate(
        &mut self,
        _env: &RiskEnv,
        _view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        if self.halted && self.liquidate {
            return liquidate(plan);
        }
        Ok(false)
    }
    fn check_order(&mut self, _env: &RiskEnv, _order: &OrderCheck) -> Result<RiskDecision> {
        Ok(if self.halted {
            RiskDecision::Reject
        } else {
            RiskDecision::Allow
        })
    }
}

/// Once equity has lost `max_loss` of the day's starting equity (UTC days), rejects new entries
/// until the next day and, with `liquidate`, exits every position.
#[derive(Debug, Clone)]
pub struct DailyLossLimit {
    max_loss: f64,
    liquidate: bool,
    halted_day: Option<i64>,
}

impl DailyLossLimit {
    /// `max_loss` in (0, 1].
    pub fn new(max_loss: f64, liquidate: bool) -> Result<Self> {
        fraction("daily_loss_limit", "max_loss", max_loss)?;
        Ok(DailyLossLimit {
            max_loss,
            liquidate,
            halted_day: None,
        })
    }

    fn halted(&self, env: &RiskEnv) -> bool {
        self.halted_day == Some(env.portfolio.day)
    }
}

impl RiskRule for DailyLossLimit {
    fn name(&self) -> &str {
        "daily_loss_limit"
    }
    fn wants_timestamps(&self) -> bool {
        true
    }
    fn on_timestamp(&mut self, env: &RiskEnv) -> Result<()> {
        let p = env.portfolio;
        if p.day_start_equity > 0.0 && 1.0 - p.equity / p.day_start_equity >= self.max_loss {
            self.halted_day = Some(p.day);
        }
        Ok(())
    }
    fn evaluates_positions(&self) -> bool {
        self.liquidate
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        _view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        if self.liquidate && self.halted(env) {
            return liquidate(plan);
        }
        Ok(false)
    }
    fn check_order(&mut self, env: &RiskEnv, _order: &OrderCheck) -> Result<RiskDecision> {
        Ok(if self.halted(env) {
            RiskDecision::Reject
        } else {
            RiskDecision::Allow
        })
    }
}
