//! Hand-computed scenarios for every built-in risk rule and the engine's risk integration:
//! levels live from the bar after they are set, stop/target/trailing fills along the bar path,
//! gaps, conflicts, shorts, stop bases, pre-trade cuts (`risk_limit` rejections), portfolio
//! halts, composition and parameter validation.
//!
//! Unless a test says otherwise: 100k cash, next-open execution, fractional shares, no costs,
//! `ohlc` path policy (the extreme nearer the open first; ties: the low), fill stop basis.

mod common;

use common::*;
use ml4t_backtest_core::matching::PathPolicy;
use ml4t_backtest_core::orders::TimeInForce;
use ml4t_backtest_core::risk::rules::{
    AllOf, AnyOf, BreakevenStop, DailyLossLimit, Distance, ForAssets, MaxDrawdownHalt,
    MaxGrossExposure, MaxNetExposure, MaxPositionSize, MaxPositions, PositionLimit, RegimeRule,
    RuleChain, ScaleSize, ScaledExit, StopLoss, TakeProfit, TimeExit, TrailMark, TrailUpdate,
    TrailingStop, VolatilityScaledSizing,
};
use ml4t_backtest_core::risk::{BoxedRule, RiskRule};
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{BacktestError, BacktestOutput, EngineConfig, MarketData, StopBasis};

// ---------------------------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------------------------

/// Trade exit reasons.
const SIGNAL: u8 = 0;
const TAKE_PROFIT: u8 = 2;
const STOP_LOSS: u8 = 3;
const TRAILING_STOP: u8 = 4;
const TIME_EXIT: u8 = 6;
const RISK_LIMIT: u8 = 7;
/// Rejection reason of a pre-trade cut.
const REJECT_RISK_LIMIT: u8 = 8;
/// Fill order types.
const MARKET: u8 = 0;
const LIMIT: u8 = 1;
const STOP: u8 = 2;
const TRAILING: u8 = 5;
/// Fill sides.
const BUY: u8 = 0;
const SELL: u8 = 1;

/// One hour and one day in nanoseconds (the feed's time unit).
const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn boxed<R: RiskRule + 'static>(rule: R) -> BoxedRule {
    Box::new(rule)
}

fn stop_pct(pct: f64) -> BoxedRule {
    boxed(StopLoss::new(Distance::Percent(pct)).unwrap())
}

fn target_pct(pct: f64) -> BoxedRule {
    boxed(TakeProfit::new(Distance::Percent(pct)).unwrap())
}

fn trailing(pct: f64, mark: TrailMark, update: TrailUpdate) -> BoxedRule {
    boxed(TrailingStop::new(Distance::Percent(pct), mark, update).unwrap())
}

/// The result rows of one run.
struct Outcome {
    fills: Vec<FillRow>,
    trades: Vec<TradeRow>,
    rejections: Vec<RejectionRow>,
    equity: Vec<EquityRow>,
}

impl Outcome {
    fn of(out: &BacktestOutput) -> Self {
        Outcome {
            fills: fills(out),
            trades: trades(out),
            rejections: rejections(out),
            equity: equity(out),
        }
    }

    /// The fills of `asset`.
    fn fills_of(&self, asset: u32) -> Vec<FillRow> {
        self.fills
            .iter()
            .copied()
            .filter(|f| f.asset == asset)
            .collect()
    }

    /// The trades of `asset`.
    fn trades_of(&self, asset: u32) -> Vec<TradeRow> {
        self.trades
            .iter()
            .copied()
            .filter(|t| t.asset == asset)
            .collect()
    }

    /// The rejections as `(ts, asset, signed quantity, reason)`.
    fn cuts(&self) -> Vec<(i64, u32, f64, u8)> {
        self.rejections
            .iter()
            .map(|r| (r.ts, r.asset, r.quantity, r.reason))
            .collect()
    }

    /// Equity at the last timestamp.
    fn final_equity(&self) -> f64 {
        self.equity.last().expect("an equity row").equity
    }
}

/// Runs `script` over `data` with `rules`; panics on error.
fn run_rules(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
    rules: Vec<BoxedRule>,
) -> Outcome {
    let (out, _) = run_script_with_rules(data, script, cfg, rules);
    Outcome::of(&out)
}

/// Runs `script` over `data` with `rules`; the engine's error instead of a panic.
fn try_run_rules(
    data: &MarketData,
    script: Vec<(u64, Cmd)>,
    cfg: &EngineConfig,
    rules: Vec<BoxedRule>,
) -> Result<BacktestOutput, BacktestError> {
    let mut strategy = Scripted::new(script);
    ml4t_backtest_core::run_backtest_with_rules(std::iter::once(data), &mut strategy, cfg, rules)
}

/// Asserts `result` is a `BacktestError::Risk` for `rule` (the dotted rule.field name).
#[track_caller]
fn assert_risk_error<T>(result: ml4t_backtest_core::Result<T>, rule: &str) {
    match result {
        Err(BacktestError::Risk { rule: got, detail }) => {
            assert_eq!(got, rule, "wrong rule in error: {detail}")
        }
        Err(other) => panic!("expected a risk error for {rule}, got {other}"),
        Ok(_) => panic!("expected a risk error for {rule}, got Ok"),
    }
}

/// Asserts one fill: `(ts, side, quantity, price, order type)`.
#[track_caller]
fn assert_fill(fill: &FillRow, ts: i64, side: u8, quantity: f64, price: f64, order_type: u8) {
    assert_eq!(fill.ts, ts, "fill ts: {fill:?}");
    assert_eq!(fill.side, side, "fill side: {fill:?}");
    assert_close(fill.quantity, quantity, "fill quantity");
    assert_close(fill.price, price, "fill price");
    assert_eq!(fill.order_type, order_type, "fill order type: {fill:?}");
}

/// Asserts one closed trade: `(exit ts, exit price, gross pnl, exit reason)`.
#[track_caller]
fn assert_closed(trade: &TradeRow, exit_ts: i64, exit_price: f64, pnl: f64, reason: u8) {
    assert!(!trade.open, "trade still open: {trade:?}");
    assert_eq!(trade.exit_ts, exit_ts, "exit ts: {trade:?}");
    assert_close(trade.exit_price, exit_price, "exit price");
    assert_close(trade.gross_pnl, pnl, "gross pnl");
    assert_eq!(trade.exit_reason, reason, "exit reason: {trade:?}");
}

/// Asset 0 at a flat 100 on t0 (decision) and t1 (entry at the open), then `later` bars.
fn entered_at_100(later: &[Row]) -> MarketData {
    let mut rows = vec![flat(0, 0, 100.0), flat(1, 0, 100.0)];
    rows.extend_from_slice(later);
    market(&rows, 1, &[])
}

/// Two assets trading the same `bars` (given for asset 0).
fn two_alike(bars: &[Row]) -> MarketData {
    let rows: Vec<Row> = bars
        .iter()
        .flat_map(|r| {
            [
                r.clone(),
                Row {
                    asset: 1,
                    ..r.clone()
                },
            ]
        })
        .collect();
    market(&rows, 2, &[])
}

/// Enter asset 0 with `quantity` shares (negative: short) at t0; the order fills at t1's open
/// in next-open mode, at t0's close in same-close mode.
fn enter(quantity: f64) -> Vec<(u64, Cmd)> {
    vec![(0, Cmd::Submit(0, quantity))]
}

// ---------------------------------------------------------------------------------------------
// Stop-loss
// ---------------------------------------------------------------------------------------------

#[test]
fn stop_loss_percent_is_live_from_the_bar_after_entry() {
    // Entry 10 @ 100 at t1's open. The entry bar's low (90) is below 95 but the level is set
    // only at t1's close: basis 100, level 100 - 5% = 95.
    // t2: low 96 > 95, nothing. t3: open 97 is 3 above the low and 0.5 below the high, so the
    // path is 97 -> 97.5 -> 94 -> 94.5 and crosses 95 on the way down: sell 10 @ 95.
    let rows = vec![
        flat(0, 0, 100.0),
        bar(1, 0, 100.0, 101.0, 90.0, 99.0),
        bar(2, 0, 99.0, 99.5, 96.0, 97.0),
        bar(3, 0, 97.0, 97.5, 94.0, 94.5),
    ];
    let data = market(&rows, 1, &[]);
    let o = run_rules(&data, enter(10.0), &config(), vec![stop_pct(0.05)]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[0], 1, BUY, 10.0, 100.0, MARKET);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 95.0, STOP);
    assert_eq!(o.fills[1].reference_price, 95.0);
    // PnL 10 x (95 - 100) = -50; bars held: entry on the asset's 2nd bar, exit on its 4th.
    assert_closed(&o.trades[0], 3, 95.0, -50.0, STOP_LOSS);
    assert_eq!(o.trades[0].bars_held, 2);
    // Cash 100000 - 1000 + 950.
    assert_close(o.final_equity(), 99_950.0, "final equity");
}

