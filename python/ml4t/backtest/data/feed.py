"""``PolarsDataFeed``: reads bars (and separate signal, indicator and context frames), checks
every row, joins the separate frames point in time and normalises everything to the engine's
schema, which the Rust core reads through the Arrow PyCapsule interface without a copy.

Inputs: a DataFrame, a LazyFrame, a Parquet (or CSV) file, a glob, or a (hive-partitioned)
directory such as one written by :func:`~ml4t.backtest.data.write_dataset`.

In memory (the default) the feed builds one normalised frame. With ``chunk_by`` (a period such
as ``"1mo"``) or ``chunk_rows`` (a row budget) it **streams**: the source stays lazy and the
engine receives one time-ordered chunk at a time (a timestamp is never split), so only about one
chunk is in memory. Both give identical results.

Normalised schema (one row per timestamp and asset, sorted by both):
``ts`` Int64 nanoseconds, ``asset_id`` UInt32 (index into :attr:`PolarsDataFeed.assets`),
``open high low close volume`` Float64, then one Float64 column per feature (signal). The
codes and the nanoseconds are read back through the feed's :attr:`PolarsDataFeed.universe`.
:func:`validate` runs the same checks and returns every finding instead of raising.

Example:
    >>> import polars as pl
    >>> from datetime import datetime
    >>> df = pl.DataFrame({
    ...     "timestamp": [datetime(2024, 1, 2), datetime(2024, 1, 2)],
    ...     "asset": ["B", "A"], "open": [10.0, 20.0], "high": [11.0, 21.0],
    ...     "low": [9.0, 19.0], "close": [10.5, 20.5], "volume": [100.0, 200.0],
    ...     "score": [0.1, -0.2]})
    >>> feed = PolarsDataFeed(df)
    >>> feed.assets, feed.signal_columns
    (['A', 'B'], ['score'])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from ml4t.backtest import ledger_store
from ml4t.backtest._core import CheckedData
from ml4t.backtest._models import timedelta_text
from ml4t.backtest.config import DataConfig, ValidationConfig
from ml4t.backtest.data.actions import read_actions
from ml4t.backtest.data.chunks import timestamp_pages
from ml4t.backtest.data.features import FeatureProvider
from ml4t.backtest.data.fx import check_coverage, read_fx
from ml4t.backtest.data.instruments import quote_currencies, read_instruments
from ml4t.backtest.data.joins import AsofJoin, JoinSpec, cast_timestamp, raw_literal
from ml4t.backtest.data.membership import read_universe
from ml4t.backtest.data.sources import find_timestamp_column, read_schema, scan, wide_to_long
from ml4t.backtest.data.storage import DATASET_MARKER
from ml4t.backtest.data.validation import (
    CODE,
    PRICE_COLUMNS,
    CleaningAction,
    Collector,
    DataCleaningWarning,
    Finding,
    FrameSpec,
    LastRows,
    ValidationReport,
    _Stop,
    all_clear,
    check_bars,
    check_features,
    check_null_keys,
    check_reserved_names,
    check_timestamp_range,
    clean_bars,
    clean_features,
    dedupe,
    fatal,
    order_rows,
    tz_text,
)
from ml4t.backtest.errors import (
    ConfigError,
    DataValidationError,
    HoldOutError,
    HoldOutWarning,
    panics_as_bugs,
    warn_user,
)
from ml4t.backtest.universe import Universe

DEFAULT_TIMESTAMP = "timestamp"
"""The timestamp column's default name; when absent, a column named timestamp, date, datetime
or time (any case) is used if it is the only one."""

ASSET_COLUMN_CANDIDATES = ("asset", "symbol", "ticker")
AVAILABLE_COLUMN = "available_at"
_POLICY_OF = {
    "duplicate": "duplicates",
    "missing": "missing",
    "positive_price": "prices",
    "non_negative_volume": "volume",
    "ohlc": "ohlc",
    "missing_signals": "missing_signals",
}
"""The :class:`ValidationConfig` field whose policy made each cleaning rule's changes."""
DEFAULT_CHUNK_ROWS = 2_000_000

Source = pl.DataFrame | pl.LazyFrame | str | Path
"""What the feed reads: a frame, a lazy frame, or a path (file, glob or directory)."""

TimeLike = datetime | date | str


@dataclass
class _Pass:
    """State carried from chunk to chunk during one pass over the data."""

    joins: list[AsofJoin]
    bars: LastRows = field(default_factory=LastRows)
    features: LastRows = field(default_factory=LastRows)


@dataclass(frozen=True)
class HoldOut:
    """A feed's locked hold-out (see :meth:`PolarsDataFeed.hold_out`)."""

    start: datetime
    """The first hidden instant, in the data's time zone (naive for naive data)."""
    start_ns: int
    """The same in engine nanoseconds: rows with ``ts >= start_ns`` are hidden."""
    rows: int
    """How many bars are hidden."""
    visible_checksum: str
    """The checksum of the data a study sees while it is locked (the ledger's key)."""
    ledger: Path
    """The ledger its events are recorded in."""
    unlocked_at: datetime | None = None
    """When :meth:`PolarsDataFeed.unlock_hold_out` was called (UTC), ``None`` while locked."""

    @property
    def locked(self) -> bool:
        """True until the hold-out is unlocked."""
        return self.unlocked_at is None


@dataclass(frozen=True)
class _Held:
    """The rows a locked hold-out hides, kept on the feed only (never pickled)."""

    frame: pl.DataFrame | None
    prices: pl.LazyFrame
    actions: pl.DataFrame | None


def _time_zone(dtype: pl.DataType) -> str | None:
    return dtype.time_zone if isinstance(dtype, pl.Datetime) else None


def _duration(value: int | str | timedelta | None) -> int | str | None:
    return timedelta_text(value) if isinstance(value, timedelta) else value


class ChunkStream:
    """One run's pass over a streaming feed: an iterator of normalised chunks that remembers
    the chunk it last handed out (:attr:`current`, the frame the engine's row indexes refer
    to) and how many it has handed out (:attr:`serial`). Each run gets its own."""

    def __init__(self, chunks: Iterator[pl.DataFrame]) -> None:
        self._chunks = chunks
        self.serial = 0
        """Increases each time a new chunk is handed out."""
        self.current: pl.DataFrame | None = None
        """The chunk handed out last (``None`` before the first and after the last)."""

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> pl.DataFrame:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.current = None
            raise
        self.serial += 1
        self.current = chunk
        return chunk


