"""The capital-flows frame (``Backtest(..., flows=frame)``): deposits (``amount > 0``) and
withdrawals (``amount < 0``) of cash, one row per flow with a ``timestamp`` and an ``amount``.
Read from anything the feed reads (frames, pandas, Arrow, files), every row checked, and handed
to the engine as a small table (``ts`` Int64 ns, ``amount`` Float64), the flows of one
instant summed into one row.

Rules (each a ``DataValidationError`` ``flows.<column>: rule: detail (N rows, first keys
...)``):

===================== ===============================================================
``missing_column``    no timestamp column or no ``amount``
``unknown_column``    a column other than the timestamp and ``amount``
``dtype``             a timestamp that is not Date/Datetime, a non-numeric amount
``timezone``          naive and tz-aware timestamps mixed, or another time zone
``timestamp_range``   a timestamp outside the engine's nanosecond range
``null``              a null timestamp or amount
``not_finite``        an amount that is NaN or infinite
``outside_run``       a flow dated before the data's first timestamp or after its last
===================== ===============================================================

A flow applies at the start of the first timestamp at or after its date, before that
timestamp's fills; a ``Date`` is midnight of that day in the data's time zone, so the flow
applies at the day's first bar. A streaming feed's range is not known before the run: the
engine checks it then (same rule and message).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ml4t.backtest.data.joins import zoned_timestamp
from ml4t.backtest.data.sources import find_timestamp_column, read_schema, scan
from ml4t.backtest.data.validation import (
    Collector,
    Finding,
    check_time_zone,
    check_timestamp_range,
    fatal,
)
from ml4t.backtest.universe import Universe

ENGINE_SCHEMA = {"ts": pl.Int64, "amount": pl.Float64}
"""The table the engine reads."""


def read_flows(
    source: Any,
    *,
    universe: Universe,
    bounds: tuple[int, int] | None,
    timestamp: str = "timestamp",
) -> pl.DataFrame:
    """The engine's flows table from ``source``, checked against ``universe``'s time zone and,
    when given, the data's first and last timestamps ``bounds`` (engine ns). Flows of zero are
    left out and the flows of one instant summed into one row; the engine applies together
    every flow dated since the previous timestamp.

    Raises:
        DataValidationError: a rule of the module's table is broken.
    """
    collector = Collector(raise_errors=True)
    lazy, _, _ = scan(source, "flows", collector)
    schema = read_schema(lazy, "flows", collector)
    t = timestamp
    if t not in schema:
        other = find_timestamp_column(schema, "flows", collector)
        if other is None:
            fatal(collector, "missing_column", f"flows.{t}", "required key column is missing")
        lazy = lazy.rename({other: t})
        schema = read_schema(lazy, "flows", collector)
    if "amount" not in schema:
        fatal(collector, "missing_column", "flows.amount", "required column is missing")
    unknown = [c for c in schema if c not in (t, "amount")]
    if unknown:
        fatal(
            collector,
            "unknown_column",
            f"flows.{unknown[0]}",
            f"the flows frame holds only a timestamp and 'amount' (got {unknown})",
        )
    raw_ts = schema[t]
    if not (raw_ts == pl.Date or isinstance(raw_ts, pl.Datetime)):
        fatal(collector, "dtype", f"flows.{t}", f"dtype must be Datetime or Date, got {raw_ts}")
    check_time_zone(raw_ts, universe.time_zone, f"flows.{t}", collector)
    if not schema["amount"].is_numeric():
        fatal(collector, "dtype", "flows.amount", f"dtype must be numeric, got {schema['amount']}")
    check_timestamp_range(lazy, t, raw_ts, f"flows.{t}", collector)

    stamp = zoned_timestamp(pl.col(t), raw_ts, universe.time_zone)
    frame = (
        lazy.select(
            stamp.cast(universe.timestamp_dtype).to_physical().alias("ts"),
            pl.col("amount").cast(pl.Float64),
        )
        .with_row_index("__row")
        .collect()
    )
    checks: list[tuple[str, str, pl.Expr, str]] = [
        ("null", f"flows.{t}", pl.col("ts").is_null(), "null values are not allowed"),
        ("null", "flows.amount", pl.col("amount").is_null(), "null values are not allowed"),
        (
            "not_finite",
            "flows.amount",
            pl.col("amount").is_not_null() & ~pl.col("amount").is_finite(),
            "an amount must be finite (+ deposit, - withdrawal)",
        ),
    ]
    if bounds is not None:
        first, last = bounds
        checks.append(
            (
                "outside_run",
                f"flows.{t}",
                (pl.col("ts") < first) | (pl.col("ts") > last),
                f"a flow must lie within the data, {universe.to_datetime(first)} to "
                f"{universe.to_datetime(last)} (add one before the start to initial_cash)",
            )
        )
    for rule, column, mask, detail in checks:
        bad = frame.filter(mask)
        if bad.height:
            rows = bad.get_column("__row").head(5).to_list()
            collector.error(
                Finding(
                    rule, column, detail, bad.height, tuple(f"[{r}]" for r in rows), key_kind="rows"
                )
            )
    return (
        frame.filter(pl.col("amount") != 0.0)
        .sort("ts", maintain_order=True)
        .group_by("ts", maintain_order=True)
        .agg(pl.col("amount").sum())
        .cast(ENGINE_SCHEMA)  # type: ignore[arg-type]
    )
