"""Row-level validation and cleaning of market data, vectorised in Polars.

Every row is checked, never a sample. Each rule has a name; a failure is a :class:`Finding` that
names the rule, the column, how many rows break it and the first few (timestamp, asset) keys.
:class:`~ml4t.backtest.PolarsDataFeed` raises the first finding as a
:class:`~ml4t.backtest.errors.DataValidationError` (or
:class:`~ml4t.backtest.errors.SignalTimingError`); :func:`~ml4t.backtest.data.validate` returns
all of them in a :class:`ValidationReport` without raising.

Rules (``Finding.rule``):

============================ ==========================================================
``source``                   the input is not a frame, or no readable file matches the path
``missing_column``           a required column (timestamp, asset, OHLCV, join key) is absent
``empty``                    the prices have no rows (after ``start``/``end``)
``dtype``                    a column has the wrong dtype (e.g. a string price)
``column_clash``             a joined frame repeats a column of the prices or another frame
``timezone``                 naive and tz-aware timestamps mixed, or two time zones
``timestamp_range``          a timestamp outside the engine's nanosecond range
                             (1677-09-21 .. 2262-04-11), e.g. a 9999-12-31 sentinel
``reserved_name``            a column named like the engine frame's own ``__`` columns
``null``                     a null value (in a feature column: no value at that bar)
``not_finite``               NaN or +-inf in OHLCV; +-inf in a feature (NaN = "no value")
``duplicate``                two rows for one (timestamp, asset)
``sort_order``               rows not sorted by (timestamp, asset) under ``sort="raise"``
``positive_price``           open, high, low or close <= 0
``non_negative_volume``      volume < 0
``ohlc``                     low > high, or open/close outside [low, high]
``signal_timing``            a signal attached to a bar before it is available
============================ ==========================================================

Cleaning happens only when the :class:`~ml4t.backtest.config.ValidationConfig` policy asks for
it (drop rows, forward-fill, clip); each action is a :class:`CleaningAction` with the number of
rows it touched, recorded on the feed (``feed.cleaning``) and announced with a
:class:`DataCleaningWarning`.

Example:
    >>> import polars as pl
    >>> from datetime import datetime
    >>> from ml4t.backtest.data import validate
    >>> bars = pl.DataFrame({
    ...     "timestamp": [datetime(2024, 1, 2)] * 2, "asset": ["A", "B"],
    ...     "open": [10.0, 20.0], "high": [11.0, 21.0], "low": [9.0, 19.0],
    ...     "close": [10.5, -1.0], "volume": [100.0, 200.0]})
    >>> report = validate(bars)
    >>> report.ok
    False
    >>> finding = report.errors[0]
    >>> finding.rule, finding.column, finding.count, finding.keys
    ('positive_price', 'close', 1, ('(2024-01-02 00:00:00, B)',))
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, NoReturn

import polars as pl

from ml4t.backtest._core import rows_clear
from ml4t.backtest.config import ValidationConfig
from ml4t.backtest.data.chunks import chunk_slices
from ml4t.backtest.errors import BacktestError, DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
MAX_KEYS = 5
CODE = "__asset_code"
_CARRY = "__carry"


class DataCleaningWarning(UserWarning):
    """Cleaning (asked for by the validation policy) changed or dropped rows."""


@dataclass(frozen=True)
class Finding:
    """One broken rule: which rule, which column, how many rows, the first offending keys."""

    rule: str
    column: str
    detail: str
    count: int = 0
    keys: tuple[str, ...] = ()
    key_kind: Literal["keys", "rows"] = "keys"
    error: type[BacktestError] = DataValidationError

    @property
    def message(self) -> str:
        """``column: rule: detail (N rows break it, first keys: (ts, asset), ...)``."""
        text = f"{self.column}: {self.rule}: {self.detail}"
        if self.count:
            plural = "row breaks" if self.count == 1 else "rows break"
            text += f" ({self.count} {plural} it, first {self.key_kind}: {', '.join(self.keys)})"
        return text

    def exception(self) -> BacktestError:
        """The exception the feed raises for this finding."""
        return self.error(self.message)

    def merged(self, other: Finding) -> Finding:
        """This finding with ``other``'s rows added (same rule and column, a later chunk)."""
        return replace(
            self, count=self.count + other.count, keys=(self.keys + other.keys)[:MAX_KEYS]
        )


