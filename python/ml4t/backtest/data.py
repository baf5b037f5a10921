"""``PolarsDataFeed``: validates a long-format frame of bars and signals and normalises it to the
engine's schema, which the Rust core then reads through the Arrow PyCapsule interface without a
copy.

Normalised schema (one row per timestamp and asset, sorted by both):
``ts`` Int64 nanoseconds, ``asset_id`` UInt32 (index into :attr:`PolarsDataFeed.assets`),
``open high low close volume`` Float64, then one Float64 column per signal.

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

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import polars as pl

from ml4t.backtest.errors import DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
ASSET_COLUMN_CANDIDATES = ("asset", "symbol", "ticker")
_EPOCH = datetime(1970, 1, 1)
_MAX_KEYS_SHOWN = 5


def _keys_text(frame: pl.DataFrame, time_col: str, asset_col: str) -> str:
    keys = frame.select(time_col, asset_col).unique(maintain_order=True)
    rows = keys.head(_MAX_KEYS_SHOWN).rows()
    return ", ".join(f"({t}, {a})" for t, a in rows)


class PolarsDataFeed:
    """Bars and signals for a backtest, validated and normalised.

    Args:
        prices: long frame with a timestamp column, an asset column (``asset``, ``symbol`` or
            ``ticker``), ``open high low close volume`` and any numeric signal columns.
        signals: optional frame keyed by (timestamp, asset) whose numeric columns are joined
            onto the bars (exact key match).
        timestamp_column: name of the time column.
        asset_column: name of the asset column; found automatically when ``None``.

    Raises:
        DataValidationError: a required column is missing or of the wrong dtype, a key is
            duplicated, a value is null, NaN or infinite, or prices are inconsistent. The
            message names the column, the rule and the first offending (timestamp, asset) keys.
    """

    def __init__(
        self,
        prices: pl.DataFrame | pl.LazyFrame,
        signals: pl.DataFrame | pl.LazyFrame | None = None,
        *,
        timestamp_column: str = "timestamp",
        asset_column: str | None = None,
    ) -> None:
        frame = prices.collect() if isinstance(prices, pl.LazyFrame) else prices
        if not isinstance(frame, pl.DataFrame):
            raise DataValidationError(
                f"prices: expected a polars DataFrame or LazyFrame, got {type(prices).__name__}"
            )
        self.timestamp_column = timestamp_column
        self.asset_column = asset_column or self._find_asset_column(frame)
        frame = self._check_columns(frame)
        if signals is not None:
            frame = self._join_signals(frame, signals)
        self.signal_columns: list[str] = [
            c
            for c in frame.columns
            if c not in (timestamp_column, self.asset_column, *PRICE_COLUMNS)
            and frame.schema[c].is_numeric()
        ]
        ignored = [
            c
            for c in frame.columns
            if c not in (timestamp_column, self.asset_column, *PRICE_COLUMNS, *self.signal_columns)
        ]
        if ignored:
            raise DataValidationError(
                f"columns {ignored}: signal columns must be numeric "
                f"(dtypes {[str(frame.schema[c]) for c in ignored]}); drop or cast them"
            )
        self._validate(frame)
        ts_dtype = frame.schema[timestamp_column]  # Datetime after _check_columns
        self.time_zone: str | None = (
            ts_dtype.time_zone if isinstance(ts_dtype, pl.Datetime) else None
        )
        self._tz: tzinfo | None = ZoneInfo(self.time_zone) if self.time_zone else None
        self.assets: list[str] = sorted(frame[self.asset_column].cast(pl.String).unique().to_list())
        self.frame = self._normalise(frame)

    @property
    def n_assets(self) -> int:
        """Size of the asset universe."""
        return len(self.assets)

    def __len__(self) -> int:
        return self.frame.height

    def _find_asset_column(self, frame: pl.DataFrame) -> str:
        for name in ASSET_COLUMN_CANDIDATES:
            if name in frame.columns:
                return name
        raise DataValidationError(
            f"asset: required column is missing: expected one of {list(ASSET_COLUMN_CANDIDATES)} "
            f"(or pass asset_column=...), have {frame.columns}"
        )

    def _check_columns(self, frame: pl.DataFrame) -> pl.DataFrame:
        required = (self.timestamp_column, self.asset_column, *PRICE_COLUMNS)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{missing[0]}: required column is missing (missing {missing}, have "
                f"{frame.columns})"
            )
        ts_dtype = frame.schema[self.timestamp_column]
        if ts_dtype == pl.Date:
            frame = frame.with_columns(pl.col(self.timestamp_column).cast(pl.Datetime("ns")))
        elif not isinstance(ts_dtype, pl.Datetime):
            raise DataValidationError(
                f"{self.timestamp_column}: dtype must be Datetime or Date, got {ts_dtype}"
            )
        asset_dtype = frame.schema[self.asset_column]
        if not isinstance(asset_dtype, (pl.String, pl.Categorical, pl.Enum)):
            raise DataValidationError(
                f"{self.asset_column}: dtype must be String, Categorical or Enum, got {asset_dtype}"
            )
        for name in PRICE_COLUMNS:
            if not frame.schema[name].is_numeric():
                raise DataValidationError(
                    f"{name}: dtype must be numeric, got {frame.schema[name]}"
                )
        return frame

    def _join_signals(
        self, frame: pl.DataFrame, signals: pl.DataFrame | pl.LazyFrame
    ) -> pl.DataFrame:
        sig = signals.collect() if isinstance(signals, pl.LazyFrame) else signals
        keys = [self.timestamp_column, self.asset_column]
        missing = [k for k in keys if k not in sig.columns]
        if missing:
            raise DataValidationError(f"signals.{missing[0]}: required key column is missing")
        clash = [c for c in sig.columns if c in frame.columns and c not in keys]
        if clash:
            raise DataValidationError(f"signals.{clash[0]}: column also exists in prices")
        dup = sig.filter(pl.struct(keys).is_duplicated())
        if dup.height:
            raise DataValidationError(
                f"signals.{self.asset_column}: duplicate (timestamp, asset) keys in {dup.height} "
                f"rows, first: {_keys_text(dup, *keys)}"
            )
        sig = sig.with_columns(
            pl.col(self.timestamp_column).cast(frame.schema[self.timestamp_column]),
            pl.col(self.asset_column).cast(pl.String),
        )
        return frame.with_columns(pl.col(self.asset_column).cast(pl.String)).join(
            sig, on=keys, how="left"
        )

    def _validate(self, frame: pl.DataFrame) -> None:
        t, a = self.timestamp_column, self.asset_column
        for name in (t, a):
            rows = frame.with_row_index("row").filter(pl.col(name).is_null())["row"]
            if rows.len():
                raise DataValidationError(
                    f"{name}: null values are not allowed ({rows.len()} rows, first rows "
                    f"{rows.head(_MAX_KEYS_SHOWN).to_list()})"
                )
        dup = frame.filter(pl.struct(t, a).is_duplicated())
        if dup.height:
            raise DataValidationError(
                f"{a}: duplicate (timestamp, asset) rows are not allowed ({dup.height} rows, "
                f"first keys: {_keys_text(dup, t, a)})"
            )
        checks: list[tuple[str, pl.Expr, str]] = []
        for name in PRICE_COLUMNS:
            col = pl.col(name).cast(pl.Float64)
            checks.append((name, col.is_null(), "null values are not allowed"))
            checks.append((name, ~col.is_finite(), "values must be finite (no NaN or inf)"))
        for name in ("open", "high", "low", "close"):
            checks.append((name, pl.col(name) <= 0, "prices must be > 0"))
        checks.append(("volume", pl.col("volume") < 0, "volume must be >= 0"))
        checks.append(("low", pl.col("low") > pl.col("high"), "low must be <= high"))
        for name in ("open", "close"):
            checks.append(
                (
                    name,
                    (pl.col(name) < pl.col("low")) | (pl.col(name) > pl.col("high")),
                    "must lie within [low, high]",
                )
            )
        for name in self.signal_columns:
            checks.append(
                (name, pl.col(name).is_null(), "null signal values are not allowed (fill them)")
            )
        flags = frame.select(
            [expr.fill_null(False).alias(f"c{i}") for i, (_, expr, _) in enumerate(checks)]
        )
        counts = flags.sum().row(0)
        for i, (name, _, rule) in enumerate(checks):
            if counts[i]:
                bad = frame.filter(flags[f"c{i}"])
                raise DataValidationError(
                    f"{name}: {rule} ({counts[i]} rows break it, first keys: "
                    f"{_keys_text(bad, t, a)})"
                )

    def _normalise(self, frame: pl.DataFrame) -> pl.DataFrame:
        t, a = self.timestamp_column, self.asset_column
        assets = pl.Enum(self.assets)
        out = frame.select(
            pl.col(t).dt.cast_time_unit("ns").to_physical().alias("ts"),
            pl.col(a).cast(pl.String).cast(assets).to_physical().cast(pl.UInt32).alias("asset_id"),
            *[pl.col(c).cast(pl.Float64) for c in PRICE_COLUMNS],
            *[pl.col(c).cast(pl.Float64) for c in self.signal_columns],
        )
        return out.sort("ts", "asset_id").rechunk()

    @property
    def engine_frame(self) -> pl.DataFrame:
        """The normalised frame handed to the engine (shares buffers with :attr:`frame`)."""
        return self.frame

    def to_datetime(self, ns: int) -> datetime:
        """Converts engine nanoseconds to a datetime in the feed's time zone (naive if none)."""
        micros = ns // 1000
        if self._tz is None:
            return _EPOCH + timedelta(microseconds=micros)
        utc = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
        return utc.astimezone(self._tz)

    def timestamps(self, ns: pl.Expr) -> pl.Expr:
        """Casts an expression of engine nanoseconds to the feed's datetime dtype."""
        if self.time_zone:
            return ns.cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(self.time_zone)
        return ns.cast(pl.Datetime("ns"))

    def asset_expr(self, codes: pl.Expr) -> pl.Expr:
        """Maps an expression of asset codes to an Enum column of asset names."""
        return codes.replace_strict(
            list(range(self.n_assets)), self.assets, return_dtype=pl.Enum(self.assets)
        )
