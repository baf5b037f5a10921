//! Property tests of the order types on random bars and random limit / stop / stop-limit /
//! market-on-close / trailing / bracket orders (random time in force, cancels, path policy,
//! limit-fill rule, volume cap and execution mode):
//!
//! - a limit buy never fills above its limit, a limit sell never below (stop-limits and
//!   take-profit legs too);
//! - a stop buy never fills below its stop (a sell never above) unless it gapped, and then it
//!   fills at the open;
//! - at most one leg of a bracket exits (without a volume cap), and legs never sell more than
//!   the entry bought;
//! - the partial fills of an order sum to at most its quantity, with `partial` set on every
//!   fill but a completing one;
//! - every fill lies inside its bar, and no order fills before it is eligible;
//! - cash and positions rebuilt from the fills match the equity curve (equity = cash +
//!   positions);
//! - the order journal holds every order with a history in time order that ends, and fills
//!   that sum to the order's fills (`common::check_journal`).

mod common;

use std::collections::HashMap;

use common::*;
use ml4t_backtest_core::matching::{LimitFill, PathPolicy};
use ml4t_backtest_core::orders::{OrderKind, OrderRequest, TimeInForce};
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{BacktestOutput, EngineConfig, ExecutionMode};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// One bar slot of the generator.
#[derive(Debug, Clone)]
struct Slot {
    present: bool,
    ret: f64,
    gap: f64,
    up: f64,
    down: f64,
    volume: f64,
}

/// One order of the generator, priced relative to the asset's last close at decision time.
#[derive(Debug, Clone)]
struct Spec {
    t: u64,
    asset: u32,
    kind: u8,
    quantity: f64,
    sell: bool,
    offset: f64,
    spread: f64,
    tif: u8,
    cancel: u64,
}

#[derive(Debug, Clone)]
struct Case {
    n_assets: u32,
    rows: Vec<Row>,
    script: Vec<(u64, Cmd)>,
    cfg: EngineConfig,
}

fn slot() -> impl Strategy<Value = Slot> {
    (
        prop::bool::weighted(0.85),
        -0.04f64..0.04,
        prop_oneof![3 => Just(0.0), 1 => -0.03f64..0.03],
        0.0f64..0.03,
        0.0f64..0.03,
        prop_oneof![Just(1_000.0), 20.0f64..3_000.0],
    )
        .prop_map(|(present, ret, gap, up, down, volume)| Slot {
            present,
            ret,
            gap,
            up,
            down,
            volume,
        })
}

fn spec(n_ts: u64, n_assets: u32, kinds: std::ops::Range<u8>) -> impl Strategy<Value = Spec> {
    (
        0..n_ts,
        0..n_assets,
        kinds,
        1u32..300,
        any::<bool>(),
        -0.05f64..0.05,
        -0.01f64..0.04,
        0u8..4,
        1u64..16,
    )
        .prop_map(
            |(t, asset, kind, quantity, sell, offset, spread, tif, cancel)| Spec {
                t,
                asset,
                kind,
                quantity: f64::from(quantity),
                sell,
                offset,
                spread,
                tif,
                cancel,
            },
        )
}

fn engine_config() -> impl Strategy<Value = EngineConfig> {
    (
        any::<bool>(),
        prop_oneof![
            Just(PathPolicy::OhlcWalk),
            Just(PathPolicy::Pessimistic),
            Just(PathPolicy::Optimistic)
        ],
        prop_oneof![
            Just(LimitFill::Touch),
            (0.0f64..0.5).prop_map(LimitFill::ThroughAmount),
            (0.0f64..0.003).prop_map(LimitFill::ThroughFraction),
        ],
        prop_oneof![2 => Just(None), 1 => (0.02f64..0.5).prop_map(Some)],
        prop_oneof![
            2 => Just(SlippageModel::None),
            1 => (0.0f64..0.3).prop_map(|amount| SlippageModel::Fixed { amount }),
        ],
    )
        .prop_map(
            |(same, path_policy, limit_fill, max_volume_fraction, slippage)| EngineConfig {
                execution: if same {
                    ExecutionMode::SameClose
                } else {
                    ExecutionMode::NextOpen
                },
                path_policy,
                limit_fill,
                max_volume_fraction,
                slippage,
                ..EngineConfig::default()
            },
        )
}

