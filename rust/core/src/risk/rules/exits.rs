//! Position exits: stop-loss, take-profit, trailing stop, time exit, breakeven stop, scaled
//! profit-taking. Each recomputes its level from the position state at every bar's close; the
//! level is live for the next bar.

use super::{fraction, positive, FeatureColumn};
use crate::error::{BacktestError, Result};
use crate::feed::MarketData;
use crate::orders::Trail;
use crate::risk::context::{PositionView, RiskEnv};
use crate::risk::decision::{PositionPlan, RiskDecision};
use crate::risk::rule::RiskRule;
use crate::types::{AssetId, ExitReason, Ts};

/// How far a level lies from its reference price.
#[derive(Debug, Clone, PartialEq)]
pub enum Distance {
    /// A fraction of the reference price (0.02 = 2%).
    Percent(f64),
    /// A price amount.
    Absolute(f64),
    /// `multiple ×` a per-asset feature (an ATR or a volatility in price units), taken at the
    /// position's first evaluation (the entry bar's close) and fixed for the trade.
    Feature {
        /// The feature column.
        feature: FeatureColumn,
        /// The multiple.
        multiple: f64,
    },
}

impl Distance {
    /// A distance as a fraction of the reference price.
    pub fn percent(value: f64) -> Self {
        Distance::Percent(value)
    }

    /// `multiple ×` feature `name`.
    pub fn feature(name: impl Into<String>, multiple: f64) -> Self {
        Distance::Feature {
            feature: FeatureColumn::new(name),
            multiple,
        }
    }

    fn validate(&self, rule: &str, max_percent: Option<f64>) -> Result<()> {
        match self {
            Distance::Percent(p) => {
                positive(rule, "pct", *p)?;
                if let Some(max) = max_percent {
                    if *p >= max {
                        return Err(BacktestError::risk(
                            &format!("{rule}.pct"),
                            format!("must be < {max}, got {p}"),
                        ));
                    }
                }
                Ok(())
            }
            Distance::Absolute(a) => positive(rule, "amount", *a).map(drop),
            Distance::Feature { multiple, .. } => positive(rule, "multiple", *multiple).map(drop),
        }
    }

    fn bind(&mut self, rule: &str, data: &MarketData) -> Result<()> {
        match self {
            Distance::Feature { feature, .. } => feature.bind(rule, data),
            _ => Ok(()),
        }
    }
}

/// The parts of [`RiskRule`] every rule with a `distance: FixedDistance` shares: its name, the
/// feature binding, the per-asset state and the position flag.
macro_rules! distance_rule_lifecycle {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }
        fn bind(&mut self, data: &MarketData) -> Result<()> {
            self.distance.distance.bind($name, data)
        }
        fn start(&mut self, n_assets: usize) {
            self.distance.start(n_assets);
        }
        fn on_split(&mut self, asset: AssetId, ratio: f64) {
            self.distance.split(asset, ratio);
        }
        fn evaluates_positions(&self) -> bool {
            true
        }
    };
}

/// A [`Distance`] with the per-asset feature value it fixed at entry.
#[derive(Debug, Clone)]
struct FixedDistance {
    distance: Distance,
    fixed: Vec<f64>,
}

impl FixedDistance {
    fn new(distance: Distance) -> Self {
        FixedDistance {
            distance,
            fixed: Vec::new(),
        }
    }

    fn start(&mut self, n_assets: usize) {
        if matches!(self.distance, Distance::Feature { .. }) {
            self.fixed = vec![f64::NAN; n_assets];
        }
    }

    /// Restates the feature distance fixed for `asset` (a price amount) after a split.
    fn split(&mut self, asset: AssetId, ratio: f64) {
        if let Some(slot) = self.fixed.get_mut(asset as usize) {
            *slot /= ratio;
        }
    }

    /// The distance in price units from `reference` (NaN while a feature has no finite,
    /// positive value since entry: no level yet).
    #[inline]
    fn amount(&mut self, env: &RiskEnv, view: &PositionView, reference: f64) -> f64 {
        match &self.distance {
            Distance::Percent(p) => p * reference,
            Distance::Absolute(a) => *a,
            Distance::Feature { feature, multiple } => {
                let slot = &mut self.fixed[view.asset as usize];
                if view.state.evaluations == 0 {
                    *slot = f64::NAN;
                }
                if slot.is_nan() {
                    let v = env.feature(feature.column(), Some(view.row));
                    if v.is_finite() && v > 0.0 {
                        *slot = v;
                    }
                }
                multiple * *slot
            }
        }
    }
}

/// Exits when the price moves a [`Distance`] against the position from its basis price
/// (`docs/risk.md`: fill price or signal close). Trades record `stop_loss`.
#[derive(Debug, Clone)]
pub struct StopLoss {
    distance: FixedDistance,
}

impl StopLoss {
    /// A stop-loss `distance` below a long's basis (above a short's).
    pub fn new(distance: Distance) -> Result<Self> {
        distance.validate("stop_loss", Some(1.0))?;
        Ok(StopLoss {
            distance: FixedDistance::new(distance),
        })
    }
}

