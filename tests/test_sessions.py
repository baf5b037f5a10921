"""Trading calendars and sessions (issue 16, item 3; issue 17, item 3): a real exchange
calendar (exchange_calendars, XNYS) and a user's session frame check the bars (outside a session:
raise or drop) and set the annualisation to the calendar's sessions per year."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, SignalStrategy, Strategy
from ml4t.backtest.data.sessions import (
    calendar_sessions,
    session_index,
    sessions_per_year,
    user_sessions,
)
from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.results.metrics import annualization


def _daily(days: list[date]) -> pl.DataFrame:
    n = len(days)
    return pl.DataFrame(
        {
            "timestamp": days,
            "asset": ["A"] * n,
            "open": [100.0 + i for i in range(n)],
            "high": [101.0 + i for i in range(n)],
            "low": [99.0 + i for i in range(n)],
            "close": [100.5 + i for i in range(n)],
            "volume": [1e6] * n,
            "signal": [1.0] * n,
        }
    )


def _run(feed: PolarsDataFeed, **kwargs: Any) -> Any:
    config = BacktestConfig(**kwargs.pop("config", {}))
    return Backtest(feed, SignalStrategy("signal", quantity=1), config=config, **kwargs).run(
        progress=False
    )


# 2024-01-15 is Martin Luther King Jr. Day: XNYS is closed.
WEEKDAYS = [date(2024, 1, 8) + timedelta(days=i) for i in range(14) if (i % 7) < 5]


def test_xnys_sessions_per_year_and_the_holiday() -> None:
    table = calendar_sessions("XNYS", date(2024, 1, 1), date(2024, 12, 31))
    assert table.height == 252  # 2024: 252 NYSE sessions
    span = (date(2024, 1, 1), date(2024, 12, 31))
    assert math.isclose(sessions_per_year(table, span), 252 / (366 / 365.25))
    assert date(2024, 1, 15) not in table["session"].to_list()


def test_a_bar_on_a_holiday_is_a_finding_raised_or_dropped() -> None:
    feed = PolarsDataFeed(_daily(WEEKDAYS))
    with pytest.raises(DataValidationError, match=r"ts: outside_sessions: 1 timestamp.*2024-01-15"):
        _run(feed, config={"calendar": "XNYS"})
    result = _run(feed, config={"calendar": "XNYS", "outside_sessions": "drop"})
    assert date(2024, 1, 15) not in [t.date() for t in result.equity["timestamp"]]
    assert result.equity.height == len(WEEKDAYS) - 1
    sessions = result.run_info["sessions"]
    assert (sessions["dropped_timestamps"], sessions["dropped_bars"]) == (1, 1)
    assert sessions["calendar"] == "XNYS"
    assert feed.frame.height == len(WEEKDAYS)  # the user's feed is untouched


def test_metrics_annualise_by_the_calendars_sessions() -> None:
    days = [d for d in WEEKDAYS if d != date(2024, 1, 15)]
    result = _run(PolarsDataFeed(_daily(days)), config={"calendar": "XNYS"})
    ppy = 252 / (366 / 365.25)
    assert result.annualization.rule == "daily_calendar"
    assert math.isclose(result.metrics["periods_per_year"], ppy)
    without = _run(PolarsDataFeed(_daily(days)))
    assert without.metrics["periods_per_year"] == 252.0
    assert math.isclose(
        result.metrics["volatility"], without.metrics["volatility"] * math.sqrt(ppy / 252)
    )


def test_a_user_session_frame_with_an_intraday_gap() -> None:
    """Two sessions of 09:30-16:00 (UTC): hourly bars at 10:00..16:00 inside, and one at 17:00
    outside the first session."""
    stamps = [datetime(2024, 3, d, h) for d in (4, 5) for h in range(10, 17)]
    frame = pl.DataFrame(
        {
            "timestamp": stamps,
            "asset": ["A"] * len(stamps),
            "open": [100.0] * len(stamps),
            "high": [101.0] * len(stamps),
            "low": [99.0] * len(stamps),
            "close": [100.0] * len(stamps),
            "volume": [1e6] * len(stamps),
            "signal": [0.0] * len(stamps),
        }
    )
    sessions = pl.DataFrame(
        {
            "session": [date(2024, 3, 4), date(2024, 3, 5)],
            "open": [datetime(2024, 3, 4, 9, 30), datetime(2024, 3, 5, 9, 30)],
            "close": [datetime(2024, 3, 4, 16), datetime(2024, 3, 5, 16)],
        }
    )
    ts = PolarsDataFeed(frame).frame.get_column("ts").unique(maintain_order=True)

    index = session_index(ts, user_sessions(sessions), None)
    assert index.to_list() == [0] * 7 + [1] * 7
    late = frame.with_columns(
        pl.when(pl.col("timestamp") == datetime(2024, 3, 4, 16))
        .then(datetime(2024, 3, 4, 17))
        .otherwise(pl.col("timestamp"))
        .alias("timestamp")
    )
    with pytest.raises(DataValidationError, match="outside_sessions"):
        _run(PolarsDataFeed(late), sessions=sessions)
    result = _run(PolarsDataFeed(frame), sessions=sessions)
    spy = 2 / (2 / 365.25)
    assert result.annualization.rule == "intraday_calendar"
    assert math.isclose(result.annualization.periods_per_year, 7 * spy)
    with pytest.raises(ConfigError, match="use one of them"):
        _run(PolarsDataFeed(frame), sessions=sessions, config={"calendar": "XNYS"})
    bad = sessions.with_columns(pl.col("close").reverse())
    with pytest.raises(DataValidationError, match="sessions: order"):
        _run(PolarsDataFeed(frame), sessions=bad)


def test_an_unknown_calendar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown exchange calendar 'NOPE'"):
        _run(PolarsDataFeed(_daily(WEEKDAYS)), config={"calendar": "NOPE"})


def test_without_a_calendar_the_rule_table_is_unchanged() -> None:
    days = pl.Series([datetime(2024, 1, 1) + timedelta(days=i) for i in range(30)])
    assert annualization(days).rule == "daily_7d"
    assert annualization(days, sessions_per_year=250.0).periods_per_year == 250.0


# ------------------------------------------------------------------- DAY orders and sessions


class DayLimit(Strategy):
    """Submits, at its first timestamp, a DAY buy limit at ``limit`` for 1 share."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.done = False

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if not self.done:
            context.submit_order("A", 1.0, limit=self.limit, tif="day")
            self.done = True


