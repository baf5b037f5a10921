"""The trial ledger: every study run over a dataset appends its trials, keyed by the data's
checksum (:func:`~ml4t.backtest.study.data_checksum`), so that a later deflated Sharpe ratio
counts every variant ever tried on that data, not only the last sweep's.

``Sweep.run`` and ``Sweep.optimize`` record themselves; walk-forward and CPCV runs call
:func:`record_trials` with one row per variant. Where the ledger lives and how its files are
written (atomically, one new file per run, safe for concurrent appends from many processes)
is :mod:`ml4t.backtest.ledger_store`.

What the DSR counts (:meth:`TrialLedger.count`): the distinct variants (``key``) recorded on
the data with status ``ok`` and a finite per-period Sharpe ratio, each counted once (its latest
record) however often it ran; ``V`` is the sample variance (``ddof=1``) of their per-period
Sharpe ratios.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> checksum = "sha256:" + "ab" * 32
    >>> _ = record_trials(checksum, "sweep", [{"key": "a", "sharpe": 0.05},
    ...                                       {"key": "b", "sharpe": 0.01}], root=root)
    >>> _ = record_trials(checksum, "walkforward", [{"key": "a", "sharpe": 0.04}], root=root)
    >>> ledger = TrialLedger(root)
    >>> ledger.trials(checksum).height, ledger.count(checksum).n_trials
    (3, 2)
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest import ledger_store
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.provenance import plain

__all__ = ["LedgerCount", "TrialLedger", "record_trials"]

STATUS_OK = "ok"


@dataclass(frozen=True)
class LedgerCount:
    """What the deflated Sharpe ratio takes from the ledger for one dataset.

    Attributes:
        n_trials: distinct variants with a finite per-period Sharpe ratio.
        sharpe_variance: the sample variance (``ddof=1``) of their per-period Sharpe ratios
            (0 with fewer than two).
        records: every row recorded for the data (failed and repeated trials included).
        runs: the study runs recorded.
    """

    n_trials: int
    sharpe_variance: float
    records: int
    runs: int


def _json(value: Any, name: str, row: int) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as err:
            raise ConfigError(f"rows[{row}].{name}: json: not JSON text ({err})") from err
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"rows[{row}].{name}: mapping: expected a dict or JSON text, got {type(value).__name__}"
        )
    finite = {
        str(k): v for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))
    }
    return json.dumps(plain(finite), sort_keys=True)


def _sharpe(value: Any, row: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"rows[{row}].sharpe: number: expected the per-period Sharpe ratio as a float or "
            f"None, got {value!r}"
        )
    value = float(value)
    return value if math.isfinite(value) else None


def ledger_frame(
    checksum: str, kind: str, rows: pl.DataFrame | Sequence[Mapping[str, Any]]
) -> pl.DataFrame:
    """``rows`` checked and completed to the ledger's columns (one run id, one time).

    Each row needs ``key`` (a non-empty string identifying the variant: the same variant
    tried again has the same key) and may give ``sharpe`` (per-period Sharpe ratio, ``None``
    when undefined), ``status`` (default ``"ok"``), ``trial`` (default: its position),
    ``params`` and ``metrics`` (dicts or JSON text) and ``n_periods``.

    Raises:
        ConfigError: a bad checksum or kind, a row without a key, a bad value.
    """
    ledger_store.dataset_dir(Path("."), checksum)
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ConfigError(f"kind: identifier: expected a name such as 'sweep', got {kind!r}")
    records = rows.to_dicts() if isinstance(rows, pl.DataFrame) else list(rows)
    if not records:
        raise ConfigError("rows: empty: nothing to record")
    known = {"key", "sharpe", "status", "trial", "params", "metrics", "n_periods"}
    run = uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    out: dict[str, list[Any]] = {name: [] for name in ledger_store.TRIALS_SCHEMA}
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ConfigError(f"rows[{i}]: mapping: expected a dict, got {type(record).__name__}")
        unknown = sorted(set(record) - known)
        if unknown:
            raise ConfigError(f"rows[{i}].{unknown[0]}: unknown: the columns are {sorted(known)}")
        key = record.get("key")
        if not isinstance(key, str) or not key:
            raise ConfigError(f"rows[{i}].key: required: a non-empty string naming the variant")
        status = record.get("status", STATUS_OK)
        if not isinstance(status, str):
            raise ConfigError(f"rows[{i}].status: string: got {status!r}")
        n_periods = record.get("n_periods")
        if n_periods is not None and (
            isinstance(n_periods, bool) or not isinstance(n_periods, int)
        ):
            raise ConfigError(f"rows[{i}].n_periods: integer: got {n_periods!r}")
        out["checksum"].append(checksum)
        out["kind"].append(kind)
        out["run"].append(run)
        out["recorded_at"].append(now)
        out["trial"].append(int(record.get("trial", i)))
        out["key"].append(key)
        out["params"].append(_json(record.get("params"), "params", i))
        out["status"].append(status)
        out["sharpe"].append(_sharpe(record.get("sharpe"), i))
        out["n_periods"].append(n_periods)
        out["metrics"].append(_json(record.get("metrics"), "metrics", i))
    return pl.DataFrame(out, schema=ledger_store.TRIALS_SCHEMA)


def record_trials(
    checksum: str,
    kind: str,
    rows: pl.DataFrame | Sequence[Mapping[str, Any]],
    root: str | Path | None = None,
) -> Path:
    """Appends one study run's trials to the ledger of the data with ``checksum``.

    Args:
        checksum: the data's :func:`~ml4t.backtest.study.data_checksum` (of the feed the study
            read: ``feed.study_view()``).
        kind: what ran: ``"sweep"``, ``"optimize"``, ``"walkforward"``, ``"cpcv"``...
        rows: one per variant tried (see :func:`ledger_frame` for the columns); ``sharpe`` is
            the per-period Sharpe ratio of its (out-of-sample) returns.
        root: the ledger's root (default :func:`ml4t.backtest.ledger_store.default_root`).

    Returns:
        The file written.
    """
    frame = ledger_frame(checksum, kind, rows)
    return ledger_store.append_trials(ledger_store.resolve_root(root), checksum, frame)


class TrialLedger:
    """The ledger under ``root`` (default :func:`ml4t.backtest.ledger_store.default_root`),
    read as Polars frames."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = ledger_store.resolve_root(root)

    def __repr__(self) -> str:
        return f"TrialLedger({str(self.root)!r})"

    def checksums(self) -> list[str]:
        """The datasets with records."""
        return ledger_store.checksums(self.root)

    def trials(self, checksum: str) -> pl.DataFrame:
        """Every trial recorded on the data, in the order recorded: ``checksum, kind, run,
        recorded_at, trial, key, params, status, sharpe`` (per period), ``n_periods,
        metrics``."""
        return ledger_store.read_trials(self.root, checksum)

    def events(self, checksum: str) -> pl.DataFrame:
        """Events recorded on the data (``hold_out``, ``hold_out_unlocked``):
        ``checksum, event, recorded_at, details`` (JSON)."""
        return ledger_store.read_events(self.root, checksum)

    def variants(self, checksum: str) -> pl.DataFrame:
        """The distinct variants the DSR counts: one row per ``key`` (its latest record) of
        the successful trials with a finite per-period Sharpe ratio."""
        trials = self.trials(checksum)
        counted = trials.filter(
            (pl.col("status") == STATUS_OK)
            & pl.col("sharpe").is_not_null()
            & pl.col("sharpe").is_finite()
        )
        return counted.with_row_index("_order").group_by("key").last().sort("_order").drop("_order")

    def count(self, checksum: str) -> LedgerCount:
        """``N`` and ``V`` for the DSR (see the module doc)."""
        trials = self.trials(checksum)
        sharpes = self.variants(checksum).get_column("sharpe")
        n = sharpes.len()
        variance = float(sharpes.var(ddof=1)) if n >= 2 else 0.0  # type: ignore[arg-type]
        return LedgerCount(n, variance, trials.height, trials.get_column("run").n_unique())

    def record(
        self, checksum: str, kind: str, rows: pl.DataFrame | Sequence[Mapping[str, Any]]
    ) -> Path:
        """:func:`record_trials` into this ledger."""
        return record_trials(checksum, kind, rows, self.root)
