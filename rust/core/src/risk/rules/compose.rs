//! Composition: [`AnyOf`] (every triggered rule counts), [`RuleChain`] (the first triggered rule
//! wins), [`AllOf`] (only when every rule triggers), [`RegimeRule`] (a rule set picked by a
//! market feature) and [`ForAssets`] (a rule scoped to named assets).

use super::FeatureColumn;
use crate::error::{BacktestError, Result};
use crate::feed::MarketData;
use crate::risk::context::{OrderCheck, PositionView, RiskEnv};
use crate::risk::decision::{PositionPlan, RiskDecision};
use crate::risk::rule::{apply_verdict, BoxedRule, RiskRule};
use crate::types::AssetId;

/// The parts every composite forwards to all of its children.
macro_rules! forward_lifecycle {
    () => {
        fn bind(&mut self, data: &MarketData) -> Result<()> {
            self.rules.iter_mut().try_for_each(|r| r.bind(data))
        }
        fn start(&mut self, n_assets: usize) {
            self.rules.iter_mut().for_each(|r| r.start(n_assets));
        }
        fn on_split(&mut self, asset: AssetId, ratio: f64) {
            self.rules.iter_mut().for_each(|r| r.on_split(asset, ratio));
        }
        fn wants_timestamps(&self) -> bool {
            self.rules.iter().any(|r| r.wants_timestamps())
        }
        fn on_timestamp(&mut self, env: &RiskEnv) -> Result<()> {
            self.rules
                .iter_mut()
                .filter(|r| r.wants_timestamps())
                .try_for_each(|r| r.on_timestamp(env))
        }
    };
}

/// The flags of a composite that acts when any child does.
macro_rules! any_child_flags {
    () => {
        fn evaluates_positions(&self) -> bool {
            self.rules.iter().any(|r| r.evaluates_positions())
        }
        fn checks_orders(&self) -> bool {
            self.rules.iter().any(|r| r.checks_orders())
        }
    };
}

fn non_empty(name: &str, rules: &[BoxedRule]) -> Result<()> {
    if rules.is_empty() {
        return Err(BacktestError::risk(
            &format!("{name}.rules"),
            "needs at least one rule",
        ));
    }
    Ok(())
}

/// Every rule is evaluated and every decision counts (stops and targets merge: the tightest
/// stop, the nearest target). Orders pass the rules in turn, each seeing the size the previous
/// one left. This is how the top-level rule list behaves.
pub struct AnyOf {
    rules: Vec<BoxedRule>,
}

impl AnyOf {
    /// A group of `rules`.
    pub fn new(rules: Vec<BoxedRule>) -> Result<Self> {
        non_empty("any_of", &rules)?;
        Ok(AnyOf { rules })
    }

    /// A group that may be empty (a regime with no rules).
    pub(crate) fn maybe_empty(rules: Vec<BoxedRule>) -> Self {
        AnyOf { rules }
    }
}

/// Passes `order` through `rules` in turn; the combined verdict.
fn check_in_turn(
    rules: &mut [BoxedRule],
    env: &RiskEnv,
    order: &OrderCheck,
) -> Result<RiskDecision> {
    let mut current = *order;
    for rule in rules.iter_mut().filter(|r| r.checks_orders()) {
        let verdict = rule.check_order(env, &current)?;
        if !apply_verdict(&mut current, verdict) {
            return Ok(RiskDecision::Reject);
        }
    }
    Ok(if current.opening == order.opening {
        RiskDecision::Allow
    } else {
        RiskDecision::Resize(current.opening.abs())
    })
}

impl RiskRule for AnyOf {
    fn name(&self) -> &str {
        "any_of"
    }
    forward_lifecycle!();
    any_child_flags!();
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let mut triggered = false;
        for rule in &mut self.rules {
            triggered |= rule.evaluate(env, view, plan)?;
        }
        Ok(triggered)
    }
    fn evaluate_all(
        &mut self,
        env: &RiskEnv,
        positions: &[PositionView],
        plans: &mut [PositionPlan],
    ) -> Result<()> {
        for rule in self.rules.iter_mut().filter(|r| r.evaluates_positions()) {
            rule.evaluate_all(env, positions, plans)?;
        }
        Ok(())
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        check_in_turn(&mut self.rules, env, order)
    }
}

