"""Property tests of the order API on random order sequences (issue 11: trust under hostile input).

A hypothesis strategy draws a run: small synthetic bars (``make_bars``, some with missing bars),
a configuration (``next_open`` or ``same_close``; a ``cash`` or ``margin`` account, with or
without margin limits; ``on_insufficient`` reject or resize; commission and slippage models) and
a script of context calls per bar: ``submit_order`` (market, limit, stop, stop-limit,
market-on-close, trailing stop by amount or percent; ``gtc``/``day``/``ioc``; brackets with
take-profit and stop-loss legs), ``cancel_order`` of a returned or a random id,
``order_target_quantity/value/percent``, ``rebalance`` and ``close_position``. Quantities and
prices are mostly sane, plus some extreme ones (1e308, 1e-12, negative, beyond 2**53, NaN).
A Python strategy replays the script; an ``OrderError`` raised by a call is recorded (it is the
documented answer to an invalid order), anything else fails the test.

Invariants, checked from the result frames alone (recomputed, not read from engine columns):

- nothing non-finite: every fill's quantity, price, reference, slippage and commission, every
  equity row's cash, values and equity; no fill of quantity 0;
- equity = cash + sum(position x mark) at every timestamp, with positions and cash recomputed
  from the fills and the mark the asset's last close at or before the timestamp;
- commission >= 0 and slippage >= 0;
- every fill lies on a bar of its asset and inside its [low, high]; a limit (and a take-profit
  leg) fills at its limit or better; a market order's reference price is the bar's open
  (``next_open``) or close (``same_close``);
- a cash account never has negative cash or a short position (after any fill);
- one order id, one order: its fills and rejections share one asset, one side and one type, and
  they match the order ``submit_order`` returned the id for (a bracket's legs take the next two
  ids, on the other side); the ids ``submit_order`` returns are unique;
- the order journal (``tests/journal.py``): every fill and rejection belongs to an order of
  ``result.orders``, whose filled total is the sum of its fills and whose history is in time
  order and ends in one terminal status.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal import check_journal
from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import BacktestError, OrderError, StrategyError
from ml4t.backtest.synthetic import make_bars

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REL = 1e-9
DUST = 1e-9  # a position this small relative to the fill is closed exactly (semantics.md)

SANE_QTY = [1.0, 2.0, 5.0, 10.0, 50.0, 0.5, -1.0, -5.0, -10.0, -50.0]
EXTREME_QTY = [1e308, -1e308, 1e-12, -1e-12, 2.0**53 + 2, -(2.0**53 + 2), 1e20, 0.0, math.nan]
SANE_FACTOR = [0.9, 0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05, 1.1]
EXTREME_PRICE = [1e308, 1e-12, -1.0, 0.0, math.inf, math.nan]
TARGET_VALUES = [0.0, 1000.0, -1000.0, 20_000.0, 1e300, -1e12]
TARGET_PERCENTS = [0.0, 0.1, 0.5, -0.3, 1.0, 3.0, 1e300]
WEIGHTS = [0.0, 0.2, 0.5, -0.2, 1.5, 1e300]
ON_INSUFFICIENT = ["reject", "resize"]
KINDS = ["market", "market", "limit", "stop", "stop_limit", "moc", "trail_amount", "trail_pct"]
COMMISSIONS = [
    {"model": "none"},
    {"model": "percent", "rate": 0.001},
    {"model": "per_share", "rate": 0.01, "minimum": 1.0},
    {"model": "per_order", "amount": 1.0},
]
SLIPPAGES = [
    {"model": "none"},
    {"model": "percent", "rate": 0.002},
    {"model": "fixed", "amount": 0.05},
]


def quantities() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(SANE_QTY),
        st.sampled_from(SANE_QTY),
        st.sampled_from(SANE_QTY),
        st.sampled_from(EXTREME_QTY),
    )


def prices() -> st.SearchStrategy[tuple[str, float]]:
    """A price as ("factor", f): f x the asset's last close, or ("raw", p): the value itself."""
    return st.one_of(
        st.tuples(st.just("factor"), st.sampled_from(SANE_FACTOR)),
        st.tuples(st.just("factor"), st.sampled_from(SANE_FACTOR)),
        st.tuples(st.just("factor"), st.sampled_from(SANE_FACTOR)),
        st.tuples(st.just("raw"), st.sampled_from(EXTREME_PRICE)),
    )


