//! The event loop: one pass over the timestamp groups of each chunk, in the order of steps given
//! in `docs/semantics.md` (fill pending orders, mark, strategy, resolve orders, record equity).
//!
//! [`Engine`] is one struct whose `impl` is split by concern; a file that keeps working state
//! owns it as a named part:
//!
//! - `mod.rs`: the engine's state, [`Engine::process_chunk`] (the loop on one page) and
//!   [`Engine::finish`];
//! - `fills.rs`: the bar and close passes: which orders trigger where along the bar's path, at
//!   what price and size, and the after-bar bookkeeping (owns `FillScratch`);
//! - `sizing.rs`: a strategy's intents become orders at decision time: target sizing, share
//!   rounding, brackets, modify and cancel;
//! - `account.rs`: financing accruals, buying power at fill time, margin calls (owns
//!   `Financing`);
//! - `risk_step.rs`: the risk manager inside the loop: level exits, the position step after
//!   marking, pre-trade checks;
//! - `lifecycle.rs`: delistings: the close of an asset whose data ends early, the refusal of
//!   its later orders (owns `Delistings`);
//! - `actions.rs`: corporate actions at the start of an ex-date: dividends, and splits of
//!   positions, trades, orders and risk state (with cash in lieu in integer mode);
//! - `flows.rs`: capital flows (deposits, withdrawals) at the start of their timestamp;
//! - `sessions.rs`: trading sessions: which timestamps close one (DAY orders expire there);
//! - `membership.rs`: the point-in-time universe: who is a member now, the refusal of entries
//!   into non-members, the PnL of positions held while not a member (owns `Members`);
//! - `events.rs`: order events, queued while the strategy listens and delivered after each
//!   step (owns `EventQueue`);
//! - `contracts.rs`: instruments in the loop: per-contract fees, tick and lot rounding,
//!   instrument margins, variation margin at each close, futures expiry (owns `Contracts`);
//! - `funding.rs`: crypto perpetuals' funding payments (owns `Funding`);
//! - `fx.rs`: several currencies: FX rates as dated events, the rate check before fills,
//!   the close's sweep to base and the per-currency cash table (owns `FxState`).

mod account;
mod actions;
mod contracts;
mod events;
mod fills;
mod flows;
mod funding;
mod fx;
mod lifecycle;
mod membership;
mod risk_step;
mod sessions;
mod sizing;

use crate::actions::CorporateActions;
use crate::config::{EngineConfig, ExecutionMode};
use crate::error::{BacktestError, Result};
use crate::events::OrderOrigin;
use crate::feed::{group_end, MarketData};
use crate::flows::CapitalFlows;
use crate::orders::{CommandBuffer, Order, OrderBook, OrderIds, OrderState, TargetSize};
use crate::portfolio::Portfolio;
use crate::progress::Progress;
use crate::results::{BacktestOutput, EquityWriter, Recorders};
use crate::risk::BoxedRule;
use crate::risk::RiskManager;
use crate::slippage::SlippageColumns;
use crate::strategy::{Strategy, StrategyContext, TimestampView};
use crate::trades::TradeTracker;
use crate::types::{AssetId, ExitReason, RejectReason, Ts};
use account::Financing;
use events::{EventQueue, Journal};
use fills::FillScratch;
use risk_step::Step;
use std::sync::Arc;

