//! The loop is compiled once for "plain" runs (none of the per-timestamp features) and once for
//! the general case, each for single-row and multi-row timestamp groups: a run must give the
//! same bits through either. A strategy that listens to order events makes a run non-plain
//! without changing its results, so each plain run here is compared with its listening twin.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::Array;

use common::{bar, market, output_batches, split_at, Row};

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::config::AccountRules;
use ml4t_backtest_core::events::OrderEvent;
use ml4t_backtest_core::portfolio::Portfolio;
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy};
use ml4t_backtest_core::{
    run_backtest, BacktestOutput, EngineConfig, MarketData, Result, Strategy, StrategyContext,
    TimestampView,
};

/// `S`, listening to order events (and ignoring them).
struct Listening<S>(S);

impl<S: Strategy> Strategy for Listening<S> {
    fn on_start(&mut self, n_assets: u32) -> Result<()> {
        self.0.on_start(n_assets)
    }

    fn on_chunk(&mut self, data: &MarketData) -> Result<()> {
        self.0.on_chunk(data)
    }

    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()> {
        self.0.on_timestamp(view, ctx)
    }

    fn wants_order_events(&self) -> bool {
        true
    }

    fn on_order(&mut self, _event: &OrderEvent, _portfolio: &Portfolio) -> Result<()> {
        Ok(())
    }
}

/// Seeded bars for `n_assets` over `n` timestamps; with `gaps`, some assets miss some bars (so
/// groups have one to `n_assets` rows). The signal flips between long, short and flat.
fn data(n: usize, n_assets: u32, gaps: bool) -> MarketData {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut level = vec![100.0f64; n_assets as usize];
    let mut rows: Vec<Row> = Vec::new();
    for i in 0..n {
        for asset in 0..n_assets {
            let u = next();
            if gaps && u < 0.3 && asset != (i as u32 % n_assets) {
                continue;
            }
            let prev = level[asset as usize];
            let close = prev * (1.0 + 0.02 * (next() - 0.5));
            level[asset as usize] = close;
            let signal = match (next() * 10.0) as u32 {
                0 => 0.0,
                1..=4 => -1.0,
                _ => 1.0,
            };
            let ts = 1_600_000_000_000_000_000 + i as i64 * 60_000_000_000;
            rows.push(
                bar(
                    ts,
                    asset,
                    prev,
                    prev.max(close) * 1.001,
                    prev.min(close) * 0.999,
                    close,
                )
                .feat(&[signal]),
            );
        }
    }
    market(&rows, n_assets, &["signal"])
}

/// W1's account (margin, maintenance checked), with `cash`.
fn w1_config(cash: f64) -> EngineConfig {
    EngineConfig {
        initial_cash: cash,
        commission: CommissionModel::Percent {
            rate: 0.001,
            minimum: 0.0,
        },
        account: AccountRules {
            initial_margin: None,
            ..AccountRules::default()
        },
        ..EngineConfig::default()
    }
}

fn signal(quantity: f64, allow_short: bool) -> SignalStrategy {
    SignalStrategy::new(
        "signal",
        SignalSizing::Quantity(quantity),
        0.5,
        -0.5,
        allow_short,
    )
    .expect("valid strategy")
}

/// Every batch of `a` and `b` has the same schema, rows, nulls and value bytes.
fn assert_same_bits(a: &BacktestOutput, b: &BacktestOutput) {
    for ((name, x), (_, y)) in output_batches(a).into_iter().zip(output_batches(b)) {
        assert_eq!(x.schema(), y.schema(), "{name}: schema");
        assert_eq!(x.num_rows(), y.num_rows(), "{name}: rows");
        for (field, (cx, cy)) in x
            .schema()
            .fields()
            .iter()
            .zip(x.columns().iter().zip(y.columns()))
        {
            let (dx, dy) = (cx.to_data(), cy.to_data());
            assert_eq!(dx.nulls(), dy.nulls(), "{name}.{}: nulls", field.name());
            for (bx, by) in dx.buffers().iter().zip(dy.buffers()) {
                assert_eq!(bx.as_slice(), by.as_slice(), "{name}.{}", field.name());
            }
        }
    }
}

