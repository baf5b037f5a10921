"""``Sweep``: many backtests over one feed, on threads, processes, Ray or any executor, with one
table back and a resumable cache.

Example:
    >>> from ml4t.backtest import PolarsDataFeed, TopKStrategy
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=6, n_bars=80, seed=4))
    >>> sweep = Sweep(feed, TopKStrategy, {"score": ["score"], "k": [1, 2, 3]},
    ...               config={"commission.model": "percent", "commission.rate": [0.0, 0.001]})
    >>> result = sweep.run(executor="threads", max_workers=2, progress=False)
    >>> result.table.height, result.table.columns[:4]
    (6, ['trial', 'score', 'k', 'commission.rate'])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import cloudpickle
import polars as pl
from tqdm import tqdm

from ml4t.backtest import ledger_store
from ml4t.backtest.backtest import Backtest
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.progress import wants_progress
from ml4t.backtest.provenance import plain
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.study.cache import Cache, data_checksum
from ml4t.backtest.study.directions import DIRECTIONS
from ml4t.backtest.study.directions import direction as metric_direction
from ml4t.backtest.study.executors import Backend, default_workers, make_backend
from ml4t.backtest.study.ledger import record_trials
from ml4t.backtest.study.result import RESERVED, SweepResult
from ml4t.backtest.study.space import Choice, Dimension, RandomSearch, expand, grid
from ml4t.backtest.study.trials import Trial, build_trials, split_config, trial_key
from ml4t.backtest.study.worker import STATUS_OK, decode, finite, fresh_copies

Keep = Literal["metrics", "equity", "all"]
KEEPS = ("metrics", "equity", "all")
Ledger = str | Path | bool | None
"""Where a sweep records its trials: ``None`` or ``True`` the default ledger, a directory,
or ``False`` (not recorded: the DSR then counts this sweep only)."""


class Sweep:
    """Many backtests of one feed: a grid, a list or a random search of params.

    Args:
        feed: the data every trial reads (shared, never copied per trial on threads; one
            memory-mapped file for processes; the object store for Ray): its
            :meth:`~PolarsDataFeed.study_view`, so a locked hold-out stays hidden.
        strategy: a strategy value, or a callable of the trial's params returning one (a
            class such as ``TopKStrategy`` takes its fields as params; ``lambda p: ...``
            takes the params dict). Lambdas and closures work on every executor (cloudpickle).
        params: a dict of lists (the cartesian grid), a list of dicts, or a
            :class:`~ml4t.backtest.study.RandomSearch`.
        config: a :class:`BacktestConfig`, a callable of the params returning one, or a dict
            of dotted overrides of the default config (``{"commission.model": "percent",
            "commission.rate": [0.0005, 0.001]}``): list values are grid axes, crossed with
            ``params``; other values fixed. A dotted param (``"commission.rate"`` in
            ``params``) overrides the trial's config too.
        risk: a list of risk rules, or a callable of the params returning one.

    Every trial is built and checked here, before anything runs.

    Raises:
        ConfigError: an empty grid, a param no callable takes, a dotted override naming no
            config field, a callable that fails, or a trial ``Backtest`` would refuse.
    """

    def __init__(
        self,
        feed: PolarsDataFeed,
        strategy: Any,
        params: Any,
        *,
        config: Any = None,
        risk: Any = None,
    ) -> None:
        if not isinstance(feed, PolarsDataFeed):
            raise ConfigError(f"feed: expected a PolarsDataFeed, got {type(feed).__name__}")
        self._source = feed
        self.feed = feed.study_view()
        """What the trials read: ``feed.study_view()`` (a locked hold-out's rows hidden),
        taken again when a run starts."""
        self.strategy = strategy
        self.params = params
        self.risk = risk
        self.config, self._config_axes, self._config_fixed = split_config(config)
        points = expand(params)
        if self._config_axes:
            points = [{**p, **c} for p in points for c in grid(self._config_axes)]
        for name in dict.fromkeys(k for p in points for k in p):
            if name in RESERVED or name in DIRECTIONS:
                raise ConfigError(
                    f"params.{name}: reserved: a column of the table has this name; rename it"
                )
        self.trials = self._build(points)
        self._checksum: str | None = None
        self._ran = 0

    def _build(self, points: list[dict[str, Any]], first_id: int = 0) -> list[Trial]:
        return build_trials(
            self.feed,
            points,
            self.strategy,
            self.config,
            self.risk,
            self._config_fixed,
            first_id=first_id,
        )

    @property
    def param_names(self) -> list[str]:
        """The params' names, in the order they first appear."""
        return list(dict.fromkeys(k for t in self.trials for k in t.params))

    def data_checksum(self) -> str:
        """The feed's checksum (computed once): part of every cache key."""
        if self._checksum is None:
            self._checksum = data_checksum(self.feed)
        return self._checksum

    # ------------------------------------------------------------------------------ running

    def run(
        self,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        cache: str | Path | None = None,
        keep: Keep = "metrics",
        progress: bool | None = None,
        *,
        batch_size: int | None = None,
        transport: str = "auto",
        start_method: str = "spawn",
        ledger: Ledger = None,
    ) -> SweepResult:
        """Runs every trial not already in ``cache`` and returns the table of all.

        Args:
            executor: ``None`` (threads when every trial is native, i.e. a built-in strategy
                and built-in rules, or with one worker; processes otherwise), ``"threads"``,
                ``"processes"``, ``"ray"`` or any ``concurrent.futures.Executor`` (Dask's
                ``Client.get_executor()`` included).
            max_workers: how many workers (default: the CPUs this process may use; for Ray
                the cluster's CPUs; ignored for a given executor).
            cache: a directory; each finished trial is stored there under its key and a rerun
                skips it (see :mod:`~ml4t.backtest.study.cache`).
            keep: ``"metrics"`` (the table), ``"equity"`` (plus every trial's equity curve)
                or ``"all"`` (plus every trial's whole result, saved under ``cache``).
            progress: a progress bar over trials on stderr (``None``: when it is a terminal).
            batch_size: trials per task (default: about four batches per worker).
            transport: how workers get the feed (see :mod:`~ml4t.backtest.study.executors`).
            start_method: ``"spawn"`` or ``"forkserver"`` for the process pool.
            ledger: where the trials are recorded for the deflated Sharpe ratio (see
                :mod:`~ml4t.backtest.study.ledger`): ``None`` the default ledger, a
                directory, or ``False`` not to record them.

        Raises:
            ConfigError: a bad argument (checked before any trial runs).
        """
        _check_ledger(ledger)
        with self._backend(
            self.trials, executor, max_workers, cache, keep, progress, transport, start_method
        ) as (backend, store):
            started = datetime.now(timezone.utc)
            self._ran = 0
            with _bar(len(self.trials), progress) as bar:
                rows, curves = self._run_trials(self.trials, backend, store, keep, batch_size, bar)
            info = self._info(backend, started, rows)
        root, checksum = self._record("sweep", self.trials, rows, ledger)
        return SweepResult.build(
            rows,
            self.trials,
            self.param_names,
            keep,
            store,
            curves,
            info,
            rerun=self.rerun,
            ledger=root,
            checksum=checksum,
        )

    def optimize(
        self,
        metric: str,
        n_trials: int,
        sampler: Any = None,
        seed: int = 0,
        *,
        direction: str | None = None,
        batch_size: int = 8,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        cache: str | Path | None = None,
        keep: Keep = "metrics",
        progress: bool | None = None,
        transport: str = "auto",
        start_method: str = "spawn",
        ledger: Ledger = None,
    ) -> SweepResult:
        """An Optuna study of ``metric`` over the sweep's space, run on the same executors.

        Trials are asked and told in batches of ``batch_size`` (told in trial order), so the
        trials, like the table, are the same for every executor and worker count. The space
        is the ``RandomSearch`` space of ``params``, or each list of a grid (and of the
        config's axes) as a categorical choice. ``sampler`` defaults to Optuna's TPE seeded
        with ``seed``. A trial that fails or whose metric is not finite is told as failed.

        Every trial is recorded in the ledger (``ledger=``, as :meth:`run`).

        Needs the ``optuna`` extra (``pip install 'ml4t-backtest[optuna]'``).

        Raises:
            ConfigError: Optuna is missing, ``params`` is a list (no space), an unknown
                metric without ``direction``, or a bad argument.
        """
        _check_ledger(ledger)
        optuna = _import_optuna()
        sense = metric_direction(metric, direction)
        if not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"n_trials: expected a positive integer, got {n_trials!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
        distributions = {name: _distribution(optuna, name, d) for name, d in self._space().items()}
        study = optuna.create_study(
            direction="maximize" if sense == "max" else "minimize",
            sampler=sampler if sampler is not None else optuna.samplers.TPESampler(seed=seed),
        )

        def ask(count: int) -> tuple[list[Any], list[Trial]]:
            asked = [study.ask(distributions) for _ in range(count)]
            return asked, self._build([dict(t.params) for t in asked], first_id=asked[0].number)

        asked, trials = ask(min(batch_size, n_trials))
        all_trials: list[Trial] = []
        all_rows: list[pl.DataFrame] = []
        all_curves: dict[int, pl.DataFrame] = {}
        with self._backend(
            trials, executor, max_workers, cache, keep, progress, transport, start_method
        ) as (backend, store):
            started = datetime.now(timezone.utc)
            self._ran = 0
            with _bar(n_trials, progress) as bar:
                while True:
                    rows, curves = self._run_trials(trials, backend, store, keep, None, bar)
                    all_trials += trials
                    all_rows.append(rows)
                    all_curves.update(curves)
                    by_id = {r["trial"]: r for r in rows.iter_rows(named=True)}
                    for question in asked:
                        row = by_id[question.number]
                        value = row.get(metric)
                        if row["status"] == STATUS_OK and finite(value):
                            study.tell(question, value)
                        else:
                            study.tell(question, state=optuna.trial.TrialState.FAIL)
                    left = n_trials - len(all_trials)
                    if left <= 0:
                        break
                    asked, trials = ask(min(batch_size, left))
            table = pl.concat(all_rows, how="diagonal_relaxed")
            info = self._info(backend, started, table)
        info.update({"optimized": metric, "direction": sense})
        root, checksum = self._record("optimize", all_trials, table, ledger)
        return SweepResult.build(
            table,
            all_trials,
            list(distributions),
            keep,
            store,
            all_curves,
            info,
            rerun=self.rerun,
            ledger=root,
            checksum=checksum,
        )

    def _space(self) -> dict[str, Dimension]:
        if isinstance(self.params, RandomSearch):
            space = self.params.dimensions()
        elif isinstance(self.params, dict):
            grid(self.params)
            space = {name: Choice(values) for name, values in self.params.items()}
        else:
            raise ConfigError(
                "params: optimize needs a space: a dict of lists or a RandomSearch, not a list "
                "of trials"
            )
        space.update({name: Choice(values) for name, values in self._config_axes.items()})
        return space

    def rerun(self, trial_id: int) -> BacktestResult:
        """Runs trial ``trial_id`` again here and returns its whole result."""
        for trial in self.trials:
            if trial.id == trial_id:
                strategy, rules = fresh_copies(trial)
                return Backtest(self.feed, strategy, config=trial.config, risk=rules).run(
                    progress=False
                )
        raise ConfigError(f"trial: no trial {trial_id} in this sweep (0..{len(self.trials) - 1})")

    # ------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _backend(
        self,
        trials: list[Trial],
        executor: Any,
        max_workers: int | None,
        cache: str | Path | None,
        keep: str,
        progress: bool | None,
        transport: str,
        start_method: str,
    ) -> Iterator[tuple[Backend, Cache | None]]:
        if keep not in KEEPS:
            raise ConfigError(f"keep: expected one of {KEEPS}, got {keep!r}")
        if keep == "all" and cache is None:
            raise ConfigError(
                "keep: 'all' saves every trial's result under the cache directory: give cache=dir"
            )
        wants_progress(progress)
        view = self._source.study_view()
        if view is not self.feed:  # a hold-out declared or unlocked since the last run
            self.feed, self._checksum = view, None
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ConfigError(f"max_workers: expected a positive integer, got {max_workers!r}")
        workers = max_workers or (0 if executor == "ray" else default_workers())
        store = Cache(cache) if cache is not None else None
        feed_file = None
        if store is not None and not self.feed.streaming:
            feed_file = store.feed_file(self.data_checksum())
        native = all(t.native for t in trials)
        backend = make_backend(
            executor, self.feed, workers, transport, native, start_method, feed_file
        )
        with backend:
            yield backend, store

    def _run_trials(
        self,
        trials: list[Trial],
        backend: Backend,
        store: Cache | None,
        keep: str,
        batch_size: int | None,
        bar: tqdm[Any] | None,
    ) -> tuple[pl.DataFrame, dict[int, pl.DataFrame]]:
        """Runs the trials not in ``store``; returns every trial's row (``m:`` prefixes
        removed) and, without a store, the equity curves kept in memory."""
        done: list[pl.DataFrame] = []
        pending: list[Trial] = []
        if store is not None:
            checksum = self.data_checksum()
            for trial in trials:
                trial.key = trial_key(trial, checksum)
                if store.has(trial.key, keep):
                    done.append(store.load_row(trial.key).with_columns(trial=pl.lit(trial.id)))
                else:
                    pending.append(trial)
        else:
            pending = list(trials)
        self._ran += len(pending)
        if bar is not None and done:
            bar.update(len(done))
        curves: dict[int, pl.DataFrame] = {}
        if pending:
            size = batch_size or max(1, math.ceil(len(pending) / (max(backend.workers, 1) * 4)))
            if size < 1:
                raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
            results = str(store.results_root) if store is not None else None
            threads = backend.name == "threads"
            payloads = []
            for i in range(0, len(pending), size):
                batch = pending[i : i + size]
                data = b"" if threads else bytes(cloudpickle.dumps((batch, keep, results)))
                payloads.append((batch, data))
            for rows_bytes, equity_bytes in backend.run(payloads, keep, results):
                rows = decode(rows_bytes)
                equity = decode(equity_bytes) if equity_bytes is not None else None
                for row in rows.iter_slices(1):
                    trial_id = int(row["trial"][0])
                    curve = (
                        equity.filter(pl.col("trial") == trial_id).drop("trial")
                        if equity is not None
                        else None
                    )
                    if store is not None and row["status"][0] == STATUS_OK:
                        store.store(row, curve)
                    elif curve is not None:
                        curves[trial_id] = curve
                done.append(rows)
                if bar is not None:
                    bar.update(rows.height)
        table = pl.concat(done, how="diagonal_relaxed").sort("trial")
        return table.rename({c: c[2:] for c in table.columns if c.startswith("m:")}), curves

    def _record(
        self, kind: str, trials: list[Trial], table: pl.DataFrame, ledger: Ledger
    ) -> tuple[Path | None, str | None]:
        """Appends the trials to the ledger (unless ``ledger=False``: then nothing is hashed);
        returns its root and the data's checksum. A trial's per-period Sharpe ratio is its
        ``sharpe`` metric over the square root of its ``periods_per_year``."""
        if ledger is False:
            return None, self._checksum
        checksum = self.data_checksum()
        root = ledger_store.resolve_root(None if ledger is True else ledger)
        by_id = {t.id: t for t in trials}
        names = [c for c in table.columns if c not in (*RESERVED, "key")]
        rows = []
        for row in table.iter_rows(named=True):
            trial = by_id[row["trial"]]
            sharpe, ppy = row.get("sharpe"), row.get("periods_per_year")
            per_period = None
            if (
                sharpe is not None
                and ppy is not None
                and finite(sharpe)
                and finite(ppy)
                and ppy > 0
            ):
                per_period = sharpe / math.sqrt(ppy)
            rows.append(
                {
                    "key": trial.key or trial_key(trial, checksum),
                    "trial": trial.id,
                    "status": row["status"],
                    "sharpe": per_period,
                    "params": plain(trial.params),
                    "metrics": {name: row[name] for name in names},
                }
            )
        record_trials(checksum, kind, rows, root)
        return root, checksum

    def _info(self, backend: Backend, started: datetime, rows: pl.DataFrame) -> dict[str, Any]:
        return {
            "executor": backend.name,
            "workers": backend.workers,
            "transport": backend.transport,
            "started_at": started.isoformat(),
            "setup_seconds": backend.setup_seconds,
            "run_seconds": (datetime.now(timezone.utc) - started).total_seconds(),
            "trials": rows.height,
            "ran": self._ran,
            "cached": rows.height - self._ran,
        }


