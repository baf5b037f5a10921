//! Hand-computed scenarios: every expected number below is written out from the contract in
//! `docs/semantics.md`, not taken from the engine.

mod common;

use common::*;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy, TopKStrategy};
use ml4t_backtest_core::{run_backtest, BacktestError, EngineConfig, MarketData};

const BUY: u8 = 0;
const SELL: u8 = 1;
const SIGNAL: u8 = 0;
const END_OF_DATA: u8 = 1;
const REJECT_NO_PRICE: u8 = 0;
const REJECT_SHORT: u8 = 1;
const REJECT_END: u8 = 2;

fn percent_fee(rate: f64) -> CommissionModel {
    CommissionModel::Percent { rate, minimum: 0.0 }
}

/// One asset, three bars with distinct open and close.
fn three_bars() -> MarketData {
    market(
        &[
            bar(1, 0, 100.0, 102.0, 99.0, 101.0),
            bar(2, 0, 102.0, 104.0, 101.0, 103.0),
            bar(3, 0, 103.0, 105.0, 102.0, 104.0),
        ],
        1,
        &[],
    )
}

#[test]
fn next_open_fills_at_the_next_bars_open() {
    let data = three_bars();
    let cfg = with_commission(config(), percent_fee(0.001));
    let (out, strategy) = run_script(&data, vec![(0, Cmd::Submit(0, 10.0))], &cfg);

    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].order_id, f[0].ts, f[0].asset, f[0].side),
        (1, 2, 0, BUY)
    );
    assert_eq!(f[0].quantity, 10.0);
    assert_eq!(f[0].price, 102.0);
    assert_eq!(f[0].reference_price, 102.0);
    assert_eq!(f[0].slippage, 0.0);
    assert_close(f[0].commission, 0.001 * 10.0 * 102.0, "fee");

    let expected_cash = 100_000.0 - 10.0 * 102.0 - 1.02;
    let e = equity(&out);
    assert_eq!(e.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(e[0].cash, 100_000.0);
    assert_eq!(e[0].equity, 100_000.0);
    assert_close(e[1].cash, expected_cash, "cash t2");
    assert_close(e[1].long_value, 10.0 * 103.0, "long t2");
    assert_close(e[1].equity, expected_cash + 1_030.0, "equity t2");
    assert_close(e[2].long_value, 10.0 * 104.0, "long t3");
    assert_close(e[2].equity, expected_cash + 1_040.0, "equity t3");
    assert_eq!(e[2].short_value, 0.0);

    // The strategy sees the fill (made before its call at t2) and the marked equity.
    assert_eq!(strategy.at(0).positions, vec![0.0]);
    assert_eq!(strategy.at(1).positions, vec![10.0]);
    assert_eq!(strategy.at(1).pending, vec![0.0]);
    assert_close(
        strategy.at(1).equity,
        expected_cash + 1_030.0,
        "ctx equity t2",
    );
    assert_eq!(strategy.fills.len(), 1);
    assert!(strategy.ended);

    // Still held at the end: one open trade valued at the last close.
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(t[0].long && t[0].open);
    assert_eq!((t[0].entry_ts, t[0].exit_ts), (2, 3));
    assert_eq!((t[0].entry_price, t[0].exit_price), (102.0, 104.0));
    assert_eq!(t[0].quantity, 10.0);
    assert_close(t[0].gross_pnl, 10.0 * (104.0 - 102.0), "open gross");
    assert_close(t[0].commission, 1.02, "open commission");
    assert_eq!(t[0].bars_held, 1);
    assert_eq!(t[0].exit_reason, END_OF_DATA);
    assert_eq!(out.rejections.num_rows(), 0);
}

#[test]
fn same_close_fills_at_the_decision_bars_close() {
    let data = three_bars();
    let cfg = with_commission(same_close(), percent_fee(0.001));
    let (out, strategy) = run_script(&data, vec![(0, Cmd::Submit(0, 10.0))], &cfg);

    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].ts, f[0].price, f[0].reference_price),
        (1, 101.0, 101.0)
    );
    assert_close(f[0].commission, 1.01, "fee");

    let expected_cash = 100_000.0 - 10.0 * 101.0 - 1.01;
    let e = equity(&out);
    // The equity row of t1 already includes the fill.
    assert_close(e[0].cash, expected_cash, "cash t1");
    assert_close(e[0].long_value, 1_010.0, "long t1");
    assert_close(e[0].equity, 100_000.0 - 1.01, "equity t1");
    assert_close(e[2].equity, expected_cash + 1_040.0, "equity t3");
    // ...but the strategy decided on the pre-fill equity.
    assert_eq!(strategy.at(0).equity, 100_000.0);

    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].entry_ts, t[0].entry_price, t[0].bars_held),
        (1, 101.0, 2)
    );
    assert_close(t[0].gross_pnl, 10.0 * (104.0 - 101.0), "gross");
}

#[test]
fn same_close_order_on_the_last_bar_fills() {
    let data = three_bars();
    let (out, _) = run_script(&data, vec![(2, Cmd::Submit(0, 1.0))], &same_close());
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].ts, f[0].price), (3, 104.0));
    assert_eq!(out.rejections.num_rows(), 0);
}