/// The request of `spec` around the reference price `p`, or a cancel.
fn command(spec: &Spec, p: f64) -> Cmd {
    let s = if spec.sell { -1.0 } else { 1.0 };
    let q = s * spec.quantity;
    let level = p * (1.0 + spec.offset);
    let band = p * (0.005 + spec.spread.abs());
    let tif = match spec.tif {
        0 => TimeInForce::Day,
        1 => TimeInForce::Ioc,
        _ => TimeInForce::Gtc,
    };
    let request = match spec.kind {
        0 => market_order(spec.asset, q),
        1 | 2 => limit_order(spec.asset, q, level),
        3 => stop_order(spec.asset, q, level),
        // A limit on either side of the stop: some trigger inside it, some arm.
        4 => stop_limit_order(spec.asset, q, level, level * (1.0 + s * spec.spread)),
        5 => moc_order(spec.asset, q),
        6 => trail_amount_order(spec.asset, q, band),
        7 => with_bracket(
            market_order(spec.asset, q),
            Some(p + s * band),
            Some(p - s * band),
        ),
        8 => with_bracket(
            stop_order(spec.asset, q, level),
            Some(level + s * band),
            Some(level - s * band),
        ),
        _ => return Cmd::Cancel(spec.cancel),
    };
    Cmd::Order(with_tif(request, tif))
}

/// Random cases whose orders are of the kinds in `kinds` (see [`command`]).
fn case(kinds: std::ops::Range<u8>) -> impl Strategy<Value = Case> {
    (1u32..=2, 4u64..20).prop_flat_map(move |(n_assets, n_ts)| {
        (
            prop::collection::vec(slot(), (n_ts as usize) * n_assets as usize),
            prop::collection::vec(spec(n_ts, n_assets, kinds.clone()), 0..14),
            engine_config(),
            prop::collection::vec(20.0f64..200.0, n_assets as usize),
        )
            .prop_map(move |(slots, specs, cfg, start)| {
                // Asset 0 trades at every timestamp so the timestamp indexes are 0..n_ts.
                let mut rows = Vec::new();
                let mut price = start.clone();
                let mut last_close: Vec<Vec<Option<f64>>> = vec![Vec::new(); n_assets as usize];
                for t in 0..n_ts as usize {
                    for a in 0..n_assets as usize {
                        let s = &slots[t * n_assets as usize + a];
                        let open = price[a] * (1.0 + s.gap);
                        let close = open * (1.0 + s.ret);
                        price[a] = close;
                        let prev = last_close[a].last().copied().flatten();
                        if a == 0 || s.present {
                            let high = open.max(close) * (1.0 + s.up);
                            let low = open.min(close) * (1.0 - s.down);
                            rows.push(
                                bar(t as i64 + 1, a as u32, open, high, low, close).vol(s.volume),
                            );
                            last_close[a].push(Some(close));
                        } else {
                            last_close[a].push(prev);
                        }
                    }
                }
                let mut specs = specs;
                specs.sort_by_key(|s| s.t);
                let script = specs
                    .iter()
                    .filter_map(|s| {
                        let p = last_close[s.asset as usize][s.t as usize].unwrap_or(100.0);
                        let cmd = command(s, p);
                        match &cmd {
                            Cmd::Order(r) if r.validate().is_err() => None,
                            _ => Some((s.t, cmd)),
                        }
                    })
                    .collect();
                Case {
                    n_assets,
                    rows,
                    script,
                    cfg,
                }
            })
    })
}

/// What was submitted under each order id.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A strategy order (the entry of a bracket too).
    Order(OrderRequest, u64),
    /// A take-profit leg of entry `id`: a limit at the price.
    TakeProfit(u64, f64),
    /// A stop-loss leg of entry `id`: a stop at the price.
    StopLoss(u64, f64),
}

fn roles(case: &Case, ids: &[u64]) -> HashMap<u64, Role> {
    let mut roles = HashMap::new();
    let requests = case.script.iter().filter_map(|(t, cmd)| match cmd {
        Cmd::Order(r) => Some((*t, *r)),
        _ => None,
    });
    for (&id, (t, r)) in ids.iter().zip(requests) {
        roles.insert(id, Role::Order(r, t));
        let mut next = id + 1;
        if let Some(tp) = r.take_profit {
            roles.insert(next, Role::TakeProfit(id, tp));
            next += 1;
        }
        if let Some(sl) = r.stop_loss {
            roles.insert(next, Role::StopLoss(id, sl));
        }
    }
    roles
}

const EPS: f64 = 1e-9;

