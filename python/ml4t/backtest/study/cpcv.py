"""Combinatorial purged cross-validation: the splits and the backtest paths (López de Prado,
*Advances in Financial Machine Learning*, 2018, ch. 7 and 12).

The distinct timestamps of the data are cut into ``N`` contiguous groups of (nearly) equal
size; a group never splits a timestamp, so every asset of a bar lands in the same group. Each
of the ``C(N, k)`` splits tests on ``k`` groups and trains on the rest, less:

- **purged** rows: a row at ``t`` has the label window ``[t, t + label_horizon]``; the test
  rows' windows span ``[first test time, last test time + label_horizon]`` for each run of
  adjacent test groups, and a training row whose window overlaps that span is dropped (the
  rows just before the test run, whose labels look into it, and the rows just after it, whose
  labels overlap the test labels);
- **embargoed** rows: the rows within ``embargo`` after that span.

``label_horizon`` and ``embargo`` are bars (an ``int``, counted in distinct timestamps) or
durations (a Polars duration string such as ``"5d"`` or a ``timedelta``). Each group is tested
in ``C(N - 1, k - 1)`` splits, so the test pieces assemble into ``φ = k/N · C(N, k)`` paths,
each covering every group once: :meth:`CombinatorialPurgedCV.paths`.

**Running** (:meth:`CombinatorialPurgedCV.run`): every split's ``fit`` trains on the split's
purged and embargoed training rows (a new frame without the test groups, the purged rows or
the embargoed ones) and predicts its test groups (or returns a model), with the contract of
:mod:`~ml4t.backtest.study.refit`. Each path then takes, for every group in time order, the
piece its split tested, and one backtest runs over the whole data with those predictions (or
with each piece's model handed to ``on_fold`` at the group's first timestamp): one
out-of-sample equity curve per path (:class:`CPCVResult`).

Example:
    >>> cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, label_horizon=1)
    >>> cv.n_splits, cv.n_paths
    (6, 3)
    >>> first = next(cv.split(12))
    >>> first.test_groups, first.test.tolist(), first.train.tolist()
    ((0, 1), [0, 1, 2, 3, 4, 5], [7, 8, 9, 10, 11])
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.study.fold_report import build_cpcv_report, table_html, write_page
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
)

__all__ = ["CPCVPath", "CPCVResult", "CombinatorialPurgedCV", "Horizon", "PathPiece", "Split"]


Indices: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test split. Iterating gives ``(train, test)``, as scikit-learn expects.

    Attributes:
        index: the split's position, in :func:`itertools.combinations` order of the test
            groups.
        test_groups: the ``k`` groups tested.
        train: the training rows (sorted row positions of the data).
        test: the test rows.
        train_ranges: ``train`` as half-open ``(start, stop)`` row ranges.
        test_ranges: ``test`` as half-open row ranges, one per run of adjacent test groups.
        purged: rows left out of training because their label window overlaps the test labels.
        embargoed: further rows left out by the embargo after each test run.
    """

    index: int
    test_groups: tuple[int, ...]
    train: Indices
    test: Indices
    train_ranges: tuple[tuple[int, int], ...]
    test_ranges: tuple[tuple[int, int], ...]
    purged: int
    embargoed: int

    def __iter__(self) -> Iterator[Indices]:
        return iter((self.train, self.test))


@dataclass(frozen=True)
class PathPiece:
    """Group ``group`` of a path is tested in split ``split``."""

    group: int
    split: int


@dataclass(frozen=True)
class CPCVPath:
    """One backtest path: for each group in time order, the split whose test set provides it."""

    index: int
    pieces: tuple[PathPiece, ...]

    @property
    def splits(self) -> tuple[int, ...]:
        """The split of each group, group 0 first."""
        return tuple(piece.split for piece in self.pieces)


