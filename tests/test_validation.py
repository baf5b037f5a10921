"""Validation of every row: one bad input per rule (the message names the column and the rule,
in memory and streaming), ``validate()`` reports the same findings without raising, and the
cleaning policies touch exactly the rows they say."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import PolarsDataFeed
from ml4t.backtest.data import DataCleaningWarning, ValidationReport, validate
from ml4t.backtest.errors import DataValidationError, SignalTimingError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=3, n_bars=6, seed=5)  # sorted by (timestamp, asset)
ROW = 4
KEY = f"({BARS['timestamp'][ROW]}, {BARS['asset'][ROW]})"


def set_value(column: str, value: Any, row: int = ROW, df: pl.DataFrame = BARS) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=df.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
    )


def signals_frame(**extra: Any) -> pl.DataFrame:
    return BARS.select("timestamp", "asset", pl.col("score").alias("pred")).with_columns(**extra)


def prices(df: pl.DataFrame, **options: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"prices": df, **options}


def cast(column: str, dtype: Any) -> pl.DataFrame:
    return BARS.with_columns(pl.col(column).cast(dtype))


def tz(df: pl.DataFrame, zone: str) -> pl.DataFrame:
    return df.with_columns(pl.col("timestamp").dt.replace_time_zone(zone))


LATE = pl.col("timestamp") + pl.duration(hours=1)
DUP = pl.concat([BARS, BARS.slice(ROW, 1)])
DUP_SIGNAL = pl.concat([signals_frame(), signals_frame().head(1)])
E, T = DataValidationError, SignalTimingError

# (name, feed kwargs, column named, rule named, error class)
CASES: list[tuple[str, Callable[[], dict[str, Any]], str, str, type[Exception]]] = [
    ("missing column", prices(BARS.drop("high")), "high", "missing_column", E),
    ("missing asset column", prices(BARS.drop("asset")), "asset", "missing_column", E),
    ("string price", prices(cast("open", pl.String)), "open", "dtype", E),
    ("string timestamp", prices(cast("timestamp", pl.String)), "timestamp", "dtype", E),
    ("string feature", prices(BARS.with_columns(note=pl.lit("x"))), "note", "dtype", E),
    ("null close", prices(set_value("close", None)), "close", "null", E),
    ("null timestamp", prices(set_value("timestamp", None)), "timestamp", "null", E),
    ("null asset", prices(set_value("asset", None)), "asset", "null", E),
    ("null feature", prices(set_value("score", None)), "score", "null", E),
    ("NaN high", prices(set_value("high", math.nan)), "high", "not_finite", E),
    ("inf volume", prices(set_value("volume", math.inf)), "volume", "not_finite", E),
    ("inf feature", prices(set_value("score", math.inf)), "score", "not_finite", E),
    ("duplicate row", prices(DUP), "asset", "duplicate", E),
    (
        "unsorted",
        prices(BARS.reverse(), validation={"sort": "raise"}),
        "timestamp",
        "sort_order",
        E,
    ),
    ("zero open", prices(set_value("open", 0.0)), "open", "positive_price", E),
    ("negative low", prices(set_value("low", -1.0)), "low", "positive_price", E),
    ("negative volume", prices(set_value("volume", -5.0)), "volume", "non_negative_volume", E),
    ("low above high", prices(set_value("low", 1e6)), "low", "ohlc", E),
    ("close above high", prices(set_value("close", 1e6)), "close", "ohlc", E),
    ("open below low", prices(set_value("open", 1e-3)), "open", "ohlc", E),
    (
        "naive and aware",
        prices(BARS, signals=tz(signals_frame(), "UTC")),
        "signals.timestamp",
        "timezone",
        E,
    ),
    (
        "two time zones",
        prices(tz(BARS, "UTC"), signals=tz(signals_frame(), "Europe/Berlin")),
        "signals.timestamp",
        "timezone",
        E,
    ),
    (
        "column clash",
        prices(BARS, signals=signals_frame(score=pl.lit(1.0))),
        "signals.score",
        "column_clash",
        E,
    ),
    ("duplicate signal", prices(BARS, signals=DUP_SIGNAL), "signals.asset", "duplicate", E),
    (
        "signal available late",
        prices(BARS, signals=signals_frame(available_at=LATE)),
        "signals.available_at",
        "signal_timing",
        T,
    ),
    ("not a frame", prices({"close": [1.0]}), "prices", "source", E),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("streaming", [False, True], ids=["memory", "streaming"])
@pytest.mark.parametrize(
    ("make", "column", "rule", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_rule_raises_naming_column_and_rule(
    make: Callable[[], dict[str, Any]],
    column: str,
    rule: str,
    error: type[Exception],
    streaming: bool,
) -> None:
    kwargs = make()
    prices = kwargs.pop("prices")
    if streaming:
        kwargs["chunk_rows"] = 4
    with pytest.raises(error) as info:
        feed = PolarsDataFeed(prices, **kwargs)
        list(feed.iter_chunks())  # a streaming feed checks rows as it reads them
    message = str(info.value)
    assert message.startswith(f"{column}: {rule}:"), message
    # validate() finds the same thing without raising
    report = validate(prices, **kwargs)
    assert not report.ok
    assert any(f.rule == rule and f.column == column for f in report.errors), str(report)
    with pytest.raises(error):
        report.raise_if_failed()


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("close", math.nan, "not_finite"),
        ("volume", -1.0, "non_negative_volume"),
        ("open", 1e6, "ohlc"),
        ("score", None, "null"),
    ],
)
def test_message_gives_count_and_first_keys(column: str, value: Any, rule: str) -> None:
    with pytest.raises(DataValidationError) as info:
        PolarsDataFeed(set_value(column, value))
    message = str(info.value)
    assert message.startswith(f"{column}: {rule}:"), message
    assert "1 row breaks it" in message
    assert KEY in message, message


def test_counts_and_keys_cover_every_row_not_a_sample() -> None:
    n = 2_000
    df = make_bars(n_assets=2, n_bars=n, seed=1, interval="1m")
    bad = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 3)
        .then(-1.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    expected = sum(1 for i in range(2 * n) if i % 7 == 3)
    for options in ({}, {"chunk_rows": 500}):
        report = validate(bad, **options)
        (finding,) = report.errors
        assert (finding.rule, finding.column, finding.count) == (
            "non_negative_volume",
            "volume",
            expected,
        )
        assert len(finding.keys) == 5
        assert report.rows == 2 * n


def test_null_timestamp_names_the_row() -> None:
    for options in ({}, {"chunk_rows": 4}):
        with pytest.raises(DataValidationError, match=r"\[4\]"):
            list(PolarsDataFeed(set_value("timestamp", None), **options).iter_chunks())


def test_report_of_good_data_and_of_a_feed() -> None:
    report = validate(BARS)
    assert report.ok and report.rows == BARS.height and report.chunks == 1
    assert "OK" in str(report)
    streaming = PolarsDataFeed(BARS, chunk_rows=5)
    report = validate(streaming)
    assert report.ok and report.rows == BARS.height and report.chunks == 6  # 3 rows a timestamp
    assert isinstance(validate(PolarsDataFeed(BARS)), ValidationReport)


def test_report_lists_several_problems() -> None:
    df = set_value("volume", -1.0, row=1, df=set_value("close", math.nan, row=2))
    report = validate(pl.concat([df, df.slice(0, 1)]))
    rules = {(f.rule, f.column) for f in report.errors}
    assert {
        ("duplicate", "asset"),
        ("not_finite", "close"),
        ("non_negative_volume", "volume"),
    } <= rules
    assert "FAILED (" in str(report)


def test_sort_policy_sorts_by_default() -> None:
    shuffled = BARS.sample(fraction=1.0, shuffle=True, seed=3)
    assert PolarsDataFeed(shuffled).frame.equals(PolarsDataFeed(BARS).frame)


def test_one_time_zone_across_files(tmp_path: Path) -> None:
    BARS.head(6).write_parquet(tmp_path / "a.parquet")
    BARS.tail(12).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")).write_parquet(
        tmp_path / "b.parquet"
    )
    with pytest.raises(DataValidationError, match=r"^prices\.timestamp: timezone:"):
        PolarsDataFeed(str(tmp_path / "*.parquet"))


def test_tz_aware_bound_for_naive_data() -> None:
    from datetime import timezone

    with pytest.raises(DataValidationError, match=r"^start: timezone:"):
        PolarsDataFeed(BARS, start=datetime(2020, 1, 2, tzinfo=timezone.utc))


# --------------------------------------------------------------------------- cleaning


def cleaned(df: pl.DataFrame, **policy: str) -> PolarsDataFeed:
    """The feed under a policy chosen by name: its cleaning is recorded, not warned about
    (tests/test_warnings.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCleaningWarning)
        feed = PolarsDataFeed(df, validation=policy)
    assert feed.cleaning
    return feed