/// The state of one backtest. Feed it chunks in time order, then [`Engine::finish`].
pub struct Engine {
    config: EngineConfig,
    n_assets: u32,
    portfolio: Portfolio,
    book: OrderBook,
    commands: CommandBuffer,
    /// An empty buffer swapped in for `commands` while the engine resolves it.
    spare: Option<CommandBuffer>,
    tracker: TradeTracker,
    /// The output tables, filled as the run goes.
    record: Recorders,
    /// Timestamp counter at which each asset last had a bar.
    bar_epoch: Vec<u64>,
    /// Row of that bar in the current chunk.
    bar_row: Vec<usize>,
    /// Bars seen per asset since the start.
    bars_seen: Vec<u64>,
    /// Rebalance marks, tagged with `rebalance_epoch`.
    listed: Vec<u64>,
    rebalance_epoch: u64,
    /// A rebalance's candidates for closing (held or pending assets), kept between calls.
    exposed: Vec<AssetId>,
    /// The fill passes' working state (`fills.rs`).
    scratch: FillScratch,
    /// Order events waiting for the strategy (`events.rs`).
    events: EventQueue,
    /// The order journal's working state (`events.rs`).
    journal: Journal,
    /// Financing switches and borrow rates (`account.rs`).
    financing: Financing,
    timestamps: u64,
    last_ts: Option<Ts>,
    /// The run's order-id counter, shared with `commands` (and any adapter's buffer).
    ids: OrderIds,
    started: bool,
    /// Rows processed in earlier chunks.
    rows_before: u64,
    /// The risk rules and their per-position state (`None`: no rules).
    risk: Option<Box<RiskManager>>,
    /// Per asset: the timestamp counter at which its pending orders were last projected for
    /// the pre-trade checks.
    projected: Vec<u64>,
    /// Scratch of the bar pass: the risk level exits reached on this bar.
    level_hits: Vec<(AssetId, risk_step::LevelHit)>,
    progress: Option<Arc<Progress>>,
    /// The slippage model's columns in the current chunk.
    slippage_columns: SlippageColumns,
    /// Equity reached zero: positions are being liquidated and every new order is refused.
    ruined: bool,
    /// The assets whose data ends before the run's (`lifecycle.rs`).
    delistings: lifecycle::Delistings,
    /// The run's splits and dividends, with a cursor at the next one (`actions.rs`).
    actions: CorporateActions,
    /// The run's instruments (`contracts.rs`; `None`: every asset is a plain share).
    contracts: Option<Box<contracts::Contracts>>,
    /// Whether the close checks maintenance margin (the account's or an instrument's).
    margin_checked: bool,
    /// Perpetuals' funding (`funding.rs`).
    funding: funding::Funding,
    /// The run's deposits and withdrawals, with a cursor at the next one (`flows.rs`).
    flows: CapitalFlows,
    /// The run's trading sessions, when it has a calendar (`sessions.rs`).
    sessions: sessions::Sessions,
    /// The point-in-time universe (`membership.rs`; off without one).
    members: membership::Members,
    /// The date of the next corporate action, capital flow, FX rate or membership change
    /// (`Ts::MAX`: none): the loop's one comparison per timestamp for all four.
    next_dated: Ts,
    /// The run's currencies when there are several (`fx.rs`; `None`: one currency).
    fx: Option<Box<fx::FxState>>,
    /// Whether the equity table records notional exposure (some asset is marked to market).
    record_exposure: bool,
}

impl Engine {
    /// A fresh engine for a universe of `n_assets`.
    pub fn new(config: EngineConfig, n_assets: u32) -> Result<Self> {
        config.validate()?;
        if n_assets == 0 {
            return Err(BacktestError::data("asset", 0, "the data has no assets"));
        }
        let n = n_assets as usize;
        let financing = Financing::new(&config);
        let margin_checked = config.account.maintenance_margin.is_some();
        let commands = CommandBuffer::new(n_assets);
        let ids = commands.ids().clone();
        Ok(Engine {
            portfolio: Portfolio::new(config.initial_cash, n),
            config,
            n_assets,
            book: OrderBook::new(n),
            commands,
            spare: None,
            tracker: TradeTracker::new(n),
            record: Recorders::default(),
            bar_epoch: vec![0; n],
            bar_row: vec![0; n],
            bars_seen: vec![0; n],
            listed: vec![0; n],
            rebalance_epoch: 0,
            exposed: Vec::with_capacity(n),
            scratch: FillScratch::new(),
            events: EventQueue::default(),
            journal: Journal::default(),
            financing,
            timestamps: 0,
            last_ts: None,
            ids,
            started: false,
            rows_before: 0,
            risk: None,
            level_hits: Vec::new(),
            projected: vec![0; n],
            progress: None,
            slippage_columns: SlippageColumns::default(),
            ruined: false,
            delistings: lifecycle::Delistings::default(),
            actions: CorporateActions::default(),
            contracts: None,
            margin_checked,
            funding: funding::Funding::default(),
            flows: CapitalFlows::default(),
            sessions: sessions::Sessions::default(),
            members: membership::Members::default(),
            next_dated: Ts::MAX,
            fx: None,
            record_exposure: false,
        })
    }

    /// Publishes progress to `progress` and stops when it is cancelled.
    pub fn set_progress(&mut self, progress: Arc<Progress>) {
        self.progress = Some(progress);
    }

