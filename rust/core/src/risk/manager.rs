//! The [`RiskManager`]: per-position tracking (basis price, water marks), the portfolio state
//! the rules see, the position step after marking and the pre-trade checks.

use super::context::{OrderCheck, PortfolioState, PositionState, PositionView, RiskEnv};
use super::decision::PositionPlan;
use super::rule::{apply_verdict, BoxedRule};
use crate::config::StopBasis;
use crate::error::Result;
use crate::feed::MarketData;
use crate::orders::Trail;
use crate::types::{AssetId, Ts};

const DAY_NS: i64 = 86_400_000_000_000;

/// What the manager remembers about one asset's open position.
#[derive(Debug, Clone, Copy)]
struct Track {
    active: bool,
    basis: f64,
    high_water: f64,
    low_water: f64,
    high_close: f64,
    low_close: f64,
    evaluations: u64,
    target_exits: u32,
    /// Counts the positions this asset has opened (tells a position from a later one).
    opened: u64,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            active: false,
            basis: f64::NAN,
            high_water: f64::NAN,
            low_water: f64::NAN,
            high_close: f64::NAN,
            low_close: f64::NAN,
            evaluations: 0,
            target_exits: 0,
            opened: 0,
        }
    }
}

/// The position facts the engine owns (portfolio and trade tracker), for one view.
#[derive(Debug, Clone, Copy)]
pub struct HeldPosition {
    /// Asset.
    pub asset: AssetId,
    /// Row of its bar now.
    pub row: usize,
    /// Signed shares.
    pub quantity: f64,
    /// Average entry price.
    pub entry_price: f64,
    /// This bar's close.
    pub close: f64,
    /// First entry fill of the open trade.
    pub entry_ts: Ts,
    /// Bars since the entry bar.
    pub bars_held: u64,
    /// MFE and MAE of the open trade.
    pub mfe: f64,
    /// See `mfe`.
    pub mae: f64,
}

/// Runs the risk rules inside the loop.
pub struct RiskManager {
    rules: Vec<BoxedRule>,
    position_rules: bool,
    order_rules: bool,
    timestamp_rules: bool,
    /// Per rule: whether it acts on positions (asked once, not per bar).
    evaluates: Vec<bool>,
    basis: StopBasis,
    tracks: Vec<Track>,
    levels: Vec<PositionPlan>,
    views: Vec<PositionView>,
    plans: Vec<PositionPlan>,
    portfolio: PortfolioState,
    last_equity: f64,
    /// First timestamp of the next UTC day (the day number is recomputed only past it).
    next_day_ts: Ts,
    step_gross: f64,
    step_net: f64,
    step_open: usize,
    /// The run's session closes (empty without a calendar), for rules that count sessions.
    session_closes: Vec<Ts>,
}

impl RiskManager {
    /// A manager for `rules` (evaluated in this order) measuring levels from `basis`.
    pub fn new(rules: Vec<BoxedRule>, basis: StopBasis) -> Self {
        let position_rules = rules.iter().any(|r| r.evaluates_positions());
        let order_rules = rules.iter().any(|r| r.checks_orders());
        let timestamp_rules = rules.iter().any(|r| r.wants_timestamps());
        let evaluates = rules.iter().map(|r| r.evaluates_positions()).collect();
        RiskManager {
            rules,
            position_rules,
            order_rules,
            timestamp_rules,
            evaluates,
            basis,
            tracks: Vec::new(),
            levels: Vec::new(),
            views: Vec::new(),
            plans: Vec::new(),
            portfolio: PortfolioState {
                day: i64::MIN,
                ..PortfolioState::default()
            },
            last_equity: f64::NAN,
            next_day_ts: Ts::MIN,
            step_gross: 0.0,
            step_net: 0.0,
            step_open: 0,
            session_closes: Vec::new(),
        }
    }

    /// Whether any rule acts on positions.
    #[inline]
    pub fn has_position_rules(&self) -> bool {
        self.position_rules
    }

    /// Whether any rule checks orders.
    #[inline]
    pub fn has_order_rules(&self) -> bool {
        self.order_rules
    }

    /// Sizes per-asset state; `initial_equity` is the first day's starting equity.
    pub fn start(&mut self, n_assets: usize, initial_equity: f64) {
        self.tracks = vec![Track::default(); n_assets];
        self.levels = vec![PositionPlan::new(1.0); n_assets];
        self.last_equity = initial_equity;
        self.portfolio.peak_equity = initial_equity;
        self.views.reserve(n_assets.min(4096));
        self.plans.reserve(n_assets.min(4096));
        for rule in &mut self.rules {
            rule.start(n_assets);
        }
    }

    /// Binds every rule's feature columns in a new chunk.
    pub fn bind(&mut self, data: &MarketData) -> Result<()> {
        self.rules.iter_mut().try_for_each(|r| r.bind(data))
    }

