//! Shared helpers for the integration tests: build `MarketData` from small row lists, drive the
//! engine with a scripted strategy, and read the Arrow result batches back into plain rows.

#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::orders::{OrderKind, OrderRequest, TimeInForce, Trail};
use ml4t_backtest_core::portfolio::Portfolio;
use ml4t_backtest_core::records::Fill;
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{
    run_backtest, BacktestError, BacktestOutput, EngineConfig, ExecutionMode, MarketData,
    ShareRounding, Strategy, StrategyContext, TimestampView,
};

// ---------------------------------------------------------------------------------------------
// Market data
// ---------------------------------------------------------------------------------------------

/// One bar: (ts, asset, o, h, l, c, v, features...).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ts: i64,
    pub asset: u32,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub features: Vec<f64>,
}

impl Row {
    /// Attaches feature values (in the order of the feature names given to [`frame`]).
    pub fn feat(mut self, values: &[f64]) -> Row {
        self.features = values.to_vec();
        self
    }

    /// Sets the volume.
    pub fn vol(mut self, volume: f64) -> Row {
        self.volume = volume;
        self
    }
}

/// A bar with volume 1000 and no features.
pub fn bar(ts: i64, asset: u32, open: f64, high: f64, low: f64, close: f64) -> Row {
    Row {
        ts,
        asset,
        open,
        high,
        low,
        close,
        volume: 1_000.0,
        features: Vec::new(),
    }
}

/// A bar whose open, high, low and close are all `price`.
pub fn flat(ts: i64, asset: u32, price: f64) -> Row {
    bar(ts, asset, price, price, price, price)
}

/// A bar opening at `open`, closing at `close`, with high/low 5% outside them.
pub fn oc(ts: i64, asset: u32, open: f64, close: f64) -> Row {
    bar(
        ts,
        asset,
        open,
        open.max(close) * 1.05,
        open.min(close) * 0.95,
        close,
    )
}

/// The normalised Arrow frame of `rows`, with `features` as extra Float64 columns.
pub fn frame(rows: &[Row], features: &[&str]) -> RecordBatch {
    let mut fields = vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("asset_id", DataType::UInt32, false),
    ];
    for name in ["open", "high", "low", "close", "volume"] {
        fields.push(Field::new(name, DataType::Float64, false));
    }
    let f64_col = |f: &dyn Fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
        )),
        Arc::new(UInt32Array::from(
            rows.iter().map(|r| r.asset).collect::<Vec<_>>(),
        )),
        f64_col(&|r| r.open),
        f64_col(&|r| r.high),
        f64_col(&|r| r.low),
        f64_col(&|r| r.close),
        f64_col(&|r| r.volume),
    ];
    for (pos, name) in features.iter().enumerate() {
        fields.push(Field::new(*name, DataType::Float64, false));
        columns.push(f64_col(&|r| {
            r.features.get(pos).copied().unwrap_or(f64::NAN)
        }));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("valid test frame")
}

/// `MarketData` over `rows`, or the validation error.
pub fn try_market(
    rows: &[Row],
    n_assets: u32,
    features: &[&str],
) -> Result<MarketData, BacktestError> {
    MarketData::new(frame(rows, features), n_assets)
}

/// `MarketData` over `rows`; panics on invalid data.
pub fn market(rows: &[Row], n_assets: u32, features: &[&str]) -> MarketData {
    try_market(rows, n_assets, features).expect("valid market data")
}

