"""Storage helpers: write bars (and signals) as a compressed, hive-partitioned Parquet dataset
that :class:`~ml4t.backtest.PolarsDataFeed` reads back lazily, with time filters pushed into
the scan.

Layout written by :func:`write_dataset` (``partition_by="month"``)::

    path/_ml4t_dataset.json                  what was written (columns, partitions)
    path/year=2024/month=1/part-00000.parquet
    path/year=2024/month=2/part-00000.parquet

Each file is sorted by (timestamp, asset) and zstd-compressed with statistics, so a filter on
the timestamp skips row groups; ``year``/``month`` partitions (derived from the timestamp, not
stored in the files) let the feed skip whole files for ``start=``/``end=``. The asset column is
stored as an ``Enum`` (when ``assets=`` gives the universe) or a ``Categorical``.

Example:
    >>> import tempfile
    >>> from ml4t.backtest import PolarsDataFeed
    >>> from ml4t.backtest.synthetic import make_bars
    >>> root = tempfile.mkdtemp()
    >>> files = write_dataset(make_bars(n_assets=3, n_bars=60, seed=1), root, partition_by="month")
    >>> len(files)
    3
    >>> feed = PolarsDataFeed(root, start="2020-02-01", end="2020-02-29")
    >>> feed.n_rows
    60
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import polars as pl

from ml4t.backtest.errors import ConfigError, DataValidationError

DATASET_MARKER = "_ml4t_dataset.json"
DERIVED_PARTITIONS = ("year", "month")
ASSET_COLUMN_CANDIDATES = ("asset", "symbol", "ticker")

ParquetCompression = Literal["lz4", "uncompressed", "snappy", "gzip", "brotli", "zstd"]


def write_dataset(
    df: pl.DataFrame | pl.LazyFrame,
    path: str | Path,
    *,
    partition_by: str | Sequence[str] | None = "year",
    timestamp_column: str = "timestamp",
    asset_column: str | None = None,
    assets: Sequence[str] | None = None,
    compression: ParquetCompression = "zstd",
    compression_level: int | None = None,
    row_group_size: int = 250_000,
    existing: Literal["error", "overwrite", "append"] = "error",
) -> list[Path]:
    """Writes ``df`` as a partitioned Parquet dataset under ``path``.

    Args:
        df: bars or signals in long format (a LazyFrame is collected).
        path: the dataset's root directory.
        partition_by: column names and/or ``"year"``/``"month"`` (derived from the timestamp;
            ``"month"`` implies ``"year"``), or ``None`` for one file.
        timestamp_column: name of the time column.
        asset_column: name of the asset column (``asset``, ``symbol`` or ``ticker`` by default).
        assets: the asset universe: stored as ``Enum(assets)``; without it a ``Categorical``
            (which, unlike an Enum, stays readable when pieces with other assets are appended).
        compression: Parquet codec (zstd by default).
        compression_level: codec level (Polars' default when ``None``).
        row_group_size: rows per row group (the unit the time filter can skip).
        existing: what to do when ``path`` already holds files: ``"error"``, ``"overwrite"``
            (delete them first) or ``"append"`` (add new part files, e.g. writing a large
            dataset piece by piece).

    Returns:
        The files written.

    Raises:
        DataValidationError: a named column is missing.
        ConfigError: ``path`` is not empty and ``existing="error"``, or a bad argument.
    """
    frame = df.collect() if isinstance(df, pl.LazyFrame) else df
    if not isinstance(frame, pl.DataFrame):
        raise DataValidationError(f"df: expected a polars DataFrame, got {type(df).__name__}")
    root = Path(path)
    if existing not in ("error", "overwrite", "append"):
        raise ConfigError(f"existing: must be 'error', 'overwrite' or 'append', got {existing!r}")
    if root.exists() and any(root.iterdir()):
        if existing == "error":
            raise ConfigError(f"path: {root} is not empty (pass existing='overwrite' or 'append')")
        if existing == "overwrite":
            shutil.rmtree(root)
    if timestamp_column not in frame.columns:
        raise DataValidationError(f"{timestamp_column}: missing_column: required column is missing")
    asset = asset_column or next((c for c in ASSET_COLUMN_CANDIDATES if c in frame.columns), None)
    if asset is None or asset not in frame.columns:
        raise DataValidationError(
            f"{asset_column or 'asset'}: missing_column: required column is missing"
        )
    keys = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
    if "month" in keys and "month" not in frame.columns and "year" not in keys:
        keys.insert(keys.index("month"), "year")
    derived = [k for k in keys if k in DERIVED_PARTITIONS and k not in frame.columns]
    missing = [k for k in keys if k not in frame.columns and k not in derived]
    if missing:
        raise DataValidationError(f"{missing[0]}: missing_column: no such column to partition by")

    ts = pl.col(timestamp_column)
    asset_dtype: pl.DataType = pl.Enum(list(assets)) if assets is not None else pl.Categorical()
    frame = frame.with_columns(
        pl.col(asset).cast(pl.String).cast(asset_dtype),
        *[
            (ts.dt.year() if k == "year" else ts.dt.month()).cast(pl.Int32).alias(k)
            for k in derived
        ],
    ).sort(timestamp_column, pl.col(asset).cast(pl.String), maintain_order=True)

    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    groups = frame.partition_by(keys, as_dict=True) if keys else {(): frame}
    for values, part in groups.items():
        parts = [f"{k}={quote(str(v), safe='')}" for k, v in zip(keys, values, strict=True)]
        directory = root.joinpath(*parts)
        directory.mkdir(parents=True, exist_ok=True)
        index = len(list(directory.glob("part-*.parquet")))
        target = directory / f"part-{index:05d}.parquet"
        part.drop(derived).write_parquet(
            target,
            compression=compression,
            compression_level=compression_level,
            statistics=True,
            row_group_size=row_group_size,
        )
        written.append(target)
    marker = {
        "format": 1,
        "timestamp_column": timestamp_column,
        "asset_column": asset,
        "partition_by": keys,
        "derived": derived,
    }
    (root / DATASET_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return written
