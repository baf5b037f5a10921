"""The ``fit`` contract that walk-forward and CPCV share: what a fold is, what ``fit`` is
given (only the rows it may see), what it may return, and the backtests over the test windows.

``fit(train_data, fold)`` gets a new Polars frame of the fold's training rows only (``timestamp``
in the data's time zone, ``asset``, the prices and the features; every later row is absent, not
hidden) and the :class:`Fold`, whose ``test_data`` holds the rows of the fold's test windows
(the features a model predicts from). It returns either

- **predictions**: a Polars ``DataFrame`` (or ``LazyFrame``) of ``timestamp``, ``asset`` and
  numeric columns, one row per bar of the test windows at most. They join the bars as signals
  (a bar without a prediction gets NaN, no value) that the strategy reads at their timestamps.
  A prediction outside the fold's test windows is look-ahead, and an error; or
- **a model**: any other object (not ``None``), handed to the strategy's ``on_fold(model, fold)``
  hook before the fold's first test timestamp (a Python :class:`~ml4t.backtest.Strategy`).

Every fold of a run must return the same kind (and predictions the same columns).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest import ledger_store
from ml4t.backtest._core import __version__
from ml4t.backtest._models import duration_pieces, timedelta_text
from ml4t.backtest.backtest import Backtest
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError, DataValidationError, SignalTimingError
from ml4t.backtest.provenance import plain, strategy_record
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.risk import BuiltinRule, RiskRule
from ml4t.backtest.strategies import SignalStrategy, TopKStrategy
from ml4t.backtest.strategy import Strategy
from ml4t.backtest.study.executors import Backend, default_workers, make_backend
from ml4t.backtest.study.ledger import record_trials
from ml4t.backtest.study.trials import rule_identity
from ml4t.backtest.study.worker import quiet

RowRanges = tuple[tuple[int, int], ...]
"""Half-open row ranges of the engine frame."""

TimeWindows = tuple[tuple[int, int], ...]
"""Closed ``[first, last]`` timestamp windows in engine nanoseconds."""

KEYS = ("timestamp", "asset")
"""The key columns of ``train_data``, ``test_data`` and predictions."""


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold of a walk-forward (or one split of a CPCV run), as ``fit`` and ``on_fold`` see
    it. Times are datetimes in the data's time zone; ``*_end`` is the last timestamp included.

    Attributes:
        index: the fold's (split's) position, from 0.
        train_start, train_end: the first and last training timestamps.
        test_start, test_end: the first and last test timestamps.
        cutoff: training rows are before this instant (walk-forward: the test start less the
            purge and embargo); ``None`` for a CPCV split, which trains on both sides.
        train_rows, test_rows: how many rows (bars) each side has.
        test_groups: a CPCV split's test groups (empty for a walk-forward fold).
        test_data: the test windows' rows (``timestamp``, ``asset``, prices, features), given to
            ``fit`` to predict from; ``None`` in ``on_fold``.
    """

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    cutoff: datetime | None
    train_rows: int
    test_rows: int
    test_groups: tuple[int, ...] = ()
    test_data: pl.DataFrame | None = field(default=None, repr=False)


@dataclass(eq=False)
class FitTask:
    """What a worker needs to run one fit: the fold and its rows."""

    fold: Fold
    train: RowRanges
    test: RowRanges
    windows: TimeWindows
    fit: Callable[[pl.DataFrame, Fold], Any]


@dataclass(eq=False)
class FitAnswer:
    """One fit's outcome: predictions (engine form: ``ts``, ``asset_id``, Float64 columns) or a
    model, and the fit's own wall time."""

    index: int
    predictions: pl.DataFrame | None
    model: Any
    seconds: float


@dataclass(eq=False)
class RunTask:
    """One backtest over a time window: signals joined, fold models handed over."""

    start: int
    end: int | None
    signals: pl.DataFrame | None
    strategy: Any
    config: BacktestConfig
    risk: list[Any]
    folds: list[tuple[int, Any, Any]]


# ------------------------------------------------------------------------------------- data


