//! Corporate actions: hand-computed splits (resting orders, integer shares with cash in lieu)
//! and dividends (long and short), and properties: a split is invisible to an account that
//! trades the split-adjusted equivalent, and the dividends recorded are the positions held at
//! the close before each ex-date times the dividend.

mod common;

use common::*;
use ml4t_backtest_core::actions::CorporateAction;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::events::{JournalStatus, OrderOrigin};
use ml4t_backtest_core::orders::OrderKind;
use ml4t_backtest_core::risk::rules::{Distance, StopLoss, TrailMark, TrailUpdate, TrailingStop};
use ml4t_backtest_core::risk::BoxedRule;
use ml4t_backtest_core::types::{ExitReason, RejectReason};
use ml4t_backtest_core::{BacktestOutput, Engine, EngineConfig, MarketData};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn action(ts: i64, asset: u32, split_ratio: f64, dividend: f64) -> CorporateAction {
    CorporateAction {
        ts,
        asset,
        split_ratio,
        dividend,
    }
}

/// Runs `script` over `data` with `actions`.
fn run_actions(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
    actions: Vec<CorporateAction>,
) -> (BacktestOutput, Scripted) {
    run_actions_with_rules(data, script, cfg, actions, Vec::new())
}

/// [`run_actions`] with risk rules.
fn run_actions_with_rules(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
    actions: Vec<CorporateAction>,
    rules: Vec<BoxedRule>,
) -> (BacktestOutput, Scripted) {
    let mut strategy = Scripted::new(script);
    let mut engine = Engine::new(cfg.clone(), data.n_assets()).unwrap();
    engine.set_risk_rules(rules);
    engine.set_corporate_actions(actions).unwrap();
    engine.process_chunk(data, &mut strategy).unwrap();
    let out = engine.finish(&mut strategy).unwrap();
    check_journal(&out).unwrap();
    (out, strategy)
}

fn dividends(out: &BacktestOutput) -> Vec<(i64, f64)> {
    let ts = i64s(&out.financing, "ts");
    ts.into_iter()
        .zip(f64s(&out.financing, "dividend"))
        .collect()
}

#[test]
fn a_two_for_one_split_restates_the_position_a_resting_limit_and_an_open_stop() {
    // Bought 10 at 100; a buy limit for 5 at 90 and a sell stop for 10 at 95 rest. The 2:1
    // split at ts 2 opens the stock at 50: without restating, the stop (95) would gap-fill at
    // the open. Restated, the position is 20 at 50, the limit 10 at 45 and the stop 20 at 47.5,
    // and the bar at ts 3 (48 -> 49 -> 44 -> 46) reaches the stop, then the limit.
    let data = market(
        &[
            flat(0, 0, 100.0),
            flat(1, 0, 100.0),
            flat(2, 0, 50.0),
            bar(3, 0, 48.0, 49.0, 44.0, 46.0),
        ],
        1,
        &[],
    );
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (0, Cmd::Order(limit_order(0, 5.0, 90.0))),
        (0, Cmd::Order(stop_order(0, -10.0, 95.0))),
    ];
    let (out, strategy) = run_actions(&data, script, &config(), vec![action(2, 0, 2.0, 0.0)]);
    let f = fills(&out);
    assert_eq!(f.len(), 3);
    assert_eq!((f[0].ts, f[0].signed(), f[0].price), (1, 10.0, 100.0));
    assert_eq!((f[1].ts, f[1].signed(), f[1].price), (3, -20.0, 47.5));
    assert_eq!((f[2].ts, f[2].signed(), f[2].price), (3, 10.0, 45.0));
    assert_eq!(strategy.at(2).positions, vec![20.0]);
    let e = equity(&out);
    assert_eq!(e[1].equity, 100_000.0);
    assert_eq!(
        e[2].equity, 100_000.0,
        "equity is continuous across the ex-date"
    );
    // cash 100000 - 1000 + 950 - 450, plus 10 shares at 46.
    assert_eq!(e[3].cash, 99_500.0);
    assert_eq!(e[3].equity, 99_960.0);
    let t = trades(&out);
    assert_eq!((t[0].entry_price, t[0].quantity), (50.0, 20.0));
    assert_eq!((t[0].exit_price, t[0].gross_pnl), (47.5, -50.0));
    // The restated orders are journaled as modifications at the ex-date.
    let statuses = u8s(&out.order_events, "status");
    let event_ts = i64s(&out.order_events, "ts");
    let modified: Vec<_> = statuses
        .iter()
        .zip(&event_ts)
        .filter(|(s, _)| **s == JournalStatus::Modified as u8)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(modified, vec![2, 2]);
    let splits = (
        i64s(&out.splits, "ts"),
        f64s(&out.splits, "quantity_before"),
        f64s(&out.splits, "quantity_after"),
    );
    assert_eq!(splits, (vec![2], vec![10.0], vec![20.0]));
}

