"""Studies: many backtests over one feed (sweeps, walk-forward refits, combinatorial purged
cross-validation), on every core of one machine or on a Ray or Dask
cluster, with one table back and a resumable cache (see ``docs/studies.md``).

Importing this package imports no optional dependency: Ray, Dask and Optuna are imported when
first used.

Example:
    >>> from ml4t.backtest import PolarsDataFeed, SignalStrategy
    >>> from ml4t.backtest.risk import StopLoss
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=120, seed=5))
    >>> sweep = Sweep(feed, SignalStrategy("signal", quantity=10), {"stop": [0.01, 0.03]},
    ...               risk=lambda stop: [StopLoss(pct=stop)])
    >>> result = sweep.run(executor="threads", progress=False)
    >>> result.best("sharpe")["trial"] in (0, 1)
    True
"""

from ml4t.backtest.study.cache import data_checksum
from ml4t.backtest.study.cpcv import CombinatorialPurgedCV, CPCVResult
from ml4t.backtest.study.directions import DIRECTIONS, direction
from ml4t.backtest.study.executors import feed_transports
from ml4t.backtest.study.ledger import LedgerCount, TrialLedger, record_trials
from ml4t.backtest.study.refit import Fold
from ml4t.backtest.study.result import SweepResult
from ml4t.backtest.study.space import Choice, IntUniform, RandomSearch, Uniform
from ml4t.backtest.study.sweep import Sweep
from ml4t.backtest.study.walkforward import WalkForward, WalkForwardResult

__all__ = [
    "DIRECTIONS",
    "CPCVResult",
    "Choice",
    "CombinatorialPurgedCV",
    "Fold",
    "IntUniform",
    "LedgerCount",
    "RandomSearch",
    "Sweep",
    "SweepResult",
    "TrialLedger",
    "Uniform",
    "WalkForward",
    "WalkForwardResult",
    "data_checksum",
    "direction",
    "feed_transports",
    "record_trials",
]
