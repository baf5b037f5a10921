"""Point-in-time joins of signals, indicators and context, and signal timing: a value is never
used before it is available, streaming joins exactly what an in-memory run joins, and in
next-bar mode no fill uses a price of the bar on which the decision was made."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, SignalStrategy, Strategy
from ml4t.backtest.errors import ConfigError, DataValidationError, SignalTimingError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=4, n_bars=40, seed=21, interval="1h", missing_fraction=0.15)
PRICES = BARS.drop("score", "signal")
NAN_POLICY = {"missing_signals": "nan"}  # bars before a signal exists: "no signal"
pytestmark = pytest.mark.filterwarnings("ignore::ml4t.backtest.data.DataCleaningWarning")


def random_signals(seed: int, n: int = 150, *, late: bool = False) -> pl.DataFrame:
    """Signals at irregular times (not on the bar grid), unique values, optional availability."""
    rng = np.random.default_rng(seed)
    start = BARS["timestamp"].min()
    minutes = np.sort(rng.integers(-120, 40 * 60 + 60, size=n))
    frame = pl.DataFrame(
        {
            "timestamp": [start + timedelta(minutes=int(m)) for m in minutes],
            "asset": rng.choice(["A0000", "A0001", "A0002", "A0003", "ZZZ"], size=n).tolist(),
            "pred": rng.normal(size=n),
        }
    ).unique(subset=["timestamp", "asset"], keep="first", maintain_order=True)
    if late:
        delay = rng.integers(0, 180, size=frame.height)
        frame = frame.with_columns(
            (pl.col("timestamp") + pl.Series(delay).cast(pl.Int64) * pl.duration(minutes=1))
            .alias("available_at")
            .cast(pl.Datetime("us"))
        )
    return frame


def expected_join(
    bars: pl.DataFrame, signals: pl.DataFrame, effective: pl.Expr, *, hold: bool
) -> list[float]:
    """Brute force: each bar gets the newest row effective at or before it (and, without hold,
    only if that row became effective after the asset's previous bar)."""
    rows = signals.with_columns(effective.alias("eff")).sort("eff", "timestamp").rows(named=True)
    out: list[float] = []
    previous: dict[str, datetime] = {}
    for bar in bars.sort("timestamp", "asset").iter_rows(named=True):
        t, a = bar["timestamp"], bar["asset"]
        best = None
        for row in rows:
            if row["asset"] == a and row["eff"] <= t:
                best = row
        prev = previous.get(a)
        if best is None or (not hold and prev is not None and best["eff"] <= prev):
            out.append(math.nan)
        else:
            out.append(best["pred"])
        previous[a] = t
    return out


def joined(feed: PolarsDataFeed, column: str = "pred") -> list[float]:
    return feed.frame[column].to_list()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("hold", [False, True], ids=["attach", "hold"])
def test_strict_join_never_uses_a_future_value(seed: int, hold: bool) -> None:
    signals = random_signals(seed)
    options: dict[str, Any] = {"validation": NAN_POLICY, "hold": ["signals"] if hold else []}
    memory = PolarsDataFeed(PRICES, signals, **options)
    want = expected_join(PRICES, signals, pl.col("timestamp"), hold=hold)
    np.testing.assert_array_equal(np.array(joined(memory)), np.array(want))
    # every value used at a bar comes from a row stamped at or before that bar
    source = dict(zip(signals["pred"].to_list(), signals["timestamp"].to_list(), strict=True))
    bar_times = PRICES.sort("timestamp", "asset")["timestamp"].to_list()
    for value, t in zip(joined(memory), bar_times, strict=True):
        if not math.isnan(value):
            assert source[value] <= t
    for chunk_rows in (1, 5, 13):
        streaming = PolarsDataFeed(PRICES, signals, chunk_rows=chunk_rows, **options)
        assert pl.concat(list(streaming.iter_chunks())).equals(memory.frame)


@pytest.mark.parametrize("seed", [4, 5])
def test_shift_timing_uses_each_row_from_its_availability(seed: int) -> None:
    signals = random_signals(seed, late=True)
    with pytest.raises(SignalTimingError) as info:
        PolarsDataFeed(PRICES, signals, validation=NAN_POLICY)
    message = str(info.value)
    assert message.startswith("signals.available_at: signal_timing:")
    late = signals.filter(pl.col("available_at") > pl.col("timestamp")).row(0)
    assert f"({late[0]}, {late[1]}, {late[3]})" in message  # names the rows
    feed = PolarsDataFeed(PRICES, signals, signal_timing="shift", validation=NAN_POLICY)
    effective = pl.max_horizontal("timestamp", "available_at")
    want = expected_join(PRICES, signals, effective, hold=False)
    np.testing.assert_array_equal(np.array(joined(feed)), np.array(want))
    available = dict(zip(signals["pred"].to_list(), signals["available_at"].to_list(), strict=True))
    bar_times = PRICES.sort("timestamp", "asset")["timestamp"].to_list()
    used = [(v, t) for v, t in zip(joined(feed), bar_times, strict=True) if not math.isnan(v)]
    assert used and all(available[v] <= t for v, t in used)
    streaming = PolarsDataFeed(
        PRICES, signals, signal_timing="shift", chunk_by="3h", validation=NAN_POLICY
    )
    assert pl.concat(list(streaming.iter_chunks())).equals(feed.frame)


def test_available_column_by_name_and_on_time_rows() -> None:
    signals = BARS.select("timestamp", "asset", pl.col("score").alias("pred")).with_columns(
        known=pl.col("timestamp") - pl.duration(minutes=5)
    )
    feed = PolarsDataFeed(PRICES, signals, available_column="known")
    assert feed.frame["pred"].equals(PolarsDataFeed(BARS).frame["score"].alias("pred"))
    with pytest.raises(DataValidationError, match=r"^signals\.nope: missing_column"):
        PolarsDataFeed(PRICES, signals, available_column="nope")


def test_lag_in_bars_shifts_by_the_assets_own_bars() -> None:
    signals = BARS.select("timestamp", "asset", pl.col("score").alias("pred"))
    with pytest.raises(DataValidationError, match=r"^pred: null:"):
        PolarsDataFeed(PRICES, signals, lag=2)  # an asset's first two bars have no signal
    feed = PolarsDataFeed(PRICES, signals, lag=2, validation=NAN_POLICY)
    want = BARS.sort("timestamp", "asset").select(
        pl.col("score").shift(2).over("asset").fill_null(math.nan)
    )
    np.testing.assert_array_equal(feed.frame["pred"].to_numpy(), want.to_series().to_numpy())
    for chunk_rows in (1, 3, 10):
        streaming = PolarsDataFeed(
            PRICES, signals, lag=2, chunk_rows=chunk_rows, validation=NAN_POLICY
        )
        assert pl.concat(list(streaming.iter_chunks())).equals(feed.frame)


def test_lag_as_a_duration() -> None:
    signals = BARS.select("timestamp", "asset", pl.col("score").alias("pred"))
    feed = PolarsDataFeed(PRICES, signals, lag="2h", validation=NAN_POLICY)
    moved = signals.with_columns(pl.col("timestamp") + pl.duration(hours=2))
    same = PolarsDataFeed(PRICES, moved, validation=NAN_POLICY)
    assert feed.frame.equals(same.frame)
    assert PolarsDataFeed(
        PRICES, signals, lag=timedelta(hours=2), validation=NAN_POLICY
    ).frame.equals(feed.frame)
    with pytest.raises(ConfigError, match=r"^data\.lag:"):
        PolarsDataFeed(PRICES, lag=1)
    with pytest.raises(ConfigError, match=r"^data\.lag:"):
        PolarsDataFeed(PRICES, signals, lag=-1)


def test_context_and_indicators() -> None:
    days = PRICES["timestamp"].dt.truncate("1d").unique().sort()
    context = pl.DataFrame({"timestamp": days, "vix": np.arange(days.len(), dtype=float) + 10})
    indicators = BARS.select("timestamp", "asset", pl.col("close").alias("sma"))
    with pytest.raises(DataValidationError, match=r"^vix: null:"):
        PolarsDataFeed(PRICES, indicators=indicators, context=context)  # daily on hourly bars
    feed = PolarsDataFeed(PRICES, indicators=indicators, context=context, hold=["context"])
    assert feed.signal_columns == ["sma", "vix"]
    frame = feed.frame.with_columns(day=pl.col("ts").cast(pl.Datetime("ns")).dt.truncate("1d"))
    want = frame.join(
        context.with_columns(pl.col("timestamp").cast(pl.Datetime("ns"))),
        left_on="day",
        right_on="timestamp",
    )
    assert frame["vix"].to_list() == want.sort("ts", "asset_id")["vix_right"].to_list()
    assert feed.frame["sma"].equals(feed.frame["close"].alias("sma"))
    streaming = PolarsDataFeed(
        PRICES, indicators=indicators, context=context, hold=["context"], chunk_rows=7
    )
    assert pl.concat(list(streaming.iter_chunks())).equals(feed.frame)
    with pytest.raises(DataValidationError, match=r"^context\.timestamp: duplicate:"):
        PolarsDataFeed(PRICES, context=pl.concat([context, context.head(1)]), hold=["context"])


def test_unknown_assets_in_signals_are_ignored() -> None:
    signals = BARS.select("timestamp", "asset", pl.col("score").alias("pred"))
    extra = signals.head(3).with_columns(asset=pl.lit("NOT_TRADED"))
    feed = PolarsDataFeed(PRICES, pl.concat([signals, extra]))
    assert feed.assets == ["A0000", "A0001", "A0002", "A0003"]
    assert feed.frame["pred"].equals(PolarsDataFeed(BARS).frame["score"].alias("pred"))


# --------------------------------------------------------------------------- no look-ahead fills


class TradeEveryBar(Strategy):
    """Flips every asset's target each bar and records each decision."""

    def __init__(self) -> None:
        self.decisions: list[tuple[datetime, str]] = []
        self.flip = 1.0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        self.flip = -self.flip
        for asset in batch.assets:
            self.decisions.append((timestamp, asset))
            context.order_target_quantity(asset, 10.0 * self.flip)


@pytest.mark.parametrize("chunk_rows", [None, 6])
def test_next_bar_fills_never_use_the_decision_bar(chunk_rows: int | None) -> None:
    bars = make_bars(n_assets=5, n_bars=60, seed=8, missing_fraction=0.2)
    feed = PolarsDataFeed(bars, chunk_rows=chunk_rows)
    strategy = TradeEveryBar()
    config = BacktestConfig(execution={"mode": "next_open"}, slippage={"model": "percent"})
    result = Backtest(feed, strategy, config=config).run(progress=False)
    assert result.fills.height > 100
    by_asset = {
        a: frame.sort("timestamp")
        for (a,), frame in bars.partition_by("asset", as_dict=True).items()
    }
    decided = {}
    for ts, asset in strategy.decisions:
        decided.setdefault(asset, []).append(ts)
    for fill in result.fills.iter_rows(named=True):
        asset, when = str(fill["asset"]), fill["timestamp"]
        times = by_asset[asset]["timestamp"].to_list()
        i = times.index(when)
        assert i > 0, "a fill on the asset's first bar would need a decision before the data"
        decision_bar = by_asset[asset].row(i - 1, named=True)
        fill_bar = by_asset[asset].row(i, named=True)
        assert decision_bar["timestamp"] in decided[asset]  # decided on the previous bar ...
        assert fill["reference_price"] == fill_bar["open"]  # ... filled at this bar's open
        decision_prices = {decision_bar[c] for c in ("open", "high", "low", "close")}
        assert (
            fill["price"] not in decision_prices and fill["reference_price"] not in decision_prices
        )
        assert fill_bar["low"] <= fill["price"] <= fill_bar["high"]


def test_lagged_signal_trades_two_bars_after_it_is_computed() -> None:
    """A signal computed from bar t's close, declared with lag=1, is seen at t+1 and filled at
    the open of t+2: never at a price the signal could have seen."""
    bars = make_bars(n_assets=1, n_bars=30, seed=3).drop("score", "signal")
    signals = bars.select(
        "timestamp",
        "asset",
        (pl.col("close") > pl.col("open")).cast(pl.Float64).mul(2).sub(1).alias("sig"),
    )
    feed = PolarsDataFeed(bars, signals, lag=1, validation=NAN_POLICY)
    result = Backtest(feed, SignalStrategy("sig", quantity=1.0)).run(progress=False)
    times = bars["timestamp"].to_list()
    sig = signals["sig"].to_list()
    for fill in result.fills.iter_rows(named=True):
        i = times.index(fill["timestamp"])
        # the position moved toward the sign of the signal computed two bars earlier
        direction = 1.0 if fill["side"] == "buy" else -1.0
        assert sig[i - 2] == direction
