"""Performance metrics computed from a backtest's result frames.

The functions here work on the Polars frames a backtest returns (``result.equity``,
``result.trades``, ``result.fills``, see ``docs/api_contract.md``) and are pure: the same frames
give the same numbers.

Conventions:

- Per-period returns are simple returns of the equity curve, and the first period is measured
  from the starting capital: ``r[0] = equity[0] / initial_cash - 1``,
  ``r[i] = equity[i] / equity[i-1] - 1``.
- Calendar time is measured between the first and the last equity timestamp, in years of
  365.25 days.
- Ratios are annualised with ``periods_per_year``; when it is not given it is inferred from the
  equity timestamps with :func:`infer_periods_per_year`. The risk-free rate is zero.
- A metric that cannot be computed honestly (too few observations, a zero denominator, no closed
  trades) is ``NaN`` and a :class:`RuntimeWarning` naming the metric is emitted. A misleading
  number is never returned in its place.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "SECONDS_PER_YEAR",
    "compute_metrics",
    "drawdown",
    "infer_periods_per_year",
    "monthly_returns",
    "period_returns",
    "rolling_sharpe",
]

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


class _Undefined:
    """Collects the metrics that are undefined; :meth:`emit` warns once per metric."""

    def __init__(self) -> None:
        self.reasons: list[tuple[str, str]] = []

    def __call__(self, metric: str, reason: str) -> float:
        self.reasons.append((metric, reason))
        return _NAN

    def emit(self) -> None:
        # stacklevel 3: emit -> compute_metrics -> the caller of compute_metrics
        for metric, reason in self.reasons:
            warnings.warn(
                f"metric {metric!r} is undefined: {reason}; reporting NaN",
                RuntimeWarning,
                stacklevel=3,
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


def rolling_sharpe(returns: pl.Series, window: int, periods_per_year: float) -> pl.Series:
    """Annualised Sharpe ratio over a trailing window of ``window`` periods.

    ``mean / std(ddof=1) * sqrt(periods_per_year)`` of the last ``window`` returns; null for the
    first ``window - 1`` periods and NaN where the window's standard deviation is zero.

    Example:
        >>> r = pl.Series([0.01, 0.03, -0.01, 0.02])
        >>> rolling_sharpe(r, 3, 4.0).round(4).to_list()
        [None, None, 1.0, 1.281]
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    r = returns.cast(pl.Float64)
    mean = r.rolling_mean(window)
    std = r.rolling_std(window, ddof=1)
    ratio = (
        pl.select(
            pl.when(std > _ZERO_STD_TOL)
            .then(mean / std * math.sqrt(periods_per_year))
            .otherwise(pl.when(std.is_null()).then(None).otherwise(_NAN))
        )
        .to_series()
        .alias("rolling_sharpe")
    )
    return ratio


