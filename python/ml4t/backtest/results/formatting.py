"""Numbers for people: the metric catalogue (label, section, unit), value formatting, the text
and frame summaries and the notebook display of a result.

One catalogue serves ``result.summary()``, the notebook display and the HTML report, so a
metric has one label and one unit everywhere. Formatting rules: percentages as ``%`` with two
decimals (never ``-0.00%``), money with thousands separators and two decimals, counts without
decimals, whole share quantities without decimals, ratios with two decimals, ``n/a`` for an
undefined (NaN) metric.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from ml4t.backtest.results.view import ResultView

__all__ = [
    "METRICS",
    "MetricInfo",
    "fmt_money",
    "fmt_num",
    "fmt_pct",
    "fmt_quantity",
    "format_metric",
    "format_time",
    "period_text",
    "result_html",
    "summarize",
]

Unit = Literal[
    "pct", "pct_year", "ratio", "money", "count", "periods", "days", "per_year", "number"
]


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is shown: its label, its section and its unit."""

    label: str
    section: str
    unit: Unit

    @property
    def unit_text(self) -> str:
        """The unit as printed after the value (``%`` is part of the value itself)."""
        return {
            "pct": "",
            "pct_year": "/ yr",
            "ratio": "",
            "money": "",
            "count": "",
            "periods": "bars",
            "days": "days",
            "per_year": "x / yr",
            "number": "",
        }[self.unit]

    @property
    def unit_name(self) -> str:
        """The unit in words, for the summary frame."""
        return {
            "pct": "fraction",
            "pct_year": "fraction per year",
            "ratio": "ratio",
            "money": "currency",
            "count": "count",
            "periods": "periods",
            "days": "days",
            "per_year": "times per year",
            "number": "number",
        }[self.unit]


def _m(label: str, section: str, unit: Unit) -> MetricInfo:
    return MetricInfo(label, section, unit)


METRICS: dict[str, MetricInfo] = {
    "total_return": _m("Total return", "Returns", "pct"),
    "cagr": _m("CAGR", "Returns", "pct_year"),
    "irr": _m("IRR (money-weighted)", "Returns", "pct_year"),
    "volatility": _m("Volatility", "Returns", "pct_year"),
    "sharpe": _m("Sharpe ratio", "Returns", "ratio"),
    "sortino": _m("Sortino ratio", "Returns", "ratio"),
    "calmar": _m("Calmar ratio", "Returns", "ratio"),
    "omega": _m("Omega ratio", "Returns", "ratio"),
    "stability": _m("Stability (R² of log equity)", "Returns", "ratio"),
    "max_drawdown": _m("Max drawdown", "Drawdown", "pct"),
    "max_drawdown_duration": _m("Longest drawdown", "Drawdown", "periods"),
    "max_drawdown_duration_days": _m("Longest drawdown", "Drawdown", "days"),
    "skew": _m("Skew", "Distribution", "ratio"),
    "kurtosis": _m("Excess kurtosis", "Distribution", "ratio"),
    "var_95": _m("VaR 95% (one period)", "Distribution", "pct"),
    "cvar_95": _m("CVaR 95% (one period)", "Distribution", "pct"),
    "tail_ratio": _m("Tail ratio", "Distribution", "ratio"),
    "best_period": _m("Best period", "Distribution", "pct"),
    "worst_period": _m("Worst period", "Distribution", "pct"),
    "num_trades": _m("Closed trades", "Trades", "count"),
    "win_rate": _m("Win rate", "Trades", "pct"),
    "profit_factor": _m("Profit factor", "Trades", "ratio"),
    "expectancy": _m("Expectancy (per trade)", "Trades", "money"),
    "avg_win": _m("Average win", "Trades", "money"),
    "avg_loss": _m("Average loss", "Trades", "money"),
    "payoff_ratio": _m("Payoff ratio", "Trades", "ratio"),
    "turnover": _m("Turnover", "Exposure and costs", "per_year"),
    "avg_gross_exposure": _m("Average gross exposure", "Exposure and costs", "pct"),
    "avg_net_exposure": _m("Average net exposure", "Exposure and costs", "pct"),
    "total_commission": _m("Commission", "Exposure and costs", "money"),
    "total_slippage": _m("Slippage", "Exposure and costs", "money"),
    "total_borrow_fees": _m("Borrow fees", "Exposure and costs", "money"),
    "total_interest": _m("Interest (earned +)", "Exposure and costs", "money"),
    "total_funding": _m("Funding (received +)", "Exposure and costs", "money"),
    "total_costs": _m("Total costs", "Exposure and costs", "money"),
    "total_dividends": _m("Dividends (received +)", "Exposure and costs", "money"),
    "dividends_received": _m("Dividends received (longs)", "Exposure and costs", "money"),
    "dividends_paid": _m("Dividends paid (shorts)", "Exposure and costs", "money"),
    "total_flows": _m("Capital flows (net deposits +)", "Exposure and costs", "money"),
    "non_member_pnl": _m("PnL while not a universe member", "Universe", "money"),
    "alpha": _m("Alpha", "Benchmark", "pct_year"),
    "beta": _m("Beta", "Benchmark", "ratio"),
    "information_ratio": _m("Information ratio", "Benchmark", "ratio"),
    "up_capture": _m("Up capture", "Benchmark", "ratio"),
    "down_capture": _m("Down capture", "Benchmark", "ratio"),
    "periods_per_year": _m("Periods per year", "Annualisation", "number"),
    "risk_free": _m("Risk-free rate", "Annualisation", "pct_year"),
}
"""Every metric of :func:`~ml4t.backtest.results.metrics.compute_metrics`, in display order."""


