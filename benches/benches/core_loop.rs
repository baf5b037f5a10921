//! Divan benchmarks of the core loop; throughput is reported in bars per second.
//!
//! `cargo bench -p ml4t-backtest-benches` (add `-- --sample-count 3` for a quick run).

use divan::counter::ItemsCount;
use divan::Bencher;
use ml4t_backtest_benches::{make_data, run_signal, run_top_k};

#[global_allocator]
static ALLOC: ml4t_backtest_benches::PeakAlloc = ml4t_backtest_benches::PeakAlloc;

fn main() {
    divan::main();
}

/// (a) 1 asset × 1,000,000 minute bars, built-in ±1 signal strategy, 0.1% commission.
#[divan::bench(sample_count = 10)]
fn a_signal_1x1m(bencher: Bencher) {
    let data = make_data(1, 1_000_000, 60_000_000_000, 0.01, 1);
    bencher
        .counter(ItemsCount::new(data.len()))
        .bench(|| run_signal(divan::black_box(&data)));
}

/// 500 assets × 2,520 daily bars, built-in top-25 strategy (the Rust twin of scenario b).
#[divan::bench(sample_count = 10)]
fn b_top_k_500x2520(bencher: Bencher) {
    let data = make_data(500, 2_520, 86_400_000_000_000, 0.01, 2);
    bencher
        .counter(ItemsCount::new(data.len()))
        .bench(|| run_top_k(divan::black_box(&data)));
}