def _check_ledger(ledger: Any) -> None:
    if not (ledger is None or isinstance(ledger, (bool, str, Path))):
        raise ConfigError(
            f"ledger: expected None, True, False or a directory, got {type(ledger).__name__}"
        )


@contextmanager
def _bar(total: int, progress: bool | None) -> Iterator[tqdm[Any] | None]:
    """A tqdm bar over trials (with an ETA) on stderr, or ``None``."""
    if not wants_progress(progress):
        yield None
        return
    bar = tqdm(total=total, unit="trial", desc="sweep", dynamic_ncols=True, smoothing=0.1)
    try:
        yield bar
    finally:
        bar.close()


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(
            "optimize: needs Optuna, which is not installed: pip install 'ml4t-backtest[optuna]'"
        ) from err
    return optuna


def _distribution(optuna: Any, name: str, dim: Dimension) -> Any:
    from ml4t.backtest.study.space import IntUniform, Uniform

    dists = optuna.distributions
    if isinstance(dim, Uniform):
        return dists.FloatDistribution(dim.low, dim.high, log=dim.log)
    if isinstance(dim, IntUniform):
        return dists.IntDistribution(dim.low, dim.high, step=dim.step)
    bad = [v for v in dim.values if not (v is None or isinstance(v, (bool, int, float, str)))]
    if bad:
        raise ConfigError(
            f"params.{name}: optimize chooses among None, bool, int, float and str values, "
            f"got {type(bad[0]).__name__}"
        )
    return dists.CategoricalDistribution(list(dim.values))