def _special(value: float) -> str | None:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None


def _no_negative_zero(text: str) -> str:
    """``-0.00`` (a tiny negative rounded away) reads as ``0.00``."""
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


def fmt_pct(value: float, digits: int = 2) -> str:
    """``0.1234`` → ``12.34%``; NaN → ``n/a``; never ``-0.00%``."""
    special = _special(value)
    if special is not None:
        return special
    return _no_negative_zero(f"{value * 100:,.{digits}f}") + "%"


def fmt_num(value: float, digits: int = 2) -> str:
    """A number with thousands separators and ``digits`` decimals; NaN → ``n/a``."""
    special = _special(value)
    if special is not None:
        return special
    return _no_negative_zero(f"{value:,.{digits}f}")


def fmt_money(value: float) -> str:
    """Money: two decimals with thousands separators."""
    return fmt_num(value, 2)


def fmt_quantity(value: float) -> str:
    """A share quantity: whole numbers without decimals, fractions with up to 4."""
    special = _special(value)
    if special is not None:
        return special
    if float(value).is_integer():
        return f"{value:,.0f}"
    return _no_negative_zero(f"{value:,.4f}".rstrip("0").rstrip("."))


def format_metric(key: str, value: float) -> str:
    """A metric's value as shown (unit suffix not included; see :attr:`MetricInfo.unit_text`)."""
    info = METRICS.get(key)
    unit = info.unit if info is not None else "number"
    if unit in ("pct", "pct_year"):
        return fmt_pct(value)
    if unit in ("count", "periods"):
        return fmt_num(value, 0)
    if unit in ("days", "number"):
        return fmt_num(value, 1)
    return fmt_num(value, 2)


