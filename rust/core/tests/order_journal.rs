//! The order journal (`BacktestOutput::orders` and `order_events`): one row per order with what
//! it was when created, and every status change, for each way an order comes to exist —
//! explicit orders, bracket legs, target orders, risk exits and level exits, margin calls —
//! and each way it ends. Expected rows are written out from the contract, not read off the
//! engine.

mod common;

use common::*;
use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient};
use ml4t_backtest_core::events::{JournalStatus, OrderOrigin};
use ml4t_backtest_core::orders::{OrderKind, TimeInForce};
use ml4t_backtest_core::results::NO_REASON;
use ml4t_backtest_core::risk::rules::{
    Distance, MaxPositionSize, PositionLimit, StopLoss, TimeExit,
};
use ml4t_backtest_core::risk::BoxedRule;
use ml4t_backtest_core::types::{ExitReason, RejectReason};
use ml4t_backtest_core::{BacktestOutput, EngineConfig};

/// One row of the orders table.
#[derive(Debug, Clone, PartialEq)]
struct OrderRow {
    id: u64,
    ts: i64,
    asset: u32,
    kind: u8,
    quantity: f64,
    /// limit, stop, trail amount, trail percent (NaN when absent, compared as bits).
    prices: [u64; 4],
    tif: u8,
    parent: u64,
    oco: u64,
    origin: u8,
    reason: u8,
}

/// One row of the order events table: (id, ts, status, quantity, remaining, price bits, reason).
type EventRow = (u64, i64, JournalStatus, f64, f64, u64, u8);

fn orders(out: &BacktestOutput) -> Vec<OrderRow> {
    let b = &out.orders;
    let (limit, stop) = (f64s(b, "limit"), f64s(b, "stop"));
    let (amount, percent) = (f64s(b, "trail_amount"), f64s(b, "trail_percent"));
    let (ids, ts, assets) = (u64s(b, "order_id"), i64s(b, "ts"), u32s(b, "asset_id"));
    let (kinds, quantities, tifs) = (u8s(b, "order_type"), f64s(b, "quantity"), u8s(b, "tif"));
    let (parents, ocos) = (u64s(b, "parent_id"), u64s(b, "oco_id"));
    let (origins, reasons) = (u8s(b, "origin"), u8s(b, "exit_reason"));
    (0..b.num_rows())
        .map(|i| OrderRow {
            id: ids[i],
            ts: ts[i],
            asset: assets[i],
            kind: kinds[i],
            quantity: quantities[i],
            prices: [limit[i], stop[i], amount[i], percent[i]].map(f64::to_bits),
            tif: tifs[i],
            parent: parents[i],
            oco: ocos[i],
            origin: origins[i],
            reason: reasons[i],
        })
        .collect()
}

fn events(out: &BacktestOutput) -> Vec<EventRow> {
    let b = &out.order_events;
    let statuses = u8s(b, "status");
    let (ids, ts, reasons) = (u64s(b, "order_id"), i64s(b, "ts"), u8s(b, "reason"));
    let (quantity, remaining, price) =
        (f64s(b, "quantity"), f64s(b, "remaining"), f64s(b, "price"));
    (0..b.num_rows())
        .map(|i| {
            (
                ids[i],
                ts[i],
                status(statuses[i]),
                quantity[i],
                remaining[i],
                price[i].to_bits(),
                reasons[i],
            )
        })
        .collect()
}

fn status(code: u8) -> JournalStatus {
    use JournalStatus::*;
    [
        Accepted,
        Modified,
        Resized,
        ModifyRejected,
        PartiallyFilled,
        Filled,
        Cancelled,
        Expired,
        Rejected,
    ][code as usize]
}

const NAN: u64 = 0x7ff8_0000_0000_0000;

fn bits(v: f64) -> u64 {
    if v.is_nan() {
        NAN
    } else {
        v.to_bits()
    }
}

/// An order row with the defaults of a market order.
fn row(id: u64, ts: i64, quantity: f64, origin: OrderOrigin) -> OrderRow {
    OrderRow {
        id,
        ts,
        asset: 0,
        kind: OrderKind::Market.code(),
        quantity,
        prices: [NAN; 4],
        tif: TimeInForce::Gtc.code(),
        parent: 0,
        oco: 0,
        origin: origin as u8,
        reason: ExitReason::Signal as u8,
    }
}

