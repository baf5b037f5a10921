//! Shared pieces of the fuzz targets: how the fuzzer's bytes become numbers, engine
//! configurations and risk rules ([`Num`], [`FuzzConfig`], [`FuzzRule`]), and the invariants a
//! run's output must satisfy, recomputed from the result batches alone ([`check_output`]).
//!
//! Invariants come in two strengths (see [`Invariant::hard`]): hard ones hold today and always
//! panic (so libFuzzer reports a crash); the others are known to fail until the trust fixes of
//! issue 11 land, and panic only when the `ML4T_FUZZ_STRICT` environment variable names them
//! (`ML4T_FUZZ_STRICT=1` or `all` for every one, or a comma-separated list of names such as
//! `zero_quantity_fill,finite_equity`). Once a soft invariant is fixed in the core, move it to
//! the hard list.

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::RecordBatch;

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient, TargetSizing};
use ml4t_backtest_core::portfolio::is_dust;
use ml4t_backtest_core::matching::{LimitFill, PathPolicy};
use ml4t_backtest_core::risk::rules::{
    BreakevenStop, DailyLossLimit, Distance, MaxDrawdownHalt, MaxGrossExposure, MaxPositionSize,
    MaxPositions, PositionLimit, StopLoss, TakeProfit, TimeExit, TrailMark, TrailUpdate,
    TrailingStop,
};
use ml4t_backtest_core::risk::BoxedRule;
use ml4t_backtest_core::slippage::SlippageModel;
use ml4t_backtest_core::{BacktestOutput, EngineConfig, ExecutionMode, ShareRounding, StopBasis};

/// A float drawn from the values that break numeric code: ordinary sizes, specials and extremes.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Num {
    /// `x / 16`: small ordinary values, positive and negative, including 0.
    Small(i16),
    /// `m × 10^e` with `e` in -320..=310: every magnitude up to overflow.
    Scaled(i8, i16),
    /// One of [`SPECIALS`].
    Special(u8),
    /// Raw bits: anything at all.
    Bits(u64),
}

/// Values every numeric path should survive.
pub const SPECIALS: [f64; 20] = [
    0.0,
    -0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    5e-324,
    1e308,
    -1e308,
    1e300,
    1e-300,
    9_007_199_254_740_993.0,
    1.0,
    -1.0,
    0.5,
    1e-15,
    -5.3e-15,
    1e15,
];

impl Num {
    /// The value.
    pub fn get(self) -> f64 {
        match self {
            Num::Small(x) => f64::from(x) / 16.0,
            Num::Scaled(m, e) => f64::from(m) * 10f64.powi(i32::from(e.rem_euclid(631)) - 320),
            Num::Special(i) => SPECIALS[usize::from(i) % SPECIALS.len()],
            Num::Bits(b) => f64::from_bits(b),
        }
    }
}

/// A rate or fraction: usually a sane small value, sometimes any [`Num`].
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Rate {
    /// `x / 10_000`, 0 to 0.0255.
    Bps(u8),
    /// `x / 255`, 0 to 1.
    Unit(u8),
    /// Anything.
    Any(Num),
}

impl Rate {
    /// The value.
    pub fn get(self) -> f64 {
        match self {
            Rate::Bps(x) => f64::from(x) / 10_000.0,
            Rate::Unit(x) => f64::from(x) / 255.0,
            Rate::Any(n) => n.get(),
        }
    }
}

/// An engine configuration drawn from the fuzz input (may be invalid: `validate` must say so).
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzConfig {
    initial_cash: Option<Num>,
    same_close: bool,
    integer_shares: bool,
    commission: u8,
    commission_rate: Rate,
    commission_minimum: Rate,
    slippage: u8,
    slippage_rate: Rate,
    allow_short: bool,
    cash_account: bool,
    resize: bool,
    initial_margin: Option<Rate>,
    maintenance_margin: Option<Rate>,
    borrow_rate: Rate,
    margin_interest_rate: Rate,
    cash_interest_rate: Rate,
    path_policy: u8,
    limit_fill: u8,
    limit_through: Rate,
    max_volume_fraction: Option<Rate>,
    signal_close_basis: bool,
}

