"""``result.orders`` and ``result.order_events``: the order journal, one row per order of a run
and every status change, for each kind of order and each way it is created and ends.

Every expected row is written out by hand from the contract (docs/semantics.md, "Order
journal"); bars are ``(open, high, low, close)`` and the comment next to one gives its intrabar
path (the extreme nearer the open first). Days count from the first bar (day 0, the decision
bar of most scenarios).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from journal import check_journal
from ml4t.backtest import Backtest, BacktestConfig, BacktestResult, PolarsDataFeed, Strategy
from ml4t.backtest.errors import MarginWarning, RuinWarning
from ml4t.backtest.risk import StopLoss, TimeExit
from test_orders_api import DECIDE, T0, Script, bars, cancel, config, order, run, with_b

ROW_COLUMNS = (
    "order_id",
    "day",
    "side",
    "order_type",
    "quantity",
    "limit",
    "stop",
    "trail_amount",
    "trail_percent",
    "tif",
    "parent_id",
    "oco_id",
    "origin",
    "exit_reason",
    "status",
    "filled_quantity",
    "avg_fill_price",
)


def rows(result: Any) -> list[dict[str, Any]]:
    """The orders rows, the decision time as a day number, without the history."""
    check_journal(result)
    frame = result.orders.with_columns(
        ((pl.col("timestamp") - pl.lit(T0)).dt.total_days()).alias("day")
    )
    return [dict(zip(ROW_COLUMNS, r, strict=True)) for r in frame.select(ROW_COLUMNS).rows()]


def history(result: Any, order_id: int) -> list[tuple[Any, ...]]:
    """(day, status, quantity, remaining, price, reason) of each event of one order."""
    row = result.orders.filter(pl.col("order_id") == order_id).row(0, named=True)
    return [
        (
            (e["timestamp"] - T0).days,
            e["status"],
            e["quantity"],
            e["remaining"],
            e["price"],
            e["reason"],
        )
        for e in row["history"]
    ]


def market_row(order_id: int, day: int, side: str, quantity: float, **changes: Any) -> dict:
    """A filled market order of the strategy, with ``changes``."""
    row: dict[str, Any] = {
        "order_id": order_id,
        "day": day,
        "side": side,
        "order_type": "market",
        "quantity": quantity,
        "limit": None,
        "stop": None,
        "trail_amount": None,
        "trail_percent": None,
        "tif": "gtc",
        "parent_id": None,
        "oco_id": None,
        "origin": "strategy",
        "exit_reason": "signal",
        "status": "filled",
        "filled_quantity": quantity,
        "avg_fill_price": None,
    }
    return {**row, **changes}


def accepted(day: int, quantity: float) -> tuple[Any, ...]:
    return (day, "accepted", 0.0, quantity, None, None)


def filled(day: int, quantity: float, price: float, remaining: float = 0.0) -> tuple[Any, ...]:
    status = "filled" if remaining == 0.0 else "partially_filled"
    return (day, status, quantity, remaining, price, None)


# ------------------------------------------------------------------------------------------------
# order types
# ------------------------------------------------------------------------------------------------


def test_a_market_order() -> None:
    result = run(bars(DECIDE, (101, 102, 100, 101)), {0: [order(10)]})
    assert rows(result) == [market_row(1, 0, "buy", 10.0, avg_fill_price=101.0)]
    assert history(result, 1) == [accepted(0, 10.0), filled(1, 10.0, 101.0)]


def test_limit_stop_and_stop_limit_orders() -> None:
    # day 1: 101 -> 100 -> 104 -> 103; day 2: 103 -> 103.5 -> 101 -> 102
    rows_ = bars(DECIDE, (101, 104, 100, 103), (103, 103.5, 101, 102))
    calls = [order(10, limit=99.0), order(5, stop=103.0), order(3, stop=103.0, limit=102.0)]
    result = run(rows_, {0: calls})
    limit = market_row(
        1, 0, "buy", 10.0, order_type="limit", limit=99.0, status="rejected", filled_quantity=0.0
    )
    stop = market_row(2, 0, "buy", 5.0, order_type="stop", stop=103.0, avg_fill_price=103.0)
    # the stop-limit's stop is reached at 103 above its limit: it rests as a limit at 102
    stop_limit = market_row(
        3, 0, "buy", 3.0, order_type="stop_limit", stop=103.0, limit=102.0, avg_fill_price=102.0
    )
    assert rows(result) == [limit, stop, stop_limit]
    # never filled: open when the data ended, rejected at the last timestamp
    assert history(result, 1) == [
        accepted(0, 10.0),
        (2, "rejected", 10.0, 0.0, None, "end_of_data"),
    ]
    assert history(result, 2) == [accepted(0, 5.0), filled(1, 5.0, 103.0)]
    assert history(result, 3) == [accepted(0, 3.0), filled(2, 3.0, 102.0)]
    # the rejections table keeps the decision time of an end_of_data rejection, as before
    assert result.rejected_orders.select("order_id", "reason").rows() == [(1, "end_of_data")]


def test_a_trailing_stop_by_amount() -> None:
    # water mark 100 (the last close at placement): level 98; day 1 raises it to 102 (level
    # 100), which day 2 (100.5 -> 101 -> 99) reaches
    rows_ = bars(DECIDE, (101, 102, 100, 101), (100.5, 101, 99, 99.5))
    result = run(rows_, {0: [order(10), order(-10, trail_amount=2.0)]})
    trailing = market_row(
        2,
        0,
        "sell",
        10.0,
        order_type="trailing_stop",
        trail_amount=2.0,
        exit_reason="trailing_stop",
        avg_fill_price=100.0,
    )
    assert rows(result) == [market_row(1, 0, "buy", 10.0, avg_fill_price=101.0), trailing]
    assert history(result, 2) == [accepted(0, 10.0), filled(2, 10.0, 100.0)]
    assert result.orders["trail_percent"].null_count() == 2


def test_a_bracket_with_its_legs_and_one_cancels_other() -> None:
    # day 1 enters at 100; day 2: 102 -> 101 -> 106: the take-profit at 105 fills, the stop goes
    rows_ = bars(DECIDE, (100, 101, 99, 100), (102, 106, 101, 105), (105, 105, 90, 95))
    result = run(rows_, {0: [order(10, take_profit=105.0, stop_loss=95.0)]})
    leg = {"side": "sell", "origin": "bracket", "parent_id": 1}
    assert rows(result) == [
        market_row(1, 0, "buy", 10.0, avg_fill_price=100.0),
        market_row(
            2,
            0,
            quantity=10.0,
            order_type="limit",
            limit=105.0,
            oco_id=3,
            exit_reason="take_profit",
            avg_fill_price=105.0,
            **leg,
        ),
        market_row(
            3,
            0,
            quantity=10.0,
            order_type="stop",
            stop=95.0,
            oco_id=2,
            exit_reason="stop_loss",
            status="cancelled",
            filled_quantity=0.0,
            **leg,
        ),
    ]
    assert history(result, 2) == [accepted(0, 10.0), filled(2, 10.0, 105.0)]
    assert history(result, 3) == [accepted(0, 10.0), (2, "cancelled", 10.0, 0.0, None, None)]
    # the sibling's cancellation follows the fill that caused it
    events = result.order_events.filter(pl.col("timestamp") == T0 + timedelta(days=2))
    assert events.select("order_id", "status").rows() == [(2, "filled"), (3, "cancelled")]


def test_target_orders() -> None:
    rows_ = bars(DECIDE, (101, 102, 100, 101), (102, 103, 101, 102), (103, 104, 102, 103))
    calls = {0: [lambda c: c.order_target_quantity("A", 10)], 1: [lambda c: c.close_position("A")]}
    result = run(rows_, calls)
    assert rows(result) == [
        market_row(1, 0, "buy", 10.0, origin="target", avg_fill_price=101.0),
        market_row(2, 1, "sell", 10.0, origin="target", avg_fill_price=102.0),
    ]
    # B has no price yet on day 0: its value target cannot be sized, a row of unknown quantity
    result = run(with_b(None, DECIDE), {0: [lambda c: c.order_target_value("B", 1000.0)]})
    (row,) = rows(result)
    assert math.isnan(row.pop("quantity"))
    expected = market_row(1, 0, None, 0.0, origin="target", status="rejected")
    del expected["quantity"]
    assert row == expected
    assert result.orders["asset"].to_list() == ["B"]
    ((day, status, quantity, remaining, price, reason),) = history(result, 1)
    assert (day, status, remaining, price, reason) == (0, "rejected", 0.0, None, "no_price")
    assert math.isnan(quantity)


# ------------------------------------------------------------------------------------------------
# modify, cancel, expiry, rejection
# ------------------------------------------------------------------------------------------------


class ModifyLimit(Strategy):
    """Day 0: a buy limit at 50. Day 1: move it to 98 for 4 shares, then try a stop on it."""

    def __init__(self) -> None:
        self.order_id = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if timestamp == T0:
            self.order_id = context.submit_order("A", 10, limit=50.0)
        elif timestamp == T0 + timedelta(days=1):
            context.modify_order(self.order_id, limit=98.0, quantity=4.0)
            context.modify_order(self.order_id, stop=99.0)


def test_modify_and_a_refused_modification() -> None:
    frame = pl.DataFrame(bars((100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 97, 99)))
    result = Backtest(PolarsDataFeed(frame), ModifyLimit()).run(progress=False)
    check_journal(result)
    assert history(result, 1) == [
        accepted(0, 10.0),
        (1, "modified", 0.0, 4.0, None, None),
        (1, "modify_rejected", 0.0, 4.0, None, "invalid_modify"),
        filled(2, 4.0, 98.0),
    ]
    modified = result.order_events.filter(pl.col("status") == "modified")
    assert modified.select("limit", "stop").rows() == [(98.0, None)]
    # the row keeps the order as accepted
    assert result.orders.select("quantity", "limit", "filled_quantity").rows() == [
        (10.0, 50.0, 4.0)
    ]


def test_cancel_and_a_cancel_of_a_finished_order() -> None:
    rows_ = bars(DECIDE, DECIDE, DECIDE)
    result = run(rows_, {0: [order(5, limit=90.0)], 1: [cancel(1)], 2: [cancel(1)]})
    assert history(result, 1) == [accepted(0, 5.0), (1, "cancelled", 5.0, 0.0, None, None)]
    # the second cancel is a not_pending rejection of the cancel, not an event of the order
    assert result.rejected_orders.select("order_id", "reason").rows() == [(1, "not_pending")]
    assert rows(result)[0]["status"] == "cancelled"


def test_day_and_ioc_expiry() -> None:
    rows_ = bars(DECIDE, (101, 102, 100, 101), (96, 97, 85, 86))
    result = run(rows_, {0: [order(10, limit=90.0, tif="day")]})
    assert rows(result)[0]["tif"] == "day"
    assert history(result, 1) == [accepted(0, 10.0), (1, "expired", 10.0, 0.0, None, "expired")]

    # 10% of a volume of 1000: 100 of 250 shares fill, the rest of the IOC order expires
    result = run(rows_, {0: [order(250, tif="ioc")]}, config(max_volume_fraction=0.1))
    assert rows(result)[0]["tif"] == "ioc"
    assert history(result, 1) == [
        accepted(0, 250.0),
        filled(1, 100.0, 101.0, remaining=150.0),
        (1, "expired", 150.0, 0.0, None, "expired"),
    ]


def test_rejections_before_and_at_the_fill() -> None:
    # a cash account: the short sale is refused when decided; the buy beyond the cash when it
    # would fill; the resized one fills what the cash pays for
    rows_ = bars(DECIDE, (100, 101, 99, 100))
    cash = {"account": {"type": "cash"}, "initial_cash": 1_000.0}
    with pytest.warns(MarginWarning, match="1 order"):
        result = run(rows_, {0: [order(-5), order(20)]}, BacktestConfig(**cash))
    assert rows(result) == [
        market_row(1, 0, "sell", 5.0, status="rejected", filled_quantity=0.0),
        market_row(2, 0, "buy", 20.0, status="rejected", filled_quantity=0.0),
    ]
    assert history(result, 1) == [(0, "rejected", 5.0, 0.0, None, "short_not_allowed")]
    assert history(result, 2) == [
        accepted(0, 20.0),
        (1, "rejected", 20.0, 0.0, None, "insufficient_cash"),
    ]
    cash["account"] = {"type": "cash", "on_insufficient": "resize"}
    with pytest.warns(MarginWarning, match="1 order"):
        result = run(rows_, {0: [order(20)]}, BacktestConfig(**cash))
    assert history(result, 1) == [
        accepted(0, 20.0),
        (1, "resized", 10.0, 10.0, None, "insufficient_cash"),
        filled(1, 10.0, 100.0),
    ]


# ------------------------------------------------------------------------------------------------
# orders the engine creates
# ------------------------------------------------------------------------------------------------


def test_risk_rule_exits() -> None:
    # a 5% stop from the fill at 100 is reached on day 2 (99 -> 94): filled at once at 95
    rows_ = bars(DECIDE, (100, 100, 100, 100), (99, 99, 94, 96))
    feed = PolarsDataFeed(pl.DataFrame(rows_))

    class Buy(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp == T0:
                context.submit_order("A", 10)

    result = Backtest(feed, Buy(), risk=[StopLoss(pct=0.05)]).run(progress=False)
    assert rows(result)[1] == market_row(
        2,
        2,
        "sell",
        10.0,
        order_type="stop",
        stop=95.0,
        origin="risk_level",
        exit_reason="stop_loss",
        avg_fill_price=95.0,
    )
    assert history(result, 2) == [accepted(2, 10.0), filled(2, 10.0, 95.0)]

    # a time exit after 2 bars is queued as a market order and fills at the next open
    rows_ = bars(*[(100, 100, 100, 100)] * 5)
    feed = PolarsDataFeed(pl.DataFrame(rows_))
    result = Backtest(feed, Buy(), risk=[TimeExit(max_bars=2)]).run(progress=False)
    assert rows(result)[1] == market_row(
        2, 3, "sell", 10.0, origin="risk_exit", exit_reason="time_exit", avg_fill_price=100.0
    )
    assert history(result, 2) == [accepted(3, 10.0), filled(4, 10.0, 100.0)]


def test_a_margin_call() -> None:
    # long 20 at 100 on 50% margin; at 60 equity 200 < 25% of 1200: sold at that close
    rows_ = bars((100, 100, 100, 100), (100, 100, 100, 100), (60, 60, 60, 60), (60, 60, 60, 60))
    margin = {"type": "margin", "initial_margin": 0.5, "maintenance_margin": 0.25}
    cfg = BacktestConfig(account=margin, initial_cash=1_000.0)
    result = run(rows_, {0: [order(20)]}, cfg)
    assert rows(result)[1] == market_row(
        2, 2, "sell", 20.0, origin="margin_call", exit_reason="margin_call", avg_fill_price=60.0
    )
    assert history(result, 2) == [accepted(2, 20.0), filled(2, 20.0, 60.0)]


def test_fill_time_sizing_and_the_ruin_rule() -> None:
    # 50% of 100,000 at the decision close 100 is an estimate of 500 shares; at the fill bar's
    # open 110 the account is worth 100,000 and the order becomes 100,000 * 0.5 / 110 shares
    rows_ = bars(DECIDE, (110, 111, 109, 110))
    cfg = BacktestConfig(execution={"sizing": "fill"})
    result = run(rows_, {0: [lambda c: c.order_target_percent("A", 0.5)]}, cfg)
    shares = 100_000.0 * 0.5 / 110.0
    assert rows(result)[0]["quantity"] == 500.0
    assert history(result, 1) == [
        accepted(0, 500.0),
        (1, "modified", 0.0, shares, None, None),
        filled(1, shares, 110.0),
    ]

    # unlimited leverage: long 20 at 100 on 1,000 of cash; at 40 equity is -200, the account
    # is ruined: the position is sold at the next open, a later order is refused "ruined"
    rows_ = bars(DECIDE, (100, 100, 100, 100), (40, 40, 40, 40), (40, 40, 40, 40))
    cfg = BacktestConfig(
        initial_cash=1_000.0, account={"initial_margin": None, "maintenance_margin": None}
    )
    with pytest.warns(RuinWarning):
        result = run(rows_, {0: [order(20)], 3: [order(1)]}, cfg)
    assert rows(result)[1:] == [
        market_row(2, 2, "sell", 20.0, origin="ruin", exit_reason="ruin", avg_fill_price=40.0),
        market_row(3, 3, "buy", 1.0, status="rejected", filled_quantity=0.0),
    ]
    assert history(result, 2) == [accepted(2, 20.0), filled(3, 20.0, 40.0)]
    assert history(result, 3) == [(3, "rejected", 1.0, 0.0, None, "ruined")]


# ------------------------------------------------------------------------------------------------
# frames, time zones, save/load
# ------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:metric:RuntimeWarning")
def test_schema_time_zone_and_round_trip(tmp_path: Path) -> None:
    frame = pl.DataFrame(bars(DECIDE, (101, 102, 100, 101), (96, 97, 85, 86))).with_columns(
        pl.col("timestamp").dt.replace_time_zone("America/New_York")
    )
    calls = {0: [order(10, take_profit=110.0, stop_loss=90.0), order(3, limit=50.0, tif="day")]}
    result = Backtest(PolarsDataFeed(frame), Script(calls)).run(progress=False)
    check_journal(result)
    dtype = pl.Datetime("ns", "America/New_York")
    assert result.orders.schema["timestamp"] == dtype
    assert result.order_events.schema["timestamp"] == dtype
    history_dtype = result.orders.schema["history"]
    assert isinstance(history_dtype, pl.List)
    assert dict(history_dtype.inner.to_schema())["timestamp"] == dtype  # type: ignore[union-attr]
    assert result.orders["asset"].dtype == result.fills["asset"].dtype
    assert result.orders["timestamp"][0] == datetime(
        2024, 1, 1, tzinfo=ZoneInfo("America/New_York")
    )
    loaded = BacktestResult.load(result.save(tmp_path / "run"))
    for name in ("orders", "order_events"):
        assert getattr(loaded, name).equals(getattr(result, name)), name
        assert getattr(loaded, name).schema == getattr(result, name).schema, name


@pytest.mark.parametrize("listening", [False, True])
def test_the_journal_does_not_depend_on_listening(listening: bool) -> None:
    seen: list[str] = []

    class Listener(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp == T0:
                context.submit_order("A", 10, take_profit=105.0, stop_loss=95.0)

    if listening:

        def on_order(self: Any, order: Any, context: Any) -> None:
            seen.append(order.status)

        Listener.on_order = on_order  # type: ignore[attr-defined]
    rows_ = bars(DECIDE, (100, 101, 99, 100), (102, 106, 101, 105))
    result = Backtest(PolarsDataFeed(pl.DataFrame(rows_)), Listener()).run(progress=False)
    check_journal(result)
    assert result.order_events["status"].to_list() == [
        "accepted",
        "accepted",
        "accepted",
        "filled",
        "filled",
        "cancelled",
    ]
    assert bool(seen) == listening
