"""Regression tests of the engine's trust fixes (issue 11): each runs a repro of
`shared/repros` through ml4t.backtest and asserts the fixed behaviour."""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import polars as pl

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.risk import StopLoss
from ml4t.backtest.synthetic import make_bars

REPROS = Path(__file__).resolve().parent / "data"  # a copy of shared/repros/r04b_bars.parquet


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
    ids = pl.concat([result.fills.select("order_id"), result.rejected_orders.select("order_id")])
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


class _TwoBuys(Strategy):
    def __init__(self) -> None:
        self.n = 0

    def on_timestamp_batch(self, ts, batch, ctx):  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n == 1:
            ctx.submit_order("A0000", 100.0)  # more than the cash pays: resized
            ctx.submit_order("A0000", 100.0)  # nothing left for this one


def test_r04_a_resized_order_leaves_no_dust() -> None:
    config = BacktestConfig(
        initial_cash=1000.0,
        account={"type": "cash", "on_insufficient": "resize"},
        commission={"model": "per_order", "amount": 1.0},
    )
    feed = PolarsDataFeed(make_bars(n_assets=1, n_bars=4, seed=1))
    result = Backtest(feed, _TwoBuys(), config=config).run(progress=False)
    assert result.fills.height == 1  # the resized buy, once: no residue fill next bar
    assert result.fills["side"].to_list() == ["buy"]
    assert not result.fills["partial"].any()
    assert (result.equity["cash"] >= 0.0).all()
    assert result.rejected_orders["reason"].to_list() == ["insufficient_cash"] * 2


class _Replay(Strategy):
    def __init__(self, calls: list[tuple[datetime, str, tuple, dict]]) -> None:  # type: ignore[type-arg]
        self.by_ts: dict[datetime, list[tuple[str, tuple, dict]]] = {}  # type: ignore[type-arg]
        for ts, label, args, kw in calls:
            self.by_ts.setdefault(ts, []).append((label, args, kw))

    def on_timestamp_batch(self, timestamp, batch, context):  # type: ignore[no-untyped-def]
        for label, args, kw in self.by_ts.get(timestamp, []):
            getattr(context, label)(*args, **kw)


def test_r04b_a_resized_bracket_entry_leaves_no_dust_and_no_empty_leg() -> None:
    bars = pl.read_parquet(REPROS / "r04b_bars.parquet")
    config = BacktestConfig(
        initial_cash=1000.0,
        execution={"mode": "same_close", "max_volume_fraction": 0.1},
        commission={"model": "percent", "rate": 0.01, "minimum": 1.0},
        account={
            "type": "margin",
            "allow_short": False,
            "initial_margin": 0.5,
            "maintenance_margin": 0.5,
            "on_insufficient": "resize",
        },
    )
    calls = [
        (datetime(2020, 1, 29), "submit_order", (0, 100.0), {}),
        (datetime(2020, 1, 31), "rebalance", ({"A0000": -0.038855720722033804},), {}),
        (
            datetime(2020, 1, 31),
            "submit_order",
            ("A0000", 1000.0),
            {"limit": 125.05231491082982, "stop_loss": 120.52984033648254},
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Backtest(PolarsDataFeed(bars), _Replay(calls), config=config).run(progress=False)
    fills = result.fills
    assert (fills["quantity"] > 1e-6).all()  # no residue or 0-share fill
    legs = fills.filter(pl.col("order_type") == "stop")
    assert legs["side"].to_list() == ["sell"] * legs.height  # the stop protects a long
    entry = fills.filter(pl.col("order_type") == "limit")
    assert entry.height == 1 and not entry["partial"][0]
    assert legs["quantity"].sum() <= entry["quantity"].sum() * (1 + 1e-12)


class _Half(Strategy):
    def on_timestamp_batch(self, timestamp, batch, ctx):  # type: ignore[no-untyped-def]
        ctx.order_target_percent("A", 0.5)


def _bars(opens: list[float], highs: list[float], lows: list[float], closes: list[float]):  # type: ignore[no-untyped-def]
    n = len(closes)
    return pl.DataFrame(
        {
            "timestamp": [datetime(2024, 1, d + 2) for d in range(n)],
            "asset": ["A"] * n,
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": [1e6] * n,
        }
    )


def test_r02_a_target_beyond_f64_sizes_is_numeric_overflow_and_equity_stays_finite() -> None:
    bars = _bars(
        [1e-300, 1e300, 1e300],
        [1e-300, 1e300, 1e300],
        [1e-300, 1e-300, 1e300],
        [1e-300, 1e300, 1e300],
    )
    result = Backtest(PolarsDataFeed(bars), _Half()).run(progress=False)
    assert "numeric_overflow" in result.rejected_orders["reason"].to_list()
    assert result.equity["equity"].is_finite().all()
    assert result.equity["cash"].is_finite().all()
    assert (result.fills["quantity"].abs() <= 2.0**53).all()


class _HugeTarget(Strategy):
    def on_timestamp_batch(self, timestamp, batch, ctx):  # type: ignore[no-untyped-def]
        ctx.order_target_value("A0000", 1e300)


def test_r01_a_huge_target_value_is_rejected_not_booked() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=1, n_bars=4, seed=1))
    result = Backtest(feed, _HugeTarget()).run(progress=False)
    assert result.fills.is_empty()
    assert set(result.rejected_orders["reason"].to_list()) == {"numeric_overflow"}
    assert result.equity["equity"].is_finite().all()


class _Flip(Strategy):
    def __init__(self) -> None:
        self.n = 0

    def on_timestamp_batch(self, timestamp, batch, ctx):  # type: ignore[no-untyped-def]
        self.n += 1
        ctx.order_target_quantity("A", 1000.0 if self.n % 2 else 0.0)


def test_r14_a_same_close_market_fill_references_the_close_exactly() -> None:
    for high in (1.0, 1e6, 1e12, 1e300):
        bars = _bars(
            [1e-4, 1.2e-4, 1e-4], [1.3e-4, high, 1.3e-4], [0.9e-4] * 3, [1e-4, 1.1e-4, 1e-4]
        )
        config = BacktestConfig(execution={"mode": "same_close"})
        result = Backtest(PolarsDataFeed(bars), _Flip(), config=config).run(progress=False)
        fill = result.fills.filter(pl.col("timestamp") == datetime(2024, 1, 3))
        assert fill["reference_price"][0] == 1.1e-4
        assert fill["price"][0] == 1.1e-4
        assert fill["slippage"][0] == 0.0
