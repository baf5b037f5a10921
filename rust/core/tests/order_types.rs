//! Hand-computed scenarios for every order type: limit, stop, stop-limit, market-on-close,
//! trailing stops, brackets (and the intrabar path policies that decide them), time in force,
//! volume participation, cancels and submission checks.
//!
//! Every expected number is written out from the contract (the module doc of `matching.rs`,
//! `engine/fills.rs` and `docs/semantics.md`), not taken from the engine. Bars are written as
//! `bar(ts, asset, open, high, low, close)`; the comment next to a bar gives its intrabar path
//! under the OHLC walk (the extreme nearer the open first; ties: the low).
//!
//! Tests whose doc starts with "Regression" pinned engine bugs found while writing this file;
//! they pass since the fixes.

mod common;

use common::*;
use ml4t_backtest_core::matching::{LimitFill, PathPolicy};
use ml4t_backtest_core::orders::{CommandBuffer, OrderKind, OrderRequest, TimeInForce, Trail};
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{BacktestError, EngineConfig, ExecutionMode, MarketData, ShareRounding};

const BUY: u8 = 0;
const SELL: u8 = 1;

const MARKET: u8 = 0;
const LIMIT: u8 = 1;
const STOP: u8 = 2;
const STOP_LIMIT: u8 = 3;
const MOC: u8 = 4;
const TRAILING: u8 = 5;

const EXIT_SIGNAL: u8 = 0;
const EXIT_END: u8 = 1;
const EXIT_TAKE_PROFIT: u8 = 2;
const EXIT_STOP_LOSS: u8 = 3;
const EXIT_TRAILING: u8 = 4;

const REJECT_NO_PRICE: u8 = 0;
const REJECT_END: u8 = 2;
const REJECT_EXPIRED: u8 = 3;
const REJECT_NOT_PENDING: u8 = 4;

/// A one-asset market over `bars`.
fn one(bars: &[Row]) -> MarketData {
    market(bars, 1, &[])
}

/// The first bar of most scenarios: the decision bar, closing at 100 (no order fills on it).
fn decision_bar() -> Row {
    bar(1, 0, 100.0, 100.5, 99.5, 100.0)
}

fn with_limit_fill(limit_fill: LimitFill) -> EngineConfig {
    EngineConfig {
        limit_fill,
        ..config()
    }
}

fn with_path(path_policy: PathPolicy) -> EngineConfig {
    EngineConfig {
        path_policy,
        ..config()
    }
}

fn with_volume_cap(fraction: f64) -> EngineConfig {
    EngineConfig {
        max_volume_fraction: Some(fraction),
        ..config()
    }
}

/// (ts, signed quantity, price) of every fill.
fn fill_points(out: &ml4t_backtest_core::BacktestOutput) -> Vec<(i64, f64, f64)> {
    fills(out)
        .iter()
        .map(|f| (f.ts, f.signed(), f.price))
        .collect()
}

// =============================================================================================
// Limit orders
// =============================================================================================

#[test]
fn limit_buy_fills_at_the_limit_on_touch_without_slippage() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 99.0, 100.0, 97.0, 98.0), // 99 -> 100 -> 97 -> 98: touches 97
        bar(3, 0, 98.0, 99.0, 96.0, 97.0),
    ]);
    // Slippage is configured but a limit fill never slips.
    let cfg = with_slippage(config(), SlippageModel::Fixed { amount: 0.5 });
    let (out, strategy) = run_script(
        &data,
        vec![(0, Cmd::Order(limit_order(0, 10.0, 97.0)))],
        &cfg,
    );

    assert_eq!(strategy.ids, vec![1]);
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].order_id, f[0].ts, f[0].side), (1, 2, BUY));
    assert_eq!(
        (f[0].quantity, f[0].price, f[0].reference_price),
        (10.0, 97.0, 97.0)
    );
    assert_eq!(
        (f[0].slippage, f[0].order_type, f[0].partial),
        (0.0, LIMIT, false)
    );
    let e = equity(&out);
    assert_eq!(e[1].cash, 100_000.0 - 970.0);
    assert_eq!(e[1].long_value, 980.0);
    assert_eq!(out.rejections.num_rows(), 0);
    assert_eq!(strategy.at(1).positions, vec![10.0]);
}

#[test]
fn limit_buy_with_a_through_requirement_waits_for_a_trade_beyond_the_limit() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 99.0, 100.0, 97.0, 98.0), // low 97: a touch, not 0.5 through
        bar(3, 0, 98.0, 99.0, 96.0, 97.0),  // 98 -> 99 -> 96 -> 97: through by 1
    ]);
    let script = vec![(0, Cmd::Order(limit_order(0, 10.0, 97.0)))];

    // through_amount 0.5: executable once the price trades at 96.5 or lower; fills at 97.
    let (out, _) = run_script(
        &data,
        script.clone(),
        &with_limit_fill(LimitFill::ThroughAmount(0.5)),
    );
    assert_eq!(fill_points(&out), vec![(3, 10.0, 97.0)]);
    assert_eq!(fills(&out)[0].reference_price, 97.0);

    // through_fraction 1%: 97 - 0.97 = 96.03 >= 96 -> fills on bar 3 at 97.
    let (out, _) = run_script(
        &data,
        script.clone(),
        &with_limit_fill(LimitFill::ThroughFraction(0.01)),
    );
    assert_eq!(fill_points(&out), vec![(3, 10.0, 97.0)]);

    // through_fraction 5%: 97 - 4.85 = 92.15 is never reached: rejected at the end of the data
    // with the decision timestamp.
    let (out, _) = run_script(
        &data,
        script,
        &with_limit_fill(LimitFill::ThroughFraction(0.05)),
    );
    assert_eq!(out.fills.num_rows(), 0);
    assert_eq!(
        rejections(&out),
        vec![RejectionRow {
            order_id: 1,
            ts: 1,
            asset: 0,
            quantity: 10.0,
            reason: REJECT_END
        }]
    );
}

#[test]
fn limit_sell_fills_at_the_limit_on_touch_or_through() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 101.0, 103.2, 100.5, 102.0), // 101 -> 100.5 -> 103.2: touches 103, +0.2
        bar(3, 0, 102.0, 104.0, 101.0, 103.0), // 102 -> 101 -> 104: 1 through
    ]);
    let script = vec![(0, Cmd::Order(limit_order(0, -10.0, 103.0)))];

    let (out, _) = run_script(&data, script.clone(), &config());
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, -10.0, 103.0)]);
    assert_eq!((f[0].side, f[0].order_type), (SELL, LIMIT));
    assert_eq!(equity(&out)[1].cash, 100_000.0 + 1_030.0);
    assert_eq!(equity(&out)[1].short_value, -1_020.0);

    let (out, _) = run_script(
        &data,
        script,
        &with_limit_fill(LimitFill::ThroughAmount(0.5)),
    );
    assert_eq!(fill_points(&out), vec![(3, -10.0, 103.0)]);
}

