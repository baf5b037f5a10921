//! Several currencies: a EUR-quoted stock bought from a USD account while EUR/USD moves (hand
//! computed in the comments), `auto_convert` with its fee, and a property: at every timestamp
//! the base cash is Σ cash per currency × its rate (from the sparse cash table) and the marked
//! positions are Σ quantity (rebuilt from the fills) × close × the rate in force.

mod common;

use common::*;
use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::fx::{Conversion, Currencies, FxRate};
use ml4t_backtest_core::{BacktestOutput, Engine, EngineConfig, MarketData};
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000_000;

/// Runs `script` over `data` with asset `a`'s quote currency `quote[a]` (0: USD, 1: EUR).
fn run_fx(
    data: &MarketData,
    quote: Vec<u16>,
    rates: Vec<FxRate>,
    conversion: Conversion,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
) -> BacktestOutput {
    let mut strategy = Scripted::new(script);
    let mut engine = Engine::new(cfg.clone(), data.n_assets()).expect("valid config");
    engine
        .set_currencies(Currencies::new(2, quote, rates, conversion).expect("valid currencies"))
        .expect("one currency per asset");
    engine.process_chunk(data, &mut strategy).expect("runs");
    engine.finish(&mut strategy).expect("finishes")
}

fn eur(values: &[f64]) -> Vec<FxRate> {
    values
        .iter()
        .enumerate()
        .map(|(i, &rate)| FxRate {
            ts: i as i64 * DAY,
            currency: 1,
            rate,
        })
        .collect()
}

/// The cash of currency `c` at the end of timestamp `ts`: its last row at or before `ts`.
fn cash_at(out: &BacktestOutput, c: u32, ts: i64) -> (f64, f64) {
    let t = i64s(&out.cash, "ts");
    let cur = u32s(&out.cash, "currency");
    let cash = f64s(&out.cash, "cash");
    let rate = f64s(&out.cash, "rate");
    (0..t.len())
        .rev()
        .find(|&i| cur[i] == c && t[i] <= ts)
        .map_or((0.0, f64::NAN), |i| (cash[i], rate[i]))
}

/// SAP (quoted in EUR) closes 90, 100, 110 while EUR/USD is 1.10, 1.20, 1.00; 100 bought at
/// day 1's close and sold at day 2's, no fees.
fn sap_round_trip(conversion: Conversion) -> BacktestOutput {
    let rows: Vec<Row> = [90.0, 100.0, 110.0]
        .iter()
        .enumerate()
        .map(|(i, &p)| flat(i as i64 * DAY, 0, p))
        .collect();
    let data = market(&rows, 1, &[]);
    let script = vec![(1, Cmd::Submit(0, 100.0)), (2, Cmd::Submit(0, -100.0))];
    run_fx(
        &data,
        vec![1],
        eur(&[1.10, 1.20, 1.00]),
        conversion,
        script,
        &same_close(),
    )
}

/// The round trip of [`sap_round_trip`] with the EUR cash kept.
#[test]
fn a_eur_stock_bought_from_a_usd_account_while_eurusd_moves() {
    let out = sap_round_trip(Conversion::Keep);
    let cash = f64s(&out.equity, "cash");
    let long = f64s(&out.equity, "long_value");
    // Day 1: EUR cash -10,000 (x 1.20 = -12,000 USD), the position 100 x 100 x 1.20 = 12,000.
    assert_eq!(cash[1], 100_000.0 - 12_000.0);
    assert_eq!(long[1], 12_000.0);
    // Day 2: sold for 11,000 EUR: EUR cash +1,000, worth 1,000 USD at 1.00; nothing held.
    assert_eq!(cash_at(&out, 1, 2 * DAY), (1_000.0, 1.0));
    assert_eq!(cash_at(&out, 0, 2 * DAY).0, 100_000.0);
    assert_eq!(cash[2], 101_000.0);
    assert_eq!(long[2], 0.0);
    // The trade's PnL in EUR is 10 x 100.
    assert_eq!(f64s(&out.trades, "gross_pnl_local"), vec![1_000.0]);
}

