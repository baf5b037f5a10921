//! `feed_views`: arbitrary Arrow batches into `MarketData::new`, then a short backtest.
//!
//! The input chooses the rows (timestamps, asset codes, OHLCV drawn from ordinary values, NaN,
//! ±inf, huge and tiny magnitudes), optionally sorts and de-duplicates them so that validation
//! passes often, and damages the schema: a column missing, renamed, duplicated, of another type,
//! with nulls, a feature column of the wrong type, a batch sliced at an offset. `MarketData::new`
//! must return `Ok` or `Err`, never panic. When it accepts the batch, its views must agree with
//! the batch, and a built-in strategy run over it (in one or several chunks) must return
//! `Ok` or `Err`; an `Ok` run's output goes through the invariant checks of the crate.

#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use arrow_array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;

use ml4t_backtest_core::config::AccountKind;
use ml4t_backtest_core::feed::{group_end, PRICE_COLUMNS};
use ml4t_backtest_core::strategies::{SignalSizing, SignalStrategy, TopKStrategy};
use ml4t_backtest_core::{run_backtest, MarketData, Strategy};
use ml4t_backtest_fuzz::{check_output, FuzzConfig, Num, RunFacts};

#[derive(Debug, Arbitrary)]
struct Row {
    ts: TsValue,
    asset: u8,
    /// Price: `base` scales everything; `ohlc` are offsets of the four prices from it.
    base: Price,
    ohlc: [i8; 4],
    volume: Price,
    features: [Num; 2],
    /// Replaces one price or the volume with an arbitrary value.
    poison: Option<(u8, Num)>,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum TsValue {
    Small(u8),
    Day(u16),
    Raw(i64),
    Edge(u8),
}

impl TsValue {
    fn get(self) -> i64 {
        match self {
            TsValue::Small(x) => i64::from(x),
            TsValue::Day(d) => i64::from(d) * 86_400_000_000_000,
            TsValue::Raw(v) => v,
            TsValue::Edge(i) => {
                [i64::MIN, i64::MAX, 0, -1, i64::MIN + 1, i64::MAX - 1][usize::from(i) % 6]
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Price {
    Ordinary(u16),
    Any(Num),
}

impl Price {
    fn get(self) -> f64 {
        match self {
            Price::Ordinary(x) => 1.0 + f64::from(x) / 100.0,
            Price::Any(n) => n.get(),
        }
    }
}

/// What happens to one of the seven core columns.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Damage {
    None,
    Missing,
    Renamed,
    Duplicated,
    WrongType(u8),
    Null(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    n_assets: u8,
    rows: Vec<Row>,
    sort: bool,
    /// Damage to (ts, asset_id, open, high, low, close, volume), mostly none.
    damage: [Option<Damage>; 7],
    /// Feature columns: 0, 1 or 2 of `signal`, `score`; one may be the wrong type.
    n_features: u8,
    feature_wrong_type: bool,
    /// A feature column named like a core column or empty.
    odd_feature_name: Option<u8>,
    /// Slice the batch: (offset, length) modulo its size.
    slice: Option<(u16, u16)>,
    config: FuzzConfig,
    top_k: bool,
    /// Split points of the chunks, as row counts modulo the length.
    splits: Vec<u16>,
    thresholds: (i8, i8),
    size: Num,
}

fn damaged(
    name: &str,
    values: ArrayRef,
    damage: Option<Damage>,
    out: &mut Vec<(String, ArrayRef)>,
) {
    let n = values.len();
    match damage.unwrap_or(Damage::None) {
        Damage::None => out.push((name.into(), values)),
        Damage::Missing => {}
        Damage::Renamed => out.push((format!("{name}_"), values)),
        Damage::Duplicated => {
            out.push((name.into(), values.clone()));
            out.push((name.into(), values));
        }
        Damage::WrongType(k) => out.push((
            name.into(),
            match k % 4 {
                0 => Arc::new(Float32Array::from(vec![1.0f32; n])),
                1 => Arc::new(Int32Array::from(vec![1i32; n])),
                2 => Arc::new(Int64Array::from(vec![1i64; n])),
                _ => Arc::new(StringArray::from(vec!["1"; n])),
            },
        )),
        Damage::Null(at) => {
            let arr: ArrayRef = match values.data_type() {
                DataType::Int64 => {
                    let a = values.as_any().downcast_ref::<Int64Array>().unwrap();
                    Arc::new(Int64Array::from_iter(
                        (0..n).map(|i| (i != usize::from(at) % n.max(1)).then(|| a.value(i))),
                    ))
                }
                DataType::UInt32 => {
                    let a = values.as_any().downcast_ref::<UInt32Array>().unwrap();
                    Arc::new(UInt32Array::from_iter(
                        (0..n).map(|i| (i != usize::from(at) % n.max(1)).then(|| a.value(i))),
                    ))
                }
                _ => {
                    let a = values.as_any().downcast_ref::<Float64Array>().unwrap();
                    Arc::new(Float64Array::from_iter(
                        (0..n).map(|i| (i != usize::from(at) % n.max(1)).then(|| a.value(i))),
                    ))
                }
            };
            out.push((name.into(), arr));
        }
    }
}

fn build_batch(input: &Input) -> Option<RecordBatch> {
    let n_assets = u32::from(input.n_assets % 9);
    let mut rows: Vec<(i64, u32, [f64; 5], [f64; 2])> = input
        .rows
        .iter()
        .take(256)
        .map(|r| {
            let base = r.base.get();
            let [o, h, l, c] = r.ohlc.map(|d| base * (1.0 + f64::from(d) / 512.0));
            // Keep OHLC consistent unless poisoned, so validation passes often.
            let high = h.max(o).max(c).max(l);
            let low = l.min(o).min(c).min(h);
            let mut prices = [o, high, low, c, r.volume.get()];
            if let Some((slot, v)) = r.poison {
                prices[usize::from(slot) % 5] = v.get();
            }
            let asset = u32::from(r.asset) % (n_assets + 1);
            (r.ts.get(), asset, prices, r.features.map(Num::get))
        })
        .collect();
    if input.sort {
        rows.sort_by_key(|r| (r.0, r.1));
        rows.dedup_by_key(|r| (r.0, r.1));
    }
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    damaged(
        "ts",
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        input.damage[0],
        &mut columns,
    );
    damaged(
        "asset_id",
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1))),
        input.damage[1],
        &mut columns,
    );
    for (slot, name) in PRICE_COLUMNS.iter().enumerate() {
        damaged(
            name,
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.2[slot]),
            )),
            input.damage[slot + 2],
            &mut columns,
        );
    }
    let n_features = usize::from(input.n_features % 3);
    for (k, name) in ["signal", "score"].iter().take(n_features).enumerate() {
        let values: ArrayRef = if input.feature_wrong_type && k == n_features - 1 {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.3[k] as i64),
            ))
        } else {
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3[k])))
        };
        columns.push((name.to_string(), values));
    }
    if let Some(which) = input.odd_feature_name {
        let name = ["", "ts ", "Close", "__asset_code", "signal"][usize::from(which) % 5];
        columns.push((
            name.to_string(),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3[0]))),
        ));
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(name, a.data_type().clone(), true))
        .collect();
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
    let batch = if arrays.is_empty() {
        RecordBatch::new_empty(Arc::new(Schema::new(fields)))
    } else {
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()?
    };
    Some(match input.slice {
        Some((offset, len)) if batch.num_rows() > 0 => {
            let offset = usize::from(offset) % batch.num_rows();
            let len = usize::from(len) % (batch.num_rows() - offset + 1);
            batch.slice(offset, len)
        }
        _ => batch,
    })
}