/// Splits `data` into chunks at each timestamp of `cuts` (a chunk starts at the first row with
/// `ts >= cut`). Empty chunks are dropped.
pub fn split_at(data: &MarketData, cuts: &[i64]) -> Vec<MarketData> {
    let ts = data.ts();
    let mut bounds = vec![0];
    for &cut in cuts {
        bounds.push(ts.partition_point(|&t| t < cut));
    }
    bounds.push(ts.len());
    bounds
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| {
            MarketData::new(data.batch().slice(w[0], w[1] - w[0]), data.n_assets())
                .expect("a slice of valid data is valid")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The default configuration (100k cash, next open, fractional, no costs, shorts allowed).
pub fn config() -> EngineConfig {
    EngineConfig::default()
}

/// Default configuration filling at the same bar's close.
pub fn same_close() -> EngineConfig {
    EngineConfig {
        execution: ExecutionMode::SameClose,
        ..EngineConfig::default()
    }
}

/// Default configuration with integer share rounding.
pub fn integer() -> EngineConfig {
    EngineConfig {
        rounding: ShareRounding::Integer,
        ..EngineConfig::default()
    }
}

/// `base` with commission model `commission`.
pub fn with_commission(base: EngineConfig, commission: CommissionModel) -> EngineConfig {
    EngineConfig { commission, ..base }
}

/// `base` with slippage model `slippage`.
pub fn with_slippage(base: EngineConfig, slippage: SlippageModel) -> EngineConfig {
    EngineConfig { slippage, ..base }
}

// ---------------------------------------------------------------------------------------------
// Order requests
// ---------------------------------------------------------------------------------------------

/// A GTC order of `kind` for `quantity` signed shares of `asset`, no bracket.
pub fn order(asset: u32, quantity: f64, kind: OrderKind) -> OrderRequest {
    OrderRequest {
        asset,
        quantity,
        kind,
        tif: TimeInForce::Gtc,
        take_profit: None,
        stop_loss: None,
    }
}

/// A GTC market order.
pub fn market_order(asset: u32, quantity: f64) -> OrderRequest {
    order(asset, quantity, OrderKind::Market)
}

/// A GTC limit order.
pub fn limit_order(asset: u32, quantity: f64, limit: f64) -> OrderRequest {
    order(asset, quantity, OrderKind::Limit { limit })
}

/// A GTC stop order.
pub fn stop_order(asset: u32, quantity: f64, stop: f64) -> OrderRequest {
    order(asset, quantity, OrderKind::Stop { stop })
}

/// A GTC stop-limit order.
pub fn stop_limit_order(asset: u32, quantity: f64, stop: f64, limit: f64) -> OrderRequest {
    order(asset, quantity, OrderKind::StopLimit { stop, limit })
}

/// A market-on-close order.
pub fn moc_order(asset: u32, quantity: f64) -> OrderRequest {
    order(asset, quantity, OrderKind::MarketOnClose)
}

/// A trailing stop `amount` price units from the water mark.
pub fn trail_amount_order(asset: u32, quantity: f64, amount: f64) -> OrderRequest {
    order(
        asset,
        quantity,
        OrderKind::TrailingStop {
            trail: Trail::Amount(amount),
        },
    )
}

/// A trailing stop `fraction` of the water mark away (0.05 = 5%).
pub fn trail_percent_order(asset: u32, quantity: f64, fraction: f64) -> OrderRequest {
    order(
        asset,
        quantity,
        OrderKind::TrailingStop {
            trail: Trail::Percent(fraction),
        },
    )
}

/// `request` with time in force `tif`.
pub fn with_tif(request: OrderRequest, tif: TimeInForce) -> OrderRequest {
    OrderRequest { tif, ..request }
}

/// `request` with bracket legs.
pub fn with_bracket(
    request: OrderRequest,
    take_profit: Option<f64>,
    stop_loss: Option<f64>,
) -> OrderRequest {
    OrderRequest {
        take_profit,
        stop_loss,
        ..request
    }
}

// ---------------------------------------------------------------------------------------------
// Scripted strategy
// ---------------------------------------------------------------------------------------------

/// One strategy call.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// `submit_order(asset, quantity)`
    Submit(u32, f64),
    /// `order_target_quantity(asset, target)`
    TargetQuantity(u32, f64),
    /// `order_target_value(asset, value)`
    TargetValue(u32, f64),
    /// `order_target_percent(asset, fraction)`
    TargetPercent(u32, f64),
    /// `close_position(asset)`
    Close(u32),
    /// `rebalance(weights)`
    Rebalance(Vec<(u32, f64)>),
    /// `submit(request)`: any order type; the id it gets is appended to `Scripted::ids`.
    Order(OrderRequest),
    /// `cancel_order(id)`
    Cancel(u64),
}

/// What the strategy saw at one timestamp (before issuing its commands).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub index: u64,
    pub ts: i64,
    pub cash: f64,
    pub equity: f64,
    pub positions: Vec<f64>,
    pub pending: Vec<f64>,
    /// Assets with a bar at this timestamp.
    pub assets: Vec<u32>,
}

