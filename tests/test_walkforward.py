"""Walk-forward studies: hand-checked fold ranges (bars, durations, anchored, step), the train
view that cannot see past its cut-off, predictions and models, continuous against from-flat
runs, identical results on threads and processes, a planted edge, and every bad input."""

from __future__ import annotations

import doctest
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

import ml4t.backtest.study.walkforward as walkforward_module
from ml4t.backtest import PolarsDataFeed, SignalStrategy, Strategy, TopKStrategy
from ml4t.backtest.errors import ConfigError, DataValidationError, SignalTimingError
from ml4t.backtest.study import Fold, WalkForward
from ml4t.backtest.synthetic import make_bars


def _feed(n_bars: int = 60, n_assets: int = 3, seed: int = 2, **kw: Any) -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=n_assets, n_bars=n_bars, seed=seed, **kw))


def copy_score(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    """Predictions: the test window's own score column."""
    assert fold.test_data is not None
    return fold.test_data.select("timestamp", "asset", pred="score")


def _days(feed: PolarsDataFeed) -> list[datetime]:
    return (
        feed.frame.select(feed.universe.timestamps(pl.col("ts")))
        .to_series()
        .unique()
        .sort()
        .to_list()
    )


def _ranges(wf: WalkForward) -> list[tuple[int, int, int, int]]:
    """Each fold as timestamp positions: (first train, last train, first test, last test)."""
    days = _days(wf.feed)
    return [
        (
            days.index(f.train_start),
            days.index(f.train_end),
            days.index(f.test_start),
            days.index(f.test_end),
        )
        for f in wf.folds
    ]


def test_docstring_example() -> None:
    assert doctest.testmod(walkforward_module).failed == 0


def test_fold_ranges_in_bars_rolling_with_purge() -> None:
    feed = _feed(65)
    wf = WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10, purge=2)
    # train [s-20, s-2), test [s, s+10); the last window ends with the data (65 bars)
    assert _ranges(wf) == [
        (0, 17, 20, 29),
        (10, 27, 30, 39),
        (20, 37, 40, 49),
        (30, 47, 50, 59),
        (40, 57, 60, 64),
    ]
    assert [f.train_rows for f in wf.folds] == [18 * 3] * 5
    assert [f.test_rows for f in wf.folds] == [30, 30, 30, 30, 15]
    days = _days(feed)
    assert [f.cutoff for f in wf.folds] == [days[18], days[28], days[38], days[48], days[58]]


def test_fold_ranges_anchored_with_step_and_embargo() -> None:
    feed = _feed(60)
    wf = WalkForward(
        feed,
        copy_score,
        TopKStrategy("pred", k=1),
        train=20,
        test=10,
        step=15,
        purge=1,
        embargo=2,
        anchored=True,
        continuous=False,
    )
    # test starts at 20, 35, 50; training from bar 0 up to the start less 1 + 2 bars
    assert _ranges(wf) == [(0, 16, 20, 29), (0, 31, 35, 44), (0, 46, 50, 59)]
    with pytest.raises(ConfigError, match="step: continuous: the test windows of folds 0 and 1"):
        WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10, step=15)
    with pytest.raises(ConfigError, match="overlap"):
        WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10, step=5)
    overlapping = WalkForward(
        feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10, step=5, continuous=False
    )
    assert _ranges(overlapping)[:2] == [(0, 19, 20, 29), (5, 24, 25, 34)]


def test_fold_ranges_in_durations() -> None:
    # weekdays from Wed 2020-01-01; monthly test windows after a two-month training window
    feed = _feed(130)
    wf = WalkForward(
        feed, copy_score, TopKStrategy("pred", k=1), train="2mo", test="1mo", purge="3d"
    )
    days = _days(feed)
    starts = [f.test_start for f in wf.folds]
    assert starts == [
        datetime(2020, 3, 2),
        datetime(2020, 4, 1),
        datetime(2020, 5, 1),
        datetime(2020, 6, 1),
    ]
    ends = [f.test_end for f in wf.folds]
    assert ends == [datetime(2020, 3, 31), datetime(2020, 4, 30), datetime(2020, 5, 29), days[-1]]
    first = wf.folds[0]
    # cut-off 3 calendar days before Mon 2020-03-02: Fri 2020-02-28 is purged
    assert first.cutoff == datetime(2020, 2, 28)
    assert first.train_start == datetime(2020, 1, 1) and first.train_end == datetime(2020, 2, 27)
    second = wf.folds[1]
    assert second.train_start == datetime(2020, 2, 3)  # the first weekday on or after 2020-02-01
    # a timedelta reads as a duration too
    same = WalkForward(
        feed,
        copy_score,
        TopKStrategy("pred", k=1),
        train="2mo",
        test="1mo",
        purge=timedelta(days=3),
    )
    assert [f.cutoff for f in same.folds] == [f.cutoff for f in wf.folds]


