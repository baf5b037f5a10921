"""The resumable cache of a sweep: one small file per finished trial, keyed by
:func:`~ml4t.backtest.study.trials.trial_key`, so a rerun (after a crash, or with more
trials) runs only what is missing.

Layout under the cache directory::

    trials/<key>.arrow       the trial's metrics, status and seconds (Arrow IPC, one row)
    equity/<key>.parquet     its equity curve (keep="equity" or "all")
    results/<key>/           its whole BacktestResult, as result.save writes it (keep="all")
    feeds/<checksum>.arrow   the feed's frame, memory-mapped by process workers

Every file is written to a temporary name and renamed into place, so a sweep killed midway
leaves only whole entries. Failed trials are not stored: a rerun tries them again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.results.result import MANIFEST
from ml4t.backtest.study.worker import decode, encode


def data_checksum(feed: PolarsDataFeed) -> str:
    """SHA-256 of the feed's engine data (every column's name, dtype and values, chunk by
    chunk for a streaming feed) and of its universe (asset names, time zone):
    :meth:`PolarsDataFeed.checksum`, so a locked hold-out's rows are not part of it."""
    return feed.checksum()


def atomic_write(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Cache:
    """The trial store under ``root`` (see the module doc)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _row(self, key: str) -> Path:
        return self.root / "trials" / f"{key}.arrow"

    def equity_path(self, key: str) -> Path:
        """Where a trial's equity curve is stored."""
        return self.root / "equity" / f"{key}.parquet"

    def result_dir(self, key: str) -> Path:
        """Where a trial's whole result is saved (keep="all")."""
        return self.root / "results" / key

    @property
    def results_root(self) -> Path:
        """The parent of every saved result."""
        return self.root / "results"

    def feed_file(self, checksum: str) -> Path:
        """Where the feed's frame is kept for memory-mapping."""
        return self.root / "feeds" / f"{checksum.removeprefix('sha256:')}.arrow"

    def has(self, key: str, keep: str) -> bool:
        """Whether the trial is stored with everything ``keep`` asks for."""
        if not self._row(key).is_file():
            return False
        if keep in ("equity", "all") and not self.equity_path(key).is_file():
            return False
        return keep != "all" or (self.result_dir(key) / MANIFEST).is_file()

    def load_row(self, key: str) -> pl.DataFrame:
        """The stored row (``trial`` column excluded: ids belong to the sweep)."""
        return decode(self._row(key).read_bytes())

    def load_equity(self, key: str) -> pl.DataFrame:
        """The stored equity curve (``timestamp, equity``)."""
        return pl.read_parquet(self.equity_path(key))

    def store(self, row: pl.DataFrame, equity: pl.DataFrame | None) -> None:
        """Stores one finished trial (a row of ``status == "ok"``), equity curve first."""
        key = str(row["key"][0])
        if equity is not None:
            path = self.equity_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            os.close(fd)
            try:
                equity.select("timestamp", "equity").write_parquet(tmp, statistics=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        atomic_write(self._row(key), encode(row.drop("trial")))
