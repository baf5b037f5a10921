//! The event loop: one pass over the timestamp groups of each chunk, in the order of steps given
//! in `docs/semantics.md` (fill pending orders, mark, strategy, resolve orders, record equity).

use crate::config::{EngineConfig, ExecutionMode, ShareRounding};
use crate::error::{BacktestError, Result};
use crate::feed::{group_end, MarketData};
use crate::matching::market_fill_price;
use crate::orders::{CommandBuffer, Intent, Order, OrderBook};
use crate::portfolio::{Portfolio, DUST};
use crate::progress::Progress;
use crate::results::{
    BacktestOutput, EquityRecorder, Fill, FillRecorder, RejectionRecorder, TradeRecorder,
};
use crate::strategy::{Strategy, StrategyContext, TimestampView};
use crate::trades::{TradeFill, TradeTracker};
use crate::types::{AssetId, ExitReason, RejectReason, Side, Ts};
use std::sync::Arc;

/// Which bar price a fill pass references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    Open,
    Close,
}

/// The state of one backtest. Feed it chunks in time order, then [`Engine::finish`].
pub struct Engine {
    config: EngineConfig,
    n_assets: u32,
    portfolio: Portfolio,
    book: OrderBook,
    commands: CommandBuffer,
    tracker: TradeTracker,
    fills: FillRecorder,
    trades: TradeRecorder,
    equity: EquityRecorder,
    rejections: RejectionRecorder,
    /// Timestamp counter at which each asset last had a bar.
    bar_epoch: Vec<u64>,
    /// Row of that bar in the current chunk.
    bar_row: Vec<usize>,
    /// Bars seen per asset since the start.
    bars_seen: Vec<u64>,
    /// Rebalance marks, tagged with `rebalance_epoch`.
    listed: Vec<u64>,
    rebalance_epoch: u64,
    /// Scratch: which pending orders are exits in the current fill pass.
    exit_flags: Vec<bool>,
    timestamps: u64,
    last_ts: Option<Ts>,
    next_order_id: u64,
    started: bool,
    /// Rows processed in earlier chunks.
    rows_before: u64,
    progress: Option<Arc<Progress>>,
}

impl Engine {
    /// A fresh engine for a universe of `n_assets`.
    pub fn new(config: EngineConfig, n_assets: u32) -> Result<Self> {
        config.validate()?;
        if n_assets == 0 {
            return Err(BacktestError::data("asset", 0, "the data has no assets"));
        }
        let n = n_assets as usize;
        Ok(Engine {
            portfolio: Portfolio::new(config.initial_cash, n),
            config,
            n_assets,
            book: OrderBook::new(n),
            commands: CommandBuffer::new(n_assets),
            tracker: TradeTracker::new(n),
            fills: FillRecorder::default(),
            trades: TradeRecorder::default(),
            equity: EquityRecorder::default(),
            rejections: RejectionRecorder::default(),
            bar_epoch: vec![0; n],
            bar_row: vec![0; n],
            bars_seen: vec![0; n],
            listed: vec![0; n],
            rebalance_epoch: 0,
            exit_flags: Vec::with_capacity(64),
            timestamps: 0,
            last_ts: None,
            next_order_id: 1,
            started: false,
            rows_before: 0,
            progress: None,
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
                return Err(BacktestError::data(
                    "ts",
                    0,
                    "chunks must follow each other in time and never split a timestamp",
                ));
            }
        }
        if !self.started {
            strategy.on_start(self.n_assets)?;
            self.started = true;
        }
        strategy.on_chunk(data)?;
        self.equity.reserve(data.n_timestamps());
        let assets = data.asset_ids();
        let close = data.close();
        let mut start = 0;
        while start < ts.len() {
            let t = ts[start];
            let end = group_end(ts, start);
            self.timestamps += 1;
            let epoch = self.timestamps;
            let group = &assets[start..end];
            for (offset, &asset) in group.iter().enumerate() {
                let a = asset as usize;
                self.bar_epoch[a] = epoch;
                self.bar_row[a] = start + offset;
                self.bars_seen[a] += 1;
            }
            if self.config.execution == ExecutionMode::NextOpen && !self.book.is_empty() {
                self.fill_pending(data, t, Reference::Open, strategy)?;
            }
            for (&asset, &price) in group.iter().zip(&close[start..end]) {
                self.portfolio.mark(asset, price);
            }
            for &asset in self.portfolio.open_assets() {
                self.tracker.mark(asset, self.portfolio.last_price(asset));
            }
            let (mut long, mut short) = self.portfolio.market_values();
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
            strategy.on_timestamp(&view, &mut ctx)?;
            if !self.commands.is_empty() {
                self.resolve_commands(t, equity)?;
            }
            if self.config.execution == ExecutionMode::SameClose
                && !self.book.is_empty()
                && self.fill_pending(data, t, Reference::Close, strategy)?
            {
                (long, short) = self.portfolio.market_values();
            }
            self.equity.push(t, self.portfolio.cash(), long, short);
            self.last_ts = Some(t);
            start = end;
            if epoch % Progress::EVERY == 0 {
                self.report_progress(end)?;
            }
        }
        self.report_progress(ts.len())?;
        self.rows_before += ts.len() as u64;
        Ok(())
    }