#[test]
fn stop_loss_absolute_on_a_short() {
    // Short 10 @ 100; level 100 + 3 = 103. t2: open 101 is 0.5 above the low, 3 below the
    // high: path 101 -> 100.5 -> 104 -> 102, crossing 103 on the way up: buy 10 @ 103.
    let data = entered_at_100(&[bar(2, 0, 101.0, 104.0, 100.5, 102.0)]);
    let rule = boxed(StopLoss::new(Distance::Absolute(3.0)).unwrap());
    let o = run_rules(&data, enter(-10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2);
    assert_fill(&o.fills[1], 2, BUY, 10.0, 103.0, STOP);
    // Short PnL 10 x (100 - 103) = -30.
    assert!(!o.trades[0].long);
    assert_closed(&o.trades[0], 2, 103.0, -30.0, STOP_LOSS);
}

#[test]
fn stop_loss_feature_multiple_is_fixed_at_entry() {
    // 2 x ATR, the ATR taken at the entry bar's close (t1: 2.0): level 100 - 4 = 96, kept
    // although the ATR jumps to 10 at t2 (which would give 80).
    // t2: low 96.5 > 96. t3: open 97, high 97 (0 above), low 95 (2 below): high first, path
    // 97 -> 97 -> 95, crossing 96: sell @ 96.
    let rows = vec![
        flat(0, 0, 100.0).feat(&[1.0]),
        flat(1, 0, 100.0).feat(&[2.0]),
        bar(2, 0, 99.0, 99.0, 96.5, 97.0).feat(&[10.0]),
        bar(3, 0, 97.0, 97.0, 95.0, 95.5).feat(&[10.0]),
    ];
    let data = market(&rows, 1, &["atr"]);
    let rule = boxed(StopLoss::new(Distance::feature("atr", 2.0)).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 96.0, STOP);
    assert_closed(&o.trades[0], 3, 96.0, -40.0, STOP_LOSS);

    // A NaN ATR on the entry bar: no level until the first finite value (t2: 1.5, level
    // 100 - 3 = 97), then fixed. t2's low (96.5) is below 97 but the level only goes live at
    // t3: open 97 = level, so the stop fills at 97 at the open (no gap: the open is not
    // below the level).
    let rows = vec![
        flat(0, 0, 100.0).feat(&[1.0]),
        bar(1, 0, 100.0, 100.0, 90.0, 100.0).feat(&[f64::NAN]),
        bar(2, 0, 99.0, 99.0, 96.5, 98.0).feat(&[1.5]),
        bar(3, 0, 97.0, 98.0, 96.0, 96.5).feat(&[50.0]),
    ];
    let data = market(&rows, 1, &["atr"]);
    let rule = boxed(StopLoss::new(Distance::feature("atr", 2.0)).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 97.0, STOP);
}

// ---------------------------------------------------------------------------------------------
// Take-profit and trailing stops
// ---------------------------------------------------------------------------------------------

#[test]
fn take_profit_fills_at_its_level_without_slippage() {
    // Target 100 + 10% = 110. t2: open 105 is 1 above the low, 6 below the high: path
    // 105 -> 104 -> 111 -> 108, reaching 110 on the way up: sell 10 @ 110 as a limit, and the
    // fixed slippage of 0.5 does not apply to it.
    let data = entered_at_100(&[bar(2, 0, 105.0, 111.0, 104.0, 108.0)]);
    let cfg = with_slippage(config(), SlippageModel::Fixed { amount: 0.5 });
    let o = run_rules(&data, enter(10.0), &cfg, vec![target_pct(0.10)]);
    // The entry is a market buy: 100 + 0.5, clamped into the flat bar: 100.
    assert_fill(&o.fills[0], 1, BUY, 10.0, 100.0, MARKET);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 110.0, LIMIT);
    assert_eq!(o.fills[1].slippage, 0.0);
    // 10 x (110 - 100) = 100.
    assert_closed(&o.trades[0], 2, 110.0, 100.0, TAKE_PROFIT);
}

/// Trailing-stop data: entry @ 100 (t1), a rally to 125 (t2) and 140 (t3), then a drop (t4).
fn trailing_data() -> MarketData {
    entered_at_100(&[
        bar(2, 0, 100.0, 125.0, 99.0, 120.0),
        bar(3, 0, 126.0, 140.0, 120.0, 121.0),
        bar(4, 0, 125.0, 125.5, 108.0, 109.0),
    ])
}

#[test]
fn trailing_stop_close_mark_lagged() {
    // 10% below the highest close: t1 close 100 -> 90 (t2's low 99 is above); t2 close 120 ->
    // 108 (t3's low 120 is above); t3 close 121 -> 108.9. t4: open 125, 0.5 to the high and 17
    // to the low: path 125 -> 125.5 -> 108 -> 109 crosses 108.9: sell @ 108.9 (a stop).
    let rule = trailing(0.10, TrailMark::Close, TrailUpdate::Lagged);
    let o = run_rules(&trailing_data(), enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 4, SELL, 10.0, 108.9, STOP);
    // 10 x 8.9 = 89.
    assert_closed(&o.trades[0], 4, 108.9, 89.0, TRAILING_STOP);
}

#[test]
fn trailing_stop_extreme_mark_lagged() {
    // 10% below the highest high: 90 after t1, 112.5 after t2 (high 125). t3 trades up to 140
    // but the lagged level stays 112.5 inside it (t3's low 120 is above): no exit. After t3 the
    // level is 126; t4 opens at 125, below it: a gap, sell at the open 125.
    let rule = trailing(0.10, TrailMark::Extreme, TrailUpdate::Lagged);
    let o = run_rules(&trailing_data(), enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 4, SELL, 10.0, 125.0, STOP);
    assert_eq!(o.fills[1].reference_price, 125.0);
    assert_closed(&o.trades[0], 4, 125.0, 250.0, TRAILING_STOP);
}

#[test]
fn trailing_stop_intrabar_follows_the_path() {
    // t2: mark 100 (level 90); path 100 -> 99 -> 125 -> 120 (low nearer): the high lifts the
    // level to 112.5 but the close 120 stays above it. After t2 the mark is 125.
    // t3: the open 126 lifts the mark (level 113.4); path 126 -> 120 (low nearer, 6 vs 14)
    // -> 140 -> 121: 120 stays above 113.4, the high lifts the level to 126, and the fall to
    // 121 crosses it: sell @ 126, recorded as a trailing-stop order (type 5). The lagged
    // variants above did not exit in t3.
    let rule = trailing(0.10, TrailMark::Extreme, TrailUpdate::Intrabar);
    let o = run_rules(&trailing_data(), enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 126.0, TRAILING);
    assert_closed(&o.trades[0], 3, 126.0, 260.0, TRAILING_STOP);
}

// ---------------------------------------------------------------------------------------------
// Time exits, breakeven, scaled exits
// ---------------------------------------------------------------------------------------------

#[test]
fn time_exit_after_max_bars() {
    // Bars held: 0 at t1 (entry), 1 at t2, 2 at t3: the exit is decided at t3's close and fills
    // at t4's open (104) as a market order.
    let data = entered_at_100(&[
        flat(2, 0, 101.0),
        flat(3, 0, 102.0),
        bar(4, 0, 104.0, 105.0, 103.0, 104.5),
    ]);
    let rule = boxed(TimeExit::new(Some(2), None).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2);
    assert_fill(&o.fills[1], 4, SELL, 10.0, 104.0, MARKET);
    // 10 x 4; held from the asset's 2nd bar to its 5th.
    assert_closed(&o.trades[0], 4, 104.0, 40.0, TIME_EXIT);
    assert_eq!(o.trades[0].bars_held, 3);
}

#[test]
fn time_exit_by_duration_is_decided_on_the_assets_own_bars() {
    // Asset 1 trades every 10 ns; asset 0 misses ts 20 and 30. Entry of asset 0 at ts 10.
    // Max duration 15: already reached at ts 30 (20 since entry), but asset 0 has no bar there,
    // so it is evaluated at ts 40 (bars held 1 < 5, duration 30 >= 15): the exit fills at its
    // next bar, ts 50, at the open 103.
    let rows = vec![
        flat(0, 0, 100.0),
        flat(0, 1, 50.0),
        flat(10, 0, 100.0),
        flat(10, 1, 50.0),
        flat(20, 1, 50.0),
        flat(30, 1, 50.0),
        flat(40, 0, 101.0),
        flat(40, 1, 50.0),
        bar(50, 0, 103.0, 104.0, 102.0, 103.5),
        flat(50, 1, 50.0),
    ];
    let data = market(&rows, 2, &[]);
    let rule = boxed(TimeExit::new(Some(5), Some(15)).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 50, SELL, 10.0, 103.0, MARKET);
    assert_closed(&o.trades[0], 50, 103.0, 30.0, TIME_EXIT);
    // The asset's bars: ts 10 (entry, its 2nd), 40, 50 (its 4th).
    assert_eq!(o.trades[0].bars_held, 2);
}