/// With `auto_convert` at a 0.1 % fee, the EUR proceeds are swept to USD at each close: day 2's
/// +1,000 EUR become 1,000 x 1.00 = 1,000 USD less a 1 USD fee, and no EUR is left.
#[test]
fn auto_convert_sweeps_foreign_cash_to_base_at_each_close_with_its_fee() {
    let out = sap_round_trip(Conversion::AutoConvert { fee: 0.001 });
    // Day 1: -10,000 EUR swept at 1.20: -12,000 USD, a 12 USD fee (0.1 % of the amount).
    assert_eq!(cash_at(&out, 1, DAY).0, 0.0);
    assert_eq!(cash_at(&out, 0, DAY).0, 100_000.0 - 12_000.0 - 12.0);
    // Day 2: +11,000 EUR swept at 1.00: +11,000 USD, an 11 USD fee.
    let usd = cash_at(&out, 0, 2 * DAY).0;
    assert!((usd - (100_000.0 - 12_012.0 + 11_000.0 - 11.0)).abs() < 1e-9);
    let fees: f64 = f64s(&out.cash, "fx_fee").iter().sum();
    assert!((fees - 23.0).abs() < 1e-9);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Equity in base = Σ cash_c × rate_c + Σ positions × close × rate, at every timestamp,
    /// each side rebuilt independently of the engine's own sums.
    #[test]
    fn equity_in_base_is_cash_per_currency_and_positions_at_their_rates(
        moves in proptest::collection::vec((-30i32..30, -30i32..30, -20i32..20), 6..25),
        orders in proptest::collection::vec((0u64..25, 0u32..2, -40i32..40), 1..10),
        convert in any::<bool>(),
    ) {
        let (mut usd, mut sap, mut rate) = (50.0, 80.0, 1.10);
        let mut rows = Vec::new();
        let mut rates = Vec::new();
        let mut closes = Vec::new();
        for (i, (a, b, r)) in moves.iter().enumerate() {
            usd = (usd + *a as f64 * 0.25_f64).max(1.0);
            sap = (sap + *b as f64 * 0.5_f64).max(1.0);
            rate = (rate + *r as f64 * 0.005_f64).max(0.5);
            let ts = i as i64 * DAY;
            rows.push(flat(ts, 0, usd));
            rows.push(flat(ts, 1, sap));
            rates.push(FxRate { ts, currency: 1, rate });
            closes.push([usd, sap, rate]);
        }
        let data = market(&rows, 2, &[]);
        let script: Vec<(u64, Cmd)> = orders
            .iter()
            .filter(|(_, _, q)| *q != 0)
            .map(|&(t, a, q)| (t, Cmd::Submit(a, q as f64)))
            .collect();
        let conversion = if convert {
            Conversion::AutoConvert { fee: 0.0005 }
        } else {
            Conversion::Keep
        };
        let fee = CommissionModel::Percent {
            rate: 0.001,
            minimum: 0.0,
        };
        let cfg = with_commission(same_close(), fee);
        let out = run_fx(&data, vec![0, 1], rates, conversion, script, &cfg);
        let ts = i64s(&out.equity, "ts");
        let cash = f64s(&out.equity, "cash");
        let long = f64s(&out.equity, "long_value");
        let short = f64s(&out.equity, "short_value");
        let fill_ts = i64s(&out.fills, "ts");
        let fill_asset = u32s(&out.fills, "asset_id");
        let fill_q = f64s(&out.fills, "quantity");
        let side = u8s(&out.fills, "side");
        for (i, &t) in ts.iter().enumerate() {
            let (u, _) = cash_at(&out, 0, t);
            let (e, e_rate) = cash_at(&out, 1, t);
            let base_cash = u + if e == 0.0 { 0.0 } else { e * e_rate };
            prop_assert!((cash[i] - base_cash).abs() <= 1e-9 * (1.0 + base_cash.abs()));
            let mut held = [0.0_f64; 2];
            for f in 0..fill_ts.len() {
                if fill_ts[f] <= t {
                    let sign = if side[f] == 0 { 1.0 } else { -1.0 };
                    held[fill_asset[f] as usize] += sign * fill_q[f];
                }
            }
            let [p_usd, p_sap, r] = closes[i];
            let marked = held[0] * p_usd + held[1] * p_sap * r;
            let value = long[i] + short[i];
            prop_assert!((value - marked).abs() <= 1e-9 * (1.0 + marked.abs()));
            prop_assert!(cash[i].is_finite() && value.is_finite());
        }
    }
}

/// A trade scaled in, cut and scaled in again realises its base PnL against the position's
/// average cost in base, as the local PnL does against the local average cost: at a constant
/// rate the base PnL is the local PnL × the rate. Buy 100 at 100, sell 50 at 110, buy 50 at
/// 120, sell 100 at 130: local PnL 50 × 10 + 100 × (130 − 110) = 2,500 EUR, 2,750 USD at 1.10
/// (the engine before this fix, which used the mean of the entries so far, gave 3,116.67).
#[test]
fn base_pnl_follows_the_average_cost_through_a_partial_exit() {
    let rows: Vec<Row> = [100.0, 110.0, 120.0, 130.0]
        .iter()
        .enumerate()
        .map(|(i, &p)| flat(i as i64 * DAY, 0, p))
        .collect();
    let data = market(&rows, 1, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 100.0)),
        (1, Cmd::Submit(0, -50.0)),
        (2, Cmd::Submit(0, 50.0)),
        (3, Cmd::Submit(0, -100.0)),
    ];
    let out = run_fx(
        &data,
        vec![1],
        eur(&[1.10, 1.10, 1.10, 1.10]),
        Conversion::Keep,
        script,
        &same_close(),
    );
    assert_eq!(f64s(&out.trades, "gross_pnl_local"), vec![2_500.0]);
    let base = f64s(&out.trades, "gross_pnl")[0];
    assert!((base - 2_750.0).abs() < 1e-9, "base PnL {base}");
}
