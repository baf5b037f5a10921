//! `order_sequences`: valid bars and an arbitrary script of strategy commands run through
//! `run_backtest_with_rules`.
//!
//! The bars are valid by construction (sorted, unique keys, consistent OHLC, prices from ordinary
//! to 1e±300); the engine configuration (execution mode, cash or margin account, margins,
//! financing, costs, fill rules) and up to three risk rules come from the input. A scripted
//! [`Strategy`] plays the commands, one timestamp's worth up to each `Next`: every order type with
//! any time in force and brackets, cancel and modify of recent, raw or future ids, target
//! quantity / value / percent, close and rebalance, with quantities and prices from ordinary to
//! NaN, ±inf, 1e308 and 5e-324. Errors returned by the command buffer are the user's mistakes
//! and are ignored, as a user would catch them. The run must return `Ok` or `Err`, never panic;
//! an `Ok` run's output goes through the invariant checks of the crate, and a run repeated on
//! the same input must give bit-identical output.

#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;

use ml4t_backtest_core::config::AccountKind;
use ml4t_backtest_core::events::OrderEvent;
use ml4t_backtest_core::orders::{OrderKind, OrderRequest, TimeInForce, Trail};
use ml4t_backtest_core::portfolio::Portfolio;
use ml4t_backtest_core::records::Fill;
use ml4t_backtest_core::types::RejectReason;
use ml4t_backtest_core::{
    run_backtest_with_rules, BacktestOutput, MarketData, Result, Strategy, StrategyContext,
    TimestampView,
};
use ml4t_backtest_fuzz::{check_output, FuzzConfig, FuzzRule, Num, Rate, RunFacts};

const MAX_ASSETS: usize = 4;

/// One timestamp of bars.
#[derive(Debug, Arbitrary)]
struct Step {
    /// Which assets have a bar (bit per asset); a step with none is skipped.
    present: u8,
    /// Per asset: close-to-close move in 1/256ths, open gap, and high / low excursions.
    moves: [(i8, i8, u8, u8); MAX_ASSETS],
    volume: [u16; MAX_ASSETS],
    /// Nanoseconds to the next timestamp, minus one.
    gap: u16,
}

/// The starting price level of an asset.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Level {
    Ordinary(u8),
    /// 10^e for e in -300..=300: valid bars of extreme magnitude.
    Extreme(i16),
}

impl Level {
    fn get(self) -> f64 {
        match self {
            Level::Ordinary(x) => 10.0 + f64::from(x),
            Level::Extreme(e) => 10f64.powi(i32::from(e.rem_euclid(601)) - 300),
        }
    }
}

/// A quantity of shares.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Qty {
    Shares(i8),
    Fraction(i16),
    Any(Num),
}

impl Qty {
    fn get(self) -> f64 {
        match self {
            Qty::Shares(x) => f64::from(x),
            Qty::Fraction(x) => f64::from(x) / 64.0,
            Qty::Any(n) => n.get(),
        }
    }
}

/// A price: relative to the asset's last close, or anything.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Px {
    Relative(i8),
    Any(Num),
}

/// An order id to cancel or modify.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum IdRef {
    /// The k-th most recent id returned by a submit.
    Recent(u8),
    /// The id the next submit will get.
    Next,
    Raw(u64),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Kind {
    Market,
    Limit(Px),
    Stop(Px),
    StopLimit(Px, Px),
    MarketOnClose,
    TrailAmount(Px),
    TrailPercent(Rate),
}

