"""The corporate-actions frame (``PolarsDataFeed(..., actions=frame)``): one row per (ex-date,
asset) with a ``split_ratio`` (new shares per old share: 2.0 for a 2-for-1 split, 0.1 for a
1-for-10 reverse split) and/or a cash ``dividend`` per share, and/or a ``delisting_return``
(CRSP's DLRET: the return from the asset's last close to what its holders receive when it is
delisted, on the row dated at its delisting). Read from anything the feed reads (frames,
pandas, Arrow, files), every row checked, and handed to the engine as a small table sorted by
(ts, asset_id) (``ts`` Int64 ns, ``asset_id`` UInt32, ``split_ratio`` and ``dividend``
Float64), never as feature columns; the delisting returns go per asset with the universe.

Rules (each a ``DataValidationError`` ``actions.<column>: rule: detail (N rows, first keys
...)``, or a finding of :func:`~ml4t.backtest.data.validate`):

===================== ===============================================================
``missing_column``    no timestamp or asset column, or neither ``split_ratio`` nor ``dividend``
``unknown_column``    a column other than the keys, ``split_ratio`` and ``dividend``
``dtype``             keys of the wrong dtype, non-numeric values
``timezone``          naive and tz-aware timestamps mixed, or another time zone
``timestamp_range``   a timestamp outside the engine's nanosecond range
``null``              a null timestamp or asset
``unknown_asset``     an asset the prices do not have
``positive_ratio``    a split ratio that is not finite and > 0 (null: no split)
``not_finite``        a dividend that is NaN or infinite (null: no dividend)
``delisting_return``  a delisting return that is not finite or is below -1 (null: none)
``duplicate``         two rows for one (timestamp, asset), or two delisting returns of one
                      asset
===================== ===============================================================

A ``Date`` ex-date is midnight of that day in the data's time zone, so the action applies at the
day's first bar.
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

ACTION_VALUES = ("split_ratio", "dividend", "delisting_return")
"""The value columns of the actions frame; at least one must be present."""

ENGINE_SCHEMA = {
    "ts": pl.Int64,
    "asset_id": pl.UInt32,
    "split_ratio": pl.Float64,
    "dividend": pl.Float64,
}
"""The table the engine reads."""


def read_actions(
    source: Any,
    *,
    timestamp: str,
    asset_candidates: tuple[str, ...],
    universe: Universe,
    collector: Collector,
) -> tuple[pl.DataFrame, list[float | None]]:
    """The engine's actions table from ``source``, every row checked against ``universe``
    (the prices' assets and time zone), and the delisting return of each asset in code order
    (``None``: none). Rows that do nothing (ratio 1, dividend 0) are left out of the table."""
    lazy, _, _ = scan(source, "actions", collector)
    schema = read_schema(lazy, "actions", collector)
    t = timestamp
    if t not in schema:
        other = find_timestamp_column(schema, "actions", collector)
        if other is None:
            fatal(collector, "missing_column", f"actions.{t}", "required key column is missing")
        lazy = lazy.rename({other: t})
        schema = read_schema(lazy, "actions", collector)
    found = [c for c in asset_candidates if c in schema]
    if not found:
        fatal(collector, "missing_column", "actions.asset", "required key column is missing")
    a = found[0]
    values = [c for c in schema if c not in (t, a)]
    unknown = [c for c in values if c not in ACTION_VALUES]
    if unknown:
        fatal(
            collector,
            "unknown_column",
            f"actions.{unknown[0]}",
            f"the actions frame holds only {list(ACTION_VALUES)} besides its keys "
            f"(got {unknown}); rename or drop the others",
        )
    if not values:
        fatal(
            collector,
            "missing_column",
            "actions",
            f"needs at least one of {list(ACTION_VALUES)}, have {list(schema)}",
        )
    raw_ts = schema[t]
    if not (raw_ts == pl.Date or isinstance(raw_ts, pl.Datetime)):
        fatal(collector, "dtype", f"actions.{t}", f"dtype must be Datetime or Date, got {raw_ts}")
    check_time_zone(raw_ts, universe.time_zone, f"actions.{t}", collector)
    if not isinstance(schema[a], (pl.String, pl.Categorical, pl.Enum)):
        detail = f"dtype must be String, Categorical or Enum, got {schema[a]}"
        fatal(collector, "dtype", f"actions.{a}", detail)
    for name in values:
        if not (schema[name].is_numeric() or schema[name] == pl.Null):
            detail = f"dtype must be numeric, got {schema[name]}"
            fatal(collector, "dtype", f"actions.{name}", detail)
    check_timestamp_range(lazy, t, raw_ts, f"actions.{t}", collector)

    stamp = zoned_timestamp(pl.col(t), raw_ts, universe.time_zone)
    frame = (
        lazy.select(
            stamp.alias(t),
            pl.col(a).cast(pl.String).alias(a),
            *[
                pl.col(c).cast(pl.Float64).alias(c)
                if c in values
                else pl.lit(None, dtype=pl.Float64).alias(c)
                for c in ACTION_VALUES
            ],
        )
        .with_row_index("__row")
        .collect()
    )
    spec = FrameSpec(t, a)
    null_keys = pl.col(t).is_null() | pl.col(a).is_null()
    n_null = int(frame.select(null_keys.sum()).item())
    if n_null:
        rows = frame.filter(null_keys).get_column("__row").head(5).to_list()
        column = f"actions.{t}" if frame.get_column(t).null_count() else f"actions.{a}"
        collector.error(
            Finding(
                "null",
                column,
                "null values are not allowed in the keys",
                n_null,
                tuple(f"[{r}]" for r in rows),
                key_kind="rows",
            )
        )
        frame = frame.filter(~null_keys)
    checks = [
        (
            "unknown_asset",
            f"actions.{a}",
            ~pl.col(a).is_in(list(universe.assets)),
            "not an asset of the prices; drop the actions of assets outside the data",
        ),
        (
            "positive_ratio",
            "actions.split_ratio",
            pl.col("split_ratio").is_not_null()
            & ~(pl.col("split_ratio").is_finite() & (pl.col("split_ratio") > 0.0)),
            "a split ratio (new shares per old share) must be finite and > 0",
        ),
        (
            "not_finite",
            "actions.dividend",
            pl.col("dividend").is_not_null() & ~pl.col("dividend").is_finite(),
            "a dividend must be finite (null: none)",
        ),
        (
            "delisting_return",
            "actions.delisting_return",
            pl.col("delisting_return").is_not_null()
            & ~(pl.col("delisting_return").is_finite() & (pl.col("delisting_return") >= -1.0)),
            "a delisting return must be finite and >= -1 (-1: worthless; null: none)",
        ),
        (
            "duplicate",
            "actions",
            pl.struct(t, a).is_duplicated(),
            "one row per (timestamp, asset): merge a split and a dividend of one ex-date "
            "into one row",
        ),
        (
            "duplicate",
            "actions.delisting_return",
            pl.col("delisting_return").is_not_null()
            & pl.col(a).is_duplicated().over(pl.col("delisting_return").is_not_null()),
            "one delisting return per asset",
        ),
    ]
    bad_any: pl.Expr = pl.lit(False)
    for rule, column, mask, detail in checks:
        count = int(frame.select(mask.sum()).item())
        if count:
            keys = first_keys(frame, mask, spec)
            collector.error(Finding(rule, column, detail, count, keys))
            bad_any = bad_any | mask
    frame = frame.filter(~bad_any)
    code = pl.col(a).cast(universe.asset_dtype).to_physical().cast(pl.UInt32)
    returns: list[float | None] = [None] * len(universe.assets)
    for asset_id, value in (
        frame.filter(pl.col("delisting_return").is_not_null())
        .select(code, "delisting_return")
        .iter_rows()
    ):
        returns[int(asset_id)] = float(value)
    table = (
        frame.select(
            pl.col(t).cast(universe.timestamp_dtype).to_physical().alias("ts"),
            pl.col(a).cast(universe.asset_dtype).to_physical().cast(pl.UInt32).alias("asset_id"),
            pl.col("split_ratio").fill_null(1.0),
            pl.col("dividend").fill_null(0.0),
        )
        .filter((pl.col("split_ratio") != 1.0) | (pl.col("dividend") != 0.0))
        .sort("ts", "asset_id")
        .cast(ENGINE_SCHEMA)  # type: ignore[arg-type]
    )
    return table, returns
