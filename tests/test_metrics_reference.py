"""Every metric that empyrical-reloaded also computes, compared on ``result.returns`` of a real
run at 1e-10 relative (the rolling ones at 1e-8: Polars' rolling sums accumulate rounding).

empyrical is a test-only dependency (the ``dev`` extra). The intentional differences
(``docs/metrics.md``, "Against empyrical and quantstats") are asserted here too, so the
documentation cannot drift from the code: CAGR and Calmar count calendar years, the
information ratio is annualised, skew and kurtosis are scipy's (pyfolio's) estimators.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, BacktestResult, PolarsDataFeed, TopKStrategy
from ml4t.backtest.results.metrics import risk_free_per_period, rolling_metric
from ml4t.backtest.synthetic import make_bars

ep = pytest.importorskip("empyrical")
stats = pytest.importorskip("scipy.stats")

REL = 1e-10
ROLL_REL = 1e-8
ANNUAL_RF = 0.03


def close(ours: float, theirs: float, rel: float = REL) -> None:
    assert math.isfinite(ours) and math.isfinite(float(theirs)), (ours, theirs)
    assert ours == pytest.approx(float(theirs), rel=rel, abs=1e-15)


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    # About 3 years of daily weekday bars, long and short: every metric is defined.
    bars = make_bars(n_assets=12, n_bars=760, seed=17)
    config = BacktestConfig(commission={"model": "percent", "rate": 0.0005}, risk_free=ANNUAL_RF)
    strategy = TopKStrategy("score", k=3, bottom_k=2)
    return Backtest(PolarsDataFeed(bars), strategy, config=config).run(progress=False)


@pytest.fixture(scope="module")
def returns(result: BacktestResult) -> np.ndarray:
    return result.returns.get_column("return").to_numpy()


@pytest.fixture(scope="module")
def bench(result: BacktestResult) -> pl.Series:
    rng = np.random.default_rng(5)
    strategy = result.returns.get_column("return").to_numpy()
    return pl.Series("benchmark", 0.6 * strategy + rng.normal(0.0003, 0.008, strategy.shape[0]))


@pytest.fixture(scope="module")
def metrics(result: BacktestResult, bench: pl.Series) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return result.metrics_vs(bench, kind="returns")


def test_daily_weekday_bars_are_annualised_with_252(result: BacktestResult) -> None:
    assert result.annualization.rule == "daily"
    assert result.metrics["periods_per_year"] == 252.0


def test_returns_are_what_the_metrics_use(result: BacktestResult, returns: np.ndarray) -> None:
    equity = result.equity.get_column("equity").to_numpy()
    assert returns[0] == equity[0] / result.config.initial_cash - 1.0
    np.testing.assert_array_equal(returns[1:], equity[1:] / equity[:-1] - 1.0)
    assert result.returns.get_column("timestamp").equals(result.equity.get_column("timestamp"))
    close(result.metrics["total_return"], ep.cum_returns_final(returns))


def test_sharpe_sortino_volatility(metrics: dict[str, float], returns: np.ndarray) -> None:
    rf = risk_free_per_period(ANNUAL_RF, returns.shape[0], 252.0)[0]
    close(metrics["sharpe"], ep.sharpe_ratio(returns, risk_free=rf, annualization=252))
    close(metrics["sortino"], ep.sortino_ratio(returns, required_return=rf, annualization=252))
    close(metrics["volatility"], ep.annual_volatility(returns, annualization=252))


def test_risk_free_as_a_series(result: BacktestResult, returns: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    rf = rng.uniform(0.0, 0.0002, returns.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = result.metrics_with(risk_free=pl.Series(rf))
    close(m["sharpe"], ep.sharpe_ratio(returns, risk_free=rf, annualization=252))
    close(m["sortino"], ep.sortino_ratio(returns, required_return=rf, annualization=252))
    close(m["omega"], ep.omega_ratio(returns, risk_free=rf, annualization=252))
    # The same rates as a timestamped frame.
    frame = pl.DataFrame({"timestamp": result.equity["timestamp"], "rate": rf})
    assert result.metrics_with(risk_free=frame)["sharpe"] == m["sharpe"]
    with pytest.raises(ValueError, match="missing_rows"):
        result.metrics_with(risk_free=frame.head(10))


def test_max_drawdown_is_negative_as_empyrical(
    result: BacktestResult, metrics: dict[str, float], returns: np.ndarray
) -> None:
    close(metrics["max_drawdown"], ep.max_drawdown(returns))
    assert metrics["max_drawdown"] < 0.0
    assert metrics["max_drawdown"] == pytest.approx(result.equity["drawdown"].min(), rel=1e-12)


def test_alpha_beta(metrics: dict[str, float], returns: np.ndarray, bench: pl.Series) -> None:
    rf = risk_free_per_period(ANNUAL_RF, returns.shape[0], 252.0)[0]
    alpha, beta = ep.alpha_beta(returns, bench.to_numpy(), risk_free=rf, annualization=252)
    close(metrics["alpha"], alpha)
    close(metrics["beta"], beta)


def test_capture_ratios(metrics: dict[str, float], returns: np.ndarray, bench: pl.Series) -> None:
    b = bench.to_numpy()  # empyrical's capture takes period="daily": 252
    close(metrics["up_capture"], ep.up_capture(returns, b))
    close(metrics["down_capture"], ep.down_capture(returns, b))


def test_information_ratio_is_annualised_excess_sharpe(
    metrics: dict[str, float], returns: np.ndarray, bench: pl.Series
) -> None:
    # Documented difference: empyrical's excess_sharpe is per period; ours is annualised.
    close(metrics["information_ratio"], ep.excess_sharpe(returns, bench.to_numpy()) * 252**0.5)


def test_tail_metrics(metrics: dict[str, float], returns: np.ndarray) -> None:
    rf = risk_free_per_period(ANNUAL_RF, returns.shape[0], 252.0)[0]
    close(metrics["var_95"], ep.value_at_risk(returns, cutoff=0.05))
    close(metrics["cvar_95"], ep.conditional_value_at_risk(returns, cutoff=0.05))
    close(metrics["tail_ratio"], ep.tail_ratio(returns))
    close(metrics["omega"], ep.omega_ratio(returns, risk_free=rf, annualization=252))
    close(metrics["stability"], ep.stability_of_timeseries(returns))
    close(metrics["best_period"], returns.max())
    close(metrics["worst_period"], returns.min())


def test_skew_and_kurtosis_are_scipys(metrics: dict[str, float], returns: np.ndarray) -> None:
    # empyrical has none; pyfolio reports scipy.stats' (population moments, excess kurtosis).
    close(metrics["skew"], stats.skew(returns))
    close(metrics["kurtosis"], stats.kurtosis(returns))


def test_cagr_and_calmar_count_calendar_years(
    result: BacktestResult, metrics: dict[str, float], returns: np.ndarray
) -> None:
    """Documented difference: empyrical's annual return counts len(r) / 252 years; ours counts
    calendar years (365.25 days) between the first and last timestamp, as quantstats does.
    With the same year count the two agree exactly."""
    n = returns.shape[0]
    growth = 1.0 + metrics["total_return"]
    close(ep.annual_return(returns, annualization=252), growth ** (252 / n) - 1.0)
    ts = result.equity["timestamp"]
    years = (ts[-1] - ts[0]).total_seconds() / (365.25 * 86_400)
    close(metrics["cagr"], growth ** (1 / years) - 1.0)
    close(metrics["calmar"], metrics["cagr"] / abs(ep.max_drawdown(returns)))
    assert metrics["cagr"] != pytest.approx(ep.annual_return(returns, annualization=252))


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("sharpe", "roll_sharpe_ratio"),
        ("sortino", "roll_sortino_ratio"),
        ("volatility", "roll_annual_volatility"),
    ],
)
def test_rolling_metrics(returns: np.ndarray, metric: str, reference: str) -> None:
    window = 63
    ours = rolling_metric(pl.Series(returns), metric, window, 252.0).to_numpy()
    theirs = np.asarray(getattr(ep, reference)(returns, window, annualization=252))
    assert np.isnan(ours[: window - 1]).all()
    np.testing.assert_allclose(ours[window - 1 :], theirs, rtol=ROLL_REL)


def test_rolling_beta(returns: np.ndarray, bench: pl.Series) -> None:
    window = 63
    ours = rolling_metric(pl.Series(returns), "beta", window, 252.0, benchmark=bench)
    theirs = np.asarray(ep.roll_beta(returns, bench.to_numpy(), window))
    np.testing.assert_allclose(ours.to_numpy()[window - 1 :], theirs, rtol=ROLL_REL)
