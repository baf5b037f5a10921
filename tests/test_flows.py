"""Capital flows end to end: the flows frame's validation, a hand-computed deposit and
withdrawal with the time-weighted return and the IRR, a withdrawal beyond the cash in both
modes (error, liquidation at the open), streaming, and a differential test against the oracle
(tests/oracle.py) on random data with random flows."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

import oracle
from conftest import _adapter
from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import DataValidationError
from ml4t.backtest.results.metrics import irr, period_returns
from test_oracle_differential import bars_frame, compare, make_config

DAYS = [date(2024, 1, d) for d in (2, 3, 4, 5)]


def _bars(opens: list[float], closes: list[float], asset: str = "A") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": DAYS[: len(opens)],
            "asset": [asset] * len(opens),
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [1e6] * len(opens),
        }
    )


class Buy(Strategy):
    """Buys ``quantity`` of each asset at the first timestamp, then holds."""

    def __init__(self, quantity: float) -> None:
        self.quantity = quantity
        self.done = False

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if not self.done:
            for asset in batch.assets:
                context.submit_order(asset, self.quantity)
            self.done = True


class Idle(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        pass


def _flows(days: list[date], amounts: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"timestamp": days, "amount": amounts})


# ------------------------------------------------------------------------------ validation


def _bad(flows: Any, match: str) -> None:
    feed = PolarsDataFeed(_bars([10.0] * 3, [10.0] * 3))
    with pytest.raises(DataValidationError, match=match):
        Backtest(feed, Idle(), flows=flows)


def test_the_flows_frame_is_checked_row_by_row() -> None:
    _bad(_flows([DAYS[1]], [math.nan]), r"flows.amount: not_finite")
    _bad(_flows([DAYS[1], DAYS[2]], [None, 1.0]), r"flows.amount: null")  # type: ignore[list-item]
    _bad(_flows([date(2023, 12, 29)], [5.0]), r"flows.timestamp: outside_run")
    _bad(_flows([date(2024, 1, 5)], [5.0]), r"flows.timestamp: outside_run")
    _bad(pl.DataFrame({"timestamp": [DAYS[1]], "cash": [1.0]}), r"flows.amount: missing_column")
    _bad(
        pl.DataFrame({"timestamp": [DAYS[1]], "amount": [1.0], "x": [1]}),
        r"flows.x: unknown_column",
    )
    _bad(pl.DataFrame({"timestamp": [DAYS[1]], "amount": ["1"]}), r"flows.amount: dtype")
    aware = pl.DataFrame({"timestamp": [datetime(2024, 1, 3)], "amount": [1.0]}).with_columns(
        pl.col("timestamp").dt.replace_time_zone("UTC")
    )
    _bad(aware, r"flows.timestamp: timezone")


def test_a_streaming_feed_checks_the_range_in_the_engine() -> None:
    feed = PolarsDataFeed(_bars([10.0] * 3, [10.0] * 3), chunk_rows=1)
    with pytest.raises(DataValidationError, match=r"flows.ts.*outside_run.*after the last"):
        Backtest(feed, Idle(), flows=_flows([date(2024, 1, 9)], [5.0])).run(progress=False)


# --------------------------------------------------------------------- hand-computed TWR


def test_a_deposit_and_a_withdrawal_are_not_performance() -> None:
    """Cash 1,000; 10 shares bought at the first close (100, same-close mode). Day 2 (close
    110): a deposit of 500 at the start; day 3 (close 121): a withdrawal of 200. Equity
    1,000 -> 500 + 1,100 = 1,600 -> 300 + 1,210 = 1,510. Time-weighted returns: 0,
    1,600 / (1,000 + 500) - 1 = 1/15, 1,510 / (1,600 - 200) - 1 = 11/140; the index
    1,000 x 16/15 x 151/140 = 1,150.476...; the equity's own change, 51 %, is mostly money."""
    feed = PolarsDataFeed(_bars([100.0, 110.0, 121.0], [100.0, 110.0, 121.0]))
    config = BacktestConfig(initial_cash=1000.0, execution={"mode": "same_close"})
    flows = _flows([DAYS[1], DAYS[2]], [500.0, -200.0])
    result = Backtest(feed, Buy(10), config=config, flows=flows).run(progress=False)
    equity = result.equity
    assert equity["flows"].to_list() == [0.0, 500.0, -200.0]
    assert equity["cash"].to_list() == [0.0, 500.0, 300.0]
    assert equity["equity"].to_list() == [1000.0, 1600.0, 1510.0]
    expected = [0.0, 1600.0 / 1500.0 - 1.0, 1510.0 / 1400.0 - 1.0]
    assert np.allclose(result.returns["return"].to_numpy(), expected, rtol=0, atol=1e-15)
    m = result.metrics
    assert math.isclose(m["total_return"], 16 / 15 * 151 / 140 - 1, rel_tol=1e-12)
    assert m["total_flows"] == 300.0
    assert m["max_drawdown"] == 0.0  # the index only rose
    assert (equity["drawdown"] == 0.0).all()
    # IRR: -1,000 at day 1, -500 at day 2, +200 and +1,510 at day 3 discount to zero.
    years = np.array([0.0, 1.0, 2.0]) * 86_400 / (365.25 * 86_400)
    amounts = np.array([-1000.0, -500.0, 200.0 + 1510.0])

    def npv(log_growth: float) -> float:
        return float(np.sum(amounts * np.exp(-years * log_growth)))

    root = brentq(npv, 0.0, 1000.0, xtol=1e-13)
    assert math.isclose(math.log1p(m["irr"]), root, rel_tol=1e-9)
    assert math.isclose(npv(math.log1p(m["irr"])), 0.0, abs_tol=1e-6)