/// Issues `script` commands at the given timestamp indexes (0-based, counted over the whole
/// run) and records what it saw and the fills it was told about.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    pub script: Vec<(u64, Cmd)>,
    pub n_assets: u32,
    pub seen: Vec<Seen>,
    pub fills: Vec<Fill>,
    /// Ids returned by `Cmd::Order` submissions, in call order.
    pub ids: Vec<u64>,
    pub starts: u32,
    pub chunks: u32,
    pub ended: bool,
}

impl Scripted {
    /// A strategy issuing `script`, a list of `(timestamp index, command)`.
    pub fn new(script: Vec<(u64, Cmd)>) -> Self {
        Scripted {
            script,
            ..Scripted::default()
        }
    }

    /// What the strategy saw at timestamp index `index`.
    pub fn at(&self, index: u64) -> &Seen {
        self.seen
            .iter()
            .find(|s| s.index == index)
            .expect("strategy was called at this index")
    }
}

impl Strategy for Scripted {
    fn on_start(&mut self, n_assets: u32) -> ml4t_backtest_core::Result<()> {
        self.n_assets = n_assets;
        self.starts += 1;
        Ok(())
    }

    fn on_chunk(&mut self, _data: &MarketData) -> ml4t_backtest_core::Result<()> {
        self.chunks += 1;
        Ok(())
    }

    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> ml4t_backtest_core::Result<()> {
        let assets = view.data.asset_ids()[view.rows()].to_vec();
        self.seen.push(Seen {
            index: view.index,
            ts: view.ts,
            cash: ctx.cash(),
            equity: ctx.equity(),
            positions: (0..self.n_assets).map(|a| ctx.position(a)).collect(),
            pending: (0..self.n_assets).map(|a| ctx.pending(a)).collect(),
            assets,
        });
        for (index, cmd) in &self.script {
            if *index != view.index {
                continue;
            }
            match cmd {
                Cmd::Submit(a, q) => {
                    ctx.orders.submit_order(*a, *q)?;
                }
                Cmd::TargetQuantity(a, q) => ctx.orders.order_target_quantity(*a, *q)?,
                Cmd::TargetValue(a, v) => ctx.orders.order_target_value(*a, *v)?,
                Cmd::TargetPercent(a, p) => ctx.orders.order_target_percent(*a, *p)?,
                Cmd::Close(a) => ctx.orders.close_position(*a)?,
                Cmd::Rebalance(w) => ctx.orders.rebalance(w.iter().copied())?,
                Cmd::Order(request) => self.ids.push(ctx.orders.submit(*request)?),
                Cmd::Cancel(id) => ctx.orders.cancel_order(*id),
            }
        }
        Ok(())
    }

    fn on_fill(&mut self, fill: &Fill, _portfolio: &Portfolio) -> ml4t_backtest_core::Result<()> {
        self.fills.push(*fill);
        Ok(())
    }

    fn on_end(&mut self, _portfolio: &Portfolio) -> ml4t_backtest_core::Result<()> {
        self.ended = true;
        Ok(())
    }
}

/// Runs `strategy` over `chunks`; panics on error.
pub fn run<S: Strategy>(
    chunks: &[MarketData],
    strategy: &mut S,
    cfg: &EngineConfig,
) -> BacktestOutput {
    run_backtest(chunks.iter(), strategy, cfg).expect("backtest runs")
}