def test_fit_sees_only_rows_before_the_cutoff() -> None:
    feed = _feed(60)
    seen: list[tuple[Fold, pl.DataFrame]] = []

    def fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        seen.append((fold, train))
        assert fold.cutoff is not None and fold.test_data is not None
        assert train["timestamp"].max() < fold.cutoff  # type: ignore[operator]
        assert train.height == fold.train_rows
        # a new frame: reading one row past its end fails, it is not a view of the whole data
        with pytest.raises(pl.exceptions.OutOfBoundsError):
            train.row(train.height)
        assert fold.test_data["timestamp"].min() == fold.test_start
        assert fold.test_data["timestamp"].max() == fold.test_end
        return copy_score(train, fold)

    WalkForward(feed, fit, TopKStrategy("pred", k=1), train=20, test=10, purge=3).run()
    assert len(seen) == 4
    later = feed.frame.filter(pl.col("ts") >= feed.universe.wall_clock_ns(seen[0][0].cutoff))
    assert later.height > 0 and seen[0][1].height == 17 * 3


def test_predictions_are_the_signals_of_the_stitched_run() -> None:
    feed = _feed(60, n_assets=4)
    wf = WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10)
    result = wf.run()
    stitched = result.result
    assert stitched is not None and result.results == [stitched]
    first = wf.folds[0].test_start
    # the same as trading the score directly over the test span
    direct = TopKStrategy("score", k=1)
    from ml4t.backtest import Backtest

    span = PolarsDataFeed(make_bars(n_assets=4, n_bars=60, seed=2), start=first)
    plain = Backtest(span, direct).run(progress=False)
    assert stitched.equity["equity"].to_list() == plain.equity["equity"].to_list()
    assert result.equity["fold"].to_list() == [k for k in range(4) for _ in range(10)]
    assert result.folds["fold"].to_list() == [0, 1, 2, 3]
    assert result.metrics == stitched.metrics
    html = result._repr_html_()
    assert "WalkForwardResult" in html and "<table>" in html


class BuyAndHold(Strategy):
    """Buys 10 shares of the first asset once, then holds."""

    def __init__(self) -> None:
        self.bought = False

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if not self.bought:
            context.order_target_quantity(batch.assets[0], 10)
            self.bought = True


def test_continuous_carries_the_account_and_from_flat_does_not() -> None:
    feed = _feed(60)
    common = {"train": 20, "test": 10}
    carried = WalkForward(feed, copy_score, BuyAndHold(), **common).run()
    flat = WalkForward(feed, copy_score, BuyAndHold(), continuous=False, **common).run()
    assert carried.result is not None and carried.result.trades.height == 1
    assert flat.result is None and len(flat.results) == 4
    assert [r.trades.height for r in flat.results] == [1, 1, 1, 1]
    # each fold's own run starts from the initial cash; the chained curve compounds them
    for res in flat.results:
        assert res.equity["timestamp"].min() in set(flat.folds["test_start"].to_list())
    chained = flat.equity
    for k in range(1, 4):
        prev_end = chained.filter(pl.col("fold") == k - 1)["equity"][-1]
        own = flat.results[k].equity["equity"]
        piece = chained.filter(pl.col("fold") == k)["equity"]
        np.testing.assert_allclose(piece.to_numpy(), own.to_numpy() * prev_end / 100_000.0)
    assert flat.metrics["total_return"] == pytest.approx(chained["equity"][-1] / 100_000.0 - 1)


