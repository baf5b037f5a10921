//! Account rules: cash-account buying power, initial margin, margin calls, borrow fees and
//! interest. Every expected number is computed by hand.

mod common;

use common::*;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient};
use ml4t_backtest_core::{BacktestError, EngineConfig};

const DAY: i64 = 86_400_000_000_000;

/// Borrow fees and interest per equity row (0 where nothing accrued).
fn financing(out: &ml4t_backtest_core::BacktestOutput) -> (Vec<f64>, Vec<f64>) {
    let ts = i64s(&out.equity, "ts");
    let (f_ts, fee, paid) = (
        i64s(&out.financing, "ts"),
        f64s(&out.financing, "borrow_fee"),
        f64s(&out.financing, "interest"),
    );
    let at = |t: i64, values: &[f64]| f_ts.iter().position(|&x| x == t).map_or(0.0, |i| values[i]);
    (
        ts.iter().map(|&t| at(t, &fee)).collect(),
        ts.iter().map(|&t| at(t, &paid)).collect(),
    )
}

fn with_account(account: AccountRules, cash: f64) -> EngineConfig {
    EngineConfig {
        initial_cash: cash,
        account,
        ..config()
    }
}

fn cash_account(on_insufficient: Insufficient) -> AccountRules {
    AccountRules {
        kind: AccountKind::Cash,
        on_insufficient,
        ..AccountRules::default()
    }
}

#[test]
fn cash_account_rejects_a_buy_beyond_cash() {
    let data = market(&[flat(1, 0, 100.0), flat(2, 0, 100.0)], 1, &[]);
    let cfg = with_account(cash_account(Insufficient::Reject), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 20.0))], &cfg);
    assert!(fills(&out).is_empty());
    assert_eq!(u8s(&out.rejections, "reason"), vec![5]);
    assert_eq!(f64s(&out.rejections, "quantity"), vec![20.0]);
    assert_eq!(f64s(&out.equity, "cash"), vec![1_000.0, 1_000.0]);
}

#[test]
fn cash_account_resizes_to_the_cash_fee_included() {
    let data = market(&[flat(1, 0, 100.0), flat(2, 0, 100.0)], 1, &[]);
    let cfg = EngineConfig {
        commission: CommissionModel::PerOrder {
            amount: 10.0,
            minimum: 0.0,
        },
        ..with_account(cash_account(Insufficient::Resize), 1_000.0)
    };
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 20.0))], &cfg);
    let f = fills(&out);
    // (1000 - 10) / 100 = 9.9 shares, fee 10: cash ends at exactly 0.
    assert_eq!(f.len(), 1);
    assert_close(f[0].signed(), 9.9, "resized quantity");
    assert_close(f64s(&out.equity, "cash")[1], 0.0, "cash");
    assert_eq!(u8s(&out.rejections, "reason"), vec![5]);
    assert_close(f64s(&out.rejections, "quantity")[0], 20.0 - 9.9, "cut part");
}

#[test]
fn cash_account_never_shorts() {
    let data = market(&[flat(1, 0, 100.0), flat(2, 0, 100.0)], 1, &[]);
    let cfg = with_account(cash_account(Insufficient::Reject), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, -5.0))], &cfg);
    assert!(fills(&out).is_empty());
    assert_eq!(u8s(&out.rejections, "reason"), vec![1]);
}

fn margin(initial: f64, maintenance: Option<f64>, on: Insufficient) -> AccountRules {
    AccountRules {
        kind: AccountKind::Margin,
        initial_margin: Some(initial),
        maintenance_margin: maintenance,
        on_insufficient: on,
        ..AccountRules::default()
    }
}

#[test]
fn initial_margin_limits_new_exposure() {
    let data = market(&[flat(1, 0, 100.0), flat(2, 0, 100.0)], 1, &[]);
    // Equity 1000 at 50% initial margin buys at most 2000 of exposure: 20 shares at 100.
    let reject = with_account(margin(0.5, None, Insufficient::Reject), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 30.0))], &reject);
    assert!(fills(&out).is_empty());
    assert_eq!(u8s(&out.rejections, "reason"), vec![6]);
    let resize = with_account(margin(0.5, None, Insufficient::Resize), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 30.0))], &resize);
    assert_eq!(fills(&out)[0].signed(), 20.0);
    assert_eq!(f64s(&out.equity, "cash")[1], 1_000.0 - 2_000.0);
    // A short is exposure too.
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, -30.0))], &resize);
    assert_eq!(fills(&out)[0].signed(), -20.0);
}

