"""What produced a run, recorded in ``result.run_info`` and ``manifest.json``: the strategy's
class (``module:qualname``), its parameters and a hash of its source, the risk rules, and the
versions of Python and of the libraries that computed the numbers.

A strategy's parameters are :meth:`Strategy.params` (by default its public attributes);
values that are not plain data (numbers, strings, booleans, None, lists and dicts of them) are
recorded by their ``repr``, so the record is always valid JSON.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import platform
import threading
from importlib import metadata
from typing import Any

from ml4t.backtest.config import StrategyConfig
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.strategies import BuiltinStrategy, SignalStrategy
from ml4t.backtest.strategy import Strategy

LIBRARIES = ("ml4t-backtest", "numpy", "polars", "pyarrow", "pandas", "pydantic")
"""Distributions whose versions a run records (those not installed are left out)."""


def class_path(obj: object) -> str:
    """``module:qualname`` of ``obj``'s class."""
    kind = type(obj)
    return f"{kind.__module__}:{kind.__qualname__}"


def plain(value: Any) -> Any:
    """``value`` as plain JSON data; anything else by its ``repr`` (non-finite floats too)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return plain(item())
    return repr(value)


_SOURCE_LOCK = threading.Lock()
_SOURCE_HASHES: dict[type, str | None] = {}


def source_sha256(kind: type) -> str | None:
    """SHA-256 of the source of ``kind``'s defining class body, or ``None`` when Python has no
    source for it (a class typed at a bare REPL). Computed once per class, under a lock:
    ``inspect.getsource`` parses the module, and CPython 3.11's parser is not safe to call
    from several threads at once (concurrent runs)."""
    with _SOURCE_LOCK:
        if kind not in _SOURCE_HASHES:
            try:
                text = inspect.getsource(kind)
            except (OSError, TypeError):
                _SOURCE_HASHES[kind] = None
            else:
                _SOURCE_HASHES[kind] = hashlib.sha256(text.encode()).hexdigest()
        return _SOURCE_HASHES[kind]


def strategy_record(strategy: Strategy | BuiltinStrategy) -> dict[str, Any]:
    """The strategy's class, parameters and (for a Python strategy) source hash."""
    if isinstance(strategy, Strategy):
        return {
            "class": class_path(strategy),
            "params": plain(strategy.params()),
            "source_sha256": source_sha256(type(strategy)),
        }
    return {
        "class": class_path(strategy),
        "params": plain(_builtin_params(strategy)),
        "builtin": True,
    }


def strategy_config(strategy: Strategy | BuiltinStrategy) -> StrategyConfig | None:
    """The config section that names ``strategy`` (as ``ml4t-backtest run`` would build it):
    a built-in by name and parameters, a Python class by import path when it has one that
    can be imported again (not ``__main__``, not a class defined inside a function)."""
    if isinstance(strategy, Strategy):
        path = class_path(strategy)
        if path.startswith("__main__:") or "<" in path or "." in path.split(":")[1]:
            return None
        try:
            return StrategyConfig(name=path, params=plain(strategy.params()))
        except ConfigError:
            return None
    name = "signal" if isinstance(strategy, SignalStrategy) else "top_k"
    return StrategyConfig(name=name, params=_builtin_params(strategy))


def _builtin_params(strategy: BuiltinStrategy) -> dict[str, Any]:
    """A built-in strategy's parameters: its engine spec without the ``kind`` tag."""
    return {k: v for k, v in strategy.spec().items() if k != "kind"}


def versions() -> dict[str, str]:
    """The Python version and those of :data:`LIBRARIES` that are installed (read from the
    package metadata once per process: parsing it took about 20 ms, paid by every run)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
