//! Shared pieces of the benchmark harness: synthetic data, the foundation scenarios and a
//! peak-heap tracking allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use ml4t_backtest_core::actions::CorporateAction;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::risk::rules::{
    Distance, StopLoss, TakeProfit, TrailMark, TrailUpdate, TrailingStop,
};
use ml4t_backtest_core::risk::BoxedRule;
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy, TopKStrategy};
use ml4t_backtest_core::{
    run_backtest, run_backtest_with_rules, BacktestOutput, Engine, EngineConfig, MarketData,
};

/// A global allocator that tracks the live and the peak number of heap bytes.
pub struct PeakAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

/// Resets the peak to the current live heap and returns the live heap.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Peak heap bytes since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// A small, fast, deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of 4 uniforms, rescaled): cheap and good enough here.
    pub fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * (3.0f64).sqrt()
    }
}

/// `n_assets × n_bars` random-walk bars with a `signal` (±1) and a `score` column, sorted by
/// (ts, asset). `step_ns` is the bar spacing. The signal flips side with probability
/// `flip_probability` per bar (0.5 gives an i.i.d. coin flip: the worst case for the engine).
pub fn make_data(
    n_assets: u32,
    n_bars: usize,
    step_ns: i64,
    flip_probability: f64,
    seed: u64,
) -> MarketData {
    let rows = n_assets as usize * n_bars;
    let mut rng = Rng::new(seed);
    let mut ts = Vec::with_capacity(rows);
    let mut asset = Vec::with_capacity(rows);
    let (mut open, mut high, mut low, mut close, mut volume) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    let mut signal = Vec::with_capacity(rows);
    let mut score = Vec::with_capacity(rows);
    let mut last = vec![100.0f64; n_assets as usize];
    let mut side = vec![1.0f64; n_assets as usize];
    for bar in 0..n_bars {
        for a in 0..n_assets {
            let prev = last[a as usize];
            let o = prev * (1.0 + 0.002 * rng.normal());
            let c = o * (1.0 + 0.01 * rng.normal());
            let h = o.max(c) * (1.0 + 0.003 * rng.uniform());
            let l = o.min(c) * (1.0 - 0.003 * rng.uniform());
            last[a as usize] = c;
            ts.push(1_577_836_800_000_000_000 + bar as i64 * step_ns);
            asset.push(a);
            open.push(o);
            high.push(h);
            low.push(l);
            close.push(c);
            volume.push(1_000.0 + (rng.uniform() * 100_000.0).floor());
            let s = rng.normal();
            score.push(s);
            if rng.uniform() < flip_probability {
                side[a as usize] = -side[a as usize];
            }
            signal.push(side[a as usize]);
        }
    }
    market_data(
        ts,
        asset,
        [open, high, low, close, volume],
        vec![("signal", signal), ("score", score)],
        n_assets,
    )
}

/// The engine's frame of these columns (`ts`, `asset_id`, `open high low close volume`, then
/// the named Float64 features), checked.
fn market_data(
    ts: Vec<i64>,
    asset: Vec<u32>,
    prices: [Vec<f64>; 5],
    features: Vec<(&str, Vec<f64>)>,
    n_assets: u32,
) -> MarketData {
    let mut fields = vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("asset_id", DataType::UInt32, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts)),
        Arc::new(UInt32Array::from(asset)),
    ];
    let names = ["open", "high", "low", "close", "volume"];
    for (name, values) in names.into_iter().zip(prices).chain(features) {
        fields.push(Field::new(name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(values)));
    }
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("consistent columns");
    MarketData::new(batch, n_assets).expect("generated data is valid")
}