#[test]
fn limit_orders_fill_at_an_open_better_than_the_limit() {
    // Buy limit 97, the next bar opens at 95: filled at the open, not at the limit.
    let data = one(&[decision_bar(), bar(2, 0, 95.0, 96.0, 94.0, 95.5)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(limit_order(0, 10.0, 97.0)))],
        &config(),
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 95.0)]);
    assert_eq!((f[0].reference_price, f[0].order_type), (95.0, LIMIT));

    // Sell limit 103, the next bar opens at 105: filled at 105.
    let data = one(&[decision_bar(), bar(2, 0, 105.0, 106.0, 104.0, 105.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(limit_order(0, -10.0, 103.0)))],
        &config(),
    );
    assert_eq!(fill_points(&out), vec![(2, -10.0, 105.0)]);
    assert_eq!(fills(&out)[0].reference_price, 105.0);
}

/// With a through requirement, an open exactly *at* the limit is a touch, not a gap beyond it:
/// the order waits until the price trades through (here it never trades below 96.8; the through
/// level is 96.5).
#[test]
fn through_mode_limit_does_not_fill_on_an_open_exactly_at_the_limit() {
    let data = one(&[decision_bar(), bar(2, 0, 97.0, 98.0, 96.8, 97.5)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(limit_order(0, 10.0, 97.0)))],
        &with_limit_fill(LimitFill::ThroughAmount(0.5)),
    );
    assert_eq!(fill_points(&out), vec![], "never traded through 96.5");
}

// =============================================================================================
// Stop orders
// =============================================================================================

#[test]
fn stop_buy_fills_at_its_level_with_slippage() {
    // 100 -> 99 -> 103 -> 102: the stop at 102 is crossed on the way up.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 103.0, 99.0, 102.0)]);
    let script = vec![(0, Cmd::Order(stop_order(0, 10.0, 102.0)))];

    let (out, _) = run_script(&data, script.clone(), &config());
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 102.0)]);
    assert_eq!(
        (f[0].reference_price, f[0].order_type, f[0].partial),
        (102.0, STOP, false)
    );

    // A stop becomes a market order: slippage applies to it (then the clamp into the bar).
    let cfg = with_slippage(config(), SlippageModel::Fixed { amount: 0.1 });
    let (out, _) = run_script(&data, script, &cfg);
    let f = fills(&out);
    assert_close(f[0].price, 102.1, "slipped stop price");
    assert_eq!(f[0].reference_price, 102.0);
    assert_close(f[0].slippage, 0.1 * 10.0, "slippage cost");
}

#[test]
fn stop_sell_fills_at_its_level() {
    // 100 -> 101 -> 97 -> 98: the stop at 98 is crossed on the way down.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 101.0, 97.0, 98.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_order(0, -10.0, 98.0)))],
        &config(),
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, -10.0, 98.0)]);
    assert_eq!(
        (f[0].side, f[0].order_type, f[0].reference_price),
        (SELL, STOP, 98.0)
    );
}

#[test]
fn stops_gapped_through_fill_at_the_open() {
    let data = one(&[decision_bar(), bar(2, 0, 104.0, 105.0, 103.0, 104.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_order(0, 10.0, 102.0)))],
        &config(),
    );
    assert_eq!(fill_points(&out), vec![(2, 10.0, 104.0)]);
    assert_eq!(fills(&out)[0].reference_price, 104.0);

    let data = one(&[decision_bar(), bar(2, 0, 96.0, 97.0, 95.0, 96.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_order(0, -10.0, 98.0)))],
        &config(),
    );
    assert_eq!(fill_points(&out), vec![(2, -10.0, 96.0)]);
    assert_eq!(fills(&out)[0].reference_price, 96.0);
}

#[test]
fn a_stop_never_reached_stays_pending_until_the_end() {
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 103.0, 99.0, 102.0)]);
    let (out, strategy) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_order(0, 10.0, 110.0)))],
        &config(),
    );
    assert_eq!(out.fills.num_rows(), 0);
    assert_eq!(strategy.at(1).positions, vec![0.0]);
    let r = rejections(&out);
    assert_eq!((r.len(), r[0].order_id, r[0].reason), (1, 1, REJECT_END));
}

// =============================================================================================
// Stop-limit orders
// =============================================================================================

#[test]
fn stop_limit_fills_at_the_trigger_price_when_it_is_within_the_limit() {
    // Buy stop 102 limit 103. 100 -> 99 -> 104: triggered at 102 <= 103 -> filled at 102.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 104.0, 99.0, 103.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_limit_order(0, 10.0, 102.0, 103.0)))],
        &config(),
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 102.0)]);
    assert_eq!((f[0].order_type, f[0].slippage), (STOP_LIMIT, 0.0));

    // Sell stop 98 limit 97. 100 -> 101 -> 97.5: triggered at 98 >= 97 -> filled at 98.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 101.0, 97.5, 98.0)]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_limit_order(0, -10.0, 98.0, 97.0)))],
        &config(),
    );
    assert_eq!(fill_points(&out), vec![(2, -10.0, 98.0)]);
}

#[test]
fn stop_limit_gapped_beyond_its_limit_arms_and_fills_later_as_a_limit() {
    // Buy stop 102 limit 103; bar 2 opens at 105 (> 103): triggered but not fillable -> armed.
    // Bar 3: 104 -> 105 -> 102.5 -> 103: as a limit at 103 it fills at 103.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 105.0, 106.0, 104.0, 105.0),
        bar(3, 0, 104.0, 105.0, 102.5, 103.0),
    ]);
    let (out, strategy) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_limit_order(0, 10.0, 102.0, 103.0)))],
        &config(),
    );
    assert_eq!(
        strategy.at(1).positions,
        vec![0.0],
        "armed, not filled, on bar 2"
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(3, 10.0, 103.0)]);
    assert_eq!((f[0].order_type, f[0].reference_price), (STOP_LIMIT, 103.0));
}

#[test]
fn an_armed_stop_limit_rests_from_the_next_bar_even_if_the_price_comes_back() {
    // Bar 2 opens at 105 (armed) and then trades down to 101, inside the limit: no fill on the
    // bar that armed it. Bar 3 opens at 102.5 <= 103: filled at the open.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 105.0, 106.0, 101.0, 102.0),
        bar(3, 0, 102.5, 103.0, 102.0, 102.5),
    ]);
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(stop_limit_order(0, 10.0, 102.0, 103.0)))],
        &config(),
    );
    assert_eq!(fill_points(&out), vec![(3, 10.0, 102.5)]);
}

// =============================================================================================
// Market-on-close
// =============================================================================================

fn three_bars() -> MarketData {
    one(&[
        bar(1, 0, 100.0, 102.0, 99.0, 101.0),
        bar(2, 0, 102.0, 104.0, 101.0, 103.0),
        bar(3, 0, 103.0, 105.0, 102.0, 104.0),
    ])
}

