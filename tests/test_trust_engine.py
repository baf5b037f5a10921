"""Regression tests of the engine's trust fixes (issue 11): each runs a repro of
`shared/repros` through ml4t.backtest and asserts the fixed behaviour."""

from __future__ import annotations

import warnings

import polars as pl

from ml4t.backtest import Backtest, PolarsDataFeed, Strategy
from ml4t.backtest.risk import StopLoss
from ml4t.backtest.synthetic import make_bars


class _BuyThenRestingLimits(Strategy):
    """A market buy, then (after the stop-loss exit) resting buy limits far below the market."""

    def __init__(self) -> None:
        self.n = 0
        self.returned: list[int] = []

    def on_timestamp_batch(self, ts, batch, ctx):  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n == 1:
            self.returned.append(ctx.submit_order("A0000", 10.0))
        elif ctx.position("A0000") == 0 and len(self.returned) < 3:
            self.returned.append(ctx.submit_order("A0000", 1.0, limit=1.0))


def test_r07_order_ids_are_unique_across_risk_exits_and_submissions() -> None:
    strategy = _BuyThenRestingLimits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Backtest(
            PolarsDataFeed(make_bars(n_assets=1, n_bars=30, seed=3, volatility=0.05)),
            strategy,
            risk=[StopLoss(pct=0.01)],
        ).run(progress=False)
    assert len(strategy.returned) == 3
    assert len(set(strategy.returned)) == 3
    exits = result.fills.filter(pl.col("side") == "sell")["order_id"].to_list()
    assert exits, "the stop-loss exit fired"
    assert not set(exits) & set(strategy.returned[1:])
    # The resting limits never fill: they end as end_of_data rejections under their own ids.
    rejected = result.rejected_orders["order_id"].to_list()
    assert sorted(strategy.returned[1:]) == sorted(rejected)
    ids = pl.concat(
        [result.fills.select("order_id"), result.rejected_orders.select("order_id")]
    )
    assert ids["order_id"].n_unique() == ids.height


class _Huge(Strategy):
    def on_timestamp_batch(self, ts, batch, ctx):  # type: ignore[no-untyped-def]
        if ctx.position("A0000") == 0:
            ctx.submit_order("A0000", 1e308)


def test_r01_quantity_beyond_2_pow_53_is_an_order_error() -> None:
    import pytest

    from ml4t.backtest import OrderError

    feed = PolarsDataFeed(make_bars(n_assets=1, n_bars=4, seed=1))
    with pytest.raises(OrderError, match=r"quantity: too_large: \|1e308\| exceeds 2\^53"):
        Backtest(feed, _Huge()).run(progress=False)
