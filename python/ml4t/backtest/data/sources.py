"""Sources: what the feed reads (a Polars frame or lazy frame, a pandas DataFrame, a
``pyarrow.Table`` or ``RecordBatchReader`` or anything else exporting ``__arrow_c_stream__``, a
Parquet or CSV file, a glob, or a (hive-partitioned) directory such as one written by
:func:`~ml4t.backtest.data.write_dataset`) becomes one lazy frame, with the hive partition keys
of its paths. Arrow inputs are imported without a copy where their buffers allow (Polars reads
the Arrow C stream); a pandas frame's index becomes columns (an unnamed ``DatetimeIndex`` is
``timestamp``; a ``MultiIndex`` gives one column per named level). Every file of a multi-file
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
        return in_memory(source, name, collector).lazy(), [], Path()
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


def in_memory(source: Any, name: str, collector: Collector) -> pl.DataFrame:
    """A Polars frame for an in-memory table that is not one: pandas, pyarrow, or any object
    exporting the Arrow C stream interface (a Polars frame is returned as it is)."""
    if isinstance(source, pl.DataFrame):
        return source
    if _is_pandas_frame(source):
        return _from_pandas(source, name, collector)
    if hasattr(source, "__arrow_c_stream__") or type(source).__module__.startswith("pyarrow"):
        try:
            frame = pl.DataFrame(source) if hasattr(source, "__arrow_c_stream__") else None
            if frame is None:
                converted = pl.from_arrow(source)
                frame = converted if isinstance(converted, pl.DataFrame) else converted.to_frame()
        except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
            fatal(collector, "source", name, f"cannot import the Arrow data: {err}")
        return frame
    fatal(
        collector,
        "source",
        name,
        "expected a polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or "
        "RecordBatchReader (anything with __arrow_c_stream__), or a path to Parquet/CSV data, "
        f"got {type(source).__name__}",
    )


def _is_pandas_frame(source: Any) -> bool:
    kind = type(source)
    return kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame"


def _from_pandas(frame: Any, name: str, collector: Collector) -> pl.DataFrame:
    """A pandas frame with its index as columns (none for a plain ``RangeIndex``)."""
    index = frame.index
    names = list(index.names)
    if index.nlevels > 1:
        if any(level is None for level in names):
            fatal(
                collector,
                "source",
                name,
                f"a MultiIndex needs every level named (e.g. timestamp, asset), got {names}",
            )
        frame = frame.reset_index()
    elif names[0] is not None:
        frame = frame.reset_index()
    elif str(getattr(index, "dtype", "")).startswith("datetime64"):
        frame = frame.rename_axis("timestamp").reset_index()
    try:
        return pl.from_pandas(frame)
    except (pl.exceptions.PolarsError, TypeError, ValueError, ImportError) as err:
        fatal(collector, "source", name, f"cannot import the pandas frame: {err}")


TIMESTAMP_CANDIDATES = ("timestamp", "date", "datetime", "time")
"""Column names taken as the timestamp when the default ``timestamp`` is absent (any case)."""


def find_timestamp_column(schema: pl.Schema, name: str, collector: Collector) -> str | None:
    """The one column named like a timestamp (:data:`TIMESTAMP_CANDIDATES`, any case), or
    ``None`` when there is none; several are an error that lists them."""
    found = [c for c in schema if c.lower() in TIMESTAMP_CANDIDATES]
    if len(found) > 1:
        fatal(
            collector,
            "missing_column",
            f"{name}.timestamp",
            f"several columns could be the timestamp ({found}); pass timestamp_column=...",
        )
    return found[0] if found else None


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


def wide_to_long(fields: dict[str, Any], name: str, collector: Collector) -> pl.DataFrame:
    """Long (timestamp, asset, field...) bars from wide frames, one per field (rows =
    timestamps, columns = assets, as vectorbt holds them): a pandas frame indexed by time or a
    frame with one timestamp column. A timestamp where an asset's close is null or NaN is no
    bar of that asset (wide frames mark an asset's missing history that way)."""
    long: pl.DataFrame | None = None
    assets: list[str] | None = None
    for field, source in fields.items():
        frame = in_memory(source, f"{name}.{field}", collector)
        stamp = find_timestamp_column(frame.schema, f"{name}.{field}", collector)
        if stamp is None:
            fatal(
                collector,
                "missing_column",
                f"{name}.{field}.timestamp",
                "a wide frame needs a DatetimeIndex or one timestamp column",
            )
        columns = [c for c in frame.columns if c != stamp]
        if assets is None:
            assets = columns
        elif sorted(columns) != sorted(assets):
            fatal(
                collector,
                "column_clash",
                f"{name}.{field}",
                f"its asset columns {sorted(columns)} differ from close's {sorted(assets)}",
            )
        part = frame.rename({stamp: "timestamp"}).unpivot(
            index="timestamp", on=columns, variable_name="asset", value_name=field
        )
        part = part.with_columns(pl.col(field).cast(pl.Float64, strict=False))
        long = part if long is None else long.join(part, on=["timestamp", "asset"], how="left")
    assert long is not None  # close is always given
    return long.filter(pl.col("close").is_not_null() & pl.col("close").is_not_nan())