#[test]
fn margin_call_liquidates_at_the_close() {
    // Long 20 at 100 on 50% margin (cash -1000, equity 1000). The price falls to 60: gross 1200,
    // equity 1000 - 20 * 40 = 200 < 25% of 1200 = 300, so the position is sold at the close 60.
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
    let cfg = with_account(margin(0.5, Some(0.25), Insufficient::Reject), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 20.0))], &cfg);
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].ts, f[1].signed(), f[1].price), (3, -20.0, 60.0));
    let t = trades(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].exit_reason, 5, "margin_call");
    assert_close(
        f64s(&out.equity, "equity")[2],
        200.0,
        "equity after the call",
    );
    assert_eq!(f64s(&out.equity, "long_value")[2], 0.0);
}

#[test]
fn no_margin_call_above_maintenance() {
    // Falls to 80: equity 600 >= 25% of 1600 = 400.
    let data = market(
        &[flat(1, 0, 100.0), flat(2, 0, 100.0), flat(3, 0, 80.0)],
        1,
        &[],
    );
    let cfg = with_account(margin(0.5, Some(0.25), Insufficient::Reject), 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, 20.0))], &cfg);
    assert_eq!(fills(&out).len(), 1);
}

#[test]
fn borrow_fee_and_margin_interest_accrue_per_calendar_time() {
    // Short 10 at 100 (daily bars): borrow 10% a year on 1000 of short value; the cash balance
    // (+2000) earns 2% a year; after the short is covered with a -cash balance we pay 8%.
    let rows = [
        flat(0, 0, 100.0),
        flat(DAY, 0, 100.0),
        flat(2 * DAY, 0, 100.0),
        flat(3 * DAY, 0, 100.0),
    ];
    let data = market(&rows, 1, &[]);
    let account = AccountRules {
        borrow_rate: 0.10,
        cash_interest_rate: 0.02,
        margin_interest_rate: 0.08,
        ..AccountRules::default()
    };
    let cfg = with_account(account, 1_000.0);
    let (out, _) = run_script(&data, vec![(0, Cmd::Submit(0, -10.0))], &cfg);
    let year = 365.25;
    let (borrow, interest) = financing(&out);
    // t0: nothing; t1: the short fills at the open after the accrual of [t0, t1) on cash 1000.
    assert_eq!(borrow[0], 0.0);
    assert_close(interest[1], 1_000.0 * 0.02 / year, "interest t1");
    assert_eq!(borrow[1], 0.0);
    // t2: a day short of 1000 at 100; cash was 1000 + 1000 + interest.
    let cash1 = 2_000.0 + 1_000.0 * 0.02 / year;
    assert_close(borrow[2], 1_000.0 * 0.10 / year, "borrow t2");
    assert_close(interest[2], cash1 * 0.02 / year, "interest t2");
    let cash = f64s(&out.equity, "cash");
    assert_close(cash[2], cash1 - borrow[2] + interest[2], "cash t2");
    // Cash changes only by fills, fees, borrow and interest: equity identity holds.
    let eq = f64s(&out.equity, "equity");
    let pos = f64s(&out.equity, "positions_value");
    for i in 0..eq.len() {
        assert_close(eq[i], cash[i] + pos[i], "equity identity");
    }
}

#[test]
fn bad_account_rules_are_config_errors() {
    for bad in [
        AccountRules {
            initial_margin: Some(0.0),
            ..AccountRules::default()
        },
        AccountRules {
            initial_margin: Some(0.3),
            maintenance_margin: Some(0.5),
            ..AccountRules::default()
        },
        AccountRules {
            borrow_rate: -0.01,
            ..AccountRules::default()
        },
    ] {
        assert!(matches!(bad.validate(), Err(BacktestError::Config { .. })));
    }
}

