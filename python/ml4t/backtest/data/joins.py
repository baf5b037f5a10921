"""Point-in-time joins of separate frames onto the bars: ``signals`` and ``indicators`` (per
timestamp and asset) and ``context`` (per timestamp, market-wide).

A row of a joined frame becomes usable at its **effective time**:

- ``strict`` timing (default): its timestamp. A row whose availability column (``available_at``)
  is after its timestamp would be used before it exists; that raises
  :class:`~ml4t.backtest.errors.SignalTimingError` naming the rows.
- ``shift`` timing: ``max(timestamp, available_at)``: each row is moved to when it is known.
- a duration ``lag`` (signals only, e.g. ``"15m"``) is added to the effective time; a lag in
  bars (an int) shifts the joined values by that many of the asset's own bars.

The join is ``join_asof`` backward on the effective time (by asset for signals and
indicators): a bar can only see rows whose effective time is at or before its timestamp, never
a later one. Each row is **attached to the first bar** (of its asset) at or after its effective
time; a later bar without a newer row has no value (null), which the ``missing_signals``
validation policy handles (raise by default; ``ffill`` holds the last value, ``nan`` marks
"no signal"). A frame named in ``hold`` keeps its last value instead (e.g. daily context on
intraday bars). Streaming carries the last row per asset (and each asset's previous bar) across
chunk boundaries, so a chunked run joins exactly what an in-memory run joins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from ml4t.backtest.data.validation import CODE, MAX_KEYS, Collector, Finding, LastRows
from ml4t.backtest.errors import SignalTimingError

_EFF = "__effective_ts"
_ORIG = "__source_ts"
_MATCHED = "__matched_ts"
Timing = Literal["strict", "shift"]


def cast_timestamp(expr: pl.Expr, raw: pl.DataType) -> pl.Expr:
    """``expr`` (Date or Datetime of any unit) as Datetime in nanoseconds, time zone kept."""
    if raw == pl.Date:
        return expr.cast(pl.Datetime("ns"))
    return expr.dt.cast_time_unit("ns")


def zoned_timestamp(expr: pl.Expr, raw: pl.DataType, time_zone: str | None) -> pl.Expr:
    """:func:`cast_timestamp`, a Date taking the prices' ``time_zone`` (its midnight there)."""
    stamp = cast_timestamp(expr, raw)
    if raw == pl.Date and time_zone:
        stamp = stamp.dt.replace_time_zone(time_zone)
    return stamp


