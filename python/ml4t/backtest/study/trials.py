"""Turning a sweep's description into trials: each trial's strategy, risk rules and config,
built and checked in the calling process before any trial runs, and its cache key.

``strategy``, ``risk`` and ``config`` are each a value or a callable of the trial's params. A
callable is called with the params it names as keyword arguments (every param when it takes
``**kwargs``; a class such as ``TopKStrategy`` names its fields), or, when it names none of
them and takes one positional argument (``lambda p: ...``), with the whole params dict. A param
whose name has a dot (``commission.rate``) is a config override
(:meth:`BacktestConfig.replace`); every other param must be taken by some callable.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml4t.backtest._core import __version__
from ml4t.backtest.backtest import Backtest
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import BacktestError, ConfigError
from ml4t.backtest.provenance import class_path, plain, source_sha256, strategy_record
from ml4t.backtest.risk import BuiltinRule, RiskRule
from ml4t.backtest.strategies import SignalStrategy, TopKStrategy
from ml4t.backtest.strategy import Strategy

AnyStrategy = Strategy | SignalStrategy | TopKStrategy
AnyRiskRule = BuiltinRule | RiskRule


@dataclass
class Trial:
    """One backtest of a sweep: its id, params and what it runs with."""

    id: int
    params: dict[str, Any]
    strategy: AnyStrategy
    config: BacktestConfig
    risk: list[AnyRiskRule]
    key: str = ""
    """The cache key (see :func:`trial_key`)."""

    @property
    def native(self) -> bool:
        """True when the whole run is Rust: a built-in strategy and built-in rules only (no
        custom slippage), so it runs with the GIL released."""
        return (
            isinstance(self.strategy, (SignalStrategy, TopKStrategy))
            and all(isinstance(r, BuiltinRule) for r in self.risk)
            and self.config.slippage.model != "custom"
        )


@dataclass
class Factory:
    """A value, or a callable of the trial's params (see the module doc)."""

    location: str
    value: Any = None
    call: Callable[..., Any] | None = None
    names: frozenset[str] = field(default_factory=frozenset)
    everything: bool = False
    """Takes every param (``**kwargs``) as keywords."""
    whole_dict: bool = False
    """Called with the params dict as its one argument."""

    @classmethod
    def of(cls, location: str, obj: Any, keys: Sequence[str]) -> Factory:
        if obj is None or not callable(obj) or isinstance(obj, (Strategy, RiskRule)):
            return cls(location, value=obj)
        try:
            parameters = list(inspect.signature(obj).parameters.values())
        except (TypeError, ValueError):
            return cls(location, call=obj, whole_dict=True)
        kinds = inspect.Parameter
        if any(p.kind is kinds.VAR_KEYWORD for p in parameters):
            return cls(location, call=obj, everything=True)
        named = {
            p.name
            for p in parameters
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        }
        taken = named & set(keys)
        positional = [
            p
            for p in parameters
            if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty
        ]
        if not taken and len(positional) == 1:
            return cls(location, call=obj, whole_dict=True)
        return cls(location, call=obj, names=frozenset(named))

    def takes(self, name: str) -> bool:
        return self.call is not None and (self.everything or self.whole_dict or name in self.names)

    def describe(self) -> str:
        if self.call is None:
            return f"{self.location} is a value"
        return f"{self.location} takes ({', '.join(sorted(self.names))})"

    def build(self, params: dict[str, Any]) -> Any:
        """The value for one trial (a fresh copy of a Python strategy or rule value, so every
        trial starts from the same state whatever runs it)."""
        if self.call is None:
            return _fresh(self.value)
        plain_params = {k: v for k, v in params.items() if "." not in k}
        try:
            if self.whole_dict:
                return self.call(dict(params))
            if self.everything:
                return self.call(**plain_params)
            return self.call(**{k: v for k, v in plain_params.items() if k in self.names})
        except BacktestError:
            raise
        except Exception as err:
            raise ConfigError(
                f"{self.location}: factory_failed: called with {plain(params)} it raised "
                f"{type(err).__name__}: {err}"
            ) from err


