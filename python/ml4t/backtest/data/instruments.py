"""Instrument specs (``PolarsDataFeed(..., instruments=...)``): what one unit of an asset is.

Given as a frame with an ``asset`` column (any frame Polars reads, or pandas), a Parquet or CSV
file of such a frame, or as a dict ``{asset: {field: value}}``; assets not named are plain
shares. Fields (all optional):

============================ ==================================================================
``asset_class``              ``equity`` (default), ``future``, ``fx``, ``crypto_perp``
``multiplier``               contract size (default 1): notional, PnL, exposure and margin are
                             quantity x price x multiplier
``tick_size``                price step: limit and stop levels and market fills are rounded to it
``lot_size``                 quantity step (futures: 1, whole contracts, unless given, ``None``
                             for any quantity; else none)
``margin_initial``           initial margin per contract (or ``margin_initial_pct`` of notional)
``margin_maintenance``       maintenance margin per contract (or ``margin_maintenance_pct``)
``expiry``                   futures: a date or datetime (wall clock in the data's time zone)
``commission_per_contract``  a fee per contract replacing the config's commission model
``funding_interval``         crypto perpetuals: time between funding payments (default ``"8h"``)
``currency``                 the quote currency (a 3-letter code; default the account's base):
                             prices, fills, fees and PnL are in it; it needs FX rates
                             (``PolarsDataFeed(..., fx=...)``) unless it is the base
============================ ==================================================================

Every value is checked here and each error names the asset and the field
(``ConfigError: instruments[ES].multiplier: must be finite and > 0, got 0``). The engine reads
one dict per asset code (``None`` for a plain share) from the universe dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest._models import UNIT_NS, duration_pieces
from ml4t.backtest.data.fx import check_currency
from ml4t.backtest.data.sources import scan
from ml4t.backtest.data.validation import Collector
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.universe import Universe

ASSET_CLASSES = ("equity", "future", "fx", "crypto_perp")
"""The instrument classes, in the engine's code order."""

_POSITIVE = ("multiplier", "tick_size", "lot_size", "margin_initial", "margin_maintenance")
_FRACTIONS = ("margin_initial_pct", "margin_maintenance_pct")
FIELDS = (
    "asset_class",
    *_POSITIVE,
    *_FRACTIONS,
    "expiry",
    "commission_per_contract",
    "funding_interval",
    "currency",
)
"""Every field an instrument spec may have."""


def read_instruments(source: Any, universe: Universe) -> list[dict[str, Any] | None]:
    """The specs of ``source`` (a frame with an ``asset`` column or a dict by asset name), one
    entry per asset code of ``universe`` (``None`` for a plain share).

    Raises:
        ConfigError: an unknown asset or field, or a value that breaks its rule.
    """
    rows = _rows(source)
    out: list[dict[str, Any] | None] = [None] * len(universe.assets)
    for name, fields in rows.items():
        if name not in universe.assets:
            raise ConfigError(
                f"instruments[{name}]: unknown asset (the prices have {len(universe.assets)} "
                f"assets, e.g. {universe.assets[:3]})"
            )
        out[universe.code(name)] = _spec(name, fields, universe)
    return out


def _rows(source: Any) -> dict[str, dict[str, Any]]:
    if isinstance(source, (str, Path)):  # a file the feed can read (e.g. ``data.instruments``)
        lazy, _, _ = scan(source, "instruments", Collector(raise_errors=True))
        source = lazy.collect()
    if isinstance(source, Mapping):
        rows: dict[str, dict[str, Any]] = {}
        for name, fields in source.items():
            if not isinstance(fields, Mapping):
                raise ConfigError(
                    f"instruments[{name}]: expected a dict of fields, got {type(fields).__name__}"
                )
            rows[str(name)] = dict(fields)
        return rows
    try:
        frame = source if isinstance(source, pl.DataFrame) else pl.DataFrame(source)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"instruments: expected a frame with an 'asset' column or a dict by asset, got "
            f"{type(source).__name__} ({err})"
        ) from None
    key = next((c for c in ("asset", "symbol", "ticker") if c in frame.columns), None)
    if key is None:
        raise ConfigError(f"instruments: no 'asset' column (have {frame.columns})")
    duplicated = frame.filter(pl.col(key).is_duplicated())[key].unique().to_list()
    if duplicated:
        raise ConfigError(f"instruments[{duplicated[0]}]: the asset has more than one row")
    rows = {}
    for row in frame.to_dicts():
        name = str(row.pop(key))
        rows[name] = {k: v for k, v in row.items() if v is not None}
    return rows


