"""FX rates (``PolarsDataFeed(..., fx=frame)``): one row per (timestamp, currency) with
``rate``, the base currency's units per one unit of ``currency`` (EUR/USD = 1.08 for a USD
account is ``currency="EUR", rate=1.08``). Read from anything the feed reads, every row
checked, and handed to the engine as a small table (``ts`` Int64 ns, ``currency`` UInt32 code,
``rate`` Float64). The engine applies a rate at the start of the first timestamp at or after
its date, before that timestamp's fills: the rate in force at ``t`` is the latest row at or
before ``t``, never a later one (the point-in-time rule of the other joined frames).

Rules (each a ``DataValidationError`` ``fx.<column>: rule: detail (N rows, first keys ...)``
or, for an instrument's currency, a ``ConfigError`` ``instruments[A].currency: ...``):

===================== ===============================================================
``missing_column``    no timestamp column, no ``currency`` or no ``rate``
``unknown_column``    a column other than the timestamp, ``currency`` and ``rate``
``dtype``             a timestamp that is not Date/Datetime, a non-text currency, a
                      non-numeric rate
``timezone``          naive and tz-aware timestamps mixed, or another time zone
``currency``          a currency that is not a 3-letter upper-case code
``null``              a null timestamp, currency or rate
``not_positive``      a rate that is NaN, infinite or <= 0
``duplicate``         two rows for one (timestamp, currency)
``no_fx_rate``        an asset quoted in a currency with no rows, or with a bar before the
                      first rate of its currency (trim the prices with ``start=``);
                      a streaming feed's bars are checked by the engine as it runs
``base_rate``         rows for the account's base currency (its rate is 1 by definition)
===================== ===============================================================
"""

from __future__ import annotations

import re
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
from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.universe import Universe

CURRENCY = re.compile(r"^[A-Z]{3}$")
"""A currency code: three upper-case letters (ISO 4217 style: ``USD``, ``EUR``, ``JPY``)."""

SCHEMA = {"ts": pl.Int64, "currency": pl.String, "rate": pl.Float64}
"""The feed's checked table (:attr:`PolarsDataFeed.fx`): currencies by name."""


def read_fx(source: Any, *, universe: Universe, timestamp: str = "timestamp") -> pl.DataFrame:
    """The checked FX table of ``source`` (``ts`` engine ns, ``currency``, ``rate``), sorted by
    (ts, currency), in ``universe``'s time zone (a ``Date`` is midnight of that day there).

    Raises:
        DataValidationError: a rule of the module's table is broken.
    """
    collector = Collector(raise_errors=True)
    lazy, _, _ = scan(source, "fx", collector)
    schema = read_schema(lazy, "fx", collector)
    t = timestamp
    if t not in schema:
        other = find_timestamp_column(schema, "fx", collector)
        if other is None:
            fatal(collector, "missing_column", f"fx.{t}", "required key column is missing")
        lazy = lazy.rename({other: t})
        schema = read_schema(lazy, "fx", collector)
    for column in ("currency", "rate"):
        if column not in schema:
            fatal(collector, "missing_column", f"fx.{column}", "required column is missing")
    unknown = [c for c in schema if c not in (t, "currency", "rate")]
    if unknown:
        fatal(
            collector,
            "unknown_column",
            f"fx.{unknown[0]}",
            f"the fx frame holds only a timestamp, 'currency' and 'rate' (got {unknown})",
        )
    raw_ts = schema[t]
    if not (raw_ts == pl.Date or isinstance(raw_ts, pl.Datetime)):
        fatal(collector, "dtype", f"fx.{t}", f"dtype must be Datetime or Date, got {raw_ts}")
    check_time_zone(raw_ts, universe.time_zone, f"fx.{t}", collector)
    if schema["currency"] not in (pl.String, pl.Categorical, pl.Enum):
        fatal(collector, "dtype", "fx.currency", f"dtype must be text, got {schema['currency']}")
    if not schema["rate"].is_numeric():
        fatal(collector, "dtype", "fx.rate", f"dtype must be numeric, got {schema['rate']}")
    check_timestamp_range(lazy, t, raw_ts, f"fx.{t}", collector)

    stamp = zoned_timestamp(pl.col(t), raw_ts, universe.time_zone)
    frame = (
        lazy.select(
            stamp.cast(universe.timestamp_dtype).to_physical().alias("ts"),
            pl.col("currency").cast(pl.String),
            pl.col("rate").cast(pl.Float64),
        )
        .with_row_index("__row")
        .collect()
    )
    checks: list[tuple[str, str, pl.Expr, str]] = [
        ("null", f"fx.{t}", pl.col("ts").is_null(), "null values are not allowed"),
        ("null", "fx.currency", pl.col("currency").is_null(), "null values are not allowed"),
        ("null", "fx.rate", pl.col("rate").is_null(), "null values are not allowed"),
        (
            "currency",
            "fx.currency",
            pl.col("currency").is_not_null() & ~pl.col("currency").str.contains(CURRENCY.pattern),
            "a currency is a 3-letter upper-case code such as 'EUR'",
        ),
        (
            "not_positive",
            "fx.rate",
            pl.col("rate").is_not_null() & ~(pl.col("rate").is_finite() & (pl.col("rate") > 0)),
            "a rate (base units per unit of the currency) must be finite and > 0",
        ),
        (
            "duplicate",
            "fx.currency",
            pl.struct("ts", "currency").is_duplicated(),
            "one rate per (timestamp, currency)",
        ),
    ]
    for rule, column, mask, detail in checks:
        bad = frame.filter(mask)
        if bad.height:
            rows = bad.get_column("__row").head(5).to_list()
            collector.error(
                Finding(
                    rule, column, detail, bad.height, tuple(f"[{r}]" for r in rows), key_kind="rows"
                )
            )
    return frame.drop("__row").sort("ts", "currency").cast(SCHEMA)  # type: ignore[arg-type]


