//! Hand-computed scenarios for the slippage models: bid/ask quotes, a spread column, basis
//! points, volume share (with its cap), square-root impact, a custom model, and the errors for
//! a missing column.
//!
//! Bars are `bar(ts, asset, open, high, low, close)` with volume 1000 unless `.vol(...)` says
//! otherwise; the default execution is next-open, so an order submitted at timestamp index `i`
//! fills at the open of the next bar (the reference price).

mod common;

use common::*;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::slippage::{CustomSlippage, SlippageFill, SlippageModel};
use ml4t_backtest_core::{BacktestError, Result};

/// Runs `script` over `rows` (one asset, `features`) with `model`; returns the fills.
fn fills_with(
    rows: &[Row],
    features: &[&str],
    model: SlippageModel,
    script: Vec<(u64, Cmd)>,
) -> Vec<FillRow> {
    let data = market(rows, 1, features);
    let (out, _) = run_script(&data, script, &with_slippage(config(), model));
    fills(&out)
}

/// Asserts price, reference and slippage cost of `fill`.
fn check(fill: &FillRow, price: f64, reference: f64, what: &str) {
    assert_close(fill.price, price, &format!("{what}: price"));
    assert_eq!(fill.reference_price, reference, "{what}: reference");
    assert_close(
        fill.slippage,
        (price - reference).abs() * fill.quantity,
        &format!("{what}: slippage"),
    );
}

#[test]
fn spread_buys_at_the_ask_and_sells_at_the_bid() {
    let rows = [
        flat(1, 0, 100.0).feat(&[99.0, 101.0]),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).feat(&[99.9, 100.1]),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0).feat(&[100.8, 101.3]),
    ];
    let script = vec![(0, Cmd::Submit(0, 10.0)), (1, Cmd::Submit(0, -10.0))];
    let cfg = with_commission(
        with_slippage(config(), SlippageModel::spread(50.0)),
        CommissionModel::PerOrder {
            amount: 1.0,
            minimum: 0.0,
        },
    );
    let data = market(&rows, 1, &["bid", "ask"]);
    let (out, _) = run_script(&data, script, &cfg);
    let f = fills(&out);
    assert_eq!(f.len(), 2);
    // Buy 10 at the ask 100.1 (reference: the open 100): slippage 0.1 × 10 = 1.
    check(&f[0], 100.1, 100.0, "buy");
    assert_close(f[0].slippage, 1.0, "buy slippage");
    // Sell 10 at the bid 100.8 (reference 101): slippage 0.2 × 10 = 2.
    check(&f[1], 100.8, 101.0, "sell");
    assert_close(f[1].slippage, 2.0, "sell slippage");
    // Commission stays separate from slippage.
    assert_eq!((f[0].commission, f[1].commission), (1.0, 1.0));
    let t = trades(&out);
    assert_close(t[0].commission, 2.0, "trade commission");
    // Cash: 100000 − 1001 − 1 + 1008 − 1 = 100005.
    let e = equity(&out);
    assert_close(e[2].cash, 100_005.0, "cash");
}

#[test]
fn spread_column_puts_half_on_each_side() {
    let rows = [
        flat(1, 0, 100.0).feat(&[1.0]),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).feat(&[0.4]),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0).feat(&[0.6]),
    ];
    let script = vec![(0, Cmd::Submit(0, 10.0)), (1, Cmd::Submit(0, -10.0))];
    let f = fills_with(&rows, &["spread"], SlippageModel::spread(0.0), script);
    check(&f[0], 100.2, 100.0, "buy"); // 100 + 0.4 / 2
    check(&f[1], 100.7, 101.0, "sell"); // 101 − 0.6 / 2
}