@st.composite
def calls(draw: Any, n_assets: int) -> tuple[Any, ...]:
    asset = draw(st.integers(0, n_assets - 1))
    label = draw(
        st.sampled_from(
            ["submit"] * 6
            + ["bracket"] * 2
            + ["cancel", "cancel_random", "target_qty", "target_value", "target_percent"]
            + ["rebalance", "close"]
        )
    )
    if label in ("submit", "bracket"):
        kind = (
            "market" if label == "bracket" and draw(st.booleans()) else draw(st.sampled_from(KINDS))
        )
        legs = None
        if label == "bracket":
            legs = (draw(prices()), draw(st.sampled_from([None, *SANE_FACTOR])))
            if draw(st.booleans()):
                legs = (legs[0], draw(prices()))
        return (
            "submit",
            asset,
            draw(quantities()),
            kind,
            draw(prices()),
            draw(prices()),
            draw(st.sampled_from(["gtc", "gtc", "day", "ioc"])),
            legs,
        )
    if label == "cancel":
        return ("cancel", draw(st.integers(0, 20)))
    if label == "cancel_random":
        return ("cancel_random", draw(st.sampled_from([0, 1, 2, 3, 7, 99, 2**40])))
    if label == "target_qty":
        return ("target_qty", asset, draw(quantities()))
    if label == "target_value":
        value = draw(st.sampled_from(TARGET_VALUES))
        return ("target_value", asset, value)
    if label == "target_percent":
        return (
            "target_percent",
            asset,
            draw(st.sampled_from(TARGET_PERCENTS)),
        )
    if label == "rebalance":
        weights = draw(
            st.dictionaries(
                st.integers(0, n_assets - 1),
                st.sampled_from(WEIGHTS),
                max_size=n_assets,
            )
        )
        return ("rebalance", tuple(sorted(weights.items())))
    return ("close", asset)


@st.composite
def runs(draw: Any) -> dict[str, Any]:
    n_assets = draw(st.integers(1, 3))
    n_bars = draw(st.integers(3, 10))
    account: dict[str, Any] = {
        "type": draw(st.sampled_from(["cash", "margin"])),
        "on_insufficient": draw(st.sampled_from(ON_INSUFFICIENT)),
    }
    if account["type"] == "margin":
        account["allow_short"] = draw(st.booleans())
        if draw(st.booleans()):
            account["initial_margin"] = 0.5
            if draw(st.booleans()):
                account["maintenance_margin"] = draw(st.sampled_from([0.25, 0.5]))
    config = {
        "initial_cash": draw(st.sampled_from([1_000.0, 100_000.0])),
        "execution": {
            "mode": draw(st.sampled_from(["next_open", "same_close"])),
            "share_rounding": draw(st.sampled_from(["fractional", "fractional", "integer"])),
        },
        "commission": draw(st.sampled_from(COMMISSIONS)),
        "slippage": draw(st.sampled_from(SLIPPAGES)),
        "account": account,
    }
    if draw(st.integers(0, 4)) == 0:
        config["execution"]["max_volume_fraction"] = 0.001
    script = draw(st.lists(st.lists(calls(n_assets), max_size=4), min_size=n_bars, max_size=n_bars))
    return {
        "bars": (
            n_assets,
            n_bars,
            draw(st.integers(0, 3)),
            draw(st.sampled_from([0.0, 0.3])),
            draw(st.sampled_from([1.0, 1.0, 1.0, 1e6])),  # a bad high print on one bar
        ),
        "config": config,
        "script": script,
    }