/// Runs `chunks` plainly and listening, checks both give the same bits; returns the plain run.
fn both(
    chunks: &[MarketData],
    config: &EngineConfig,
    quantity: f64,
    short: bool,
) -> BacktestOutput {
    let plain = run_backtest(chunks, &mut signal(quantity, short), config).expect("run");
    let general =
        run_backtest(chunks, &mut Listening(signal(quantity, short)), config).expect("run");
    assert_same_bits(&plain, &general);
    plain
}

#[test]
fn single_row_groups_give_the_same_bits_plain_or_not() {
    let d = data(3_000, 1, false);
    assert_eq!(d.n_timestamps(), d.len());
    let out = both(
        std::slice::from_ref(&d),
        &w1_config(1_000_000.0),
        100.0,
        true,
    );
    assert!(out.fills.num_rows() > 100);
    assert_eq!(out.equity.num_rows(), 3_000);
}

#[test]
fn multi_row_groups_give_the_same_bits_plain_or_not() {
    let d = data(1_000, 4, true);
    assert!(d.n_timestamps() < d.len());
    let out = both(
        std::slice::from_ref(&d),
        &w1_config(1_000_000.0),
        10.0,
        true,
    );
    assert!(out.fills.num_rows() > 100);
    assert_eq!(out.equity.num_rows(), 1_000);
}

#[test]
fn chunks_give_the_same_bits_plain_or_not_and_as_one() {
    let d = data(2_000, 3, true);
    let at = |i: i64| 1_600_000_000_000_000_000 + i * 60_000_000_000;
    let chunks = split_at(&d, &[at(300), at(301), at(1_500)]);
    assert_eq!(chunks.len(), 4);
    let chunked = both(&chunks, &w1_config(1_000_000.0), 10.0, false);
    let whole = both(
        std::slice::from_ref(&d),
        &w1_config(1_000_000.0),
        10.0,
        false,
    );
    assert_same_bits(&chunked, &whole);
}

#[test]
fn margin_calls_give_the_same_bits_plain_or_not() {
    // 100 shares of a ~100 asset on 3,000 of cash: the maintenance margin is breached often.
    let d = data(3_000, 1, false);
    let out = both(std::slice::from_ref(&d), &w1_config(3_000.0), 100.0, true);
    let reasons = out
        .trades
        .column_by_name("exit_reason")
        .expect("exit_reason")
        .as_primitive::<arrow_array::types::UInt8Type>()
        .values()
        .to_vec();
    let margin_calls = reasons.iter().filter(|&&r| r == 5).count();
    assert!(margin_calls > 10, "{margin_calls} margin calls");
}

#[test]
fn the_equity_curve_derives_positions_and_equity_per_row() {
    use arrow_array::types::Float64Type;
    let d = data(500, 2, true);
    let out = both(
        std::slice::from_ref(&d),
        &w1_config(1_000_000.0),
        10.0,
        true,
    );
    let column = |name: &str| {
        out.equity
            .column_by_name(name)
            .expect("equity column")
            .as_primitive::<Float64Type>()
            .values()
            .to_vec()
    };
    let (cash, long, short) = (column("cash"), column("long_value"), column("short_value"));
    let (positions, equity) = (column("positions_value"), column("equity"));
    for i in 0..cash.len() {
        assert_eq!(positions[i].to_bits(), (long[i] + short[i]).to_bits());
        assert_eq!(equity[i].to_bits(), (cash[i] + positions[i]).to_bits());
    }
    let names: Vec<_> = out
        .equity
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "ts",
            "cash",
            "long_value",
            "short_value",
            "positions_value",
            "equity"
        ]
    );
}
