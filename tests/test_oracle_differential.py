"""Differential tests: the real engine against the reference engine in tests/oracle.py.

Every test draws a seed, builds a small random multi-asset OHLC frame with missing bars
(``oracle.random_bar_rows``), runs the same strategy logic through ``ml4t.backtest`` and through
the oracle, and compares fills, equity, trades and rejected orders with a relative tolerance of
1e-9. The first few tests check the oracle itself against hand-computed numbers.

Random configurations cover the three execution modes, decision- and fill-time sizing, the
accounts (Reg-T margin by default, unlimited, a tight 0.8 initial margin, cash) with
``on_insufficient`` reject / resize, levered logics (target percents up to ±3 per asset) that
meet margin rejections, resizes and margin calls, and crashes under leverage that ruin the
account.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle
from oracle import (
    ActionLogic,
    CrashLogic,
    LeverLogic,
    RebalanceLogic,
    SignalLogic,
    merge_config,
    run_oracle,
)

REL = 1e-9
ABS = 1e-7

SEEDS = st.integers(0, 2**32 - 1)
DIFF_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

COMMISSIONS = [
    pytest.param({"model": "none"}, id="none"),
    pytest.param({"model": "percent", "rate": 0.001}, id="percent"),
    pytest.param({"model": "percent", "rate": 0.001, "minimum": 5.0}, id="percent-min"),
    pytest.param({"model": "per_share", "rate": 0.01}, id="per_share"),
    pytest.param({"model": "per_share", "rate": 0.01, "minimum": 1.0}, id="per_share-min"),
    pytest.param({"model": "per_order", "amount": 1.5}, id="per_order"),
    pytest.param({"model": "per_order", "amount": 1.0, "minimum": 2.5}, id="per_order-min"),
]
SLIPPAGES = [
    pytest.param({"model": "none"}, id="slip-none"),
    pytest.param({"model": "fixed", "amount": 0.05}, id="slip-fixed"),
    pytest.param({"model": "percent", "rate": 0.002}, id="slip-percent"),
]
MODES = ["next_open", "same_close", "next_close"]
# account settings drawn by the account tests (merged into the config's ``account``)
ACCOUNTS = {
    "reg_t": {},  # the default: initial margin 0.5, maintenance 0.25
    "unlimited": {"initial_margin": None},  # the maintenance margin follows it to None
    "tight": {"initial_margin": 0.8},  # maintenance stays 0.25
    "cash": {"type": "cash"},
}

# Rejections at fill time and ruin end a run with a warning; these tests compare the frames.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ml4t.backtest.errors.MarginWarning"),
    pytest.mark.filterwarnings("ignore::ml4t.backtest.errors.RuinWarning"),
]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def make_config(
    mode: str = "next_open",
    rounding: str = "fractional",
    commission: dict[str, Any] | None = None,
    slippage: dict[str, Any] | None = None,
    allow_short: bool = True,
    initial_cash: float = 100_000.0,
    sizing: str = "decision",
    account: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return merge_config(
        {
            "initial_cash": initial_cash,
            "execution": {"mode": mode, "share_rounding": rounding, "sizing": sizing},
            "commission": dict(commission or {"model": "none"}),
            "slippage": dict(slippage or {"model": "none"}),
            "account": {"allow_short": allow_short, **(account or {})},
        }
    )


def bars_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))


def _ts(x: Any) -> Any:
    if isinstance(x, datetime) and x.tzinfo is not None:
        return x.astimezone(UTC).replace(tzinfo=None)
    return x


def _num_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def _diff_rows(
    kind: str,
    engine_rows: list[dict[str, Any]],
    oracle_rows: list[dict[str, Any]],
    numeric: tuple[str, ...],
    exact: tuple[str, ...],
    problems: list[str],
) -> None:
    if len(engine_rows) != len(oracle_rows):
        problems.append(f"{kind}: engine has {len(engine_rows)} rows, oracle {len(oracle_rows)}")
    for i, (e, o) in enumerate(zip(engine_rows, oracle_rows, strict=False)):
        bad = [c for c in exact if _ts(e.get(c)) != _ts(o.get(c))]
        bad += [c for c in numeric if not _num_eq(e.get(c), o.get(c))]
        if bad:
            shown = {c: (e.get(c), o.get(c)) for c in exact + numeric}
            problems.append(f"{kind} row {i}: differs in {bad} (engine, oracle): {shown}")
            return
    if len(engine_rows) != len(oracle_rows):
        n = min(len(engine_rows), len(oracle_rows))
        problems.append(
            f"{kind}: first extra rows engine={engine_rows[n : n + 2]} "
            f"oracle={oracle_rows[n : n + 2]}"
        )


def _trade_key(t: dict[str, Any]) -> tuple[Any, ...]:
    closed = t["status"] == "closed"
    return (
        t["asset"],
        _ts(t["entry_time"]),
        not closed,
        _ts(t["exit_time"]) if closed else datetime.min,
        t["entry_price"],
        t["quantity"],
    )


def _rejected_key(r: dict[str, Any]) -> tuple[Any, ...]:
    q = r["quantity"]
    q = 0.0 if q is None or math.isnan(q) else float(q)  # no_price orders have no quantity (NaN)
    return (r["reason"], r["asset"], _ts(r["timestamp"]), q)


def compare(result: Any, expected: oracle.OracleResult, label: str, marked: bool = False) -> None:
    """Compare a real engine result with an oracle result; fail with the first differences.
    ``marked``: some assets are marked to market (futures), whose cash and position values
    differ from the oracle's notional accounting by the unsettled PnL: only equity is
    compared."""
    problems: list[str] = []

    # fills: compared in execution order (exits first, then entries, each in submission order);
    # after ruin only the liquidations fill, in an order the contract leaves open: by asset
    e_fills = result.fills.to_dicts()
    o_fills = list(expected.fills)
    if expected.ruined_at is not None:
        ruin = _ts(expected.ruined_at)

        def after_ruin(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
            before = [f for f in fills if _ts(f["timestamp"]) <= ruin]
            later = [f for f in fills if _ts(f["timestamp"]) > ruin]
            return before + sorted(later, key=lambda f: (_ts(f["timestamp"]), str(f["asset"])))

        e_fills, o_fills = after_ruin(e_fills), after_ruin(o_fills)
    _diff_rows(
        "fills",
        e_fills,
        o_fills,
        ("quantity", "price", "reference_price", "slippage", "commission"),
        ("timestamp", "asset", "side"),
        problems,
    )

    _diff_rows(
        "equity",
        result.equity.to_dicts(),
        expected.equity,
        ("equity",)
        if marked
        else ("cash", "long_value", "short_value", "positions_value", "equity"),
        ("timestamp",),
        problems,
    )

    e_trades = sorted(result.trades.to_dicts(), key=_trade_key)
    o_trades = sorted(expected.trades, key=_trade_key)
    for t in e_trades + o_trades:  # a ratio of float-dust numbers (1e-14 shares) is noise
        if abs(t["entry_price"] * t["quantity"]) < 1e-6:
            t["return_pct"] = None
    _diff_rows(
        "trades",
        e_trades,
        o_trades,
        (
            "entry_price",
            "exit_price",
            "quantity",
            "gross_pnl",
            "commission",
            "net_pnl",
            "return_pct",
            "bars_held",
        ),
        # exit_time of an open trade: the last timestamp of the data (not in semantics.md)
        ("asset", "side", "entry_time", "exit_time", "exit_reason", "status"),
        problems,
    )

    e_rej = sorted(result.rejected_orders.to_dicts(), key=_rejected_key)
    o_rej = sorted(expected.rejected_orders, key=_rejected_key)
    _diff_rows(
        "rejected_orders",
        e_rej,
        o_rej,
        ("quantity",),
        ("timestamp", "asset", "reason"),
        problems,
    )

    # the order journal: every order accepted into the book, as accepted (ids are compared by
    # the order tests; target orders may take theirs in another order than the oracle's)
    def order_key(o: dict[str, Any]) -> tuple[Any, ...]:
        return (_ts(o["timestamp"]), str(o["asset"]), o["side"] or "", o["quantity"])

    accepted = result.orders.filter(
        pl.col("history").list.eval(pl.element().struct.field("status") == "accepted").list.any()
    )
    _diff_rows(
        "orders",
        sorted(accepted.to_dicts(), key=order_key),
        sorted(expected.orders, key=order_key),
        ("quantity", "limit", "stop"),
        ("timestamp", "asset", "side", "order_type", "tif", "exit_reason"),
        problems,
    )

    if problems:
        raise AssertionError(f"engine != oracle for {label}:\n  " + "\n  ".join(problems[:6]))


def check(
    run_engine: Any,
    seed: int,
    config: dict[str, Any],
    logic: Any,
    api: str = "batch",
    n_assets: int = 3,
    shock: tuple[int, float] | None = None,
) -> oracle.OracleResult:
    rows = oracle.random_bar_rows(seed, n_assets=n_assets, shock=shock)
    df = bars_frame(rows)
    result = run_engine(df, logic, config, api=api, signals=oracle.SIGNAL_COLUMNS)
    expected = run_oracle(rows, config, logic.decide)
    compare(result, expected, f"seed={seed} api={api} logic={type(logic).__name__} config={config}")
    return expected


def assets_of(seed: int, n_assets: int = 3) -> list[str]:
    return sorted({r["asset"] for r in oracle.random_bar_rows(seed, n_assets=n_assets)})


# ------------------------------------------------------------------------------------------------
# the oracle itself, against hand-computed numbers (no ml4t needed)
# ------------------------------------------------------------------------------------------------

T0 = datetime(2024, 1, 1)


def _bar(
    t: int, asset: str, o: float, h: float, lo: float, c: float, **sig: float
) -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(days=t),
        "asset": asset,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": 1000.0,
        **sig,
    }


def test_oracle_next_open_round_trip_with_fees_and_slippage() -> None:
    bars = [
        _bar(0, "A", 10, 11, 9, 10),
        _bar(1, "A", 12, 13, 11, 12),
        _bar(2, "A", 14, 15, 13, 15),
        _bar(3, "A", 16, 17, 15, 16),
    ]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0:
            ctx.submit_order("A", 10)
        elif ts == T0 + timedelta(days=1):
            ctx.submit_order("A", -25)  # crosses zero: closes 10, opens a 15 short

    cfg = make_config(
        commission={"model": "per_order", "amount": 2.0}, slippage={"model": "fixed", "amount": 0.5}
    )
    r = run_oracle(bars, cfg, decide)
    f1, f2 = r.fills
    assert (f1["price"], f1["quantity"], f1["side"], f1["commission"]) == (12.5, 10, "buy", 2.0)
    assert (f2["price"], f2["quantity"], f2["side"]) == (13.5, 25, "sell")
    assert f2["slippage"] == 0.5 * 25
    closed, still_open = r.trades
    assert closed["status"] == "closed" and closed["side"] == "long"
    assert closed["gross_pnl"] == pytest.approx(10 * (13.5 - 12.5))
    assert closed["commission"] == pytest.approx(2.0 + 2.0 * 10 / 25)
    assert closed["bars_held"] == 1
    assert still_open["status"] == "open" and still_open["side"] == "short"
    assert still_open["quantity"] == 15 and still_open["entry_price"] == 13.5
    assert still_open["exit_price"] == 16  # the last mark
    assert still_open["gross_pnl"] == pytest.approx(15 * (13.5 - 16))
    assert still_open["commission"] == pytest.approx(2.0 * 15 / 25)
    assert still_open["exit_reason"] == "end_of_data" and still_open["bars_held"] == 1
    cash = 100_000 - 10 * 12.5 - 2 + 25 * 13.5 - 2
    assert r.equity[-1]["cash"] == pytest.approx(cash)
    assert r.equity[-1]["short_value"] == pytest.approx(-15 * 16)
    assert r.equity[-1]["equity"] == pytest.approx(cash - 15 * 16)


def test_oracle_missing_bar_pending_and_end_of_data() -> None:
    bars = [
        _bar(0, "A", 10, 10, 10, 10),
        _bar(0, "B", 20, 20, 20, 20),
        _bar(1, "A", 11, 11, 11, 11),  # B missing: its order waits
        _bar(2, "A", 12, 12, 12, 12),
        _bar(2, "B", 22, 22, 22, 22),
        _bar(3, "A", 13, 13, 13, 13),
    ]
    seen: list[float] = []

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            ctx.order_target_quantity("B", 5)
        if day == 1:
            seen.append(ctx.price("B"))
            ctx.order_target_quantity("B", 5)  # already pending: no new order
        if day == 3:
            ctx.submit_order("A", 1)  # decided on the last bar: never fills

    r = run_oracle(bars, make_config(), decide)
    assert seen == [20.0]
    assert [(f["asset"], f["timestamp"], f["price"]) for f in r.fills] == [
        ("B", T0 + timedelta(days=2), 22.0)
    ]
    assert r.equity[1]["positions_value"] == 0.0
    assert [(x["asset"], x["reason"], x["quantity"]) for x in r.rejected_orders] == [
        ("A", "end_of_data", 1.0)
    ]


def test_oracle_integer_rounding_short_cut_and_no_price() -> None:
    bars = [
        _bar(0, "A", 10, 10, 10, 10),
        _bar(1, "A", 10, 10, 10, 10),
        _bar(1, "B", 5, 5, 5, 5),
        _bar(2, "A", 10, 10, 10, 10),
    ]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            ctx.order_target_value("A", 99.0)  # 9.9 shares -> 9
            ctx.order_target_value("B", 50.0)  # no price yet
        if day == 1:
            ctx.submit_order("A", -20)  # cut at zero: sells 9
            ctx.submit_order("B", -1)  # nothing to sell

    cfg = make_config(mode="same_close", rounding="integer", allow_short=False)
    r = run_oracle(bars, cfg, decide)
    assert [(f["asset"], f["side"], f["quantity"]) for f in r.fills] == [
        ("A", "buy", 9.0),
        ("A", "sell", 9.0),
    ]
    assert sorted((x["asset"], x["reason"]) for x in r.rejected_orders) == [
        ("B", "no_price"),
        ("B", "short_not_allowed"),
    ]


def test_oracle_exits_fill_before_entries() -> None:
    bars = [
        _bar(0, "A", 10, 10, 10, 10),
        _bar(0, "B", 10, 10, 10, 10),
        _bar(1, "A", 10, 10, 10, 10),
        _bar(1, "B", 10, 10, 10, 10),
        _bar(2, "A", 10, 10, 10, 10),
        _bar(2, "B", 10, 10, 10, 10),
    ]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            ctx.submit_order("B", 3)
        if day == 1:
            ctx.submit_order("A", 1)  # entry, submitted first
            ctx.submit_order("B", -2)  # exit

    r = run_oracle(bars, make_config(), decide)
    assert [(f["asset"], f["side"]) for f in r.fills] == [("B", "buy"), ("B", "sell"), ("A", "buy")]


def test_oracle_commission_minimum_and_percent_slippage_clamp() -> None:
    bars = [_bar(0, "A", 10, 10.01, 9.9, 10), _bar(1, "A", 10, 10.01, 9.9, 10)]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0:
            ctx.submit_order("A", 2)

    cfg = make_config(
        commission={"model": "percent", "rate": 0.001, "minimum": 1.0},
        slippage={"model": "percent", "rate": 0.01},
    )
    (f,) = run_oracle(bars, cfg, decide).fills
    assert f["price"] == 10.01  # 10.1 clamped to the high
    assert f["commission"] == 1.0
    assert f["slippage"] == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------------
# differential tests against the real engine
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("commission", COMMISSIONS)
@DIFF_SETTINGS
@given(seed=SEEDS, rounding=st.sampled_from(["fractional", "integer"]))
def test_commission_models(
    run_engine: Any, mode: str, commission: dict[str, Any], seed: int, rounding: str
) -> None:
    config = make_config(mode, rounding, commission, {"model": "fixed", "amount": 0.02})
    check(run_engine, seed, config, ActionLogic(assets_of(seed), rounding == "integer"))


@pytest.mark.parametrize("api", ["batch", "event"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("slippage", SLIPPAGES)
@DIFF_SETTINGS
@given(seed=SEEDS, rounding=st.sampled_from(["fractional", "integer"]))
def test_slippage_models(
    run_engine: Any, slippage: dict[str, Any], mode: str, api: str, seed: int, rounding: str
) -> None:
    config = make_config(mode, rounding, {"model": "percent", "rate": 0.0005}, slippage)
    check(run_engine, seed, config, ActionLogic(assets_of(seed), rounding == "integer"), api=api)


@pytest.mark.parametrize("allow_short", [True, False])
@pytest.mark.parametrize("rounding", ["fractional", "integer"])
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS, api=st.sampled_from(["batch", "event"]))
def test_rounding_and_shorting(
    run_engine: Any, mode: str, rounding: str, allow_short: bool, seed: int, api: str
) -> None:
    config = make_config(
        mode,
        rounding,
        {"model": "per_share", "rate": 0.005, "minimum": 1.0},
        {"model": "percent", "rate": 0.001},
        allow_short=allow_short,
    )
    logic = ActionLogic(assets_of(seed), rounding == "integer", allow_short)
    check(run_engine, seed, config, logic, api=api)


@pytest.mark.parametrize("allow_short", [True, False])
@pytest.mark.parametrize("rounding", ["fractional", "integer"])
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS, commission=st.sampled_from([c.values[0] for c in COMMISSIONS]))
def test_rebalance_target_percent(
    run_engine: Any,
    mode: str,
    rounding: str,
    allow_short: bool,
    seed: int,
    commission: dict[str, Any],
) -> None:
    config = make_config(
        mode, rounding, commission, {"model": "fixed", "amount": 0.01}, allow_short=allow_short
    )
    check(run_engine, seed, config, RebalanceLogic(assets_of(seed)), api="batch")


@pytest.mark.parametrize("api", ["batch", "event"])
@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS, allow_short=st.booleans(), n_assets=st.integers(1, 4))
def test_python_signal_strategy(
    run_engine: Any, mode: str, api: str, seed: int, allow_short: bool, n_assets: int
) -> None:
    config = make_config(mode, "integer", {"model": "per_order", "amount": 1.0})
    logic = SignalLogic("score", 50.0, 0.3, -0.3, allow_short)
    check(run_engine, seed, config, logic, api=api, n_assets=n_assets)


@pytest.mark.parametrize("mode", MODES)
@DIFF_SETTINGS
@given(seed=SEEDS, allow_short=st.booleans())
def test_builtin_signal_strategy_matches_oracle(
    run_engine: Any, mode: str, seed: int, allow_short: bool
) -> None:
    from ml4t.backtest import SignalStrategy

    rows = oracle.random_bar_rows(seed)
    config = make_config(
        mode, "fractional", {"model": "percent", "rate": 0.001}, {"model": "percent", "rate": 0.001}
    )
    native = SignalStrategy(
        "score", quantity=25.0, long_threshold=0.2, short_threshold=-0.2, allow_short=allow_short
    )
    result = run_engine(bars_frame(rows), native, config, api="native")
    expected = run_oracle(rows, config, SignalLogic("score", 25.0, 0.2, -0.2, allow_short).decide)
    compare(result, expected, f"seed={seed} builtin SignalStrategy config={config}")


@pytest.mark.parametrize("mode", MODES)
def test_batch_and_event_apis_agree(run_engine: Any, mode: str) -> None:
    """The same per-row logic through both callback styles gives identical frames."""
    for seed in range(5):
        rows = oracle.random_bar_rows(seed)
        df = bars_frame(rows)
        config = make_config(mode, "fractional", {"model": "percent", "rate": 0.001})
        logic = ActionLogic(assets_of(seed), False)
        a = run_engine(df, logic, config, api="batch", signals=oracle.SIGNAL_COLUMNS)
        b = run_engine(df, logic, config, api="event", signals=oracle.SIGNAL_COLUMNS)
        assert a.fills.equals(b.fills)
        assert a.equity.equals(b.equity)
        assert a.trades.equals(b.trades)


# ------------------------------------------------------------------------------------------------
# accounts, ruin, fill-time sizing and next-close mode
# ------------------------------------------------------------------------------------------------


def test_oracle_margin_check_counts_the_gross_after_the_fill() -> None:
    """Reg-T (0.5): a flip from 1.5x long to 1.5x short leaves the gross at 1.5x and fills; a
    buy to 2.5x gross is rejected, or resized to the 2x that equity covers."""
    flat = [_bar(t, "A", 100, 100, 100, 100) for t in range(4)]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        day = (ts - T0).days
        if day == 0:
            ctx.submit_order("A", 150)
        elif day == 1:
            ctx.submit_order("A", -300)  # closes 150 (always allowed), opens 150 short
        elif day == 2:
            ctx.submit_order("A", 400)  # closes 150, opens 250 long: 25,000 gross > 20,000

    r = run_oracle(flat, make_config(initial_cash=10_000.0), decide)
    assert [(f["side"], f["quantity"]) for f in r.fills] == [("buy", 150), ("sell", 300)]
    assert [(x["reason"], x["quantity"]) for x in r.rejected_orders] == [
        ("insufficient_margin", 400)
    ]
    resized = make_config(initial_cash=10_000.0, account={"on_insufficient": "resize"})
    r = run_oracle(flat, resized, decide)
    assert [(f["side"], f["quantity"]) for f in r.fills][-1] == ("buy", 350)  # 150 + 200
    assert [(x["reason"], x["quantity"]) for x in r.rejected_orders] == [
        ("insufficient_margin", 50)
    ]


def test_oracle_cash_account_pays_the_fee_too() -> None:
    """A cash account buys the largest q with q * price + fee(q) <= cash."""
    flat = [_bar(t, "A", 10, 10, 10, 10) for t in range(2)]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0:
            ctx.submit_order("A", 200)

    cfg = make_config(
        initial_cash=1_000.0,
        commission={"model": "per_share", "rate": 1.0},
        account={"type": "cash", "on_insufficient": "resize"},
    )
    r = run_oracle(flat, cfg, decide)
    assert r.fills[0]["quantity"] == pytest.approx(1_000 / 11)
    assert r.equity[-1]["cash"] == pytest.approx(0.0, abs=1e-9)
    assert r.rejected_orders[0]["reason"] == "insufficient_cash"


def test_oracle_margin_call_and_ruin() -> None:
    """2x long at 100 (equity covers exactly half); a fall to 60 leaves equity 2,000 < 0.25 x
    12,000: the margin call sells at that close. Unlimited leverage at 3x and the same fall take
    equity to -2,000: ruin; the pending order is refused, the position is sold at the next open,
    later orders are refused."""
    bars = [_bar(0, "A", 100, 100, 100, 100), _bar(1, "A", 100, 100, 100, 100)]
    bars += [_bar(t, "A", 60, 60, 60, 60) for t in range(2, 5)]

    def buy(quantity: float) -> Any:
        def decide(ts: Any, rows: Any, ctx: Any) -> None:
            if ts == T0:
                ctx.submit_order("A", quantity)
            elif ts >= T0 + timedelta(days=2):
                ctx.order_target_percent("A", 1.0)

        return decide

    def fills(r: oracle.OracleResult) -> list[tuple[int, str, float, float]]:
        return [((f["timestamp"] - T0).days, f["side"], f["quantity"], f["price"]) for f in r.fills]

    r = run_oracle(bars, make_config(initial_cash=10_000.0), buy(200))
    assert fills(r)[:3] == [(1, "buy", 200, 100), (2, "sell", 200, 60), (3, "buy", 2_000 / 60, 60)]
    assert r.trades[0]["exit_reason"] == "margin_call" and r.ruined_at is None

    unlimited = make_config(initial_cash=10_000.0, account={"initial_margin": None})
    r = run_oracle(bars, unlimited, buy(300))
    assert r.ruined_at == T0 + timedelta(days=2)
    assert fills(r) == [(1, "buy", 300, 100), (3, "sell", 300, 60)]
    assert r.trades[0]["exit_reason"] == "ruin"
    refused = [((x["timestamp"] - T0).days, x["reason"], x["quantity"]) for x in r.rejected_orders]
    assert refused[0] == (2, "ruined", pytest.approx(-2_000 / 60 - 300))
    assert [x[:2] for x in refused[1:]] == [(3, "ruined"), (4, "ruined")]
    assert all(math.isnan(x[2]) for x in refused[1:])
    assert r.equity[-1]["equity"] == pytest.approx(-2_000)


def test_oracle_fill_sizing_worked_example() -> None:
    """semantics.md's worked example: 50 % at Monday's close of 100, Tuesday opens at 110."""
    bars = [_bar(0, "A", 100, 100, 100, 100), _bar(1, "A", 110, 110, 110, 110)]

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0:
            ctx.order_target_percent("A", 0.5)

    decision = run_oracle(bars, make_config(initial_cash=10_000.0), decide)
    fill = run_oracle(bars, make_config(initial_cash=10_000.0, sizing="fill"), decide)
    assert decision.fills[0]["quantity"] == pytest.approx(50)
    assert fill.fills[0]["quantity"] == pytest.approx(10_000 * 0.5 / 110)


def test_oracle_next_close_fills_at_the_next_close() -> None:
    bars = [_bar(0, "A", 10, 11, 9, 10), _bar(1, "A", 12, 14, 11, 13), _bar(2, "A", 13, 13, 13, 13)]
    seen: list[float] = []

    def decide(ts: Any, rows: Any, ctx: Any) -> None:
        if ts == T0:
            ctx.submit_order("A", 10)
        elif ts == T0 + timedelta(days=1):
            seen.append(ctx.position("A"))  # the fill at this close is already seen

    r = run_oracle(bars, make_config("next_close"), decide)
    assert [(f["timestamp"].day, f["price"]) for f in r.fills] == [(2, 13)]
    assert seen == [10]


@DIFF_SETTINGS
@given(
    seed=SEEDS,
    mode=st.sampled_from(MODES),
    sizing=st.sampled_from(["decision", "fill"]),
    account=st.sampled_from(sorted(ACCOUNTS)),
    on_insufficient=st.sampled_from(["reject", "resize"]),
    rounding=st.sampled_from(["fractional", "integer"]),
    logic=st.sampled_from(["action", "rebalance", "lever", "lever_rebalance"]),
    commission=st.sampled_from([c.values[0] for c in COMMISSIONS]),
    slippage=st.sampled_from([s.values[0] for s in SLIPPAGES]),
    api=st.sampled_from(["batch", "event"]),
)
def test_accounts_sizing_and_modes(
    run_engine: Any,
    seed: int,
    mode: str,
    sizing: str,
    account: str,
    on_insufficient: str,
    rounding: str,
    logic: str,
    commission: dict[str, Any],
    slippage: dict[str, Any],
    api: str,
) -> None:
    config = make_config(
        mode,
        rounding,
        commission,
        slippage,
        sizing=sizing,
        account={**ACCOUNTS[account], "on_insufficient": on_insufficient},
    )
    integer = rounding == "integer"
    if logic == "action":
        strategy: Any = ActionLogic(assets_of(seed), integer)
    elif logic == "lever":
        strategy = LeverLogic(3.0, integer)
    else:  # rebalance is a batch call
        strategy, api = (
            RebalanceLogic(assets_of(seed), 0.9 if logic == "rebalance" else 2.6),
            "batch",
        )
    check(run_engine, seed, config, strategy, api=api)


@DIFF_SETTINGS
@given(
    seed=SEEDS,
    mode=st.sampled_from(MODES),
    sizing=st.sampled_from(["decision", "fill"]),
    rounding=st.sampled_from(["fractional", "integer"]),
    account=st.sampled_from(["unlimited", "unlimited", "reg_t"]),
    direction=st.sampled_from([1.0, -1.0]),
    lever=st.floats(2.5, 4.0),
    at=st.integers(3, 25),
    severity=st.floats(0.5, 1.0),
)
def test_crash_into_ruin(
    run_engine: Any,
    seed: int,
    mode: str,
    sizing: str,
    rounding: str,
    account: str,
    direction: float,
    lever: float,
    at: int,
    severity: float,
) -> None:
    # a gap against the levered book: down to 0.25-0.5 of the price for longs, up 1.75-2.5x for
    # shorts; without margins equity goes through zero (ruin), with Reg-T margin calls come first
    factor = 1.0 - 0.75 * severity if direction > 0 else 1.0 + 1.5 * severity
    config = make_config(
        mode,
        rounding,
        {"model": "percent", "rate": 0.001},
        {"model": "percent", "rate": 0.001},
        sizing=sizing,
        account=ACCOUNTS[account],
    )
    logic = CrashLogic(direction, lever, 3, rounding == "integer")
    check(run_engine, seed, config, logic, api="batch", shock=(at, factor))


@pytest.mark.parametrize("mode", MODES)
def test_crash_examples_reach_ruin_and_margin_calls(run_engine: Any, mode: str) -> None:
    """The crash data does what the random test needs: ruin without margins, margin calls with
    Reg-T, and both engines agree on them."""
    ruined = called = 0
    for seed in range(4):
        for account in ("unlimited", "reg_t"):
            config = make_config(mode, account=ACCOUNTS[account])
            logic = CrashLogic(1.0, 3.0, 3, False)
            expected = check(run_engine, seed, config, logic, shock=(10, 0.4))
            ruined += expected.ruined_at is not None
            called += any(t["exit_reason"] == "margin_call" for t in expected.trades)
    assert ruined >= 4 and called >= 2


# ------------------------------------------------------------------------------------------------
# instruments: contract multipliers, futures marked to market
# ------------------------------------------------------------------------------------------------


@DIFF_SETTINGS
@given(
    seed=SEEDS,
    mode=st.sampled_from(MODES),
    sizing=st.sampled_from(["decision", "fill"]),
    account=st.sampled_from(["reg_t", "unlimited", "tight"]),
    on_insufficient=st.sampled_from(["reject", "resize"]),
    classes=st.lists(st.sampled_from(["equity", "future", "crypto_perp"]), min_size=3, max_size=3),
    multipliers=st.lists(st.sampled_from([1.0, 2.5, 10.0, 50.0]), min_size=3, max_size=3),
    logic=st.sampled_from(["action", "lever"]),
    commission=st.sampled_from([c.values[0] for c in COMMISSIONS]),
    slippage=st.sampled_from([s.values[0] for s in SLIPPAGES]),
)
def test_multipliers_and_marking_to_market_match_the_oracle(
    seed: int,
    mode: str,
    sizing: str,
    account: str,
    on_insufficient: str,
    classes: list[str],
    multipliers: list[float],
    logic: str,
    commission: dict[str, Any],
    slippage: dict[str, Any],
) -> None:
    """Contracts with multipliers (shares, futures and perpetuals marked to market, without
    their own margins, ticks or lots) against the oracle's notional accounting: the same fills,
    trades, rejections and equity at every timestamp."""
    from conftest import _adapter
    from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed

    config = make_config(
        mode,
        "fractional",
        commission,
        slippage,
        sizing=sizing,
        account={**ACCOUNTS[account], "on_insufficient": on_insufficient},
    )
    assets = assets_of(seed)
    specs = {
        a: {"asset_class": c, "multiplier": m, "lot_size": None}
        for a, c, m in zip(assets, classes, multipliers, strict=False)
    }
    strategy: Any = ActionLogic(assets, False) if logic == "action" else LeverLogic(3.0 / 50)
    rows = oracle.random_bar_rows(seed)
    feed = PolarsDataFeed(bars_frame(rows), instruments=specs)
    adapter = _adapter(strategy, "batch", oracle.SIGNAL_COLUMNS)
    result = Backtest(feed, adapter, config=BacktestConfig(**config)).run()
    expected = run_oracle(rows, {**config, "instruments": specs}, strategy.decide)
    marked = any(c != "equity" for c in classes[: len(assets)])
    compare(result, expected, f"seed={seed} specs={specs} config={config}", marked=marked)
