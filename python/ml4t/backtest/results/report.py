"""The HTML tearsheet: one file with plotly charts, the tables a PM asks for and the metrics.

``result.report("report.html")`` calls :func:`write_report`. Every chart is a figure of
:class:`~ml4t.backtest.results.plots.ResultPlots` (``result.plot.<chart>()``), so the page and
the notebook draw the same thing. The page shows

- headline figures (return, CAGR, Sharpe, Sortino, max drawdown, ...);
- the equity curve with a linear/log switch (and the benchmark rebased to the starting
  capital), the underwater curve with the 5 deepest drawdowns shaded and their table (start,
  valley, recovery, depth, days);
- monthly returns with a yearly column, yearly returns;
- rolling Sharpe and Sortino, rolling volatility, rolling beta (with a benchmark);
- the return distribution with VaR and CVaR, skew, kurtosis, tail ratio, best and worst
  day (or period), month and year;
- trade PnL distribution, long vs short PnL, PnL by asset (top and bottom);
- exposure, positions of the largest holdings, holdings count and concentration;
- turnover and costs per month, and the Sharpe ratio against an extra cost in basis points;
- for ML strategies (``prediction="column"``), the information coefficient per timestamp and
  the mean next-bar return by prediction quantile;
- the full metrics table, the 10 best and 10 worst trades, the configuration.

plotly.js is embedded by default (``plotlyjs="embed"``, about 4.7 MB: the file works offline
and alone); ``"cdn"`` loads it from the plotly CDN (a small file that needs the network) and
``"directory"`` writes ``plotly.min.js`` beside the report and loads it from there.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ml4t.backtest._core import __version__
from ml4t.backtest.results.analysis import exposure_by_class
from ml4t.backtest.results.formatting import (
    METRICS,
    fmt_money,
    fmt_num,
    fmt_pct,
    fmt_quantity,
    format_metric,
    format_time,
    has_time_of_day,
)
from ml4t.backtest.results.metrics import drawdown_periods, monthly_returns, yearly_returns
from ml4t.backtest.results.plots import GREEN, MAX_POINTS, RED, ResultPlots, default_window
from ml4t.backtest.results.view import BenchmarkInput, ResultView

__all__ = ["MAX_POINTS", "PLOTLYJS_FILE", "PlotlyJS", "build_report_html", "write_report"]

PlotlyJS = Literal["embed", "cdn", "directory"]
"""Where the page gets plotly.js: embedded (offline, the default), the CDN, or a file beside
the report."""

PLOTLYJS_FILE = "plotly.min.js"
"""The file ``plotlyjs="directory"`` writes beside the report."""

TOP_TRADES = 10
TOP_DRAWDOWNS = 5

_FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - plotly is a dependency
        raise ImportError("the HTML report needs plotly: pip install plotly") from err
    return go


def _compact_money(value: float) -> str:
    """Money that fits a headline card: 1,234,567.89 below ten million, then 12.35M, 1.23B."""
    if not math.isfinite(value) or abs(value) < 1e7:
        return fmt_money(value)
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= size:
            return f"{value / size:,.2f}{suffix}"
    return fmt_money(value)  # pragma: no cover - unreachable


# ------------------------------------------------------------------------------------ tables


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = []
    section = None
    for key, info in METRICS.items():
        if key not in metrics:
            continue
        if info.section != section:
            section = info.section
            rows.append(f'<tr class="section"><th colspan="2">{html.escape(section)}</th></tr>')
        shown = format_metric(key, metrics[key])
        unit = f" {info.unit_text}" if info.unit_text and shown != "n/a" else ""
        css = ' class="na"' if shown == "n/a" else ""
        rows.append(
            f'<tr><td title="{html.escape(key)}">{html.escape(info.label)}</td>'
            f"<td{css}>{html.escape(shown + unit)}</td></tr>"
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
            format_time(t["entry_time"], with_time),
            format_time(t["exit_time"], with_time),
            fmt_quantity(t["quantity"]),
            fmt_num(t["entry_price"], 2),
            fmt_num(t["exit_price"], 2),
            f'<span class="{pnl_class}">{fmt_money(t["net_pnl"])}</span>',
            fmt_pct(t["return_pct"]),
            f"{t['bars_held']:,}",
            fmt_pct(t["mfe"]),
            fmt_pct(t["mae"]),
            html.escape(t["status"]),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="trades"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _drawdown_table(result: ResultView, with_time: bool) -> str:
    periods = drawdown_periods(result.equity, result.config.initial_cash, TOP_DRAWDOWNS)
    if periods.height == 0:
        return '<p class="note">Equity never fell below its running peak.</p>'
    head = (
        "<tr><th>#</th><th>start</th><th>valley</th><th>recovery</th><th>depth</th>"
        "<th>days</th></tr>"
    )
    body = []
    for i, row in enumerate(periods.iter_rows(named=True), start=1):
        recovery = (
            format_time(row["recovery"], with_time)
            if row["recovery"] is not None
            else "not recovered"
        )
        cells = [
            str(i),
            format_time(row["start"], with_time),
            format_time(row["valley"], with_time),
            recovery,
            fmt_pct(row["depth"]),
            fmt_num(row["days"], 0),
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return (
        f'<table class="trades drawdowns"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _extremes_table(result: ResultView, metrics: dict[str, float]) -> str:
    """Skew, kurtosis, VaR, CVaR, tail ratio, best and worst day (period), month and year."""
    cash = result.config.initial_cash
    monthly = monthly_returns(result.equity, cash).get_column("return")
    yearly = yearly_returns(result.equity, cash).get_column("return")
    try:
        daily = result.annualization.rule.startswith("daily")
    except ValueError:
        daily = False
    unit = "day" if daily else "period"

    def best_worst(values: pl.Series) -> tuple[float, float]:
        if values.len() == 0:
            return math.nan, math.nan
        return float(values.max()), float(values.min())  # type: ignore[arg-type]

    best_month, worst_month = best_worst(monthly)
    best_year, worst_year = best_worst(yearly)
    rows = [
        ("Skew", format_metric("skew", metrics.get("skew", math.nan))),
        ("Excess kurtosis", format_metric("kurtosis", metrics.get("kurtosis", math.nan))),
        (f"VaR 95% (one {unit})", fmt_pct(metrics.get("var_95", math.nan))),
        (f"CVaR 95% (one {unit})", fmt_pct(metrics.get("cvar_95", math.nan))),
        ("Tail ratio", format_metric("tail_ratio", metrics.get("tail_ratio", math.nan))),
        (f"Best {unit}", fmt_pct(metrics.get("best_period", math.nan))),
        (f"Worst {unit}", fmt_pct(metrics.get("worst_period", math.nan))),
        ("Best month", fmt_pct(best_month)),
        ("Worst month", fmt_pct(worst_month)),
        ("Best year", fmt_pct(best_year)),
        ("Worst year", fmt_pct(worst_year)),
    ]
    na = ' class="na"'
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        f"<td{na if value == 'n/a' else ''}>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f'<table class="metrics">{body}</table>'


def _class_exposure_table(result: ResultView) -> str | None:
    """Mean gross and net exposure (notional over equity) per asset class, for a run with
    instruments (``None`` otherwise, or for a loaded result, which keeps no feed)."""
    feed = result._feed
    specs = feed.instruments if feed is not None else None
    if specs is None:
        return None
    classes = {
        name: spec["asset_class"]
        for name, spec in zip(result.universe.assets, specs, strict=True)
        if spec is not None
    }
    multipliers = dict(
        result.fills.group_by(pl.col("asset").cast(pl.String))
        .agg(pl.col("multiplier").first())
        .iter_rows()
    )
    table = exposure_by_class(result.positions(None), classes, multipliers)
    if table.height == 0:
        return None
    equity = result.equity.select("timestamp", "equity")
    n = equity.height
    rows = (
        table.join(equity, on="timestamp")
        .group_by("asset_class")
        .agg(
            ((pl.col("gross") / pl.col("equity")).sum() / n).alias("gross"),
            ((pl.col("net") / pl.col("equity")).sum() / n).alias("net"),
        )
        .sort("asset_class")
    )
    body = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{fmt_pct(g)}</td><td>{fmt_pct(v)}</td></tr>"
        for c, g, v in rows.iter_rows()
    )
    head = "<tr><th>asset class</th><th>mean gross</th><th>mean net</th></tr>"
    return f'<table class="metrics">{head}{body}</table>'


# -------------------------------------------------------------------------------------- page

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#2b3340;font:14px/1.45 %(font)s}
header{background:#14294a;color:#fff;padding:22px 32px 18px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600;letter-spacing:.2px}
header .sub{color:#c4cde0;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:20px 24px 40px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;
margin-bottom:18px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(20,41,74,.08);
min-width:0;overflow:hidden}
.kpi .label{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:#6b7587;
white-space:nowrap}
.kpi .value{font-size:19px;font-weight:600;margin-top:2px;white-space:nowrap;
font-variant-numeric:tabular-nums}
.pos{color:%(green)s}.neg{color:%(red)s}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-top:16px}
.grid.tables{grid-template-columns:minmax(300px,1fr) 2fr}
h3.part{margin:26px 0 0;font-size:13px;text-transform:uppercase;letter-spacing:.8px;
color:#6b7587;font-weight:600}
.card{background:#fff;border-radius:8px;padding:14px 16px 8px;
box-shadow:0 1px 2px rgba(20,41,74,.08);min-width:0}
.card.wide{grid-column:1 / -1}
.card h2{margin:0 0 6px;font-size:14px;font-weight:600;color:#14294a}
.card .hint{font-weight:400;color:#8a94a6;font-size:12px;margin-left:6px}
table{border-collapse:collapse;width:100%%;font-size:12.5px}
table.metrics td,table.metrics th{padding:5px 8px;border-bottom:1px solid #edf0f4;text-align:left}
table.metrics td:last-child{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.metrics tr.section th{background:#f4f6f9;color:#14294a;font-size:11px;
text-transform:uppercase;letter-spacing:.6px;padding-top:9px}
table.trades th{background:#f4f6f9;font-weight:600;text-align:right;padding:6px;
white-space:nowrap;color:#14294a}
table.trades td{padding:5px 6px;border-bottom:1px solid #edf0f4;text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
table.trades td:nth-child(-n+4),table.trades th:nth-child(-n+4){text-align:left}
table.drawdowns td:first-child,table.drawdowns th:first-child{text-align:right}
.scroll{overflow-x:auto}
td.na{color:#a0a8b6}
.note{color:#8a94a6}
details{margin-top:16px}
pre{background:#f4f6f9;padding:10px;border-radius:6px;font-size:12px;overflow-x:auto}
footer{color:#8a94a6;font-size:12px;margin-top:22px;text-align:center}
@media (max-width:900px){.grid,.grid.tables{grid-template-columns:1fr}}
"""


