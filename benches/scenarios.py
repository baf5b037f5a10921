"""The foundation benchmark scenarios, shared by the pytest-benchmark file and the report script.

(a) 1 asset x 1,000,000 minute bars, built-in ±1 signal strategy (100 shares long on +1, flat on
    -1), next-open fills, 0.1% commission.
(b) 500 assets x 2,520 daily bars, a Python ``on_timestamp_batch`` strategy holding the 25
    highest-score assets at equal weight, rebalanced daily, next-open fills, 0.1% commission.
(c) the same as (b), written with ``on_market_data`` (a per-bar callback).
(a+rules), (b+rules): (a) and (b) with StopLoss(2%), TakeProfit(4%) and TrailingStop(3%,
    closes, lagged) attached to every position (the built-in rules run in Rust).
(b+pyrules): (b) with the same three rules written as one Python ``RiskRule`` (one call per
    timestamp; identical fills).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    RiskDecision,
    RiskRule,
    SignalStrategy,
    Strategy,
)
from ml4t.backtest.risk import StopLoss, TakeProfit, TrailingStop
from ml4t.backtest.synthetic import make_bars

CONFIG = BacktestConfig(commission={"model": "percent", "rate": 0.001})
TOP_K = 25
RULES = [StopLoss(pct=0.02), TakeProfit(pct=0.04), TrailingStop(pct=0.03)]


class TopKBatch(Strategy):
    """Hold the k highest scores at equal weight, rebalanced every timestamp."""

    def __init__(self, k: int = TOP_K) -> None:
        self.k = k
        self.weight = 1.0 / k

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        scores = batch["score"]
        best = np.argpartition(-scores, self.k)[: self.k]
        ids = batch.asset_ids[best].tolist()
        context.rebalance(dict.fromkeys(ids, self.weight))


class TopKPerBar(Strategy):
    """The same holdings as :class:`TopKBatch`, decided one asset bar at a time from a
    cross-sectional rank column computed in Polars before the run."""

    def __init__(self, k: int = TOP_K) -> None:
        self.k = k
        self.weight = 1.0 / k

    def on_market_data(self, event: Any, context: Any) -> None:
        asset = event.asset_id
        if event.signals["rank"] < self.k:
            context.order_target_percent(asset, self.weight)
        elif context.position(asset) != 0.0:
            context.close_position(asset)


def signal_feed(n_bars: int = 1_000_000) -> PolarsDataFeed:
    """Scenario (a)'s data: one asset of minute bars; the signal flips with probability 1%."""
    bars = make_bars(n_assets=1, n_bars=n_bars, seed=1, interval="1m")
    rng = np.random.default_rng(1)
    flips = rng.random(n_bars) < 0.01
    side = np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0)
    return PolarsDataFeed(bars.with_columns(pl.Series("signal", side)))


def cross_section_feed(n_assets: int = 500, n_bars: int = 2_520) -> PolarsDataFeed:
    """Scenarios (b) and (c)'s data, with a cross-sectional score rank (0 = best)."""
    bars = make_bars(n_assets=n_assets, n_bars=n_bars, seed=2)
    bars = bars.with_columns(
        (pl.col("score").rank("ordinal", descending=True).over("timestamp") - 1)
        .cast(pl.Float64)
        .alias("rank")
    )
    return PolarsDataFeed(bars)


def run_a(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, SignalStrategy("signal", quantity=100), config=CONFIG).run()


def run_b(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, TopKBatch(), config=CONFIG).run()


def run_c(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, TopKPerBar(), config=CONFIG).run()


def run_a_rules(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, SignalStrategy("signal", quantity=100), config=CONFIG, risk=RULES).run()


def run_b_rules(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, TopKBatch(), config=CONFIG, risk=RULES).run()


class PythonStops(RiskRule):
    """StopLoss(2%), TakeProfit(4%) and TrailingStop(3%, closes, lagged) in Python."""

    def evaluate(self, context: Any) -> list[RiskDecision]:
        # The built-ins' arithmetic exactly: level = reference -/+ distance.
        side = 1.0 if context.quantity > 0 else -1.0
        basis = context.basis_price
        water = context.high_close if side > 0 else context.low_close
        return [
            RiskDecision.stop(basis - side * (0.02 * basis)),
            RiskDecision.target(basis + side * (0.04 * basis)),
            RiskDecision.stop(water - side * (0.03 * water), reason="trailing_stop"),
        ]


def run_b_pyrules(feed: PolarsDataFeed) -> Any:
    return Backtest(feed, TopKBatch(), config=CONFIG, risk=[PythonStops()]).run()
