"""Property tests of the real engine on random data (accounting identities and determinism).

(a) equity == cash + long_value + short_value at every timestamp, and positions_value equals
    sum(position x last close) recomputed from the fills and the bars;
(b) cash changes between timestamps only by that timestamp's fills and fees;
(c) two runs of the same input give bit-identical frames;
(d) fees are >= 0 and every fill price lies within its bar's [low, high].
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle

REL = 1e-9

COMMISSIONS = [
    {"model": "none"},
    {"model": "percent", "rate": 0.001},
    {"model": "percent", "rate": 0.002, "minimum": 3.0},
    {"model": "per_share", "rate": 0.01, "minimum": 1.0},
    {"model": "per_order", "amount": 1.0},
]
SLIPPAGES = [
    {"model": "none"},
    {"model": "fixed", "amount": 0.05},
    {"model": "percent", "rate": 0.003},
]
STRATEGIES = ["actions-batch", "actions-event", "rebalance", "signal-qty", "signal-weight", "topk"]


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "n_assets": draw(st.integers(1, 4)),
        "strategy": draw(st.sampled_from(STRATEGIES)),
        "config": oracle.merge_config(
            {
                "initial_cash": draw(st.sampled_from([10_000.0, 100_000.0])),
                "execution": {
                    "mode": draw(st.sampled_from(["next_open", "same_close"])),
                    "share_rounding": draw(st.sampled_from(["fractional", "integer"])),
                },
                "commission": dict(draw(st.sampled_from(COMMISSIONS))),
                "slippage": dict(draw(st.sampled_from(SLIPPAGES))),
                "account": {"allow_short": draw(st.booleans())},
            }
        ),
    }


def run(run_engine: Any, scenario: dict[str, Any]) -> tuple[pl.DataFrame, Any]:
    rows = oracle.random_bar_rows(scenario["seed"], n_assets=scenario["n_assets"])
    df = pl.DataFrame(rows).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    config = scenario["config"]
    assets = sorted({r["asset"] for r in rows})
    integer = config["execution"]["share_rounding"] == "integer"
    name = scenario["strategy"]
    if name.startswith("actions"):
        logic = oracle.ActionLogic(assets, integer, config["account"]["allow_short"])
        api = name.split("-")[1]
        return df, run_engine(df, logic, config, api=api, signals=oracle.SIGNAL_COLUMNS)
    if name == "rebalance":
        logic = oracle.RebalanceLogic(assets)
        return df, run_engine(df, logic, config, api="batch", signals=oracle.SIGNAL_COLUMNS)

    from ml4t.backtest import SignalStrategy, TopKStrategy

    if name == "signal-qty":
        native = SignalStrategy(
            "score", quantity=20.0, long_threshold=0.1, short_threshold=-0.1, allow_short=True
        )
    elif name == "signal-weight":
        native = SignalStrategy("score", weight=0.25, allow_short=True)
    else:
        native = TopKStrategy("score", k=1, bottom_k=1 if len(assets) > 2 else 0, rebalance_every=2)
    return df, run_engine(df, native, config, api="native")


def close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=REL * scale)


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario=scenarios())
def test_accounting_identities(run_engine: Any, scenario: dict[str, Any]) -> None:
    df, result = run(run_engine, scenario)
    scale = scenario["config"]["initial_cash"]
    equity = result.equity.to_dicts()
    fills = result.fills.to_dicts()
    timestamps = df["timestamp"].unique().sort().to_list()
    assert [e["timestamp"] for e in equity] == timestamps

    fills_at: dict[Any, list[dict[str, Any]]] = {}
    for f in fills:
        fills_at.setdefault(f["timestamp"], []).append(f)
    assert set(fills_at) <= set(timestamps)
    closes_at: dict[Any, dict[str, float]] = {}
    for r in df.select("timestamp", "asset", "close").to_dicts():
        closes_at.setdefault(r["timestamp"], {})[r["asset"]] = r["close"]

    position: dict[str, float] = {}
    last_close: dict[str, float] = {}
    cash = scenario["config"]["initial_cash"]
    for e in equity:
        ts = e["timestamp"]
        flow = 0.0
        for f in fills_at.get(ts, []):
            signed = f["quantity"] if f["side"] == "buy" else -f["quantity"]
            position[f["asset"]] = position.get(f["asset"], 0.0) + signed
            flow += -signed * f["price"] - f["commission"]
        last_close.update(closes_at[ts])

        # (a) equity identity and positions value from fills and bars
        assert e["long_value"] >= 0.0 >= e["short_value"], e
        assert close(e["equity"], e["cash"] + e["long_value"] + e["short_value"], scale), e
        assert close(e["positions_value"], e["long_value"] + e["short_value"], scale), e
        long_v = sum(q * last_close[a] for a, q in position.items() if q > 0)
        short_v = sum(q * last_close[a] for a, q in position.items() if q < 0)
        assert close(e["long_value"], long_v, scale), (e, position, last_close)
        assert close(e["short_value"], short_v, scale), (e, position, last_close)
        assert close(e["positions_value"], long_v + short_v, scale), (e, position, last_close)

        # (b) cash moves only by fills and fees
        assert close(e["cash"] - cash, flow, scale), (e, cash, flow, fills_at.get(ts))
        cash = e["cash"]


@SETTINGS
@given(scenario=scenarios())
def test_fees_and_fill_prices_within_bar(run_engine: Any, scenario: dict[str, Any]) -> None:
    df, result = run(run_engine, scenario)
    fills = result.fills
    if fills.height == 0:
        return
    # (d) non-negative fees, fills inside their bar
    assert (fills["commission"] >= 0.0).all()
    assert (fills["slippage"] >= 0.0).all()
    assert (fills["quantity"] > 0.0).all()
    keys = [pl.col("timestamp").cast(pl.Datetime("us")), pl.col("asset").cast(pl.String)]
    joined = fills.with_columns(keys).join(
        df.select("low", "high", *keys), on=["timestamp", "asset"], how="left"
    )
    assert joined["low"].null_count() == 0, "a fill on a (timestamp, asset) without a bar"
    outside = joined.filter((pl.col("price") < pl.col("low")) | (pl.col("price") > pl.col("high")))
    assert outside.height == 0, outside
    if scenario["config"]["execution"]["share_rounding"] == "integer":
        assert (fills["quantity"] == fills["quantity"].round(0)).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_runs_are_bit_identical(run_engine: Any, scenario: dict[str, Any]) -> None:
    _, first = run(run_engine, scenario)
    _, second = run(run_engine, scenario)
    # (c) determinism
    assert first.fills.equals(second.fills)
    assert first.trades.equals(second.trades)
    assert first.equity.equals(second.equity)
    assert first.rejected_orders.equals(second.rejected_orders)