    fn report_progress(&self, rows_done_in_chunk: usize) -> Result<()> {
        if let Some(progress) = &self.progress {
            let rows = self.rows_before + rows_done_in_chunk as u64;
            progress.publish(rows);
            if progress.is_cancelled() {
                return Err(BacktestError::Cancelled { rows });
            }
        }
        Ok(())
    }

    /// Reserves the result curves for `n_timestamps` more timestamps, when the caller knows
    /// the whole run's count before its first chunk (an in-memory frame handed over in pages):
    /// each chunk's own reservation then finds the room already there, so the curves are
    /// allocated once, at their final size, instead of growing chunk by chunk.
    pub fn reserve_timestamps(&mut self, n_timestamps: usize) {
        self.record.equity.reserve(n_timestamps);
        if self.record_exposure {
            self.record.exposure.reserve(n_timestamps);
        }
    }

    /// The account as it stands.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    /// Runs every timestamp group of `data` through the loop.
    pub fn process_chunk<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        strategy: &mut S,
    ) -> Result<()> {
        if data.n_assets() != self.n_assets {
            return Err(BacktestError::data(
                "asset_id",
                0,
                format!(
                    "chunk has a universe of {} assets, the engine {}",
                    data.n_assets(),
                    self.n_assets
                ),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let ts = data.ts();
        if let Some(last) = self.last_ts {
            if ts[0] <= last {
                return Err(BacktestError::data_at(
                    "ts",
                    0,
                    ts[0],
                    "chunks must follow each other in time and never split a timestamp",
                ));
            }
        }
        if !self.started {
            strategy.on_start(self.n_assets)?;
            self.events.listen(strategy.wants_order_events());
            self.started = true;
        }
        strategy.on_chunk(data)?;
        if let Some(risk) = self.risk.as_mut() {
            risk.bind(data)?;
        }
        self.resolve_borrow_column(data)?;
        if self.funding.on {
            self.resolve_funding_column(data)?;
        }
        self.slippage_columns = self.config.slippage.bind(data)?;
        if self.record_exposure {
            self.record.exposure.reserve(data.n_timestamps());
        }
        let mut curve =
            EquityWriter::new(std::mem::take(&mut self.record.equity), data.n_timestamps());
        // The loop is compiled once per pair of these switches, chosen here once per chunk.
        let plain = self.plain();
        let single = data.n_timestamps() == data.len();
        let result = match (plain, single) {
            (true, true) => self.run_groups::<true, true, S>(data, strategy, &mut curve),
            (true, false) => self.run_groups::<true, false, S>(data, strategy, &mut curve),
            (false, true) => self.run_groups::<false, true, S>(data, strategy, &mut curve),
            (false, false) => self.run_groups::<false, false, S>(data, strategy, &mut curve),
        };
        self.record.equity = curve.finish();
        result?;
        self.report_progress(ts.len())?;
        self.rows_before += ts.len() as u64;
        Ok(())
    }

    /// Whether the run uses none of the features the loop tests for at every timestamp:
    /// financing, dated events, several currencies, sessions, risk rules, delistings,
    /// instruments, a universe, order events, same-close fills, exposure recording. None of
    /// them is switched on during a chunk.
    fn plain(&self) -> bool {
        !self.financing.on
            && self.next_dated == Ts::MAX
            && self.fx.is_none()
            && !self.sessions.on
            && self.risk.is_none()
            && !self.delistings.any()
            && self.contracts.is_none()
            && !self.members.on
            && !self.events.listening()
            && self.config.execution != ExecutionMode::SameClose
            && !self.record_exposure
    }

    /// The loop over the timestamp groups of `data`, the one statement of the order of steps.
    /// `PLAIN`: the run is [`Engine::plain`], whose feature tests are compiled out; `SINGLE`:
    /// every group has one row.
    fn run_groups<const PLAIN: bool, const SINGLE: bool, S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        strategy: &mut S,
        curve: &mut EquityWriter,
    ) -> Result<()> {
        let ts = data.ts();
        let n = ts.len();
        // One value a row, as `ts`: slicing them to its length lets the compiler drop the
        // bounds checks of the group's rows below.
        let assets = &data.asset_ids()[..n];
        let close = &data.close()[..n];
        let mut start = 0;
        while start < n {
            let t = ts[start];
            let end = if SINGLE {
                start + 1
            } else {
                group_end(ts, start)
            };
            self.timestamps += 1;
            let epoch = self.timestamps;
            let group = &assets[start..end];
            for (offset, &asset) in group.iter().enumerate() {
                let a = asset as usize;
                self.bar_epoch[a] = epoch;
                self.bar_row[a] = start + offset;
                self.bars_seen[a] += 1;
            }
            if !PLAIN && self.financing.on {
                self.accrue_financing(t);
                self.financing.read_borrow_rates(data, start, group);
            }
            if !PLAIN && t >= self.next_dated {
                self.apply_dated(data, t, strategy)?;
            }
            if !PLAIN && self.fx.is_some() {
                self.check_fx_rates(t, start, group)?;
            }
            if !PLAIN && self.sessions.on {
                self.sessions.enter(t);
            }
            let step = Step {
                data,
                ts: t,
                row: start,
            };
            let levels_live =
                !PLAIN && self.risk.is_some() && !self.portfolio.open_assets().is_empty();
            if !self.book.is_empty() || levels_live {
                self.bar_pass(data, t, strategy)?;
            }
            for (offset, (&asset, &price)) in group.iter().zip(&close[start..end]).enumerate() {
                self.portfolio.mark(asset, price);
                if self.portfolio.quantity(asset) != 0.0 {
                    // Only a held asset with a new price can move its trade's MFE/MAE.
                    self.tracker.mark(asset, price);
                    if let Some(risk) = self.risk.as_mut().filter(|_| !PLAIN) {
                        let row = start + offset;
                        risk.mark(asset, data.high()[row], data.low()[row], price);
                    }
                }
            }
            if !PLAIN && self.sessions.on {
                self.sessions.saw(group);
            }
            if !PLAIN && self.delistings.any() {
                self.delist_ending(data, t, start, group, strategy)?;
            }
            if !PLAIN && self.contracts.is_some() {
                self.contract_step(data, t, start, group, strategy)?;
            }
            // Marked values, shared by the margin call, the risk step and the strategy's equity
            // (queueing exits and delivering events move no position).
            let (mut long, mut short) = self.portfolio.market_values();
            if self.margin_checked
                && !self.ruined
                && self.margin_call(data, t, strategy, (long, short))?
            {
                (long, short) = self.portfolio.market_values();
            }
            if !PLAIN && self.risk.is_some() && !self.ruined {
                self.risk_step(step, (long, short), false)?;
            }
            if !PLAIN && !self.events.is_empty() {
                self.deliver_order_events(strategy)?;
            }
            let equity = self.portfolio.cash() + long + short;
            let view = TimestampView {
                data,
                ts: t,
                start,
                end,
                index: epoch - 1,
            };
            let mut ctx =
                StrategyContext::new(t, &self.portfolio, &self.book, equity, &mut self.commands);
            if let Some(members) = self.members.members().filter(|_| !PLAIN) {
                ctx = ctx.with_members(members);
            }
            strategy.on_timestamp(&view, &mut ctx)?;
            if !self.commands.is_empty() {
                self.resolve_commands(step, equity)?;
            }
            if !PLAIN
                && self.config.execution == ExecutionMode::SameClose
                && !self.book.is_empty()
                && self.close_pass(data, t, strategy)?
            {
                (long, short) = self.portfolio.market_values();
                if self.risk.is_some() && !self.ruined {
                    // Positions opened at this close get their first levels now.
                    self.risk_step(step, (long, short), true)?;
                }
            }
            if !PLAIN && !self.events.is_empty() {
                self.deliver_order_events(strategy)?;
            }
            if !PLAIN && self.fx.is_some() {
                self.close_fx(t);
            }
            let cash = self.portfolio.cash();
            if !(cash + long + short).is_finite() {
                return Err(BacktestError::data_at(
                    "equity",
                    end - 1,
                    t,
                    format!(
                        "numeric_overflow: equity is not finite (cash {cash}, long {long}, short \
                         {short}); prices or sizes beyond f64's range"
                    ),
                ));
            }
            if cash + long + short <= 0.0 && !self.ruined {
                self.ruin(t);
            }
            if !PLAIN && self.members.on {
                self.count_non_member_pnl(t);
            }
            curve.push(t, cash, long, short);
            if !PLAIN && self.record_exposure {
                let (long, short) = self.portfolio.exposures();
                self.record.exposure.push(long, short);
            }
            self.last_ts = Some(t);
            start = end;
            if epoch % Progress::EVERY == 0 {
                self.report_progress(end)?;
            }
        }
        Ok(())
    }

    /// Step 0 after financing, when a dated event is due: the membership changes, the
    /// corporate actions, then the capital flows, dated at or before `ts`.
    fn apply_dated<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        strategy: &mut S,
    ) -> Result<()> {
        if ts >= self.next_fx_ts() {
            self.apply_fx_rates(ts);
        }
        if ts >= self.members.next_ts() {
            self.apply_membership(ts);
        }
        if ts >= self.actions.next_ts() {
            self.apply_actions(data, ts, strategy)?;
        }
        if ts >= self.flows.next_ts() {
            self.apply_flows(data, ts, strategy)?;
        }
        self.next_dated = self.next_dated_event();
        Ok(())
    }

    /// The date of the next dated event: a corporate action, a capital flow, an FX rate or a
    /// membership change.
    #[inline]
    fn next_dated_event(&self) -> Ts {
        self.actions
            .next_ts()
            .min(self.flows.next_ts())
            .min(self.next_fx_ts())
            .min(self.members.next_ts())
    }

    /// The ruin rule, once equity has reached zero at `ts`: every pending order is refused
    /// (`ruined`) and each open position gets a market order to flat, sized when it fills and
    /// eligible from the next timestamp (the next fill opportunity of the execution mode).
    /// From now on the strategy's orders are refused and risk rules and margin calls rest; the
    /// equity curve goes on.
    fn ruin(&mut self, ts: Ts) {
        self.ruined = true;
        let pending: Vec<_> = self.book.drain().collect();
        for order in pending {
            self.reject(
                order.id,
                ts,
                order.asset,
                order.quantity,
                RejectReason::Ruined,
            );
        }
        let mut open: Vec<AssetId> = self.portfolio.open_assets().to_vec();
        open.sort_unstable(); // liquidation orders in ascending asset code
        for asset in open {
            let id = self.take_order_id();
            let quantity = -self.portfolio.quantity(asset);
            let order = Order {
                reason: ExitReason::Ruin,
                state: OrderState::Target {
                    target: TargetSize::Value(0.0),
                    filled: false,
                },
                ..Order::market(id, asset, quantity, ts, self.timestamps + 1)
            };
            self.accept(order, ts, OrderOrigin::Ruin);
        }
    }

    /// Ends the run: unfilled orders become `end_of_data` rejections, open positions open
    /// trades, and the recorders become Arrow batches.
    pub fn finish<S: Strategy + ?Sized>(mut self, strategy: &mut S) -> Result<BacktestOutput> {
        self.check_flows_done()?;
        let last_ts = self.last_ts.unwrap_or(0);
        let pending: Vec<_> = self.book.drain().collect();
        for order in pending {
            self.reject(
                order.id,
                order.created,
                order.asset,
                order.quantity,
                RejectReason::EndOfData,
            );
        }
        self.deliver_order_events(strategy)?;
        let rates = self.asset_rates();
        let open_trades = self.tracker.finish(
            last_ts,
            &self.bars_seen,
            self.portfolio.positions(),
            self.portfolio.last_prices(),
            self.portfolio.multipliers(),
            &rates,
        );
        for trade in &open_trades {
            self.record.trades.push(trade);
        }
        if self.started {
            strategy.on_end(&self.portfolio)?;
        }
        Ok(BacktestOutput::from_recorders(self.record))
    }
}

/// Runs a whole backtest over `chunks` (in time order) with `strategy`.
pub fn run_backtest<'a, S, I>(
    chunks: I,
    strategy: &mut S,
    config: &EngineConfig,
) -> Result<BacktestOutput>
where
    S: Strategy + ?Sized,
    I: IntoIterator<Item = &'a MarketData>,
{
    run_backtest_with_rules(chunks, strategy, config, Vec::new())
}

/// [`run_backtest`] with risk rules attached (evaluated in the given order).
pub fn run_backtest_with_rules<'a, S, I>(
    chunks: I,
    strategy: &mut S,
    config: &EngineConfig,
    rules: Vec<BoxedRule>,
) -> Result<BacktestOutput>
where
    S: Strategy + ?Sized,
    I: IntoIterator<Item = &'a MarketData>,
{
    let mut chunks = chunks.into_iter().peekable();
    let n_assets = match chunks.peek() {
        Some(first) => first.n_assets(),
        None => return Err(BacktestError::data("ts", 0, "no data: the feed is empty")),
    };
    let mut engine = Engine::new(config.clone(), n_assets)?;
    engine.set_risk_rules(rules);
    for chunk in chunks {
        engine.process_chunk(chunk, strategy)?;
    }
    engine.finish(strategy)
}