#[derive(Debug, Clone, Arbitrary)]
enum Cmd {
    /// Ends this timestamp's commands.
    Next,
    Submit {
        asset: u8,
        qty: Qty,
        kind: Kind,
        tif: u8,
        take_profit: Option<Px>,
        stop_loss: Option<Px>,
    },
    Cancel(IdRef),
    Modify(IdRef, Option<Qty>, Option<Px>, Option<Px>),
    TargetQuantity(u8, Qty),
    TargetValue(u8, Qty),
    TargetPercent(u8, Rate, bool),
    Close(u8),
    Rebalance(Vec<(u8, i8)>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    n_assets: u8,
    levels: [Level; MAX_ASSETS],
    steps: Vec<Step>,
    config: FuzzConfig,
    rules: Vec<FuzzRule>,
    script: Vec<Cmd>,
    /// Timestamps per chunk (0: one chunk).
    chunk: u8,
    order_events: bool,
    repeat: bool,
}

/// The bars of the input: one batch per chunk, plus the facts the checks need.
struct Bars {
    n_assets: u32,
    chunks: Vec<MarketData>,
    timestamps: Vec<i64>,
    closes: Vec<Vec<(u32, f64)>>,
}

fn build_bars(input: &Input) -> Option<Bars> {
    let n_assets = 1 + usize::from(input.n_assets) % MAX_ASSETS;
    let mut close: Vec<f64> = input.levels.iter().map(|l| l.get()).collect();
    let (mut ts, mut asset, mut o, mut h, mut l, mut c, mut v) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut timestamps = Vec::new();
    let mut closes = Vec::new();
    let mut t: i64 = 1_700_000_000_000_000_000;
    for step in input.steps.iter().take(96) {
        let mask = step.present & ((1 << n_assets) - 1);
        if mask == 0 {
            continue;
        }
        let mut row_closes = Vec::new();
        for a in 0..n_assets {
            if mask & (1 << a) == 0 {
                continue;
            }
            let (mv, gap, up, down) = step.moves[a];
            let prev = close[a];
            let open = prev * (1.0 + f64::from(gap) / 512.0);
            let cl = prev * (1.0 + f64::from(mv) / 256.0);
            let high = open.max(cl) * (1.0 + f64::from(up) / 1024.0);
            let low = open.min(cl) * (1.0 - f64::from(down) / 1024.0);
            if !(low > 0.0 && high.is_finite()) {
                return None;
            }
            close[a] = cl;
            ts.push(t);
            asset.push(a as u32);
            o.push(open);
            h.push(high);
            l.push(low);
            c.push(cl);
            v.push(f64::from(step.volume[a]) * 10.0);
            row_closes.push((a as u32, cl));
        }
        timestamps.push(t);
        closes.push(row_closes);
        t += 1 + i64::from(step.gap) * 60_000_000_000;
    }
    if ts.is_empty() {
        return None;
    }
    let fields = ["ts", "asset_id", "open", "high", "low", "close", "volume"];
    let types = [DataType::Int64, DataType::UInt32];
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Field::new(
                    *n,
                    types.get(i).cloned().unwrap_or(DataType::Float64),
                    false,
                )
            })
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts)),
        Arc::new(UInt32Array::from(asset)),
        Arc::new(Float64Array::from(o)),
        Arc::new(Float64Array::from(h)),
        Arc::new(Float64Array::from(l)),
        Arc::new(Float64Array::from(c)),
        Arc::new(Float64Array::from(v)),
    ];
    let batch = RecordBatch::try_new(schema, arrays).expect("bars batch");
    let n_assets = n_assets as u32;
    // Chunks at timestamp boundaries.
    let per_chunk = usize::from(input.chunk % 8);
    let mut chunks = Vec::new();
    let (mut start, mut groups) = (0, 0);
    let ts_col = batch
        .column(0)
        .as_primitive::<arrow_array::types::Int64Type>()
        .values()
        .clone();
    for row in 0..=ts_col.len() {
        let boundary = row == ts_col.len() || (row > 0 && ts_col[row] != ts_col[row - 1]);
        if !boundary {
            continue;
        }
        groups += 1;
        if row == ts_col.len() || (per_chunk > 0 && groups % per_chunk == 0) {
            let chunk = batch.slice(start, row - start);
            chunks.push(MarketData::new(chunk, n_assets).expect("valid bars are accepted"));
            start = row;
        }
    }
    Some(Bars {
        n_assets,
        chunks,
        timestamps,
        closes,
    })
}

/// Plays the script.
struct Scripted<'a> {
    script: &'a [Cmd],
    cursor: usize,
    n_assets: u32,
    ids: Vec<u64>,
    last_close: Vec<f64>,
    order_events: bool,
}

impl Scripted<'_> {
    fn asset(&self, a: u8) -> u32 {
        // Now and then the code just past the universe: an error, not a panic.
        u32::from(a) % (self.n_assets + 1)
    }

    fn price(&self, asset: u32, px: Px) -> f64 {
        match px {
            Px::Relative(x) => {
                let base = self
                    .last_close
                    .get(asset as usize)
                    .copied()
                    .unwrap_or(f64::NAN);
                let base = if base.is_nan() { 100.0 } else { base };
                base * (1.0 + f64::from(x) / 128.0)
            }
            Px::Any(n) => n.get(),
        }
    }

    fn id(&self, r: IdRef, ctx: &StrategyContext<'_>) -> u64 {
        match r {
            IdRef::Recent(k) if !self.ids.is_empty() => {
                self.ids[self.ids.len() - 1 - usize::from(k) % self.ids.len()]
            }
            IdRef::Recent(_) | IdRef::Next => ctx.orders.next_id(),
            IdRef::Raw(id) => id,
        }
    }

    fn play(&mut self, cmd: &Cmd, ctx: &mut StrategyContext<'_>) {
        // The command buffer's errors are the user's mistakes; a user catches them.
        match *cmd {
            Cmd::Next => {}
            Cmd::Submit {
                asset,
                qty,
                kind,
                tif,
                take_profit,
                stop_loss,
            } => {
                let asset = self.asset(asset);
                let kind = match kind {
                    Kind::Market => OrderKind::Market,
                    Kind::Limit(p) => OrderKind::Limit {
                        limit: self.price(asset, p),
                    },
                    Kind::Stop(p) => OrderKind::Stop {
                        stop: self.price(asset, p),
                    },
                    Kind::StopLimit(s, l) => OrderKind::StopLimit {
                        stop: self.price(asset, s),
                        limit: self.price(asset, l),
                    },
                    Kind::MarketOnClose => OrderKind::MarketOnClose,
                    Kind::TrailAmount(p) => OrderKind::TrailingStop {
                        trail: Trail::Amount(self.price(asset, p) / 10.0),
                    },
                    Kind::TrailPercent(r) => OrderKind::TrailingStop {
                        trail: Trail::Percent(r.get()),
                    },
                };
                let request = OrderRequest {
                    asset,
                    quantity: qty.get(),
                    kind,
                    tif: [TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc]
                        [usize::from(tif) % 3],
                    take_profit: take_profit.map(|p| self.price(asset, p)),
                    stop_loss: stop_loss.map(|p| self.price(asset, p)),
                };
                if let Ok(id) = ctx.orders.submit(request) {
                    self.ids.push(id);
                }
            }
            Cmd::Cancel(r) => {
                let id = self.id(r, ctx);
                ctx.orders.cancel_order(id);
            }
            Cmd::Modify(r, q, limit, stop) => {
                let id = self.id(r, ctx);
                let asset = 0;
                let _ = ctx.orders.modify_order(
                    id,
                    q.map(Qty::get),
                    limit.map(|p| self.price(asset, p)),
                    stop.map(|p| self.price(asset, p)),
                );
            }
            Cmd::TargetQuantity(a, q) => {
                let _ = ctx.orders.order_target_quantity(self.asset(a), q.get());
            }
            Cmd::TargetValue(a, q) => {
                let _ = ctx
                    .orders
                    .order_target_value(self.asset(a), q.get() * 100.0);
            }
            Cmd::TargetPercent(a, r, short) => {
                let f = if short { -r.get() } else { r.get() };
                let _ = ctx.orders.order_target_percent(self.asset(a), f);
            }
            Cmd::Close(a) => {
                let _ = ctx.orders.close_position(self.asset(a));
            }
            Cmd::Rebalance(ref weights) => {
                let n = self.n_assets;
                let _ = ctx.orders.rebalance(
                    weights
                        .iter()
                        .take(8)
                        .map(|&(a, w)| (u32::from(a) % (n + 1), f64::from(w) / 128.0)),
                );
            }
        }
    }
}

