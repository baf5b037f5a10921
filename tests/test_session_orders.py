"""Session-aware orders (issue 16, item 3): with trading sessions the gap rule applies at each
asset's first bar of a session only, market-on-close orders fill at the session's last bar
(across a half day and a holiday), and ``TimeExit(max_sessions=...)`` counts sessions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.risk import TimeExit

SESSIONS = pl.DataFrame(
    {
        "session": [date(2024, 3, 4), date(2024, 3, 5)],
        "open": [datetime(2024, 3, 4, 9, 30), datetime(2024, 3, 5, 9, 30)],
        "close": [datetime(2024, 3, 4, 16), datetime(2024, 3, 5, 16)],
    }
)


def hourly(gaps: dict[datetime, float]) -> pl.DataFrame:
    """Hourly bars 10:00-16:00 on 2024-03-04 and 05, flat at 100 (high 101, low 99), except
    the bars in ``gaps``: open and close there, high + 0.5, low - 0.5."""
    stamps = [datetime(2024, 3, d, h) for d in (4, 5) for h in range(10, 17)]
    rows = []
    for t in stamps:
        p = gaps.get(t)
        o, h, lo, c = (100.0, 101.0, 99.0, 100.0) if p is None else (p, p + 0.5, p - 0.5, p)
        rows.append({"timestamp": t, "asset": "A", "open": o, "high": h, "low": lo, "close": c})
    return pl.DataFrame(rows).with_columns(volume=pl.lit(1e6))


class Once(Strategy):
    """Submits ``orders[timestamp]`` (lists of (quantity, kwargs)) for asset A."""

    def __init__(self, orders: dict[datetime, list[tuple[float, dict[str, Any]]]]) -> None:
        self.orders = orders

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        for quantity, kwargs in self.orders.get(timestamp.replace(tzinfo=None), []):
            context.submit_order("A", quantity, **kwargs)


def test_the_gap_rule_applies_at_the_session_open_only() -> None:
    """A buy stop at 102 from 10:00 on day 1. Inside the session, the 12:00 bar opens at 103
    (range 102.5-103.5): the price went through 102 between bars, so the stop fills at its
    level clamped into the bar, 102.5; without sessions (24/7 data) the gap rule fills it at
    the open, 103. At day 2's first bar (its session open) the gap rule holds with sessions:
    a second stop at 102 placed at day 1's close fills at that open, 104."""
    frame = hourly({datetime(2024, 3, 4, 12): 103.0, datetime(2024, 3, 5, 10): 104.0})
    orders = {
        datetime(2024, 3, 4, 10): [(1.0, {"stop": 102.0})],
        datetime(2024, 3, 4, 16): [(1.0, {"stop": 102.0})],
    }
    feed = PolarsDataFeed(frame)
    with_sessions = Backtest(feed, Once(orders), sessions=SESSIONS).run(progress=False)
    assert with_sessions.fills.select("timestamp", "price").rows() == [
        (datetime(2024, 3, 4, 12), 102.5),
        (datetime(2024, 3, 5, 10), 104.0),
    ]
    plain = Backtest(feed, Once(orders)).run(progress=False)
    assert plain.fills.select("timestamp", "price").rows() == [
        (datetime(2024, 3, 4, 12), 103.0),
        (datetime(2024, 3, 5, 10), 104.0),
    ]


def test_a_limit_inside_a_session_fills_at_its_level_not_the_better_open() -> None:
    """A buy limit at 98.9 from 10:00 (the flat bars' low is 99); the 13:00 bar opens at 98
    (97.5-98.5). In the session the resting limit was hit as the price passed it: 98.9
    clamped into the bar, 98.5; without sessions the gap rule gives the better open, 98."""
    frame = hourly({datetime(2024, 3, 4, 13): 98.0})
    orders = {datetime(2024, 3, 4, 10): [(1.0, {"limit": 98.9})]}
    feed = PolarsDataFeed(frame)
    result = Backtest(feed, Once(orders), sessions=SESSIONS).run(progress=False)
    assert result.fills.select("timestamp", "price").rows() == [(datetime(2024, 3, 4, 13), 98.5)]
    plain = Backtest(feed, Once(orders)).run(progress=False)
    assert plain.fills.select("timestamp", "price").rows() == [(datetime(2024, 3, 4, 13), 98.0)]


NY = ZoneInfo("America/New_York")
# XNYS: Thanksgiving 2024-11-28 is a holiday, Friday the 29th a half day closing at 13:00.
STAMPS = [
    *[datetime(2024, 11, 27, h, tzinfo=NY) for h in (15, 16)],
    *[datetime(2024, 11, 29, h, tzinfo=NY) for h in (10, 11, 12, 13)],
    *[datetime(2024, 12, 2, h, tzinfo=NY) for h in (10, 16)],
]