#[test]
fn breakeven_stop_after_the_trigger() {
    // Trigger 5% MFE, offset 1%. t1: MFE 0. t2 closes at 106: MFE 6% >= 5%, so from t3 a stop at
    // 100 x 1.01 = 101 (t2's own low, 100, is before the stop exists). t3: open 104, 0.5 to the
    // high, 5 to the low: path 104 -> 104.5 -> 99 crosses 101: sell @ 101.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 107.0, 100.0, 106.0),
        bar(3, 0, 104.0, 104.5, 99.0, 100.0),
    ]);
    let rule = boxed(BreakevenStop::new(0.05, 0.01).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 101.0, STOP);
    assert_closed(&o.trades[0], 3, 101.0, 10.0, STOP_LOSS);

    // MFE counts closes: a close of 104 (4%) under a high of 107 never arms the stop.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 107.0, 100.0, 104.0),
        bar(3, 0, 104.0, 104.5, 99.0, 100.0),
    ]);
    let rule = boxed(BreakevenStop::new(0.05, 0.01).unwrap());
    let o = run_rules(&data, enter(10.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 1);
    assert!(o.trades[0].open);
}

#[test]
fn scaled_exit_takes_partial_profits_and_advances() {
    // Levels: +5% for half, +10% for the rest. 100 shares @ 100.
    // t2: path 101 -> 100.5 -> 111 -> 104 reaches 105: sell 50 @ 105. The bar also reaches
    // 110, but at most one level exits per bar and the next stage is set at t2's close.
    // t3: target 110 for all 50 left; path 108 -> 107 -> 112: sell 50 @ 110.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 111.0, 100.5, 104.0),
        bar(3, 0, 108.0, 112.0, 107.0, 111.0),
    ]);
    let rule = boxed(ScaledExit::new(vec![(0.05, 0.5), (0.10, 1.0)]).unwrap());
    let o = run_rules(&data, enter(100.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 3, "{:?}", o.fills);
    assert_fill(&o.fills[1], 2, SELL, 50.0, 105.0, LIMIT);
    assert_fill(&o.fills[2], 3, SELL, 50.0, 110.0, LIMIT);
    // One trade: mean exit (50 x 105 + 50 x 110) / 100 = 107.5, PnL 250 + 500.
    assert_eq!(o.trades.len(), 1);
    assert_closed(&o.trades[0], 3, 107.5, 750.0, TAKE_PROFIT);
    assert_close(o.trades[0].quantity, 100.0, "trade quantity");
}

// ---------------------------------------------------------------------------------------------
// Pre-trade sizing and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn volatility_scaled_sizing_sets_the_size() {
    // shares = 1% x equity / (2 x ATR) = 1000 / (2 x ATR):
    //   asset 0, ATR 5: 100 shares; the order for 500 is cut to 100 (400 rejected);
    //   asset 1, ATR 2: 250 shares; the order for 20 is raised to 250 (nothing rejected);
    //   asset 2, ATR NaN: rejected whole.
    // At t1 asset 0 holds 100 already: another 50 is rejected (no room).
    let rows = vec![
        flat(0, 0, 100.0).feat(&[5.0]),
        flat(0, 1, 50.0).feat(&[2.0]),
        flat(0, 2, 20.0).feat(&[f64::NAN]),
        flat(1, 0, 100.0).feat(&[5.0]),
        flat(1, 1, 50.0).feat(&[2.0]),
        flat(1, 2, 20.0).feat(&[f64::NAN]),
        flat(2, 0, 100.0).feat(&[5.0]),
        flat(2, 1, 50.0).feat(&[2.0]),
        flat(2, 2, 20.0).feat(&[f64::NAN]),
    ];
    let data = market(&rows, 3, &["atr"]);
    let script = vec![
        (0, Cmd::Submit(0, 500.0)),
        (0, Cmd::Submit(1, 20.0)),
        (0, Cmd::Submit(2, 10.0)),
        (1, Cmd::Submit(0, 50.0)),
    ];
    let rule = boxed(VolatilityScaledSizing::new("atr", 0.01, 2.0, false).unwrap());
    let o = run_rules(&data, script.clone(), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills_of(0)[0], 1, BUY, 100.0, 100.0, MARKET);
    assert_fill(&o.fills_of(1)[0], 1, BUY, 250.0, 50.0, MARKET);
    assert_eq!(
        o.cuts(),
        vec![
            (0, 0, 400.0, REJECT_RISK_LIMIT),
            (0, 2, 10.0, REJECT_RISK_LIMIT),
            (1, 0, 50.0, REJECT_RISK_LIMIT),
        ]
    );

    // Volatility as a return (`returns = true`): asset 1's 2.0 read as 2% of its price 50 is
    // 1.0 per share with multiple 1: 1% x 100000 / 1 = 1000 shares.
    let rule = boxed(VolatilityScaledSizing::new("atr", 0.01, 1.0, true).unwrap());
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| match r.asset {
            1 => r.clone().feat(&[0.02]),
            _ => r.clone(),
        })
        .collect();
    let data = market(&rows, 3, &["atr"]);
    let o = run_rules(
        &data,
        vec![(0, Cmd::Submit(1, 20.0))],
        &config(),
        vec![rule],
    );
    assert_fill(&o.fills[0], 1, BUY, 1000.0, 50.0, MARKET);
}

/// Three timestamps of asset 0 at a flat `price`.
fn flat_asset(price: f64, n: i64) -> MarketData {
    let rows: Vec<Row> = (0..n).map(|t| flat(t, 0, price)).collect();
    market(&rows, 1, &[])
}

#[test]
fn max_position_size_in_shares() {
    // Cap 100 shares. t0: buy 150 -> 100 (50 rejected). t1: buy 30 while holding 100 ->
    // rejected. t2: sell 250: the closing 100 is free, the opening 150 short is cut to 100 (50
    // rejected, signed -50): -200 fills at t3, leaving -100.
    let data = flat_asset(100.0, 4);
    let script = vec![
        (0, Cmd::Submit(0, 150.0)),
        (1, Cmd::Submit(0, 30.0)),
        (2, Cmd::Submit(0, -250.0)),
    ];
    let rule = boxed(MaxPositionSize::new(PositionLimit::Shares(100.0)).unwrap());
    let o = run_rules(&data, script, &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[0], 1, BUY, 100.0, 100.0, MARKET);
    assert_fill(&o.fills[1], 3, SELL, 200.0, 100.0, MARKET);
    assert_eq!(
        o.cuts(),
        vec![
            (0, 0, 50.0, REJECT_RISK_LIMIT),
            (1, 0, 30.0, REJECT_RISK_LIMIT),
            (2, 0, -50.0, REJECT_RISK_LIMIT),
        ]
    );
}

#[test]
fn max_position_size_in_notional() {
    // Cap 5000 at the last close 100: 50 shares. A target value of 8000 (80 shares) is cut to
    // 50 (30 rejected).
    let data = flat_asset(100.0, 2);
    let rule = boxed(MaxPositionSize::new(PositionLimit::Notional(5_000.0)).unwrap());
    let o = run_rules(
        &data,
        vec![(0, Cmd::TargetValue(0, 8_000.0))],
        &config(),
        vec![rule],
    );
    assert_fill(&o.fills[0], 1, BUY, 50.0, 100.0, MARKET);
    assert_eq!(o.cuts(), vec![(0, 0, 30.0, REJECT_RISK_LIMIT)]);
}

#[test]
fn max_position_size_as_equity_fraction() {
    // Cap 10% of equity 100000 = 10000. A 25% target at 100 (250 shares) is cut to 100 (150
    // rejected). A limit order is valued at its limit: a buy limit at 50 may hold 200 shares,
    // so 300 is cut to 200 (100 rejected); it fills at t1 only if the price reaches 50 — it
    // does not here, so it ends as an end-of-data rejection (reason 2, at its decision time).
    let data = flat_asset(100.0, 2);
    let rule = boxed(MaxPositionSize::new(PositionLimit::EquityFraction(0.10)).unwrap());
    let o = run_rules(
        &data,
        vec![(0, Cmd::TargetPercent(0, 0.25))],
        &config(),
        vec![rule],
    );
    assert_fill(&o.fills[0], 1, BUY, 100.0, 100.0, MARKET);
    assert_eq!(o.cuts(), vec![(0, 0, 150.0, REJECT_RISK_LIMIT)]);

    let rule = boxed(MaxPositionSize::new(PositionLimit::EquityFraction(0.10)).unwrap());
    let o = run_rules(
        &data,
        vec![(0, Cmd::Order(limit_order(0, 300.0, 50.0)))],
        &config(),
        vec![rule],
    );
    assert!(o.fills.is_empty());
    assert_eq!(
        o.cuts(),
        vec![(0, 0, 100.0, REJECT_RISK_LIMIT), (0, 0, 200.0, 2)]
    );
}