impl FuzzConfig {
    /// The engine configuration.
    // `..Default` even where every field is drawn today: a field added to the core keeps
    // this crate building (clippy::needless_update).
    #[allow(clippy::needless_update)]
    pub fn build(&self) -> EngineConfig {
        let commission = match self.commission % 4 {
            0 => CommissionModel::None,
            1 => CommissionModel::Percent {
                rate: self.commission_rate.get(),
                minimum: self.commission_minimum.get(),
            },
            2 => CommissionModel::PerShare {
                rate: self.commission_rate.get(),
                minimum: self.commission_minimum.get(),
            },
            _ => CommissionModel::PerOrder {
                amount: self.commission_rate.get() * 100.0,
                minimum: self.commission_minimum.get(),
            },
        };
        let r = self.slippage_rate.get();
        let slippage = match self.slippage % 5 {
            0 => SlippageModel::None,
            1 => SlippageModel::Fixed { amount: r },
            2 => SlippageModel::Percent { rate: r },
            3 => SlippageModel::spread(r * 10_000.0),
            _ => SlippageModel::VolumeShare {
                impact: r * 10.0,
                cap: r,
            },
        };
        EngineConfig {
            initial_cash: self.initial_cash.map_or(100_000.0, Num::get),
            // The high bit of `path_policy` (which reads only `% 3`) picks the sizing, so
            // adding it did not change how the committed corpus decodes.
            sizing: if self.path_policy >= 128 {
                TargetSizing::Fill
            } else {
                TargetSizing::Decision
            },
            execution: if self.same_close {
                ExecutionMode::SameClose
            } else {
                ExecutionMode::NextOpen
            },
            rounding: if self.integer_shares {
                ShareRounding::Integer
            } else {
                ShareRounding::Fractional
            },
            commission,
            slippage,
            allow_short: self.allow_short,
            account: AccountRules {
                kind: if self.cash_account {
                    AccountKind::Cash
                } else {
                    AccountKind::Margin
                },
                initial_margin: self.initial_margin.map(Rate::get),
                maintenance_margin: self.maintenance_margin.map(Rate::get),
                on_insufficient: if self.resize {
                    Insufficient::Resize
                } else {
                    Insufficient::Reject
                },
                borrow_rate: self.borrow_rate.get(),
                margin_interest_rate: self.margin_interest_rate.get(),
                cash_interest_rate: self.cash_interest_rate.get(),
                ..AccountRules::default()
            },
            path_policy: match self.path_policy % 3 {
                0 => PathPolicy::OhlcWalk,
                1 => PathPolicy::Pessimistic,
                _ => PathPolicy::Optimistic,
            },
            limit_fill: match self.limit_fill % 3 {
                0 => LimitFill::Touch,
                1 => LimitFill::ThroughAmount(self.limit_through.get()),
                _ => LimitFill::ThroughFraction(self.limit_through.get()),
            },
            max_volume_fraction: self.max_volume_fraction.map(Rate::get),
            borrow_rate_column: None,
            stop_basis: if self.signal_close_basis {
                StopBasis::SignalClose
            } else {
                StopBasis::Fill
            },
            // Fields the fuzzer does not draw (funding columns, later additions) keep their
            // defaults, so a new field does not break this crate.
            ..EngineConfig::default()
        }
    }
}

/// A risk rule drawn from the fuzz input; rules whose parameters are invalid are dropped
/// (their constructor must return an error, never panic).
#[derive(Debug, Clone, Arbitrary)]
pub enum FuzzRule {
    /// [`StopLoss`] at a percent distance.
    StopLoss(Rate),
    /// [`TakeProfit`] at a percent distance.
    TakeProfit(Rate),
    /// [`TrailingStop`] at a percent distance.
    TrailingStop(Rate, bool, bool),
    /// [`TimeExit`] after this many bars.
    TimeExit(u8),
    /// [`BreakevenStop`].
    Breakeven(Rate, Rate),
    /// [`MaxPositionSize`] in shares.
    MaxShares(Num),
    /// [`MaxPositions`].
    MaxPositions(u8),
    /// [`MaxGrossExposure`].
    MaxGross(Rate),
    /// [`MaxDrawdownHalt`].
    DrawdownHalt(Rate, bool),
    /// [`DailyLossLimit`].
    DailyLoss(Rate, bool),
}

