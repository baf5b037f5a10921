"""The progress bar: when it shows, what it shows, that it reaches the total, that the engine
calls the callback with growing row counts, and that an exception from it stops the run."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TimestampBatch,
    _core,
    progress,
)
from ml4t.backtest.backtest import _BatchDriver
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.synthetic import make_bars


class TopTwo(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        best = np.argsort(-batch["score"], kind="stable")[:2]
        context.rebalance({batch.assets[i]: 0.5 for i in best})


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=4, n_bars=250, seed=3))


def test_wants_progress() -> None:
    assert progress.wants_progress(True, io.StringIO()) is True
    assert progress.wants_progress(False, TtyStream()) is False
    assert progress.wants_progress(None, io.StringIO()) is False
    assert progress.wants_progress(None, TtyStream()) is True
    closed = io.StringIO()
    closed.close()
    assert progress.wants_progress(None, closed) is False
    with pytest.raises(ConfigError, match="progress: expected True, False or None"):
        progress.wants_progress("yes")  # type: ignore[arg-type]


def test_bar_counts_in_bars_per_second() -> None:
    stream = io.StringIO()
    with progress.progress_bar(2_000, True, file=stream) as update:
        assert update is not None
        update(500)
        update(500)  # no change
        update(2_000)
    text = stream.getvalue()
    assert "2.00k/2.00k" in text
    assert "bars/s" in text
    with progress.progress_bar(10, False, file=stream) as update:
        assert update is None


@pytest.mark.parametrize("python", [True, False])
def test_forced_bar_reaches_the_total(
    feed: PolarsDataFeed, python: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", stream)
    strategy: Any = TopTwo() if python else SignalStrategy("signal", quantity=1.0)
    result = Backtest(feed, strategy).run(progress=True)
    text = stream.getvalue()
    assert "1.00k/1.00k" in text  # 4 x 250 rows
    assert "bars/s" in text
    assert result.equity.height == 250


@pytest.mark.parametrize("setting", [None, False])
def test_no_bar_off_a_terminal_or_when_disabled(
    feed: PolarsDataFeed, setting: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    Backtest(feed, TopTwo()).run(progress=setting)
    Backtest(feed, SignalStrategy("signal", quantity=1.0)).run(progress=setting)
    assert stream.getvalue() == ""


def test_bar_on_a_terminal_by_default(
    feed: PolarsDataFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = TtyStream()
    monkeypatch.setattr(sys, "stderr", stream)
    Backtest(feed, TopTwo()).run()
    assert "1.00k/1.00k" in stream.getvalue()
    stream = TtyStream()
    monkeypatch.setattr(sys, "stderr", stream)
    Backtest(feed, TopTwo()).run(progress=False)
    assert stream.getvalue() == ""


def test_invalid_progress_argument(feed: PolarsDataFeed) -> None:
    with pytest.raises(ConfigError, match="progress"):
        Backtest(feed, TopTwo()).run(progress="always")  # type: ignore[arg-type]


def test_engine_reports_growing_row_counts(feed: PolarsDataFeed) -> None:
    config = BacktestConfig().engine_dict()
    universe = {"names": feed.assets, "time_zone": feed.time_zone}
    calls: list[int] = []
    _core.run_builtin(
        feed.engine_frame,
        universe,
        config,
        SignalStrategy("signal", quantity=1.0).spec(),
        progress=calls.append,
    )
    assert calls and calls[-1] == len(feed)
    assert calls == sorted(calls)
    calls.clear()
    _core.run_python(
        feed.engine_frame,
        universe,
        config,
        _BatchDriver(TopTwo(), feed, feed.engine_frame),
        "batch",
        False,
        progress=calls.append,
    )
    assert calls and calls[-1] == len(feed)
    assert calls == sorted(calls)


@pytest.mark.parametrize("python", [True, False])
def test_interrupt_from_the_bar_stops_the_run_and_closes_it(
    feed: PolarsDataFeed, python: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []

    def interrupt(self: Any, rows: int) -> None:
        raise KeyboardInterrupt

    original_close = progress.tqdm.close

    def close(self: Any) -> None:
        closed.append(sys.exc_info()[0])  # the exception being propagated, if any
        original_close(self)

    monkeypatch.setattr(progress._Updater, "__call__", interrupt)
    monkeypatch.setattr(progress.tqdm, "close", close)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    strategy: Any = TopTwo() if python else SignalStrategy("signal", quantity=1.0)
    with pytest.raises(KeyboardInterrupt):
        Backtest(feed, strategy).run(progress=True)
    assert KeyboardInterrupt in closed  # closed while the interrupt propagated


def test_overhead_script_runs_on_a_small_case() -> None:
    path = Path(__file__).parents[1] / "benches" / "progress_overhead.py"
    spec = importlib.util.spec_from_file_location("progress_overhead", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.measure(module.cross_section_feed(n_assets=30, n_bars=40), repeats=2)
    assert set(figures) >= {"off_best", "on_best", "off_median", "on_median", "overhead_best"}
    assert figures["off_best"] > 0 and figures["on_best"] > 0