class CombinatorialPurgedCV:
    """Combinatorial purged cross-validation over ``n_groups`` groups, ``n_test_groups`` tested
    per split (see the module docstring for purging and embargo).

    Args:
        n_groups: ``N`` ≥ 2 contiguous groups of distinct timestamps.
        n_test_groups: ``k``, 1 ≤ k < N, groups tested per split.
        label_horizon: how far a row's label looks ahead: bars or a duration.
        embargo: how long after the test labels training rows are left out: bars or a duration.

    Raises:
        ConfigError: fewer than two groups, ``k`` outside ``1 … N - 1``, a negative or
            unreadable horizon or embargo.
    """

    def __init__(
        self,
        n_groups: int,
        n_test_groups: int,
        label_horizon: Horizon = 0,
        embargo: Horizon = 0,
    ) -> None:
        for name, value in (("n_groups", n_groups), ("n_test_groups", n_test_groups)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name}: integer: got {value!r}")
        if n_groups < 2:
            raise ConfigError(
                f"n_groups: at_least_2: got {n_groups}; a split needs a group to train on and "
                "one to test"
            )
        if not 1 <= n_test_groups < n_groups:
            raise ConfigError(
                f"n_test_groups: range: must be at least 1 and less than n_groups ({n_groups}), "
                f"got {n_test_groups}"
            )
        self.n_groups = int(n_groups)
        self.n_test_groups = int(n_test_groups)
        self.label_horizon = horizon(label_horizon, "label_horizon")
        self.embargo = horizon(embargo, "embargo")

    def __repr__(self) -> str:
        return (
            f"CombinatorialPurgedCV(n_groups={self.n_groups}, "
            f"n_test_groups={self.n_test_groups}, label_horizon={self.label_horizon!r}, "
            f"embargo={self.embargo!r})"
        )

    # ------------------------------------------------------------------------- combinatorics

    @property
    def n_splits(self) -> int:
        """``C(N, k)``."""
        return math.comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """``φ = k/N · C(N, k) = C(N - 1, k - 1)``."""
        return math.comb(self.n_groups - 1, self.n_test_groups - 1)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """``C(N, k)`` (scikit-learn's splitter interface)."""
        return self.n_splits

    def test_groups(self) -> list[tuple[int, ...]]:
        """The test groups of each split, in split order."""
        return list(itertools.combinations(range(self.n_groups), self.n_test_groups))

    def run(
        self,
        feed: Any,
        fit: Any,
        strategy: Any,
        executor: str | Executor | None = None,
        config: Any = None,
        risk: Any = None,
        *,
        max_workers: int | None = None,
        start_method: str = "spawn",
        ledger: str | Path | bool | None = None,
    ) -> CPCVResult:
        """Backtests ``strategy`` over every path: ``fit(train_data, fold)`` per split on its
        purged and embargoed training rows (the contract of
        :mod:`~ml4t.backtest.study.refit`; ``fold.test_groups`` names the groups it
        predicts), then one backtest over the whole data per path, each group traded with
        the predictions (or the model) of the split that tested it.

        Args:
            feed: the data (a streaming feed is read into memory once).
            fit: the fit, as for :class:`~ml4t.backtest.study.WalkForward`.
            strategy: a built-in strategy reading the predictions, or a
                :class:`~ml4t.backtest.Strategy`.
            executor: where the fits and the path backtests run: ``None`` (threads),
                ``"threads"``, ``"processes"``, ``"ray"`` or a
                ``concurrent.futures.Executor``; the result is the same on every one.
            config: a :class:`~ml4t.backtest.BacktestConfig` or a dict of dotted overrides.
            risk: risk rules for every path.
            max_workers: how many workers (default: the CPUs this process may use).
            start_method: the process pool's start method.
            ledger: where the run is recorded, as ONE variant (the mean of its paths'
                metrics; see :mod:`~ml4t.backtest.study.ledger`): ``None``/``True`` the default
                ledger, a directory, or ``False`` (not recorded).

        Raises:
            ConfigError, DataValidationError: as :meth:`split`, and a fit that returns a bad
                frame, mixed kinds or a model for a built-in strategy.
            SignalTimingError: a fit that predicts outside its split's test groups.
        """
        return run_cpcv(
            self, feed, fit, strategy, executor, config, risk, max_workers, start_method, ledger
        )

    def paths(self) -> list[CPCVPath]:
        """The ``φ`` backtest paths. Path ``p`` takes, for each group, the ``p``-th split (in
        split order) that tests it; every group appears on every path exactly once and every
        test piece (split, group) on exactly one path."""
        testing: list[list[int]] = [[] for _ in range(self.n_groups)]
        for index, groups in enumerate(self.test_groups()):
            for group in groups:
                testing[group].append(index)
        return [
            CPCVPath(p, tuple(PathPiece(g, testing[g][p]) for g in range(self.n_groups)))
            for p in range(self.n_paths)
        ]

    # --------------------------------------------------------------------------------- data

    def _timeline(self, data: Any, timestamp: str) -> tuple[pl.Series | None, Indices]:
        """The distinct timestamps (None for bare rows) and, per distinct timestamp, the first
        row holding it (plus the row count at the end)."""
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            if data < 0:
                raise DataValidationError(f"data: non_negative: {data} rows")
            return None, np.arange(int(data) + 1, dtype=np.int64)
        if isinstance(data, pl.DataFrame):
            if timestamp not in data.columns:
                raise DataValidationError(
                    f"{timestamp}: missing: the frame has no column {timestamp!r} "
                    f"(columns {data.columns[:8]}); pass timestamp='name'"
                )
            times = data.get_column(timestamp)
        elif isinstance(data, pl.Series):
            times = data
        else:
            array = np.asarray(data)
            if array.ndim == 0:
                raise DataValidationError(f"data: rows: cannot split {type(data).__name__}")
            if not np.issubdtype(array.dtype, np.datetime64):
                return None, np.arange(array.shape[0] + 1, dtype=np.int64)
            times = pl.Series(timestamp, array)
        if times.dtype == pl.Date:
            times = times.cast(pl.Datetime("us"))
        if not isinstance(times.dtype, pl.Datetime):
            raise DataValidationError(
                f"{timestamp}: dtype: expected Date or Datetime timestamps, got {times.dtype}"
            )
        if times.null_count():
            raise DataValidationError(f"{timestamp}: nulls: {times.null_count()} null timestamps")
        physical = times.to_physical().to_numpy()
        backwards = np.flatnonzero(np.diff(physical) < 0)
        if backwards.size:
            raise DataValidationError(
                f"{timestamp}: sorted: timestamps must be in time order; row "
                f"{int(backwards[0]) + 1} is earlier than row {int(backwards[0])} "
                f"({backwards.size} such rows); sort by timestamp first"
            )
        starts = np.flatnonzero(np.concatenate(([True], np.diff(physical) != 0)))
        bounds = np.concatenate((starts, [physical.shape[0]])).astype(np.int64)
        return times.gather(starts), bounds

    def _group_bounds(self, n_times: int) -> Indices:
        """Timestamp positions where each group starts, plus ``n_times``."""
        if n_times < self.n_groups:
            raise DataValidationError(
                f"data: too_few_timestamps: {n_times} distinct timestamp(s) cannot make "
                f"{self.n_groups} groups"
            )
        sizes = np.full(self.n_groups, n_times // self.n_groups, dtype=np.int64)
        sizes[: n_times % self.n_groups] += 1
        return np.concatenate(([0], np.cumsum(sizes)))

    def groups(self, data: Any, *, timestamp: str = "timestamp") -> list[tuple[int, int]]:
        """Each group's half-open ``(start, stop)`` row range of ``data`` (see :meth:`split`)."""
        _, bounds = self._timeline(data, timestamp)
        group_bounds = self._group_bounds(bounds.shape[0] - 1)
        return [
            (int(bounds[group_bounds[g]]), int(bounds[group_bounds[g + 1]]))
            for g in range(self.n_groups)
        ]

    def split(
        self,
        data: Any,
        y: Any = None,
        groups: Any = None,
        *,
        timestamp: str = "timestamp",
    ) -> Iterator[Split]:
        """Yields the ``C(N, k)`` splits of ``data``.

        Args:
            data: a Polars DataFrame sorted by its ``timestamp`` column (long format: rows of
                one timestamp stay together), a Series or numpy array of timestamps, the
                number of rows (each row one bar), or any other array (``len`` rows, each one
                bar, as scikit-learn passes its ``X``). Durations need timestamps.
            y, groups: ignored (scikit-learn's splitter interface).
            timestamp: the frame's time column.

        Raises:
            DataValidationError: timestamps out of order, null or not temporal; fewer distinct
                timestamps than groups.
            ConfigError: a duration horizon or embargo without timestamps; a purge and embargo
                that leave a split no training rows.
        """
        times, bounds = self._timeline(data, timestamp)
        n_times = bounds.shape[0] - 1
        group_bounds = self._group_bounds(n_times)
        if times is None:
            for name in ("label_horizon", "embargo"):
                if isinstance(getattr(self, name), str):
                    raise ConfigError(
                        f"{name}: needs_timestamps: a duration needs timestamps; pass a frame "
                        "with a timestamp column, or give it in bars"
                    )
            clock: Indices = np.arange(n_times, dtype=np.int64)
        else:
            clock = times.to_physical().to_numpy().astype(np.int64)
        label_end = self._label_ends(times, clock)

        for index, chosen in enumerate(self.test_groups()):
            test_mask = np.zeros(n_times, dtype=bool)
            for g in chosen:
                test_mask[group_bounds[g] : group_bounds[g + 1]] = True
            purge = np.zeros(n_times, dtype=bool)
            embargo = np.zeros(n_times, dtype=bool)
            for first, last in _runs(chosen):
                a, b = int(group_bounds[first]), int(group_bounds[last + 1]) - 1
                span_end = label_end[b]  # the last test label's end, on the clock
                # label windows [t, label_end(t)] overlapping [clock[a], span_end]
                lo = int(np.searchsorted(label_end, clock[a], side="left"))
                hi = int(np.searchsorted(clock, span_end, side="right"))
                purge[lo:hi] = True
                stop = self._embargo_stop(times, clock, hi, span_end)
                embargo[hi:stop] = True
            purge &= ~test_mask
            embargo &= ~(test_mask | purge)
            keep = ~(test_mask | purge | embargo)
            if not keep.any():
                raise ConfigError(
                    f"label_horizon: purge_too_long: split {index} (test groups {chosen}) keeps "
                    f"no training rows after purging {self.label_horizon!r} and embargo "
                    f"{self.embargo!r}; shorten them or use more groups"
                )
            train_ranges = _row_ranges(keep, bounds)
            test_ranges = _row_ranges(test_mask, bounds)
            yield Split(
                index=index,
                test_groups=chosen,
                train=_expand(train_ranges),
                test=_expand(test_ranges),
                train_ranges=train_ranges,
                test_ranges=test_ranges,
                purged=_rows(purge, bounds),
                embargoed=_rows(embargo, bounds),
            )

    def _label_ends(self, times: pl.Series | None, clock: Indices) -> Indices:
        """Each timestamp's label end on the clock: a later timestamp for bars (the last one
        past the end), the timestamp plus the duration otherwise."""
        h = self.label_horizon
        if isinstance(h, int):
            n = clock.shape[0]
            ends: Indices = clock[np.minimum(np.arange(n) + h, n - 1)].copy()
            if h > 0 and n:  # past the end of the data: beyond every timestamp
                ends[np.arange(n) + h > n - 1] = clock[-1] + 1
            return ends
        assert times is not None
        out: Indices = times.dt.offset_by(h).to_physical().to_numpy().astype(np.int64)
        return out

    def _embargo_stop(
        self, times: pl.Series | None, clock: Indices, start: int, span_end: np.int64
    ) -> int:
        """One past the last timestamp position inside the embargo that follows ``span_end``."""
        e = self.embargo
        if isinstance(e, int):
            return min(start + e, int(clock.shape[0]))
        assert times is not None
        limit = pl.Series([int(span_end)]).cast(times.dtype).dt.offset_by(e)
        return int(np.searchsorted(clock, int(limit.to_physical()[0]), side="right"))


def _runs(groups: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    """Runs of adjacent groups as ``(first, last)``."""
    start = prev = groups[0]
    for g in groups[1:]:
        if g != prev + 1:
            yield start, prev
            start = g
        prev = g
    yield start, prev


def _row_ranges(mask: npt.NDArray[np.bool_], bounds: Indices) -> tuple[tuple[int, int], ...]:
    """Half-open row ranges of the timestamps selected by ``mask``."""
    edges = np.diff(np.concatenate(([False], mask, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return tuple((int(bounds[a]), int(bounds[b])) for a, b in zip(starts, stops, strict=True))


def _expand(ranges: tuple[tuple[int, int], ...]) -> Indices:
    if not ranges:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])


def _rows(mask: npt.NDArray[np.bool_], bounds: Indices) -> int:
    return int(np.sum(np.diff(bounds)[mask]))


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
        cv = self.cv
        subtitle = (
            f"N = {cv.n_groups} groups · k = {cv.n_test_groups} tested · {cv.n_splits} splits · "
            f"{cv.n_paths} paths · label horizon {cv.label_horizon!r} · embargo {cv.embargo!r} · "
            f"fits returned {self.info['kind']}"
        )
        page = build_cpcv_report(
            title=title,
            subtitle=subtitle,
            equity=self.equity,
            paths=self.paths,
            distribution=self.distribution,
            splits=self.splits,
        )
        return write_page(Path(path), page)
