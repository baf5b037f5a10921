"""Sources: what the feed reads (a frame, a lazy frame, a Parquet or CSV file, a glob, or a
(hive-partitioned) directory such as one written by :func:`~ml4t.backtest.data.write_dataset`)
becomes one lazy frame, with the hive partition keys of its paths. Every file of a multi-file
dataset is checked to have the same dtypes (Polars would silently read the first file's time
zone for all); a source that cannot be read is a ``source`` finding.
"""

from __future__ import annotations

import glob as globlib
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest.data.validation import Collector, fatal


def hive_keys(files: list[str], root: Path) -> list[str]:
    """``key`` of each ``key=value`` directory between ``root`` and the first file."""
    try:
        parts = Path(files[0]).relative_to(root).parts[:-1]
    except ValueError:
        parts = Path(files[0]).parts[:-1]
    return [part.split("=", 1)[0] for part in parts if "=" in part]


def scan(source: Any, name: str, collector: Collector) -> tuple[pl.LazyFrame, list[str], Path]:
    """A lazy frame for ``source``, the hive partition keys of its paths, and the dataset
    root (for the marker written by ``write_dataset``)."""
    if isinstance(source, pl.DataFrame):
        return source.lazy(), [], Path()
    if isinstance(source, pl.LazyFrame):
        return source, [], Path()
    if not isinstance(source, (str, Path)):
        fatal(
            collector,
            "source",
            name,
            "expected a polars DataFrame or LazyFrame, or a path to Parquet data, got "
            f"{type(source).__name__}",
        )
    text = str(source)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        files = sorted(globlib.glob(text, recursive=True))
        prefix = text.split("*")[0].split("?")[0].split("[")[0]
        pattern, root = text, Path(prefix) if prefix.endswith("/") else Path(prefix).parent
    elif path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet"))
        pattern, root = str(path / "**" / "*.parquet"), path
    else:
        files = [text] if path.is_file() else []
        pattern, root = text, path.parent
    if not files:
        fatal(collector, "source", name, f"no file matches '{text}'")
    if files[0].endswith(".csv"):
        return pl.scan_csv(pattern, try_parse_dates=True), [], root
    keys = hive_keys(files, root)
    try:
        lazy = pl.scan_parquet(pattern, hive_partitioning=bool(keys) or None)
    except (pl.exceptions.PolarsError, OSError) as err:
        fatal(collector, "source", name, f"cannot read '{text}': {err}")
    check_file_schemas(files, name, collector)
    return lazy, keys, root


def check_file_schemas(files: list[str], name: str, collector: Collector) -> None:
    """Every file of a multi-file dataset must have the same dtypes (Polars would silently
    read the first file's time zone for all)."""
    if len(files) < 2:
        return
    first = pl.read_parquet_schema(files[0])
    for path in files[1:]:
        schema = pl.read_parquet_schema(path)
        for column, dtype in schema.items():
            ref = first.get(column)
            if ref is None or ref == dtype:
                continue
            if isinstance(ref, pl.Datetime) and isinstance(dtype, pl.Datetime):
                if ref.time_zone != dtype.time_zone:
                    fatal(
                        collector,
                        "timezone",
                        f"{name}.{column}",
                        f"{path} has time zone {dtype.time_zone} but {files[0]} has "
                        f"{ref.time_zone}; use one time zone throughout",
                    )
                continue
            if isinstance(ref, (pl.Categorical, pl.Enum)) and isinstance(
                dtype, (pl.Categorical, pl.Enum, pl.String)
            ):
                continue
            if ref.is_numeric() and dtype.is_numeric():
                continue
            fatal(
                collector,
                "dtype",
                f"{name}.{column}",
                f"{path} has dtype {dtype} but {files[0]} has {ref}",
            )


def read_schema(lazy: pl.LazyFrame, name: str, collector: Collector) -> pl.Schema:
    try:
        return lazy.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as err:
        fatal(collector, "source", name, f"cannot read the schema: {err}")
