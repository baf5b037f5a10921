"""Walk-forward: refit a model on a schedule that cannot see the future, and trade each fit
out of sample.

Folds are laid out on the data's distinct timestamps. ``train``, ``test`` and ``step`` are bars
(an ``int``: timestamps) or durations (``"1mo"``, ``"252d"``, a ``timedelta``: calendar time in
the data's time zone); ``purge`` and ``embargo`` too.

- Fold 0 tests from the first timestamp after the first training window (``train`` bars in, or
  the first at or after the first timestamp plus ``train``); fold ``i`` starts ``i`` steps
  later (``step`` defaults to ``test``, which makes the test windows adjacent). A test window
  holds ``test`` bars (or the timestamps before its start plus ``test``); the last one ends
  with the data.
- The training window is the ``train`` bars (or duration) before the test start, from the
  first timestamp when ``anchored``. Its last rows are left out: those within ``purge`` of the
  test start (their labels look into the test window) and then ``embargo`` more, so ``fit``
  sees only rows before the **cut-off** = test start - purge - embargo.

``continuous=True`` runs one backtest over the stitched test windows (one account, positions
carried across folds; the fits run first, on the executor); ``continuous=False`` runs each test
window from flat, the folds in parallel on the executor.

Example:
    >>> from ml4t.backtest import TopKStrategy, PolarsDataFeed
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=4, n_bars=60, seed=2))
    >>> def fit(train, fold):
    ...     return fold.test_data.select("timestamp", "asset", pred="score")
    >>> wf = WalkForward(feed, fit, TopKStrategy("pred", k=1), train=20, test=10, purge=2)
    >>> [(f.index, f.train_rows // 4, f.test_rows // 4) for f in wf.folds]
    [(0, 18, 10), (1, 18, 10), (2, 18, 10), (3, 18, 10)]
    >>> wf.run().folds.height
    4
"""

from __future__ import annotations

import html
import re
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.results.metrics import compute_metrics
from ml4t.backtest.study.fold_report import build_walkforward_report, table_html, write_page
from ml4t.backtest.study.refit import (
    FitAnswer,
    FitTask,
    Fold,
    Horizon,
    RunTask,
    backend,
    base_config,
    check_answers,
    check_fit,
    check_risk,
    check_run,
    check_strategy,
    fit_one,
    horizon,
    in_memory,
    record_study,
    run_window,
    study_identity,
    timeline,
    user_predictions,
)

__all__ = ["WalkForward", "WalkForwardResult"]

_DURATION_PART = re.compile(r"(\d+)([a-z]+)")


def _window(value: Horizon, name: str, *, positive: bool) -> int | str:
    """Bars or a duration string; ``positive`` refuses zero."""
    parsed = horizon(value, name)
    if positive and (parsed == 0 or (isinstance(parsed, str) and _is_zero(parsed))):
        raise ConfigError(f"{name}: positive: a window needs at least one bar, got {value!r}")
    return parsed


def _is_zero(duration: str) -> bool:
    return all(int(n) == 0 for n, _ in _DURATION_PART.findall(duration))


def _times(duration: str, count: int) -> str:
    """``duration`` repeated ``count`` times, as one duration (``"1mo"`` x 3 = ``"3mo"``), so
    month steps do not drift at month ends."""
    parts = _DURATION_PART.findall(duration.strip())
    if not parts:
        raise ConfigError(f"duration: {duration!r} is not a Polars duration")
    return "".join(f"{int(n) * count}{unit}" for n, unit in parts)


@dataclass
class _Plan:
    """A fold in timestamp positions: train ``[lo, cut)``, test ``[start, stop)``."""

    lo: int
    cut: int
    cutoff: int
    start: int
    stop: int