@dataclass(frozen=True)
class CleaningAction:
    """Rows changed or dropped by one cleaning action of the policy."""

    rule: str
    column: str
    action: str
    rows: int

    def __str__(self) -> str:
        return f"{self.column}: {self.rule}: {self.action} {self.rows} rows"


@dataclass
class ValidationReport:
    """What :func:`validate` found: ``errors`` (each would raise), ``cleaning`` (what the
    policy changed), ``rows`` and ``chunks`` checked."""

    errors: list[Finding] = field(default_factory=list)
    cleaning: list[CleaningAction] = field(default_factory=list)
    rows: int = 0
    chunks: int = 0

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.errors

    def raise_if_failed(self) -> None:
        """Raises the first error (as the feed would)."""
        if self.errors:
            raise self.errors[0].exception()

    def __str__(self) -> str:
        n = len(self.errors)
        status = "OK" if self.ok else f"FAILED ({n} problem{'' if n == 1 else 's'})"
        lines = [f"validation: {status}; {self.rows} rows checked in {self.chunks} chunks"]
        lines += [f"  error    {f.message}" for f in self.errors]
        lines += [f"  cleaned  {c}" for c in self.cleaning]
        return "\n".join(lines)


class _Stop(Exception):
    """Collect mode: a finding that makes further checks meaningless (e.g. a missing column)."""


class Collector:
    """Receives findings: raises the first one (``raise_errors=True``, what the feed does) or
    keeps them all, merged by (rule, column) across chunks (what :func:`validate` does)."""

    def __init__(self, raise_errors: bool = True) -> None:
        self.raise_errors = raise_errors
        self._errors: dict[tuple[str, str], Finding] = {}
        self._cleaning: dict[tuple[str, str, str], CleaningAction] = {}
        self.rows = 0
        self.chunks = 0

    def error(self, finding: Finding) -> None:
        """Records ``finding``, or raises it in raising mode."""
        if self.raise_errors:
            raise finding.exception()
        key = (finding.rule, finding.column)
        old = self._errors.get(key)
        self._errors[key] = finding if old is None else old.merged(finding)

    def fatal(self, finding: Finding) -> NoReturn:
        """Records or raises ``finding``; either way the checks stop."""
        self.error(finding)
        raise _Stop(finding.message)

    def cleaned(self, rule: str, column: str, action: str, rows: int) -> None:
        """Records a cleaning action that touched ``rows`` rows (nothing when 0)."""
        if not rows:
            return
        key = (rule, column, action)
        old = self._cleaning.get(key)
        total = rows + (old.rows if old else 0)
        self._cleaning[key] = CleaningAction(rule, column, action, total)

    @property
    def cleaning(self) -> list[CleaningAction]:
        """Cleaning actions so far."""
        return list(self._cleaning.values())

    def report(self) -> ValidationReport:
        """Everything collected, as a report."""
        return ValidationReport(
            list(self._errors.values()), self.cleaning, rows=self.rows, chunks=self.chunks
        )


ENGINE_COLUMNS = ("ts", "asset_id")
"""The engine frame's key columns (``feed.frame``): int64 nanoseconds and the asset code."""


def check_reserved_names(columns: list[str], prefix: str, collector: Collector) -> None:
    """Stops with a ``reserved_name`` finding when a feature column is named like one of the
    engine frame's key columns (``ts``, ``asset_id``) or the pipeline's own ``__`` columns."""
    for column in columns:
        if column in ENGINE_COLUMNS or column.startswith("__"):
            collector.fatal(
                Finding(
                    "reserved_name",
                    f"{prefix}{column}",
                    "the engine frame uses this name (ts, asset_id and names starting with "
                    f"'__' are reserved); rename the column, e.g. to '{column.strip('_')}_feature'",
                )
            )