def _fresh(value: Any) -> Any:
    if isinstance(value, (Strategy, RiskRule)):
        return copy.deepcopy(value)
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def split_config(config: Any) -> tuple[Any, dict[str, list[Any]], dict[str, Any]]:
    """``config`` as (value or callable, grid axes, fixed overrides): a dict's list values are
    grid axes of dotted overrides, its other values fixed overrides."""
    if not isinstance(config, Mapping):
        return config, {}, {}
    axes: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise ConfigError(f"config: override keys are dotted field names, got {key!r}")
        if isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"config.{key}: empty: no values to try")
            axes[key] = list(value)
        else:
            fixed[key] = value
    return None, axes, fixed


def build_trials(
    feed: PolarsDataFeed,
    points: list[dict[str, Any]],
    strategy: Any,
    config: Any,
    risk: Any,
    fixed: Mapping[str, Any],
    first_id: int = 0,
) -> list[Trial]:
    """The trials for ``points``, each built and checked as :class:`Backtest` checks a run.

    Raises:
        ConfigError: a param no callable takes, a dotted override naming no config field, a
            callable that fails, or a trial that :class:`Backtest` refuses (its message names
            the trial's params).
    """
    keys = sorted({k for point in points for k in point})
    factories = [
        Factory.of("strategy", strategy, keys),
        Factory.of("risk", risk, keys),
        Factory.of("config", config, keys),
    ]
    for key in keys:
        if "." in key:
            continue
        if not any(f.takes(key) for f in factories):
            raise ConfigError(
                f"params.{key}: unused: no callable takes it ("
                + "; ".join(f.describe() for f in factories)
                + "); give a factory that takes it, or a dotted config field"
            )
    strategy_f, risk_f, config_f = factories
    trials = []
    for offset, point in enumerate(points):
        where = f"trial {first_id + offset} {plain(point)}"
        suffix = f" (in {where})"
        try:
            built = strategy_f.build(point)
            rules = risk_f.build(point)
            base = config_f.build(point)
        except BacktestError as err:
            raise type(err)(f"{err}{suffix}") from err
        if not isinstance(built, (Strategy, SignalStrategy, TopKStrategy)):
            raise ConfigError(
                "strategy: expected a Strategy instance or a built-in strategy, got "
                f"{type(built).__name__}{suffix}"
            )
        rules = [] if rules is None else rules
        if isinstance(rules, (BuiltinRule, RiskRule)):
            rules = [rules]
        if not isinstance(rules, (list, tuple)):
            raise ConfigError(f"risk: expected a list of rules, got {type(rules).__name__}{suffix}")
        base = BacktestConfig() if base is None else base
        if not isinstance(base, BacktestConfig):
            raise ConfigError(
                f"config: expected a BacktestConfig, got {type(base).__name__}{suffix}"
            )
        overrides = {**fixed, **{k: v for k, v in point.items() if "." in k}}
        try:
            resolved = base.replace(**overrides) if overrides else base
            Backtest(feed, built, config=resolved, risk=list(rules))
        except BacktestError as err:
            raise type(err)(f"{err}{suffix}") from err
        trials.append(Trial(first_id + offset, dict(point), built, resolved, list(rules)))
    return trials


def rule_identity(rule: AnyRiskRule) -> dict[str, Any]:
    """A rule as the cache key sees it: a built-in's spec, a Python rule's class, attributes
    and source hash."""
    if isinstance(rule, BuiltinRule):
        return {"builtin": rule.model_dump(mode="json")}
    return {
        "class": class_path(rule),
        "params": plain({k: v for k, v in vars(rule).items() if not k.startswith("_")}),
        "source_sha256": source_sha256(type(rule)),
    }


def trial_key(trial: Trial, data_checksum: str) -> str:
    """SHA-256 of what decides a trial's outcome: the data's checksum, the resolved config,
    the params, the strategy's identity (``module:qualname``, parameters, source hash), the
    risk rules and the library version."""
    identity = {
        "data": data_checksum,
        "config": trial.config.model_dump(mode="json"),
        "params": plain(trial.params),
        "strategy": strategy_record(trial.strategy),
        "risk": [rule_identity(rule) for rule in trial.risk],
        "version": __version__,
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
