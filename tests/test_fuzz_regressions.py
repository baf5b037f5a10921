"""Findings of the strict fuzz run (`ML4T_FUZZ_STRICT=all scripts/fuzz.sh`, docs/fuzzing.md),
each as the smallest run through the Python API that showed it, hand-computed.

The inputs that found them are in fuzz/regressions/order_sequences/.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import RuinWarning

T0 = datetime(2024, 1, 1)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # tiny runs


def feed(prices: list[float], volume: float = 1e6) -> PolarsDataFeed:
    n = len(prices)
    return PolarsDataFeed(
        pl.DataFrame(
            {
                "timestamp": [T0 + timedelta(days=i) for i in range(n)],
                "asset": ["A"] * n,
                "open": prices,
                "high": prices,
                "low": prices,
                "close": prices,
                "volume": [volume] * n,
            }
        )
    )


class Script(Strategy):
    """Runs ``steps[day](context)`` on that day."""

    def __init__(self, steps: dict[int, Any]) -> None:
        self.steps = steps

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        step = self.steps.get((timestamp.replace(tzinfo=None) - T0).days)
        if step is not None:
            step(context)


def test_a_sell_cut_at_a_tiny_position_sells_it_and_never_fills_nothing() -> None:
    # Cash account (no shorting), at most 1 % of a bar's volume of 1e-14 fills (1e-16 shares).
    # Day 0 buys 8: 1e-16 fills on each later bar. Day 1 sells 43, cut at decision to the 8
    # held and pending. Day 2's pass fills the buy's next 1e-16 first, then cuts the sell at
    # flat to the 2e-16 held. Reducing 8 by its excess (8 - 2e-16 == 8 in floats) left an
    # order of 0 shares, which filled as a fill of 0 shares with its commission.
    config = BacktestConfig(
        account={"type": "cash"},
        commission={"model": "per_order", "amount": 1.0},
        execution={"max_volume_fraction": 0.01},
    )
    steps = {0: lambda c: c.submit_order("A", 8), 1: lambda c: c.submit_order("A", -43)}
    result = Backtest(feed([100.0] * 4, volume=1e-14), Script(steps), config=config).run()
    fills = result.fills
    assert fills["quantity"].to_list() == [1e-16] * 5, fills
    sides = fills.group_by("order_id").agg(pl.col("side").unique())
    assert {r["order_id"]: r["side"] for r in sides.iter_rows(named=True)} == {
        1: ["buy"],
        2: ["sell"],
    }
    sell = result.orders.filter(pl.col("order_id") == 2)
    assert sell["filled_quantity"].to_list() == [2e-16]
    cut = result.rejected_orders.filter(pl.col("order_id") == 2)
    assert cut["reason"].to_list() == ["short_not_allowed"]
    assert cut["quantity"].to_list() == pytest.approx([-8.0])


def test_a_partly_filled_target_order_never_turns_to_the_other_side() -> None:
    # Fill-time sizing with a volume cap of 200 shares a bar (0.5 x 400). Day 0: target 50 %
    # of 100,000 at 100 (500 shares); day 1 it fills 200 of them. Day 1 the strategy also buys
    # 600 explicitly. Day 2 the target order re-sizes to 500 - 200 held - 600 pending = -300:
    # its target is passed. It used to sell 300 under the id that had bought 200; now it is
    # cancelled, and the explicit buy fills its capped 200 a bar.
    config = BacktestConfig(
        initial_cash=100_000, execution={"sizing": "fill", "max_volume_fraction": 0.5}
    )
    steps = {
        0: lambda c: c.order_target_percent("A", 0.5),
        1: lambda c: c.submit_order("A", 600),
    }
    result = Backtest(feed([100.0] * 6, volume=400), Script(steps), config=config).run()
    fills = result.fills
    sides = fills.group_by("order_id").agg(pl.col("side").n_unique().alias("sides"))
    assert (sides["sides"] == 1).all(), fills
    assert (fills["side"] == "buy").all(), fills
    target_id = fills["order_id"][0]
    assert fills.filter(pl.col("order_id") == target_id)["quantity"].sum() == 200
    assert fills.filter(pl.col("order_id") != target_id)["quantity"].sum() == 600
    journal = result.orders.filter(pl.col("order_id") == target_id)
    assert journal["status"].to_list()[-1] == "cancelled", journal


def test_a_cash_account_sale_whose_fee_exceeds_its_proceeds_is_not_refused() -> None:
    # Per-share fee 5 on a price of 1. Cash 6,000 buys 1,000 shares (1,000 + 5,000 fee), cash
    # 0; selling them brings 1,000 - 5,000 = -4,000: the fee is owed (docs/semantics.md,
    # Accounts). The sale is never refused for its fee; equity below zero is ruin, so the buy
    # after it is refused as `ruined`.
    config = BacktestConfig(
        initial_cash=6_000,
        account={"type": "cash"},
        commission={"model": "per_share", "rate": 5.0},
    )
    steps = {
        0: lambda c: c.submit_order("A", 1_000),
        1: lambda c: c.submit_order("A", -1_000),
        2: lambda c: c.submit_order("A", 1),
    }
    with pytest.warns(RuinWarning, match="equity reached -4000"):
        result = Backtest(feed([1.0] * 5), Script(steps), config=config).run()
    assert result.fills["quantity"].to_list() == [1_000, 1_000]
    assert result.fills["commission"].to_list() == [5_000, 5_000]
    assert result.equity["cash"].to_list()[-1] == -4_000
    assert result.rejected_orders["reason"].to_list() == ["ruined"]


def test_a_cancel_of_an_id_never_issued_after_ruin_is_refused_without_a_crash() -> None:
    # After ruin every request is refused `ruined`; the refusal of a cancel of a raw id (2^47,
    # never issued) used to size the engine's id table to it: an allocation of about 700 TB,
    # which aborted the process. Only issued ids are noted now.
    config = BacktestConfig(
        initial_cash=6_000,
        account={"type": "cash"},
        commission={"model": "per_share", "rate": 5.0},
    )
    steps = {
        0: lambda c: c.submit_order("A", 1_000),
        1: lambda c: c.submit_order("A", -1_000),
        3: lambda c: c.cancel_order(2**47),
    }
    with pytest.warns(RuinWarning):
        result = Backtest(feed([1.0] * 5), Script(steps), config=config).run()
    rejected = result.rejected_orders
    assert rejected["order_id"].to_list() == [2**47]
    assert rejected["reason"].to_list() == ["ruined"]
