"""What a researcher reads in the notebook: summary formats, rich displays, ``result.plot``
figures, the annualisation rule table and the tearsheet's tables."""

from __future__ import annotations

import math
import re
import warnings
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, BacktestResult, PolarsDataFeed, TopKStrategy
from ml4t.backtest.results.analysis import (
    cost_sensitivity,
    holdings,
    information_coefficient,
    pnl_by_asset,
    quantile_returns,
    traded_fraction,
    turnover_and_costs,
)
from ml4t.backtest.results.formatting import fmt_pct, fmt_quantity
from ml4t.backtest.results.metrics import annualization, drawdown_periods, rolling_metric
from ml4t.backtest.synthetic import make_bars

go = pytest.importorskip("plotly.graph_objects")


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=10, n_bars=300, seed=4))


@pytest.fixture(scope="module")
def result(feed: PolarsDataFeed) -> BacktestResult:
    config = BacktestConfig(
        initial_cash=10_000_000.0, commission={"model": "percent", "rate": 1e-4}
    )
    return Backtest(feed, TopKStrategy("score", k=3, bottom_k=2), config=config).run(progress=False)


# ------------------------------------------------------------------------------------ summary


def test_summary_text_has_period_units_and_no_exponents(result: BacktestResult) -> None:
    text = result.summary()
    assert "e+0" not in text and "e-0" not in text
    assert text.startswith("Backtest  2020-01-01 → ")
    assert "daily bars on weekdays: 252 sessions a year" in text
    assert re.search(r"Final equity\s+[\d,]+\.\d\d\n", text)
    assert re.search(r"CAGR\s+-?[\d,.]+%  / yr", text)
    assert re.search(r"Longest drawdown\s+\d+  bars", text)
    assert re.search(r"Max drawdown\s+-[\d.]+%", text)  # negative, as empyrical
    assert "-0.00%" not in text
    # Aligned: every value ends in the same column.
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    ends = {len(re.sub(r"  (/ yr|bars|days|x / yr)$", "", line)) for line in rows}
    assert len(ends) == 1, ends


def test_summary_dict_and_frame(result: BacktestResult) -> None:
    as_dict = result.summary("dict")
    assert as_dict["final_equity"] == result.final_equity
    assert as_dict["start"] == result.equity["timestamp"][0]
    assert as_dict["sharpe"] == result.metrics["sharpe"]
    frame = result.summary("frame")
    assert frame.columns == ["section", "metric", "label", "value", "unit", "text"]
    row = frame.filter(pl.col("metric") == "cagr").row(0, named=True)
    assert row["unit"] == "fraction per year" and row["text"].endswith("% / yr")
    assert set(result.metrics) <= set(frame["metric"])
    with pytest.raises(ValueError, match="format"):
        result.summary("yaml")  # type: ignore[call-overload]


def test_number_formats() -> None:
    assert fmt_pct(-1e-9) == "0.00%" and fmt_pct(0.1234) == "12.34%"
    assert fmt_pct(math.nan) == "n/a"
    assert fmt_quantity(120.0) == "120" and fmt_quantity(0.125) == "0.125"


# ------------------------------------------------------------------------- notebook displays


def test_result_repr_html(result: BacktestResult) -> None:
    page = result._repr_html_()
    assert "BacktestResult" in page and "2020-01-01 →" in page
    assert "<svg" in page and "<polyline" in page  # the sparkline
    assert "Sharpe ratio" in page and "Max drawdown" in page
    assert f"{result.final_equity:,.2f}" in page
    assert "<script" not in page


def test_feed_repr_html(feed: PolarsDataFeed) -> None:
    page = feed._repr_html_()
    assert "PolarsDataFeed" in page and "3,000 rows" in page and "10 assets" in page
    assert "signals: score, signal" in page and "validated" in page
    streaming = PolarsDataFeed(make_bars(n_assets=2, n_bars=20), chunk_rows=10)._repr_html_()
    assert "streaming by 10 rows" in streaming