impl RiskRule for StopLoss {
    distance_rule_lifecycle!("stop_loss");
    #[inline]
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        let amount = self.distance.amount(env, view, state.basis_price);
        let decision = RiskDecision::Stop {
            level: state.basis_price - state.side() * amount,
            reason: ExitReason::StopLoss,
        };
        plan.apply(decision);
        Ok(amount.is_finite())
    }
}

/// Exits when the price moves a [`Distance`] in the position's favour from its basis price.
/// Trades record `take_profit`.
#[derive(Debug, Clone)]
pub struct TakeProfit {
    distance: FixedDistance,
}

impl TakeProfit {
    /// A target `distance` above a long's basis (below a short's).
    pub fn new(distance: Distance) -> Result<Self> {
        distance.validate("take_profit", None)?;
        Ok(TakeProfit {
            distance: FixedDistance::new(distance),
        })
    }
}

impl RiskRule for TakeProfit {
    distance_rule_lifecycle!("take_profit");
    #[inline]
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        let amount = self.distance.amount(env, view, state.basis_price);
        plan.apply(RiskDecision::Target {
            level: state.basis_price + state.side() * amount,
            fraction: 1.0,
            reason: ExitReason::TakeProfit,
        });
        Ok(amount.is_finite())
    }
}

/// Which prices move a trailing stop's water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailMark {
    /// Closes.
    Close,
    /// Bar highs (longs) and lows (shorts).
    Extreme,
}

/// When a trailing stop's level follows the water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailUpdate {
    /// At each close, for the next bar (the level inside a bar never moves).
    Lagged,
    /// Inside the bar too, along its price path (open, extremes, close): a new high can lift
    /// the level before a later low in the same bar reaches it.
    Intrabar,
}

/// A stop that trails the best price since entry by a [`Distance`]. Trades record
/// `trailing_stop`.
#[derive(Debug, Clone)]
pub struct TrailingStop {
    distance: FixedDistance,
    mark: TrailMark,
    update: TrailUpdate,
}

impl TrailingStop {
    /// A trailing stop; intrabar updates need the `Extreme` mark (the path has no closes).
    pub fn new(distance: Distance, mark: TrailMark, update: TrailUpdate) -> Result<Self> {
        distance.validate("trailing_stop", Some(1.0))?;
        if update == TrailUpdate::Intrabar && mark == TrailMark::Close {
            return Err(BacktestError::risk(
                "trailing_stop.mark",
                "intrabar updates follow the bar's extremes: use mark='extreme' with \
                 update='intrabar'",
            ));
        }
        Ok(TrailingStop {
            distance: FixedDistance::new(distance),
            mark,
            update,
        })
    }
}

impl RiskRule for TrailingStop {
    distance_rule_lifecycle!("trailing_stop");
    #[inline]
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        let long = state.quantity > 0.0;
        let water = match (self.mark, long) {
            (TrailMark::Close, true) => state.high_close,
            (TrailMark::Close, false) => state.low_close,
            (TrailMark::Extreme, true) => state.high_water,
            (TrailMark::Extreme, false) => state.low_water,
        };
        let reason = ExitReason::TrailingStop;
        if self.update == TrailUpdate::Intrabar {
            let trail = match self.distance.distance {
                Distance::Percent(p) => Trail::Percent(p),
                _ => Trail::Amount(self.distance.amount(env, view, water)),
            };
            let valid = match trail {
                Trail::Percent(_) => true,
                Trail::Amount(a) => a.is_finite(),
            };
            if valid {
                plan.apply(RiskDecision::Trail { trail, reason });
            }
            return Ok(valid);
        }
        let amount = self.distance.amount(env, view, water);
        plan.apply(RiskDecision::Stop {
            level: water - state.side() * amount,
            reason,
        });
        Ok(amount.is_finite())
    }
}

/// Exits a position held `max_bars` of its asset's bars, for `max_duration` nanoseconds, or
/// `max_sessions` trading sessions (sessions begun since the entry's, with a calendar), at the
/// next fill opportunity. Trades record `time_exit`.
#[derive(Debug, Clone)]
pub struct TimeExit {
    max_bars: Option<u64>,
    max_duration: Option<i64>,
    max_sessions: Option<u64>,
}

impl TimeExit {
    /// At least one of the two limits must be given; both must be positive.
    pub fn new(max_bars: Option<u64>, max_duration: Option<i64>) -> Result<Self> {
        Self::with_sessions(max_bars, max_duration, None)
    }

    /// [`TimeExit::new`] with a limit in trading sessions too (the run needs a calendar); at
    /// least one of the three must be given, each positive.
    pub fn with_sessions(
        max_bars: Option<u64>,
        max_duration: Option<i64>,
        max_sessions: Option<u64>,
    ) -> Result<Self> {
        if max_sessions == Some(0) {
            return Err(BacktestError::risk(
                "time_exit.max_sessions",
                "must be >= 1, got 0",
            ));
        }
        if max_bars.is_none() && max_duration.is_none() && max_sessions.is_none() {
            return Err(BacktestError::risk(
                "time_exit",
                "give max_bars, max_duration or max_sessions",
            ));
        }
        if max_bars == Some(0) {
            return Err(BacktestError::risk(
                "time_exit.max_bars",
                "must be >= 1, got 0",
            ));
        }
        if let Some(d) = max_duration {
            if d <= 0 {
                return Err(BacktestError::risk(
                    "time_exit.max_duration",
                    format!("must be > 0, got {d} ns"),
                ));
            }
        }
        Ok(TimeExit {
            max_bars,
            max_duration,
            max_sessions,
        })
    }
}

