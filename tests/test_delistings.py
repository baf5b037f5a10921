"""Delistings (issue 16, item 2): an asset whose data ends before the run's is closed at its last
bar's close (zipline's ``auto_close_date``), its orders are cancelled and later ones refused;
``hold`` keeps today's behaviour and ``error`` raises."""

from __future__ import annotations

import random
import warnings
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oracle
from conftest import _adapter
from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import DataValidationError, DelistingWarning
from test_flows import LOGICS
from test_oracle_differential import bars_frame, compare, make_config

START = datetime(2024, 1, 1)


def panel(n_a: int = 12, n_b: int = 5) -> pl.DataFrame:
    """A trades for ``n_a`` days at 100; B for its first ``n_b`` days, at 50 + day."""
    rows = []
    for asset, n, price in (("A", n_a, lambda i: 100.0), ("B", n_b, lambda i: 50.0 + i)):
        for i in range(n):
            p = price(i)
            rows.append(
                {
                    "timestamp": START + timedelta(days=i),
                    "asset": asset,
                    "open": p,
                    "high": p + 0.5,
                    "low": p - 0.5,
                    "close": p,
                    "volume": 1e6,
                }
            )
    return pl.DataFrame(rows)


class ShortB(Strategy):
    """Shorts 100 B on day 0 with a resting buy limit far below; on day 7 tries to buy B back;
    records what ``is_active`` says every day."""

    def __init__(self) -> None:
        self.active: list[bool] = []

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        day = (timestamp - START).days
        self.active.append(context.is_active("B"))
        if day == 0:
            context.submit_order("B", -100.0)
            context.submit_order("B", 10.0, limit=1.0)
        if day == 7:
            context.submit_order("B", 100.0)


def run(strategy: Strategy, **execution: Any) -> tuple[Any, list[Any]]:
    config = BacktestConfig(execution=execution, commission={"model": "per_share", "rate": 0.01})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Backtest(PolarsDataFeed(panel()), strategy, config=config).run()
    return result, caught


def test_a_delisted_short_is_closed_at_its_last_close_and_its_orders_cancelled() -> None:
    strategy = ShortB()
    result, caught = run(strategy)
    fills = result.fills.filter(pl.col("asset") == "B")
    close = fills.row(-1, named=True)
    assert (close["timestamp"], close["order_type"], close["side"]) == (
        START + timedelta(days=4),
        "delisting",
        "buy",
    )
    assert (close["quantity"], close["price"], close["slippage"]) == (100.0, 54.0, 0.0)
    assert close["commission"] == pytest.approx(1.0)  # as configured: 100 x $0.01
    trade = result.trades.filter(pl.col("asset") == "B").row(0, named=True)
    assert (trade["exit_reason"], trade["status"]) == ("delisted", "closed")
    assert trade["gross_pnl"] == pytest.approx(100 * (51.0 - 54.0))  # sold at day 1's open
    refused = result.rejected_orders.filter(pl.col("reason") == "delisted")
    assert refused["timestamp"].to_list() == [START + timedelta(days=4), START + timedelta(days=7)]
    assert refused["quantity"].to_list()[0] == 10.0  # the resting limit
    assert strategy.active == [True] * 4 + [False] * 8
    assert len([w for w in caught if issubclass(w.category, DelistingWarning)]) == 1
    last = result.equity.row(-1, named=True)
    assert last["short_value"] == 0.0 and last["long_value"] == 0.0


def test_hold_keeps_the_position_marked_at_its_last_close() -> None:
    result, caught = run(ShortB(), on_delisting="hold")
    assert result.equity.row(-1, named=True)["short_value"] == pytest.approx(-100 * 54.0)
    assert not [w for w in caught if issubclass(w.category, DelistingWarning)]
    assert result.trades.filter(pl.col("asset") == "B").row(0, named=True)["status"] == "open"


def test_error_names_the_assets_and_their_last_bars() -> None:
    with pytest.raises(
        DataValidationError, match=r"^asset: delisted: 1 asset\(s\).*B \(last bar 2024-01-05"
    ):
        run(ShortB(), on_delisting="error")


def test_a_missing_last_bar_is_not_a_delisting() -> None:
    """B lacks only the last 4 timestamps: within the default gap of 5."""
    feed = PolarsDataFeed(panel(n_a=9, n_b=5))
    assert feed.delistings(5) == [None, None]
    assert feed.delistings(4) == [
        None,
        int(pl.Series([START + timedelta(days=4)]).dt.epoch("ns")[0]),
    ]


def test_streaming_feeds_find_the_same_delistings(tmp_path: Any) -> None:
    path = tmp_path / "bars.parquet"
    panel().write_parquet(path)
    streaming = PolarsDataFeed(str(path), chunk_rows=4)
    assert streaming.delistings(5) == PolarsDataFeed(panel()).delistings(5)
    assert streaming.delistings(5)[1] is not None


