"""The trial ledger's files: where the ledger lives, appending to it safely from many
processes at once, and reading it back. What is recorded, and what the deflated Sharpe ratio
counts from it, is :mod:`ml4t.backtest.study.ledger`'s job; this module sits low in the
package so that the data feed can record a hold-out's unlock too.

Where it lives: ``$ML4T_BACKTEST_LEDGER`` when set, else ``$XDG_CACHE_HOME/ml4t-backtest/
ledger``, else ``~/.cache/ml4t-backtest/ledger``: one ledger per researcher and machine, not
per cache directory, so starting a new cache directory does not reset the count of what was
tried. Layout, one folder per dataset (the hex digits of its checksum)::

    <root>/<checksum>/trials/<time>-<uuid>.parquet   one file per recorded study run
    <root>/<checksum>/events/<time>-<uuid>.json      one file per event (a hold-out's unlock)

Every file is written under a temporary name (``.tmp-...``) and renamed into place, and no
file is ever rewritten, so any number of processes (and machines on a shared file system)
append at once without a lock and a reader only ever sees whole records.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest.errors import ConfigError

ENV = "ML4T_BACKTEST_LEDGER"
"""The environment variable naming the ledger's root directory."""

TRIALS_SCHEMA: dict[str, pl.DataType] = {
    "checksum": pl.String(),
    "kind": pl.String(),
    "run": pl.String(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "trial": pl.Int64(),
    "key": pl.String(),
    "params": pl.String(),
    "status": pl.String(),
    "sharpe": pl.Float64(),
    "n_periods": pl.Int64(),
    "metrics": pl.String(),
}
"""The columns of a ledger's trials (``params`` and ``metrics`` as JSON text, ``sharpe`` the
per-period Sharpe ratio)."""

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "checksum": pl.String(),
    "event": pl.String(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "details": pl.String(),
}
"""The columns of a ledger's events (``details`` as JSON text)."""


def default_root() -> Path:
    """The ledger's root when none is given (see the module doc)."""
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache_home).expanduser() if cache_home else Path.home() / ".cache"
    return base / "ml4t-backtest" / "ledger"


def resolve_root(root: str | Path | None) -> Path:
    """``root`` as a path, or :func:`default_root`."""
    return default_root() if root is None else Path(root).expanduser()


def dataset_dir(root: Path, checksum: str) -> Path:
    """The folder of one dataset's records."""
    digits = checksum.removeprefix("sha256:")
    if not digits or not all(c in "0123456789abcdef" for c in digits):
        raise ConfigError(
            f"checksum: hex: expected 'sha256:<hex digits>' (study.data_checksum), got {checksum!r}"
        )
    return root / digits


def _stamp() -> str:
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex}"


def _publish(folder: Path, suffix: str, write: Any) -> Path:
    """Writes a new file in ``folder`` through ``write(tmp_path)`` and renames it into place."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    target = folder / f"{_stamp()}{suffix}"
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def append_trials(root: Path, checksum: str, frame: pl.DataFrame) -> Path:
    """Appends ``frame`` (exactly :data:`TRIALS_SCHEMA`'s columns) as one new file."""
    frame = frame.select([pl.col(c).cast(t) for c, t in TRIALS_SCHEMA.items()])
    folder = dataset_dir(root, checksum) / "trials"
    return _publish(folder, ".parquet", lambda tmp: frame.write_parquet(tmp, statistics=False))


def append_event(root: Path, checksum: str, event: str, details: Mapping[str, Any]) -> Path:
    """Appends one event (a name and JSON-able details) as one new file."""
    record = {
        "checksum": checksum,
        "event": event,
        "recorded_at": datetime.now(timezone.utc).isoformat(),
        "details": dict(details),
    }
    text = json.dumps(record, sort_keys=True, default=str) + "\n"
    folder = dataset_dir(root, checksum) / "events"
    return _publish(folder, ".json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == suffix and not p.name.startswith("."))


def read_trials(root: Path, checksum: str) -> pl.DataFrame:
    """Every trial recorded for ``checksum``, in the order recorded (empty with the schema when
    there is none)."""
    files = _files(dataset_dir(root, checksum) / "trials", ".parquet")
    if not files:
        return pl.DataFrame(schema=TRIALS_SCHEMA)
    frames = [pl.read_parquet(f) for f in files]
    return pl.concat(frames, how="vertical_relaxed").select(
        [pl.col(c).cast(t) for c, t in TRIALS_SCHEMA.items()]
    )


def read_events(root: Path, checksum: str) -> pl.DataFrame:
    """Every event recorded for ``checksum``, in the order recorded."""
    rows = []
    for path in _files(dataset_dir(root, checksum) / "events", ".json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        rows.append(
            {
                "checksum": record["checksum"],
                "event": record["event"],
                "recorded_at": datetime.fromisoformat(record["recorded_at"]),
                "details": json.dumps(record["details"], sort_keys=True),
            }
        )
    return pl.DataFrame(rows, schema=EVENTS_SCHEMA)


def checksums(root: Path) -> list[str]:
    """The datasets the ledger holds records of (``sha256:...``), sorted."""
    if not root.is_dir():
        return []
    return sorted(f"sha256:{p.name}" for p in root.iterdir() if p.is_dir())
