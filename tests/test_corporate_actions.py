"""Corporate actions end to end: the actions frame's validation, hand-computed splits and
dividends through the Python API (in memory and streaming), a hypothesis property
(dividends in the equity curve = positions at the previous close x dividend) and differential
tests against the oracle (tests/oracle.py) on random data with random splits and dividends."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle
from conftest import _adapter
from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.data import validate
from ml4t.backtest.errors import DataValidationError
from test_oracle_differential import bars_frame, compare, make_config

DAYS = [date(2024, 1, d) for d in (2, 3, 4, 5)]


def _bars(opens: list[float], closes: list[float], lows: list[float] | None = None) -> pl.DataFrame:
    lows = lows or [min(o, c) for o, c in zip(opens, closes, strict=True)]
    return pl.DataFrame(
        {
            "timestamp": DAYS[: len(opens)],
            "asset": ["A"] * len(opens),
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": lows,
            "close": closes,
            "volume": [1e6] * len(opens),
        }
    )


class Once(Strategy):
    """Submits ``orders`` (``(asset, quantity, kwargs)``) at the first timestamp."""

    def __init__(self, orders: list[tuple[str, float, dict[str, Any]]]) -> None:
        self.orders = orders
        self.done = False

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if not self.done:
            for asset, quantity, kwargs in self.orders:
                context.submit_order(asset, quantity, **kwargs)
            self.done = True


# ------------------------------------------------------------------------------ validation


def _bad(actions: Any, match: str) -> None:
    with pytest.raises(DataValidationError, match=match):
        PolarsDataFeed(_bars([10.0, 10.0], [10.0, 10.0]), actions=actions)


def test_the_actions_frame_is_checked_row_by_row() -> None:
    day = [date(2024, 1, 3)]
    _bad(
        pl.DataFrame({"date": day, "asset": ["Z"], "dividend": [1.0]}),
        r"actions.asset: unknown_asset: .*\(2024-01-03 00:00:00, Z\)",
    )
    _bad(
        pl.DataFrame({"date": day, "asset": ["A"], "split_ratio": [0.0]}),
        r"actions.split_ratio: positive_ratio",
    )
    _bad(pl.DataFrame({"date": day, "asset": ["A"], "split_ratio": [math.inf]}), "positive_ratio")
    _bad(
        pl.DataFrame({"date": day, "asset": ["A"], "dividend": [math.nan]}),
        r"actions.dividend: not_finite",
    )
    _bad(
        pl.DataFrame({"date": day * 2, "asset": ["A", "A"], "dividend": [1.0, 2.0]}),
        r"actions: duplicate: .*2 rows",
    )
    _bad(
        pl.DataFrame({"date": day, "asset": ["A"], "dividends": [1.0]}),
        r"actions.dividends: unknown_column",
    )
    _bad(pl.DataFrame({"date": day, "asset": ["A"]}), r"actions: missing_column")
    _bad(
        pl.DataFrame(
            {"date": [None], "asset": ["A"], "dividend": [1.0]}, schema_overrides={"date": pl.Date}
        ),
        r"actions.timestamp: null",
    )
    _bad(
        pl.DataFrame({"date": ["2024-01-03"], "asset": ["A"], "dividend": [1.0]}),
        r"actions.timestamp: dtype",
    )
    aware = pl.DataFrame({"timestamp": [datetime(2024, 1, 3)], "asset": ["A"], "dividend": [1.0]})
    _bad(
        aware.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")),
        r"actions.timestamp: timezone",
    )
    _bad(
        pl.DataFrame({"date": [date(9999, 12, 31)], "asset": ["A"], "dividend": [1.0]}),
        "timestamp_range",
    )
    report = validate(
        _bars([10.0, 10.0], [10.0, 10.0]),
        actions=pl.DataFrame({"date": day * 2, "asset": ["Z", "A"], "split_ratio": [2.0, -1.0]}),
    )
    assert {f.rule for f in report.errors} == {"unknown_asset", "positive_ratio"}


def test_the_engine_table_is_small_sorted_and_never_a_feature(tmp_path: Any) -> None:
    bars = pl.concat(
        [_bars([10.0] * 3, [10.0] * 3), _bars([5.0] * 3, [5.0] * 3).with_columns(asset=pl.lit("B"))]
    )
    actions = pl.DataFrame(
        {
            "date": [date(2024, 1, 4), date(2024, 1, 3), date(2024, 1, 3), date(2024, 1, 4)],
            "ticker": ["A", "B", "A", "B"],
            "split_ratio": [2.0, None, 1.0, 1.0],
            "dividend": [None, 0.25, 0.0, 0.0],
        }
    )
    path = tmp_path / "actions.parquet"
    actions.write_parquet(path)
    feed = PolarsDataFeed(bars, actions=str(path))
    assert feed.signal_columns == []
    table = feed.actions
    assert table is not None
    assert table.schema == {
        "ts": pl.Int64,
        "asset_id": pl.UInt32,
        "split_ratio": pl.Float64,
        "dividend": pl.Float64,
    }
    # the no-op rows are gone; (ts, asset) sorted
    assert table.select("asset_id", "split_ratio", "dividend").rows() == [
        (1, 1.0, 0.25),
        (0, 2.0, 0.0),
    ]
    assert table["ts"][1] == feed.universe.wall_clock_ns(datetime(2024, 1, 4))
    pytest.importorskip("pandas")
    again = PolarsDataFeed(bars, actions=actions.to_pandas())
    assert again.actions is not None and again.actions.equals(table)


def test_a_date_ex_date_is_midnight_in_the_data_time_zone() -> None:
    bars = _bars([10.0] * 3, [10.0] * 3).with_columns(
        pl.col("timestamp")
        .cast(pl.Datetime("us"))
        .dt.offset_by("16h")
        .dt.replace_time_zone("America/New_York")
    )
    feed = PolarsDataFeed(
        bars, actions=pl.DataFrame({"date": [date(2024, 1, 3)], "asset": ["A"], "dividend": [1.0]})
    )
    assert feed.actions is not None
    local = feed.to_datetime(int(feed.actions["ts"][0]))
    assert (local.replace(tzinfo=None), str(local.tzinfo)) == (
        datetime(2024, 1, 3),
        "America/New_York",
    )


# ------------------------------------------------------------------------------ scenarios


def test_a_split_with_resting_orders_through_the_api_in_memory_and_streaming() -> None:
    # 10 shares at 100, a buy limit for 5 at 90 and a sell stop at 95; 2:1 split on Jan 4:
    # 20 shares at 50, the limit 10 at 45, the stop 20 at 47.5, reached on Jan 5 (low 44).
    bars = _bars([100.0, 100.0, 50.0, 48.0], [100.0, 100.0, 50.0, 46.0], [100.0, 100.0, 50.0, 44.0])
    actions = pl.DataFrame({"date": [date(2024, 1, 4)], "asset": ["A"], "split_ratio": [2.0]})
    orders = [("A", 10.0, {}), ("A", 5.0, {"limit": 90.0}), ("A", -10.0, {"stop": 95.0})]
    results = [
        Backtest(PolarsDataFeed(bars, actions=actions, **kw), Once(orders)).run()
        for kw in ({}, {"chunk_rows": 1})
    ]
    for result in results:
        assert result.fills.select("quantity", "price").rows() == [
            (10.0, 100.0),
            (20.0, 47.5),
            (10.0, 45.0),
        ]
        assert result.equity["equity"].to_list() == [100_000.0, 100_000.0, 100_000.0, 99_960.0]
        assert result.positions(None).select("quantity", "market_value").rows() == [
            (10.0, 1_000.0),
            (20.0, 1_000.0),
            (10.0, 460.0),
        ]
        modified = result.order_events.filter(pl.col("status") == "modified")
        assert modified.select("limit", "stop").rows() == [(45.0, None), (None, 47.5)]
    assert results[0].fills.equals(results[1].fills)


def test_cash_in_lieu_in_integer_shares() -> None:
    bars = _bars([100.0, 100.0, 66.0], [100.0, 100.0, 67.0])
    actions = pl.DataFrame({"date": [date(2024, 1, 4)], "asset": ["A"], "split_ratio": [1.5]})
    config = BacktestConfig(
        execution={"share_rounding": "integer"}, commission={"model": "per_order", "amount": 1.0}
    )
    result = Backtest(
        PolarsDataFeed(bars, actions=actions), Once([("A", 3.0, {})]), config=config
    ).run()
    lieu = result.fills.filter(pl.col("order_type") == "cash_in_lieu")
    assert lieu.select("side", "quantity", "price", "commission").rows() == [
        ("sell", 0.5, 66.0, 0.0)
    ]
    assert result.equity["equity"].to_list() == [100_000.0, 99_999.0, 100_000.0]
    assert result.positions(None)["quantity"].to_list() == [3.0, 4.0]
    assert result.orders.filter(pl.col("origin") == "corporate_action").height == 1
    trade = result.trades.row(0, named=True)
    assert math.isclose(trade["gross_pnl"], 1.0) and trade["quantity"] == 4.5


def test_dividends_long_and_short_in_the_equity_curve_metrics_and_trades() -> None:
    bars = pl.concat(
        [
            _bars([50.0] * 4, [50.0] * 4),
            _bars([20.0] * 4, [20.0] * 4).with_columns(asset=pl.lit("B")),
        ]
    )
    actions = pl.DataFrame(
        {"date": [date(2024, 1, 4)] * 2, "asset": ["A", "B"], "dividend": [0.5, 0.1]}
    )
    orders = [("A", 10.0, {}), ("B", -20.0, {})]
    result = Backtest(PolarsDataFeed(bars, actions=actions), Once(orders)).run()
    assert result.equity["dividend"].to_list() == [0.0, 0.0, 10 * 0.5 - 20 * 0.1, 0.0]
    assert result.metrics["total_dividends"] == 3.0
    # Received by the long and paid by the short, apart (issue 16, item 6).
    assert result.equity["dividend_paid"].to_list() == [0.0, 0.0, 20 * 0.1, 0.0]
    assert result.metrics["dividends_received"] == 5.0
    assert result.metrics["dividends_paid"] == 2.0
    assert result.equity["equity"][-1] == 100_003.0
    pnl = dict(result.trades.select("asset", "gross_pnl").iter_rows())
    assert pnl == {"A": 5.0, "B": -2.0}


# ------------------------------------------------------------------------------ properties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_dividends_in_the_equity_curve_are_positions_at_the_previous_close_times_dividend(
    seed: int,
) -> None:
    rows = oracle.random_bar_rows(seed, n_assets=3)
    actions = random_actions(seed, rows, splits=True)
    feed = PolarsDataFeed(bars_frame(rows), actions=pl.DataFrame(actions))
    logic = oracle.ActionLogic(sorted({r["asset"] for r in rows}), integer=False)
    result = Backtest(feed, _adapter(logic, "batch", oracle.SIGNAL_COLUMNS)).run()
    held = result.positions(None)
    stamps = result.equity["timestamp"].to_list()
    expected = 0.0
    for a in actions:
        if not a.get("dividend"):
            continue
        ex = next((t for t in stamps if t >= a["timestamp"]), None)
        if ex is None:
            continue
        before = stamps[stamps.index(ex) - 1] if stamps.index(ex) else None
        q = held.filter((pl.col("timestamp") == before) & (pl.col("asset") == a["asset"]))
        # A split of the asset dated after that close and before the dividend (both between
        # the two bars, so both apply at the ex-date bar) came first: the dividend is paid on
        # the post-split shares.
        ratio = math.prod(
            s["split_ratio"]
            for s in actions
            if s["asset"] == a["asset"]
            and s["split_ratio"]
            and (before is None or s["timestamp"] > before)
            and s["timestamp"] < a["timestamp"]
        )
        expected += (float(q["quantity"][0]) if q.height else 0.0) * ratio * a["dividend"]
    assert math.isclose(result.equity["dividend"].sum(), expected, rel_tol=1e-9, abs_tol=1e-7)
    # equity = cash + positions at every timestamp, and the positions rebuilt from the fills
    # and splits are the engine's
    eq = result.equity
    assert ((eq["equity"] - eq["cash"] - eq["positions_value"]).abs() < 1e-6).all()
    by_ts = held.group_by("timestamp").agg(pl.col("market_value").sum())
    joined = eq.join(by_ts, on="timestamp", how="left").with_columns(
        pl.col("market_value").fill_null(0.0)
    )
    assert (
        (joined["market_value"] - joined["positions_value"]).abs()
        <= 1e-6 * (1 + joined["positions_value"].abs())
    ).all()


# ------------------------------------------------------------------------------ differential


def random_actions(seed: int, rows: list[dict[str, Any]], splits: bool) -> list[dict[str, Any]]:
    """A few splits (2:1, 3:2, 1:2, 3:1) and dividends at random dates of the data, some
    between bars; the bars after a split are divided by its ratio (raw prices)."""
    rng = random.Random(seed ^ 0x5EED)
    assets = sorted({r["asset"] for r in rows})
    stamps = sorted({r["timestamp"] for r in rows})
    out: dict[tuple[Any, str], dict[str, Any]] = {}
    for _ in range(rng.randrange(1, 6)):
        when = rng.choice(stamps[1:])
        if rng.random() < 0.3:
            when = when - timedelta(hours=5)  # dated between bars: applies at the next one
        asset = rng.choice(assets)
        action = out.setdefault((when, asset), {"timestamp": when, "asset": asset})
        if splits and rng.random() < 0.5:
            action["split_ratio"] = rng.choice([2.0, 1.5, 0.5, 3.0])
        else:
            action["dividend"] = round(rng.uniform(-0.2, 1.0), 2)
    actions = list(out.values())
    for action in actions:
        ratio = action.get("split_ratio", 1.0)
        for r in rows:
            if r["asset"] == action["asset"] and r["timestamp"] >= action["timestamp"]:
                for c in ("open", "high", "low", "close"):
                    r[c] /= ratio
    for action in actions:
        action.setdefault("split_ratio", None)
        action.setdefault("dividend", None)
    return actions


LOGICS = {
    "targets": lambda assets, integer: oracle.ActionLogic(assets, integer=integer),
    "order_types": lambda assets, integer: oracle.OrderTypeLogic(("gtc", "day"), integer=integer),
}


@pytest.mark.parametrize("rounding", ["fractional", "integer"])
@pytest.mark.parametrize("mode", ["next_open", "same_close"])
@pytest.mark.parametrize("logic_name", sorted(LOGICS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_engine_matches_the_oracle_with_splits_and_dividends(
    seed: int, rounding: str, mode: str, logic_name: str
) -> None:
    rows = oracle.random_bar_rows(seed, n_assets=3)
    actions = random_actions(seed, rows, splits=True)
    assets = sorted({r["asset"] for r in rows})
    integer = rounding == "integer"
    config = make_config(
        mode=mode, rounding=rounding, commission={"model": "percent", "rate": 0.001}
    )
    feed = PolarsDataFeed(bars_frame(rows), actions=pl.DataFrame(actions))
    logic = LOGICS[logic_name](assets, integer)
    result = Backtest(
        feed, _adapter(logic, "batch", oracle.SIGNAL_COLUMNS), config=BacktestConfig(**config)
    ).run()
    expected = oracle.run_oracle(rows, config, LOGICS[logic_name](assets, integer).decide, actions)
    compare(result, expected, f"seed={seed} {logic_name} {mode} {rounding} actions={actions}")
    paid = (
        result.equity.filter(pl.col("dividend") != 0.0).select("timestamp", "dividend").to_dicts()
    )
    assert len(paid) == len([d for d in expected.dividends if d["dividend"] != 0.0])
    for e, o in zip(paid, [d for d in expected.dividends if d["dividend"] != 0.0], strict=True):
        assert e["timestamp"] == o["timestamp"]
        assert math.isclose(e["dividend"], o["dividend"], rel_tol=1e-9, abs_tol=1e-9)