def timeline(frame: pl.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct timestamps (ns) of a sorted engine frame and the first row of each (plus
    the row count at the end)."""
    ts = frame.get_column("ts").to_numpy()
    if ts.shape[0] == 0:
        return ts.astype(np.int64), np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    bounds = np.concatenate((starts, [ts.shape[0]])).astype(np.int64)
    return ts[starts].astype(np.int64), bounds


def user_rows(feed: PolarsDataFeed, ranges: RowRanges) -> pl.DataFrame:
    """A new frame of the engine frame's rows in ``ranges``, as the user reads them:
    ``timestamp`` (the data's time zone), ``asset`` (names), the prices and features."""
    frame = feed.frame
    pieces = [frame.slice(a, b - a) for a, b in ranges if b > a]
    rows = pl.concat(pieces) if pieces else frame.clear()
    universe = feed.universe
    rest = [c for c in rows.columns if c not in ("ts", "asset_id")]
    names = pl.Series("asset", universe.assets, dtype=universe.asset_dtype)
    return rows.select(
        universe.timestamps(pl.col("ts")).alias("timestamp"),
        pl.lit(names).gather(pl.col("asset_id")).alias("asset"),
        *rest,
    )


def user_predictions(frames: Sequence[pl.DataFrame], feed: PolarsDataFeed) -> pl.DataFrame:
    """Engine-form predictions (``ts``, ``asset_id``, columns) back as ``timestamp``, ``asset``
    and the columns, in time order."""
    universe = feed.universe
    names = pl.Series("asset", universe.assets, dtype=universe.asset_dtype)
    rows = pl.concat(frames).sort("ts", "asset_id")
    return rows.select(
        universe.timestamps(pl.col("ts")).alias("timestamp"),
        pl.lit(names).gather(pl.col("asset_id")).alias("asset"),
        pl.exclude("ts", "asset_id"),
    )


def check_strategy(strategy: Any) -> None:
    """A Python strategy or a built-in, as ``Backtest`` takes."""
    if not isinstance(strategy, (Strategy, SignalStrategy, TopKStrategy)):
        raise ConfigError(
            "strategy: expected a Strategy subclass instance or a built-in strategy, got "
            f"{type(strategy).__name__}"
        )


def check_fit(fit: Any) -> None:
    if not callable(fit):
        raise ConfigError(
            f"fit: expected a callable fit(train_data, fold), got {type(fit).__name__}"
        )


def base_config(config: Any) -> BacktestConfig:
    """The run's config: a :class:`BacktestConfig`, a dict of dotted overrides, or ``None``."""
    if config is None:
        return BacktestConfig()
    if isinstance(config, BacktestConfig):
        return config
    if isinstance(config, dict):
        return BacktestConfig().replace(**config)
    raise ConfigError(
        f"config: expected a BacktestConfig or a dict of overrides, got {type(config).__name__}"
    )


def check_risk(risk: Any) -> list[Any]:
    rules = [] if risk is None else list(risk)
    for rule in rules:
        if not isinstance(rule, (BuiltinRule, RiskRule)):
            raise ConfigError(f"risk: expected risk rules, got {type(rule).__name__}")
    return rules


# ------------------------------------------------------------------------------------- fits


def fit_one(feed: PolarsDataFeed, task: FitTask) -> FitAnswer:
    """Runs one fit where the worker is: its rows built from the worker's feed, the fit timed,
    predictions checked and brought to engine form."""
    quiet()
    train = user_rows(feed, task.train)
    fold = replace(task.fold, test_data=user_rows(feed, task.test))
    start = time.perf_counter()
    out = task.fit(train, fold)
    seconds = time.perf_counter() - start
    index = task.fold.index
    if isinstance(out, pl.LazyFrame):
        out = out.collect()
    if isinstance(out, pl.DataFrame):
        return FitAnswer(index, engine_predictions(out, feed, task), None, seconds)
    if out is None:
        raise ConfigError(
            f"fit: returned None for fold {index}; return a predictions frame (timestamp, "
            "asset, columns) or a model for the strategy's on_fold"
        )
    return FitAnswer(index, None, out, seconds)


def _describe(feed: PolarsDataFeed, ns: int) -> str:
    return str(feed.to_datetime(int(ns)))


def engine_predictions(frame: pl.DataFrame, feed: PolarsDataFeed, task: FitTask) -> pl.DataFrame:
    """A fit's predictions as ``ts``, ``asset_id`` and Float64 columns, every rule checked:
    key columns, numeric values, no nulls or infinities, one row per key, known assets, and
    every timestamp inside the fold's test windows (anything else is look-ahead)."""
    index = task.fold.index
    where = f"fit: fold {index} returned predictions"
    missing = [c for c in KEYS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{where} without the column {missing[0]!r} (columns {frame.columns[:8]}); "
            "predictions are a frame of timestamp, asset and numeric columns"
        )
    values = [c for c in frame.columns if c not in KEYS]
    if not values:
        raise DataValidationError(f"{where} with no value column besides timestamp and asset")
    for name in values:
        if not frame.schema[name].is_numeric():
            raise DataValidationError(
                f"predictions.{name}: dtype: {where}; its columns must be numeric, got "
                f"{frame.schema[name]}"
            )
    universe = feed.universe
    stamp = frame.schema["timestamp"]
    if stamp == pl.Date:
        ts = pl.col("timestamp").cast(pl.Datetime("ns"))
        if universe.time_zone:
            ts = ts.dt.replace_time_zone(universe.time_zone)
    elif isinstance(stamp, pl.Datetime):
        if (stamp.time_zone is None) != (universe.time_zone is None):
            raise DataValidationError(
                f"predictions.timestamp: timezone: {where} with "
                f"{'tz-aware' if stamp.time_zone else 'naive'} timestamps but the data's are "
                f"{'naive' if universe.time_zone is None else universe.time_zone}"
            )
        ts = pl.col("timestamp")
    else:
        raise DataValidationError(
            f"predictions.timestamp: dtype: {where}; expected Datetime, got {stamp}"
        )
    for key in KEYS:
        nulls = frame.get_column(key).null_count()
        if nulls:
            raise DataValidationError(f"predictions.{key}: null: {where} with {nulls} null keys")
    if frame.schema["asset"] == universe.asset_dtype:  # fold.test_data's own asset column
        codes = pl.col("asset").to_physical().cast(pl.UInt32)
    else:
        names = pl.Series(universe.assets, dtype=pl.String)
        codes = (
            pl.col("asset")
            .cast(pl.String)
            .replace_strict(
                names, pl.int_range(len(names), eager=True, dtype=pl.UInt32), default=None
            )
        )
    out = frame.select(
        ts.dt.epoch("ns").alias("ts"),
        codes.alias("asset_id"),
        *[pl.col(c).cast(pl.Float64) for c in values],
    )

    def first(mask: pl.Expr) -> tuple[int, str, str]:
        """How many rows match, and the first one's time and asset (for a message)."""
        rows = out.with_row_index("_row").filter(mask)
        row = int(rows["_row"][0])
        return rows.height, _describe(feed, out["ts"][row]), str(frame["asset"][row])

    unknown = out["asset_id"].null_count()
    if unknown:
        _, _, name = first(pl.col("asset_id").is_null())
        raise DataValidationError(
            f"predictions.asset: unknown: {where} for {unknown} row(s) of an asset not in "
            f"the data, first {name!r}"
        )
    bad = out.select((pl.col(c).is_null() | pl.col(c).is_infinite()).sum() for c in values)
    for name in values:
        if bad[name][0]:
            count, when, asset = first(pl.col(name).is_null() | pl.col(name).is_infinite())
            kind = "null" if out[name].null_count() else "not_finite"
            raise DataValidationError(
                f"predictions.{name}: {kind}: {where} with {count} null or infinite "
                f"value(s), first at {when} ({asset}); use NaN for no prediction"
            )
    inside = pl.lit(False)
    for lo, hi in task.windows:
        inside = inside | pl.col("ts").is_between(lo, hi, closed="both")
    if out.select((~inside).sum()).item():
        count, when, asset = first(~inside)
        windows = ", ".join(
            f"{_describe(feed, lo)} … {_describe(feed, hi)}" for lo, hi in task.windows
        )
        raise SignalTimingError(
            f"predictions.timestamp: look_ahead: {where} for {count} row(s) outside its "
            f"test window ({windows}), first at {when} ({asset}); a fold predicts only its own "
            "test window"
        )
    out = out.sort("ts", "asset_id")
    stamps, assets = out["ts"].to_numpy(), out["asset_id"].to_numpy()
    same = np.flatnonzero((stamps[1:] == stamps[:-1]) & (assets[1:] == assets[:-1]))
    if same.size:
        at = int(same[0])
        raise DataValidationError(
            f"predictions: duplicate: {where} with {same.size} row(s) repeating a (timestamp, "
            f"asset), first {_describe(feed, stamps[at])} ({feed.assets[int(assets[at])]})"
        )
    return out


def check_answers(answers: Sequence[FitAnswer], strategy: Any) -> str:
    """``"predictions"`` or ``"model"``: every fold returned the same kind (and the same
    prediction columns), which the strategy can take."""
    kinds = {"predictions" if a.predictions is not None else "model" for a in answers}
    if len(kinds) > 1:
        framed = next(a.index for a in answers if a.predictions is not None)
        modelled = next(a.index for a in answers if a.predictions is None)
        raise ConfigError(
            f"fit: mixed: fold {framed} returned predictions and fold {modelled} a model; "
            "every fold must return the same kind"
        )
    kind = kinds.pop()
    if kind == "model" and not isinstance(strategy, Strategy):
        raise ConfigError(
            f"fit: returned a model ({type(answers[0].model).__name__}) but the strategy is the "
            f"built-in {type(strategy).__name__}, which has no on_fold hook: return predictions "
            "(a frame of timestamp, asset, columns) or use a Strategy subclass"
        )
    if kind == "predictions":
        columns = [a.predictions.columns for a in answers if a.predictions is not None]
        for answer, names in zip(answers, columns, strict=True):
            if names != columns[0]:
                raise ConfigError(
                    f"fit: columns: fold {answer.index} returned predictions with columns "
                    f"{names[2:]}, fold {answers[0].index} with {columns[0][2:]}; every fold "
                    "must return the same columns"
                )
    return kind


# ------------------------------------------------------------------------------------- runs


def run_window(feed: PolarsDataFeed, task: RunTask) -> BacktestResult:
    """One backtest over ``[start, end)`` of ``feed`` with the task's signals and fold models
    (a fresh copy of a Python strategy and rules, so every run starts from the same state)."""
    quiet()
    window = feed.window(task.start, task.end, signals=task.signals)
    strategy = (
        copy.deepcopy(task.strategy) if isinstance(task.strategy, Strategy) else task.strategy
    )
    rules = [copy.deepcopy(r) if isinstance(r, RiskRule) else r for r in task.risk]
    backtest = Backtest(window, strategy, config=task.config, risk=rules, folds=task.folds)
    return backtest.run(progress=False)


def check_run(feed: PolarsDataFeed, strategy: Any, config: BacktestConfig, risk: list[Any]) -> None:
    """``Backtest``'s own checks of the strategy, config and rules, before any fit runs."""
    Backtest(feed, strategy, config=config, risk=risk)
    if config.execution.on_delisting != "hold":
        feed.delistings(config.execution.delisting_gap)  # cached: every window reuses it


@contextmanager
def backend(
    feed: PolarsDataFeed, executor: Any, max_workers: int | None, start_method: str
) -> Iterator[Backend]:
    """A sweep backend over ``feed`` (threads by default) for fits and fold runs."""
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ConfigError(f"max_workers: expected a positive integer, got {max_workers!r}")
    workers = max_workers or (0 if executor == "ray" else default_workers())
    chosen = "threads" if executor is None else executor
    with make_backend(chosen, feed, workers, "auto", True, start_method, None) as pool:
        yield pool


def in_memory(feed: PolarsDataFeed) -> PolarsDataFeed:
    """The feed's :meth:`~PolarsDataFeed.study_view`, a streaming one read into memory once."""
    if not isinstance(feed, PolarsDataFeed):
        raise ConfigError(f"feed: expected a PolarsDataFeed, got {type(feed).__name__}")
    view = feed.study_view()  # a locked hold-out's rows stay hidden from the study
    return view.window() if view.streaming else view


Horizon: TypeAlias = "int | str | timedelta"
"""Bars (an ``int``) or a duration (a Polars duration string or a ``timedelta``)."""


def horizon(value: Horizon, name: str) -> int | str:
    """Bars as a non-negative ``int``, or a duration as a Polars duration string (the
    project's one duration grammar, :func:`~ml4t.backtest._models.duration_pieces`): the
    windows, purges, embargoes and label horizons of walk-forward and CPCV."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: type: bars (int) or a duration (str, timedelta), got {value!r}")
    if isinstance(value, np.timedelta64):  # before integers: it is a numpy integer type
        value = value.astype("timedelta64[us]").item()
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ConfigError(f"{name}: non_negative: got {value} bars")
        return int(value)
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ConfigError(f"{name}: non_negative: got {value}")
        return timedelta_text(value)
    if isinstance(value, str):
        if value.strip().startswith("-"):
            raise ConfigError(f"{name}: non_negative: got {value!r}")
        if duration_pieces(value) is None:
            raise ConfigError(
                f"{name}: duration: {value!r} is not a Polars duration such as '5d' or '90m'"
            )
        return value
    raise ConfigError(f"{name}: type: bars (int) or a duration (str, timedelta), got {value!r}")


# ------------------------------------------------------------------------ the trial ledger


def fit_record(fit: Any) -> dict[str, Any]:
    """A fit as the ledger key sees it: its qualified name and the SHA-256 of its source
    (``None`` when Python has none, e.g. typed at a bare REPL)."""
    target = fit if inspect.isfunction(fit) or inspect.ismethod(fit) else type(fit)
    name = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(fit))}"
    try:
        source: str | None = hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
    except (OSError, TypeError):
        source = None
    return {"name": name, "source_sha256": source}


def record_study(
    feed: PolarsDataFeed,
    kind: str,
    identity: dict[str, Any],
    result_metrics: dict[str, float],
    periods_per_year: float,
    ledger: str | Path | bool | None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path | None, str | None]:
    """Appends one walk-forward or CPCV run to the trial ledger as ONE variant (its
    out-of-sample Sharpe ratio, per period), keyed by what decides its outcome: the data's
    checksum, ``identity`` (fit, strategy, windows, config, rules) and the library version.
    ``ledger`` as for a sweep: ``None``/``True`` the default ledger, a directory, or ``False``
    (nothing recorded, nothing hashed). Returns the ledger's root and the data's checksum."""
    if ledger is False:
        return None, None
    if ledger is not None and not isinstance(ledger, (bool, str, Path)):
        raise ConfigError(
            f"ledger: expected None, True, False or a directory, got {type(ledger).__name__}"
        )
    checksum = feed.checksum()
    root = ledger_store.resolve_root(None if ledger is True else ledger)
    text = json.dumps(
        {"data": checksum, "kind": kind, **identity, "version": __version__},
        sort_keys=True,
        separators=(",", ":"),
        default=repr,
    )
    sharpe = result_metrics.get("sharpe")
    per_period = (
        float(sharpe) / math.sqrt(periods_per_year)
        if sharpe is not None and math.isfinite(sharpe) and periods_per_year > 0
        else None
    )
    row = {
        "key": hashlib.sha256(text.encode()).hexdigest(),
        "status": "ok",
        "sharpe": per_period,
        "params": plain(identity.get("windows", {})),
        "metrics": {**result_metrics, **(extra or {})},
    }
    record_trials(checksum, kind, [row], root)
    return root, checksum


def study_identity(
    fit: Any, strategy: Any, config: BacktestConfig, risk: Sequence[Any], windows: dict[str, Any]
) -> dict[str, Any]:
    """What, beside the data, decides a walk-forward or CPCV run's outcome."""
    return {
        "fit": fit_record(fit),
        "strategy": strategy_record(strategy),
        "config": config.model_dump(mode="json"),
        "risk": [rule_identity(rule) for rule in risk],
        "windows": plain(windows),
    }