#[test]
fn max_positions_counts_open_and_opening_positions() {
    // At most 2 positions. t0: assets 0 and 1 open; asset 2 is the third -> rejected. t1:
    // adding to asset 0 is fine, asset 2 rejected again. t2: asset 0's close is pending but
    // still counts (the check is conservative), so asset 2 is rejected. t3: the close filled at
    // t3's open, 1 position open: asset 2 is accepted and fills at t4.
    let rows: Vec<Row> = (0..5)
        .flat_map(|t| [flat(t, 0, 100.0), flat(t, 1, 50.0), flat(t, 2, 20.0)])
        .collect();
    let data = market(&rows, 3, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (0, Cmd::Submit(1, 10.0)),
        (0, Cmd::Submit(2, 10.0)),
        (1, Cmd::Submit(0, 5.0)),
        (1, Cmd::Submit(2, 10.0)),
        (2, Cmd::Close(0)),
        (2, Cmd::Submit(2, 10.0)),
        (3, Cmd::Submit(2, 10.0)),
    ];
    let rule = boxed(MaxPositions::new(2).unwrap());
    let o = run_rules(&data, script, &config(), vec![rule]);
    assert_eq!(
        o.cuts(),
        vec![
            (0, 2, 10.0, REJECT_RISK_LIMIT),
            (1, 2, 10.0, REJECT_RISK_LIMIT),
            (2, 2, 10.0, REJECT_RISK_LIMIT),
        ]
    );
    let a0 = o.fills_of(0);
    assert_eq!(a0.len(), 3);
    assert_fill(&a0[1], 2, BUY, 5.0, 100.0, MARKET);
    assert_fill(&a0[2], 3, SELL, 15.0, 100.0, MARKET);
    assert_fill(&o.fills_of(2)[0], 4, BUY, 10.0, 20.0, MARKET);
}

#[test]
fn max_gross_exposure_counts_both_sides() {
    // Gross at most 1.0 x equity 100000. t0: long 600 x 100 = 60000 fits; a short of 600 x 100
    // has room for (100000 - 60000) / 100 = 400: cut to -400 (-200 rejected). t1: gross is
    // 100000: another long share is rejected; selling 100 of asset 0 is closing only: allowed.
    let rows: Vec<Row> = (0..3)
        .flat_map(|t| [flat(t, 0, 100.0), flat(t, 1, 100.0)])
        .collect();
    let data = market(&rows, 2, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 600.0)),
        (0, Cmd::Submit(1, -600.0)),
        (1, Cmd::Submit(0, 1.0)),
        (1, Cmd::Submit(0, -100.0)),
    ];
    let rule = boxed(MaxGrossExposure::new(1.0).unwrap());
    let o = run_rules(&data, script, &config(), vec![rule]);
    assert_fill(&o.fills_of(0)[0], 1, BUY, 600.0, 100.0, MARKET);
    assert_fill(&o.fills_of(1)[0], 1, SELL, 400.0, 100.0, MARKET);
    assert_fill(&o.fills_of(0)[1], 2, SELL, 100.0, 100.0, MARKET);
    assert_eq!(
        o.cuts(),
        vec![
            (0, 1, -200.0, REJECT_RISK_LIMIT),
            (1, 0, 1.0, REJECT_RISK_LIMIT)
        ]
    );
}