fn accepted(id: u64, ts: i64, remaining: f64) -> EventRow {
    (
        id,
        ts,
        JournalStatus::Accepted,
        0.0,
        remaining,
        NAN,
        NO_REASON,
    )
}

fn filled(id: u64, ts: i64, quantity: f64, remaining: f64, price: f64) -> EventRow {
    let status = if remaining == 0.0 {
        JournalStatus::Filled
    } else {
        JournalStatus::PartiallyFilled
    };
    (id, ts, status, quantity, remaining, bits(price), NO_REASON)
}

fn ended(id: u64, ts: i64, status: JournalStatus, quantity: f64, reason: u8) -> EventRow {
    (id, ts, status, quantity, 0.0, NAN, reason)
}

/// Normalises NaN payloads (the engine's NaN may differ in bits from `NAN`).
fn normal(mut rows: Vec<OrderRow>) -> Vec<OrderRow> {
    for r in &mut rows {
        r.prices = r.prices.map(|p| bits(f64::from_bits(p)));
    }
    rows
}

fn normal_events(rows: Vec<EventRow>) -> Vec<EventRow> {
    rows.into_iter()
        .map(|(id, ts, s, q, r, p, reason)| (id, ts, s, q, r, bits(f64::from_bits(p)), reason))
        .collect()
}

fn with_account(account: AccountRules, cash: f64) -> EngineConfig {
    EngineConfig {
        initial_cash: cash,
        account,
        ..config()
    }
}

#[test]
fn a_market_order_is_accepted_then_filled() {
    let data = market(&[flat(1, 0, 100.0), oc(2, 0, 101.0, 102.0)], 1, &[]);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 10.0))], &config());
    assert_eq!(
        normal(orders(&out)),
        vec![row(1, 1, 10.0, OrderOrigin::Strategy)]
    );
    assert_eq!(
        normal_events(events(&out)),
        vec![accepted(1, 1, 10.0), filled(1, 2, 10.0, 0.0, 101.0)]
    );
}

#[test]
fn a_bracket_records_its_legs_and_the_sibling_cancelled_after_the_fill() {
    let data = market(
        &[
            bar(1, 0, 100.0, 100.5, 99.5, 100.0),
            bar(2, 0, 100.0, 101.0, 99.0, 100.0),
            bar(3, 0, 102.0, 106.0, 101.0, 105.0), // take-profit at 105
        ],
        1,
        &[],
    );
    let request = with_tif(
        with_bracket(limit_order(0, 10.0, 100.0), Some(105.0), Some(95.0)),
        TimeInForce::Gtc,
    );
    let (out, _) = run_script(&data, vec![(0, Cmd::Order(request))], &config());
    let entry = OrderRow {
        kind: OrderKind::Limit { limit: 100.0 }.code(),
        prices: [bits(100.0), NAN, NAN, NAN],
        ..row(1, 1, 10.0, OrderOrigin::Strategy)
    };
    let take_profit = OrderRow {
        kind: OrderKind::Limit { limit: 105.0 }.code(),
        prices: [bits(105.0), NAN, NAN, NAN],
        parent: 1,
        oco: 3,
        reason: ExitReason::TakeProfit as u8,
        ..row(2, 1, -10.0, OrderOrigin::Bracket)
    };
    let stop_loss = OrderRow {
        kind: OrderKind::Stop { stop: 95.0 }.code(),
        prices: [NAN, bits(95.0), NAN, NAN],
        parent: 1,
        oco: 2,
        reason: ExitReason::StopLoss as u8,
        ..row(3, 1, -10.0, OrderOrigin::Bracket)
    };
    assert_eq!(normal(orders(&out)), vec![entry, take_profit, stop_loss]);
    assert_eq!(
        normal_events(events(&out)),
        vec![
            accepted(1, 1, 10.0),
            accepted(2, 1, -10.0),
            accepted(3, 1, -10.0),
            filled(1, 2, 10.0, 0.0, 100.0),
            filled(2, 3, -10.0, 0.0, 105.0),
            ended(3, 3, JournalStatus::Cancelled, -10.0, NO_REASON),
        ]
    );
}