def _kpis(metrics: dict[str, float], final_equity: float) -> str:
    def get(key: str) -> float:
        return metrics.get(key, math.nan)

    items = [
        ("Total return", fmt_pct(get("total_return")), get("total_return")),
        ("CAGR", fmt_pct(get("cagr")), get("cagr")),
        ("Sharpe", fmt_num(get("sharpe")), get("sharpe")),
        ("Sortino", fmt_num(get("sortino")), get("sortino")),
        ("Max drawdown", fmt_pct(get("max_drawdown")), None),
        ("Volatility", fmt_pct(get("volatility")), None),
        ("Win rate", fmt_pct(get("win_rate"), 1), None),
        ("Closed trades", fmt_num(get("num_trades"), 0), None),
        ("Final equity", _compact_money(final_equity), None),
    ]
    cards = []
    for label, shown, sign in items:
        css = ""
        if sign is not None and math.isfinite(sign):
            css = " pos" if sign > 0 else " neg" if sign < 0 else ""
        cards.append(
            f'<div class="kpi"><div class="label">{html.escape(label)}</div>'
            f'<div class="value{css}">{html.escape(shown)}</div></div>'
        )
    return '<section class="kpis">' + "".join(cards) + "</section>"


def _subtitle(result: ResultView, with_time: bool) -> str:
    ts = result.equity.get_column("timestamp")
    cfg = result.config
    parts = []
    if ts.len():
        parts.append(f"{format_time(ts[0], with_time)} → {format_time(ts[-1], with_time)}")
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