_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000}
_NS_PER_DAY = 86_400 * 1_000_000_000
_I64_MAX = 2**63 - 1


def check_timestamp_range(
    lazy: pl.LazyFrame, column: str, dtype: pl.DataType, label: str, collector: Collector
) -> None:
    """Stops with a ``timestamp_range`` finding when a value of ``column`` (a Date or Datetime
    column of ``dtype``) cannot be held as int64 nanoseconds since the epoch, the engine's
    clock. The check compares the raw physical values, so nothing out of range is ever cast
    or formatted (Polars panics formatting some of them); offending rows are named by index.
    """
    if dtype == pl.Date:
        per = _NS_PER_DAY
    elif isinstance(dtype, pl.Datetime):
        per = _NS_PER_UNIT[dtype.time_unit or "us"]
    else:
        return
    if per == 1:
        return  # every int64 nanosecond value is in range
    limit = _I64_MAX // per
    raw = pl.col(column).to_physical()
    outside = (raw > limit) | (raw < -limit)
    # Two vectorised reductions decide it; the offending rows are counted only when some are.
    low, high = lazy.select(raw.min().alias("low"), raw.max().alias("high")).collect().row(0)
    if low is None or (-limit <= low and high <= limit):
        return
    n = int(lazy.select(outside.sum().alias("n")).collect().item() or 0)
    rows = (
        lazy.select(pl.col(column))
        .with_row_index("row")
        .filter(outside)
        .select("row")
        .head(MAX_KEYS)
        .collect()
        .to_series()
        .to_list()
    )
    collector.fatal(
        Finding(
            "timestamp_range",
            label,
            f"outside the engine's range 1677-09-21 .. 2262-04-11 (int64 nanoseconds); "
            f"drop or replace sentinel dates such as 9999-12-31 ({dtype} values)",
            n,
            tuple(f"[{r}]" for r in rows),
            key_kind="rows",
        )
    )


def fatal(collector: Collector, rule: str, column: str, detail: str) -> NoReturn:
    """Reports a finding after which the checks cannot go on (e.g. a missing column)."""
    collector.fatal(Finding(rule, column, detail))


def tz_text(tz: str | None) -> str:
    """A time zone as error messages name it: ``tz-aware (Zone)`` or ``naive``."""
    return f"tz-aware ({tz})" if tz else "naive"


def check_time_zone(
    raw: pl.DataType, time_zone: str | None, column: str, collector: Collector
) -> None:
    """A side frame's Date or Datetime column must be in the prices' ``time_zone`` (a Date takes
    it); otherwise a fatal ``timezone`` finding on ``column``."""
    zone = raw.time_zone if isinstance(raw, pl.Datetime) else time_zone
    if (zone or None) != (time_zone or None):
        fatal(
            collector,
            "timezone",
            column,
            f"timestamps are {tz_text(zone)} but the prices are {tz_text(time_zone)}; "
            "use one time zone throughout (dt.replace_time_zone / dt.convert_time_zone)",
        )


@dataclass(frozen=True)
class FrameSpec:
    """Column names of a chunk inside the pipeline (timestamps already Datetime ns, prices and
    features Float64, ``CODE`` the asset code)."""

    timestamp: str
    asset: str
    features: tuple[str, ...] = ()


def first_keys(frame: pl.DataFrame, mask: pl.Expr | pl.Series, spec: FrameSpec) -> tuple[str, ...]:
    """The first distinct (timestamp, asset) keys of the rows where ``mask`` holds."""
    keys = (
        frame.filter(mask)
        .select(spec.timestamp, spec.asset)
        .unique(maintain_order=True)
        .head(MAX_KEYS)
        .rows()
    )
    return tuple(f"({t}, {a})" for t, a in keys)