    /// Fills every pending order whose asset has a bar at this timestamp: exits first, then the
    /// rest, each pass in submission order. An exit reduces the position held at the start of
    /// the step without crossing zero; the classification is fixed before anything fills.
    /// Returns whether anything filled.
    fn fill_pending<S: Strategy + ?Sized>(
        &mut self,
        data: &MarketData,
        ts: Ts,
        reference: Reference,
        strategy: &mut S,
    ) -> Result<bool> {
        let epoch = self.timestamps;
        let count = self.book.orders().len();
        self.exit_flags.clear();
        let mut any_exit = false;
        for order in self.book.orders() {
            let held = self.portfolio.quantity(order.asset);
            let is_exit = self.bar_epoch[order.asset as usize] == epoch
                && held != 0.0
                && held.signum() != order.quantity.signum()
                && order.quantity.abs() <= held.abs();
            any_exit |= is_exit;
            self.exit_flags.push(is_exit);
        }
        let mut filled_any = false;
        for exits_pass in [true, false] {
            if exits_pass && !any_exit {
                continue;
            }
            for index in 0..count {
                let order = self.book.orders()[index];
                if order.quantity == 0.0
                    || self.bar_epoch[order.asset as usize] != epoch
                    || (exits_pass && !self.exit_flags[index])
                {
                    continue;
                }
                let fill = self.execute(data, ts, &order, reference);
                self.book.mark_filled(index);
                filled_any = true;
                strategy.on_fill(&fill, &self.portfolio)?;
            }
        }
        if filled_any {
            self.book.sweep();
        }
        Ok(filled_any)
    }

    /// Fills `order` completely against the asset's bar in `data` and books it.
    fn execute(&mut self, data: &MarketData, ts: Ts, order: &Order, reference: Reference) -> Fill {
        let row = self.bar_row[order.asset as usize];
        let reference_price = match reference {
            Reference::Open => data.open()[row],
            Reference::Close => data.close()[row],
        };
        let side = Side::of(order.quantity);
        let price = market_fill_price(
            side,
            reference_price,
            data.low()[row],
            data.high()[row],
            &self.config.slippage,
        );
        let fee = self.config.commission.fee(order.quantity, price);
        let effect = self
            .portfolio
            .apply_fill(order.asset, order.quantity, price, fee);
        self.tracker.on_fill(
            TradeFill {
                asset: order.asset,
                ts,
                bar: self.bars_seen[order.asset as usize],
                quantity: order.quantity,
                price,
                fee,
                slippage: (price - reference_price).abs() * order.quantity.abs(),
                reason: ExitReason::Signal,
            },
            effect,
            &mut self.trades,
        );
        let fill = Fill {
            order_id: order.id,
            ts,
            asset: order.asset,
            quantity: order.quantity,
            price,
            reference_price,
            slippage: (price - reference_price).abs() * order.quantity.abs(),
            commission: fee,
        };
        self.fills.push(&fill);
        fill
    }

    /// Turns the strategy's intents into orders (sizing at this bar's marks) and queues them.
    fn resolve_commands(&mut self, ts: Ts, equity: f64) -> Result<()> {
        let mut commands = std::mem::take(&mut self.commands);
        let result = self.resolve_intents(&commands, ts, equity);
        commands.clear();
        self.commands = commands;
        result
    }