def test_plot_methods_return_figures_with_data(result: BacktestResult) -> None:
    bench = pl.Series(np.random.default_rng(0).normal(0.0, 0.01, result.equity.height))
    figures = {
        "equity": result.plot.equity(bench, log=True, kind="returns"),
        "drawdown": result.plot.drawdown(),
        "returns_heatmap": result.plot.returns_heatmap(),
        "yearly_returns": result.plot.yearly_returns(),
        "rolling": result.plot.rolling("sharpe", 20),
        "rolling_beta": result.plot.rolling("beta", 20, benchmark=bench, kind="returns"),
        "distribution": result.plot.distribution(),
        "exposure": result.plot.exposure(),
        "trades": result.plot.trades(),
        "positions": result.plot.positions(top=3),
        "holdings": result.plot.holdings(),
        "long_short": result.plot.long_short(),
        "pnl_by_asset": result.plot.pnl_by_asset(),
        "turnover": result.plot.turnover(),
        "cost_sensitivity": result.plot.cost_sensitivity(),
        "ic": result.plot.ic("score"),
        "quantile_returns": result.plot.quantile_returns("score"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, go.Figure), name
        assert len(fig.data) >= 1, name
        assert not fig.layout.annotations or "No " not in str(fig.layout.annotations[0].text), name
    assert figures["equity"].layout.yaxis.type == "log"
    assert [t.name for t in figures["equity"].data] == ["strategy", "benchmark"]
    # top=3 plus "other"
    assert [t.name for t in figures["positions"].data][-1] == "other"
    assert len(figures["positions"].data) == 4
    heat = figures["returns_heatmap"].data[0]
    assert list(heat.x)[-1] == "Year"
    with pytest.raises(ValueError, match="benchmark"):
        result.plot.rolling("beta", 20)
    with pytest.raises(ValueError, match="unknown_column"):
        result.plot.ic("nope")


# ----------------------------------------------------------------------- annualisation rules


def _days(start: date, end: date, weekdays_only: bool) -> pl.Series:
    days = pl.date_range(start, end, "1d", eager=True)
    return days.filter(days.dt.weekday() <= 5) if weekdays_only else days


@pytest.mark.parametrize(
    ("timestamps", "expected", "rule"),
    [
        (_days(date(2020, 1, 1), date(2022, 12, 31), True), 252.0, "daily"),
        (_days(date(2020, 1, 1), date(2022, 12, 31), False), 365.0, "daily_7d"),
        (pl.date_range(date(2020, 1, 3), date(2022, 12, 30), "1w", eager=True), 52.0, "weekly"),
        (pl.date_range(date(2020, 1, 31), date(2022, 12, 31), "1mo", eager=True), 12.0, "monthly"),
        (pl.date_range(date(2000, 1, 1), date(2020, 1, 1), "1y", eager=True), 1.0, "yearly"),
    ],
)
def test_annualization_rules(timestamps: pl.Series, expected: float, rule: str) -> None:
    found = annualization(timestamps)
    assert (found.periods_per_year, found.rule) == (expected, rule)


def test_annualization_intraday_and_overrides() -> None:
    sessions = [
        pl.datetime_range(
            datetime(2024, 3, d, 9, 30), datetime(2024, 3, d, 15, 59), "1m", eager=True
        )
        for d in (4, 5, 6, 7, 8, 11)
    ]
    minutes = pl.concat(sessions)
    found = annualization(minutes)
    assert found.rule == "intraday" and found.periods_per_year == 390 * 252
    crypto = pl.datetime_range(datetime(2024, 1, 1), datetime(2024, 1, 15), "1h", eager=True)
    assert annualization(crypto).periods_per_year == 24 * 365
    assert annualization(minutes, 1000.0).rule == "given"
    assert annualization(minutes, "infer").rule == "inferred"
    with pytest.raises(ValueError, match="at least 2"):
        annualization(minutes.head(1))
    with pytest.raises(ValueError, match="periods_per_year"):
        annualization(minutes, -1.0)


def test_config_periods_per_year_infer_keeps_the_old_inference(feed: PolarsDataFeed) -> None:
    run = Backtest(
        feed, TopKStrategy("score", k=3), config=BacktestConfig(periods_per_year="infer")
    ).run(progress=False)
    assert 255.0 < run.metrics["periods_per_year"] < 265.0  # weekdays: about 260.9


# ----------------------------------------------------------------------- tearsheet's tables


def test_drawdown_periods_by_hand() -> None:
    eq = pl.DataFrame(
        {
            "timestamp": [date(2024, 1, d) for d in range(1, 9)],
            "equity": [100.0, 90.0, 95.0, 101.0, 99.0, 80.0, 100.0, 102.0],
        }
    )
    table = drawdown_periods(eq, 100.0, top=5)
    # The deepest: from Jan 4 (101) to Jan 6 (80), recovered Jan 8 (102 >= 101).
    first = table.row(0, named=True)
    assert first["depth"] == pytest.approx(80 / 101 - 1)
    assert (first["start"], first["valley"], first["recovery"]) == (
        date(2024, 1, 4),
        date(2024, 1, 6),
        date(2024, 1, 8),
    )
    assert first["periods"] == 4 and first["days"] == 4.0
    # Then the fall from the starting capital (dated at the first row) to Jan 2.
    second = table.row(1, named=True)
    assert second["depth"] == pytest.approx(-0.1)
    assert (second["start"], second["valley"], second["recovery"]) == (
        date(2024, 1, 1),
        date(2024, 1, 2),
        date(2024, 1, 4),
    )
    never = drawdown_periods(eq.head(6), 100.0)
    assert never.row(0, named=True)["recovery"] is None


def test_ic_is_spearman_per_timestamp(result: BacktestResult, feed: PolarsDataFeed) -> None:
    stats = pytest.importorskip("scipy.stats")
    table = information_coefficient(feed.frame, "score", result.universe)
    frame = feed.frame.sort("asset_id", "ts")
    frame = frame.with_columns(
        (pl.col("close").shift(-1).over("asset_id") / pl.col("close") - 1).alias("fwd")
    )
    ts0 = frame["ts"].unique().sort()[5]
    at = frame.filter(pl.col("ts") == ts0)
    expected = stats.spearmanr(at["score"].to_numpy(), at["fwd"].to_numpy()).statistic
    row = table.filter(pl.col("timestamp") == result.universe.to_datetime(int(ts0)))
    assert row["ic"][0] == pytest.approx(expected, rel=1e-12)
    assert row["assets"][0] == 10
    # make_bars' score is correlated with the next return: a positive mean IC, rising quantiles.
    assert table["ic"].mean() > 0  # type: ignore[operator]
    q = quantile_returns(feed.frame, "score", 5)
    assert q["quantile"].to_list() == [1, 2, 3, 4, 5]
    assert q["mean_return"][4] > q["mean_return"][0]


def test_cost_sensitivity_turnover_and_pnl_tables(result: BacktestResult) -> None:
    traded = traded_fraction(result.fills, result.equity)
    ppy = result.metrics["periods_per_year"]
    table = cost_sensitivity(result.returns["return"], traded, ppy, (0.0, 50.0))
    assert table["sharpe"][0] == pytest.approx(result.metrics["sharpe"], rel=1e-12)
    assert table["sharpe"][1] < table["sharpe"][0]
    monthly = turnover_and_costs(result.fills, result.equity)
    assert monthly["costs"].sum() == pytest.approx(
        result.metrics["total_commission"] + result.metrics["total_slippage"]
    )
    by_asset = pnl_by_asset(result.trades)
    closed = result.trades.filter(pl.col("status") == "closed")
    assert by_asset["total"].sum() == pytest.approx(closed["net_pnl"].sum())
    counts = holdings(result.positions(None))
    assert counts["holdings"].max() == 5  # 3 long + 2 short
    assert ((counts["hhi"] > 0) & (counts["hhi"] <= 1)).all()


def test_rolling_metric_rejects_bad_input() -> None:
    r = pl.Series([0.01, 0.02, -0.01])
    with pytest.raises(ValueError, match="metric"):
        rolling_metric(r, "calmar", 2, 252.0)
    with pytest.raises(ValueError, match="window"):
        rolling_metric(r, "sharpe", 1, 252.0)
    assert rolling_metric(r, "return", 2, 252.0).to_list()[1:] == pytest.approx(
        [1.01 * 1.02 - 1, 1.02 * 0.99 - 1]
    )


# ------------------------------------------------------------------------------------ warnings


def test_metric_warnings_point_at_the_users_line() -> None:
    idle = Backtest(
        PolarsDataFeed(make_bars(n_assets=2, n_bars=1, seed=1)),
        TopKStrategy("score", k=1),
    ).run(progress=False)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        _ = idle.metrics  # a cached property: the warning lands here, not in functools
    assert records, "a 1-bar run leaves the ratios undefined"
    assert {r.filename for r in records} == {__file__}
