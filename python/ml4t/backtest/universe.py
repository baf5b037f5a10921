"""``Universe``: the asset names and the time zone of a run, and the one place that converts
between the engine's integers and the user's values.

The engine sees an asset as a code (``UInt32``: the index into :attr:`Universe.assets`, which
the feed sorts) and a time as ``Int64`` nanoseconds since the Unix epoch in UTC. Everything the
user sees carries names and datetimes in the data's time zone (naive when the data is naive).
Each conversion is offered as a value (one at a time) and as a Polars expression (a column).

Example:
    >>> import polars as pl
    >>> universe = Universe(["A", "B"], "America/New_York")
    >>> universe.to_datetime(1_704_205_800 * 10**9).isoformat()
    '2024-01-02T09:30:00-05:00'
    >>> pl.select(universe.asset_names(pl.lit(1, dtype=pl.UInt32))).item()
    'B'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Universe:
    """The assets (code = position in :attr:`assets`) and the time zone of the data.

    Args:
        assets: asset names in code order.
        time_zone: the IANA name of the data's time zone, or ``None`` for naive timestamps.
    """

    assets: list[str] = field(default_factory=list)
    time_zone: str | None = None
    zone: tzinfo | None = field(init=False, repr=False, compare=False)
    """The time zone as a ``tzinfo`` (``None`` when naive)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.time_zone) if self.time_zone else None)

    def __len__(self) -> int:
        return len(self.assets)

    # ------------------------------------------------------------------ assets

    def code(self, name: str) -> int:
        """The code of asset ``name`` (``ValueError`` when it is not in the universe)."""
        return self.assets.index(name)

    @property
    def asset_dtype(self) -> pl.Enum:
        """The dtype of an asset column: an ``Enum`` of the names in code order."""
        return pl.Enum(self.assets)

    def asset_names(self, codes: pl.Expr) -> pl.Expr:
        """Maps an expression of asset codes to an Enum column of asset names."""
        return codes.replace_strict(
            list(range(len(self.assets))), self.assets, return_dtype=self.asset_dtype
        )

    # ------------------------------------------------------------------ time

    @property
    def timestamp_dtype(self) -> pl.Datetime:
        """The dtype of a timestamp column: nanoseconds in the data's time zone."""
        return pl.Datetime("ns", self.time_zone)

    def to_datetime(self, ns: int) -> datetime:
        """Engine nanoseconds as a datetime in the data's time zone (naive if none)."""
        micros = ns // 1000
        zone = self.zone
        if zone is None:
            return _EPOCH + timedelta(microseconds=micros)
        return (_UTC_EPOCH + timedelta(microseconds=micros)).astimezone(zone)

    def timestamps(self, ns: pl.Expr) -> pl.Expr:
        """Casts an expression of engine nanoseconds to the data's datetime dtype."""
        if self.time_zone:
            return ns.cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(self.time_zone)
        return ns.cast(pl.Datetime("ns"))

    def to_ns(self, timestamp: Any) -> int:
        """Any value Polars reads as a Date or Datetime, as engine nanoseconds (a naive value is
        read as UTC, the way Polars stores it)."""
        value = pl.Series([timestamp])
        if value.dtype == pl.Date:
            value = value.cast(pl.Datetime("ns"))
        if isinstance(value.dtype, pl.Datetime) and value.dtype.time_zone is not None:
            value = value.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return int(value.cast(pl.Datetime("ns")).cast(pl.Int64).item())

    def wall_clock_ns(self, value: datetime | date) -> int:
        """``value`` as engine nanoseconds, a naive value read as wall-clock time in the data's
        time zone (a date is its midnight).

        Raises:
            ValueError: ``value`` is tz-aware but the data is naive.
        """
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        zone = self.zone
        if value.tzinfo is None:
            if zone is None:
                return (value - _EPOCH) // _MICRO * 1000
            value = value.replace(tzinfo=zone)
        elif zone is None:
            raise ValueError(f"a tz-aware value ({value}) for naive timestamps")
        return (value - _UTC_EPOCH) // _MICRO * 1000