class WalkForward:
    """A walk-forward study: ``fit`` refit on each fold's training rows, its predictions (or
    model) traded over the fold's test window.

    Args:
        feed: the data (a streaming feed is read into memory once).
        fit: ``fit(train_data, fold)`` returning predictions or a model (see
            :mod:`~ml4t.backtest.study.refit`).
        strategy: a built-in strategy reading the predictions (``TopKStrategy("pred")``), or
            a :class:`~ml4t.backtest.Strategy` (reading them, or given each model through
            ``on_fold``).
        train, test: window lengths: bars (``int``) or durations (``"1mo"``, a ``timedelta``).
        step: how far each fold moves on (default ``test``).
        purge: rows before the test start left out of training (the label horizon).
        embargo: a further gap before the test start.
        anchored: every training window starts at the first timestamp.
        continuous: one account across folds (one stitched backtest) or each test window from
            flat (``False``).
        config: a :class:`~ml4t.backtest.BacktestConfig` or a dict of dotted overrides.
        risk: risk rules for every backtest.

    Raises:
        ConfigError: a bad window, a train window longer than the data, a test window that
            does not fit after it, a purge (plus embargo) that leaves a fold no training row,
            continuous test windows that overlap or leave gaps (``step`` ≠ ``test``), or a
            strategy, config or rule ``Backtest`` refuses.
    """

    def __init__(
        self,
        feed: PolarsDataFeed,
        fit: Any,
        strategy: Any,
        *,
        train: Horizon,
        test: Horizon,
        step: Horizon | None = None,
        purge: Horizon | None = None,
        embargo: Horizon | None = None,
        anchored: bool = False,
        continuous: bool = True,
        config: Any = None,
        risk: Any = None,
    ) -> None:
        self.feed = in_memory(feed)
        check_fit(fit)
        check_strategy(strategy)
        self.fit = fit
        self.strategy = strategy
        self.train = _window(train, "train", positive=True)
        self.test = _window(test, "test", positive=True)
        self.step = self.test if step is None else _window(step, "step", positive=True)
        self._adjacent = step is None or self.step == self.test
        self.purge = _window(0 if purge is None else purge, "purge", positive=False)
        self.embargo = _window(0 if embargo is None else embargo, "embargo", positive=False)
        for name, flag in (("anchored", anchored), ("continuous", continuous)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name}: expected True or False, got {flag!r}")
        self.anchored = anchored
        self.continuous = continuous
        self.config = base_config(config)
        self.risk = check_risk(risk)
        check_run(self.feed, strategy, self.config, self.risk)
        self._ts, self._bounds = timeline(self.feed.frame)
        self._plans = self._plan()
        self.folds = [self._fold(i, p) for i, p in enumerate(self._plans)]

    # ------------------------------------------------------------------------------ planning

    def _offset(self, ns: int, duration: str, sign: int = 1) -> int:
        """``ns`` moved by a calendar duration in the data's time zone."""
        universe = self.feed.universe
        value = pl.Series([ns]).cast(pl.Datetime("ns", "UTC"))
        if universe.time_zone:
            value = value.dt.convert_time_zone(universe.time_zone)
        else:
            value = value.dt.replace_time_zone(None)
        moved = value.dt.offset_by(duration if sign > 0 else f"-{duration}")
        return int(moved.dt.epoch("ns")[0])

    def _position(self, ns: int) -> int:
        """The first timestamp position at or after ``ns``."""
        return int(np.searchsorted(self._ts, ns, side="left"))

    def _back(self, position: int, instant: int, horizon: int | str) -> tuple[int, int]:
        """``(position, instant)`` moved back by bars or a duration."""
        if isinstance(horizon, int):
            back = position - horizon
            return back, int(self._ts[back]) if back >= 0 else np.iinfo(np.int64).min
        moved = self._offset(instant, horizon, -1)
        return self._position(moved), moved

    def _plan(self) -> list[_Plan]:
        ts = self._ts
        n = int(ts.shape[0])
        if n == 0:
            raise ConfigError("feed: empty: the data has no timestamps")
        train, test, step = self.train, self.test, self.step
        if isinstance(train, int):
            first = train
            anchor = int(ts[first]) if first < n else None
        else:
            anchor = self._offset(int(ts[0]), train)
            first = self._position(anchor)
        if first >= n or anchor is None:
            raise ConfigError(
                f"train: longer_than_data: the training window ({train!r}) leaves no timestamp "
                f"to test; the data has {n} timestamps ({self._text(0)} … {self._text(n - 1)})"
            )
        starts: list[tuple[int, int]] = []  # (position, instant) of each test start
        i = 0
        while True:
            if isinstance(step, int):
                position = first + i * step
                instant = int(ts[position]) if position < n else 0
            else:
                instant = anchor if i == 0 else self._offset(anchor, _times(step, i))
                position = self._position(instant)
            if position >= n:
                break
            if not starts or position > starts[-1][0]:  # calendar starts in one gap: the first
                starts.append((position, instant))
            i += 1
        plans: list[_Plan] = []
        for k, (position, instant) in enumerate(starts):
            if self._adjacent and k + 1 < len(starts):
                stop = starts[k + 1][0]
            elif isinstance(test, int):
                stop = min(position + test, n)
            else:
                stop = self._position(self._offset(instant, test))
            if k == 0:
                full = (
                    position + test <= n
                    if isinstance(test, int)
                    else (self._offset(instant, test) <= int(ts[-1]) + 1)
                )
                if not full:
                    raise ConfigError(
                        f"test: longer_than_data: the first test window ({test!r} from "
                        f"{self._text(position)}) runs past the data's end ({self._text(n - 1)})"
                        f"; shorten train or test"
                    )
            stop = min(stop, n)
            if stop <= position:
                continue  # a calendar window without a bar
            if self.anchored:
                lo = 0
            elif isinstance(train, int):
                lo = max(position - train, 0)
            else:
                lo = self._position(self._offset(instant, train, -1))
            cut, cutoff = self._back(position, int(ts[position]), self.purge)
            if cut > 0:
                cut, cutoff = self._back(cut, cutoff, self.embargo)
            cut = max(cut, 0)
            if cut <= lo:
                raise ConfigError(
                    f"purge: purge_too_long: fold {len(plans)} keeps no training rows: its "
                    f"training window starts at {self._text(lo)} and the cut-off (test start "
                    f"{self._text(position)} less purge {self.purge!r} and embargo "
                    f"{self.embargo!r}) is not after it; shorten the purge or lengthen train"
                )
            plans.append(_Plan(lo, cut, cutoff, position, stop))
        if self.continuous:
            for k in range(len(plans) - 1):
                if plans[k].stop != plans[k + 1].start:
                    kind = "overlap" if plans[k].stop > plans[k + 1].start else "leave a gap"
                    raise ConfigError(
                        f"step: continuous: the test windows of folds {k} and {k + 1} {kind} "
                        f"(step {self.step!r}, test {self.test!r}); continuous=True stitches "
                        "adjacent windows: give step equal to test, or continuous=False"
                    )
        return plans

    def _text(self, position: int) -> str:
        return str(self.feed.to_datetime(int(self._ts[position])))

    def _fold(self, index: int, plan: _Plan) -> Fold:
        rows = self._bounds
        to_dt = self.feed.to_datetime
        return Fold(
            index=index,
            train_start=to_dt(int(self._ts[plan.lo])),
            train_end=to_dt(int(self._ts[plan.cut - 1])),
            test_start=to_dt(int(self._ts[plan.start])),
            test_end=to_dt(int(self._ts[plan.stop - 1])),
            cutoff=to_dt(int(plan.cutoff)),
            train_rows=int(rows[plan.cut] - rows[plan.lo]),
            test_rows=int(rows[plan.stop] - rows[plan.start]),
        )

    def _task(self, fold: Fold, plan: _Plan) -> FitTask:
        rows = self._bounds
        return FitTask(
            fold=fold,
            train=((int(rows[plan.lo]), int(rows[plan.cut])),),
            test=((int(rows[plan.start]), int(rows[plan.stop])),),
            windows=((int(self._ts[plan.start]), int(self._ts[plan.stop - 1])),),
            fit=self.fit,
        )

    # ------------------------------------------------------------------------------- running

    def run(
        self,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        *,
        start_method: str = "spawn",
        ledger: str | Path | bool | None = None,
    ) -> WalkForwardResult:
        """Fits every fold (in parallel on ``executor``: ``None`` or ``"threads"``,
        ``"processes"``, ``"ray"`` or a ``concurrent.futures.Executor``, as for a sweep) and
        runs the backtests: one stitched run (``continuous``) or one per fold, on the executor.
        The result is the same for every executor and worker count. The run is recorded in
        the trial ledger as one variant (its stitched out-of-sample Sharpe ratio), keyed by
        the data, the fit's and strategy's identity, the windows, config and rules: ``ledger``
        ``None``/``True`` the default ledger, a directory, or ``False`` (not recorded).

        Raises:
            ConfigError, DataValidationError, SignalTimingError: a fit that returns a bad frame
                or predictions outside its test window (look-ahead), mixed kinds, a model for
                a built-in strategy; the first failing fold's error is raised.
        """
        tasks = [self._task(f, p) for f, p in zip(self.folds, self._plans, strict=True)]
        ts = self._ts
        with backend(self.feed, executor, max_workers, start_method) as pool:
            answers: list[FitAnswer] = pool.map(fit_one, tasks)
            kind = check_answers(answers, self.strategy)
            runs: list[RunTask] = []
            groups = (
                [[k] for k in range(len(tasks))]
                if not self.continuous
                else [list(range(len(tasks)))]
            )
            for members in groups:
                first, last = self._plans[members[0]], self._plans[members[-1]]
                end = int(ts[last.stop]) if last.stop < ts.shape[0] else None
                signals = None
                folds: list[tuple[int, Any, Any]] = []
                if kind == "predictions":
                    frames = [answers[k].predictions for k in members]
                    signals = pl.concat([f for f in frames if f is not None])
                else:
                    folds = [
                        (int(ts[self._plans[k].start]), answers[k].model, self.folds[k])
                        for k in members
                    ]
                runs.append(
                    RunTask(
                        int(ts[first.start]),
                        end,
                        signals,
                        self.strategy,
                        self.config,
                        self.risk,
                        folds,
                    )
                )
            results: list[BacktestResult] = (
                [run_window(self.feed, runs[0])] if self.continuous else pool.map(run_window, runs)
            )
            info = {"executor": pool.name, "workers": pool.workers, "kind": kind}
        out = WalkForwardResult(self, answers, results, info)
        windows = {
            name: getattr(self, name)
            for name in ("train", "test", "step", "purge", "embargo", "anchored", "continuous")
        }
        identity = study_identity(self.fit, self.strategy, self.config, self.risk, windows)
        ppy = out.metrics.get("periods_per_year", float("nan"))
        out.ledger, out.checksum = record_study(
            self.feed, "walkforward", identity, out.metrics, ppy, ledger, {"folds": len(tasks)}
        )
        return out


