//! Instruments: futures with a multiplier and variation margin, per-contract fees and margins,
//! ticks and lots, expiry, crypto perpetuals' funding and liquidation. Every expected number is
//! computed by hand in the comments.

mod common;

use common::*;
use ml4t_backtest_core::config::{AccountRules, Insufficient};
use ml4t_backtest_core::instruments::{AssetClass, InstrumentSpec, Instruments, MarginRule};
use ml4t_backtest_core::{BacktestOutput, Engine, EngineConfig, MarketData};
use proptest::prelude::*;

const H: i64 = 3_600_000_000_000;

fn es() -> InstrumentSpec {
    InstrumentSpec {
        class: AssetClass::Future,
        multiplier: 50.0,
        tick_size: Some(0.25),
        lot_size: Some(1.0),
        margin_initial: Some(MarginRule::PerContract(12_000.0)),
        margin_maintenance: Some(MarginRule::PerContract(11_000.0)),
        commission_per_contract: Some(2.5),
        ..InstrumentSpec::default()
    }
}

fn btc_perp() -> InstrumentSpec {
    InstrumentSpec {
        class: AssetClass::CryptoPerp,
        margin_initial: Some(MarginRule::Fraction(0.1)),
        margin_maintenance: Some(MarginRule::Fraction(0.05)),
        ..InstrumentSpec::default()
    }
}

/// Runs `script` over `data` with `specs` as the instruments.
fn run_with(
    data: &MarketData,
    specs: Vec<InstrumentSpec>,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
) -> (BacktestOutput, Scripted) {
    let mut strategy = Scripted::new(script);
    let mut engine = Engine::new(cfg.clone(), data.n_assets()).expect("valid config");
    engine
        .set_instruments(Instruments::new(specs).expect("valid specs"))
        .expect("one spec per asset");
    engine.process_chunk(data, &mut strategy).expect("runs");
    let out = engine.finish(&mut strategy).expect("finishes");
    (out, strategy)
}

fn cash(c: f64) -> EngineConfig {
    EngineConfig {
        initial_cash: c,
        ..config()
    }
}

/// An ES round trip: 2 contracts bought at 4510, a +10 and a -30 close settled as variation
/// margin, sold at 4480; $2.50 per contract each way.
#[test]
fn es_round_trip_settles_variation_margin_at_each_close() {
    let data = market(
        &[
            bar(0, 0, 4500.0, 4500.0, 4500.0, 4500.0),
            bar(1, 0, 4510.0, 4525.0, 4505.0, 4520.0),
            bar(2, 0, 4515.0, 4515.0, 4485.0, 4490.0),
            bar(3, 0, 4480.0, 4480.0, 4465.0, 4470.0),
        ],
        1,
        &[],
    );
    let script = vec![(0, Cmd::Submit(0, 2.0)), (2, Cmd::Submit(0, -2.0))];
    let (out, seen) = run_with(&data, vec![es()], script, &cash(100_000.0));
    let f = fills(&out);
    assert_eq!((f[0].price, f[0].commission), (4510.0, 5.0));
    assert_eq!((f[1].price, f[1].commission), (4480.0, 5.0));
    // t1: 100_000 - 5 fee + 2 × (4520 - 4510) × 50 = 100_995 (all of it cash: the position's
    // unsettled PnL is 0 after the close). t2: + 2 × (4490 - 4520) × 50 = -3_000 -> 97_995.
    // t3: sold at 4480: + 2 × (4480 - 4490) × 50 - 5 = -1_005 -> 96_990.
    assert_eq!(
        f64s(&out.equity, "cash"),
        vec![100_000.0, 100_995.0, 97_995.0, 96_990.0]
    );
    assert_eq!(
        f64s(&out.equity, "equity"),
        vec![100_000.0, 100_995.0, 97_995.0, 96_990.0]
    );
    assert_eq!(f64s(&out.equity, "long_value"), vec![0.0; 4]);
    // The strategy sees the settled cash at t2.
    assert_eq!(seen.at(2).cash, 97_995.0);
    // The trade: 2 × (4480 - 4510) × 50 = -3_000 gross, 10 of commission.
    assert_eq!(f64s(&out.trades, "gross_pnl"), vec![-3_000.0]);
    assert_eq!(f64s(&out.trades, "commission"), vec![10.0]);
}