def test_drawdown_reads_the_time_weighted_index() -> None:
    """A deposit into a falling position: equity rises (1,000 -> 950 + 1,000 = 1,950) while
    the capital at work (2,000 at the start of day 2) lost 50: r = -2.5 %, then
    1,900 / 1,950 - 1; the index 1,000 -> 975 -> 950. The drawdown is the index's (-5 %), not
    equity's (which never fell below its start)."""
    feed = PolarsDataFeed(_bars([100.0, 95.0, 90.0], [100.0, 95.0, 90.0]))
    config = BacktestConfig(initial_cash=1000.0, execution={"mode": "same_close"})
    result = Backtest(feed, Buy(10), config=config, flows=_flows([DAYS[1]], [1000.0])).run(
        progress=False
    )
    assert result.equity["equity"].to_list() == [1000.0, 1950.0, 1900.0]
    index = [1000.0, 975.0, 975.0 * 1900.0 / 1950.0]
    assert np.allclose(result.equity["drawdown"].to_numpy(), [i / 1000.0 - 1 for i in index])
    assert math.isclose(result.metrics["max_drawdown"], index[-1] / 1000.0 - 1, rel_tol=1e-12)


def test_without_flows_the_irr_is_the_cagr() -> None:
    feed = PolarsDataFeed(_bars([100.0, 110.0, 121.0], [100.0, 110.0, 121.0]))
    result = Backtest(feed, Buy(10), config=BacktestConfig(initial_cash=1000.0)).run(progress=False)
    assert math.isclose(result.metrics["irr"], result.metrics["cagr"], rel_tol=1e-9)
    assert result.metrics["total_flows"] == 0.0
    assert (result.equity["flows"] == 0.0).all()


def test_period_returns_and_irr_by_hand() -> None:
    assert period_returns([0.0], 100.0, flows=[-100.0]).tolist() == [0.0]
    frame = pl.DataFrame(
        {
            "timestamp": [date(2024, 1, 1), date(2025, 1, 1)],
            "equity": [100.0, 242.0],
            "flows": [0.0, 100.0],
        }
    )
    # -100 at t0, -100 and +242 at t1 (366 days): 142 = 100 (1 + g) ** (366 / 365.25)
    assert math.isclose(irr(frame, 100.0), 1.42 ** (365.25 / 366) - 1, rel_tol=1e-12)


# ------------------------------------------------------------------- withdrawal beyond cash


def test_a_withdrawal_beyond_the_cash_is_an_error_or_sells_at_the_open() -> None:
    """Cash 1,001, all in 10 shares at 100 with a commission of 1 (same close). Day 2 opens
    at 104: withdrawing 300 with no cash is an error; with on_withdrawal='liquidate' the 10
    shares are sold at that open (1,040, commission 1 a fill), then 300 leave:
    cash 0 + 1,040 - 1 - 300 = 739."""
    feed = PolarsDataFeed(_bars([100.0, 104.0, 106.0], [100.0, 105.0, 107.0]))
    flows = _flows([DAYS[1]], [-300.0])
    base: dict[str, Any] = {
        "initial_cash": 1001.0,
        "execution": {"mode": "same_close"},
        "commission": {"model": "per_order", "amount": 1.0},
    }
    with pytest.raises(DataValidationError, match=r"flows.amount.*withdrawal_exceeds_cash"):
        Backtest(feed, Buy(10), config=BacktestConfig(**base), flows=flows).run(progress=False)
    config = BacktestConfig(**base, account={"on_withdrawal": "liquidate"})
    result = Backtest(feed, Buy(10), config=config, flows=flows).run(progress=False)
    sold = result.fills.filter(pl.col("side") == "sell")
    assert sold.select("timestamp", "price", "quantity").rows() == [
        (datetime(2024, 1, 3), 104.0, 10.0)
    ]
    assert result.trades["exit_reason"].to_list() == ["withdrawal"]
    assert result.orders.filter(pl.col("origin") == "withdrawal").height == 1
    assert result.equity["cash"].to_list()[1] == 1040.0 - 1.0 - 300.0
    # Only what the cash cannot cover is an error after liquidating every long.
    too_much = _flows([DAYS[1]], [-5000.0])
    with pytest.raises(DataValidationError, match="withdrawal_exceeds_cash"):
        Backtest(feed, Buy(10), config=config, flows=too_much).run(progress=False)


