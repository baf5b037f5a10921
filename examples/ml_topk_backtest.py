"""The integrated example: train a model on the first years, trade its predictions out of sample.

1. Generate 100 assets x 4 years of daily bars with three noisy features, one of which carries a
   little information about the next holding period's return.
2. Fit a linear model (numpy least squares) on the first two years only; predict the last two.
3. Trade the predictions out of sample with a Python ``on_timestamp_batch`` strategy that holds
   the 10 highest predictions at equal weight, with 5 bps commission and 2 bps slippage,
   next-open fills; compare with the built-in Rust ``TopKStrategy`` (identical by design).
   Risk rules run inside the engine: a stop 2 ATRs below each entry (the ATR is a separate
   ``indicators`` frame), a 5% trailing stop on bar highs, a 15%-of-equity position cap, and
   half-size entries while a market-wide volatility gauge (a ``context`` frame) is high.
4. Print the metrics and write the results with ``result.save`` (Parquet records, metrics.json,
   config.yaml, manifest.json), the HTML report (``result.report``) and summary.txt.

Run: ``./scripts/run_example.sh`` (or ``.venv/bin/python examples/ml_topk_backtest.py``).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    Context,
    PolarsDataFeed,
    Strategy,
    TimestampBatch,
    TopKStrategy,
)
from ml4t.backtest.risk import (
    BuiltinRule,
    MaxPositionSize,
    RegimeRule,
    ScaleSize,
    StopLoss,
    TrailingStop,
)
from ml4t.backtest.synthetic import make_bars

N_ASSETS, N_BARS, TRAIN_BARS, TOP_K = 100, 1_008, 504, 10
FEATURES = ["f_signal", "f_noise1", "f_noise2"]


def make_dataset(seed: int) -> pl.DataFrame:
    """Bars plus features and the label (forward return from the next open to the one after)."""
    bars = make_bars(n_assets=N_ASSETS, n_bars=N_BARS, seed=seed, skill=0.05)
    rng = np.random.default_rng(seed + 1)
    return bars.with_columns(
        pl.col("score").alias("f_signal"),
        pl.Series("f_noise1", rng.normal(size=bars.height)),
        pl.Series("f_noise2", rng.normal(size=bars.height)),
        (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("label"),
    ).drop("score", "signal")


def walk_forward_predictions(data: pl.DataFrame) -> pl.DataFrame:
    """Fit on the training period (labels known there), predict the test period."""
    times = data["timestamp"].unique().sort()
    split = times[TRAIN_BARS]
    # A label at t needs the opens of t+1 and t+2: drop the last two training bars so that no
    # training label reaches into the test period.
    train = data.filter(pl.col("timestamp") < times[TRAIN_BARS - 2]).drop_nulls("label")
    x = np.column_stack([train[f].to_numpy() for f in FEATURES] + [np.ones(train.height)])
    coef, *_ = np.linalg.lstsq(x, train["label"].to_numpy(), rcond=None)
    test = data.filter(pl.col("timestamp") >= split)
    prediction = sum(coef[i] * pl.col(f) for i, f in enumerate(FEATURES)) + coef[-1]
    names = [*FEATURES, "const"]
    print("model coefficients", {n: round(float(c), 6) for n, c in zip(names, coef, strict=True)})
    return test.with_columns(prediction.alias("prediction")).drop("label", *FEATURES)


def risk_inputs(bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """The ATR indicator (14-bar mean true range, per asset) and a market volatility gauge
    (cross-sectional mean of 20-bar return volatility) with the level that counts as high (its
    75th percentile over the training period). Both are known at each bar's close."""
    true_range = pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - pl.col("close").shift(1)).abs(),
        (pl.col("low") - pl.col("close").shift(1)).abs(),
    )
    per_asset = bars.sort("asset", "timestamp").with_columns(
        true_range.over("asset").rolling_mean(14).over("asset").alias("atr"),
        pl.col("close").pct_change().rolling_std(20).over("asset").alias("vol20"),
    )
    atr = per_asset.select("timestamp", "asset", pl.col("atr").fill_null(strategy="backward"))
    gauge = (
        per_asset.group_by("timestamp")
        .agg(pl.col("vol20").mean().alias("market_vol"))
        .sort("timestamp")
        .with_columns(pl.col("market_vol").fill_null(strategy="backward"))
    )
    times = gauge["timestamp"]
    high = gauge.filter(pl.col("timestamp") < times[TRAIN_BARS])["market_vol"].quantile(0.75)
    return atr, gauge, float(high or 0.0)


def risk_rules(high_vol: float) -> list[BuiltinRule]:
    return [
        StopLoss(feature="atr", multiple=2.0),
        TrailingStop(pct=0.05, mark="extreme"),
        MaxPositionSize(pct_equity=0.15),
        RegimeRule(feature="market_vol", threshold=high_vol, above=[ScaleSize(factor=0.5)]),
    ]


class TopPredictions(Strategy):
    """Hold the k highest predictions at equal weight; rebalance every day."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_timestamp_batch(
        self, timestamp: datetime, batch: TimestampBatch, context: Context
    ) -> None:
        prediction = batch["prediction"]
        # Highest first, ties to the lower asset code: the same rule as the built-in TopK.
        order = np.lexsort((batch.asset_ids, -prediction))[: self.k]
        context.rebalance({batch.assets[i]: 1.0 / self.k for i in order})


def save(result: BacktestResult, out: Path, elapsed: float) -> None:
    """Records as Parquet, metrics, config and manifest; the HTML report; a text summary."""
    result.save(out)
    result.report(out / "report.html")
    (out / "summary.txt").write_text(
        f"{result!r}\nrun time {elapsed:.3f}s\n\n{result.summary()}\n\n"
        f"top trades by net PnL:\n{result.trades.sort('net_pnl', descending=True).head(5)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output/example", help="results directory")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    data = make_dataset(args.seed)
    atr, gauge, high_vol = risk_inputs(data)
    feed = PolarsDataFeed(walk_forward_predictions(data), indicators=atr, context=gauge)
    config = BacktestConfig(
        initial_cash=1_000_000.0,
        commission={"model": "percent", "rate": 0.0005},
        slippage={"model": "percent", "rate": 0.0002},
    )
    rules = risk_rules(high_vol)
    start = time.perf_counter()
    result = Backtest(feed, TopPredictions(TOP_K), config=config, risk=rules).run()
    elapsed = time.perf_counter() - start
    builtin = Backtest(feed, TopKStrategy("prediction", k=TOP_K), config=config, risk=rules).run()
    assert builtin.fills.equals(result.fills), "the Python and Rust top-k must agree"

    print(f"{result!r}  ({len(feed):,} bars in {elapsed:.3f}s)")
    print(result.summary())
    exits = result.trades.group_by("exit_reason").len().sort("exit_reason")
    print("trades by exit reason:", dict(exits.iter_rows()))
    print(f"orders cut or refused by risk rules: {result.rejected_orders.height}")
    save(result, Path(args.output), elapsed)
    print(f"results written to {args.output}/")


if __name__ == "__main__":
    main()