def _slice_metrics(
    result: BacktestResult, lo: Any, hi: Any, start_cash: float, ppy: float
) -> dict[str, float]:
    """The metrics of ``result`` over ``[lo, hi]`` (inclusive datetimes), returns measured from
    ``start_cash`` (the equity before ``lo``)."""
    between = pl.col("timestamp").is_between(lo, hi, closed="both")
    equity = result.equity.filter(between)
    trades = result.trades.filter(pl.col("exit_time").is_between(lo, hi, closed="both"))
    fills = result.fills.filter(between)
    return compute_metrics(equity, trades, fills, initial_cash=start_cash, periods_per_year=ppy)


class WalkForwardResult:
    """What :meth:`WalkForward.run` returns.

    Attributes:
        result: the stitched out-of-sample :class:`~ml4t.backtest.BacktestResult`
            (``continuous=True``); ``None`` when each fold ran from flat.
        results: every backtest run: the one stitched run, or one per fold.
        folds: one row per fold: ``fold, train_start, train_end, cutoff, test_start,
            test_end, train_rows, test_rows, fit_seconds`` and every metric of the fold's test
            window (of the stitched run's slice, returns measured from the equity the fold
            started with; or of the fold's own run).
        equity: the out-of-sample equity curve, ``timestamp, fold, equity``: the stitched
            run's, or the folds' runs chained (each fold's returns compounded on the equity
            the previous one ended with).
        metrics: the metrics of :attr:`equity` over all test windows.
        models: what each fit returned when it returned models (``None`` otherwise).
        predictions: every fold's predictions, ``timestamp, asset`` and the columns, in time
            order: the out-of-sample signals (``None`` when the fits returned models).
        info: ``executor``, ``workers``, ``kind`` (``"predictions"`` or ``"model"``).
    """

    def __init__(
        self,
        study: WalkForward,
        answers: list[FitAnswer],
        results: list[BacktestResult],
        info: dict[str, Any],
    ) -> None:
        self.study = study
        self.info = info
        self.results = results
        self.ledger: Path | None = None
        """The trial ledger's root this run was recorded in (``None``: not recorded)."""
        self.checksum: str | None = None
        """The checksum of the data the run read, its key in the ledger."""
        self.continuous = study.continuous
        self.result: BacktestResult | None = results[0] if study.continuous else None
        self.models = [a.model for a in answers] if info["kind"] == "model" else None
        self.predictions = (
            user_predictions(
                [a.predictions for a in answers if a.predictions is not None], study.feed
            )
            if info["kind"] == "predictions"
            else None
        )
        cash = study.config.initial_cash
        rows: list[dict[str, Any]] = []
        curves: list[pl.DataFrame] = []
        level = cash
        first = results[0]
        ppy = first.annualization.periods_per_year if first.equity.height > 1 else 252.0
        for k, fold in enumerate(study.folds):
            if study.continuous:
                res = results[0]
                eq = res.equity
                before = eq.filter(pl.col("timestamp") < fold.test_start)
                start_cash = float(before["equity"][-1]) if before.height else cash
                metrics = _slice_metrics(res, fold.test_start, fold.test_end, start_cash, ppy)
                piece = eq.filter(
                    pl.col("timestamp").is_between(fold.test_start, fold.test_end, closed="both")
                ).select("timestamp", pl.lit(k, dtype=pl.Int64).alias("fold"), "equity")
            else:
                res = results[k]
                metrics = dict(res.metrics)
                piece = res.equity.select(
                    "timestamp",
                    pl.lit(k, dtype=pl.Int64).alias("fold"),
                    (pl.col("equity") * (level / cash)).alias("equity"),
                )
                if piece.height:
                    level = float(piece["equity"][-1])
            curves.append(piece)
            rows.append(
                {
                    "fold": k,
                    "train_start": fold.train_start,
                    "train_end": fold.train_end,
                    "cutoff": fold.cutoff,
                    "test_start": fold.test_start,
                    "test_end": fold.test_end,
                    "train_rows": fold.train_rows,
                    "test_rows": fold.test_rows,
                    "fit_seconds": answers[k].seconds,
                    **{name: float(v) for name, v in metrics.items()},
                }
            )
        stamp = study.feed.universe.timestamp_dtype
        times = ("train_start", "train_end", "cutoff", "test_start", "test_end")
        self.folds = pl.DataFrame(rows).with_columns(pl.col(c).cast(stamp) for c in times)
        self.equity = pl.concat(curves)
        if study.continuous:
            self.metrics = dict(results[0].metrics)
        else:
            self.metrics = compute_metrics(
                self.equity.drop("fold"),
                pl.concat([r.trades for r in results]),
                pl.concat([r.fills for r in results]),
                initial_cash=cash,
                periods_per_year=ppy,
            )

    def __repr__(self) -> str:
        sharpe = self.metrics.get("sharpe", float("nan"))
        total = self.metrics.get("total_return", float("nan"))
        return (
            f"WalkForwardResult(folds={self.folds.height}, continuous={self.continuous}, "
            f"sharpe={sharpe:.3f}, total_return={total:.4f})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: the headline figures and the fold table."""
        shown = [
            c
            for c in (
                "fold",
                "train_start",
                "train_end",
                "test_start",
                "test_end",
                "fit_seconds",
                "total_return",
                "sharpe",
                "max_drawdown",
            )
            if c in self.folds.columns
        ]
        head = html.escape(repr(self))
        return (
            "<div class='ml4t-backtest-walkforward' style='font-family:sans-serif;"
            f"font-size:13px'><b>{head}</b>{table_html(self.folds.select(shown))}</div>"
        )

    def report(
        self, path: str | Path = "walkforward.html", title: str = "Walk-forward report"
    ) -> Path:
        """Writes one self-contained HTML page: the out-of-sample equity curve with the fold
        boundaries marked, the drawdown, and the fold table; returns the path."""
        study = self.study
        subtitle = (
            f"{self.folds.height} folds · train {study.train!r} · test {study.test!r} · step "
            f"{study.step!r} · purge {study.purge!r} · embargo {study.embargo!r} · "
            f"{'anchored' if study.anchored else 'rolling'} · "
            f"{'one account across folds' if study.continuous else 'each fold from flat'} · "
            f"fits returned {self.info['kind']}"
        )
        page = build_walkforward_report(
            title=title,
            subtitle=subtitle,
            equity=self.equity,
            folds=self.folds,
            metrics=self.metrics,
            initial_cash=study.config.initial_cash,
        )
        return write_page(Path(path), page)