#[test]
fn max_net_exposure_lets_orders_toward_zero_through() {
    // |net| at most 0.5 x 100000 = 50000, all prices 100. t0: long 400 (net 40000) fits; long
    // 300 has room for 100 (200 rejected), net 50000; short 800 goes toward zero and may reach
    // -50000: room (50000 + 50000) / 100 = 1000, accepted whole: net -30000.
    // t1: another short 300 on the short side has room (50000 - 30000) / 100 = 200 (-100
    // rejected).
    let rows: Vec<Row> = (0..3)
        .flat_map(|t| [flat(t, 0, 100.0), flat(t, 1, 100.0), flat(t, 2, 100.0)])
        .collect();
    let data = market(&rows, 3, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 400.0)),
        (0, Cmd::Submit(1, 300.0)),
        (0, Cmd::Submit(2, -800.0)),
        (1, Cmd::Submit(2, -300.0)),
    ];
    let rule = boxed(MaxNetExposure::new(0.5).unwrap());
    let o = run_rules(&data, script, &config(), vec![rule]);
    assert_fill(&o.fills_of(0)[0], 1, BUY, 400.0, 100.0, MARKET);
    assert_fill(&o.fills_of(1)[0], 1, BUY, 100.0, 100.0, MARKET);
    assert_fill(&o.fills_of(2)[0], 1, SELL, 800.0, 100.0, MARKET);
    assert_fill(&o.fills_of(2)[1], 2, SELL, 200.0, 100.0, MARKET);
    assert_eq!(
        o.cuts(),
        vec![
            (0, 1, 200.0, REJECT_RISK_LIMIT),
            (1, 2, -100.0, REJECT_RISK_LIMIT)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Portfolio halts
// ---------------------------------------------------------------------------------------------

/// Asset 0: 100, 100, 88, 100, 101 (1000 shares bought at t1 are the whole 100k); asset 1 a
/// flat 10.
fn drawdown_data() -> MarketData {
    let closes = [100.0, 100.0, 88.0, 100.0, 101.0];
    let rows: Vec<Row> = closes
        .iter()
        .enumerate()
        .flat_map(|(t, &c)| [flat(t as i64, 0, c), flat(t as i64, 1, 10.0)])
        .collect();
    market(&rows, 2, &[])
}

#[test]
fn max_drawdown_halt_blocks_entries_for_the_rest_of_the_run() {
    // t1: 1000 @ 100 (cash 0); 5 of asset 1 bought at t1 fill at t2 @ 10 (cash -50).
    // t2 close: equity -50 + 88000 + 50 = 88000, 12% below the peak 100000 >= 10%: halted.
    // Entries at t2 and t3 are rejected, although at t3 equity is back at the peak; the close of
    // asset 0 at t3 is allowed (closing) and fills at t4 @ 101.
    let script = vec![
        (0, Cmd::Submit(0, 1000.0)),
        (1, Cmd::Submit(1, 5.0)),
        (2, Cmd::Submit(1, 10.0)),
        (3, Cmd::Submit(1, 10.0)),
        (3, Cmd::Close(0)),
    ];
    let rule = boxed(MaxDrawdownHalt::new(0.10, false).unwrap());
    let o = run_rules(&drawdown_data(), script, &config(), vec![rule]);
    assert_eq!(
        o.cuts(),
        vec![
            (2, 1, 10.0, REJECT_RISK_LIMIT),
            (3, 1, 10.0, REJECT_RISK_LIMIT)
        ]
    );
    assert_close(o.equity[2].equity, 88_000.0, "equity at t2");
    let a0 = o.fills_of(0);
    assert_eq!(a0.len(), 2);
    assert_fill(&a0[1], 4, SELL, 1000.0, 101.0, MARKET);
    assert_closed(&o.trades_of(0)[0], 4, 101.0, 1000.0, SIGNAL);
}

#[test]
fn max_drawdown_halt_liquidates() {
    // Halted at t2's close (12% drawdown): both positions exit at t3's open, recorded as
    // risk_limit. Asset 0: 1000 x (100 - 100) = 0; asset 1: 5 x 0 = 0. New entries stay blocked.
    let script = vec![
        (0, Cmd::Submit(0, 1000.0)),
        (1, Cmd::Submit(1, 5.0)),
        (3, Cmd::Submit(1, 10.0)),
    ];
    let rule = boxed(MaxDrawdownHalt::new(0.10, true).unwrap());
    let o = run_rules(&drawdown_data(), script, &config(), vec![rule]);
    assert_fill(&o.fills_of(0)[1], 3, SELL, 1000.0, 100.0, MARKET);
    assert_fill(&o.fills_of(1)[1], 3, SELL, 5.0, 10.0, MARKET);
    assert_closed(&o.trades_of(0)[0], 3, 100.0, 0.0, RISK_LIMIT);
    assert_closed(&o.trades_of(1)[0], 3, 10.0, 0.0, RISK_LIMIT);
    assert_eq!(o.fills.len(), 4);
    assert_eq!(o.cuts(), vec![(3, 1, 10.0, REJECT_RISK_LIMIT)]);
}

/// Hourly bars over two UTC days: day 0 at 0h, 1h, 2h, 3h; day 1 at 0h, 1h. Asset 0 closes
/// 100, 100, 94, 96, 96, 97; asset 1 a flat 50.
fn daily_data() -> MarketData {
    let times = [0, HOUR, 2 * HOUR, 3 * HOUR, DAY, DAY + HOUR];
    let closes = [100.0, 100.0, 94.0, 96.0, 96.0, 97.0];
    let rows: Vec<Row> = times
        .iter()
        .zip(closes)
        .flat_map(|(&t, c)| [flat(t, 0, c), flat(t, 1, 50.0)])
        .collect();
    market(&rows, 2, &[])
}

#[test]
fn daily_loss_limit_halts_until_the_next_day() {
    // 1000 of asset 0 @ 100 at 1h. Day 0 starts at 100000; at 2h equity is 94000: 6% lost >= 5%:
    // entries rejected at 2h and at 3h (equity back to 96000, 4% down, but the day is halted).
    // Day 1 starts from the last close of day 0 (96000); at 24h equity is 96000: no loss, the
    // entry is accepted and fills at 25h @ 50.
    let script = vec![
        (0, Cmd::Submit(0, 1000.0)),
        (2, Cmd::Submit(1, 10.0)),
        (3, Cmd::Submit(1, 10.0)),
        (4, Cmd::Submit(1, 10.0)),
    ];
    let rule = boxed(DailyLossLimit::new(0.05, false).unwrap());
    let o = run_rules(&daily_data(), script, &config(), vec![rule]);
    assert_eq!(
        o.cuts(),
        vec![
            (2 * HOUR, 1, 10.0, REJECT_RISK_LIMIT),
            (3 * HOUR, 1, 10.0, REJECT_RISK_LIMIT)
        ]
    );
    let a1 = o.fills_of(1);
    assert_eq!(a1.len(), 1);
    assert_fill(&a1[0], DAY + HOUR, BUY, 10.0, 50.0, MARKET);
    // Asset 0 is still held (no liquidation).
    assert!(o.trades_of(0)[0].open);
}

#[test]
fn daily_loss_limit_liquidates() {
    // Same path with liquidation: the halt at 2h queues the exit of asset 0, filled at 3h's
    // open @ 96: 1000 x (96 - 100) = -4000, risk_limit.
    let rule = boxed(DailyLossLimit::new(0.05, true).unwrap());
    let o = run_rules(&daily_data(), enter(1000.0), &config(), vec![rule]);
    assert_eq!(o.fills.len(), 2);
    assert_fill(&o.fills[1], 3 * HOUR, SELL, 1000.0, 96.0, MARKET);
    assert_closed(&o.trades[0], 3 * HOUR, 96.0, -4000.0, RISK_LIMIT);
}

// ---------------------------------------------------------------------------------------------
// Composition
// ---------------------------------------------------------------------------------------------

#[test]
fn regime_rule_switches_rule_sets_on_a_market_feature() {
    // VIX below 30: a 10% stop, full sizes. VIX >= 30: half sizes and a 2% stop.
    // t0 (VIX 20): buy 100 of asset 0, accepted whole; entry @ 100 at t1, stop 90 (VIX 20).
    // t2 (VIX 35): t2's low 97 is above 90; at the close the stop becomes 98; a buy of 100 of
    // asset 1 is halved to 50 (50 rejected).
    // t3: open 99, 0.5 to the high, 2 to the low: path 99 -> 99.5 -> 97 crosses 98: sell @ 98.
    let vix = [20.0, 20.0, 35.0, 35.0];
    let a0 = [
        flat(0, 0, 100.0),
        flat(1, 0, 100.0),
        bar(2, 0, 99.0, 99.0, 97.0, 98.5),
        bar(3, 0, 99.0, 99.5, 97.0, 97.5),
    ];
    let rows: Vec<Row> = a0
        .iter()
        .zip(vix)
        .flat_map(|(r, v)| [r.clone().feat(&[v]), flat(r.ts, 1, 50.0).feat(&[v])])
        .collect();
    let data = market(&rows, 2, &["vix"]);
    let regime = RegimeRule::new(
        "vix",
        30.0,
        vec![boxed(ScaleSize::new(0.5).unwrap()), stop_pct(0.02)],
        vec![stop_pct(0.10)],
    )
    .unwrap();
    let script = vec![(0, Cmd::Submit(0, 100.0)), (2, Cmd::Submit(1, 100.0))];
    let o = run_rules(&data, script, &config(), vec![boxed(regime)]);
    assert_fill(&o.fills_of(0)[0], 1, BUY, 100.0, 100.0, MARKET);
    assert_fill(&o.fills_of(0)[1], 3, SELL, 100.0, 98.0, STOP);
    assert_fill(&o.fills_of(1)[0], 3, BUY, 50.0, 50.0, MARKET);
    assert_eq!(o.cuts(), vec![(2, 1, 50.0, REJECT_RISK_LIMIT)]);
}

/// Entry @ 100, then a dip to 94 (t2) and a rally to 111 (t3).
fn dip_then_rally() -> MarketData {
    entered_at_100(&[
        bar(2, 0, 99.0, 99.0, 94.0, 96.0),
        bar(3, 0, 100.0, 111.0, 99.5, 108.0),
    ])
}

#[test]
fn any_of_merges_every_rule() {
    // Stops at 95 (5%) and 98 (100 - 2): the tighter 98 wins; target 110. t2: path 99 -> 99 ->
    // 94 crosses 98: sell @ 98.
    let group = AnyOf::new(vec![
        stop_pct(0.05),
        target_pct(0.10),
        boxed(StopLoss::new(Distance::Absolute(2.0)).unwrap()),
    ])
    .unwrap();
    let o = run_rules(
        &dip_then_rally(),
        enter(10.0),
        &config(),
        vec![boxed(group)],
    );
    assert_eq!(o.fills.len(), 2);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 98.0, STOP);
    assert_closed(&o.trades[0], 2, 98.0, -20.0, STOP_LOSS);
}

#[test]
fn rule_chain_lets_the_first_triggered_rule_decide() {
    // Chain [take profit 10%, stop 5%]: the take profit always triggers, so the stop is never
    // consulted: no exit in t2's dip to 94. t3: path 100 -> 99.5 -> 111 reaches 110: sell @ 110.
    let chain = RuleChain::new(vec![target_pct(0.10), stop_pct(0.05)]).unwrap();
    let o = run_rules(
        &dip_then_rally(),
        enter(10.0),
        &config(),
        vec![boxed(chain)],
    );
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 10.0, 110.0, LIMIT);
    assert_closed(&o.trades[0], 3, 110.0, 100.0, TAKE_PROFIT);
}

#[test]
fn all_of_acts_only_when_every_rule_triggers() {
    // AllOf [time exit after 2 bars, breakeven at 5% MFE]: the exit (the first rule's decision)
    // only once both trigger; the breakeven stop itself is not applied.
    let rule = || {
        boxed(
            AllOf::new(vec![
                boxed(TimeExit::new(Some(2), None).unwrap()),
                boxed(BreakevenStop::new(0.05, 0.0).unwrap()),
            ])
            .unwrap(),
        )
    };
    // t2 closes at 106 (MFE 6%). t3: bars held 2 and MFE >= 5%: exit at t4's open @ 102. t3's low
    // 99 is below the entry but no breakeven stop is live.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 107.0, 100.5, 106.0),
        bar(3, 0, 105.0, 105.0, 99.0, 101.0),
        flat(4, 0, 102.0),
    ]);
    let o = run_rules(&data, enter(10.0), &config(), vec![rule()]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 4, SELL, 10.0, 102.0, MARKET);
    assert_closed(&o.trades[0], 4, 102.0, 20.0, TIME_EXIT);

    // t2 closes at 103 (MFE 3%): the breakeven never triggers, so no time exit either.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 104.0, 100.5, 103.0),
        bar(3, 0, 102.0, 103.0, 99.0, 101.0),
        flat(4, 0, 102.0),
    ]);
    let o = run_rules(&data, enter(10.0), &config(), vec![rule()]);
    assert_eq!(o.fills.len(), 1);
    assert!(o.trades[0].open);
}

