"""The HTML tearsheet: one self-contained file with plotly charts and the metrics.

``result.report("report.html")`` calls :func:`write_report`. The page embeds plotly.js once
(in its ``<head>``) and needs nothing else: no network, no server, no other file. It shows

- headline figures (return, CAGR, Sharpe, max drawdown, ...);
- the equity curve, with the benchmark rebased to the starting capital if one is given;
- the drawdown (underwater) curve;
- a heatmap of calendar-month returns;
- the rolling Sharpe ratio over about half a year of periods;
- the distribution of closed trades' net PnL;
- gross and net exposure as fractions of equity;
- the full metrics table, and the 10 best and 10 worst trades by net PnL.

Long curves are thinned to at most :data:`MAX_POINTS` points per series for the charts (the
drawdown keeps each bucket's deepest point); the metrics always use every row.

Needs plotly: ``pip install "ml4t-backtest[report]"``.
"""

from __future__ import annotations

import html
import math
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from ml4t.backtest._core import __version__
from ml4t.backtest.results.metrics import monthly_returns, period_returns, rolling_sharpe

if TYPE_CHECKING:
    from ml4t.backtest.results.result import BacktestResult, BenchmarkInput

__all__ = ["MAX_POINTS", "write_report"]

MAX_POINTS = 4_000
"""Most points drawn per time series; longer curves are thinned by buckets of rows."""

TOP_TRADES = 10

_BLUE = "#1f4e8c"
_GREY = "#8a94a6"
_RED = "#c0392b"
_GREEN = "#1e8449"
_ORANGE = "#d35400"
_FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the HTML report needs plotly: pip install 'ml4t-backtest[report]'"
        ) from err
    return go


# --------------------------------------------------------------------------------- formatting


def _is_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _pct(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value * 100:,.{digits}f}%"


def _num(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:,.{digits}f}"


def _money(value: float) -> str:
    return _num(value, 2)


