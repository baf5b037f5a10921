"""The public Python API: strategy modes, built-ins, fill timing, sizing, fees, the batch/event/
context objects, hooks, result frames, trades, metrics, time zones and input shapes.

Every expected number here is computed by hand from a tiny frame, so a failure points at one rule
of ``docs/semantics.md`` or ``docs/api_contract.md``.
"""

from __future__ import annotations

import math
import warnings
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TimestampBatch,
    TopKStrategy,
)
from ml4t.backtest.synthetic import make_bars

T0 = datetime(2024, 1, 1)


def day(i: int) -> datetime:
    return T0 + timedelta(days=i)


def bar(i: int, asset: str, open_: float, close: float, **signals: float) -> dict[str, Any]:
    """One bar whose high/low wrap open and close by 1."""
    return {
        "timestamp": day(i),
        "asset": asset,
        "open": open_,
        "high": max(open_, close) + 1.0,
        "low": min(open_, close) - 1.0,
        "close": close,
        "volume": 1000.0,
        **signals,
    }


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows)


# 1-asset frame: opens 10, 20, 30, 40, 50; closes 15, 25, 35, 45, 55
ONE = frame([bar(i, "A", 10.0 * (i + 1), 10.0 * (i + 1) + 5.0) for i in range(5)])


class Scripted(Strategy):
    """Batch strategy running ``script[i]`` (a list of (method, *args)) at the i-th timestamp."""

    def __init__(self, script: dict[int, list[tuple[Any, ...]]]) -> None:
        self.script = script
        self.index = 0
        self.seen: list[dict[str, Any]] = []

    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        self.seen.append(
            {
                "timestamp": timestamp,
                "context_timestamp": context.timestamp,
                "cash": context.cash,
                "equity": context.equity,
                "positions": dict(context.positions),
                "prices": {a: context.price(a) for a in context.asset_names},
                "position_A": context.position("A"),
                "position_0": context.position(0),
            }
        )
        for method, *args in self.script.get(self.index, []):
            getattr(context, method)(*args)
        self.index += 1


def run(
    df: pl.DataFrame,
    strategy: Any,
    **config: Any,
) -> BacktestResult:
    return Backtest(PolarsDataFeed(df), strategy, config=BacktestConfig(**config)).run()


def assert_results_equal(a: BacktestResult, b: BacktestResult) -> None:
    assert_frame_equal(a.fills, b.fills)
    assert_frame_equal(a.trades, b.trades)
    assert_frame_equal(a.equity, b.equity)
    assert_frame_equal(a.rejected_orders, b.rejected_orders)


# --------------------------------------------------------------------------- strategy modes


