"""Any table a quant already holds is a feed: pandas (long, DatetimeIndex, MultiIndex, wide),
pyarrow Tables and RecordBatchReaders, anything with ``__arrow_c_stream__``; the timestamp
column is found by its usual names; validation stays as strict."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from ml4t.backtest import Backtest, PolarsDataFeed, TopKStrategy, validate
from ml4t.backtest.errors import DataValidationError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=4, n_bars=30, seed=3)
REFERENCE = PolarsDataFeed(BARS)


class ArrowStream:
    """A minimal third-party table: only the Arrow C stream interface."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def _same_as_reference(feed: PolarsDataFeed) -> None:
    assert feed.assets == REFERENCE.assets
    assert feed.frame.equals(REFERENCE.frame)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BARS.to_pandas(),
        lambda: BARS.to_pandas().set_index("timestamp").rename_axis(None),
        lambda: BARS.to_pandas().set_index(["timestamp", "asset"]),
        lambda: BARS.to_arrow(),
        lambda: pa.RecordBatchReader.from_batches(
            BARS.to_arrow().schema, BARS.to_arrow().to_batches(max_chunksize=17)
        ),
        lambda: ArrowStream(BARS.to_arrow()),
    ],
    ids=["pandas", "pandas_datetimeindex", "pandas_multiindex", "pyarrow", "reader", "capsule"],
)
def test_foreign_tables_give_the_same_engine_frame(make: object) -> None:
    _same_as_reference(PolarsDataFeed(make()))  # type: ignore[operator]


def test_signals_and_benchmarks_from_pandas() -> None:
    prices = BARS.drop("score")
    signals = BARS.select("timestamp", "asset", "score").to_pandas()
    feed = PolarsDataFeed(prices, signals)
    result = Backtest(feed, TopKStrategy("score", k=2)).run(progress=False)
    expected = Backtest(PolarsDataFeed(BARS), TopKStrategy("score", k=2)).run(progress=False)
    assert result.fills.equals(expected.fills)
    closes = BARS.filter(pl.col("asset") == "A0000").select("timestamp", "close")
    as_frame = result.metrics_vs(closes)
    as_pandas = result.metrics_vs(closes.to_pandas().set_index("timestamp")["close"])
    as_numpy = result.metrics_vs(closes["close"].to_numpy())
    assert as_pandas["beta"] == pytest.approx(as_frame["beta"], rel=1e-12)
    assert as_numpy["beta"] == pytest.approx(as_frame["beta"], rel=1e-12)


@pytest.mark.parametrize("name", ["date", "Date", "DATETIME", "time"])
def test_the_timestamp_column_is_found_by_its_usual_names(name: str) -> None:
    feed = PolarsDataFeed(BARS.rename({"timestamp": name}))
    assert feed.frame.equals(REFERENCE.frame)


def test_two_timestamp_candidates_are_an_error_that_lists_them() -> None:
    frame = BARS.rename({"timestamp": "date"}).with_columns(pl.col("date").alias("time"))
    with pytest.raises(DataValidationError, match=r"several columns .*\['date', 'time'\]"):
        PolarsDataFeed(frame)


def test_friendliness_never_loosens_validation() -> None:
    with pytest.raises(DataValidationError, match=r"^asset: missing_column: "):
        PolarsDataFeed(BARS.drop("asset").to_pandas())
    with pytest.raises(DataValidationError, match=r"^prices: source: expected a polars "):
        PolarsDataFeed([1, 2, 3])  # type: ignore[arg-type]
    unnamed = BARS.to_pandas().set_index(["timestamp", "asset"])
    unnamed.index.names = ["timestamp", None]
    with pytest.raises(DataValidationError, match=r"MultiIndex needs every level named"):
        PolarsDataFeed(unnamed)
    assert not validate(BARS.with_columns(pl.lit(-1.0).alias("close")).to_arrow()).ok


def _wide(field: str) -> pd.DataFrame:
    frame = BARS.pivot(on="asset", index="timestamp", values=field).sort("timestamp")
    return frame.to_pandas().set_index("timestamp")


def test_from_wide_equals_the_long_frame() -> None:
    feed = PolarsDataFeed.from_wide(
        _wide("close"),
        open=_wide("open"),
        high=_wide("high"),
        low=_wide("low"),
        volume=_wide("volume"),
        features={"score": _wide("score"), "signal": _wide("signal")},
    )
    _same_as_reference(feed)


def test_from_wide_with_closes_only_and_missing_history() -> None:
    close = pl.DataFrame(
        {
            "date": [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)],
            "SPY": [470.0, 468.5, 471.0],
            "NEW": [None, float("nan"), 10.0],
        }
    )
    feed = PolarsDataFeed.from_wide(close)
    frame = feed.frame
    assert feed.assets == ["NEW", "SPY"]
    assert frame.height == 4  # NEW has one bar: null and NaN closes are no bar
    assert frame["open"].equals(frame["close"].alias("open"))
    assert (frame["volume"] == 0.0).all()
    with pytest.raises(DataValidationError, match=r"^wide\.open: column_clash: "):
        PolarsDataFeed.from_wide(close, open=close.drop("NEW"))
    with pytest.raises(DataValidationError, match=r"^features\.close: column_clash: "):
        PolarsDataFeed.from_wide(close, features={"close": close})


def test_pandas_nan_prices_are_still_findings() -> None:
    frame = BARS.to_pandas()
    frame.loc[3, "close"] = np.nan
    report = validate(frame)  # pandas' NaN means "missing": it arrives as a null
    assert [(f.rule, f.column) for f in report.errors] == [("null", "close")]