#[test]
fn a_three_for_two_split_in_integer_shares_pays_cash_in_lieu_at_the_open() {
    // 3 shares bought at 100 (commission 1 per order) become 4.5: 4 are kept and the half share
    // is sold at the ex-date's open, 66, without commission: cash 100000 - 301 + 33 = 99732,
    // equity 99732 + 4 x 67 = 100000. A resting sell limit for 3 at 120 becomes 4 at 80.
    let data = market(
        &[
            flat(0, 0, 100.0),
            flat(1, 0, 100.0),
            bar(2, 0, 66.0, 68.0, 65.0, 67.0),
        ],
        1,
        &[],
    );
    let cfg = with_commission(
        integer(),
        CommissionModel::PerOrder {
            amount: 1.0,
            minimum: 0.0,
        },
    );
    let script = vec![
        (0, Cmd::Submit(0, 3.0)),
        (0, Cmd::Order(limit_order(0, -3.0, 120.0))),
    ];
    let (out, strategy) = run_actions(&data, script, &cfg, vec![action(2, 0, 1.5, 0.0)]);
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].ts, f[1].signed(), f[1].price), (2, -0.5, 66.0));
    assert_eq!(f[1].commission, 0.0);
    assert_eq!(f[1].order_type, OrderKind::CASH_IN_LIEU);
    assert_eq!(strategy.at(2).positions, vec![4.0]);
    let e = equity(&out);
    assert_eq!(e[1].equity, 99_999.0);
    assert_eq!((e[2].cash, e[2].equity), (99_732.0, 100_000.0));
    // The open trade counts the half share sold: gross = equity change + commission.
    let t = trades(&out);
    assert!(t[0].open);
    assert_close(t[0].gross_pnl, 1.0, "gross pnl");
    assert_close(t[0].entry_price, 100.0 / 1.5, "entry price");
    assert_eq!(t[0].quantity, 4.5);
    let limits = f64s(&out.order_events, "limit");
    let statuses = u8s(&out.order_events, "status");
    let remaining = f64s(&out.order_events, "remaining");
    let at = statuses
        .iter()
        .position(|s| *s == JournalStatus::Modified as u8)
        .unwrap();
    assert_eq!((limits[at], remaining[at]), (80.0, -4.0));
    let origins = u8s(&out.orders, "origin");
    assert_eq!(*origins.last().unwrap(), OrderOrigin::CorporateAction as u8);
}

#[test]
fn a_reverse_split_can_leave_no_whole_share_of_a_position_or_an_order() {
    // 1-for-4: 2 shares become 0.5, all paid in cash at the open (the trade closes with
    // cash_in_lieu); a buy limit for 3 shares becomes 0.75, nothing, and is rejected `split`.
    let data = market(
        &[flat(0, 0, 10.0), flat(1, 0, 10.0), flat(2, 0, 41.0)],
        1,
        &[],
    );
    let script = vec![
        (0, Cmd::Submit(0, 2.0)),
        (0, Cmd::Order(limit_order(0, 3.0, 5.0))),
    ];
    let (out, _) = run_actions(&data, script, &integer(), vec![action(2, 0, 0.25, 0.0)]);
    let f = fills(&out);
    assert_eq!((f[1].signed(), f[1].price), (-0.5, 41.0));
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(!t[0].open);
    assert_eq!(t[0].exit_reason, ExitReason::CashInLieu as u8);
    assert_close(t[0].gross_pnl, 0.5 * 41.0 - 20.0, "gross pnl");
    let r = rejections(&out);
    assert_eq!((r[0].ts, r[0].reason), (2, RejectReason::Split as u8));
    assert_eq!(equity(&out)[2].equity, 100_000.0 - 20.0 + 20.5);
}