/// An open futures trade at the end is valued with its multiplier.
#[test]
fn an_open_futures_trade_carries_the_multiplier() {
    let data = market(
        &[flat(0, 0, 4500.0), flat(1, 0, 4500.0), flat(2, 0, 4504.0)],
        1,
        &[],
    );
    let (out, _) = run_with(
        &data,
        vec![es()],
        vec![(0, Cmd::Submit(0, -1.0))],
        &cash(1e5),
    );
    // Short 1 at 4500, marked 4504: -4 × 50 = -200.
    assert_eq!(f64s(&out.trades, "gross_pnl"), vec![-200.0]);
    assert_eq!(f64s(&out.equity, "equity")[2], 100_000.0 - 2.5 - 200.0);
}

/// Initial margin per contract is checked at the fill: 2 × 12_000 does not fit in 20_000.
#[test]
fn futures_margin_rejects_or_resizes_at_the_fill() {
    let data = market(&[flat(0, 0, 4500.0), flat(1, 0, 4500.0)], 1, &[]);
    let (out, _) = run_with(
        &data,
        vec![es()],
        vec![(0, Cmd::Submit(0, 2.0))],
        &cash(20_000.0),
    );
    assert!(fills(&out).is_empty());
    assert_eq!(u8s(&out.rejections, "reason"), vec![6]); // insufficient_margin
    let resize = EngineConfig {
        account: AccountRules {
            on_insufficient: Insufficient::Resize,
            ..AccountRules::default()
        },
        ..cash(20_000.0)
    };
    let (out, _) = run_with(&data, vec![es()], vec![(0, Cmd::Submit(0, 2.0))], &resize);
    // (20_000 - 2.5 fee not counted) / 12_000 = 1.67 contracts: whole lots, so 1.
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].quantity, 1.0);
}

/// Limit and stop levels are rounded against the order, market fills against the trader.
#[test]
fn ticks_round_levels_and_fills() {
    let data = market(
        &[
            bar(0, 0, 4500.0, 4501.0, 4499.0, 4500.0),
            bar(1, 0, 4500.1, 4502.0, 4498.0, 4500.0),
            bar(2, 0, 4500.0, 4501.0, 4499.0, 4500.0),
        ],
        1,
        &[],
    );
    let script = vec![
        (0, Cmd::Order(limit_order(0, 1.0, 4499.1))),
        (0, Cmd::Order(stop_order(0, -1.0, 4498.6))),
        (0, Cmd::Submit(0, 1.0)),
    ];
    let (out, _) = run_with(&data, vec![es()], script, &cash(1e6));
    let limits = f64s(&out.orders, "limit");
    let stops = f64s(&out.orders, "stop");
    assert_eq!(limits[0], 4499.0); // a buy limit down
    assert_eq!(stops[1], 4498.5); // a sell stop down
    let f = fills(&out);
    // The market buy at the open 4500.1 fills at the next tick up, 4500.25.
    let market_fill = f.iter().find(|f| f.order_type == 0).expect("market fill");
    assert_eq!(market_fill.price, 4500.25);
}

/// Lots: a target rounds toward zero to whole lots; an explicit odd quantity is an error.
#[test]
fn lots_step_quantities() {
    let data = market(&[flat(0, 0, 100.0), flat(1, 0, 100.0)], 1, &[]);
    let spec = InstrumentSpec {
        class: AssetClass::Fx,
        lot_size: Some(1_000.0),
        ..InstrumentSpec::default()
    };
    let (out, _) = run_with(
        &data,
        vec![spec],
        vec![(0, Cmd::TargetValue(0, 250_000.0))],
        &cash(1e6),
    );
    assert_eq!(fills(&out)[0].quantity, 2_000.0); // 2_500 units -> 2 lots
    let mut strategy = Scripted::new(vec![(0, Cmd::Submit(0, 1_500.0))]);
    let mut engine = Engine::new(cash(1e6), 1).unwrap();
    engine
        .set_instruments(Instruments::new(vec![spec]).unwrap())
        .unwrap();
    let err = engine.process_chunk(&data, &mut strategy).unwrap_err();
    assert!(err.to_string().contains("lot_size"), "{err}");
}

/// A position still open at expiry is closed at that bar's close (`contract_expired`), and
/// later orders are refused with the same reason.
#[test]
fn expiry_closes_the_position_and_refuses_later_orders() {
    let data = market(
        &[
            flat(0, 0, 4500.0),
            flat(1, 0, 4500.0),
            flat(2, 0, 4510.0),
            flat(3, 0, 4510.0),
        ],
        1,
        &[],
    );
    let spec = InstrumentSpec {
        expiry: Some(2),
        ..es()
    };
    let script = vec![(0, Cmd::Submit(0, 1.0)), (2, Cmd::Submit(0, 1.0))];
    let (out, _) = run_with(&data, vec![spec], script, &cash(1e5));
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].ts, f[1].price, f[1].side), (2, 4510.0, 1));
    assert_eq!(u8s(&out.trades, "exit_reason"), vec![11]); // contract_expired
    assert_eq!(f64s(&out.trades, "gross_pnl"), vec![500.0]);
    assert_eq!(u8s(&out.rejections, "reason"), vec![13]); // contract_expired
    assert_eq!(i64s(&out.rejections, "ts"), vec![2]);
}

