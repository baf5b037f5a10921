"""An in-memory feed hands the engine its frame as pages that share the input's chunks
(``ml4t.backtest.data.chunks``): the pages cover every row once, in order, each page holds
whole timestamps and is one chunk, kept chunks are not copied, and a run over a multi-chunk
input gives exactly what the same input in one chunk gives."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TopKStrategy,
)
from ml4t.backtest.data import chunks
from ml4t.backtest.data.chunks import timestamp_pages
from ml4t.backtest.synthetic import make_bars


def chunked(frame: pl.DataFrame, sizes: list[int]) -> pl.DataFrame:
    """``frame`` as chunks of ``sizes`` rows (the rest in a last chunk), as Parquet gives."""
    pieces, start = [], 0
    for size in sizes:
        if start >= frame.height:
            break
        pieces.append(frame.slice(start, size).rechunk())
        start += size
    if start < frame.height:
        pieces.append(frame.slice(start).rechunk())
    return pl.concat(pieces, rechunk=False)


def address(series: pl.Series) -> int:
    assert series.n_chunks() == 1
    return int(series.to_numpy().__array_interface__["data"][0])


def check_pages(frame: pl.DataFrame, pages: list[pl.DataFrame]) -> None:
    assert pl.concat(pages).equals(frame)
    for page in pages:
        assert page.height > 0
        assert all(page.get_column(c).n_chunks() == 1 for c in page.columns)
    for before, after in itertools.pairwise(pages):
        assert before.get_column("ts")[-1] < after.get_column("ts")[0]  # whole timestamps


def engine_like(n_rows: int, per_ts: int) -> pl.DataFrame:
    ts = np.repeat(np.arange(n_rows // per_ts + 1, dtype=np.int64), per_ts)[:n_rows]
    return pl.DataFrame(
        {
            "ts": ts,
            "asset_id": np.arange(n_rows, dtype=np.uint32) % per_ts,
            "close": np.arange(n_rows, dtype=np.float64),
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    per_ts=st.integers(1, 7),
    sizes=st.lists(st.integers(1, 400), min_size=0, max_size=12),
    min_rows=st.sampled_from([1, 50, 1 << 16]),
)
def test_pages_cover_the_rows_in_order_with_whole_timestamps(
    per_ts: int, sizes: list[int], min_rows: int
) -> None:
    frame = chunked(engine_like(1_000, per_ts), sizes)
    old = chunks.MIN_PAGE_ROWS
    chunks.MIN_PAGE_ROWS = min_rows
    try:
        check_pages(frame, timestamp_pages(frame))
    finally:
        chunks.MIN_PAGE_ROWS = old


def test_large_chunks_between_timestamps_are_kept_in_place() -> None:
    big = chunks.MIN_PAGE_ROWS
    frame = chunked(engine_like(3 * big, 1), [big, big])
    pages = timestamp_pages(frame)
    assert [p.height for p in pages] == [big, big, big]
    for page, start in zip(pages, range(0, 3 * big, big), strict=True):
        source = frame.slice(start, big).rechunk()  # a slice of one chunk: no copy
        assert address(page.get_column("close")) == address(source.get_column("close"))


def test_a_chunk_boundary_inside_a_timestamp_gets_a_bridge_of_that_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunks, "MIN_PAGE_ROWS", 100)
    frame = chunked(engine_like(1_000, 5), [402])  # rows 400-404 are one timestamp
    pages = timestamp_pages(frame)
    check_pages(frame, pages)
    assert [p.height for p in pages] == [400, 5, 595]
    assert pages[1].get_column("ts").n_unique() == 1  # the bridge: the split timestamp alone
    first, last = frame.slice(0, 400).rechunk(), frame.slice(405).rechunk()
    assert address(pages[0].get_column("close")) == address(first.get_column("close"))
    assert address(pages[2].get_column("close")) == address(last.get_column("close"))


def test_one_chunk_frame_is_one_page_unchanged() -> None:
    frame = engine_like(500, 3)
    (page,) = timestamp_pages(frame)
    assert address(page.get_column("close")) == address(frame.get_column("close"))


class BatchTop(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        best = np.argsort(-batch["score"], kind="stable")[:3]
        context.rebalance(dict.fromkeys(batch.asset_ids[best].tolist(), 0.3))


class PerBar(Strategy):
    def on_market_data(self, event: Any, context: Any) -> None:
        held = context.position(event.asset_id)
        if event.signals["signal"] > 0.0 and held == 0.0:
            context.submit_order(event.asset_id, 10.0)
        elif event.signals["signal"] < 0.0 and held != 0.0:
            context.close_position(event.asset_id)


STRATEGIES = {
    "signal": lambda: SignalStrategy("signal", quantity=7.0),
    "top_k": lambda: TopKStrategy("score", k=3, bottom_k=1),
    "batch": BatchTop,
    "per_bar": PerBar,
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_run_over_pages_equals_the_run_over_one_chunk(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row groups that end inside a timestamp and pages far smaller than the default, so
    the run crosses every kind of page (kept, bridge, merged); every record frame is equal."""
    monkeypatch.setattr(chunks, "MIN_PAGE_ROWS", 40)
    bars = make_bars(n_assets=6, n_bars=300, seed=5)
    config = BacktestConfig(
        initial_cash=100_000.0,
        commission={"model": "percent", "rate": 0.001},
        account={"initial_margin": None},
    )
    runs = []
    for frame in (bars, chunked(bars, [203, 7, 17, 600, 31, 250] * 4)):
        feed = PolarsDataFeed(frame)
        runs.append(Backtest(feed, STRATEGIES[name](), config=config).run(progress=False))
        if frame is not bars:
            assert len(feed.engine_pages) > 5  # the run really crossed pages
    one, paged = runs
    for frame in ("fills", "trades", "equity", "rejected_orders", "orders", "order_events"):
        assert getattr(one, frame).equals(getattr(paged, frame)), frame
    assert one.metrics == pytest.approx(paged.metrics, nan_ok=True)
