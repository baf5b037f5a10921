"""The exception hierarchy of ml4t-backtest.

Every error the library raises on purpose is a :class:`BacktestError`. Messages name the column,
the row or (timestamp, asset) key, and the rule that was broken.

Example:
    >>> from ml4t.backtest.errors import BacktestError, DataValidationError
    >>> issubclass(DataValidationError, BacktestError)
    True
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


class StatsError(BacktestError, ValueError):
    """A statistic of :mod:`ml4t.backtest.stats` cannot be computed from its input: too few
    observations, NaN or infinite returns, zero variance, or a parameter out of its range. The
    message names the argument and the rule."""


class HoldOutError(BacktestError, ValueError):
    """A locked hold-out used out of turn: declared twice on one feed, unlocked without one,
    or unlocked a second time (a hold-out is touched once)."""


class HoldOutWarning(UserWarning):
    """A hold-out declared on data whose same hold-out the trial ledger says was already
    unlocked: results on it are no longer out of sample."""


class UnitsWarning(UserWarning):
    """A value that is valid but looks like a percent given where a fraction is meant (or the
    reverse): a 10% commission, a position cap above 100% of equity, a weight of 25."""


class MarginWarning(UserWarning):
    """A run in which the account refused orders (or parts of them) for want of cash or margin:
    one warning per run, with the count; the orders are in ``result.rejected_orders``."""


class RuinWarning(UserWarning):
    """A run whose equity reached zero: the engine liquidated at the next fill opportunity
    and refused every later order (reason ``ruined``); the equity curve goes on."""


class DelistingWarning(UserWarning):
    """A run that closed positions of delisted assets (their data ended before the run's) or
    cancelled their orders: one warning with the counts."""


class InternalError(BacktestError):
    """A bug in ml4t-backtest or a library it calls (a panic): never the user's mistake.
    The message asks for a report; the original is chained as ``__cause__``."""


_PACKAGE_DIR = str(Path(__file__).resolve().parent)
_PASS_THROUGH = ("functools.py", "contextlib.py")
"""Standard-library frames between the package and the user (``cached_property``, context
managers)."""


def _internal(filename: str) -> bool:
    """A frame of this package, of pydantic (validators run inside it) or a pass-through."""
    if filename.endswith(_PASS_THROUGH) or "/pydantic/" in filename:
        return True
    return filename.startswith(_PACKAGE_DIR) or str(Path(filename).resolve()).startswith(
        _PACKAGE_DIR
    )


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller of this function point at
    the first frame outside ml4t-backtest: the user's line."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning]) -> None:
    """Issues ``message`` at the user's line (:func:`user_stacklevel`), whatever path inside
    the package led here: a metric or data warning names the call that caused it."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


@contextmanager
def panics_as_bugs(where: str) -> Iterator[None]:
    """Turns a Rust panic surfacing from a dependency (pyo3's ``PanicException``, a
    ``BaseException`` that ``except Exception`` misses) into :class:`InternalError`. A last
    resort: inputs are validated so that no panic should happen at all."""
    try:
        yield
    except BaseException as err:
        if type(err).__name__ != "PanicException":
            raise
        raise InternalError(
            f"{where}: internal_error: a panic inside a dependency ({err}); this is a bug, "
            "please report it with the data that triggers it"
        ) from err


__all__ = [
    "BacktestError",
    "ConfigError",
    "DataValidationError",
    "DelistingWarning",
    "HoldOutError",
    "HoldOutWarning",
    "InternalError",
    "MarginWarning",
    "OrderError",
    "ResultFileError",
    "RiskRuleError",
    "RuinWarning",
    "SignalTimingError",
    "StatsError",
    "StrategyError",
    "UnitsWarning",
    "user_stacklevel",
    "warn_user",
]