def _spec(name: str, fields: dict[str, Any], universe: Universe) -> dict[str, Any]:
    def fail(field: str, rule: str) -> ConfigError:
        return ConfigError(f"instruments[{name}].{field}: {rule}")

    given = set(fields)
    fields = {k: v for k, v in fields.items() if v is not None}
    unknown = [k for k in fields if k not in FIELDS]
    if unknown:
        raise fail(unknown[0], f"unknown field (fields: {', '.join(FIELDS)})")
    spec: dict[str, Any] = {}
    asset_class = fields.get("asset_class", "equity")
    if asset_class not in ASSET_CLASSES:
        raise fail("asset_class", f"must be one of {list(ASSET_CLASSES)}, got {asset_class!r}")
    spec["asset_class"] = asset_class
    for field in (*_POSITIVE, "commission_per_contract"):
        if field not in fields:
            continue
        value = _number(fields[field], lambda rule, f=field: fail(f, rule))
        if field == "commission_per_contract":
            if value < 0:
                raise fail(field, f"must be finite and >= 0, got {value}")
        elif value <= 0:
            raise fail(field, f"must be finite and > 0, got {value}")
        spec[field] = value
    for field in _FRACTIONS:
        if field in fields:
            value = _number(fields[field], lambda rule, f=field: fail(f, rule))
            if not 0 < value <= 1:
                raise fail(field, f"must be in (0, 1], got {value}")
            spec[field] = value
    for kind in ("initial", "maintenance"):
        if f"margin_{kind}" in spec and f"margin_{kind}_pct" in spec:
            raise fail(
                f"margin_{kind}",
                f"give margin_{kind} (per contract) or margin_{kind}_pct (of notional), not both",
            )
    if asset_class == "future" and "lot_size" not in given:
        spec["lot_size"] = 1.0  # whole contracts (an explicit None: any quantity)
    if "expiry" in fields:
        if asset_class != "future":
            raise fail("expiry", f"only futures expire (asset_class is {asset_class!r})")
        spec["expiry"] = _instant(fields["expiry"], lambda rule: fail("expiry", rule), universe)
    if "currency" in fields:
        spec["currency"] = check_currency(fields["currency"], f"instruments[{name}].currency")
    if "funding_interval" in fields:
        if asset_class != "crypto_perp":
            raise fail("funding_interval", "only crypto perpetuals pay funding")
        spec["funding_interval"] = _interval(
            fields["funding_interval"], lambda rule: fail("funding_interval", rule)
        )
    return spec


def _number(value: Any, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise fail(f"must be finite, got {value}")
    return number


def _instant(value: Any, fail: Any, universe: Universe) -> int:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise fail(f"not an ISO date or datetime: {value!r}") from None
    if not isinstance(value, (date, datetime)):
        raise fail(f"must be a date or datetime, got {value!r}")
    try:
        return universe.wall_clock_ns(value)
    except ValueError as err:
        raise fail(str(err)) from None


def _interval(value: Any, fail: Any) -> int:
    if isinstance(value, timedelta):
        ns = value // timedelta(microseconds=1) * 1_000
    elif isinstance(value, str):
        pieces = duration_pieces(value)
        if pieces is None or any(unit not in UNIT_NS for _, unit in pieces):
            raise fail(f"not a fixed duration such as '8h' or '1h30m', got {value!r}")
        ns = sum(count * UNIT_NS[unit] for count, unit in pieces)
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    else:
        raise fail(f"must be a duration ('8h', a timedelta or ns), got {value!r}")
    if ns <= 0:
        raise fail(f"must be > 0, got {value!r}")
    return ns


def quote_currencies(specs: list[dict[str, Any] | None] | None, n_assets: int) -> list[str | None]:
    """Each asset's quote currency by code (``None``: the account's base)."""
    if specs is None:
        return [None] * n_assets
    return [None if spec is None else spec.get("currency") for spec in specs]
