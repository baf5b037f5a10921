"""Performance metrics computed from a backtest's result frames.

The functions here work on the Polars frames a backtest returns (``result.equity``,
``result.trades``, ``result.fills``, see ``docs/api_contract.md``) and are pure: the same frames
give the same numbers. ``docs/metrics.md`` lists every metric, its formula and how it compares
with empyrical and quantstats.

Conventions:

- Per-period returns (``result.returns``) are simple returns of the equity curve, and the first
  period is measured from the starting capital: ``r[0] = equity[0] / initial_cash - 1``,
  ``r[i] = equity[i] / equity[i-1] - 1``. With capital flows (the equity frame's ``flows``
  column, cash added at the start of its timestamp) the returns are time-weighted:
  ``r[i] = equity[i] / (equity[i-1] + flows[i]) - 1``, and every return-based metric (total
  return, CAGR, drawdowns, calendar returns) reads the time-weighted index
  ``initial_cash * cumprod(1 + r)`` (:func:`performance_curve`) instead of equity; ``irr`` is
  the money-weighted return.
- Calendar time is measured between the first and the last equity timestamp, in years of
  365.25 days.
- Ratios are annualised with one rule table, :func:`annualization` (daily bars: 252, daily bars
  on weekends too: 365, intraday: bars per session x sessions, weekly 52, monthly 12, ...);
  ``periods_per_year`` overrides it and ``"infer"`` measures the density of the timestamps
  (:func:`infer_periods_per_year`).
- ``risk_free`` is an annual rate (turned into a per-period rate ``(1 + rf) ** (1 / ppy) - 1``)
  or per-period rates aligned with the equity rows; Sharpe, Sortino, Omega, alpha and beta use
  the returns in excess of it.
- Drawdowns are negative fractions of the running peak (``-0.2`` is a 20 % fall), in the metrics,
  the equity frame and the report, as in empyrical and quantstats.
- A metric that cannot be computed honestly (too few observations, a zero denominator, no closed
  trades) is ``NaN`` and a :class:`RuntimeWarning` naming the metric is emitted, pointing at the
  user's call. A misleading number is never returned in its place.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest.errors import user_stacklevel

__all__ = [
    "ROLLING_METRICS",
    "SECONDS_PER_YEAR",
    "Annualization",
    "PeriodsPerYear",
    "annualization",
    "compute_metrics",
    "drawdown",
    "drawdown_periods",
    "infer_periods_per_year",
    "irr",
    "monthly_returns",
    "performance_curve",
    "period_returns",
    "risk_free_per_period",
    "rolling_metric",
    "rolling_sharpe",
    "yearly_returns",
]

PeriodsPerYear: TypeAlias = "float | Literal['infer'] | None"
"""How to annualise: a number of periods per year, ``"infer"`` (measured from the timestamps)
or ``None`` (the rule table of :func:`annualization`)."""

RiskFree: TypeAlias = "float | pl.Series | npt.ArrayLike"
"""An annual risk-free rate (a float, ``0.04`` for 4 %) or per-period rates, one per equity
row."""

SECONDS_PER_YEAR: float = 365.25 * 86_400.0
"""Seconds in a 365.25-day year, the unit of calendar time for CAGR and turnover."""

# A standard deviation (of per-period returns) at or below this is rounding noise: the ratio
# that divides by it is reported as NaN rather than as an astronomically large number.
_ZERO_STD_TOL = 1e-12

_NAN = float("nan")


def _elapsed_seconds(timestamps: pl.Series) -> float:
    """Seconds from the first to the last element of a Date or Datetime series."""
    dtype = timestamps.dtype
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise ValueError(f"timestamps must be a Date or Datetime series, got dtype {dtype}")
    if timestamps.null_count() > 0:
        raise ValueError("timestamps must not contain nulls")
    n = timestamps.len()
    delta = timestamps.slice(n - 1, 1) - timestamps.slice(0, 1)
    nanos = delta.dt.total_nanoseconds().item()
    return float(nanos) / 1e9


def infer_periods_per_year(timestamps: pl.Series) -> float:
    """Infer the number of observation intervals per year from a series of timestamps.

    Computed as ``(n - 1) / years`` where ``n`` is the number of timestamps and ``years`` is the
    time from the first to the last timestamp in 365.25-day years. This is what the data says:
    weekday-only daily bars give about 261 (not the conventional 252), hourly or minute bars give
    their own density, and gaps (holidays, nights, weekends) lower it.

    Args:
        timestamps: Date or Datetime series in increasing order, e.g.
            ``result.equity["timestamp"]``.

    Returns:
        Observation intervals per year.

    Raises:
        ValueError: if there are fewer than 2 timestamps, a null, a non-temporal dtype, or the last
            timestamp is not after the first.

    Example:
        >>> from datetime import date
        >>> import polars as pl
        >>> ts = pl.date_range(date(2024, 1, 1), date(2024, 12, 31), "1d", eager=True)
        >>> round(infer_periods_per_year(ts), 2)
        365.25
    """
    n = timestamps.len()
    if n < 2:
        raise ValueError(
            f"cannot infer periods per year from {n} timestamp(s); at least 2 are needed"
        )
    elapsed = _elapsed_seconds(timestamps)
    if elapsed <= 0.0:
        raise ValueError(
            "cannot infer periods per year: the last timestamp is not after the first "
            f"(elapsed time {elapsed} s); timestamps must be increasing"
        )
    return (n - 1) / (elapsed / SECONDS_PER_YEAR)


_DAY = 86_400.0
_WEEKEND_SHARE = 0.1
"""Share of timestamps on Saturdays and Sundays above which the data trade every day."""


@dataclass(frozen=True)
class Annualization:
    """The periods per year used to annualise, and the rule that chose them."""

    periods_per_year: float
    rule: str
    """``given``, ``inferred``, ``daily``, ``daily_7d``, ``daily_calendar``, ``intraday``,
    ``intraday_7d``, ``intraday_calendar``, ``weekly``, ``monthly``, ``quarterly`` or
    ``yearly``."""
    detail: str
    """A sentence saying why, e.g. ``daily bars on weekdays: 252 sessions a year``."""


def annualization(
    timestamps: pl.Series,
    periods_per_year: PeriodsPerYear = None,
    sessions_per_year: float | None = None,
) -> Annualization:
    """Periods per year for a series of timestamps, by one documented rule table.

    ``periods_per_year`` given: that number (rule ``given``). ``"infer"``: the observed density,
    :func:`infer_periods_per_year` (rule ``inferred``). ``None``: the median spacing between
    timestamps decides:

    ========================  =====================================================
    median spacing            periods per year
    ========================  =====================================================
    ≥ 300 days                1 (``yearly``)
    ≥ 80 days                 4 (``quarterly``)
    ≥ 25 days                 12 (``monthly``)
    ≥ 5 days                  52 (``weekly``)
    ≥ 20 hours                252 (``daily``); 365 when more than 10 % of the timestamps
                              fall on a Saturday or Sunday (``daily_7d``: 24/7 data)
    < 20 hours                bars per session x 252 (``intraday``), or x 365 when more
                              than 10 % fall on weekends (``intraday_7d``); bars per
                              session = the median number of timestamps per calendar day
    ========================  =====================================================

    Weekdays and calendar days are read in the timestamps' own time zone. With a trading
    calendar (``sessions_per_year``, the calendar's sessions a year: about 252 for XNYS), daily
    bars take that number instead of 252 or 365 (``daily_calendar``) and intraday bars bars
    per session x that number (``intraday_calendar``).

    Raises:
        ValueError: fewer than 2 timestamps, nulls, a non-temporal dtype, timestamps that do not
            increase, or a given ``periods_per_year`` that is not a positive finite number.

    Example:
        >>> from datetime import date
        >>> days = pl.date_range(date(2024, 1, 1), date(2024, 12, 31), "1d", eager=True)
        >>> annualization(days.filter(days.dt.weekday() <= 5)).periods_per_year
        252.0
        >>> annualization(days).rule
        'daily_7d'
    """
    if periods_per_year is not None and periods_per_year != "infer":
        value = float(periods_per_year)
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(
                f"periods_per_year must be a positive finite number, 'infer' or None, "
                f"got {periods_per_year}"
            )
        return Annualization(value, "given", f"periods_per_year={value:g} given")
    if periods_per_year == "infer":
        value = infer_periods_per_year(timestamps)
        return Annualization(value, "inferred", f"{value:.1f} observed intervals a year")
    infer_periods_per_year(timestamps)  # the same checks: >= 2 timestamps, increasing
    ts = timestamps.cast(pl.Datetime("ns")) if timestamps.dtype == pl.Date else timestamps
    steps = ts.diff().drop_nulls().dt.total_nanoseconds().cast(pl.Float64) / 1e9
    steps = steps.filter(steps > 0.0)
    spacing = float(np.median(steps.to_numpy())) if steps.len() else 0.0
    for days, value, rule in (
        (300, 1.0, "yearly"),
        (80, 4.0, "quarterly"),
        (25, 12.0, "monthly"),
        (5, 52.0, "weekly"),
    ):
        if spacing >= days * _DAY:
            return Annualization(value, rule, f"{rule} bars: {value:g} a year")
    per_day = float(np.median(ts.dt.date().value_counts().get_column("count").to_numpy()))
    if sessions_per_year is not None:
        s = float(sessions_per_year)
        if spacing >= 20 * 3_600:
            return Annualization(
                s, "daily_calendar", f"daily bars: the calendar's {s:.1f} sessions a year"
            )
        return Annualization(
            per_day * s,
            "intraday_calendar",
            f"intraday bars: {per_day:g} a session x the calendar's {s:.1f} sessions a year",
        )
    weekend = float(np.mean(ts.dt.weekday().to_numpy() >= 6))
    every_day = weekend > _WEEKEND_SHARE
    sessions = 365.0 if every_day else 252.0
    if spacing >= 20 * 3_600:
        if every_day:
            return Annualization(
                sessions, "daily_7d", f"daily bars with {weekend:.0%} on weekends: 365 a year"
            )
        return Annualization(sessions, "daily", "daily bars on weekdays: 252 sessions a year")
    rule = "intraday_7d" if every_day else "intraday"
    return Annualization(
        per_day * sessions,
        rule,
        f"intraday bars: {per_day:g} a session x {sessions:g} sessions a year",
    )


def risk_free_per_period(
    risk_free: RiskFree, n: int, periods_per_year: float
) -> npt.NDArray[np.float64]:
    """The risk-free rate per period, one value per equity row.

    A float is an annual rate, compounded down to ``(1 + rf) ** (1 / periods_per_year) - 1``
    (quantstats' convention); a series or array holds per-period rates already (empyrical's
    ``risk_free`` argument) and must have ``n`` finite values.

    Raises:
        ValueError: a non-finite rate, an annual rate ≤ -1, or a series of another length.

    Example:
        >>> round(float(risk_free_per_period(0.04, 2, 252.0)[0]), 8)
        0.00015565
    """
    if isinstance(risk_free, (int, float)) and not isinstance(risk_free, bool):
        rate = float(risk_free)
        if not (math.isfinite(rate) and rate > -1.0):
            raise ValueError(f"risk_free must be a finite annual rate above -1, got {risk_free}")
        if rate == 0.0 or not math.isfinite(periods_per_year):
            return np.full(n, 0.0 if rate == 0.0 else _NAN)
        return np.full(n, (1.0 + rate) ** (1.0 / periods_per_year) - 1.0)
    values = (
        risk_free.cast(pl.Float64).fill_null(_NAN).to_numpy()
        if isinstance(risk_free, pl.Series)
        else np.asarray(risk_free, dtype=np.float64)
    )
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(
            f"risk_free as a series must have one per-period rate per equity row ({n}), "
            f"got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("risk_free as a series must hold finite per-period rates (no null/NaN)")
    return values


class _Undefined:
    """Collects the metrics that are undefined; :meth:`emit` warns once per metric."""

    def __init__(self) -> None:
        self.reasons: list[tuple[str, str]] = []

    def __call__(self, metric: str, reason: str) -> float:
        self.reasons.append((metric, reason))
        return _NAN

    def emit(self) -> None:
        """One warning per undefined metric, at the first frame outside the package."""
        level = user_stacklevel()
        for metric, reason in self.reasons:
            warnings.warn(
                f"metric {metric!r} is undefined: {reason}; reporting NaN",
                RuntimeWarning,
                stacklevel=level,
            )


def drawdown(equity: pl.Series | npt.ArrayLike, initial_cash: float) -> npt.NDArray[np.float64]:
    """The drawdown at each period: ``equity / running_max(initial_cash, equity) - 1`` (≤ 0).

    Example:
        >>> drawdown([110.0, 99.0, 121.0], 100.0).round(4).tolist()
        [0.0, -0.1, 0.0]
    """
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate(([initial_cash], eq)))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = eq / peak - 1.0
    return out


def _drawdown_durations(
    eq: npt.NDArray[np.float64], ts_ns: npt.NDArray[np.int64], initial_cash: float
) -> tuple[float, float]:
    """Longest peak-to-recovery span as (periods, days); (0, 0) when never under water.

    The curve is ``[initial_cash, *eq]``; index 0 is the starting capital, one period before the
    first row. A spell runs from the last point at its peak to the first point back at (or above)
    that peak, or to the last point when it never recovers.
    """
    curve = np.concatenate(([initial_cash], eq))
    n = curve.shape[0]
    peak = np.maximum.accumulate(curve)
    index = np.arange(n)
    at_peak = curve >= peak
    last_peak = np.maximum.accumulate(np.where(at_peak, index, 0))
    under = ~at_peak
    if not under.any():
        return 0.0, 0.0
    k = index[under]
    end = np.minimum(k + 1, n - 1)  # the recovery point, or the last point
    start = last_peak[k]
    periods = end - start
    # Calendar time: curve index c > 0 is row c - 1; the starting capital (c = 0) is dated at the
    # first row, the earliest time known.
    times = ts_ns[np.maximum(end - 1, 0)] - ts_ns[np.maximum(start - 1, 0)]
    return float(periods.max()), float(times.max()) / 1e9 / 86_400.0


def monthly_returns(equity: pl.DataFrame, initial_cash: float) -> pl.DataFrame:
    """Calendar-month returns of the equity curve.

    Each month's return is its last equity over the previous month's last equity, minus one; the
    first month is measured from ``initial_cash``. Months are calendar months in the timestamps'
    own time zone.

    Args:
        equity: a frame with ``timestamp`` (Date or Datetime) and ``equity`` columns, in time
            order.
        initial_cash: the starting capital.

    Returns:
        A frame with ``year`` (Int32), ``month`` (Int8, 1-12) and ``return`` (Float64), one row
        per month that has data.

    Example:
        >>> from datetime import date
        >>> eq = pl.DataFrame({"timestamp": [date(2024, 1, 5), date(2024, 1, 31),
        ...                                  date(2024, 2, 15)], "equity": [99.0, 110.0, 121.0]})
        >>> monthly_returns(eq, 100.0)["return"].round(4).to_list()
        [0.1, 0.1]
    """
    equity = _performance_frame(equity, initial_cash)
    monthly = (
        equity.lazy()
        .select(
            pl.col("timestamp").dt.year().alias("year"),
            pl.col("timestamp").dt.month().alias("month"),
            pl.col("equity").cast(pl.Float64),
        )
        .group_by("year", "month", maintain_order=True)
        .agg(pl.col("equity").last())
        .with_columns(
            (pl.col("equity") / pl.col("equity").shift(1, fill_value=initial_cash) - 1.0).alias(
                "return"
            )
        )
        .select(pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int8), "return")
    )
    return monthly.collect()


ROLLING_METRICS = ("sharpe", "sortino", "volatility", "beta", "return")
"""The metrics :func:`rolling_metric` computes over a trailing window."""


def rolling_metric(
    returns: pl.Series,
    metric: str,
    window: int,
    periods_per_year: float,
    *,
    benchmark: pl.Series | None = None,
    risk_free: pl.Series | None = None,
) -> pl.Series:
    """A metric over a trailing window of ``window`` periods, one value per period.

    ``sharpe``: ``mean(x) / std(x, ddof=1) * sqrt(ppy)`` with ``x = r - risk_free``;
    ``sortino``: ``mean(x) / sqrt(mean(min(x, 0) ** 2)) * sqrt(ppy)``; ``volatility``:
    ``std(r, ddof=1) * sqrt(ppy)``; ``beta``: ``cov(x, b - risk_free) / var(b - risk_free)``
    (needs ``benchmark``, per-period returns aligned with ``returns``); ``return``: the
    compounded return of the window. The same definitions as :func:`compute_metrics` (and
    empyrical's ``roll_*``). Null for the first ``window - 1`` periods; NaN where a denominator
    is zero.

    Raises:
        ValueError: an unknown metric, ``window < 2``, or ``beta`` without a benchmark.

    Example:
        >>> r = pl.Series([0.01, 0.03, -0.01, 0.02])
        >>> rolling_metric(r, "sharpe", 3, 4.0).round(4).to_list()
        [None, None, 1.0, 1.281]
    """
    if metric not in ROLLING_METRICS:
        raise ValueError(f"metric must be one of {ROLLING_METRICS}, got {metric!r}")
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    r = returns.cast(pl.Float64)
    x = r if risk_free is None else r - risk_free.cast(pl.Float64)
    sqrt_ppy = math.sqrt(periods_per_year)
    frame = pl.DataFrame({"r": r, "x": x})
    tol = _ZERO_STD_TOL
    col_x = pl.col("x")
    if metric == "sharpe":
        num, den = col_x.rolling_mean(window) * sqrt_ppy, col_x.rolling_std(window, ddof=1)
    elif metric == "sortino":
        num = col_x.rolling_mean(window) * sqrt_ppy
        den = (pl.min_horizontal(col_x, pl.lit(0.0)) ** 2).rolling_mean(window).sqrt()
    elif metric == "volatility":
        num, den = pl.col("r").rolling_std(window, ddof=1) * sqrt_ppy, pl.lit(1.0)
        tol = 0.0
    elif metric == "return":
        num = (pl.col("r") + 1.0).log().rolling_sum(window).exp() - 1.0
        den, tol = pl.lit(1.0), 0.0
    else:
        if benchmark is None:
            raise ValueError("the rolling beta needs a benchmark")
        b = benchmark.cast(pl.Float64)
        frame = frame.with_columns(
            (b if risk_free is None else b - risk_free.cast(pl.Float64)).alias("b")
        )
        # The population moments (ddof cancels in the ratio).
        mean_x, mean_b = col_x.rolling_mean(window), pl.col("b").rolling_mean(window)
        num = (col_x * pl.col("b")).rolling_mean(window) - mean_x * mean_b
        den = (pl.col("b") ** 2).rolling_mean(window) - mean_b**2
        tol = _ZERO_STD_TOL**2
    ratio = frame.select(
        pl.when(den.is_null() | num.is_null())
        .then(None)
        .when(den > tol)
        .then(num / den)
        .otherwise(_NAN)
        .alias(f"rolling_{metric}")
    ).to_series()
    return ratio


def rolling_sharpe(returns: pl.Series, window: int, periods_per_year: float) -> pl.Series:
    """Annualised Sharpe ratio over a trailing window (:func:`rolling_metric` ``"sharpe"``).

    Example:
        >>> r = pl.Series([0.01, 0.03, -0.01, 0.02])
        >>> rolling_sharpe(r, 3, 4.0).round(4).to_list()
        [None, None, 1.0, 1.281]
    """
    return rolling_metric(returns, "sharpe", window, periods_per_year).alias("rolling_sharpe")


def yearly_returns(equity: pl.DataFrame, initial_cash: float) -> pl.DataFrame:
    """Calendar-year returns of the equity curve: ``year`` (Int32) and ``return``, the first
    year measured from ``initial_cash`` (as :func:`monthly_returns`)."""
    equity = _performance_frame(equity, initial_cash)
    return (
        equity.lazy()
        .select(pl.col("timestamp").dt.year().alias("year"), pl.col("equity").cast(pl.Float64))
        .group_by("year", maintain_order=True)
        .agg(pl.col("equity").last())
        .with_columns(
            (pl.col("equity") / pl.col("equity").shift(1, fill_value=initial_cash) - 1.0).alias(
                "return"
            )
        )
        .select(pl.col("year").cast(pl.Int32), "return")
        .collect()
    )


def drawdown_periods(equity: pl.DataFrame, initial_cash: float, top: int = 5) -> pl.DataFrame:
    """The ``top`` deepest drawdown periods, deepest first.

    A period runs from the last point at the running peak (``start``; the starting capital
    counts as a point dated at the first timestamp) through its lowest point (``valley``) to the
    first point back at that peak (``recovery``, null when it never recovered).

    Returns:
        ``start, valley, recovery`` (timestamps), ``depth`` (the drawdown at the valley, < 0),
        ``periods`` (start to recovery, or to the last row) and ``days`` (the same span in
        calendar days).

    Example:
        >>> from datetime import date
        >>> eq = pl.DataFrame({"timestamp": [date(2024, 1, d) for d in (1, 2, 3, 4, 5)],
        ...                    "equity": [100.0, 90.0, 95.0, 101.0, 99.0]})
        >>> drawdown_periods(eq, 100.0)["depth"].round(3).to_list()
        [-0.1, -0.02]
    """
    eq = performance_curve(equity, initial_cash)
    ts = equity.get_column("timestamp")
    curve = np.concatenate(([initial_cash], eq))
    peak = np.maximum.accumulate(curve)
    under = curve < peak
    spell = np.cumsum(~under)  # every point at its peak opens a new spell
    index = np.arange(curve.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = curve / peak - 1.0
    frame = pl.DataFrame({"spell": spell, "index": index, "depth": depth, "under": under})
    spells = (
        frame.filter(pl.col("under"))
        .group_by("spell", maintain_order=True)
        .agg(
            pl.col("index").first().alias("first"),
            pl.col("index").last().alias("last"),
            pl.col("depth").min().alias("depth"),
            pl.col("index").get(pl.col("depth").arg_min()).alias("valley"),
        )
        .sort("depth", "first")
        .head(top)
    )
    n = curve.shape[0]
    row = ts

    def at(indices: pl.Series) -> pl.Series:
        # curve index c is row c - 1; the starting capital (c = 0) is dated at the first row
        return row.gather((indices - 1).clip(lower_bound=0))

    first = spells.get_column("first")
    start = at(first - 1)
    valley = at(spells.get_column("valley"))
    end = (spells.get_column("last") + 1).clip(upper_bound=n - 1)
    recovered = spells.get_column("last") + 1 < n
    recovery = at(end)
    span = at(end).cast(pl.Datetime("ns")) - start.cast(pl.Datetime("ns"))
    return pl.DataFrame(
        {
            "start": start,
            "valley": valley,
            "recovery": pl.select(
                pl.when(pl.lit(recovered)).then(pl.lit(recovery)).otherwise(None)
            ).to_series(),
            "depth": spells.get_column("depth"),
            "periods": (end - (first - 1)).cast(pl.Int64),
            "days": span.dt.total_nanoseconds().cast(pl.Float64) / 1e9 / _DAY,
        }
    )


def period_returns(
    equity: pl.Series | npt.ArrayLike,
    initial_cash: float,
    flows: pl.Series | npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Per-period simple returns, the first measured from ``initial_cash``; with ``flows``
    (cash added at the start of each period, one per row), time-weighted:
    ``equity[i] / (equity[i-1] + flows[i]) - 1``, so a deposit is not a gain (a period that
    starts and ends with nothing returns 0).

    Example:
        >>> period_returns([110.0, 99.0], 100.0).round(4).tolist()
        [0.1, -0.1]
        >>> period_returns([110.0, 165.0], 100.0, flows=[0.0, 40.0]).round(4).tolist()
        [0.1, 0.1]
    """
    eq = np.asarray(equity, dtype=np.float64)
    prev = np.concatenate(([initial_cash], eq[:-1]))
    if flows is not None:
        prev = prev + np.asarray(flows, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = eq / prev - 1.0
    if flows is not None:
        out[(prev == 0.0) & (eq == 0.0)] = 0.0
    return out


def _flows(equity: pl.DataFrame) -> npt.NDArray[np.float64] | None:
    """The equity frame's ``flows`` column, or ``None`` when it has none or all are zero."""
    if "flows" not in equity.columns:
        return None
    flows = equity.get_column("flows").cast(pl.Float64).fill_null(0.0).to_numpy()
    return flows if np.any(flows != 0.0) else None


def performance_curve(equity: pl.DataFrame, initial_cash: float) -> npt.NDArray[np.float64]:
    """The curve every return-based metric reads: the ``equity`` column itself, or, when the
    frame has non-zero ``flows``, the time-weighted index ``initial_cash * cumprod(1 + r)`` of
    :func:`period_returns` (what the starting capital alone would have become).

    Example:
        >>> eq = pl.DataFrame({"equity": [110.0, 165.0], "flows": [0.0, 40.0]})
        >>> performance_curve(eq, 100.0).round(4).tolist()
        [110.0, 121.0]
    """
    eq: npt.NDArray[np.float64] = equity.get_column("equity").cast(pl.Float64).to_numpy()
    flows = _flows(equity)
    if flows is None:
        return eq
    growth = np.cumprod(1.0 + period_returns(eq, initial_cash, flows))
    return np.asarray(initial_cash * growth, dtype=np.float64)


def _performance_frame(equity: pl.DataFrame, initial_cash: float) -> pl.DataFrame:
    """``equity`` with its ``equity`` column replaced by :func:`performance_curve` (itself when
    there are no flows)."""
    if _flows(equity) is None:
        return equity
    return equity.with_columns(pl.Series("equity", performance_curve(equity, initial_cash)))


def irr(equity: pl.DataFrame, initial_cash: float) -> float:
    """The money-weighted return (internal rate of return), annual: the rate ``g`` at which
    ``-initial_cash`` at the first timestamp, ``-flows[i]`` at each flow's timestamp and
    ``+equity[-1]`` at the last timestamp discount to zero, times in 365.25-day years from the
    first timestamp (scipy's ``brentq`` on ``log(1 + g)``, searched within ``±600 / years``
    and at least ``±10``, so every discount factor stays finite). Without flows it is the
    CAGR. NaN when no time elapsed, final equity is negative or no rate in that range solves
    it (``inf`` when the annual rate is beyond float range).

    Example:
        >>> from datetime import date
        >>> eq = pl.DataFrame({"timestamp": [date(2024, 1, 1), date(2025, 1, 1)],
        ...                    "equity": [100.0, 121.0], "flows": [0.0, 0.0]})
        >>> round(irr(eq, 100.0), 6)  # 366 days: (1.21) ** (365.25 / 366) - 1
        0.209527
    """
    from scipy.optimize import brentq

    n = equity.height
    if n < 2:
        return _NAN
    ts_ns = equity.get_column("timestamp").cast(pl.Datetime("ns")).to_physical().to_numpy()
    years = (ts_ns - ts_ns[0]).astype(np.float64) / 1e9 / SECONDS_PER_YEAR
    if not years[-1] > 0.0:
        return _NAN
    flows = _flows(equity)
    amounts = np.zeros(n) if flows is None else -flows
    amounts[0] -= initial_cash
    final = float(equity.get_column("equity")[-1])
    if not final >= 0.0:
        return _NAN
    amounts[-1] += final
    amounts /= np.max(np.abs(amounts))  # scaled to at most 1: the root does not move

    def npv(log_growth: float) -> float:
        return float(np.sum(amounts * np.exp(-years * log_growth)))

    # log(1 + g) within +-600 / span keeps every discounted amount finite.
    high = max(10.0, 600.0 / float(years[-1]))
    low = -high
    with np.errstate(over="ignore", invalid="ignore"):
        f_low, f_high = npv(low), npv(high)
        if not (np.isfinite(f_low) and np.isfinite(f_high)) or f_low * f_high > 0.0:
            return _NAN
        if f_low == 0.0 or f_high == 0.0:
            root = low if f_low == 0.0 else high
        else:
            root = float(brentq(npv, low, high, xtol=1e-14, rtol=1e-14, maxiter=200))
    with np.errstate(over="ignore"):
        return float(np.expm1(root))


def compute_metrics(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    *,
    initial_cash: float,
    periods_per_year: PeriodsPerYear = None,
    benchmark: pl.Series | None = None,
    risk_free: RiskFree = 0.0,
    sessions_per_year: float | None = None,
) -> dict[str, float]:
    """Compute summary performance metrics from a backtest's result frames.

    Args:
        equity: ``result.equity``; uses the ``timestamp`` and ``equity`` columns, one row per
            timestamp in time order, and ``long_value`` / ``short_value`` for the exposures.
        trades: ``result.trades``; uses ``status`` and ``net_pnl``. Only ``status == "closed"``
            trades count.
        fills: ``result.fills``; uses ``quantity`` (absolute), ``price``, ``slippage`` and
            ``commission``.
        initial_cash: starting capital (> 0); the base of the first return and of the drawdown
            peak.
        periods_per_year: periods per year used to annualise; ``None`` applies the rule table
            of :func:`annualization` (252 for daily bars on weekdays, ...), ``"infer"`` measures
            the timestamps' density with :func:`infer_periods_per_year`.
        benchmark: optional per-period benchmark returns aligned with the equity rows (same
            length; ``benchmark[i]`` is the benchmark's return over the period of ``r[i]``).
            Null or NaN entries drop that period from the benchmark statistics. When given, the
            result also has ``alpha``, ``beta``, ``information_ratio``, ``up_capture`` and
            ``down_capture``. :meth:`BacktestResult.metrics_vs` builds this series from prices
            or returns.
        risk_free: an annual rate (``0.04``), compounded down to each period, or per-period
            rates, one per equity row (see :func:`risk_free_per_period`). Default 0.
        sessions_per_year: the trading calendar's sessions a year, when the run has one
            (see :func:`annualization`).

    Returns:
        A dict of floats with the keys below. ``r`` is the per-period simple return of equity,
        with ``r[0] = equity[0] / initial_cash - 1``; ``x = r - rf`` the excess return over the
        per-period risk-free rate; ``ppy`` the periods per year.

        - ``total_return``: ``equity[-1] / initial_cash - 1``. With capital flows (a non-zero
          ``flows`` column) ``r`` is time-weighted and ``equity`` here and in the drawdowns,
          CAGR and Calmar is the time-weighted index :func:`performance_curve`.
        - ``cagr``: ``(1 + total_return) ** (1 / years) - 1``, ``years`` = first to last equity
          timestamp in 365.25-day years (calendar time, as quantstats; empyrical counts
          ``len(r) / ppy`` years instead).
        - ``volatility``: ``std(r, ddof=1) * sqrt(ppy)``.
        - ``sharpe``: ``mean(x) / std(x, ddof=1) * sqrt(ppy)``.
        - ``sortino``: ``mean(x) / sqrt(mean(min(x, 0) ** 2)) * sqrt(ppy)``, the downside
          deviation taken over all periods.
        - ``calmar``: ``cagr / |max_drawdown|`` (NaN when there was no drawdown).
        - ``max_drawdown``: the lowest drawdown, ``min(equity / running_peak - 1)`` (≤ 0, e.g.
          ``-0.2`` for a 20 % fall); the peak starts at ``initial_cash``.
        - ``max_drawdown_duration``: the longest time from a peak to the first point back at that
          peak (or to the end of the data, if it never recovers), in periods. The starting
          capital counts as the point one period before the first row. 0 when equity never fell
          below its running peak.
        - ``max_drawdown_duration_days``: the same span in calendar days (of 86,400 s), the
          longest over all drawdowns; a drawdown from the starting capital is timed from the
          first timestamp.
        - ``skew``: ``m3 / m2 ** 1.5`` of ``r`` (population moments, scipy's default);
          ``kurtosis``: the excess kurtosis ``m4 / m2 ** 2 - 3``.
        - ``var_95``: the historical value at risk, the 5th percentile of ``r`` (linear
          interpolation, ≤ 0 for a loss); ``cvar_95``: the mean of the worst
          ``int((n - 1) * 0.05) + 1`` returns (empyrical's expected shortfall).
        - ``tail_ratio``: ``|95th percentile| / |5th percentile|`` of ``r``.
        - ``omega``: ``sum(max(x, 0)) / sum(max(-x, 0))``, threshold the risk-free rate.
        - ``stability``: R² of a straight line fitted to the cumulative log return
          ``cumsum(log(1 + r))`` against the period number.
        - ``best_period``, ``worst_period``: the highest and lowest ``r``.
        - ``win_rate``: share of closed trades with ``net_pnl > 0``.
        - ``profit_factor``: sum of positive ``net_pnl`` / |sum of negative ``net_pnl``| over
          closed trades; ``inf`` when there are wins and no losses.
        - ``expectancy``: mean ``net_pnl`` per closed trade (currency).
        - ``avg_win``: mean ``net_pnl`` of the closed trades with ``net_pnl > 0`` (currency).
        - ``avg_loss``: mean ``net_pnl`` of the closed trades with ``net_pnl < 0`` (currency,
          negative).
        - ``payoff_ratio``: ``avg_win / |avg_loss|``.
        - ``num_trades``: number of closed trades.
        - ``turnover``: annualised turnover, ``sum(|quantity| * price * multiplier) /
          mean(equity) / years``; one unit means trading the average equity once per year
          (a full buy-then-sell round trip of the book counts as 2).
        - ``avg_gross_exposure``: mean over periods of ``gross_exposure / equity`` (notional:
          ``long_value - short_value`` for shares, a future's notional, not its marked value)
          (``short_value`` is negative), e.g. 1.0 for a fully invested long book.
        - ``avg_net_exposure``: mean over periods of ``(long_value + short_value) / equity``.
        - ``total_commission``, ``total_slippage``: sums of the fills' columns (in base, each
          at its ``fx_rate``);
          ``total_borrow_fees`` and ``total_interest`` (signed: + earned) from the equity curve's
          ``borrow_fee`` / ``interest`` columns when present (else 0); ``total_funding``
          (signed: + received) from its ``funding`` column (crypto perpetuals); ``total_costs`` =
          commission + slippage + borrow fees - interest - funding. Slippage is already inside
          the fill prices (and so inside the PnL); it is reported here to show what it cost.
        - ``total_dividends``: the equity curve's ``dividend`` column summed (signed: +
          received on longs, - paid on shorts); income, not in ``total_costs``;
          ``dividends_received`` and ``dividends_paid`` (both >= 0) its two sides, from the
          ``dividend_paid`` column (``total_dividends = received - paid``).
        - ``non_member_pnl`` (only for a run with a point-in-time universe, added by
          :meth:`~ml4t.backtest.results.BacktestResult.metrics`): the PnL earned on positions
          while their asset was not a member (``result.non_member_pnl`` summed).
        - ``irr``: the money-weighted annual return of :func:`irr` (the CAGR without flows);
          ``total_flows``: the ``flows`` column summed (+ net deposits).
        - ``periods_per_year``: the value used; ``risk_free``: the mean per-period risk-free
          rate, annualised as ``(1 + mean) ** ppy - 1``.
        - with ``benchmark`` only (over the periods where it is known; ``y = b - rf``):
          ``beta`` = ``cov(x, y) / var(y)``; ``alpha`` = ``(1 + mean(x - beta * y)) ** ppy - 1``
          (Jensen's alpha, annualised by compounding as empyrical); ``information_ratio`` =
          ``mean(r - b) / std(r - b, ddof=1) * sqrt(ppy)``; ``up_capture`` /
          ``down_capture``: the annualised compound return of ``r`` over the periods when
          ``b > 0`` (``b < 0``) divided by that of ``b`` over the same periods.

        A metric that is undefined (fewer than 2 returns, zero std or downside deviation, no
        elapsed time, no closed trades, no winning or no losing trade, non-positive equity for
        the exposures, ...) is NaN and a ``RuntimeWarning`` names it.

    Raises:
        ValueError: if ``initial_cash`` or a given ``periods_per_year`` is not a positive finite
            number, the equity timestamps are not a valid Date/Datetime column, ``benchmark``
            does not have one value per equity row, or ``risk_free`` is not a finite rate or a
            series of one per equity row.

    Example:
        >>> from datetime import datetime
        >>> import polars as pl
        >>> equity = pl.DataFrame({
        ...     "timestamp": [datetime(2024, 1, 1), datetime(2025, 1, 1)],
        ...     "long_value": [98.0, 0.0], "short_value": [0.0, 0.0],
        ...     "equity": [98.0, 110.0],
        ... })
        >>> trades = pl.DataFrame({"status": ["closed", "closed"], "net_pnl": [12.0, -2.0]})
        >>> fills = pl.DataFrame({"quantity": [1.0, 1.0], "price": [100.0, 110.0],
        ...                       "slippage": [0.0, 0.0], "commission": [0.5, 0.5]})
        >>> m = compute_metrics(equity, trades, fills, initial_cash=100.0, periods_per_year=1.0)
        >>> round(m["total_return"], 4), m["num_trades"], m["total_commission"], m["expectancy"]
        (0.1, 2.0, 1.0, 5.0)
    """
    if not (math.isfinite(initial_cash) and initial_cash > 0.0):
        raise ValueError(f"initial_cash must be a positive finite number, got {initial_cash}")
    if periods_per_year is not None and periods_per_year != "infer":
        annualization(pl.Series([0, 1], dtype=pl.Datetime("ns")), periods_per_year)  # checks it
    if benchmark is not None and benchmark.len() != equity.height:
        raise ValueError(
            f"benchmark must have one return per equity row ({equity.height}), "
            f"got {benchmark.len()}"
        )
    undefined = _Undefined()

    eq = equity.get_column("equity").cast(pl.Float64).to_numpy()
    n = eq.shape[0]
    timestamps = equity.get_column("timestamp")
    # The curve returns are read from: equity, or its time-weighted index with capital flows.
    flows = _flows(equity)
    perf = eq if flows is None else performance_curve(equity, initial_cash)

    # Calendar time and periods per year.
    years = _elapsed_seconds(timestamps) / SECONDS_PER_YEAR if n >= 2 else 0.0
    if periods_per_year is not None and periods_per_year != "infer":
        ppy = float(periods_per_year)
    elif n >= 2 and years > 0.0:
        ppy = annualization(timestamps, periods_per_year, sessions_per_year).periods_per_year
    else:
        ppy = undefined(
            "periods_per_year",
            f"it cannot be inferred from {n} equity timestamp(s) spanning "
            f"{years * SECONDS_PER_YEAR} s",
        )
    rf = risk_free_per_period(risk_free, n, ppy)

    # Returns-based metrics.
    if n == 0:
        total_return = undefined("total_return", "the equity curve is empty")
    else:
        total_return = float(perf[-1] / initial_cash - 1.0)

    if n == 0:
        cagr = undefined("cagr", "the equity curve is empty")
    elif years <= 0.0:
        cagr = undefined("cagr", "no calendar time elapsed between the equity timestamps")
    elif 1.0 + total_return < 0.0:
        cagr = undefined("cagr", "final equity is negative")
    else:
        with np.errstate(over="ignore"):  # a short, steep curve may annualise to inf
            cagr = float(np.power(1.0 + total_return, 1.0 / years) - 1.0)

    returns = period_returns(eq, initial_cash, flows)
    returns_reason = _returns_problem(n, returns, ppy)
    if returns_reason is not None:
        volatility = undefined("volatility", returns_reason)
        sharpe = undefined("sharpe", returns_reason)
        sortino = undefined("sortino", returns_reason)
    else:
        sqrt_ppy = math.sqrt(ppy)
        excess = returns - rf
        mean = float(excess.mean())
        std = float(returns.std(ddof=1))
        std_excess = float(excess.std(ddof=1))
        downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))
        volatility = std * sqrt_ppy
        if std_excess <= _ZERO_STD_TOL:
            sharpe = undefined("sharpe", "the standard deviation of returns is zero")
        else:
            sharpe = mean / std_excess * sqrt_ppy
        if downside <= _ZERO_STD_TOL:
            sortino = undefined("sortino", "no period has a return below the risk-free rate")
        else:
            sortino = mean / downside * sqrt_ppy
    distribution = _distribution_metrics(returns, rf, n, undefined)

    if n == 0:
        max_drawdown = undefined("max_drawdown", "the equity curve is empty")
        dd_periods = undefined("max_drawdown_duration", "the equity curve is empty")
        dd_days = undefined("max_drawdown_duration_days", "the equity curve is empty")
    else:
        max_drawdown = float(np.min(drawdown(perf, initial_cash)))
        ts_ns = timestamps.cast(pl.Datetime("ns")).to_physical().to_numpy()
        dd_periods, dd_days = _drawdown_durations(perf, ts_ns, initial_cash)

    if math.isnan(cagr):
        calmar = undefined("calmar", "cagr is undefined")
    elif not max_drawdown < 0.0:
        calmar = undefined("calmar", "there was no drawdown")
    else:
        calmar = cagr / -max_drawdown

    trade_stats = _trade_metrics(trades, undefined)

    # Fill statistics.
    if fills.height == 0:
        notional = total_commission = total_slippage = 0.0
    else:
        size = pl.col("quantity").abs() * pl.col("price")
        if "multiplier" in fills.columns:
            size = size * pl.col("multiplier")
        # Fills are in their asset's currency: metrics are in base, at each fill's rate.
        rate = pl.col("fx_rate") if "fx_rate" in fills.columns else pl.lit(1.0)
        notional = float(fills.select((size * rate).sum()).item())
        total_commission = float(fills.select((pl.col("commission") * rate).sum()).item())
        total_slippage = float(fills.select((pl.col("slippage") * rate).sum()).item())

    mean_equity = float(eq.mean()) if n > 0 else _NAN
    if years <= 0.0:
        turnover = undefined("turnover", "no calendar time elapsed between the equity timestamps")
    elif not mean_equity > 0.0:
        turnover = undefined("turnover", "mean equity is not positive")
    else:
        turnover = notional / mean_equity / years

    gross_exposure, net_exposure = _exposures(equity, eq, undefined)

    total_borrow = (
        float(equity.get_column("borrow_fee").sum()) if "borrow_fee" in equity.columns else 0.0
    )
    total_interest = (
        float(equity.get_column("interest").sum()) if "interest" in equity.columns else 0.0
    )
    total_dividends = (
        float(equity.get_column("dividend").sum()) if "dividend" in equity.columns else 0.0
    )
    dividends_paid = (
        float(equity.get_column("dividend_paid").sum())
        if "dividend_paid" in equity.columns
        else 0.0
    )
    total_funding = (
        float(equity.get_column("funding").sum()) if "funding" in equity.columns else 0.0
    )
    mean_rf = float(rf.mean()) if n else 0.0
    money_weighted = irr(equity, initial_cash) if n >= 2 and years > 0.0 else _NAN
    if math.isnan(money_weighted):
        money_weighted = undefined(
            "irr", "no elapsed time, negative final equity or no rate solves the cash flows"
        )
    total_flows = float(flows.sum()) if flows is not None else 0.0
    out = {
        "total_return": total_return,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "max_drawdown": max_drawdown,
        "max_drawdown_duration": dd_periods,
        "max_drawdown_duration_days": dd_days,
        **distribution,
        **trade_stats,
        "turnover": turnover,
        "avg_gross_exposure": gross_exposure,
        "avg_net_exposure": net_exposure,
        "total_commission": total_commission,
        "total_slippage": total_slippage,
        "total_borrow_fees": total_borrow,
        "total_interest": total_interest,
        "total_dividends": total_dividends,
        "dividends_received": total_dividends + dividends_paid,
        "dividends_paid": dividends_paid,
        "total_funding": total_funding,
        "total_costs": (
            total_commission + total_slippage + total_borrow - total_interest - total_funding
        ),
        "irr": money_weighted,
        "total_flows": total_flows,
        "periods_per_year": ppy,
        "risk_free": (1.0 + mean_rf) ** ppy - 1.0 if mean_rf else 0.0,
    }
    if benchmark is not None:
        out.update(_benchmark_metrics(returns, benchmark, rf, ppy, undefined))
    undefined.emit()
    return out


def _distribution_metrics(
    returns: npt.NDArray[np.float64], rf: npt.NDArray[np.float64], n: int, undefined: _Undefined
) -> dict[str, float]:
    """Skew, kurtosis, VaR, CVaR, tail ratio, Omega, stability, best and worst period."""
    names = (
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
    reason = _returns_problem(n, returns, 1.0)
    if reason is not None:
        return {name: undefined(name, reason) for name in names}
    out: dict[str, float] = {}
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= _ZERO_STD_TOL**2:
        out["skew"] = undefined("skew", "the standard deviation of returns is zero")
        out["kurtosis"] = undefined("kurtosis", "the standard deviation of returns is zero")
    else:
        out["skew"] = float(np.mean(centred**3) / m2**1.5)
        out["kurtosis"] = float(np.mean(centred**4) / m2**2 - 3.0)
    low, high = (float(v) for v in np.percentile(returns, [5.0, 95.0]))
    out["var_95"] = low
    cut = int((n - 1) * 0.05)
    out["cvar_95"] = float(np.mean(np.partition(returns, cut)[: cut + 1]))
    if low == 0.0:
        out["tail_ratio"] = undefined("tail_ratio", "the 5th percentile of returns is zero")
    else:
        out["tail_ratio"] = abs(high) / abs(low)
    excess = returns - rf
    gains, losses = float(excess[excess > 0.0].sum()), float(-excess[excess < 0.0].sum())
    if losses <= 0.0:
        out["omega"] = undefined("omega", "no period has a return below the risk-free rate")
    else:
        out["omega"] = gains / losses
    if np.any(returns <= -1.0):
        out["stability"] = undefined("stability", "equity reached zero")
    else:
        log_equity = np.cumsum(np.log1p(returns))
        spread = float(np.var(log_equity))
        if spread <= _ZERO_STD_TOL**2:
            out["stability"] = undefined("stability", "the equity curve is flat")
        else:
            corr = float(np.corrcoef(np.arange(n, dtype=np.float64), log_equity)[0, 1])
            out["stability"] = corr * corr
    out["best_period"] = float(returns.max())
    out["worst_period"] = float(returns.min())
    return {name: out[name] for name in names}


def _returns_problem(n: int, returns: npt.NDArray[np.float64], ppy: float) -> str | None:
    """Why the returns cannot be annualised, or None when they can."""
    if n < 2:
        return f"{n} period return(s), at least 2 are needed"
    if not np.all(np.isfinite(returns)):
        return "a period return is not finite (equity reached zero)"
    if not math.isfinite(ppy):
        return "periods_per_year is undefined, so it cannot be annualised"
    return None


def _trade_metrics(trades: pl.DataFrame, undefined: _Undefined) -> dict[str, float]:
    """Win rate, profit factor, expectancy, average win and loss, payoff ratio, trade count."""
    if trades.height == 0:
        pnl = np.empty(0, dtype=np.float64)
    else:
        pnl = (
            trades.filter(pl.col("status") == "closed")
            .get_column("net_pnl")
            .cast(pl.Float64)
            .to_numpy()
        )
    wins = pnl[pnl > 0.0]
    losses = pnl[pnl < 0.0]
    if pnl.shape[0] == 0:
        reason = "there are no closed trades"
        win_rate = undefined("win_rate", reason)
        profit_factor = undefined("profit_factor", reason)
        expectancy = undefined("expectancy", reason)
    else:
        win_rate = float(wins.shape[0] / pnl.shape[0])
        expectancy = float(pnl.mean())
        gains = float(wins.sum())
        lost = float(-losses.sum())
        if lost > 0.0:
            profit_factor = gains / lost
        elif gains > 0.0:
            profit_factor = math.inf
        else:
            profit_factor = undefined("profit_factor", "no closed trade has a non-zero net_pnl")
    if wins.shape[0] == 0:
        avg_win = undefined("avg_win", "no closed trade has a positive net_pnl")
    else:
        avg_win = float(wins.mean())
    if losses.shape[0] == 0:
        avg_loss = undefined("avg_loss", "no closed trade has a negative net_pnl")
    else:
        avg_loss = float(losses.mean())
    if math.isnan(avg_win) or math.isnan(avg_loss):
        payoff_ratio = undefined("payoff_ratio", "it needs both a winning and a losing trade")
    else:
        payoff_ratio = avg_win / -avg_loss
    return {
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "expectancy": expectancy,
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "payoff_ratio": payoff_ratio,
        "num_trades": float(pnl.shape[0]),
    }


def _exposures(
    equity: pl.DataFrame, eq: npt.NDArray[np.float64], undefined: _Undefined
) -> tuple[float, float]:
    """Average gross and net exposure as fractions of equity."""
    reason = None
    if "long_value" not in equity.columns or "short_value" not in equity.columns:
        reason = "the equity frame has no long_value/short_value columns"
    elif eq.shape[0] == 0:
        reason = "the equity curve is empty"
    elif not np.all(eq > 0.0):
        reason = "equity is not positive at every period"
    if reason is not None:
        return undefined("avg_gross_exposure", reason), undefined("avg_net_exposure", reason)
    if "gross_exposure" in equity.columns and "net_exposure" in equity.columns:
        # The result's notional exposure (a future's notional, not its unsettled PnL).
        gross = equity.get_column("gross_exposure").cast(pl.Float64).to_numpy()
        net = equity.get_column("net_exposure").cast(pl.Float64).to_numpy()
        return float(np.mean(gross / eq)), float(np.mean(net / eq))
    long = equity.get_column("long_value").cast(pl.Float64).to_numpy()
    short = equity.get_column("short_value").cast(pl.Float64).to_numpy()
    return float(np.mean((long - short) / eq)), float(np.mean((long + short) / eq))


def _benchmark_metrics(
    returns: npt.NDArray[np.float64],
    benchmark: pl.Series,
    rf: npt.NDArray[np.float64],
    ppy: float,
    undefined: _Undefined,
) -> dict[str, float]:
    """Alpha, beta, information ratio, up and down capture against per-period benchmark
    returns."""
    b = benchmark.cast(pl.Float64).fill_null(_NAN).to_numpy()
    keep = np.isfinite(b) & np.isfinite(returns)
    r, b, rf = returns[keep], b[keep], rf[keep]
    names = ("alpha", "beta", "information_ratio", "up_capture", "down_capture")
    reason = None
    if r.shape[0] < 2:
        reason = f"{r.shape[0]} period(s) with a benchmark return, at least 2 are needed"
    elif not math.isfinite(ppy):
        reason = "periods_per_year is undefined, so it cannot be annualised"
    if reason is not None:
        return {name: undefined(name, reason) for name in names}
    x, y = r - rf, b - rf
    y_centred = y - y.mean()
    var_y = float(np.mean(y_centred**2))
    if var_y <= _ZERO_STD_TOL**2:
        alpha = undefined("alpha", "the benchmark's returns have zero variance")
        beta = undefined("beta", "the benchmark's returns have zero variance")
    else:
        beta = float(np.mean(y_centred * x) / var_y)
        alpha = float((1.0 + np.mean(x - beta * y)) ** ppy - 1.0)
    active = r - b
    tracking = float(np.std(active, ddof=1))
    if tracking <= _ZERO_STD_TOL:
        information_ratio = undefined("information_ratio", "the tracking error is zero")
    else:
        information_ratio = float(np.mean(active) / tracking * math.sqrt(ppy))
    captures = {}
    for name, side in (("up_capture", b > 0.0), ("down_capture", b < 0.0)):
        if not side.any():
            captures[name] = undefined(name, f"the benchmark has no {name[:-8]} period")
            continue
        mine, theirs = _annual_return(r[side], ppy), _annual_return(b[side], ppy)
        if theirs == 0.0 or not math.isfinite(theirs):
            captures[name] = undefined(name, "the benchmark's return over those periods is zero")
        else:
            captures[name] = mine / theirs
    return {
        "alpha": alpha,
        "beta": beta,
        "information_ratio": information_ratio,
        **captures,
    }


def _annual_return(returns: npt.NDArray[np.float64], ppy: float) -> float:
    """Compound return annualised over ``len(returns) / ppy`` years (empyrical's
    ``annual_return``, the basis of its capture ratios)."""
    growth = float(np.prod(1.0 + returns))
    with np.errstate(over="ignore", invalid="ignore"):
        return float(growth ** (ppy / returns.shape[0]) - 1.0)
