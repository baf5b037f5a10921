//! Order-book micro-benchmarks: insert, cancel, and matching resting orders against bars.
//!
//! `cargo bench -p ml4t-backtest-benches --bench order_book`

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use ml4t_backtest_core::matching::{limit_trigger, stop_trigger, BarPath, LimitFill, PathPolicy};
use ml4t_backtest_core::orders::{Order, OrderBook};
use ml4t_backtest_core::types::Side;

fn main() {
    divan::main();
}

const N: usize = 1_000;

fn orders() -> Vec<Order> {
    (0..N as u64)
        .map(|i| {
            Order::market(
                i + 1,
                (i % 50) as u32,
                if i % 2 == 0 { 10.0 } else { -10.0 },
                0,
                1,
            )
        })
        .collect()
}

/// Queue 1,000 orders over 50 assets.
#[divan::bench]
fn insert(bencher: Bencher) {
    let batch = orders();
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        let mut book = OrderBook::new(50);
        for order in &batch {
            book.push(*order);
        }
        black_box(book)
    });
}

/// Cancel every other of 1,000 queued orders by id, then sweep.
#[divan::bench]
fn cancel(bencher: Bencher) {
    let batch = orders();
    bencher
        .counter(ItemsCount::new(N / 2))
        .with_inputs(|| {
            let mut book = OrderBook::new(50);
            for order in &batch {
                book.push(*order);
            }
            book
        })
        .bench_local_values(|mut book| {
            for id in (1..=N as u64).step_by(2) {
                if let Some(index) = book.position_of(id) {
                    book.mark_filled(index);
                }
            }
            book.sweep();
            book
        });
}

/// Trigger tests of a limit and a stop against 1,000 bars' price paths.
#[divan::bench]
fn match_limit_and_stop(bencher: Bencher) {
    let bars: Vec<(f64, f64, f64, f64)> = (0..N)
        .map(|i| {
            let o = 100.0 + (i % 7) as f64;
            (o, o + 2.0, o - 2.0, o + 0.5)
        })
        .collect();
    bencher.counter(ItemsCount::new(2 * N)).bench_local(|| {
        let mut hits = 0usize;
        for &(o, h, l, c) in &bars {
            let path = BarPath::new(o, h, l, c, PathPolicy::OhlcWalk, 1.0);
            hits += usize::from(
                limit_trigger(&path, Side::Buy, 101.0, LimitFill::Touch, 0.0).is_some(),
            );
            hits += usize::from(stop_trigger(&path, Side::Sell, 99.5, 0.0).is_some());
        }
        black_box(hits)
    });
}