impl FuzzRule {
    /// The rule, or `None` when its constructor refused the parameters.
    pub fn build(&self) -> Option<BoxedRule> {
        Some(match *self {
            FuzzRule::StopLoss(p) => Box::new(StopLoss::new(Distance::percent(p.get())).ok()?),
            FuzzRule::TakeProfit(p) => Box::new(TakeProfit::new(Distance::percent(p.get())).ok()?),
            FuzzRule::TrailingStop(p, extreme, intrabar) => Box::new(
                TrailingStop::new(
                    Distance::percent(p.get()),
                    if extreme {
                        TrailMark::Extreme
                    } else {
                        TrailMark::Close
                    },
                    if intrabar {
                        TrailUpdate::Intrabar
                    } else {
                        TrailUpdate::Lagged
                    },
                )
                .ok()?,
            ),
            FuzzRule::TimeExit(bars) => Box::new(TimeExit::new(Some(u64::from(bars)), None).ok()?),
            FuzzRule::Breakeven(t, o) => Box::new(BreakevenStop::new(t.get(), o.get()).ok()?),
            FuzzRule::MaxShares(n) => {
                Box::new(MaxPositionSize::new(PositionLimit::Shares(n.get())).ok()?)
            }
            FuzzRule::MaxPositions(n) => Box::new(MaxPositions::new(usize::from(n)).ok()?),
            FuzzRule::MaxGross(r) => Box::new(MaxGrossExposure::new(r.get() * 4.0).ok()?),
            FuzzRule::DrawdownHalt(r, liq) => Box::new(MaxDrawdownHalt::new(r.get(), liq).ok()?),
            FuzzRule::DailyLoss(r, liq) => Box::new(DailyLossLimit::new(r.get(), liq).ok()?),
        })
    }
}

/// One invariant of a run's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// The equity table has one row per timestamp of the input, in increasing time.
    EquityRows,
    /// Fills lie on input timestamps, in time order, for assets of the universe, with ids >= 1.
    FillShape,
    /// Every fill has a quantity > 0.
    ZeroQuantityFill,
    /// Every fill's quantity, price and commission are finite and its price > 0.
    FiniteFill,
    /// No fill's commission is negative (NaN and infinity are [`Invariant::FiniteFill`]'s).
    Commission,
    /// Cash, positions value and equity are finite at every timestamp.
    FiniteEquity,
    /// One order id belongs to one (asset, side) across all fills.
    OneIdOneOrder,
    /// `positions_value` = Σ position × last close, and `equity` = cash + positions value, with
    /// positions rebuilt from the fills.
    EquityIdentity,
    /// Cash moves only by fills, fees and financing: cash_t = cash_{t-1} − Σ signed notional
    /// − Σ commission − borrow fee + interest.
    CashIdentity,
    /// A buy never takes a cash account's cash below zero (a sale's fee may) and it never
    /// holds a short position.
    CashAccount,
}

impl Invariant {
    /// Every invariant, in check order.
    pub const ALL: [Invariant; 10] = [
        Invariant::EquityRows,
        Invariant::FillShape,
        Invariant::ZeroQuantityFill,
        Invariant::FiniteFill,
        Invariant::Commission,
        Invariant::FiniteEquity,
        Invariant::OneIdOneOrder,
        Invariant::EquityIdentity,
        Invariant::CashIdentity,
        Invariant::CashAccount,
    ];

    /// Its name in `ML4T_FUZZ_STRICT`.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::EquityRows => "equity_rows",
            Invariant::FillShape => "fill_shape",
            Invariant::ZeroQuantityFill => "zero_quantity_fill",
            Invariant::FiniteFill => "finite_fill",
            Invariant::Commission => "commission",
            Invariant::FiniteEquity => "finite_equity",
            Invariant::OneIdOneOrder => "one_id_one_order",
            Invariant::EquityIdentity => "equity_identity",
            Invariant::CashIdentity => "cash_identity",
            Invariant::CashAccount => "cash_account",
        }
    }

    /// Whether it is always asserted. Every invariant is since the strict run of 2026-12-02
    /// (docs/fuzzing.md); a new finding the core cannot fix at once goes into [`SOFT`], asserted
    /// only under `ML4T_FUZZ_STRICT`.
    pub fn hard(self) -> bool {
        !SOFT.contains(&self)
    }

    /// Whether a violation panics in this process.
    pub fn enforced(self) -> bool {
        self.hard() || strict().contains(&self)
    }
}

/// The invariants known to fail, asserted only when `ML4T_FUZZ_STRICT` names them (none today).
pub const SOFT: [Invariant; 0] = [];

/// The soft invariants `ML4T_FUZZ_STRICT` turns on (read once).
fn strict() -> &'static [Invariant] {
    static STRICT: OnceLock<Vec<Invariant>> = OnceLock::new();
    STRICT.get_or_init(|| {
        let value = std::env::var("ML4T_FUZZ_STRICT").unwrap_or_default();
        let value = value.trim();
        if value == "1" || value == "all" {
            return Invariant::ALL.to_vec();
        }
        value
            .split(',')
            .filter_map(|name| Invariant::ALL.into_iter().find(|i| i.name() == name.trim()))
            .collect()
    })
}