/// Order status events, in the order they happen, when the strategy listens.
#[test]
fn order_events_follow_the_life_cycle() {
    use ml4t_backtest_core::events::{OrderEvent, OrderStatus};
    use ml4t_backtest_core::orders::{OrderKind, OrderRequest, TimeInForce};
    use ml4t_backtest_core::portfolio::Portfolio;
    use ml4t_backtest_core::{Result, Strategy, StrategyContext, TimestampView};

    struct Listener {
        events: Vec<(u64, OrderStatus, f64)>,
    }
    impl Strategy for Listener {
        fn wants_order_events(&self) -> bool {
            true
        }
        fn on_order(&mut self, event: &OrderEvent, _portfolio: &Portfolio) -> Result<()> {
            self.events
                .push((event.order_id, event.status, event.filled));
            Ok(())
        }
        fn on_timestamp(
            &mut self,
            view: &TimestampView<'_>,
            ctx: &mut StrategyContext<'_>,
        ) -> Result<()> {
            if view.index == 0 {
                ctx.orders.submit(OrderRequest {
                    take_profit: Some(108.0),
                    stop_loss: Some(96.0),
                    ..OrderRequest::market(0, 10.0)
                })?;
                ctx.orders.submit(OrderRequest {
                    kind: OrderKind::Limit { limit: 50.0 },
                    tif: TimeInForce::Day,
                    ..OrderRequest::market(0, 5.0)
                })?;
            }
            Ok(())
        }
    }
    let data = market(
        &[
            bar(1, 0, 100.0, 101.0, 99.0, 100.0),
            bar(2, 0, 100.0, 106.0, 97.0, 104.0),
            bar(3, 0, 104.0, 110.0, 103.0, 109.0),
        ],
        1,
        &[],
    );
    let mut listener = Listener { events: Vec::new() };
    run(std::slice::from_ref(&data), &mut listener, &config());
    use OrderStatus::*;
    assert_eq!(
        listener.events,
        vec![
            (1, Accepted, 0.0),
            (2, Accepted, 0.0),
            (3, Accepted, 0.0),
            (4, Accepted, 0.0),
            (1, Filled, 10.0),
            (4, Expired, 0.0),
            (2, Filled, -10.0),
            (3, Cancelled, 0.0),
        ]
    );
}

#[test]
fn per_asset_borrow_rates_come_from_a_feed_column() {
    // Short 10 of asset 0 (rate column 0.365) and 10 of asset 1 (column NaN: the global 0.0365)
    // at 100 for one day: fees 1000 * 0.365 / 365.25 + 1000 * 0.0365 / 365.25.
    let rows = [
        flat(0, 0, 100.0).feat(&[0.365]),
        flat(0, 1, 100.0).feat(&[f64::NAN]),
        flat(DAY, 0, 100.0).feat(&[0.365]),
        flat(DAY, 1, 100.0).feat(&[f64::NAN]),
        flat(2 * DAY, 0, 100.0).feat(&[9.0]),
        flat(2 * DAY, 1, 100.0).feat(&[f64::NAN]),
    ];
    let data = market(&rows, 2, &["borrow"]);
    let cfg = EngineConfig {
        borrow_rate_column: Some("borrow".to_string()),
        ..with_account(
            AccountRules {
                borrow_rate: 0.0365,
                ..AccountRules::default()
            },
            10_000.0,
        )
    };
    let script = vec![(0, Cmd::Submit(0, -10.0)), (0, Cmd::Submit(1, -10.0))];
    let (out, _) = run_script(&data, script, &cfg);
    let (fees, _) = financing(&out);
    assert_eq!(fees[1], 0.0);
    assert_close(
        fees[2],
        1_000.0 * (0.365 + 0.0365) / 365.25,
        "per-asset fee",
    );
    let missing = EngineConfig {
        borrow_rate_column: Some("nope".to_string()),
        ..config()
    };
    let err = ml4t_backtest_core::run_backtest([&data], &mut Scripted::new(vec![]), &missing);
    assert!(matches!(err, Err(BacktestError::Config { .. })));
}
