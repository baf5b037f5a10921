"""Defaults that cannot ruin a user silently (issue 12): the Reg-T margin account, the ruin
rule, both target-sizing conventions, the next-close mode, the presets that pick them, unit
sanity of rebalance weights and errors in the user's time."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import MarginWarning, RuinWarning, StrategyError, UnitsWarning

START = datetime(2024, 1, 1)


def bars(prices: dict[str, list[float]], spread: float = 1.0) -> pl.DataFrame:
    """Daily bars with open = close = the given price and high/low ``spread`` around it."""
    rows = []
    for asset, path in prices.items():
        for i, p in enumerate(path):
            rows.append(
                {
                    "timestamp": START + timedelta(days=i),
                    "asset": asset,
                    "open": p,
                    "high": p + spread,
                    "low": p - spread,
                    "close": p,
                    "volume": 1e6,
                }
            )
    return pl.DataFrame(rows)


class Weights(Strategy):
    """``rebalance`` to the same weights at every timestamp."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        context.rebalance(self.weights)


class TargetOnce(Strategy):
    """``order_target_percent(asset, weight)`` at the first timestamp only."""

    def __init__(self, asset: str, weight: float) -> None:
        self.asset, self.weight, self.done = asset, weight, False

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        if not self.done:
            context.order_target_percent(self.asset, self.weight)
            self.done = True


def run(data: pl.DataFrame, strategy: Strategy, **config: Any) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Backtest(PolarsDataFeed(data), strategy, config=BacktestConfig(**config)).run()
    return result, caught


FLAT = {a: [100.0] * 6 for a in ("A", "B", "C", "D", "E")}


def test_default_account_is_reg_t() -> None:
    account = BacktestConfig().account
    assert (account.type, account.initial_margin, account.maintenance_margin) == (
        "margin",
        0.5,
        0.25,
    )


def test_fifteen_times_gross_is_refused_with_one_warning_counting_the_rejections() -> None:
    result, caught = run(bars(FLAT), Weights({a: 3.0 for a in FLAT}))
    margin = [w for w in caught if issubclass(w.category, MarginWarning)]
    assert len(margin) == 1
    rejected = result.rejected_orders.filter(pl.col("reason") == "insufficient_margin")
    assert rejected.height > 0
    assert f"{rejected.height} order(s)" in str(margin[0].message)
    # What filled stays within 2x gross of equity at every close.
    equity = result.equity
    gross = equity["long_value"] - equity["short_value"]
    assert (gross <= 2.0 * equity["equity"] + 1e-6).all()


def test_unlimited_leverage_is_an_explicit_choice() -> None:
    result, caught = run(
        bars(FLAT), Weights({a: 3.0 for a in FLAT}), account={"initial_margin": None}
    )
    assert not [w for w in caught if issubclass(w.category, MarginWarning)]
    assert result.rejected_orders.height == 0
    last = result.equity.row(-1, named=True)
    assert last["long_value"] == pytest.approx(15.0 * last["equity"])
    assert BacktestConfig(account={"initial_margin": None}).account.maintenance_margin is None
    assert BacktestConfig(account={"initial_margin": 0.2}).account.maintenance_margin == 0.2


def test_resize_fills_what_the_margin_allows() -> None:
    result, _ = run(
        bars({"A": [100.0] * 4}), Weights({"A": 3.0}), account={"on_insufficient": "resize"}
    )
    first = result.fills.row(0, named=True)
    assert first["quantity"] == pytest.approx(2000.0)  # 2 x 100,000 / 100


def test_ruin_liquidates_at_the_next_open_and_refuses_everything_after() -> None:
    prices = {"A": [100.0, 100.0, 95.0, 85.0, 80.0, 82.0, 90.0]}
    result, caught = run(
        bars(prices), Weights({"A": 10.0}), initial_cash=10_000.0, account={"initial_margin": None}
    )
    ruin = [w for w in caught if issubclass(w.category, RuinWarning)]
    assert len(ruin) == 1 and "2024-01-04" in str(ruin[0].message)
    fills = result.fills
    liquidation = fills.filter(pl.col("timestamp") == datetime(2024, 1, 5)).row(0, named=True)
    assert (liquidation["side"], liquidation["price"]) == ("sell", 80.0)
    assert fills.filter(pl.col("timestamp") > datetime(2024, 1, 5)).height == 0
    trades = result.trades
    assert trades.row(-1, named=True)["exit_reason"] == "ruin"
    refused = result.rejected_orders.filter(pl.col("reason") == "ruined")
    assert refused["timestamp"].to_list() == [
        datetime(2024, 1, 4),  # the order pending at ruin
        datetime(2024, 1, 5),
        datetime(2024, 1, 6),
        datetime(2024, 1, 7),
    ]
    assert result.equity.height == 7  # the curve goes on, flat after the liquidation
    after = result.equity.filter(pl.col("timestamp") >= datetime(2024, 1, 5))
    assert after["equity"].n_unique() == 1
    assert (result.equity["long_value"].tail(3) == 0.0).all()