def period_returns(
    equity: pl.Series | npt.ArrayLike, initial_cash: float
) -> npt.NDArray[np.float64]:
    """Per-period simple returns, the first measured from ``initial_cash``.

    Example:
        >>> period_returns([110.0, 99.0], 100.0).round(4).tolist()
        [0.1, -0.1]
    """
    eq = np.asarray(equity, dtype=np.float64)
    prev = np.concatenate(([initial_cash], eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = eq / prev - 1.0
    return out


def compute_metrics(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    *,
    initial_cash: float,
    periods_per_year: float | None = None,
    benchmark: pl.Series | None = None,
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
        periods_per_year: periods per year used to annualise; ``None`` infers it from
            ``equity["timestamp"]`` with :func:`infer_periods_per_year`.
        benchmark: optional per-period benchmark returns aligned with the equity rows (same
            length; ``benchmark[i]`` is the benchmark's return over the period of ``r[i]``).
            Null or NaN entries drop that period from the benchmark statistics. When given, the
            result also has ``alpha``, ``beta`` and ``information_ratio``.
            :meth:`BacktestResult.metrics_vs` builds this series from prices or returns.

    Returns:
        A dict of floats with the keys

        - ``total_return``: ``equity[-1] / initial_cash - 1``.
        - ``cagr``: ``(1 + total_return) ** (1 / years) - 1``, ``years`` = first to last equity
          timestamp in 365.25-day years.
        - ``volatility``: ``std(r, ddof=1) * sqrt(periods_per_year)``.
        - ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``.
        - ``sortino``: ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(periods_per_year)``, the
          downside deviation taken over all periods.
        - ``calmar``: ``cagr / max_drawdown`` (NaN when there was no drawdown).
        - ``max_drawdown``: largest fall from a running peak as a positive fraction of the peak;
          the peak starts at ``initial_cash``.
        - ``max_drawdown_duration``: the longest time from a peak to the first point back at that
          peak (or to the end of the data, if it never recovers), in periods. The starting
          capital counts as the point one period before the first row. 0 when equity never fell
          below its running peak.
        - ``max_drawdown_duration_days``: the same span in calendar days (of 86,400 s), the
          longest over all drawdowns; a drawdown from the starting capital is timed from the
          first timestamp.
        - ``win_rate``: share of closed trades with ``net_pnl > 0``.
        - ``profit_factor``: sum of positive ``net_pnl`` / |sum of negative ``net_pnl``| over
          closed trades; ``inf`` when there are wins and no losses.
        - ``expectancy``: mean ``net_pnl`` per closed trade (currency).
        - ``avg_win``: mean ``net_pnl`` of the closed trades with ``net_pnl > 0`` (currency).
        - ``avg_loss``: mean ``net_pnl`` of the closed trades with ``net_pnl < 0`` (currency,
          negative).
        - ``payoff_ratio``: ``avg_win / |avg_loss|``.
        - ``num_trades``: number of closed trades.
        - ``turnover``: annualised turnover, ``sum(|quantity| * price over fills) /
          mean(equity) / years``; one unit means trading the average equity once per year
          (a full buy-then-sell round trip of the book counts as 2).
        - ``avg_gross_exposure``: mean over periods of ``(long_value - short_value) / equity``
          (``short_value`` is negative), e.g. 1.0 for a fully invested long book.
        - ``avg_net_exposure``: mean over periods of ``(long_value + short_value) / equity``.
        - ``total_commission``, ``total_slippage``: sums of the fills' columns;
          ``total_borrow_fees`` and ``total_interest`` (signed: + earned) from the equity curve's
          ``borrow_fee`` / ``interest`` columns when present (else 0); ``total_costs`` =
          commission + slippage + borrow fees - interest. Slippage is already inside the fill
          prices (and so inside the PnL); it is reported here to show what it cost.
        - ``total_dividends``: the equity curve's ``dividend`` column summed (signed: +
          received on longs, - paid on shorts); income, not in ``total_costs``.
        - ``periods_per_year``: the value used.
        - with ``benchmark`` only: ``beta`` = ``cov(r, b) / var(b)`` (``ddof=1``); ``alpha`` =
          ``mean(r - beta * b) * periods_per_year`` (Jensen's alpha, risk-free rate zero,
          annualised arithmetically); ``information_ratio`` = ``mean(r - b) / std(r - b,
          ddof=1) * sqrt(periods_per_year)``, over the periods where the benchmark is known.

        ``r`` is the per-period simple return of equity, with ``r[0] = equity[0] / initial_cash -
        1``. A metric that is undefined (fewer than 2 returns, zero std or downside deviation, no
        elapsed time, no closed trades, no winning or no losing trade, non-positive equity for
        the exposures, ...) is NaN and a ``RuntimeWarning`` names it.

    Raises:
        ValueError: if ``initial_cash`` or a given ``periods_per_year`` is not a positive finite
            number, the equity timestamps are not a valid Date/Datetime column, or
            ``benchmark`` does not have one value per equity row.

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
    if periods_per_year is not None and not (
        math.isfinite(periods_per_year) and periods_per_year > 0.0
    ):
        raise ValueError(
            f"periods_per_year must be a positive finite number or None, got {periods_per_year}"
        )
    if benchmark is not None and benchmark.len() != equity.height:
        raise ValueError(
            f"benchmark must have one return per equity row ({equity.height}), "
            f"got {benchmark.len()}"
        )
    undefined = _Undefined()

    eq = equity.get_column("equity").cast(pl.Float64).to_numpy()
    n = eq.shape[0]
    timestamps = equity.get_column("timestamp")

    # Calendar time and periods per year.
    years = _elapsed_seconds(timestamps) / SECONDS_PER_YEAR if n >= 2 else 0.0
    if periods_per_year is not None:
        ppy = float(periods_per_year)
    elif n >= 2 and years > 0.0:
        ppy = infer_periods_per_year(timestamps)
    else:
        ppy = undefined(
            "periods_per_year",
            f"it cannot be inferred from {n} equity timestamp(s) spanning "
            f"{years * SECONDS_PER_YEAR} s",
        )

    # Returns-based metrics.
    if n == 0:
        total_return = undefined("total_return", "the equity curve is empty")
    else:
        total_return = float(eq[-1] / initial_cash - 1.0)

    if n == 0:
        cagr = undefined("cagr", "the equity curve is empty")
    elif years <= 0.0:
        cagr = undefined("cagr", "no calendar time elapsed between the equity timestamps")
    elif 1.0 + total_return < 0.0:
        cagr = undefined("cagr", "final equity is negative")
    else:
        with np.errstate(over="ignore"):  # a short, steep curve may annualise to inf
            cagr = float(np.power(1.0 + total_return, 1.0 / years) - 1.0)

    returns = period_returns(eq, initial_cash)
    returns_reason = _returns_problem(n, returns, ppy)
    if returns_reason is not None:
        volatility = undefined("volatility", returns_reason)
        sharpe = undefined("sharpe", returns_reason)
        sortino = undefined("sortino", returns_reason)
    else:
        sqrt_ppy = math.sqrt(ppy)
        mean = float(returns.mean())
        std = float(returns.std(ddof=1))
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        volatility = std * sqrt_ppy
        if std <= _ZERO_STD_TOL:
            sharpe = undefined("sharpe", "the standard deviation of returns is zero")
        else:
            sharpe = mean / std * sqrt_ppy
        if downside <= _ZERO_STD_TOL:
            sortino = undefined("sortino", "no period has a negative return")
        else:
            sortino = mean / downside * sqrt_ppy

    if n == 0:
        max_drawdown = undefined("max_drawdown", "the equity curve is empty")
        dd_periods = undefined("max_drawdown_duration", "the equity curve is empty")
        dd_days = undefined("max_drawdown_duration_days", "the equity curve is empty")
    else:
        max_drawdown = float(-np.min(drawdown(eq, initial_cash)))
        ts_ns = timestamps.cast(pl.Datetime("ns")).to_physical().to_numpy()
        dd_periods, dd_days = _drawdown_durations(eq, ts_ns, initial_cash)

    if math.isnan(cagr):
        calmar = undefined("calmar", "cagr is undefined")
    elif not max_drawdown > 0.0:
        calmar = undefined("calmar", "there was no drawdown")
    else:
        calmar = cagr / max_drawdown

    trade_stats = _trade_metrics(trades, undefined)

    # Fill statistics.
    if fills.height == 0:
        notional = total_commission = total_slippage = 0.0
    else:
        notional = float(fills.select((pl.col("quantity").abs() * pl.col("price")).sum()).item())
        total_commission = float(fills.get_column("commission").sum())
        total_slippage = float(fills.get_column("slippage").sum())

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
        **trade_stats,
        "turnover": turnover,
        "avg_gross_exposure": gross_exposure,
        "avg_net_exposure": net_exposure,
        "total_commission": total_commission,
        "total_slippage": total_slippage,
        "total_borrow_fees": total_borrow,
        "total_interest": total_interest,
        "total_dividends": total_dividends,
        "total_costs": total_commission + total_slippage + total_borrow - total_interest,
        "periods_per_year": ppy,
    }
    if benchmark is not None:
        out.update(_benchmark_metrics(returns, benchmark, ppy, undefined))
    undefined.emit()
    return out


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
    long = equity.get_column("long_value").cast(pl.Float64).to_numpy()
    short = equity.get_column("short_value").cast(pl.Float64).to_numpy()
    return float(np.mean((long - short) / eq)), float(np.mean((long + short) / eq))


def _benchmark_metrics(
    returns: npt.NDArray[np.float64], benchmark: pl.Series, ppy: float, undefined: _Undefined
) -> dict[str, float]:
    """Alpha (annualised), beta and information ratio against per-period benchmark returns."""
    b = benchmark.cast(pl.Float64).fill_null(_NAN).to_numpy()
    keep = np.isfinite(b) & np.isfinite(returns)
    r, b = returns[keep], b[keep]
    names = ("alpha", "beta", "information_ratio")
    reason = None
    if r.shape[0] < 2:
        reason = f"{r.shape[0]} period(s) with a benchmark return, at least 2 are needed"
    elif not math.isfinite(ppy):
        reason = "periods_per_year is undefined, so it cannot be annualised"
    if reason is not None:
        return {name: undefined(name, reason) for name in names}
    var_b = float(np.var(b, ddof=1))
    if var_b <= _ZERO_STD_TOL**2:
        alpha = undefined("alpha", "the benchmark's returns have zero variance")
        beta = undefined("beta", "the benchmark's returns have zero variance")
    else:
        beta = float(np.cov(r, b, ddof=1)[0, 1] / var_b)
        alpha = float(np.mean(r - beta * b) * ppy)
    active = r - b
    tracking = float(np.std(active, ddof=1))
    if tracking <= _ZERO_STD_TOL:
        information_ratio = undefined("information_ratio", "the tracking error is zero")
    else:
        information_ratio = float(np.mean(active) / tracking * math.sqrt(ppy))
    return {"alpha": alpha, "beta": beta, "information_ratio": information_ratio}