def check_currency(value: Any, where: str) -> str:
    """``value`` as a currency code, or a ``ConfigError`` at ``where``."""
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise ConfigError(
            f"{where}: must be a 3-letter upper-case code such as 'EUR', got {value!r}"
        )
    return value


def check_coverage(
    fx: pl.DataFrame | None,
    currencies: list[str | None],
    first_bars: pl.DataFrame | None,
    universe: Universe,
) -> None:
    """Every asset quoted in a currency with rows (``currencies`` by asset code; ``None``: the
    base) has its first bar at or after that currency's first rate (``first_bars``:
    ``asset_id``, ``ts``; ``None`` for a streaming feed, checked by the engine).

    Raises:
        DataValidationError: ``fx.rate: no_fx_rate: ...`` naming the asset, its first bar and
            the first rate.
    """
    if fx is None or first_bars is None:
        return
    first_rate = dict(fx.group_by("currency").agg(pl.col("ts").min()).iter_rows())
    for code, ts in first_bars.select("asset_id", "ts").iter_rows():
        currency = currencies[code]
        if currency is None or currency not in first_rate or ts >= first_rate[currency]:
            continue
        name = universe.assets[code]
        raise DataValidationError(
            f"fx.rate: no_fx_rate: asset {name} (quoted in {currency}) has bars from "
            f"{universe.to_datetime(ts)}, before the first {currency} rate at "
            f"{universe.to_datetime(first_rate[currency])}; give an earlier rate or start the "
            f"prices at it (start=)"
        )


def engine_currencies(
    fx: pl.DataFrame | None, currencies: list[str | None], assets: list[str], base: str
) -> tuple[list[str], list[int], pl.DataFrame] | None:
    """The universe dict's currencies for an account in ``base``: the names in code order (the
    base first, then the others sorted), each asset's code, and the rates with codes. ``None``
    when every asset is quoted in the base (one currency: the engine keeps one cash balance).
    ``currencies`` and ``assets`` are by asset code (``None``: the base).

    Raises:
        ConfigError: ``instruments[A].currency: no_fx_rate: ...`` for an asset quoted in a
            foreign currency without rates.
        DataValidationError: ``fx.currency: base_rate: ...`` for rows of the base currency.
    """
    quoted = {c for c in currencies if c is not None and c != base}
    if not quoted:
        return None
    have = set() if fx is None else set(fx.get_column("currency").unique().to_list())
    for code, currency in enumerate(currencies):
        if currency is not None and currency != base and currency not in have:
            raise ConfigError(
                f"instruments[{assets[code]}].currency: no_fx_rate: {currency} has no rows in "
                f"the fx frame (PolarsDataFeed(..., fx=...)); the account's base currency is "
                f"{base}"
            )
    if fx is None:  # unreachable: a foreign currency without rows raised above
        return None
    if base in have:
        raise DataValidationError(
            f"fx.currency: base_rate: rows for {base}, the account's base currency (its rate "
            "is 1); drop them or set account.base_currency"
        )
    names = [base, *sorted(have)]
    code_of = {name: i for i, name in enumerate(names)}
    codes = [code_of[c] if c is not None else 0 for c in currencies]
    table = fx.select(
        "ts",
        pl.col("currency").replace_strict(code_of, return_dtype=pl.UInt32),
        "rate",
    ).sort("ts", "currency")
    return names, codes, table