@cache
def bars_and_feed(
    n_assets: int, n_bars: int, seed: int, missing: float, spike: float
) -> tuple[pl.DataFrame, Any]:
    """``make_bars`` bars; with ``spike`` > 1 the high of the middle row is that many times
    its close (a bad print: a valid bar whose range is huge relative to its close)."""
    bars = make_bars(
        n_assets=n_assets, n_bars=n_bars, seed=seed, volatility=0.03, missing_fraction=missing
    ).select("timestamp", "asset", "open", "high", "low", "close", "volume")
    if spike > 1.0:
        row = pl.int_range(pl.len()) == bars.height // 2
        bars = bars.with_columns(
            pl.when(row).then(pl.col("close") * spike).otherwise(pl.col("high")).alias("high")
        )
    return bars, PolarsDataFeed(bars)


class Replay(Strategy):  # type: ignore[misc]
    """Makes the scripted context calls, bar after bar, and records what they returned."""

    def __init__(self, script: list[list[tuple[Any, ...]]], assets: list[str]) -> None:
        self.script = script
        self.assets = assets * 3  # an asset index may exceed the assets left after dropping bars
        self.n = 0
        self.returned: list[int] = []
        self.submitted: dict[int, dict[str, Any]] = {}
        self.order_errors: list[str] = []

    def _price(self, context: Any, asset: str, price: tuple[str, float]) -> float:
        how, value = price
        return float(context.price(asset)) * value if how == "factor" else value

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        step = self.script[self.n] if self.n < len(self.script) else []
        self.n += 1
        for call in step:
            try:
                self._call(context, call)
            except OrderError as err:
                self.order_errors.append(f"{call}: {err}")

    def _call(self, context: Any, call: tuple[Any, ...]) -> None:
        label = call[0]
        if label == "submit":
            _, i, qty, kind, p1, p2, tif, legs = call
            asset = self.assets[i]
            kw: dict[str, Any] = {"tif": tif}
            if kind in ("limit", "stop_limit"):
                kw["limit"] = self._price(context, asset, p1)
            if kind in ("stop", "stop_limit"):
                kw["stop"] = self._price(context, asset, p2)
            if kind == "moc":
                kw["order_type"] = "market_on_close"
            if kind == "trail_amount":
                kw["trail_amount"] = abs(self._price(context, asset, p1)) * 0.05
            if kind == "trail_pct":
                kw["trail_percent"] = 0.05
            if legs is not None:
                tp, sl = legs
                if tp is not None:
                    kw["take_profit"] = self._price(context, asset, tp) * (1.0 if qty > 0 else 0.95)
                if sl is not None:
                    sl_price = sl if isinstance(sl, tuple) else ("factor", sl)
                    kw["stop_loss"] = self._price(context, asset, sl_price) * (
                        0.95 if qty > 0 else 1.0
                    )
            order_id = context.submit_order(asset, qty, **kw)
            self.returned.append(order_id)
            self.submitted[order_id] = {"asset": asset, "quantity": qty, "kind": kind, **kw}
        elif label == "cancel":
            if self.returned:
                context.cancel_order(self.returned[call[1] % len(self.returned)])
        elif label == "cancel_random":
            context.cancel_order(call[1])
        elif label == "target_qty":
            context.order_target_quantity(self.assets[call[1]], call[2])
        elif label == "target_value":
            context.order_target_value(self.assets[call[1]], call[2])
        elif label == "target_percent":
            context.order_target_percent(self.assets[call[1]], call[2])
        elif label == "rebalance":
            context.rebalance({self.assets[i]: w for i, w in call[1]})
        else:
            context.close_position(self.assets[call[1]])


