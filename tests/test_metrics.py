"""Unit tests of ml4t.backtest.metrics against values computed by hand."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml4t.backtest.results.metrics import (
    compute_metrics,
    drawdown,
    infer_periods_per_year,
    monthly_returns,
    period_returns,
    rolling_sharpe,
)

YEAR_SECONDS = 365.25 * 86_400

EXPECTED_KEYS = {
    "total_return",
    "cagr",
    "irr",
    "total_flows",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "max_drawdown_duration_days",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_win",
    "avg_loss",
    "payoff_ratio",
    "num_trades",
    "turnover",
    "avg_gross_exposure",
    "avg_net_exposure",
    "total_commission",
    "total_slippage",
    "total_borrow_fees",
    "total_interest",
    "total_dividends",
    "dividends_received",
    "dividends_paid",
    "total_funding",
    "total_costs",
    "periods_per_year",
    "risk_free",
    "skew",
    "kurtosis",
    "var_95",
    "cvar_95",
    "tail_ratio",
    "omega",
    "stability",
    "best_period",
    "worst_period",
}

# The return-distribution metrics: undefined together when the returns are.
DISTRIBUTION = (
    "skew",
    "kurtosis",
    "var_95",
    "cvar_95",
    "tail_ratio",
    "omega",
    "stability",
    "best_period",
    "worst_period",
)

# Quarterly timestamps: 2024-01-01 -> 2024-10-01 is 31+29+31+30+31+30+31+31+30 = 274 days.
QUARTERS = [datetime(2024, 1, 1), datetime(2024, 4, 1), datetime(2024, 7, 1), datetime(2024, 10, 1)]
QUARTER_YEARS = 274 / 365.25


# ---------------------------------------------------------------------------------------------
# Frame builders
# ---------------------------------------------------------------------------------------------


def make_equity(timestamps: list[datetime], values: list[float]) -> pl.DataFrame:
    """An equity frame with the full result schema (all cash, no positions)."""
    return pl.DataFrame(
        {
            "timestamp": timestamps,
            "cash": values,
            "long_value": [0.0] * len(values),
            "short_value": [0.0] * len(values),
            "positions_value": [0.0] * len(values),
            "equity": values,
        },
        schema={
            "timestamp": pl.Datetime("us"),
            "cash": pl.Float64,
            "long_value": pl.Float64,
            "short_value": pl.Float64,
            "positions_value": pl.Float64,
            "equity": pl.Float64,
        },
    )


TRADES_SCHEMA: dict[str, Any] = {
    "asset": pl.String,
    "side": pl.String,
    "entry_time": pl.Datetime("us"),
    "exit_time": pl.Datetime("us"),
    "entry_price": pl.Float64,
    "exit_price": pl.Float64,
    "quantity": pl.Float64,
    "gross_pnl": pl.Float64,
    "commission": pl.Float64,
    "net_pnl": pl.Float64,
    "return_pct": pl.Float64,
    "bars_held": pl.Int64,
    "exit_reason": pl.String,
    "status": pl.String,
}


def make_trades(net_pnl: list[float], status: list[str]) -> pl.DataFrame:
    """A trades frame; only net_pnl and status matter to the metrics."""
    n = len(net_pnl)
    return pl.DataFrame(
        {
            "asset": ["A"] * n,
            "side": ["long"] * n,
            "entry_time": [datetime(2024, 1, 1)] * n,
            "exit_time": [datetime(2024, 2, 1)] * n,
            "entry_price": [100.0] * n,
            "exit_price": [100.0] * n,
            "quantity": [1.0] * n,
            "gross_pnl": net_pnl,
            "commission": [0.0] * n,
            "net_pnl": net_pnl,
            "return_pct": [0.0] * n,
            "bars_held": [1] * n,
            "exit_reason": ["signal" if s == "closed" else "end_of_data" for s in status],
            "status": status,
        },
        schema=TRADES_SCHEMA,
    )


FILLS_SCHEMA: dict[str, Any] = {
    "order_id": pl.UInt64,
    "timestamp": pl.Datetime("us"),
    "asset": pl.String,
    "side": pl.String,
    "quantity": pl.Float64,
    "price": pl.Float64,
    "reference_price": pl.Float64,
    "slippage": pl.Float64,
    "commission": pl.Float64,
}


def make_fills(
    quantity: list[float],
    price: list[float],
    slippage: list[float] | None = None,
    commission: list[float] | None = None,
) -> pl.DataFrame:
    n = len(quantity)
    return pl.DataFrame(
        {
            "order_id": list(range(n)),
            "timestamp": [datetime(2024, 1, 1) + timedelta(days=i) for i in range(n)],
            "asset": ["A"] * n,
            "side": ["buy" if i % 2 == 0 else "sell" for i in range(n)],
            "quantity": quantity,
            "price": price,
            "reference_price": price,
            "slippage": slippage if slippage is not None else [0.0] * n,
            "commission": commission if commission is not None else [0.0] * n,
        },
        schema=FILLS_SCHEMA,
    )


NO_TRADES = pl.DataFrame(schema=TRADES_SCHEMA)
NO_FILLS = pl.DataFrame(schema=FILLS_SCHEMA)
# One winning and one losing closed trade, so the trade metrics are defined and do not warn.
SOME_TRADES = make_trades([10.0, -5.0], ["closed", "closed"])

# The reference curve: starts from 10_000, one losing quarter, so every metric is defined.
CASH = 10_000.0
VALUES = [10_200.0, 9_900.0, 10_500.0, 11_000.0]
RETURNS = [10_200 / 10_000 - 1, 9_900 / 10_200 - 1, 10_500 / 9_900 - 1, 11_000 / 10_500 - 1]


@contextmanager
def expect_undefined(*metrics: str) -> Iterator[None]:
    """Assert that exactly ``metrics`` are warned about (RuntimeWarning naming each metric)."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield
    named = set()
    for record in records:
        assert issubclass(record.category, RuntimeWarning), record
        match = re.search(r"metric '(\w+)'", str(record.message))
        assert match is not None, str(record.message)
        named.add(match.group(1))
    assert named == set(metrics)