#[test]
fn spread_bps_without_columns_and_as_a_fallback_for_missing_quotes() {
    let rows = [
        flat(1, 0, 100.0),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0),
    ];
    let script = vec![(0, Cmd::Submit(0, 10.0)), (1, Cmd::Submit(0, -10.0))];
    // 20 bps full spread = 10 bps a side: 100 × 1.001 and 101 × 0.999.
    let f = fills_with(&rows, &[], SlippageModel::spread(20.0), script.clone());
    check(&f[0], 100.1, 100.0, "buy");
    check(&f[1], 100.899, 101.0, "sell");
    // NaN quotes on the fill bars fall back to the bps.
    let quoted: Vec<Row> = rows
        .iter()
        .map(|r| r.clone().feat(&[f64::NAN, f64::NAN]))
        .collect();
    let g = fills_with(
        &quoted,
        &["bid", "ask"],
        SlippageModel::spread(20.0),
        script,
    );
    check(&g[0], 100.1, 100.0, "buy (no quotes)");
    check(&g[1], 100.899, 101.0, "sell (no quotes)");
}

#[test]
fn limit_fills_stay_free_of_slippage_and_quotes_are_clamped_to_the_bar() {
    let rows = [
        flat(1, 0, 100.0).feat(&[99.0, 101.0]),
        // The ask 103 lies above the high 102: clamped.
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).feat(&[99.5, 103.0]),
        bar(3, 0, 100.0, 101.0, 97.0, 99.0).feat(&[98.0, 99.0]),
    ];
    let script = vec![
        (0, Cmd::Submit(0, 5.0)),
        (1, Cmd::Order(limit_order(0, 5.0, 98.5))),
    ];
    let f = fills_with(&rows, &["bid", "ask"], SlippageModel::spread(0.0), script);
    assert_eq!(f.len(), 2);
    check(&f[0], 102.0, 100.0, "market buy clamped to the high");
    // The limit buy at 98.5 fills at its limit, with no slippage.
    check(&f[1], 98.5, 98.5, "limit buy");
    assert_eq!(f[1].slippage, 0.0);
}

#[test]
fn volume_share_grows_with_the_order_and_stops_at_the_cap() {
    let model = SlippageModel::VolumeShare {
        impact: 0.5,
        cap: 0.01,
    };
    let rows = [
        flat(1, 0, 100.0),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).vol(2_000.0),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0).vol(1_000.0),
    ];
    let script = vec![(0, Cmd::Submit(0, 20.0)), (1, Cmd::Submit(0, -100.0))];
    let f = fills_with(&rows, &[], model, script);
    // 20 of 2000 shares: 0.5 × 0.01 = 0.5% → 100 × 1.005.
    check(&f[0], 100.5, 100.0, "buy");
    // 100 of 1000: 0.5 × 0.1 = 5% > cap 1% → 101 × 0.99.
    check(&f[1], 99.99, 101.0, "sell capped");
}

#[test]
fn square_root_impact_reads_sigma_and_adv_from_the_feed() {
    let model = SlippageModel::square_root_impact(1.0, "sigma", "adv");
    let rows = [
        flat(1, 0, 100.0).feat(&[0.05, 1.0]),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).feat(&[0.02, 40_000.0]),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0).feat(&[0.01, 10_000.0]),
    ];
    let script = vec![(0, Cmd::Submit(0, 100.0)), (1, Cmd::Submit(0, -400.0))];
    let f = fills_with(&rows, &["sigma", "adv"], model, script);
    // 1 × 0.02 × sqrt(100 / 40000) = 0.02 × 0.05 = 0.001 → 100.1.
    check(&f[0], 100.1, 100.0, "buy");
    // 1 × 0.01 × sqrt(400 / 10000) = 0.01 × 0.2 = 0.002 → 101 × 0.998 = 100.798.
    check(&f[1], 100.798, 101.0, "sell");
}

#[test]
fn square_root_impact_works_across_chunks() {
    let model = SlippageModel::square_root_impact(2.0, "sigma", "adv");
    let rows = [
        flat(1, 0, 100.0).feat(&[0.01, 100.0]),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0).feat(&[0.01, 10_000.0]),
        bar(3, 0, 100.0, 102.0, 98.0, 101.0).feat(&[0.02, 10_000.0]),
    ];
    let data = market(&rows, 1, &["sigma", "adv"]);
    let chunks = split_at(&data, &[2, 3]);
    let script = vec![(0, Cmd::Submit(0, 100.0)), (1, Cmd::Submit(0, 100.0))];
    let mut strategy = Scripted::new(script);
    let out = run(&chunks, &mut strategy, &with_slippage(config(), model));
    let f = fills(&out);
    // 2 × 0.01 × sqrt(0.01) = 0.002 → 100.2; then 2 × 0.02 × 0.1 = 0.004 → 100.4.
    check(&f[0], 100.2, 100.0, "chunk 2");
    check(&f[1], 100.4, 100.0, "chunk 3");
}

