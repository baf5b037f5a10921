"""Zero-copy data paths: the engine reads the feed's Arrow buffers in place, the batch views are
slices of the same buffers, and result tables come back as Arrow streams."""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TimestampBatch,
    _core,
)
from ml4t.backtest.results import result as result_module
from ml4t.backtest.synthetic import make_bars


def address(series: pl.Series) -> int:
    """Address of the first value of a single-chunk numeric Series (read without a copy)."""
    assert series.n_chunks() == 1
    return int(series.to_numpy().__array_interface__["data"][0])


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=4, n_bars=50, seed=21))


def test_engine_frame_schema(feed: PolarsDataFeed) -> None:
    frame = feed.engine_frame
    assert frame.schema["ts"] == pl.Int64
    assert frame.schema["asset_id"] == pl.UInt32
    for column in ("open", "high", "low", "close", "volume", "score", "signal"):
        assert frame.schema[column] == pl.Float64
        assert frame[column].n_chunks() == 1
    assert feed.engine_frame is feed.engine_frame  # no new frame per access


@pytest.mark.parametrize("column", ["close", "open", "volume", "score", "signal", "ts"])
def test_rust_reads_the_feed_buffers_in_place(feed: PolarsDataFeed, column: str) -> None:
    frame = feed.engine_frame
    rust = _core.column_address(frame, column)
    assert rust is not None
    assert rust == address(frame[column])


def test_column_address_of_unknown_column_is_none(feed: PolarsDataFeed) -> None:
    assert _core.column_address(feed.engine_frame, "nope") is None


def test_column_address_differs_for_a_real_copy(feed: PolarsDataFeed) -> None:
    """Control: a frame whose buffers were really copied has another address."""
    frame = feed.engine_frame
    copied = frame.with_columns(pl.Series("close", frame["close"].to_numpy().copy()))
    assert _core.column_address(copied, "close") == address(copied["close"])
    assert _core.column_address(copied, "close") != address(frame["close"])


def test_joined_signal_column_is_read_in_place() -> None:
    df = make_bars(n_assets=3, n_bars=30, seed=22)
    feed = PolarsDataFeed(df.drop("score"), signals=df.select("timestamp", "asset", "score"))
    frame = feed.engine_frame
    assert _core.column_address(frame, "score") == address(frame["score"])


def test_batch_views_are_slices_of_the_feed_buffers(feed: PolarsDataFeed) -> None:
    base = {c: address(feed.engine_frame[c]) for c in ("close", "score")}
    ids_base = address(feed.engine_frame["asset_id"])
    checked: list[int] = []

    class Probe(Strategy):
        def __init__(self) -> None:
            self.row = 0

        def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
            for column, start in base.items():
                view = batch[column]
                assert not view.flags.writeable
                assert view.__array_interface__["data"][0] == start + 8 * self.row
            ids = batch.asset_ids
            assert ids.__array_interface__["data"][0] == ids_base + 4 * self.row
            self.row += len(batch)
            checked.append(len(batch))

    Backtest(feed, Probe()).run()
    assert sum(checked) == feed.engine_frame.height


def test_result_tables_come_back_as_arrow(feed: PolarsDataFeed) -> None:
    raw = _core.run_builtin(
        feed.engine_frame,
        {"names": feed.assets, "time_zone": feed.time_zone},
        BacktestConfig().engine_dict(),
        SignalStrategy("signal", quantity=5.0).spec(),
    )
    assert set(raw) == {
        "fills",
        "trades",
        "equity",
        "rejections",
        "financing",
        "splits",
        "orders",
        "cash",
        "order_events",
        "non_member_pnl",
    }
    for table in raw.values():
        assert isinstance(table, _core.ArrowTable)
        assert hasattr(table, "__arrow_c_stream__")
    equity = raw["equity"]
    assert len(equity) == feed.engine_frame["ts"].n_unique()
    first = pl.DataFrame(equity)
    second = pl.DataFrame(equity)
    assert first.schema["ts"] == pl.Int64
    for column in ("cash", "long_value", "short_value", "equity"):
        assert first.schema[column] == pl.Float64
        # two imports of the same table see the same Rust-owned buffer: nothing was copied
        assert address(first[column]) == address(second[column])

    result = Backtest(feed, SignalStrategy("signal", quantity=5.0)).run()
    assert result.equity["equity"].dtype == pl.Float64
    assert result.equity["equity"].to_list() == first["equity"].to_list()
    assert result.equity["cash"].to_list() == first["cash"].to_list()
    np.testing.assert_array_equal(
        result.fills["price"].to_numpy(), pl.DataFrame(raw["fills"])["price"].to_numpy()
    )
    assert result.fills.height == len(raw["fills"]) > 0
    assert result.trades.height == len(raw["trades"]) > 0
    np.testing.assert_allclose(
        result.equity["equity"].to_numpy(),
        (result.equity["cash"] + result.equity["positions_value"]).to_numpy(),
    )


def test_table_columns_share_the_buffers(
    feed: PolarsDataFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ArrowTable.columns`` splits a table into one table per column over the same buffers,
    and a result's tables imported column by column equal their import at once."""
    monkeypatch.setattr(result_module, "_SPLIT_ROWS", 0)
    raw = _core.run_builtin(
        feed.engine_frame,
        {"names": feed.assets, "time_zone": feed.time_zone},
        BacktestConfig().engine_dict(),
        SignalStrategy("signal", quantity=5.0).spec(),
    )
    for table in raw.values():
        whole = pl.DataFrame(table)
        columns = table.columns()
        assert [c for part in columns for c in pl.DataFrame(part).columns] == whole.columns
        assert all(len(part) == len(table) for part in columns)
        for part in columns:
            column = pl.DataFrame(part).to_series()
            assert column.equals(whole[column.name])
            if column.dtype == pl.Float64 and column.len():
                assert address(column) == address(whole[column.name])
        assert_frame_equal(result_module._import_table(table), whole)


def _glibc_in_use() -> int:
    """Bytes glibc's allocator (the engine's) has handed out and not yet taken back."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks "
            "keepcost".split()
        ]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's mallinfo2")
def test_engine_columns_a_frame_drops_are_freed() -> None:
    """Building ``orders`` and ``order_events`` frees the engine columns they do not keep
    (the raw quantities, prices, codes): each engine column is its own import, so one kept
    column (the order ids) no longer holds its whole table alive."""
    n = 200_000
    bars = make_bars(n_assets=1, n_bars=n, seed=3, interval="1m")
    bars = bars.with_columns(signal=pl.Series([1.0, -1.0] * (n // 2)))
    config = BacktestConfig(account={"initial_margin": None})
    result = Backtest(PolarsDataFeed(bars), SignalStrategy("signal", quantity=1), config=config)
    result = result.run(progress=False)
    raw_bytes = sum(result._raw[name].estimated_size() for name in ("orders", "order_events"))
    before = _glibc_in_use()
    assert result.orders.height >= n // 2 - 1
    freed = before - _glibc_in_use()
    # The two frames keep `order_id` and `ts` of each table (4 of its 23 columns); most of
    # the rest is freed (the whole table stayed allocated before).
    assert freed > raw_bytes / 2, (freed, raw_bytes)