class FoldModels(Strategy):
    """Holds the asset its model names; records when each model arrived."""

    def __init__(self) -> None:
        self.model: Any = None
        self.arrivals: list[tuple[int, Any]] = []
        self.first_bar: list[Any] = []

    def on_fold(self, model: Any, fold: Any) -> None:
        self.arrivals.append((fold.index, model))
        self.model = model
        self.first_bar.append(None)

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if self.first_bar and self.first_bar[-1] is None:
            self.first_bar[-1] = timestamp
        context.record(model=float(self.model["index"]))
        context.rebalance({self.model["asset"]: 0.5})


class BarFoldModels(Strategy):
    def __init__(self) -> None:
        self.model: Any = None

    def on_fold(self, model: Any, fold: Any) -> None:
        self.model = model

    def on_market_data(self, event: Any, context: Any) -> None:
        if event.asset == self.model["asset"]:
            context.record(model=float(self.model["index"]))


def model_fit(train: pl.DataFrame, fold: Fold) -> dict[str, Any]:
    """A 'model': the asset with the best mean score in training, and the fold index."""
    best = train.group_by("asset").agg(pl.col("score").mean()).sort("score", "asset").row(-1)
    return {"asset": str(best[0]), "index": fold.index}


@pytest.mark.parametrize("strategy", [FoldModels, BarFoldModels])
def test_models_reach_on_fold_before_each_test_window(strategy: type[Strategy]) -> None:
    feed = _feed(60)
    wf = WalkForward(feed, model_fit, strategy(), train=20, test=10)
    result = wf.run()
    assert result.info["kind"] == "model" and result.models is not None
    assert [m["index"] for m in result.models] == [0, 1, 2, 3]
    records = result.result.records if result.result is not None else None
    assert records is not None
    for fold in wf.folds:
        inside = records.filter(
            pl.col("timestamp").is_between(fold.test_start, fold.test_end, closed="both")
        )
        assert set(inside["value"].to_list()) == {float(fold.index)}
    if strategy is FoldModels:
        flat = WalkForward(feed, model_fit, FoldModels(), train=20, test=10, continuous=False)
        out = flat.run()
        assert [r.records["value"].unique().to_list() for r in out.results] == [
            [0.0],
            [1.0],
            [2.0],
            [3.0],
        ]


def test_models_need_a_python_strategy_and_one_kind() -> None:
    feed = _feed(60)
    with pytest.raises(ConfigError, match="built-in TopKStrategy, which has no on_fold"):
        WalkForward(feed, model_fit, TopKStrategy("score", k=1), train=20, test=10).run()

    def mixed(train: pl.DataFrame, fold: Fold) -> Any:
        return copy_score(train, fold) if fold.index % 2 else model_fit(train, fold)

    with pytest.raises(ConfigError, match="fit: mixed: fold 1 returned predictions and fold 0"):
        WalkForward(feed, mixed, FoldModels(), train=20, test=10).run()
    with pytest.raises(ConfigError, match="fit: returned None for fold 0"):
        WalkForward(feed, lambda t, f: None, FoldModels(), train=20, test=10).run()


def _stable(result: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    return result.folds.drop("fit_seconds"), result.equity


@pytest.mark.parametrize("continuous", [True, False])
def test_threads_and_processes_give_identical_results(continuous: bool) -> None:
    feed = _feed(80, n_assets=5)
    wf = WalkForward(
        feed,
        ridge_fit,
        TopKStrategy("pred", k=2),
        train=30,
        test=10,
        purge=2,
        continuous=continuous,
    )
    one = _stable(wf.run(executor="threads", max_workers=1))
    others = [_stable(wf.run(executor="threads", max_workers=2))]
    if not continuous:  # fits and the folds' runs both on the process pool (spawn: slow)
        procs = wf.run(executor="processes", max_workers=2)
        assert procs.info["executor"] == "processes"
        others.append(_stable(procs))
    for other in others:
        assert one[0].equals(other[0]) and one[1].equals(other[1])


def ridge_fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    """Ridge of the next-open-to-open return on the score, fitted on the training rows."""
    data = train.with_columns(
        (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("label")
    ).drop_nulls("label")
    x = np.column_stack([data["score"].to_numpy(), np.ones(data.height)])
    y = data["label"].to_numpy()
    coef = np.linalg.solve(x.T @ x + 1e-3 * np.eye(2), x.T @ y)
    assert fold.test_data is not None
    return fold.test_data.select(
        "timestamp", "asset", (pl.col("score") * coef[0] + coef[1]).alias("pred")
    )


def test_a_planted_edge_is_found_out_of_sample() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=20, n_bars=400, seed=11, skill=0.3))
    result = WalkForward(
        feed, ridge_fit, TopKStrategy("pred", k=4), train=100, test=50, purge=2
    ).run()
    assert result.metrics["sharpe"] > 1.0
    assert (result.folds["sharpe"] > 0).all()