#[test]
fn for_assets_scopes_a_rule() {
    // A 5% stop for asset 1 only and a 5-share cap for asset 0 only. Both assets dip to 94 at t2
    // (path 99 -> 99 -> 94): asset 1 exits @ 95, asset 0 (no stop) stays. Asset 0's order for 10
    // is cut to 5; asset 1's is whole.
    let bars = [
        flat(0, 0, 100.0),
        flat(1, 0, 100.0),
        bar(2, 0, 99.0, 99.0, 94.0, 96.0),
    ];
    let data = two_alike(&bars);
    let rules = vec![
        boxed(ForAssets::new(vec![1], stop_pct(0.05)).unwrap()),
        boxed(
            ForAssets::new(
                vec![0],
                boxed(MaxPositionSize::new(PositionLimit::Shares(5.0)).unwrap()),
            )
            .unwrap(),
        ),
    ];
    let script = vec![(0, Cmd::Submit(0, 10.0)), (0, Cmd::Submit(1, 10.0))];
    let o = run_rules(&data, script, &config(), rules);
    assert_eq!(o.fills_of(0).len(), 1);
    assert_fill(&o.fills_of(0)[0], 1, BUY, 5.0, 100.0, MARKET);
    assert_fill(&o.fills_of(1)[1], 2, SELL, 10.0, 95.0, STOP);
    assert_eq!(o.cuts(), vec![(0, 0, 5.0, REJECT_RISK_LIMIT)]);
    assert!(o.trades_of(0)[0].open);
    assert_closed(&o.trades_of(1)[0], 2, 95.0, -50.0, STOP_LOSS);
}

// ---------------------------------------------------------------------------------------------
// Fill mechanics: gaps, conflicts, ties, shorts, basis, cancellation, same close, rounding
// ---------------------------------------------------------------------------------------------

#[test]
fn stops_gap_at_the_open_and_targets_fill_at_a_better_open() {
    // Stop 5%, target 10%. Asset 0 long (stop 95) opens at 90: sells at the open 90. Asset 1
    // short (stop 105) opens at 110: buys at the open 110. Asset 2 long (target 110) opens at
    // 112: sells at the better open 112.
    let rows: Vec<Row> = vec![
        flat(0, 0, 100.0),
        flat(0, 1, 100.0),
        flat(0, 2, 100.0),
        flat(1, 0, 100.0),
        flat(1, 1, 100.0),
        flat(1, 2, 100.0),
        bar(2, 0, 90.0, 92.0, 89.0, 91.0),
        bar(2, 1, 110.0, 111.0, 108.0, 109.0),
        bar(2, 2, 112.0, 113.0, 111.0, 112.0),
    ];
    let data = market(&rows, 3, &[]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (0, Cmd::Submit(1, -10.0)),
        (0, Cmd::Submit(2, 10.0)),
    ];
    let rules = || vec![stop_pct(0.05), target_pct(0.10)];
    let o = run_rules(&data, script.clone(), &config(), rules());
    assert_fill(&o.fills_of(0)[1], 2, SELL, 10.0, 90.0, STOP);
    assert_eq!(o.fills_of(0)[1].reference_price, 90.0);
    assert_fill(&o.fills_of(1)[1], 2, BUY, 10.0, 110.0, STOP);
    assert_fill(&o.fills_of(2)[1], 2, SELL, 10.0, 112.0, LIMIT);
    assert_closed(&o.trades_of(0)[0], 2, 90.0, -100.0, STOP_LOSS);
    assert_closed(&o.trades_of(1)[0], 2, 110.0, -100.0, STOP_LOSS);
    assert_closed(&o.trades_of(2)[0], 2, 112.0, 120.0, TAKE_PROFIT);

    // With a fixed slippage of 0.5 the gapped stops slip from the open (90 -> 89.5, 110 ->
    // 110.5, both inside their bars); the target is a limit and does not. (The entries' slipped
    // prices are clamped into their flat bars: 100, so the levels do not move.)
    let cfg = with_slippage(config(), SlippageModel::Fixed { amount: 0.5 });
    let o = run_rules(&data, script, &cfg, rules());
    assert_fill(&o.fills_of(0)[1], 2, SELL, 10.0, 89.5, STOP);
    assert_eq!(o.fills_of(0)[1].reference_price, 90.0);
    assert_fill(&o.fills_of(1)[1], 2, BUY, 10.0, 110.5, STOP);
    assert_fill(&o.fills_of(2)[1], 2, SELL, 10.0, 112.0, LIMIT);
}

#[test]
fn stop_and_target_in_one_bar_follow_the_path_policy() {
    // Stop 95, target 110 for both assets; t2 reaches both levels.
    // Asset 0: open 100, low 94 (6 away), high 111 (11 away): ohlc goes to the low first -> stop.
    // Asset 1: open 100, low 88 (12 away), high 111 (11 away): ohlc goes to the high first ->
    // target. Pessimistic (low first for a long) stops both; optimistic takes profit on both.
    let rows: Vec<Row> = vec![
        flat(0, 0, 100.0),
        flat(0, 1, 100.0),
        flat(1, 0, 100.0),
        flat(1, 1, 100.0),
        bar(2, 0, 100.0, 111.0, 94.0, 105.0),
        bar(2, 1, 100.0, 111.0, 88.0, 105.0),
    ];
    let data = market(&rows, 2, &[]);
    let script = vec![(0, Cmd::Submit(0, 10.0)), (0, Cmd::Submit(1, 10.0))];
    let exits = |policy: PathPolicy| {
        let cfg = EngineConfig {
            path_policy: policy,
            ..config()
        };
        let o = run_rules(
            &data,
            script.clone(),
            &cfg,
            vec![stop_pct(0.05), target_pct(0.10)],
        );
        [0, 1].map(|a| {
            let t = o.trades_of(a)[0];
            (t.exit_price, t.exit_reason)
        })
    };
    assert_eq!(
        exits(PathPolicy::OhlcWalk),
        [(95.0, STOP_LOSS), (110.0, TAKE_PROFIT)]
    );
    assert_eq!(
        exits(PathPolicy::Pessimistic),
        [(95.0, STOP_LOSS), (95.0, STOP_LOSS)]
    );
    assert_eq!(
        exits(PathPolicy::Optimistic),
        [(110.0, TAKE_PROFIT), (110.0, TAKE_PROFIT)]
    );
}

#[test]
fn a_stop_beats_a_trailing_stop_at_the_same_path_time() {
    // Stop 95 and an intrabar 10% trailing stop (level 90 from the mark 100). t2 opens at 85,
    // through both: both trigger at path time 0 at the open. The stop wins the tie.
    let data = entered_at_100(&[bar(2, 0, 85.0, 86.0, 84.0, 85.5)]);
    let rules = vec![
        trailing(0.10, TrailMark::Extreme, TrailUpdate::Intrabar),
        stop_pct(0.05),
    ];
    let o = run_rules(&data, enter(10.0), &config(), rules);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 85.0, STOP);
    assert_closed(&o.trades[0], 2, 85.0, -150.0, STOP_LOSS);
}

#[test]
fn short_trailing_stop_and_take_profit() {
    // Short 10 @ 100, trailing 5% above the lowest low (lagged). After t1: 105. t2's low 90:
    // level 94.5 from t3. t3: open 92, 0.5 to the low, 3 to the high: path 92 -> 91.5 -> 95
    // crosses 94.5: buy @ 94.5, PnL 10 x 5.5 = 55.
    let data = entered_at_100(&[
        bar(2, 0, 98.0, 98.5, 90.0, 91.0),
        bar(3, 0, 92.0, 95.0, 91.5, 94.0),
    ]);
    let rule = trailing(0.05, TrailMark::Extreme, TrailUpdate::Lagged);
    let o = run_rules(&data, enter(-10.0), &config(), vec![rule]);
    assert_fill(&o.fills[1], 3, BUY, 10.0, 94.5, STOP);
    assert_closed(&o.trades[0], 3, 94.5, 55.0, TRAILING_STOP);

    // A 10% target on the short is 90: t2 opens at 98 and reaches 90 at its low: buy @ 90.
    let o = run_rules(&data, enter(-10.0), &config(), vec![target_pct(0.10)]);
    assert_fill(&o.fills[1], 2, BUY, 10.0, 90.0, LIMIT);
    assert_closed(&o.trades[0], 2, 90.0, 100.0, TAKE_PROFIT);
}

#[test]
fn signal_close_basis_versus_fill_basis() {
    // Decision at t0's close 100; the entry fills at t1's open 102. Stop 5%:
    //   fill basis 102 -> 96.9: t2 (open 97, path 97 -> 97.5 -> 96) crosses it: sell @ 96.9;
    //   signal-close basis 100 -> 95: t2's low 96 stays above; t3 (path 95.5 -> 96 -> 94)
    //   crosses 95: sell @ 95.
    let rows = vec![
        flat(0, 0, 100.0),
        bar(1, 0, 102.0, 102.0, 101.0, 101.5),
        bar(2, 0, 97.0, 97.5, 96.0, 96.5),
        bar(3, 0, 95.5, 96.0, 94.0, 94.5),
    ];
    let data = market(&rows, 1, &[]);
    let with_basis = |stop_basis: StopBasis| EngineConfig {
        stop_basis,
        ..config()
    };
    let o = run_rules(
        &data,
        enter(10.0),
        &with_basis(StopBasis::Fill),
        vec![stop_pct(0.05)],
    );
    assert_fill(&o.fills[1], 2, SELL, 10.0, 96.9, STOP);
    let o = run_rules(
        &data,
        enter(10.0),
        &with_basis(StopBasis::SignalClose),
        vec![stop_pct(0.05)],
    );
    assert_fill(&o.fills[1], 3, SELL, 10.0, 95.0, STOP);
    // PnL is always against the fill: 10 x (95 - 102) = -70.
    assert_closed(&o.trades[0], 3, 95.0, -70.0, STOP_LOSS);
}