#[test]
fn exits_fill_before_entries_within_a_bar() {
    let rows = [
        flat(1, 0, 50.0),
        flat(1, 1, 20.0),
        flat(2, 0, 50.0),
        flat(2, 1, 20.0),
        oc(3, 0, 51.0, 52.0),
        oc(3, 1, 21.0, 22.0),
    ];
    let data = market(&rows, 2, &[]);
    // The entry (asset 1) is submitted before the exit (asset 0) at index 1.
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Submit(1, 5.0)),
        (1, Cmd::Submit(0, -10.0)),
    ];

    let (out, _) = run_script(&data, script.clone(), &config());
    let f = fills(&out);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.side))
        .collect();
    assert_eq!(got, vec![(1, 2, 0, BUY), (3, 3, 0, SELL), (2, 3, 1, BUY)]);
    assert_eq!((f[1].price, f[2].price), (51.0, 21.0));

    let (out, _) = run_script(&data, script, &same_close());
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.side, x.price))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1, 0, BUY, 50.0),
            (3, 2, 0, SELL, 50.0),
            (2, 2, 1, BUY, 20.0)
        ]
    );
}

#[test]
fn freed_cash_is_visible_to_entries_in_the_same_bar() {
    // Exits first is observable through the cash path: after the sell the account holds the
    // proceeds before the buy is booked, so the buy never sees negative cash.
    let rows = [
        flat(1, 0, 100.0),
        flat(1, 1, 100.0),
        flat(2, 0, 100.0),
        flat(2, 1, 100.0),
    ];
    let data = market(&rows, 2, &[]);
    let cfg = EngineConfig {
        initial_cash: 1_000.0,
        ..same_close()
    };
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Submit(1, 10.0)),
        (1, Cmd::Close(0)),
    ];
    let (out, strategy) = run_script(&data, script, &cfg);
    let f = fills(&out);
    assert_eq!(f.len(), 3);
    assert_eq!((f[1].asset, f[1].side), (0, SELL));
    assert_eq!((f[2].asset, f[2].side), (1, BUY));
    assert_eq!(strategy.fills[1].asset, 0);
    let e = equity(&out);
    assert_eq!(e[0].cash, 0.0);
    assert_eq!(e[1].cash, 0.0);
    assert_eq!(e[1].long_value, 1_000.0);
}

#[test]
fn missing_bar_marks_at_last_close_and_delays_the_order() {
    let rows = [
        flat(1, 0, 10.0),
        flat(1, 1, 20.0),
        flat(2, 0, 10.0),
        bar(2, 1, 20.5, 21.5, 20.0, 21.0),
        flat(3, 0, 10.0), // asset 1 has no bar at t3
        flat(4, 0, 10.0),
        bar(4, 1, 22.0, 23.5, 21.5, 23.0),
    ];
    let data = market(&rows, 2, &[]);
    let script = vec![(0, Cmd::Submit(1, 10.0)), (1, Cmd::Submit(1, -4.0))];
    let (out, strategy) = run_script(&data, script, &config());

    let f = fills(&out);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.signed(), x.price))
        .collect();
    assert_eq!(got, vec![(1, 2, 1, 10.0, 20.5), (2, 4, 1, -4.0, 22.0)]);

    let e = equity(&out);
    let cash_after_buy = 100_000.0 - 10.0 * 20.5;
    assert_eq!(e[1].cash, cash_after_buy);
    assert_eq!(e[1].long_value, 10.0 * 21.0);
    // t3: no bar for asset 1 -> marked at its t2 close, the sell still pending.
    assert_eq!(e[2].ts, 3);
    assert_eq!(e[2].cash, cash_after_buy);
    assert_eq!(e[2].long_value, 10.0 * 21.0);
    assert_eq!(e[2].equity, cash_after_buy + 210.0);
    let seen = strategy.at(2);
    assert_eq!(seen.assets, vec![0]);
    assert_eq!(seen.positions, vec![0.0, 10.0]);
    assert_eq!(seen.pending, vec![0.0, -4.0]);
    assert_eq!(seen.equity, 100_005.0);
    // t4: the sell fills at asset 1's next open.
    assert_eq!(e[3].cash, cash_after_buy + 4.0 * 22.0);
    assert_eq!(e[3].long_value, 6.0 * 23.0);
    assert_eq!(e[3].equity, 100_021.0);

    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(t[0].open && t[0].long);
    assert_eq!((t[0].entry_ts, t[0].exit_ts), (2, 4));
    assert_eq!(
        (t[0].entry_price, t[0].exit_price, t[0].quantity),
        (20.5, 23.0, 10.0)
    );
    // Realised 4 × (22 − 20.5) plus unrealised 6 × (23 − 20.5).
    assert_close(t[0].gross_pnl, 6.0 + 15.0, "gross");
    // Asset 1's bars: entry at its 2nd bar, end at its 3rd (t3 does not count).
    assert_eq!(t[0].bars_held, 1);
    assert_eq!(out.rejections.num_rows(), 0);
}