/// Runs `script` over one chunk; the engine's error instead of a panic.
pub fn try_run_script(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
) -> Result<(BacktestOutput, Scripted), BacktestError> {
    let mut strategy = Scripted::new(script);
    let out = run_backtest(std::iter::once(data), &mut strategy, cfg)?;
    Ok((out, strategy))
}

/// Runs `script` over one chunk; returns the output and the strategy (for what it saw).
pub fn run_script(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
) -> (BacktestOutput, Scripted) {
    let mut strategy = Scripted::new(script);
    let out = run(std::slice::from_ref(data), &mut strategy, cfg);
    (out, strategy)
}

// ---------------------------------------------------------------------------------------------
// Reading results
// ---------------------------------------------------------------------------------------------

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("result batch has no column '{name}'"))
}

/// A Float64 column as a vector.
pub fn f64s(batch: &RecordBatch, name: &str) -> Vec<f64> {
    column(batch, name)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec()
}

/// An Int64 column as a vector.
pub fn i64s(batch: &RecordBatch, name: &str) -> Vec<i64> {
    column(batch, name)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// A UInt32 column as a vector.
pub fn u32s(batch: &RecordBatch, name: &str) -> Vec<u32> {
    column(batch, name)
        .as_primitive::<UInt32Type>()
        .values()
        .to_vec()
}

/// A UInt64 column as a vector.
pub fn u64s(batch: &RecordBatch, name: &str) -> Vec<u64> {
    column(batch, name)
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec()
}

/// A UInt8 column as a vector.
pub fn u8s(batch: &RecordBatch, name: &str) -> Vec<u8> {
    column(batch, name)
        .as_primitive::<UInt8Type>()
        .values()
        .to_vec()
}

/// A Boolean column as a vector.
pub fn bools(batch: &RecordBatch, name: &str) -> Vec<bool> {
    let array = column(batch, name).as_boolean();
    (0..array.len()).map(|i| array.value(i)).collect()
}

/// One row of `BacktestOutput::fills`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillRow {
    pub order_id: u64,
    pub ts: i64,
    pub asset: u32,
    /// 0 = buy, 1 = sell.
    pub side: u8,
    /// Absolute shares.
    pub quantity: f64,
    pub price: f64,
    pub reference_price: f64,
    pub slippage: f64,
    pub commission: f64,
    /// Order type code (0 market, 1 limit, 2 stop, 3 stop_limit, 4 market_on_close,
    /// 5 trailing_stop).
    pub order_type: u8,
    /// True when the order still had shares left after this fill.
    pub partial: bool,
}

impl FillRow {
    /// Signed shares (+ bought).
    pub fn signed(&self) -> f64 {
        if self.side == 0 {
            self.quantity
        } else {
            -self.quantity
        }
    }
}

/// The fills, in execution order.
pub fn fills(out: &BacktestOutput) -> Vec<FillRow> {
    let b = &out.fills;
    let (id, ts, asset, side) = (
        u64s(b, "order_id"),
        i64s(b, "ts"),
        u32s(b, "asset_id"),
        u8s(b, "side"),
    );
    let (q, p, r, s, c) = (
        f64s(b, "quantity"),
        f64s(b, "price"),
        f64s(b, "reference_price"),
        f64s(b, "slippage"),
        f64s(b, "commission"),
    );
    let (order_type, partial) = (u8s(b, "order_type"), bools(b, "partial"));
    (0..b.num_rows())
        .map(|i| FillRow {
            order_id: id[i],
            ts: ts[i],
            asset: asset[i],
            side: side[i],
            quantity: q[i],
            price: p[i],
            reference_price: r[i],
            slippage: s[i],
            commission: c[i],
            order_type: order_type[i],
            partial: partial[i],
        })
        .collect()
}

