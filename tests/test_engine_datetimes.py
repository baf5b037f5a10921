"""The datetimes the engine builds in Rust (``rust/py/src/universe.rs``) equal Python's exactly:
``epoch + timedelta(microseconds=ns // 1000)``, then ``astimezone(tz)`` for an aware feed, with
floor division for negative nanoseconds and the fold of a repeated wall time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ml4t.backtest import Backtest, PolarsDataFeed, Strategy
from ml4t.backtest._engine_spec import (
    AccountSpec,
    CommissionSpec,
    ExecutionSpec,
    SlippageSpec,
)
from ml4t.backtest.config import AccountConfig, CommissionConfig, ExecutionConfig, SlippageConfig

NS = [
    -9_000_000_000_000_000_000,  # 1684-10-19, near the earliest nanosecond timestamp
    -2_203_891_200_000_000_000,  # 1900-03-01 (1900 has no leap day)
    -86_400_000_000_001,  # 1969-12-30 23:59:59.999999 (floored, not truncated towards zero)
    -1_500,  # 1969-12-31 23:59:59.999998
    -1,
    0,
    999,  # still the epoch: nanoseconds below a microsecond are dropped
    951_782_400_000_000_000,  # 2000-02-29
    1_615_705_199_999_999_000,  # New York 2021-03-14 01:59:59.999999 EST
    1_615_705_200_000_000_000,  # 03:00 EDT: the spring-forward gap
    1_636_261_200_000_000_000,  # 2021-11-07 01:00 EDT (fold 0)
    1_636_264_800_000_000_000,  # 01:00 EST again (fold 1)
    1_636_266_600_123_456_789,  # 01:30:00.123456 EST (fold 1)
    4_102_444_800_000_000_000,  # 2100-01-01 UTC
    9_000_000_000_000_000_000,  # 2255-03-14, near the latest
]


def reference(ns: int, tz: str | None) -> datetime:
    """Python's conversion (``Universe.to_datetime``)."""
    if tz is None:
        return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)
    utc = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)
    return utc.astimezone(ZoneInfo(tz))


def fields(value: datetime) -> tuple[Any, ...]:
    return (value.timetuple()[:6], value.microsecond, value.fold, value.tzinfo, type(value))


class Seen(Strategy):
    """Collects the event's and the context's timestamps of every bar (buys once, to see a
    fill's too)."""

    def __init__(self) -> None:
        self.events: list[datetime] = []
        self.contexts: list[datetime] = []
        self.fills: list[datetime] = []

    def on_market_data(self, event: Any, context: Any) -> None:
        self.events.append(event.timestamp)
        self.contexts.append(context.timestamp)
        if len(self.events) == 1:
            context.submit_order(event.asset, 1.0)

    def on_fill(self, fill: Any, context: Any) -> None:
        self.fills.append(fill.timestamp)


@pytest.mark.parametrize("tz", [None, "America/New_York", "UTC", "Asia/Kolkata"])
def test_rust_datetimes_equal_pythons(tz: str | None) -> None:
    stamps = pl.Series("timestamp", NS, dtype=pl.Int64).cast(pl.Datetime("ns"))
    if tz is not None:
        stamps = stamps.dt.replace_time_zone("UTC").dt.convert_time_zone(tz)
    n = len(NS)
    frame = pl.DataFrame(
        {
            "timestamp": stamps,
            "asset": ["A"] * n,
            "open": [10.0] * n,
            "high": [11.0] * n,
            "low": [9.0] * n,
            "close": [10.0] * n,
            "volume": [1000.0] * n,
        }
    )
    strategy = Seen()
    Backtest(PolarsDataFeed(frame), strategy).run(progress=False)
    expected = [reference(ns, tz) for ns in NS]
    assert [fields(v) for v in strategy.events] == [fields(v) for v in expected]
    assert [fields(v) for v in strategy.contexts] == [fields(v) for v in expected]
    assert [fields(v) for v in strategy.fills] == [fields(expected[1])]
    assert NS == sorted(NS)


def test_engine_spec_sections_name_the_config_fields() -> None:
    pairs = [
        (ExecutionSpec, ExecutionConfig),
        (CommissionSpec, CommissionConfig),
        (SlippageSpec, SlippageConfig),
        (AccountSpec, AccountConfig),
    ]
    for spec, model in pairs:
        assert spec.__required_keys__ == set(model.model_fields), spec.__name__
    assert SlippageSpec.__optional_keys__ == {"custom"}