#[test]
fn same_close_order_for_an_asset_without_a_bar_waits_for_its_next_close() {
    let rows = [
        flat(1, 0, 10.0),
        flat(1, 1, 20.0),
        flat(2, 0, 10.0),
        bar(3, 0, 10.0, 10.0, 10.0, 10.0),
        bar(3, 1, 22.0, 23.5, 21.5, 23.0),
    ];
    let data = market(&rows, 2, &[]);
    let (out, strategy) = run_script(&data, vec![(1, Cmd::Submit(1, 4.0))], &same_close());
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].ts, f[0].price, f[0].reference_price), (3, 23.0, 23.0));
    assert_eq!(strategy.at(2).pending, vec![0.0, 4.0]);
    let e = equity(&out);
    assert_eq!(e[1].cash, 100_000.0);
    assert_eq!(e[2].cash, 100_000.0 - 4.0 * 23.0);
}

#[test]
fn orders_that_never_fill_are_rejected_as_end_of_data() {
    let rows = [
        flat(1, 0, 10.0),
        flat(1, 1, 5.0), // asset 1's only bar
        flat(2, 0, 11.0),
        flat(3, 0, 12.0),
    ];
    let data = market(&rows, 2, &[]);
    let script = vec![(0, Cmd::Submit(1, 3.0)), (2, Cmd::Submit(0, 5.0))];
    let (out, _) = run_script(&data, script, &config());
    assert_eq!(out.fills.num_rows(), 0);
    assert_eq!(out.trades.num_rows(), 0);
    let r = rejections(&out);
    assert_eq!(
        r,
        vec![
            RejectionRow {
                order_id: 1,
                ts: 1,
                asset: 1,
                quantity: 3.0,
                reason: REJECT_END
            },
            RejectionRow {
                order_id: 2,
                ts: 3,
                asset: 0,
                quantity: 5.0,
                reason: REJECT_END
            },
        ]
    );
    let e = equity(&out);
    assert!(e
        .iter()
        .all(|r| r.cash == 100_000.0 && r.equity == 100_000.0));
}

/// Four bars of one asset: opens 100, 101, 103, 105; closes 100, 102, 104, 106.
fn four_bars() -> MarketData {
    market(
        &[
            oc(1, 0, 100.0, 100.0),
            oc(2, 0, 101.0, 102.0),
            oc(3, 0, 103.0, 104.0),
            oc(4, 0, 105.0, 106.0),
        ],
        1,
        &[],
    )
}

fn per_order(amount: f64) -> CommissionModel {
    CommissionModel::PerOrder {
        amount,
        minimum: 0.0,
    }
}

#[test]
fn long_round_trip() {
    let cfg = with_commission(config(), per_order(1.0));
    let script = vec![(0, Cmd::Submit(0, 10.0)), (2, Cmd::Close(0))];
    let (out, _) = run_script(&four_bars(), script, &cfg);

    let f = fills(&out);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x.ts, x.signed(), x.price, x.commission))
        .collect();
    assert_eq!(got, vec![(2, 10.0, 101.0, 1.0), (4, -10.0, 105.0, 1.0)]);

    let e = equity(&out);
    assert_eq!(e[1].cash, 100_000.0 - 1_010.0 - 1.0);
    assert_eq!(e[1].equity, 98_989.0 + 1_020.0);
    assert_eq!(e[2].equity, 98_989.0 + 1_040.0);
    assert_eq!(e[3].cash, 100_000.0 - 1_010.0 - 1.0 + 1_050.0 - 1.0);
    assert_eq!(e[3].long_value, 0.0);
    assert_eq!(e[3].equity, 100_038.0);

    let t = trades(&out);
    assert_eq!(
        t,
        vec![TradeRow {
            asset: 0,
            long: true,
            entry_ts: 2,
            exit_ts: 4,
            entry_price: 101.0,
            exit_price: 105.0,
            quantity: 10.0,
            gross_pnl: 40.0,
            commission: 2.0,
            bars_held: 2,
            exit_reason: SIGNAL,
            open: false,
        }]
    );
    // net = gross − commission equals the equity change.
    assert_eq!(t[0].gross_pnl - t[0].commission, e[3].equity - 100_000.0);
}

#[test]
fn short_round_trip() {
    let cfg = with_commission(config(), per_order(1.0));
    let script = vec![(0, Cmd::Submit(0, -10.0)), (2, Cmd::Submit(0, 10.0))];
    let (out, _) = run_script(&four_bars(), script, &cfg);

    let f = fills(&out);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x.ts, x.side, x.quantity, x.price))
        .collect();
    assert_eq!(got, vec![(2, SELL, 10.0, 101.0), (4, BUY, 10.0, 105.0)]);

    let e = equity(&out);
    assert_eq!(e[1].cash, 100_000.0 + 1_010.0 - 1.0);
    assert_eq!(e[1].short_value, -1_020.0);
    assert_eq!(e[1].long_value, 0.0);
    assert_eq!(e[1].equity, 99_989.0);
    assert_eq!(e[2].short_value, -1_040.0);
    assert_eq!(e[2].equity, 99_969.0);
    assert_eq!(e[3].cash, 101_009.0 - 1_050.0 - 1.0);
    assert_eq!(e[3].equity, 99_958.0);

    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(!t[0].long && !t[0].open);
    assert_eq!((t[0].entry_price, t[0].exit_price), (101.0, 105.0));
    assert_eq!(t[0].gross_pnl, 10.0 * (101.0 - 105.0));
    assert_eq!(t[0].commission, 2.0);
    assert_eq!((t[0].bars_held, t[0].exit_reason), (2, SIGNAL));
}