def test_drop_policies_report_rows() -> None:
    df = set_value("close", math.nan, row=1, df=set_value("open", -2.0, row=2))
    df = set_value("volume", -3.0, row=5, df=set_value("low", 1e6, row=7, df=df))
    df = pl.concat([df, df.slice(0, 1)])
    feed = cleaned(df, missing="drop", prices="drop", volume="drop", ohlc="drop", duplicates="drop")
    touched = {c.rule: c.rows for c in feed.cleaning}
    assert touched == {
        "duplicate": 1,
        "missing": 1,
        "positive_price": 1,
        "non_negative_volume": 1,
        "ohlc": 1,
    }
    assert len(feed) == BARS.height - 4
    assert validate(feed).cleaning == feed.cleaning


def test_clip_policies() -> None:
    df = set_value("volume", -3.0, row=2, df=set_value("close", 1e6, row=4))
    df = set_value("low", 1e6, row=7, df=df)  # low above high: swapped, then clipped
    feed = cleaned(df, volume="clip", ohlc="clip")
    assert {c.rule: c.rows for c in feed.cleaning} == {"non_negative_volume": 1, "ohlc": 2}
    frame = feed.frame
    assert frame["volume"][2] == 0.0
    assert frame["close"][4] == frame["high"][4]
    assert (frame["low"] <= frame["high"]).all()
    assert ((frame["open"] >= frame["low"]) & (frame["open"] <= frame["high"])).all()
    assert len(feed) == BARS.height


