//! Prints bars per second and peak heap for each core scenario (figures for the README).
//!
//! `cargo run --release -p ml4t-backtest-benches --bin bench_report [-- --quick]`

use std::time::Instant;

use ml4t_backtest_benches::{
    make_data, make_w1, peak_bytes, reset_peak, run_signal, run_signal_bracket,
    run_signal_idle_rules, run_signal_rules, run_top_k, run_top_k_dividends, run_top_k_mixed,
    run_top_k_rules, run_w1, PeakAlloc,
};
use ml4t_backtest_core::{BacktestOutput, MarketData};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn measure(name: &str, data: &MarketData, repeats: usize, run: fn(&MarketData) -> BacktestOutput) {
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        if !name.contains(filter.as_str()) {
            return;
        }
    }
    let mut times = Vec::with_capacity(repeats);
    let mut peak = 0;
    let mut fills = 0;
    for _ in 0..repeats {
        let base = reset_peak();
        let start = Instant::now();
        let out = run(data);
        times.push(start.elapsed().as_secs_f64());
        peak = peak.max(peak_bytes() - base);
        fills = out.fills.num_rows();
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "{name:<28} rows={:>9}  best={:>8.2} M bars/s  median={:>8.2} M bars/s  \
         peak_heap={:>7.1} MiB (input {:.1} MiB)  fills={fills}",
        data.len(),
        data.len() as f64 / best / 1e6,
        data.len() as f64 / median / 1e6,
        peak as f64 / 1048576.0,
        data.batch().get_array_memory_size() as f64 / 1048576.0,
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (bars_a, bars_b, repeats) = if quick {
        (100_000, 252, 3)
    } else {
        (1_000_000, 2_520, 10)
    };
    let a = make_data(1, bars_a, 60_000_000_000, 0.01, 1);
    measure("a: signal, flips 1%/bar", &a, repeats, run_signal);
    measure(
        "a+bracket: 2% stop, 4% target",
        &a,
        repeats,
        run_signal_bracket,
    );
    measure(
        "a+rules: stop, target, trail",
        &a,
        repeats,
        run_signal_rules,
    );
    measure(
        "a+idle rules: never fire",
        &a,
        repeats,
        run_signal_idle_rules,
    );
    let w1 = make_w1(if quick { 100_000 } else { 1_000_000 }, 18);
    measure("w1: 1 asset, SMA cross", &w1, repeats, run_w1);
    let a_worst = make_data(1, bars_a, 60_000_000_000, 0.5, 1);
    measure("a: signal, flips 50%/bar", &a_worst, repeats, run_signal);
    let b = make_data(500, bars_b, 86_400_000_000_000, 0.01, 2);
    measure("b(rust): top-25 of 500", &b, repeats, run_top_k);
    measure("b(rust)+rules: 3 rules", &b, repeats, run_top_k_rules);
    measure("b(rust) mixed: 50 fut+450 eq", &b, repeats, run_top_k_mixed);
    measure(
        "b(rust)+dividends: quarterly",
        &b,
        repeats,
        run_top_k_dividends,
    );
}
