"""``BacktestResult``: the records of a run as Polars frames, metrics, save/load and the report.

The frames are built from the Arrow tables the engine returns (no copy of the numeric columns);
codes are mapped to names and nanoseconds to datetimes in the feed's time zone.

Example:
    >>> import tempfile
    >>> from ml4t.backtest import Backtest, PolarsDataFeed, TopKStrategy
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=5, n_bars=60, seed=3))
    >>> result = Backtest(feed, TopKStrategy("score", k=2)).run(progress=False)
    >>> folder = tempfile.mkdtemp()
    >>> _ = result.save(folder)
    >>> BacktestResult.load(folder).equity.equals(result.equity)
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
import polars as pl

from ml4t.backtest._core import (
    EXIT_REASONS,
    ORDER_EVENT_STATUSES,
    ORDER_ORIGINS,
    ORDER_TYPES,
    REJECT_REASONS,
    TIME_IN_FORCE,
    __version__,
    group_runs,
)
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.data.fx import engine_currencies
from ml4t.backtest.data.sources import in_memory
from ml4t.backtest.data.validation import Collector
from ml4t.backtest.errors import ConfigError, ResultFileError, StatsError
from ml4t.backtest.results.formatting import result_html, summarize
from ml4t.backtest.results.metrics import (
    SECONDS_PER_YEAR,
    Annualization,
    PeriodsPerYear,
    annualization,
    compute_metrics,
    performance_curve,
    period_returns,
)
from ml4t.backtest.results.plots import ResultPlots
from ml4t.backtest.results.positions import positions_at, sample_times
from ml4t.backtest.results.report import write_report
from ml4t.backtest.results.view import BenchmarkInput
from ml4t.backtest.stats import BootstrapIntervals
from ml4t.backtest.stats import confidence_intervals as _bootstrap_intervals
from ml4t.backtest.universe import Universe

if TYPE_CHECKING:
    from polars._typing import ArrowStreamExportable


def _benchmark_as_polars(benchmark: Any) -> pl.Series | pl.DataFrame:
    """A Polars series (aligned by position) or frame (aligned by time) for any benchmark."""
    if isinstance(benchmark, (pl.Series, pl.DataFrame)):
        return benchmark
    if isinstance(benchmark, np.ndarray):
        return pl.Series("benchmark", benchmark)
    kind = type(benchmark)
    if kind.__module__.startswith("pandas") and kind.__name__ == "Series":
        if str(benchmark.index.dtype).startswith("datetime64"):
            frame = benchmark.rename("value").rename_axis("timestamp").reset_index()
            return pl.from_pandas(frame)
        return pl.Series("benchmark", benchmark.to_numpy())
    return in_memory(benchmark, "benchmark", Collector(raise_errors=True))


# The code -> name tables (EXIT_REASONS, REJECT_REASONS, ORDER_TYPES, TIME_IN_FORCE,
# ORDER_ORIGINS, ORDER_EVENT_STATUSES) are exported by the engine so that the two sides cannot
# drift apart.

RECORD_NAMES = (
    "fills",
    "trades",
    "equity",
    "rejected_orders",
    "orders",
    "order_events",
    "records",
)
"""The record frames :meth:`BacktestResult.save` writes as Parquet (plus ``positions``)."""

SAVE_FORMAT = 2
"""Version of the saved-result layout written to ``manifest.json`` (2: with the order
journal, ``orders`` and ``order_events``)."""

_NO_REASON = 255
"""The engine's ``reason`` code of an order event without one."""

_FILL_STATUSES = ("partially_filled", "filled")

_HISTORY = ("timestamp", "status", "quantity", "remaining", "price", "reason")
"""The fields of an order's ``history`` (its events' columns, in this order)."""

_ENGINE_TABLES = frozenset(
    ("fills", "trades", "equity", "rejections", "financing", "splits", "orders", "order_events")
)
"""The engine's result tables (``_core.ArrowTable``), imported into Polars by ``_import_table``."""

_SPLIT_ROWS = 16_384
"""Engine tables of at least this many rows are imported column by column."""


def _import_table(table: Any) -> pl.DataFrame:
    """An engine table in Polars, without a copy. A long table is imported column by column:
    a column its record frame does not keep (a raw code, a quantity made absolute) is then
    freed with the raw table, where one import of the whole table keeps every column alive as
    long as any one of them is. A short table is imported at once (a column's import costs
    about 8 us, more than its memory is worth)."""
    if len(table) < _SPLIT_ROWS:
        return pl.DataFrame(table)
    return pl.DataFrame([pl.DataFrame(column).to_series() for column in table.columns()])


_CODED = {"rejected_orders": ("rejections", REJECT_REASONS), "trades": ("trades", EXIT_REASONS)}
"""Which engine table and code list a record's coded column (reason, exit reason) reads."""


_BLOCK = 4096
"""Rows per block of :func:`_drawdown`'s running maximum."""


def _drawdown(curve: np.ndarray, floor: float) -> np.ndarray | None:
    """``curve / max(running max of curve, floor) - 1`` in one numpy buffer: the values
    Polars' ``cum_max``, ``max_horizontal`` and division give (a maximum is exact, whatever
    the grouping), without their intermediate columns. The running maximum goes block by
    block: a block whose own maximum does not exceed the peak so far is that peak throughout
    (filled, not scanned). ``None`` when the curve holds a NaN, which Polars and numpy order
    differently, or the floor is not positive (the caller keeps the Polars expression)."""
    if not floor > 0.0 or np.isnan(curve).any():
        return None
    n = curve.shape[0]
    peak = np.empty(n, dtype=np.float64)
    cut = n - n % _BLOCK
    highs = curve[:cut].reshape(-1, _BLOCK).max(axis=1) if cut else np.empty(0)
    carry = floor
    for i, start in enumerate(range(0, n, _BLOCK)):
        stop = min(start + _BLOCK, n)
        out = peak[start:stop]
        high = highs[i] if start < cut else curve[start:stop].max()
        if high <= carry:
            out.fill(carry)
            continue
        np.maximum.accumulate(curve[start:stop], out=out)
        np.maximum(out, carry, out=out)
        carry = float(out[-1])
    np.divide(curve, peak, out=peak)
    peak -= 1.0
    return peak


_NEGATIVE_ZERO = np.float64(-0.0).view(np.int64)