class ScoreBatch(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        for asset, score in zip(batch.assets, batch["score"], strict=True):
            if score > 0.3:
                context.order_target_percent(asset, 0.2)
            elif score < -0.3:
                context.close_position(asset)


class ScoreBar(Strategy):
    def on_market_data(self, event: Any, context: Any) -> None:
        score = event.signals["score"]
        if score > 0.3:
            context.order_target_percent(event.asset, 0.2)
        elif score < -0.3:
            context.close_position(event.asset)


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
def test_batch_and_bar_modes_give_identical_results(mode: str) -> None:
    df = make_bars(n_assets=4, n_bars=40, seed=3, missing_fraction=0.1)
    config = {"execution": {"mode": mode}, "commission": {"model": "percent", "rate": 0.001}}
    a = run(df, ScoreBatch(), **config)
    b = run(df, ScoreBar(), **config)
    assert a.fills.height > 10
    assert_results_equal(a, b)


# --------------------------------------------------------------------------- built-ins vs Python


class PySignal(Strategy):
    """Python re-implementation of the built-in SignalStrategy."""

    def __init__(
        self,
        column: str,
        quantity: float | None = None,
        weight: float | None = None,
        long_threshold: float = 0.0,
        short_threshold: float = 0.0,
        allow_short: bool = False,
    ) -> None:
        self.column = column
        self.quantity = quantity
        self.weight = weight
        self.long_threshold = long_threshold
        self.short_threshold = short_threshold
        self.allow_short = allow_short

    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        for asset, s in zip(batch.assets, batch[self.column], strict=True):
            if s > self.long_threshold:
                desired = 1.0
            elif s < self.short_threshold:
                desired = -1.0 if self.allow_short else 0.0
            else:
                continue
            current = context.position(asset)
            held = (current > 0) - (current < 0)
            if held == desired:
                continue
            if self.quantity is not None:
                context.order_target_quantity(asset, desired * self.quantity)
            else:
                context.order_target_percent(asset, desired * self.weight)


@pytest.mark.parametrize(
    "params",
    [
        {"column": "signal", "quantity": 10.0, "allow_short": True},
        {"column": "signal", "quantity": 7.0, "allow_short": False},
        {
            "column": "score",
            "weight": 0.1,
            "long_threshold": 0.5,
            "short_threshold": -0.5,
            "allow_short": True,
        },
    ],
)
@pytest.mark.parametrize("mode", ["next_open", "same_close"])
def test_signal_strategy_equals_python_strategy(params: dict[str, Any], mode: str) -> None:
    df = make_bars(n_assets=3, n_bars=60, seed=11)
    config = {"execution": {"mode": mode}, "commission": {"model": "per_share", "rate": 0.01}}
    builtin = run(df, SignalStrategy(**params), **config)
    python = run(df, PySignal(**params), **config)
    assert builtin.fills.height > 10
    assert_results_equal(builtin, python)


class PyTopK(Strategy):
    """Python re-implementation of the built-in TopKStrategy."""

    def __init__(self, score: str, k: int, bottom_k: int = 0, rebalance_every: int = 1) -> None:
        self.score = score
        self.k = k
        self.bottom_k = bottom_k
        self.rebalance_every = rebalance_every
        self.index = 0

    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        index = self.index
        self.index += 1
        if index % self.rebalance_every:
            return
        scores = batch[self.score]
        ids = batch.asset_ids
        names = batch.assets
        rows = sorted(
            (i for i in range(len(batch)) if math.isfinite(scores[i])),
            key=lambda i: (-scores[i], ids[i]),
        )
        n = len(rows)
        longs = min(self.k, n)
        shorts = min(self.bottom_k, n - longs)
        weight = 1.0 / (self.k + self.bottom_k)
        weights = {names[i]: weight for i in rows[:longs]}
        weights.update({names[i]: -weight for i in rows[n - shorts :]})
        context.rebalance(weights)


@pytest.mark.parametrize(
    "params",
    [
        {"score": "score", "k": 2},
        {"score": "score", "k": 2, "bottom_k": 1, "rebalance_every": 3},
    ],
)
def test_topk_strategy_equals_python_topk(params: dict[str, Any]) -> None:
    df = make_bars(n_assets=6, n_bars=40, seed=5, missing_fraction=0.05)
    config = {"commission": {"model": "percent", "rate": 0.0005}}
    builtin = run(df, TopKStrategy(**params), **config)
    python = run(df, PyTopK(**params), **config)
    assert builtin.fills.height > 10
    assert_results_equal(builtin, python)


# --------------------------------------------------------------------------- fill timing


def test_next_open_fills_at_next_bar_open() -> None:
    result = run(ONE, Scripted({1: [("submit_order", "A", 10.0)]}))
    fills = result.fills
    assert fills.height == 1
    assert fills["timestamp"][0] == day(2)
    assert fills["price"][0] == 30.0  # open of bar 2
    assert fills["reference_price"][0] == 30.0
    assert fills["side"][0] == "buy"
    assert fills["quantity"][0] == 10.0


def test_same_close_fills_at_this_bar_close() -> None:
    result = run(
        ONE, Scripted({1: [("submit_order", "A", 10.0)]}), execution={"mode": "same_close"}
    )
    fills = result.fills
    assert fills.height == 1
    assert fills["timestamp"][0] == day(1)
    assert fills["price"][0] == 25.0  # close of bar 1
    # the fill shows in this bar's equity: cash paid, position marked at the same close
    eq = result.equity.row(1, named=True)
    assert eq["cash"] == 100_000.0 - 250.0
    assert eq["long_value"] == 250.0
    assert eq["equity"] == 100_000.0


def test_order_on_last_bar_is_rejected_end_of_data() -> None:
    result = run(ONE, Scripted({4: [("submit_order", "A", 5.0)]}))
    assert result.fills.height == 0
    rej = result.rejected_orders
    assert rej.height == 1
    row = rej.row(0, named=True)
    assert row["reason"] == "end_of_data"
    assert row["asset"] == "A"
    assert row["quantity"] == 5.0
    assert row["timestamp"] == day(4)


def test_missing_bar_does_not_fill_and_marks_at_last_close() -> None:
    rows = [bar(i, "A", 100.0, 101.0) for i in range(5)]
    rows += [bar(i, "B", 10.0 * (i + 1), 10.0 * (i + 1) + 5.0) for i in (0, 1, 3, 4)]
    strategy = Scripted({0: [("submit_order", "B", 10.0)], 1: [("submit_order", "B", -10.0)]})
    result = run(frame(rows), strategy)
    fills = result.fills
    assert fills["timestamp"].to_list() == [day(1), day(3)]
    assert fills["side"].to_list() == ["buy", "sell"]
    assert fills["price"].to_list() == [20.0, 40.0]  # B's opens at bars 1 and 3
    # at day 2 B has no bar: held 10 shares, marked at its day-1 close (25)
    eq = result.equity.row(2, named=True)
    assert eq["timestamp"] == day(2)
    assert eq["long_value"] == 250.0
    assert eq["equity"] == 100_000.0 - 200.0 + 250.0
    assert strategy.seen[2]["prices"]["B"] == 25.0
    assert strategy.seen[2]["positions"] == {"B": 10.0}


def test_exits_fill_before_entries() -> None:
    rows = [bar(i, a, 50.0, 50.0) for i in range(4) for a in ("A", "B")]
    strategy = Scripted(
        {
            0: [("submit_order", "A", 10.0)],
            # the entry (B) is submitted before the exit (A)
            1: [("submit_order", "B", 5.0), ("submit_order", "A", -10.0)],
        }
    )
    fills = run(frame(rows), strategy).fills.filter(pl.col("timestamp") == day(2))
    assert fills["asset"].cast(pl.String).to_list() == ["A", "B"]
    assert fills["side"].to_list() == ["sell", "buy"]
    assert fills["order_id"][0] > fills["order_id"][1]


@pytest.mark.parametrize(("rounding", "expected"), [("fractional", 1000 / 15), ("integer", 66.0)])
def test_share_rounding(rounding: str, expected: float) -> None:
    # target value 1000 at the day-0 close (15) -> 66.67 shares
    strategy = Scripted({0: [("order_target_value", "A", 1000.0)]})
    result = run(ONE, strategy, execution={"share_rounding": rounding})
    assert result.fills["quantity"][0] == pytest.approx(expected, rel=1e-12)
    if rounding == "integer":
        assert result.fills["quantity"][0] == 66.0


def test_integer_rounding_truncates_toward_zero_for_sells() -> None:
    strategy = Scripted({0: [("order_target_value", "A", -1000.0)]})
    result = run(ONE, strategy, execution={"share_rounding": "integer"})
    assert result.fills["side"][0] == "sell"
    assert result.fills["quantity"][0] == 66.0


# --------------------------------------------------------------------------- commissions


@pytest.mark.parametrize(
    ("commission", "fee"),
    [
        ({"model": "none"}, 0.0),
        ({"model": "percent", "rate": 0.001}, 0.001 * 10 * 20.0),
        ({"model": "percent", "rate": 0.001, "minimum": 1.0}, 1.0),
        ({"model": "per_share", "rate": 0.01}, 0.01 * 10),
        ({"model": "per_share", "rate": 0.01, "minimum": 0.5}, 0.5),
        ({"model": "per_share", "rate": 0.1, "minimum": 0.5}, 1.0),
        ({"model": "per_order", "amount": 2.5}, 2.5),
        ({"model": "per_order", "amount": 2.5, "minimum": 3.0}, 3.0),
    ],
)
def test_commission_models(commission: dict[str, Any], fee: float) -> None:
    # buy 10 shares decided at bar 0, filled at bar 1's open = 20
    result = run(ONE, Scripted({0: [("submit_order", "A", 10.0)]}), commission=commission)
    fill = result.fills.row(0, named=True)
    assert fill["price"] == 20.0
    assert fill["commission"] == pytest.approx(fee, rel=1e-12, abs=1e-15)
    cash = result.equity["cash"][1]
    assert cash == pytest.approx(100_000.0 - 10 * 20.0 - fee, rel=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no closed trade: win_rate etc. NaN
        total = result.metrics["total_commission"]
    assert total == pytest.approx(fee, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- batch, event, context


COLUMNS = ("open", "high", "low", "close", "volume", "score", "signal")


def test_timestamp_batch_api() -> None:
    df = make_bars(n_assets=4, n_bars=12, seed=2, missing_fraction=0.25)
    seen: list[tuple[Any, ...]] = []

    class Probe(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
            close = batch["close"]
            score = batch["score"]
            ids = batch.asset_ids
            view = batch.to_polars()
            assert isinstance(view, pl.DataFrame)
            assert view.height == len(batch)
            assert view["close"].to_list() == close.tolist()
            assert view["asset"].cast(pl.String).to_list() == batch.assets
            assert "score" in batch and "nope" not in batch
            with pytest.raises(KeyError, match="nope"):
                batch["nope"]
            values = [batch[c].tolist() for c in COLUMNS]
            seen.append(
                (timestamp, len(batch), list(batch.assets), ids, close.dtype, score.dtype, *values)
            )

    run(df, Probe())
    expected = df.sort("timestamp", "asset").partition_by("timestamp", maintain_order=True)
    assert len(seen) == len(expected)
    assets = sorted(df["asset"].unique().to_list())
    for got, exp in zip(seen, expected, strict=True):
        timestamp, n, names, ids, close_dtype, score_dtype, *values = got
        assert timestamp == exp["timestamp"][0]
        assert n == exp.height
        assert names == exp["asset"].to_list()
        assert ids.dtype == np.uint32
        assert [assets[i] for i in ids] == names
        assert close_dtype == np.float64 and score_dtype == np.float64
        for column, got_values in zip(COLUMNS, values, strict=True):
            assert got_values == exp[column].to_list(), column


def test_market_event_fields_and_signals() -> None:
    df = make_bars(n_assets=3, n_bars=6, seed=4, missing_fraction=0.2)
    seen: list[dict[str, Any]] = []

    class Probe(Strategy):
        def on_market_data(self, event: Any, context: Any) -> None:
            signals = event.signals
            assert len(signals) == 2
            assert "score" in signals and "nope" not in signals
            assert signals.get("nope") is None
            assert signals.get("nope", 1.5) == 1.5
            assert signals.get("score") == signals["score"]
            assert list(signals) == signals.keys() == ["score", "signal"]
            assert signals.values() == [signals["score"], signals["signal"]]
            assert signals.items() == list(zip(signals.keys(), signals.values(), strict=True))
            with pytest.raises(KeyError, match="nope"):
                signals["nope"]
            assert context.timestamp == event.timestamp
            seen.append(
                {
                    "timestamp": event.timestamp,
                    "asset": event.asset,
                    "open": event.open,
                    "high": event.high,
                    "low": event.low,
                    "close": event.close,
                    "volume": event.volume,
                    **dict(signals),
                }
            )

    run(df, Probe())
    expected = df.sort("timestamp", "asset").to_dicts()
    assert seen == expected


def test_context_account_state() -> None:
    rows = [bar(i, "A", 10.0 * (i + 1), 10.0 * (i + 1) + 5.0) for i in range(4)]
    rows += [bar(i, "B", 7.0, 8.0) for i in (2, 3)]
    strategy = Scripted({0: [("submit_order", "A", 10.0)]})
    run(frame(rows), strategy)
    s0, s1, s2 = strategy.seen[:3]
    assert s0["timestamp"] == s0["context_timestamp"] == day(0)
    assert s0["cash"] == s0["equity"] == 100_000.0
    assert s0["positions"] == {}
    assert s0["position_A"] == 0.0
    assert s0["prices"]["A"] == 15.0
    assert math.isnan(s0["prices"]["B"])  # no bar yet
    # bought 10 A at bar 1's open (20); marked at bar 1's close (25)
    assert s1["timestamp"] == s1["context_timestamp"] == day(1)
    assert s1["cash"] == 100_000.0 - 200.0
    assert s1["equity"] == 100_000.0 - 200.0 + 250.0
    assert s1["positions"] == {"A": 10.0}
    assert s1["position_A"] == s1["position_0"] == 10.0
    assert s1["prices"]["A"] == 25.0
    assert math.isnan(s1["prices"]["B"])
    assert s2["prices"] == {"A": 35.0, "B": 8.0}
    assert s2["equity"] == 100_000.0 - 200.0 + 350.0


@pytest.mark.parametrize("api", ["batch", "bar"])
def test_hooks_are_called(api: str) -> None:
    calls = {"start": 0, "fill": 0, "end": 0, "data": 0}
    fills: list[tuple[Any, ...]] = []
    end_state: dict[str, Any] = {}

    def decide(index: int, context: Any) -> None:
        if index == 0:
            context.submit_order("A", 10.0)
        elif index == 2:
            context.submit_order("A", -4.0)

    class Hooks(Strategy):
        index = 0

        def on_start(self, context: Any) -> None:
            assert calls["data"] == 0
            assert context.cash == 100_000.0
            calls["start"] += 1

        def on_fill(self, fill: Any, context: Any) -> None:
            calls["fill"] += 1
            fills.append(
                (
                    fill.timestamp,
                    fill.asset,
                    fill.side,
                    fill.quantity,
                    fill.price,
                    fill.reference_price,
                    fill.commission,
                    fill.order_id,
                    context.position("A"),
                )
            )

        def on_end(self, context: Any) -> None:
            calls["end"] += 1
            end_state.update(cash=context.cash, positions=dict(context.positions))

    if api == "batch":

        class Impl(Hooks):
            def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
                calls["data"] += 1
                decide(self.index, context)
                self.index += 1

    else:

        class Impl(Hooks):  # type: ignore[no-redef]
            def on_market_data(self, event: Any, context: Any) -> None:
                calls["data"] += 1
                decide(self.index, context)
                self.index += 1

    result = run(ONE, Impl(), commission={"model": "per_order", "amount": 1.0})
    assert calls == {"start": 1, "fill": 2, "end": 1, "data": 5}
    assert result.fills.height == 2
    # fill events carry signed quantities; the context already reflects the fill
    assert fills == [
        (day(1), "A", "buy", 10.0, 20.0, 20.0, 1.0, 1, 10.0),
        (day(3), "A", "sell", -4.0, 40.0, 40.0, 1.0, 2, 6.0),
    ]
    assert end_state == {
        "cash": 100_000.0 - 200.0 - 1.0 + 160.0 - 1.0,
        "positions": {"A": 6.0},
    }


# --------------------------------------------------------------------------- results


def _is_string_like(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Enum, pl.Categorical))


EXPECTED_COLUMNS = {
    "fills": {
        "order_id": pl.UInt64,
        "timestamp": "datetime",
        "asset": "str",
        "side": pl.String,
        "order_type": pl.String,
        "quantity": pl.Float64,
        "price": pl.Float64,
        "reference_price": pl.Float64,
        "slippage": pl.Float64,
        "commission": pl.Float64,
        "multiplier": pl.Float64,
        "currency": pl.String,
        "fx_rate": pl.Float64,
        "partial": pl.Boolean,
    },
    "trades": {
        "asset": "str",
        "side": pl.String,
        "entry_time": "datetime",
        "exit_time": "datetime",
        "entry_price": pl.Float64,
        "exit_price": pl.Float64,
        "quantity": pl.Float64,
        "multiplier": pl.Float64,
        "gross_pnl": pl.Float64,
        "commission": pl.Float64,
        "slippage": pl.Float64,
        "funding": pl.Float64,
        "net_pnl": pl.Float64,
        "return_pct": pl.Float64,
        "bars_held": pl.Int64,
        "mfe": pl.Float64,
        "mae": pl.Float64,
        "exit_reason": pl.String,
        "status": pl.String,
        "currency": pl.String,
        "gross_pnl_local": pl.Float64,
        "net_pnl_local": pl.Float64,
    },
    "equity": {
        "timestamp": "datetime",
        "cash": pl.Float64,
        "long_value": pl.Float64,
        "short_value": pl.Float64,
        "positions_value": pl.Float64,
        "equity": pl.Float64,
        "gross_exposure": pl.Float64,
        "net_exposure": pl.Float64,
        "drawdown": pl.Float64,
        "borrow_fee": pl.Float64,
        "interest": pl.Float64,
        "dividend": pl.Float64,
        "dividend_paid": pl.Float64,
        "funding": pl.Float64,
        "flows": pl.Float64,
    },
    "rejected_orders": {
        "order_id": pl.UInt64,
        "timestamp": "datetime",
        "asset": "str",
        "quantity": pl.Float64,
        "reason": pl.String,
    },
}


@pytest.mark.parametrize("use_builtin", [True, False])
def test_result_frames_columns_and_dtypes(use_builtin: bool) -> None:
    strategy: Any = (
        SignalStrategy("signal", quantity=5.0)
        if use_builtin
        else Scripted({0: [("submit_order", "A", 1.0)], 4: [("submit_order", "A", 1.0)]})
    )
    df = make_bars(n_assets=2, n_bars=10, seed=1) if use_builtin else ONE
    result = run(df, strategy)
    for name, expected in EXPECTED_COLUMNS.items():
        table = getattr(result, name)
        assert isinstance(table, pl.DataFrame)
        assert table.columns == list(expected), name
        for column, dtype in expected.items():
            actual = table.schema[column]
            if dtype == "datetime":
                assert isinstance(actual, pl.Datetime), (name, column, actual)
            elif dtype == "str":
                assert _is_string_like(actual), (name, column, actual)
            else:
                assert actual == dtype, (name, column, actual)
    assert result.equity.height == df["timestamp"].n_unique()
    assert result.fills.height > 0
    assert set(result.fills["side"].unique()) <= {"buy", "sell"}
    assert (result.fills["quantity"] > 0).all()


def test_equity_identity_holds() -> None:
    df = make_bars(n_assets=3, n_bars=30, seed=8)
    result = run(df, SignalStrategy("signal", quantity=10.0, allow_short=True))
    eq = result.equity
    assert (eq["short_value"] <= 0).all() and (eq["long_value"] >= 0).all()
    np.testing.assert_allclose(
        eq["positions_value"].to_numpy(), (eq["long_value"] + eq["short_value"]).to_numpy()
    )
    np.testing.assert_allclose(
        eq["equity"].to_numpy(), (eq["cash"] + eq["positions_value"]).to_numpy()
    )
    assert result.final_equity == eq["equity"][-1]


def test_long_round_trip_trade_fields() -> None:
    # buy 10 at bar 1's open (20), sell at bar 3's open (40); 1.0 per fill
    strategy = Scripted({0: [("submit_order", "A", 10.0)], 2: [("close_position", "A")]})
    result = run(ONE, strategy, commission={"model": "per_order", "amount": 1.0})
    assert result.trades.height == 1
    trade = result.trades.row(0, named=True)
    assert trade == {
        "asset": "A",
        "side": "long",
        "entry_time": day(1),
        "exit_time": day(3),
        "entry_price": 20.0,
        "exit_price": 40.0,
        "quantity": 10.0,
        "gross_pnl": 200.0,
        "multiplier": 1.0,
        "commission": 2.0,
        "slippage": 0.0,
        "funding": 0.0,
        "net_pnl": 198.0,
        "return_pct": 198.0 / 200.0,
        "bars_held": 2,
        "mfe": 40.0 / 20.0 - 1.0,  # best mark: the exit fill at 40
        "mae": 0.0,  # never below the entry price
        "exit_reason": "signal",
        "status": "closed",
        "currency": "USD",  # the base: local PnL is the base PnL
        "gross_pnl_local": 200.0,
        "net_pnl_local": 198.0,
    }
    assert result.final_equity == 100_000.0 + 198.0


def test_short_round_trip_trade_fields() -> None:
    # short 4 at bar 1's open (20), buy back at bar 2's open (30): loses 40
    strategy = Scripted({0: [("submit_order", "A", -4.0)], 1: [("submit_order", "A", 4.0)]})
    result = run(ONE, strategy, commission={"model": "per_share", "rate": 0.5})
    trade = result.trades.row(0, named=True)
    assert trade["side"] == "short"
    assert (trade["entry_price"], trade["exit_price"]) == (20.0, 30.0)
    assert trade["gross_pnl"] == -40.0
    assert trade["commission"] == 4.0
    assert trade["net_pnl"] == -44.0
    assert trade["bars_held"] == 1
    assert trade["status"] == "closed"
    assert trade["exit_reason"] == "signal"


def test_open_trade_at_end() -> None:
    strategy = Scripted({1: [("submit_order", "A", 3.0)]})
    result = run(ONE, strategy)
    trade = result.trades.row(0, named=True)
    assert trade["status"] == "open"
    assert trade["exit_reason"] == "end_of_data"
    assert trade["entry_time"] == day(2)
    assert trade["exit_time"] == day(4)
    assert trade["entry_price"] == 30.0
    assert trade["exit_price"] == 55.0  # last close
    assert trade["gross_pnl"] == 3 * (55.0 - 30.0)
    assert trade["bars_held"] == 2


def test_metrics_keys() -> None:
    result = run(make_bars(n_assets=3, n_bars=40, seed=9), TopKStrategy("score", k=1))
    expected = {
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "num_trades",
        "turnover",
        "total_commission",
        "total_slippage",
        "periods_per_year",
    }
    assert expected <= set(result.metrics)
    assert all(isinstance(v, float) for v in result.metrics.values())
    assert result.metrics["total_return"] == pytest.approx(result.final_equity / 100_000.0 - 1)
    closed = result.trades.filter(pl.col("status") == "closed").height
    assert result.metrics["num_trades"] == closed
    assert isinstance(result.summary(), str)
    assert "BacktestResult(" in repr(result)


# --------------------------------------------------------------------------- input shapes


def test_timezone_aware_input_gives_timezone_aware_results() -> None:
    zone = "America/New_York"
    df = ONE.with_columns(pl.col("timestamp").dt.replace_time_zone(zone))
    seen: list[Any] = []

    class Probe(Strategy):
        def on_market_data(self, event: Any, context: Any) -> None:
            seen.append((event.timestamp, context.timestamp))
            if len(seen) == 1:
                context.submit_order("A", 1.0)

    result = run(df, Probe())
    for table, column in [
        (result.equity, "timestamp"),
        (result.fills, "timestamp"),
        (result.trades, "entry_time"),
    ]:
        dtype = table.schema[column]
        assert isinstance(dtype, pl.Datetime) and dtype.time_zone == zone
    assert result.equity["timestamp"].to_list() == df["timestamp"].to_list()
    assert result.fills["timestamp"][0] == df["timestamp"][1]
    expected = [t.replace(tzinfo=ZoneInfo(zone)) for t in ONE["timestamp"].to_list()]
    assert [e for e, _ in seen] == expected
    assert [c for _, c in seen] == expected
    assert all(e.utcoffset() == timedelta(hours=-5) for e, _ in seen)


def test_date_timestamps_accepted() -> None:
    df = ONE.with_columns(pl.col("timestamp").dt.date())
    assert df.schema["timestamp"] == pl.Date
    result = run(df, Scripted({0: [("submit_order", "A", 1.0)]}))
    expected = [datetime(d.year, d.month, d.day) for d in df["timestamp"].to_list()]
    assert result.equity["timestamp"].to_list() == expected
    assert result.fills["timestamp"][0] == datetime.combine(date(2024, 1, 2), datetime.min.time())
    assert_results_equal(result, run(ONE, Scripted({0: [("submit_order", "A", 1.0)]})))


@pytest.mark.parametrize("name", ["symbol", "ticker"])
def test_symbol_and_ticker_asset_columns(name: str) -> None:
    df = make_bars(n_assets=3, n_bars=20, seed=6)
    renamed = df.rename({"asset": name})
    feed = PolarsDataFeed(renamed)
    assert feed.asset_column == name
    assert feed.assets == ["A0000", "A0001", "A0002"]
    strategy = SignalStrategy("signal", quantity=5.0)
    assert_results_equal(run(renamed, strategy), run(df, strategy))
    assert_results_equal(run(renamed, PySignal("signal", quantity=5.0)), run(df, strategy))


def test_categorical_asset_column_accepted() -> None:
    df = make_bars(n_assets=3, n_bars=20, seed=6)
    cat = df.with_columns(pl.col("asset").cast(pl.Categorical))
    strategy = SignalStrategy("signal", quantity=5.0)
    assert_results_equal(run(cat, strategy), run(df, strategy))


def test_separate_signals_frame_is_joined() -> None:
    df = make_bars(n_assets=3, n_bars=30, seed=12)
    prices = df.drop("score", "signal")
    # the signal frame in a different row order, joined on (timestamp, asset)
    signals = df.select("timestamp", "asset", "score").reverse()
    feed = PolarsDataFeed(prices, signals=signals)
    assert feed.signal_columns == ["score"]
    joined = Backtest(feed, SignalStrategy("score", quantity=3.0, allow_short=True)).run()
    combined = run(df.drop("signal"), SignalStrategy("score", quantity=3.0, allow_short=True))
    assert joined.fills.height > 0
    assert_results_equal(joined, combined)


def test_lazyframe_input_accepted() -> None:
    df = make_bars(n_assets=2, n_bars=15, seed=13)
    strategy = SignalStrategy("signal", quantity=5.0)
    lazy = Backtest(PolarsDataFeed(df.lazy()), strategy).run()
    assert_results_equal(lazy, run(df, strategy))


def test_unsorted_input_gives_same_result() -> None:
    df = make_bars(n_assets=3, n_bars=20, seed=14)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=1)
    strategy = SignalStrategy("signal", quantity=5.0)
    assert_results_equal(run(shuffled, strategy), run(df, strategy))


def test_runs_are_deterministic() -> None:
    df = make_bars(n_assets=4, n_bars=30, seed=15)
    a = run(df, PyTopK("score", k=2))
    b = run(df, PyTopK("score", k=2))
    assert_results_equal(a, b)


def test_timezone_across_dst_change_and_other_time_unit() -> None:
    # New York switches to daylight time on 2024-03-10: offsets -5h before, -4h after
    df = make_bars(n_assets=2, n_bars=6, seed=1, start=datetime(2024, 3, 8))
    df = df.with_columns(
        pl.col("timestamp").dt.replace_time_zone("America/New_York").dt.cast_time_unit("ms")
    )
    seen: list[datetime] = []

    class Probe(Strategy):
        def on_market_data(self, event: Any, context: Any) -> None:
            seen.append(event.timestamp)

    result = run(df, Probe())
    stamps = df["timestamp"].unique(maintain_order=True).to_list()
    assert result.equity["timestamp"].to_list() == stamps
    assert seen[::2] == stamps
    assert seen[0].utcoffset() == timedelta(hours=-5)
    assert seen[-1].utcoffset() == timedelta(hours=-4)
