"""The walk-forward and CPCV reports: one self-contained HTML page each (plotly.js embedded).

The walk-forward page draws the out-of-sample equity curve with each fold's test start marked
and its drawdown, then the fold table; the CPCV page draws every path's equity (the fan), the
distribution of the paths' Sharpe ratios, the metric distribution table and the split table.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml4t.backtest._core import __version__
from ml4t.backtest.results.plots import _PALETTE, GREY, _figure, _last, _line, _y, wall_clock
from ml4t.backtest.study.report import _CSS, _fmt
from ml4t.backtest.study.report import _figure as _figure_html


def table_html(frame: pl.DataFrame) -> str:
    """A frame as an HTML table (datetimes as text, floats to 6 significant digits)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _page(title: str, sub: str, cards: list[str]) -> str:
    from plotly.offline import get_plotlyjs

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


def _card(title: str, body: str) -> str:
    return f"<section class='card'><h2>{html.escape(title)}</h2>{body}</section>"


def walkforward_figures(
    equity: pl.DataFrame, folds: pl.DataFrame, initial_cash: float
) -> tuple[Any, Any]:
    """The equity curve (``timestamp``, ``equity``) with the fold boundaries (a dotted line and
    the fold number at each of ``folds``' ``test_start``) and the drawdown from
    ``initial_cash``."""
    equity = equity.select("timestamp", "equity")
    fig = _figure(380, yaxis={"title": "equity", "tickformat": ",.0f"})
    thinned = _last(equity)
    fig.add_trace(
        _line(wall_clock(thinned["timestamp"]), _y(thinned["equity"]), "equity", _PALETTE[0])
    )
    starts = wall_clock(folds.get_column("test_start"))
    for k, start in enumerate(starts):
        fig.add_vline(x=start, line={"color": GREY, "width": 1, "dash": "dot"})
        fig.add_annotation(
            x=start,
            y=1.0,
            yref="paper",
            text=f"fold {k}",
            showarrow=False,
            xanchor="left",
            font={"size": 10, "color": GREY},
        )
    values = equity.get_column("equity").to_numpy()
    peak = np.maximum.accumulate(np.concatenate(([initial_cash], values)))[1:]
    drawdown = equity.with_columns(pl.Series("drawdown", values / peak - 1.0)).select(
        "timestamp", "drawdown"
    )
    drawdown = _last(drawdown)
    dd = _figure(220, yaxis={"title": "drawdown", "tickformat": ".0%"})
    dd.add_trace(
        _line(
            wall_clock(drawdown["timestamp"]),
            _y(drawdown["drawdown"]),
            "drawdown",
            _PALETTE[3],
            fill="tozeroy",
        )
    )
    return fig, dd


def build_walkforward_report(
    *,
    title: str,
    subtitle: str,
    equity: pl.DataFrame,
    folds: pl.DataFrame,
    metrics: dict[str, Any],
    initial_cash: float,
) -> str:
    """The walk-forward page as a string: headline ``metrics``, the out-of-sample ``equity``
    with the ``folds``' test starts marked, its drawdown, and the fold table."""
    equity_fig, drawdown = walkforward_figures(equity, folds, initial_cash)
    headline = pl.DataFrame(
        {
            k: [metrics.get(k, float("nan"))]
            for k in (
                "total_return",
                "cagr",
                "sharpe",
                "sortino",
                "max_drawdown",
                "volatility",
                "num_trades",
            )
        }
    )
    cards = [
        _card("Out-of-sample figures (all test windows)", table_html(headline)),
        _card(
            "Out-of-sample equity, fold test starts marked",
            _figure_html(equity_fig, "chart-equity"),
        ),
        _card("Drawdown", _figure_html(drawdown, "chart-drawdown")),
        _card("Folds", table_html(folds)),
    ]
    return _page(title, subtitle, cards)


def write_page(path: Path, page: str) -> Path:
    """Writes a page to ``path`` (parents created) and returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def cpcv_figures(equity: pl.DataFrame, paths: pl.DataFrame) -> tuple[Any, Any]:
    """The paths' equity fan (``equity`` has ``path``, ``timestamp``, ``equity``) and the
    histogram of the ``paths``' Sharpe ratios."""
    import plotly.graph_objects as go

    fan = _figure(380, yaxis={"title": "equity", "tickformat": ",.0f"})
    for p in range(paths.height):
        curve = _last(equity.filter(pl.col("path") == p).select("timestamp", "equity"))
        fan.add_trace(
            _line(
                wall_clock(curve["timestamp"]),
                _y(curve["equity"]),
                f"path {p}",
                _PALETTE[p % len(_PALETTE)],
            )
        )
    sharpe = paths.get_column("sharpe").to_numpy()
    hist = _figure(
        300,
        xaxis={"title": "Sharpe ratio (annualised)"},
        yaxis={"title": "paths"},
        hovermode="closest",
    )
    hist.add_trace(
        go.Histogram(x=sharpe[np.isfinite(sharpe)], marker_color=_PALETTE[0], name="paths")
    )
    return fan, hist


def build_cpcv_report(
    *,
    title: str,
    subtitle: str,
    equity: pl.DataFrame,
    paths: pl.DataFrame,
    distribution: pl.DataFrame,
    splits: pl.DataFrame,
) -> str:
    """The CPCV page as a string: the paths' equity fan, the Sharpe histogram, the metric
    ``distribution``, the ``paths`` and the ``splits``."""
    fan, hist = cpcv_figures(equity, paths)
    cards = [
        _card(f"Out-of-sample equity of the {paths.height} paths", _figure_html(fan, "chart-fan")),
        _card("Sharpe ratio across paths", _figure_html(hist, "chart-sharpe")),
        _card("Metrics across paths", table_html(distribution)),
        _card("Paths", table_html(paths)),
        _card("Splits", table_html(splits)),
    ]
    return _page(title, subtitle, cards)