#[test]
fn a_fill_crossing_zero_splits_into_two_trades_with_fee_pro_rata() {
    let data = market(
        &[
            oc(1, 0, 100.0, 100.0),
            oc(2, 0, 100.0, 105.0),
            oc(3, 0, 110.0, 108.0),
        ],
        1,
        &[],
    );
    let cfg = with_commission(config(), percent_fee(0.001));
    let script = vec![(0, Cmd::Submit(0, 10.0)), (1, Cmd::Submit(0, -15.0))];
    let (out, _) = run_script(&data, script, &cfg);

    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].side, f[1].quantity, f[1].price), (SELL, 15.0, 110.0));
    let entry_fee = 0.001 * 10.0 * 100.0; // 1.0
    let cross_fee = 0.001 * 15.0 * 110.0; // 1.65
    assert_close(f[0].commission, entry_fee, "entry fee");
    assert_close(f[1].commission, cross_fee, "crossing fee");

    let t = trades(&out);
    assert_eq!(t.len(), 2);
    // The long closes at 110 with 10/15 of the crossing fee.
    assert!(t[0].long && !t[0].open);
    assert_eq!((t[0].entry_ts, t[0].exit_ts, t[0].bars_held), (2, 3, 1));
    assert_eq!(
        (t[0].entry_price, t[0].exit_price, t[0].quantity),
        (100.0, 110.0, 10.0)
    );
    assert_eq!(t[0].gross_pnl, 100.0);
    assert_close(
        t[0].commission,
        1.0 + 1.65 * 10.0 / 15.0,
        "closed trade fee",
    );
    assert_eq!(t[0].exit_reason, SIGNAL);
    // The remaining 5 short open at 110, still held: marked at the last close 108.
    assert!(!t[1].long && t[1].open);
    assert_eq!((t[1].entry_ts, t[1].exit_ts, t[1].bars_held), (3, 3, 0));
    assert_eq!(
        (t[1].entry_price, t[1].exit_price, t[1].quantity),
        (110.0, 108.0, 5.0)
    );
    assert_close(t[1].gross_pnl, 5.0 * (110.0 - 108.0), "open short gross");
    assert_close(t[1].commission, 1.65 * 5.0 / 15.0, "open trade fee");
    assert_eq!(t[1].exit_reason, END_OF_DATA);
    assert_close(
        t[0].commission + t[1].commission,
        entry_fee + cross_fee,
        "fees are conserved",
    );

    let e = equity(&out);
    let expected_cash = 100_000.0 - 1_000.0 - 1.0 + 1_650.0 - 1.65;
    assert_close(e[2].cash, expected_cash, "cash");
    assert_eq!(e[2].short_value, -5.0 * 108.0);
    assert_close(e[2].equity, expected_cash - 540.0, "equity");
    let net: f64 = t.iter().map(|x| x.gross_pnl - x.commission).sum();
    assert_close(net, e[2].equity - 100_000.0, "trade pnl == equity change");
}

#[test]
fn commission_models_with_minimum() {
    let data = market(&[flat(1, 0, 100.0), flat(2, 0, 100.0)], 1, &[]);
    let cases = [
        (CommissionModel::None, 10.0, 0.0),
        (
            CommissionModel::Percent {
                rate: 0.001,
                minimum: 5.0,
            },
            10.0,
            5.0, // 0.001 × 10 × 100 = 1 < 5
        ),
        (
            CommissionModel::Percent {
                rate: 0.001,
                minimum: 5.0,
            },
            100.0,
            10.0,
        ),
        (
            CommissionModel::Percent {
                rate: 0.001,
                minimum: 5.0,
            },
            -100.0,
            10.0,
        ),
        (
            CommissionModel::PerShare {
                rate: 0.01,
                minimum: 1.0,
            },
            50.0,
            1.0, // 0.5 < 1
        ),
        (
            CommissionModel::PerShare {
                rate: 0.01,
                minimum: 1.0,
            },
            -500.0,
            5.0,
        ),
        (
            CommissionModel::PerOrder {
                amount: 2.0,
                minimum: 3.0,
            },
            10.0,
            3.0,
        ),
        (
            CommissionModel::PerOrder {
                amount: 4.0,
                minimum: 3.0,
            },
            10.0,
            4.0,
        ),
    ];
    for (model, quantity, fee) in cases {
        let cfg = with_commission(same_close(), model);
        let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, quantity))], &cfg);
        let f = fills(&out);
        assert_eq!(f.len(), 1, "{model:?}");
        assert_close(f[0].commission, fee, &format!("{model:?} q={quantity}"));
        let e = equity(&out);
        assert_close(
            e[0].cash,
            100_000.0 - quantity * 100.0 - fee,
            &format!("cash {model:?}"),
        );
        assert_close(e[1].equity, 100_000.0 - fee, "equity");
        let t = trades(&out);
        assert_close(t[0].commission, fee, "trade commission");
    }
}