#[test]
fn market_on_close_fills_at_the_next_bars_close_in_next_open_mode() {
    let (out, strategy) = run_script(
        &three_bars(),
        vec![(0, Cmd::Order(moc_order(0, 10.0)))],
        &config(),
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 103.0)]);
    assert_eq!((f[0].reference_price, f[0].order_type), (103.0, MOC));
    // Filled at the close of bar 2, i.e. before the strategy's call at bar 2.
    assert_eq!(strategy.at(1).positions, vec![10.0]);

    // Market-like: slippage applies.
    let cfg = with_slippage(config(), SlippageModel::Fixed { amount: 0.5 });
    let (out, _) = run_script(
        &three_bars(),
        vec![(0, Cmd::Order(moc_order(0, 10.0)))],
        &cfg,
    );
    assert_eq!(fill_points(&out), vec![(2, 10.0, 103.5)]);
}

#[test]
fn market_on_close_fills_at_this_bars_close_in_same_close_mode() {
    let (out, strategy) = run_script(
        &three_bars(),
        vec![(0, Cmd::Order(moc_order(0, 10.0)))],
        &same_close(),
    );
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(1, 10.0, 101.0)]);
    assert_eq!((f[0].reference_price, f[0].order_type), (101.0, MOC));
    assert_eq!(strategy.at(0).positions, vec![0.0]);
    assert_eq!(equity(&out)[0].cash, 100_000.0 - 1_010.0);
}

#[test]
fn explicit_market_orders_fill_like_target_orders() {
    let (out, strategy) = run_script(
        &three_bars(),
        vec![(0, Cmd::Order(market_order(0, 10.0)))],
        &config(),
    );
    assert_eq!(strategy.ids, vec![1]);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 102.0)]);
    assert_eq!(fills(&out)[0].order_type, MARKET);
    let (out, _) = run_script(
        &three_bars(),
        vec![(0, Cmd::Order(market_order(0, 10.0)))],
        &same_close(),
    );
    assert_eq!(fill_points(&out), vec![(1, 10.0, 101.0)]);
}

// =============================================================================================
// Trailing stops
// =============================================================================================

#[test]
fn trailing_stop_by_amount_follows_the_high_with_a_one_bar_lag() {
    // Long 10 from bar 2's open (100); the trailing sell starts from the decision close (100).
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 108.0, 99.0, 107.0), // level 95: not hit; mark -> 108
        bar(3, 0, 109.0, 111.0, 105.5, 106.0), // 109 -> 111 -> 105.5: level 103 (lagged), not hit
        bar(4, 0, 107.0, 107.5, 104.0, 105.0), // 107 -> 107.5 -> 104: level 111 - 5 = 106 hit
        bar(5, 0, 105.0, 105.0, 105.0, 105.0),
    ]);
    let script = vec![
        (0, Cmd::Order(market_order(0, 10.0))),
        (0, Cmd::Order(trail_amount_order(0, -10.0, 5.0))),
    ];
    let (out, strategy) = run_script(&data, script, &config());
    assert_eq!(strategy.ids, vec![1, 2]);
    // Without the lag, bar 3's own high (111) would give a level of 106, which 105.5 crosses.
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (4, -10.0, 106.0)]);
    let f = fills(&out);
    assert_eq!(
        (f[1].order_id, f[1].order_type, f[1].reference_price),
        (2, TRAILING, 106.0)
    );
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].entry_price, t[0].exit_price, t[0].gross_pnl),
        (100.0, 106.0, 60.0)
    );
    assert_eq!(
        (t[0].exit_ts, t[0].exit_reason, t[0].open),
        (4, EXIT_TRAILING, false)
    );
}

#[test]
fn trailing_stop_by_percent_follows_the_low_of_a_short() {
    // Short 10 from bar 2's open (100); trailing buy 5% above the lowest low, from 100.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 90.0, 91.0), // level 105: not hit; mark -> 90
        bar(3, 0, 91.0, 95.0, 90.5, 94.0),   // 91 -> 90.5 -> 95: level 94.5 hit
    ]);
    let script = vec![
        (0, Cmd::Order(market_order(0, -10.0))),
        (0, Cmd::Order(trail_percent_order(0, 10.0, 0.05))),
    ];
    let (out, _) = run_script(&data, script, &config());
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].ts, f[0].signed(), f[0].price), (2, -10.0, 100.0));
    assert_eq!(
        (f[1].ts, f[1].signed(), f[1].order_type),
        (3, 10.0, TRAILING)
    );
    assert_close(f[1].price, 94.5, "trailing buy fill");
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(!t[0].long);
    assert_close(t[0].gross_pnl, 10.0 * (100.0 - 94.5), "short pnl");
    assert_eq!(t[0].exit_reason, EXIT_TRAILING);
}

#[test]
fn trailing_stop_gapped_through_fills_at_the_open() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 100.5, 99.5, 100.0), // level 95; mark 100.5
        bar(3, 0, 90.0, 91.0, 89.0, 90.0),    // opens below 95.5
    ]);
    let script = vec![
        (0, Cmd::Order(market_order(0, 10.0))),
        (0, Cmd::Order(trail_amount_order(0, -10.0, 5.0))),
    ];
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 90.0)]);
    assert_eq!(fills(&out)[1].reference_price, 90.0);
}

#[test]
fn trailing_stop_without_a_price_is_rejected_as_no_price() {
    // Asset 1 has no bar before the decision: no water mark to start from.
    let data = market(
        &[decision_bar(), flat(2, 0, 100.0), flat(2, 1, 50.0)],
        2,
        &[],
    );
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(trail_amount_order(1, -10.0, 1.0)))],
        &config(),
    );
    assert_eq!(out.fills.num_rows(), 0);
    let r = rejections(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].order_id, r[0].asset, r[0].reason),
        (1, 1, REJECT_NO_PRICE)
    );
}

// =============================================================================================
// Brackets
// =============================================================================================

/// Long 10 at bar 2's open (100) with a take-profit at 105 and a stop-loss at 95.
fn bracket_script() -> Vec<(u64, Cmd)> {
    vec![(
        0,
        Cmd::Order(with_bracket(market_order(0, 10.0), Some(105.0), Some(95.0))),
    )]
}

#[test]
fn bracket_take_profit_exits_and_cancels_the_stop() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0), // entry at 100; neither leg reached
        bar(3, 0, 102.0, 106.0, 101.0, 105.0), // 102 -> 101 -> 106: take-profit at 105
        bar(4, 0, 105.0, 105.0, 90.0, 95.0),  // would hit the stop had it survived
    ]);
    let (out, strategy) = run_script(&data, bracket_script(), &config());
    assert_eq!(strategy.ids, vec![1], "the legs take ids 2 and 3");
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 105.0)]);
    assert_eq!(
        (f[1].order_id, f[1].order_type, f[1].reference_price),
        (2, LIMIT, 105.0)
    );
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].exit_price, t[0].gross_pnl, t[0].exit_reason),
        (105.0, 50.0, EXIT_TAKE_PROFIT)
    );
    assert_eq!((t[0].entry_ts, t[0].exit_ts, t[0].bars_held), (2, 3, 1));
    assert_eq!(
        out.rejections.num_rows(),
        0,
        "the stop was cancelled, not left pending"
    );
    assert_eq!(strategy.at(2).pending, vec![0.0]);
    assert_eq!(strategy.at(3).positions, vec![0.0]);
}