@settings(max_examples=40, deadline=None)
@given(
    ends=st.lists(st.integers(min_value=1, max_value=12), min_size=2, max_size=5),
    gap=st.integers(min_value=1, max_value=6),
)
def test_delistings_agree_with_their_definition(ends: list[int], gap: int) -> None:
    """Brute force: an asset is delisted when none of its bars is among the data's last ``gap``
    distinct timestamps; its entry is then its last bar."""
    rows = []
    for k, n in enumerate(ends):
        for i in range(n):
            rows.append(
                {
                    "timestamp": START + timedelta(days=i),
                    "asset": f"S{k}",
                    "open": 10.0,
                    "high": 10.0,
                    "low": 10.0,
                    "close": 10.0,
                    "volume": 1.0,
                }
            )
    frame = pl.DataFrame(rows)
    stamps = sorted(set(frame["timestamp"]))
    recent = set(stamps[-gap:]) if len(stamps) >= gap else None
    expected: list[int | None] = []
    for k in range(len(ends)):
        mine = frame.filter(pl.col("asset") == f"S{k}")["timestamp"]
        delisted = recent is not None and not (set(mine) & recent)
        expected.append(int(pl.Series([mine.max()]).dt.epoch("ns")[0]) if delisted else None)
    assert PolarsDataFeed(frame).delistings(gap) == expected


# ------------------------------------------------------------------------- delisting returns


def test_a_delisting_return_is_applied_to_the_last_close() -> None:
    """CRSP's DLRET of -30 % on B (last close 54): the short is bought back at 54 x 0.7 =
    37.8, so the short earns 100 x (51 - 37.8); the return's row may be dated after the last
    bar (the delisting date)."""
    actions = pl.DataFrame(
        {"timestamp": [START + timedelta(days=6)], "asset": ["B"], "delisting_return": [-0.3]}
    )
    feed = PolarsDataFeed(panel(), actions=actions)
    assert feed.delisting_returns == [None, -0.3]
    assert feed.actions is not None and feed.actions.height == 0
    config = BacktestConfig(commission={"model": "per_share", "rate": 0.01})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DelistingWarning)
        result = Backtest(feed, ShortB(), config=config).run(progress=False)
    close = result.fills.filter(pl.col("order_type") == "delisting").row(0, named=True)
    assert close["price"] == pytest.approx(54.0 * 0.7)
    assert (close["reference_price"], close["slippage"]) == (close["price"], 0.0)
    trade = result.trades.filter(pl.col("asset") == "B").row(0, named=True)
    assert trade["gross_pnl"] == pytest.approx(100 * (51.0 - 54.0 * 0.7))


@pytest.mark.parametrize(
    ("value", "rule"),
    [(-1.5, "delisting_return"), (float("inf"), "delisting_return"), (None, None)],
)
def test_delisting_returns_are_checked(value: float | None, rule: str | None) -> None:
    actions = pl.DataFrame(
        {"timestamp": [START], "asset": ["B"], "delisting_return": [value]},
        schema_overrides={"delisting_return": pl.Float64},
    )
    if rule is None:
        assert PolarsDataFeed(panel(), actions=actions).delisting_returns == [None, None]
        return
    with pytest.raises(DataValidationError, match=rf"actions.delisting_return: {rule}"):
        PolarsDataFeed(panel(), actions=actions)
    twice = pl.DataFrame(
        {
            "timestamp": [START, START + timedelta(days=1)],
            "asset": ["B", "B"],
            "delisting_return": [0.1, 0.2],
        }
    )
    with pytest.raises(DataValidationError, match=r"actions.delisting_return: duplicate"):
        PolarsDataFeed(panel(), actions=twice)


# ------------------------------------------------------------------------------ differential


def _ragged(seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Random bars where one or two assets stop early (delisted), and delisting returns for
    some of them."""
    rows = oracle.random_bar_rows(seed, n_assets=3, missing=0.05)
    rng = random.Random(seed ^ 0xDE1)
    stamps = sorted({r["timestamp"] for r in rows})
    assets = sorted({r["asset"] for r in rows})
    returns: dict[str, float] = {}
    for asset in rng.sample(assets, rng.choice([1, 2])):
        own = [
            t
            for t in stamps[3:-8]
            if any(r["asset"] == asset and r["timestamp"] == t for r in rows)
        ]
        cut = rng.choice(own)
        rows = [r for r in rows if not (r["asset"] == asset and r["timestamp"] > cut)]
        if rng.random() < 0.6:
            returns[asset] = rng.choice([-1.0, -0.35, 0.0, 0.2])
    return rows, returns


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
@pytest.mark.parametrize("logic_name", ["targets", "order_types"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_engine_matches_the_oracle_with_delistings(seed: int, mode: str, logic_name: str) -> None:
    rows, returns = _ragged(seed)
    assets = sorted({r["asset"] for r in rows})
    config = make_config(mode=mode, commission={"model": "percent", "rate": 0.001})
    actions = pl.DataFrame(
        {
            "timestamp": [START] * len(returns),
            "asset": list(returns),
            "delisting_return": list(returns.values()),
        },
        schema={"timestamp": pl.Datetime("us"), "asset": pl.String, "delisting_return": pl.Float64},
    )
    feed = PolarsDataFeed(bars_frame(rows), actions=actions if returns else None)
    logic = LOGICS[logic_name](assets, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Backtest(
            feed,
            _adapter(logic, "batch", oracle.SIGNAL_COLUMNS),
            config=BacktestConfig(**config),
        ).run(progress=False)
    expected = oracle.run_oracle(
        rows, config, LOGICS[logic_name](assets, False).decide, delisting_returns=returns
    )
    compare(result, expected, f"seed={seed} {logic_name} {mode} returns={returns}")
