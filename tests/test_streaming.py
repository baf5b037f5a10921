"""Streaming: chunked runs equal in-memory runs (built-in, batch and per-bar strategies, every
result frame compared with ``frame.equals``), chunks never split a timestamp, the engine keeps
its state across chunks, and a bad row in a later chunk stops the run with the same error."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TopKStrategy,
)
from ml4t.backtest._core import CheckedData
from ml4t.backtest.data import ChunkStream, write_dataset
from ml4t.backtest.errors import DataValidationError
from ml4t.backtest.synthetic import make_bars

ROOT = Path(__file__).resolve().parents[1]
BARS = make_bars(n_assets=6, n_bars=120, seed=17, missing_fraction=0.1)
CONFIG = BacktestConfig(
    commission={"model": "percent", "rate": 0.001},
    slippage={"model": "percent", "rate": 0.0005},
    execution={"share_rounding": "integer"},
)
CHUNKINGS: list[dict[str, Any]] = [
    {"chunk_rows": 1},
    {"chunk_rows": 13},
    {"chunk_by": "1w"},
    {"chunk_by": "1mo"},
]


class BatchTopK(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        scores = batch["score"]
        assert batch.to_polars()["score"].to_list() == scores.tolist()
        best = np.argsort(-scores, kind="stable")[:2]
        context.rebalance({batch.assets[i]: 0.45 for i in best})


class PerBar(Strategy):
    def on_market_data(self, event: Any, context: Any) -> None:
        if event.signals["signal"] > 0:
            context.order_target_percent(event.asset, 0.1)
        else:
            context.close_position(event.asset)


def assert_same(a: Any, b: Any) -> None:
    for name in ("fills", "trades", "equity", "rejected_orders"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True)


@pytest.mark.parametrize("options", CHUNKINGS, ids=lambda o: f"{next(iter(o.items()))}")
@pytest.mark.parametrize(
    "make",
    [
        lambda: SignalStrategy("signal", quantity=7.0),
        lambda: TopKStrategy("score", k=2, bottom_k=1),
        BatchTopK,
        PerBar,
    ],
    ids=["signal", "top_k", "batch", "per_bar"],
)
def test_streaming_equals_in_memory(make: Any, options: dict[str, Any]) -> None:
    memory = Backtest(PolarsDataFeed(BARS), make(), config=CONFIG).run(progress=False)
    feed = PolarsDataFeed(BARS, **options)
    assert feed.streaming
    streamed = Backtest(feed, make(), config=CONFIG).run(progress=False)
    assert memory.fills.height > 20
    assert_same(memory, streamed)


def test_chunks_partition_the_data_by_time() -> None:
    memory = PolarsDataFeed(BARS).frame
    for options in CHUNKINGS:
        chunks = list(PolarsDataFeed(BARS, **options).iter_chunks())
        assert pl.concat(chunks).equals(memory)
        for before, after in itertools.pairwise(chunks):
            assert before["ts"].max() < after["ts"].min()  # a timestamp is never split
    budget = 13
    sizes = [c.height for c in PolarsDataFeed(BARS, chunk_rows=budget).iter_chunks()]
    per_ts = BARS.group_by("timestamp").len()["len"].max()
    # full chunks: another timestamp would have broken the budget; only the last may be short
    assert max(sizes) <= budget and min(sizes[:-1]) > budget - per_ts
    one = PolarsDataFeed(BARS, chunk_rows=1)
    assert len(list(one.iter_chunks())) == BARS["timestamp"].n_unique()


def test_streaming_parquet_dataset_and_scan(tmp_path: Path) -> None:
    write_dataset(BARS, tmp_path / "ds", partition_by="month")
    feed = PolarsDataFeed.scan(tmp_path / "ds")
    assert feed.streaming and feed.chunk_rows is not None
    assert len(feed) == BARS.height
    memory = Backtest(PolarsDataFeed(BARS), BatchTopK(), config=CONFIG).run(progress=False)
    assert_same(memory, Backtest(feed, BatchTopK(), config=CONFIG).run(progress=False))
    lazy = PolarsDataFeed(pl.scan_parquet(tmp_path / "ds" / "**" / "*.parquet"), chunk_by="1w")
    assert_same(memory, Backtest(lazy, BatchTopK(), config=CONFIG).run(progress=False))


def test_engine_data_publishes_the_current_chunk() -> None:
    feed = PolarsDataFeed(BARS, chunk_rows=50)
    stream = feed.engine_data()
    assert isinstance(stream, ChunkStream)
    seen = []
    for chunk in stream:
        assert stream.current is chunk
        seen.append(stream.serial)
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > 3
    assert stream.current is None
    other = feed.engine_data()  # each run gets its own pass
    assert other is not stream and other.serial == 0
    memory = PolarsDataFeed(BARS)
    checked = memory.engine_data()  # imported and row-checked once, reused by every run
    assert isinstance(checked, CheckedData) and checked.n_rows == memory.frame.height
    assert memory.engine_data() is checked
    assert feed.frame.equals(memory.frame)  # a streaming feed can still build the whole frame


def test_bad_row_in_a_later_chunk_stops_the_run() -> None:
    late = BARS.height - 3
    bad = BARS.with_columns(
        pl.when(pl.int_range(pl.len()) == late).then(-1.0).otherwise(pl.col("close")).alias("close")
    )
    feed = PolarsDataFeed(bad, chunk_rows=20)  # builds: the bad row is only read at the end
    key = f"({bad['timestamp'][late]}, {bad['asset'][late]})"
    for strategy in (SignalStrategy("signal", quantity=1.0), BatchTopK(), PerBar()):
        with pytest.raises(DataValidationError, match=r"^close: positive_price:") as info:
            Backtest(feed, strategy).run(progress=False)
        assert key in str(info.value)


def test_streaming_memory_benchmark_runs() -> None:
    """The memory benchmark's harness in quick mode (figures: README, full size)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "streaming_memory.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "identical results: True" in out.stdout