/// The first rule (in order) that triggers decides; the rest are not consulted.
pub struct RuleChain {
    rules: Vec<BoxedRule>,
}

impl RuleChain {
    /// A chain of `rules`.
    pub fn new(rules: Vec<BoxedRule>) -> Result<Self> {
        non_empty("rule_chain", &rules)?;
        Ok(RuleChain { rules })
    }
}

impl RiskRule for RuleChain {
    fn name(&self) -> &str {
        "rule_chain"
    }
    forward_lifecycle!();
    any_child_flags!();
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        for rule in self.rules.iter_mut().filter(|r| r.evaluates_positions()) {
            if rule.evaluate(env, view, plan)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        for rule in self.rules.iter_mut().filter(|r| r.checks_orders()) {
            let verdict = rule.check_order(env, order)?;
            if verdict.triggered() {
                return Ok(verdict);
            }
        }
        Ok(RiskDecision::Allow)
    }
}

/// Acts only when every rule triggers, and then with the first rule's decision (for example an
/// exit after 20 bars *and* only while the position is losing).
pub struct AllOf {
    rules: Vec<BoxedRule>,
}

impl AllOf {
    /// A conjunction of `rules`.
    pub fn new(rules: Vec<BoxedRule>) -> Result<Self> {
        non_empty("all_of", &rules)?;
        Ok(AllOf { rules })
    }
}

impl RiskRule for AllOf {
    fn name(&self) -> &str {
        "all_of"
    }
    forward_lifecycle!();
    fn evaluates_positions(&self) -> bool {
        self.rules.iter().all(|r| r.evaluates_positions())
    }
    fn checks_orders(&self) -> bool {
        self.rules.iter().all(|r| r.checks_orders())
    }
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let mut first = None;
        for rule in &mut self.rules {
            let mut own = PositionPlan::new(plan.side);
            if !rule.evaluate(env, view, &mut own)? {
                return Ok(false);
            }
            first.get_or_insert(own);
        }
        if let Some(first) = first {
            plan.merge(&first);
        }
        Ok(true)
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let mut first = RiskDecision::Allow;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let verdict = rule.check_order(env, order)?;
            if !verdict.triggered() {
                return Ok(RiskDecision::Allow);
            }
            if i == 0 {
                first = verdict;
            }
        }
        Ok(first)
    }
}

/// Picks a rule set by a market-wide feature at each timestamp: `above` while the feature is
/// `>= threshold`, `below` otherwise (and while it is missing). Example: with the VIX above 30,
/// halve sizes ([`super::ScaleSize`]) and use a tighter stop.
pub struct RegimeRule {
    feature: FeatureColumn,
    threshold: f64,
    above: AnyOf,
    below: AnyOf,
}

impl RegimeRule {
    /// See the type's documentation; either set may be empty.
    pub fn new(
        feature: impl Into<String>,
        threshold: f64,
        above: Vec<BoxedRule>,
        below: Vec<BoxedRule>,
    ) -> Result<Self> {
        if !threshold.is_finite() {
            return Err(BacktestError::risk(
                "regime.threshold",
                format!("must be finite, got {threshold}"),
            ));
        }
        if above.is_empty() && below.is_empty() {
            return Err(BacktestError::risk("regime", "needs rules above or below"));
        }
        Ok(RegimeRule {
            feature: FeatureColumn::new(feature),
            threshold,
            above: AnyOf::maybe_empty(above),
            below: AnyOf::maybe_empty(below),
        })
    }

    #[inline]
    fn active(&mut self, env: &RiskEnv) -> &mut AnyOf {
        if env.market_feature(self.feature.column()) >= self.threshold {
            &mut self.above
        } else {
            &mut self.below
        }
    }
}

