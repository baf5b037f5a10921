"""Differential tests of several currencies (issue 15, item 6): the engine against the oracle
(tests/oracle.py) on random books mixing USD, EUR and JPY assets (shares and futures marked to
market) with random FX paths whose rates are not stamped at every bar (so the point-in-time
rule is exercised), every account, both sizing times, ``auto_convert`` with a fee, and fees and
slippage. Fills (with ``currency`` and ``fx_rate``), trades (PnL in base and in the asset's
currency), rejections, equity at every timestamp and the per-currency cash table must match."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import oracle
from oracle import ActionLogic, LeverLogic, run_oracle
from test_oracle_differential import (
    ACCOUNTS,
    COMMISSIONS,
    DIFF_SETTINGS,
    MODES,
    SEEDS,
    SLIPPAGES,
    _diff_rows,
    _trade_key,
    assets_of,
    bars_frame,
    compare,
    make_config,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::ml4t.backtest.errors.MarginWarning"),
    pytest.mark.filterwarnings("ignore::ml4t.backtest.errors.RuinWarning"),
]

LEVEL = {"EUR": 1.10, "JPY": 0.0068}


def fx_rows(rows: list[dict[str, Any]], currencies: list[str], seed: int) -> list[dict[str, Any]]:
    """A random walk per currency: a rate before the first bar, then at about two thirds of
    the timestamps, some stamped a minute after the bar (first used at the next one)."""
    rng = random.Random(seed)
    stamps = sorted({r["timestamp"] for r in rows})
    out = []
    for c in currencies:
        rate = LEVEL[c]
        out.append({"timestamp": stamps[0] - timedelta(days=1), "currency": c, "rate": rate})
        for ts in stamps:
            if rng.random() < 0.35:
                continue
            rate *= 1.0 + rng.gauss(0.0, 0.01)
            late = timedelta(minutes=1) if rng.random() < 0.2 else timedelta(0)
            out.append({"timestamp": ts + late, "currency": c, "rate": rate})
    return out


def cash_table(result: Any) -> list[dict[str, Any]]:
    cash = result.cash_by_currency()
    assert cash is not None, "a run with several currencies has a cash table"
    return cash.select("timestamp", "currency", "cash", "rate", "converted", "fx_fee").to_dicts()


@DIFF_SETTINGS
@given(
    seed=SEEDS,
    mode=st.sampled_from(MODES),
    sizing=st.sampled_from(["decision", "fill"]),
    account=st.sampled_from(list(ACCOUNTS)),
    on_insufficient=st.sampled_from(["reject", "resize"]),
    quotes=st.lists(st.sampled_from(["USD", "EUR", "JPY"]), min_size=3, max_size=3),
    futures=st.lists(st.booleans(), min_size=3, max_size=3),
    auto_convert=st.booleans(),
    logic=st.sampled_from(["action", "lever"]),
    commission=st.sampled_from([c.values[0] for c in COMMISSIONS]),
    slippage=st.sampled_from([s.values[0] for s in SLIPPAGES]),
)
def test_several_currencies_match_the_oracle(
    seed: int,
    mode: str,
    sizing: str,
    account: str,
    on_insufficient: str,
    quotes: list[str],
    futures: list[bool],
    auto_convert: bool,
    logic: str,
    commission: dict[str, Any],
    slippage: dict[str, Any],
) -> None:
    from conftest import _adapter
    from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed

    assets = assets_of(seed)
    quotes = quotes[: len(assets)]
    if all(q == "USD" for q in quotes):
        quotes[0] = "EUR"
    cash_account = account == "cash"
    specs: dict[str, dict[str, Any]] = {}
    for a, q, future in zip(assets, quotes, futures, strict=False):
        spec: dict[str, Any] = {"currency": q} if q != "USD" else {}
        # The oracle books a future on the notional: without a sweep its equity is the engine's
        # (both legs at today's rate), but auto_convert would sweep the notional itself.
        if future and not cash_account and not auto_convert:
            spec |= {"asset_class": "future", "multiplier": 5.0, "lot_size": None}
        if spec:
            specs[a] = spec
    fee = 0.001 if auto_convert else 0.0
    config = make_config(
        mode,
        "fractional",
        commission,
        slippage,
        sizing=sizing,
        account={
            **ACCOUNTS[account],
            "on_insufficient": on_insufficient,
            "base_currency": "USD",
            "auto_convert": auto_convert,
            "fx_fee": fee,
        },
    )
    rows = oracle.random_bar_rows(seed)
    fx = fx_rows(rows, sorted({q for q in quotes if q != "USD"}), seed)
    strategy: Any = ActionLogic(assets, False) if logic == "action" else LeverLogic(3.0 / 50)
    feed = PolarsDataFeed(
        bars_frame(rows),
        instruments=specs,
        fx=pl.DataFrame(fx).with_columns(pl.col("timestamp").cast(pl.Datetime("us"))),
    )
    adapter = _adapter(strategy, "batch", oracle.SIGNAL_COLUMNS)
    result = Backtest(feed, adapter, config=BacktestConfig(**config)).run()
    expected = run_oracle(rows, {**config, "instruments": specs, "fx": fx}, strategy.decide)
    label = f"seed={seed} specs={specs} config={config}"
    marked = any(s.get("asset_class") == "future" for s in specs.values())
    compare(result, expected, label, marked=marked)

    problems: list[str] = []
    _diff_rows(
        "fills (currency)",
        result.fills.to_dicts(),
        expected.fills,
        ("fx_rate",),
        ("timestamp", "asset", "side", "currency"),
        problems,
    )
    _diff_rows(
        "trades (local)",
        sorted(result.trades.to_dicts(), key=_trade_key),
        sorted(expected.trades, key=_trade_key),
        ("gross_pnl_local", "net_pnl_local"),
        ("asset", "side", "entry_time"),
        problems,
    )
    if not marked:  # a future's cash differs by its unsettled PnL from the notional oracle's
        _diff_rows(
            "cash by currency",
            cash_table(result),
            expected.cash,
            ("cash", "rate", "converted", "fx_fee"),
            ("timestamp", "currency"),
            problems,
        )
    if problems:
        raise AssertionError(f"engine != oracle for {label}:\n  " + "\n  ".join(problems[:6]))