    /// Follows a fill: a new (or flipped) position starts a fresh track with its basis price
    /// (`prior_close`: the asset's close before the fill, for the signal-close basis); an add
    /// moves a fill basis to the new average cost; a flat position forgets its levels.
    pub fn on_fill(
        &mut self,
        asset: AssetId,
        before: f64,
        after: f64,
        price: f64,
        avg_cost: f64,
        prior_close: f64,
    ) {
        let a = asset as usize;
        if after == 0.0 {
            self.tracks[a].active = false;
            return;
        }
        let opened = before == 0.0 || before.signum() != after.signum();
        if opened {
            let basis = match self.basis {
                StopBasis::Fill => price,
                StopBasis::SignalClose if prior_close.is_finite() => prior_close,
                StopBasis::SignalClose => price,
            };
            self.tracks[a] = Track {
                active: true,
                basis,
                high_water: price,
                low_water: price,
                high_close: price,
                low_close: price,
                evaluations: 0,
                target_exits: 0,
                opened: self.tracks[a].opened + 1,
            };
            self.levels[a] = PositionPlan::new(after.signum());
        } else if after.abs() > before.abs() && self.basis == StopBasis::Fill {
            self.tracks[a].basis = avg_cost;
        }
    }

    /// Restates `asset`'s position state after a split of `ratio` new shares per old one: the
    /// basis price, water marks and live stop / target levels (and an amount trail) are
    /// divided by `ratio`; every rule restates what it keeps per asset.
    pub fn split(&mut self, asset: AssetId, ratio: f64) {
        let a = asset as usize;
        if let Some(track) = self.tracks.get_mut(a) {
            track.basis /= ratio;
            track.high_water /= ratio;
            track.low_water /= ratio;
            track.high_close /= ratio;
            track.low_close /= ratio;
        }
        if let Some(plan) = self.levels.get_mut(a) {
            plan.stop /= ratio;
            plan.target /= ratio;
            if let Some((Trail::Amount(amount), reason)) = plan.trail {
                plan.trail = Some((Trail::Amount(amount / ratio), reason));
            }
        }
        for rule in &mut self.rules {
            rule.on_split(asset, ratio);
        }
    }

    /// Folds this bar's extremes and close into a held asset's water marks.
    #[inline]
    pub fn mark(&mut self, asset: AssetId, high: f64, low: f64, close: f64) {
        let track = &mut self.tracks[asset as usize];
        if track.active {
            track.high_water = track.high_water.max(high);
            track.low_water = track.low_water.min(low);
            track.high_close = track.high_close.max(close);
            track.low_close = track.low_close.min(close);
        }
    }

    /// The live levels of `asset`'s position (set at its last evaluation), if any.
    #[inline]
    pub fn levels(&self, asset: AssetId) -> Option<&PositionPlan> {
        let a = asset as usize;
        let plan = &self.levels[a];
        (self.tracks[a].active && plan.has_levels()).then_some(plan)
    }

    /// The water mark an intrabar trailing stop starts from: the high since entry for a long,
    /// the low for a short.
    #[inline]
    pub fn water_mark(&self, asset: AssetId, long: bool) -> f64 {
        let track = &self.tracks[asset as usize];
        if long {
            track.high_water
        } else {
            track.low_water
        }
    }

    /// Which of `asset`'s positions is open now (changes whenever one opens).
    #[inline]
    pub fn position_id(&self, asset: AssetId) -> u64 {
        self.tracks[asset as usize].opened
    }

    /// Counts a filled take-profit level (a scaled exit moves to its next level).
    pub fn record_target_exit(&mut self, asset: AssetId) {
        self.tracks[asset as usize].target_exits += 1;
    }

    /// Whether `asset`'s position has not been evaluated since it opened.
    #[inline]
    pub fn is_new(&self, asset: AssetId) -> bool {
        let track = &self.tracks[asset as usize];
        track.active && track.evaluations == 0
    }

    /// Updates the portfolio state at a close: peak, drawdown, the day's starting equity; and
    /// resets the step's exposure projection for the pre-trade checks. `long` and `short` are
    /// the marked values equity adds up, `exposure` the (long, short) notional in base the
    /// exposures read (the same for shares; a future's notional, not its unsettled PnL).
    pub fn update_portfolio(
        &mut self,
        ts: Ts,
        cash: f64,
        (long, short): (f64, f64),
        exposure: (f64, f64),
        open: usize,
    ) {
        let equity = cash + long + short;
        let (long, short) = exposure;
        let p = &mut self.portfolio;
        if ts >= self.next_day_ts {
            let day = ts.div_euclid(DAY_NS);
            if day != p.day {
                p.day = day;
                p.day_start_equity = self.last_equity;
            }
            self.next_day_ts = (day + 1).saturating_mul(DAY_NS);
        }
        p.equity = equity;
        p.cash = cash;
        p.gross_exposure = long - short;
        p.net_exposure = long + short;
        p.peak_equity = p.peak_equity.max(equity);
        p.open_positions = open;
        self.last_equity = equity;
        self.step_gross = p.gross_exposure;
        self.step_net = p.net_exposure;
        self.step_open = open;
    }

