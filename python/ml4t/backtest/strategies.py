"""The built-in strategies: specs of strategies that run entirely in Rust with the GIL
released (mirrors ``rust/core/src/strategies.rs``). Each is a frozen dataclass whose
:meth:`spec` is the dict the engine builds the strategy from.

Example:
    >>> from ml4t.backtest import Backtest, PolarsDataFeed
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=4, n_bars=30, seed=2))
    >>> Backtest(feed, TopKStrategy("score", k=2)).run(progress=False).equity.height
    30
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml4t.backtest.errors import ConfigError


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