fn check(case: &Case, ids: &[u64], out: &BacktestOutput) -> Result<(), String> {
    check_journal(out)?;
    let bars: HashMap<(i64, u32), &Row> = case.rows.iter().map(|r| ((r.ts, r.asset), r)).collect();
    let roles = roles(case, ids);
    let f = fills(out);
    let no_slippage = case.cfg.slippage == SlippageModel::None;

    let mut filled: HashMap<u64, Vec<FillRow>> = HashMap::new();
    for x in &f {
        let bar = bars
            .get(&(x.ts, x.asset))
            .ok_or_else(|| format!("fill without a bar: {x:?}"))?;
        if x.price < bar.low - EPS || x.price > bar.high + EPS {
            return Err(format!("fill outside its bar {bar:?}: {x:?}"));
        }
        let Some(role) = roles.get(&x.order_id) else {
            return Err(format!("fill of an unknown order: {x:?}"));
        };
        let buy = x.side == 0;
        match *role {
            Role::Order(r, t) => {
                let decided = t as i64 + 1;
                let same_bar = case.cfg.execution == ExecutionMode::SameClose
                    && matches!(r.kind, OrderKind::Market | OrderKind::MarketOnClose);
                if x.ts < decided || (x.ts == decided && !same_bar) {
                    return Err(format!("filled before it was eligible ({r:?}): {x:?}"));
                }
                if buy != (r.quantity > 0.0) {
                    return Err(format!("fill on the wrong side of {r:?}: {x:?}"));
                }
                match r.kind {
                    OrderKind::Limit { limit } => check_limit(buy, limit, x)?,
                    OrderKind::StopLimit { limit, .. } => check_limit(buy, limit, x)?,
                    OrderKind::Stop { stop } => check_stop(buy, stop, bar.open, x)?,
                    OrderKind::MarketOnClose if x.reference_price != bar.close => {
                        return Err(format!("market-on-close off the close {bar:?}: {x:?}"));
                    }
                    _ => {}
                }
            }
            Role::TakeProfit(entry, tp) | Role::StopLoss(entry, tp) => {
                let Some(Role::Order(r, _)) = roles.get(&entry) else {
                    unreachable!("legs follow their entry")
                };
                if buy == (r.quantity > 0.0) {
                    return Err(format!("leg on the entry's side {r:?}: {x:?}"));
                }
                if matches!(role, Role::TakeProfit(..)) {
                    check_limit(buy, tp, x)?;
                } else {
                    check_stop(buy, tp, bar.open, x)?;
                }
            }
        }
        if no_slippage && x.slippage != 0.0 {
            return Err(format!("slippage without a slippage model: {x:?}"));
        }
        filled.entry(x.order_id).or_default().push(*x);
    }

    // Quantities: partial fills sum to at most the order; `partial` on all but a completing one.
    for (id, list) in &filled {
        let total: f64 = list.iter().map(|x| x.quantity).sum();
        match roles[id] {
            Role::Order(r, _) => {
                let wanted = r.quantity.abs();
                if total > wanted * (1.0 + EPS) {
                    return Err(format!("order {id} filled {total} of {wanted}: {list:?}"));
                }
                let mut done = 0.0;
                for (k, x) in list.iter().enumerate() {
                    done += x.quantity;
                    let complete = (wanted - done).abs() <= EPS * wanted;
                    if k + 1 < list.len() && !x.partial {
                        return Err(format!("order {id}: a non-final fill not partial {list:?}"));
                    }
                    if k + 1 == list.len() && x.partial == complete {
                        return Err(format!(
                            "order {id}: final fill partial={} after {done} of {wanted}",
                            x.partial
                        ));
                    }
                }
            }
            Role::TakeProfit(entry, _) | Role::StopLoss(entry, _) => {
                let Some(entry_fills) = filled.get(&entry) else {
                    return Err(format!("leg {id} filled but its entry {entry} never did"));
                };
                let entry_total: f64 = entry_fills.iter().map(|x| x.quantity).sum();
                let last_entry = entry_fills.last().map_or(i64::MAX, |x| x.ts);
                if list[0].ts < last_entry {
                    return Err(format!(
                        "leg {id} filled before its entry {entry} completed"
                    ));
                }
                let legs: f64 = filled
                    .iter()
                    .filter(|(leg, _)| match roles[*leg] {
                        Role::TakeProfit(e, _) | Role::StopLoss(e, _) => e == entry,
                        Role::Order(..) => false,
                    })
                    .flat_map(|(_, l)| l.iter().map(|x| x.quantity))
                    .sum();
                if legs > entry_total * (1.0 + EPS) {
                    return Err(format!(
                        "legs of {entry} closed {legs} (this leg {total}) of an entry of \
                         {entry_total}"
                    ));
                }
            }
        }
    }

    // Without a volume cap at most one leg of a bracket fills (one-cancels-other).
    if case.cfg.max_volume_fraction.is_none() {
        let mut legs_by_entry: HashMap<u64, Vec<u64>> = HashMap::new();
        for id in filled.keys() {
            if let Role::TakeProfit(e, _) | Role::StopLoss(e, _) = roles[id] {
                legs_by_entry.entry(e).or_default().push(*id);
            }
        }
        if let Some((entry, legs)) = legs_by_entry.iter().find(|(_, l)| l.len() > 1) {
            return Err(format!("both legs {legs:?} of bracket {entry} filled"));
        }
    }

    // Cash and positions rebuilt from the fills match the equity curve.
    let mut cash = case.cfg.initial_cash;
    let mut position = vec![0.0; case.n_assets as usize];
    let mut mark = vec![f64::NAN; case.n_assets as usize];
    let mut k = 0;
    for row in equity(out) {
        while k < f.len() && f[k].ts == row.ts {
            let x = &f[k];
            cash -= x.signed() * x.price + x.commission;
            position[x.asset as usize] += x.signed();
            k += 1;
        }
        for a in 0..case.n_assets {
            if let Some(b) = bars.get(&(row.ts, a)) {
                mark[a as usize] = b.close;
            }
        }
        let value: f64 = position
            .iter()
            .zip(&mark)
            .filter(|(q, _)| **q != 0.0)
            .map(|(q, p)| q * p)
            .sum();
        let scale = case.cfg.initial_cash.max(value.abs());
        if (row.cash - cash).abs() > 1e-9 * scale {
            return Err(format!(
                "cash at {}: {} vs {cash} from fills",
                row.ts, row.cash
            ));
        }
        if (row.positions_value - value).abs() > 1e-9 * scale {
            return Err(format!(
                "positions at {}: {} vs {value} from fills",
                row.ts, row.positions_value
            ));
        }
        if (row.equity - (row.cash + row.positions_value)).abs() > 1e-9 * scale {
            return Err(format!("equity != cash + positions at {}: {row:?}", row.ts));
        }
    }
    if k != f.len() {
        return Err(format!("fills after the last equity row: {:?}", &f[k..]));
    }
    Ok(())
}