def blank_bar(df: pl.DataFrame, rows: pl.Expr) -> pl.DataFrame:
    """Every OHLCV value of ``rows`` null (a bar with no prices)."""
    return df.with_columns(
        pl.when(rows).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    )


def test_forward_fill_takes_the_assets_previous_bar() -> None:
    n_assets = 3
    df = blank_bar(BARS, pl.int_range(pl.len()) == ROW)  # asset 1 at t=1; its previous bar: row 1
    feed = cleaned(df, missing="ffill")
    for column in ("open", "high", "low", "close", "volume"):
        assert feed.frame[column][ROW] == BARS[column][ROW - n_assets]
    assert [str(c) for c in feed.cleaning] == [
        "open/high/low/close/volume: missing: forward-filled 1 rows"
    ]
    # a value missing on an asset's first bar has nothing to fill from: still an error
    with pytest.raises(DataValidationError, match=r"^open: null:"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataCleaningWarning)
            PolarsDataFeed(
                blank_bar(BARS, pl.int_range(pl.len()) == 0), validation={"missing": "ffill"}
            )
    # filling one price from the previous bar can break OHLC consistency: still checked
    with pytest.raises(DataValidationError, match=r"^\w+: ohlc:"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataCleaningWarning)
            PolarsDataFeed(set_value("close", None), validation={"missing": "ffill"})


def test_streaming_cleaning_equals_in_memory() -> None:
    """Forward-fill across a chunk boundary uses the previous chunk's last bar."""
    df = make_bars(n_assets=4, n_bars=40, seed=2)
    holes = pl.int_range(pl.len()) % 9 == 5
    df = blank_bar(df, holes).with_columns(
        pl.when(holes).then(None).otherwise(pl.col("score")).alias("score"),
    )
    policy = {"missing": "ffill", "missing_signals": "ffill"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataCleaningWarning)
        memory = PolarsDataFeed(df, validation=policy)
        for chunk_rows in (1, 4, 7, 50):
            streaming = PolarsDataFeed(df, chunk_rows=chunk_rows, validation=policy)
            assert pl.concat(list(streaming.iter_chunks())).equals(memory.frame)
            assert streaming.cleaning == memory.cleaning
    assert memory.frame["close"].is_not_null().all()


@pytest.mark.parametrize("action", ["nan", "drop", "ffill"])
def test_missing_signal_policies(action: str) -> None:
    df = set_value("score", None)
    feed = cleaned(df, missing_signals=action)
    (entry,) = feed.cleaning
    assert (entry.rule, entry.column, entry.rows) == ("missing_signals", "score", 1)
    if action == "nan":
        assert math.isnan(feed.frame["score"][ROW])
    elif action == "drop":
        assert len(feed) == BARS.height - 1
    else:
        assert feed.frame["score"][ROW] == BARS["score"][ROW - 3]
