"""The shared metrics against quantstats 0.0.86 on ``result.returns`` of a real run (a test-only
dependency, the ``dev`` extra), at 1e-10 relative where they agree, and each documented
difference (``docs/metrics.md``, "Against empyrical and quantstats") asserted, so the page
cannot drift from the code.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml4t.backtest import Backtest, BacktestConfig, BacktestResult, PolarsDataFeed, TopKStrategy
from ml4t.backtest.synthetic import make_bars

qs = pytest.importorskip("quantstats")

REL = 1e-10
ANNUAL_RF = 0.03


def close(ours: float, theirs: float, rel: float = REL) -> None:
    assert math.isfinite(ours) and math.isfinite(float(theirs)), (ours, theirs)
    assert ours == pytest.approx(float(theirs), rel=rel, abs=1e-15)


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    bars = make_bars(n_assets=12, n_bars=760, seed=17)
    config = BacktestConfig(commission={"model": "percent", "rate": 0.0005}, risk_free=ANNUAL_RF)
    strategy = TopKStrategy("score", k=3, bottom_k=2)
    return Backtest(PolarsDataFeed(bars), strategy, config=config).run(progress=False)


@pytest.fixture(scope="module")
def returns(result: BacktestResult) -> pd.Series:
    frame = result.returns.to_pandas().set_index("timestamp")
    return frame["return"]


@pytest.fixture(scope="module")
def metrics(result: BacktestResult) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return dict(result.metrics)


def test_ratios_with_a_risk_free_rate(metrics: dict[str, float], returns: pd.Series) -> None:
    # quantstats turns an annual rf into (1 + rf) ** (1 / periods) - 1, as we do.
    close(metrics["sharpe"], qs.stats.sharpe(returns, rf=ANNUAL_RF, periods=252))
    close(metrics["sortino"], qs.stats.sortino(returns, rf=ANNUAL_RF, periods=252))
    close(metrics["volatility"], qs.stats.volatility(returns, periods=252))


def test_drawdown_total_and_extremes(metrics: dict[str, float], returns: pd.Series) -> None:
    close(metrics["max_drawdown"], qs.stats.max_drawdown(returns))
    close(metrics["total_return"], qs.stats.comp(returns))
    close(metrics["best_period"], qs.stats.best(returns))
    close(metrics["worst_period"], qs.stats.worst(returns))
    close(metrics["tail_ratio"], qs.stats.tail_ratio(returns))


def test_omega_without_risk_free(result: BacktestResult, returns: pd.Series) -> None:
    ours = result.metrics_with(risk_free=0.0)["omega"]
    close(ours, qs.stats.omega(returns, rf=0.0, required_return=0.0, periods=252))


def test_cagr_counts_calendar_years_where_quantstats_counts_periods(
    result: BacktestResult, metrics: dict[str, float], returns: pd.Series
) -> None:
    """Documented difference: quantstats 0.0.86 counts ``len(r) / periods`` years (as
    empyrical); ours counts the calendar time between the first and last timestamp."""
    theirs = qs.stats.cagr(returns, periods=252)
    growth = 1.0 + metrics["total_return"]
    close(theirs, growth ** (252 / returns.shape[0]) - 1.0)
    ts = result.equity["timestamp"]
    years = (ts[-1] - ts[0]).total_seconds() / (365.25 * 86_400)
    close(metrics["cagr"], growth ** (1 / years) - 1.0)
    assert metrics["cagr"] != pytest.approx(theirs, rel=1e-3)


def test_skew_and_kurtosis_estimators_differ(metrics: dict[str, float], returns: pd.Series) -> None:
    """Documented difference: quantstats reports pandas' bias-corrected estimators; ours are
    scipy's population moments (pyfolio's)."""
    values = returns.to_numpy()
    close(qs.stats.skew(returns), stats.skew(values, bias=False))
    close(qs.stats.kurtosis(returns), stats.kurtosis(values, bias=False))
    close(metrics["skew"], stats.skew(values))
    close(metrics["kurtosis"], stats.kurtosis(values))
    assert metrics["skew"] != pytest.approx(qs.stats.skew(returns), rel=1e-6)


def test_var_is_historical_where_quantstats_is_parametric(
    metrics: dict[str, float], returns: pd.Series
) -> None:
    """Documented difference: quantstats' ``value_at_risk`` and default ``cvar`` are normal
    (variance-covariance); ours are historical, as empyrical's."""
    values = returns.to_numpy()
    normal = stats.norm.ppf(0.05, values.mean(), values.std(ddof=1))
    close(qs.stats.value_at_risk(returns), normal)
    assert metrics["var_95"] == pytest.approx(np.percentile(values, 5), rel=REL)
    assert metrics["var_95"] != pytest.approx(normal, rel=1e-3)
    # Historical CVaR: quantstats averages the returns at or below the interpolated 5 %
    # quantile; ours the worst int((n - 1) * 0.05) + 1, so they agree when that count matches.
    theirs = qs.stats.cvar(returns, method="historical")
    tail = np.sort(values)[: int((values.shape[0] - 1) * 0.05) + 1]
    close(metrics["cvar_95"], tail.mean())
    cutoff = np.quantile(values, 0.05)
    close(theirs, values[values <= cutoff].mean())