#[test]
fn orders_refused_before_the_book_get_their_row_from_the_intent() {
    // A cash account cannot short: the explicit sell is refused at decision time; a target
    // value for an asset never priced cannot be sized.
    let data = market(
        &[flat(1, 0, 100.0), flat(2, 0, 100.0), flat(2, 1, 50.0)],
        2,
        &[],
    );
    let cash = AccountRules {
        kind: AccountKind::Cash,
        ..AccountRules::default()
    };
    let script = vec![
        (
            0,
            Cmd::Order(with_tif(stop_order(0, -5.0, 90.0), TimeInForce::Day)),
        ),
        (0, Cmd::TargetValue(1, 1_000.0)),
    ];
    let (out, _) = run_script(&data, script, &with_account(cash, 10_000.0));
    let sell = OrderRow {
        kind: OrderKind::Stop { stop: 90.0 }.code(),
        tif: TimeInForce::Day.code(),
        prices: [NAN, bits(90.0), NAN, NAN],
        ..row(1, 1, -5.0, OrderOrigin::Strategy)
    };
    let rows = normal(orders(&out));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], sell);
    // The target order is a market order of asset 1 for an unknown (NaN) quantity.
    assert!(rows[1].quantity.is_nan());
    let target = row(2, 1, 0.0, OrderOrigin::Target);
    assert_eq!(
        OrderRow {
            quantity: 0.0,
            ..rows[1].clone()
        },
        OrderRow { asset: 1, ..target }
    );
    let e = normal_events(events(&out));
    assert_eq!(
        e[0],
        ended(
            1,
            1,
            JournalStatus::Rejected,
            -5.0,
            RejectReason::ShortNotAllowed as u8
        )
    );
    assert_eq!(
        (e[1].0, e[1].2, e[1].6),
        (2, JournalStatus::Rejected, RejectReason::NoPrice as u8)
    );
    assert_eq!(e.len(), 2);
}

#[test]
fn a_margin_call_and_a_resize_are_journaled() {
    // 50% initial margin with resize: 30 shares asked, 20 affordable (equity 1000 covers 2000
    // of exposure at 100); the price falls to 60 and the margin call sells them at that close.
    let data = market(
        &[
            flat(1, 0, 100.0),
            flat(2, 0, 100.0),
            flat(3, 0, 60.0),
            flat(4, 0, 60.0),
        ],
        1,
        &[],
    );
    let account = AccountRules {
        kind: AccountKind::Margin,
        initial_margin: Some(0.5),
        maintenance_margin: Some(0.25),
        on_insufficient: Insufficient::Resize,
        ..AccountRules::default()
    };
    let (out, _) = run_script(
        &data,
        vec![(0, Cmd::Submit(0, 30.0))],
        &with_account(account, 1_000.0),
    );
    let call = OrderRow {
        reason: ExitReason::MarginCall as u8,
        ..row(2, 3, -20.0, OrderOrigin::MarginCall)
    };
    assert_eq!(
        normal(orders(&out)),
        vec![row(1, 1, 30.0, OrderOrigin::Strategy), call]
    );
    assert_eq!(
        normal_events(events(&out)),
        vec![
            accepted(1, 1, 30.0),
            (
                1,
                2,
                JournalStatus::Resized,
                10.0,
                20.0,
                NAN,
                RejectReason::InsufficientMargin as u8
            ),
            filled(1, 2, 20.0, 0.0, 100.0),
            accepted(2, 3, -20.0),
            filled(2, 3, -20.0, 0.0, 60.0),
        ]
    );
}

fn boxed(rule: impl ml4t_backtest_core::risk::RiskRule + 'static) -> BoxedRule {
    Box::new(rule)
}

