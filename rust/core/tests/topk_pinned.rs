//! Pins the complete output of multi-asset rebalancing runs (issue 18's W2 path: daily
//! `rebalance` of the top scores over many assets, next-open fills, 0.1 % fee) to a hash of every
//! value of every result batch, taken before the fill path's performance work: a change of the
//! sizing, order, fill, journal or record code that moves any bit of any result fails here.
//! The runs cover long and short books, cash-account and margin rejections, integer rounding,
//! fill-time sizing, same-close and next-close fills, assets without a bar on some days and a
//! rebalance whose weights come unsorted (as a Python `dict` gives them).

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;

use common::{bar, hash_output, market};

use ml4t_backtest_core::commission::CommissionModel;
use ml4t_backtest_core::config::{AccountKind, AccountRules, Insufficient, TargetSizing};
use ml4t_backtest_core::strategies::TopKStrategy;
use ml4t_backtest_core::{
    run_backtest, BacktestOutput, EngineConfig, ExecutionMode, MarketData, Result, ShareRounding,
    Strategy, StrategyContext, TimestampView,
};

/// SplitMix64, seeded: the same bars on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3.0f64.sqrt()
    }
}

/// `n_assets` random walks over `n_days` daily bars with a `score` column; about 3 % of the
/// (day, asset) bars are missing.
fn topk_data(n_assets: u32, n_days: usize) -> MarketData {
    let mut rng = Rng(7);
    let mut last = vec![50.0f64; n_assets as usize];
    let mut rows = Vec::new();
    for day in 0..n_days {
        let ts = 1_577_836_800_000_000_000 + day as i64 * 86_400_000_000_000;
        for a in 0..n_assets {
            let prev = last[a as usize];
            let o = prev * (1.0 + 0.003 * rng.normal());
            let c = o * (1.0 + 0.015 * rng.normal());
            let h = o.max(c) * (1.0 + 0.004 * rng.uniform());
            let l = o.min(c) * (1.0 - 0.004 * rng.uniform());
            let volume = 500.0 + (rng.uniform() * 50_000.0).floor();
            let score = rng.normal();
            if day > 0 && rng.uniform() < 0.03 {
                continue;
            }
            last[a as usize] = c;
            rows.push(bar(ts, a, o, h, l, c).vol(volume).feat(&[score]));
        }
    }
    market(&rows, n_assets, &["score"])
}

/// W2's strategy as the Python benchmark writes it: the `k` best scores at `weight` each, handed
/// to `rebalance` in descending asset order (not score order).
struct UnsortedTopK {
    k: usize,
    weight: f64,
    picked: Vec<(f64, u32)>,
}

impl Strategy for UnsortedTopK {
    fn on_timestamp(
        &mut self,
        view: &TimestampView<'_>,
        ctx: &mut StrategyContext<'_>,
    ) -> Result<()> {
        let score = view.data.feature("score").expect("score column");
        let assets = view.data.asset_ids();
        self.picked.clear();
        self.picked
            .extend(view.rows().map(|row| (score[row], assets[row])));
        self.picked
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.picked.truncate(self.k);
        self.picked
            .sort_unstable_by_key(|&(_, a)| std::cmp::Reverse(a));
        let weight = self.weight;
        ctx.orders
            .rebalance(self.picked.iter().map(|&(_, a)| (a, weight)))
    }
}

fn fee() -> CommissionModel {
    CommissionModel::Percent {
        rate: 0.001,
        minimum: 0.0,
    }
}