#[test]
fn slippage_moves_against_the_trader_and_is_clamped_to_the_bar() {
    let rows = [
        flat(1, 0, 100.0),
        flat(1, 1, 50.0),
        bar(2, 0, 100.0, 102.0, 99.8, 101.0),
        bar(2, 1, 50.0, 50.2, 49.0, 50.0),
    ];
    let data = market(&rows, 2, &[]);
    // (buy asset 0, sell asset 1): unclamped; (buy asset 1, sell asset 0): both clamped.
    let a = vec![(0, Cmd::Submit(0, 10.0)), (0, Cmd::Submit(1, -4.0))];
    let b = vec![(0, Cmd::Submit(1, 10.0)), (0, Cmd::Submit(0, -4.0))];
    let cases = [
        // (model, script, [(asset, price, reference, slippage)])
        (
            SlippageModel::Fixed { amount: 0.5 },
            a.clone(),
            [(0, 100.5, 100.0, 5.0), (1, 49.5, 50.0, 2.0)],
        ),
        (
            SlippageModel::Fixed { amount: 0.5 },
            b.clone(),
            [(1, 50.2, 50.0, 0.2 * 10.0), (0, 99.8, 100.0, 0.2 * 4.0)],
        ),
        (
            SlippageModel::Percent { rate: 0.01 },
            a,
            [(0, 101.0, 100.0, 10.0), (1, 49.5, 50.0, 2.0)],
        ),
        (
            SlippageModel::Percent { rate: 0.01 },
            b,
            [(1, 50.2, 50.0, 0.2 * 10.0), (0, 99.8, 100.0, 0.2 * 4.0)],
        ),
    ];
    for (model, script, expected) in cases {
        let cfg = with_slippage(config(), model.clone());
        let (out, _) = run_script(&data, script, &cfg);
        let f = fills(&out);
        assert_eq!(f.len(), 2, "{model:?}");
        for (fill, (asset, price, reference, slip)) in f.iter().zip(expected) {
            let what = format!("{model:?} asset {asset}");
            assert_eq!(fill.asset, asset, "{what}");
            assert_eq!(fill.reference_price, reference, "{what}");
            assert_close(fill.price, price, &what);
            assert_close(fill.slippage, slip, &what);
        }
        let e = equity(&out);
        let expected_cash =
            100_000.0 - f[0].signed() * expected[0].1 - f[1].signed() * expected[1].1;
        assert_close(e[1].cash, expected_cash, &format!("cash {model:?}"));
    }
}

#[test]
fn order_target_percent_rounds_toward_zero_to_whole_shares() {
    let rows = [
        flat(1, 0, 33.0),
        flat(1, 1, 7.0),
        flat(2, 1, 7.0), // asset 0 misses t2: its order stays pending
        flat(3, 0, 33.0),
        flat(3, 1, 7.0),
    ];
    let data = market(&rows, 2, &[]);
    let script = vec![
        (0, Cmd::TargetPercent(0, 0.1)),  // 10_000 / 33 = 303.03 -> 303
        (0, Cmd::TargetPercent(1, -0.1)), // -10_000 / 7 = -1428.57 -> -1428
        (1, Cmd::TargetPercent(0, 0.1)),  // 303.03 - (0 + 303 pending) -> 0: dropped
    ];
    let (out, strategy) = run_script(&data, script.clone(), &integer());
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.signed()))
        .collect();
    assert_eq!(got, vec![(2, 2, 1, -1428.0), (1, 3, 0, 303.0)]);
    assert_eq!(strategy.at(1).pending, vec![303.0, 0.0]);
    assert_eq!(strategy.at(1).equity, 100_000.0);
    assert_eq!(out.rejections.num_rows(), 0);

    // Fractional: the same targets are used as computed.
    let (out, _) = run_script(&data, script[..2].to_vec(), &config());
    let f = fills(&out);
    assert_close(f[0].signed(), -10_000.0 / 7.0, "fractional short");
    assert_close(f[1].signed(), 10_000.0 / 33.0, "fractional long");
}

#[test]
fn integer_rounding_refuses_fractional_submit_order() {
    let data = three_bars();
    let mut strategy = Scripted::new(vec![(0, Cmd::Submit(0, 1.5))]);
    let err = run_backtest([&data], &mut strategy, &integer()).unwrap_err();
    assert!(
        matches!(&err, BacktestError::Order { field, .. } if field == "quantity"),
        "{err:?}"
    );
}

#[test]
fn value_target_without_a_price_is_rejected_as_no_price() {
    let rows = [flat(1, 0, 10.0), flat(2, 0, 10.0), flat(2, 1, 5.0)];
    let data = market(&rows, 2, &[]);
    let (out, _) = run_script(&data, vec![(0, Cmd::TargetValue(1, 500.0))], &config());
    let r = rejections(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].order_id, r[0].ts, r[0].asset, r[0].reason),
        (1, 1, 1, REJECT_NO_PRICE)
    );
    assert_eq!(out.fills.num_rows(), 0);
}

#[test]
fn no_shorting_cuts_sells_at_flat_and_rejects_what_is_left() {
    let rows: Vec<_> = (1..=4).map(|t| flat(t, 0, 10.0)).collect();
    let data = market(&rows, 1, &[]);
    let cfg = EngineConfig {
        allow_short: false,
        ..config()
    };
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Submit(0, -15.0)),       // cut to -10
        (1, Cmd::Submit(0, -3.0)),        // 10 held - 10 pending = 0: rejected
        (2, Cmd::Submit(0, -5.0)),        // flat: rejected
        (2, Cmd::TargetPercent(0, -0.5)), // flat: rejected
    ];
    let (out, _) = run_script(&data, script, &cfg);
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.signed()))
        .collect();
    assert_eq!(got, vec![(1, 2, 10.0), (2, 3, -10.0)]);
    let got: Vec<_> = rejections(&out)
        .iter()
        .map(|r| (r.order_id, r.ts, r.quantity, r.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, 2, -3.0, REJECT_SHORT),
            (4, 3, -5.0, REJECT_SHORT),
            (5, 3, -5_000.0, REJECT_SHORT), // -0.5 × 100_000 / 10
        ]
    );
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(t[0].long && !t[0].open);
    assert_eq!(equity(&out)[3].equity, 100_000.0);
}