class PolarsDataFeed:
    """Bars and features for a backtest, validated, joined point in time and normalised.

    Args:
        prices: bars in long format: a timestamp column, an asset column (``asset``, ``symbol``
            or ``ticker``, or ``asset_column``), ``open high low close volume`` and any numeric
            feature columns. A DataFrame, LazyFrame, Parquet/CSV file, glob or directory.
        signals: optional frame per (timestamp, asset), e.g. model predictions; its numeric
            columns are joined point in time (the last row at or before each bar).
        indicators: like ``signals`` (per timestamp and asset); ``lag`` does not apply.
        context: optional frame per timestamp (market-wide, no asset column), joined the same
            way onto every asset's bar.
        actions: optional corporate actions, one row per (ex-date, asset) with
            ``split_ratio`` (new shares per old share) and/or ``dividend`` (cash per share);
            any input the feed reads. Checked row by row and handed to the engine as a table
            (:attr:`actions`), not as features (see :mod:`~ml4t.backtest.data.actions`).
        universe: optional point-in-time universe (index membership as it was), one row per
            (timestamp, asset) with a Boolean ``member``: an asset's membership at ``t`` is its
            latest row at or before ``t``, and before its first row it is not a member. Checked
            row by row and handed to the engine as a change list (:attr:`membership`; see
            :mod:`~ml4t.backtest.data.membership`).
        instruments: optional instrument specs (futures, FX, crypto perpetuals): a frame with
            an ``asset`` column or a dict ``{asset: {field: value}}``; assets not named are
            shares (see :mod:`~ml4t.backtest.data.instruments`).
        fx: optional FX rates, one row per (timestamp, ``currency``) with ``rate``: units of
            the account's base currency per unit of ``currency``; the rate in force at a bar
            is the last row at or before it (see :mod:`~ml4t.backtest.data.fx`). Needed for
            every instrument ``currency`` other than the base.
        timestamp_column: name of the time column (in every frame).
        asset_column: name of the asset column; found automatically when ``None``.
        rename: source column name -> name the feed expects, applied to ``prices``.
        start, end: keep bars with ``start <= timestamp <= end`` (pushed into a Parquet scan):
            datetimes, dates or ISO text; a date as ``end`` keeps that whole day; a naive value
            is read in the data's time zone.
        available_column: column of the joined frames holding when a row became known
            (default ``available_at`` when present).
        signal_timing: ``"strict"``: a row available after its timestamp raises
            :class:`~ml4t.backtest.errors.SignalTimingError`; ``"shift"``: it is used from its
            availability on.
        lag: delay before a signal may be used: bars (int, per asset) or a duration
            (``"15m"`` or a ``timedelta``). Applies to ``signals`` only.
        hold: joined frames (``"signals"``, ``"indicators"``, ``"context"``) whose last
            value is kept on later bars until a newer row; otherwise a row is attached to the
            first bar at or after its effective time only, and bars without a row have no value
            (see ``validation.missing_signals``).
        chunk_by: stream in chunks of this period (``"1mo"``, ``"1w"``, ``"1d"``...).
        chunk_rows: stream in chunks of about this many rows (whole timestamps).
        validation: a :class:`~ml4t.backtest.config.ValidationConfig` (or dict): sort or
            raise, and which cleaning to apply. Default: sort, raise on anything else.

    Raises:
        DataValidationError: a rule is broken; the message names the column, the rule, the
            number of rows and the first offending (timestamp, asset) keys. A streaming feed
            checks each chunk as it reads it (and its schema and join timing at once).
        SignalTimingError: a joined row would be used before it is available.
        ConfigError: an option has a bad value (e.g. ``data.chunk_rows: ...``).
    """

    universe: Universe
    """The asset names (codes are their positions) and the time zone: how the engine's asset
    codes and nanoseconds read back as names and datetimes."""

    _frame: pl.DataFrame | None

    def __init__(
        self,
        prices: Source,
        signals: Source | None = None,
        *,
        indicators: Source | None = None,
        context: Source | None = None,
        actions: Source | None = None,
        universe: Source | None = None,
        instruments: Any = None,
        fx: Source | None = None,
        timestamp_column: str = "timestamp",
        asset_column: str | None = None,
        rename: Mapping[str, str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        available_column: str | None = None,
        signal_timing: Literal["strict", "shift"] = "strict",
        lag: int | str | timedelta | None = None,
        hold: Collection[str] = (),
        chunk_by: str | None = None,
        chunk_rows: int | None = None,
        validation: ValidationConfig | Mapping[str, Any] | None = None,
    ) -> None:
        with panics_as_bugs("PolarsDataFeed"):
            collector = Collector(raise_errors=True)
            self._setup(
                collector,
                prices,
                signals,
                indicators=indicators,
                context=context,
                actions=actions,
                universe=universe,
                timestamp_column=timestamp_column,
                asset_column=asset_column,
                rename=rename,
                start=start,
                end=end,
                available_column=available_column,
                signal_timing=signal_timing,
                lag=lag,
                hold=hold,
                chunk_by=chunk_by,
                chunk_rows=chunk_rows,
                validation=validation,
            )
            self._instruments: list[dict[str, Any] | None] | None = None
            if instruments is not None:
                self._instruments = read_instruments(instruments, self.universe)
            self._fx: pl.DataFrame | None = None
            if fx is not None:
                self._fx = read_fx(fx, universe=self.universe, timestamp=timestamp_column)
            if not self.streaming:
                self._frame = self._build(collector)
                self._finish(collector)
                if self._fx is not None:
                    first = self._frame.group_by("asset_id").agg(pl.col("ts").min())
                    check_coverage(self._fx, self.currencies, first, self.universe)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_wide(
        cls,
        close: Any,
        *,
        open: Any = None,
        high: Any = None,
        low: Any = None,
        volume: Any = None,
        features: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> PolarsDataFeed:
        """A feed from wide frames, one per field, as vectorbt holds them: rows are
        timestamps (a pandas ``DatetimeIndex`` or one timestamp column), columns are assets.

        ``open``, ``high`` and ``low`` default to the close (a close-only frame trades at its
        closes); ``volume`` defaults to 0 (no volume information, so volume caps and volume
        slippage see none). ``features`` maps a feature name to its wide frame (e.g. a model's
        scores). A null or NaN close is no bar of that asset at that timestamp. Every other
        option is the constructor's.

        Example:
            >>> import polars as pl
            >>> from datetime import date
            >>> close = pl.DataFrame({"date": [date(2024, 1, 2), date(2024, 1, 3)],
            ...                       "SPY": [470.0, 468.5], "QQQ": [405.0, None]})
            >>> feed = PolarsDataFeed.from_wide(close, features={"score": close})
            >>> feed.assets, feed.n_rows
            (['QQQ', 'SPY'], 3)
        """
        collector = Collector(raise_errors=True)
        fields: dict[str, Any] = {"close": close}
        given = {"open": open, "high": high, "low": low, "volume": volume}
        fields.update({name: frame for name, frame in given.items() if frame is not None})
        for name, frame in (features or {}).items():
            if name in (*PRICE_COLUMNS, "timestamp", "asset"):
                fatal(collector, "column_clash", f"features.{name}", "a price field's name")
            fields[name] = frame
        with panics_as_bugs("PolarsDataFeed.from_wide"):
            long = wide_to_long(fields, "wide", collector)
        defaults = [pl.col("close").alias(f) for f in ("open", "high", "low") if f not in fields]
        if "volume" not in fields:
            defaults.append(pl.lit(0.0).alias("volume"))
        long = long.with_columns(defaults)
        order = ["timestamp", "asset", *PRICE_COLUMNS]
        long = long.select(*order, *[c for c in long.columns if c not in order])
        return cls(long, **options)

    @classmethod
    def scan(cls, source: Source, signals: Source | None = None, **options: Any) -> PolarsDataFeed:
        """A streaming feed over ``source`` (a lazy frame or a path); chunks of
        ``DEFAULT_CHUNK_ROWS`` rows unless ``chunk_by`` or ``chunk_rows`` is given. Takes the
        same options as the constructor."""
        if options.get("chunk_by") is None and options.get("chunk_rows") is None:
            options["chunk_rows"] = DEFAULT_CHUNK_ROWS
        return cls(source, signals, **options)

    @classmethod
    def from_config(cls, config: DataConfig, base_dir: str | Path | None = None) -> PolarsDataFeed:
        """The feed a :class:`~ml4t.backtest.config.DataConfig` describes; relative paths are
        resolved against ``base_dir``."""
        prices, options = cls.config_options(config, base_dir)
        return cls(prices, **options)

    @staticmethod
    def config_options(
        config: DataConfig, base_dir: str | Path | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The prices path and the constructor's keyword arguments for ``config``."""
        if config.prices is None:
            raise ConfigError("data.prices: a path to the bars is required")

        def resolve(path: str | None) -> str | None:
            if path is None or base_dir is None or Path(path).is_absolute():
                return path
            return str(Path(base_dir) / path)

        options: dict[str, Any] = {
            "signals": resolve(config.signals),
            "indicators": resolve(config.indicators),
            "context": resolve(config.context),
            "actions": resolve(config.actions),
            "universe": resolve(config.universe),
            "instruments": (
                resolve(config.instruments)
                if isinstance(config.instruments, str)
                else config.instruments
            ),
            "fx": resolve(config.fx),
            "timestamp_column": config.timestamp_column,
            "asset_column": config.asset_column,
            "rename": config.rename,
            "start": config.start,
            "end": config.end,
            "available_column": config.available_column,
            "signal_timing": config.signal_timing,
            "lag": config.lag,
            "hold": config.hold,
            "chunk_by": config.chunk_by,
            "chunk_rows": config.chunk_rows,
            "validation": config.validation,
        }
        return str(resolve(config.prices)), options

    @classmethod
    def _report_for(cls, prices: Source, **options: Any) -> ValidationReport:
        """Runs every check on ``prices`` (and the other options) and collects the findings."""
        collector = Collector(raise_errors=False)
        feed = cls.__new__(cls)
        instruments = options.pop("instruments", None)
        fx = options.pop("fx", None)
        try:
            feed._setup(collector, prices, options.pop("signals", None), **options)
            if instruments is not None:  # a bad spec is a ConfigError, not a finding
                read_instruments(instruments, feed.universe)
            if fx is not None:  # the fx frame raises its own errors
                read_fx(
                    fx,
                    universe=feed.universe,
                    timestamp=options.get("timestamp_column", "timestamp"),
                )
            if feed.streaming:
                for _ in feed._stream(collector):
                    pass
            else:
                feed._build(collector)
        except _Stop:
            pass
        return collector.report()

    def _setup(
        self,
        collector: Collector,
        prices: Source,
        signals: Source | None,
        *,
        indicators: Source | None = None,
        context: Source | None = None,
        actions: Source | None = None,
        universe: Source | None = None,
        timestamp_column: str = "timestamp",
        asset_column: str | None = None,
        rename: Mapping[str, str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        available_column: str | None = None,
        signal_timing: Literal["strict", "shift"] = "strict",
        lag: int | str | timedelta | None = None,
        hold: Collection[str] = (),
        chunk_by: str | None = None,
        chunk_rows: int | None = None,
        validation: ValidationConfig | Mapping[str, Any] | None = None,
    ) -> None:
        # Validated as the data section of a config, so a bad option reads "data.chunk_rows: ...".
        options = DataConfig.validated(
            {
                "timestamp_column": timestamp_column,
                "asset_column": asset_column,
                "rename": dict(rename or {}),
                "available_column": available_column,
                "signal_timing": signal_timing,
                "lag": _duration(lag),
                "hold": list(hold),
                "chunk_by": chunk_by,
                "chunk_rows": chunk_rows,
                "validation": validation if validation is not None else {},
            },
            prefix="data",
        )
        self.policy: ValidationConfig = options.validation
        self.chunk_by = options.chunk_by
        self.chunk_rows = options.chunk_rows
        self.cleaning: list[CleaningAction] = []
        self._frame = None
        self._raw: pl.DataFrame | None = None
        self._collector: Collector | None = None
        self._hold_out: HoldOut | None = None
        self._held: _Held | None = None
        self._view: PolarsDataFeed | None = None
        t = self.timestamp_column = options.timestamp_column

        lazy, hive_keys, root = scan(prices, "prices", collector)
        if options.rename:
            have = read_schema(lazy, "prices", collector)
            unknown = [k for k in options.rename if k not in have]
            if unknown:
                fatal(collector, "missing_column", unknown[0], "rename: no such column")
            lazy = lazy.rename(options.rename)
        schema = read_schema(lazy, "prices", collector)
        if t not in schema and t == DEFAULT_TIMESTAMP:
            t = self.timestamp_column = find_timestamp_column(schema, "prices", collector) or t
        self.asset_column = options.asset_column or self._find_asset_column(schema, collector)
        a = self.asset_column
        missing = [c for c in (t, a, *PRICE_COLUMNS) if c not in schema]
        if missing:
            fatal(
                collector,
                "missing_column",
                missing[0],
                f"required column is missing (missing {missing}, have {list(schema)})",
            )
        self._raw_ts: pl.DataType = schema[t]
        if not (self._raw_ts == pl.Date or isinstance(self._raw_ts, pl.Datetime)):
            fatal(collector, "dtype", t, f"dtype must be Datetime or Date, got {self._raw_ts}")
        if not isinstance(schema[a], (pl.String, pl.Categorical, pl.Enum)):
            detail = f"dtype must be String, Categorical or Enum, got {schema[a]}"
            fatal(collector, "dtype", a, detail)
        for name in PRICE_COLUMNS:
            if not schema[name].is_numeric():
                fatal(collector, "dtype", name, f"dtype must be numeric, got {schema[name]}")
        # The time zone is known here; the assets once the bars are read (below).
        self.universe = Universe([], _time_zone(self._raw_ts))

        # Hive partition keys are for pruning, not features (unless they are required columns).
        partition_only = [k for k in hive_keys if k not in (t, a, *PRICE_COLUMNS)]
        lazy = self._time_filter(lazy, root, partition_only, start, end, collector)
        if partition_only:
            lazy = lazy.drop(partition_only)
            schema = read_schema(lazy, "prices", collector)
        own = [c for c in schema if c not in (t, a, *PRICE_COLUMNS)]
        check_reserved_names(own, "", collector)
        wrong = [c for c in own if not schema[c].is_numeric()]
        if wrong:
            fatal(
                collector,
                "dtype",
                wrong[0],
                f"signal columns must be numeric (columns {wrong}, dtypes "
                f"{[str(schema[c]) for c in wrong]}); drop or cast them",
            )
        self._prices = lazy.select(t, a, *PRICE_COLUMNS, *own)
        self._own_features = own
        check_timestamp_range(self._prices, t, self._raw_ts, t, collector)

        # The asset universe: every asset with a bar, in sorted order (codes = positions).
        if self.streaming:
            self._check_null_timestamps(collector)
            names = (
                self._prices.select(pl.col(a).drop_nulls().cast(pl.String).unique())
                .collect()
                .to_series()
            )
        else:
            self._raw = self._prices.collect()
            names = _asset_names(self._raw.get_column(a))
        self.universe = replace(self.universe, assets=sorted(names.to_list()))
        if not self.assets and self._is_empty():
            window = " between start and end" if start is not None or end is not None else ""
            fatal(collector, "empty", "prices", f"the data has no rows{window}")

        joins: list[JoinSpec] = []
        taken = {t, a, *PRICE_COLUMNS, *own}
        avail = options.available_column or AVAILABLE_COLUMN
        lag_value = options.lag
        if lag_value is not None and signals is None:
            raise ConfigError("data.lag: applies to the signals frame, and none was given")
        for name, frame in (("signals", signals), ("indicators", indicators), ("context", context)):
            if frame is None:
                continue
            spec = self._join_spec(
                name,
                frame,
                avail,
                explicit=options.available_column is not None and name == "signals",
                timing=options.signal_timing,
                lag=lag_value if name == "signals" else None,
                hold=name in options.hold,
                taken=taken,
                collector=collector,
            )
            taken.update(spec.values)
            joins.append(spec)
        self._joins = joins
        self.signal_columns: list[str] = own + [c for j in joins for c in j.values]
        self._actions: pl.DataFrame | None = None
        self._delisting_returns: list[float | None] | None = None
        if actions is not None:
            self._actions, self._delisting_returns = read_actions(
                actions,
                timestamp=t,
                asset_candidates=(a, *ASSET_COLUMN_CANDIDATES),
                universe=self.universe,
                collector=collector,
            )
        self._membership: pl.DataFrame | None = None
        if universe is not None:
            self._membership = read_universe(
                universe,
                timestamp=t,
                asset_candidates=(a, *ASSET_COLUMN_CANDIDATES),
                universe=self.universe,
                collector=collector,
            )
        self._spec = FrameSpec(t, a, tuple(self.signal_columns))

    def _is_empty(self) -> bool:
        if self._raw is not None:
            return self._raw.height == 0
        return int(self._prices.select(pl.len()).collect().item()) == 0

    def _find_asset_column(self, schema: pl.Schema, collector: Collector) -> str:
        for name in ASSET_COLUMN_CANDIDATES:
            if name in schema:
                return name
        fatal(
            collector,
            "missing_column",
            "asset",
            f"required column is missing: expected one of {list(ASSET_COLUMN_CANDIDATES)} (or "
            f"pass asset_column=...), have {list(schema)}",
        )

    def _instant(self, value: TimeLike, name: str, collector: Collector) -> int:
        """``value`` as engine nanoseconds (a naive value is wall-clock in the data's zone)."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        try:
            return self.universe.wall_clock_ns(value)
        except ValueError:
            fatal(
                collector,
                "timezone",
                name,
                f"a tz-aware {name} ({value}) for naive timestamps; use one kind throughout",
            )

    def _time_filter(
        self,
        lazy: pl.LazyFrame,
        root: Path,
        partitions: list[str],
        start: TimeLike | None,
        end: TimeLike | None,
        collector: Collector,
    ) -> pl.LazyFrame:
        """Keeps ``start <= timestamp <= end``; the filters compare the raw column with literals
        of its own dtype so that Polars pushes them into a Parquet scan (row groups and files
        outside the range are skipped), plus year/month partition pruning for a dataset
        written by ``write_dataset``."""
        t, raw = self.timestamp_column, self._raw_ts
        derived: list[str] = []
        marker = root / DATASET_MARKER
        if partitions and marker.is_file():
            written = json.loads(marker.read_text()).get("derived", [])
            derived = [k for k in written if k in partitions]
        for bound, name in ((start, "start"), (end, "end")):
            if bound is None:
                continue
            if isinstance(bound, str):
                text = bound
                bound = (
                    date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
                )
            ns = self._instant(bound, name, collector)
            if name == "start":
                lazy = lazy.filter(pl.col(t) >= raw_literal(ns, raw, round_up=True))
            elif isinstance(bound, datetime):
                lazy = lazy.filter(pl.col(t) <= raw_literal(ns, raw, round_up=False))
            else:  # a date: the whole day
                day_after = self._instant(bound + timedelta(days=1), name, collector)
                lazy = lazy.filter(pl.col(t) < raw_literal(day_after, raw, round_up=True))
            if "year" in derived:
                local = self.to_datetime(ns)
                period, value = pl.col("year").cast(pl.Int64) * 12, local.year * 12
                if "month" in derived:
                    period, value = period + pl.col("month").cast(pl.Int64), value + local.month
                lazy = lazy.filter(period >= value if name == "start" else period <= value)
        return lazy

    def _check_null_timestamps(self, collector: Collector) -> None:
        """Streaming: chunks are read by time range, which skips null timestamps; count them
        once up front."""
        t = self.timestamp_column
        nulls = int(self._prices.select(pl.col(t).null_count()).collect().item())
        if nulls:
            rows = (
                self._prices.select(pl.col(t))
                .with_row_index("row")
                .filter(pl.col(t).is_null())
                .select("row")
                .head(5)
                .collect()
                .to_series()
                .to_list()
            )
            collector.error(
                Finding(
                    "null",
                    t,
                    "null values are not allowed",
                    nulls,
                    tuple(f"[{r}]" for r in rows),
                    key_kind="rows",
                )
            )

    def _join_spec(
        self,
        name: str,
        frame: Source,
        avail: str,
        *,
        explicit: bool,
        timing: Literal["strict", "shift"],
        lag: int | str | None,
        hold: bool,
        taken: set[str],
        collector: Collector,
    ) -> JoinSpec:
        t, a = self.timestamp_column, self.asset_column
        lazy, _, _ = scan(frame, name, collector)
        schema = read_schema(lazy, name, collector)
        if t not in schema:
            # The frame may name its timestamp differently from the prices (date vs Date).
            other = find_timestamp_column(schema, name, collector)
            if other is None:
                fatal(collector, "missing_column", f"{name}.{t}", "required key column is missing")
            lazy = lazy.rename({other: t})
            schema = read_schema(lazy, name, collector)
        asset: str | None = None
        if name != "context":
            found = [c for c in (a, *ASSET_COLUMN_CANDIDATES) if c in schema]
            if not found:
                fatal(collector, "missing_column", f"{name}.{a}", "required key column is missing")
            asset = found[0]
        available = avail if avail in schema else None
        if explicit and available is None:
            fatal(collector, "missing_column", f"{name}.{avail}", "availability column is missing")
        for column in (t, available):
            if column is None:
                continue
            dtype = schema[column]
            if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
                fatal(
                    collector,
                    "dtype",
                    f"{name}.{column}",
                    f"dtype must be Datetime or Date, got {dtype}",
                )
            check_timestamp_range(lazy, column, dtype, f"{name}.{column}", collector)
            if _time_zone(dtype) != self.time_zone:
                fatal(
                    collector,
                    "timezone",
                    f"{name}.{column}",
                    f"timestamps are {tz_text(_time_zone(dtype))} but prices.{t} are "
                    f"{tz_text(self.time_zone)}; use one time zone throughout "
                    "(dt.replace_time_zone / dt.convert_time_zone)",
                )
        keys = {t, asset, available}
        values = [c for c in schema if c not in keys]
        check_reserved_names(values, f"{name}.", collector)
        clash = [c for c in values if c in taken]
        if clash:
            fatal(
                collector,
                "column_clash",
                f"{name}.{clash[0]}",
                "column also exists in prices or another joined frame; rename it",
            )
        wrong = [c for c in values if not schema[c].is_numeric()]
        if wrong:
            fatal(
                collector,
                "dtype",
                f"{name}.{wrong[0]}",
                f"joined columns must be numeric, got {schema[wrong[0]]}",
            )
        spec = JoinSpec(
            name=name,
            lazy=lazy,
            timestamp=t,
            raw_ts=schema[t],
            asset=asset,
            available=available,
            raw_available=schema[available] if available else None,
            values=tuple(values),
            time_zone=self.time_zone,
            assets=tuple(self.assets),
            timing=timing,
            lag_duration=lag if isinstance(lag, str) else None,
            lag_bars=lag if isinstance(lag, int) else 0,
            hold=hold,
            drop_duplicates=self.policy.duplicates == "drop",
        )
        spec.check_timing(collector)
        return spec

    # ------------------------------------------------------------------ the pipeline

    def _process(
        self,
        raw: pl.DataFrame,
        lo: int | None,
        hi: int | None,
        state: _Pass,
        collector: Collector,
    ) -> pl.DataFrame:
        """One chunk of raw bars -> the normalised engine frame (all checks included)."""
        spec, policy = self._spec, self.policy
        t, a = spec.timestamp, spec.asset
        collector.rows += raw.height
        collector.chunks += 1
        frame = check_null_keys(raw, spec, collector)
        # The asset codes (positions in the sorted universe); with one asset (the null keys
        # are gone) every row's code is 0, without casting each name.
        code = (
            pl.lit(0, dtype=pl.UInt32)
            if len(self.assets) == 1
            else pl.col(a).cast(pl.String).cast(self.universe.asset_dtype).to_physical()
        )
        frame = frame.select(
            cast_timestamp(pl.col(t), self._raw_ts),
            pl.col(a),
            code.cast(pl.UInt32).alias(CODE),
            *[pl.col(c).cast(pl.Float64) for c in PRICE_COLUMNS],
            *[pl.col(c).cast(pl.Float64) for c in self._own_features],
        )
        # Under the default cleaning (none), one pass counts every rule of the sort, duplicate
        # and bar checks (and of the feature checks when nothing is joined or filled): when
        # none is broken those steps would change and report nothing, so they are skipped.
        bars_cleaned = (
            policy.missing != "raise"
            or policy.prices == "drop"
            or policy.volume != "raise"
            or policy.ohlc != "raise"
        )
        features_checked = not state.joins and policy.missing_signals == "raise"
        if not bars_cleaned and all_clear(frame, spec, len(self.assets), features=features_checked):
            if features_checked:
                return self._engine_frame(frame)
        else:
            frame = order_rows(frame, spec, policy, collector)
            frame = dedupe(frame, spec, policy, collector)
            frame = clean_bars(frame, spec, policy, collector, state.bars)
            check_bars(frame, spec, collector)
        for join in state.joins:
            frame = join.apply(frame, lo, hi, t, collector)
        frame = clean_features(frame, spec, policy, collector, state.features)
        check_features(frame, spec, collector)
        return self._engine_frame(frame)

    def _engine_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A checked chunk in the engine's schema, in the input's own chunks (no copy: the
        engine reads an in-memory frame through :attr:`engine_pages`)."""
        spec = self._spec
        t = spec.timestamp
        return frame.select(
            pl.col(t).to_physical().alias("ts"),
            pl.col(CODE).alias("asset_id"),
            *PRICE_COLUMNS,
            *spec.features,
        )

    def _new_pass(self) -> _Pass:
        return _Pass([AsofJoin(j) for j in self._joins])

    def _build(self, collector: Collector) -> pl.DataFrame:
        """In memory: the whole frame, in the input's chunks."""
        raw = self._raw if self._raw is not None else self._prices.collect()
        self._raw = None
        return self._process(raw, None, None, self._new_pass(), collector)

    def _ranges(self) -> list[tuple[int | None, int | None]]:
        """Time ranges ``[lo, hi)`` (ns) of the chunks; the first is open below and the last
        open above, so together they cover every timestamp exactly once."""
        bounds = self._bounds
        if not bounds:
            return [(None, None)]
        los: list[int | None] = [None, *bounds]
        his: list[int | None] = [*bounds, None]
        return list(zip(los, his, strict=True))

    @cached_property
    def _bounds(self) -> list[int]:
        t = self.timestamp_column
        ts = cast_timestamp(pl.col(t), self._raw_ts)
        if self.chunk_rows is not None:
            counts = (
                self._prices.filter(pl.col(t).is_not_null())
                .group_by(ts.alias("t"))
                .len()
                .sort("t")
                .collect()
            )
            stamps = counts["t"].to_physical().to_numpy()
            cumulative = counts["len"].cum_sum().to_numpy()
            bounds: list[int] = []
            start, done = 0, 0
            while start < len(stamps):
                end = int(cumulative.searchsorted(done + self.chunk_rows, side="right"))
                end = max(end, start + 1)  # one timestamp larger than the budget: alone
                if start:
                    bounds.append(int(stamps[start]))
                done = int(cumulative[end - 1])
                start = end
            return bounds
        every = str(self.chunk_by)
        dtype = self.universe.timestamp_dtype
        ends = self._prices.select(ts.min().alias("lo"), ts.max().alias("hi")).collect()
        if ends["lo"][0] is None:
            return []
        grid = ends.select(
            pl.datetime_range(
                pl.col("lo").first().dt.truncate(every),
                pl.col("hi").first(),
                every,
                closed="both",
            ).alias("b")
        )
        lo_ns = int(ends["lo"].cast(dtype).to_physical()[0])
        return [b for b in grid["b"].cast(dtype).to_physical().to_list() if b > lo_ns]

    def _stream(self, collector: Collector) -> Iterator[pl.DataFrame]:
        t, raw = self.timestamp_column, self._raw_ts
        state = self._new_pass()
        for lo, hi in self._ranges():
            query = self._prices
            if lo is not None:
                query = query.filter(pl.col(t) >= raw_literal(lo, raw, round_up=True))
            if hi is not None:
                query = query.filter(pl.col(t) < raw_literal(hi, raw, round_up=True))
            # One chunk, so the engine's import and the batch driver's numpy views share it.
            out = self._process(query.collect(), lo, hi, state, collector).rechunk()
            if out.height:
                yield out

    def _finish(self, collector: Collector) -> None:
        """Records what the cleaning policy changed in a full pass (:attr:`cleaning`), and
        announces, once per pass at the user's line, what a policy the user did not choose
        explicitly changed (a policy set by name in ``validation`` is the user's own choice:
        recorded, not warned about)."""
        self._collector = collector
        self.cleaning = collector.cleaning
        chosen = self.policy.model_fields_set
        implicit = [c for c in self.cleaning if _POLICY_OF.get(c.rule, c.rule) not in chosen]
        if implicit:
            warn_user(
                "the validation policy cleaned the data: " + "; ".join(str(c) for c in implicit),
                DataCleaningWarning,
            )

    # ------------------------------------------------------------------ public API

    @property
    def streaming(self) -> bool:
        """True when the feed reads its source chunk by chunk."""
        return self.chunk_by is not None or self.chunk_rows is not None

    @cached_property
    def features(self) -> FeatureProvider:
        """The feed's features grouped as signals, indicators and market-wide context."""
        grouped: dict[str, tuple[str, ...]] = {j.name: j.values for j in self._joins}
        indicators = grouped.get("indicators", ())
        context = grouped.get("context", ())
        signals = tuple(c for c in self.signal_columns if c not in {*indicators, *context})
        return FeatureProvider(
            signals=signals,
            indicators=indicators,
            context=context,
            frame=lambda: self.frame,
            universe=self.universe,
        )

    @property
    def actions(self) -> pl.DataFrame | None:
        """The corporate actions as the engine reads them (``ts`` Int64 ns, ``asset_id`` UInt32,
        ``split_ratio``, ``dividend``; sorted, one row per key), ``None`` without any."""
        return self._actions

    @property
    def membership(self) -> pl.DataFrame | None:
        """The point-in-time universe as the engine reads it: its changes (``ts`` Int64 ns,
        ``asset_id`` UInt32, ``member`` Boolean; sorted), ``None`` without a universe."""
        return self.__dict__.get("_membership")

    @property
    def instruments(self) -> list[dict[str, Any] | None] | None:
        """The instrument specs as the engine reads them, one per asset code (``None``: a
        share), or ``None`` when none were given."""
        return self.__dict__.get("_instruments")

    @property
    def fx(self) -> pl.DataFrame | None:
        """The FX rates as checked (``ts`` Int64 ns, ``currency``, ``rate``: base units per
        unit; sorted), ``None`` when none were given."""
        return self.__dict__.get("_fx")

    @property
    def currencies(self) -> list[str | None]:
        """Each asset's quote currency by code (``None``: the account's base)."""
        return quote_currencies(self.instruments, self.n_assets)

    @property
    def delisting_returns(self) -> list[float | None]:
        """Per asset in code order, the ``delisting_return`` of the actions frame (CRSP's
        DLRET; ``None``: none)."""
        return list(self._delisting_returns or [None] * self.n_assets)

    @property
    def feature_columns(self) -> list[str]:
        """The feature (signal, indicator, context) columns, in engine order."""
        return self.signal_columns

    @property
    def frame(self) -> pl.DataFrame:
        """The normalised frame. A streaming feed builds it from all its chunks (the whole
        data in memory, on every access); use :meth:`iter_chunks` instead."""
        if self._frame is not None:
            return self._frame
        chunks = list(self.iter_chunks())
        if not chunks:
            columns = ["open", "high", "low", "close", "volume", *self.signal_columns]
            schema = {"ts": pl.Int64, "asset_id": pl.UInt32, **dict.fromkeys(columns, pl.Float64)}
            return pl.DataFrame(schema=schema)
        return pl.concat(chunks).rechunk()

    @property
    def engine_frame(self) -> pl.DataFrame:
        """The normalised frame handed to the engine (shares buffers with :attr:`frame`)."""
        return self.frame

    def iter_chunks(self) -> Iterator[pl.DataFrame]:
        """Normalised chunks in time order (one frame for an in-memory feed). Each chunk is
        checked as it is read; a full pass records the cleaning in :attr:`cleaning`."""
        if self._frame is not None:
            yield self._frame
            return
        collector = Collector(raise_errors=True)
        yield from self._stream(collector)
        self._finish(collector)

    def engine_data(self) -> CheckedData | ChunkStream:
        """What ``Backtest`` hands to the engine: for an in-memory feed, its frame imported once
        (a ``CheckedData`` trusting the feed's own validation of the rows, built on the first
        run and reused by every later one, a sweep's trials included: no re-import, no
        re-check); for
        a streaming feed a new :class:`ChunkStream` (one per run, so runs over one feed in
        several threads never see each other's chunks)."""
        if self._frame is not None:
            checked = self.__dict__.get("_checked")
            if checked is None:
                # The rows were validated when the feed was built (every rule the engine would
                # check again; tests/test_fuzz_frames.py proves it on hostile frames).
                proven = not self.__dict__.get("_rows_unproven", False)
                checked = CheckedData(self.engine_pages, self.n_assets, validated=proven)
                self.__dict__["_checked"] = checked
            return checked
        return ChunkStream(self.iter_chunks())

    @property
    def engine_pages(self) -> list[pl.DataFrame]:
        """An in-memory feed's frame as the engine reads it: pages in time order, each one
        chunk holding whole timestamps, sharing the frame's buffers where it can
        (:mod:`~ml4t.backtest.data.chunks`). The engine's row indexes are relative to a page."""
        if self._frame is None:
            raise ConfigError("engine_pages: a streaming feed hands the engine its chunks")
        pages = self.__dict__.get("_pages")
        if pages is None:
            if self.__dict__.get("_rows_unproven", False):
                # A frame given through with_frame is checked as one page (it may be unsorted,
                # and its errors then name its own rows).
                pages = [self._frame.rechunk()]
            else:
                pages = timestamp_pages(self._frame)
            self.__dict__["_pages"] = pages
        return pages

    def validation_report(self) -> ValidationReport:
        """Every finding over the whole data, without raising. An in-memory feed was checked
        when it was built (the report lists its cleaning); a streaming feed is read once."""
        if self._frame is not None and self._collector is not None:
            return self._collector.report()
        collector = Collector(raise_errors=False)
        try:
            for _ in self._stream(collector):
                pass
        except _Stop:
            pass
        return collector.report()

    @cached_property
    def n_rows(self) -> int:
        """Number of bars (a streaming feed counts them with one scan)."""
        if self._frame is not None:
            return self._frame.height
        return int(self._prices.select(pl.len()).collect().item())

    @property
    def assets(self) -> list[str]:
        """The asset names, in code order (every asset with a bar, sorted)."""
        return self.universe.assets

    @property
    def n_assets(self) -> int:
        """Size of the asset universe."""
        return len(self.universe)

    @property
    def time_zone(self) -> str | None:
        """The time zone of the timestamps (``None`` when naive)."""
        return self.universe.time_zone

    def __len__(self) -> int:
        return self.n_rows

    def delistings(self, gap: int) -> list[int | None]:
        """Per asset (in code order), the timestamp (ns) of its last bar when the asset is
        delisted: it has no bar in the data's last ``gap`` timestamps (so a merely missing last
        bar is not a delisting); ``None`` otherwise. A streaming feed answers from one scan of
        its source (rows a cleaning policy drops still count). Cached per ``gap``."""
        if gap < 1:
            raise ConfigError(f"execution.delisting_gap: must be >= 1, got {gap}")
        cache: dict[int, list[int | None]] = self.__dict__.setdefault("_delistings", {})
        if gap not in cache:
            cache[gap] = self._find_delistings(gap)
        return cache[gap]

    def _find_delistings(self, gap: int) -> list[int | None]:
        out: list[int | None] = [None] * self.n_assets
        if self.n_assets < 2:
            return out  # the one asset's data is the run's
        if not self.streaming:
            frame = self.frame
            # Sorted by time with at most n_assets rows a timestamp: the last gap x n_assets
            # rows hold the last gap timestamps, and the assets with a bar among them.
            recent = frame.select("ts", "asset_id").tail(gap * self.n_assets)
            tail = recent.get_column("ts").unique().sort()
            if tail.len() < gap:
                return out
            seen = recent.filter(pl.col("ts") >= tail[-gap]).get_column("asset_id").unique()
            if seen.len() == self.n_assets:
                return out  # every asset trades to the end: the common case, decided cheaply
            missing = pl.Series(sorted(set(range(self.n_assets)) - set(seen.to_list())))
            last = (
                frame.filter(pl.col("asset_id").is_in(missing.cast(pl.UInt32)))
                .group_by("asset_id")
                .agg(pl.col("ts").max().alias("last"))
            )
        else:
            t, a = self.timestamp_column, self.asset_column
            ts = cast_timestamp(pl.col(t), self._raw_ts).cast(self.universe.timestamp_dtype)
            names = pl.Series(self.assets, dtype=pl.String)
            lazy = self._prices.select(
                ts.dt.epoch("ns").alias("ts"),
                pl.col(a)
                .cast(pl.String)
                .replace_strict(names, pl.int_range(len(names), eager=True), return_dtype=pl.UInt32)
                .alias("asset_id"),
            )
            last = lazy.group_by("asset_id").agg(pl.col("ts").max().alias("last")).collect()
            tail = lazy.select(pl.col("ts").unique().top_k(gap)).collect().get_column("ts").sort()
        if tail.len() < gap:
            return out
        cutoff = int(tail[-gap])
        for code, when in last.iter_rows():
            if when < cutoff:
                out[int(code)] = int(when)
        return out

    def window(
        self,
        start: int | None = None,
        end: int | None = None,
        *,
        signals: pl.DataFrame | None = None,
    ) -> PolarsDataFeed:
        """An in-memory feed of this feed's rows with ``start <= ts < end`` (engine
        nanoseconds; ``None`` leaves a side open), over the same universe (asset codes and
        time zone unchanged, so results of several windows line up).

        Args:
            start, end: the time range, in engine nanoseconds.
            signals: extra feature columns: a frame of ``ts`` (Int64 ns), ``asset_id``
                (UInt32) and Float64 columns, at most one row per key; it is joined on the
                exact (ts, asset) of the bars, and a bar without a row gets NaN (no value).

        An asset's delisting is the parent's when it falls inside the window (an asset that
        trades on after ``end`` is not delisted in it). The rows share the parent's buffers
        when ``signals`` is ``None``.

        Raises:
            ConfigError: a signal column named like a column of the feed.
            DataValidationError: ``signals: no_bar`` (a row at a timestamp and asset without a
                bar in the window) or ``signals: duplicate`` (two rows for one key).
        """
        frame = self.frame
        ts = frame.get_column("ts").to_numpy()
        lo = 0 if start is None else int(ts.searchsorted(start, side="left"))
        hi = ts.shape[0] if end is None else int(ts.searchsorted(end, side="left"))
        rows = frame.slice(lo, max(hi - lo, 0))
        extra: list[str] = []
        if signals is not None:
            extra = [c for c in signals.columns if c not in ("ts", "asset_id")]
            clash = [c for c in extra if c in rows.columns]
            if clash:
                raise ConfigError(
                    f"signals.{clash[0]}: column_clash: the feed already has a column of this "
                    "name; rename it"
                )
            rows = rows.with_columns(self._aligned(rows, signals, extra))
        state = self.__getstate__()
        state.update(
            _frame=rows,
            chunk_by=None,
            chunk_rows=None,
            signal_columns=[*self.signal_columns, *extra],
            _spec=FrameSpec(self._spec.timestamp, self._spec.asset, (*self._spec.features, *extra)),
        )
        cached: dict[int, list[int | None]] = self.__dict__.get("_delistings", {})
        state["_delistings"] = {
            gap: [t if t is not None and (end is None or t < end) else None for t in values]
            for gap, values in cached.items()
        }
        out = PolarsDataFeed.__new__(PolarsDataFeed)
        out.__setstate__(state)
        return out

    def _aligned(
        self, rows: pl.DataFrame, signals: pl.DataFrame, names: list[str]
    ) -> list[pl.Series]:
        """The ``names`` columns of ``signals`` aligned with ``rows`` by exact (ts, asset), NaN
        where a bar has no row: a merge of the sorted keys (timestamp position x assets +
        asset code) in numpy, rather than a hash join on two columns."""
        ts = rows.get_column("ts").to_numpy()
        new = np.concatenate(([True], ts[1:] != ts[:-1])) if ts.size else np.zeros(0, bool)
        stamps = ts[new]
        width = np.int64(max(self.n_assets, 1))
        keys = (np.cumsum(new) - 1).astype(np.int64) * width + rows.get_column(
            "asset_id"
        ).to_numpy().astype(np.int64)
        sig_ts = signals.get_column("ts").cast(pl.Int64).to_numpy()
        sig_asset = signals.get_column("asset_id").cast(pl.Int64).to_numpy()
        at = np.searchsorted(stamps, sig_ts).clip(0, max(stamps.size - 1, 0))
        found = (stamps[at] == sig_ts) if stamps.size else np.zeros(sig_ts.size, bool)
        wanted = at.astype(np.int64) * width + sig_asset
        place = np.searchsorted(keys, wanted).clip(0, max(keys.size - 1, 0))
        found &= (keys[place] == wanted) if keys.size else False
        if not found.all():
            first = int(np.flatnonzero(~found)[0])
            raise DataValidationError(
                f"signals: no_bar: {int((~found).sum())} row(s) at a (timestamp, asset) without a "
                f"bar in the window, first {self.to_datetime(int(sig_ts[first]))} "
                f"({self.assets[int(sig_asset[first])]})"
            )
        order = place if bool(np.all(place[1:] > place[:-1])) else np.sort(place)
        twice = np.flatnonzero(order[1:] == order[:-1])
        if twice.size:
            row = int(order[twice[0]])
            raise DataValidationError(
                f"signals: duplicate: {twice.size} key(s) with more than one row, first "
                f"{self.to_datetime(int(ts[row]))} ({self.assets[int(keys[row] % width)]})"
            )
        out = []
        for name in names:
            values = np.full(rows.height, np.nan)
            values[place] = signals.get_column(name).cast(pl.Float64).to_numpy()
            out.append(pl.Series(name, values))
        return out

    def checksum(self) -> str:
        """SHA-256 of the engine data (every column's name, dtype and values, chunk by chunk
        for a streaming feed) and of the universe (asset names, time zone): the key of the
        study cache and of the trial ledger. A locked hold-out's rows are not part of it."""
        digest = hashlib.sha256()
        digest.update(repr((self.assets, self.time_zone, self.signal_columns)).encode())
        for chunk in self.iter_chunks():
            digest.update(f"rows={chunk.height};".encode())
            for name in chunk.columns:
                series = chunk.get_column(name)
                digest.update(f"{name}:{series.dtype};".encode())
                values = np.ascontiguousarray(series.to_numpy())
                digest.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())
        return "sha256:" + digest.hexdigest()

    # ------------------------------------------------------------------ the hold-out

    @property
    def hold_out_info(self) -> HoldOut | None:
        """The feed's hold-out (start, rows hidden, whether unlocked), ``None`` without one."""
        return getattr(self, "_hold_out", None)

    def hold_out(self, start: TimeLike, *, ledger: str | Path | None = None) -> HoldOut:
        """Locks the rows from ``start`` on away: until :meth:`unlock_hold_out`, nothing that
        reads this feed sees them (a plain ``Backtest``, every study, :attr:`frame`,
        :meth:`iter_chunks`, :meth:`checksum`, a pickled copy). The hold-out is for the one
        final test of what the studies chose, so it is declared once per feed and unlocked
        once.

        Args:
            start: the first hidden instant: a datetime, a date (its midnight) or ISO text; a
                naive value is read in the data's time zone.
            ledger: the trial ledger that records the hold-out and its unlock (default: the
                ledger's default root, :func:`ml4t.backtest.ledger_store.default_root`).

        Returns:
            The :class:`HoldOut` (also :attr:`hold_out_info`).

        Raises:
            HoldOutError: the feed already has a hold-out (locked or unlocked).
            ConfigError: ``start`` leaves no visible row, or hides none.

        Warns:
            HoldOutWarning: the ledger says this same hold-out of this data was unlocked
                before: results on it are no longer out of sample.
        """
        if self.hold_out_info is not None:
            state = "locked" if self.hold_out_info.locked else "already unlocked"
            raise HoldOutError(
                f"hold_out: once: this feed has a hold-out from {self.hold_out_info.start} "
                f"({state}); a feed has one hold-out, touched once"
            )
        if isinstance(start, str):
            start = date.fromisoformat(start) if len(start) == 10 else datetime.fromisoformat(start)
        if not isinstance(start, (date, datetime)):
            raise ConfigError(
                f"hold_out: start: expected a datetime, a date or ISO text, got {start!r}"
            )
        ns = self._instant(start, "hold_out", Collector(raise_errors=True))
        t, raw = self.timestamp_column, self._raw_ts
        visible_prices = self._prices.filter(pl.col(t) < raw_literal(ns, raw, round_up=True))
        if self._frame is not None:
            keep = pl.col("ts") < ns
            visible = self._frame.filter(keep)
            hidden = self._frame.height - visible.height
            shown = visible.height
        else:
            visible = None
            counts = self._prices.select(
                (pl.col(t) < raw_literal(ns, raw, round_up=True)).sum().alias("shown"),
                pl.len().alias("all"),
            ).collect()
            shown = int(counts["shown"][0])
            hidden = int(counts["all"][0]) - shown
        if shown == 0:
            raise ConfigError(
                f"hold_out: start: {start} is at or before the first bar: nothing would be left "
                "to study"
            )
        if hidden == 0:
            raise ConfigError(
                f"hold_out: start: {start} is after the last bar: nothing is held out"
            )
        actions = self._actions
        self._held = _Held(self._frame, self._prices, actions)
        self._frame = visible
        self._prices = visible_prices
        if actions is not None:
            self._actions = actions.filter(pl.col("ts") < ns)
        self._forget_cached()
        root = ledger_store.resolve_root(ledger)
        visible_checksum = self.checksum()
        self._hold_out = HoldOut(self.to_datetime(ns), ns, hidden, visible_checksum, root)
        earlier = ledger_store.read_events(root, visible_checksum).filter(
            pl.col("event") == "hold_out_unlocked"
        )
        for when, details in earlier.select("recorded_at", "details").iter_rows():
            if json.loads(details).get("start_ns") == ns:
                warn_user(
                    f"hold_out: already_unlocked: this hold-out of this data (from "
                    f"{self._hold_out.start}) was unlocked on {when:%Y-%m-%d %H:%M} UTC (trial "
                    f"ledger {root}); results on it are no longer out of sample",
                    HoldOutWarning,
                )
                break
        ledger_store.append_event(root, visible_checksum, "hold_out", self._event_details())
        return self._hold_out

    def unlock_hold_out(self) -> HoldOut:
        """Shows the held-out rows again, to everything that reads the feed, once; the trial
        ledger records it (under the checksums of the data before and after).

        Raises:
            HoldOutError: no hold-out, a second unlock, or a copy of the feed (a pickled feed
                or a study's view) that does not hold the hidden rows.
        """
        info = self.hold_out_info
        if info is None:
            raise HoldOutError("unlock_hold_out: none: this feed has no hold-out to unlock")
        if not info.locked:
            raise HoldOutError(
                f"unlock_hold_out: once: the hold-out from {info.start} was already unlocked at "
                f"{info.unlocked_at:%Y-%m-%d %H:%M:%S} UTC; a hold-out is touched once"
            )
        held = self._held
        if held is None:
            raise HoldOutError(
                "unlock_hold_out: copy: this feed is a copy (pickled, or a study's view) and "
                "does not hold the hidden rows; unlock the feed the hold-out was declared on"
            )
        self._frame, self._prices, self._actions = held.frame, held.prices, held.actions
        self._held = None
        self._forget_cached()
        self._hold_out = replace(info, unlocked_at=datetime.now(timezone.utc))
        details = {**self._event_details(), "full_checksum": self.checksum()}
        for checksum in dict.fromkeys((info.visible_checksum, details["full_checksum"])):
            ledger_store.append_event(info.ledger, checksum, "hold_out_unlocked", details)
        return self._hold_out

    def _event_details(self) -> dict[str, Any]:
        info = self._hold_out
        assert info is not None
        return {
            "start": info.start.isoformat(),
            "start_ns": info.start_ns,
            "rows": info.rows,
            "visible_checksum": info.visible_checksum,
        }

    def _forget_cached(self) -> None:
        for name in self._CACHED:
            self.__dict__.pop(name, None)
        self._view = None

    def study_view(self) -> PolarsDataFeed:
        """The feed a study (a sweep, a walk-forward, a CPCV run) must read: while a hold-out
        is locked, a snapshot of the visible rows that cannot be unlocked (so a study's trials
        all see the same rows, whatever happens to this feed meanwhile); otherwise the feed
        itself. Every study takes its feed from here."""
        info = self.hold_out_info
        if info is None or not info.locked or getattr(self, "_held", None) is None:
            return self
        if self._view is None:
            view = PolarsDataFeed.__new__(PolarsDataFeed)
            view.__setstate__(
                {
                    k: v
                    for k, v in self.__dict__.items()
                    if k not in (*self._CACHED, *self._NOT_CARRIED)
                }
                | {"_held": None, "_view": None}
            )
            self._view = view
        return self._view

    def to_datetime(self, ns: int) -> datetime:
        """Converts engine nanoseconds to a datetime in the feed's time zone (naive if none)."""
        return self.universe.to_datetime(ns)

    def with_frame(self, frame: pl.DataFrame) -> PolarsDataFeed:
        """A copy of this in-memory feed over ``frame``, a row subset of :attr:`frame` (the
        universe, features and actions unchanged): how a run drops the bars outside its
        calendar's sessions."""
        if self._frame is None:
            raise ConfigError("with_frame: needs an in-memory feed")
        copy = PolarsDataFeed.__new__(PolarsDataFeed)
        copy.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in (*self._CACHED, "_delistings")}
        )
        copy._frame = frame
        copy.__dict__["_rows_unproven"] = True  # a frame given here is checked by the engine
        return copy

    _CACHED = ("features", "n_rows", "_bounds", "_checked", "_pages", "_delistings")
    """Cached properties, rebuilt after unpickling rather than carried."""

    _NOT_CARRIED = ("_held", "_view")
    """What pickling never carries: a locked hold-out's hidden rows (a worker sees only what
    a study may see) and the cached study view."""

    def __getstate__(self) -> dict[str, Any]:
        """What pickling carries (process pools, joblib, Ray, Dask). An in-memory feed carries
        its normalised frame and metadata, not its sources (a run never reads them again); a
        streaming feed carries its lazy plan over its sources, whose files must be readable
        wherever it is unpickled."""
        skip = (*self._CACHED, *self._NOT_CARRIED)
        state = {k: v for k, v in self.__dict__.items() if k not in skip}
        if self._frame is not None:
            state["_prices"] = pl.LazyFrame(schema=self._prices.collect_schema())
            state["_joins"] = [
                replace(j, lazy=pl.LazyFrame(schema=j.lazy.collect_schema())) for j in self._joins
            ]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_hold_out": None, "_held": None, "_view": None} | state)

    def __repr__(self) -> str:
        mode = (
            f"streaming by {self.chunk_by or f'{self.chunk_rows} rows'}"
            if self.streaming
            else f"{self.n_rows} rows"
        )
        return (
            f"PolarsDataFeed({mode}, assets={self.n_assets}, "
            f"features={self.signal_columns}, time_zone={self.time_zone})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: rows, assets, time range, feature groups and validation status
        (a streaming feed is not read for it: rows and range say so)."""
        import html

        features = self.features
        groups = [
            f"{name}: {', '.join(cols) or '—'}"
            for name, cols in (
                ("signals", features.signals),
                ("indicators", features.indicators),
                ("context", features.context),
            )
        ]
        if self.streaming:
            extent = f"streaming by {self.chunk_by or f'{self.chunk_rows:,} rows'}"
            status = "checked chunk by chunk as the run reads it"
        else:
            ts = self.frame.get_column("ts")
            first, last = (self.to_datetime(int(v)) for v in (ts.min(), ts.max()))  # type: ignore[arg-type]
            extent = f"{self.n_rows:,} rows · {first} → {last}"
            cleaned = "; ".join(str(c) for c in self.cleaning)
            status = "validated, no cleaning" if not cleaned else f"validated; cleaned: {cleaned}"
        zone = self.time_zone or "naive timestamps"
        lines = [
            f"<b>PolarsDataFeed</b> · {html.escape(extent)}",
            f"{self.n_assets:,} assets · {html.escape(zone)}",
            *(html.escape(g) for g in groups),
            html.escape(status),
        ]
        return (
            '<div class="ml4t-backtest-feed" style="font-family:sans-serif;font-size:13px">'
            + "<br>".join(lines)
            + "</div>"
        )


def _asset_names(assets: pl.Series) -> pl.Series:
    """The distinct non-null names of ``assets``. A String column holding one name throughout
    (a single-asset frame) is recognised by one comparison with its first name, about ten
    times cheaper than hashing every row."""
    names = assets.drop_nulls()
    if assets.dtype == pl.String and names.len() > 0:
        first = names[0]
        if (names == first).all():
            return pl.Series(assets.name, [first], dtype=pl.String)
    unique: pl.Series = names.cast(pl.String).unique()
    return unique


def validate(data: Any, /, **feed_options: Any) -> ValidationReport:
    """Checks every row and returns the findings instead of raising.

    Args:
        data: a :class:`PolarsDataFeed` (a streaming feed is read once, chunk by chunk), or
            anything the feed accepts as prices: a DataFrame, a LazyFrame, a Parquet file, a
            glob or a (hive-partitioned) directory.
        **feed_options: the feed's keyword arguments (``signals=``, ``asset_column=``,
            ``validation=``, ``chunk_rows=``, ...) when ``data`` is not a feed.

    Returns:
        A :class:`~ml4t.backtest.data.ValidationReport`; ``report.ok`` is False when the feed
        would raise.
    """
    with panics_as_bugs("validate"):
        if isinstance(data, PolarsDataFeed):
            return data.validation_report()
        return PolarsDataFeed._report_for(data, **feed_options)