    fn resolve_intents(&mut self, commands: &CommandBuffer, ts: Ts, equity: f64) -> Result<()> {
        let integer = self.config.rounding == ShareRounding::Integer;
        for intent in commands.intents() {
            match *intent {
                Intent::Quantity { asset, quantity } => {
                    if integer && quantity.fract() != 0.0 {
                        return Err(BacktestError::order(
                            "quantity",
                            format!(
                                "must be a whole number of shares with integer share rounding, \
                                 got {quantity}"
                            ),
                        ));
                    }
                    self.queue(asset, quantity, ts);
                }
                Intent::TargetQuantity { asset, target } => self.queue_target(asset, target, ts),
                Intent::TargetValue { asset, value } => {
                    self.queue_value(asset, value, ts);
                }
                Intent::TargetPercent { asset, fraction } => {
                    self.queue_value(asset, fraction * equity, ts);
                }
                Intent::Close { asset } => self.queue_target(asset, 0.0, ts),
                Intent::Rebalance { start, end } => {
                    self.rebalance_epoch += 1;
                    let weights = &commands.weights()[start as usize..end as usize];
                    for &(asset, weight) in weights {
                        self.listed[asset as usize] = self.rebalance_epoch;
                        self.queue_value(asset, weight * equity, ts);
                    }
                    for asset in 0..self.n_assets {
                        let a = asset as usize;
                        let exposed = self.portfolio.quantity(asset) != 0.0
                            || self.book.pending_quantity(asset) != 0.0;
                        if exposed && self.listed[a] != self.rebalance_epoch {
                            self.queue_target(asset, 0.0, ts);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn current(&self, asset: AssetId) -> f64 {
        self.portfolio.quantity(asset) + self.book.pending_quantity(asset)
    }

    fn queue_value(&mut self, asset: AssetId, value: f64, ts: Ts) {
        let price = self.portfolio.last_price(asset);
        if !price.is_finite() {
            let id = self.take_order_id();
            self.rejections
                .push(id, ts, asset, f64::NAN, RejectReason::NoPrice);
            return;
        }
        self.queue_target(asset, value / price, ts);
    }

    fn queue_target(&mut self, asset: AssetId, target: f64, ts: Ts) {
        let current = self.current(asset);
        let mut quantity = target - current;
        if quantity.abs() <= DUST * target.abs().max(current.abs()) {
            return;
        }
        if self.config.rounding == ShareRounding::Integer {
            quantity = quantity.trunc();
        }
        self.queue(asset, quantity, ts);
    }

    fn queue(&mut self, asset: AssetId, requested: f64, ts: Ts) {
        if requested == 0.0 {
            return;
        }
        let mut quantity = requested;
        if !self.config.allow_short {
            let current = self.current(asset);
            if current + quantity < 0.0 {
                quantity = -current.max(0.0);
            }
            if quantity == 0.0 {
                let id = self.take_order_id();
                self.rejections
                    .push(id, ts, asset, requested, RejectReason::ShortNotAllowed);
                return;
            }
        }
        let id = self.take_order_id();
        self.book.push(Order {
            id,
            asset,
            quantity,
            created: ts,
        });
    }

    fn take_order_id(&mut self) -> u64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        id
    }

    /// Ends the run: unfilled orders become `end_of_data` rejections, open positions open
    /// trades, and the recorders become Arrow batches.
    pub fn finish<S: Strategy + ?Sized>(mut self, strategy: &mut S) -> Result<BacktestOutput> {
        let last_ts = self.last_ts.unwrap_or(0);
        for order in self.book.drain() {
            self.rejections.push(
                order.id,
                order.created,
                order.asset,
                order.quantity,
                RejectReason::EndOfData,
            );
        }
        self.tracker.finish(
            last_ts,
            &self.bars_seen,
            self.portfolio.positions(),
            self.portfolio.last_prices(),
            &mut self.trades,
        );
        if self.started {
            strategy.on_end(&self.portfolio)?;
        }
        Ok(BacktestOutput::from_recorders(
            self.fills,
            self.trades,
            self.equity,
            self.rejections,
        ))
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
    let mut chunks = chunks.into_iter().peekable();
    let n_assets = match chunks.peek() {
        Some(first) => first.n_assets(),
        None => return Err(BacktestError::data("ts", 0, "no data: the feed is empty")),
    };
    let mut engine = Engine::new(config.clone(), n_assets)?;
    for chunk in chunks {
        engine.process_chunk(chunk, strategy)?;
    }
    engine.finish(strategy)
}