impl RiskRule for RegimeRule {
    fn name(&self) -> &str {
        "regime"
    }
    fn bind(&mut self, data: &MarketData) -> Result<()> {
        self.feature.bind("regime", data)?;
        self.above.bind(data)?;
        self.below.bind(data)
    }
    fn start(&mut self, n_assets: usize) {
        self.above.start(n_assets);
        self.below.start(n_assets);
    }
    fn on_split(&mut self, asset: AssetId, ratio: f64) {
        self.above.on_split(asset, ratio);
        self.below.on_split(asset, ratio);
    }
    fn wants_timestamps(&self) -> bool {
        self.above.wants_timestamps() || self.below.wants_timestamps()
    }
    fn on_timestamp(&mut self, env: &RiskEnv) -> Result<()> {
        self.above.on_timestamp(env)?;
        self.below.on_timestamp(env)
    }
    fn evaluates_positions(&self) -> bool {
        self.above.evaluates_positions() || self.below.evaluates_positions()
    }
    fn checks_orders(&self) -> bool {
        self.above.checks_orders() || self.below.checks_orders()
    }
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        self.active(env).evaluate(env, view, plan)
    }
    fn evaluate_all(
        &mut self,
        env: &RiskEnv,
        positions: &[PositionView],
        plans: &mut [PositionPlan],
    ) -> Result<()> {
        self.active(env).evaluate_all(env, positions, plans)
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        self.active(env).check_order(env, order)
    }
}

/// A rule that applies only to the named assets (by id); other assets are never touched by it.
pub struct ForAssets {
    ids: Vec<AssetId>,
    in_scope: Vec<bool>,
    rule: BoxedRule,
    views: Vec<PositionView>,
    plans: Vec<PositionPlan>,
    slots: Vec<usize>,
}

impl ForAssets {
    /// `rule` scoped to `assets`.
    pub fn new(assets: Vec<AssetId>, rule: BoxedRule) -> Result<Self> {
        if assets.is_empty() {
            return Err(BacktestError::risk(
                &format!("{}.assets", rule.name()),
                "an asset scope needs at least one asset",
            ));
        }
        Ok(ForAssets {
            ids: assets,
            in_scope: Vec::new(),
            rule,
            views: Vec::new(),
            plans: Vec::new(),
            slots: Vec::new(),
        })
    }

    #[inline]
    fn covers(&self, asset: AssetId) -> bool {
        self.in_scope.get(asset as usize).copied().unwrap_or(false)
    }
}

impl RiskRule for ForAssets {
    fn name(&self) -> &str {
        self.rule.name()
    }
    fn bind(&mut self, data: &MarketData) -> Result<()> {
        self.rule.bind(data)
    }
    fn start(&mut self, n_assets: usize) {
        self.in_scope = vec![false; n_assets];
        for &id in &self.ids {
            if let Some(slot) = self.in_scope.get_mut(id as usize) {
                *slot = true;
            }
        }
        self.rule.start(n_assets);
    }
    fn on_split(&mut self, asset: AssetId, ratio: f64) {
        self.rule.on_split(asset, ratio);
    }
    fn wants_timestamps(&self) -> bool {
        self.rule.wants_timestamps()
    }
    fn on_timestamp(&mut self, env: &RiskEnv) -> Result<()> {
        self.rule.on_timestamp(env)
    }
    fn evaluates_positions(&self) -> bool {
        self.rule.evaluates_positions()
    }
    fn checks_orders(&self) -> bool {
        self.rule.checks_orders()
    }
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        if !self.covers(view.asset) {
            return Ok(false);
        }
        self.rule.evaluate(env, view, plan)
    }
    fn evaluate_all(
        &mut self,
        env: &RiskEnv,
        positions: &[PositionView],
        plans: &mut [PositionPlan],
    ) -> Result<()> {
        self.views.clear();
        self.plans.clear();
        self.slots.clear();
        for (slot, view) in positions.iter().enumerate() {
            if self.covers(view.asset) {
                self.views.push(*view);
                self.plans.push(plans[slot]);
                self.slots.push(slot);
            }
        }
        if self.views.is_empty() {
            return Ok(());
        }
        self.rule.evaluate_all(env, &self.views, &mut self.plans)?;
        for (k, &slot) in self.slots.iter().enumerate() {
            plans[slot] = self.plans[k];
        }
        Ok(())
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        if !self.covers(order.asset) {
            return Ok(RiskDecision::Allow);
        }
        self.rule.check_order(env, order)
    }
}
