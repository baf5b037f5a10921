//! Pins the complete output of a W1-shaped run (issue 18: one asset, minute bars, ±1 SMA(10/50)
//! cross, 100 shares, next open, 0.1 % fee, margin account without initial margin) to a hash of
//! every value of every result batch, taken before the core loop's performance work, so that a
//! change of the loop that moves any bit of any result fails here.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;

use common::{bar, hash_output, market, Row};

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::config::AccountRules;
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy};
use ml4t_backtest_core::{run_backtest, BacktestOutput, EngineConfig, MarketData};

/// xorshift64*, seeded: the same bars on every platform.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3.0f64.sqrt()
    }
}

fn sma(close: &[f64], window: usize, i: usize) -> Option<f64> {
    (i + 1 >= window).then(|| close[i + 1 - window..=i].iter().sum::<f64>() / window as f64)
}

fn w1_data(n: usize) -> MarketData {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut close = Vec::with_capacity(n);
    let mut level = 0.0f64;
    for _ in 0..n {
        level += 0.001 * rng.normal();
        close.push(100.0 * level.exp());
    }
    let mut open = Vec::with_capacity(n);
    let (mut high, mut low) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let o = if i == 0 {
            100.0
        } else {
            close[i - 1] * (1.0 + 0.0002 * rng.normal())
        };
        let spread = (0.0005 * rng.normal()).abs() * close[i];
        open.push(o);
        high.push(o.max(close[i]) + spread);
        low.push(o.min(close[i]) - spread);
    }
    let signal: Vec<f64> = (0..n)
        .map(|i| match (sma(&close, 10, i), sma(&close, 50, i)) {
            (Some(fast), Some(slow)) if fast > slow => 1.0,
            _ => -1.0,
        })
        .collect();
    let rows: Vec<Row> = (0..n)
        .map(|i| {
            let ts = 1_577_836_800_000_000_000 + i as i64 * 60_000_000_000;
            bar(ts, 0, open[i], high[i], low[i], close[i])
                .vol(1_000_000.0)
                .feat(&[signal[i]])
        })
        .collect();
    market(&rows, 1, &["signal"])
}

fn w1_run(data: &MarketData) -> BacktestOutput {
    let config = EngineConfig {
        initial_cash: 1_000_000.0,
        commission: CommissionModel::Percent {
            rate: 0.001,
            minimum: 0.0,
        },
        account: AccountRules {
            initial_margin: None,
            ..AccountRules::default()
        },
        ..EngineConfig::default()
    };
    let mut strategy =
        SignalStrategy::new("signal", SignalSizing::Quantity(100.0), 0.0, 0.0, false)
            .expect("valid strategy");
    run_backtest([data], &mut strategy, &config).expect("run succeeds")
}

#[test]
fn w1_output_is_pinned_bit_for_bit() {
    let data = w1_data(50_000);
    let out = w1_run(&data);
    let equity = out.equity.column_by_name("cash").expect("cash column");
    let cash = equity.as_primitive::<Float64Type>().values();
    let summary = (
        out.fills.num_rows(),
        out.trades.num_rows(),
        out.equity.num_rows(),
        cash[cash.len() - 1].to_bits(),
        hash_output(&out),
    );
    assert_eq!(
        summary,
        (
            1393,
            697,
            50_000,
            4_696_614_291_749_295_493,
            4_205_802_090_455_366_890
        ),
        "W1 pinned output changed: {summary:?}"
    );
}
