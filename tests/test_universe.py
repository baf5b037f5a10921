"""The point-in-time universe (issue 16, item 5): ``PolarsDataFeed(..., universe=frame)`` of
(timestamp, asset, member). Membership at ``t`` is an asset's latest row at or before ``t``;
strategies see ``batch.members`` / ``context.is_member``; entries into non-members are
refused (``non_member``) by default; the PnL of positions held in non-members is reported."""

from __future__ import annotations

import random
import warnings
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle
from conftest import _adapter
from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TopKStrategy,
)
from ml4t.backtest.errors import DataValidationError
from test_flows import LOGICS
from test_oracle_differential import bars_frame, compare, make_config

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(8)]


def prices(n_days: int = 8) -> pl.DataFrame:
    """A at 100 + day, B at 50 + 2 day (flat bars), a score that prefers B."""
    rows = []
    for i, day in enumerate(DAYS[:n_days]):
        for asset, price, score in (("A", 100.0 + i, 0.0), ("B", 50.0 + 2 * i, 1.0)):
            rows.append(
                {
                    "timestamp": day,
                    "asset": asset,
                    "open": price,
                    "high": price,
                    "low": price,
                    "close": price,
                    "volume": 1e6,
                    "score": score,
                }
            )
    return pl.DataFrame(rows)


def members(*rows: tuple[date | datetime, str, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [r[0] for r in rows],
            "asset": [r[1] for r in rows],
            "member": [r[2] for r in rows],
        }
    )


# A and B join on day 0; B leaves on day 3.
LEAVES = members((DAYS[0], "A", True), (DAYS[0], "B", True), (DAYS[3], "B", False))


class Scripted(Strategy):
    """Submits ``orders[day]`` (a list of (method, args, kwargs)) and records membership."""

    def __init__(self, orders: dict[int, list[tuple[str, tuple[Any, ...], dict[str, Any]]]]):
        self.orders = orders
        self.seen: list[tuple[list[bool], bool]] = []

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        day = (timestamp.date() - DAYS[0]).days
        self.seen.append((batch.members.tolist(), context.is_member("B")))
        for method, args, kwargs in self.orders.get(day, []):
            getattr(context, method)(*args, **kwargs)


def run(universe: Any, strategy: Any, **execution: Any) -> Any:
    feed = PolarsDataFeed(prices(), universe=universe)
    config = BacktestConfig(execution=execution)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined metrics of tiny runs
        result = Backtest(feed, strategy, config=config).run(progress=False)
        _ = result.metrics
    return result


# ------------------------------------------------------------------------------ the frame


def test_a_full_panel_is_reduced_to_its_changes_point_in_time() -> None:
    panel = members(
        *[(d, "A", True) for d in DAYS],
        *[(d, "B", i < 3 or i >= 6) for i, d in enumerate(DAYS)],
    )
    feed = PolarsDataFeed(prices(), universe=panel)
    table = feed.membership
    assert table is not None
    assert table.schema == pl.Schema({"ts": pl.Int64, "asset_id": pl.UInt32, "member": pl.Boolean})
    got = [(feed.to_datetime(t).date(), a, m) for t, a, m in table.iter_rows()]
    assert got == [(DAYS[0], 0, True), (DAYS[0], 1, True), (DAYS[3], 1, False), (DAYS[6], 1, True)]


def test_membership_is_the_latest_row_at_or_before_each_timestamp() -> None:
    # B joins between day 1 and day 2 (noon): from day 2 on; never a later row.
    universe = members(
        (datetime(2024, 1, 1), "A", True),
        (datetime(2024, 1, 2, 12), "B", True),
        (datetime(2024, 1, 6), "B", False),
    )
    strategy = Scripted({})
    run(universe, strategy)
    assert [b for _, b in strategy.seen] == [False, False, True, True, True, False, False, False]
    assert [m for m, _ in strategy.seen][:3] == [[True, False], [True, False], [True, True]]


