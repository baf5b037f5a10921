"""The trials of a sweep: a cartesian grid, an explicit list, or a seeded random search.

``params`` is a dict of lists (every combination, the first key varying slowest), a list of
dicts (one trial each), or :class:`RandomSearch` (``n`` draws from a space of
:class:`Choice`, :class:`Uniform` and :class:`IntUniform` dimensions, a plain list meaning a
uniform choice). Trial ids are the positions in that order.

Example:
    >>> grid({"k": [5, 10], "stop": [0.02, 0.04]})[:2]
    [{'k': 5, 'stop': 0.02}, {'k': 5, 'stop': 0.04}]
    >>> RandomSearch({"k": [5, 10], "stop": Uniform(0.01, 0.05)}, n=3, seed=1).points()[0]
    {'k': 5, 'stop': 0.0...}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml4t.backtest.errors import ConfigError


@dataclass(frozen=True)
class Choice:
    """One of ``values``, each equally likely."""

    values: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)) or not len(values):
            raise ConfigError("Choice.values: expected a non-empty list of values")
        object.__setattr__(self, "values", tuple(values))

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw."""
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Uniform:
    """A float uniform in ``[low, high]`` (uniform in its logarithm with ``log=True``)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"Uniform: need finite low < high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"Uniform.low: log=True needs low > 0, got {self.low}")

    def sample(self, rng: np.random.Generator) -> float:
        """One draw."""
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class IntUniform:
    """An integer uniform in ``[low, high]`` (both included; every ``step``-th)."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.low > self.high or self.step < 1:
            raise ConfigError(
                f"IntUniform: need low <= high and step >= 1, got {self.low}, {self.high}, "
                f"{self.step}"
            )

    def sample(self, rng: np.random.Generator) -> int:
        """One draw."""
        count = (self.high - self.low) // self.step + 1
        return int(self.low + self.step * int(rng.integers(count)))


Dimension = Choice | Uniform | IntUniform


def dimension(value: Any, name: str) -> Dimension:
    """``value`` as a dimension: a dimension as is, a list or tuple as a :class:`Choice`."""
    if isinstance(value, (Choice, Uniform, IntUniform)):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"params.{name}: empty: no values to try")
        return Choice(value)
    raise ConfigError(
        f"params.{name}: expected a list of values, Choice, Uniform or IntUniform, got "
        f"{type(value).__name__}"
    )


@dataclass(frozen=True)
class RandomSearch:
    """``n`` points drawn from ``space`` (name -> list, :class:`Choice`, :class:`Uniform` or
    :class:`IntUniform`) with numpy's PCG64 seeded by ``seed``: the same points every time.
    Names are drawn in the order of ``space``."""

    space: Mapping[str, Any]
    n: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.space:
            raise ConfigError("params: empty: RandomSearch needs at least one dimension")
        if not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"params.n: expected a positive number of trials, got {self.n!r}")
        for name, value in self.space.items():
            dimension(value, name)

    def dimensions(self) -> dict[str, Dimension]:
        """The space with every value as a dimension."""
        return {name: dimension(value, name) for name, value in self.space.items()}

    def points(self) -> list[dict[str, Any]]:
        """The ``n`` points, in draw order."""
        rng = np.random.Generator(np.random.PCG64(self.seed))
        dims = self.dimensions()
        return [{name: dim.sample(rng) for name, dim in dims.items()} for _ in range(self.n)]


def grid(axes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of ``axes`` (name -> list of values), the first name varying
    slowest."""
    if not axes:
        raise ConfigError("params: empty: the grid has no parameters")
    values = []
    for name, axis in axes.items():
        if not isinstance(name, str):
            raise ConfigError(f"params: parameter names are strings, got {name!r}")
        if not isinstance(axis, (list, tuple)):
            raise ConfigError(
                f"params.{name}: expected a list of values, got {type(axis).__name__} "
                f"(write [{axis!r}] for a single value)"
            )
        if not axis:
            raise ConfigError(f"params.{name}: empty: no values to try")
        values.append(list(axis))
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def expand(params: Any) -> list[dict[str, Any]]:
    """The trial points of ``params`` (a dict of lists, a list of dicts or a
    :class:`RandomSearch`)."""
    if isinstance(params, RandomSearch):
        return params.points()
    if isinstance(params, Mapping):
        return grid(params)
    if isinstance(params, (list, tuple)):
        if not params:
            raise ConfigError("params: empty: the list has no trials")
        points = []
        for i, point in enumerate(params):
            if not isinstance(point, Mapping) or not all(isinstance(k, str) for k in point):
                raise ConfigError(
                    f"params[{i}]: expected a dict of parameter values, got {type(point).__name__}"
                )
            points.append(dict(point))
        return points
    raise ConfigError(
        "params: expected a dict of lists (a grid), a list of dicts or a RandomSearch, got "
        f"{type(params).__name__}"
    )