def format_time(value: Any, with_time: bool) -> str:
    """A timestamp as ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def has_time_of_day(ts: pl.Series) -> bool:
    """True when some timestamp is not at midnight (intraday data)."""
    if ts.len() == 0 or not isinstance(ts.dtype, pl.Datetime):
        return False
    midnight = (ts.dt.hour() == 0) & (ts.dt.minute() == 0) & (ts.dt.second() == 0)
    return not bool(midnight.all())


def period_text(result: ResultView) -> str:
    """``2020-01-01 → 2021-12-31 (504 timestamps, America/New_York)``."""
    ts = result.equity.get_column("timestamp")
    if ts.len() == 0:
        return "no timestamps"
    with_time = has_time_of_day(ts)
    zone = f", {result.time_zone}" if result.time_zone else ""
    return (
        f"{format_time(ts[0], with_time)} → {format_time(ts[-1], with_time)} "
        f"({ts.len():,} timestamps{zone})"
    )


def _annualization_text(result: ResultView) -> str:
    try:
        return result.annualization.detail
    except ValueError as err:
        return f"not defined ({err})"


def _rows(result: ResultView) -> list[tuple[str, str, str, float, MetricInfo]]:
    """(section, key, label, value, info) for the account figures and every metric."""
    metrics = result.metrics
    account = [
        ("initial_cash", "Initial cash", result.config.initial_cash),
        ("final_equity", "Final equity", result.final_equity),
    ]
    rows = [
        ("Account", key, label, value, MetricInfo(label, "Account", "money"))
        for key, label, value in account
    ]
    known = [key for key in METRICS if key in metrics]
    others = [key for key in metrics if key not in METRICS]
    for key in [*known, *others]:
        info = METRICS.get(key, MetricInfo(key, "Other", "number"))
        rows.append((info.section, key, info.label, float(metrics[key]), info))
    return rows


def summarize(result: ResultView, format: str) -> Any:
    """The body of :meth:`BacktestResult.summary`."""
    if format == "dict":
        ts = result.equity.get_column("timestamp")
        out: dict[str, Any] = {
            "start": ts[0] if ts.len() else None,
            "end": ts[-1] if ts.len() else None,
            "timestamps": ts.len(),
            "annualization": _annualization_text(result),
            "initial_cash": result.config.initial_cash,
            "final_equity": result.final_equity,
        }
        out.update(result.metrics)
        return out
    rows = _rows(result)
    if format == "frame":
        return pl.DataFrame(
            {
                "section": [r[0] for r in rows],
                "metric": [r[1] for r in rows],
                "label": [r[2] for r in rows],
                "value": [r[3] for r in rows],
                "unit": [r[4].unit_name for r in rows],
                "text": [
                    (format_metric(r[1], r[3]) if r[4].section != "Account" else fmt_money(r[3]))
                    + (f" {r[4].unit_text}" if r[4].unit_text else "")
                    for r in rows
                ],
            },
            schema={
                "section": pl.String,
                "metric": pl.String,
                "label": pl.String,
                "value": pl.Float64,
                "unit": pl.String,
                "text": pl.String,
            },
        )
    if format != "text":
        raise ValueError(f"format must be 'text', 'dict' or 'frame', got {format!r}")
    shown = [
        (
            section,
            label,
            format_metric(key, value) if info.section != "Account" else fmt_money(value),
            info.unit_text,
        )
        for section, key, label, value, info in rows
    ]
    label_width = max(len(s[1]) for s in shown) + 2
    value_width = max(len(s[2]) for s in shown)
    lines = [
        f"Backtest  {period_text(result)}",
        f"Annualised with {_annualization_text(result)}",
    ]
    section = None
    for name, label, value, unit in shown:
        if name != section:
            lines.append("")
            lines.append(name)
            section = name
        line = f"  {label.ljust(label_width)}{value.rjust(value_width)}"
        lines.append(f"{line}  {unit}".rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- notebook display

_HEADLINE = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "volatility",
    "win_rate",
    "num_trades",
)


def sparkline_svg(values: np.ndarray[Any, Any], width: int = 320, height: int = 56) -> str:
    """A small inline SVG line of ``values`` (at most ``width`` points), no JavaScript."""
    finite = values[np.isfinite(values)]
    if finite.shape[0] < 2:
        return ""
    step = max(1, math.ceil(finite.shape[0] / width))
    points = finite[::step]
    if points[-1] != finite[-1]:
        points = np.append(points, finite[-1])
    low, high = float(points.min()), float(points.max())
    span = high - low if high > low else 1.0
    xs = np.linspace(0.0, width, points.shape[0])
    ys = height - 2 - (points - low) / span * (height - 4)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="equity curve">'
        f'<polyline fill="none" stroke="#1f4e8c" stroke-width="1.5" points="{path}"/></svg>'
    )


def result_html(result: ResultView) -> str:
    """The notebook display of a result (``_repr_html_``)."""
    metrics = result.metrics
    cells = []
    for key in _HEADLINE:
        if key not in metrics:
            continue
        info = METRICS[key]
        value = format_metric(key, metrics[key])
        unit = f" {info.unit_text}" if info.unit_text else ""
        cells.append(
            '<td style="padding:2px 14px 2px 0;vertical-align:top">'
            f'<div style="font-size:11px;color:#6b7587">{html.escape(info.label)}</div>'
            f'<div style="font-size:15px;font-weight:600">{html.escape(value + unit)}</div></td>'
        )
    rows = "".join("<tr>" + "".join(cells[i : i + 4]) + "</tr>" for i in range(0, len(cells), 4))
    equity = result.equity.get_column("equity").cast(pl.Float64).to_numpy()
    spark = sparkline_svg(equity)
    return (
        '<div class="ml4t-backtest-result" style="font-family:sans-serif;font-size:13px">'
        f"<div><b>BacktestResult</b> · {html.escape(period_text(result))}</div>"
        f"<div style='color:#6b7587'>{len(result.assets):,} assets · "
        f"{result.fills.height:,} fills · {result.trades.height:,} trades · "
        f"initial cash {html.escape(fmt_money(result.config.initial_cash))} · final equity "
        f"<b style='color:#2b3340'>{html.escape(fmt_money(result.final_equity))}</b></div>"
        f'<table style="border-collapse:collapse;margin:6px 0">{rows}</table>'
        f"{spark}</div>"
    )