def run(spec: dict[str, Any]) -> tuple[pl.DataFrame, Replay, Any]:
    bars, feed = bars_and_feed(*spec["bars"])
    strategy = Replay(spec["script"], feed.assets)
    try:
        result = Backtest(feed, strategy, config=BacktestConfig(**spec["config"])).run(
            progress=False
        )
    except StrategyError as err:
        pytest.fail(f"the scripted strategy raised {err!r} (cause {err.__cause__!r})")
    except BacktestError as err:
        # the one documented way for a run to stop: a value that would overflow
        if "numeric_overflow" not in str(err):
            pytest.fail(f"the run raised {type(err).__name__}: {err}")
        return bars, strategy, None
    return bars, strategy, result


def _signed(fill: dict[str, Any]) -> float:
    return float(fill["quantity"]) if fill["side"] == "buy" else -float(fill["quantity"])


@SETTINGS
@given(spec=runs())
def test_order_sequences_keep_the_invariants(spec: dict[str, Any]) -> None:
    bars, strategy, result = run(spec)
    if result is None:
        return
    config = spec["config"]
    mode = config["execution"]["mode"]
    cash_account = config["account"]["type"] == "cash"
    fills = result.fills.with_columns(pl.col("asset").cast(pl.String))
    equity = result.equity
    rejected = result.rejected_orders.with_columns(pl.col("asset").cast(pl.String))

    # submit_order never hands out one id twice
    assert len(strategy.returned) == len(set(strategy.returned)), strategy.returned

    # nothing non-finite, no empty fill, no negative cost
    for column in ("quantity", "price", "reference_price", "slippage", "commission"):
        bad = fills.filter(~pl.col(column).is_finite())
        assert bad.height == 0, f"non-finite fill {column}:\n{bad}"
    assert fills.filter(pl.col("quantity") <= 0).height == 0, fills.filter(pl.col("quantity") <= 0)
    assert fills.filter(pl.col("commission") < 0).height == 0
    assert fills.filter(pl.col("slippage") < 0).height == 0
    for column in ("cash", "long_value", "short_value", "positions_value", "equity"):
        bad = equity.filter(~pl.col(column).is_finite())
        assert bad.height == 0, f"non-finite {column}:\n{bad}\nfills:\n{fills}"

    # every fill on a bar of its asset, inside [low, high]
    keyed = bars.with_columns(pl.col("timestamp").cast(pl.Datetime("ns")))
    on_bar = fills.join(keyed, on=["timestamp", "asset"], how="left")
    assert on_bar["low"].null_count() == 0, on_bar.filter(pl.col("low").is_null())
    outside = on_bar.filter((pl.col("price") < pl.col("low")) | (pl.col("price") > pl.col("high")))
    assert outside.height == 0, outside

    check_orders(strategy, on_bar, rejected, mode)
    check_journal(result)
    check_accounting(keyed, fills, equity, config["initial_cash"], cash_account)