#[test]
fn rebalance_sizes_listed_assets_and_closes_the_rest() {
    let prices = [10.0, 20.0, 50.0];
    let rows: Vec<_> = (1..=4)
        .flat_map(|t| (0..3).map(move |a| flat(t, a, prices[a as usize])))
        .collect();
    let data = market(&rows, 3, &[]);
    let script = vec![
        (0, Cmd::Rebalance(vec![(0, 0.5), (1, 0.25)])),
        (2, Cmd::Rebalance(vec![(2, 0.2)])),
    ];
    let (out, strategy) = run_script(&data, script, &config());
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.signed()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2, 0, 5_000.0), // 50_000 / 10
            (2, 2, 1, 1_250.0), // 25_000 / 20
            // t4: the closes of unlisted holdings are exits and fill first.
            (4, 4, 0, -5_000.0),
            (5, 4, 1, -1_250.0),
            (3, 4, 2, 400.0), // 20_000 / 50
        ]
    );
    assert_eq!(strategy.at(2).positions, vec![5_000.0, 1_250.0, 0.0]);
    let e = equity(&out);
    assert_eq!(e[3].cash, 80_000.0);
    assert_eq!(e[3].long_value, 20_000.0);
    assert!(e.iter().all(|r| r.equity == 100_000.0));
    let t = trades(&out);
    let got: Vec<_> = t.iter().map(|x| (x.asset, x.open)).collect();
    assert_eq!(got, vec![(0, false), (1, false), (2, true)]);
}

fn signal_data() -> MarketData {
    market(
        &[
            oc(1, 0, 10.0, 10.0).feat(&[1.0]),
            oc(2, 0, 11.0, 11.0).feat(&[0.5]),
            oc(3, 0, 12.0, 12.0).feat(&[-1.0]),
            oc(4, 0, 13.0, 13.0).feat(&[0.0]),
        ],
        1,
        &["signal"],
    )
}

#[test]
fn signal_strategy_goes_long_holds_and_reverses() {
    let data = signal_data();
    let mut s =
        SignalStrategy::new("signal", SignalSizing::Quantity(10.0), 0.5, -0.5, true).unwrap();
    let out = run(std::slice::from_ref(&data), &mut s, &config());
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.ts, x.signed(), x.price))
        .collect();
    // 1.0 > 0.5: long 10; 0.5 is not > 0.5: hold; -1.0 < -0.5: reverse to -10 in one order.
    assert_eq!(got, vec![(2, 10.0, 11.0), (4, -20.0, 13.0)]);
    let t = trades(&out);
    assert_eq!(t.len(), 2);
    assert!(t[0].long && !t[0].open);
    assert_eq!(
        (t[0].entry_price, t[0].exit_price, t[0].gross_pnl),
        (11.0, 13.0, 20.0)
    );
    assert_eq!(t[0].bars_held, 2);
    assert!(!t[1].long && t[1].open);
    assert_eq!(
        (t[1].entry_price, t[1].quantity, t[1].gross_pnl),
        (13.0, 10.0, 0.0)
    );
}

#[test]
fn signal_strategy_without_shorts_only_exits() {
    let data = signal_data();
    let mut s =
        SignalStrategy::new("signal", SignalSizing::Quantity(10.0), 0.5, -0.5, false).unwrap();
    let out = run(std::slice::from_ref(&data), &mut s, &config());
    let got: Vec<_> = fills(&out).iter().map(|x| (x.ts, x.signed())).collect();
    assert_eq!(got, vec![(2, 10.0), (4, -10.0)]);
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert!(!t[0].open);
}

#[test]
fn signal_strategy_weight_sizing_and_errors() {
    let data = signal_data();
    let mut s = SignalStrategy::new("signal", SignalSizing::Weight(0.5), 0.5, -0.5, true).unwrap();
    let out = run(std::slice::from_ref(&data), &mut s, &config());
    let f = fills(&out);
    assert_eq!((f[0].ts, f[0].signed()), (2, 50_000.0 / 10.0));

    let mut missing =
        SignalStrategy::new("nope", SignalSizing::Quantity(1.0), 0.5, -0.5, true).unwrap();
    let err = run_backtest([&data], &mut missing, &config()).unwrap_err();
    assert!(matches!(err, BacktestError::Config { .. }), "{err:?}");
    for bad in [
        SignalStrategy::new("signal", SignalSizing::Quantity(0.0), 0.5, -0.5, true),
        SignalStrategy::new("signal", SignalSizing::Weight(f64::NAN), 0.5, -0.5, true),
        SignalStrategy::new("signal", SignalSizing::Quantity(1.0), -0.5, 0.5, true),
    ] {
        assert!(matches!(bad, Err(BacktestError::Config { .. })));
    }
}