/// What the checks need to know about the input of a run.
pub struct RunFacts<'a> {
    /// Size of the universe.
    pub n_assets: u32,
    /// The distinct timestamps of the input, increasing.
    pub timestamps: &'a [i64],
    /// Per timestamp (same index), the `(asset, close)` of the bars it has.
    pub closes: &'a [Vec<(u32, f64)>],
    /// Starting cash.
    pub initial_cash: f64,
    /// Whether the account is a cash account.
    pub cash_account: bool,
}

/// Records a violation: panics if the invariant is enforced, otherwise does nothing.
#[track_caller]
fn violated(inv: Invariant, detail: impl FnOnce() -> String) {
    if inv.enforced() {
        panic!("invariant {} violated: {}", inv.name(), detail());
    }
}

fn f64s<'b>(batch: &'b RecordBatch, name: &str) -> &'b [f64] {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("output column {name} is missing"))
        .as_primitive::<Float64Type>()
        .values()
}

/// `a` and `b` agree up to rounding of values of the size of `scale`.
fn close_enough(a: f64, b: f64, scale: f64) -> bool {
    if !(a.is_finite() && b.is_finite() && scale.is_finite()) {
        // Non-finite values are FiniteEquity's business.
        return true;
    }
    (a - b).abs() <= 1e-9 * (1.0 + scale)
}

