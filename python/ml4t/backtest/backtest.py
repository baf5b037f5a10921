"""``Backtest``: ties a feed, a strategy and a config together and runs the Rust engine.

Example:
    >>> from ml4t.backtest import Backtest, PolarsDataFeed, SignalStrategy
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=50, seed=1))
    >>> result = Backtest(feed, SignalStrategy("signal", quantity=10)).run(progress=False)
    >>> result.equity.height
    50
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ml4t.backtest import _core
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.progress import progress_bar
from ml4t.backtest.result import BacktestResult
from ml4t.backtest.slippage import SlippageModel
from ml4t.backtest.strategy import (
    BuiltinStrategy,
    SignalStrategy,
    Strategy,
    TopKStrategy,
    _BatchDriver,
)


class Backtest:
    """One backtest: ``Backtest(feed, strategy, config=...).run()``.

    Args:
        feed: the validated data.
        strategy: a :class:`Strategy` subclass instance, or a built-in
            (:class:`SignalStrategy`, :class:`TopKStrategy`) that runs entirely in Rust.
        config: a :class:`BacktestConfig` (defaults when ``None``).
        slippage_model: a :class:`~ml4t.backtest.slippage.SlippageModel` subclass instance,
            used when ``config.slippage.model`` is ``"custom"`` (and only then).

    Raises:
        ConfigError: a bad argument; ``slippage.model: 'custom' ...`` without a
            ``slippage_model`` or ``slippage_model: ...`` with another model.
    """

    def __init__(
        self,
        feed: PolarsDataFeed,
        strategy: Strategy | BuiltinStrategy,
        config: BacktestConfig | None = None,
        slippage_model: SlippageModel | None = None,
    ) -> None:
        if not isinstance(feed, PolarsDataFeed):
            raise ConfigError(f"feed: expected a PolarsDataFeed, got {type(feed).__name__}")
        if not isinstance(strategy, (Strategy, SignalStrategy, TopKStrategy)):
            raise ConfigError(
                f"strategy: expected a Strategy subclass instance or a built-in strategy, got "
                f"{type(strategy).__name__}"
            )
        self.feed = feed
        self.strategy = strategy
        self.config = config or BacktestConfig()
        custom = self.config.slippage.model == "custom"
        if slippage_model is not None:
            if not isinstance(slippage_model, SlippageModel):
                raise ConfigError(
                    "slippage_model: expected a SlippageModel subclass instance, got "
                    f"{type(slippage_model).__name__}"
                )
            if type(slippage_model).price is SlippageModel.price:
                raise ConfigError(
                    f"slippage_model: {type(slippage_model).__name__} does not implement price()"
                )
            if not custom:
                raise ConfigError(
                    f"slippage_model: given, but slippage.model is "
                    f"'{self.config.slippage.model}'; set slippage={{'model': 'custom'}}"
                )
        elif custom:
            raise ConfigError(
                "slippage.model: 'custom' needs a SlippageModel instance: "
                "Backtest(..., slippage_model=MyModel())"
            )
        self.slippage_model = slippage_model

    def run(self, progress: bool | None = None) -> BacktestResult:
        """Runs the backtest and returns its result.

        Args:
            progress: show a progress bar (tqdm, in bars per second) on stderr. ``None`` (the
                default) shows it only when stderr is a terminal; ``True`` forces it, ``False``
                switches it off.

        Raises:
            ConfigError: if ``progress`` is not ``True``, ``False`` or ``None``.
        """
        engine_config = self.config.engine_dict()
        if self.slippage_model is not None:
            engine_config["slippage_custom"] = self.slippage_model
            engine_config["slippage_assets"] = list(self.feed.assets)
        started_at = datetime.now(timezone.utc)
        start = time.perf_counter()
        with progress_bar(len(self.feed), progress) as callback:
            if isinstance(self.strategy, Strategy):
                mode = self.strategy.call_mode()
                target: object = (
                    _BatchDriver(self.strategy, self.feed) if mode == "batch" else self.strategy
                )
                raw = _core.run_python(
                    self.feed.engine_data(),
                    self.feed.n_assets,
                    engine_config,
                    self.feed.assets,
                    self.feed.to_datetime,
                    target,
                    mode,
                    self.strategy.wants_fills(),
                    progress=callback,
                    wants_orders=self.strategy.wants_orders(),
                )
            else:
                raw = _core.run_builtin(
                    self.feed.engine_data(),
                    self.feed.n_assets,
                    engine_config,
                    self.strategy.spec(),
                    progress=callback,
                )
        run_info = {
            "started_at": started_at.isoformat(),
            "duration_seconds": time.perf_counter() - start,
        }
        return BacktestResult(raw, self.feed, self.config, run_info=run_info)
