"""``_core.group_runs`` (the order journal's histories, issue 18): the lists it makes over a
frame sorted by its key are what a Polars grouping of that frame gives, dtypes, order and
values (nulls, long and short strings, time zones, empty frames), without copying the rows."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from ml4t.backtest._core import group_runs


def _grouped(frame: pl.DataFrame) -> pl.DataFrame:
    rest = [c for c in frame.columns if c != "key"]
    return frame.group_by("key", maintain_order=True).agg(pl.struct(*rest).alias("rows"))


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(1, max(n // 3, 2), n)).astype(np.uint64)
    words = ["filled", "partially_filled", "a", "a long string beyond the inline views"]
    return pl.DataFrame(
        {
            "key": keys,
            "ts": pl.Series(rng.integers(0, 10**15, n)).cast(pl.Datetime("ns", "Europe/Berlin")),
            "word": [None if i % 7 == 0 else words[i % 4] for i in range(n)],
            "value": [None if i % 5 == 0 else float(i) for i in range(n)],
        },
        schema_overrides={"key": pl.UInt64, "word": pl.String, "value": pl.Float64},
    )


@pytest.mark.parametrize(("n", "seed"), [(0, 0), (1, 1), (2, 2), (50, 3), (5_000, 4)])
def test_runs_equal_a_grouping_of_the_sorted_frame(n: int, seed: int) -> None:
    frame = _frame(n, seed)
    runs = pl.DataFrame(group_runs(frame, "key", "rows"))
    expected = _grouped(frame)
    assert runs.schema == expected.schema
    assert_frame_equal(runs, expected, check_exact=True)


def test_the_lists_keep_the_columns_order_and_the_key_may_be_anywhere() -> None:
    frame = pl.DataFrame(
        {"b": [1.0, 2.0, 3.0], "key": [4, 4, 9], "a": ["x", "y", "z"]},
        schema_overrides={"key": pl.UInt64},
    )
    runs = pl.DataFrame(group_runs(frame, "key", "rows"))
    assert runs["key"].to_list() == [4, 9]
    assert runs["rows"].to_list() == [
        [{"b": 1.0, "a": "x"}, {"b": 2.0, "a": "y"}],
        [{"b": 3.0, "a": "z"}],
    ]


def test_bad_input_is_refused() -> None:
    frame = pl.DataFrame(
        {"key": [2, 1], "v": [datetime(2024, 1, 1), datetime(2024, 1, 2)]},
        schema_overrides={"key": pl.UInt64},
    )
    with pytest.raises(ValueError, match="not sorted"):
        group_runs(frame, "key", "rows")
    with pytest.raises(ValueError, match="no column"):
        group_runs(frame, "missing", "rows")
    with pytest.raises(ValueError, match="UInt64"):
        group_runs(frame.with_columns(pl.col("key").cast(pl.Int64)), "key", "rows")
    with pytest.raises(ValueError, match="UInt64"):
        group_runs(pl.DataFrame({"key": [1, None]}, schema={"key": pl.UInt64}), "key", "rows")
    ordered = frame.sort("key").to_arrow()
    two = pa.Table.from_batches([*ordered[:1].to_batches(), *ordered[1:].to_batches()])
    with pytest.raises(ValueError, match="one chunk"):
        group_runs(two, "key", "rows")
