"""Which way is better for every metric of ``result.metrics``: ``"max"`` (higher is better) or
``"min"`` (lower is better). :meth:`SweepResult.best`, :meth:`Sweep.optimize` and the sweep
report rank trials by it.

Conventions worth knowing: ``max_drawdown`` is negative (-0.2 is a 20 % fall, as empyrical
has it), so higher (closer to zero) is better; so is ``avg_loss``, negative too (the mean
losing trade); costs, volatility, turnover and drawdown durations are better lower; exposures are
ranked lower-is-better (less capital at work for the same outcome); ``num_trades`` higher (more
evidence); ``total_interest`` (interest earned net of interest paid) and ``total_dividends``
(dividends received net of those paid on shorts) are better higher, ``dividends_received``
higher and ``dividends_paid`` lower; ``non_member_pnl`` (PnL earned while a name was out of
the point-in-time universe) is ranked lower-is-better (less of the result from names the
index had dropped); ``irr`` (the
money-weighted return) higher; ``total_flows`` (net deposits, a property of the input, equal
across the trials) is listed as higher;
``var_95``, ``cvar_95`` and ``worst_period`` are negative returns, better closer to zero;
``skew`` is better higher (a right tail) and ``kurtosis`` lower (thinner tails);
``periods_per_year`` is a property of the data and ``risk_free`` the rate the config sets
(both equal across the trials of one feed).
"""

from __future__ import annotations

from typing import Literal

from ml4t.backtest.errors import ConfigError

Direction = Literal["max", "min"]

DIRECTIONS: dict[str, Direction] = {
    "total_return": "max",
    "cagr": "max",
    "volatility": "min",
    "sharpe": "max",
    "sortino": "max",
    "calmar": "max",
    "max_drawdown": "max",
    "max_drawdown_duration": "min",
    "max_drawdown_duration_days": "min",
    "win_rate": "max",
    "profit_factor": "max",
    "expectancy": "max",
    "avg_win": "max",
    "avg_loss": "max",
    "payoff_ratio": "max",
    "num_trades": "max",
    "turnover": "min",
    "avg_gross_exposure": "min",
    "avg_net_exposure": "min",
    "total_commission": "min",
    "total_slippage": "min",
    "total_borrow_fees": "min",
    "total_interest": "max",
    "total_dividends": "max",
    "dividends_received": "max",
    "dividends_paid": "min",
    "non_member_pnl": "min",
    "total_funding": "max",
    "irr": "max",
    "total_flows": "max",
    "total_costs": "min",
    "periods_per_year": "max",
    "skew": "max",
    "kurtosis": "min",
    "var_95": "max",
    "cvar_95": "max",
    "tail_ratio": "max",
    "omega": "max",
    "stability": "max",
    "best_period": "max",
    "worst_period": "max",
    "risk_free": "max",
    "alpha": "max",
    "beta": "min",
    "information_ratio": "max",
}
"""The direction of every metric ``result.metrics`` (and ``metrics_vs``) reports."""


def direction(metric: str, given: str | None = None, where: str = "metric") -> Direction:
    """``given`` when it is ``"max"``/``"min"``, else the documented direction of ``metric``.

    Raises:
        ConfigError: ``given`` is neither, or ``metric`` has no documented direction and none is
            given.
    """
    if given is not None:
        if given not in ("max", "min"):
            raise ConfigError(f"direction: expected 'max' or 'min', got {given!r}")
        return "max" if given == "max" else "min"
    found = DIRECTIONS.get(metric)
    if found is None:
        raise ConfigError(
            f"{where}: unknown metric {metric!r}: choose from {sorted(DIRECTIONS)} "
            "(or pass direction='max'/'min' for a metric of your own)"
        )
    return found