/// The views of an accepted chunk agree with its batch and with each other.
fn check_views(data: &MarketData, batch: &RecordBatch) {
    let n = batch.num_rows();
    assert_eq!(data.len(), n);
    assert_eq!(data.is_empty(), n == 0);
    for column in [
        data.ts().len(),
        data.asset_ids().len(),
        data.open().len(),
        data.high().len(),
        data.low().len(),
        data.close().len(),
        data.volume().len(),
    ] {
        assert_eq!(column, n);
    }
    for (pos, name) in data.feature_names().iter().enumerate() {
        assert_eq!(data.feature_position(name).map(|p| p <= pos), Some(true));
        assert_eq!(data.feature_at(pos).len(), n);
    }
    let (mut start, mut groups) = (0, 0);
    while start < n {
        let end = group_end(data.ts(), start);
        assert!(end > start && end <= n);
        start = end;
        groups += 1;
    }
    assert_eq!(groups, data.n_timestamps());
    for r in 0..n {
        assert!(data.asset_ids()[r] < data.n_assets());
        assert!(data.low()[r] <= data.open()[r].min(data.close()[r]));
        assert!(data.high()[r] >= data.open()[r].max(data.close()[r]));
    }
}

fn run(input: &Input, data: &MarketData) {
    let config = input.config.build();
    let n = data.len();
    // Chunks: slices of the batch at the split points (a split inside a timestamp must be an
    // error of the engine, not a panic).
    let mut cuts: Vec<usize> = input
        .splits
        .iter()
        .take(4)
        .map(|&s| usize::from(s) % (n + 1))
        .collect();
    cuts.push(0);
    cuts.push(n);
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    for w in cuts.windows(2) {
        match MarketData::new(data.batch().slice(w[0], w[1] - w[0]), data.n_assets()) {
            Ok(chunk) => chunks.push(chunk),
            // A slice of an accepted batch is itself valid.
            Err(err) => panic!(
                "slice {}..{} of an accepted batch rejected: {err}",
                w[0], w[1]
            ),
        }
    }
    let (lo, hi) = (
        f64::from(input.thresholds.0.min(input.thresholds.1)) / 32.0,
        f64::from(input.thresholds.0.max(input.thresholds.1)) / 32.0,
    );
    let mut strategy: Box<dyn Strategy> = if input.top_k {
        match TopKStrategy::new("score", 1, usize::from(input.config_bottom()), 1) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    } else {
        let sizing = if input.size.get() > 1.0 {
            SignalSizing::Quantity(input.size.get())
        } else {
            SignalSizing::Weight(input.size.get())
        };
        match SignalStrategy::new("signal", sizing, hi, lo, config.allow_short) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    };
    let Ok(out) = run_backtest(chunks.iter(), strategy.as_mut(), &config) else {
        return;
    };
    let mut timestamps = Vec::new();
    let mut closes: Vec<Vec<(u32, f64)>> = Vec::new();
    for r in 0..n {
        if timestamps.last() != Some(&data.ts()[r]) {
            timestamps.push(data.ts()[r]);
            closes.push(Vec::new());
        }
        closes
            .last_mut()
            .unwrap()
            .push((data.asset_ids()[r], data.close()[r]));
    }
    check_output(
        &out,
        &RunFacts {
            n_assets: data.n_assets(),
            timestamps: &timestamps,
            closes: &closes,
            initial_cash: config.initial_cash,
            cash_account: config.account.kind == AccountKind::Cash,
        },
    );
}

impl Input {
    fn config_bottom(&self) -> u8 {
        self.thresholds.0.rem_euclid(2) as u8
    }
}

fuzz_target!(|input: Input| {
    let Some(batch) = build_batch(&input) else {
        return;
    };
    let n_assets = u32::from(input.n_assets % 9);
    if let Ok(data) = MarketData::new(batch.clone(), n_assets) {
        check_views(&data, &batch);
        run(&input, &data);
    }
});
