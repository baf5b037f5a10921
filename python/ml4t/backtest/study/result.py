"""``SweepResult``: the table of a sweep (one row per trial), the best trials, each trial's
equity curve or whole result, save/load and the HTML report."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest import stats
from ml4t.backtest.errors import ConfigError, ResultFileError
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.study.cache import Cache, atomic_write
from ml4t.backtest.study.directions import DIRECTIONS, direction
from ml4t.backtest.study.ledger import TrialLedger
from ml4t.backtest.study.report import sweep_html, write_sweep_report
from ml4t.backtest.study.trials import Trial
from ml4t.backtest.study.worker import STATUS_OK

Rerun = Callable[[int], BacktestResult]
"""Runs one trial again by id (the sweep's ``rerun``), for results that were not kept."""

RESERVED = ("trial", "status", "error", "seconds")
"""Table columns that are not params or metrics."""

DEFAULT_METRICS = [m for m in DIRECTIONS if m not in ("alpha", "beta", "information_ratio")]
"""The metric columns of a table whose every trial failed (no result to name them)."""

SAVE_FORMAT = 1


def _column(name: str, values: list[Any]) -> pl.Series:
    """A param column; values Polars cannot hold as one dtype are kept as their repr."""
    try:
        return pl.Series(name, values, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return pl.Series(name, [repr(v) for v in values], dtype=pl.String)


class SweepResult:
    """What a sweep returns.

    Attributes:
        table: one row per trial, exactly these columns: ``trial`` (its id), one per param,
            every metric of ``result.metrics``, ``status`` (``ok`` or ``error``), ``error``
            (the message, or null) and ``seconds`` (the trial's wall time). Identical, seconds
            aside, for every executor and worker count.
        params: the param columns' names.
        metrics: the metric columns' names.
        keep: what was kept (``"metrics"``, ``"equity"`` or ``"all"``).
        info: how it ran: executor, workers, transport, ``setup_seconds`` (starting the
            workers and handing them the feed), ``run_seconds``, trials.
        ledger: the trial ledger the sweep was recorded in (``None``: not recorded).
        checksum: the checksum of the data the trials read (the ledger's key).
    """

    def __init__(
        self,
        table: pl.DataFrame,
        params: list[str],
        metrics: list[str],
        keep: str,
        keys: dict[int, str],
        cache: Path | None,
        curves: dict[int, pl.DataFrame],
        info: dict[str, Any],
        rerun: Rerun | None = None,
        ledger: Path | None = None,
        checksum: str | None = None,
    ) -> None:
        self.table = table
        self.ledger = ledger
        self.checksum = checksum
        self.params = params
        self.metrics = metrics
        self.keep = keep
        self.info = info
        self._keys = keys
        self._cache = cache
        self._curves = curves
        self._rerun = rerun

    @classmethod
    def build(
        cls,
        rows: pl.DataFrame,
        trials: list[Trial],
        params: list[str],
        keep: str,
        store: Cache | None,
        curves: dict[int, pl.DataFrame],
        info: dict[str, Any],
        rerun: Rerun | None = None,
        ledger: Path | None = None,
        checksum: str | None = None,
    ) -> SweepResult:
        """The result from the workers' rows (any order) and the trials they ran."""
        rows = rows.sort("trial")
        by_id = {t.id: t for t in trials}
        ids = rows["trial"].to_list()
        metrics = [c for c in rows.columns if c not in (*RESERVED, "key")] or DEFAULT_METRICS
        columns = [rows["trial"].cast(pl.Int64)]
        columns += [_column(name, [by_id[i].params.get(name) for i in ids]) for name in params]
        for name in metrics:
            present = name in rows.columns
            columns.append(
                rows[name] if present else pl.Series(name, [None] * len(ids), dtype=pl.Float64)
            )
        columns += [rows["status"], rows["error"], rows["seconds"]]
        keys = {t.id: t.key for t in trials if t.key}
        return cls(
            pl.DataFrame(columns),
            params,
            metrics,
            keep,
            keys,
            store.root if store is not None else None,
            curves,
            info,
            rerun,
            ledger,
            checksum,
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: trial counts, the best trial, the DSR and PBO when the equity
        curves were kept, and the top trials."""
        return sweep_html(self)

    def __repr__(self) -> str:
        ok = int((self.table["status"] == STATUS_OK).sum())
        return (
            f"SweepResult(trials={self.table.height}, ok={ok}, params={self.params}, "
            f"keep={self.keep!r})"
        )

    # ---------------------------------------------------------------------------- ranking

    def ranked(self, metric: str, direction_: str | None = None) -> pl.DataFrame:
        """The successful trials with a finite ``metric``, best first (ties: lower trial id)."""
        if metric not in self.metrics:
            raise ConfigError(f"metric: {metric!r} is not a column of the table: {self.metrics}")
        sense = direction(metric, direction_)
        value = pl.col(metric)
        ok = self.table.filter(
            (pl.col("status") == STATUS_OK) & value.is_not_null() & value.is_finite()
        )
        return ok.sort([metric, "trial"], descending=[sense == "max", False])

    def best(
        self, metric: str, direction: str | None = None, n: int | None = None
    ) -> dict[str, Any] | pl.DataFrame:
        """The best trial by ``metric`` (its documented direction unless ``direction`` is
        given) as a dict of its row, or the ``n`` best as a frame.

        Raises:
            ConfigError: an unknown metric, or no trial with a finite value of it.
        """
        ranked = self.ranked(metric, direction)
        if n is not None:
            return ranked.head(n)
        if ranked.is_empty():
            raise ConfigError(f"metric: no successful trial has a finite {metric}")
        return ranked.row(0, named=True)

    # --------------------------------------------------------------------- trial artefacts

    def _check_trial(self, trial_id: int) -> None:
        if trial_id not in set(self.table["trial"].to_list()):
            raise ConfigError(f"trial: no trial {trial_id} in this sweep")

    def equity(self, trial_id: int) -> pl.DataFrame:
        """Trial ``trial_id``'s equity curve (``timestamp, equity``); needs ``keep="equity"``
        or ``"all"``."""
        self._check_trial(trial_id)
        if self.keep == "metrics":
            raise ConfigError("keep: the sweep kept metrics only; run it with keep='equity'")
        if trial_id in self._curves:
            return self._curves[trial_id]
        key = self._keys.get(trial_id)
        if self._cache is None or key is None:
            raise ConfigError(f"trial: trial {trial_id} has no equity curve (it failed)")
        path = Cache(self._cache).equity_path(key)
        if not path.is_file():
            raise ConfigError(f"trial: trial {trial_id} has no equity curve (it failed)")
        return pl.read_parquet(path)

    def result(self, trial_id: int) -> BacktestResult:
        """Trial ``trial_id``'s whole result: loaded from the cache with ``keep="all"``, else
        run again here (needs the sweep, so not after :meth:`load`)."""
        self._check_trial(trial_id)
        key = self._keys.get(trial_id)
        if self.keep == "all" and self._cache is not None and key is not None:
            folder = Cache(self._cache).result_dir(key)
            if folder.is_dir():
                return BacktestResult.load(folder)
        if self._rerun is None:
            raise ConfigError(
                f"trial: trial {trial_id}'s result was not kept (keep={self.keep!r}) and this "
                "result was loaded without its sweep, so it cannot be run again"
            )
        return self._rerun(trial_id)

    # ------------------------------------------------------------- the statistics of trying

    def returns(self, trial_id: int) -> pl.Series:
        """Trial ``trial_id``'s per-period returns, ``equity.pct_change()`` of its kept equity
        curve (the first row, which has no previous equity, dropped); needs
        ``keep="equity"`` or ``"all"``."""
        curve = self.equity(trial_id)
        return curve.get_column("equity").pct_change().slice(1).alias(str(trial_id))

    def returns_matrix(self) -> pl.DataFrame:
        """Every successful trial's per-period returns, one column per trial (named by its
        id, in trial order), aligned on the timestamps all of them have: the (T x N) matrix
        of :func:`~ml4t.backtest.stats.probability_of_backtest_overfitting`."""
        if self.keep == "metrics":
            raise ConfigError(
                "keep: the statistics of a sweep need every trial's returns; run it with "
                "keep='equity'"
            )
        ids = self.table.filter(pl.col("status") == STATUS_OK)["trial"].to_list()
        if len(ids) < 2:
            raise ConfigError(f"trials: at_least_2: {len(ids)} successful trial(s)")
        frames = []
        for trial_id in ids:
            curve = self.equity(trial_id).select(
                "timestamp", pl.col("equity").pct_change().alias(str(trial_id))
            )
            frames.append(curve.slice(1))
        joined = frames[0]
        for frame in frames[1:]:
            joined = joined.join(frame, on="timestamp", how="inner", maintain_order="left")
        return joined.drop("timestamp")

    def deflated_sharpe(
        self, metric: str = "sharpe", direction: str | None = None, *, source: str = "ledger"
    ) -> stats.DeflatedSharpe:
        """The deflated Sharpe ratio of the best trial by ``metric`` (Bailey and López de
        Prado 2014; :func:`~ml4t.backtest.stats.deflated_sharpe`): the probability that its
        true Sharpe ratio beats the best of the trials tried if none had skill.

        The winner's returns come from its kept equity curve (``keep="equity"``). ``N`` and
        ``V`` (the variance of the trials' per-period Sharpe ratios) come from the trial
        ledger by default: every variant ever recorded on this data, this sweep included
        (``source="ledger"``); ``source="sweep"`` counts this sweep's successful trials only,
        and a sweep run with ``ledger=False`` can only do that.

        Raises:
            ConfigError: the sweep kept metrics only, an unknown metric or source, no trial
                with a finite metric, or ``source="ledger"`` for a sweep not recorded.
            StatsError: the winner's returns are too few or do not vary.
        """
        if source not in ("ledger", "sweep"):
            raise ConfigError(f"source: expected 'ledger' or 'sweep', got {source!r}")
        if self.keep == "metrics":
            raise ConfigError(
                "keep: the deflated Sharpe ratio needs the winner's returns; run the sweep "
                "with keep='equity'"
            )
        winner = self.best(metric, direction)
        assert isinstance(winner, dict)
        trial_id = int(winner["trial"])
        returns = self.returns(trial_id)
        if source == "ledger":
            if self.ledger is None or self.checksum is None:
                raise ConfigError(
                    "source: 'ledger': this sweep was not recorded in a ledger (ledger=False); "
                    "use source='sweep'"
                )
            count = TrialLedger(self.ledger).count(self.checksum)
            n_trials, variance = count.n_trials, count.sharpe_variance
        else:
            per_period = self._per_period_sharpes()
            n_trials = per_period.len()
            variance = float(per_period.var(ddof=1)) if n_trials >= 2 else 0.0  # type: ignore[arg-type]
        result = stats.deflated_sharpe(returns, max(n_trials, 1), variance)
        return stats.DeflatedSharpe(
            dsr=result.dsr,
            sharpe=result.sharpe,
            expected_max_sharpe=result.expected_max_sharpe,
            n_trials=result.n_trials,
            sharpe_variance=result.sharpe_variance,
            moments=result.moments,
            trial=trial_id,
            source=source,
        )

    def _per_period_sharpes(self) -> pl.Series:
        if "sharpe" not in self.table.columns or "periods_per_year" not in self.table.columns:
            return pl.Series("sharpe", [], dtype=pl.Float64)
        per = self.table.filter(pl.col("status") == STATUS_OK).select(
            (pl.col("sharpe") / pl.col("periods_per_year").sqrt()).alias("sharpe")
        )
        column = per.get_column("sharpe")
        finite: pl.Series = column.filter(column.is_not_null() & column.is_finite())
        return finite

    def pbo(self, n_splits: int = 16) -> stats.PBOResult:
        """The probability that the sweep's in-sample best is overfit, by combinatorially
        symmetric cross-validation over every successful trial's returns
        (:func:`~ml4t.backtest.stats.probability_of_backtest_overfitting`; Sharpe ratio as the
        statistic). ``trial_names`` of the result are the trial ids (as text): the column
        ``selected`` indexes. Needs ``keep="equity"``.

        Raises:
            ConfigError: the sweep kept metrics only, or fewer than two successful trials.
            StatsError: too few periods for ``n_splits``, or a bad ``n_splits``.
        """
        return stats.probability_of_backtest_overfitting(self.returns_matrix(), n_splits)

    # ----------------------------------------------------------------------------- files

    def save(self, directory: str | Path) -> Path:
        """Writes ``table.parquet``, ``equity.parquet`` (curves kept in memory) and
        ``sweep.json`` (params, metrics, keep, the cache directory, trial keys, run info)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.table.write_parquet(out / "table.parquet", statistics=False)
        if self._curves:
            frames = [
                c.select(pl.lit(i, dtype=pl.Int64).alias("trial"), "timestamp", "equity")
                for i, c in sorted(self._curves.items())
            ]
            pl.concat(frames).write_parquet(out / "equity.parquet", statistics=False)
        meta = {
            "format": SAVE_FORMAT,
            "params": self.params,
            "metrics": self.metrics,
            "keep": self.keep,
            "cache": str(self._cache.resolve()) if self._cache is not None else None,
            "keys": {str(k): v for k, v in self._keys.items()},
            "info": self.info,
            "ledger": str(self.ledger.resolve()) if self.ledger is not None else None,
            "checksum": self.checksum,
        }
        atomic_write(out / "sweep.json", (json.dumps(meta, indent=2) + "\n").encode())
        return out

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        """Reads a result written by :meth:`save`.

        Raises:
            ResultFileError: ``sweep.json`` or ``table.parquet`` is missing or unreadable.
        """
        folder = Path(directory)
        try:
            meta = json.loads((folder / "sweep.json").read_text())
            table = pl.read_parquet(folder / "table.parquet")
        except (OSError, ValueError, pl.exceptions.PolarsError) as err:
            raise ResultFileError(f"{folder}: unreadable: not a saved sweep ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != SAVE_FORMAT:
            raise ResultFileError(f"{folder / 'sweep.json'}: unknown_format: {meta!r:.80}")
        curves: dict[int, pl.DataFrame] = {}
        if (folder / "equity.parquet").is_file():
            equity = pl.read_parquet(folder / "equity.parquet")
            for (trial_id,), part in equity.partition_by("trial", as_dict=True).items():
                curves[int(trial_id)] = part.drop("trial")
        return cls(
            table,
            list(meta["params"]),
            list(meta["metrics"]),
            str(meta["keep"]),
            {int(k): str(v) for k, v in meta["keys"].items()},
            Path(meta["cache"]) if meta.get("cache") else None,
            curves,
            dict(meta.get("info") or {}),
            ledger=Path(meta["ledger"]) if meta.get("ledger") else None,
            checksum=meta.get("checksum"),
        )

    def report(
        self,
        path: str | Path = "sweep.html",
        metric: str = "sharpe",
        *,
        x: str | None = None,
        y: str | None = None,
        direction: str | None = None,
        top: int = 20,
        title: str = "Sweep report",
        n_splits: int = 16,
    ) -> Path:
        """Writes one self-contained HTML page: a heatmap of ``metric`` over params ``x`` and
        ``y`` (default: the first two params with more than one value; the best value of each
        cell when other params vary), the distribution of ``metric`` across trials, the
        deflated Sharpe ratio of the best trial by ``metric`` and the PBO (``n_splits``
        blocks) with its logit histogram (with ``keep="equity"``; otherwise the page says
        why not), and the ``top`` trials. Returns the path."""
        return write_sweep_report(
            self,
            Path(path),
            metric,
            x=x,
            y=y,
            direction=direction,
            top=top,
            title=title,
            n_splits=n_splits,
        )


def finite_or_none(value: Any) -> Any:
    """``value`` unless it is a non-finite float (then ``None``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