# ------------------------------------------------------------------------------ differential


def random_flows(seed: int, rows: list[dict[str, Any]], cash: float) -> list[dict[str, Any]]:
    """A few deposits and withdrawals (up to 90 % of the starting cash) at random dates of the
    data, some between bars (they apply at the next one)."""
    rng = random.Random(seed ^ 0xF10A)
    stamps = sorted({r["timestamp"] for r in rows})
    out: dict[Any, dict[str, Any]] = {}
    for _ in range(rng.randrange(1, 5)):
        when = rng.choice(stamps[1:])
        if rng.random() < 0.3:
            when = when - timedelta(hours=5)
        out[when] = {"timestamp": when, "amount": round(rng.uniform(-0.9, 0.5) * cash, 2)}
    return sorted(out.values(), key=lambda f: f["timestamp"])


LOGICS = {
    "targets": lambda assets, integer: oracle.ActionLogic(assets, integer=integer),
    "order_types": lambda assets, integer: oracle.OrderTypeLogic(("gtc", "day"), integer=integer),
}


@pytest.mark.parametrize("on_withdrawal", ["error", "liquidate"])
@pytest.mark.parametrize("mode", ["next_open", "same_close"])
@pytest.mark.parametrize("logic_name", sorted(LOGICS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_engine_matches_the_oracle_with_capital_flows(
    seed: int, mode: str, logic_name: str, on_withdrawal: str
) -> None:
    rows = oracle.random_bar_rows(seed, n_assets=3)
    flows = random_flows(seed, rows, make_config()["initial_cash"])
    assets = sorted({r["asset"] for r in rows})
    config = make_config(mode=mode, commission={"model": "percent", "rate": 0.001})
    config.setdefault("account", {})["on_withdrawal"] = on_withdrawal
    try:
        expected = oracle.run_oracle(
            rows, config, LOGICS[logic_name](assets, False).decide, flows=flows
        )
    except ValueError as err:
        with pytest.raises(DataValidationError, match=str(err).split(":")[0]):
            _run(rows, config, assets, logic_name, flows)
        return
    result = _run(rows, config, assets, logic_name, flows)
    compare(result, expected, f"seed={seed} {logic_name} {mode} flows={flows}")
    moved = result.equity.filter(pl.col("flows") != 0.0).select("timestamp", "flows").rows()
    assert moved == [(f["timestamp"], f["amount"]) for f in expected.flows if f["amount"]]


def _run(
    rows: list[dict[str, Any]],
    config: dict[str, Any],
    assets: list[str],
    logic_name: str,
    flows: list[dict[str, Any]],
) -> Any:
    feed = PolarsDataFeed(bars_frame(rows))
    logic = LOGICS[logic_name](assets, False)
    return Backtest(
        feed,
        _adapter(logic, "batch", oracle.SIGNAL_COLUMNS),
        config=BacktestConfig(**config),
        flows=pl.DataFrame(flows),
    ).run(progress=False)


def test_flows_and_dividends_are_marked_on_the_equity_chart() -> None:
    feed = PolarsDataFeed(
        _bars([100.0, 110.0, 121.0], [100.0, 110.0, 121.0]),
        actions=pl.DataFrame({"timestamp": [DAYS[2]], "asset": ["A"], "dividend": [0.5]}),
    )
    config = BacktestConfig(initial_cash=1000.0, execution={"mode": "same_close"})
    flows = _flows([DAYS[1], DAYS[2]], [500.0, -200.0])
    result = Backtest(feed, Buy(10), config=config, flows=flows).run(progress=False)
    traces = {t.name: t for t in result.plot.equity().data}
    assert list(traces["capital flow"].text) == ["capital flow: +500.00", "capital flow: -200.00"]
    assert list(traces["dividend"].text) == ["dividend: +5.00"]
    assert result.metrics["total_dividends"] == 5.0
