"""Running a strategy over combinatorial purged cross-validation paths
(:meth:`~ml4t.backtest.study.CombinatorialPurgedCV.run`).

Every split's ``fit`` trains on the split's purged and embargoed training rows (a new frame
without the test groups, the purged rows or the embargoed ones) and predicts its test groups
(or returns a model), with the contract of :mod:`~ml4t.backtest.study.refit`. Each path then
takes, for every group in time order, the piece its split tested, and one backtest runs over
the whole data with those predictions (or with each piece's model handed to ``on_fold`` at the
group's first timestamp): one out-of-sample equity curve per path.
"""

from __future__ import annotations

import html
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.study.refit import (
    FitAnswer,
    FitTask,
    Fold,
    RunTask,
    backend,
    base_config,
    check_answers,
    check_fit,
    check_risk,
    check_run,
    check_strategy,
    fit_one,
    in_memory,
    record_study,
    run_window,
    study_identity,
)

if TYPE_CHECKING:
    from ml4t.backtest.study.cpcv import CombinatorialPurgedCV

DISTRIBUTION_STATS = ("mean", "std", "min", "q25", "median", "q75", "max")
"""The columns of :attr:`CPCVResult.distribution` after ``metric``."""


def run_cpcv(
    cv: CombinatorialPurgedCV,
    feed: PolarsDataFeed,
    fit: Any,
    strategy: Any,
    executor: str | Executor | None,
    config: Any,
    risk: Any,
    max_workers: int | None,
    start_method: str,
    ledger: str | Path | bool | None = None,
) -> CPCVResult:
    """See :meth:`CombinatorialPurgedCV.run`."""
    feed = in_memory(feed)
    check_fit(fit)
    check_strategy(strategy)
    resolved = base_config(config)
    rules = check_risk(risk)
    check_run(feed, strategy, resolved, rules)
    frame = feed.frame
    ts_rows = frame.get_column("ts").to_numpy()
    stamps = frame.select(feed.universe.timestamps(pl.col("ts")).alias("timestamp")).to_series()
    splits = list(cv.split(stamps))
    groups = cv.groups(stamps)
    to_dt = feed.to_datetime
    tasks: list[FitTask] = []
    for split in splits:
        train, test = split.train_ranges, split.test_ranges
        fold = Fold(
            index=split.index,
            train_start=to_dt(int(ts_rows[train[0][0]])),
            train_end=to_dt(int(ts_rows[train[-1][1] - 1])),
            test_start=to_dt(int(ts_rows[test[0][0]])),
            test_end=to_dt(int(ts_rows[test[-1][1] - 1])),
            cutoff=None,
            train_rows=int(split.train.shape[0]),
            test_rows=int(split.test.shape[0]),
            test_groups=split.test_groups,
        )
        windows = tuple((int(ts_rows[a]), int(ts_rows[b - 1])) for a, b in test)
        tasks.append(FitTask(fold, train, test, windows, fit))
    group_windows = [(int(ts_rows[a]), int(ts_rows[b - 1])) for a, b in groups]
    paths = cv.paths()
    with backend(feed, executor, max_workers, start_method) as pool:
        answers: list[FitAnswer] = pool.map(fit_one, tasks)
        kind = check_answers(answers, strategy)
        runs: list[RunTask] = []
        for path in paths:
            signals = None
            folds: list[tuple[int, Any, Any]] = []
            if kind == "predictions":
                pieces = []
                for piece in path.pieces:
                    lo, hi = group_windows[piece.group]
                    predictions = answers[piece.split].predictions
                    assert predictions is not None
                    pieces.append(predictions.filter(pl.col("ts").is_between(lo, hi)))
                signals = pl.concat(pieces)
            else:
                previous = None
                for piece in path.pieces:
                    if piece.split != previous:  # adjacent groups of one split: one hand-over
                        folds.append(
                            (
                                group_windows[piece.group][0],
                                answers[piece.split].model,
                                tasks[piece.split].fold,
                            )
                        )
                    previous = piece.split
            runs.append(RunTask(int(ts_rows[0]), None, signals, strategy, resolved, rules, folds))
        results: list[BacktestResult] = pool.map(run_window, runs)
        info = {"executor": pool.name, "workers": pool.workers, "kind": kind}
    out = CPCVResult(cv, splits, tasks, answers, results, info)
    layout: dict[str, Any] = {
        "n_groups": cv.n_groups,
        "n_test_groups": cv.n_test_groups,
        "label_horizon": cv.label_horizon,
        "embargo": cv.embargo,
    }
    # One variant: the mean of the paths' metrics (the CPCV estimate), not one per path.
    mean = {
        str(row["metric"]): float(row["mean"]) for row in out.distribution.iter_rows(named=True)
    }
    identity = study_identity(fit, strategy, resolved, rules, layout)
    ppy = mean.get("periods_per_year", float("nan"))
    out.ledger, out.checksum = record_study(
        feed, "cpcv", identity, mean, ppy, ledger, {"paths": out.n_paths}
    )
    return out


