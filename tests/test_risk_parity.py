"""Parity of custom Python risk rules with the built-in (Rust) rules.

A :class:`RiskRule` subclass that recomputes ``StopLoss(pct)``, ``TakeProfit(pct)`` and
``TrailingStop(pct, mark="close", update="lagged")`` from the :class:`RiskContext` it is given
(``basis_price``, ``high_close``/``low_close``) and answers with ``RiskDecision.stop`` /
``.target`` must give *identical* results (fills, trades, equity and rejections, compared with
``DataFrame.equals``) to the built-in rules, in both execution modes, for longs and shorts, with
both stop bases. The levels are computed with the same floating-point operations as the Rust
rules (``basis - side * (pct * basis)``), so equality is exact, not approximate.

The batch form (``evaluate_batch`` overridden, vectorised with numpy) must match the
per-position ``evaluate`` form as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    PolarsDataFeed,
    RiskContext,
    RiskDecision,
    RiskRule,
    SignalStrategy,
    Strategy,
)
from ml4t.backtest.risk import StopLoss, TakeProfit, TrailingStop
from ml4t.backtest.synthetic import make_bars

TABLES = ("fills", "trades", "equity", "rejected_orders")


class PyStops(RiskRule):
    """StopLoss + TakeProfit + TrailingStop(mark="close", update="lagged"), per position.

    Decisions come in the built-ins' order (stop, target, trailing stop): at equal stop levels
    the engine keeps the reason seen first, so the order matters for the exit reason.
    """

    def __init__(self, stop: float, take: float, trail: float) -> None:
        self.stop = stop
        self.take = take
        self.trail = trail

    def evaluate(self, context: RiskContext) -> list[RiskDecision]:
        side = 1.0 if context.quantity > 0 else -1.0
        basis = context.basis_price
        # mark="close": the best close since entry (the entry fill counts as the first mark)
        water = context.high_close if side > 0 else context.low_close
        return [
            RiskDecision.stop(basis - side * (self.stop * basis)),
            RiskDecision.target(basis + side * (self.take * basis)),
            RiskDecision.stop(water - side * (self.trail * water), reason="trailing_stop"),
        ]


class PyStopsBatch(PyStops):
    """The same rule answering for every position of a timestamp at once (numpy arrays)."""

    def __init__(self, stop: float, take: float, trail: float) -> None:
        super().__init__(stop, take, trail)
        self.calls = 0
        self.max_batch = 0

    def evaluate(self, context: RiskContext) -> list[RiskDecision]:
        raise AssertionError("the engine must call evaluate_batch, not evaluate")

    def evaluate_batch(self, contexts: list[RiskContext]) -> Sequence[list[RiskDecision]]:
        self.calls += 1
        self.max_batch = max(self.max_batch, len(contexts))
        side = np.array([1.0 if c.quantity > 0 else -1.0 for c in contexts])
        basis = np.array([c.basis_price for c in contexts])
        water = np.array([c.high_close if c.quantity > 0 else c.low_close for c in contexts])
        stops = basis - side * (self.stop * basis)
        targets = basis + side * (self.take * basis)
        trails = water - side * (self.trail * water)
        return [
            [
                RiskDecision.stop(float(s)),
                RiskDecision.target(float(t)),
                RiskDecision.stop(float(w), reason="trailing_stop"),
            ]
            for s, t, w in zip(stops, targets, trails, strict=True)
        ]


def builtins(stop: float, take: float, trail: float) -> list[Any]:
    return [
        StopLoss(pct=stop),
        TakeProfit(pct=take),
        TrailingStop(pct=trail, mark="close", update="lagged"),
    ]


def config(mode: str, stop_basis: str) -> BacktestConfig:
    return BacktestConfig(execution={"mode": mode, "stop_basis": stop_basis})


def run(df: pl.DataFrame, strategy: Any, cfg: BacktestConfig, rules: list[Any]) -> BacktestResult:
    return Backtest(PolarsDataFeed(df), strategy, config=cfg, risk=rules).run(progress=False)


def assert_identical(expected: BacktestResult, actual: BacktestResult) -> None:
    for name in TABLES:
        left, right = getattr(expected, name), getattr(actual, name)
        assert left.equals(right), f"{name} differ:\n{left}\n{right}"


def exit_reasons(result: BacktestResult) -> set[str]:
    return set(result.trades["exit_reason"].to_list())


pcts = st.sampled_from([0.005, 0.01, 0.015, 0.02, 0.03, 0.05])
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    stop=pcts,
    take=pcts,
    trail=pcts,
    mode=st.sampled_from(["next_open", "same_close"]),
    stop_basis=st.sampled_from(["fill", "signal_close"]),
    allow_short=st.booleans(),
)
def test_python_rule_matches_builtin_stops(
    seed: int,
    stop: float,
    take: float,
    trail: float,
    mode: str,
    stop_basis: str,
    allow_short: bool,
) -> None:
    df = make_bars(n_assets=3, n_bars=60, seed=seed)
    # allow_short=True: the signal flips between long and short positions
    strategy = SignalStrategy("signal", quantity=10, allow_short=allow_short)
    cfg = config(mode, stop_basis)
    expected = run(df, strategy, cfg, builtins(stop, take, trail))
    actual = run(df, strategy, cfg, [PyStops(stop, take, trail)])
    assert_identical(expected, actual)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    stop=pcts,
    take=pcts,
    trail=pcts,
    mode=st.sampled_from(["next_open", "same_close"]),
    stop_basis=st.sampled_from(["fill", "signal_close"]),
)
def test_batch_form_matches_per_position_form(
    seed: int, stop: float, take: float, trail: float, mode: str, stop_basis: str
) -> None:
    df = make_bars(n_assets=4, n_bars=50, seed=seed)
    strategy = SignalStrategy("signal", quantity=10, allow_short=True)
    cfg = config(mode, stop_basis)
    per_position = run(df, strategy, cfg, [PyStops(stop, take, trail)])
    batch_rule = PyStopsBatch(stop, take, trail)
    batch = run(df, strategy, cfg, [batch_rule])
    assert_identical(per_position, batch)
    assert_identical(run(df, strategy, cfg, builtins(stop, take, trail)), batch)
    # one call per timestamp with open positions, each with every open position; same_close
    # adds a second call for the positions opened at that close (their first levels)
    calls_per_timestamp = 1 if mode == "next_open" else 2
    assert batch_rule.calls <= calls_per_timestamp * df["timestamp"].n_unique()
    assert batch_rule.max_batch > 1


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
@pytest.mark.parametrize("stop_basis", ["fill", "signal_close"])
def test_parity_runs_exercise_every_exit_reason(mode: str, stop_basis: str) -> None:
    """The parity above is not vacuous: on a longer run every level fires, longs and shorts."""
    df = make_bars(n_assets=4, n_bars=150, seed=11)
    strategy = SignalStrategy("signal", quantity=10, allow_short=True)
    cfg = config(mode, stop_basis)
    expected = run(df, strategy, cfg, builtins(0.01, 0.02, 0.015))
    actual = run(df, strategy, cfg, [PyStops(0.01, 0.02, 0.015)])
    assert_identical(expected, actual)
    assert {"stop_loss", "take_profit", "trailing_stop"} <= exit_reasons(actual)
    assert set(actual.trades["side"].to_list()) == {"long", "short"}


class Flipper(Strategy):
    """A Python strategy: every 7 timestamps, targets +10 / -10 shares of each asset in turn
    (a Python strategy with Python rules goes through the other entry point of the engine)."""

    def __init__(self) -> None:
        self.index = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if self.index % 7 == 0:
            sign = 1.0 if (self.index // 7) % 2 == 0 else -1.0
            for asset in batch.assets:
                context.order_target_quantity(asset, 10.0 * sign)
        self.index += 1


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
def test_parity_with_a_python_strategy(mode: str) -> None:
    df = make_bars(n_assets=3, n_bars=120, seed=5)
    cfg = config(mode, "fill")
    expected = run(df, Flipper(), cfg, builtins(0.01, 0.02, 0.015))
    actual = run(df, Flipper(), cfg, [PyStops(0.01, 0.02, 0.015)])
    assert_identical(expected, actual)
    assert {"stop_loss", "take_profit", "trailing_stop"} <= exit_reasons(actual)
