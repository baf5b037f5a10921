"""A feed is safe to share across threads (r15): concurrent runs over one feed, streaming or
in memory, with Python (batch and per-bar) or built-in strategies, each give exactly the result
of a single run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestResult,
    Context,
    MarketEvent,
    PolarsDataFeed,
    Strategy,
    TimestampBatch,
    TopKStrategy,
)
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=20, n_bars=200, seed=5)


class BatchTop(Strategy):
    def on_timestamp_batch(
        self, timestamp: object, batch: TimestampBatch, context: Context
    ) -> None:
        best = np.argsort(-batch["score"], kind="stable")[:3]
        context.rebalance({batch.assets[i]: 0.3 for i in best})


class BarSignal(Strategy):
    def on_market_data(self, event: MarketEvent, context: Context) -> None:
        want = 10.0 if event.signals["score"] > 0 else 0.0
        context.order_target_quantity(event.asset, want)


def _same(a: BacktestResult, b: BacktestResult) -> bool:
    return a.fills.equals(b.fills) and a.equity.equals(b.equity) and a.trades.equals(b.trades)


@pytest.mark.parametrize("chunking", [{"chunk_rows": 500}, {"chunk_by": "1mo"}, {}])
@pytest.mark.parametrize("make", [BatchTop, BarSignal, lambda: TopKStrategy("score", k=3)])
def test_concurrent_runs_over_one_feed_equal_a_single_run(
    chunking: dict[str, object], make: object
) -> None:
    feed = PolarsDataFeed(BARS, **chunking)  # type: ignore[arg-type]
    reference = Backtest(feed, make()).run(progress=False)  # type: ignore[operator]
    assert reference.fills.height > 50

    def one(_: int) -> BacktestResult:
        return Backtest(feed, make()).run(progress=False)  # type: ignore[operator]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(8)))
    assert all(_same(r, reference) for r in results)