/// Issue 18's W1 in the core alone: one asset, `n_bars` minute bars of a log random walk (close
/// steps N(0, 0.1 %), the open 0.02 % off the previous close, a spread of |N(0, 0.05 %)| of the
/// close), with the signal +1 where SMA(close, 10) > SMA(close, 50) and -1 elsewhere, the rule
/// of `benches/workloads.py` (this crate's generator, so not the same numbers: about the same
/// share of flips, 2.7 % of the bars fill).
pub fn make_w1(n_bars: usize, seed: u64) -> MarketData {
    const FAST: usize = 10;
    const SLOW: usize = 50;
    let mut rng = Rng::new(seed);
    let mut close = Vec::with_capacity(n_bars);
    let mut level = 0.0f64;
    for _ in 0..n_bars {
        level += 0.001 * rng.normal();
        close.push(100.0 * level.exp());
    }
    let mut open = Vec::with_capacity(n_bars);
    let (mut high, mut low) = (Vec::with_capacity(n_bars), Vec::with_capacity(n_bars));
    for (i, &c) in close.iter().enumerate() {
        let o = if i == 0 {
            100.0
        } else {
            close[i - 1] * (1.0 + 0.0002 * rng.normal())
        };
        let spread = (0.0005 * rng.normal()).abs() * c;
        open.push(o);
        high.push(o.max(c) + spread);
        low.push(o.min(c) - spread);
    }
    let (mut fast, mut slow) = (0.0f64, 0.0f64);
    let mut signal = Vec::with_capacity(n_bars);
    for i in 0..n_bars {
        fast += close[i];
        slow += close[i];
        if i >= FAST {
            fast -= close[i - FAST];
        }
        if i >= SLOW {
            slow -= close[i - SLOW];
        }
        let up = i + 1 >= SLOW && fast / FAST as f64 > slow / SLOW as f64;
        signal.push(if up { 1.0 } else { -1.0 });
    }
    let ts: Vec<i64> = (0..n_bars as i64)
        .map(|i| 1_577_836_800_000_000_000 + i * 60_000_000_000)
        .collect();
    let volume = vec![1_000_000.0; n_bars];
    market_data(
        ts,
        vec![0u32; n_bars],
        [open, high, low, close, volume],
        vec![("signal", signal)],
        1,
    )
}

/// W1's run as `benches/workloads.py` configures it: 1M cash, 0.1 % commission, next open, a
/// margin account without initial margin (maintenance checked), 100 shares long on +1, flat
/// on -1.
pub fn run_w1(data: &MarketData) -> BacktestOutput {
    let config = EngineConfig {
        initial_cash: 1_000_000.0,
        commission: CommissionModel::Percent {
            rate: 0.001,
            minimum: 0.0,
        },
        account: ml4t_backtest_core::config::AccountRules {
            initial_margin: None,
            ..ml4t_backtest_core::config::AccountRules::default()
        },
        ..EngineConfig::default()
    };
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .expect("valid strategy");
    run_backtest([data], &mut strategy, &config).expect("run succeeds")
}

/// 0.1% commission, next-open fills: the configuration of the foundation benchmarks.
pub fn bench_config() -> EngineConfig {
    EngineConfig {
        commission: CommissionModel::Percent {
            rate: 0.001,
            minimum: 0.0,
        },
        // The scenarios measure the loop on the trades they were defined with; the default
        // Reg-T margin would refuse some of (a)'s 100-share entries as its price path climbs.
        account: ml4t_backtest_core::config::AccountRules::unlimited(),
        ..EngineConfig::default()
    }
}

/// Scenario (a): 100 shares long on +1, flat on -1, with the built-in signal strategy.
pub fn run_signal(data: &MarketData) -> BacktestOutput {
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .expect("valid strategy");
    run_backtest([data], &mut strategy, &bench_config()).expect("run succeeds")
}

/// Scenario (a) with a bracket on every entry: 4% take-profit, 2% stop-loss.
pub fn run_signal_bracket(data: &MarketData) -> BacktestOutput {
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .and_then(|s| s.with_bracket(0.04, 0.02))
            .expect("valid strategy");
    run_backtest([data], &mut strategy, &bench_config()).expect("run succeeds")
}

/// The three position rules of the risk benchmarks: a 2% stop-loss, a 4% take-profit and a 3%
/// trailing stop (closes, lagged).
pub fn three_rules() -> Vec<BoxedRule> {
    vec![
        Box::new(StopLoss::new(Distance::Percent(0.02)).expect("valid rule")),
        Box::new(TakeProfit::new(Distance::Percent(0.04)).expect("valid rule")),
        Box::new(
            TrailingStop::new(
                Distance::Percent(0.03),
                TrailMark::Close,
                TrailUpdate::Lagged,
            )
            .expect("valid rule"),
        ),
    ]
}

/// The same three rules set so wide that they never fire: the per-bar cost of evaluating them,
/// without the extra trades they cause.
pub fn three_idle_rules() -> Vec<BoxedRule> {
    vec![
        Box::new(StopLoss::new(Distance::Percent(0.9)).expect("valid rule")),
        Box::new(TakeProfit::new(Distance::Percent(100.0)).expect("valid rule")),
        Box::new(
            TrailingStop::new(
                Distance::Percent(0.9),
                TrailMark::Close,
                TrailUpdate::Lagged,
            )
            .expect("valid rule"),
        ),
    ]
}

