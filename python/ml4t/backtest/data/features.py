"""``FeatureProvider``: the one public view of a feed's features (signals, indicators and
market-wide context), for strategies and risk rules alike, with point-in-time lookups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ml4t.backtest.universe import Universe


@dataclass(frozen=True)
class FeatureProvider:
    """The one interface to a feed's features, for strategies and risk rules alike.

    - **per-(timestamp, asset) features**: ``signals`` (price-frame extra columns and the
      ``signals`` frame) and ``indicators`` (the ``indicators`` frame);
    - **per-timestamp market features**: ``context`` (the ``context`` frame).

    All of them are feed columns joined point in time (a value is never seen before its
    timestamp or availability time). Strategies read them through ``MarketEvent.signals`` (all),
    ``MarketEvent.indicators`` and ``MarketEvent.context``; risk rules through
    ``RiskContext.features`` (signals and indicators) and ``RiskContext.market_features``.
    :meth:`at` and :meth:`market_at` look values up for inspection.

    Example:
        >>> from ml4t.backtest import PolarsDataFeed
        >>> from ml4t.backtest.synthetic import make_bars
        >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=5, seed=1))
        >>> feed.features.signals
        ('score', 'signal')
    """

    signals: tuple[str, ...]
    indicators: tuple[str, ...]
    context: tuple[str, ...]
    frame: Callable[[], pl.DataFrame] = field(repr=False, compare=False)
    universe: Universe = field(repr=False, compare=False)

    @property
    def asset_features(self) -> tuple[str, ...]:
        """Per-(timestamp, asset) feature columns: signals, then indicators."""
        return self.signals + self.indicators

    @property
    def market_features(self) -> tuple[str, ...]:
        """Per-timestamp market feature columns."""
        return self.context

    def groups(self) -> dict[str, list[str]]:
        """The grouping the engine needs: ``{"indicators": [...], "context": [...]}``."""
        return {"indicators": list(self.indicators), "context": list(self.context)}

    def _row(self, timestamp: Any, asset: str | None) -> pl.DataFrame:
        rows = self.frame().filter(pl.col("ts") == self.universe.to_ns(timestamp))
        if asset is not None:
            rows = rows.filter(pl.col("asset_id") == self.universe.code(asset))
        return rows.head(1)

    def at(self, timestamp: Any, asset: str) -> dict[str, float]:
        """The asset's features at ``timestamp`` (empty when it has no bar then)."""
        row = self._row(timestamp, asset)
        return {} if row.is_empty() else row.select(self.asset_features).row(0, named=True)

    def market_at(self, timestamp: Any) -> dict[str, float]:
        """The market features at ``timestamp`` (empty when no asset has a bar then)."""
        row = self._row(timestamp, None)
        return {} if row.is_empty() else row.select(self.context).row(0, named=True)
