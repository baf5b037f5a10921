"""CPCV runs: one backtest per path, every group traded with the predictions (or the model) of
the split that tested it; fits see only their purged, embargoed training rows; identical
results on threads and processes; a planted edge; bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import PolarsDataFeed, Strategy, TopKStrategy
from ml4t.backtest.errors import ConfigError, SignalTimingError
from ml4t.backtest.study import CombinatorialPurgedCV, CPCVResult, Fold
from ml4t.backtest.study.cpcv import DISTRIBUTION_STATS
from ml4t.backtest.synthetic import make_bars


def _feed(n_bars: int = 60, n_assets: int = 3, seed: int = 3, **kw: Any) -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=n_assets, n_bars=n_bars, seed=seed, **kw))


def split_index(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    """Predictions naming the split that made them."""
    assert fold.test_data is not None
    return fold.test_data.select("timestamp", "asset", pred=pl.lit(float(fold.index)))


class Recorder(Strategy):
    """Records the prediction it sees at each timestamp (the same for every asset)."""

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        context.record(pred=float(batch["pred"][0]))


def test_every_group_of_every_path_trades_its_splits_predictions() -> None:
    feed = _feed(60)
    cv = CombinatorialPurgedCV(6, 2, label_horizon=1, embargo=1)
    result = cv.run(feed, split_index, Recorder())
    assert isinstance(result, CPCVResult)
    assert result.n_paths == 5 and len(result.results) == 5 and result.splits.height == 15
    days = feed.frame["ts"].unique().sort()
    groups = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60)]  # 60 bars / 6
    for path, res in zip(cv.paths(), result.results, strict=True):
        assert res.equity.height == 60  # the whole data, every group once
        seen = res.records["value"].to_numpy()
        for piece in path.pieces:
            lo, hi = groups[piece.group]
            assert set(seen[lo:hi].tolist()) == {float(piece.split)}
    # each (split, group) test piece is on exactly one path
    pieces = [(p.split, p.group) for path in cv.paths() for p in path.pieces]
    assert len(pieces) == len(set(pieces)) == 15 * 2
    assert result.paths["splits"][0] == "0 0 1 2 3 4"
    assert len(days) == 60
    assert result.equity.group_by("path").len().sort("path")["len"].to_list() == [60] * 5


def test_fits_train_without_the_test_groups_purged_and_embargoed_rows() -> None:
    feed = _feed(60)
    cv = CombinatorialPurgedCV(6, 2, label_horizon=2, embargo=1)
    stamps = feed.frame.select(feed.universe.timestamps(pl.col("ts")).alias("timestamp"))
    splits = list(cv.split(stamps))
    seen: dict[int, pl.DataFrame] = {}

    def fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        seen[fold.index] = train
        assert fold.test_groups == splits[fold.index].test_groups
        assert train.height == fold.train_rows
        return split_index(train, fold)

    result = cv.run(feed, fit, TopKStrategy("pred", k=1))
    for split in splits:
        expected = stamps[split.train]["timestamp"]
        assert seen[split.index]["timestamp"].equals(expected)
        tested = set(stamps[split.test]["timestamp"].to_list())
        assert tested.isdisjoint(seen[split.index]["timestamp"].to_list())
    assert result.splits["purged"].to_list() == [s.purged for s in splits]
    assert result.splits["embargoed"].to_list() == [s.embargoed for s in splits]


def test_distribution_of_metrics_across_paths() -> None:
    feed = _feed(120, n_assets=6)

    def noisy(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        assert fold.test_data is not None
        rng = np.random.default_rng(fold.index)
        return fold.test_data.select("timestamp", "asset").with_columns(
            pred=pl.Series(rng.normal(size=fold.test_data.height))
        )

    result = CombinatorialPurgedCV(6, 2).run(feed, noisy, TopKStrategy("pred", k=2))
    sharpe = result.metric("sharpe").to_numpy()
    row = result.distribution.filter(pl.col("metric") == "sharpe").row(0, named=True)
    assert list(result.distribution.columns) == ["metric", *DISTRIBUTION_STATS]
    assert row["mean"] == pytest.approx(sharpe.mean())
    assert row["std"] == pytest.approx(sharpe.std(ddof=1))
    assert row["min"] == sharpe.min() and row["max"] == sharpe.max()
    assert row["median"] == pytest.approx(np.median(sharpe))
    assert len(set(sharpe.tolist())) > 1  # different pieces, different paths
    assert "CPCVResult" in result._repr_html_()


def ridge(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    data = train.with_columns(
        (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("label")
    ).drop_nulls("label")
    x = np.column_stack([data["score"].to_numpy(), np.ones(data.height)])
    coef = np.linalg.lstsq(x, data["label"].to_numpy(), rcond=None)[0]
    assert fold.test_data is not None
    return fold.test_data.select(
        "timestamp", "asset", (pl.col("score") * coef[0] + coef[1]).alias("pred")
    )


def test_a_planted_edge_is_positive_on_every_path() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=20, n_bars=300, seed=5, skill=0.3))
    result = CombinatorialPurgedCV(6, 2, label_horizon=2, embargo=2).run(
        feed, ridge, TopKStrategy("pred", k=4)
    )
    assert (result.metric("sharpe") > 0.5).all()


class PieceModels(Strategy):
    def __init__(self) -> None:
        self.model: Any = None
        self.handed: list[int] = []

    def on_fold(self, model: Any, fold: Any) -> None:
        self.model = model
        self.handed.append(fold.index)

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        context.record(split=float(self.model))


def test_models_are_handed_over_at_each_groups_first_timestamp() -> None:
    feed = _feed(60)
    cv = CombinatorialPurgedCV(4, 2)
    result = cv.run(feed, lambda train, fold: fold.index, PieceModels())
    assert result.info["kind"] == "model" and result.models == list(range(6))
    for path, res in zip(cv.paths(), result.results, strict=True):
        values = res.records["value"].to_numpy()
        for piece in path.pieces:
            lo, hi = 15 * piece.group, 15 * (piece.group + 1)
            assert set(values[lo:hi].tolist()) == {float(piece.split)}


def test_threads_and_processes_give_identical_paths() -> None:
    feed = _feed(90, n_assets=5)
    cv = CombinatorialPurgedCV(5, 2, label_horizon=2)
    one = cv.run(feed, ridge, TopKStrategy("pred", k=2), executor="threads", max_workers=1)
    two = cv.run(feed, ridge, TopKStrategy("pred", k=2), executor="threads", max_workers=2)
    procs = cv.run(feed, ridge, TopKStrategy("pred", k=2), executor="processes", max_workers=2)
    assert procs.info["executor"] == "processes"
    for other in (two, procs):
        assert one.paths.equals(other.paths) and one.equity.equals(other.equity)
        assert one.splits.drop("fit_seconds").equals(other.splits.drop("fit_seconds"))


def test_predictions_outside_the_split_test_groups_are_look_ahead() -> None:
    feed = _feed(60)

    def everywhere(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        return pl.concat([train, fold.test_data], how="vertical_relaxed").select(  # type: ignore[list-item]
            "timestamp", "asset", pred="score"
        )

    with pytest.raises(SignalTimingError, match="look_ahead: fit: fold 0 returned predictions"):
        CombinatorialPurgedCV(6, 2).run(feed, everywhere, TopKStrategy("pred", k=1))


def test_bad_input() -> None:
    feed = _feed(60)
    with pytest.raises(ConfigError, match="n_groups: at_least_2"):
        CombinatorialPurgedCV(1, 1)
    with pytest.raises(ConfigError, match="purge_too_long"):
        CombinatorialPurgedCV(3, 2, label_horizon=30).run(
            feed, split_index, TopKStrategy("pred", k=1)
        )
    with pytest.raises(ConfigError, match="built-in TopKStrategy, which has no on_fold"):
        CombinatorialPurgedCV(3, 1).run(feed, lambda t, f: 1, TopKStrategy("pred", k=1))
    with pytest.raises(ConfigError, match="fit: expected a callable"):
        CombinatorialPurgedCV(3, 1).run(feed, None, TopKStrategy("pred", k=1))
    with pytest.raises(ConfigError, match="executor: expected"):
        CombinatorialPurgedCV(3, 1).run(feed, split_index, TopKStrategy("pred", k=1), "gpu")


def test_report_draws_the_fan_and_the_sharpe_distribution(tmp_path: Any) -> None:
    feed = _feed(60)
    result = CombinatorialPurgedCV(4, 2).run(feed, ridge, TopKStrategy("pred", k=1))
    page = result.report(tmp_path / "cpcv.html").read_text()
    assert "chart-fan" in page and "chart-sharpe" in page
    assert all(f"path {p}" in page for p in range(result.n_paths))


def test_report_renders_in_chromium_without_errors(tmp_path: Any) -> None:
    import re

    from test_report import PROBE_ELEMENT, console_errors, render

    result = CombinatorialPurgedCV(4, 2).run(_feed(60), ridge, TopKStrategy("pred", k=1))
    dom, stderr = render(result.report(tmp_path / "cpcv.html"), tmp_path)
    assert PROBE_ELEMENT not in dom and console_errors(stderr) == []
    for chart in ("chart-fan", "chart-sharpe"):
        match = re.search(rf'<div id="{chart}" class="([^"]*)"', dom)
        assert match is not None and "js-plotly-plot" in match.group(1), chart