def _int(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


# (key, label, formatter) by section; keys missing from the metrics are skipped.
_METRIC_ROWS: list[tuple[str, list[tuple[str, str, Any]]]] = [
    (
        "Returns",
        [
            ("total_return", "Total return", _pct),
            ("cagr", "CAGR", _pct),
            ("volatility", "Volatility (ann.)", _pct),
            ("sharpe", "Sharpe ratio", _num),
            ("sortino", "Sortino ratio", _num),
            ("calmar", "Calmar ratio", _num),
        ],
    ),
    (
        "Drawdown",
        [
            ("max_drawdown", "Max drawdown", _pct),
            ("max_drawdown_duration", "Longest drawdown (periods)", _int),
            ("max_drawdown_duration_days", "Longest drawdown (days)", lambda v: _num(v, 1)),
        ],
    ),
    (
        "Trades",
        [
            ("num_trades", "Closed trades", _int),
            ("win_rate", "Win rate", _pct),
            ("profit_factor", "Profit factor", _num),
            ("expectancy", "Expectancy (per trade)", _money),
            ("avg_win", "Average win", _money),
            ("avg_loss", "Average loss", _money),
            ("payoff_ratio", "Payoff ratio", _num),
        ],
    ),
    (
        "Exposure and costs",
        [
            ("turnover", "Turnover (per year)", _num),
            ("avg_gross_exposure", "Average gross exposure", _pct),
            ("avg_net_exposure", "Average net exposure", _pct),
            ("total_commission", "Commission", _money),
            ("total_slippage", "Slippage", _money),
            ("total_costs", "Total costs", _money),
        ],
    ),
    (
        "Benchmark",
        [
            ("alpha", "Alpha (ann.)", _pct),
            ("beta", "Beta", _num),
            ("information_ratio", "Information ratio", _num),
        ],
    ),
    ("Annualisation", [("periods_per_year", "Periods per year", lambda v: _num(v, 1))]),
]


def _format_time(value: Any, with_time: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _has_time_of_day(ts: pl.Series) -> bool:
    if ts.len() == 0 or not isinstance(ts.dtype, pl.Datetime):
        return False
    midnight = (ts.dt.hour() == 0) & (ts.dt.minute() == 0) & (ts.dt.second() == 0)
    return not bool(midnight.all())


# ------------------------------------------------------------------------------------ series


def _thin(frame: pl.DataFrame, aggregations: list[pl.Expr]) -> pl.DataFrame:
    """At most MAX_POINTS rows: buckets of consecutive rows, aggregated."""
    if frame.height <= MAX_POINTS:
        return frame
    size = math.ceil(frame.height / MAX_POINTS)
    return (
        frame.with_row_index("_row")
        .group_by((pl.col("_row") // size).alias("_bucket"), maintain_order=True)
        .agg(aggregations)
        .drop("_bucket")
    )


def _naive(ts: pl.Series) -> list[Any]:
    """Timestamps as wall-clock datetimes for plotly (local time, no offset)."""
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
        ts = ts.dt.replace_time_zone(None)
    return ts.to_list()


def _rolling_window(ppy: float, n: int) -> int | None:
    """About half a year of periods, at most half the data, at least 2; None if too short."""
    if n < 4:
        return None
    window = round(ppy / 2) if _is_finite(ppy) else 20
    return max(2, min(window, n // 2))


# ------------------------------------------------------------------------------------ charts


def _layout(go: Any, height: int, **extra: Any) -> Any:
    settings: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "font": {"family": _FONT, "size": 12, "color": "#2b3340"},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
    }
    settings.update(extra)
    return go.Layout(**settings)


def _empty(go: Any, height: int, message: str) -> Any:
    fig = go.Figure(layout=_layout(go, height))
    fig.add_annotation(
        text=message,
        showarrow=False,
        font={"size": 14, "color": _GREY},
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _equity_chart(go: Any, series: pl.DataFrame, has_benchmark: bool) -> Any:
    fig = go.Figure(layout=_layout(go, 360, yaxis={"title": "equity", "tickformat": ",.0f"}))
    x = _naive(series["timestamp"])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=series["equity"].to_list(),
            name="strategy",
            mode="lines",
            line={"color": _BLUE, "width": 2},
        )
    )
    if has_benchmark:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=series["benchmark_equity"].to_list(),
                name="benchmark",
                mode="lines",
                line={"color": _GREY, "width": 1.5, "dash": "dot"},
            )
        )
    return fig


def _drawdown_chart(go: Any, series: pl.DataFrame) -> Any:
    fig = go.Figure(layout=_layout(go, 220, yaxis={"title": "drawdown", "tickformat": ".0%"}))
    fig.add_trace(
        go.Scatter(
            x=_naive(series["timestamp"]),
            y=series["drawdown"].to_list(),
            name="drawdown",
            mode="lines",
            fill="tozeroy",
            line={"color": _RED, "width": 1},
            fillcolor="rgba(192, 57, 43, 0.25)",
        )
    )
    return fig


def _monthly_chart(go: Any, monthly: pl.DataFrame) -> Any:
    if monthly.height == 0:
        return _empty(go, 320, "No monthly returns")
    years = sorted(set(monthly["year"].to_list()))
    z: list[list[float | None]] = [[None] * 12 for _ in years]
    for year, month, value in monthly.iter_rows():
        z[years.index(year)][month - 1] = value
    text = [["" if v is None else f"{v * 100:.1f}%" for v in row] for row in z]
    finite = [abs(v) for row in z for v in row if v is not None and math.isfinite(v)]
    bound = max(finite) if finite else 0.01
    fig = go.Figure(
        layout=_layout(
            go,
            max(260, 60 + 34 * len(years)),
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"side": "top", "type": "category"},
            hovermode="closest",
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=_MONTHS,
            y=[str(y) for y in years],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            xgap=2,
            ygap=2,
            hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>",
            colorbar={"tickformat": ".0%", "thickness": 12},
        )
    )
    return fig


def _rolling_chart(go: Any, series: pl.DataFrame, window: int | None) -> Any:
    if window is None or series["rolling_sharpe"].drop_nulls().len() == 0:
        return _empty(go, 260, "Not enough periods for a rolling Sharpe ratio")
    fig = go.Figure(layout=_layout(go, 260, yaxis={"title": f"Sharpe ({window} periods)"}))
    fig.add_trace(
        go.Scatter(
            x=_naive(series["timestamp"]),
            y=series["rolling_sharpe"].to_list(),
            name="rolling Sharpe",
            mode="lines",
            line={"color": _ORANGE, "width": 1.5},
        )
    )
    fig.add_hline(y=0.0, line={"color": _GREY, "width": 1})
    return fig


def _pnl_chart(go: Any, trades: pl.DataFrame) -> Any:
    """Histogram of closed trades' net PnL, binned here (the page holds the counts, not every
    trade), wins and losses in their own colours."""
    closed = trades.filter(pl.col("status") == "closed").get_column("net_pnl").to_numpy()
    closed = closed[np.isfinite(closed)]
    if closed.shape[0] == 0:
        return _empty(go, 260, "No closed trades")
    fig = go.Figure(
        layout=_layout(
            go,
            260,
            barmode="overlay",
            bargap=0.05,
            hovermode="closest",
            xaxis={"title": "net PnL per trade"},
            yaxis={"title": "trades"},
        )
    )
    n_bins = int(min(60, max(10, math.sqrt(closed.shape[0]))))
    low, high = float(closed.min()), float(closed.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, n_bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    for name, values, color in (
        ("wins", closed[closed > 0], _GREEN),
        ("losses", closed[closed <= 0], _RED),
    ):
        if values.shape[0]:
            counts, _ = np.histogram(values, bins=edges)
            fig.add_trace(
                go.Bar(
                    x=centers.tolist(),
                    y=counts.tolist(),
                    width=float(edges[1] - edges[0]),
                    name=name,
                    marker={"color": color},
                    opacity=0.8,
                    hovertemplate="%{x:,.2f}: %{y} trades<extra></extra>",
                )
            )
    return fig


def _exposure_chart(go: Any, series: pl.DataFrame) -> Any:
    fig = go.Figure(layout=_layout(go, 260, yaxis={"title": "of equity", "tickformat": ".0%"}))
    x = _naive(series["timestamp"])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=series["gross"].to_list(),
            name="gross",
            mode="lines",
            line={"color": _BLUE, "width": 1.5},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=series["net"].to_list(),
            name="net",
            mode="lines",
            line={"color": _ORANGE, "width": 1.5},
        )
    )
    return fig


