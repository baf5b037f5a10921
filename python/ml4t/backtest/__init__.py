"""ml4t-backtest: Rust-accelerated, event-driven backtesting for ML trading strategies.

Example:
    >>> from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, TopKStrategy
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=10, n_bars=100, seed=7))
    >>> config = BacktestConfig(commission={"model": "percent", "rate": 0.001})
    >>> result = Backtest(feed, TopKStrategy("score", k=3), config=config).run()
    >>> list(result.metrics)[:3]
    ['total_return', 'cagr', 'volatility']
"""

from ml4t.backtest._core import Context, FillEvent, MarketEvent, OrderUpdate, __version__
from ml4t.backtest.backtest import Backtest
from ml4t.backtest.config import (
    AccountConfig,
    BacktestConfig,
    CommissionConfig,
    DataConfig,
    ExecutionConfig,
    SlippageConfig,
    StrategyConfig,
    ValidationConfig,
)
from ml4t.backtest.data import (
    FeatureProvider,
    PolarsDataFeed,
    ValidationReport,
    validate,
    write_dataset,
)
from ml4t.backtest.errors import (
    BacktestError,
    ConfigError,
    DataValidationError,
    OrderError,
    RiskRuleError,
    SignalTimingError,
    StrategyError,
)
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.risk import RiskContext, RiskDecision, RiskRule
from ml4t.backtest.slippage import SlippageModel
from ml4t.backtest.strategies import SignalStrategy, TopKStrategy
from ml4t.backtest.strategy import Strategy, TimestampBatch
from ml4t.backtest.universe import Universe

__all__ = [
    "AccountConfig",
    "Backtest",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "CommissionConfig",
    "ConfigError",
    "Context",
    "DataConfig",
    "DataValidationError",
    "ExecutionConfig",
    "FeatureProvider",
    "FillEvent",
    "MarketEvent",
    "OrderError",
    "OrderUpdate",
    "PolarsDataFeed",
    "RiskContext",
    "RiskDecision",
    "RiskRule",
    "RiskRuleError",
    "SignalStrategy",
    "SignalTimingError",
    "SlippageConfig",
    "SlippageModel",
    "Strategy",
    "StrategyConfig",
    "StrategyError",
    "TimestampBatch",
    "TopKStrategy",
    "Universe",
    "ValidationConfig",
    "ValidationReport",
    "__version__",
    "validate",
    "write_dataset",
]
