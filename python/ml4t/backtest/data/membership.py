"""The point-in-time universe (``PolarsDataFeed(..., universe=frame)``): an index's membership
as it was, one row per (timestamp, asset) with a boolean ``member``. The membership of an
asset at ``t`` is its latest row at or before ``t`` (never a later one); before its first row
an asset is not a member. A full panel (a row per date and asset) and a list of changes (a row
when an asset joins or leaves) say the same thing: the frame is checked row by row, then
reduced to the changes and handed to the engine as a small table (``ts`` Int64 ns,
``asset_id`` UInt32, ``member`` Boolean, sorted by (ts, asset_id)).

Rules (each a ``DataValidationError`` ``universe.<column>: rule: detail (N rows, first keys
...)``, or a finding of :func:`~ml4t.backtest.data.validate`):

===================== ===============================================================
``missing_column``    no timestamp, asset or ``member`` column
``unknown_column``    a column other than the keys and ``member``
``dtype``             keys of the wrong dtype, a ``member`` that is not Boolean
``timezone``          naive and tz-aware timestamps mixed, or another time zone
``timestamp_range``   a timestamp outside the engine's nanosecond range
``null``              a null timestamp, asset or member
``unknown_asset``     an asset the prices do not have
``duplicate``         two rows for one (timestamp, asset)
===================== ===============================================================

A ``Date`` is midnight of that day in the data's time zone, so a change applies from the day's
first bar; a change dated between two timestamps applies from the next one.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ml4t.backtest.data.joins import zoned_timestamp
from ml4t.backtest.data.sources import find_timestamp_column, read_schema, scan
from ml4t.backtest.data.validation import (
    Collector,
    Finding,
    FrameSpec,
    check_time_zone,
    check_timestamp_range,
    fatal,
    first_keys,
)
from ml4t.backtest.universe import Universe

ENGINE_SCHEMA = {"ts": pl.Int64, "asset_id": pl.UInt32, "member": pl.Boolean}
"""The change table the engine reads."""


def read_universe(
    source: Any,
    *,
    timestamp: str,
    asset_candidates: tuple[str, ...],
    universe: Universe,
    collector: Collector,
) -> pl.DataFrame:
    """The engine's membership changes from ``source``, every row checked against
    ``universe`` (the prices' assets and time zone): per asset, the rows whose ``member``
    differs from the asset's previous row (a first row that is not a member says nothing:
    that is the state before any row)."""
    lazy, _, _ = scan(source, "universe", collector)
    schema = read_schema(lazy, "universe", collector)
    t = timestamp
    if t not in schema:
        other = find_timestamp_column(schema, "universe", collector)
        if other is None:
            fatal(collector, "missing_column", f"universe.{t}", "required key column is missing")
        lazy = lazy.rename({other: t})
        schema = read_schema(lazy, "universe", collector)
    found = [c for c in asset_candidates if c in schema]
    if not found:
        fatal(collector, "missing_column", "universe.asset", "required key column is missing")
    a = found[0]
    if "member" not in schema:
        fatal(collector, "missing_column", "universe.member", "required column is missing")
    unknown = [c for c in schema if c not in (t, a, "member")]
    if unknown:
        fatal(
            collector,
            "unknown_column",
            f"universe.{unknown[0]}",
            f"the universe frame holds only its keys and 'member' (got {unknown}); rename or "
            "drop the others",
        )
    raw_ts = schema[t]
    if not (raw_ts == pl.Date or isinstance(raw_ts, pl.Datetime)):
        fatal(collector, "dtype", f"universe.{t}", f"dtype must be Datetime or Date, got {raw_ts}")
    check_time_zone(raw_ts, universe.time_zone, f"universe.{t}", collector)
    if not isinstance(schema[a], (pl.String, pl.Categorical, pl.Enum)):
        detail = f"dtype must be String, Categorical or Enum, got {schema[a]}"
        fatal(collector, "dtype", f"universe.{a}", detail)
    if schema["member"] != pl.Boolean:
        detail = f"dtype must be Boolean (True: a member), got {schema['member']}"
        fatal(collector, "dtype", "universe.member", detail)
    check_timestamp_range(lazy, t, raw_ts, f"universe.{t}", collector)

    stamp = zoned_timestamp(pl.col(t), raw_ts, universe.time_zone)
    frame = (
        lazy.select(stamp.alias(t), pl.col(a).cast(pl.String).alias(a), pl.col("member"))
        .with_row_index("__row")
        .collect()
    )
    spec = FrameSpec(t, a)
    for column in (t, a, "member"):
        n_null = frame.get_column(column).null_count()
        if n_null:
            rows = frame.filter(pl.col(column).is_null()).get_column("__row").head(5).to_list()
            collector.error(
                Finding(
                    "null",
                    f"universe.{column}",
                    "null values are not allowed",
                    n_null,
                    tuple(f"[{r}]" for r in rows),
                    key_kind="rows",
                )
            )
    frame = frame.drop_nulls([t, a, "member"])
    checks = [
        (
            "unknown_asset",
            f"universe.{a}",
            ~pl.col(a).is_in(list(universe.assets)),
            "not an asset of the prices; drop the rows of assets outside the data",
        ),
        (
            "duplicate",
            "universe",
            pl.struct(t, a).is_duplicated(),
            "one row per (timestamp, asset)",
        ),
    ]
    bad_any: pl.Expr = pl.lit(False)
    for rule, column, mask, detail in checks:
        count = int(frame.select(mask.sum()).item())
        if count:
            collector.error(Finding(rule, column, detail, count, first_keys(frame, mask, spec)))
            bad_any = bad_any | mask
    frame = frame.filter(~bad_any)
    code = pl.col(a).cast(universe.asset_dtype).to_physical().cast(pl.UInt32)
    return (
        frame.select(
            pl.col(t).cast(universe.timestamp_dtype).to_physical().alias("ts"),
            code.alias("asset_id"),
            "member",
        )
        .sort("asset_id", "ts")
        .filter(pl.col("member") != pl.col("member").shift(1, fill_value=False).over("asset_id"))
        .sort("ts", "asset_id")
        .cast(ENGINE_SCHEMA)  # type: ignore[arg-type]
    )