impl Strategy for Scripted<'_> {
    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()> {
        for row in view.rows() {
            self.last_close[view.data.asset_ids()[row] as usize] = view.data.close()[row];
        }
        while let Some(cmd) = self.script.get(self.cursor) {
            self.cursor += 1;
            if matches!(cmd, Cmd::Next) {
                break;
            }
            self.play(cmd, ctx);
        }
        Ok(())
    }

    fn wants_order_events(&self) -> bool {
        self.order_events
    }

    fn on_order(&mut self, event: &OrderEvent, _portfolio: &Portfolio) -> Result<()> {
        // Id 0 names no order: only a cancel or modify of it (a raw id) is reported, as
        // `not_pending`, under the id the strategy gave.
        assert!(
            event.order_id >= 1 || event.reason == Some(RejectReason::NotPending),
            "order event without an id: {event:?}"
        );
        Ok(())
    }

    fn on_fill(&mut self, fill: &Fill, _portfolio: &Portfolio) -> Result<()> {
        assert!(fill.order_id >= 1, "fill without an order id: {fill:?}");
        Ok(())
    }
}

fn run(input: &Input, bars: &Bars) -> Option<BacktestOutput> {
    let config = input.config.build();
    let rules = input
        .rules
        .iter()
        .take(3)
        .filter_map(FuzzRule::build)
        .collect();
    let mut strategy = Scripted {
        script: &input.script[..input.script.len().min(512)],
        cursor: 0,
        n_assets: bars.n_assets,
        ids: Vec::new(),
        last_close: vec![f64::NAN; bars.n_assets as usize],
        order_events: input.order_events,
    };
    run_backtest_with_rules(bars.chunks.iter(), &mut strategy, &config, rules).ok()
}

/// Two outputs are bit-identical (floats compared by their bits, so NaN equals NaN).
fn assert_identical(a: &BacktestOutput, b: &BacktestOutput) {
    let pairs = [
        (&a.fills, &b.fills),
        (&a.trades, &b.trades),
        (&a.equity, &b.equity),
        (&a.rejections, &b.rejections),
        (&a.financing, &b.financing),
    ];
    for (x, y) in pairs {
        assert_eq!(x.schema(), y.schema());
        for (cx, cy) in x.columns().iter().zip(y.columns()) {
            if cx.data_type() == &DataType::Float64 {
                let bits = |c: &ArrayRef| -> Vec<u64> {
                    c.as_primitive::<Float64Type>()
                        .values()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                assert_eq!(bits(cx), bits(cy), "repeated run differs");
            } else {
                assert_eq!(cx.to_data(), cy.to_data(), "repeated run differs");
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let Some(bars) = build_bars(&input) else {
        return;
    };
    let Some(out) = run(&input, &bars) else {
        return;
    };
    let config = input.config.build();
    check_output(
        &out,
        &RunFacts {
            n_assets: bars.n_assets,
            timestamps: &bars.timestamps,
            closes: &bars.closes,
            initial_cash: config.initial_cash,
            cash_account: config.account.kind == AccountKind::Cash,
        },
    );
    if input.repeat {
        let again = run(&input, &bars).expect("a repeated run fails where the first succeeded");
        assert_identical(&out, &again);
    }
});
