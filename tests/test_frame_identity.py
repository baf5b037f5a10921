"""The equity frame and the order journal stay bit-identical to what the code built before they
were made cheaper (issue 18): each is compared, dtypes, order and values, with a reference copy
of the former construction kept here, on a W1-like signal run, a top-k run with rejections and a
run with brackets, limit orders, risk rules, shorts (borrow fees) and capital flows, naive and
tz-aware."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TopKStrategy,
)
from ml4t.backtest._core import (
    EXIT_REASONS,
    ORDER_EVENT_STATUSES,
    ORDER_ORIGINS,
    ORDER_TYPES,
    REJECT_REASONS,
    TIME_IN_FORCE,
)
from ml4t.backtest.results.metrics import performance_curve
from ml4t.backtest.results.result import _drawdown, _exposures
from ml4t.backtest.risk import StopLoss, TimeExit, TrailingStop

# ------------------------------------------------------------- the former construction


def _names(codes: pl.Expr, names: list[str]) -> pl.Expr:
    return codes.replace_strict(list(range(len(names))), names, return_dtype=pl.String)


def _absent_as_null(name: str) -> pl.Expr:
    return pl.col(name).fill_nan(None).alias(name)


def reference_equity(result: Any, df: pl.DataFrame, financing: pl.DataFrame | None) -> Any:
    if financing is not None and "flow" in financing.columns:
        financing = financing.rename({"flow": "flows"})
    kinds = ("borrow_fee", "interest", "dividend", "dividend_paid", "funding", "flows")
    if financing is not None and financing.height:
        financing = financing.select("ts", *[c for c in kinds if c in financing.columns])
        df = df.join(financing, on="ts", how="left")
    df = df.with_columns(
        pl.col(c).fill_null(0.0) if c in df.columns else pl.lit(0.0).alias(c) for c in kinds
    )
    curve = pl.Series("curve", performance_curve(df, result.config.initial_cash))
    peak = pl.max_horizontal(pl.col("curve").cum_max(), pl.lit(result.config.initial_cash))
    df = df.with_columns(curve)
    notional = "long_exposure" in df.columns
    long_exposure = pl.col("long_exposure" if notional else "long_value")
    short_exposure = pl.col("short_exposure" if notional else "short_value")
    return df.select(
        result._timestamps(pl.col("ts")).alias("timestamp"),
        "cash",
        "long_value",
        "short_value",
        "positions_value",
        "equity",
        (long_exposure - short_exposure).alias("gross_exposure"),
        (long_exposure + short_exposure).alias("net_exposure"),
        (pl.col("curve") / peak - 1.0).alias("drawdown"),
        "borrow_fee",
        "interest",
        "dividend",
        "dividend_paid",
        "funding",
        "flows",
    )


def reference_order_events(result: Any, df: pl.DataFrame) -> pl.DataFrame:
    reason = pl.col("reason")
    return df.select(
        "order_id",
        result._timestamps(pl.col("ts")).alias("timestamp"),
        _names(pl.col("status"), ORDER_EVENT_STATUSES),
        pl.col("quantity").abs(),
        pl.col("remaining").abs(),
        _absent_as_null("price"),
        _absent_as_null("limit"),
        _absent_as_null("stop"),
        pl.when(reason == 255)
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(_names(reason.clip(0, len(REJECT_REASONS) - 1), REJECT_REASONS))
        .alias("reason"),
    )


def reference_orders(result: Any, df: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    quantity = pl.col("quantity")
    fill = pl.col("status").is_in(("partially_filled", "filled"))
    filled = pl.col("quantity").filter(fill)
    summary = events.group_by("order_id", maintain_order=True).agg(
        pl.col("status").last(),
        filled.sum().alias("filled_quantity"),
        ((filled * pl.col("price").filter(fill)).sum() / filled.sum()).alias("avg_fill_price"),
        pl.struct("timestamp", "status", "quantity", "remaining", "price", "reason").alias(
            "history"
        ),
    )
    orders = df.select(
        "order_id",
        result._timestamps(pl.col("ts")).alias("timestamp"),
        result._asset(),
        pl.when(quantity.is_nan() | (quantity == 0))
        .then(pl.lit(None, dtype=pl.String))
        .when(quantity > 0)
        .then(pl.lit("buy"))
        .otherwise(pl.lit("sell"))
        .alias("side"),
        _names(pl.col("order_type"), ORDER_TYPES),
        quantity.abs(),
        _absent_as_null("limit"),
        _absent_as_null("stop"),
        _absent_as_null("trail_amount"),
        _absent_as_null("trail_percent"),
        _names(pl.col("tif"), TIME_IN_FORCE),
        pl.col("parent_id").replace(0, None),
        pl.col("oco_id").replace(0, None),
        _names(pl.col("origin"), ORDER_ORIGINS),
        _names(pl.col("exit_reason"), EXIT_REASONS),
    )
    return (
        orders.join(summary, on="order_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("filled_quantity").fill_null(0.0),
            pl.when(pl.col("filled_quantity") > 0)
            .then(pl.col("avg_fill_price"))
            .alias("avg_fill_price"),
        )
        .sort("order_id")
    )


# ------------------------------------------------------------------------------- runs


def _bars(n_assets: int, n_bars: int, seed: int, tz: str | None, step: timedelta) -> Any:
    rng = np.random.default_rng(seed)
    shape = (n_bars, n_assets)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, shape), axis=0))
    open_ = close * (1.0 + rng.normal(0.0, 0.005, shape))
    spread = np.abs(rng.normal(0.0, 0.01, shape)) * close
    stamps = [datetime(2024, 1, 2) + i * step for i in range(n_bars)]
    frame = pl.DataFrame(
        {
            "timestamp": np.repeat(np.array(stamps, dtype="datetime64[ns]"), n_assets),
            "asset": np.tile([f"S{i:02d}" for i in range(n_assets)], n_bars),
            "open": open_.ravel(),
            "high": (np.maximum(open_, close) + spread).ravel(),
            "low": (np.minimum(open_, close) - spread).ravel(),
            "close": close.ravel(),
            "volume": 1e6,
            "score": rng.normal(0.0, 1.0, shape).ravel(),
        }
    ).with_columns(
        pl.when(pl.col("close").rolling_mean(3).over("asset") > pl.col("close"))
        .then(1.0)
        .otherwise(-1.0)
        .alias("signal")
    )
    if tz:
        frame = frame.with_columns(pl.col("timestamp").dt.replace_time_zone(tz))
    return frame


class Mixed(Strategy):
    """Brackets, resting limits that expire, shorts and market orders, every few bars."""

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        self.n = getattr(self, "n", 0) + 1
        closes = batch["close"]
        for i, asset in enumerate(batch.assets):
            price = float(closes[i])
            held = context.position(asset)
            kind = (self.n + i) % 5
            if kind == 0 and held == 0.0:
                context.submit_order(asset, 10.0, take_profit=price * 1.03, stop_loss=price * 0.97)
            elif kind == 1:
                context.submit_order(asset, -5.0, limit=price * 1.01, tif="day")
            elif kind == 2 and held != 0.0:
                context.close_position(asset)
            elif kind == 3:
                context.submit_order(asset, 3.0)


def _runs() -> dict[str, Any]:
    minute = timedelta(minutes=1)
    day = timedelta(days=1)
    w1 = _bars(1, 3_000, 1, None, minute).drop("score")
    w1_tz = _bars(1, 2_000, 2, "America/New_York", minute).drop("score")
    topk = _bars(12, 120, 3, None, day)
    mixed = _bars(4, 150, 4, "Europe/Berlin", day)
    flows = pl.DataFrame(
        {
            "timestamp": [mixed["timestamp"][40], mixed["timestamp"][200]],
            "amount": [5_000.0, -2_000.0],
        }
    )
    fee: Any = {"model": "percent", "rate": 0.001}
    no_margin: Any = {"initial_margin": None}
    borrow: Any = {"borrow_rate": 0.05}
    return {
        "w1": lambda: Backtest(
            PolarsDataFeed(w1),
            SignalStrategy("signal", quantity=100),
            config=BacktestConfig(initial_cash=1e6, commission=fee, account=no_margin),
        ),
        "w1_tz": lambda: Backtest(
            PolarsDataFeed(w1_tz),
            SignalStrategy("signal", quantity=100),
            config=BacktestConfig(initial_cash=1e4, commission=fee),
        ),
        # k assets at a weight that asks for more than the cash: some orders are rejected.
        "topk_rejections": lambda: Backtest(
            PolarsDataFeed(topk.drop("signal")),
            TopKStrategy("score", k=4),
            config=BacktestConfig(initial_cash=1_000.0, commission=fee),
        ),
        "brackets_risk_flows": lambda: Backtest(
            PolarsDataFeed(mixed.drop("signal", "score")),
            Mixed(),
            config=BacktestConfig(
                initial_cash=20_000.0,
                commission=fee,
                account=borrow,
                risk=[StopLoss(pct=0.05), TrailingStop(pct=0.08), TimeExit(max_bars=7)],
            ),
            flows=flows,
        ),
    }


RUNS = _runs()


def _check(built: pl.DataFrame, reference: pl.DataFrame) -> None:
    assert built.schema == reference.schema
    assert built.equals(reference)
    assert_frame_equal(built, reference, check_exact=True)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_record_frames_equal_the_former_construction(name: str) -> None:
    result = RUNS[name]().run(progress=False)
    raw = dict(result._raw)  # the engine's tables, before a frame is built (and pops them)
    equity = reference_equity(result, raw["equity"], raw.get("financing"))
    events = reference_order_events(result, raw["order_events"])
    orders = reference_orders(result, raw["orders"], events)
    _check(result.equity, equity)
    _check(result.order_events, events)
    _check(result.orders, orders)
    # orders not by id (the journal then joins and sorts instead of lining rows up)
    shuffled = raw["orders"].reverse()
    _check(result._orders(shuffled, events), reference_orders(result, shuffled, events))
    assert orders.height > 0 and events.height > orders.height
    if name == "topk_rejections":
        assert result.rejected_orders.height > 0
    if name == "brackets_risk_flows":
        assert (equity["flows"] != 0.0).sum() == 2
        assert (equity["borrow_fee"] > 0.0).any()
        assert orders["parent_id"].drop_nulls().len() > 0
        assert orders["status"].n_unique() >= 3  # filled, cancelled/expired, rejected...
        # events interleave orders here, so the journal groups events it had to sort
        assert not raw["order_events"]["order_id"].is_sorted()


def test_drawdown_keeps_polars_semantics_on_nan_equity() -> None:
    """An equity curve with NaN (a run whose marks overflowed) gives the former drawdown."""
    result = RUNS["w1"]().run(progress=False)
    raw = result._raw["equity"]
    values = raw["equity"].to_numpy().copy()
    values[[5, 6, 900]] = math.nan
    values[10] = math.inf
    broken = raw.with_columns(pl.Series("equity", values))
    _check(result._equity(broken, None), reference_equity(result, broken, None))


@pytest.mark.parametrize("kind", ["walk", "rising", "falling", "flat", "spikes", "short"])
def test_blockwise_drawdown_is_the_polars_drawdown_bit_for_bit(kind: str) -> None:
    """The block-by-block running maximum (blocks of 4096 rows, filled where no new high)
    gives Polars' ``cum_max`` / ``max_horizontal`` / division bit for bit."""
    rng = np.random.default_rng(7)
    n = 3 * 4096 + 17 if kind != "short" else 100
    floor = 1_000.0
    curve = {
        "walk": floor * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))),
        "rising": floor + np.arange(n, dtype=np.float64),
        "falling": floor - np.arange(n, dtype=np.float64),
        "flat": np.full(n, floor),
        "spikes": np.where(rng.random(n) < 0.001, 5e3, 900.0) + rng.random(n),
        "short": floor * np.exp(np.cumsum(rng.normal(0.0, 0.05, n))),
    }[kind]
    if kind == "spikes":
        curve[[4095, 4096, 8191, n - 1]] = [math.inf, 2e4, -math.inf, 3e4]
    frame = pl.DataFrame({"curve": curve})
    peak = pl.max_horizontal(pl.col("curve").cum_max(), pl.lit(floor))
    expected = frame.select(pl.col("curve") / peak - 1.0).to_series().to_numpy()
    built = _drawdown(curve, floor)
    assert built is not None
    assert np.array_equal(built.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize(
    ("long", "short"),
    [
        ([1.0, 0.0, 2.5], [0.0, 0.0, 0.0]),  # no short side: the long column, shared
        ([1.0, -0.0, 2.5], [0.0, 0.0, 0.0]),  # -0.0 + 0.0 is +0.0: the sum is computed
        ([1.0, 0.0, 2.5], [0.0, -0.0, 0.0]),  # a -0.0 short value: both computed
        ([1.0, 0.0, 2.5], [0.5, 0.0, 3.0]),
    ],
)
def test_exposures_equal_the_sum_and_difference(long: list[float], short: list[float]) -> None:
    frame = pl.DataFrame({"long_value": long, "short_value": short})
    gross, net = _exposures(frame["long_value"], frame["short_value"])
    built = frame.select(gross, net)
    lv, sv = pl.col("long_value"), pl.col("short_value")
    expected = frame.select((lv - sv).alias("gross_exposure"), (lv + sv).alias("net_exposure"))
    for name in ("gross_exposure", "net_exposure"):
        assert np.array_equal(
            built[name].to_numpy().view(np.int64), expected[name].to_numpy().view(np.int64)
        )


def test_a_single_asset_feed_codes_its_rows_as_before() -> None:
    """One asset: every row's code is 0 without casting the names, the same column (dtype,
    values, one chunk) the Enum cast gave; the run is the same."""
    bars = _bars(1, 500, 5, None, timedelta(minutes=1)).drop("score")
    feed = PolarsDataFeed(bars)
    codes = feed.frame.get_column("asset_id")
    expected = bars.select(
        pl.col("asset").cast(pl.Enum(["S00"])).to_physical().cast(pl.UInt32).alias("asset_id")
    ).to_series()
    assert codes.dtype == pl.UInt32 and codes.n_chunks() == 1
    assert codes.equals(expected)