/// The roll recipe: N bars before the front month's expiry, close it and open the next
/// contract (two orders at the same decision).
#[test]
fn a_roll_moves_the_position_into_the_next_contract() {
    let mut rows = Vec::new();
    for t in 0..6 {
        rows.push(flat(t, 0, 4500.0 + t as f64));
        rows.push(flat(t, 1, 4520.0 + t as f64));
    }
    let data = market(&rows, 2, &[]);
    let front = InstrumentSpec {
        expiry: Some(4),
        ..es()
    };
    let next = InstrumentSpec {
        expiry: Some(100),
        ..es()
    };
    // Roll 2 bars before expiry (decided at t2, filled at t3's open).
    let script = vec![
        (0, Cmd::Submit(0, 1.0)),
        (2, Cmd::Close(0)),
        (2, Cmd::Submit(1, 1.0)),
    ];
    let (out, _) = run_with(&data, vec![front, next], script, &cash(1e5));
    let f = fills(&out);
    assert_eq!(f.len(), 3);
    assert_eq!((f[1].asset, f[1].side, f[1].ts), (0, 1, 3));
    assert_eq!((f[2].asset, f[2].side, f[2].ts), (1, 0, 3));
    // Nothing was left to expire.
    assert_eq!(u8s(&out.trades, "exit_reason")[0], 0);
}

/// A BTC perpetual through three funding payments (8 h funding, 4 h bars), long and short.
#[test]
fn perpetual_funding_is_paid_at_each_funding_time() {
    let closes = [
        20_000.0, 20_000.0, 20_000.0, 20_500.0, 21_000.0, 21_500.0, 22_000.0,
    ];
    let rates = [
        f64::NAN,
        f64::NAN,
        0.0001,
        f64::NAN,
        -0.0002,
        f64::NAN,
        0.0003,
    ];
    let rows: Vec<Row> = (0..7)
        .map(|i| flat(i as i64 * 4 * H, 0, closes[i]).feat(&[rates[i]]))
        .collect();
    let data = market(&rows, 1, &["funding"]);
    let cfg = EngineConfig {
        funding_rate_column: Some("funding".into()),
        ..cash(100_000.0)
    };
    for (side, sign) in [(1.0, 1.0), (-1.0, -1.0)] {
        let (out, _) = run_with(
            &data,
            vec![btc_perp()],
            vec![(0, Cmd::Submit(0, side))],
            &cfg,
        );
        // Filled at t=4h; funding at 8 h (close 20_000, rate 1e-4: a long pays 2), 16 h (21_000,
        // -2e-4: a long receives 4.2) and 24 h (22_000, 3e-4: a long pays 6.6).
        let paid = f64s(&out.financing, "funding");
        let expected = [-2.0, 4.2, -6.6].map(|x| x * sign);
        assert_eq!(paid.len(), 3);
        for (got, want) in paid.iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{paid:?}");
        }
        assert_eq!(i64s(&out.financing, "ts"), vec![8 * H, 16 * H, 24 * H]);
        let trade_funding = f64s(&out.trades, "funding")[0];
        assert!((trade_funding - (-4.4 * sign)).abs() < 1e-9);
        // Equity: cash + unsettled = 100_000 + side × (22_000 - 20_000) + funding.
        let equity = *f64s(&out.equity, "equity").last().unwrap();
        assert!((equity - (100_000.0 + side * 2_000.0 - 4.4 * sign)).abs() < 1e-6);
    }
}

/// A perpetual's maintenance margin liquidates through the margin-call path
/// (`liquidation`).
#[test]
fn a_perpetual_is_liquidated_at_maintenance() {
    let data = market(
        &[
            flat(0, 0, 20_000.0),
            flat(1, 0, 20_000.0),
            flat(2, 0, 19_500.0),
            flat(3, 0, 18_500.0),
            flat(4, 0, 18_000.0),
        ],
        1,
        &[],
    );
    let (out, _) = run_with(
        &data,
        vec![btc_perp()],
        vec![(0, Cmd::Submit(0, 5.0))],
        &cash(10_000.0),
    );
    // 5 × 20_000 × 0.1 = 10_000 of initial margin: exactly the equity. At 19_500: equity 7_500
    // >= 0.05 × 97_500 = 4_875. At 18_500: equity 2_500 < 4_625: liquidated at that close.
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].ts, f[1].price), (3, 18_500.0));
    assert_eq!(u8s(&out.trades, "exit_reason"), vec![12]); // liquidation
    assert_eq!(f64s(&out.equity, "equity")[4], 2_500.0);
}