def _chart(title: str, fig: Any, div_id: str, wide: bool = False, hint: str = "") -> str:
    return _card(title, _figure_html(fig, div_id), wide=wide, hint=hint)


def _part(title: str, cards: list[str]) -> str:
    return f"<h3 class='part'>{html.escape(title)}</h3><div class='grid'>{''.join(cards)}</div>"


def plotlyjs_tag(plotlyjs: PlotlyJS) -> str:
    """The ``<script>`` that loads plotly.js for the chosen mode."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    if plotlyjs == "embed":
        return f"<script type='text/javascript'>{get_plotlyjs()}</script>"
    if plotlyjs == "cdn":
        url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
        return f"<script src='{url}' charset='utf-8'></script>"
    if plotlyjs == "directory":
        return f"<script src='{PLOTLYJS_FILE}' charset='utf-8'></script>"
    raise ValueError(f"plotlyjs must be 'embed', 'cdn' or 'directory', got {plotlyjs!r}")


def build_report_html(
    result: ResultView,
    benchmark: BenchmarkInput | None = None,
    *,
    benchmark_kind: Literal["prices", "returns"] = "prices",
    title: str = "Backtest report",
    plotlyjs: PlotlyJS = "embed",
    prediction: str | None = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    _plotly()
    script = plotlyjs_tag(plotlyjs)
    equity = result.equity
    metrics = (
        result.metrics_vs(benchmark, benchmark_kind) if benchmark is not None else result.metrics
    )
    ppy = metrics.get("periods_per_year", math.nan)
    with_time = has_time_of_day(equity.get_column("timestamp"))
    plot = ResultPlots(result)
    bench: dict[str, Any] = {"benchmark": benchmark, "kind": benchmark_kind}

    trades = result.trades
    best = trades.sort("net_pnl", descending=True, nulls_last=True).head(TOP_TRADES)
    worst = trades.sort("net_pnl", nulls_last=True).head(TOP_TRADES)

    if equity.height == 0:
        class_table = _class_exposure_table(result)
        class_cards = (
            [
                _card(
                    "Exposure by asset class",
                    class_table,
                    hint="notional (quantity x price x multiplier) over equity, mean per timestamp",
                )
            ]
            if class_table is not None
            else []
        )
        parts = [
            _part(
                "Performance",
                [_card("Equity", '<p class="note">The run has no timestamps.</p>', wide=True)],
            )
        ]
    else:
        window = default_window(ppy if math.isfinite(ppy) else 252.0, equity.height)
        window_hint = f"{window}-period window" if window is not None else ""
        rolling_cards = [
            _chart(
                "Rolling Sharpe and Sortino",
                plot.rolling(["sharpe", "sortino"], window),
                "chart-rolling-sharpe",
                hint=window_hint,
            ),
            _chart(
                "Rolling volatility",
                plot.rolling("volatility", window),
                "chart-rolling-volatility",
                hint=window_hint,
            ),
        ]
        if benchmark is not None:
            rolling_cards.append(
                _chart(
                    "Rolling beta",
                    plot.rolling("beta", window, **bench),
                    "chart-rolling-beta",
                    hint=f"against the benchmark, {window_hint}",
                )
            )
        class_table = _class_exposure_table(result)
        class_cards = (
            [
                _card(
                    "Exposure by asset class",
                    class_table,
                    hint="notional (quantity x price x multiplier) over equity, mean per timestamp",
                )
            ]
            if class_table is not None
            else []
        )
        parts = [
            _part(
                "Performance",
                [
                    _chart(
                        "Equity",
                        plot.equity(benchmark, kind=benchmark_kind),
                        "chart-equity",
                        wide=True,
                        hint="linear or log scale; the benchmark rebased to the starting capital"
                        if benchmark is not None
                        else "linear or log scale",
                    ),
                    _chart(
                        "Drawdown",
                        plot.drawdown(TOP_DRAWDOWNS),
                        "chart-drawdown",
                        wide=True,
                        hint=f"underwater curve, the {TOP_DRAWDOWNS} deepest periods shaded",
                    ),
                    _card(
                        f"Worst {TOP_DRAWDOWNS} drawdowns",
                        f"<div class='scroll'>{_drawdown_table(result, with_time)}</div>",
                    ),
                    _chart("Yearly returns", plot.yearly_returns(), "chart-yearly"),
                    _chart(
                        "Monthly returns",
                        plot.returns_heatmap(),
                        "chart-monthly",
                        wide=True,
                        hint="with the whole year in the last column",
                    ),
                ],
            ),
            _part("Risk", rolling_cards),
            _part(
                "Return distribution",
                [
                    _chart("Returns per period", plot.distribution(), "chart-distribution"),
                    _card("Tails and extremes", _extremes_table(result, metrics)),
                ],
            ),
            _part(
                "Trades and PnL",
                [
                    _chart(
                        "Trade PnL distribution",
                        plot.trades(),
                        "chart-trade-pnl",
                        hint="closed trades, net of commission",
                    ),
                    _chart(
                        "Long vs short",
                        plot.long_short(),
                        "chart-long-short",
                        hint="cumulative net PnL of closed trades",
                    ),
                    _chart(
                        "PnL by asset",
                        plot.pnl_by_asset(),
                        "chart-pnl-by-asset",
                        wide=True,
                        hint="top and bottom 10, closed trades",
                    ),
                ],
            ),
            _part(
                "Positions",
                [
                    _chart(
                        "Exposure",
                        plot.exposure(),
                        "chart-exposure",
                        hint="gross and net, as a fraction of equity",
                    ),
                    _chart(
                        "Holdings",
                        plot.holdings(),
                        "chart-holdings",
                        hint="count and the largest position's weight",
                    ),
                    _chart(
                        "Largest positions",
                        plot.positions(10),
                        "chart-positions",
                        wide=True,
                        hint="market value of the 10 largest, the rest as other",
                    ),
                    *class_cards,
                ],
            ),
            _part(
                "Costs",
                [
                    _chart(
                        "Turnover and costs",
                        plot.turnover("1mo"),
                        "chart-turnover",
                        hint="per month; costs = commission + slippage",
                    ),
                    _chart(
                        "Sharpe after extra costs",
                        plot.cost_sensitivity(),
                        "chart-cost-sensitivity",
                        hint="basis points of the notional traded",
                    ),
                ],
            ),
        ]
        if prediction is not None:
            if result._feed is None:
                signal_cards = [
                    _card(
                        "Signal",
                        '<p class="note">A loaded result has no data: the information '
                        "coefficient needs the feed the run read.</p>",
                        wide=True,
                    )
                ]
            else:
                signal_cards = [
                    _chart(
                        f"Information coefficient of {prediction}",
                        plot.ic(prediction),
                        "chart-ic",
                        hint="Spearman, per timestamp, against the next bar's return",
                    ),
                    _chart(
                        f"Returns by {prediction} quantile",
                        plot.quantile_returns(prediction),
                        "chart-quantiles",
                        hint="mean next-bar return, 1 = lowest",
                    ),
                ]
            parts.append(_part("Signal", signal_cards))

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
    css = _CSS % {"font": _FONT, "green": GREEN, "red": RED}
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n"
        f"{script}\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<div class='sub'>{_subtitle(result, with_time)}</div></header>\n<main>\n"
        f"{_kpis(metrics, result.final_equity)}\n"
        f"{''.join(parts)}\n"
        f"<div class='grid tables'>{''.join(tables)}</div>\n"
        f"<details><summary>Configuration</summary><pre>{config_yaml}</pre></details>\n"
        f"<footer>ml4t-backtest {html.escape(__version__)} · generated {generated}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def write_report(
    result: ResultView,
    path: str | Path = "report.html",
    *,
    benchmark: BenchmarkInput | None = None,
    benchmark_kind: Literal["prices", "returns"] = "prices",
    title: str = "Backtest report",
    plotlyjs: PlotlyJS = "embed",
    prediction: str | None = None,
) -> Path:
    """Writes the HTML report of ``result`` to ``path`` and returns the path.

    Args:
        result: a :class:`~ml4t.backtest.results.BacktestResult` (fresh or loaded).
        path: the file to write (parent folders are created).
        benchmark: optional benchmark prices or returns, in any form
            :meth:`BacktestResult.benchmark_returns` accepts; drawn on the equity chart
            (rebased to the starting capital), adds the rolling beta and alpha, beta,
            information ratio and capture ratios to the metrics table.
        benchmark_kind: ``"prices"`` or ``"returns"``.
        title: the page title.
        plotlyjs: ``"embed"`` (default: plotly.js inside the page, which then works offline
            and alone, ~4.7 MB), ``"cdn"`` (loaded from the plotly CDN: a file of a few hundred
            kB that needs the network to draw) or ``"directory"`` (``plotly.min.js`` written
            beside the report, shared by every report in that folder).
        prediction: a feature column of the data holding the model's predictions: adds the
            information coefficient over time and the returns by prediction quantile (needs a
            fresh result, whose feed is at hand).

    Raises:
        ValueError: an unknown ``plotlyjs`` mode or ``prediction`` column, or a bad benchmark.
    """
    out = Path(path)
    page = build_report_html(
        result,
        benchmark,
        benchmark_kind=benchmark_kind,
        title=title,
        plotlyjs=plotlyjs,
        prediction=prediction,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if plotlyjs == "directory":
        from plotly.offline import get_plotlyjs

        script = out.parent / PLOTLYJS_FILE
        text = get_plotlyjs()
        if not script.is_file() or script.read_text(encoding="utf-8") != text:
            script.write_text(text, encoding="utf-8")
    out.write_text(page, encoding="utf-8")
    return out
