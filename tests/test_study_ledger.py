"""Walk-forward and CPCV runs go into the trial ledger as one variant each (their
out-of-sample Sharpe ratio per period), keyed by what decides their outcome, and read the
feed's study view, so a locked hold-out stays hidden from them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from ml4t.backtest import PolarsDataFeed, TopKStrategy
from ml4t.backtest.study import CombinatorialPurgedCV, Fold, TrialLedger, WalkForward
from ml4t.backtest.synthetic import make_bars


def _feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=4, n_bars=80, seed=6))


def copy_score(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    assert fold.test_data is not None
    return fold.test_data.select("timestamp", "asset", pred="score")


def negate_score(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    assert fold.test_data is not None
    return fold.test_data.select("timestamp", "asset", pred=-pl.col("score"))


def _walk(feed: PolarsDataFeed, fit: Any = copy_score, test: int = 10) -> WalkForward:
    return WalkForward(feed, fit, TopKStrategy("pred", k=1), train=20, test=test)


def test_a_walk_forward_is_one_variant_whatever_its_reruns(tmp_path: Path) -> None:
    feed = _feed()
    first = _walk(feed).run(ledger=tmp_path)
    assert first.ledger == tmp_path and first.checksum == feed.checksum()
    rows = TrialLedger(tmp_path).trials(feed.checksum())
    assert rows.height == 1 and rows["kind"][0] == "walkforward"
    expected = first.metrics["sharpe"] / math.sqrt(first.metrics["periods_per_year"])
    assert rows["sharpe"][0] == expected
    _walk(feed).run(ledger=tmp_path)  # the same study again: the same variant
    ledger = TrialLedger(tmp_path)
    assert ledger.trials(feed.checksum()).height == 2
    assert ledger.count(feed.checksum()).n_trials == 1
    _walk(feed, negate_score).run(ledger=tmp_path)  # another fit: another variant
    _walk(feed, test=15).run(ledger=tmp_path)  # other windows: another variant
    assert TrialLedger(tmp_path).count(feed.checksum()).n_trials == 3


def test_ledger_false_records_nothing(tmp_path: Path) -> None:
    result = _walk(_feed()).run(ledger=False)
    assert result.ledger is None and result.checksum is None
    assert TrialLedger(tmp_path).checksums() == []


def test_a_cpcv_run_is_one_variant_with_its_paths(tmp_path: Path) -> None:
    feed = _feed()
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, label_horizon=1)
    result = cv.run(feed, copy_score, TopKStrategy("pred", k=1), ledger=tmp_path)
    rows = TrialLedger(tmp_path).trials(feed.checksum())
    assert rows.height == 1 and rows["kind"][0] == "cpcv"
    mean = result.distribution.filter(pl.col("metric") == "sharpe")["mean"][0]
    ppy = result.distribution.filter(pl.col("metric") == "periods_per_year")["mean"][0]
    assert rows["sharpe"][0] == mean / math.sqrt(ppy)
    assert '"paths": 3' in rows["metrics"][0]


def test_a_locked_hold_out_is_hidden_from_a_walk_forward(tmp_path: Path) -> None:
    feed = _feed()
    days = feed.frame.get_column("ts").unique().sort()
    start = feed.to_datetime(int(days[60]))
    feed.hold_out(start, ledger=tmp_path)
    result = _walk(feed).run(ledger=tmp_path)
    assert result.equity["timestamp"].max() < start
    assert result.checksum == feed.study_view().checksum()
