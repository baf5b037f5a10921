"""The sweep report: one self-contained HTML page (plotly.js embedded) with a heatmap of a
metric over two params, the metric's distribution across trials, the deflated Sharpe ratio of
the winner and the probability of backtest overfitting with its logit histogram, and the top
trials; and the notebook display of a :class:`SweepResult` (:func:`sweep_html`)."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from ml4t.backtest import stats
from ml4t.backtest._core import __version__
from ml4t.backtest.errors import ConfigError, StatsError
from ml4t.backtest.study.directions import direction as metric_direction
from ml4t.backtest.study.worker import STATUS_OK


class SweepView(Protocol):
    """What a sweep page reads of its result. :class:`~ml4t.backtest.study.SweepResult`
    is one; the page names this view instead of the class, so the result can render itself
    without the two modules importing each other."""

    @property
    def table(self) -> pl.DataFrame: ...
    @property
    def params(self) -> list[str]: ...
    @property
    def metrics(self) -> list[str]: ...
    @property
    def keep(self) -> str: ...
    @property
    def info(self) -> dict[str, Any]: ...
    @property
    def ledger(self) -> Path | None: ...
    def ranked(self, metric: str, direction_: str | None = None) -> pl.DataFrame: ...
    def deflated_sharpe(
        self, metric: str = "sharpe", direction: str | None = None, *, source: str = "ledger"
    ) -> stats.DeflatedSharpe: ...
    def pbo(self, n_splits: int = 16) -> stats.PBOResult: ...


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


def selection_statistics(
    result: SweepView, metric: str, direction: str | None, n_splits: int
) -> tuple[Any, Any, str | None, str | None]:
    """(DSR or ``None``, PBO or ``None``, why the DSR is missing, why the PBO is missing)."""
    dsr: Any = None
    pbo: Any = None
    dsr_note = pbo_note = None
    source = "ledger" if result.ledger is not None else "sweep"
    try:
        dsr = result.deflated_sharpe(metric, direction, source=source)
    except (ConfigError, StatsError) as err:
        dsr_note = str(err)
    try:
        pbo = result.pbo(n_splits)
    except (ConfigError, StatsError) as err:
        pbo_note = str(err)
    return dsr, pbo, dsr_note, pbo_note


def _dsr_text(dsr: Any) -> str:
    counted = (
        "every variant recorded on this data (trial ledger)"
        if dsr.source == "ledger"
        else "this sweep's trials"
    )
    verdict = "passes" if dsr.passes() else "does not pass"
    return (
        f"Deflated Sharpe ratio of trial {dsr.trial}: <b>{dsr.dsr:.4f}</b> ({verdict} at 95 %): "
        f"its per-period Sharpe {dsr.sharpe:.4g} against SR₀ = {dsr.expected_max_sharpe:.4g}, "
        f"the expected best of N = {dsr.n_trials:g} skill-less trials (V = "
        f"{dsr.sharpe_variance:.3g}), N and V counted over {html.escape(counted)}."
    )


def _pbo_text(pbo: Any) -> str:
    return (
        f"Probability of backtest overfitting: <b>{pbo.pbo:.3f}</b> over {pbo.n_combinations:,} "
        f"combinations of {pbo.n_splits} blocks ({pbo.n_trials} trials, {pbo.rows_used} "
        f"periods); probability of an out-of-sample loss {pbo.probability_of_loss:.3f}."
    )


def _axes(result: SweepView, x: str | None, y: str | None) -> tuple[str | None, str | None]:
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
    result: SweepView,
    metric: str,
    *,
    x: str | None = None,
    y: str | None = None,
    direction: str | None = None,
    top: int = 20,
    title: str = "Sweep report",
    n_splits: int = 16,
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
    dsr, pbo, dsr_note, pbo_note = selection_statistics(result, metric, direction, n_splits)
    parts = [
        f"<p>{_dsr_text(dsr)}</p>"
        if dsr is not None
        else "<p class='note'>Deflated Sharpe ratio: not available: "
        f"{html.escape(str(dsr_note))}</p>",
    ]
    if pbo is not None:
        logits = go.Figure(
            go.Histogram(x=pbo.logits.tolist(), marker_color="#8c1f4e", name="logit")
        )
        logits.add_vline(x=0.0, line_dash="dash", line_color="#333")
        logits.update_layout(
            height=300,
            margin={"l": 50, "r": 20, "t": 10, "b": 50},
            xaxis_title="logit λ of the in-sample best's out-of-sample rank (≤ 0: overfit)",
            yaxis_title="combinations",
            bargap=0.05,
        )
        parts.append(f"<p>{_pbo_text(pbo)}</p>{_figure(logits, 'chart-pbo')}")
    else:
        parts.append(
            "<p class='note'>Probability of backtest overfitting: not available: "
            f"{html.escape(str(pbo_note))}</p>"
        )
    cards.append(
        "<section class='card'><h2>Is the winner real? (DSR, PBO)</h2>"
        + "".join(parts)
        + "</section>"
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
    result: SweepView,
    path: Path,
    metric: str,
    *,
    x: str | None = None,
    y: str | None = None,
    direction: str | None = None,
    top: int = 20,
    title: str = "Sweep report",
    n_splits: int = 16,
) -> Path:
    """Writes :func:`build_sweep_report` to ``path`` (parents created)."""
    page = build_sweep_report(
        result, metric, x=x, y=y, direction=direction, top=top, title=title, n_splits=n_splits
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def sweep_html(result: SweepView, metric: str | None = None, top: int = 10) -> str:
    """The notebook display: trials run and failed, the best value of ``metric`` (``sharpe``
    when the table has it), the DSR of the winner and the PBO when the equity curves were
    kept, and the ``top`` trials."""
    table = result.table
    ok = int((table["status"] == STATUS_OK).sum())
    metric = metric or ("sharpe" if "sharpe" in result.metrics else result.metrics[0])
    lines = [
        f"<b>SweepResult</b> · {table.height:,} trials · {ok:,} ok · "
        f"{table.height - ok:,} failed · keep={html.escape(result.keep)}"
    ]
    body = ""
    try:
        ranked = result.ranked(metric)
    except ConfigError:
        ranked = table.head(0)
    if ranked.height:
        best = ranked.row(0, named=True)
        params = ", ".join(f"{p}={_fmt(best[p])}" for p in result.params)
        lines.append(
            f"best {html.escape(metric)}: <b>{html.escape(_fmt(best[metric]))}</b> (trial "
            f"{best['trial']}: {html.escape(params)})"
        )
        if result.keep != "metrics":
            dsr, pbo, _, _ = selection_statistics(result, metric, None, 16)
            if dsr is not None:
                lines.append(
                    f"DSR {dsr.dsr:.4f} (N = {dsr.n_trials:g}, counted over "
                    f"{'the ledger' if dsr.source == 'ledger' else 'this sweep'})"
                )
            if pbo is not None:
                lines.append(f"PBO {pbo.pbo:.3f} ({pbo.n_combinations:,} combinations)")
        else:
            lines.append("DSR and PBO need keep='equity'")
        shown = ["trial", *result.params, metric] + [
            m for m in ("total_return", "sharpe", "max_drawdown", "num_trades") if m != metric
        ]
        shown = [c for c in dict.fromkeys(shown) if c in table.columns]
        body = _table(ranked.head(top).select(shown))
    return (
        '<div class="ml4t-backtest-sweep" style="font-family:sans-serif;font-size:13px">'
        + "<br>".join(lines)
        + body
        + "</div>"
    )
