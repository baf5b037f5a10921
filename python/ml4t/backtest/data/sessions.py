"""Trading sessions: an exchange calendar (``BacktestConfig(calendar="XNYS")``, through the
optional ``exchange_calendars`` package: ``pip install ml4t-backtest[calendars]``) or a session
frame of the user's (``calendar=frame`` on :class:`~ml4t.backtest.Backtest`: ``session`` Date,
``open`` and ``close`` tz-aware or UTC Datetimes), and what the run takes from them: the session
of every timestamp (one Int64 column built in Polars), the bars outside every session (a
finding: ``outside_sessions="raise"`` or ``"drop"``) and the calendar's sessions per year, by
which metrics annualise.

Rules (``DataValidationError`` ``sessions.<column>: rule: detail``, or ``ConfigError`` for the
calendar's name):

===================== ===============================================================
``missing_column``    the session frame lacks ``session``, ``open`` or ``close``
``dtype``             ``session`` not a Date, ``open``/``close`` not Datetimes
``order``             sessions not strictly increasing, or one whose close is not after
                      its open or after the previous close
``outside_sessions``  a bar at a time no session covers (``outside_sessions="raise"``)
===================== ===============================================================

A timestamp belongs to the session whose ``[open, close]`` contains it (close included: bars
stamped at their end). Daily data, every timestamp at midnight in the data's time zone (or
dates), belongs to the session of that date. Without a calendar nothing of this runs (24/7
data: crypto).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from ml4t.backtest.errors import ConfigError, DataValidationError

NS_PER_DAY = 86_400 * 10**9
SESSION_SCHEMA = {"session": pl.Date, "open": pl.Int64, "close": pl.Int64}
"""The normalised session table: the session's date and its open and close (UTC ns)."""


def calendar_sessions(name: str, first: date, last: date) -> pl.DataFrame:
    """The sessions of exchange calendar ``name`` (``"XNYS"``, ``"XLON"``, ...) over the whole
    calendar years from ``first`` to ``last``, normalised (see :data:`SESSION_SCHEMA`).

    Raises:
        ConfigError: ``exchange_calendars`` is not installed, or ``name`` is not a calendar.
    """
    try:
        import exchange_calendars as xcals
    except ImportError:
        raise ConfigError(
            f"calendar: '{name}' needs the exchange_calendars package: "
            "pip install 'ml4t-backtest[calendars]'"
        ) from None
    if name not in xcals.get_calendar_names(include_aliases=True):
        raise ConfigError(f"calendar: unknown exchange calendar '{name}' (exchange_calendars)")
    start, end = date(first.year, 1, 1), date(last.year, 12, 31)
    try:
        calendar = xcals.get_calendar(name, start=start.isoformat(), end=end.isoformat())
    except Exception as err:  # exchange_calendars bounds its calendars' ranges
        raise ConfigError(f"calendar: '{name}' cannot cover {start} to {end}: {err}") from None
    schedule = calendar.schedule
    frame = pl.DataFrame(
        {
            "session": schedule.index.to_numpy().astype("datetime64[D]"),
            "open": schedule["open"].to_numpy().astype("datetime64[ns]").astype("int64"),
            "close": schedule["close"].to_numpy().astype("datetime64[ns]").astype("int64"),
        }
    )
    return frame.cast(SESSION_SCHEMA)  # type: ignore[arg-type]


def user_sessions(frame: Any) -> pl.DataFrame:
    """A user's session frame (Polars or anything ``pl.DataFrame`` takes) checked and
    normalised: ``session`` (Date), ``open`` and ``close`` (Datetimes; naive ones are UTC).

    Raises:
        DataValidationError: a rule of the module's table is broken.
    """
    df = frame if isinstance(frame, pl.DataFrame) else pl.DataFrame(frame)
    for column in ("session", "open", "close"):
        if column not in df.columns:
            raise DataValidationError(
                f"sessions.{column}: missing_column: the session frame needs session, open, close"
            )
    if df.schema["session"] != pl.Date:
        raise DataValidationError(
            f"sessions.session: dtype: must be Date, got {df.schema['session']}"
        )
    for column in ("open", "close"):
        dtype = df.schema[column]
        if not isinstance(dtype, pl.Datetime):
            raise DataValidationError(f"sessions.{column}: dtype: must be Datetime, got {dtype}")

    def utc_ns(column: str) -> pl.Expr:
        dtype = df.schema[column]
        expr = pl.col(column).dt.cast_time_unit("ns")
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.cast(pl.Int64)

    out = df.select("session", utc_ns("open").alias("open"), utc_ns("close").alias("close"))
    bad = out.with_row_index("row").filter(
        pl.any_horizontal(pl.col(c).is_null() for c in ("session", "open", "close"))
        | (pl.col("close") <= pl.col("open"))
        | (pl.col("session") <= pl.col("session").shift(1))
        | (pl.col("open") < pl.col("close").shift(1))
    )
    if bad.height:
        raise DataValidationError(
            f"sessions: order: {bad.height} session(s) null, closing at or before their open, "
            f"or not after the previous session (first rows {bad['row'].head(5).to_list()})"
        )
    return out.cast(SESSION_SCHEMA)  # type: ignore[arg-type]


def session_index(ts: pl.Series, sessions: pl.DataFrame, time_zone: str | None) -> pl.Series:
    """The session number (row of ``sessions``) of each engine timestamp ``ts`` (Int64 UTC ns,
    increasing), null outside every session. All at midnight in ``time_zone`` (daily bars):
    matched by date; otherwise by ``open <= ts <= close``."""
    frame = pl.DataFrame({"ts": ts})
    local = pl.col("ts").cast(pl.Datetime("ns", "UTC"))
    if time_zone:
        local = local.dt.convert_time_zone(time_zone)
    daily = bool(frame.select((local.dt.truncate("1d") == local).all()).item())
    table = sessions.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    if daily:
        out = frame.with_columns(local.dt.date().alias("session")).join(
            table.select("session", "index"), on="session", how="left", maintain_order="left"
        )
        return out.get_column("index")
    joined = frame.join_asof(
        table.select(pl.col("open").alias("ts"), "close", "index"),
        on="ts",
        strategy="backward",
    )
    return joined.select(
        pl.when(pl.col("ts") <= pl.col("close")).then(pl.col("index")).alias("index")
    ).get_column("index")


def sessions_per_year(sessions: pl.DataFrame, span: tuple[date, date] | None = None) -> float:
    """The calendar's density: its sessions over the days from ``span``'s first to its last
    (default: the first session's date to the last's), in 365.25-day years. An exchange
    calendar is measured over the whole calendar years of the run (XNYS: about 252)."""
    first, last = span or (sessions.get_column("session")[0], sessions.get_column("session")[-1])
    days = (last - first).days + 1
    return float(sessions.height) / (days / 365.25)