/// The configurations pinned, by name.
fn configs() -> Vec<(&'static str, EngineConfig, usize, usize)> {
    let base = EngineConfig {
        initial_cash: 1_000_000.0,
        commission: fee(),
        account: AccountRules {
            initial_margin: None,
            ..AccountRules::default()
        },
        ..EngineConfig::default()
    };
    vec![
        ("w2-like margin, long/short", base.clone(), 10, 5),
        (
            "reg-t margin, levered book rejected",
            EngineConfig {
                account: AccountRules::default(),
                ..base.clone()
            },
            10,
            10,
        ),
        (
            "cash account, full weight, integer shares",
            EngineConfig {
                account: AccountRules {
                    kind: AccountKind::Cash,
                    ..AccountRules::default()
                },
                rounding: ShareRounding::Integer,
                allow_short: false,
                ..base.clone()
            },
            8,
            0,
        ),
        (
            "cash account resize, fill-time sizing",
            EngineConfig {
                account: AccountRules {
                    kind: AccountKind::Cash,
                    on_insufficient: Insufficient::Resize,
                    ..AccountRules::default()
                },
                sizing: TargetSizing::Fill,
                allow_short: false,
                ..base.clone()
            },
            6,
            0,
        ),
        (
            "same close, volume cap",
            EngineConfig {
                execution: ExecutionMode::SameClose,
                max_volume_fraction: Some(0.02),
                ..base.clone()
            },
            12,
            3,
        ),
        (
            "next close",
            EngineConfig {
                execution: ExecutionMode::NextClose,
                ..base
            },
            7,
            7,
        ),
    ]
}

/// Fills, orders, rejections, the final equity's bits and the hash of every batch.
type Summary = (usize, usize, usize, u64, u64);

fn summary(out: &BacktestOutput) -> Summary {
    let equity = out.equity.column_by_name("equity").expect("equity column");
    let equity = equity.as_primitive::<Float64Type>().values();
    (
        out.fills.num_rows(),
        out.orders.num_rows(),
        out.rejections.num_rows(),
        equity[equity.len() - 1].to_bits(),
        hash_output(out),
    )
}

#[test]
fn topk_rebalance_output_is_pinned_bit_for_bit() {
    let data = topk_data(60, 300);
    let mut got = Vec::new();
    for (name, config, k, bottom_k) in configs() {
        let mut strategy = TopKStrategy::new("score", k, bottom_k, 1).expect("valid strategy");
        let out = run_backtest([&data], &mut strategy, &config).expect("run succeeds");
        got.push((name, summary(&out)));
    }
    let config = EngineConfig {
        initial_cash: 1_000_000.0,
        commission: fee(),
        account: AccountRules {
            initial_margin: None,
            ..AccountRules::default()
        },
        ..EngineConfig::default()
    };
    let mut strategy = UnsortedTopK {
        k: 25,
        weight: 0.95 / 25.0,
        picked: Vec::new(),
    };
    let out = run_backtest([&data], &mut strategy, &config).expect("run succeeds");
    got.push(("w2 python-shaped", summary(&out)));
    let expected: Vec<(&str, Summary)> = vec![
        (
            "w2-like margin, long/short",
            (7886, 7913, 27, 4693914825060406866, 12618267113653885018),
        ),
        (
            "reg-t margin, levered book rejected",
            (10014, 10045, 31, 4693909457764918036, 3609569810015004123),
        ),
        (
            "cash account, full weight, integer shares",
            (3884, 4212, 328, 4694056638395962551, 8727704806609892891),
        ),
        (
            "cash account resize, fill-time sizing",
            (3211, 3354, 407, 4693703925521717368, 8515192490578953753),
        ),
        // Re-pinned once, for a correctness fix rather than speed: the code the pins were
        // taken on booked 373 orders here of at most 4.5e-13 shares each (float residue of a
        // position and its capped remainders, each filled once); a target that close to the
        // position makes no order now (docs/semantics.md, the dust rule).
        (
            "same close, volume cap",
            (21253, 7895, 32, 4693671726863318256, 11988527862605807646),
        ),
        (
            "next close",
            (7438, 7463, 25, 4693385681863811292, 16871624824242296033),
        ),
        (
            "w2 python-shaped",
            (11840, 11883, 43, 4694720950364476794, 18007156006302665457),
        ),
    ];
    assert_eq!(got, expected, "top-k pinned output changed");
}