    /// Counts orders still pending from earlier steps in this step's projection: `gross` and
    /// `net` exposure they add at the last marks, and the positions they open.
    pub fn add_pending(&mut self, gross: f64, net: f64, opening: usize) {
        self.step_gross += gross;
        self.step_net += net;
        self.step_open += opening;
    }

    /// The portfolio state as of the last update.
    pub fn portfolio(&self) -> &PortfolioState {
        &self.portfolio
    }

    /// Starts a position step: clears the views.
    pub fn clear_views(&mut self) {
        self.views.clear();
    }

    /// Adds a held position (with a bar now) to this step's views.
    pub fn push_view(&mut self, held: HeldPosition) {
        let track = &self.tracks[held.asset as usize];
        self.views.push(PositionView {
            asset: held.asset,
            row: held.row,
            state: PositionState {
                quantity: held.quantity,
                entry_price: held.entry_price,
                basis_price: track.basis,
                entry_ts: held.entry_ts,
                bars_held: held.bars_held,
                unrealized_pnl: held.quantity * (held.close - held.entry_price),
                high_water: track.high_water,
                low_water: track.low_water,
                high_close: track.high_close,
                low_close: track.low_close,
                mfe: held.mfe,
                mae: held.mae,
                close: held.close,
                evaluations: track.evaluations,
                target_exits: track.target_exits,
            },
        });
    }

    /// Sets the run's session closes (the last data timestamp of each session), for rules
    /// that count trading sessions.
    pub fn set_session_closes(&mut self, closes: Vec<Ts>) {
        self.session_closes = closes;
    }

    /// Runs every rule's timestamp hook (halts) — once per timestamp, before any evaluation.
    pub fn on_timestamp(&mut self, ts: Ts, data: &MarketData, market_row: usize) -> Result<()> {
        if !self.timestamp_rules {
            return Ok(());
        }
        let env = RiskEnv {
            ts,
            data,
            market_row,
            portfolio: &self.portfolio,
            session_closes: &self.session_closes,
        };
        self.rules
            .iter_mut()
            .filter(|r| r.wants_timestamps())
            .try_for_each(|r| r.on_timestamp(&env))
    }

    /// Evaluates the position rules on the views pushed since [`Self::clear_views`]; the new
    /// levels replace the old ones. Afterwards [`Self::plans`] holds each view's plan.
    pub fn evaluate(&mut self, ts: Ts, data: &MarketData, market_row: usize) -> Result<()> {
        self.plans.clear();
        self.plans
            .extend(self.views.iter().map(|v| PositionPlan::new(v.state.side())));
        if self.views.is_empty() {
            return Ok(());
        }
        let env = RiskEnv {
            ts,
            data,
            market_row,
            portfolio: &self.portfolio,
            session_closes: &self.session_closes,
        };
        for (rule, &evaluates) in self.rules.iter_mut().zip(&self.evaluates) {
            if evaluates {
                rule.evaluate_all(&env, &self.views, &mut self.plans)?;
            }
        }
        for i in 0..self.views.len() {
            let a = self.views[i].asset as usize;
            self.levels[a] = self.plans[i];
            self.tracks[a].evaluations += 1;
        }
        Ok(())
    }

    /// The positions evaluated by the last [`Self::evaluate`], in order.
    pub fn views(&self) -> &[PositionView] {
        &self.views
    }

    /// Their merged plans, in the same order.
    pub fn plans(&self) -> &[PositionPlan] {
        &self.plans
    }

    /// Pre-trade check of an order's opening part. Returns the signed opening allowed (0:
    /// rejected) and counts an accepted one in the step's exposure projection.
    #[allow(clippy::too_many_arguments)]
    pub fn check_order(
        &mut self,
        ts: Ts,
        data: &MarketData,
        market_row: usize,
        asset: AssetId,
        opening: f64,
        position: f64,
        (price, unit_value): (f64, f64),
        row: Option<usize>,
    ) -> Result<f64> {
        let mut order = OrderCheck {
            asset,
            opening,
            position,
            price,
            unit_value,
            row,
            open_positions: self.step_open,
            gross_exposure: self.step_gross,
            net_exposure: self.step_net,
        };
        let env = RiskEnv {
            ts,
            data,
            market_row,
            portfolio: &self.portfolio,
            session_closes: &self.session_closes,
        };
        for rule in self.rules.iter_mut().filter(|r| r.checks_orders()) {
            let verdict = rule.check_order(&env, &order)?;
            if !apply_verdict(&mut order, verdict) {
                return Ok(0.0);
            }
        }
        if unit_value.is_finite() {
            self.step_gross += order.opening.abs() * unit_value;
            self.step_net += order.opening * unit_value;
        }
        self.step_open += usize::from(position == 0.0);
        Ok(order.opening)
    }
}