#[test]
fn orders_at_the_open_fill_before_a_stop_reached_later_in_the_bar() {
    // Long 10 @ 100 with a 5% stop (95). At t1 the strategy queues a close (market sell 10 for
    // t2's open) and a market buy of 5.
    // t2: path 97 -> 97 -> 94 -> 96. Along the path the open comes first: the close sells 10 @
    // 97 (an exit, first), the buy opens a new position of 5 @ 97. The stop is reached later
    // (between 97 and 94) but the position it protected is gone; the new one has no levels
    // before its first close: no stop fill.
    let data = entered_at_100(&[
        bar(2, 0, 97.0, 97.0, 94.0, 96.0),
        bar(3, 0, 96.0, 97.0, 95.5, 96.5),
    ]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Close(0)),
        (1, Cmd::Submit(0, 5.0)),
    ];
    let o = run_rules(&data, script, &config(), vec![stop_pct(0.05)]);
    assert_eq!(o.fills.len(), 3, "{:?}", o.fills);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 97.0, MARKET);
    assert_fill(&o.fills[2], 2, BUY, 5.0, 97.0, MARKET);
    assert_closed(&o.trades[0], 2, 97.0, -30.0, SIGNAL);
    // The new position's stop, 95% of 97 = 92.15, is not reached at t3 (low 95.5).
    assert!(o.trades[1].open);
    // Cash 100000 - 1000 + 970 - 485 = 99485, plus 5 x 96.5.
    assert_close(o.final_equity(), 99_485.0 + 482.5, "final equity");
}

#[test]
fn a_gap_through_the_stop_fills_after_the_book_exit_at_the_open() {
    // Long 10 @ 100, stop 95. At t1 the strategy sells 20 to go short 10. t2 opens at 93, below
    // the stop: both the sell and the gapped stop execute at the open (path time 0). At equal
    // times exits go first, and the sell of 20 is not an exit (it crosses zero): the stop sells
    // 10 @ 93, then the pending sell gives up the 10 shares the stop already sold and its other
    // 10 fill @ 93: short 10, as the strategy aimed.
    let data = entered_at_100(&[bar(2, 0, 93.0, 94.0, 92.0, 93.5)]);
    let script = vec![(0, Cmd::Submit(0, 10.0)), (1, Cmd::Submit(0, -20.0))];
    let o = run_rules(&data, script, &config(), vec![stop_pct(0.05)]);
    assert_eq!(o.fills.len(), 3, "{:?}", o.fills);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 93.0, STOP);
    assert_fill(&o.fills[2], 2, SELL, 10.0, 93.0, MARKET);
    assert_closed(&o.trades[0], 2, 93.0, -70.0, STOP_LOSS);
    // The short is open at the end: 10 x (93 - 93.5) unrealised.
    assert!(o.trades[1].open && !o.trades[1].long);
    assert_close(o.trades[1].gross_pnl, -5.0, "open short pnl");
}

#[test]
fn a_level_exit_cuts_resting_orders_that_would_sell_past_flat() {
    // Long 10 @ 100, stop 95. At t1 the strategy rests a limit sell of 10 at 100 (a "sell on
    // a bounce") that the bar reaches only after the stop.
    // t2: path 97 -> 94 (low first: 3 below the open vs 4 above) -> 101 -> 96: the stop is
    // crossed on the way down (sell 10 @ 95, flat); the limit at 100 would be reached on the
    // way up, but it was meant to reduce a position that is gone: it is cancelled, not filled
    // into a short.
    let data = entered_at_100(&[bar(2, 0, 97.0, 101.0, 94.0, 96.0)]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (1, Cmd::Order(limit_order(0, -10.0, 100.0))),
    ];
    let o = run_rules(&data, script, &config(), vec![stop_pct(0.05)]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 95.0, STOP);
    assert_closed(&o.trades[0], 2, 95.0, -50.0, STOP_LOSS);
    let held: f64 = o.fills.iter().map(FillRow::signed).sum();
    assert_eq!(held, 0.0);
}

#[test]
fn a_partial_level_exit_cuts_a_resting_order_to_the_position_left() {
    // Scaled exit: half at +5% (105), the rest at +50%. Long 100 @ 100. At t2 the strategy rests
    // a limit sell of 100 at 105.5.
    // t3: path 101 -> 100.5 -> 106 -> 104: 105 comes first: sell 50 @ 105 (limit-like). The
    // resting sell of 100 would fill at 105.5 later on the same leg; it is cut to the 50 shares
    // left and sells them @ 105.5: flat, not short 50.
    let bars = [
        flat(0, 0, 100.0),
        flat(1, 0, 100.0),
        flat(2, 0, 100.0),
        bar(3, 0, 101.0, 106.0, 100.5, 104.0),
        flat(4, 0, 104.0),
    ];
    let data = market(&bars, 1, &[]);
    let rules = vec![boxed(
        ScaledExit::new(vec![(0.05, 0.5), (0.5, 1.0)]).unwrap(),
    )];
    let script = vec![
        (0, Cmd::Submit(0, 100.0)),
        (2, Cmd::Order(limit_order(0, -100.0, 105.5))),
    ];
    let o = run_rules(&data, script, &config(), rules);
    assert_eq!(o.fills.len(), 3, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 50.0, 105.0, LIMIT);
    assert_fill(&o.fills[2], 3, SELL, 50.0, 105.5, LIMIT);
    // Mean exit (50 x 105 + 50 x 105.5) / 100 = 105.25; PnL 525; the last fill is the
    // strategy's order.
    assert_closed(&o.trades[0], 3, 105.25, 525.0, SIGNAL);
    let held: f64 = o.fills.iter().map(FillRow::signed).sum();
    assert_eq!(held, 0.0);
}

#[test]
fn same_close_mode_sets_levels_at_the_entry_close_and_exits_at_this_close() {
    // Same close: entries fill at t0's close (asset 0 @ 100, asset 1 @ 50) and get their levels
    // right away: stops 95 and 47.5, live from t1.
    // t1: asset 0's path 99 -> 99 -> 94 crosses 95: sell @ 95.
    // Asset 1 is held 2 bars at t2: the time exit fills at t2's own close, 51.
    let rows = vec![
        flat(0, 0, 100.0),
        flat(0, 1, 50.0),
        bar(1, 0, 99.0, 99.0, 94.0, 96.0),
        flat(1, 1, 50.0),
        flat(2, 0, 96.0),
        flat(2, 1, 51.0),
        flat(3, 0, 96.0),
        flat(3, 1, 52.0),
    ];
    let data = market(&rows, 2, &[]);
    let rules = vec![stop_pct(0.05), boxed(TimeExit::new(Some(2), None).unwrap())];
    let script = vec![(0, Cmd::Submit(0, 10.0)), (0, Cmd::Submit(1, 10.0))];
    let o = run_rules(&data, script, &same_close(), rules);
    assert_fill(&o.fills_of(0)[0], 0, BUY, 10.0, 100.0, MARKET);
    assert_fill(&o.fills_of(0)[1], 1, SELL, 10.0, 95.0, STOP);
    assert_fill(&o.fills_of(1)[1], 2, SELL, 10.0, 51.0, MARKET);
    assert_closed(&o.trades_of(1)[0], 2, 51.0, 10.0, TIME_EXIT);

    // A drawdown halt with liquidation exits at the close that trips it: 1000 @ 100 at t0's
    // close, t1 closes at 88 (12% down): sold @ 88 at t1's close.
    let rows = vec![flat(0, 0, 100.0), flat(1, 0, 88.0), flat(2, 0, 90.0)];
    let data = market(&rows, 1, &[]);
    let rule = boxed(MaxDrawdownHalt::new(0.10, true).unwrap());
    let o = run_rules(&data, enter(1000.0), &same_close(), vec![rule]);
    assert_fill(&o.fills[1], 1, SELL, 1000.0, 88.0, MARKET);
    assert_closed(&o.trades[0], 1, 88.0, -12_000.0, RISK_LIMIT);
}