/// One row of `BacktestOutput::trades`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRow {
    pub asset: u32,
    pub long: bool,
    pub entry_ts: i64,
    pub exit_ts: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    pub quantity: f64,
    pub gross_pnl: f64,
    pub commission: f64,
    pub bars_held: u64,
    /// 0 = signal, 1 = end_of_data, 2 = take_profit, 3 = stop_loss, 4 = trailing_stop.
    pub exit_reason: u8,
    pub open: bool,
}

/// The trades, in the order they were recorded.
pub fn trades(out: &BacktestOutput) -> Vec<TradeRow> {
    let b = &out.trades;
    let (asset, long, entry_ts, exit_ts) = (
        u32s(b, "asset_id"),
        bools(b, "long"),
        i64s(b, "entry_ts"),
        i64s(b, "exit_ts"),
    );
    let (ep, xp, q, g, c) = (
        f64s(b, "entry_price"),
        f64s(b, "exit_price"),
        f64s(b, "quantity"),
        f64s(b, "gross_pnl"),
        f64s(b, "commission"),
    );
    let (bars, reason, open) = (
        u64s(b, "bars_held"),
        u8s(b, "exit_reason"),
        bools(b, "open"),
    );
    (0..b.num_rows())
        .map(|i| TradeRow {
            asset: asset[i],
            long: long[i],
            entry_ts: entry_ts[i],
            exit_ts: exit_ts[i],
            entry_price: ep[i],
            exit_price: xp[i],
            quantity: q[i],
            gross_pnl: g[i],
            commission: c[i],
            bars_held: bars[i],
            exit_reason: reason[i],
            open: open[i],
        })
        .collect()
}

/// One row of `BacktestOutput::equity`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EquityRow {
    pub ts: i64,
    pub cash: f64,
    pub long_value: f64,
    pub short_value: f64,
    pub positions_value: f64,
    pub equity: f64,
}

/// The equity curve, one row per timestamp.
pub fn equity(out: &BacktestOutput) -> Vec<EquityRow> {
    let b = &out.equity;
    let ts = i64s(b, "ts");
    let (cash, long, short, pos, eq) = (
        f64s(b, "cash"),
        f64s(b, "long_value"),
        f64s(b, "short_value"),
        f64s(b, "positions_value"),
        f64s(b, "equity"),
    );
    (0..b.num_rows())
        .map(|i| EquityRow {
            ts: ts[i],
            cash: cash[i],
            long_value: long[i],
            short_value: short[i],
            positions_value: pos[i],
            equity: eq[i],
        })
        .collect()
}

/// One row of `BacktestOutput::rejections`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RejectionRow {
    pub order_id: u64,
    pub ts: i64,
    pub asset: u32,
    pub quantity: f64,
    /// 0 = no_price, 1 = short_not_allowed, 2 = end_of_data, 3 = expired, 4 = not_pending.
    pub reason: u8,
}

/// The rejected orders.
pub fn rejections(out: &BacktestOutput) -> Vec<RejectionRow> {
    let b = &out.rejections;
    let (id, ts, asset, q, reason) = (
        u64s(b, "order_id"),
        i64s(b, "ts"),
        u32s(b, "asset_id"),
        f64s(b, "quantity"),
        u8s(b, "reason"),
    );
    (0..b.num_rows())
        .map(|i| RejectionRow {
            order_id: id[i],
            ts: ts[i],
            asset: asset[i],
            quantity: q[i],
            reason: reason[i],
        })
        .collect()
}

/// Every column of `batch` as raw bit patterns (floats by `to_bits`, so NaNs compare too).
pub fn batch_bits(batch: &RecordBatch) -> Vec<(String, Vec<u64>)> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| {
            let bits: Vec<u64> = match array.data_type() {
                DataType::Float64 => array
                    .as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
                DataType::Int64 => array
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u64)
                    .collect(),
                DataType::UInt64 => array.as_primitive::<UInt64Type>().values().to_vec(),
                DataType::UInt32 => array
                    .as_primitive::<UInt32Type>()
                    .values()
                    .iter()
                    .map(|&v| u64::from(v))
                    .collect(),
                DataType::UInt8 => array
                    .as_primitive::<UInt8Type>()
                    .values()
                    .iter()
                    .map(|&v| u64::from(v))
                    .collect(),
                DataType::Boolean => {
                    let b = array.as_boolean();
                    (0..b.len()).map(|i| u64::from(b.value(i))).collect()
                }
                other => panic!("unexpected result column type {other}"),
            };
            (field.name().clone(), bits)
        })
        .collect()
}