def test_predictions_outside_the_test_window_are_look_ahead() -> None:
    feed = _feed(60)

    def peeking(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        later = feed.frame.filter(pl.col("ts") >= 0).select(
            feed.universe.timestamps(pl.col("ts")).alias("timestamp"),
            pl.lit("A0000").alias("asset"),
            pl.lit(1.0).alias("pred"),
        )
        return later.unique("timestamp", keep="first").sort("timestamp")

    with pytest.raises(SignalTimingError, match=r"look_ahead: fit: fold 0 returned predictions"):
        WalkForward(feed, peeking, TopKStrategy("pred", k=1), train=20, test=10).run()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda p: p.drop("asset"), DataValidationError, "without the column 'asset'"),
        (lambda p: p.select("timestamp", "asset"), DataValidationError, "no value column"),
        (
            lambda p: p.with_columns(pl.lit("x").alias("pred")),
            DataValidationError,
            "predictions.pred: dtype",
        ),
        (
            lambda p: p.with_columns(pl.lit("ZZZ").alias("asset")),
            DataValidationError,
            "unknown: .* first 'ZZZ'",
        ),
        (
            lambda p: p.with_columns(pl.lit(float("inf")).alias("pred")),
            DataValidationError,
            "predictions.pred: not_finite",
        ),
        (
            lambda p: p.with_columns(pl.lit(None, dtype=pl.Float64).alias("pred")),
            DataValidationError,
            "predictions.pred: null",
        ),
        (lambda p: pl.concat([p, p]), DataValidationError, "predictions: duplicate"),
        (
            lambda p: p.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")),
            DataValidationError,
            "timezone",
        ),
        (lambda p: p.rename({"pred": "close"}), ConfigError, "column_clash"),
    ],
)
def test_bad_predictions(change: Any, error: type[Exception], match: str) -> None:
    feed = _feed(60)
    strategy = SignalStrategy("close" if "close" in match else "pred", quantity=1)

    def fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        return change(copy_score(train, fold))

    if "close" in match:
        with pytest.raises(error, match=match):
            WalkForward(feed, fit, TopKStrategy("score", k=1), train=20, test=10).run()
        return
    with pytest.raises(error, match=match):
        WalkForward(feed, fit, strategy, train=20, test=10).run()


def test_predictions_without_a_bar() -> None:
    bars = make_bars(n_assets=3, n_bars=60, seed=2)
    gap = bars.filter(
        ~((pl.col("asset") == "A0001") & (pl.col("timestamp") == datetime(2020, 2, 3)))
    )
    feed = PolarsDataFeed(gap)

    def fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
        assert fold.test_data is not None
        keys = (
            fold.test_data.select("timestamp")
            .unique()
            .join(pl.DataFrame({"asset": ["A0000", "A0001", "A0002"]}), how="cross")
        )
        return keys.with_columns(pred=pl.lit(1.0))

    message = r"signals: no_bar: 1 row\(s\) .* first 2020-02-03 00:00:00 \(A0001\)"
    with pytest.raises(DataValidationError, match=message):
        WalkForward(feed, fit, TopKStrategy("pred", k=1), train=20, test=10).run()


