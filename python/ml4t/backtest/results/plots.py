"""Plotly figures of a result: ``result.plot.<chart>()``.

Each chart is defined once here; the notebook shows the returned ``plotly.graph_objects.Figure``
inline and the HTML report (:mod:`~ml4t.backtest.results.report`) embeds the same figures.
Long curves are thinned to at most :data:`MAX_POINTS` points per series (the drawdown keeps
each bucket's deepest point); the numbers always use every row.

Needs plotly (a dependency of the package).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from ml4t.backtest.results.analysis import (
    COST_BPS,
    cost_sensitivity,
    holdings,
    information_coefficient,
    pnl_by_asset,
    quantile_returns,
    traded_fraction,
    turnover_and_costs,
)
from ml4t.backtest.results.metrics import (
    drawdown_periods,
    monthly_returns,
    risk_free_per_period,
    rolling_metric,
    yearly_returns,
)
from ml4t.backtest.results.view import BenchmarkInput, ResultView

__all__ = ["MAX_POINTS", "ResultPlots"]

MAX_POINTS = 4_000
"""Most points drawn per time series; longer curves are thinned by buckets of rows."""

BLUE = "#1f4e8c"
GREY = "#8a94a6"
RED = "#c0392b"
GREEN = "#1e8449"
ORANGE = "#d35400"
PURPLE = "#6c3483"
FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_PALETTE = [BLUE, ORANGE, GREEN, RED, PURPLE, "#117a65", "#b7950b", "#5d6d7e", "#a04000", "#2874a6"]


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _layout(height: int, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "font": {"family": FONT, "size": 12, "color": "#2b3340"},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
    }
    settings.update(extra)
    return settings


def _figure(height: int, **extra: Any) -> Any:
    return _go().Figure(layout=_layout(height, **extra))


def empty_figure(height: int, message: str) -> Any:
    """A figure with only a centred message (a chart without data)."""
    fig = _figure(height)
    fig.add_annotation(
        text=message,
        showarrow=False,
        font={"size": 14, "color": GREY},
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def thin(frame: pl.DataFrame, aggregations: list[pl.Expr]) -> pl.DataFrame:
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


def _last(frame: pl.DataFrame) -> pl.DataFrame:
    return thin(frame, [pl.col(c).last() for c in frame.columns])


def wall_clock(ts: pl.Series) -> list[Any]:
    """Timestamps as wall-clock datetimes for plotly (local time, no offset); dates when every
    timestamp is at midnight (shorter in the page)."""
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
        ts = ts.dt.replace_time_zone(None)
    if isinstance(ts.dtype, pl.Datetime) and bool(
        (ts.drop_nulls() == ts.drop_nulls().dt.truncate("1d")).all()
    ):
        ts = ts.dt.date()
    return ts.to_list()


def _y(values: pl.Series) -> np.ndarray[Any, Any]:
    """Values as a float32 array: plotly writes it as compact binary (nulls as gaps)."""
    out: np.ndarray[Any, Any] = values.cast(pl.Float32).to_numpy()
    return out


def default_window(periods_per_year: float, n: int) -> int | None:
    """About half a year of periods, at most half the data, at least 2; None if too short."""
    if n < 4:
        return None
    window = round(periods_per_year / 2) if math.isfinite(periods_per_year) else 20
    return max(2, min(window, n // 2))


def _line(x: list[Any], y: Any, name: str, color: str, **extra: Any) -> Any:
    return _go().Scatter(
        x=x, y=y, name=name, mode="lines", line={"color": color, "width": 1.5}, **extra
    )


def _histogram_bars(values: np.ndarray[Any, Any], n_bins: int) -> tuple[np.ndarray[Any, Any], Any]:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, n_bins + 1)
    return edges, (edges[:-1] + edges[1:]) / 2


class ResultPlots:
    """The figures of one :class:`~ml4t.backtest.results.BacktestResult` (``result.plot``).

    Every method returns a new ``plotly.graph_objects.Figure``.
    """

    def __init__(self, result: ResultView) -> None:
        self._result = result

    # ------------------------------------------------------------------------------- helpers

    @property
    def _ppy(self) -> float:
        return float(self._result.metrics.get("periods_per_year", math.nan))

    def _returns(self) -> pl.Series:
        return self._result.returns.get_column("return")

    def _benchmark(
        self, benchmark: BenchmarkInput | None, kind: Literal["prices", "returns"]
    ) -> pl.Series | None:
        if benchmark is None:
            return None
        return self._result.benchmark_returns(benchmark, kind)

    # -------------------------------------------------------------------------------- charts

    def equity(
        self,
        benchmark: BenchmarkInput | None = None,
        log: bool = False,
        *,
        kind: Literal["prices", "returns"] = "prices",
    ) -> Any:
        """The equity curve, with the benchmark rebased to the starting capital if given; a
        linear/log switch above the plot (``log`` picks the one shown first)."""
        equity = self._result.equity
        if equity.height == 0:
            return empty_figure(360, "The run has no timestamps")
        series = equity.select("timestamp", "equity")
        bench = self._benchmark(benchmark, kind)
        if bench is not None:
            growth = (1.0 + bench.fill_null(0.0)).cum_prod() * self._result.config.initial_cash
            series = series.with_columns(growth.alias("benchmark"))
        series = _last(series)
        scale = "log" if log else "linear"
        fig = _figure(
            360,
            yaxis={"title": "equity", "tickformat": ",.0f", "type": scale},
            updatemenus=[
                {
                    "type": "buttons",
                    "direction": "right",
                    "x": 1.0,
                    "xanchor": "right",
                    "y": 1.02,
                    "yanchor": "bottom",
                    "showactive": True,
                    "active": 1 if log else 0,
                    "pad": {"r": 0, "t": 0},
                    "buttons": [
                        {
                            "label": "linear",
                            "method": "relayout",
                            "args": [{"yaxis.type": "linear"}],
                        },
                        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                    ],
                }
            ],
        )
        x = wall_clock(series["timestamp"])
        fig.add_trace(
            _go().Scatter(
                x=x,
                y=_y(series["equity"]),
                name="strategy",
                mode="lines",
                line={"color": BLUE, "width": 2},
            )
        )
        if bench is not None:
            fig.add_trace(
                _go().Scatter(
                    x=x,
                    y=_y(series["benchmark"]),
                    name="benchmark",
                    mode="lines",
                    line={"color": GREY, "width": 1.5, "dash": "dot"},
                )
            )
        self._equity_events(fig, equity)
        return fig

    def _equity_events(self, fig: Any, equity: pl.DataFrame) -> None:
        """Markers on the equity curve at each capital flow (deposits up, withdrawals down)
        and each timestamp that received or paid dividends, the amount in the hover text."""
        for column, name, shapes in (
            ("flows", "capital flow", ("triangle-up", "triangle-down")),
            ("dividend", "dividend", ("circle", "circle-open")),
        ):
            if column not in equity.columns:
                continue
            events = equity.filter(pl.col(column) != 0.0).select("timestamp", "equity", column)
            if events.height == 0:
                continue
            amounts = events[column].to_list()
            fig.add_trace(
                _go().Scatter(
                    x=wall_clock(events["timestamp"]),
                    y=_y(events["equity"]),
                    name=name,
                    mode="markers",
                    marker={
                        "symbol": [shapes[0] if a > 0 else shapes[1] for a in amounts],
                        "color": [GREEN if a > 0 else RED for a in amounts],
                        "size": 9 if column == "flows" else 6,
                    },
                    text=[f"{name}: {a:+,.2f}" for a in amounts],
                    hoverinfo="text+x",
                )
            )

    def drawdown(self, top: int = 5) -> Any:
        """The underwater curve (drawdown from the running peak, ≤ 0), the ``top`` deepest
        drawdown periods shaded."""
        equity = self._result.equity
        if equity.height == 0:
            return empty_figure(240, "The run has no timestamps")
        series = thin(
            equity.select("timestamp", "drawdown"),
            [pl.col("timestamp").last(), pl.col("drawdown").min()],
        )
        fig = _figure(240, yaxis={"title": "drawdown", "tickformat": ".0%"})
        fig.add_trace(
            _go().Scatter(
                x=wall_clock(series["timestamp"]),
                y=_y(series["drawdown"]),
                name="drawdown",
                mode="lines",
                fill="tozeroy",
                line={"color": RED, "width": 1},
                fillcolor="rgba(192, 57, 43, 0.25)",
            )
        )
        last = wall_clock(equity["timestamp"].tail(1))[0]
        periods = drawdown_periods(equity, self._result.config.initial_cash, top)
        for start, recovery in zip(
            wall_clock(periods["start"]), wall_clock(periods["recovery"]), strict=True
        ):
            fig.add_vrect(
                x0=start,
                x1=recovery if recovery is not None else last,
                fillcolor="rgba(138, 148, 166, 0.15)",
                line_width=0,
                layer="below",
            )
        return fig

    def returns_heatmap(self) -> Any:
        """Calendar-month returns by year, with a column for the whole year."""
        cash = self._result.config.initial_cash
        monthly = monthly_returns(self._result.equity, cash)
        if monthly.height == 0:
            return empty_figure(320, "No monthly returns")
        yearly = dict(yearly_returns(self._result.equity, cash).iter_rows())
        years = sorted(yearly)
        columns = [*MONTHS, "Year"]
        z: list[list[float | None]] = [[None] * 13 for _ in years]
        for year, month, value in monthly.iter_rows():
            z[years.index(year)][month - 1] = value
        for row, year in enumerate(years):
            z[row][12] = yearly[year]
        text = [
            ["" if v is None else f"{v * 100:.1f}%".replace("-0.0%", "0.0%") for v in r] for r in z
        ]
        finite = [abs(v) for row in z for v in row[:12] if v is not None and math.isfinite(v)]
        bound = max(finite) if finite else 0.01
        fig = _figure(
            max(260, 60 + 34 * len(years)),
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"side": "top", "type": "category"},
            hovermode="closest",
        )
        fig.add_trace(
            _go().Heatmap(
                z=z,
                x=columns,
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

    def yearly_returns(self) -> Any:
        """Calendar-year returns as bars."""
        yearly = yearly_returns(self._result.equity, self._result.config.initial_cash)
        if yearly.height == 0:
            return empty_figure(260, "No yearly returns")
        values = yearly["return"].to_list()
        fig = _figure(260, yaxis={"tickformat": ".0%"}, xaxis={"type": "category"})
        fig.add_trace(
            _go().Bar(
                x=[str(y) for y in yearly["year"].to_list()],
                y=values,
                marker={"color": [GREEN if v >= 0 else RED for v in values]},
                name="year",
                hovertemplate="%{x}: %{y:.2%}<extra></extra>",
            )
        )
        return fig

    def rolling(
        self,
        metric: str | Sequence[str] = "sharpe",
        window: int | None = None,
        *,
        benchmark: BenchmarkInput | None = None,
        kind: Literal["prices", "returns"] = "prices",
    ) -> Any:
        """One or more rolling metrics (``sharpe``, ``sortino``, ``volatility``, ``beta``,
        ``return``; see :func:`~ml4t.backtest.results.metrics.rolling_metric`) over a trailing
        window of ``window`` periods (default: about half a year). ``beta`` needs a
        benchmark. The config's risk-free rate applies."""
        metrics = [metric] if isinstance(metric, str) else list(metric)
        n = self._result.equity.height
        ppy = self._ppy
        window = window if window is not None else default_window(ppy, n)
        if window is None or n < window or not math.isfinite(ppy):
            return empty_figure(260, "Not enough periods for a rolling window")
        returns = self._returns()
        bench = self._benchmark(benchmark, kind)
        rf = pl.Series(risk_free_per_period(self._result.config.risk_free, n, ppy))
        columns = {}
        for name in metrics:
            columns[name] = rolling_metric(
                returns, name, window, ppy, benchmark=bench, risk_free=rf
            )
        series = _last(pl.DataFrame({"timestamp": self._result.equity["timestamp"], **columns}))
        percent = all(m in ("volatility", "return") for m in metrics)
        fig = _figure(
            260,
            yaxis={"title": f"{window}-period window", "tickformat": ".0%" if percent else ""},
        )
        x = wall_clock(series["timestamp"])
        for i, name in enumerate(metrics):
            fig.add_trace(_line(x, _y(series[name]), name, _PALETTE[i % len(_PALETTE)]))
        if not percent:
            fig.add_hline(y=0.0, line={"color": GREY, "width": 1})
        return fig

    def distribution(self) -> Any:
        """Histogram of the per-period returns with the 95 % VaR and CVaR marked."""
        r = self._returns().to_numpy()
        r = r[np.isfinite(r)]
        if r.shape[0] < 2:
            return empty_figure(260, "Not enough returns")
        edges, centres = _histogram_bars(r, int(min(80, max(10, math.sqrt(r.shape[0]) * 2))))
        counts, _ = np.histogram(r, bins=edges)
        fig = _figure(
            260,
            hovermode="closest",
            bargap=0.05,
            xaxis={"title": "return per period", "tickformat": ".1%"},
            yaxis={"title": "periods"},
        )
        fig.add_trace(
            _go().Bar(
                x=centres.tolist(),
                y=counts.tolist(),
                width=float(edges[1] - edges[0]),
                marker={"color": BLUE},
                opacity=0.8,
                name="periods",
                hovertemplate="%{x:.2%}: %{y}<extra></extra>",
            )
        )
        metrics = self._result.metrics
        for key, label, color, side in (
            ("var_95", "VaR 95%", ORANGE, "top right"),
            ("cvar_95", "CVaR 95%", RED, "top left"),
        ):
            value = metrics.get(key, math.nan)
            if math.isfinite(value):
                fig.add_vline(
                    x=value,
                    line={"color": color, "width": 1.5, "dash": "dash"},
                    annotation_text=label,
                    annotation_position=side,
                )
        return fig

    def exposure(self) -> Any:
        """Gross and net exposure as fractions of equity."""
        equity = self._result.equity
        if equity.height == 0:
            return empty_figure(260, "The run has no timestamps")
        series = _last(
            equity.select(
                "timestamp",
                (pl.col("gross_exposure") / pl.col("equity")).alias("gross"),
                (pl.col("net_exposure") / pl.col("equity")).alias("net"),
            )
        )
        fig = _figure(260, yaxis={"title": "of equity", "tickformat": ".0%"})
        x = wall_clock(series["timestamp"])
        fig.add_trace(_line(x, _y(series["gross"]), "gross", BLUE))
        fig.add_trace(_line(x, _y(series["net"]), "net", ORANGE))
        return fig

    def trades(self) -> Any:
        """Distribution of closed trades' net PnL, binned here (the page holds the counts, not
        every trade), wins and losses in their own colours."""
        trades = self._result.trades
        closed = trades.filter(pl.col("status") == "closed").get_column("net_pnl").to_numpy()
        closed = closed[np.isfinite(closed)]
        if closed.shape[0] == 0:
            return empty_figure(260, "No closed trades")
        fig = _figure(
            260,
            barmode="overlay",
            bargap=0.05,
            hovermode="closest",
            xaxis={"title": "net PnL per trade"},
            yaxis={"title": "trades"},
        )
        edges, centres = _histogram_bars(closed, int(min(60, max(10, math.sqrt(closed.shape[0])))))
        for name, values, color in (
            ("wins", closed[closed > 0], GREEN),
            ("losses", closed[closed <= 0], RED),
        ):
            if values.shape[0]:
                counts, _ = np.histogram(values, bins=edges)
                fig.add_trace(
                    _go().Bar(
                        x=centres.tolist(),
                        y=counts.tolist(),
                        width=float(edges[1] - edges[0]),
                        name=name,
                        marker={"color": color},
                        opacity=0.8,
                        hovertemplate="%{x:,.2f}: %{y} trades<extra></extra>",
                    )
                )
        return fig

    def positions(self, top: int = 10) -> Any:
        """Market value over time of the ``top`` assets by mean absolute market value (the
        rest summed as ``other``), stacked when the book is long only or short only."""
        held = self._result.positions(None)
        if held.height == 0:
            return empty_figure(300, "No positions")
        held = held.with_columns(pl.col("asset").cast(pl.String))
        ranked = (
            held.group_by("asset")
            .agg(pl.col("market_value").abs().sum().alias("size"))
            .sort("size", "asset", descending=[True, False])
        )
        leaders = ranked["asset"].head(top).to_list()
        labelled = held.with_columns(
            pl.when(pl.col("asset").is_in(leaders))
            .then(pl.col("asset"))
            .otherwise(pl.lit("other"))
            .alias("asset")
        )
        wide = (
            labelled.group_by("timestamp", "asset")
            .agg(pl.col("market_value").sum())
            .pivot(on="asset", index="timestamp", values="market_value")
        )
        times = self._result.equity.select("timestamp")
        wide = times.join(wide, on="timestamp", how="left").fill_null(0.0)
        wide = _last(wide)
        names = [a for a in [*leaders, "other"] if a in wide.columns]
        one_sided = bool((held["market_value"] >= 0).all() or (held["market_value"] <= 0).all())
        fig = _figure(300, yaxis={"title": "market value", "tickformat": ",.0f"})
        x = wall_clock(wide["timestamp"])
        for i, name in enumerate(names):
            color = GREY if name == "other" else _PALETTE[i % len(_PALETTE)]
            fig.add_trace(
                _go().Scatter(
                    x=x,
                    y=_y(wide[name]),
                    name=name,
                    mode="lines",
                    stackgroup="one" if one_sided else None,
                    line={"width": 0.5 if one_sided else 1.0, "color": color},
                )
            )
        return fig

    def holdings(self) -> Any:
        """The number of open positions and the largest position's share of the gross market
        value, over time."""
        held = self._result.positions(None)
        if held.height == 0:
            return empty_figure(260, "No positions")
        table = holdings(held)
        times = self._result.equity.select("timestamp")
        table = _last(
            times.join(table, on="timestamp", how="left").with_columns(
                pl.col("holdings").fill_null(0)
            )
        )
        fig = _figure(
            260,
            yaxis={"title": "positions", "rangemode": "tozero"},
            yaxis2={
                "title": "largest weight",
                "overlaying": "y",
                "side": "right",
                "tickformat": ".0%",
                "rangemode": "tozero",
                "showgrid": False,
            },
            margin={"l": 60, "r": 60, "t": 10, "b": 40},
        )
        x = wall_clock(table["timestamp"])
        fig.add_trace(_line(x, _y(table["holdings"]), "holdings", BLUE))
        fig.add_trace(_line(x, _y(table["largest"]), "largest weight", ORANGE, yaxis="y2"))
        return fig

    def long_short(self) -> Any:
        """Cumulative net PnL of closed trades by side, at their exit times."""
        closed = self._result.trades.filter(pl.col("status") == "closed")
        if closed.height == 0:
            return empty_figure(260, "No closed trades")
        fig = _figure(260, yaxis={"title": "net PnL", "tickformat": ",.0f"})
        for side, color in (("long", GREEN), ("short", RED)):
            part = closed.filter(pl.col("side") == side).sort("exit_time")
            if part.height == 0:
                continue
            series = _last(
                part.select(pl.col("exit_time"), pl.col("net_pnl").cum_sum().alias("pnl"))
            )
            fig.add_trace(_line(wall_clock(series["exit_time"]), _y(series["pnl"]), side, color))
        return fig

    def pnl_by_asset(self, top: int = 10) -> Any:
        """Net PnL of closed trades for the ``top`` best and ``top`` worst assets."""
        table = pnl_by_asset(self._result.trades)
        if table.height == 0:
            return empty_figure(300, "No closed trades")
        best = table.head(top)
        worst = table.tail(min(top, max(0, table.height - best.height)))
        shown = pl.concat([best, worst]).sort("total")
        values = shown["total"].to_list()
        fig = _figure(
            max(260, 40 + 18 * shown.height),
            hovermode="closest",
            xaxis={"title": "net PnL", "tickformat": ",.0f"},
            yaxis={"type": "category"},
            margin={"l": 90, "r": 20, "t": 10, "b": 40},
        )
        fig.add_trace(
            _go().Bar(
                x=values,
                y=shown["asset"].to_list(),
                orientation="h",
                marker={"color": [GREEN if v >= 0 else RED for v in values]},
                name="net PnL",
                hovertemplate="%{y}: %{x:,.2f}<extra></extra>",
            )
        )
        return fig

    def turnover(self, every: str = "1mo") -> Any:
        """Turnover (bars, left axis) and trading costs (line, right axis) per calendar period
        (``every``, a Polars duration)."""
        equity = self._result.equity
        if equity.height == 0:
            return empty_figure(260, "The run has no timestamps")
        table = turnover_and_costs(self._result.fills, equity, every)
        fig = _figure(
            260,
            yaxis={"title": "turnover", "tickformat": ".0%"},
            yaxis2={
                "title": "costs",
                "overlaying": "y",
                "side": "right",
                "tickformat": ",.0f",
                "showgrid": False,
                "rangemode": "tozero",
            },
            margin={"l": 60, "r": 60, "t": 10, "b": 40},
        )
        x = wall_clock(table["period"])
        fig.add_trace(
            _go().Bar(x=x, y=_y(table["turnover"]), name="turnover", marker={"color": BLUE})
        )
        fig.add_trace(_line(x, _y(table["costs"]), "costs", RED, yaxis="y2"))
        return fig

    def cost_sensitivity(self, bps: Sequence[float] = COST_BPS) -> Any:
        """The Sharpe ratio after an extra cost in basis points of the notional traded
        (pyfolio's capacity view; see :func:`~ml4t.backtest.results.analysis.cost_sensitivity`)."""
        ppy = self._ppy
        if self._result.equity.height < 2 or not math.isfinite(ppy):
            return empty_figure(260, "Not enough periods")
        table = cost_sensitivity(
            self._returns(),
            traded_fraction(self._result.fills, self._result.equity),
            ppy,
            bps,
        )
        fig = _figure(
            260,
            hovermode="closest",
            xaxis={"title": "extra cost (bps of notional traded)"},
            yaxis={"title": "Sharpe ratio"},
        )
        fig.add_trace(
            _go().Scatter(
                x=table["extra_cost_bps"].to_list(),
                y=_y(table["sharpe"]),
                mode="lines+markers",
                name="net Sharpe",
                line={"color": BLUE},
                hovertemplate="%{x} bps: %{y:.2f}<extra></extra>",
            )
        )
        fig.add_hline(y=0.0, line={"color": GREY, "width": 1})
        return fig

    def _frame(self) -> pl.DataFrame:
        feed = self._result._feed
        if feed is None:
            raise ValueError(
                "prediction: no_data: a loaded result has no data; the information "
                "coefficient needs the feed the run read"
            )
        return feed.frame

    def ic(self, prediction: str, window: int = 21) -> Any:
        """The information coefficient at each timestamp (Spearman rank correlation of
        ``prediction`` with the next bar's return across assets) and its ``window``-period
        mean. Needs the feed (a fresh result)."""
        table = information_coefficient(self._frame(), prediction, self._result.universe)
        if table.height == 0:
            return empty_figure(260, "No timestamp with 3 or more assets to rank")
        table = table.with_columns(
            pl.col("ic").rolling_mean(min(window, table.height)).alias("mean")
        )
        series = _last(table)
        mean_ic = float(table["ic"].mean())  # type: ignore[arg-type]
        fig = _figure(260, yaxis={"title": "Spearman IC"})
        x = wall_clock(series["timestamp"])
        fig.add_trace(
            _go().Bar(x=x, y=_y(series["ic"]), name="IC", marker={"color": GREY}, opacity=0.5)
        )
        fig.add_trace(_line(x, _y(series["mean"]), f"{window}-period mean", BLUE))
        fig.add_hline(
            y=mean_ic,
            line={"color": ORANGE, "width": 1, "dash": "dash"},
            annotation_text=f"mean {mean_ic:.3f}",
            annotation_position="top left",
        )
        return fig

    def quantile_returns(self, prediction: str, quantiles: int = 5) -> Any:
        """Mean next-bar return by prediction quantile (1 = lowest), in basis points."""
        table = quantile_returns(self._frame(), prediction, quantiles)
        if table.height == 0:
            return empty_figure(260, "No predictions with a next-bar return")
        values = (table["mean_return"] * 10_000).to_list()
        fig = _figure(
            260,
            hovermode="closest",
            xaxis={"title": f"{prediction} quantile", "type": "category"},
            yaxis={"title": "mean next-bar return (bps)"},
        )
        fig.add_trace(
            _go().Bar(
                x=[str(q) for q in table["quantile"].to_list()],
                y=values,
                marker={"color": [GREEN if v >= 0 else RED for v in values]},
                name="mean return",
                hovertemplate="quantile %{x}: %{y:.2f} bps<extra></extra>",
            )
        )
        return fig