fn check_limit(buy: bool, limit: f64, x: &FillRow) -> Result<(), String> {
    let worse = if buy {
        x.price > limit
    } else {
        x.price < limit
    };
    if worse {
        return Err(format!("limit {limit} filled worse: {x:?}"));
    }
    Ok(())
}

fn check_stop(buy: bool, stop: f64, open: f64, x: &FillRow) -> Result<(), String> {
    let before = if buy {
        x.reference_price < stop
    } else {
        x.reference_price > stop
    };
    if before && x.reference_price != open {
        return Err(format!(
            "stop {stop} filled before its level, not at the open {open}: {x:?}"
        ));
    }
    let slipped_against = if buy {
        x.price >= x.reference_price
    } else {
        x.price <= x.reference_price
    };
    if !slipped_against {
        return Err(format!("stop fill better than its reference: {x:?}"));
    }
    Ok(())
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn order_type_invariants_hold(case in case(0..10)) {
        let data = market(&case.rows, case.n_assets, &[]);
        let (out, strategy) = run_script(&data, case.script.clone(), &case.cfg);
        if let Err(msg) = check(&case, &strategy.ids, &out) {
            prop_assert!(false, "{}", msg);
        }
    }

    #[test]
    fn brackets_exit_through_at_most_one_leg(
        case in case(7..10).prop_map(|mut c| {
            // Brackets (and cancels), no volume cap: one-cancels-other must hold exactly.
            c.cfg.max_volume_fraction = None;
            c
        })
    ) {
        let data = market(&case.rows, case.n_assets, &[]);
        let (out, strategy) = run_script(&data, case.script.clone(), &case.cfg);
        if let Err(msg) = check(&case, &strategy.ids, &out) {
            prop_assert!(false, "{}", msg);
        }
    }

    #[test]
    fn runs_are_deterministic(case in case(0..10)) {
        let data = market(&case.rows, case.n_assets, &[]);
        let (a, _) = run_script(&data, case.script.clone(), &case.cfg);
        let (b, _) = run_script(&data, case.script.clone(), &case.cfg);
        prop_assert!(same_output(&a, &b));
    }
}
