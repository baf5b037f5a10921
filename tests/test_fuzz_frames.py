"""Property tests of the feed on messy price frames (issue 11: trust under hostile input).

A hypothesis strategy draws a *spec* (plain Python values, so a failing example prints without
touching Polars) that is built into a frame: timestamps as Date or Datetime ns/us/ms, naive or
tz-aware, with values far outside the engine's nanosecond range (9999-12-31, 1600, the end of
int64 milliseconds) and nulls; assets as String, Categorical or Enum with hostile names (empty,
control characters, unicode, ``ts``); prices as float, int or string with NaN, ±inf, nulls,
zero, negatives and magnitudes from 1e-300 to 1e300; duplicate keys and unsorted rows; extra
feature columns with reserved or hostile names; missing columns; empty and one-row frames; and a
few validation policies. Properties:

(a) ``PolarsDataFeed(frame)`` succeeds or raises a ``BacktestError``, never a Polars, pyarrow or
    numpy exception and never a pyo3 ``PanicException``;
(b) ``validate(frame)`` never raises, and ``report.ok`` is True exactly when the feed builds;
    when it fails, the feed raises the report's first finding: same exception type, same message;
(c) every message reads ``location: rule: detail`` with the rule a ``[a-z_]+`` name;
(d) when the feed builds, a short backtest runs and gives finite equity at every timestamp, or
    raises a ``BacktestError``;
(e) when the feed builds, its frame passes every row check of the engine (which therefore takes
    the feed's frame without re-checking it).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy, validate
from ml4t.backtest._core import CheckedData
from ml4t.backtest.data.validation import Finding
from ml4t.backtest.errors import BacktestError

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_EPOCH = datetime(1970, 1, 1)
_DAY_US = 86_400 * 1_000_000
_PER_US = {"ns": 1_000, "us": 1, "ms": 0.001}


def _us(d: datetime) -> int:
    return (d - _EPOCH) // timedelta(microseconds=1)


# Timestamps as microseconds since the epoch (converted to the unit drawn); "far" values are
# outside the engine's int64-nanosecond range.
NORMAL_TS = [_us(datetime(2024, 1, d)) for d in range(1, 6)] + [_us(datetime(2024, 1, 2, 9, 30))]
FAR_TS = [
    _us(datetime(9999, 12, 31)),
    _us(datetime(1600, 1, 1)),
    _us(datetime(2262, 4, 12)),
    _us(datetime(1677, 9, 20)),
    _us(datetime(1678, 1, 2)),  # inside, near the start
    _us(datetime(2262, 4, 10)),  # inside, near the end
]
# raw physical int64 values for a millisecond column, near the end of int64
MS_END = [2**63 // 1000 - 1, 2**63 // 1000 - 2, -(2**63 // 1000) + 1]

ASSET_NAMES = [
    "A",
    "B",
    "C",
    "",
    "ts",
    "asset_id",
    "__x",
    "\x00",
    "a\nb",
    "\x1b[31mred",
    "é",
    "日本",
    "a: b",
    " ",
]
FEATURE_NAMES = [
    "score",
    "signal",
    "ts",
    "asset_id",
    "__x",
    "__asset_code",
    "",
    "\x07",
    "é",
    "a: b",
    "volume ",
    "Open",
    "row",
    "timestamp2",
]
FLOAT_VALUES = [
    1.0,
    2.5,
    10.0,
    100.0,
    1e-300,
    1e300,
    1e-12,
    1e15,
    0.0,
    -1.0,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    None,
]
POLICIES: list[dict[str, str] | None] = [
    None,
    {"sort": "raise"},
    {"duplicates": "drop"},
    {"missing": "drop", "prices": "drop", "volume": "clip", "ohlc": "clip"},
    {"missing": "ffill", "missing_signals": "nan", "ohlc": "drop"},
    {"missing_signals": "ffill", "duplicates": "drop", "volume": "drop"},
]


@st.composite
def timestamp_specs(draw: Any, n: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Date", "ns", "us", "ms"]))
    tz = draw(st.sampled_from([None, None, "UTC", "America/New_York", "Asia/Kolkata"]))
    if kind == "Date":
        tz = None
    far = draw(st.sampled_from([0, 0, 0, 1]))
    pool: list[Any] = NORMAL_TS + (FAR_TS if far else [])
    raw_ms = kind == "ms" and draw(st.integers(0, 5)) == 0
    if raw_ms:
        pool = MS_END + NORMAL_TS[:2]
    with_null = draw(st.integers(0, 9)) == 0
    values = [draw(st.sampled_from(pool + ([None] if with_null else []))) for _ in range(n)]
    return {"kind": kind, "tz": tz, "values": values, "raw_ms": raw_ms}


@st.composite
def column_specs(draw: Any, n: int, positive: bool) -> dict[str, Any]:
    dtype = "f64"
    if draw(st.integers(0, 3)) == 0:
        dtype = draw(st.sampled_from(["f32", "i64", "i32", "u8", "str", "bool"]))
    if positive and draw(st.integers(0, 3)) > 0:
        values: list[Any] = [draw(st.sampled_from([1.0, 2.0, 3.0, 10.0, 100.0])) for _ in range(n)]
    else:
        values = [draw(st.sampled_from(FLOAT_VALUES)) for _ in range(n)]
    return {"dtype": dtype, "values": values}


@st.composite
def frame_specs(draw: Any) -> dict[str, Any]:
    n = draw(st.sampled_from([0, 1, 1, 2, 3, 4, 5, 6]))
    sane = draw(st.integers(0, 4)) > 0  # a consistent OHLC frame most of the time
    spec: dict[str, Any] = {
        "n": n,
        "ts": draw(timestamp_specs(n)),
        "ts_name": draw(st.sampled_from(["timestamp"] * 9 + ["time"])),
        "asset_name": draw(st.sampled_from(["asset"] * 9 + ["symbol", "ticker", "name"])),
        "asset_dtype": draw(st.sampled_from(["str", "cat", "enum"])),
        "assets": [
            draw(st.sampled_from(["A", "B", "A", "B", "C", *ASSET_NAMES, None]))
            if draw(st.integers(0, 3)) == 0
            else draw(st.sampled_from(["A", "B"]))
            for _ in range(n)
        ],
        "sane": sane,
        "policy": draw(st.sampled_from(POLICIES)),
        "drop": draw(st.sampled_from([None] * 30 + ["open", "volume", "asset", "timestamp"])),
    }
    if sane:
        base = draw(st.sampled_from([1e-300, 1e-6, 1.0, 100.0, 1e6, 1e300]))
        spread = draw(st.sampled_from([1.0, 1.01, 2.0, 1e10]))
        scales = [0.5, 1.0, 1.5, 3.0] + ([1e-200, 1e200] if draw(st.integers(0, 4)) == 0 else [])
        scale = [draw(st.sampled_from(scales)) for _ in range(n)]
        spec["prices"] = {
            "dtype": draw(st.sampled_from(["f64", "f64", "f32", "i64"])),
            "base": base,
            "spread": spread,
            "scale": scale,
        }
        spec["volume"] = draw(column_specs(n, True))
        if draw(st.integers(0, 3)) == 0:  # one poisoned cell
            spec["poison"] = (
                draw(st.sampled_from(["open", "high", "low", "close", "volume"])),
                draw(st.integers(0, max(n - 1, 0))),
                draw(st.sampled_from(FLOAT_VALUES)),
            )
    else:
        spec["columns"] = {
            c: draw(column_specs(n, True)) for c in ("open", "high", "low", "close", "volume")
        }
    names = draw(st.lists(st.sampled_from(FEATURE_NAMES), max_size=3, unique=True))
    if draw(st.integers(0, 2)) > 0:  # mostly harmless names
        names = [name for name in names if name.isidentifier() and not name.startswith("__")]
        names = [name for name in names if name not in ("ts", "asset_id")]
    spec["features"] = {name: draw(column_specs(n, False)) for name in names}
    return spec


_DTYPES: dict[str, Any] = {
    "f64": pl.Float64,
    "f32": pl.Float32,
    "i64": pl.Int64,
    "i32": pl.Int32,
    "u8": pl.UInt8,
    "bool": pl.Boolean,
}


def _numeric(values: list[Any], dtype: str) -> pl.Series:
    """A column of ``values`` as ``dtype``; values the dtype cannot hold become null."""
    floats = pl.Series(values, dtype=pl.Float64)
    if dtype == "str":
        return pl.Series([None if v is None else repr(v) for v in values], dtype=pl.String)
    if dtype == "bool":
        return floats.cast(pl.Boolean, strict=False)
    target = _DTYPES[dtype]
    if target in (pl.Float64, pl.Float32):
        return floats.cast(target)
    finite = floats.fill_nan(None).map_elements(
        lambda v: v if math.isfinite(v) and abs(v) < 2**62 else None, return_dtype=pl.Float64
    )
    return finite.cast(target, strict=False)


def _timestamps(spec: dict[str, Any]) -> pl.Series:
    kind, tz, values = spec["kind"], spec["tz"], spec["values"]
    if spec["raw_ms"]:
        raw = pl.Series(
            [v if v is None or abs(v) > 2**40 else v // 1000 for v in values], dtype=pl.Int64
        )
        series = raw.cast(pl.Datetime("ms"))
    elif kind == "Date":
        days = [None if v is None else v // _DAY_US for v in values]
        series = pl.Series(days, dtype=pl.Int32).cast(pl.Date)
    else:
        per = _PER_US[kind]
        bound = 2**63 - 1  # a far date in ns does not fit int64: take int64's end instead
        raw = pl.Series(
            [None if v is None else max(-bound, min(bound, int(v * per))) for v in values],
            dtype=pl.Int64,
        )
        series = raw.cast(pl.Datetime(kind))  # physical values: nothing is range-checked here
    if tz is not None:  # metadata only: values are UTC instants, no conversion runs
        unit = series.dtype.time_unit  # type: ignore[attr-defined]
        series = series.cast(pl.Datetime(unit, "UTC")).dt.convert_time_zone(tz)
    return series


def build_frame(spec: dict[str, Any]) -> pl.DataFrame:
    n = spec["n"]
    columns: dict[str, pl.Series] = {spec["ts_name"]: _timestamps(spec["ts"])}
    assets = pl.Series(spec["assets"], dtype=pl.String)
    if spec["asset_dtype"] == "cat":
        assets = assets.cast(pl.Categorical)
    elif spec["asset_dtype"] == "enum":
        categories = sorted({a for a in spec["assets"] if a is not None})
        assets = assets.cast(pl.Enum(categories))
    columns[spec["asset_name"]] = assets
    if spec["sane"]:
        p = spec["prices"]
        mid = [p["base"] * s for s in p["scale"]]
        values = {
            "open": mid,
            "high": [m * p["spread"] for m in mid],
            "low": [m / p["spread"] for m in mid],
            "close": mid,
        }
        if "poison" in spec:
            column, row, value = spec["poison"]
            if n:
                target = values[column] if column != "volume" else spec["volume"]["values"]
                target[row] = value
        for name, vals in values.items():
            columns[name] = _numeric(vals, p["dtype"])
        columns["volume"] = _numeric(spec["volume"]["values"], spec["volume"]["dtype"])
    else:
        for name, col in spec["columns"].items():
            columns[name] = _numeric(col["values"], col["dtype"])
    for name, col in spec["features"].items():
        columns.setdefault(name, _numeric(col["values"], col["dtype"]))
    if spec["drop"] is not None:
        drop = {"asset": spec["asset_name"], "timestamp": spec["ts_name"]}.get(
            spec["drop"], spec["drop"]
        )
        columns.pop(drop, None)
    assert all(len(s) == n for s in columns.values())
    return pl.DataFrame(columns)


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if spec["ts_name"] != "timestamp":
        options["timestamp_column"] = spec["ts_name"]
    if spec["asset_name"] == "name":
        options["asset_column"] = "name"
    if spec["policy"] is not None:
        options["validation"] = spec["policy"]
    return options


def _is_panic(err: BaseException) -> bool:
    return type(err).__name__ == "PanicException"


def build_feed(frame: pl.DataFrame, options: dict[str, Any]) -> tuple[Any, BaseException | None]:
    """The feed, or the BacktestError it raised. Any other exception fails the test."""
    try:
        return PolarsDataFeed(frame, **options), None
    except BacktestError as err:
        return None, err
    except BaseException as err:
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        kind = "a pyo3 PanicException" if _is_panic(err) else f"a foreign {type(err).__module__}"
        pytest.fail(f"PolarsDataFeed raised {kind}: {type(err).__name__}: {err}")


MESSAGE = re.compile(r"^(?P<location>.*?): (?P<rule>[a-z_]+): (?P<detail>.+)$", re.S)


def check_message_shape(message: str) -> None:
    assert MESSAGE.match(message), f"message not 'location: rule: detail': {message!r}"


def check_finding_shape(finding: Finding) -> None:
    assert re.fullmatch(r"[a-z_]+", finding.rule), finding
    assert finding.message.startswith(f"{finding.column}: {finding.rule}: "), finding
    check_message_shape(finding.message)


@SETTINGS
@given(spec=frame_specs())
def test_feed_and_validate_agree_on_messy_frames(spec: dict[str, Any]) -> None:
    frame = build_frame(spec)
    options = _options(spec)

    # (a) the feed builds or raises a BacktestError
    feed, error = build_feed(frame, options)

    # (b) validate never raises, and agrees with the feed
    try:
        report = validate(frame, **options)
    except BaseException as err:
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        pytest.fail(f"validate raised {type(err).__module__}.{type(err).__name__}: {err}")
    assert report.ok == (error is None), (error, [f.message for f in report.errors])
    for finding in report.errors:
        check_finding_shape(finding)  # (c)
    event("feed builds" if error is None else f"feed raises {report.errors[0].rule}")
    if error is not None:
        first = report.errors[0].exception()
        assert type(first) is type(error), (first, error)
        assert str(first) == str(error)
        check_message_shape(str(error))  # (c)
        return

    # (e) what the feed built holds every rule the engine checks row by row, so the engine may
    # take the feed's frame without re-checking it (CheckedData(..., validated=True))
    assert feed is not None
    CheckedData(feed.frame, feed.n_assets)

    # (d) a short backtest over the feed: finite equity or a BacktestError
    check_short_backtest(feed)


class _Alternate(Strategy):  # type: ignore[misc]
    """Buys half the equity of the first asset with a price, sells it the next time, and sends
    one share of every asset as a market order."""

    def __init__(self) -> None:
        self.n = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        self.n += 1
        for asset in batch.assets:
            context.order_target_percent(asset, 0.5 if self.n % 2 else 0.0)
            context.submit_order(asset, 1.0)


def check_short_backtest(feed: PolarsDataFeed) -> None:
    for mode in ("next_open", "same_close"):
        config = BacktestConfig(execution={"mode": mode})
        try:
            result = Backtest(feed, _Alternate(), config=config).run(progress=False)
        except BacktestError as err:
            check_message_shape(str(err))
            continue
        except BaseException as err:
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            pytest.fail(f"the backtest raised {type(err).__module__}.{type(err).__name__}: {err}")
        equity = result.equity
        assert equity.height == feed.frame["ts"].n_unique()
        for column in ("cash", "positions_value", "equity"):
            bad = equity.filter(~pl.col(column).is_finite())
            assert bad.height == 0, f"{mode}: non-finite {column}:\n{bad}\n{result.fills}"


def test_the_examples_cover_the_hostile_cases() -> None:
    """The strategy reaches the hard cases (a guard against a strategy that never draws them)."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(spec=frame_specs())
    def collect(spec: dict[str, Any]) -> None:
        if spec["n"] == 0:
            seen.add("empty")
        if any(v in FAR_TS[:4] for v in spec["ts"]["values"]) or spec["ts"]["raw_ms"]:
            seen.add("far")
        if spec["ts"]["tz"]:
            seen.add("tz")
        if set(spec["features"]) & {"ts", "asset_id", "__x", "__asset_code"}:
            seen.add("reserved")
        if len(set(zip(spec["ts"]["values"], spec["assets"], strict=True))) < spec["n"]:
            seen.add("duplicate")

    collect()
    assert seen == {"empty", "far", "tz", "reserved", "duplicate"}