# ------------------------------------------------------------------------------------ tables


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = []
    for section, items in _METRIC_ROWS:
        present = [(key, label, fmt) for key, label, fmt in items if key in metrics]
        if not present:
            continue
        rows.append(f'<tr class="section"><th colspan="2">{html.escape(section)}</th></tr>')
        for key, label, fmt in present:
            value = metrics[key]
            shown = fmt(value)
            css = ' class="na"' if shown == "n/a" else ""
            rows.append(
                f'<tr><td title="{html.escape(key)}">{html.escape(label)}</td>'
                f"<td{css}>{html.escape(shown)}</td></tr>"
            )
    return '<table class="metrics">' + "".join(rows) + "</table>"


def _trades_table(trades: pl.DataFrame, with_time: bool) -> str:
    if trades.height == 0:
        return '<p class="note">No trades.</p>'
    head = (
        "<tr><th>asset</th><th>side</th><th>entry</th><th>exit</th><th>qty</th>"
        "<th>entry px</th><th>exit px</th><th>net PnL</th><th>return</th><th>bars</th>"
        "<th>MFE</th><th>MAE</th><th>status</th></tr>"
    )
    body = []
    for t in trades.iter_rows(named=True):
        pnl_class = "pos" if t["net_pnl"] > 0 else "neg" if t["net_pnl"] < 0 else ""
        cells = [
            html.escape(str(t["asset"])),
            html.escape(t["side"]),
            _format_time(t["entry_time"], with_time),
            _format_time(t["exit_time"], with_time),
            _num(t["quantity"], 2),
            _num(t["entry_price"], 2),
            _num(t["exit_price"], 2),
            f'<span class="{pnl_class}">{_money(t["net_pnl"])}</span>',
            _pct(t["return_pct"]),
            f"{t['bars_held']:,}",
            _pct(t["mfe"]),
            _pct(t["mae"]),
            html.escape(t["status"]),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="trades"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


# -------------------------------------------------------------------------------------- page

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#2b3340;font:14px/1.45 %(font)s}
header{background:#14294a;color:#fff;padding:22px 32px 18px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600;letter-spacing:.2px}
header .sub{color:#c4cde0;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:20px 24px 40px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(128px,1fr));gap:12px;
margin-bottom:18px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(20,41,74,.08)}
.kpi .label{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:#6b7587}
.kpi .value{font-size:21px;font-weight:600;margin-top:2px}
.pos{color:%(green)s}.neg{color:%(red)s}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.grid.tables{grid-template-columns:minmax(300px,1fr) 2fr;margin-top:16px}
.card{background:#fff;border-radius:8px;padding:14px 16px 8px;
box-shadow:0 1px 2px rgba(20,41,74,.08);min-width:0}
.card.wide{grid-column:1 / -1}
.card h2{margin:0 0 6px;font-size:14px;font-weight:600;color:#14294a}
.card .hint{font-weight:400;color:#8a94a6;font-size:12px;margin-left:6px}
table{border-collapse:collapse;width:100%%;font-size:12.5px}
table.metrics td,table.metrics th{padding:5px 8px;border-bottom:1px solid #edf0f4;text-align:left}
table.metrics td:last-child{text-align:right;font-variant-numeric:tabular-nums}
table.metrics tr.section th{background:#f4f6f9;color:#14294a;font-size:11px;
text-transform:uppercase;letter-spacing:.6px;padding-top:9px}
table.trades th{background:#f4f6f9;font-weight:600;text-align:right;padding:6px;
white-space:nowrap;color:#14294a}
table.trades td{padding:5px 6px;border-bottom:1px solid #edf0f4;text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
table.trades td:nth-child(-n+4),table.trades th:nth-child(-n+4){text-align:left}
.scroll{overflow-x:auto}
td.na{color:#a0a8b6}
.note{color:#8a94a6}
details{margin-top:16px}
pre{background:#f4f6f9;padding:10px;border-radius:6px;font-size:12px;overflow-x:auto}
footer{color:#8a94a6;font-size:12px;margin-top:22px;text-align:center}
@media (max-width:900px){.grid,.grid.tables{grid-template-columns:1fr}}
"""


def _kpis(metrics: dict[str, float], final_equity: float) -> str:
    items = [
        ("Total return", _pct(metrics.get("total_return", math.nan)), metrics.get("total_return")),
        ("CAGR", _pct(metrics.get("cagr", math.nan)), metrics.get("cagr")),
        ("Sharpe", _num(metrics.get("sharpe", math.nan)), metrics.get("sharpe")),
        ("Max drawdown", _pct(-metrics.get("max_drawdown", math.nan)), None),
        ("Volatility", _pct(metrics.get("volatility", math.nan)), None),
        ("Win rate", _pct(metrics.get("win_rate", math.nan), 1), None),
        ("Closed trades", _int(metrics.get("num_trades", math.nan)), None),
        ("Final equity", _money(final_equity), None),
    ]
    cards = []
    for label, shown, sign in items:
        css = ""
        if sign is not None and _is_finite(sign):
            css = " pos" if sign > 0 else " neg" if sign < 0 else ""
        cards.append(
            f'<div class="kpi"><div class="label">{html.escape(label)}</div>'
            f'<div class="value{css}">{html.escape(shown)}</div></div>'
        )
    return '<section class="kpis">' + "".join(cards) + "</section>"


def _subtitle(result: BacktestResult, with_time: bool) -> str:
    ts = result.equity.get_column("timestamp")
    cfg = result.config
    parts = []
    if ts.len():
        parts.append(f"{_format_time(ts[0], with_time)} → {_format_time(ts[-1], with_time)}")
    parts.append(f"{ts.len():,} timestamps")
    parts.append(f"{len(result.assets):,} assets")
    parts.append(f"initial cash {cfg.initial_cash:,.0f}")
    commission: str = cfg.commission.model
    if commission == "percent":
        commission += f" {cfg.commission.rate * 100:g}%"
    elif commission == "per_share":
        commission += f" {cfg.commission.rate:g}/share"
    elif commission == "per_order":
        commission += f" {cfg.commission.amount:g}/order"
    slippage: str = cfg.slippage.model
    if slippage == "percent":
        slippage += f" {cfg.slippage.rate * 100:g}%"
    elif slippage == "fixed":
        slippage += f" {cfg.slippage.amount:g}/share"
    parts.append(f"commission {commission}")
    parts.append(f"slippage {slippage}")
    parts.append(f"fills {cfg.execution.mode.replace('_', ' ')}")
    if result.time_zone:
        parts.append(result.time_zone)
    return " · ".join(html.escape(p) for p in parts)


def _figure_html(fig: Any, div_id: str) -> str:
    html_text: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_width="100%",
        config={"displayModeBar": False, "responsive": True},
    )
    return html_text


def _card(title: str, body: str, wide: bool = False, hint: str = "") -> str:
    hint_html = f'<span class="hint">{html.escape(hint)}</span>' if hint else ""
    css = "card wide" if wide else "card"
    return f'<section class="{css}"><h2>{html.escape(title)}{hint_html}</h2>{body}</section>'


def build_report_html(
    result: BacktestResult,
    benchmark: BenchmarkInput | None = None,
    *,
    benchmark_kind: Literal["prices", "returns"] = "prices",
    title: str = "Backtest report",
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    go = _plotly()
    from plotly.offline import get_plotlyjs

    equity = result.equity
    cash = result.config.initial_cash
    if benchmark is not None:
        bench_returns = result.benchmark_returns(benchmark, benchmark_kind)
        metrics = result.metrics_vs(benchmark, benchmark_kind)
    else:
        bench_returns = None
        metrics = result.metrics
    ppy = metrics.get("periods_per_year", math.nan)
    with_time = _has_time_of_day(equity.get_column("timestamp"))

    returns = pl.Series("r", period_returns(equity.get_column("equity").to_numpy(), cash))
    window = _rolling_window(ppy, equity.height)
    rolling = (
        rolling_sharpe(returns, window, ppy if _is_finite(ppy) else 252.0)
        if window is not None
        else pl.Series("rolling_sharpe", [None] * equity.height, dtype=pl.Float64)
    )
    series = equity.select(
        "timestamp",
        "equity",
        "drawdown",
        (pl.col("gross_exposure") / pl.col("equity")).alias("gross"),
        (pl.col("net_exposure") / pl.col("equity")).alias("net"),
    ).with_columns(rolling.alias("rolling_sharpe"))
    aggregations = [
        pl.col("timestamp").last(),
        pl.col("equity").last(),
        pl.col("drawdown").min(),
        pl.col("gross").last(),
        pl.col("net").last(),
        pl.col("rolling_sharpe").last(),
    ]
    if bench_returns is not None:
        growth = (1.0 + bench_returns.fill_null(0.0)).cum_prod() * cash
        series = series.with_columns(growth.alias("benchmark_equity"))
        aggregations.append(pl.col("benchmark_equity").last())
    thin = _thin(series, aggregations)

    trades = result.trades
    ranked = trades.sort("net_pnl", descending=True, nulls_last=True)
    best = ranked.head(TOP_TRADES)
    worst = trades.sort("net_pnl", nulls_last=True).head(TOP_TRADES)

    if equity.height == 0:
        charts = [_card("Equity", '<p class="note">The run has no timestamps.</p>', wide=True)]
    else:
        window_hint = f"{window}-period window" if window is not None else ""
        charts = [
            _card(
                "Equity",
                _figure_html(_equity_chart(go, thin, bench_returns is not None), "chart-equity"),
                wide=True,
                hint="with the benchmark rebased to the starting capital"
                if bench_returns is not None
                else "",
            ),
            _card("Drawdown", _figure_html(_drawdown_chart(go, thin), "chart-drawdown"), wide=True),
            _card(
                "Monthly returns",
                _figure_html(_monthly_chart(go, monthly_returns(equity, cash)), "chart-monthly"),
            ),
            _card(
                "Rolling Sharpe ratio",
                _figure_html(_rolling_chart(go, thin, window), "chart-rolling-sharpe"),
                hint=window_hint,
            ),
            _card(
                "Trade PnL distribution",
                _figure_html(_pnl_chart(go, trades), "chart-trade-pnl"),
                hint="closed trades, net of commission",
            ),
            _card(
                "Exposure",
                _figure_html(_exposure_chart(go, thin), "chart-exposure"),
                hint="gross and net, as a fraction of equity",
            ),
        ]
    tables = [
        _card("Metrics", _metrics_table(metrics)),
        _card(
            "Best and worst trades",
            f"<h2>Top {TOP_TRADES} by net PnL</h2><div class='scroll'>"
            f"{_trades_table(best, with_time)}</div>"
            f"<h2 style='margin-top:14px'>Bottom {TOP_TRADES} by net PnL</h2>"
            f"<div class='scroll'>{_trades_table(worst, with_time)}</div>",
        ),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    config_yaml = html.escape(result.config.to_yaml())
    css = _CSS % {"font": _FONT, "green": _GREEN, "red": _RED}
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<div class='sub'>{_subtitle(result, with_time)}</div></header>\n<main>\n"
        f"{_kpis(metrics, result.final_equity)}\n"
        f"<div class='grid'>{''.join(charts)}</div>\n"
        f"<div class='grid tables'>{''.join(tables)}</div>\n"
        f"<details><summary>Configuration</summary><pre>{config_yaml}</pre></details>\n"
        f"<footer>ml4t-backtest {html.escape(__version__)} · generated {generated}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def write_report(
    result: BacktestResult,
    path: str | Path = "report.html",
    *,
    benchmark: BenchmarkInput | None = None,
    benchmark_kind: Literal["prices", "returns"] = "prices",
    title: str = "Backtest report",
) -> Path:
    """Writes a self-contained HTML report of ``result`` to ``path`` and returns the path.

    Args:
        result: a :class:`~ml4t.backtest.results.BacktestResult` (fresh or loaded).
        path: the file to write (parent folders are created).
        benchmark: optional benchmark prices or returns, in any form
            :meth:`BacktestResult.benchmark_returns` accepts; drawn on the equity chart
            (rebased to the starting capital) and adds alpha, beta and information ratio to the
            metrics table.
        benchmark_kind: ``"prices"`` or ``"returns"``.
        title: the page title.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = build_report_html(result, benchmark, benchmark_kind=benchmark_kind, title=title)
    out.write_text(page, encoding="utf-8")
    return out
