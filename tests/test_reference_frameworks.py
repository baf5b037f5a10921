"""Differential tests against stored runs of other frameworks.

``tests/reference/make_references.py`` ran one OHLCV panel and one target-weight schedule
through vectorbt, backtrader and zipline and stored what they produced (see its docstring for
the exact calls). Here the same schedule goes through ``ctx.order_target_percent`` under the
preset named after each framework, with the same costs, and every bar's equity and every fill
(time, asset, signed size, price, fee) must agree to 1e-9. The one known departure (zipline
fills a slipped price outside the bar; the engine clamps it into the bar) has its own test.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy

REFERENCE = Path(__file__).parent / "reference"
VERSIONS = json.loads((REFERENCE / "versions.json").read_text())
COSTS: dict[str, Any] = {
    "commission": {"model": "percent", "rate": VERSIONS["fee_rate"]},
    "initial_cash": VERSIONS["init_cash"],
}
RTOL = ATOL = 1e-9


def load(name: str) -> pl.DataFrame:
    """A stored reference frame, timestamps in nanoseconds like the engine's results."""
    frame = pl.read_parquet(REFERENCE / f"{name}.parquet")
    return frame.with_columns(pl.col("timestamp").cast(pl.Datetime("ns")))


class TargetSchedule(Strategy):
    """At each decision timestamp, ``order_target_percent`` for every asset in name order."""

    def __init__(self, schedule: pl.DataFrame) -> None:
        self.targets: dict[datetime, list[tuple[str, float]]] = {}
        for ts, asset, weight in schedule.sort("timestamp", "asset").iter_rows():
            self.targets.setdefault(ts, []).append((asset, weight))

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        for asset, weight in self.targets.get(timestamp, []):
            context.order_target_percent(asset, weight)