def raw_literal(ns: int, raw: pl.DataType, *, round_up: bool) -> pl.Expr:
    """A literal of the column's own dtype for the instant ``ns``, so filters on the raw
    column are pushed into a Parquet scan. ``round_up`` picks the first raw value >= ``ns``."""
    if raw == pl.Date:
        unit = 86_400 * 10**9
    else:
        assert isinstance(raw, pl.Datetime)
        unit = {"ns": 1, "us": 1_000, "ms": 1_000_000}[raw.time_unit or "us"]
    value = -(-ns // unit) if round_up else ns // unit
    if raw == pl.Date:
        return pl.lit(value, dtype=pl.Int32).cast(pl.Date)
    return pl.lit(value, dtype=pl.Int64).cast(raw)


def ns_literal(ns: int, time_zone: str | None) -> pl.Expr:
    """A ``Datetime("ns", tz)`` literal for the instant ``ns``."""
    return pl.lit(ns, dtype=pl.Int64).cast(pl.Datetime("ns", time_zone))


@dataclass(frozen=True)
class JoinSpec:
    """One frame to join point in time; built (and checked) by the feed."""

    name: str
    lazy: pl.LazyFrame
    timestamp: str
    raw_ts: pl.DataType
    asset: str | None
    available: str | None
    raw_available: pl.DataType | None
    values: tuple[str, ...]
    time_zone: str | None
    assets: tuple[str, ...]
    timing: Timing = "strict"
    lag_duration: str | None = None
    lag_bars: int = 0
    hold: bool = False
    drop_duplicates: bool = False

    def _effective(self) -> pl.Expr:
        eff = cast_timestamp(pl.col(self.timestamp), self.raw_ts)
        if self.timing == "shift" and self.available and self.raw_available is not None:
            avail = cast_timestamp(pl.col(self.available), self.raw_available)
            eff = pl.max_horizontal(eff, avail.fill_null(eff))
        if self.lag_duration:
            eff = eff.dt.offset_by(self.lag_duration)
        return eff

    def check_timing(self, collector: Collector) -> None:
        """Null keys and, under strict timing, rows attached before they are available."""
        ts = pl.col(self.timestamp)
        columns = [ts.null_count().alias("ts")]
        late = pl.lit(False)
        if self.available and self.raw_available is not None:
            avail = cast_timestamp(pl.col(self.available), self.raw_available)
            late = (avail > cast_timestamp(ts, self.raw_ts)).fill_null(False)
            columns += [
                pl.col(self.available).null_count().alias("avail"),
                late.sum().alias("late"),
            ]
        counts = self.lazy.select(columns).collect().row(0, named=True)
        for key, column in (("ts", self.timestamp), ("avail", self.available)):
            if counts.get(key):
                collector.error(
                    Finding(
                        "null",
                        f"{self.name}.{column}",
                        "null values are not allowed",
                        int(counts[key]),
                        self._first_rows(pl.col(str(column)).is_null()),
                    )
                )
        if counts.get("late") and self.timing == "strict":
            collector.error(
                Finding(
                    "signal_timing",
                    f"{self.name}.{self.available}",
                    f"rows are attached to a timestamp before they are available ({self.available}"
                    " > timestamp), which would use them before they exist; fix the data or pass "
                    "signal_timing='shift' to use each row from its availability on",
                    int(counts["late"]),
                    self._first_rows(late),
                    error=SignalTimingError,
                )
            )

    def _first_rows(self, mask: pl.Expr) -> tuple[str, ...]:
        cols = [self.timestamp] + ([self.asset] if self.asset else [])
        cols += [self.available] if self.available else []
        rows = self.lazy.filter(mask).select(cols).head(MAX_KEYS).collect().rows()
        return tuple("(" + ", ".join(str(v) for v in row) + ")" for row in rows)

    def window(self, lo: int | None, hi: int | None) -> pl.LazyFrame:
        """Rows whose effective time lies in ``[lo, hi)`` (ns; ``None`` = unbounded)."""
        q = self.lazy
        # effective >= timestamp, so "effective < hi" implies "timestamp < hi": pushed down.
        if hi is not None:
            q = q.filter(pl.col(self.timestamp) < raw_literal(hi, self.raw_ts, round_up=True))
        if lo is not None and self.timing == "strict" and not self.lag_duration:
            q = q.filter(pl.col(self.timestamp) >= raw_literal(lo, self.raw_ts, round_up=True))
        q = q.filter(pl.col(self.timestamp).is_not_null())
        columns = [
            self._effective().alias(_EFF),
            cast_timestamp(pl.col(self.timestamp), self.raw_ts).alias(_ORIG),
        ]
        if self.asset:
            columns.append(
                pl.col(self.asset)
                .cast(pl.String)
                .cast(pl.Enum(list(self.assets)), strict=False)
                .to_physical()
                .cast(pl.UInt32)
                .alias(CODE)
            )
        columns += [pl.col(c).cast(pl.Float64) for c in self.values]
        q = q.select(columns)
        if lo is not None:
            q = q.filter(pl.col(_EFF) >= ns_literal(lo, self.time_zone))
        if hi is not None:
            q = q.filter(pl.col(_EFF) < ns_literal(hi, self.time_zone))
        if self.asset:
            q = q.filter(pl.col(CODE).is_not_null())  # assets not traded never match
        return q


class AsofJoin:
    """The state of one join during one pass over the data (the carried last rows)."""

    def __init__(self, spec: JoinSpec) -> None:
        self.spec = spec
        self.carry: pl.DataFrame | None = None
        self.previous_bar = LastRows(1)
        self.lag = LastRows(spec.lag_bars) if spec.lag_bars else None

    def apply(
        self,
        frame: pl.DataFrame,
        lo: int | None,
        hi: int | None,
        timestamp: str,
        collector: Collector,
    ) -> pl.DataFrame:
        """``frame`` (sorted bars of one chunk) with the joined value columns added."""
        spec = self.spec
        keys = [_EFF, CODE] if spec.asset else [_EFF]
        window = spec.window(lo, hi).collect().sort(_EFF, _ORIG, maintain_order=True)
        window = self._resolve_duplicates(window, keys, collector)
        right = window.drop(_ORIG)
        if self.carry is not None:
            right = pl.concat([self.carry, right])
        if spec.asset:
            self.carry = right.unique(subset=[CODE], keep="last", maintain_order=True)
        else:
            self.carry = right.tail(1)
        joined = frame.join_asof(
            right.with_columns(pl.col(_EFF).alias(_MATCHED)),
            left_on=timestamp,
            right_on=_EFF,
            by=CODE if spec.asset else None,
            strategy="backward",
            check_sortedness=False,
        )
        joined = joined.drop([c for c in (_EFF,) if c in joined.columns])
        if not spec.hold:
            # A row belongs to the first bar of the asset at or after its effective time: a bar
            # whose matched row was already effective at the asset's previous bar gets nothing.
            previous = pl.col(timestamp).shift(1).over(CODE)
            stale = (pl.col(_MATCHED) <= previous).fill_null(False)
            clear = [pl.when(stale).then(None).otherwise(pl.col(c)).alias(c) for c in spec.values]
            joined = self.previous_bar.over_assets(joined, clear)
        joined = joined.drop(_MATCHED)
        if self.lag is not None:
            shift = [pl.col(c).shift(spec.lag_bars).over(CODE) for c in spec.values]
            joined = self.lag.over_assets(joined, shift, carry_input=True)
        return joined

    def _resolve_duplicates(
        self, window: pl.DataFrame, keys: list[str], collector: Collector
    ) -> pl.DataFrame:
        """True duplicates (same key, same source timestamp) break the ``duplicate`` rule, or
        are dropped under ``duplicates="drop"``. Under shift timing, rows of different
        timestamps that become available at the same time are resolved: the newest wins."""
        spec = self.spec
        exact = [*keys, _ORIG] if spec.timing == "shift" else keys
        dup = window.select(pl.struct(exact).is_duplicated()).to_series()
        if dup.any():
            column = f"{spec.name}.{spec.asset or spec.timestamp}"
            if spec.drop_duplicates:
                before = window.height
                window = window.unique(subset=exact, keep="last", maintain_order=True)
                collector.cleaned(
                    "duplicate", column, "dropped (kept the last)", before - window.height
                )
            else:
                bad = window.filter(dup)
                shown = bad.select([_ORIG, CODE] if spec.asset else [_ORIG])
                names = list(spec.assets)
                keys_text = tuple(
                    f"({row[0]}, {names[row[1]]})" if spec.asset else f"({row[0]})"
                    for row in shown.unique(maintain_order=True).head(MAX_KEYS).rows()
                )
                what = "(timestamp, asset) keys" if spec.asset else "timestamps"
                collector.error(
                    Finding(
                        "duplicate",
                        column,
                        f"duplicate {what} are not allowed",
                        bad.height,
                        keys_text,
                    )
                )
                window = window.unique(subset=exact, keep="last", maintain_order=True)
        if spec.timing == "shift":
            window = window.unique(subset=keys, keep="last", maintain_order=True)
        return window