#[test]
fn top_k_strategy_rebalances_on_schedule() {
    let scores = [
        [0.1, 0.9, 0.5, -0.3],
        [0.0, 0.0, 0.0, 0.0],
        [0.5, 0.1, 0.5, f64::NAN], // tie 0.5: asset 0 wins; asset 3 not a candidate
        [9.0, 9.0, 9.0, 9.0],
    ];
    let rows: Vec<_> = (0..4)
        .flat_map(|t| {
            (0..4u32).map(move |a| flat(t as i64 + 1, a, 10.0).feat(&[scores[t][a as usize]]))
        })
        .collect();
    let data = market(&rows, 4, &["score"]);
    let mut s = TopKStrategy::new("score", 1, 1, 2).unwrap();
    let out = run(std::slice::from_ref(&data), &mut s, &config());
    let got: Vec<_> = fills(&out)
        .iter()
        .map(|x| (x.order_id, x.ts, x.asset, x.signed()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2, 1, 5_000.0),
            (2, 2, 3, -5_000.0),
            // t3 decision: long 0, short 1, close 3. The exit (3: +5_000 to flat) fills first;
            // the flip of asset 1 (-10_000 crosses zero) is not an exit and fills in submission
            // order after the entry in asset 0.
            (5, 4, 3, 5_000.0),
            (3, 4, 0, 5_000.0),
            (4, 4, 1, -10_000.0),
        ]
    );
    assert!(equity(&out).iter().all(|r| r.equity == 100_000.0));
    let got: Vec<_> = trades(&out)
        .iter()
        .map(|x| (x.asset, x.long, x.open))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, false, false),
            (1, true, false),
            (0, true, true),
            (1, false, true)
        ]
    );

    for bad in [
        TopKStrategy::new("score", 0, 0, 1),
        TopKStrategy::new("score", 1, 0, 0),
    ] {
        assert!(matches!(bad, Err(BacktestError::Config { .. })));
    }
}

fn data_error(rows: &[Row], n_assets: u32) -> (String, usize) {
    match try_market(rows, n_assets, &[]) {
        Err(BacktestError::DataValidation { column, row, .. }) => (column, row),
        other => panic!("expected a data validation error, got {other:?}"),
    }
}

#[test]
fn invalid_data_is_reported_with_column_and_row() {
    let unsorted = [flat(1, 0, 10.0), flat(2, 0, 10.0), flat(1, 1, 10.0)];
    assert_eq!(data_error(&unsorted, 2), ("ts".to_string(), 2));

    let duplicate = [flat(1, 0, 10.0), flat(1, 1, 10.0), flat(1, 1, 10.0)];
    assert_eq!(data_error(&duplicate, 2), ("asset_id".to_string(), 2));

    let nan_close = [flat(1, 0, 10.0), bar(2, 0, 10.0, 11.0, 9.0, f64::NAN)];
    assert_eq!(data_error(&nan_close, 1), ("close".to_string(), 1));

    let nan_open = [
        flat(1, 0, 10.0),
        flat(2, 0, 10.0),
        bar(3, 0, f64::NAN, 11.0, 9.0, 10.0),
    ];
    assert_eq!(data_error(&nan_open, 1), ("open".to_string(), 2));

    let low_above_high = [flat(1, 0, 10.0), bar(2, 0, 10.0, 9.0, 11.0, 10.0)];
    let (column, row) = data_error(&low_above_high, 1);
    assert!(column.contains("low"), "column {column}");
    assert_eq!(row, 1);

    let bad_volume = [flat(1, 0, 10.0).vol(-1.0)];
    assert_eq!(data_error(&bad_volume, 1), ("volume".to_string(), 0));

    let unknown_asset = [flat(1, 0, 10.0), flat(1, 3, 10.0)];
    assert_eq!(data_error(&unknown_asset, 2), ("asset_id".to_string(), 1));

    let err = try_market(&nan_close, 1, &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("close") && message.contains("row 1"),
        "{message}"
    );
}