def metrics_no_warning(
    equity: pl.DataFrame,
    trades: pl.DataFrame = SOME_TRADES,
    fills: pl.DataFrame = NO_FILLS,
    *,
    initial_cash: float = CASH,
    periods_per_year: float | str | None = 4.0,
) -> dict[str, float]:
    """compute_metrics, failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return compute_metrics(
            equity, trades, fills, initial_cash=initial_cash, periods_per_year=periods_per_year
        )


def reference_metrics(periods_per_year: Any = 4.0) -> dict[str, float]:
    return metrics_no_warning(make_equity(QUARTERS, VALUES), periods_per_year=periods_per_year)


# ---------------------------------------------------------------------------------------------
# Returns-based metrics
# ---------------------------------------------------------------------------------------------


def test_keys_and_types() -> None:
    m = reference_metrics()
    assert set(m) == EXPECTED_KEYS
    assert all(isinstance(v, float) for v in m.values())


def test_total_return() -> None:
    assert reference_metrics()["total_return"] == pytest.approx(11_000 / 10_000 - 1)


def test_total_return_loss() -> None:
    eq = make_equity(QUARTERS[:3], [9_800.0, 9_700.0, 9_500.0])
    assert metrics_no_warning(eq)["total_return"] == pytest.approx(9_500 / 10_000 - 1)


def test_cagr() -> None:
    m = reference_metrics()
    assert m["cagr"] == pytest.approx((11_000 / 10_000) ** (1 / QUARTER_YEARS) - 1)


def test_cagr_over_exactly_two_years() -> None:
    # 2023-01-01 -> 2025-01-01 is 365 + 366 = 731 days.
    ts = [datetime(2023, 1, 1), datetime(2024, 1, 1), datetime(2025, 1, 1)]
    eq = make_equity(ts, [10_500.0, 9_000.0, 12_100.0])
    m = metrics_no_warning(eq, periods_per_year=1.0)
    assert m["cagr"] == pytest.approx((12_100 / 10_000) ** (1 / (731 / 365.25)) - 1)


def test_volatility() -> None:
    mean = sum(RETURNS) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / (4 - 1))
    assert reference_metrics()["volatility"] == pytest.approx(std * math.sqrt(4))
    # Annualisation scales with sqrt(periods_per_year).
    assert reference_metrics(252.0)["volatility"] == pytest.approx(std * math.sqrt(252))


def test_first_return_is_measured_from_initial_cash() -> None:
    # Same curve, different starting capital: only the first return changes.
    eq = make_equity(QUARTERS[:3], [10_000.0, 11_000.0, 9_900.0])
    r = [10_000 / 8_000 - 1, 11_000 / 10_000 - 1, 9_900 / 11_000 - 1]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    m = metrics_no_warning(eq, initial_cash=8_000.0, periods_per_year=4.0)
    assert m["volatility"] == pytest.approx(std * 2)
    assert m["sharpe"] == pytest.approx(mean / std * 2)


def test_sharpe() -> None:
    mean = sum(RETURNS) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / 3)
    assert reference_metrics()["sharpe"] == pytest.approx(mean / std * math.sqrt(4))


def test_sortino() -> None:
    mean = sum(RETURNS) / 4
    # Downside deviation over all four periods; only the second return is negative.
    downside = math.sqrt((9_900 / 10_200 - 1) ** 2 / 4)
    assert reference_metrics()["sortino"] == pytest.approx(mean / downside * math.sqrt(4))


def test_sortino_several_losing_periods() -> None:
    eq = make_equity(QUARTERS, [9_500.0, 9_975.0, 9_576.0, 9_000.0])
    r = [9_500 / 10_000 - 1, 9_975 / 9_500 - 1, 9_576 / 9_975 - 1, 9_000 / 9_576 - 1]
    downside = math.sqrt((r[0] ** 2 + r[2] ** 2 + r[3] ** 2) / 4)
    m = metrics_no_warning(eq, periods_per_year=12.0)
    assert m["sortino"] == pytest.approx(sum(r) / 4 / downside * math.sqrt(12))


def test_max_drawdown_from_later_peak() -> None:
    # Peak 10_200 then trough 9_900.
    assert reference_metrics()["max_drawdown"] == pytest.approx(9_900 / 10_200 - 1)


def test_max_drawdown_peak_includes_initial_cash() -> None:
    # Never above the starting capital: the peak is initial_cash itself.
    eq = make_equity(QUARTERS, [9_500.0, 9_800.0, 9_000.0, 9_900.0])
    assert metrics_no_warning(eq)["max_drawdown"] == pytest.approx(9_000 / 10_000 - 1)


def test_max_drawdown_picks_largest_of_several() -> None:
    ts = [*QUARTERS, datetime(2025, 1, 1), datetime(2025, 4, 1)]
    eq = make_equity(ts, [10_500.0, 9_975.0, 12_000.0, 10_800.0, 9_600.0, 13_000.0])
    # Drawdowns: 1 - 9_975/10_500 = 5%, 1 - 9_600/12_000 = 20%.
    assert metrics_no_warning(eq)["max_drawdown"] == pytest.approx(9_600 / 12_000 - 1)


def test_max_drawdown_zero_when_monotonic() -> None:
    eq = make_equity(QUARTERS[:3], [10_100.0, 10_300.0, 10_200.5])
    assert metrics_no_warning(eq)["max_drawdown"] == pytest.approx(10_200.5 / 10_300 - 1)
    eq = make_equity(QUARTERS[:3], [10_100.0, 10_300.0, 10_400.0])
    with expect_undefined("sortino", "calmar", "omega"):  # no losing period, no drawdown
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4)
    assert m["max_drawdown"] == 0.0


def test_periods_per_year_given_is_reported() -> None:
    assert reference_metrics(252.0)["periods_per_year"] == 252.0


def test_periods_per_year_by_rule_for_quarterly_timestamps() -> None:
    assert reference_metrics(None)["periods_per_year"] == 4.0


def test_periods_per_year_inferred_from_equity_timestamps() -> None:
    m = reference_metrics("infer")
    ppy = (4 - 1) / QUARTER_YEARS
    assert m["periods_per_year"] == pytest.approx(ppy)
    mean = sum(RETURNS) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / 3)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(ppy))


# ---------------------------------------------------------------------------------------------
# Trade and fill metrics
# ---------------------------------------------------------------------------------------------


def test_trade_statistics_ignore_open_trades() -> None:
    trades = make_trades(
        [10.0, -5.0, 0.0, 3.0, 100.0, -50.0],
        ["closed", "closed", "closed", "closed", "open", "open"],
    )
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), trades)
    assert m["num_trades"] == 4
    assert m["win_rate"] == pytest.approx(2 / 4)  # a zero net_pnl is not a win
    assert m["profit_factor"] == pytest.approx((10 + 3) / 5)


def test_profit_factor_several_losses() -> None:
    trades = make_trades([25.0, -10.0, -2.5, 7.5, -7.5], ["closed"] * 5)
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), trades)
    assert m["profit_factor"] == pytest.approx((25 + 7.5) / (10 + 2.5 + 7.5))
    assert m["win_rate"] == pytest.approx(2 / 5)
    assert m["num_trades"] == 5


def test_profit_factor_infinite_without_losses() -> None:
    trades = make_trades([5.0, 0.0], ["closed", "closed"])
    with expect_undefined("avg_loss", "payoff_ratio"):
        m = compute_metrics(
            make_equity(QUARTERS, VALUES), trades, NO_FILLS, initial_cash=CASH, periods_per_year=4
        )
    assert m["profit_factor"] == math.inf
    assert m["win_rate"] == pytest.approx(1 / 2)


def test_profit_factor_zero_without_wins() -> None:
    trades = make_trades([-5.0, -1.0], ["closed", "closed"])
    with expect_undefined("avg_win", "payoff_ratio"):
        m = compute_metrics(
            make_equity(QUARTERS, VALUES), trades, NO_FILLS, initial_cash=CASH, periods_per_year=4
        )
    assert m["profit_factor"] == 0.0
    assert m["win_rate"] == 0.0


def test_turnover_commission_slippage() -> None:
    fills = make_fills(
        quantity=[10.0, 10.0, 5.0],
        price=[100.0, 110.0, 50.0],
        slippage=[0.5, 0.0, 0.25],
        commission=[1.0, 1.1, 0.25],
    )
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), fills=fills)
    notional = 10 * 100 + 10 * 110 + 5 * 50
    mean_equity = (10_200 + 9_900 + 10_500 + 11_000) / 4
    assert m["turnover"] == pytest.approx(notional / mean_equity / QUARTER_YEARS)
    assert m["total_commission"] == pytest.approx(1.0 + 1.1 + 0.25)
    assert m["total_slippage"] == pytest.approx(0.5 + 0.0 + 0.25)


def test_turnover_uses_absolute_quantity() -> None:
    fills = make_fills(quantity=[10.0, -10.0], price=[100.0, 100.0])
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), fills=fills)
    mean_equity = (10_200 + 9_900 + 10_500 + 11_000) / 4
    assert m["turnover"] == pytest.approx(2_000 / mean_equity / QUARTER_YEARS)


def test_no_fills_gives_zero_costs_and_turnover() -> None:
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), fills=NO_FILLS)
    assert m["turnover"] == 0.0
    assert m["total_commission"] == 0.0
    assert m["total_slippage"] == 0.0


def test_expectancy_average_win_loss_payoff() -> None:
    trades = make_trades([25.0, -10.0, -2.5, 7.5, -7.5, 1000.0], ["closed"] * 5 + ["open"])
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), trades)
    assert m["expectancy"] == pytest.approx((25 - 10 - 2.5 + 7.5 - 7.5) / 5)  # 2.5
    assert m["avg_win"] == pytest.approx((25 + 7.5) / 2)  # 16.25
    assert m["avg_loss"] == pytest.approx(-(10 + 2.5 + 7.5) / 3)  # -6.667
    assert m["payoff_ratio"] == pytest.approx(16.25 / (20 / 3))  # 2.4375


def test_zero_pnl_trade_counts_in_expectancy_only() -> None:
    trades = make_trades([12.0, 0.0, -3.0], ["closed"] * 3)
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), trades)
    assert m["expectancy"] == pytest.approx(9.0 / 3)
    assert (m["avg_win"], m["avg_loss"]) == (12.0, -3.0)
    assert m["payoff_ratio"] == pytest.approx(4.0)


def test_total_costs_is_commission_plus_slippage() -> None:
    fills = make_fills([1.0, 1.0], [100.0, 100.0], slippage=[0.25, 0.5], commission=[1.0, 2.0])
    m = metrics_no_warning(make_equity(QUARTERS, VALUES), fills=fills)
    assert m["total_costs"] == pytest.approx(0.25 + 0.5 + 1.0 + 2.0)


def test_calmar() -> None:
    m = reference_metrics()
    cagr = (11_000 / 10_000) ** (1 / QUARTER_YEARS) - 1
    assert m["calmar"] == pytest.approx(cagr / (1 - 9_900 / 10_200))


def test_calmar_negative_when_losing() -> None:
    eq = make_equity(QUARTERS, [9_500.0, 9_800.0, 9_000.0, 9_900.0])
    cagr = (9_900 / 10_000) ** (1 / QUARTER_YEARS) - 1
    assert metrics_no_warning(eq)["calmar"] == pytest.approx(cagr / (1 - 9_000 / 10_000))


def test_max_drawdown_duration_recovered() -> None:
    # Peak 10_200 at Q1 (2024-01-01), under water at Q2, back above it at Q3 (2024-07-01).
    m = reference_metrics()
    assert m["max_drawdown_duration"] == 2.0
    assert m["max_drawdown_duration_days"] == pytest.approx(31 + 29 + 31 + 30 + 31 + 30)


def test_max_drawdown_duration_from_initial_cash_never_recovered() -> None:
    # Never back at the starting capital: the span runs from the capital (one period before
    # the first row, timed at the first timestamp) to the last row.
    eq = make_equity(QUARTERS, [9_500.0, 9_800.0, 9_000.0, 9_900.0])
    m = metrics_no_warning(eq)
    assert m["max_drawdown_duration"] == 4.0
    assert m["max_drawdown_duration_days"] == pytest.approx(274.0)


def test_max_drawdown_duration_periods_and_days_are_separate_maxima() -> None:
    ts = [datetime(2024, 1, d) for d in (1, 2, 3, 4, 5)] + [datetime(2024, 2, 1)]
    eq = make_equity(ts, [10_100.0, 10_000.0, 10_050.0, 10_200.0, 10_100.0, 10_300.0])
    m = metrics_no_warning(eq, periods_per_year=252.0)
    # Spell A: Jan 1 -> Jan 4, 3 periods, 3 days. Spell B: Jan 4 -> Feb 1, 2 periods, 28 days.
    assert m["max_drawdown_duration"] == 3.0
    assert m["max_drawdown_duration_days"] == pytest.approx(28.0)


def test_max_drawdown_duration_equal_to_peak_recovers() -> None:
    eq = make_equity(QUARTERS, [10_100.0, 10_000.0, 10_100.0, 10_050.0])
    m = metrics_no_warning(eq)
    assert m["max_drawdown_duration"] == 2.0  # Q1 -> Q3; then Q3 -> Q4 (1 period, open)
    assert m["max_drawdown_duration_days"] == pytest.approx(182.0)


def test_max_drawdown_duration_zero_without_drawdown() -> None:
    eq = make_equity(QUARTERS[:3], [10_100.0, 10_300.0, 10_400.0])
    with expect_undefined("sortino", "calmar", "omega"):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert m["max_drawdown_duration"] == 0.0
    assert m["max_drawdown_duration_days"] == 0.0


def test_average_exposures() -> None:
    eq = make_equity(QUARTERS, VALUES).with_columns(
        long_value=pl.Series([5_100.0, 9_900.0, 0.0, 11_000.0]),
        short_value=pl.Series([0.0, -4_950.0, 0.0, -5_500.0]),
    )
    m = metrics_no_warning(eq)
    # gross: 5_100/10_200, 14_850/9_900, 0, 16_500/11_000 = 0.5, 1.5, 0, 1.5
    assert m["avg_gross_exposure"] == pytest.approx((0.5 + 1.5 + 0.0 + 1.5) / 4)
    # net: 0.5, 4_950/9_900, 0, 5_500/11_000 = 0.5, 0.5, 0, 0.5
    assert m["avg_net_exposure"] == pytest.approx((0.5 + 0.5 + 0.0 + 0.5) / 4)


def test_exposures_need_long_and_short_columns() -> None:
    eq = make_equity(QUARTERS, VALUES).select("timestamp", "equity")
    with expect_undefined("avg_gross_exposure", "avg_net_exposure"):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert math.isnan(m["avg_gross_exposure"])


# ---------------------------------------------------------------------------------------------
# Benchmark-relative metrics
# ---------------------------------------------------------------------------------------------

BENCH = [0.01, -0.02, 0.03, 0.02]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_benchmark_alpha_beta_information_ratio() -> None:
    assert "beta" not in reference_metrics()  # only with a benchmark
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(
            make_equity(QUARTERS, VALUES),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
            benchmark=pl.Series(BENCH),
        )
    r, b = RETURNS, BENCH
    mr, mb = _mean(r), _mean(b)
    cov = sum((x - mr) * (y - mb) for x, y in zip(r, b, strict=True)) / 3
    var = sum((y - mb) ** 2 for y in b) / 3
    beta = cov / var
    assert m["beta"] == pytest.approx(beta)
    alpha = (1 + _mean([x - beta * y for x, y in zip(r, b, strict=True)])) ** 4 - 1
    assert m["alpha"] == pytest.approx(alpha)
    active = [x - y for x, y in zip(r, b, strict=True)]
    ma = _mean(active)
    te = math.sqrt(sum((a - ma) ** 2 for a in active) / 3)
    assert m["information_ratio"] == pytest.approx(ma / te * 2)


def test_benchmark_identical_to_strategy() -> None:
    with expect_undefined("information_ratio"):  # zero tracking error
        m = compute_metrics(
            make_equity(QUARTERS, VALUES),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
            benchmark=pl.Series(RETURNS),
        )
    assert m["beta"] == pytest.approx(1.0)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-12)


def test_benchmark_missing_values_drop_periods() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(
            make_equity(QUARTERS, VALUES),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
            benchmark=pl.Series([None, -0.02, 0.03, 0.02]),
        )
    r, b = RETURNS[1:], BENCH[1:]
    mr, mb = _mean(r), _mean(b)
    beta = sum((x - mr) * (y - mb) for x, y in zip(r, b, strict=True)) / sum(
        (y - mb) ** 2 for y in b
    )
    assert m["beta"] == pytest.approx(beta)


def test_benchmark_undefined_cases() -> None:
    eq = make_equity(QUARTERS, VALUES)
    with expect_undefined("alpha", "beta", "down_capture"):  # constant, never down
        m = compute_metrics(
            eq,
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
            benchmark=pl.Series([0.01] * 4),
        )
    assert math.isnan(m["beta"]) and math.isfinite(m["information_ratio"])
    with expect_undefined(  # one usable period
        "alpha", "beta", "information_ratio", "up_capture", "down_capture"
    ):
        compute_metrics(
            eq,
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
            benchmark=pl.Series([None, None, float("nan"), 0.01]),
        )
    with pytest.raises(ValueError, match="one return per equity row"):
        compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, benchmark=pl.Series([0.1]))


# ---------------------------------------------------------------------------------------------
# Series helpers: drawdown, period returns, monthly returns, rolling Sharpe
# ---------------------------------------------------------------------------------------------


def test_drawdown_series() -> None:
    dd = drawdown([10_200.0, 9_900.0, 10_500.0, 9_450.0], 10_000.0)
    expected = [0.0, 9_900 / 10_200 - 1, 0.0, 9_450 / 10_500 - 1]
    assert dd.tolist() == pytest.approx(expected)
    # Below the starting capital from the start: the peak is the capital.
    assert drawdown([9_000.0], 10_000.0).tolist() == pytest.approx([-0.1])


def test_period_returns() -> None:
    assert period_returns(VALUES, CASH).tolist() == pytest.approx(RETURNS)


def test_monthly_returns() -> None:
    eq = pl.DataFrame(
        {
            "timestamp": [
                datetime(2023, 12, 29),
                datetime(2024, 1, 5),
                datetime(2024, 1, 31),
                datetime(2024, 3, 1),
                datetime(2024, 3, 28),
            ],
            "equity": [10_100.0, 9_000.0, 10_605.0, 10_000.0, 9_544.5],
        }
    )
    out = monthly_returns(eq, CASH)
    assert out["year"].to_list() == [2023, 2024, 2024]
    assert out["month"].to_list() == [12, 1, 3]  # February has no data
    assert out["return"].to_list() == pytest.approx(
        [10_100 / 10_000 - 1, 10_605 / 10_100 - 1, 9_544.5 / 10_605 - 1]
    )


def test_monthly_returns_use_the_local_calendar() -> None:
    # 2024-01-31 23:30 in New York is already February in UTC.
    local = pl.Series(
        [datetime(2024, 1, 31, 23, 30), datetime(2024, 2, 1, 9, 30)]
    ).dt.replace_time_zone("America/New_York")
    eq = pl.DataFrame({"timestamp": local, "equity": [11_000.0, 12_100.0]})
    out = monthly_returns(eq, CASH)
    assert out["month"].to_list() == [1, 2]
    assert out["return"].to_list() == pytest.approx([0.1, 0.1])


def test_rolling_sharpe() -> None:
    r = pl.Series([0.01, 0.03, -0.01, 0.02, 0.02, 0.02, 0.02])
    out = rolling_sharpe(r, 3, 4.0).to_list()
    assert out[:2] == [None, None]
    # window [0.01, 0.03, -0.01]: mean 0.01, std 0.02 -> 0.5 * sqrt(4)
    assert out[2] == pytest.approx(1.0)
    w = [0.03, -0.01, 0.02]
    mw = _mean(w)
    sw = math.sqrt(sum((x - mw) ** 2 for x in w) / 2)
    assert out[3] == pytest.approx(mw / sw * 2)
    assert math.isnan(out[6])  # zero std in the window [0.02, 0.02, 0.02]
    with pytest.raises(ValueError, match="window"):
        rolling_sharpe(r, 1, 4.0)


# ---------------------------------------------------------------------------------------------
# Undefined metrics: NaN and a RuntimeWarning naming them
# ---------------------------------------------------------------------------------------------


def test_no_closed_trades() -> None:
    trades = make_trades([100.0], ["open"])
    for frame in (trades, NO_TRADES):
        with expect_undefined(
            "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss", "payoff_ratio"
        ):
            m = compute_metrics(
                make_equity(QUARTERS, VALUES),
                frame,
                NO_FILLS,
                initial_cash=CASH,
                periods_per_year=4.0,
            )
        assert math.isnan(m["win_rate"])
        assert math.isnan(m["profit_factor"])
        assert m["num_trades"] == 0


def test_profit_factor_all_zero_pnl() -> None:
    trades = make_trades([0.0, 0.0], ["closed", "closed"])
    with expect_undefined("profit_factor", "avg_win", "avg_loss", "payoff_ratio"):
        m = compute_metrics(
            make_equity(QUARTERS, VALUES),
            trades,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
        )
    assert math.isnan(m["profit_factor"])
    assert m["win_rate"] == 0.0


def test_warning_message_names_metric_and_points_at_caller() -> None:
    trades = make_trades([0.0], ["closed"])
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        compute_metrics(
            make_equity(QUARTERS, VALUES),
            trades,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=4.0,
        )
    messages = [str(r.message) for r in records]
    assert any("'profit_factor' is undefined" in m for m in messages), messages
    assert all(r.filename == __file__ for r in records)


def test_single_equity_row_with_given_ppy() -> None:
    eq = make_equity(QUARTERS[:1], [10_500.0])
    expected = (
        "volatility",
        "sharpe",
        "sortino",
        "cagr",
        "irr",
        "calmar",
        "turnover",
        *DISTRIBUTION,
    )
    with expect_undefined(*expected):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=252.0)
    for key in expected:
        assert math.isnan(m[key]), key
    # Still well defined from one observation.
    assert m["total_return"] == pytest.approx(10_500 / 10_000 - 1)
    assert m["max_drawdown"] == 0.0
    assert m["periods_per_year"] == 252.0


def test_single_equity_row_cannot_infer_ppy() -> None:
    eq = make_equity(QUARTERS[:1], [9_500.0])
    expected = (
        "periods_per_year",
        "volatility",
        "sharpe",
        "sortino",
        "cagr",
        "irr",
        "calmar",
        "turnover",
        *DISTRIBUTION,
    )
    with expect_undefined(*expected):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH)
    for key in expected:
        assert math.isnan(m[key]), key
    assert m["max_drawdown"] == pytest.approx(9_500 / 10_000 - 1)


def test_zero_elapsed_time() -> None:
    t = datetime(2024, 1, 1)
    eq = make_equity([t, t], [10_100.0, 9_900.0])
    expected = (
        "periods_per_year",
        "volatility",
        "sharpe",
        "sortino",
        "cagr",
        "irr",
        "calmar",
        "turnover",
    )
    with expect_undefined(*expected):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH)
    for key in expected:
        assert math.isnan(m[key]), key


def test_empty_equity() -> None:
    eq = make_equity([], [])
    expected = (
        "periods_per_year",
        "total_return",
        "cagr",
        "irr",
        "volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "max_drawdown_duration",
        "max_drawdown_duration_days",
        "turnover",
        "avg_gross_exposure",
        "avg_net_exposure",
        *DISTRIBUTION,
    )
    with expect_undefined(*expected):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH)
    for key in expected:
        assert math.isnan(m[key]), key


def test_flat_equity_zero_std() -> None:
    eq = make_equity(QUARTERS[:3], [10_000.0, 10_000.0, 10_000.0])
    flat = ("skew", "kurtosis", "tail_ratio", "omega", "stability")
    with expect_undefined("sharpe", "sortino", "calmar", *flat):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert math.isnan(m["sharpe"])
    assert math.isnan(m["sortino"])
    assert m["volatility"] == 0.0
    assert m["max_drawdown"] == 0.0


def test_constant_growth_rounding_noise_is_zero_std() -> None:
    # Each period returns 10 % up to rounding; the std is rounding noise, not a real 1e-17.
    eq = make_equity(QUARTERS[:3], [11_000.0, 12_100.0, 13_310.0])
    with expect_undefined("sharpe", "sortino", "calmar", "skew", "kurtosis", "omega"):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert math.isnan(m["sharpe"])
    assert m["volatility"] == pytest.approx(0.0, abs=1e-12)


def test_no_losing_period_only_sortino_undefined() -> None:
    eq = make_equity(QUARTERS[:3], [10_100.0, 10_300.0, 10_400.0])
    with expect_undefined("sortino", "calmar", "omega"):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    r = [10_100 / 10_000 - 1, 10_300 / 10_100 - 1, 10_400 / 10_300 - 1]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert m["sharpe"] == pytest.approx(mean / std * 2)
    assert math.isnan(m["sortino"])


def test_equity_through_zero() -> None:
    eq = make_equity(QUARTERS[:3], [5_000.0, 0.0, 1_000.0])
    exposures = ("avg_gross_exposure", "avg_net_exposure")
    with expect_undefined("volatility", "sharpe", "sortino", *exposures, *DISTRIBUTION):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert m["max_drawdown"] == pytest.approx(-1.0)
    assert m["total_return"] == pytest.approx(1_000 / 10_000 - 1)


def test_negative_final_equity_cagr_undefined() -> None:
    eq = make_equity(QUARTERS[:3], [5_000.0, 2_000.0, -1_000.0])
    with expect_undefined(
        "cagr", "irr", "calmar", "avg_gross_exposure", "avg_net_exposure", "stability"
    ):
        m = compute_metrics(eq, SOME_TRADES, NO_FILLS, initial_cash=CASH, periods_per_year=4.0)
    assert math.isnan(m["cagr"])
    assert m["total_return"] == pytest.approx(-1_000 / 10_000 - 1)
    assert m["max_drawdown"] == pytest.approx((-1_000) / 10_000 - 1)


@pytest.mark.parametrize("cash", [0.0, -1.0, math.nan, math.inf])
def test_invalid_initial_cash(cash: float) -> None:
    with pytest.raises(ValueError, match="initial_cash"):
        compute_metrics(make_equity(QUARTERS, VALUES), SOME_TRADES, NO_FILLS, initial_cash=cash)


@pytest.mark.parametrize("ppy", [0.0, -252.0, math.nan, math.inf])
def test_invalid_periods_per_year(ppy: float) -> None:
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(
            make_equity(QUARTERS, VALUES),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=CASH,
            periods_per_year=ppy,
        )


# ---------------------------------------------------------------------------------------------
# infer_periods_per_year
# ---------------------------------------------------------------------------------------------


def test_infer_calendar_daily() -> None:
    ts = pl.date_range(date(2024, 1, 1), date(2024, 12, 31), "1d", eager=True)
    # 366 dates, 365 intervals over 365 days.
    assert infer_periods_per_year(ts) == pytest.approx(365 / (365 / 365.25))


def test_infer_business_daily() -> None:
    days = pl.date_range(date(2023, 1, 2), date(2023, 12, 29), "1d", eager=True)
    ts = days.filter(days.dt.weekday() <= 5).cast(pl.Datetime("us"))
    assert ts.len() == 260  # weekdays in 2023
    # 259 intervals over 2023-01-02 (Mon) -> 2023-12-29 (Fri) = 361 days.
    ppy = infer_periods_per_year(ts)
    assert ppy == pytest.approx(259 / (361 / 365.25))
    assert 250 < ppy < 270


def test_infer_minute_bars_one_session() -> None:
    # 09:30 .. 16:00 inclusive: 391 bars, 390 one-minute intervals.
    ts = pl.datetime_range(
        datetime(2024, 3, 4, 9, 30), datetime(2024, 3, 4, 16, 0), "1m", eager=True
    )
    assert ts.len() == 391
    assert infer_periods_per_year(ts) == pytest.approx(390 / (390 * 60 / YEAR_SECONDS))
    assert infer_periods_per_year(ts) == pytest.approx(365.25 * 24 * 60)


def test_infer_minute_bars_two_sessions() -> None:
    day1 = pl.datetime_range(
        datetime(2024, 3, 4, 9, 30), datetime(2024, 3, 4, 16, 0), "1m", eager=True
    )
    day2 = pl.datetime_range(
        datetime(2024, 3, 5, 9, 30), datetime(2024, 3, 5, 16, 0), "1m", eager=True
    )
    ts = pl.concat([day1, day2])
    # 782 bars; first to last: one day plus 390 minutes = 1830 minutes.
    assert infer_periods_per_year(ts) == pytest.approx(781 / (1830 * 60 / YEAR_SECONDS))


def test_infer_timezone_aware_and_nanoseconds() -> None:
    ts = pl.Series([datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)]).cast(
        pl.Datetime("ns")
    )
    assert infer_periods_per_year(ts) == pytest.approx(2 / (2 / 365.25))
    tz = ts.dt.replace_time_zone("UTC")
    assert infer_periods_per_year(tz) == pytest.approx(2 / (2 / 365.25))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([], "at least 2"),
        ([datetime(2024, 1, 1)], "at least 2"),
        ([datetime(2024, 1, 1), datetime(2024, 1, 1)], "not after the first"),
        ([datetime(2024, 1, 2), datetime(2024, 1, 1)], "not after the first"),
        ([datetime(2024, 1, 1), None, datetime(2024, 1, 3)], "null"),
    ],
)
def test_infer_invalid(values: list[datetime | None], match: str) -> None:
    ts = pl.Series("timestamp", values, dtype=pl.Datetime("us"))
    with pytest.raises(ValueError, match=match):
        infer_periods_per_year(ts)


def test_infer_rejects_non_temporal() -> None:
    with pytest.raises(ValueError, match="Date or Datetime"):
        infer_periods_per_year(pl.Series([1, 2, 3]))


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=2, max_size=30),
    st.floats(min_value=0.01, max_value=1e3),
)
def test_scale_invariance(values: list[float], scale: float) -> None:
    """Multiplying equity and starting capital by a constant leaves the ratios unchanged."""
    ts = [datetime(2024, 1, 1) + timedelta(days=i) for i in range(len(values))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = compute_metrics(
            make_equity(ts, values),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=100.0,
        )
        scaled = compute_metrics(
            make_equity(ts, [v * scale for v in values]),
            SOME_TRADES,
            NO_FILLS,
            initial_cash=100.0 * scale,
        )
    for key in ("total_return", "cagr", "volatility", "max_drawdown", "periods_per_year"):
        assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    assert -1.0 < base["max_drawdown"] <= 0.0