def _exposures(long: pl.Series, short: pl.Series) -> tuple[pl.Expr | pl.Series, ...]:
    """``long - short`` and ``long + short`` (``gross_exposure``, ``net_exposure``). With no
    short side (every short value +0.0) both are the long column itself, shared instead of
    computed into two new columns: ``x - 0.0`` is ``x``, and so is ``x + 0.0`` unless ``x`` is
    -0.0 (then the sum is computed)."""
    gross: pl.Expr | pl.Series = (pl.col(long.name) - pl.col(short.name)).alias("gross_exposure")
    net: pl.Expr | pl.Series = (pl.col(long.name) + pl.col(short.name)).alias("net_exposure")
    if long.null_count() or short.null_count() or short.to_numpy().view(np.int64).any():
        return gross, net
    gross = long.alias("gross_exposure")
    if not (long.to_numpy().view(np.int64) == _NEGATIVE_ZERO).any():
        net = long.alias("net_exposure")
    return gross, net


def _names(codes: pl.Expr, names: list[str]) -> pl.Expr:
    return codes.replace_strict(list(range(len(names))), names, return_dtype=pl.String)


def _absent_as_null(name: str) -> pl.Expr:
    """A float column whose NaN means "none" (an order without a limit, say) with nulls."""
    return pl.col(name).fill_nan(None).alias(name)


