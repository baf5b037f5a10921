"""Hostile data gets a named validation error, never a raw dependency exception or a panic, and
``validate()`` always agrees with the feed: timestamps outside the engine's nanosecond range
(r06) and feature columns named like the engine frame's own columns (r03)."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from ml4t.backtest import PolarsDataFeed, validate
from ml4t.backtest.errors import DataValidationError, InternalError, panics_as_bugs
from ml4t.backtest.synthetic import make_bars


def _bars(ts: object) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": ts,
            "asset": ["A", "A"],
            "open": [10.0, 11.0],
            "high": [12.0, 12.0],
            "low": [9.0, 9.0],
            "close": [11.0, 10.0],
            "volume": [1.0, 1.0],
        }
    )


OUT_OF_RANGE = {
    "date_sentinel": _bars([date(2024, 1, 2), date(9999, 12, 31)]),
    "before_1677": _bars([datetime(1600, 1, 2), datetime(2024, 1, 2)]),
    "ms_near_int64_end": _bars(
        pl.Series([2**63 // 1000 - 2, 2**63 // 1000 - 1], dtype=pl.Int64).cast(pl.Datetime("ms"))
    ),
    "us_tz_aware": _bars(
        pl.Series([datetime(2024, 1, 2), datetime(2300, 1, 1)]).dt.replace_time_zone("UTC")
    ),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
@pytest.mark.parametrize("streaming", [False, True])
def test_timestamps_outside_the_ns_range_are_a_named_finding(case: str, streaming: bool) -> None:
    frame = OUT_OF_RANGE[case]
    options = {"chunk_rows": 1} if streaming else {}
    with pytest.raises(DataValidationError, match=r"^timestamp: timestamp_range: ") as info:
        PolarsDataFeed(frame, **options)  # type: ignore[arg-type]
    assert "rows" in str(info.value)
    report = validate(frame, **options)
    assert not report.ok
    assert [(f.rule, f.column) for f in report.errors] == [("timestamp_range", "timestamp")]
    expected_row = 0 if case in ("before_1677", "ms_near_int64_end") else 1
    assert report.errors[0].keys[0] == f"[{expected_row}]"
    assert str(report.errors[0].exception()) == str(info.value)  # feed and report agree


def test_a_joined_frame_with_a_sentinel_date_is_named() -> None:
    bars = make_bars(n_assets=2, n_bars=5, seed=1)
    signals = pl.DataFrame(
        {"timestamp": [date(9999, 12, 31)], "asset": ["A0000"], "alpha": [1.0]}
    ).with_columns(pl.col("timestamp").cast(pl.Date))
    with pytest.raises(DataValidationError, match=r"^signals\.timestamp: timestamp_range: "):
        PolarsDataFeed(bars, signals)
    report = validate(bars, signals=signals)
    assert [f.rule for f in report.errors] == ["timestamp_range"]


def test_in_range_extremes_still_load() -> None:
    frame = _bars([datetime(1678, 1, 2), datetime(2262, 4, 10)])
    feed = PolarsDataFeed(frame)
    assert feed.frame.height == 2
    assert validate(frame).ok


@pytest.mark.parametrize("name", ["ts", "asset_id", "__asset_code", "__carry"])
def test_reserved_feature_names_are_a_named_finding(name: str) -> None:
    bars = make_bars(n_assets=2, n_bars=3, seed=1).with_columns(pl.lit(1.0).alias(name))
    with pytest.raises(DataValidationError, match=rf"^{name}: reserved_name: ") as info:
        PolarsDataFeed(bars)
    report = validate(bars)
    assert [(f.rule, f.column) for f in report.errors] == [("reserved_name", name)]
    assert str(report.errors[0].exception()) == str(info.value)
    renamed = PolarsDataFeed(bars, rename={name: "my_feature"})  # the documented way out
    assert "my_feature" in renamed.signal_columns


def test_reserved_names_in_a_joined_frame() -> None:
    bars = make_bars(n_assets=2, n_bars=3, seed=1)
    signals = bars.select("timestamp", "asset", pl.lit(2.0).alias("asset_id"))
    with pytest.raises(DataValidationError, match=r"^signals\.asset_id: reserved_name: "):
        PolarsDataFeed(bars.drop("score", "signal"), signals)


def test_a_feature_named_row_streams() -> None:
    bars = make_bars(n_assets=2, n_bars=10, seed=1).with_columns(pl.lit(1.0).alias("row"))
    streamed = PolarsDataFeed(bars, chunk_rows=4)
    assert streamed.frame.equals(PolarsDataFeed(bars).frame)


def test_a_panic_in_a_dependency_is_an_internal_error() -> None:
    class PanicException(BaseException):  # what pyo3 raises; not an Exception
        pass

    with pytest.raises(InternalError, match=r"^feed: internal_error: .*this is a bug") as info:
        with panics_as_bugs("feed"):
            raise PanicException("index out of bounds")
    assert isinstance(info.value.__cause__, PanicException)
    with pytest.raises(KeyboardInterrupt):  # other BaseExceptions pass through
        with panics_as_bugs("feed"):
            raise KeyboardInterrupt
