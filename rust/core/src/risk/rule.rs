//! The [`RiskRule`] trait: position rules after marking, pre-trade checks on new orders.

use super::context::{OrderCheck, PositionView, RiskEnv};
use super::decision::{PositionPlan, RiskDecision};
use crate::error::Result;
use crate::feed::MarketData;
use crate::types::AssetId;

/// A risk rule. A rule may act on open positions (levels and exits, after marking), on new
/// orders (accept, resize, reject, before they are queued), or both.
///
/// Rules are evaluated in the order they were given; see `docs/risk.md` for how the decisions of
/// several rules combine.
pub trait RiskRule: Send {
    /// Short name used in error messages, e.g. `stop_loss`.
    fn name(&self) -> &str;

    /// Resolves the feature columns the rule reads in a new chunk. A missing feature is a
    /// [`crate::BacktestError::Risk`] naming the rule and the feature.
    fn bind(&mut self, _data: &MarketData) -> Result<()> {
        Ok(())
    }

    /// Called once before the first bar with the universe size (to size per-asset state).
    fn start(&mut self, _n_assets: usize) {}

    /// A split of `ratio` new shares per old one of `asset` took effect: a rule that keeps a
    /// per-asset price amount (a distance fixed at entry) divides it by `ratio`. The manager
    /// restates the position's basis, water marks and live levels itself.
    fn on_split(&mut self, _asset: AssetId, _ratio: f64) {}

    /// Whether [`Self::on_timestamp`] does anything (the manager skips the call otherwise).
    fn wants_timestamps(&self) -> bool {
        false
    }

    /// Called once per timestamp, after marking and before any evaluation (portfolio halts
    /// update here), when [`Self::wants_timestamps`].
    fn on_timestamp(&mut self, _env: &RiskEnv) -> Result<()> {
        Ok(())
    }

    /// Whether the rule acts on open positions (the engine skips the position step otherwise).
    fn evaluates_positions(&self) -> bool {
        false
    }

    /// Whether the rule checks new orders.
    fn checks_orders(&self) -> bool {
        false
    }

    /// Decides about one open position, folding its decision into `plan`. Returns whether it
    /// triggered (decided anything but allow).
    fn evaluate(
        &mut self,
        _env: &RiskEnv,
        _position: &PositionView,
        _plan: &mut PositionPlan,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Decides about every open position with a bar at this timestamp at once; the default
    /// calls [`Self::evaluate`] per position. A rule backed by a slow call (Python) overrides it
    /// to make one call per timestamp.
    fn evaluate_all(
        &mut self,
        env: &RiskEnv,
        positions: &[PositionView],
        plans: &mut [PositionPlan],
    ) -> Result<()> {
        // An index loop: a zip's set-up costs more than the work for one or two positions.
        let n = positions.len().min(plans.len());
        for i in 0..n {
            self.evaluate(env, &positions[i], &mut plans[i])?;
        }
        Ok(())
    }

    /// Checks the opening part of a new order: [`RiskDecision::Allow`],
    /// [`RiskDecision::Resize`] or [`RiskDecision::Reject`].
    fn check_order(&mut self, _env: &RiskEnv, _order: &OrderCheck) -> Result<RiskDecision> {
        Ok(RiskDecision::Allow)
    }
}

/// A boxed rule, as the manager and the composites hold them.
pub type BoxedRule = Box<dyn RiskRule>;

/// Applies the verdict of a pre-trade check to `order` (shrinking or growing its opening part).
/// Returns false when the order is rejected.
pub fn apply_verdict(order: &mut OrderCheck, verdict: RiskDecision) -> bool {
    match verdict {
        RiskDecision::Reject => false,
        RiskDecision::Resize(shares) => {
            if !(shares.is_finite() && shares > 0.0) {
                return false;
            }
            order.opening = shares * order.opening.signum();
            true
        }
        _ => true,
    }
}
