"""The sweep report: one self-contained HTML page (plotly.js embedded) with a heatmap of a
metric over two params, the metric's distribution across trials and the top trials."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ml4t.backtest._core import __version__
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.study.directions import direction as metric_direction
from ml4t.backtest.study.worker import STATUS_OK

if TYPE_CHECKING:
    from ml4t.backtest.study.result import SweepResult

_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Arial,sans-serif;margin:0;background:#f5f6f8;
color:#1d2430}
header{background:#1f4e8c;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
.sub{opacity:.85;font-size:13px;margin-top:4px}main{padding:18px 28px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:14px 18px;
margin-bottom:18px}.card h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{padding:4px 8px;
border-bottom:1px solid #e4e7ec;text-align:right}th{background:#f0f2f5}
.scroll{overflow-x:auto}.note{color:#667085;font-size:13px}footer{color:#667085;font-size:12px}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else str(value)


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _figure(fig: Any, div_id: str) -> str:
    text: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_width="100%",
        config={"displayModeBar": False, "responsive": True},
    )
    return text


def _axes(result: SweepResult, x: str | None, y: str | None) -> tuple[str | None, str | None]:
    for name in (x, y):
        if name is not None and name not in result.params:
            raise ConfigError(f"report: {name!r} is not a param of the sweep: {result.params}")
    varied = [p for p in result.params if result.table[p].n_unique() > 1]
    rest = [p for p in varied if p not in (x, y)]
    if x is None:
        x = rest.pop(0) if rest else None
    if y is None:
        y = rest.pop(0) if rest else None
    return x, y


def build_sweep_report(
    result: SweepResult,
    metric: str,
    *,
    x: str | None = None,
    y: str | None = None,
    direction: str | None = None,
    top: int = 20,
    title: str = "Sweep report",
) -> str:
    """The page as a string (see :meth:`SweepResult.report`)."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    sense = metric_direction(metric, direction)
    ranked = result.ranked(metric, sense)
    table = result.table
    x, y = _axes(result, x, y)
    better = "higher" if sense == "max" else "lower"
    cards = []
    ok = table.filter((pl.col("status") == STATUS_OK) & pl.col(metric).is_finite())
    if x is not None and y is not None and ok.height:
        best = pl.col(metric).max() if sense == "max" else pl.col(metric).min()
        cells = ok.group_by(x, y).agg(best.alias("value"))
        xs = sorted(cells[x].unique().to_list())
        ys = sorted(cells[y].unique().to_list())
        lookup = {(r[x], r[y]): r["value"] for r in cells.iter_rows(named=True)}
        z = [[lookup.get((xv, yv)) for xv in xs] for yv in ys]
        fig = go.Figure(
            go.Heatmap(
                x=[str(v) for v in xs],
                y=[str(v) for v in ys],
                z=z,
                colorscale="RdYlGn" if sense == "max" else "RdYlGn_r",
                colorbar={"title": metric},
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>",
            )
        )
        fig.update_layout(
            height=420, margin={"l": 60, "r": 20, "t": 10, "b": 50}, xaxis_title=x, yaxis_title=y
        )
        others = [p for p in result.params if p not in (x, y) and table[p].n_unique() > 1]
        hint = f" (best over {', '.join(others)})" if others else ""
        cards.append(
            f"<section class='card'><h2>{html.escape(metric)} over {html.escape(x)} x "
            f"{html.escape(y)}{html.escape(hint)}</h2>{_figure(fig, 'chart-heatmap')}</section>"
        )
    else:
        cards.append(
            "<section class='card'><h2>Heatmap</h2><p class='note'>Needs two params with more "
            "than one value and a successful trial.</p></section>"
        )
    hist = go.Figure(go.Histogram(x=ok[metric].to_list(), marker_color="#1f4e8c"))
    hist.update_layout(
        height=320,
        margin={"l": 50, "r": 20, "t": 10, "b": 50},
        xaxis_title=metric,
        yaxis_title="trials",
        bargap=0.05,
    )
    cards.append(
        f"<section class='card'><h2>Distribution of {html.escape(metric)} across "
        f"{ok.height} trials</h2>{_figure(hist, 'chart-distribution')}</section>"
    )
    shown = ["trial", *result.params, metric] + [
        m for m in ("total_return", "sharpe", "max_drawdown", "num_trades") if m != metric
    ]
    shown = [c for c in dict.fromkeys(shown) if c in table.columns]
    cards.append(
        f"<section class='card'><h2>Top {min(top, ranked.height)} trials by "
        f"{html.escape(metric)} ({better} is better)</h2>"
        f"{_table(ranked.head(top).select(shown))}</section>"
    )
    failed = table.filter(pl.col("status") != STATUS_OK)
    if failed.height:
        cards.append(
            f"<section class='card'><h2>{failed.height} failed trials</h2>"
            f"{_table(failed.select('trial', *result.params, 'error').head(50))}</section>"
        )
    info = result.info
    sub = (
        f"{table.height} trials · {len(result.params)} params · executor "
        f"{info.get('executor', '?')} x {info.get('workers', '?')}"
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><div class='sub'>{html.escape(sub)}</div>"
        f"</header>\n<main>\n{''.join(cards)}\n"
        f"<footer>ml4t-backtest {html.escape(__version__)} · generated {generated}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def write_sweep_report(
    result: SweepResult,
    path: Path,
    metric: str,
    *,
    x: str | None = None,
    y: str | None = None,
    direction: str | None = None,
    top: int = 20,
    title: str = "Sweep report",
) -> Path:
    """Writes :func:`build_sweep_report` to ``path`` (parents created)."""
    page = build_sweep_report(result, metric, x=x, y=y, direction=direction, top=top, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
