"""What the renderers (``formatting``, ``plots``, ``report``) read of a result.

:class:`ResultView` is a protocol that :class:`~ml4t.backtest.results.BacktestResult` satisfies.
The renderers name it instead of the class, so a result renders itself (``summary()``,
``plot``, ``report()``) without the modules importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import polars as pl

if TYPE_CHECKING:
    from ml4t.backtest.config import BacktestConfig
    from ml4t.backtest.data import PolarsDataFeed
    from ml4t.backtest.results.metrics import Annualization
    from ml4t.backtest.universe import Universe

BenchmarkInput: TypeAlias = "pl.Series | pl.DataFrame | Any"
"""A benchmark: a series aligned with the equity rows (Polars or pandas with a plain index, a
numpy array), or timestamped values (a frame with ``timestamp`` and one value column; a pandas
Series indexed by time; a pandas frame, ``pyarrow.Table`` or other Arrow stream)."""


class ResultView(Protocol):
    """The parts of a backtest result the renderers read (see ``BacktestResult``)."""

    config: BacktestConfig
    universe: Universe
    _feed: PolarsDataFeed | None

    @property
    def fills(self) -> pl.DataFrame: ...
    @property
    def trades(self) -> pl.DataFrame: ...
    @property
    def equity(self) -> pl.DataFrame: ...
    @property
    def returns(self) -> pl.DataFrame: ...
    @property
    def metrics(self) -> dict[str, float]: ...
    @property
    def assets(self) -> list[str]: ...
    @property
    def time_zone(self) -> str | None: ...
    @property
    def annualization(self) -> Annualization: ...
    @property
    def final_equity(self) -> float: ...
    def positions(self, frequency: str | None = "1d") -> pl.DataFrame: ...
    def benchmark_returns(
        self, benchmark: BenchmarkInput, kind: Literal["prices", "returns"] = "prices"
    ) -> pl.Series: ...
    def metrics_vs(
        self,
        benchmark: BenchmarkInput,
        kind: Literal["prices", "returns"] = "prices",
        *,
        risk_free: float | pl.Series | pl.DataFrame | None = None,
    ) -> dict[str, float]: ...