#[test]
fn bracket_stop_loss_exits_and_cancels_the_target() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 98.0, 99.0, 94.0, 95.0), // 98 -> 99 -> 94: stop-loss at 95
        bar(4, 0, 95.0, 110.0, 95.0, 108.0), // would hit the target had it survived
    ]);
    let (out, _) = run_script(&data, bracket_script(), &config());
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 95.0)]);
    assert_eq!((f[1].order_id, f[1].order_type), (3, STOP));
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].exit_price, t[0].gross_pnl, t[0].exit_reason),
        (95.0, -50.0, EXIT_STOP_LOSS)
    );
    assert_eq!(out.rejections.num_rows(), 0);
}

#[test]
fn bracket_legs_are_live_from_the_entry_fill_within_the_same_bar() {
    // Entry at the open (100); then 100 -> 99.5 -> 106: the target at 105 fills on bar 2.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 106.0, 99.5, 104.0),
        flat(3, 0, 104.0),
    ]);
    let (out, _) = run_script(&data, bracket_script(), &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (2, -10.0, 105.0)]);
    let t = trades(&out);
    assert_eq!((t[0].bars_held, t[0].exit_reason), (0, EXIT_TAKE_PROFIT));
}

#[test]
fn stop_entry_bracket_evaluates_its_legs_from_the_entry_point() {
    // Buy stop 101 with target 104 and stop-loss 99. Bar 2: 100 -> 98 -> 105 -> 104 (low
    // nearer): the low (98) comes before the entry triggers at 101 on the way up, so the stop-loss
    // is not hit; the target (104) is reached after the entry.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 105.0, 98.0, 104.0)]);
    let request = with_bracket(stop_order(0, 10.0, 101.0), Some(104.0), Some(99.0));
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 101.0), (2, -10.0, 104.0)]);
    let t = trades(&out);
    assert_eq!((t[0].gross_pnl, t[0].exit_reason), (30.0, EXIT_TAKE_PROFIT));
}

/// Was blocked by the engine bug in `OrderRequest::validate` (see
/// `bracket_legs_on_the_right_side_of_a_limit_entry_are_accepted`): a correctly-sided bracket on a
/// limit entry is refused at submission.
#[test]
fn limit_entry_bracket_evaluates_its_legs_from_the_entry_point() {
    // Limit buy 99 with target 104 and stop 96. Bar 2: 100 -> 98 -> 105 -> 104 (low nearer):
    // entry at 99 on the way down; the stop (96) is never reached after it, the target (104)
    // is on the way up.
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 105.0, 98.0, 104.0)]);
    let request = with_bracket(limit_order(0, 10.0, 99.0), Some(104.0), Some(96.0));
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 99.0), (2, -10.0, 104.0)]);
    assert_eq!(trades(&out)[0].exit_reason, EXIT_TAKE_PROFIT);
}

#[test]
fn short_bracket_legs_are_mirrored() {
    // Short 10 at 100, target 95 (a buy limit), stop 105 (a buy stop). 98 -> 99 -> 94: target.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 98.0, 99.0, 94.0, 95.0),
    ]);
    let request = with_bracket(market_order(0, -10.0), Some(95.0), Some(105.0));
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    assert_eq!(fill_points(&out), vec![(2, -10.0, 100.0), (3, 10.0, 95.0)]);
    let t = trades(&out);
    assert_eq!(
        (t[0].long, t[0].gross_pnl, t[0].exit_reason),
        (false, 50.0, EXIT_TAKE_PROFIT)
    );
}

#[test]
fn bracket_stop_and_target_in_one_bar_follow_the_path_policy() {
    // Long bracket (target 105, stop 95) entered at 100 on bar 2; bar 3 reaches both levels.
    // Bar A: open 100, high 111, low 88 -> the high is nearer (11 < 12).
    // Bar B: open 100, high 112, low 89 -> the low is nearer (11 < 12).
    let bar_a = bar(3, 0, 100.0, 111.0, 88.0, 100.0);
    let bar_b = bar(3, 0, 100.0, 112.0, 89.0, 100.0);
    let cases = [
        (bar_a.clone(), PathPolicy::OhlcWalk, 105.0, EXIT_TAKE_PROFIT),
        (bar_a.clone(), PathPolicy::Pessimistic, 95.0, EXIT_STOP_LOSS),
        (bar_a, PathPolicy::Optimistic, 105.0, EXIT_TAKE_PROFIT),
        (bar_b.clone(), PathPolicy::OhlcWalk, 95.0, EXIT_STOP_LOSS),
        (bar_b.clone(), PathPolicy::Pessimistic, 95.0, EXIT_STOP_LOSS),
        (bar_b, PathPolicy::Optimistic, 105.0, EXIT_TAKE_PROFIT),
    ];
    for (third, policy, price, reason) in cases {
        let data = one(&[decision_bar(), bar(2, 0, 100.0, 101.0, 99.0, 100.0), third]);
        let (out, _) = run_script(&data, bracket_script(), &with_path(policy));
        let what = format!("{policy:?}");
        assert_eq!(
            fill_points(&out),
            vec![(2, 10.0, 100.0), (3, -10.0, price)],
            "{what}"
        );
        let t = trades(&out);
        assert_eq!((t.len(), t[0].exit_reason), (1, reason), "{what}");
    }

    // A short bracket (target 95, stop 105): pessimistic means the high first, optimistic the
    // low first; bar A's OHLC walk visits the high first too.
    let short = with_bracket(market_order(0, -10.0), Some(95.0), Some(105.0));
    for (policy, price, reason) in [
        (PathPolicy::OhlcWalk, 105.0, EXIT_STOP_LOSS),
        (PathPolicy::Pessimistic, 105.0, EXIT_STOP_LOSS),
        (PathPolicy::Optimistic, 95.0, EXIT_TAKE_PROFIT),
    ] {
        let data = one(&[
            decision_bar(),
            bar(2, 0, 100.0, 101.0, 99.0, 100.0),
            bar(3, 0, 100.0, 111.0, 88.0, 100.0),
        ]);
        let (out, _) = run_script(&data, vec![(0, Cmd::Order(short))], &with_path(policy));
        assert_eq!(
            fill_points(&out),
            vec![(2, -10.0, 100.0), (3, 10.0, price)],
            "short {policy:?}"
        );
        assert_eq!(trades(&out)[0].exit_reason, reason, "short {policy:?}");
    }
}