def check_null_keys(frame: pl.DataFrame, spec: FrameSpec, collector: Collector) -> pl.DataFrame:
    """Null timestamps or assets (named by row index); returns the frame without them."""
    bad_any: pl.Expr | None = None
    for name in (spec.timestamp, spec.asset):
        if not frame.get_column(name).null_count():  # known without a scan
            continue
        rows = frame.select(pl.arg_where(pl.col(name).is_null()).alias("row"))["row"]
        if rows.len():
            collector.error(
                Finding(
                    "null",
                    name,
                    "null values are not allowed",
                    rows.len(),
                    tuple(f"[{r}]" for r in rows.head(MAX_KEYS).to_list()),
                    key_kind="rows",
                )
            )
            null = pl.col(name).is_null()
            bad_any = null if bad_any is None else bad_any | null
    return frame if bad_any is None else frame.filter(~bad_any)


def _out_of_order(spec: FrameSpec) -> pl.Expr:
    """Rows before their predecessor in (timestamp, asset code) order."""
    ts, code = pl.col(spec.timestamp), pl.col(CODE)
    return (ts < ts.shift(1)) | ((ts == ts.shift(1)) & (code < code.shift(1)))


def _duplicates(spec: FrameSpec) -> tuple[pl.Expr, pl.Expr]:
    """Of a sorted frame: rows with the same key as the next row, and rows sharing their key
    with a neighbour."""
    ts, code = pl.col(spec.timestamp), pl.col(CODE)
    same_next = ((ts == ts.shift(-1)) & (code == code.shift(-1))).fill_null(False)
    same_prev = ((ts == ts.shift(1)) & (code == code.shift(1))).fill_null(False)
    return same_next, same_next | same_prev


def order_rows(
    frame: pl.DataFrame, spec: FrameSpec, policy: ValidationConfig, collector: Collector
) -> pl.DataFrame:
    """Sorts by (timestamp, asset code), or reports ``sort_order`` under ``sort="raise"``."""
    bad = _out_of_order(spec)
    count = int(frame.select(bad.fill_null(False).sum()).item())
    if not count:
        return frame
    if policy.sort == "raise":
        collector.error(
            Finding(
                "sort_order",
                spec.timestamp,
                "rows must be sorted by (timestamp, asset) (the policy says sort='raise')",
                count,
                first_keys(frame, bad.fill_null(False), spec),
            )
        )
    return frame.sort(spec.timestamp, CODE, maintain_order=True)


def dedupe(
    frame: pl.DataFrame, spec: FrameSpec, policy: ValidationConfig, collector: Collector
) -> pl.DataFrame:
    """Duplicate (timestamp, asset) rows of a sorted frame: ``duplicate``, or drop all but the
    last under ``duplicates="drop"``."""
    same_next, in_group = _duplicates(spec)
    count = int(frame.select(in_group.sum()).item())
    if not count:
        return frame
    if policy.duplicates == "drop":
        dropped = int(frame.select(same_next.sum()).item())
        collector.cleaned("duplicate", spec.asset, "dropped (kept the last)", dropped)
        return frame.filter(~same_next)
    collector.error(
        Finding(
            "duplicate",
            spec.asset,
            "duplicate (timestamp, asset) rows are not allowed",
            count,
            first_keys(frame, in_group, spec),
        )
    )
    return frame


class LastRows:
    """The last ``n`` rows of each asset from earlier chunks, so that a look-back
    (forward-fill, shift by bars) across a chunk boundary gives what one big frame would."""

    def __init__(self, n: int = 1) -> None:
        self.n = n
        self.frame: pl.DataFrame | None = None

    def over_assets(
        self, frame: pl.DataFrame, exprs: list[pl.Expr], *, carry_input: bool = False
    ) -> pl.DataFrame:
        """Evaluates ``exprs`` (each ``...over(CODE)``) on the carried rows followed by
        ``frame`` and returns ``frame`` with the results. Remembers the last rows of the result
        (a forward-fill continues from filled values) or, with ``carry_input``, of ``frame``
        itself (a shift by bars moves the original values)."""
        if self.frame is None:
            out = frame.with_columns(exprs)
        else:
            body = pl.concat(
                [
                    self.frame.with_columns(pl.lit(True).alias(_CARRY)),
                    frame.with_columns(pl.lit(False).alias(_CARRY)),
                ]
            )
            out = body.with_columns(exprs).filter(~pl.col(_CARRY)).drop(_CARRY)
        self.remember(frame if carry_input else out)
        return out

    def remember(self, frame: pl.DataFrame) -> None:
        """Keeps the last ``n`` rows per asset of ``frame`` (after what was kept before)."""
        parts = [frame] if self.frame is None else [self.frame, frame]
        self.frame = (
            pl.concat(parts).group_by(CODE, maintain_order=True).tail(self.n).select(frame.columns)
        )