class CPCVResult:
    """What :meth:`CombinatorialPurgedCV.run` returns.

    Attributes:
        cv: the :class:`CombinatorialPurgedCV`.
        results: one :class:`~ml4t.backtest.BacktestResult` per path, over the whole data.
        paths: one row per path: ``path``, ``splits`` (the split providing each group, group 0
            first) and every metric of its result.
        distribution: one row per metric: ``metric`` and its ``mean, std`` (ddof = 1),
            ``min, q25, median, q75, max`` across the paths (finite values only; NaN when no
            path has one).
        equity: every path's equity curve, ``path, timestamp, equity``.
        splits: one row per split: ``split, test_groups, train_start, train_end, test_start,
            test_end, train_rows, test_rows, purged, embargoed, fit_seconds``.
        models: what each split's fit returned when it returned models (``None`` otherwise).
        info: ``executor``, ``workers``, ``kind`` (``"predictions"`` or ``"model"``).
    """

    def __init__(
        self,
        cv: CombinatorialPurgedCV,
        splits: list[Any],
        tasks: list[FitTask],
        answers: list[FitAnswer],
        results: list[BacktestResult],
        info: dict[str, Any],
    ) -> None:
        self.cv = cv
        self.results = results
        self.info = info
        self.ledger: Path | None = None
        """The trial ledger's root this run was recorded in (``None``: not recorded)."""
        self.checksum: str | None = None
        """The checksum of the data the run read, its key in the ledger."""
        self.n_paths = len(results)
        self.models = [a.model for a in answers] if info["kind"] == "model" else None
        paths = cv.paths()
        rows = []
        for path, result in zip(paths, results, strict=True):
            rows.append(
                {
                    "path": path.index,
                    "splits": " ".join(str(s) for s in path.splits),
                    **{k: float(v) for k, v in result.metrics.items()},
                }
            )
        self.paths = pl.DataFrame(rows)
        metrics = [c for c in self.paths.columns if c not in ("path", "splits")]
        stats = []
        for name in metrics:
            values = self.paths.get_column(name).to_numpy().astype(np.float64)
            values = values[np.isfinite(values)]
            if values.size:
                q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
                std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
                row = [values.mean(), std, values.min(), q25, median, q75, values.max()]
            else:
                row = [float("nan")] * len(DISTRIBUTION_STATS)
            stats.append(
                {"metric": name, **dict(zip(DISTRIBUTION_STATS, map(float, row), strict=True))}
            )
        self.distribution = pl.DataFrame(stats)
        self.equity = pl.concat(
            [
                r.equity.select(pl.lit(p, dtype=pl.Int64).alias("path"), "timestamp", "equity")
                for p, r in enumerate(results)
            ]
        )
        self.splits = pl.DataFrame(
            [
                {
                    "split": split.index,
                    "test_groups": " ".join(str(g) for g in split.test_groups),
                    "train_start": task.fold.train_start,
                    "train_end": task.fold.train_end,
                    "test_start": task.fold.test_start,
                    "test_end": task.fold.test_end,
                    "train_rows": task.fold.train_rows,
                    "test_rows": task.fold.test_rows,
                    "purged": split.purged,
                    "embargoed": split.embargoed,
                    "fit_seconds": answer.seconds,
                }
                for split, task, answer in zip(splits, tasks, answers, strict=True)
            ]
        ).with_columns(
            pl.col(c).cast(results[0].universe.timestamp_dtype)
            for c in ("train_start", "train_end", "test_start", "test_end")
        )

    def metric(self, name: str) -> pl.Series:
        """One metric across the paths (a Series, path order)."""
        return self.paths.get_column(name)

    def __repr__(self) -> str:
        row = self.distribution.filter(pl.col("metric") == "sharpe")
        mean, low, high = (
            (float(row["mean"][0]), float(row["min"][0]), float(row["max"][0]))
            if row.height
            else (float("nan"),) * 3
        )
        return (
            f"CPCVResult(paths={self.n_paths}, splits={self.splits.height}, sharpe "
            f"mean={mean:.3f} min={low:.3f} max={high:.3f})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: the headline and the distribution of the main metrics."""
        from ml4t.backtest.study.fold_report import table_html

        main = self.distribution.filter(
            pl.col("metric").is_in(["total_return", "cagr", "sharpe", "max_drawdown"])
        )
        return (
            "<div class='ml4t-backtest-cpcv' style='font-family:sans-serif;font-size:13px'>"
            f"<b>{html.escape(repr(self))}</b>{table_html(main)}</div>"
        )

    def report(self, path: str | Path = "cpcv.html", title: str = "CPCV report") -> Path:
        """Writes one self-contained HTML page: the paths' equity fan, the Sharpe
        distribution, the metric distribution, the paths and the splits; returns the path."""
        from ml4t.backtest.study.fold_report import write_cpcv_report

        return write_cpcv_report(self, Path(path), title=title)