/// Regression (was ENGINE BUG) (`consider` in engine/fills.rs): the path is built with `held.signum()`, and
/// `f64::signum(0.0) == 1.0`, so a flat position is walked as a long under the pessimistic and
/// optimistic policies; the contract (`PathPolicy`, `BarPath::new`: "0 flat", docs/semantics.md)
/// walks a flat position like `ohlc` (the extreme nearer the open first).
///
/// Flat, two entries on one bar, so the fill order shows the path:
/// - bar 100/101/95/100 (high nearer), buy stop 100.5 and buy limit 96: stop (t = 0.5), then
///   limit (t = 1 + 5/6); pessimistic-as-long walks the low first and fills the limit first;
/// - bar 100/105/99/100 (low nearer), sell stop 99.5 and sell limit 104: stop (t = 0.5), then
///   limit (t = 1 + 5/6); optimistic-as-long walks the high first and fills the limit first.
///
/// And a P&L-visible case: a sell stop entry at 99 with a bracket (target 97, stop-loss 101) in
/// bar 100 -> 103 -> 95 -> 96 (the high is nearer): flat, the entry triggers at 99 on the way
/// down (t = 1.5); the legs, short now, walk the high first too under `pessimistic`, so the
/// price keeps falling to the target. The engine walks the entry bar low first (as if long),
/// triggers the entry at t = 0.2 and then stops out at 101.
#[test]
fn a_flat_position_is_walked_like_ohlc_under_every_policy() {
    let script = vec![
        (0, Cmd::Order(stop_order(0, 10.0, 100.5))),
        (0, Cmd::Order(limit_order(0, 10.0, 96.0))),
    ];
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 101.0, 95.0, 100.0)]);
    for policy in [
        PathPolicy::OhlcWalk,
        PathPolicy::Pessimistic,
        PathPolicy::Optimistic,
    ] {
        let (out, _) = run_script(&data, script.clone(), &with_path(policy));
        let ids: Vec<u64> = fills(&out).iter().map(|f| f.order_id).collect();
        assert_eq!(ids, vec![1, 2], "{policy:?}: stop first, as the OHLC walk");
    }
    let script = vec![
        (0, Cmd::Order(stop_order(0, -10.0, 99.5))),
        (0, Cmd::Order(limit_order(0, -10.0, 104.0))),
    ];
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 105.0, 99.0, 100.0)]);
    for policy in [
        PathPolicy::OhlcWalk,
        PathPolicy::Pessimistic,
        PathPolicy::Optimistic,
    ] {
        let (out, _) = run_script(&data, script.clone(), &with_path(policy));
        let ids: Vec<u64> = fills(&out).iter().map(|f| f.order_id).collect();
        assert_eq!(ids, vec![1, 2], "{policy:?}: stop first, as the OHLC walk");
    }
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 103.0, 95.0, 96.0)]);
    let request = with_bracket(stop_order(0, -10.0, 99.0), Some(97.0), Some(101.0));
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(request))],
        &with_path(PathPolicy::Pessimistic),
    );
    assert_eq!(fill_points(&out), vec![(2, -10.0, 99.0), (2, 10.0, 97.0)]);
    assert_eq!(trades(&out)[0].exit_reason, EXIT_TAKE_PROFIT);
}

#[test]
fn a_gap_through_the_stop_fills_at_the_next_open() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 90.0, 92.0, 89.0, 91.0), // opens 5 below the stop-loss
    ]);
    let (out, _) = run_script(&data, bracket_script(), &config());
    let f = fills(&out);
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 90.0)]);
    assert_eq!(f[1].reference_price, 90.0);
    let t = trades(&out);
    assert_eq!((t[0].gross_pnl, t[0].exit_reason), (-100.0, EXIT_STOP_LOSS));

    // And a gap above the target fills at the (better) open.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 108.0, 109.0, 107.0, 108.0),
    ]);
    let (out, _) = run_script(&data, bracket_script(), &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 108.0)]);
    assert_eq!(trades(&out)[0].exit_reason, EXIT_TAKE_PROFIT);
}

/// Regression (was ENGINE BUG) (run_stage): bracket legs activated by an entry fill are executed in a second
/// round, after *every* first-round candidate of the bar, instead of in path-time order with
/// them. The contract (`matching.rs`): "orders of one asset fill in trigger-time order".
///
/// Bar 2: 100 -> 94 -> 106 -> 100 (tie: low first). Market entry +10 (t = 0) with a stop-loss at
/// 95 (t = 5/6), and a separate limit sell -5 at 105 (t = 1 + 11/12). In time order: entry at
/// 100, stop-loss at 95 (the long closes, `stop_loss`), then the limit sell opens a short at 105.
/// The engine fills the limit sell before the stop-loss: the long is cut to 5 at 105, then the
/// stop sells 10 at 95 and crosses zero, so the short's entry price is 95 and the order of the
/// fills is [1, 3, 2].
#[test]
fn activated_legs_fill_in_path_time_order_with_the_other_orders_of_the_bar() {
    let data = one(&[decision_bar(), bar(2, 0, 100.0, 106.0, 94.0, 100.0)]);
    let script = vec![
        (
            0,
            Cmd::Order(with_bracket(market_order(0, 10.0), None, Some(95.0))),
        ),
        (0, Cmd::Order(limit_order(0, -5.0, 105.0))),
    ];
    let (out, strategy) = run_script(&data, script, &config());
    assert_eq!(strategy.ids, vec![1, 3]);
    let f = fills(&out);
    let order: Vec<(u64, f64, f64)> = f
        .iter()
        .map(|x| (x.order_id, x.signed(), x.price))
        .collect();
    assert_eq!(
        order,
        vec![(1, 10.0, 100.0), (2, -10.0, 95.0), (3, -5.0, 105.0)]
    );
    let t = trades(&out);
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].long, t[0].exit_price, t[0].exit_reason),
        (true, 95.0, EXIT_STOP_LOSS)
    );
    assert_eq!(
        (t[1].long, t[1].entry_price, t[1].open),
        (false, 105.0, true)
    );
}

#[test]
fn closing_the_position_by_another_order_cancels_the_legs() {
    // Long 10 by a bracket (target 110, stop 95); the strategy closes the position at bar 3's
    // open. Bar 4 trades through the stop: the orphaned leg must not open a short.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 100.0, 101.0, 99.0, 100.0),
        bar(4, 0, 98.0, 99.0, 90.0, 91.0),
        flat(5, 0, 91.0),
    ]);
    let script = vec![
        (
            0,
            Cmd::Order(with_bracket(market_order(0, 10.0), Some(110.0), Some(95.0))),
        ),
        (1, Cmd::Close(0)),
    ];
    let (out, strategy) = run_script(&data, script, &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 100.0)]);
    assert_eq!(strategy.at(4).positions, vec![0.0]);
    assert_eq!(trades(&out)[0].exit_reason, EXIT_SIGNAL);
    assert_eq!(out.rejections.num_rows(), 0);
}

/// Regression (was CONTRACT GAP) (arguable ENGINE BUG): bracket legs keep the entry's quantity when another order
/// only *reduces* the position, so the stop-loss then sells more than is held and opens a short
/// nobody asked for. `cancel_orphan_legs` cancels legs once "they would open a new position";
/// the same reasoning asks for legs capped at the position they protect. Long 10 by a bracket
/// (stop 95), the strategy sells 5 at bar 3; bar 4 trades through the stop: the engine sells 10
/// at 95 and ends short 5.
#[test]
fn legs_never_sell_more_than_the_position_they_protect() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 100.0, 101.0, 99.0, 100.0),
        bar(4, 0, 98.0, 99.0, 90.0, 91.0),
        flat(5, 0, 91.0),
    ]);
    let script = vec![
        (
            0,
            Cmd::Order(with_bracket(market_order(0, 10.0), Some(110.0), Some(95.0))),
        ),
        (1, Cmd::Submit(0, -5.0)),
    ];
    let (out, strategy) = run_script(&data, script, &config());
    assert_eq!(
        fill_points(&out),
        vec![(2, 10.0, 100.0), (3, -5.0, 100.0), (4, -5.0, 95.0)]
    );
    assert_eq!(strategy.at(4).positions, vec![0.0]);
}

