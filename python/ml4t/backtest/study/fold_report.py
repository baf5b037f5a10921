"""The walk-forward and CPCV reports: one self-contained HTML page each (plotly.js embedded).

The walk-forward page draws the out-of-sample equity curve with each fold's test start marked
and its drawdown, then the fold table; the CPCV page draws every path's equity (the fan), the
distribution of the paths' Sharpe ratios, the metric distribution table and the split table.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ml4t.backtest._core import __version__
from ml4t.backtest.results.plots import _PALETTE, GREY, _figure, _last, _line, _y, wall_clock
from ml4t.backtest.study.report import _CSS, _fmt
from ml4t.backtest.study.report import _figure as _figure_html

if TYPE_CHECKING:
    from ml4t.backtest.study.cpcv_run import CPCVResult
    from ml4t.backtest.study.walkforward import WalkForwardResult


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


def walkforward_figures(result: WalkForwardResult) -> tuple[Any, Any]:
    """The equity curve with the fold boundaries (a dotted line and the fold number at each
    test start) and the drawdown."""
    equity = result.equity.select("timestamp", "equity")
    fig = _figure(380, yaxis={"title": "equity", "tickformat": ",.0f"})
    thinned = _last(equity)
    fig.add_trace(
        _line(wall_clock(thinned["timestamp"]), _y(thinned["equity"]), "equity", _PALETTE[0])
    )
    starts = wall_clock(result.folds.get_column("test_start"))
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
    peak = np.maximum.accumulate(np.concatenate(([result.study.config.initial_cash], values)))[1:]
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


def build_walkforward_report(result: WalkForwardResult, title: str) -> str:
    """The walk-forward page as a string."""
    equity, drawdown = walkforward_figures(result)
    metrics = result.metrics
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
            "Out-of-sample equity, fold test starts marked", _figure_html(equity, "chart-equity")
        ),
        _card("Drawdown", _figure_html(drawdown, "chart-drawdown")),
        _card("Folds", table_html(result.folds)),
    ]
    study = result.study
    sub = (
        f"{result.folds.height} folds · train {study.train!r} · test {study.test!r} · step "
        f"{study.step!r} · purge {study.purge!r} · embargo {study.embargo!r} · "
        f"{'anchored' if study.anchored else 'rolling'} · "
        f"{'one account across folds' if study.continuous else 'each fold from flat'} · "
        f"fits returned {result.info['kind']}"
    )
    return _page(title, sub, cards)


def write_walkforward_report(result: WalkForwardResult, path: Path, *, title: str) -> Path:
    """Writes :func:`build_walkforward_report` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_walkforward_report(result, title), encoding="utf-8")
    return path


def cpcv_figures(result: CPCVResult) -> tuple[Any, Any]:
    """The paths' equity fan and the histogram of their Sharpe ratios."""
    import plotly.graph_objects as go

    fan = _figure(380, yaxis={"title": "equity", "tickformat": ",.0f"})
    for p in range(result.n_paths):
        curve = _last(result.equity.filter(pl.col("path") == p).select("timestamp", "equity"))
        fan.add_trace(
            _line(
                wall_clock(curve["timestamp"]),
                _y(curve["equity"]),
                f"path {p}",
                _PALETTE[p % len(_PALETTE)],
            )
        )
    sharpe = result.paths.get_column("sharpe").to_numpy()
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


def build_cpcv_report(result: CPCVResult, title: str) -> str:
    """The CPCV page as a string."""
    fan, hist = cpcv_figures(result)
    cv = result.cv
    cards = [
        _card(
            f"Out-of-sample equity of the {result.n_paths} paths", _figure_html(fan, "chart-fan")
        ),
        _card("Sharpe ratio across paths", _figure_html(hist, "chart-sharpe")),
        _card("Metrics across paths", table_html(result.distribution)),
        _card("Paths", table_html(result.paths)),
        _card("Splits", table_html(result.splits)),
    ]
    sub = (
        f"N = {cv.n_groups} groups · k = {cv.n_test_groups} tested · {cv.n_splits} splits · "
        f"{cv.n_paths} paths · label horizon {cv.label_horizon!r} · embargo {cv.embargo!r} · "
        f"fits returned {result.info['kind']}"
    )
    return _page(title, sub, cards)


def write_cpcv_report(result: CPCVResult, path: Path, *, title: str) -> Path:
    """Writes :func:`build_cpcv_report` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_cpcv_report(result, title), encoding="utf-8")
    return path
