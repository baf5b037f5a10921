"""Buying power at fill time against docs/semantics.md ("Accounts"), hand-computed.

Found by the differential tests (tests/test_oracle_differential.py): each case is the smallest
run that shows the engine and the contract apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy

T0 = datetime(2024, 1, 1)
pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # tiny runs: undefined ratios
    pytest.mark.filterwarnings("ignore::ml4t.backtest.errors.MarginWarning"),
]


def flat(price: float, n: int) -> PolarsDataFeed:
    return PolarsDataFeed(
        pl.DataFrame(
            {
                "timestamp": [T0 + timedelta(days=i) for i in range(n)],
                "asset": ["A"] * n,
                "open": [price] * n,
                "high": [price] * n,
                "low": [price] * n,
                "close": [price] * n,
                "volume": [1e6] * n,
            }
        )
    )


class Orders(Strategy):
    """Submits ``orders[day]`` (shares of A) on that day."""

    def __init__(self, orders: dict[int, float]) -> None:
        self.orders = orders

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        quantity = self.orders.get((timestamp.replace(tzinfo=None) - T0).days)
        if quantity is not None:
            context.submit_order("A", quantity)


def test_a_flip_within_the_initial_margin_fills() -> None:
    # Reg-T 0.5, equity 10,000 at 100: long 150 (1.5x), then sell 300 to be short 150. The
    # closing 150 is always allowed; the gross exposure after the fill is 15,000 and
    # 15,000 x 0.5 <= 10,000, so the whole sell fills. (Counting the closed 150 as still held,
    # 15,000 + 150 x 100 > 20,000, rejects it.)
    config = BacktestConfig(initial_cash=10_000)
    result = Backtest(flat(100.0, 3), Orders({0: 150, 1: -300}), config=config).run()
    assert result.rejected_orders.is_empty(), result.rejected_orders
    assert result.fills["quantity"].to_list() == [150, 300]
    assert result.equity["short_value"][-1] == pytest.approx(-15_000)


def test_a_cash_account_resizes_to_all_that_cash_pays_for() -> None:
    # Cash 1,000, price 10, 1 per share: q x 10 + q x 1 <= 1,000 up to q = 1,000 / 11.
    config = BacktestConfig(
        initial_cash=1_000,
        account={"type": "cash", "on_insufficient": "resize"},
        commission={"model": "per_share", "rate": 1.0},
    )
    result = Backtest(flat(10.0, 2), Orders({0: 200}), config=config).run()
    assert result.fills["quantity"].to_list() == pytest.approx([1_000 / 11])
    assert result.equity["cash"][-1] == pytest.approx(0.0, abs=1e-9)


def test_a_cash_account_fills_a_buy_that_cash_pays_for() -> None:
    # 90.5 shares cost 905 + 90.5 fee = 995.5 <= 1,000: affordable, nothing to reject.
    config = BacktestConfig(
        initial_cash=1_000,
        account={"type": "cash"},
        commission={"model": "per_share", "rate": 1.0},
    )
    result = Backtest(flat(10.0, 2), Orders({0: 90.5}), config=config).run()
    assert result.rejected_orders.is_empty(), result.rejected_orders
    assert result.equity["cash"][-1] == pytest.approx(4.5)


class FirstDay(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if timestamp.replace(tzinfo=None) == T0:
            context.submit_order("B", 10)  # B has no bar (no price) yet
            context.submit_order("A", 10)


def test_a_position_bought_before_its_first_close_leaves_the_margin_check_finite() -> None:
    # Day 1 opens with B's first bar: B's buy fills first (submission order), before B has ever
    # been marked; A's 1,000 buy on a 100,000 account must still pass the Reg-T check. (Valuing
    # B at a missing mark makes equity NaN, and the check then refuses every later entry.)
    days = [(0, "A", 100.0), (1, "A", 100.0), (1, "B", 50.0), (2, "A", 100.0), (2, "B", 50.0)]
    frame = pl.DataFrame(
        {
            "timestamp": [T0 + timedelta(days=d) for d, _, _ in days],
            "asset": [a for _, a, _ in days],
            **{k: [p for *_, p in days] for k in ("open", "high", "low", "close")},
            "volume": [1e6] * len(days),
        }
    )
    config = BacktestConfig(initial_cash=100_000)
    result = Backtest(PolarsDataFeed(frame), FirstDay(), config=config).run()
    assert result.rejected_orders.is_empty(), result.rejected_orders
    assert sorted(result.fills["asset"].cast(pl.String).to_list()) == ["A", "B"]