#[test]
fn risk_exits_and_pre_trade_cuts_are_journaled() {
    // MaxPositionSize(5 shares) cuts the buy of 8 to 5 before it is accepted; a 5% stop loss
    // (from the fill at 100) is reached at 95 on bar 3, filled at once as a level exit.
    let data = market(
        &[
            flat(1, 0, 100.0),
            flat(2, 0, 100.0),
            bar(3, 0, 99.0, 99.0, 94.0, 96.0),
        ],
        1,
        &[],
    );
    let rules = vec![
        boxed(MaxPositionSize::new(PositionLimit::Shares(5.0)).unwrap()),
        boxed(StopLoss::new(Distance::Percent(0.05)).unwrap()),
    ];
    let (out, _) = run_script_with_rules(&data, vec![(0, Cmd::Submit(0, 8.0))], &config(), rules);
    let level = OrderRow {
        kind: OrderKind::Stop { stop: 95.0 }.code(),
        prices: [NAN, bits(95.0), NAN, NAN],
        reason: ExitReason::StopLoss as u8,
        ..row(2, 3, -5.0, OrderOrigin::RiskLevel)
    };
    assert_eq!(
        normal(orders(&out)),
        vec![row(1, 1, 5.0, OrderOrigin::Strategy), level]
    );
    assert_eq!(
        normal_events(events(&out)),
        vec![
            (
                1,
                1,
                JournalStatus::Resized,
                3.0,
                5.0,
                NAN,
                RejectReason::RiskLimit as u8
            ),
            accepted(1, 1, 5.0),
            filled(1, 2, 5.0, 0.0, 100.0),
            accepted(2, 3, -5.0),
            filled(2, 3, -5.0, 0.0, 95.0),
        ]
    );

    // A time exit after 2 bars is queued as a market order (origin risk_exit) and fills at
    // the next open.
    let data = market(
        &(1..=5).map(|t| flat(t, 0, 100.0)).collect::<Vec<_>>(),
        1,
        &[],
    );
    let rules = vec![boxed(TimeExit::new(Some(2), None).unwrap())];
    let (out, _) = run_script_with_rules(&data, vec![(0, Cmd::Submit(0, 4.0))], &config(), rules);
    let rows = normal(orders(&out));
    assert_eq!(
        rows[1],
        OrderRow {
            reason: ExitReason::TimeExit as u8,
            ..row(2, 4, -4.0, OrderOrigin::RiskExit)
        }
    );
    assert_eq!(
        normal_events(events(&out))[2..],
        [accepted(2, 4, -4.0), filled(2, 5, -4.0, 0.0, 100.0)]
    );
}

#[test]
fn orders_open_at_the_end_are_rejected_at_the_last_timestamp_after_their_fills() {
    // Volume participation fills 4 of 10 shares per bar; the data ends with 2 left.
    let data = market(
        &[
            flat(1, 0, 100.0).vol(40.0),
            flat(2, 0, 100.0).vol(40.0),
            flat(3, 0, 100.0).vol(40.0),
        ],
        1,
        &[],
    );
    let cfg = EngineConfig {
        max_volume_fraction: Some(0.1),
        ..config()
    };
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 10.0))], &cfg);
    assert_eq!(
        normal_events(events(&out)),
        vec![
            accepted(1, 1, 10.0),
            filled(1, 2, 4.0, 6.0, 100.0),
            filled(1, 3, 4.0, 2.0, 100.0),
            (
                1,
                3,
                JournalStatus::Rejected,
                2.0,
                0.0,
                NAN,
                RejectReason::EndOfData as u8
            ),
        ]
    );
    // The rejections table keeps the order's decision time, as before.
    assert_eq!(rejections(&out)[0].ts, 1);
}

#[test]
fn cancels_and_not_pending_cancels() {
    let data = market(
        &(1..=3).map(|t| flat(t, 0, 100.0)).collect::<Vec<_>>(),
        1,
        &[],
    );
    let script = vec![
        (0, Cmd::Order(limit_order(0, 1.0, 50.0))),
        (1, Cmd::Cancel(1)),
        (2, Cmd::Cancel(1)), // no longer pending: a rejection of the cancel, not of the order
    ];
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(orders(&out).len(), 1);
    assert_eq!(
        normal_events(events(&out)),
        vec![
            accepted(1, 1, 1.0),
            ended(1, 2, JournalStatus::Cancelled, 1.0, NO_REASON)
        ]
    );
    assert_eq!(
        rejections(&out).len(),
        1,
        "the not_pending cancel is still reported"
    );
}