def _json_float(value: float) -> float | str:
    """A float for strict JSON: non-finite values become the strings NaN, Infinity, -Infinity."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


MANIFEST = "manifest.json"
"""The file of a saved result that lists the others with their SHA-256; written last."""

SAVED_FILES = (
    *(f"{name}.parquet" for name in (*RECORD_NAMES, "positions")),
    "metrics.json",
    "config.yaml",
)
"""Every file of a saved result besides the manifest."""


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultFileError(
            f"{path}: missing: not a saved result, or its save was interrupted"
        ) from None
    except (OSError, ValueError) as err:
        raise ResultFileError(f"{path}: unreadable: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != SAVE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ResultFileError(
            f"{path}: unknown_format: unknown saved-result format {found!r} "
            f"(this version reads {SAVE_FORMAT})"
        )
    if not isinstance(manifest.get("files"), dict):
        raise ResultFileError(f"{path}: unreadable: it lists no files")
    return manifest


def _check_file(folder: Path, name: str, listed: dict[str, Any]) -> None:
    """Raises unless ``name`` exists and has the SHA-256 the manifest recorded for it."""
    path = folder / name
    entry = listed.get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise ResultFileError(f"{path}: unlisted: the manifest records no checksum for it")
    try:
        digest = _sha256_file(path)
    except FileNotFoundError:
        raise ResultFileError(f"{path}: missing: the manifest lists it") from None
    if digest != entry["sha256"]:
        raise ResultFileError(
            f"{path}: checksum_mismatch: SHA-256 {digest[:16]}… differs from the "
            f"{entry['sha256'][:16]}… the manifest recorded (the file changed after the save)"
        )


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ResultFileError(f"{path}: unreadable: {err}") from err


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_checksum(frame: pl.DataFrame) -> str:
    """A deterministic SHA-256 of a numeric frame: column names, dtypes and raw values in order.

    Independent of the Polars version and of chunking (unlike ``hash_rows`` or Arrow IPC bytes):
    each column is hashed as its name, its dtype and its values as contiguous little-endian
    bytes. Used for the engine frame (all columns numeric, no nulls).
    """
    digest = hashlib.sha256()
    digest.update(f"rows={frame.height};".encode())
    for name in frame.columns:
        series = frame.get_column(name)
        digest.update(f"{name}:{series.dtype};".encode())
        values = np.ascontiguousarray(series.to_numpy())
        digest.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())
    return "sha256:" + digest.hexdigest()


class BacktestResult:
    """The outcome of :meth:`Backtest.run`.

    Attributes:
        fills: one row per execution: ``order_id, timestamp, asset, side, order_type,
            quantity, price, reference_price, slippage, commission, multiplier, currency,
            fx_rate, partial`` (``multiplier``: the contract size, 1 for a share; ``currency``:
            the asset's quote currency, in which price, slippage and commission are;
            ``fx_rate``: base units per unit of it at the fill, 1 for the base).
        trades: one row per round trip (flat to flat), closed or still open at the end:
            ``asset, side, entry_time, exit_time, entry_price, exit_price, quantity, multiplier,
            gross_pnl, commission, slippage, funding, net_pnl, return_pct, bars_held, mfe, mae,
            exit_reason, status, currency, gross_pnl_local, net_pnl_local`` (``gross_pnl``
            includes the multiplier; ``funding``: crypto perpetuals' funding, + received;
            ``net_pnl`` = gross - commission + funding; ``return_pct`` = net over the entry
            notional). PnL and costs are in the base currency, each fill converted at its own
            rate (so a foreign asset's FX move while held is in ``gross_pnl``);
            ``gross_pnl_local`` / ``net_pnl_local`` are the same in the asset's ``currency``.
        equity: one row per timestamp: ``timestamp, cash, long_value, short_value,
            positions_value, equity, gross_exposure, net_exposure, drawdown, borrow_fee,
            interest, dividend, dividend_paid, funding, flows`` (``borrow_fee, interest,
            dividend, funding``: financing of the timestamp; ``dividend`` signed, the net of
            what longs received and shorts paid, ``dividend_paid`` the shorts' part (>= 0);
            ``funding`` signed, + received; ``flows``: the capital flow at its start,
            + deposit, - withdrawal). ``drawdown`` is that of the time-weighted index when
            there are flows. A futures or perpetual position's value is its unsettled PnL (cash
            is settled to every close), so ``long_value``/``short_value`` hold no contract
            notional.
        rejected_orders: orders that never filled, with the reason.
        non_member_pnl: with a point-in-time universe (``PolarsDataFeed(universe=...)``), the
            PnL of positions held while their asset was not a member: ``timestamp, asset,
            pnl``, one row per timestamp and asset that earned any (its marked value change
            plus the cash its fills and dividends moved); ``None`` without a universe.
        orders: the order journal, one row per order of the run (explicit orders, bracket
            legs, target orders, risk exits and level exits, margin calls), by ``order_id``:
            ``order_id, timestamp`` (decided), ``asset, side, order_type, quantity`` (as
            accepted, absolute), ``limit, stop, trail_amount, trail_percent, tif, parent_id,
            oco_id, origin, exit_reason, status`` (the last), ``filled_quantity,
            avg_fill_price`` and ``history``, its status changes as a list of structs
            ``{timestamp, status, quantity, remaining, price, reason}``.
        order_events: the same status changes as one flat frame, in the order they happened:
            ``order_id, timestamp, status, quantity, remaining, price, limit, stop, reason``.
        records: values recorded by the strategy with ``context.record(name=value)`` in long
            format: ``timestamp, name, value`` (empty for built-in strategies).
        config: the resolved configuration.
        universe: the data's assets and time zone (:attr:`assets`, :attr:`time_zone`).
        run_info: ``started_at`` (UTC, ISO 8601) and ``duration_seconds`` of the engine run.
    """

    config: BacktestConfig
    universe: Universe
    run_info: dict[str, Any]

    def __init__(
        self,
        raw: dict[str, Any],
        feed: PolarsDataFeed,
        config: BacktestConfig,
        *,
        run_info: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self._feed: PolarsDataFeed | None = feed
        self._input: dict[str, Any] | None = None
        self._positions_all: pl.DataFrame | None = None
        # The engine's tables, imported without a copy; each record frame is built from its
        # table on first access (and the table dropped then).
        self._raw: dict[str, Any] = {
            name: _import_table(table) if name in _ENGINE_TABLES else table
            for name, table in raw.items()
        }
        self._splits: pl.DataFrame | None = self._raw.pop("splits", None)
        self.universe = Universe(list(feed.assets), feed.time_zone)
        self.run_info = dict(run_info or {"started_at": None, "duration_seconds": None})
        base = config.account.base_currency
        found = engine_currencies(feed.fx, feed.currencies, list(feed.assets), base)
        self._currencies = [base] if found is None else found[0]
        self._asset_currency = [c or base for c in feed.currencies]
        self._fx = None if found is None else feed.fx
        cash = self._raw.pop("cash", None)
        self._cash = self._cash_table(cash) if found is not None else None
        self.non_member_pnl: pl.DataFrame | None = None
        members = self._raw.pop("non_member_pnl", None)
        if feed.membership is not None and members is not None:
            self.non_member_pnl = pl.DataFrame(members).select(
                self._timestamps(pl.col("ts")).alias("timestamp"), self._asset(), "pnl"
            )

    # ----------------------------------------------------------------------- record frames
    # Built on first access from the engine's tables, then cached (a loaded or unpickled
    # result has them in its ``__dict__`` already).

    @cached_property
    def fills(self) -> pl.DataFrame:
        """One row per execution (see the class doc)."""
        return self._fills(self._raw.pop("fills"))

    @cached_property
    def trades(self) -> pl.DataFrame:
        """One row per round trip, closed or still open at the end (see the class doc)."""
        return self._trades(self._raw.pop("trades"))

    @cached_property
    def equity(self) -> pl.DataFrame:
        """One row per timestamp (see the class doc)."""
        return self._equity(self._raw.pop("equity"), self._raw.pop("financing", None))

    @cached_property
    def rejected_orders(self) -> pl.DataFrame:
        """Orders that never filled, with the reason."""
        return self._rejections(self._raw.pop("rejections"))

    @cached_property
    def order_events(self) -> pl.DataFrame:
        """Every status change of every order, in the order they happened (see the class
        doc)."""
        return self._order_events(self._raw.pop("order_events"))

    @cached_property
    def orders(self) -> pl.DataFrame:
        """The order journal, one row per order (see the class doc)."""
        return self._orders(self._raw.pop("orders"), self.order_events)

    @cached_property
    def records(self) -> pl.DataFrame:
        """The strategy's ``context.record`` values, long format (see the class doc)."""
        return self._records(
            self._raw.pop("records", None), list(self._raw.pop("record_names", []))
        )

    def _count(self, record: str, column: str, values: tuple[str, ...]) -> int:
        """How many rows of ``record`` (``trades`` or ``rejected_orders``) have ``column`` in
        ``values``: from the frame once built, from the engine's codes before (so the outcome
        warnings build no frame)."""
        frame = self.__dict__.get(record)
        if frame is not None:
            return int(frame.get_column(column).is_in(list(values)).sum())
        table, names = _CODED[record]
        codes = [names.index(v) for v in values]
        return int(self._raw[table].get_column(column).is_in(codes).sum())

    def _any_ruin(self) -> bool:
        """Whether equity reached zero or below at some timestamp (read without building the
        equity frame when it is not built yet)."""
        frame = self.__dict__.get("equity")
        source = frame if frame is not None else self._raw["equity"]
        return bool((source.get_column("equity") <= 0.0).any())

    # ----------------------------------------------------------------------- building frames

    @property
    def assets(self) -> list[str]:
        """The asset names of the data, in code order."""
        return self.universe.assets

    @property
    def time_zone(self) -> str | None:
        """The time zone of the data's timestamps (``None`` when naive)."""
        return self.universe.time_zone

    def _timestamps(self, ns: pl.Expr) -> pl.Expr:
        return self.universe.timestamps(ns)

    def _asset(self) -> pl.Expr:
        return self.universe.asset_names(pl.col("asset_id")).alias("asset")

    def _fills(self, df: pl.DataFrame) -> pl.DataFrame:
        df = self._with_rates(df.with_columns(self._asset_currency_expr()))
        return df.select(
            "order_id",
            self._timestamps(pl.col("ts")).alias("timestamp"),
            self._asset(),
            pl.when(pl.col("side") == 0)
            .then(pl.lit("buy"))
            .otherwise(pl.lit("sell"))
            .alias("side"),
            (
                _names(pl.col("order_type"), ORDER_TYPES)
                if "order_type" in df.columns
                else pl.lit("market", dtype=pl.String)
            ).alias("order_type"),
            "quantity",
            "price",
            "reference_price",
            "slippage",
            "commission",
            (pl.col("multiplier") if "multiplier" in df.columns else pl.lit(1.0))
            .cast(pl.Float64)
            .alias("multiplier"),
            "currency",
            "fx_rate",
            (pl.col("partial") if "partial" in df.columns else pl.lit(False, dtype=pl.Boolean))
            .cast(pl.Boolean)
            .alias("partial"),
        )

    def _trades(self, df: pl.DataFrame) -> pl.DataFrame:
        df = df.with_columns(
            pl.col(c) if c in df.columns else pl.lit(default).alias(c)
            for c, default in (("funding", 0.0), ("multiplier", 1.0))
        )
        net = pl.col("gross_pnl") - pl.col("commission") + pl.col("funding")
        notional = pl.col("entry_price") * pl.col("quantity") * pl.col("multiplier")
        return df.select(
            self._asset(),
            pl.when(pl.col("long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
            self._timestamps(pl.col("entry_ts")).alias("entry_time"),
            self._timestamps(pl.col("exit_ts")).alias("exit_time"),
            "entry_price",
            "exit_price",
            "quantity",
            "multiplier",
            "gross_pnl",
            "commission",
            "slippage",
            "funding",
            net.alias("net_pnl"),
            (net / notional).alias("return_pct"),
            pl.col("bars_held").cast(pl.Int64),
            "mfe",
            "mae",
            _names(pl.col("exit_reason"), EXIT_REASONS),
            pl.when(pl.col("open"))
            .then(pl.lit("open"))
            .otherwise(pl.lit("closed"))
            .alias("status"),
            self._asset_currency_expr(),
            (pl.col("gross_pnl_local") if "gross_pnl_local" in df.columns else pl.col("gross_pnl"))
            .cast(pl.Float64)
            .alias("gross_pnl_local"),
            (pl.col("net_pnl_local") if "net_pnl_local" in df.columns else net)
            .cast(pl.Float64)
            .alias("net_pnl_local"),
        )

    def _currency(self, df: pl.DataFrame) -> pl.Expr:
        """The ``currency`` code column of an engine table as names."""
        if "currency" not in df.columns or len(self._currencies) == 1:
            return pl.lit(self._currencies[0], dtype=pl.String).alias("currency")
        names = dict(enumerate(self._currencies))
        return pl.col("currency").replace_strict(names, return_dtype=pl.String).alias("currency")

    def _asset_currency_expr(self) -> pl.Expr:
        """Each row's asset's quote currency (from ``asset_id``)."""
        if len(self._currencies) == 1:
            return pl.lit(self._currencies[0], dtype=pl.String).alias("currency")
        names = dict(enumerate(self._asset_currency))
        return pl.col("asset_id").replace_strict(names, return_dtype=pl.String).alias("currency")

    def _with_rates(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` (engine ``ts``, ``currency``) with ``fx_rate``: the rate of the row's currency
        in force at its timestamp, the last fx row at or before it (the engine's rule), 1 for
        the base."""
        if self._fx is None or df.height == 0:
            return df.with_columns(pl.lit(1.0).alias("fx_rate"))
        rates = self._fx.rename({"rate": "fx_rate"})
        joined = (
            df.with_row_index("__row")
            .sort("ts")
            .join_asof(rates, on="ts", by="currency", strategy="backward")
        )
        return joined.sort("__row").drop("__row").with_columns(pl.col("fx_rate").fill_null(1.0))

    def _cash_table(self, table: Any) -> pl.DataFrame:
        df = pl.DataFrame(table)
        return df.select(
            self._timestamps(pl.col("ts")).alias("timestamp"),
            self._currency(df),
            "cash",
            "rate",
            "cash_in_base",
            "converted",
            "fx_fee",
        )

    def cash_by_currency(self) -> pl.DataFrame | None:
        """Cash per currency, sparse: a row for a currency at the end of each timestamp where
        its balance or rate changed (``timestamp, currency, cash, rate, cash_in_base,
        converted, fx_fee``; ``cash`` in the currency, ``rate`` base units per unit,
        ``converted``: the amount ``account.auto_convert`` swept to the base at that close,
        ``fx_fee``: its cost in base). A currency's cash at any time is its last row at or
        before it; the equity curve's ``cash`` is their sum in base. ``None`` with one
        currency."""
        return self._cash

    def _equity(self, df: pl.DataFrame, financing: pl.DataFrame | None) -> pl.DataFrame:
        # The engine records financing sparsely (only timestamps that accrued any); its
        # capital flows ride in the same table (column `flow`).
        if financing is not None and "flow" in financing.columns:
            financing = financing.rename({"flow": "flows"})
        kinds = ("borrow_fee", "interest", "dividend", "dividend_paid", "funding", "flows")
        if financing is not None and financing.height:
            financing = financing.select("ts", *[c for c in kinds if c in financing.columns])
            df = df.join(financing, on="ts", how="left")
        df = df.with_columns(
            pl.col(c).fill_null(0.0) if c in df.columns else pl.lit(0.0).alias(c) for c in kinds
        )
        # The drawdown reads the time-weighted index when cash flowed in or out.
        curve = performance_curve(df, self.config.initial_cash)
        drawdown = _drawdown(curve, self.config.initial_cash)
        drawdown_expr: pl.Expr | pl.Series
        if drawdown is None:
            peak = pl.max_horizontal(pl.col("curve").cum_max(), pl.lit(self.config.initial_cash))
            drawdown_expr = (pl.col("curve") / peak - 1.0).alias("drawdown")
            df = df.with_columns(pl.Series("curve", curve))
        else:
            drawdown_expr = pl.Series("drawdown", drawdown)
        # Exposure is notional: a future's or perpetual's (recorded by the engine when the run
        # has one), not its marked value (the unsettled PnL); for shares the two are equal.
        notional = "long_exposure" in df.columns
        gross, net = _exposures(
            df.get_column("long_exposure" if notional else "long_value"),
            df.get_column("short_exposure" if notional else "short_value"),
        )
        return df.select(
            self._timestamps(pl.col("ts")).alias("timestamp"),
            "cash",
            "long_value",
            "short_value",
            "positions_value",
            "equity",
            gross,
            net,
            drawdown_expr,
            "borrow_fee",
            "interest",
            "dividend",
            "dividend_paid",
            "funding",
            "flows",
        )

    def _rejections(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.select(
            "order_id",
            self._timestamps(pl.col("ts")).alias("timestamp"),
            self._asset(),
            "quantity",
            _names(pl.col("reason"), REJECT_REASONS),
        )

    def _order_events(self, df: pl.DataFrame) -> pl.DataFrame:
        reason = pl.col("reason")
        return df.select(
            "order_id",
            self._timestamps(pl.col("ts")).alias("timestamp"),
            _names(pl.col("status"), ORDER_EVENT_STATUSES),
            pl.col("quantity").abs(),
            pl.col("remaining").abs(),
            _absent_as_null("price"),
            _absent_as_null("limit"),
            _absent_as_null("stop"),
            pl.when(reason == _NO_REASON)
            .then(pl.lit(None, dtype=pl.String))
            .otherwise(_names(reason.clip(0, len(REJECT_REASONS) - 1), REJECT_REASONS))
            .alias("reason"),
        )

    def _orders(self, df: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
        quantity = pl.col("quantity")
        # The events sorted by order (stably: each order's history keeps its time order),
        # only the columns read, on one thread (a parallel gather spreads its buffers over the
        # allocator's thread arenas: twice the peak memory for the same copy). Each order's
        # history is its run of rows there: `group_runs` makes the lists over these very
        # buffers (a Polars grouping would copy them once more). The summaries' row order
        # does not matter (joined by order_id, then sorted). The fill sums group the fill
        # events alone (the three columns filtered once, not within every group): the same
        # values in the same order, so the same sums.
        ids = events.get_column("order_id")
        by_order = events.select("order_id", *_HISTORY)
        by_order = (
            by_order.with_columns(ids.set_sorted())
            if ids.is_sorted()
            else by_order.sort("order_id", maintain_order=True, multithreaded=False)
        ).rechunk()
        fill = pl.col("status").is_in(_FILL_STATUSES)
        fills = (
            by_order.select(
                pl.col("order_id").filter(fill),
                quantity.filter(fill),
                (quantity * pl.col("price")).filter(fill).alias("value"),
            )
            .group_by("order_id", maintain_order=True)
            .agg(
                quantity.sum().alias("filled_quantity"),
                (pl.col("value").sum() / quantity.sum()).alias("avg_fill_price"),
            )
        )
        order_id = pl.col("order_id")
        last = by_order.select(pl.col("status").filter(order_id.ne_missing(order_id.shift(-1))))
        summary = (
            pl.DataFrame(group_runs(by_order, "order_id", "history"))
            .hstack(last)
            .select("order_id", "status", "history")
        )
        del by_order, last
        orders = df.select(
            "order_id",
            self._timestamps(pl.col("ts")).alias("timestamp"),
            self._asset(),
            # Polars orders NaN above every number: an unsized order has no side, nor has a
            # fill-time-sized one estimated at zero.
            pl.when(quantity.is_nan() | (quantity == 0))
            .then(pl.lit(None, dtype=pl.String))
            .when(quantity > 0)
            .then(pl.lit("buy"))
            .otherwise(pl.lit("sell"))
            .alias("side"),
            _names(pl.col("order_type"), ORDER_TYPES),
            quantity.abs(),
            _absent_as_null("limit"),
            _absent_as_null("stop"),
            _absent_as_null("trail_amount"),
            _absent_as_null("trail_percent"),
            _names(pl.col("tif"), TIME_IN_FORCE),
            pl.col("parent_id").replace(0, None),
            pl.col("oco_id").replace(0, None),
            _names(pl.col("origin"), ORDER_ORIGINS),
            _names(pl.col("exit_reason"), EXIT_REASONS),
        )
        ids = orders.get_column("order_id")
        if ids.is_sorted() and summary.get_column("order_id").equals(ids):
            # The engine's orders come by id and each has events: the summary lines up row
            # by row (what the join and the sort would give, without them).
            joined = orders.hstack(summary.drop("order_id")).with_columns(ids.set_sorted())
        else:
            joined = orders.join(summary, on="order_id", how="left", maintain_order="left")
            joined = joined.sort("order_id")
        return joined.join(fills, on="order_id", how="left", maintain_order="left").select(
            *orders.columns,
            "status",
            pl.col("filled_quantity").fill_null(0.0),
            pl.when(pl.col("filled_quantity") > 0)
            .then(pl.col("avg_fill_price"))
            .alias("avg_fill_price"),
            "history",
        )

    def _records(self, table: object | None, names: list[str]) -> pl.DataFrame:
        schema: dict[str, pl.DataType] = {
            "timestamp": self.universe.timestamp_dtype,
            "name": pl.String(),
            "value": pl.Float64(),
        }
        if table is None:
            return pl.DataFrame(schema=schema)
        df = pl.DataFrame(cast("ArrowStreamExportable", table))
        if df.height == 0:
            return pl.DataFrame(schema=schema)
        return df.select(
            self._timestamps(pl.col("ts")).alias("timestamp"),
            _names(pl.col("name"), names).alias("name"),
            pl.col("value").cast(pl.Float64),
        )

    # ----------------------------------------------------------------------------- positions

    def positions(self, frequency: str | None = "1d") -> pl.DataFrame:
        """Open positions sampled at a frequency.

        Args:
            frequency: a Polars duration string (``"1d"``, ``"1w"``, ``"1mo"``, ``"4h"``, ...).
                Time is cut into periods with ``dt.truncate(frequency)`` (in the data's time
                zone) and each period is sampled at its last equity timestamp, the state at the
                end of the period. ``None`` samples every timestamp.

        Returns:
            ``timestamp, asset, quantity, price, market_value``, one row per non-zero position
            at each sample time, sorted by timestamp then asset. ``quantity`` is signed (short
            positions are negative), ``price`` is the asset's last close at or before the sample
            time (the engine's mark) and ``market_value = quantity * price``. Summed over assets
            at a timestamp, ``market_value`` equals ``equity.positions_value`` for shares with
            multiplier 1 (a contract's notional is ``market_value x multiplier``; a futures or
            perpetual position adds only its unsettled PnL to ``positions_value``).

        Computed with vectorised Polars operations from the fills and the splits of held
        positions (running signed quantity per asset) and the feed's closes (see
        :mod:`~ml4t.backtest.results.positions`).
        """
        samples = sample_times(self.equity, frequency)
        if self._feed is None:
            # A loaded result: sample the positions saved at every timestamp.
            full = self._every_timestamp_positions()
            return full.join(samples.to_frame(), on="timestamp", how="semi")
        sample_ns = samples.dt.cast_time_unit("ns").to_physical().to_numpy()
        return positions_at(
            self.fills,
            self._feed.frame.select("ts", "asset_id", "close"),
            np.ascontiguousarray(sample_ns, dtype=np.int64),
            self.universe,
            splits=self._splits,
        )

    def _every_timestamp_positions(self) -> pl.DataFrame:
        if self._positions_all is None:
            self._positions_all = self.positions(None)
        return self._positions_all

    # ------------------------------------------------------------------------------- metrics

    @cached_property
    def returns(self) -> pl.DataFrame:
        """The per-period returns every metric is computed from: ``timestamp, return``, one row
        per equity row. Simple returns of equity; the first is measured from the starting
        capital (``equity[0] / initial_cash - 1``): the period that ends at the first
        timestamp. With capital flows they are time-weighted,
        ``equity[i] / (equity[i-1] + flows[i]) - 1`` (a flow moves cash at the start of its
        timestamp)."""
        eq = self.equity.get_column("equity").cast(pl.Float64).to_numpy()
        has_flows = "flows" in self.equity.columns
        flows = self.equity.get_column("flows").to_numpy() if has_flows else None
        return pl.DataFrame(
            {
                "timestamp": self.equity.get_column("timestamp"),
                "return": period_returns(eq, self.config.initial_cash, flows),
            }
        )

    @property
    def annualization(self) -> Annualization:
        """The periods per year the metrics use and the rule that chose them (see
        :func:`~ml4t.backtest.results.metrics.annualization`).

        Raises:
            ValueError: fewer than 2 timestamps and no ``periods_per_year`` in the config.
        """
        return annualization(
            self.equity.get_column("timestamp"),
            self.config.periods_per_year,
            self.run_info.get("sessions_per_year"),
        )

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Performance metrics (see :func:`ml4t.backtest.results.metrics.compute_metrics`),
        with the config's ``periods_per_year`` and ``risk_free``."""
        return self.metrics_with()

    def metrics_with(
        self,
        benchmark: BenchmarkInput | None = None,
        kind: Literal["prices", "returns"] = "prices",
        *,
        risk_free: float | pl.Series | pl.DataFrame | None = None,
        periods_per_year: PeriodsPerYear | Literal["config"] = "config",
    ) -> dict[str, float]:
        """The metrics with other settings than the config's.

        Args:
            benchmark: optional benchmark prices or returns (see :meth:`benchmark_returns`);
                adds alpha, beta, information ratio, up and down capture.
            kind: ``"prices"`` or ``"returns"`` for the benchmark.
            risk_free: ``None``: the config's ``risk_free``; a float: an annual rate; a series:
                per-period rates, one per equity row; a frame with ``timestamp`` and one value
                column: per-period rates at each equity timestamp (every one must be there).
            periods_per_year: ``"config"`` (the config's), ``None`` (the rule table),
                ``"infer"`` or a number.

        Raises:
            ValueError: a bad benchmark or risk-free input (see :meth:`benchmark_returns`), a
                risk-free frame missing an equity timestamp.
        """
        rf: Any = self.config.risk_free if risk_free is None else risk_free
        if isinstance(rf, pl.DataFrame):
            rf = self._align_benchmark(rf, "returns")
            if rf.null_count():
                raise ValueError(
                    f"risk_free: missing_rows: no rate at {rf.null_count()} of the "
                    f"{rf.len()} equity timestamps"
                )
        ppy = self.config.periods_per_year if periods_per_year == "config" else periods_per_year
        out = compute_metrics(
            self.equity,
            self.trades,
            self.fills,
            initial_cash=self.config.initial_cash,
            periods_per_year=ppy,
            benchmark=None if benchmark is None else self.benchmark_returns(benchmark, kind),
            risk_free=rf,
            sessions_per_year=self.run_info.get("sessions_per_year"),
        )
        non_member = getattr(self, "non_member_pnl", None)
        if non_member is not None:
            out["non_member_pnl"] = float(non_member.get_column("pnl").sum())
        return out

    def benchmark_returns(
        self, benchmark: BenchmarkInput, kind: Literal["prices", "returns"] = "prices"
    ) -> pl.Series:
        """A benchmark as per-period returns aligned with :attr:`equity` rows.

        Args:
            benchmark: either a ``pl.Series`` with one value per equity row (aligned by
                position), or a ``pl.DataFrame`` with a ``timestamp`` column and one value
                column. A frame of prices is aligned as of each equity timestamp (the last
                price at or before it); a frame of returns must have a row at each equity
                timestamp it covers (missing rows are null).
            kind: ``"prices"`` (levels; returns are computed between consecutive equity
                timestamps, so the first period has none) or ``"returns"`` (simple per-period
                returns).

        Returns:
            A Float64 series named ``benchmark``, one value per equity row; null where
            unknown.

        Raises:
            ValueError: on a length mismatch, a frame without a ``timestamp`` column or with
                other than one value column, a time zone different from the data's, or an
                unknown ``kind``.
        """
        if kind not in ("prices", "returns"):
            raise ValueError(f"kind must be 'prices' or 'returns', got {kind!r}")
        n = self.equity.height
        benchmark = _benchmark_as_polars(benchmark)
        if isinstance(benchmark, pl.Series):
            if benchmark.len() != n:
                raise ValueError(
                    f"benchmark series must have one value per equity row ({n}), "
                    f"got {benchmark.len()}; pass a frame with a timestamp column to align by time"
                )
            values = benchmark.cast(pl.Float64)
        else:
            values = self._align_benchmark(benchmark, kind)
        values = values.fill_nan(None)
        if kind == "prices":
            values = values / values.shift(1) - 1.0
        out: pl.Series = values.alias("benchmark")
        return out

    def _align_benchmark(self, frame: pl.DataFrame, kind: str) -> pl.Series:
        if "timestamp" not in frame.columns:
            raise ValueError("benchmark frame must have a 'timestamp' column")
        value_columns = [c for c in frame.columns if c != "timestamp"]
        if len(value_columns) != 1:
            raise ValueError(
                f"benchmark frame must have exactly one value column besides 'timestamp', "
                f"got {value_columns}"
            )
        ts = frame.get_column("timestamp")
        if ts.dtype == pl.Date:
            ts = ts.cast(pl.Datetime("ns"))
        if not isinstance(ts.dtype, pl.Datetime):
            raise ValueError(f"benchmark timestamp must be Date or Datetime, got {ts.dtype}")
        if ts.dtype.time_zone != self.time_zone:
            raise ValueError(
                f"benchmark timestamps are in time zone {ts.dtype.time_zone!r} but the data's "
                f"are in {self.time_zone!r}; convert them first"
            )
        right = pl.DataFrame(
            {
                "timestamp": ts.dt.cast_time_unit("ns"),
                "value": frame.get_column(value_columns[0]).cast(pl.Float64),
            }
        ).sort("timestamp")
        left = self.equity.select("timestamp")
        if kind == "prices":
            joined = left.join_asof(right, on="timestamp", strategy="backward")
        else:
            joined = left.join(right, on="timestamp", how="left", maintain_order="left")
        return joined.get_column("value")

    def metrics_vs(
        self,
        benchmark: BenchmarkInput,
        kind: Literal["prices", "returns"] = "prices",
        *,
        risk_free: float | pl.Series | pl.DataFrame | None = None,
    ) -> dict[str, float]:
        """The metrics plus ``alpha`` (annualised), ``beta``, ``information_ratio``,
        ``up_capture`` and ``down_capture`` against a benchmark (see :meth:`benchmark_returns`
        for the accepted forms, :meth:`metrics_with` for ``risk_free`` and
        :func:`~ml4t.backtest.results.metrics.compute_metrics` for the definitions)."""
        return self.metrics_with(benchmark, kind, risk_free=risk_free)

    def confidence_intervals(
        self,
        level: float = 0.95,
        n: int = 2000,
        seed: int = 0,
        *,
        block_length: float | None = None,
    ) -> BootstrapIntervals:
        """Stationary-bootstrap percentile intervals of the Sharpe ratio, CAGR and maximum
        drawdown of the equity curve's per-period returns (see
        :func:`ml4t.backtest.stats.confidence_intervals`).

        The estimates are the :attr:`metrics` ``sharpe``, ``cagr`` and ``max_drawdown``: the
        Sharpe ratio annualised with the run's ``periods_per_year``, CAGR over the calendar
        years from the first to the last equity timestamp, the drawdown's peak starting at the
        initial cash. ``n`` resamples, mean block length by Politis and White's rule unless
        ``block_length`` is given; the same ``seed`` gives the same intervals.

        Raises:
            StatsError: fewer than 9 equity rows, no calendar time elapsed, equity reaching
                zero, or a bad ``level``/``n``/``seed``/``block_length``.
        """
        equity = self.equity.get_column("equity").cast(pl.Float64).to_numpy()
        if equity.shape[0] < 9:
            raise StatsError(
                f"equity: at_least_9: {equity.shape[0]} equity row(s) are too few to resample"
            )
        returns = self.returns.get_column("return").to_numpy()
        if not np.all(np.isfinite(returns)):
            raise StatsError("equity: finite: a period return is not finite (equity reached zero)")
        timestamps = self.equity.get_column("timestamp")
        elapsed = timestamps[-1] - timestamps[0]
        years = elapsed.total_seconds() / SECONDS_PER_YEAR
        if not years > 0.0:
            raise StatsError(
                "equity: elapsed_time: no calendar time elapsed between the equity timestamps"
            )
        return _bootstrap_intervals(
            returns,
            level=level,
            n=n,
            seed=seed,
            block_length=block_length,
            periods_per_year=self.metrics["periods_per_year"],
            years=years,
        )

    @overload
    def summary(self, format: Literal["text"] = "text") -> str: ...
    @overload
    def summary(self, format: Literal["dict"]) -> dict[str, Any]: ...
    @overload
    def summary(self, format: Literal["frame"]) -> pl.DataFrame: ...

    def summary(self, format: Literal["text", "dict", "frame"] = "text") -> Any:
        """The metrics for people: the period, initial and final equity, then each metric with
        its unit, by section.

        Args:
            format: ``"text"``: an aligned plain-text table (percentages as %, money with
                thousands separators, ratios to 2 decimals, units such as ``/ yr``);
                ``"dict"``: ``start``, ``end``, ``timestamps``, ``annualization``,
                ``initial_cash``, ``final_equity`` and every metric, as values;
                ``"frame"``: one row per figure, ``section, metric, label, value, unit, text``.

        Raises:
            ValueError: an unknown format.
        """
        return summarize(self, format)

    def _repr_html_(self) -> str:
        """Jupyter's display: headline figures, the period, final equity and a small equity
        sparkline (inline SVG, no JavaScript)."""
        return result_html(self)

    @property
    def plot(self) -> ResultPlots:
        """Plotly figures of this result, shown inline in Jupyter and reused by the report:
        ``result.plot.equity(benchmark=None, log=False)``, ``.drawdown()``,
        ``.returns_heatmap()``, ``.rolling(metric, window)``, ``.exposure()``, ``.trades()``,
        ``.positions(top=10)`` and the tearsheet's others (see
        :class:`~ml4t.backtest.results.plots.ResultPlots`)."""
        return ResultPlots(self)

    # -------------------------------------------------------------------------------- report

    def report(
        self,
        path: str | Path = "report.html",
        benchmark: BenchmarkInput | None = None,
        *,
        benchmark_kind: Literal["prices", "returns"] = "prices",
        title: str = "Backtest report",
        plotlyjs: Literal["embed", "cdn", "directory"] = "embed",
        prediction: str | None = None,
    ) -> Path:
        """Writes the HTML tearsheet and returns the path written (see
        :func:`ml4t.backtest.results.report.write_report`): ``plotlyjs="embed"`` (the default,
        works offline), ``"cdn"`` (a small file that loads plotly.js from the network) or
        ``"directory"`` (``plotly.min.js`` beside the report); ``prediction`` names a feature
        column for the information coefficient and quantile views (defaults to the config's
        ``output.prediction``)."""
        return write_report(
            self,
            path,
            benchmark=benchmark,
            benchmark_kind=benchmark_kind,
            title=title,
            plotlyjs=plotlyjs,
            prediction=prediction if prediction is not None else self.config.output.prediction,
        )

    # ----------------------------------------------------------------------------- save/load

    def input_summary(self) -> dict[str, Any]:
        """What the run read: row and asset counts, time range, time zone, asset names,
        signal columns and a checksum of the engine frame (see :func:`frame_checksum`)."""
        if self._input is None:
            feed = self._feed
            assert feed is not None  # a loaded result has its summary from the manifest
            ts = self.equity.get_column("timestamp")
            self._input = {
                "rows": len(feed),
                "n_assets": feed.n_assets,
                "n_timestamps": self.equity.height,
                "first_timestamp": ts.min().isoformat() if ts.len() else None,  # type: ignore[union-attr]
                "last_timestamp": ts.max().isoformat() if ts.len() else None,  # type: ignore[union-attr]
                "time_zone": feed.time_zone,
                "assets": list(feed.assets),
                "signal_columns": list(feed.signal_columns),
                "checksum": frame_checksum(feed.engine_frame),
            }
        return self._input

    def save(self, directory: str | Path) -> Path:
        """Writes the result to ``directory`` (created if needed) and returns its path.

        Files: one Parquet per record (``fills``, ``trades``, ``equity``, ``rejected_orders``,
        ``orders``, ``order_events``, ``records``, and ``positions`` at every timestamp),
        ``metrics.json`` (non-finite values as the strings ``"NaN"``, ``"Infinity"``,
        ``"-Infinity"``), ``config.yaml`` (the resolved :class:`BacktestConfig`) and
        ``manifest.json`` (library version, what the run read with a checksum of the engine
        frame, when it ran and how long it took, and the row count and SHA-256 of each file).
        :meth:`load` reads it back without the data.

        The save is all or nothing: every file is first written into a temporary directory
        inside ``directory``, the old ``manifest.json`` (if any) is removed, the files are
        renamed into place and the new manifest comes last. An interrupted save (Ctrl-C, a full
        disk) therefore leaves either the previous result or a directory without a manifest,
        which :meth:`load` refuses, never a mix of two runs under a valid manifest. Other files
        in ``directory`` (a ``report.html``, say) are left alone.

        Raises:
            OSError: a file cannot be written; the message names the path.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=out))
        try:
            files = self._write_files(staging)
            manifest = {
                "format": SAVE_FORMAT,
                "library": "ml4t-backtest",
                "version": __version__,
                "saved_at": datetime.now(timezone.utc).isoformat(),
                "run": self.run_info,
                "input": self.input_summary(),
                "files": files,
            }
            manifest_text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
            (staging / MANIFEST).write_text(manifest_text)
            (out / MANIFEST).unlink(missing_ok=True)
            for name in files:
                os.replace(staging / name, out / name)
            os.replace(staging / MANIFEST, out / MANIFEST)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out

    def _write_files(self, folder: Path) -> dict[str, dict[str, Any]]:
        """Writes every file of the layout but the manifest; returns their manifest entries."""
        frames = {name: getattr(self, name) for name in RECORD_NAMES}
        frames["positions"] = self._every_timestamp_positions()
        if self._cash is not None:
            frames["cash"] = self._cash  # several currencies only
        files: dict[str, dict[str, Any]] = {}
        for name, frame in frames.items():
            path = folder / f"{name}.parquet"
            try:
                frame.write_parquet(path, statistics=False)
            except pl.exceptions.PolarsError as err:
                raise OSError(f"{path}: cannot write: {err}") from err
            files[path.name] = {"rows": frame.height}
        metrics = {k: _json_float(v) for k, v in self.metrics.items()}
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        self.config.to_yaml(folder / "config.yaml")
        for name in ("metrics.json", "config.yaml"):
            files[name] = {}
        for name, info in files.items():
            info["sha256"] = _sha256_file(folder / name)
        return files

    @classmethod
    def load(cls, directory: str | Path) -> BacktestResult:
        """Reads a result written by :meth:`save`. The data feed is not needed: positions are
        read from ``positions.parquet`` and asset names and time zone from the manifest. Every
        file is checked against the SHA-256 the manifest recorded before it is read.

        Raises:
            ResultFileError: the manifest is missing, unreadable or of an unknown format, or a
                file of the layout is missing, truncated or changed since it was saved
                (``path: rule: detail``).
        """
        folder = Path(directory)
        manifest = _read_manifest(folder)
        listed = manifest["files"]
        for name in SAVED_FILES:
            _check_file(folder, name, listed)
        self = cls.__new__(cls)
        try:
            self.config = BacktestConfig.from_yaml(folder / "config.yaml")
        except ConfigError as err:
            raise ResultFileError(f"{folder / 'config.yaml'}: unreadable: {err}") from err
        self._feed = None
        self._raw = {}
        self._splits = None
        self.non_member_pnl = None  # not saved; its sum is in the metrics
        try:
            self._input = dict(manifest["input"])
            self.universe = Universe(list(self._input["assets"]), self._input["time_zone"])
            self.run_info = dict(manifest["run"])
        except (KeyError, TypeError, ValueError) as err:
            raise ResultFileError(
                f"{folder / MANIFEST}: unreadable: missing or malformed entry {err}"
            ) from err
        for name in RECORD_NAMES:
            setattr(self, name, _read_parquet(folder / f"{name}.parquet"))
        self._positions_all = _read_parquet(folder / "positions.parquet")
        self._currencies = [self.config.account.base_currency]
        self._cash = None
        if "cash.parquet" in listed:
            _check_file(folder, "cash.parquet", listed)
            self._cash = _read_parquet(folder / "cash.parquet")
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
            self.__dict__["metrics"] = {k: float(v) for k, v in metrics.items()}
        except (ValueError, TypeError, AttributeError) as err:
            raise ResultFileError(f"{folder / 'metrics.json'}: unreadable: {err}") from err
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickling carries the frames, metrics, config and run info, and (like :meth:`save`)
        the positions at every timestamp and the input summary instead of the feed: an
        unpickled result is like a loaded one."""
        if self._feed is not None:
            self.input_summary()
            self._every_timestamp_positions()
        for name in RECORD_NAMES:
            getattr(self, name)
        state = dict(self.__dict__)
        state["_feed"] = None
        state["_raw"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ---------------------------------------------------------------------------------- misc

    def __repr__(self) -> str:
        return (
            f"BacktestResult(timestamps={self.equity.height}, fills={self.fills.height}, "
            f"trades={self.trades.height}, final_equity={self.final_equity:,.2f})"
        )

    @property
    def final_equity(self) -> float:
        """Equity at the last timestamp."""
        if self.equity.is_empty():
            return self.config.initial_cash
        return float(self.equity["equity"][-1])