def test_windows_longer_than_the_data_and_purges_longer_than_train() -> None:
    feed = _feed(30)
    strategy = TopKStrategy("pred", k=1)
    with pytest.raises(ConfigError, match=r"train: longer_than_data: .* 30 timestamps"):
        WalkForward(feed, copy_score, strategy, train=30, test=5)
    with pytest.raises(ConfigError, match="train: longer_than_data"):
        WalkForward(feed, copy_score, strategy, train="3mo", test="1mo")
    with pytest.raises(ConfigError, match="test: longer_than_data"):
        WalkForward(feed, copy_score, strategy, train=20, test=11)
    with pytest.raises(ConfigError, match="purge: purge_too_long: fold 0 keeps no training rows"):
        WalkForward(feed, copy_score, strategy, train=10, test=5, purge=10)
    with pytest.raises(ConfigError, match="purge_too_long"):
        WalkForward(feed, copy_score, strategy, train=10, test=5, purge=6, embargo=4)
    with pytest.raises(ConfigError, match="purge_too_long"):
        WalkForward(feed, copy_score, strategy, train="2w", test=5, purge="2w")
    with pytest.raises(ConfigError, match="train: positive"):
        WalkForward(feed, copy_score, strategy, train=0, test=5)
    with pytest.raises(ConfigError, match="purge: non_negative"):
        WalkForward(feed, copy_score, strategy, train=10, test=5, purge=-1)
    with pytest.raises(ConfigError, match="test: duration"):
        WalkForward(feed, copy_score, strategy, train=10, test="five")
    with pytest.raises(ConfigError, match="fit: expected a callable"):
        WalkForward(feed, "fit", strategy, train=10, test=5)
    with pytest.raises(ConfigError, match="strategy: expected"):
        WalkForward(feed, copy_score, object(), train=10, test=5)
    with pytest.raises(ConfigError, match="continuous: expected True or False"):
        WalkForward(feed, copy_score, strategy, train=10, test=5, continuous="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"commission\.rat"):
        WalkForward(feed, copy_score, strategy, train=10, test=5, config={"commission.rat": 1})


def test_report_marks_the_fold_boundaries(tmp_path: Any) -> None:
    feed = _feed(60)
    result = WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10).run()
    page = result.report(tmp_path / "wf.html").read_text()
    assert page.count("fold 0") >= 1 and "fold 3" in page
    assert "chart-equity" in page and "chart-drawdown" in page and "<table>" in page
    assert "<script src=" not in page  # plotly.js is embedded


def test_report_renders_in_chromium_without_errors(tmp_path: Any) -> None:
    import re

    from test_report import PROBE_ELEMENT, console_errors, render

    feed = _feed(60)
    result = WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=20, test=10).run()
    dom, stderr = render(result.report(tmp_path / "wf.html"), tmp_path)
    assert PROBE_ELEMENT not in dom and console_errors(stderr) == []
    for chart in ("chart-equity", "chart-drawdown"):
        match = re.search(rf'<div id="{chart}" class="([^"]*)"', dom)
        assert match is not None and "js-plotly-plot" in match.group(1), chart
    assert "fold 3" in dom  # the boundary annotations are drawn


def test_the_study_example_runs(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parents[1] / "examples" / "ml_topk_study.py"
    out = subprocess.run(
        [sys.executable, str(example), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "deflated Sharpe ratio over 9 trials" in out.stdout and "PBO" in out.stdout
    for name in ("walkforward.html", "sweep.html", "folds.parquet", "study.txt"):
        assert (tmp_path / name).is_file()


def test_a_streaming_feed_is_read_once_and_gives_the_same_study() -> None:
    bars = make_bars(n_assets=3, n_bars=60, seed=2)
    streaming = PolarsDataFeed(bars, chunk_rows=40)
    common = {"train": 20, "test": 10, "purge": 1}
    a = WalkForward(_feed(60), copy_score, TopKStrategy("pred", k=1), **common).run()
    b = WalkForward(streaming, copy_score, TopKStrategy("pred", k=1), **common).run()
    assert a.equity.equals(b.equity) and a.folds.drop("fit_seconds").equals(
        b.folds.drop("fit_seconds")
    )


def test_calendar_steps_over_a_weekend_make_one_fold_each_trading_day() -> None:
    feed = _feed(30)
    wf = WalkForward(feed, copy_score, TopKStrategy("pred", k=1), train=10, test="1d")
    assert len(wf.folds) == 20 and {f.test_rows for f in wf.folds} == {3}
    days = _days(feed)
    assert [f.test_start for f in wf.folds] == days[10:]


def test_backtest_folds_are_checked() -> None:
    from ml4t.backtest import Backtest

    feed = _feed(20)
    with pytest.raises(ConfigError, match="built-in strategy, which has no on_fold"):
        Backtest(feed, TopKStrategy("score", k=1), folds=[(0, None, None)])
    with pytest.raises(ConfigError, match="folds: starts must be engine nanoseconds"):
        Backtest(feed, FoldModels(), folds=[(5, None, None), (1, None, None)])
