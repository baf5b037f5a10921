"""The order-type API from Python: ``context.submit_order(asset, quantity, *, limit=None,
stop=None, trail_amount=None, trail_percent=None, order_type=None, tif="gtc", take_profit=None,
stop_loss=None) -> int`` and ``context.cancel_order(id)``.

Every expected number is computed by hand from a tiny frame (docs/semantics.md, "Order types").
Bars are ``(open, high, low, close)``; the comment next to a bar gives its intrabar path (the
extreme nearer the open first). Some tests pin engine bugs found (and fixed) while writing them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import ConfigError, OrderError

T0 = datetime(2024, 1, 1)
EXTRA_EXECUTION_KEYS = ("intrabar_path", "limit_fill", "limit_through", "max_volume_fraction")

Call = Callable[[Any], Any]


def day(i: int) -> datetime:
    return T0 + timedelta(days=i)


def bars(
    *ohlc: tuple[float, float, float, float], asset: str = "A", volume: float = 1000.0
) -> list:
    return [
        {
            "timestamp": day(i),
            "asset": asset,
            "open": float(o),
            "high": float(h),
            "low": float(lo),
            "close": float(c),
            "volume": volume,
        }
        for i, (o, h, lo, c) in enumerate(ohlc)
    ]


# the decision bar of most scenarios: closes at 100, fills nothing
DECIDE = (100, 100.5, 99.5, 100)


def config(**settings: Any) -> BacktestConfig:
    """A config with the execution settings of the order types (``intrabar_path``,
    ``limit_fill``, ``limit_through``, ``max_volume_fraction``) next to the usual sections:
    through ``execution`` when the config model has them, else added to the engine dict."""
    sections = {k: settings.pop(k) for k in list(settings) if isinstance(settings[k], dict)}
    execution = {**sections.pop("execution", {}), **settings}
    try:
        return BacktestConfig(execution=execution, **sections)
    except ConfigError:
        extra = {k: execution.pop(k) for k in EXTRA_EXECUTION_KEYS if k in execution}
        if not extra:
            raise

    class _OrderTypesConfig(BacktestConfig):  # type: ignore[misc]
        def engine_dict(self) -> dict[str, Any]:
            return {**super().engine_dict(), **extra}

    return _OrderTypesConfig(execution=execution, **sections)


class Script(Strategy):
    """Runs ``calls[i]`` (functions of the context) at the i-th timestamp; keeps what they
    returned and the positions seen."""

    def __init__(self, calls: dict[int, list[Call]]) -> None:
        self.calls = calls
        self.index = 0
        self.returned: list[Any] = []
        self.positions: list[float] = []

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        self.positions.append(context.position(context.asset_names[0]))
        for call in self.calls.get(self.index, []):
            self.returned.append(call(context))
        self.index += 1


def run(rows: list, calls: dict[int, list[Call]], cfg: BacktestConfig | None = None) -> Any:
    strategy = Script(calls)
    result = Backtest(PolarsDataFeed(pl.DataFrame(rows)), strategy, config=cfg).run()
    result.strategy = strategy
    return result


def fills(result: Any) -> list[tuple[int, str, float, float]]:
    """(day, side, quantity, price) of every fill."""
    return [
        ((f["timestamp"] - T0).days, f["side"], f["quantity"], f["price"])
        for f in result.fills.iter_rows(named=True)
    ]


def rejections(result: Any) -> list[tuple[int, int, float, str]]:
    """(order id, day, quantity, reason) of every rejected order."""
    return [
        (r["order_id"], (r["timestamp"] - T0).days, r["quantity"], r["reason"])
        for r in result.rejected_orders.iter_rows(named=True)
    ]


def order(*args: Any, **kwargs: Any) -> Call:
    return lambda c: c.submit_order("A", *args, **kwargs)


def cancel(order_id: int) -> Call:
    return lambda c: c.cancel_order(order_id)


# ------------------------------------------------------------------------------------------------
# ids
# ------------------------------------------------------------------------------------------------


def test_submit_order_returns_increasing_ids_and_brackets_reserve_their_legs() -> None:
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 101, 99, 100))
    result = run(
        rows,
        {
            0: [
                order(1),  # 1
                order(1, limit=50.0),  # 2
                order(1, take_profit=200.0, stop_loss=50.0),  # 3, legs 4 and 5
                order(1, take_profit=200.0),  # 6, leg 7
                lambda c: c.order_target_quantity("A", 10.0),  # 9 (after the callback)
                order(1, stop=500.0),  # 8
            ],
            1: [order(1), order(-1, order_type="market_on_close")],  # 10, 11
        },
    )
    ids = [x for x in result.strategy.returned if x is not None]
    assert ids == [1, 2, 3, 6, 8, 10, 11]
    assert sorted(result.fills["order_id"].to_list()) == [1, 3, 6, 9, 10, 11]
    by_id = {f["order_id"]: f for f in result.fills.iter_rows(named=True)}
    assert by_id[9]["quantity"] == 10 - 3  # the target counts the 3 pending market shares


# ------------------------------------------------------------------------------------------------
# each order type
# ------------------------------------------------------------------------------------------------


def test_limit_orders_fill_at_the_limit_or_a_better_open() -> None:
    slipping = config(slippage={"model": "fixed", "amount": 0.5})
    rows = bars(DECIDE, (99, 100, 97, 98))  # 99 -> 100 -> 97: touches 97
    assert fills(run(rows, {0: [order(10, limit=97.0)]}, slipping)) == [(1, "buy", 10, 97.0)]
    rows = bars(DECIDE, (95, 96, 94, 95.5))  # opens below the limit
    assert fills(run(rows, {0: [order(10, limit=97.0)]})) == [(1, "buy", 10, 95.0)]
    rows = bars(DECIDE, (101, 103.2, 100.5, 102))  # 101 -> 100.5 -> 103.2: touches 103
    assert fills(run(rows, {0: [order(-10, limit=103.0)]})) == [(1, "sell", 10, 103.0)]
    # through 0.5: 103.2 is not 103.5; never filled, reported at the end of the data
    through = config(limit_fill="through_amount", limit_through=0.5)
    result = run(rows, {0: [order(-10, limit=103.0)]}, through)
    assert fills(result) == []
    assert rejections(result) == [(1, 0, -10.0, "end_of_data")]


@pytest.mark.parametrize(
    ("open_", "rule", "expected"),
    [
        (99.0, "touch", [(1, "buy", 10, 99.0)]),  # an open on the limit touches it
        (99.0, "through", []),  # with a through rule that is only a touch (low 98.8 > 98.5)
        (98.9, "through", [(1, "buy", 10, 98.9)]),  # strictly better: the open, whatever rule
    ],
)
def test_an_open_on_the_limit_is_only_a_touch_under_a_through_rule(
    open_: float, rule: str, expected: list[Any]
) -> None:
    rows = bars(DECIDE, (open_, 100, 98.8, 99.5))
    cfg = config(limit_fill="through_amount", limit_through=0.5) if rule == "through" else None
    assert fills(run(rows, {0: [order(10, limit=99.0)]}, cfg)) == expected


def test_stop_orders_fill_at_the_level_with_slippage_or_at_a_gapped_open() -> None:
    slipping = config(slippage={"model": "fixed", "amount": 0.1})
    rows = bars(DECIDE, (100, 103, 99, 102))  # 100 -> 99 -> 103: crosses 102 going up
    result = run(rows, {0: [order(10, stop=102.0)]}, slipping)
    (f,) = result.fills.iter_rows(named=True)
    assert (f["reference_price"], f["price"]) == (102.0, pytest.approx(102.1))
    rows = bars(DECIDE, (96, 97, 95, 96))  # opens below a sell stop at 98
    assert fills(run(rows, {0: [order(-10, stop=98.0)]})) == [(1, "sell", 10, 96.0)]


def test_stop_limit_fills_at_the_trigger_or_arms_and_rests_as_a_limit() -> None:
    rows = bars(DECIDE, (100, 104, 99, 103))  # triggered at 102, within the limit 103
    assert fills(run(rows, {0: [order(10, stop=102.0, limit=103.0)]})) == [(1, "buy", 10, 102.0)]
    rows = bars(
        DECIDE,
        (105, 106, 101, 102),  # opens beyond the limit: armed (no fill on this bar)
        (102.5, 103, 102, 102.5),  # as a limit at 103: the open
    )
    result = run(rows, {0: [order(10, stop=102.0, limit=103.0)]})
    assert fills(result) == [(2, "buy", 10, 102.5)]
    assert result.strategy.positions == [0.0, 0.0, 10.0]


def test_market_on_close() -> None:
    rows = bars((100, 102, 99, 101), (102, 104, 101, 103), (103, 105, 102, 104))
    moc = order(10, order_type="market_on_close")
    assert fills(run(rows, {0: [moc]})) == [(1, "buy", 10, 103.0)]
    same_close = config(mode="same_close")
    assert fills(run(rows, {0: [moc]}, same_close)) == [(0, "buy", 10, 101.0)]


def test_trailing_stops_by_amount_and_percent() -> None:
    # Long 10 at 100; the trailing sell follows the highest high, one bar late.
    rows = bars(
        DECIDE,
        (100, 108, 99, 107),  # level 95
        (109, 111, 105.5, 106),  # level 103 (108 - 5), not 106: the high of this bar lags
        (107, 107.5, 104, 105),  # level 106 (111 - 5): 107 -> 107.5 -> 104 crosses it
    )
    result = run(rows, {0: [order(10), order(-10, trail_amount=5.0)]})
    assert fills(result) == [(1, "buy", 10, 100.0), (3, "sell", 10, 106.0)]
    assert result.trades["exit_reason"].to_list() == ["trailing_stop"]
    # Short 10 at 100; the trailing buy 5% above the lowest low.
    rows = bars(DECIDE, (100, 101, 90, 91), (91, 95, 90.5, 94))  # then level 94.5
    result = run(rows, {0: [order(-10), order(10, trail_percent=0.05)]})
    got = fills(result)
    assert got[0] == (1, "sell", 10, 100.0)
    assert got[1][:3] == (2, "buy", 10) and got[1][3] == pytest.approx(94.5)
    (trade,) = result.trades.iter_rows(named=True)
    assert (trade["side"], trade["exit_reason"]) == ("short", "trailing_stop")
    assert trade["gross_pnl"] == pytest.approx(55.0)


BRACKET = order(10, take_profit=105.0, stop_loss=95.0)  # ids 1 (entry), 2 (target), 3 (stop)


@pytest.mark.parametrize(
    ("third_bar", "exit_id", "price", "reason"),
    [
        ((102, 106, 101, 105), 2, 105.0, "take_profit"),  # 102 -> 101 -> 106
        ((98, 99, 94, 95), 3, 95.0, "stop_loss"),  # 98 -> 99 -> 94
        ((90, 92, 89, 91), 3, 90.0, "stop_loss"),  # gap through the stop: the open
        ((108, 109, 107, 108), 2, 108.0, "take_profit"),  # gap above the target: the open
    ],
)
def test_brackets_exit_through_one_leg(
    third_bar: tuple[float, ...], exit_id: int, price: float, reason: str
) -> None:
    rows = bars(DECIDE, (100, 101, 99, 100), third_bar, (100, 120, 80, 100))
    result = run(rows, {0: [BRACKET]})
    assert fills(result) == [(1, "buy", 10, 100.0), (2, "sell", 10, price)]
    assert result.fills["order_id"].to_list() == [1, exit_id]
    (trade,) = result.trades.iter_rows(named=True)
    assert (trade["exit_reason"], trade["status"]) == (reason, "closed")
    assert trade["gross_pnl"] == pytest.approx(10 * (price - 100.0))
    assert result.rejected_orders.height == 0  # the other leg was cancelled, not left over


@pytest.mark.parametrize(
    ("path", "price", "reason"),
    [
        ("ohlc", 105.0, "take_profit"),
        ("pessimistic", 95.0, "stop_loss"),
        ("optimistic", 105.0, "take_profit"),
    ],
)
def test_intrabar_path_decides_a_bar_with_both_legs(path: str, price: float, reason: str) -> None:
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 111, 88, 100))  # the high is nearer
    result = run(rows, {0: [BRACKET]}, config(intrabar_path=path))
    assert fills(result)[1] == (2, "sell", 10, price)
    assert result.trades["exit_reason"].to_list() == [reason]


def test_a_flat_position_walks_the_bar_like_ohlc_under_pessimistic() -> None:
    # Flat: the sell stop entry at 99 walks 100 -> 103 -> 95 -> 96 (the high is nearer) and
    # triggers on the way down (t = 1.5); short now, the legs keep falling to the target at 97.
    rows = bars(DECIDE, (100, 103, 95, 96))
    bracket = order(-10, stop=99.0, take_profit=97.0, stop_loss=101.0)
    result = run(rows, {0: [bracket]}, config(intrabar_path="pessimistic"))
    assert fills(result) == [(1, "sell", 10, 99.0), (1, "buy", 10, 97.0)]
    assert result.trades["exit_reason"].to_list() == ["take_profit"]


def test_activated_legs_fill_in_path_time_order_with_the_other_orders() -> None:
    # 100 -> 94 -> 106 -> 100 (tie: the low first): the entry at the open, its stop loss at 95
    # on the way down, then the separate limit sell at 105 opens a short.
    rows = bars(DECIDE, (100, 106, 94, 100))
    result = run(rows, {0: [order(10, stop_loss=95.0), order(-5, limit=105.0)]})
    got = [(f["order_id"], f["side"], f["price"]) for f in result.fills.iter_rows(named=True)]
    assert got == [(1, "buy", 100.0), (2, "sell", 95.0), (3, "sell", 105.0)]
    trades = result.trades.sort("entry_time")
    assert trades["exit_reason"].to_list() == ["stop_loss", "end_of_data"]
    assert trades["side"].to_list() == ["long", "short"]


def test_legs_never_exit_more_than_the_position_they_protect() -> None:
    # Long 10 by a bracket; the strategy sells 5 at bar 2; bar 3 trades through the stop loss,
    # which sells only the 5 still held (silently cut, no short, no rejection).
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 101, 99, 100), (98, 99, 90, 91), DECIDE)
    result = run(rows, {0: [BRACKET], 1: [order(-5)]})
    assert fills(result) == [(1, "buy", 10, 100.0), (2, "sell", 5, 100.0), (3, "sell", 5, 95.0)]
    assert result.strategy.positions[-1] == 0.0
    assert result.rejected_orders.height == 0
    assert result.trades["exit_reason"].to_list() == ["stop_loss"]


THROUGH = {"limit_fill": "through_amount", "limit_through": 0.5}


@pytest.mark.parametrize(
    ("bar", "stop", "target", "path", "price"),
    [
        # Buy stop 103.02 with a take profit at 103 (legs are checked against each other and a
        # limit entry only): 100 -> 99.9 -> 103.04: the entry triggers at 103.02, where the price
        # is already better than the take profit.
        pytest.param(
            (100, 103.04, 99.9, 103.03), 103.02, 103.0, "ohlc", 103.02, id="tp-below-stop"
        ),
        # An ordinary bracket under `optimistic`: flat, 100 -> 99.9 -> 104.3 (the low is nearer),
        # the entry triggers at 100.05 (t = 1 + 0.15/4.4); long now, the legs walk the high first,
        # 100 -> 104.3 -> 99.9, where that time is at 104.15, above the take profit at 104.1.
        pytest.param((100, 104.3, 99.9, 103), 100.05, 104.1, "optimistic", 104.15, id="optimistic"),
    ],
)
@pytest.mark.parametrize("rule", ["touch", "through"])
def test_a_leg_activated_beyond_its_limit_fills_at_the_activation_point(
    rule: str, bar: tuple[float, ...], stop: float, target: float, path: str, price: float
) -> None:
    # The leg fills at once, at the (better) price where it became active, as a limit does at a
    # better open. The through margin (0.5) is never traded beyond the take profit, which only
    # matters for a limit that has to be reached.
    rows = bars(DECIDE, bar)
    cfg = config(intrabar_path=path, **(THROUGH if rule == "through" else {}))
    result = run(rows, {0: [order(10, stop=stop, take_profit=target, stop_loss=95.0)]}, cfg)
    assert fills(result) == [(1, "buy", 10, stop), (1, "sell", 10, pytest.approx(price))]
    assert result.trades["exit_reason"].to_list() == ["take_profit"]
    assert result.rejected_orders.height == 0


def test_exit_reasons_in_one_run() -> None:
    rows = [
        *bars(DECIDE, (100, 101, 99, 100), (102, 106, 101, 105), asset="A"),
        *bars(DECIDE, (100, 101, 99, 100), (98, 99, 94, 95), asset="B"),
        *bars(DECIDE, (100, 100.5, 99.5, 100), (90, 91, 89, 90), asset="C"),
        *bars(DECIDE, (100, 101, 99, 100), (100, 101, 99, 100), asset="D"),
    ]
    calls = [
        lambda c: c.submit_order("A", 10, take_profit=105.0, stop_loss=95.0),
        lambda c: c.submit_order("B", 10, take_profit=105.0, stop_loss=95.0),
        lambda c: c.submit_order("C", 10),
        lambda c: c.submit_order("C", -10, trail_amount=5.0),
        lambda c: c.submit_order("D", 10),
    ]
    result = run(rows, {0: calls})
    trades = result.trades
    reasons = dict(zip(trades["asset"].to_list(), trades["exit_reason"].to_list(), strict=True))
    assert reasons == {
        "A": "take_profit",
        "B": "stop_loss",
        "C": "trailing_stop",
        "D": "end_of_data",
    }


def test_fills_report_order_type_and_partial() -> None:
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 101, 99, 100), volume=1000.0)
    calls = [
        order(150),
        order(5, limit=99.5),
        order(-5, stop=99.5),
        order(1, order_type="market_on_close"),
    ]
    result = run(rows, {0: calls}, config(max_volume_fraction=0.1))
    got = [
        (f["order_id"], f["order_type"], f["quantity"], f["partial"])
        for f in result.fills.iter_rows(named=True)
    ]
    assert sorted(got) == [
        (1, "market", 50.0, False),
        (1, "market", 100.0, True),
        (2, "limit", 5.0, False),
        (3, "stop", 5.0, False),
        (4, "market_on_close", 1.0, False),
    ]


# ------------------------------------------------------------------------------------------------
# time in force, volume participation, cancels
# ------------------------------------------------------------------------------------------------


def test_day_order_expires_and_ioc_rest_is_cancelled() -> None:
    rows = bars(DECIDE, (101, 102, 100, 101), (96, 97, 85, 86))
    result = run(rows, {0: [order(10, limit=90.0, tif="day")]})
    assert fills(result) == []
    assert rejections(result) == [(1, 1, 10.0, "expired")]

    # 10% of a volume of 1000: 100 of 250 shares fill, the rest of the IOC order expires
    result = run(rows, {0: [order(250, tif="ioc")]}, config(max_volume_fraction=0.1))
    assert fills(result) == [(1, "buy", 100, 101.0)]
    assert rejections(result) == [(1, 1, 150.0, "expired")]


def with_b(*b: tuple[float, float, float, float] | None) -> list:
    """Rows of asset A (``DECIDE`` bars) and asset B; ``None`` is a missing bar of B."""
    rows_b = bars(*[x or DECIDE for x in b], asset="B")
    return bars(*[DECIDE] * len(b)) + [r for r, x in zip(rows_b, b, strict=True) if x]


@pytest.mark.parametrize("tif", ["day", "ioc"])
def test_day_and_ioc_orders_wait_for_their_assets_next_bar(tif: str) -> None:
    # B has no bar on day 1: its DAY/IOC limit buy at 50 lives for B's next bar (day 2).
    rows = with_b((50.5, 51, 50, 50.5), None, (49, 50, 48, 49))
    result = run(rows, {0: [lambda c: c.submit_order("B", 10, limit=50.0, tif=tif)]})
    assert fills(result) == [(2, "buy", 10, 49.0)]
    assert result.rejected_orders.height == 0


def test_same_close_day_market_order_waits_for_its_assets_bar() -> None:
    # Decided on day 1 when B has no bar: filled at B's next close (day 2), not expired.
    rows = with_b((50.5, 51, 50, 50.5), None, (49, 50, 48, 49.5))

    def submit(c: Any) -> Any:
        return c.submit_order("B", 10, tif="day")

    result = run(rows, {1: [submit]}, config(mode="same_close"))
    assert fills(result) == [(2, "buy", 10, 49.5)]
    assert result.rejected_orders.height == 0
    # With a bar now, it fills at this close.
    result = run(rows, {0: [submit]}, config(mode="same_close"))
    assert fills(result) == [(0, "buy", 10, 50.5)]
    assert result.rejected_orders.height == 0


def test_resting_sells_are_cut_at_flat_when_shorting_is_off() -> None:
    # Long 10; three resting sells each pass the check at submission against the long 10.
    # Bar 2 walks 100 -> 99 -> 103: the stop (6 at 99.5) fills, the limit at 101.5 is cut to
    # the 4 still held, the limit at 102 to nothing: short_not_allowed for the cut parts.
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 103, 99, 102), DECIDE)
    calls = {
        0: [order(10)],
        1: [order(-10, limit=101.5), order(-6, stop=99.5), order(-10, limit=102.0)],
    }
    result = run(rows, calls, config(account={"allow_short": False}))
    assert fills(result) == [(1, "buy", 10, 100.0), (2, "sell", 6, 99.5), (2, "sell", 4, 101.5)]
    assert rejections(result) == [
        (2, 2, -6.0, "short_not_allowed"),
        (4, 2, -10.0, "short_not_allowed"),
    ]
    assert min(result.strategy.positions) == 0.0


def test_an_order_cut_to_nothing_at_fill_time_is_gone() -> None:
    # Long 10 (day 1). Day 1: a limit sell of 10 at 105 passes the short check (resting orders
    # are not counted), then a market sell of 10; the market sell fills on day 2; on day 3 the
    # limit is reached with the position flat: cut to nothing, nothing else fills that bar.
    rows = bars(DECIDE, (100, 101, 99, 100), (100, 101, 99, 100), (100, 106, 99, 105))
    calls = {0: [order(10)], 1: [order(-10, limit=105.0), order(-10)]}
    result = run(rows, calls, config(account={"allow_short": False}))
    assert fills(result) == [(1, "buy", 10, 100.0), (2, "sell", 10, 100.0)]
    assert rejections(result) == [(2, 3, -10.0, "short_not_allowed")]  # and no end_of_data


def test_gtc_partial_fills_sum_to_the_order() -> None:
    rows = bars(DECIDE, (101, 102, 100, 101), (102, 103, 101, 102), (103, 104, 102, 103))
    result = run(rows, {0: [order(250)]}, config(max_volume_fraction=0.1))
    assert fills(result) == [(1, "buy", 100, 101.0), (2, "buy", 100, 102.0), (3, "buy", 50, 103.0)]
    assert result.fills["quantity"].sum() == 250
    assert result.rejected_orders.height == 0


def test_cancel_order() -> None:
    rows = bars(DECIDE, (99, 100, 95, 96), (96, 97, 85, 86))
    # cancelled at day 1 before the limit is reached on day 2
    result = run(rows, {0: [order(10, limit=90.0)], 1: [cancel(1)]})
    assert fills(result) == []
    assert result.rejected_orders.height == 0
    # a bracket entry takes its waiting legs with it
    result = run(
        rows, {0: [order(10, stop=110.0, take_profit=120.0, stop_loss=100.0)], 1: [cancel(1)]}
    )
    assert result.rejected_orders.height == 0
    # unknown and already filled ids are reported as not_pending (no quantity)
    result = run(rows, {0: [order(10), cancel(42)], 1: [cancel(1)]})
    assert fills(result) == [(1, "buy", 10, 99.0)]
    got = rejections(result)
    assert [(i, d, r) for i, d, _, r in got] == [(42, 0, "not_pending"), (1, 1, "not_pending")]
    assert all(math.isnan(q) for _, _, q, _ in got)


# ------------------------------------------------------------------------------------------------
# submission errors
# ------------------------------------------------------------------------------------------------

ORDER_ERRORS: list[tuple[str, Call, str]] = [
    ("quantity zero", order(0.0), "quantity"),
    ("quantity NaN", order(math.nan, limit=10.0), "quantity"),
    ("limit zero", order(1, limit=0.0), "limit"),
    ("limit negative", order(1, limit=-5.0), "limit"),
    ("limit NaN", order(1, limit=math.nan), "limit"),
    ("stop zero", order(-1, stop=0.0), "stop"),
    ("stop inf", order(-1, stop=math.inf), "stop"),
    ("stop-limit bad limit", order(1, stop=100.0, limit=-1.0), "limit"),
    ("trail_amount zero", order(-1, trail_amount=0.0), "trail_amount"),
    ("trail_percent of 1 or more", order(-1, trail_percent=1.5), "trail_percent"),
    ("trail_percent negative", order(-1, trail_percent=-0.1), "trail_percent"),
    ("take_profit negative", order(1, take_profit=-1.0), "take_profit"),
    ("stop_loss NaN", order(1, stop_loss=math.nan), "stop_loss"),
    ("limit with a trail", order(1, limit=10.0, trail_amount=1.0), "order_type"),
    ("two trails", order(-1, trail_amount=1.0, trail_percent=0.1), "order_type"),
    ("stop with a trail", order(-1, stop=10.0, trail_percent=0.1), "order_type"),
    ("order_type limit without a limit", order(1, order_type="limit"), "order_type"),
    ("order_type limit with a stop", order(1, order_type="limit", stop=10.0), "order_type"),
    ("order_type market with a limit", order(1, order_type="market", limit=10.0), "order_type"),
    ("on-close with a limit", order(1, order_type="market_on_close", limit=10.0), "order_type"),
    ("unknown order_type", order(1, order_type="iceberg"), "order_type"),
    ("unknown tif", order(1, limit=10.0, tif="gtd"), "tif"),
    ("legs crossed on a buy", order(1, take_profit=95.0, stop_loss=105.0), "take_profit"),
    ("legs crossed on a sell", order(-1, take_profit=105.0, stop_loss=95.0), "take_profit"),
]

# Bracket legs against a limit entry: the take profit beyond the limit, the stop loss behind it.
WRONG_SIDE_OF_A_LIMIT: list[tuple[str, Call, str]] = [
    ("target below a buy limit", order(1, limit=100.0, take_profit=99.0), "take_profit"),
    ("stop above a buy limit", order(1, limit=100.0, stop_loss=101.0), "stop_loss"),
    ("target above a sell limit", order(-1, limit=100.0, take_profit=101.0), "take_profit"),
    ("stop below a sell limit", order(-1, limit=100.0, stop_loss=99.0), "stop_loss"),
    (
        "target at a buy stop-limit's limit",
        order(1, stop=99.0, limit=100.0, take_profit=100.0),
        "take_profit",
    ),
]


@pytest.mark.parametrize(
    ("label", "submit", "field"),
    [pytest.param(*case, id=case[0]) for case in ORDER_ERRORS + WRONG_SIDE_OF_A_LIMIT],
)
def test_bad_orders_raise_order_error_at_submission(label: str, submit: Call, field: str) -> None:
    raised: list[BaseException] = []

    def attempt(c: Any) -> None:
        if raised:
            return
        with pytest.raises(OrderError) as info:
            submit(c)
        raised.append(info.value)

    result = run(bars(DECIDE, DECIDE, DECIDE), {0: [attempt]})
    assert len(raised) == 1, label
    assert str(raised[0]).startswith(field) or f"{field}:" in str(raised[0]), str(raised[0])
    assert result.fills.height == 0  # the bad order left nothing behind
    assert result.rejected_orders.height == 0


def test_a_limit_entry_bracket_on_the_right_sides_is_accepted() -> None:
    rows = bars(DECIDE, (100, 105, 98, 104))  # 100 -> 98 -> 105: entry at 99, target at 104
    result = run(rows, {0: [order(10, limit=99.0, take_profit=104.0, stop_loss=96.0)]})
    assert fills(result) == [(1, "buy", 10, 99.0), (1, "sell", 10, 104.0)]
    assert result.trades["exit_reason"].to_list() == ["take_profit"]