#[test]
fn dividends_credit_longs_and_charge_shorts_on_the_position_at_the_previous_close() {
    // Long 10 A, short 20 B from ts 1. A pays 0.5 on ex-date 2: 10 x 0.5 (the 10 more shares
    // bought at ts 2's open do not count). B pays 0.1 dated 2.5, between bars: applied at ts 3
    // (B has no bar at 2), -20 x 0.1.
    let ts = |i: i64| i * 10;
    let rows: Vec<_> = [
        flat(0, 0, 50.0),
        flat(0, 1, 20.0),
        flat(1, 0, 50.0),
        flat(1, 1, 20.0),
        flat(2, 0, 49.5),
        flat(3, 0, 49.5),
        flat(3, 1, 19.9),
    ]
    .into_iter()
    .map(|mut r| {
        r.ts = ts(r.ts);
        r
    })
    .collect();
    let data = market(&rows, 2, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (0, Cmd::Submit(1, -20.0)),
        (1, Cmd::Submit(0, 10.0)),
    ];
    let actions = vec![action(20, 0, 1.0, 0.5), action(25, 1, 1.0, 0.1)];
    let (out, _) = run_actions(&data, script, &config(), actions);
    assert_eq!(dividends(&out), vec![(20, 5.0), (30, -2.0)]);
    let e = equity(&out);
    // ts 2: cash 100000 - 500 + 400 + 5 - 495, 20 A at 49.5, -20 B at 20.
    assert_close(e[2].cash, 99_410.0, "cash at the first ex-date");
    assert_close(
        e[2].equity,
        99_410.0 + 990.0 - 400.0,
        "equity at the first ex-date",
    );
    let t = trades(&out);
    // A: entered 10 at 50 and 10 at 49.5, marked at 49.5, plus the dividend.
    assert_close(
        t[0].gross_pnl,
        -5.0 + 5.0,
        "A's open trade counts its dividend",
    );
    // B: short 20 from 20 to 19.9, minus the dividend it paid.
    assert_close(
        t[1].gross_pnl,
        2.0 - 2.0,
        "B's open trade counts the dividend it paid",
    );
}

#[test]
fn risk_levels_and_a_trailing_water_mark_follow_a_split() {
    // Long 10 from 100 with a 5% stop loss (95) and a 10% trailing stop from the highs (high
    // water 104 -> 93.6). After the 2:1 split the bars trade at 49 (98 before), above both
    // restated levels (47.5, 46.8); unrestated, both would fire at the open. At ts 4 the low
    // of 46.9 reaches the stop loss (47.5) only.
    let rules: Vec<BoxedRule> = vec![
        Box::new(StopLoss::new(Distance::Percent(0.05)).unwrap()),
        Box::new(
            TrailingStop::new(
                Distance::Percent(0.10),
                TrailMark::Extreme,
                TrailUpdate::Lagged,
            )
            .unwrap(),
        ),
    ];
    let data = market(
        &[
            flat(0, 0, 100.0),
            bar(1, 0, 100.0, 104.0, 100.0, 100.0),
            flat(2, 0, 100.0),
            flat(3, 0, 49.0),
            bar(4, 0, 49.0, 49.0, 46.9, 47.0),
        ],
        1,
        &[],
    );
    let script = vec![(0, Cmd::Submit(0, 10.0))];
    let (out, _) = run_actions_with_rules(
        &data,
        script,
        &config(),
        vec![action(3, 0, 2.0, 0.0)],
        rules,
    );
    let f = fills(&out);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[1].ts, f[1].signed(), f[1].price), (4, -20.0, 47.5));
    assert_eq!(trades(&out)[0].exit_reason, ExitReason::StopLoss as u8);
}