#[test]
fn integer_rounding_of_partial_exits_and_cuts() {
    // 101 shares, scaled exit half at +5%: trunc(50.5) = 50 @ 105 at t2, the other 51 @ 110 at
    // t3.
    let data = entered_at_100(&[
        bar(2, 0, 101.0, 106.0, 100.5, 104.0),
        bar(3, 0, 108.0, 112.0, 107.0, 111.0),
    ]);
    let scaled = || boxed(ScaledExit::new(vec![(0.05, 0.5), (0.10, 1.0)]).unwrap());
    let o = run_rules(&data, enter(101.0), &integer(), vec![scaled()]);
    assert_fill(&o.fills[1], 2, SELL, 50.0, 105.0, LIMIT);
    assert_fill(&o.fills[2], 3, SELL, 51.0, 110.0, LIMIT);

    // One share: half rounds to nothing at +5%; the stage still advances, so the +10% level is
    // live at t3 and takes the share @ 110.
    let o = run_rules(&data, enter(1.0), &integer(), vec![scaled()]);
    assert_eq!(o.fills.len(), 2, "{:?}", o.fills);
    assert_fill(&o.fills[1], 3, SELL, 1.0, 110.0, LIMIT);

    // A notional cap of 1000 at 30 allows 33.3 shares: 33 (7 rejected).
    let data = flat_asset(30.0, 2);
    let rule = boxed(MaxPositionSize::new(PositionLimit::Notional(1_000.0)).unwrap());
    let o = run_rules(&data, enter(40.0), &integer(), vec![rule]);
    assert_fill(&o.fills[0], 1, BUY, 33.0, 30.0, MARKET);
    assert_eq!(o.cuts(), vec![(0, 0, 7.0, REJECT_RISK_LIMIT)]);
}

#[test]
fn day_orders_and_levels_coexist() {
    // A strategy DAY limit buy that expires does not disturb the levels: long 10 @ 100 with a
    // 5% stop; a DAY buy limit at 80 placed at t1 expires at t2 (reason 3); the stop fills at
    // t2 @ 95 regardless.
    let data = entered_at_100(&[bar(2, 0, 99.0, 99.0, 94.0, 96.0)]);
    let script = vec![
        (0, Cmd::Submit(0, 10.0)),
        (
            1,
            Cmd::Order(with_tif(limit_order(0, 10.0, 80.0), TimeInForce::Day)),
        ),
    ];
    let o = run_rules(&data, script, &config(), vec![stop_pct(0.05)]);
    assert_fill(&o.fills[1], 2, SELL, 10.0, 95.0, STOP);
    assert_eq!(o.cuts(), vec![(2, 0, 10.0, 3)]);
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_parameters_are_risk_errors() {
    assert_risk_error(StopLoss::new(Distance::Percent(-0.05)), "stop_loss.pct");
    assert_risk_error(StopLoss::new(Distance::Percent(1.0)), "stop_loss.pct");
    assert_risk_error(StopLoss::new(Distance::Absolute(0.0)), "stop_loss.amount");
    assert_risk_error(
        StopLoss::new(Distance::feature("atr", 0.0)),
        "stop_loss.multiple",
    );
    assert_risk_error(
        TakeProfit::new(Distance::Percent(f64::NAN)),
        "take_profit.pct",
    );
    assert_risk_error(
        TrailingStop::new(
            Distance::Percent(0.05),
            TrailMark::Close,
            TrailUpdate::Intrabar,
        ),
        "trailing_stop.mark",
    );
    assert_risk_error(TimeExit::new(None, None), "time_exit");
    assert_risk_error(TimeExit::new(Some(0), None), "time_exit.max_bars");
    assert_risk_error(TimeExit::new(None, Some(-5)), "time_exit.max_duration");
    assert_risk_error(BreakevenStop::new(0.05, 0.05), "breakeven_stop.offset");
    assert_risk_error(BreakevenStop::new(-0.05, 0.0), "breakeven_stop.trigger");
    assert_risk_error(ScaledExit::new(vec![]), "scaled_exit.levels");
    assert_risk_error(
        ScaledExit::new(vec![(0.1, 0.5), (0.05, 1.0)]),
        "scaled_exit.levels[1].gain",
    );
    assert_risk_error(
        ScaledExit::new(vec![(0.1, 1.5)]),
        "scaled_exit.levels[0].fraction",
    );
    assert_risk_error(
        VolatilityScaledSizing::new("atr", 0.01, 0.0, false),
        "volatility_scaled_sizing.multiple",
    );
    assert_risk_error(
        MaxPositionSize::new(PositionLimit::Shares(-1.0)),
        "max_position_size.shares",
    );
    assert_risk_error(MaxPositions::new(0), "max_positions.max");
    assert_risk_error(MaxGrossExposure::new(0.0), "max_gross_exposure.max");
    assert_risk_error(MaxNetExposure::new(-1.0), "max_net_exposure.max");
    assert_risk_error(
        MaxDrawdownHalt::new(1.5, false),
        "max_drawdown_halt.max_drawdown",
    );
    assert_risk_error(DailyLossLimit::new(0.0, true), "daily_loss_limit.max_loss");
    assert_risk_error(ScaleSize::new(0.0), "scale_size.factor");
    assert_risk_error(RuleChain::new(vec![]), "rule_chain.rules");
    assert_risk_error(AnyOf::new(vec![]), "any_of.rules");
    assert_risk_error(AllOf::new(vec![]), "all_of.rules");
    assert_risk_error(
        RegimeRule::new("vix", f64::NAN, vec![stop_pct(0.05)], vec![]),
        "regime.threshold",
    );
    assert_risk_error(RegimeRule::new("vix", 30.0, vec![], vec![]), "regime");
    assert_risk_error(ForAssets::new(vec![], stop_pct(0.05)), "stop_loss.assets");
}

#[test]
fn a_missing_feature_column_is_a_risk_error_naming_it() {
    let data = flat_asset(100.0, 3);
    let cases: Vec<(BoxedRule, &str)> = vec![
        (
            boxed(StopLoss::new(Distance::feature("atr14", 2.0)).unwrap()),
            "stop_loss.feature",
        ),
        (
            boxed(VolatilityScaledSizing::new("atr14", 0.01, 2.0, false).unwrap()),
            "volatility_scaled_sizing.feature",
        ),
    ];
    for (rule, name) in cases {
        match try_run_rules(&data, enter(10.0), &config(), vec![rule]) {
            Err(BacktestError::Risk { rule, detail }) => {
                assert_eq!(rule, name);
                assert!(detail.contains("'atr14'"), "{detail}");
            }
            Err(other) => panic!("expected a risk error, got {other}"),
            Ok(_) => panic!("expected a risk error for {name}"),
        }
    }
    // A regime on a missing market feature, and the error's message.
    let regime = RegimeRule::new("vix", 30.0, vec![stop_pct(0.05)], vec![]).unwrap();
    let Err(err) = try_run_rules(&data, enter(10.0), &config(), vec![boxed(regime)]) else {
        panic!("a missing feature fails the run");
    };
    assert!(matches!(&err, BacktestError::Risk { rule, .. } if rule == "regime.feature"));
    let message = err.to_string();
    assert!(
        message.starts_with("risk rule regime.feature:") && message.contains("'vix'"),
        "{message}"
    );
}

#[test]
fn orders_waiting_for_a_missing_bar_count_toward_position_and_exposure_limits() {
    // Assets 0 and 1 at 100; asset 1 has no bar at t1. At t0 the strategy buys 500 of asset 1
    // (it waits for asset 1's next bar, t2). At t1 it buys 600 of asset 0.
    // MaxPositions(1): at t1 asset 1's pending buy already takes the slot: asset 0's order is
    // rejected. MaxGrossExposure(1.0) on 100k equity: 500 x 100 = 50k pending leaves room for
    // 500 shares of asset 0 (600 is cut by 100).
    let rows = vec![
        flat(0, 0, 100.0),
        flat(0, 1, 100.0),
        flat(1, 0, 100.0),
        flat(2, 0, 100.0),
        flat(2, 1, 100.0),
        flat(3, 0, 100.0),
        flat(3, 1, 100.0),
    ];
    let data = market(&rows, 2, &[]);
    let script = vec![(0, Cmd::Submit(1, 500.0)), (1, Cmd::Submit(0, 600.0))];
    let count = run_rules(
        &data,
        script.clone(),
        &config(),
        vec![boxed(MaxPositions::new(1).unwrap())],
    );
    assert_eq!(count.rejections.len(), 1, "{:?}", count.rejections);
    assert_eq!(count.rejections[0].asset, 0);
    assert_eq!(count.rejections[0].quantity, 600.0);
    let gross = run_rules(
        &data,
        script,
        &config(),
        vec![boxed(MaxGrossExposure::new(1.0).unwrap())],
    );
    assert_eq!(gross.rejections.len(), 1, "{:?}", gross.rejections);
    assert_eq!(gross.rejections[0].quantity, 100.0);
    let bought: f64 = gross.fills_of(0).iter().map(FillRow::signed).sum();
    assert_eq!(bought, 500.0);
}
