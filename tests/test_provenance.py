"""A run records what produced it: the strategy's class, parameters and source hash, the risk
rules and the library versions, in ``result.run_info`` and the saved manifest, for Python-API
runs as for CLI runs; a Python-API result's config names its strategy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    Context,
    PolarsDataFeed,
    Strategy,
    TimestampBatch,
    TopKStrategy,
)
from ml4t.backtest.risk import StopLoss
from ml4t.backtest.synthetic import make_bars

FEED = PolarsDataFeed(make_bars(n_assets=4, n_bars=40, seed=2))


class Top(Strategy):
    def __init__(self, k: int, label: str = "x") -> None:
        self.k, self.label = k, label
        self._cache: list[int] = []  # private: not a parameter
        self.weights = np.array([0.5, 0.5])  # not plain data: recorded by repr

    def on_timestamp_batch(self, timestamp: object, batch: TimestampBatch, ctx: Context) -> None:
        best = np.argsort(-batch["score"], kind="stable")[: self.k]
        ctx.rebalance({batch.assets[i]: 0.4 for i in best})


class Explicit(Top):
    def params(self) -> dict[str, object]:
        return {"k": self.k}


def test_a_python_strategy_is_recorded_with_its_params_and_source(tmp_path: Path) -> None:
    result = Backtest(FEED, Top(2), risk=[StopLoss(pct=0.05)]).run(progress=False)
    record = result.run_info["strategy"]
    assert record["class"].endswith(":Top")
    assert record["params"] == {"k": 2, "label": "x", "weights": "array([0.5, 0.5])"}
    assert re.fullmatch(r"[0-9a-f]{64}", record["source_sha256"])
    assert result.run_info["risk_rules"] == ["stop_loss"]
    versions = result.run_info["versions"]
    assert {"python", "ml4t-backtest", "numpy", "polars"} <= versions.keys()
    assert "duration_seconds" in result.run_info and "started_at" in result.run_info
    result.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["run"]["strategy"] == json.loads(json.dumps(record))
    assert BacktestResult.load(tmp_path).run_info == json.loads(json.dumps(result.run_info))
    assert result.config.strategy is not None
    assert result.config.strategy.name == record["class"]
    assert result.config.strategy.params["k"] == 2


def test_params_can_be_chosen_and_a_changed_source_changes_the_hash() -> None:
    explicit = Backtest(FEED, Explicit(3)).run(progress=False).run_info["strategy"]
    assert explicit["params"] == {"k": 3}
    top = Backtest(FEED, Top(3)).run(progress=False).run_info["strategy"]
    assert explicit["source_sha256"] != top["source_sha256"]


def test_a_builtin_strategy_is_recorded_and_its_config_rebuilds_it(tmp_path: Path) -> None:
    strategy = TopKStrategy("score", k=2)
    result = Backtest(FEED, strategy).run(progress=False)
    record = result.run_info["strategy"]
    assert record["class"] == "ml4t.backtest.strategies:TopKStrategy"
    assert record["builtin"] is True and record["params"]["k"] == 2
    result.save(tmp_path)
    saved = BacktestConfig.from_yaml(tmp_path / "config.yaml")
    assert saved.strategy is not None and saved.strategy.build() == strategy


def test_a_strategy_defined_in_a_function_is_recorded_but_not_named_in_the_config() -> None:
    class Local(Top):
        pass

    result = Backtest(FEED, Local(1)).run(progress=False)
    assert result.run_info["strategy"]["class"].endswith("<locals>.Local")
    assert result.config.strategy is None  # no import path could build it again
