"""The user's extension point: subclass :class:`Strategy` in Python (the built-in Rust
strategies are in :mod:`ml4t.backtest.strategies`).

A Python strategy overrides exactly one of two methods; the engine detects which:

- ``on_timestamp_batch(timestamp, batch, context)``: once per timestamp with a zero-copy
  :class:`TimestampBatch` of that timestamp's rows (fast: one Python call per timestamp);
- ``on_market_data(event, context)``: once per asset bar with a ``MarketEvent``.

A walk-forward or CPCV study hands a strategy each fold's model through ``on_fold(model,
fold)``, before the fold's first test timestamp.

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

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest.errors import ConfigError
from ml4t.backtest.universe import Universe

if TYPE_CHECKING:
    from ml4t.backtest._core import Context, FillEvent, MarketEvent, OrderUpdate


class Strategy:
    """Base class of Python strategies. Override ``on_timestamp_batch`` or ``on_market_data``;
    the hooks ``on_start``, ``on_fill`` and ``on_end`` are optional."""

    def on_timestamp_batch(
        self, timestamp: datetime, batch: TimestampBatch, context: Context
    ) -> None:
        """Called once per timestamp with all of that timestamp's bars (``timestamp`` in the
        data's time zone, naive when the data is)."""
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

    def on_fold(self, model: Any, fold: Any) -> None:
        """Called by a walk-forward or CPCV run (:mod:`ml4t.backtest.study`) whose ``fit``
        returned a model (anything but a predictions frame): once per fold, before the fold's
        first test timestamp, with that model and the fold (a
        :class:`~ml4t.backtest.study.Fold`: its index and train/test ranges). Keep the model
        and use it on the bars that follow. Default: nothing."""

    def params(self) -> dict[str, Any]:
        """The parameters recorded with a run (``result.run_info["strategy"]["params"]`` and the
        saved manifest): by default the instance's public attributes. Override to choose."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

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
    names; ``batch.asset_ids`` their codes; ``batch.members`` whether each row's asset is a
    member of the point-in-time universe now; ``batch.to_polars()`` a DataFrame view.
    """

    __slots__ = ("_columns", "_context", "_end", "_frame", "_start", "_universe")

    def __init__(
        self,
        universe: Universe,
        columns: dict[str, npt.NDArray[Any]],
        start: int,
        end: int,
        frame: pl.DataFrame,
        context: Context | None = None,
    ) -> None:
        self._universe = universe
        self._columns = columns
        self._start = start
        self._end = end
        self._frame = frame  # the chunk ``columns`` come from
        self._context = context  # the run's context, which holds the membership

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
    def members(self) -> npt.NDArray[np.bool_]:
        """Whether each row's asset is a member of the point-in-time universe now
        (``PolarsDataFeed(universe=...)``: its latest row at or before this timestamp), aligned
        with :attr:`asset_ids`; all true when the feed has no universe. Built when read, from
        the engine's own membership (one array per call, none per bar)."""
        mask = self._context.member_mask if self._context is not None else b""
        if not mask:
            return np.ones(len(self), dtype=np.bool_)
        by_code = np.frombuffer(mask, dtype=np.bool_)
        out: npt.NDArray[np.bool_] = by_code[self.asset_ids]
        return out

    @property
    def assets(self) -> list[str]:
        """Asset names of the rows."""
        names = self._universe.assets
        return [names[i] for i in self.asset_ids]

    def to_polars(self) -> pl.DataFrame:
        """The rows as a Polars DataFrame (a zero-copy slice) with an ``asset`` column added."""
        view = self._frame.slice(self._start, self._end - self._start)
        return view.with_columns(self._universe.asset_names(pl.col("asset_id")).alias("asset"))