#[test]
fn a_missing_impact_column_is_a_config_error_naming_it() {
    let rows = [
        flat(1, 0, 100.0).feat(&[0.02]),
        flat(2, 0, 100.0).feat(&[0.02]),
    ];
    let data = market(&rows, 1, &["sigma"]);
    let model = SlippageModel::square_root_impact(1.0, "sigma", "adv20");
    match model.check_columns(&data) {
        Err(BacktestError::Config { field, rule }) => {
            assert_eq!(field, "slippage.adv_column");
            assert!(rule.contains("'adv20'"), "{rule}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let cfg = with_slippage(config(), model);
    match try_run_script(&data, vec![(0, Cmd::Submit(0, 1.0))], &cfg) {
        Err(BacktestError::Config { field, .. }) => assert_eq!(field, "slippage.adv_column"),
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }
    let sigma = SlippageModel::square_root_impact(1.0, "vol", "sigma");
    assert!(matches!(
        sigma.check_columns(&data),
        Err(BacktestError::Config { field, .. }) if field == "slippage.sigma_column"
    ));
    // Spread never needs a column.
    assert!(SlippageModel::spread(5.0).check_columns(&data).is_ok());
}

#[test]
fn bad_parameters_stop_the_run_before_it_starts() {
    let data = market(&[flat(1, 0, 100.0)], 1, &[]);
    for (model, expected) in [
        (SlippageModel::spread(f64::NAN), "slippage.bps"),
        (
            SlippageModel::VolumeShare {
                impact: -1.0,
                cap: 0.1,
            },
            "slippage.impact",
        ),
        (
            SlippageModel::VolumeShare {
                impact: 1.0,
                cap: 0.0,
            },
            "slippage.cap",
        ),
        (
            SlippageModel::square_root_impact(0.0, "s", "a"),
            "slippage.k",
        ),
    ] {
        let cfg = with_slippage(config(), model);
        match try_run_script(&data, vec![], &cfg) {
            Err(BacktestError::Config { field, .. }) => assert_eq!(field, expected),
            other => panic!("{expected}: got {:?}", other.map(|_| ())),
        }
    }
}

/// A custom model: one cent per share per 100 shares of bar volume share, failing above 500.
struct Cents;

impl CustomSlippage for Cents {
    fn price(&self, fill: &SlippageFill<'_>) -> Result<f64> {
        if fill.quantity > 500.0 {
            return Err(BacktestError::Strategy("too large".into()));
        }
        let volume = fill.data.volume()[fill.row];
        Ok(fill.reference + fill.side.sign() * 0.01 * fill.quantity / volume * 100.0)
    }
}

#[test]
fn a_custom_model_prices_every_market_fill_and_can_stop_the_run() {
    let rows = [
        flat(1, 0, 100.0),
        bar(2, 0, 100.0, 102.0, 98.0, 101.0),
        bar(3, 0, 101.0, 103.0, 99.0, 102.0),
    ];
    let script = vec![(0, Cmd::Submit(0, 50.0)), (1, Cmd::Submit(0, -50.0))];
    let f = fills_with(&rows, &[], SlippageModel::custom(Cents), script);
    // 0.01 × 50 / 1000 × 100 = 0.05.
    check(&f[0], 100.05, 100.0, "buy");
    check(&f[1], 100.95, 101.0, "sell");
    let data = market(&rows, 1, &[]);
    let cfg = with_slippage(config(), SlippageModel::custom(Cents));
    match try_run_script(&data, vec![(0, Cmd::Submit(0, 600.0))], &cfg) {
        Err(BacktestError::Strategy(message)) => assert_eq!(message, "too large"),
        other => panic!("expected the model's error, got {:?}", other.map(|_| ())),
    }
}