def _finite(name: str) -> pl.Expr:
    return pl.col(name).is_finite().fill_null(False)


def clean_bars(
    frame: pl.DataFrame,
    spec: FrameSpec,
    policy: ValidationConfig,
    collector: Collector,
    carry: LastRows | None,
) -> pl.DataFrame:
    """Applies the policy's cleaning of OHLCV values (nothing under the default policy)."""
    if policy.missing != "raise":
        bad = pl.any_horizontal([~_finite(c) for c in PRICE_COLUMNS])
        count = int(frame.select(bad.sum()).item())
        if policy.missing == "drop":
            collector.cleaned("missing", "open/high/low/close/volume", "dropped", count)
            frame = frame.filter(~bad)
        else:
            collector.cleaned("missing", "open/high/low/close/volume", "forward-filled", count)
            fill = [
                pl.when(_finite(c)).then(pl.col(c)).otherwise(None).forward_fill().over(CODE)
                for c in PRICE_COLUMNS
            ]
            frame = carry.over_assets(frame, fill) if carry else frame.with_columns(fill)
    if policy.prices == "drop":
        bad = pl.any_horizontal([pl.col(c) <= 0 for c in PRICE_COLUMNS[:4]]).fill_null(False)
        collector.cleaned("positive_price", "open/high/low/close", "dropped", _count(frame, bad))
        frame = frame.filter(~bad)
    if policy.volume != "raise":
        bad = (pl.col("volume") < 0).fill_null(False)
        count = _count(frame, bad)
        if policy.volume == "drop":
            collector.cleaned("non_negative_volume", "volume", "dropped", count)
            frame = frame.filter(~bad)
        else:
            collector.cleaned("non_negative_volume", "volume", "clipped to 0", count)
            frame = frame.with_columns(pl.col("volume").clip(lower_bound=0.0))
    if policy.ohlc != "raise":
        low, high = pl.col("low"), pl.col("high")
        bad = (
            (low > high)
            | (pl.col("open") < low)
            | (pl.col("open") > high)
            | (pl.col("close") < low)
            | (pl.col("close") > high)
        ).fill_null(False)
        count = _count(frame, bad)
        if policy.ohlc == "drop":
            collector.cleaned("ohlc", "open/high/low/close", "dropped", count)
            frame = frame.filter(~bad)
        else:
            collector.cleaned("ohlc", "open/high/low/close", "clipped into [low, high]", count)
            lo, hi = pl.min_horizontal(low, high), pl.max_horizontal(low, high)
            frame = frame.with_columns(
                lo.alias("low"),
                hi.alias("high"),
                pl.col("open").clip(lo, hi),
                pl.col("close").clip(lo, hi),
            )
    return frame


def _count(frame: pl.DataFrame, mask: pl.Expr) -> int:
    return int(frame.select(mask.sum()).item())


def _report_checks(
    frame: pl.DataFrame,
    spec: FrameSpec,
    collector: Collector,
    checks: list[tuple[str, str, pl.Expr, str]],
) -> None:
    """Counts every check in one pass; reports the failing ones in order."""
    if not checks or frame.is_empty():
        return
    counts = frame.select(
        [expr.fill_null(False).sum().alias(f"c{i}") for i, (_, _, expr, _) in enumerate(checks)]
    ).row(0)
    for (column, rule, expr, detail), count in zip(checks, counts, strict=True):
        if count:
            keys = first_keys(frame, expr.fill_null(False), spec)
            collector.error(Finding(rule, column, detail, int(count), keys))


