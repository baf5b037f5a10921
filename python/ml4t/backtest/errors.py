"""The exception hierarchy of ml4t-backtest.

Every error the library raises on purpose is a :class:`BacktestError`. Messages name the column,
the row or (timestamp, asset) key, and the rule that was broken.

Example:
    >>> from ml4t.backtest.errors import BacktestError, DataValidationError
    >>> issubclass(DataValidationError, BacktestError)
    True
"""

from __future__ import annotations


class BacktestError(Exception):
    """Base class of every ml4t-backtest error."""


class DataValidationError(BacktestError, ValueError):
    """The input data breaks a rule: missing column, wrong dtype, nulls, duplicates, bad prices."""


class SignalTimingError(BacktestError, ValueError):
    """A signal would be used before it is available (look-ahead)."""


class ConfigError(BacktestError, ValueError):
    """The configuration has an unknown key or an invalid value; the message gives its location."""


class OrderError(BacktestError, ValueError):
    """An order that can never be valid (zero/NaN quantity, unknown asset, bad price)."""


class RiskRuleError(BacktestError):
    """A risk rule has bad parameters or raised during the run."""


class StrategyError(BacktestError):
    """The user's strategy raised; the original exception is chained as ``__cause__``."""


class ResultFileError(BacktestError, ValueError):
    """A saved result cannot be loaded as saved: its manifest is missing or unreadable, or a
    file it lists is missing, truncated or differs from the SHA-256 the manifest recorded. The
    message names the file."""


__all__ = [
    "BacktestError",
    "ConfigError",
    "DataValidationError",
    "OrderError",
    "ResultFileError",
    "RiskRuleError",
    "SignalTimingError",
    "StrategyError",
]