/// Checks every [`Invariant`] on `out`, the output of a run over the input described by
/// `facts`. Hard invariants panic; soft ones panic only when enforced (see the module doc).
pub fn check_output(out: &BacktestOutput, facts: &RunFacts<'_>) {
    let fills = &out.fills;
    let equity = &out.equity;

    // EquityRows
    let eq_ts = equity
        .column_by_name("ts")
        .expect("equity.ts")
        .as_primitive::<Int64Type>()
        .values();
    if eq_ts[..] != facts.timestamps[..] {
        violated(Invariant::EquityRows, || {
            format!(
                "{} equity rows for {} timestamps",
                eq_ts.len(),
                facts.timestamps.len()
            )
        });
    }

    // FillShape
    let ids = fills
        .column_by_name("order_id")
        .expect("fills.order_id")
        .as_primitive::<UInt64Type>()
        .values();
    let fts = fills
        .column_by_name("ts")
        .expect("fills.ts")
        .as_primitive::<Int64Type>()
        .values();
    let assets = fills
        .column_by_name("asset_id")
        .expect("fills.asset_id")
        .as_primitive::<UInt32Type>()
        .values();
    let sides = fills
        .column_by_name("side")
        .expect("fills.side")
        .as_primitive::<UInt8Type>()
        .values();
    let qty = f64s(fills, "quantity");
    let price = f64s(fills, "price");
    let commission = f64s(fills, "commission");
    for i in 0..fills.num_rows() {
        let ok = ids[i] >= 1
            && assets[i] < facts.n_assets
            && sides[i] <= 1
            && facts.timestamps.binary_search(&fts[i]).is_ok()
            && (i == 0 || fts[i - 1] <= fts[i]);
        if !ok {
            violated(Invariant::FillShape, || {
                format!(
                    "fill {i}: id {} ts {} asset {} side {}",
                    ids[i], fts[i], assets[i], sides[i]
                )
            });
        }
        if qty[i] == 0.0 {
            violated(Invariant::ZeroQuantityFill, || {
                format!("fill {i} (order {}) has quantity 0", ids[i])
            });
        }
        if !(qty[i].is_finite()
            && price[i].is_finite()
            && price[i] > 0.0
            && commission[i].is_finite())
        {
            violated(Invariant::FiniteFill, || {
                format!(
                    "fill {i} (order {}): quantity {} price {} commission {}",
                    ids[i], qty[i], price[i], commission[i]
                )
            });
        }
        if commission[i] < 0.0 {
            violated(Invariant::Commission, || {
                format!("fill {i} (order {}): commission {}", ids[i], commission[i])
            });
        }
    }

    // OneIdOneOrder
    let mut owner: HashMap<u64, (u32, u8)> = HashMap::new();
    for i in 0..fills.num_rows() {
        let key = (assets[i], sides[i]);
        let first = *owner.entry(ids[i]).or_insert(key);
        if first != key {
            violated(Invariant::OneIdOneOrder, || {
                format!(
                    "order id {} fills (asset {}, side {}) and (asset {}, side {})",
                    ids[i], first.0, first.1, key.0, key.1
                )
            });
        }
    }

    // FiniteEquity
    let cash = f64s(equity, "cash");
    let positions_value = f64s(equity, "positions_value");
    let total = f64s(equity, "equity");
    for t in 0..equity.num_rows() {
        if !(cash[t].is_finite() && positions_value[t].is_finite() && total[t].is_finite()) {
            violated(Invariant::FiniteEquity, || {
                format!(
                    "timestamp {}: cash {} positions {} equity {}",
                    eq_ts[t], cash[t], positions_value[t], total[t]
                )
            });
        }
    }
    if eq_ts.len() != facts.timestamps.len() {
        return; // The identities below walk the input's timestamps.
    }

    // EquityIdentity, CashIdentity, CashAccount: replay the fills.
    let fin_ts = out
        .financing
        .column_by_name("ts")
        .expect("financing.ts")
        .as_primitive::<Int64Type>()
        .values();
    let borrow = f64s(&out.financing, "borrow_fee");
    let interest = f64s(&out.financing, "interest");
    let n = facts.n_assets as usize;
    let mut position = vec![0.0f64; n];
    let mut last_close = vec![f64::NAN; n];
    let (mut f, mut g) = (0usize, 0usize);
    let mut prev_cash = facts.initial_cash;
    for (t, &ts) in facts.timestamps.iter().enumerate() {
        let mut expected_cash = prev_cash;
        let mut scale = prev_cash.abs();
        while g < fin_ts.len() && fin_ts[g] == ts {
            expected_cash += interest[g] - borrow[g];
            scale += interest[g].abs() + borrow[g].abs();
            g += 1;
        }
        while f < fts.len() && fts[f] == ts {
            let signed = if sides[f] == 0 { qty[f] } else { -qty[f] };
            let a = assets[f] as usize;
            if a < n {
                // The engine's dust rule: float residue of a close is no position.
                let before = position[a];
                let after = before + signed;
                position[a] = if is_dust(after, before.abs().max(signed.abs())) {
                    0.0
                } else {
                    after
                };
            }
            expected_cash -= signed * price[f] + commission[f];
            scale += (signed * price[f]).abs() + commission[f].abs();
            // A buy never takes a cash account's cash below zero; a sale's fee may (the debit
            // of a fee above the proceeds: docs/semantics.md, Accounts).
            if facts.cash_account && signed > 0.0 && expected_cash < -1e-6 * (1.0 + scale) {
                violated(Invariant::CashAccount, || {
                    format!("timestamp {ts}: fill {f} (a buy) leaves cash {expected_cash}")
                });
            }
            f += 1;
        }
        for &(a, c) in &facts.closes[t] {
            last_close[a as usize] = c;
        }
        if !close_enough(cash[t], expected_cash, scale) {
            violated(Invariant::CashIdentity, || {
                format!(
                    "timestamp {ts}: cash {} but fills, fees and financing give {expected_cash}",
                    cash[t]
                )
            });
        }
        prev_cash = cash[t];
        let mut value = 0.0;
        let mut value_scale = 0.0;
        for a in 0..n {
            if position[a] != 0.0 {
                value += position[a] * last_close[a];
                value_scale += (position[a] * last_close[a]).abs();
            }
        }
        if !close_enough(positions_value[t], value, value_scale)
            || !close_enough(
                total[t],
                cash[t] + positions_value[t],
                cash[t].abs() + value_scale,
            )
        {
            violated(Invariant::EquityIdentity, || {
                format!(
                    "timestamp {ts}: positions_value {} equity {} cash {}, fills give \
                     positions {position:?} worth {value}",
                    positions_value[t], total[t], cash[t]
                )
            });
        }
        if facts.cash_account {
            // Dust below a millionth of a share or a cent is float rounding, not a short.
            let short = position.iter().position(|&p| p < -1e-6);
            if short.is_some() {
                violated(Invariant::CashAccount, || {
                    format!(
                        "timestamp {ts}: cash account holds cash {} and positions {position:?}",
                        cash[t]
                    )
                });
            }
        }
    }
    if f != fts.len() {
        violated(Invariant::FillShape, || {
            format!("fill {f} at ts {} is on no input timestamp", fts[f])
        });
    }
}