def run(config: BacktestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The schedule through the engine: (equity, fills) shaped like the references."""
    feed = PolarsDataFeed(load("panel"))
    result = Backtest(feed, TargetSchedule(load("schedule")), config=config).run()
    fills = result.fills.select(
        "timestamp",
        pl.col("asset").cast(pl.String),
        pl.when(pl.col("side") == "buy")
        .then(pl.col("quantity"))
        .otherwise(-pl.col("quantity"))
        .alias("size"),
        "price",
        pl.col("commission").alias("fee"),
    )
    return result.equity.select("timestamp", "equity"), fills


def first_difference(label: str, ours: pl.DataFrame, ref: pl.DataFrame, columns: list[str]) -> str:
    """A message naming the first row where ``ours`` and ``ref`` differ beyond the tolerance."""
    for i, (a, b) in enumerate(
        zip(ours.iter_rows(named=True), ref.iter_rows(named=True), strict=False)
    ):
        for column in columns:
            x, y = a[column], b[column]
            same = np.isclose(x, y, rtol=RTOL, atol=ATOL) if isinstance(x, float) else x == y
            if not same:
                return f"{label} row {i} ({column}): engine {a} vs reference {b}"
    return f"{label}: {ours.height} rows vs {ref.height} in the reference"


def assert_matches(reference: str, config: BacktestConfig) -> None:
    equity, fills = run(config)
    ref_equity = load(f"{reference}_equity")
    ref_fills = load(f"{reference}_fills").sort("timestamp", "asset")
    fills = fills.sort("timestamp", "asset")
    assert ref_fills.height > 100  # the schedule trades throughout
    assert equity.height == ref_equity.height, first_difference(
        "equity", equity, ref_equity, ["timestamp", "equity"]
    )
    assert equity["timestamp"].equals(ref_equity["timestamp"])
    close = np.isclose(equity["equity"], ref_equity["equity"], rtol=RTOL, atol=ATOL)
    assert close.all(), first_difference("equity", equity, ref_equity, ["timestamp", "equity"])
    columns = ["timestamp", "asset", "size", "price", "fee"]
    assert fills.height == ref_fills.height, first_difference("fills", fills, ref_fills, columns)
    for column in columns:
        a, b = fills[column], ref_fills[column]
        same = (
            np.isclose(a, b, rtol=RTOL, atol=ATOL).all() if a.dtype == pl.Float64 else a.equals(b)
        )
        assert same, first_difference("fills", fills, ref_fills, columns)


def test_references_were_made_by_the_named_versions() -> None:
    runs = VERSIONS["runs"]
    assert sorted(runs) == [
        "backtrader",
        "vectorbt_close",
        "vectorbt_open",
        "zipline",
        "zipline_no_slippage",
    ]
    assert runs["vectorbt_close"]["vectorbt"] == runs["vectorbt_open"]["vectorbt"] == "1.2.0"
    assert runs["backtrader"]["backtrader"] == "1.9.78.123"
    assert runs["zipline"]["zipline"] == "3.2.1"


def test_vectorbt_target_percent_at_the_close() -> None:
    """vectorbt's default: weights decided and filled at the same bar's close."""
    assert_matches("vectorbt_close", BacktestConfig.preset("vectorbt", **COSTS))


def test_vectorbt_target_percent_at_the_next_open() -> None:
    """vectorbt with ``price=open`` and the weights shifted one bar: sized at the fill bar's
    open, the account valued there once before that bar's fills."""
    config = BacktestConfig.preset(
        "vectorbt", execution={"mode": "next_open", "sizing": "fill"}, **COSTS
    )
    assert_matches("vectorbt_open", config)


def test_backtrader_order_target_percent() -> None:
    """backtrader: sized at the decision close with the broker's value, whole shares, filled at
    the next open."""
    assert_matches("backtrader", BacktestConfig.preset("backtrader", **COSTS))


def test_zipline_order_target_percent_without_slippage() -> None:
    """zipline without slippage: sized at the decision close, filled at the next bar's close,
    whole shares, $0.001 per share."""
    config = BacktestConfig.preset(
        "zipline", initial_cash=VERSIONS["init_cash"], slippage={"rate": 0.0}
    )
    assert_matches("zipline_no_slippage", config)


def test_zipline_with_slippage_departs_only_where_it_fills_outside_the_bar() -> None:
    """With the preset's 5 bps, zipline and the engine agree until zipline's slipped price
    leaves the bar's range (zipline never clamps; the engine keeps every fill inside its bar,
    docs/data.md): there the engine fills at the bar's bound, the only difference."""
    config = BacktestConfig.preset("zipline", initial_cash=VERSIONS["init_cash"])
    equity, fills = run(config)
    ref = load("zipline_fills").sort("timestamp", "asset")
    fills = fills.sort("timestamp", "asset")
    bars = load("panel").select("timestamp", "asset", "low", "high")
    outside = (
        ref.join(bars, on=["timestamp", "asset"])
        .with_row_index()
        .filter((pl.col("price") < pl.col("low")) | (pl.col("price") > pl.col("high")))
    )
    assert outside.height > 0, "the stored run has no fill outside its bar any more"
    first = outside.row(0, named=True)
    n = int(first["index"])
    assert fills.height > n
    head, ref_head = fills.head(n), ref.head(n)
    for column in ["size", "price", "fee"]:
        assert np.isclose(head[column], ref_head[column], rtol=RTOL, atol=ATOL).all(), (
            first_difference("fills", head, ref_head, ["timestamp", "asset", column])
        )
    ours = fills.row(n, named=True)
    bound = first["low"] if first["price"] < first["low"] else first["high"]
    assert (ours["timestamp"], ours["asset"], ours["size"]) == (
        first["timestamp"],
        first["asset"],
        first["size"],
    )
    assert ours["price"] == bound
    ref_equity = load("zipline_equity")
    before = equity["timestamp"] < first["timestamp"]
    assert np.isclose(
        equity.filter(before)["equity"], ref_equity.filter(before)["equity"], rtol=RTOL, atol=ATOL
    ).all()