def check_orders(strategy: Replay, on_bar: pl.DataFrame, rejected: pl.DataFrame, mode: str) -> None:
    """One id, one order; fills match the order submit_order returned the id for."""
    seen: dict[int, tuple[str, str, str]] = {}
    for fill in on_bar.to_dicts():
        key = (fill["asset"], fill["side"], fill["order_type"])
        assert seen.setdefault(fill["order_id"], key) == key, (fill, seen[fill["order_id"]])
    for rej in rejected.to_dicts():
        q = rej["quantity"]
        # A not_pending row records a cancel/modify request by id: one naming an id no order had
        # yet carries the placeholder asset code 0 (docs/semantics.md), so only real orders'
        # rows are held to their order's asset and side.
        if rej["reason"] == "not_pending":
            continue
        if rej["order_id"] in seen:
            asset, side, _ = seen[rej["order_id"]]
            assert rej["asset"] == asset, (rej, seen[rej["order_id"]])
            if q is not None and math.isfinite(q) and q != 0:
                assert ("buy" if q > 0 else "sell") == side, (rej, seen[rej["order_id"]])

    for order_id, order in strategy.submitted.items():
        side = "buy" if order["quantity"] > 0 else "sell"
        other = "sell" if side == "buy" else "buy"
        expected = {order_id: (order["asset"], side)}
        if "take_profit" in order:
            expected[order_id + 1] = (order["asset"], other)
        if "stop_loss" in order:
            expected[order_id + 1 + ("take_profit" in order)] = (order["asset"], other)
        for oid, (asset, s) in expected.items():
            if oid in seen:
                assert seen[oid][:2] == (asset, s), (oid, seen[oid], order)
        rows = on_bar.filter(pl.col("order_id") == order_id)
        if rows.height == 0:
            continue
        tol = 1e-12
        limit = order.get("limit")
        if limit is not None:  # a limit or stop-limit fills at its limit or better
            if side == "buy":
                assert (rows["price"] <= limit * (1 + tol)).all(), (order, rows)
            else:
                assert (rows["price"] >= limit * (1 - tol)).all(), (order, rows)
        if "take_profit" in order and order_id + 1 in seen:
            legs = on_bar.filter(pl.col("order_id") == order_id + 1)
            tp = order["take_profit"]
            ok = (
                legs["price"] >= tp * (1 - tol)
                if side == "buy"
                else legs["price"] <= tp * (1 + tol)
            )
            assert ok.all(), (order, legs)
        if order["kind"] == "market" and "take_profit" not in order and "stop_loss" not in order:
            reference = "open" if mode == "next_open" else "close"
            wrong = rows.filter(pl.col("reference_price") != pl.col(reference))
            assert wrong.height == 0, (
                f"market reference is not the bar's {reference}",
                order,
                wrong,
            )


def check_accounting(
    bars: pl.DataFrame,
    fills: pl.DataFrame,
    equity: pl.DataFrame,
    initial_cash: float,
    cash_account: bool,
) -> None:
    """equity = cash + sum(position x mark) at every timestamp, recomputed from the fills."""
    timestamps = bars["timestamp"].unique().sort().to_list()
    assert equity["timestamp"].to_list() == timestamps
    closes: dict[Any, dict[str, float]] = defaultdict(dict)
    for row in bars.select("timestamp", "asset", "close").to_dicts():
        closes[row["timestamp"]][row["asset"]] = row["close"]
    fills_at: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for fill in fills.to_dicts():
        fills_at[fill["timestamp"]].append(fill)

    position: dict[str, float] = defaultdict(float)
    mark: dict[str, float] = {}
    cash = initial_cash
    scale = initial_cash
    for row in equity.to_dicts():
        ts = row["timestamp"]
        for fill in fills_at.get(ts, []):
            signed = _signed(fill)
            before = position[fill["asset"]]
            after = before + signed
            # a fill that leaves float residue closes the position exactly (semantics.md)
            position[fill["asset"]] = (
                0.0 if abs(after) <= DUST * max(abs(before), abs(signed)) else after
            )
            cash += -signed * fill["price"] - fill["commission"]
            scale = max(scale, abs(signed * fill["price"]))
        if cash_account:
            short = {a: q for a, q in position.items() if q < 0}
            assert not short, ("a cash account went short", ts, short, fills_at.get(ts))
        mark.update(closes[ts])
        value = sum(q * mark[a] for a, q in position.items() if q)
        scale = max(scale, abs(cash), sum(abs(q * mark[a]) for a, q in position.items()))
        assert row["interest"] == 0.0 and row["borrow_fee"] == 0.0, row  # no rates are set
        assert math.isclose(row["cash"], cash, rel_tol=REL, abs_tol=REL * scale), (row, cash)
        assert math.isclose(row["positions_value"], value, rel_tol=REL, abs_tol=REL * scale), (
            row,
            value,
            dict(position),
        )
        assert math.isclose(row["equity"], cash + value, rel_tol=REL, abs_tol=REL * scale), (
            row,
            cash + value,
        )
        if cash_account:
            assert row["cash"] >= -REL * scale, ("a cash account's cash went negative", row)
        cash = row["cash"]  # carry the engine's cash so one error is not reported on every row
