"""Strategies: subclass :class:`Strategy` in Python, or use a built-in Rust strategy.

A Python strategy overrides exactly one of two methods; the engine detects which:

- ``on_timestamp_batch(timestamp, batch, context)``: once per timestamp with a zero-copy
  :class:`TimestampBatch` of that timestamp's rows (fast: one Python call per timestamp);
- ``on_market_data(event, context)``: once per asset bar with a ``MarketEvent``.

Example:
    >>> import numpy as np
    >>> class TopK(Strategy):
    ...     def __init__(self, k: int) -> None:
    ...         self.k = k
    ...     def on_timestamp_batch(self, timestamp, batch, context):
    ...         best = np.argsort(-batch["score"], kind="stable")[: self.k]
    ...         context.rebalance({batch.assets[i]: 1 / self.k for i in best})
    >>> TopK(5).call_mode()
    'batch'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest.errors import ConfigError

if TYPE_CHECKING:
    from ml4t.backtest._core import Context, FillEvent, MarketEvent, OrderUpdate
    from ml4t.backtest.data import PolarsDataFeed


class Strategy:
    """Base class of Python strategies. Override ``on_timestamp_batch`` or ``on_market_data``;
    the hooks ``on_start``, ``on_fill`` and ``on_end`` are optional."""

    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Context) -> None:
        """Called once per timestamp with all of that timestamp's bars."""
        raise NotImplementedError

    def on_market_data(self, event: MarketEvent, context: Context) -> None:
        """Called once per asset bar."""
        raise NotImplementedError

    def on_start(self, context: Context) -> None:
        """Called once before the first timestamp."""

    def on_fill(self, fill: FillEvent, context: Context) -> None:
        """Called after each fill (only when overridden)."""

    def on_order(self, order: OrderUpdate, context: Context) -> None:
        """Called on each order status change (only when overridden): ``order.status`` is
        ``accepted``, ``partially_filled``, ``filled``, ``cancelled``, ``expired`` or
        ``rejected`` (with ``order.reason``); ``order.filled`` / ``order.remaining`` are
        signed shares."""

    def on_end(self, context: Context) -> None:
        """Called once after the last timestamp."""

    def call_mode(self) -> Literal["batch", "bar"]:
        """Which method the subclass overrides: ``"batch"`` or ``"bar"``."""
        cls = type(self)
        batch = cls.on_timestamp_batch is not Strategy.on_timestamp_batch
        bar = cls.on_market_data is not Strategy.on_market_data
        if batch and bar:
            raise ConfigError(
                f"strategy: {cls.__name__} overrides both on_timestamp_batch and on_market_data; "
                "override exactly one"
            )
        if not (batch or bar):
            raise ConfigError(
                f"strategy: {cls.__name__} overrides neither on_timestamp_batch nor "
                "on_market_data; override exactly one"
            )
        return "batch" if batch else "bar"

    def wants_fills(self) -> bool:
        """True when the subclass overrides ``on_fill``."""
        return type(self).on_fill is not Strategy.on_fill

    def wants_orders(self) -> bool:
        """True when the subclass overrides ``on_order``."""
        return type(self).on_order is not Strategy.on_order


class TimestampBatch:
    """A zero-copy view of one timestamp's rows.

    ``batch["close"]`` or ``batch["score"]`` is a read-only numpy view; ``batch.assets`` the asset
    names; ``batch.asset_ids`` their codes; ``batch.to_polars()`` a DataFrame view.
    """

    __slots__ = ("_columns", "_end", "_feed", "_frame", "_start")

    def __init__(
        self,
        feed: PolarsDataFeed,
        columns: dict[str, npt.NDArray[Any]],
        start: int,
        end: int,
        frame: pl.DataFrame | None = None,
    ) -> None:
        self._feed = feed
        self._columns = columns
        self._start = start
        self._end = end
        self._frame = frame  # the chunk ``columns`` come from (the feed's frame when None)

    def __len__(self) -> int:
        return self._end - self._start

    def __getitem__(self, column: str) -> npt.NDArray[np.float64]:
        try:
            return self._columns[column][self._start : self._end]
        except KeyError:
            raise KeyError(
                f"no column '{column}' in the batch (have {sorted(self._columns)})"
            ) from None

    def __contains__(self, column: str) -> bool:
        return column in self._columns

    @property
    def columns(self) -> list[str]:
        """Column names available through ``batch[name]``."""
        return list(self._columns)

    @property
    def asset_ids(self) -> npt.NDArray[np.uint32]:
        """Asset codes of the rows."""
        return self._columns["asset_id"][self._start : self._end]

    @property
    def assets(self) -> list[str]:
        """Asset names of the rows."""
        names = self._feed.assets
        return [names[i] for i in self.asset_ids]

    def to_polars(self) -> pl.DataFrame:
        """The rows as a Polars DataFrame (a zero-copy slice) with an ``asset`` column added."""
        frame = self._frame if self._frame is not None else self._feed.frame
        view = frame.slice(self._start, self._end - self._start)
        return view.with_columns(self._feed.asset_expr(pl.col("asset_id")).alias("asset"))


