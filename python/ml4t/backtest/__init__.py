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

from ml4t.backtest._core import __version__
from ml4t.backtest.backtest import Backtest
from ml4t.backtest.config import (
    AccountConfig,
    BacktestConfig,
    CommissionConfig,
    ExecutionConfig,
    SlippageConfig,
)
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import (
    BacktestError,
    ConfigError,
    DataValidationError,
    OrderError,
    RiskRuleError,
    StrategyError,
)
from ml4t.backtest.features import FeatureProvider
from ml4t.backtest.result import BacktestResult
from ml4t.backtest.risk import RiskContext, RiskDecision, RiskRule
from ml4t.backtest.slippage import SlippageModel
from ml4t.backtest.storage import write_dataset
from ml4t.backtest.strategy import SignalStrategy, Strategy, TimestampBatch, TopKStrategy
from ml4t.backtest.validation import ValidationReport, validate

__all__ = [
    "AccountConfig",
    "Backtest",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "CommissionConfig",
    "ConfigError",
    "DataValidationError",
    "ExecutionConfig",
    "FeatureProvider",
    "OrderError",
    "PolarsDataFeed",
    "RiskContext",
    "RiskDecision",
    "RiskRule",
    "RiskRuleError",
    "SignalStrategy",
    "SlippageConfig",
    "SlippageModel",
    "Strategy",
    "StrategyError",
    "TimestampBatch",
    "TopKStrategy",
    "ValidationReport",
    "__version__",
    "validate",
    "write_dataset",
]