/// Equities in a run with instruments still behave as shares, with the account's rules.
#[test]
fn equities_beside_futures_pay_their_notional() {
    let data = market(
        &[
            flat(0, 0, 100.0),
            flat(0, 1, 4500.0),
            flat(1, 0, 110.0),
            flat(1, 1, 4510.0),
        ],
        2,
        &[],
    );
    let script = vec![(0, Cmd::Submit(0, 10.0)), (0, Cmd::Submit(1, 1.0))];
    let (out, _) = run_with(
        &data,
        vec![InstrumentSpec::default(), es()],
        script,
        &cash(100_000.0),
    );
    // Shares: -1_100 cash, +1_100 long value. Future: -2.5 fee, +0 variation (4510 fill, 4510
    // close).
    assert_eq!(f64s(&out.equity, "cash")[1], 100_000.0 - 1_100.0 - 2.5);
    assert_eq!(f64s(&out.equity, "long_value")[1], 1_100.0);
}

#[test]
fn bad_specs_are_errors_naming_the_field() {
    let err = Instruments::new(vec![InstrumentSpec {
        multiplier: -50.0,
        ..es()
    }])
    .unwrap_err();
    assert!(err.to_string().contains("instruments[0].multiplier"));
    let mut engine = Engine::new(config(), 2).unwrap();
    let err = engine
        .set_instruments(Instruments::new(vec![es()]).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("one spec per asset"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Equity = cash + Σ positions marked at every timestamp, and margin is never exceeded at
    /// a close without a liquidation: after each close either equity covers the maintenance
    /// requirement or nothing is left open.
    #[test]
    fn futures_equity_is_cash_plus_marked_positions(
        moves in proptest::collection::vec(-40i32..40, 8..30),
        orders in proptest::collection::vec((0u64..30, -3i32..4), 1..8),
    ) {
        let mut price = 4500.0;
        let rows: Vec<Row> = moves
            .iter()
            .enumerate()
            .map(|(i, m)| {
                price += *m as f64 * 0.25;
                flat(i as i64, 0, price)
            })
            .collect();
        let data = market(&rows, 1, &[]);
        let script: Vec<(u64, Cmd)> = orders
            .iter()
            .filter(|(_, q)| *q != 0)
            .map(|&(t, q)| (t, Cmd::Submit(0, q as f64)))
            .collect();
        let (out, _) = run_with(&data, vec![es()], script, &cash(40_000.0));
        let c = f64s(&out.equity, "cash");
        let l = f64s(&out.equity, "long_value");
        let s = f64s(&out.equity, "short_value");
        let e = f64s(&out.equity, "equity");
        let ts = i64s(&out.equity, "ts");
        let fill_ts = i64s(&out.fills, "ts");
        let fill_q = f64s(&out.fills, "quantity");
        let side = u8s(&out.fills, "side");
        for i in 0..e.len() {
            prop_assert_eq!(e[i], c[i] + l[i] + s[i]);
            prop_assert!(e[i].is_finite());
            // After the close's margin call: what is still held is covered at maintenance.
            let held: f64 = (0..fill_ts.len())
                .filter(|&f| fill_ts[f] <= ts[i])
                .map(|f| if side[f] == 0 { fill_q[f] } else { -fill_q[f] })
                .sum();
            prop_assert!(
                held == 0.0 || e[i] >= 11_000.0 * held.abs(),
                "equity {} below maintenance for {} contracts at {}", e[i], held, i
            );
        }
        // The same path without the multiplier's settlement: realised PnL + fees add up.
        let gross: f64 = f64s(&out.trades, "gross_pnl").iter().sum();
        let fees: f64 = f64s(&out.fills, "commission").iter().sum();
        let last = *e.last().unwrap();
        prop_assert!((last - (40_000.0 + gross - fees)).abs() < 1e-6);
    }
}

/// Value and percent targets size contracts by their notional (price × multiplier).
#[test]
fn targets_size_contracts_by_notional() {
    let data = market(&[flat(0, 0, 4500.0), flat(1, 0, 4500.0)], 1, &[]);
    let (out, _) = run_with(
        &data,
        vec![es()],
        vec![(0, Cmd::TargetValue(0, 500_000.0))],
        &cash(1e6),
    );
    // 500_000 / (4500 × 50) = 2.22 contracts: 2 whole lots.
    assert_eq!(fills(&out)[0].quantity, 2.0);
}