#[test]
fn chunks_out_of_order_are_a_data_error() {
    let data = three_bars();
    let chunks = split_at(&data, &[2]);
    assert_eq!(chunks.len(), 2);
    let mut strategy = Scripted::default();
    let err = run_backtest([&chunks[1], &chunks[0]], &mut strategy, &config()).unwrap_err();
    assert!(
        matches!(&err, BacktestError::DataValidation { column, .. } if column == "ts"),
        "{err:?}"
    );

    // A timestamp split across two chunks.
    let rows = [flat(1, 0, 10.0), flat(2, 0, 10.0), flat(2, 1, 10.0)];
    let data = market(&rows, 2, &[]);
    let first = MarketData::new(data.batch().slice(0, 2), 2).unwrap();
    let second = MarketData::new(data.batch().slice(2, 1), 2).unwrap();
    let mut strategy = Scripted::default();
    let err = run_backtest([&first, &second], &mut strategy, &config()).unwrap_err();
    assert!(
        matches!(err, BacktestError::DataValidation { .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_configuration_is_a_config_error() {
    let data = three_bars();
    let cases = [
        (
            EngineConfig {
                initial_cash: 0.0,
                ..config()
            },
            "initial_cash",
        ),
        (
            EngineConfig {
                initial_cash: f64::NAN,
                ..config()
            },
            "initial_cash",
        ),
        (
            with_commission(config(), percent_fee(-0.1)),
            "commission.rate",
        ),
        (
            with_commission(
                config(),
                CommissionModel::PerOrder {
                    amount: 1.0,
                    minimum: f64::INFINITY,
                },
            ),
            "commission.minimum",
        ),
        (
            with_slippage(config(), SlippageModel::Fixed { amount: -1.0 }),
            "slippage.amount",
        ),
        (
            with_slippage(config(), SlippageModel::Percent { rate: f64::NAN }),
            "slippage.rate",
        ),
    ];
    for (cfg, expected_field) in cases {
        let mut strategy = Scripted::default();
        match run_backtest([&data], &mut strategy, &cfg) {
            Err(BacktestError::Config { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("{expected_field}: expected a config error, got {other:?}"),
        }
        assert_eq!(strategy.starts, 0, "the strategy must not start");
    }
}

/// Three assets, eight timestamps, some bars missing, a score feature.
fn chunk_data() -> MarketData {
    let mut rows = Vec::new();
    let mut seed = 17u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    for t in 1..=8i64 {
        for a in 0..3u32 {
            if (t + a as i64) % 4 == 0 {
                continue; // missing bar
            }
            let base = 20.0 * (a + 1) as f64;
            let (o, c) = (base * (0.9 + 0.2 * next()), base * (0.9 + 0.2 * next()));
            let (h, l) = (
                o.max(c) * (1.0 + 0.02 * next()),
                o.min(c) * (1.0 - 0.02 * next()),
            );
            rows.push(bar(t, a, o, h, l, c).feat(&[next() - 0.5]));
        }
    }
    market(&rows, 3, &["score"])
}

#[test]
fn chunked_run_equals_single_chunk_run() {
    let data = chunk_data();
    let script = vec![
        (0, Cmd::TargetPercent(0, 0.3)),
        (0, Cmd::Submit(2, -12.0)),
        (1, Cmd::Rebalance(vec![(1, 0.2), (2, 0.1)])),
        (2, Cmd::TargetValue(0, -3_000.0)),
        (3, Cmd::Close(2)),
        (4, Cmd::TargetQuantity(1, 7.0)),
        (5, Cmd::Submit(0, 3.0)),
        (6, Cmd::Rebalance(vec![(0, 0.25)])),
        (7, Cmd::Submit(1, 1.0)),
    ];
    let cfg = EngineConfig {
        commission: CommissionModel::PerShare {
            rate: 0.01,
            minimum: 1.0,
        },
        slippage: SlippageModel::Percent { rate: 0.001 },
        ..config()
    };
    for cfg in [
        cfg.clone(),
        EngineConfig {
            execution: ml4t_backtest_core::ExecutionMode::SameClose,
            ..cfg
        },
    ] {
        let (whole, _) = run_script(&data, script.clone(), &cfg);
        assert!(whole.fills.num_rows() > 5);
        for cuts in [vec![4], vec![2, 5, 7], (2..=8).collect::<Vec<_>>()] {
            let chunks = split_at(&data, &cuts);
            assert_eq!(chunks.len(), cuts.len() + 1);
            let mut strategy = Scripted::new(script.clone());
            let parts = run(&chunks, &mut strategy, &cfg);
            assert_same_output(&whole, &parts);
            assert_eq!(strategy.starts, 1);
            assert_eq!(strategy.chunks as usize, chunks.len());
        }
        let mut s = TopKStrategy::new("score", 1, 1, 3).unwrap();
        let whole = run(std::slice::from_ref(&data), &mut s, &cfg);
        assert!(whole.fills.num_rows() > 0);
        let mut s = TopKStrategy::new("score", 1, 1, 3).unwrap();
        let parts = run(&split_at(&data, &[3, 6]), &mut s, &cfg);
        assert_same_output(&whole, &parts);
    }
}

/// Exits are classified against the position held at the start of the fill step, before
/// anything fills.
///
/// Case: long 10; orders #2 sell 10, #3 buy 3, #4 sell 2, all filling at t3.
/// Exits #2, #4 then entry #3 -> 10 -> 0 -> -2 -> +1: three trades (long closed, short 2
/// closed by the crossing buy, long 1 open).
#[test]
fn exits_are_classified_against_the_position_at_the_start_of_the_step() {
    let rows: Vec<_> = (1..=3).map(|t| flat(t, 0, 10.0)).collect();
    let data = market(&rows, 1, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Submit(0, -10.0)),
        (1, Cmd::Submit(0, 3.0)),
        (1, Cmd::Submit(0, -2.0)),
    ];
    for cfg in [config(), same_close()] {
        // Same ids in both modes: the three orders of index 1 fill together at one bar.
        let (out, _) = run_script(&data, script.clone(), &cfg);
        let order: Vec<_> = fills(&out).iter().map(|f| f.order_id).collect();
        assert_eq!(order, vec![1, 2, 4, 3], "{:?}", cfg.execution);
        let got: Vec<_> = trades(&out)
            .iter()
            .map(|t| (t.long, t.quantity, t.open))
            .collect();
        assert_eq!(
            got,
            vec![(true, 10.0, false), (false, 2.0, false), (true, 1.0, true)],
            "{:?}",
            cfg.execution
        );
    }
}