class _BatchDriver:
    """Called by the engine once per timestamp; builds the batch view and calls the user.

    The numpy views are taken once per chunk: once for an in-memory feed, and again whenever a
    streaming feed hands the engine a new chunk (``feed.chunk_serial`` changes; the engine's
    row indexes are relative to ``feed.current_chunk``).
    """

    def __init__(self, strategy: Strategy, feed: PolarsDataFeed) -> None:
        self.strategy = strategy
        self._feed = feed
        self._serial = -1
        self._frame: pl.DataFrame | None = None
        self._columns: dict[str, npt.NDArray[Any]] = {}
        if not feed.streaming:
            self._load()
        self._context: Context | None = None
        self._user_call = strategy.on_timestamp_batch
        self._to_datetime = feed.to_datetime

    def _load(self) -> None:
        frame = self._feed.current_chunk
        self._serial = self._feed.chunk_serial
        self._frame = frame
        self._columns = {name: frame[name].to_numpy() for name in frame.columns}

    def on_start(self, context: Context) -> None:
        self._context = context
        self.strategy.on_start(context)

    def on_timestamp(self, start: int, end: int, ts: int) -> None:
        context = self._context
        if context is None:  # the engine always calls on_start first
            raise RuntimeError("on_timestamp called before on_start")
        if self._feed.chunk_serial != self._serial:
            self._load()
        batch = TimestampBatch(self._feed, self._columns, start, end, self._frame)
        self._user_call(self._to_datetime(ts), batch, context)

    def on_end(self, context: Context) -> None:
        self.strategy.on_end(context)


@dataclass(frozen=True)
class SignalStrategy:
    """Built-in Rust strategy trading a precomputed signal column.

    Long while ``signal > long_threshold``; while ``signal < short_threshold`` short when
    ``allow_short`` else flat; otherwise it holds. A position is sized when entered, with
    ``quantity`` shares or ``weight`` of equity (give exactly one), and held until the signal
    changes side. With ``take_profit`` and ``stop_loss`` (fractions of the decision close, e.g.
    0.04 and 0.02) every entry carries a bracket: a limit exit and a stop exit that cancel each
    other. Runs entirely in Rust with the GIL released.

    Example:
        >>> SignalStrategy("signal", quantity=100).spec()["kind"]
        'signal'
    """

    column: str
    quantity: float | None = None
    weight: float | None = None
    long_threshold: float = 0.0
    short_threshold: float = 0.0
    allow_short: bool = False
    take_profit: float | None = None
    stop_loss: float | None = None

    def spec(self) -> dict[str, Any]:
        """The dict the engine reads."""
        if (self.quantity is None) == (self.weight is None):
            raise ConfigError("strategy: give exactly one of quantity or weight")
        return {"kind": "signal", **self.__dict__}


@dataclass(frozen=True)
class TopKStrategy:
    """Built-in Rust strategy holding the ``k`` highest-``score`` assets long (and the
    ``bottom_k`` lowest short) at equal weight ``1/(k+bottom_k)``, rebalanced every
    ``rebalance_every`` timestamps. Ties go to the lower asset code; NaN scores are skipped.

    Example:
        >>> TopKStrategy("score", k=25).spec()["k"]
        25
    """

    score: str
    k: int
    bottom_k: int = 0
    rebalance_every: int = 1

    def spec(self) -> dict[str, Any]:
        """The dict the engine reads."""
        if self.k < 0 or self.bottom_k < 0 or self.k + self.bottom_k == 0:
            raise ConfigError("strategy.k: k and bottom_k must be >= 0 with k + bottom_k > 0")
        if self.rebalance_every < 1:
            raise ConfigError("strategy.rebalance_every: must be >= 1")
        return {"kind": "top_k", **self.__dict__}


BuiltinStrategy = SignalStrategy | TopKStrategy