def check_bars(frame: pl.DataFrame, spec: FrameSpec, collector: Collector) -> None:
    """Nulls, NaN/inf, positive prices, non-negative volume and OHLC consistency."""
    _report_checks(frame, spec, collector, _bar_checks())


def _bar_checks() -> list[tuple[str, str, pl.Expr, str]]:
    checks: list[tuple[str, str, pl.Expr, str]] = []
    for name in PRICE_COLUMNS:
        col = pl.col(name)
        checks.append((name, "null", col.is_null(), "null values are not allowed"))
        checks.append(
            (name, "not_finite", ~col.is_finite(), "values must be finite (no NaN or inf)")
        )
    for name in PRICE_COLUMNS[:4]:
        checks.append((name, "positive_price", pl.col(name) <= 0, "prices must be > 0"))
    checks.append(("volume", "non_negative_volume", pl.col("volume") < 0, "volume must be >= 0"))
    low, high = pl.col("low"), pl.col("high")
    checks.append(("low", "ohlc", low > high, "low must be <= high"))
    for name in ("open", "close"):
        col = pl.col(name)
        checks.append((name, "ohlc", (col < low) | (col > high), "must lie within [low, high]"))
    return checks


def clean_features(
    frame: pl.DataFrame,
    spec: FrameSpec,
    policy: ValidationConfig,
    collector: Collector,
    carry: LastRows | None,
) -> pl.DataFrame:
    """Applies ``missing_signals`` to null feature values (a bar without a value)."""
    if policy.missing_signals == "raise" or not spec.features:
        return frame
    for name in spec.features:
        count = int(frame.select(pl.col(name).null_count()).item())
        action = {"nan": "set to NaN", "drop": "dropped", "ffill": "forward-filled"}
        collector.cleaned("missing_signals", name, action[policy.missing_signals], count)
    if policy.missing_signals == "nan":
        return frame.with_columns(pl.col(c).fill_null(float("nan")) for c in spec.features)
    if policy.missing_signals == "drop":
        return frame.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in spec.features))
    fill = [pl.col(c).forward_fill().over(CODE) for c in spec.features]
    return carry.over_assets(frame, fill) if carry else frame.with_columns(fill)


def check_features(frame: pl.DataFrame, spec: FrameSpec, collector: Collector) -> None:
    """Feature columns: no nulls (a bar without a value) and no infinities; NaN is allowed."""
    _report_checks(frame, spec, collector, _feature_checks(spec))


def _feature_checks(spec: FrameSpec) -> list[tuple[str, str, pl.Expr, str]]:
    checks: list[tuple[str, str, pl.Expr, str]] = []
    for name in spec.features:
        col = pl.col(name)
        checks.append(
            (
                name,
                "null",
                col.is_null(),
                "null signal values are not allowed: no value at (or, for a joined frame, "
                "available before) these bars; fill them or set "
                "validation.missing_signals to 'nan', 'drop' or 'ffill'",
            )
        )
        checks.append(
            (name, "not_finite", col.is_infinite(), "values must not be +-inf (NaN is allowed)")
        )
    return checks


def all_clear(frame: pl.DataFrame, spec: FrameSpec, n_assets: int, *, features: bool) -> bool:
    """Whether ``frame`` (a chunk as :func:`order_rows` receives it) breaks none of the rules
    :func:`order_rows`, :func:`dedupe`, :func:`check_bars` and, with ``features``,
    :func:`check_features` report. The engine's own row check tests them all in one
    branch-free pass over the chunk's buffers, in place (``_core.rows_clear``; the same
    verdict as those rules, ``tests/test_all_clear.py``). The feed then skips those steps
    (each would find nothing); otherwise it runs them, and they report what they find."""
    columns = [
        pl.col(spec.timestamp).to_physical().alias("ts"),
        pl.col(CODE).alias("asset_id"),
        *PRICE_COLUMNS,
        *(spec.features if features else []),
    ]
    return rows_clear(chunk_slices(frame.select(columns)), n_assets, features=features)