/// Regression (was ENGINE BUG) (sizing `short_cut` + fills): with `allow_short = false` a sell "that would take
/// a position below zero is cut at zero" (docs/semantics.md), but the cut is made at submission
/// against the position plus *market* orders only, and nothing is checked when a resting order
/// fills. Long 10; three resting sells of 10 (a stop at 99.5, limits at 101.5 and 102) each pass
/// the check against the long 10 and all fill on bar 3: the account ends short 20.
#[test]
fn resting_sells_never_take_a_position_short_when_shorting_is_off() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 100.0, 103.0, 99.0, 102.0), // 100 -> 99 -> 103: stop, then both limits
        flat(4, 0, 102.0),
    ]);
    let cfg = EngineConfig {
        allow_short: false,
        ..config()
    };
    let script = vec![
        (0, Cmd::Order(market_order(0, 10.0))),
        (1, Cmd::Order(limit_order(0, -10.0, 101.5))),
        (1, Cmd::Order(stop_order(0, -10.0, 99.5))),
        (1, Cmd::Order(limit_order(0, -10.0, 102.0))),
    ];
    let (out, strategy) = run_script(&data, script, &cfg);
    let lowest = strategy
        .seen
        .iter()
        .map(|s| s.positions[0])
        .fold(f64::INFINITY, f64::min);
    assert!(
        lowest >= 0.0,
        "position went to {lowest}: {:?}",
        fill_points(&out)
    );
}

// =============================================================================================
// Time in force and volume participation
// =============================================================================================

#[test]
fn day_order_expires_after_its_first_eligible_bar() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 99.0, 100.0, 95.0, 96.0), // limit 90 not reached
        bar(3, 0, 96.0, 97.0, 85.0, 86.0),  // would fill, but the order is gone
    ]);
    let request = with_tif(limit_order(0, 10.0, 90.0), TimeInForce::Day);
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    assert_eq!(out.fills.num_rows(), 0);
    let r = rejections(&out);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].order_id, r[0].asset, r[0].quantity), (1, 0, 10.0));
    assert_eq!(r[0].reason, REJECT_EXPIRED);

    // A DAY order that fills on its bar is not expired.
    let request = with_tif(limit_order(0, 10.0, 96.0), TimeInForce::Day);
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 96.0)]);
    assert_eq!(out.rejections.num_rows(), 0);
}

/// Regression (was ENGINE BUG) (settle): a DAY/IOC order lives for "the first bar it is eligible for"
/// (`TimeInForce::Day`), and an asset with no bar at a timestamp fills none of its orders, which
/// "stay pending until the asset's next bar" (docs/semantics.md). The engine expires the order at
/// the first *timestamp* after the decision even when its asset has no bar then, so it never had
/// a chance. Asset 1 has no bar at ts 2; its DAY limit buy at 50 should fill at the open of its
/// next bar (ts 3, open 49).
#[test]
fn day_order_waits_for_its_assets_next_bar() {
    let data = market(
        &[
            decision_bar(),
            flat(1, 1, 50.5),
            flat(2, 0, 100.0), // asset 1 missing
            flat(3, 0, 100.0),
            bar(3, 1, 49.0, 50.0, 48.0, 49.0),
        ],
        2,
        &[],
    );
    for tif in [TimeInForce::Day, TimeInForce::Ioc] {
        let request = with_tif(limit_order(1, 10.0, 50.0), tif);
        let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
        assert_eq!(fill_points(&out), vec![(3, 10.0, 49.0)], "{tif:?}");
        assert_eq!(out.rejections.num_rows(), 0, "{tif:?}");
    }
    // The same in same-close mode for a DAY market order decided while the asset has no bar.
    let request = with_tif(market_order(1, 10.0), TimeInForce::Day);
    let (out, _) = run_script(&data, vec![(1, Cmd::Order(request))], &same_close());
    assert_eq!(
        fill_points(&out),
        vec![(3, 10.0, 49.0)],
        "same_close DAY market"
    );
}

#[test]
fn ioc_fills_what_the_volume_cap_allows_and_expires_the_rest() {
    // Volume 1000 per bar, at most 10% per order per bar: 100 shares.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 101.0, 102.0, 100.0, 101.0),
        bar(3, 0, 102.0, 103.0, 101.0, 102.0),
    ]);
    let request = with_tif(market_order(0, 250.0), TimeInForce::Ioc);
    let (out, strategy) = run_script(&data, vec![(0, Cmd::Order(request))], &with_volume_cap(0.1));
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].ts, f[0].quantity, f[0].price, f[0].partial),
        (2, 100.0, 101.0, true)
    );
    let r = rejections(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].order_id, r[0].quantity, r[0].reason),
        (1, 150.0, REJECT_EXPIRED)
    );
    assert_eq!(strategy.at(1).positions, vec![100.0]);
    assert_eq!(strategy.at(1).pending, vec![0.0]);
}

#[test]
fn gtc_order_fills_partially_over_several_bars() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 101.0, 102.0, 100.0, 101.0),
        bar(3, 0, 102.0, 103.0, 101.0, 102.0),
        bar(4, 0, 103.0, 104.0, 102.0, 103.0),
        bar(5, 0, 104.0, 105.0, 103.0, 104.0),
    ]);
    let (out, strategy) = run_script(
        &data,
        vec![(0, Cmd::Order(market_order(0, 250.0)))],
        &with_volume_cap(0.1),
    );
    let f = fills(&out);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x.order_id, x.ts, x.quantity, x.price, x.partial))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2, 100.0, 101.0, true),
            (1, 3, 100.0, 102.0, true),
            (1, 4, 50.0, 103.0, false),
        ]
    );
    assert_eq!(f.iter().map(|x| x.quantity).sum::<f64>(), 250.0);
    assert_eq!(strategy.at(1).pending, vec![150.0]);
    assert_eq!(strategy.at(2).pending, vec![50.0]);
    assert_eq!(strategy.at(3).positions, vec![250.0]);
    assert_eq!(out.rejections.num_rows(), 0);
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].quantity, 250.0);
    assert_close(
        t[0].entry_price,
        (100.0 * 101.0 + 100.0 * 102.0 + 50.0 * 103.0) / 250.0,
        "mean entry",
    );
    assert_eq!(t[0].entry_ts, 2);
    assert_eq!(t[0].exit_reason, EXIT_END);
}

#[test]
fn volume_cap_rounds_down_to_whole_shares_with_integer_rounding() {
    // 10% of 1005 = 100.5 -> 100 shares per bar.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 101.0, 102.0, 100.0, 101.0).vol(1_005.0),
        bar(3, 0, 102.0, 103.0, 101.0, 102.0).vol(1_005.0),
    ]);
    let cfg = EngineConfig {
        rounding: ShareRounding::Integer,
        max_volume_fraction: Some(0.1),
        ..config()
    };
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(market_order(0, 150.0)))], &cfg);
    let q: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.quantity, x.partial))
        .collect();
    assert_eq!(q, vec![(100.0, true), (50.0, false)]);
}

