"""Accounts and order events through the Python API (hand-computed; docs/semantics.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import ConfigError

T0 = datetime(2024, 1, 1)
# Tiny runs leave ratio metrics undefined (NaN with a warning); not what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def bars(rows: list[tuple[float, float, float, float]]) -> PolarsDataFeed:
    return PolarsDataFeed(
        pl.DataFrame(
            {
                "timestamp": [T0 + timedelta(days=i) for i in range(len(rows))],
                "asset": ["A"] * len(rows),
                "open": [r[0] for r in rows],
                "high": [r[1] for r in rows],
                "low": [r[2] for r in rows],
                "close": [r[3] for r in rows],
                "volume": [1e6] * len(rows),
            }
        )
    )


def flat(*prices: float) -> PolarsDataFeed:
    return bars([(p, p, p, p) for p in prices])


class BuyOnce(Strategy):
    def __init__(self, quantity: float, **order: Any) -> None:
        self.quantity = quantity
        self.order = order
        self.events: list[tuple[int, str, float, str | None]] = []

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if timestamp == T0:
            context.submit_order("A", self.quantity, **self.order)

    def on_order(self, order: Any, context: Any) -> None:
        self.events.append((order.order_id, order.status, order.filled, order.reason))


def test_cash_account_rejects_and_reports_the_event() -> None:
    strategy = BuyOnce(20)
    config = BacktestConfig(initial_cash=1_000, account={"type": "cash"})
    result = Backtest(flat(100, 100), strategy, config=config).run()
    assert result.fills.is_empty()
    assert result.rejected_orders["reason"].to_list() == ["insufficient_cash"]
    assert strategy.events == [
        (1, "accepted", 0.0, None),
        (1, "rejected", 0.0, "insufficient_cash"),
    ]


def test_cash_account_resize_pays_the_fee_too() -> None:
    config = BacktestConfig(
        initial_cash=1_000,
        account={"type": "cash", "on_insufficient": "resize"},
        commission={"model": "per_order", "amount": 10.0},
    )
    result = Backtest(flat(100, 100), BuyOnce(20), config=config).run()
    assert result.fills["quantity"].to_list() == pytest.approx([9.9])
    assert result.equity["cash"][-1] == pytest.approx(0.0, abs=1e-9)


def test_margin_call_liquidates_at_the_close() -> None:
    config = BacktestConfig(
        initial_cash=1_000, account={"initial_margin": 0.5, "maintenance_margin": 0.25}
    )
    result = Backtest(flat(100, 100, 60, 60), BuyOnce(20), config=config).run()
    assert result.fills["price"].to_list() == [100.0, 60.0]
    assert result.trades["exit_reason"].to_list() == ["margin_call"]
    assert result.equity["equity"][2] == pytest.approx(200.0)


def test_initial_margin_rejects_excess_leverage() -> None:
    config = BacktestConfig(initial_cash=1_000, account={"initial_margin": 0.5})
    result = Backtest(flat(100, 100), BuyOnce(30), config=config).run()
    assert result.rejected_orders["reason"].to_list() == ["insufficient_margin"]


def test_borrow_fee_accrues_on_short_value() -> None:
    config = BacktestConfig(initial_cash=1_000, account={"borrow_rate": 0.10})
    result = Backtest(flat(100, 100, 100, 100), BuyOnce(-10), config=config).run()
    fees = result.equity["borrow_fee"].to_list()
    assert fees[:2] == [0.0, 0.0]
    assert fees[2] == pytest.approx(1_000 * 0.10 / 365.25)
    assert result.metrics["total_borrow_fees"] == pytest.approx(2 * 1_000 * 0.10 / 365.25)
    cash = result.equity["cash"].to_list()
    assert cash[3] == pytest.approx(2_000 - 2 * 1_000 * 0.10 / 365.25)


def test_bracket_events_in_order() -> None:
    strategy = BuyOnce(10, take_profit=108, stop_loss=96)
    feed = bars([(100, 101, 99, 100), (100, 106, 97, 104), (104, 110, 103, 109)])
    Backtest(feed, strategy).run()
    assert [(i, s) for i, s, _, _ in strategy.events] == [
        (1, "accepted"),
        (2, "accepted"),
        (3, "accepted"),
        (1, "filled"),
        (2, "filled"),
        (3, "cancelled"),
    ]


def test_bad_account_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^account\.type"):
        BacktestConfig(account={"type": "futures"})
    with pytest.raises(ConfigError, match=r"maintenance_margin must not exceed"):
        BacktestConfig(account={"initial_margin": 0.3, "maintenance_margin": 0.5})
    with pytest.raises(ConfigError, match=r"^account\.borrow_rate"):
        BacktestConfig(account={"borrow_rate": -0.1})


class ModifyLimit(Strategy):
    """Day 0: a buy limit at 50. Day 1: move it to 98 and try a stop on it (invalid)."""

    def __init__(self) -> None:
        self.order_id = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if timestamp == T0:
            self.order_id = context.submit_order("A", 10, limit=50.0)
        elif timestamp == T0 + timedelta(days=1):
            context.modify_order(self.order_id, limit=98.0, quantity=4.0)
            context.modify_order(self.order_id, stop=99.0)


def test_modify_order_moves_the_limit_and_refuses_a_stop() -> None:
    feed = bars([(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 97, 99)])
    result = Backtest(feed, ModifyLimit()).run()
    assert result.fills.select("quantity", "price").rows() == [(4.0, 98.0)]
    assert result.rejected_orders["reason"].to_list() == ["invalid_modify"]