#[test]
fn without_actions_nothing_is_recorded() {
    let data = market(&[flat(0, 0, 10.0), flat(1, 0, 11.0)], 1, &[]);
    let (out, _) = run_actions(&data, vec![(0, Cmd::Submit(0, 1.0))], &config(), vec![]);
    assert_eq!(out.financing.num_rows(), 0);
    assert_eq!(out.splits.num_rows(), 0);
}

#[test]
fn bad_actions_are_refused_before_the_run() {
    let mut engine = Engine::new(config(), 1).unwrap();
    let err = engine
        .set_corporate_actions(vec![action(1, 0, -2.0, 0.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("actions.split_ratio") && err.contains("positive_ratio"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// One generated command: at timestamp index `at`, a market order or a resting limit / stop at
/// `level` × the decision close.
#[derive(Debug, Clone)]
struct Command {
    at: u64,
    asset: u32,
    quantity: f64,
    kind: u8,
    level: f64,
}

fn price_paths(n_assets: usize, n_ts: usize) -> impl Strategy<Value = Vec<Vec<(f64, f64, f64)>>> {
    // Per asset and timestamp: (close, up, down) as multiples; the open is the previous close.
    prop::collection::vec(
        prop::collection::vec((0.9f64..1.1, 0.0f64..0.04, 0.0f64..0.04), n_ts),
        n_assets,
    )
}

fn commands(n_assets: u32, n_ts: u64) -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec(
        (0..n_ts, 0..n_assets, -20i32..=20, 0u8..3, 0.93f64..1.07).prop_map(
            |(at, asset, q, kind, level)| Command {
                at,
                asset,
                quantity: if q == 0 { 1.0 } else { f64::from(q) },
                kind,
                level,
            },
        ),
        0..12,
    )
}

/// Bars from the paths, prices divided by `scale(asset, index)`.
fn bars(paths: &[Vec<(f64, f64, f64)>], scale: &dyn Fn(u32, usize) -> f64) -> Vec<Row> {
    let n_ts = paths[0].len();
    let mut rows = Vec::new();
    let mut last: Vec<f64> = vec![100.0; paths.len()];
    for i in 0..n_ts {
        for (a, path) in paths.iter().enumerate() {
            let (c, up, down) = path[i];
            let open = last[a];
            let close = open * c;
            last[a] = close;
            let s = scale(a as u32, i);
            rows.push(bar(
                i as i64,
                a as u32,
                open / s,
                open.max(close) * (1.0 + up) / s,
                open.min(close) * (1.0 - down) / s,
                close / s,
            ));
        }
    }
    rows
}

/// The closes of the unscaled path, per asset and index (for order levels).
fn closes(paths: &[Vec<(f64, f64, f64)>]) -> Vec<Vec<f64>> {
    paths
        .iter()
        .map(|path| {
            let mut c = 100.0;
            path.iter()
                .map(|(m, _, _)| {
                    c *= m;
                    c
                })
                .collect()
        })
        .collect()
}

/// The script of `commands`; orders decided at or after an asset's ex-date index are in
/// post-split units (quantity × ratio, levels ÷ ratio).
fn script(
    commands: &[Command],
    closes: &[Vec<f64>],
    ratio: &dyn Fn(u32, u64) -> f64,
) -> Vec<(u64, Cmd)> {
    let mut out: Vec<(u64, Cmd)> = commands
        .iter()
        .map(|c| {
            let r = ratio(c.asset, c.at);
            let q = c.quantity * r;
            let level = closes[c.asset as usize][c.at as usize] * c.level / r;
            let cmd = match c.kind {
                0 => Cmd::Submit(c.asset, q),
                1 => Cmd::Order(limit_order(c.asset, q, level)),
                _ => Cmd::Order(stop_order(c.asset, q, level)),
            };
            (c.at, cmd)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A split (ratio a power of two, so every restated number is exact) leaves the account
    /// exactly where an account trading the adjusted equivalent is: the same equity at every
    /// timestamp, the same cash, the same trade PnL.
    #[test]
    fn equity_is_continuous_across_splits(
        paths in price_paths(2, 12),
        cmds in commands(2, 12),
        ex in prop::collection::vec(1usize..12, 2),
        power in prop::collection::vec(-2i32..=2, 2),
        percent in prop::bool::ANY,
    ) {
        let ratios: Vec<f64> = power.iter().map(|&p| if p == 0 { 2.0 } else { 2f64.powi(p) }).collect();
        let scale = |a: u32, i: usize| if i >= ex[a as usize] { ratios[a as usize] } else { 1.0 };
        let plain = market(&bars(&paths, &|_, _| 1.0), 2, &[]);
        let split = market(&bars(&paths, &scale), 2, &[]);
        let c = closes(&paths);
        let cfg = if percent {
            with_commission(config(), CommissionModel::Percent { rate: 0.001, minimum: 0.0 })
        } else {
            config()
        };
        let (a, _) = run_actions(&plain, script(&cmds, &c, &|_, _| 1.0), &cfg, vec![]);
        let ratio = |asset: u32, at: u64| scale(asset, at as usize);
        let actions: Vec<_> = {
            let mut v: Vec<_> = (0..2u32)
                .map(|asset| action(ex[asset as usize] as i64, asset, ratios[asset as usize], 0.0))
                .collect();
            v.sort_by_key(|x| (x.ts, x.asset));
            v
        };
        let (b, _) = run_actions(&split, script(&cmds, &c, &ratio), &cfg, actions);
        let (ea, eb) = (equity(&a), equity(&b));
        for (x, y) in ea.iter().zip(&eb) {
            prop_assert!(close_enough(x.equity, y.equity), "equity {} vs {} at {}", x.equity, y.equity, x.ts);
            prop_assert!(close_enough(x.cash, y.cash), "cash {} vs {} at {}", x.cash, y.cash, x.ts);
        }
        let (ta, tb) = (trades(&a), trades(&b));
        prop_assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(&tb) {
            prop_assert!(close_enough(x.gross_pnl, y.gross_pnl), "pnl {} vs {}", x.gross_pnl, y.gross_pnl);
        }
    }

    /// The financing table's dividends sum to Σ position held at the close before each ex-date
    /// × its dividend, and each is in the cash and in the trades' PnL.
    #[test]
    fn dividends_recorded_are_the_positions_at_the_previous_close_times_the_dividend(
        paths in price_paths(2, 10),
        cmds in commands(2, 10),
        payouts in prop::collection::vec((1usize..10, 0u32..2, -1.0f64..2.0), 0..6),
    ) {
        let data = market(&bars(&paths, &|_, _| 1.0), 2, &[]);
        let c = closes(&paths);
        let mut actions: Vec<_> = payouts.iter().map(|&(i, a, d)| action(i as i64, a, 1.0, d)).collect();
        actions.sort_by_key(|x| (x.ts, x.asset));
        actions.dedup_by_key(|x| (x.ts, x.asset));
        let sc = script(&cmds, &c, &|_, _| 1.0);
        let (with, seen) = run_actions(&data, sc.clone(), &config(), actions.clone());
        let (without, _) = run_actions(&data, sc, &config(), vec![]);
        let expected: f64 = actions
            .iter()
            .map(|x| seen.at(x.ts as u64 - 1).positions[x.asset as usize] * x.dividend)
            .sum();
        let recorded: f64 = dividends(&with).iter().map(|(_, d)| d).sum();
        prop_assert!((recorded - expected).abs() <= 1e-9 * (1.0 + expected.abs()), "{recorded} vs {expected}");
        // Dividends change nothing but cash: the same fills, and the final cash differs by them.
        prop_assert_eq!(fills(&with).len(), fills(&without).len());
        let (ew, eo) = (equity(&with), equity(&without));
        let gap = ew.last().unwrap().cash - eo.last().unwrap().cash;
        prop_assert!((gap - recorded).abs() <= 1e-6, "{gap} vs {recorded}");
        let pnl = |o: &BacktestOutput| trades(o).iter().map(|t| t.gross_pnl).sum::<f64>();
        prop_assert!((pnl(&with) - pnl(&without) - recorded).abs() <= 1e-6);
    }
}