def test_the_worked_example_of_both_sizing_conventions() -> None:
    """docs/semantics.md: cash 10,000, target 50 % at Monday's close 100, Tuesday opens 110."""
    data = bars({"A": [100.0, 110.0, 110.0]})
    decision, _ = run(data, TargetOnce("A", 0.5), initial_cash=10_000.0)
    fill, _ = run(data, TargetOnce("A", 0.5), initial_cash=10_000.0, execution={"sizing": "fill"})
    assert decision.fills.row(0, named=True)["quantity"] == pytest.approx(50.0)
    assert fill.fills.row(0, named=True)["quantity"] == pytest.approx(10_000 * 0.5 / 110)
    assert fill.fills.row(0, named=True)["price"] == 110.0


def test_fill_sizing_values_the_account_at_the_fill_bar_opens() -> None:
    """Two assets, both re-sized at the fill bar: V' = cash + positions at the opens."""
    data = (
        pl.concat(
            [
                bars({"A": [100.0, 100.0, 100.0]}),
                bars({"B": [50.0, 50.0, 50.0]}),
            ]
        )
        .with_columns(
            # Day 3 opens away from day 2's close: A at 120, B at 40 (closes unchanged).
            pl.when(pl.col("timestamp") == datetime(2024, 1, 3))
            .then(pl.when(pl.col("asset") == "A").then(120.0).otherwise(40.0))
            .otherwise(pl.col("open"))
            .alias("open"),
        )
        .with_columns(
            pl.max_horizontal("open", "close", "high").alias("high"),
            pl.min_horizontal("open", "close", "low").alias("low"),
        )
        .sort("timestamp", "asset")
    )
    result, _ = run(data, Weights({"A": 0.5, "B": 0.5}), execution={"sizing": "fill"})
    day3 = result.fills.filter(pl.col("timestamp") == datetime(2024, 1, 3))
    held_a, held_b = 500.0, 1000.0  # day 2: 50,000 at 100 and 50,000 at 50
    value = 0.0 + held_a * 120.0 + held_b * 40.0
    expected = {"A": value * 0.5 / 120.0 - held_a, "B": value * 0.5 / 40.0 - held_b}
    signed = {
        r["asset"]: r["quantity"] * (1 if r["side"] == "buy" else -1)
        for r in day3.iter_rows(named=True)
    }
    assert signed["A"] == pytest.approx(expected["A"])
    assert signed["B"] == pytest.approx(expected["B"])
    # The sale of A filled first (exits before entries), funding the purchase of B.
    assert day3["asset"].to_list() == ["A", "B"]


def test_next_close_fills_at_the_close_of_the_next_bar() -> None:
    data = bars({"A": [100.0, 101.0, 102.0]}).with_columns(
        (pl.col("close") + 0.5).alias("close"), (pl.col("high") + 0.5).alias("high")
    )
    result, _ = run(data, TargetOnce("A", 0.5), execution={"mode": "next_close"})
    fill = result.fills.row(0, named=True)
    assert (fill["timestamp"], fill["reference_price"]) == (datetime(2024, 1, 2), 101.5)


@pytest.mark.parametrize(
    ("preset", "mode", "sizing"),
    [
        ("default", "next_open", "decision"),
        ("backtrader", "next_open", "decision"),
        ("vectorbt", "same_close", "fill"),
        ("zipline", "next_close", "decision"),
    ],
)
def test_each_preset_sizes_and_fills_like_its_framework(
    preset: str, mode: str, sizing: str
) -> None:
    execution = BacktestConfig.preset(preset).execution
    assert (execution.mode, execution.sizing) == (mode, sizing)


def test_a_percent_given_as_a_rebalance_weight_warns_once_with_the_value() -> None:
    _, caught = run(
        bars({"A": [100.0] * 4}), Weights({"A": 25.0}), account={"initial_margin": None}
    )
    units = [w for w in caught if issubclass(w.category, UnitsWarning)]
    assert len(units) == 1
    assert "weight 25" in str(units[0].message) and "A" in str(units[0].message)


def test_a_strategy_error_names_the_time_in_the_data_s_zone() -> None:
    class Fails(Strategy):
        def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
            raise ValueError("boom")

    data = bars({"A": [100.0] * 3}).with_columns(
        pl.col("timestamp").dt.replace_time_zone("America/New_York")
    )
    with pytest.raises(StrategyError) as info:
        Backtest(PolarsDataFeed(data), Fails()).run()
    message = str(info.value)
    assert message.startswith("on_timestamp_batch(): 2024-01-01 00:00:00-05:00: ")
    assert "ValueError: boom" in message and "ns" not in message
