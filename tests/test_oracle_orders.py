"""Differential tests of the order types: the real engine against the oracle in tests/oracle.py.

Strategies call ``context.submit_order`` with ``limit=`` / ``stop=`` / both / ``order_type=
"market_on_close"`` / brackets, ``tif=`` and ``context.cancel_order`` (``oracle.OrderTypeLogic``
and ``oracle.BracketLogic``) on random multi-asset bars; both engines must agree on fills,
equity, trades (with their exit reasons) and rejected orders (``expired``, ``not_pending``,
``end_of_data``) to 1e-9. The first tests check the oracle's order rules against hand-computed
numbers.

Covered rules (docs/semantics.md, "Order types", and engine/fills.rs): the intrabar path under
every policy (a flat position walks the bar like ``ohlc``), bracket legs joining the bar's queue
at their activation time, market, stop, limit and stop-limit entries with brackets, the through
rules (an open exactly on the limit is only a touch), DAY/IOC orders living for the first bar of
their asset (data with missing bars), and exits capped at flat when they fill: bracket legs after
the position was reduced by another order, resting sells without shorting (``short_not_allowed``
for the cut part).

Not covered here (see the Rust tests): trailing stops and the volume cap (the oracle does not
model them).

Engine bugs found by these tests (an order cut to nothing at fill time reported twice; a take
profit activated mid-bar beyond its limit dropped under a through rule) are fixed; their
hand-computed repros live in tests/test_orders_api.py.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import oracle
from oracle import BracketLogic, OrderTypeLogic, merge_config, run_oracle

REL = 1e-9
ABS = 1e-7

SEEDS = st.integers(0, 2**32 - 1)
DIFF_SETTINGS = settings(
    max_examples=9,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a smaller seed is no simpler case
)
PATHS = ["ohlc", "pessimistic", "optimistic"]
MODES = ["next_open", "same_close", "next_close"]
# (limit_fill, limit_through)
LIMIT_RULES = [("touch", 0.0), ("through_amount", 0.05), ("through_fraction", 0.001)]
EXTRA_EXECUTION_KEYS = ("intrabar_path", "limit_fill", "limit_through", "max_volume_fraction")


# ------------------------------------------------------------------------------------------------
# running the real engine with the order-type settings
# ------------------------------------------------------------------------------------------------


def backtest_config(config: dict[str, Any]) -> Any:
    """A ``BacktestConfig`` for an oracle config dict, including the execution settings of the
    order types (``intrabar_path``, ``limit_fill``, ``limit_through``, ``max_volume_fraction``):
    through ``execution`` when the config model has them, else added to the engine dict."""
    from ml4t.backtest import BacktestConfig
    from ml4t.backtest.errors import ConfigError

    try:
        return BacktestConfig(**config)
    except ConfigError:
        pass
    execution = dict(config.get("execution", {}))
    extra = {k: execution.pop(k) for k in EXTRA_EXECUTION_KEYS if k in execution}

    class _OrderTypesConfig(BacktestConfig):  # type: ignore[misc]
        def engine_dict(self) -> dict[str, Any]:
            return {**super().engine_dict(), **extra}

    return _OrderTypesConfig(**{**config, "execution": execution})


def run_engine(rows: list[dict[str, Any]], logic: Any, config: dict[str, Any]) -> Any:
    from ml4t.backtest import Backtest, PolarsDataFeed, Strategy

    columns = ("open", "high", "low", "close", "volume", *oracle.SIGNAL_COLUMNS)

    class Adapter(Strategy):  # type: ignore[misc]
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            values = {c: batch[c] for c in columns}
            batch_rows = [
                {"asset": a, **{c: float(values[c][i]) for c in columns}}
                for i, a in enumerate(batch.assets)
            ]
            logic.decide(timestamp, batch_rows, context)

    df = pl.DataFrame(rows).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    return Backtest(PolarsDataFeed(df), Adapter(), config=backtest_config(config)).run()


def make_config(
    mode: str = "next_open",
    path: str = "ohlc",
    limit_rule: tuple[str, float] = ("touch", 0.0),
    commission: dict[str, Any] | None = None,
    slippage: dict[str, Any] | None = None,
    rounding: str = "fractional",
    allow_short: bool = True,
) -> dict[str, Any]:
    execution: dict[str, Any] = {"mode": mode, "share_rounding": rounding, "intrabar_path": path}
    if limit_rule[0] != "touch":
        execution["limit_fill"], execution["limit_through"] = limit_rule
    return merge_config(
        {
            "execution": execution,
            "commission": dict(commission or {"model": "none"}),
            "slippage": dict(slippage or {"model": "none"}),
            "account": {"allow_short": allow_short},
        }
    )


# ------------------------------------------------------------------------------------------------
# comparing
# ------------------------------------------------------------------------------------------------


def _num_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def _plain(x: Any) -> Any:
    return x.replace(tzinfo=None) if isinstance(x, datetime) else x


def _diff(
    kind: str,
    engine_rows: list[dict[str, Any]],
    oracle_rows: list[dict[str, Any]],
    numeric: tuple[str, ...],
    exact: tuple[str, ...],
    problems: list[str],
) -> None:
    if len(engine_rows) != len(oracle_rows):
        n = min(len(engine_rows), len(oracle_rows))
        problems.append(
            f"{kind}: engine has {len(engine_rows)} rows, oracle {len(oracle_rows)}; first extra "
            f"engine={engine_rows[n : n + 2]} oracle={oracle_rows[n : n + 2]}"
        )
    for i, (e, o) in enumerate(zip(engine_rows, oracle_rows, strict=False)):
        bad = [c for c in exact if _plain(e.get(c)) != _plain(o.get(c))]
        bad += [c for c in numeric if not _num_eq(e.get(c), o.get(c))]
        if bad:
            shown = {c: (e.get(c), o.get(c)) for c in exact + numeric}
            problems.append(f"{kind} row {i}: differs in {bad} (engine, oracle): {shown}")
            return


def compare(result: Any, expected: oracle.OracleResult, label: str, by_asset: bool) -> None:
    """Fills in execution order (``by_asset``: stably sorted by timestamp and asset, so only the
    order within an asset counts), equity per timestamp, trades and rejections as sets."""
    problems: list[str] = []
    e_fills, o_fills = result.fills.to_dicts(), list(expected.fills)
    if by_asset:
        e_fills.sort(key=lambda f: (_plain(f["timestamp"]), f["asset"]))
        o_fills.sort(key=lambda f: (_plain(f["timestamp"]), f["asset"]))
    _diff(
        "fills",
        e_fills,
        o_fills,
        ("quantity", "price", "reference_price", "slippage", "commission"),
        ("timestamp", "asset", "side"),
        problems,
    )
    _diff(
        "equity",
        result.equity.to_dicts(),
        expected.equity,
        ("cash", "long_value", "short_value", "positions_value", "equity"),
        ("timestamp",),
        problems,
    )

    def trade_key(t: dict[str, Any]) -> tuple[Any, ...]:
        return (t["asset"], _plain(t["entry_time"]), t["status"], t["entry_price"])

    _diff(
        "trades",
        sorted(result.trades.to_dicts(), key=trade_key),
        sorted(expected.trades, key=trade_key),
        ("entry_price", "exit_price", "quantity", "gross_pnl", "commission", "bars_held"),
        ("asset", "side", "entry_time", "exit_time", "exit_reason", "status"),
        problems,
    )

    def rejected_key(r: dict[str, Any]) -> tuple[Any, ...]:
        q = r["quantity"]
        q = 0.0 if q is None or math.isnan(q) else float(q)
        return (r["reason"], r["order_id"], str(r["asset"]), _plain(r["timestamp"]), q)

    _diff(
        "rejected_orders",
        sorted(result.rejected_orders.to_dicts(), key=rejected_key),
        sorted(expected.rejected_orders, key=rejected_key),
        ("quantity",),
        ("order_id", "timestamp", "asset", "reason"),
        problems,
    )
    # the order journal: every order accepted into the book, as accepted
    accepted = result.orders.filter(
        pl.col("history").list.eval(pl.element().struct.field("status") == "accepted").list.any()
    )
    _diff(
        "orders",
        accepted.sort("order_id").to_dicts(),
        sorted(expected.orders, key=lambda o: o["order_id"]),
        ("quantity", "limit", "stop"),
        (
            "order_id",
            "timestamp",
            "asset",
            "side",
            "order_type",
            "tif",
            "parent_id",
            "oco_id",
            "exit_reason",
        ),
        problems,
    )
    if problems:
        raise AssertionError(f"engine != oracle for {label}:\n  " + "\n  ".join(problems[:6]))


def check(
    seed: int,
    config: dict[str, Any],
    make_logic: Any,
    *,
    missing: float = 0.15,
    by_asset: bool = False,
) -> oracle.OracleResult:
    rows = oracle.random_bar_rows(seed, missing=missing)
    result = run_engine(rows, make_logic(), config)
    expected = run_oracle(rows, config, make_logic().decide)
    compare(result, expected, f"seed={seed} config={config}", by_asset)
    return expected


# ------------------------------------------------------------------------------------------------
# the oracle's order rules against hand-computed numbers (no ml4t needed)
# ------------------------------------------------------------------------------------------------

T0 = datetime(2024, 1, 1)


def _bar(t: int, o: float, h: float, lo: float, c: float, asset: str = "A") -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(days=t),
        "asset": asset,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": 1000.0,
    }


def _at(day: int, *calls: tuple[str, tuple[Any, ...], dict[str, Any]]) -> Any:
    """A decide function making ``calls`` (method, args, kwargs) on day ``day``."""

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0 + timedelta(days=day):
            for method, args, kwargs in calls:
                getattr(ctx, method)(*args, **kwargs)

    return decide


def _fills(r: oracle.OracleResult) -> list[tuple[int, str, float, float]]:
    return [((f["timestamp"] - T0).days, f["side"], f["quantity"], f["price"]) for f in r.fills]


def test_oracle_limit_fills_at_the_limit_or_the_better_open() -> None:
    bars = [_bar(0, 100, 100.5, 99.5, 100), _bar(1, 99, 100, 97, 98), _bar(2, 95, 96, 94, 95)]
    buy_97 = _at(0, ("submit_order", ("A", 10), {"limit": 97.0}))
    assert _fills(run_oracle(bars, None, buy_97)) == [(1, "buy", 10, 97.0)]
    buy_96 = _at(0, ("submit_order", ("A", 10), {"limit": 96.0}))
    assert _fills(run_oracle(bars, None, buy_96)) == [(2, "buy", 10, 95.0)]  # gap: the open
    through = make_config(limit_rule=("through_amount", 0.5))
    assert _fills(run_oracle(bars, through, buy_97)) == [(2, "buy", 10, 95.0)]


def test_oracle_stop_and_stop_limit() -> None:
    bars = [
        _bar(0, 100, 100.5, 99.5, 100),
        _bar(1, 100, 103, 99, 102),  # 100 -> 99 -> 103: a buy stop at 102 fills at 102
        _bar(2, 105, 106, 101, 102),
        _bar(3, 102.5, 103, 102, 102.5),
    ]
    cfg = make_config(slippage={"model": "fixed", "amount": 0.1})
    stop = _at(0, ("submit_order", ("A", 10), {"stop": 102.0}))
    (f,) = run_oracle(bars, cfg, stop).fills
    assert (f["reference_price"], f["price"]) == (102.0, pytest.approx(102.1))
    # stop 104 limit 104.5: bar 2 opens at 105 (beyond the limit): armed; bar 3 opens inside it
    stop_limit = _at(0, ("submit_order", ("A", 10), {"stop": 104.0, "limit": 104.5}))
    assert _fills(run_oracle(bars, None, stop_limit)) == [(3, "buy", 10, 102.5)]


def test_oracle_bracket_follows_the_path_policy_and_cancels() -> None:
    bars = [
        _bar(0, 100, 100.5, 99.5, 100),
        _bar(1, 100, 101, 99, 100),
        _bar(2, 100, 111, 88, 100),  # the high is nearer: ohlc visits it first
    ]
    bracket = _at(0, ("submit_order", ("A", 10), {"take_profit": 105.0, "stop_loss": 95.0}))
    for path, price, reason in [
        ("ohlc", 105.0, "take_profit"),
        ("pessimistic", 95.0, "stop_loss"),
        ("optimistic", 105.0, "take_profit"),
    ]:
        r = run_oracle(bars, make_config(path=path), bracket)
        assert _fills(r) == [(1, "buy", 10, 100.0), (2, "sell", 10, price)], path
        assert [t["exit_reason"] for t in r.trades] == [reason], path
        assert r.rejected_orders == [], path


def test_oracle_day_expiry_and_cancels() -> None:
    bars = [_bar(0, 100, 100.5, 99.5, 100), _bar(1, 99, 100, 95, 96), _bar(2, 96, 97, 85, 86)]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            assert ctx.submit_order("A", 10, limit=90.0, tif="day") == 1
            assert ctx.submit_order("A", 5, limit=91.0) == 2
            assert ctx.submit_order("A", 5, take_profit=120.0, stop_loss=80.0) == 3
            assert ctx.submit_order("A", 1, limit=10.0) == 6
        if day == 1:
            ctx.cancel_order(2)
            ctx.cancel_order(2)  # no longer pending
            ctx.cancel_order(99)

    r = run_oracle(bars, None, decide)
    assert _fills(r) == [(1, "buy", 5, 99.0)]
    got = [(x["order_id"], (x["timestamp"] - T0).days, x["reason"]) for x in r.rejected_orders]
    assert got == [
        (1, 1, "expired"),
        (2, 1, "not_pending"),
        (99, 1, "not_pending"),
        (4, 0, "end_of_data"),  # the legs and the limit never filled
        (5, 0, "end_of_data"),
        (6, 0, "end_of_data"),
    ]


@pytest.mark.parametrize(
    ("quantity", "kwargs", "field"),
    [
        (1, {"take_profit": 95.0, "stop_loss": 105.0}, "take_profit"),
        (-1, {"take_profit": 105.0, "stop_loss": 95.0}, "take_profit"),
        (1, {"limit": 100.0, "take_profit": 99.0}, "take_profit"),
        (1, {"limit": 100.0, "stop_loss": 101.0}, "stop_loss"),
        (-1, {"limit": 100.0, "take_profit": 101.0}, "take_profit"),
        (-1, {"limit": 100.0, "stop_loss": 99.0}, "stop_loss"),
        (1, {"stop": 99.0, "limit": 100.0, "take_profit": 100.0}, "take_profit"),
        (1, {"limit": 100.0, "take_profit": 101.0, "stop_loss": 99.0}, None),
        (-1, {"limit": 100.0, "take_profit": 99.0, "stop_loss": 101.0}, None),
        (1, {"stop": 103.0, "take_profit": 102.0, "stop_loss": 95.0}, None),  # no entry limit
    ],
)
def test_oracle_bracket_sides(quantity: int, kwargs: dict[str, float], field: str | None) -> None:
    submit = _at(0, ("submit_order", ("A", quantity), kwargs))
    bars = [_bar(0, 100, 100.5, 99.5, 100)]
    if field is None:
        run_oracle(bars, None, submit)
    else:
        with pytest.raises(ValueError, match=f"^{field}:"):
            run_oracle(bars, None, submit)


def test_oracle_through_rule_at_an_open_on_the_limit() -> None:
    through = make_config(limit_rule=("through_amount", 0.5))
    buy_99 = _at(0, ("submit_order", ("A", 10), {"limit": 99.0}))
    on_limit = [_bar(0, 100, 100.5, 99.5, 100), _bar(1, 99, 100, 98.8, 99.5)]
    assert _fills(run_oracle(on_limit, None, buy_99)) == [(1, "buy", 10, 99.0)]
    assert _fills(run_oracle(on_limit, through, buy_99)) == []  # only a touch
    better = [_bar(0, 100, 100.5, 99.5, 100), _bar(1, 98.9, 100, 98.8, 99.5)]
    assert _fills(run_oracle(better, through, buy_99)) == [(1, "buy", 10, 98.9)]
    # A leg activated where the price is already better than its limit fills there too: buy
    # stop 103.02 with a take profit at 103, 100 -> 99.9 -> 103.04 -> 103.03.
    bars = [_bar(0, 100, 100.5, 99.5, 100), _bar(1, 100, 103.04, 99.9, 103.03)]
    bracket = _at(
        0, ("submit_order", ("A", 10), {"stop": 103.02, "take_profit": 103.0, "stop_loss": 95.0})
    )
    through = make_config(limit_rule=("through_amount", 0.05))
    expected = [(1, "buy", 10, 103.02), (1, "sell", 10, 103.02)]
    assert _fills(run_oracle(bars, through, bracket)) == expected


def test_oracle_exits_are_capped_at_flat() -> None:
    bars = [
        _bar(0, 100, 100.5, 99.5, 100),
        _bar(1, 100, 101, 99, 100),
        _bar(2, 100, 103, 99, 102),  # 100 -> 99 -> 103
        _bar(3, 98, 99, 90, 91),
    ]

    def no_short(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            ctx.submit_order("A", 10)
        if day == 1:
            ctx.submit_order("A", -10, limit=101.5)
            ctx.submit_order("A", -6, stop=99.5)
            ctx.submit_order("A", -10, limit=102.0)

    cfg = merge_config({"account": {"allow_short": False}})
    r = run_oracle(bars, cfg, no_short)
    assert _fills(r) == [(1, "buy", 10, 100.0), (2, "sell", 6, 99.5), (2, "sell", 4, 101.5)]
    got = [
        (x["order_id"], (x["timestamp"] - T0).days, x["quantity"], x["reason"])
        for x in r.rejected_orders
    ]
    assert got == [(2, 2, -6.0, "short_not_allowed"), (4, 2, -10.0, "short_not_allowed")]

    # A bracket's stop loss sells only what is left after another sell (silently).
    legs = _at(0, ("submit_order", ("A", 10), {"take_profit": 110.0, "stop_loss": 95.0}))

    def bracket_then_sell(ts: Any, rows: Any, ctx: Any) -> None:
        legs(ts, rows, ctx)
        if ts == T0 + timedelta(days=1):
            ctx.submit_order("A", -4)

    r = run_oracle(bars, None, bracket_then_sell)
    assert _fills(r) == [(1, "buy", 10, 100.0), (2, "sell", 4, 100.0), (3, "sell", 6, 95.0)]
    assert [t["exit_reason"] for t in r.trades] == ["stop_loss"]
    assert r.rejected_orders == []


def test_oracle_day_order_waits_for_its_assets_bar() -> None:
    bars = [
        _bar(0, 100, 100.5, 99.5, 100),
        _bar(0, 50.5, 51, 50, 50.5, asset="B"),
        _bar(1, 100, 100.5, 99.5, 100),  # B has no bar on day 1
        _bar(2, 100, 100.5, 99.5, 100),
        _bar(2, 49, 50, 48, 49.5, asset="B"),
    ]
    day_limit = _at(0, ("submit_order", ("B", 10), {"limit": 50.0, "tif": "day"}))
    r = run_oracle(bars, None, day_limit)
    assert [(f["asset"], *x) for f, x in zip(r.fills, _fills(r), strict=True)] == [
        ("B", 2, "buy", 10, 49.0)
    ]
    assert r.rejected_orders == []
    day_market = _at(1, ("submit_order", ("B", 10), {"tif": "day"}))
    r = run_oracle(bars, make_config("same_close"), day_market)
    assert _fills(r) == [(2, "buy", 10, 49.5)]
    assert r.rejected_orders == []


# ------------------------------------------------------------------------------------------------
# differential tests against the real engine
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(
    seed=SEEDS,
    limit_rule=st.sampled_from(LIMIT_RULES),
    slippage=st.sampled_from([{"model": "none"}, {"model": "fixed", "amount": 0.05}]),
)
def test_limit_and_stop_orders_match_the_oracle(
    mode: str, seed: int, path: str, limit_rule: tuple[str, float], slippage: dict[str, Any]
) -> None:
    config = make_config(
        mode, path, limit_rule, {"model": "percent", "rate": 0.001}, slippage=slippage
    )
    check(seed, config, OrderTypeLogic)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS, limit_rule=st.sampled_from(LIMIT_RULES))
def test_time_in_force_matches_the_oracle(
    mode: str, seed: int, path: str, limit_rule: tuple[str, float]
) -> None:
    config = make_config(mode, path, limit_rule, {"model": "per_order", "amount": 1.0})
    check(seed, config, lambda: OrderTypeLogic(("gtc", "day", "ioc")))


@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(
    seed=SEEDS,
    path=st.sampled_from(PATHS),
    limit_rule=st.sampled_from(LIMIT_RULES),
    tifs=st.sampled_from([("gtc",), ("gtc", "day", "ioc")]),
)
def test_resting_sells_without_shorting_match_the_oracle(
    mode: str, seed: int, path: str, limit_rule: tuple[str, float], tifs: tuple[str, ...]
) -> None:
    # Resting sells pass the short check at submission (it counts market orders only) and are
    # cut at flat when they fill, with a short_not_allowed rejection for the cut part.
    commission = {"model": "per_order", "amount": 1.0}
    config = make_config(mode, path, limit_rule, commission, allow_short=False)
    expected = check(seed, config, lambda: OrderTypeLogic(tifs, exits=True))
    assert all(e["short_value"] == 0.0 for e in expected.equity)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(
    seed=SEEDS,
    rounding=st.sampled_from(["fractional", "integer"]),
    limit_rule=st.sampled_from(LIMIT_RULES),
)
def test_brackets_match_the_oracle(
    mode: str, seed: int, path: str, rounding: str, limit_rule: tuple[str, float]
) -> None:
    # BracketLogic also sells part of a held position (the legs are then capped when they fill)
    # and trades through zero (the legs are cancelled).
    config = make_config(
        mode,
        path,
        limit_rule,
        commission={"model": "per_share", "rate": 0.01},
        slippage={"model": "percent", "rate": 0.0005},
        rounding=rounding,
    )
    check(seed, config, BracketLogic)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS)
def test_bracket_time_in_force_matches_the_oracle(mode: str, seed: int, path: str) -> None:
    config = make_config(mode, path)
    check(seed, config, lambda: BracketLogic(("gtc", "day", "ioc")))