#[test]
fn ioc_bracket_entry_gives_its_legs_the_filled_part() {
    // 250 wanted, 100 filled on bar 2 (cap), the rest expires; the legs protect the 100 shares.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 102.0, 106.0, 101.0, 105.0), // target 105
    ]);
    let request = with_tif(
        with_bracket(market_order(0, 250.0), Some(105.0), Some(95.0)),
        TimeInForce::Ioc,
    );
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &with_volume_cap(0.1));
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.signed(), x.price))
        .collect();
    assert_eq!(got, vec![(1, 2, 100.0, 100.0), (2, 3, -100.0, 105.0)]);
    let r = rejections(&out);
    assert_eq!(
        (r.len(), r[0].order_id, r[0].quantity, r[0].reason),
        (1, 1, 150.0, REJECT_EXPIRED)
    );
    assert_eq!(trades(&out)[0].exit_reason, EXIT_TAKE_PROFIT);
}

// =============================================================================================
// Cancels
// =============================================================================================

#[test]
fn cancel_removes_a_pending_order() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 99.0, 100.0, 95.0, 96.0), // limit 90 not reached
        bar(3, 0, 96.0, 97.0, 85.0, 86.0),  // would fill, but it was cancelled at bar 2
    ]);
    let script = vec![
        (0, Cmd::Order(limit_order(0, 10.0, 90.0))),
        (1, Cmd::Cancel(1)),
    ];
    let (out, _) = run_script(&data, script.clone(), &config());
    assert_eq!(out.fills.num_rows(), 0);
    assert_eq!(
        out.rejections.num_rows(),
        0,
        "a successful cancel is not a rejection"
    );
    // Without the cancel it fills on bar 3.
    let (out, _) = run_script(&data, script[..1].to_vec(), &config());
    assert_eq!(fill_points(&out), vec![(3, 10.0, 90.0)]);
}

#[test]
fn cancel_of_a_bracket_entry_removes_its_legs() {
    // A stop entry at 110 with a target at 120 and a stop-loss at 100. Bar 3: 96 -> 85 -> 121:
    // the entry triggers at 110 on the way up and the target fills at 120 after it.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 99.0, 100.0, 95.0, 96.0),
        bar(3, 0, 96.0, 121.0, 85.0, 120.0),
    ]);
    let request = with_bracket(stop_order(0, 10.0, 110.0), Some(120.0), Some(100.0));
    let script = vec![(0, Cmd::Order(request)), (1, Cmd::Cancel(1))];
    let (out, _) = run_script(&data, script.clone(), &config());
    assert_eq!(out.fills.num_rows(), 0);
    assert_eq!(
        out.rejections.num_rows(),
        0,
        "no leg is left over for end_of_data"
    );
    let (out, _) = run_script(&data, script[..1].to_vec(), &config());
    assert_eq!(fill_points(&out), vec![(3, 10.0, 110.0), (3, -10.0, 120.0)]);
}

#[test]
fn cancel_of_an_unknown_or_filled_order_is_rejected_as_not_pending() {
    let data = three_bars();
    let script = vec![
        (0, Cmd::Order(market_order(0, 10.0))), // id 1, fills at bar 2's open
        (0, Cmd::Cancel(99)),
        (1, Cmd::Cancel(1)),
    ];
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 102.0)]);
    let r = rejections(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].order_id, r[0].ts, r[0].reason),
        (99, 1, REJECT_NOT_PENDING)
    );
    assert!(r[0].quantity.is_nan());
    assert_eq!(
        (r[1].order_id, r[1].ts, r[1].reason),
        (1, 2, REJECT_NOT_PENDING)
    );
}

#[test]
fn cancelling_one_active_leg_leaves_the_other() {
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0), // entry; legs active
        bar(3, 0, 100.0, 101.0, 99.0, 100.0), // cancel of the stop-loss (id 3) decided here
        bar(4, 0, 98.0, 99.0, 90.0, 91.0),    // would hit the stop
        bar(5, 0, 100.0, 106.0, 99.0, 105.0), // target 105
    ]);
    let mut script = bracket_script();
    script.push((1, Cmd::Cancel(3)));
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (5, -10.0, 105.0)]);
    assert_eq!(out.rejections.num_rows(), 0);
}

// =============================================================================================
// Ids and submission checks
// =============================================================================================

#[test]
fn ids_increase_and_brackets_reserve_two() {
    let data = three_bars();
    let script = vec![
        (0, Cmd::Order(limit_order(0, 1.0, 50.0))), // 1
        (
            0,
            Cmd::Order(with_bracket(market_order(0, 1.0), Some(200.0), Some(50.0))),
        ), // 2 (+3, 4)
        (0, Cmd::TargetQuantity(0, 5.0)),           // 5
        (
            1,
            Cmd::Order(with_bracket(market_order(0, 1.0), Some(200.0), None)),
        ), // 6 (+7)
        (1, Cmd::Order(stop_order(0, 1.0, 500.0))), // 8
    ];
    let (out, strategy) = run_script(&data, script, &config());
    assert_eq!(strategy.ids, vec![1, 2, 6, 8]);
    let mut ids: Vec<u64> = fills(&out).iter().map(|f| f.order_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![2, 5, 6]);
}

#[track_caller]
fn assert_order_error(request: OrderRequest, field: &str) {
    match request.validate() {
        Err(BacktestError::Order { field: got, .. }) => assert_eq!(got, field, "{request:?}"),
        other => panic!("expected an order error on '{field}' for {request:?}, got {other:?}"),
    }
    // The command buffer runs the same checks at submission.
    let mut buffer = CommandBuffer::new(1);
    assert!(matches!(
        buffer.submit(request),
        Err(BacktestError::Order { .. })
    ));
    assert!(buffer.is_empty());
}

