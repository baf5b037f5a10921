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
import polars as pl

__all__ = ["SECONDS_PER_YEAR", "compute_metrics", "infer_periods_per_year"]

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


def _undefined(metric: str, reason: str) -> float:
    """Warn that ``metric`` is undefined and return NaN."""
    warnings.warn(
        f"metric {metric!r} is undefined: {reason}; reporting NaN", RuntimeWarning, stacklevel=3
    )
    return _NAN


def compute_metrics(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    *,
    initial_cash: float,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """Compute summary performance metrics from a backtest's result frames.

    Args:
        equity: ``result.equity``; uses the ``timestamp`` and ``equity`` columns, one row per
            timestamp in time order.
        trades: ``result.trades``; uses ``status`` and ``net_pnl``. Only ``status == "closed"``
            trades count.
        fills: ``result.fills``; uses ``quantity`` (absolute), ``price``, ``slippage`` and
            ``commission``.
        initial_cash: starting capital (> 0); the base of the first return and of the drawdown
            peak.
        periods_per_year: periods per year used to annualise; ``None`` infers it from
            ``equity["timestamp"]`` with :func:`infer_periods_per_year`.

    Returns:
        A dict of floats with the keys

        - ``total_return``: ``equity[-1] / initial_cash - 1``.
        - ``cagr``: ``(1 + total_return) ** (1 / years) - 1``, ``years`` = first to last equity
          timestamp in 365.25-day years.
        - ``volatility``: ``std(r, ddof=1) * sqrt(periods_per_year)``.
        - ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``.
        - ``sortino``: ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(periods_per_year)``, the
          downside deviation taken over all periods.
        - ``max_drawdown``: largest fall from a running peak as a positive fraction of the peak;
          the peak starts at ``initial_cash``.
        - ``win_rate``: share of closed trades with ``net_pnl > 0``.
        - ``profit_factor``: sum of positive ``net_pnl`` / |sum of negative ``net_pnl``| over
          closed trades; ``inf`` when there are wins and no losses.
        - ``num_trades``: number of closed trades.
        - ``turnover``: annualised turnover, ``sum(|quantity| * price over fills) /
          mean(equity) / years``; one unit means trading the average equity once per year
          (a full buy-then-sell round trip of the book counts as 2).
        - ``total_commission``, ``total_slippage``: sums of the fills' columns.
        - ``periods_per_year``: the value used.

        ``r`` is the per-period simple return of equity, with ``r[0] = equity[0] / initial_cash -
        1``. A metric that is undefined (fewer than 2 returns, zero std or downside deviation, no
        elapsed time, no closed trades, ...) is NaN and a ``RuntimeWarning`` names it.

    Raises:
        ValueError: if ``initial_cash`` or a given ``periods_per_year`` is not a positive finite
            number, or the equity timestamps are not a valid Date/Datetime column.

    Example:
        >>> from datetime import datetime
        >>> import polars as pl
        >>> equity = pl.DataFrame({
        ...     "timestamp": [datetime(2024, 1, 1), datetime(2025, 1, 1)],
        ...     "equity": [98.0, 110.0],
        ... })
        >>> trades = pl.DataFrame({"status": ["closed"], "net_pnl": [10.0]})
        >>> fills = pl.DataFrame({"quantity": [1.0, 1.0], "price": [100.0, 110.0],
        ...                       "slippage": [0.0, 0.0], "commission": [0.5, 0.5]})
        >>> m = compute_metrics(equity, trades, fills, initial_cash=100.0, periods_per_year=1.0)
        >>> round(m["total_return"], 4), m["num_trades"], m["total_commission"]
        (0.1, 1.0, 1.0)
    """
    if not (math.isfinite(initial_cash) and initial_cash > 0.0):
        raise ValueError(f"initial_cash must be a positive finite number, got {initial_cash}")
    if periods_per_year is not None and not (
        math.isfinite(periods_per_year) and periods_per_year > 0.0
    ):
        raise ValueError(
            f"periods_per_year must be a positive finite number or None, got {periods_per_year}"
        )

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
        ppy = _undefined(
            "periods_per_year",
            f"it cannot be inferred from {n} equity timestamp(s) spanning "
            f"{years * SECONDS_PER_YEAR} s",
        )

    # Returns-based metrics.
    if n == 0:
        total_return = _undefined("total_return", "the equity curve is empty")
    else:
        total_return = float(eq[-1] / initial_cash - 1.0)

    if n == 0:
        cagr = _undefined("cagr", "the equity curve is empty")
    elif years <= 0.0:
        cagr = _undefined("cagr", "no calendar time elapsed between the equity timestamps")
    elif 1.0 + total_return < 0.0:
        cagr = _undefined("cagr", "final equity is negative")
    else:
        with np.errstate(over="ignore"):  # a short, steep curve may annualise to inf
            cagr = float(np.power(1.0 + total_return, 1.0 / years) - 1.0)

    prev = np.concatenate(([initial_cash], eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = eq / prev - 1.0

    if n < 2:
        reason = f"{n} period return(s), at least 2 are needed"
        volatility = _undefined("volatility", reason)
        sharpe = _undefined("sharpe", reason)
        sortino = _undefined("sortino", reason)
    elif not np.all(np.isfinite(returns)):
        reason = "a period return is not finite (equity reached zero)"
        volatility = _undefined("volatility", reason)
        sharpe = _undefined("sharpe", reason)
        sortino = _undefined("sortino", reason)
    elif not math.isfinite(ppy):
        reason = "periods_per_year is undefined, so it cannot be annualised"
        volatility = _undefined("volatility", reason)
        sharpe = _undefined("sharpe", reason)
        sortino = _undefined("sortino", reason)
    else:
        sqrt_ppy = math.sqrt(ppy)
        mean = float(returns.mean())
        std = float(returns.std(ddof=1))
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        volatility = std * sqrt_ppy
        if std <= _ZERO_STD_TOL:
            sharpe = _undefined("sharpe", "the standard deviation of returns is zero")
        else:
            sharpe = mean / std * sqrt_ppy
        if downside <= _ZERO_STD_TOL:
            sortino = _undefined("sortino", "no period has a negative return")
        else:
            sortino = mean / downside * sqrt_ppy

    if n == 0:
        max_drawdown = _undefined("max_drawdown", "the equity curve is empty")
    else:
        curve = np.concatenate(([initial_cash], eq))
        peak = np.maximum.accumulate(curve)
        max_drawdown = float(np.max(1.0 - curve / peak))

    # Trade statistics over closed trades.
    if trades.height == 0:
        pnl = np.empty(0, dtype=np.float64)
    else:
        pnl = (
            trades.filter(pl.col("status") == "closed")
            .get_column("net_pnl")
            .cast(pl.Float64)
            .to_numpy()
        )
    num_trades = float(pnl.shape[0])
    if pnl.shape[0] == 0:
        win_rate = _undefined("win_rate", "there are no closed trades")
        profit_factor = _undefined("profit_factor", "there are no closed trades")
    else:
        win_rate = float(np.count_nonzero(pnl > 0.0) / pnl.shape[0])
        gains = float(pnl[pnl > 0.0].sum())
        losses = float(-pnl[pnl < 0.0].sum())
        if losses > 0.0:
            profit_factor = gains / losses
        elif gains > 0.0:
            profit_factor = math.inf
        else:
            profit_factor = _undefined("profit_factor", "no closed trade has a non-zero net_pnl")

    # Fill statistics.
    if fills.height == 0:
        notional = total_commission = total_slippage = 0.0
    else:
        notional = float(fills.select((pl.col("quantity").abs() * pl.col("price")).sum()).item())
        total_commission = float(fills.get_column("commission").sum())
        total_slippage = float(fills.get_column("slippage").sum())

    mean_equity = float(eq.mean()) if n > 0 else _NAN
    if years <= 0.0:
        turnover = _undefined("turnover", "no calendar time elapsed between the equity timestamps")
    elif not mean_equity > 0.0:
        turnover = _undefined("turnover", "mean equity is not positive")
    else:
        turnover = notional / mean_equity / years

    return {
        "total_return": total_return,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_drawdown,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "num_trades": num_trades,
        "turnover": turnover,
        "total_commission": total_commission,
        "total_slippage": total_slippage,
        "periods_per_year": ppy,
    }