/// Bit-level equality of every result batch of two runs.
pub fn same_output(a: &BacktestOutput, b: &BacktestOutput) -> bool {
    [
        (&a.fills, &b.fills),
        (&a.trades, &b.trades),
        (&a.equity, &b.equity),
        (&a.rejections, &b.rejections),
        (&a.orders, &b.orders),
        (&a.order_events, &b.order_events),
    ]
    .iter()
    .all(|(x, y)| x.schema() == y.schema() && batch_bits(x) == batch_bits(y))
}

/// Asserts bit-level equality of two runs, naming the first batch that differs.
pub fn assert_same_output(a: &BacktestOutput, b: &BacktestOutput) {
    for (name, x, y) in [
        ("fills", &a.fills, &b.fills),
        ("trades", &a.trades, &b.trades),
        ("equity", &a.equity, &b.equity),
        ("rejections", &a.rejections, &b.rejections),
        ("orders", &a.orders, &b.orders),
        ("order_events", &a.order_events, &b.order_events),
    ] {
        assert_eq!(x.schema(), y.schema(), "{name}: schemas differ");
        assert_eq!(batch_bits(x), batch_bits(y), "{name}: values differ");
    }
}

/// The order journal's invariants: one row per order; every fill and every rejection (but a
/// `not_pending` one, which names another order, and id 0) belongs to an order with a row;
/// each order's events are in time order, its filled total is the sum of its fills, and
/// exactly its last event is terminal, leaving nothing open.
pub fn check_journal(out: &BacktestOutput) -> Result<(), String> {
    use ml4t_backtest_core::events::JournalStatus;
    use std::collections::HashMap;
    const NOT_PENDING: u8 = 4;
    let ids = u64s(&out.orders, "order_id");
    let mut known: HashMap<u64, usize> = HashMap::new();
    for (row, &id) in ids.iter().enumerate() {
        if id == 0 || known.insert(id, row).is_some() {
            return Err(format!("order id {id} recorded twice (or zero)"));
        }
    }
    let mut fill_sum: HashMap<u64, f64> = HashMap::new();
    for f in fills(out) {
        if !known.contains_key(&f.order_id) {
            return Err(format!("fill of an order without a row: {f:?}"));
        }
        *fill_sum.entry(f.order_id).or_default() += f.signed();
    }
    for r in rejections(out) {
        if r.order_id != 0 && r.reason != NOT_PENDING && !known.contains_key(&r.order_id) {
            return Err(format!("rejection of an order without a row: {r:?}"));
        }
    }
    let e = &out.order_events;
    let (event_ids, ts, statuses) = (u64s(e, "order_id"), i64s(e, "ts"), u8s(e, "status"));
    let (quantity, remaining) = (f64s(e, "quantity"), f64s(e, "remaining"));
    // Per order: last ts, filled sum, whether it ended, its last remaining.
    let mut state: HashMap<u64, (i64, f64, bool, f64)> = HashMap::new();
    for i in 0..e.num_rows() {
        let id = event_ids[i];
        if !known.contains_key(&id) {
            return Err(format!("event of an order without a row: {id}"));
        }
        let status = JournalStatus::NAMES[statuses[i] as usize];
        let entry = state.entry(id).or_insert((i64::MIN, 0.0, false, 0.0));
        if entry.2 {
            return Err(format!("order {id}: '{status}' after its terminal event"));
        }
        if ts[i] < entry.0 {
            return Err(format!(
                "order {id}: events out of time order at '{status}'"
            ));
        }
        entry.0 = ts[i];
        if matches!(status, "filled" | "partially_filled") {
            entry.1 += quantity[i];
        }
        entry.2 = matches!(status, "filled" | "cancelled" | "expired" | "rejected");
        entry.3 = remaining[i];
    }
    for &id in &ids {
        let Some(&(_, filled, ended, left)) = state.get(&id) else {
            return Err(format!("order {id} has no events"));
        };
        if !ended || left != 0.0 {
            return Err(format!("order {id} does not end (remaining {left})"));
        }
        let fills = fill_sum.get(&id).copied().unwrap_or(0.0);
        if !close_enough(filled, fills) {
            return Err(format!(
                "order {id}: journal filled {filled}, fills {fills}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// True when `a` and `b` agree to 1e-9 relative (absolute below 1).
pub fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(a.abs()).max(1.0)
}

/// Asserts [`close_enough`] with a message naming `what`.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        close_enough(actual, expected),
        "{what}: got {actual}, expected {expected} (diff {})",
        actual - expected
    );
}

/// Runs `script` over one chunk with risk `rules` attached.
pub fn run_script_with_rules(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
    rules: Vec<ml4t_backtest_core::risk::BoxedRule>,
) -> (BacktestOutput, Scripted) {
    let mut strategy = Scripted::new(script);
    let out = ml4t_backtest_core::engine::run_backtest_with_rules(
        std::iter::once(data),
        &mut strategy,
        cfg,
        rules,
    )
    .expect("backtest runs");
    (out, strategy)
}

// ---------------------------------------------------------------------------------------------
// Output hashes (the pinned tests)
// ---------------------------------------------------------------------------------------------

/// FNV-1a over bytes.
struct Fnv(u64);

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

/// Hashes every column name, null and value bit of `batch`.
fn hash_batch(hash: &mut Fnv, name: &str, batch: &RecordBatch) {
    hash.eat(name.as_bytes());
    hash.eat(&(batch.num_rows() as u64).to_le_bytes());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        hash.eat(field.name().as_bytes());
        for i in 0..column.len() {
            hash.eat(&[u8::from(column.is_null(i))]);
        }
        match column.data_type() {
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .for_each(|v| hash.eat(&v.to_bits().to_le_bytes())),
            DataType::Int64 => column
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .for_each(|v| hash.eat(&v.to_le_bytes())),
            DataType::UInt64 => column
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .for_each(|v| hash.eat(&v.to_le_bytes())),
            DataType::UInt32 => column
                .as_primitive::<UInt32Type>()
                .values()
                .iter()
                .for_each(|v| hash.eat(&v.to_le_bytes())),
            DataType::UInt8 => column
                .as_primitive::<UInt8Type>()
                .values()
                .iter()
                .for_each(|v| hash.eat(&[*v])),
            DataType::Boolean => {
                let values = column.as_boolean();
                (0..values.len()).for_each(|i| hash.eat(&[u8::from(values.value(i))]));
            }
            other => panic!("column {name}.{} of unhashed type {other}", field.name()),
        }
    }
}

/// Every result batch of `out`, named, in a fixed order.
pub fn output_batches(out: &BacktestOutput) -> [(&'static str, &RecordBatch); 10] {
    [
        ("fills", &out.fills),
        ("trades", &out.trades),
        ("equity", &out.equity),
        ("rejections", &out.rejections),
        ("financing", &out.financing),
        ("splits", &out.splits),
        ("cash", &out.cash),
        ("orders", &out.orders),
        ("order_events", &out.order_events),
        ("non_member_pnl", &out.non_member_pnl),
    ]
}

/// FNV-1a of every column name, null and value bit of every result batch: what the pinned
/// tests compare with the hash taken before a change.
pub fn hash_output(out: &BacktestOutput) -> u64 {
    let mut hash = Fnv(0xCBF2_9CE4_8422_2325);
    for (name, batch) in output_batches(out) {
        hash_batch(&mut hash, name, batch);
    }
    hash.0
}
