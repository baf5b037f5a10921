"""``context.rebalance`` reads a plain ``dict`` (int or str keys, float weights) in place and
anything else through the general mapping / pairs path: both must give the same run, and the
percent-looking weight must still warn from a plain dict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, PolarsDataFeed, Strategy
from ml4t.backtest.errors import OrderError, UnitsWarning
from ml4t.backtest.synthetic import make_bars


def _feed() -> PolarsDataFeed:
    bars = make_bars(n_assets=6, n_bars=60, seed=11)
    return PolarsDataFeed(bars)


class Rotate(Strategy):
    """Holds the two assets whose code comes next in rotation, weights given by ``shape``."""

    def __init__(self, shape: Callable[[list[Any], list[float]], Any], by_name: bool) -> None:
        self.shape = shape
        self.by_name = by_name
        self.t = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        keys: list[Any] = batch.assets if self.by_name else batch.asset_ids.tolist()
        pick = [self.t % len(keys), (self.t + 2) % len(keys)]
        self.t += 1
        context.rebalance(self.shape([keys[i] for i in pick], [0.3, 0.2 + 0.01 * self.t]))


SHAPES: dict[str, Callable[[list[Any], list[float]], Any]] = {
    "dict": lambda k, w: dict(zip(k, w, strict=True)),
    "pairs": lambda k, w: list(zip(k, w, strict=True)),
    "ordered_dict": lambda k, w: OrderedDict(zip(k, w, strict=True)),
    "numpy_weights": lambda k, w: dict(zip(k, np.array(w), strict=True)),
}


def _frames(shape: str, by_name: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    result = Backtest(_feed(), Rotate(SHAPES[shape], by_name)).run(progress=False)
    return result.fills, result.equity


@pytest.mark.parametrize("by_name", [False, True])
@pytest.mark.parametrize("shape", ["pairs", "ordered_dict", "numpy_weights"])
def test_plain_dict_and_general_path_agree(shape: str, by_name: bool) -> None:
    fills, equity = _frames("dict", by_name)
    assert fills.height > 0
    other_fills, other_equity = _frames(shape, by_name)
    assert fills.equals(other_fills)
    assert equity.equals(other_equity)


class Percent(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        context.rebalance({int(batch.asset_ids[0]): 25.0})


def test_a_plain_dict_weight_in_percent_still_warns() -> None:
    with pytest.warns(UnitsWarning, match="outside ±10"):
        Backtest(_feed(), Percent()).run(progress=False)


class Unknown(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        context.rebalance({"nope": 0.5})


def test_a_plain_dict_with_an_unknown_asset_is_refused() -> None:
    with pytest.raises(Exception) as info:
        Backtest(_feed(), Unknown()).run(progress=False)
    text = f"{info.value} {info.value.__cause__}"
    assert "unknown asset 'nope'" in text
    assert isinstance(info.value, OrderError) or isinstance(info.value.__cause__, OrderError)