def _hourly(lows: list[float]) -> pl.DataFrame:
    stamps = [datetime(2024, 3, d, h) for d in (4, 5) for h in range(10, 17)]
    return pl.DataFrame(
        {
            "timestamp": stamps,
            "asset": ["A"] * len(stamps),
            "open": [100.0] * len(stamps),
            "high": [101.0] * len(stamps),
            "low": lows,
            "close": [100.0] * len(stamps),
            "volume": [1e6] * len(stamps),
        }
    )


SESSIONS = pl.DataFrame(
    {
        "session": [date(2024, 3, 4), date(2024, 3, 5)],
        "open": [datetime(2024, 3, 4, 9, 30), datetime(2024, 3, 5, 9, 30)],
        "close": [datetime(2024, 3, 4, 16), datetime(2024, 3, 5, 16)],
    }
)


def test_a_day_order_lives_to_the_session_close() -> None:
    """Decided at 10:00 on day 1, a DAY buy limit at 98: the lows reach 98 at 14:00. With the
    sessions it fills there; without (24/7 data) it expired after its first bar, 11:00."""
    lows = [99.0] * 14
    lows[4] = 97.5  # 14:00 on day 1
    feed = PolarsDataFeed(_hourly(lows))
    with_sessions = Backtest(feed, DayLimit(98.0), sessions=SESSIONS).run(progress=False)
    assert with_sessions.fills.select("timestamp", "price").rows() == [
        (datetime(2024, 3, 4, 14), 98.0)
    ]
    plain = Backtest(feed, DayLimit(98.0)).run(progress=False)
    assert plain.fills.height == 0
    assert plain.rejected_orders.select("timestamp", "reason").rows() == [
        (datetime(2024, 3, 4, 11), "expired")
    ]


def test_a_day_order_expires_at_the_close_not_the_next_session() -> None:
    """The lows reach the limit only on day 2: the DAY order expired at day 1's last bar."""
    lows = [99.0] * 7 + [97.0] * 7
    feed = PolarsDataFeed(_hourly(lows))
    result = Backtest(feed, DayLimit(98.0), sessions=SESSIONS).run(progress=False)
    assert result.fills.height == 0
    assert result.rejected_orders.select("timestamp", "reason").rows() == [
        (datetime(2024, 3, 4, 16), "expired")
    ]


def test_a_day_order_across_a_holiday() -> None:
    """XNYS, daily bars: decided Friday 2024-01-12 (close), the DAY limit is eligible on the
    next session, Tuesday the 16th (Monday is Martin Luther King Jr. Day, no bar), and expires
    at its close."""
    days = [date(2024, 1, 11), date(2024, 1, 12), date(2024, 1, 16), date(2024, 1, 17)]
    frame = _daily(days).with_columns(pl.lit(90.0).alias("low")).drop("signal")
    feed = PolarsDataFeed(frame)

    class FridayDay(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp.date() == date(2024, 1, 12):
                context.submit_order("A", 1.0, limit=50.0, tif="day")

    result = Backtest(feed, FridayDay(), config=BacktestConfig(calendar="XNYS")).run(progress=False)
    assert result.rejected_orders.select("timestamp", "reason").rows() == [
        (datetime(2024, 1, 16), "expired")
    ]
    assert result.run_info["sessions"]["sessions"] == 4