#[test]
fn validate_names_the_field_at_fault() {
    assert_order_error(market_order(0, 0.0), "quantity");
    assert_order_error(market_order(0, f64::NAN), "quantity");
    assert_order_error(market_order(0, f64::INFINITY), "quantity");
    assert_order_error(limit_order(0, 1.0, 0.0), "limit");
    assert_order_error(limit_order(0, 1.0, -5.0), "limit");
    assert_order_error(limit_order(0, 1.0, f64::NAN), "limit");
    assert_order_error(stop_order(0, -1.0, 0.0), "stop");
    assert_order_error(stop_order(0, -1.0, f64::INFINITY), "stop");
    assert_order_error(stop_limit_order(0, 1.0, -1.0, 100.0), "stop");
    assert_order_error(stop_limit_order(0, 1.0, 100.0, f64::NAN), "limit");
    assert_order_error(trail_amount_order(0, -1.0, 0.0), "trail_amount");
    assert_order_error(trail_percent_order(0, -1.0, 1.0), "trail_percent");
    assert_order_error(trail_percent_order(0, -1.0, -0.1), "trail_percent");
    assert_order_error(
        with_bracket(market_order(0, 1.0), Some(-1.0), None),
        "take_profit",
    );
    assert_order_error(
        with_bracket(market_order(0, 1.0), None, Some(f64::NAN)),
        "stop_loss",
    );

    // Legs crossed with each other (a market entry has no price to compare with).
    assert_order_error(
        with_bracket(market_order(0, 10.0), Some(95.0), Some(105.0)),
        "take_profit",
    );
    assert_order_error(
        with_bracket(market_order(0, -10.0), Some(105.0), Some(95.0)),
        "take_profit",
    );

    // Valid requests are accepted.
    for ok in [
        with_bracket(market_order(0, 1.0), Some(110.0), Some(90.0)),
        with_bracket(market_order(0, -1.0), Some(90.0), Some(110.0)),
        with_bracket(stop_order(0, 1.0, 100.0), Some(110.0), Some(90.0)),
        stop_limit_order(0, 1.0, 101.0, 102.0),
        trail_percent_order(0, -1.0, 0.05),
        with_tif(moc_order(0, 1.0), TimeInForce::Day),
    ] {
        assert_eq!(ok.validate(), Ok(()), "{ok:?}");
    }
}

/// Regression (was ENGINE BUG) (`OrderRequest::validate`): the side checks of bracket legs against an entry limit
/// are inverted. `wrong(above, below)` flags `above <= below`, but for a buy it is called as
/// `wrong(entry_limit, tp)` and `wrong(sl, entry_limit)` (and mirrored for a sell), so a buy
/// limit at 100 with a take-profit at 99 (below the entry) or a stop-loss at 101 (above it) is
/// accepted, while the correct bracket (take-profit 110, stop-loss 90) is refused with
/// "take_profit: must be on the profit side of the entry".
#[test]
fn bracket_legs_on_the_wrong_side_of_a_limit_entry_are_refused() {
    let buy = limit_order(0, 10.0, 100.0);
    let sell = limit_order(0, -10.0, 100.0);
    assert_order_error(with_bracket(buy, Some(99.0), None), "take_profit");
    assert_order_error(with_bracket(buy, Some(100.0), None), "take_profit");
    assert_order_error(with_bracket(buy, None, Some(101.0)), "stop_loss");
    assert_order_error(with_bracket(sell, Some(101.0), None), "take_profit");
    assert_order_error(with_bracket(sell, None, Some(99.0)), "stop_loss");
    let stop_limit = stop_limit_order(0, 10.0, 99.0, 100.0);
    assert_order_error(with_bracket(stop_limit, Some(99.5), None), "take_profit");
}

/// Regression (was ENGINE BUG): the other half of the inverted check above.
#[test]
fn bracket_legs_on_the_right_side_of_a_limit_entry_are_accepted() {
    let buy = limit_order(0, 10.0, 100.0);
    let sell = limit_order(0, -10.0, 100.0);
    for ok in [
        with_bracket(buy, Some(110.0), Some(90.0)),
        with_bracket(buy, Some(110.0), None),
        with_bracket(buy, None, Some(90.0)),
        with_bracket(sell, Some(90.0), Some(110.0)),
        with_bracket(
            stop_limit_order(0, 10.0, 99.0, 100.0),
            Some(110.0),
            Some(90.0),
        ),
    ] {
        assert_eq!(ok.validate(), Ok(()), "{ok:?}");
    }
}

#[test]
fn submission_errors_stop_the_run_and_name_the_field() {
    let err = try_run_script(
        &three_bars(),
        vec![(0, Cmd::Order(limit_order(0, 1.0, -1.0)))],
        &config(),
    )
    .expect_err("a negative limit is an error");
    assert!(
        matches!(&err, BacktestError::Order { field, .. } if field == "limit"),
        "{err}"
    );

    // Unknown asset code.
    let mut buffer = CommandBuffer::new(1);
    let err = buffer.submit(market_order(3, 1.0)).unwrap_err();
    assert!(
        matches!(&err, BacktestError::Order { field, .. } if field == "asset"),
        "{err}"
    );

    // Fractional quantities are refused with integer share rounding.
    let err = try_run_script(
        &three_bars(),
        vec![(0, Cmd::Order(limit_order(0, 1.5, 90.0)))],
        &integer(),
    )
    .expect_err("fractional shares with integer rounding");
    assert!(
        matches!(&err, BacktestError::Order { field, .. } if field == "quantity"),
        "{err}"
    );
}

#[test]
fn order_kind_codes_and_trail_levels() {
    assert_eq!(
        OrderKind::NAMES[OrderKind::Market.code() as usize],
        "market"
    );
    assert_eq!(OrderKind::Limit { limit: 1.0 }.code(), LIMIT);
    assert_eq!(OrderKind::Stop { stop: 1.0 }.code(), STOP);
    assert_eq!(
        OrderKind::StopLimit {
            stop: 1.0,
            limit: 1.0
        }
        .code(),
        STOP_LIMIT
    );
    assert_eq!(OrderKind::MarketOnClose.code(), MOC);
    let trailing = OrderKind::TrailingStop {
        trail: Trail::Amount(1.0),
    };
    assert_eq!(OrderKind::NAMES[trailing.code() as usize], "trailing_stop");
    assert_eq!(Trail::Amount(5.0).level(110.0, true), 105.0);
    assert_eq!(Trail::Amount(5.0).level(90.0, false), 95.0);
    assert_close(
        Trail::Percent(0.1).level(200.0, true),
        180.0,
        "percent below",
    );
    assert_close(
        Trail::Percent(0.1).level(200.0, false),
        220.0,
        "percent above",
    );
}

#[test]
fn exits_by_signal_keep_their_reason() {
    // A plain limit sell that closes a long is a strategy order: exit reason `signal`.
    let data = one(&[
        decision_bar(),
        bar(2, 0, 100.0, 101.0, 99.0, 100.0),
        bar(3, 0, 100.0, 104.0, 99.0, 103.0),
    ]);
    let script = vec![
        (0, Cmd::Order(market_order(0, 10.0))),
        (1, Cmd::Order(limit_order(0, -10.0, 103.0))),
    ];
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(fill_points(&out), vec![(2, 10.0, 100.0), (3, -10.0, 103.0)]);
    assert_eq!(trades(&out)[0].exit_reason, EXIT_SIGNAL);
}

#[test]
fn same_close_limit_orders_rest_from_the_next_bar() {
    // In same-close mode only market and on-close orders fill at the decision bar's close; a
    // limit decided at bar 1 is matched against bar 2 as a whole.
    let data = one(&[
        bar(1, 0, 100.0, 101.0, 95.0, 96.0), // would touch 97, but the order is decided at its close
        bar(2, 0, 99.0, 100.0, 97.0, 98.0),
    ]);
    let cfg = EngineConfig {
        execution: ExecutionMode::SameClose,
        ..config()
    };
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Order(limit_order(0, 10.0, 97.0)))],
        &cfg,
    );
    assert_eq!(fill_points(&out), vec![(2, 10.0, 97.0)]);
}