impl RiskRule for TimeExit {
    fn name(&self) -> &str {
        "time_exit"
    }
    fn evaluates_positions(&self) -> bool {
        true
    }
    #[inline]
    fn evaluate(
        &mut self,
        env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        let by_bars = self.max_bars.is_some_and(|n| state.bars_held >= n);
        let by_time = self
            .max_duration
            .is_some_and(|d| env.ts.saturating_sub(state.entry_ts) >= d);
        let mut by_sessions = false;
        if let Some(n) = self.max_sessions {
            let closes = env.session_closes;
            if closes.is_empty() {
                return Err(BacktestError::risk(
                    "time_exit.max_sessions",
                    "counts trading sessions: the run needs a calendar (BacktestConfig(calendar=...) \
                     or Backtest(..., sessions=frame))",
                ));
            }
            // A timestamp's session is the number of sessions closed before it.
            let session = |ts: Ts| closes.partition_point(|&close| close < ts) as u64;
            by_sessions = session(env.ts) - session(state.entry_ts) >= n;
        }
        if by_bars || by_time || by_sessions {
            plan.apply(RiskDecision::Exit {
                fraction: 1.0,
                reason: ExitReason::TimeExit,
            });
            return Ok(true);
        }
        Ok(false)
    }
}

/// Once the trade's best return (MFE) reaches `trigger`, a stop at the entry price moved
/// `offset` in the position's favour (0: exactly breakeven). Trades record `stop_loss`.
#[derive(Debug, Clone)]
pub struct BreakevenStop {
    trigger: f64,
    offset: f64,
}

impl BreakevenStop {
    /// `trigger` > 0 and `0 <= offset < trigger` (fractions of the entry price).
    pub fn new(trigger: f64, offset: f64) -> Result<Self> {
        positive("breakeven_stop", "trigger", trigger)?;
        if !(offset.is_finite() && offset >= 0.0 && offset < trigger) {
            return Err(BacktestError::risk(
                "breakeven_stop.offset",
                format!("must be in [0, trigger={trigger}), got {offset}"),
            ));
        }
        Ok(BreakevenStop { trigger, offset })
    }
}

impl RiskRule for BreakevenStop {
    fn name(&self) -> &str {
        "breakeven_stop"
    }
    fn evaluates_positions(&self) -> bool {
        true
    }
    #[inline]
    fn evaluate(
        &mut self,
        _env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        if state.mfe < self.trigger {
            return Ok(false);
        }
        plan.apply(RiskDecision::Stop {
            level: state.entry_price * (1.0 + state.side() * self.offset),
            reason: ExitReason::StopLoss,
        });
        Ok(true)
    }
}

/// Partial profit-taking: at each `(gain, fraction)` level in turn (gains ascending, fractions of
/// the position held when the level fills; the last is usually 1.0). Trades record
/// `take_profit`.
#[derive(Debug, Clone)]
pub struct ScaledExit {
    levels: Vec<(f64, f64)>,
}

impl ScaledExit {
    /// Levels as `(gain from the basis price, fraction to exit)`.
    pub fn new(levels: Vec<(f64, f64)>) -> Result<Self> {
        if levels.is_empty() {
            return Err(BacktestError::risk(
                "scaled_exit.levels",
                "needs at least one level",
            ));
        }
        let mut previous = 0.0;
        for (i, &(gain, share)) in levels.iter().enumerate() {
            positive("scaled_exit", &format!("levels[{i}].gain"), gain)?;
            fraction("scaled_exit", &format!("levels[{i}].fraction"), share)?;
            if gain <= previous {
                return Err(BacktestError::risk(
                    &format!("scaled_exit.levels[{i}].gain"),
                    format!("gains must increase, got {gain} after {previous}"),
                ));
            }
            previous = gain;
        }
        Ok(ScaledExit { levels })
    }
}

impl RiskRule for ScaledExit {
    fn name(&self) -> &str {
        "scaled_exit"
    }
    fn evaluates_positions(&self) -> bool {
        true
    }
    #[inline]
    fn evaluate(
        &mut self,
        _env: &RiskEnv,
        view: &PositionView,
        plan: &mut PositionPlan,
    ) -> Result<bool> {
        let state = &view.state;
        let Some(&(gain, share)) = self.levels.get(state.target_exits as usize) else {
            return Ok(false);
        };
        plan.apply(RiskDecision::Target {
            level: state.basis_offset(gain),
            fraction: share,
            reason: ExitReason::TakeProfit,
        });
        Ok(true)
    }
}