def xnys_bars() -> pl.DataFrame:
    """Flat bars, each priced by its position: 100, 101, ..."""
    prices = [100.0 + i for i in range(len(STAMPS))]
    return pl.DataFrame(
        {
            "timestamp": STAMPS,
            "asset": ["A"] * len(STAMPS),
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": [1e6] * len(STAMPS),
        }
    ).with_columns(pl.col("timestamp").dt.convert_time_zone("America/New_York"))


def test_market_on_close_fills_at_the_session_close_across_a_holiday_and_a_half_day() -> None:
    """Decided at Wednesday's last bar, an on-close buy is eligible on the next session (Friday,
    after the holiday) and fills at its last bar, 13:00 (the half day's close; price 105), not
    at the next bar's close; one decided at Friday 11:00 fills at 13:00 too; one decided at
    13:00 goes to Monday's close (16:00, 107)."""
    moc = {"order_type": "market_on_close"}
    orders = {
        datetime(2024, 11, 27, 16): [(1.0, moc)],
        datetime(2024, 11, 29, 11): [(2.0, moc)],
        datetime(2024, 11, 29, 13): [(-3.0, moc)],
    }
    feed = PolarsDataFeed(xnys_bars())
    config = BacktestConfig(calendar="XNYS")
    result = Backtest(feed, Once(orders), config=config).run(progress=False)
    fills = [
        (t.replace(tzinfo=None), q, p)
        for t, q, p in result.fills.select("timestamp", "quantity", "price").rows()
    ]
    assert fills == [
        (datetime(2024, 11, 29, 13), 1.0, 105.0),
        (datetime(2024, 11, 29, 13), 2.0, 105.0),
        (datetime(2024, 12, 2, 16), 3.0, 107.0),
    ]
    # Without a calendar: the close of the asset's next bar.
    plain = Backtest(feed, Once(orders)).run(progress=False)
    first = plain.fills.row(0, named=True)
    assert (first["timestamp"].replace(tzinfo=None), first["price"]) == (
        datetime(2024, 11, 29, 10),
        102.0,
    )


def test_time_exit_counts_sessions() -> None:
    """Bought at day 1's 11:00 open; TimeExit(max_sessions=1) exits once a new session has
    begun: decided at day 2's first bar (10:00), filled at the next open (11:00)."""
    orders = {datetime(2024, 3, 4, 10): [(1.0, {})]}
    feed = PolarsDataFeed(hourly({}))
    result = Backtest(feed, Once(orders), sessions=SESSIONS, risk=[TimeExit(max_sessions=1)]).run(
        progress=False
    )
    assert result.fills.select("timestamp", "side").rows() == [
        (datetime(2024, 3, 4, 11), "buy"),
        (datetime(2024, 3, 5, 11), "sell"),
    ]
    assert result.trades.get_column("exit_reason").to_list() == ["time_exit"]
    with pytest.raises(ConfigError, match="max_sessions"):
        Backtest(feed, Once(orders), risk=[TimeExit(max_sessions=1)])


def test_futures_settle_variation_margin_at_the_session_close_only() -> None:
    """A future (multiplier 50) bought at 10:00's close at 100; the 12:00 bar closes at 104
    and 16:00 at 102, day 2's 11:00 at 98. With sessions the +200 and +100 of the bars inside
    day 1 stay unsettled (cash only pays the fill) until day 1's 16:00 close settles 2 x 50 =
    +100; day 2 settles (day 2's close 100 - 102) x 50 = -100 at 16:00. Without sessions every
    bar settles. Equity is the same at every bar either way."""
    bars = hourly(
        {
            datetime(2024, 3, 4, 12): 104.0,
            datetime(2024, 3, 4, 16): 102.0,
            datetime(2024, 3, 5, 11): 98.0,
        }
    )
    spec = {"A": {"asset_class": "future", "multiplier": 50.0}}
    feed = PolarsDataFeed(bars, instruments=spec)
    config = BacktestConfig(execution={"mode": "same_close"}, commission={"model": "none"})
    orders = {datetime(2024, 3, 4, 10): [(1.0, {})]}
    daily = Backtest(feed, Once(orders), config=config, sessions=SESSIONS).run(progress=False)
    every = Backtest(feed, Once(orders), config=config).run(progress=False)
    cash = daily.equity["cash"].to_list()
    start = 100_000.0
    assert cash[:6] == [start] * 6  # 10:00-15:00 of day 1: nothing settled
    assert cash[6] == start + 100.0  # day 1's 16:00: (102 - 100) x 50
    assert cash[7:13] == [start + 100.0] * 6  # inside day 2, 98 at 11:00 included
    assert cash[13] == start  # day 2's 16:00: (100 - 102) x 50
    assert every.equity["cash"][1] == start  # 11:00 at 100: no variation
    assert every.equity["cash"][2] == start + 200.0  # 12:00 at 104 settles at once
    assert daily.equity["equity"].to_list() == every.equity["equity"].to_list()