/// Scenario (a) with three rules that never fire.
pub fn run_signal_idle_rules(data: &MarketData) -> BacktestOutput {
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .expect("valid strategy");
    run_backtest_with_rules([data], &mut strategy, &bench_config(), three_idle_rules())
        .expect("run succeeds")
}

/// Scenario (a) with StopLoss, TakeProfit and TrailingStop attached.
pub fn run_signal_rules(data: &MarketData) -> BacktestOutput {
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .expect("valid strategy");
    run_backtest_with_rules([data], &mut strategy, &bench_config(), three_rules())
        .expect("run succeeds")
}

/// Scenario (b) in Rust with the three rules on every position.
pub fn run_top_k_rules(data: &MarketData) -> BacktestOutput {
    let mut strategy = TopKStrategy::new("score", 25, 0, 1).expect("valid strategy");
    run_backtest_with_rules([data], &mut strategy, &bench_config(), three_rules())
        .expect("run succeeds")
}

/// Scenario (b) in Rust: top 25 by score at equal weight, rebalanced daily.
pub fn run_top_k(data: &MarketData) -> BacktestOutput {
    let mut strategy = TopKStrategy::new("score", 25, 0, 1).expect("valid strategy");
    run_backtest([data], &mut strategy, &bench_config()).expect("run succeeds")
}

/// The mixed book of issue 15 at scenario (b)'s size: the first 50 assets are futures
/// (multiplier 10, 0.01 tick, 10% initial and 5% maintenance margin, $1 per contract), the other
/// 450 equities; top 25 by score at equal weight, rebalanced daily.
pub fn run_top_k_mixed(data: &MarketData) -> BacktestOutput {
    use ml4t_backtest_core::instruments::{AssetClass, InstrumentSpec, Instruments, MarginRule};
    let future = InstrumentSpec {
        class: AssetClass::Future,
        multiplier: 10.0,
        tick_size: Some(0.01),
        margin_initial: Some(MarginRule::Fraction(0.1)),
        margin_maintenance: Some(MarginRule::Fraction(0.05)),
        commission_per_contract: Some(1.0),
        ..InstrumentSpec::default()
    };
    let specs = (0..data.n_assets())
        .map(|a| {
            if a < 50 {
                future
            } else {
                InstrumentSpec::default()
            }
        })
        .collect();
    let mut strategy = TopKStrategy::new("score", 25, 0, 1).expect("valid strategy");
    let mut engine =
        ml4t_backtest_core::Engine::new(bench_config(), data.n_assets()).expect("valid config");
    engine
        .set_instruments(Instruments::new(specs).expect("valid specs"))
        .expect("one spec per asset");
    engine
        .process_chunk(data, &mut strategy)
        .expect("run succeeds");
    engine.finish(&mut strategy).expect("run succeeds")
}

/// A cash dividend of 0.25 on every asset every 63 bars (a quarter of daily bars), dated at
/// the bars of `data` (`make_data`'s timestamps): scenario (b) with corporate actions.
pub fn quarterly_dividends(data: &MarketData) -> Vec<CorporateAction> {
    let ts = data.ts();
    let n_assets = data.n_assets();
    let mut stamps: Vec<i64> = ts.to_vec();
    stamps.dedup();
    let mut out = Vec::new();
    for &t in stamps.iter().skip(63).step_by(63) {
        for asset in 0..n_assets {
            out.push(CorporateAction {
                ts: t,
                asset,
                split_ratio: 1.0,
                dividend: 0.25,
            });
        }
    }
    out
}

/// Scenario (b) with a dividend on every asset every quarter ([`quarterly_dividends`]).
pub fn run_top_k_dividends(data: &MarketData) -> BacktestOutput {
    let mut strategy = TopKStrategy::new("score", 25, 0, 1).expect("valid strategy");
    let mut engine = Engine::new(bench_config(), data.n_assets()).expect("valid config");
    engine
        .set_corporate_actions(quarterly_dividends(data))
        .expect("valid actions");
    engine
        .process_chunk(data, &mut strategy)
        .expect("run succeeds");
    engine.finish(&mut strategy).expect("run succeeds")
}