def test_without_a_universe_everything_is_a_member_and_nothing_is_reported() -> None:
    strategy = Scripted({0: [("order_target_quantity", ("B", 10.0), {})]})
    feed = PolarsDataFeed(prices())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = Backtest(feed, strategy).run(progress=False)
        metrics = result.metrics
    assert all(m == [True, True] and b for m, b in strategy.seen)
    assert result.non_member_pnl is None
    assert "non_member_pnl" not in metrics
    assert feed.membership is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (members((DAYS[0], "A", True)).drop("member"), "universe.member: missing_column"),
        (
            members((DAYS[0], "A", True)).with_columns(pl.col("member").cast(pl.Int8)),
            "universe.member: dtype",
        ),
        (members((DAYS[0], "Z", True)), "universe.asset: unknown_asset"),
        (members((DAYS[0], "A", True), (DAYS[0], "A", False)), "universe: duplicate"),
        (
            members((DAYS[0], "A", True)).with_columns(
                pl.col("timestamp").cast(pl.Datetime("us", "UTC"))
            ),
            "universe.timestamp: timezone",
        ),
        (
            pl.DataFrame(
                {"timestamp": [DAYS[0]], "asset": ["A"], "member": [None]},
                schema={"timestamp": pl.Date, "asset": pl.String, "member": pl.Boolean},
            ),
            "universe.member: null",
        ),
        (
            members((DAYS[0], "A", True)).with_columns(weight=pl.lit(1.0)),
            "universe.weight: unknown_column",
        ),
    ],
)
def test_bad_universe_frames_are_named_errors(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(DataValidationError, match=message.replace(".", r"\.")):
        PolarsDataFeed(prices(), universe=frame)


# ----------------------------------------------------------------------- entries refused


def test_an_entry_into_a_non_member_is_rejected_and_an_exit_passes() -> None:
    strategy = Scripted(
        {
            0: [("submit_order", ("B", 10.0), {})],  # fills day 1 at 52
            3: [("submit_order", ("B", 5.0), {})],  # B left today: refused
            4: [("submit_order", ("B", -4.0), {})],  # a reduction passes (fills day 5 at 60)
            5: [("submit_order", ("B", -10.0), {})],  # a flip: 6 close, 4 refused
        }
    )
    result = run(LEAVES, strategy)
    fills = result.fills.select("timestamp", "side", "quantity", "price").rows()
    assert fills == [
        (datetime(2024, 1, 2), "buy", 10.0, 52.0),
        (datetime(2024, 1, 6), "sell", 4.0, 60.0),
        (datetime(2024, 1, 7), "sell", 6.0, 62.0),
    ]
    rejected = result.rejected_orders.select("timestamp", "quantity", "reason").rows()
    assert rejected == [
        (datetime(2024, 1, 4), 5.0, "non_member"),
        (datetime(2024, 1, 6), -4.0, "non_member"),
    ]
    flip = result.orders.filter(pl.col("order_id") == 4).row(0, named=True)
    assert [e["status"] for e in flip["history"]] == ["resized", "accepted", "filled"]
    # PnL while B is not a member: 10 x 2 (day 3) + 10 x 2 (day 4) + 10 x 2 (day 5: 4 sold at
    # the open 60 = the last close 58 + 2) + 6 x 2 (day 6, sold at its open 62): 72.
    assert result.metrics["non_member_pnl"] == pytest.approx(72.0)
    pnl = result.non_member_pnl
    assert pnl is not None
    assert pnl.get_column("pnl").to_list() == pytest.approx([20.0, 20.0, 20.0, 12.0])
    assert pnl.get_column("asset").cast(pl.String).unique().to_list() == ["B"]


def test_a_resting_order_that_would_open_a_non_member_is_cut_when_it_would_fill() -> None:
    # A buy stop at 56 decided on day 0, while B is a member; day 3's bar (56) reaches it,
    # but B left that day: the order would open a position in a non-member.
    strategy = Scripted({0: [("submit_order", ("B", 10.0), {"stop": 56.0})]})
    result = run(LEAVES, strategy)
    assert result.fills.height == 0
    rejected = result.rejected_orders.select("timestamp", "quantity", "reason").rows()
    assert rejected == [(datetime(2024, 1, 4), 10.0, "non_member")]


def test_allow_lets_entries_into_non_members_fill_and_counts_their_pnl() -> None:
    strategy = Scripted({3: [("submit_order", ("B", 10.0), {})]})  # fills day 4 at 58
    result = run(LEAVES, strategy, on_non_member="allow")
    assert result.fills.select("timestamp", "quantity", "price").rows() == [
        (datetime(2024, 1, 5), 10.0, 58.0)
    ]
    assert result.rejected_orders.height == 0
    # Bought at the open 58 = close 58 (flat bar): days 5, 6, 7 earn 20 each.
    assert result.metrics["non_member_pnl"] == pytest.approx(60.0)


def test_targets_and_rebalances_of_non_members_are_refused_as_entries() -> None:
    strategy = Scripted(
        {
            3: [
                ("order_target_percent", ("B", 0.1), {}),
                ("rebalance", ({"A": 0.2, "B": 0.2},), {}),
            ]
        }
    )
    result = run(LEAVES, strategy)
    assert result.fills.get_column("asset").cast(pl.String).to_list() == ["A"]
    reasons = result.rejected_orders.select("asset", "reason").rows()
    assert [(str(a), r) for a, r in reasons] == [("B", "non_member"), ("B", "non_member")]


# --------------------------------------------------------------------------- built-ins


def test_top_k_selects_members_only() -> None:
    result = run(LEAVES, TopKStrategy("score", k=1))
    fills = result.fills.select("timestamp", "asset", "side").rows()
    b_buys = [t for t, a, s in fills if str(a) == "B" and s == "buy"]
    a_buys = [t for t, a, s in fills if str(a) == "A" and s == "buy"]
    assert b_buys and max(b_buys) <= datetime(2024, 1, 4)  # decided on days 0..2
    assert min(a_buys) == datetime(2024, 1, 5)  # chosen on day 3, when B left
    assert ("B", "sell") in [(str(a), s) for t, a, s in fills if t == datetime(2024, 1, 5)]
    # Never decided while B is out: the only refusal is day 2's drift order, which would have
    # filled on day 3, after B left (the fill-time rule).
    refused = result.rejected_orders.filter(pl.col("reason") == "non_member")
    decided = result.orders.filter(
        pl.col("order_id").is_in(refused.get_column("order_id").implode())
    )
    assert decided.select("timestamp", "side").rows() == [(datetime(2024, 1, 3), "buy")]
    assert refused.get_column("timestamp").to_list() == [datetime(2024, 1, 4)]


def test_signal_strategy_never_enters_a_non_member() -> None:
    frame = prices().with_columns(signal=pl.when(pl.col("asset") == "A").then(1.0).otherwise(0.0))
    # A is a member only from day 4: no entry before (SignalStrategy skips it).
    universe = members((DAYS[4], "A", True))
    feed = PolarsDataFeed(frame, universe=universe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = Backtest(feed, SignalStrategy("signal", quantity=5)).run(progress=False)
    assert result.fills.select("timestamp", "asset").rows() == [(datetime(2024, 1, 6), "A")]
    assert result.rejected_orders.height == 0


def test_the_report_has_the_non_member_pnl_line(tmp_path: Any) -> None:
    strategy = Scripted({0: [("submit_order", ("B", 10.0), {})]})
    result = run(LEAVES, strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = result.report(tmp_path / "report.html", plotlyjs="cdn").read_text()
    assert "PnL while not a universe member" in page


# ----------------------------------------------------------------------------- property


class RandomTrader(Strategy):
    """Every day, a random signed market order or limit for a random asset."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        for asset in batch.assets:
            if self.rng.random() < 0.6:
                quantity = float(self.rng.integers(-5, 6))
                if quantity == 0.0:
                    continue
                if self.rng.random() < 0.3:
                    price = context.price(asset) * (1.0 + 0.02 * self.rng.standard_normal())
                    context.submit_order(asset, quantity, limit=float(price))
                else:
                    context.submit_order(asset, quantity)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_no_entry_into_a_non_member_ever_fills(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_days, names = 30, ["A", "B", "C"]
    rows, changes = [], []
    for asset in names:
        price = 100.0
        for i in range(n_days):
            price *= 1.0 + 0.02 * rng.standard_normal()
            high, low = price * 1.01, price * 0.99
            day = datetime(2024, 1, 1) + timedelta(days=i)
            rows.append((day, asset, price, high, low, price, 1e6))
            if rng.random() < 0.15:
                changes.append((day, asset, bool(rng.random() < 0.5)))
    frame = pl.DataFrame(
        rows, schema=["timestamp", "asset", "open", "high", "low", "close", "volume"], orient="row"
    )
    universe = pl.DataFrame(
        changes or [(datetime(2024, 1, 1), "A", True)],
        schema=["timestamp", "asset", "member"],
        orient="row",
    )
    feed = PolarsDataFeed(frame, universe=universe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Backtest(feed, RandomTrader(seed)).run(progress=False)
    table = feed.membership
    assert table is not None
    # Membership at each fill: the asset's latest change at or before the fill.
    fills = result.fills.with_columns(
        ts=pl.col("timestamp").dt.epoch("ns"),
        asset_id=pl.col("asset").to_physical().cast(pl.UInt32),
        signed=pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0) * pl.col("quantity"),
    ).with_row_index("row")
    joined = fills.sort("ts").join_asof(
        table.sort("ts"), on="ts", by="asset_id", strategy="backward", check_sortedness=False
    )
    held: dict[int, float] = {}
    for row in joined.sort("row").iter_rows(named=True):
        before = held.get(row["asset_id"], 0.0)
        after = before + row["signed"]
        if not row["member"]:
            # Never further from zero, never across it.
            assert abs(after) <= abs(before) + 1e-9 and before * after >= -1e-9, row
        held[row["asset_id"]] = after


# ------------------------------------------------------------------------ the oracle engine


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
@pytest.mark.parametrize("logic_name", ["targets", "order_types"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_engine_matches_the_oracle_with_a_universe(seed: int, mode: str, logic_name: str) -> None:
    """Random bars and random membership changes: the engine's fills, trades, equity and
    refusals (``non_member`` at decision and at fill) equal the oracle's."""
    rows = oracle.random_bar_rows(seed)
    assets = sorted({r["asset"] for r in rows})
    stamps = sorted({r["timestamp"] for r in rows})
    rng = random.Random(seed)
    changes = sorted(
        {(rng.choice(stamps), a, rng.random() < 0.6) for a in assets for _ in range(3)},
        key=lambda c: (c[0], c[1]),
    )
    seen: set[tuple[Any, str]] = set()
    changes = [c for c in changes if (c[0], c[1]) not in seen and not seen.add((c[0], c[1]))]
    universe = pl.DataFrame(
        changes,
        schema={"timestamp": pl.Datetime("us"), "asset": pl.String, "member": pl.Boolean},
        orient="row",
    )
    config = make_config(mode=mode, commission={"model": "percent", "rate": 0.001})
    feed = PolarsDataFeed(bars_frame(rows), universe=universe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Backtest(
            feed,
            _adapter(LOGICS[logic_name](assets, False), "batch", oracle.SIGNAL_COLUMNS),
            config=BacktestConfig(**config),
        ).run(progress=False)
    expected = oracle.run_oracle(
        rows, config, LOGICS[logic_name](assets, False).decide, universe=changes
    )
    compare(result, expected, f"seed={seed} {logic_name} {mode}")
