"""pytest-benchmark over the Python API: the foundation scenarios (a), (b), (c).

Sizes are small by default so the suite's smoke run stays fast; set ``ML4T_BENCH_FULL=1`` for the
issue's sizes, e.g.::

    ML4T_BENCH_FULL=1 .venv/bin/pytest benches/test_bench_python.py --benchmark-only

Bars per second are stored in each benchmark's ``extra_info``. Peak memory per scenario is
reported by ``benches/python_bench_report.py`` (one subprocess per scenario).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import scenarios

FULL = os.environ.get("ML4T_BENCH_FULL") == "1"
A_BARS = 1_000_000 if FULL else 20_000
B_SHAPE = (500, 2_520) if FULL else (60, 120)


@pytest.fixture(scope="module")
def signal_feed() -> Any:
    return scenarios.signal_feed(A_BARS)


@pytest.fixture(scope="module")
def cross_section_feed() -> Any:
    return scenarios.cross_section_feed(*B_SHAPE)


def _bench(benchmark: Any, run: Callable[[Any], Any], feed: Any) -> Any:
    result = benchmark(run, feed)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.min > 0:
        benchmark.extra_info["bars_per_second"] = len(feed) / stats.stats.min
    return result


def test_a_signal_builtin(benchmark: Any, signal_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_a, signal_feed)
    assert result.equity.height == len(signal_feed)
    assert result.fills.height > 0


def test_b_top_k_batch(benchmark: Any, cross_section_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_b, cross_section_feed)
    held = result.trades.filter(result.trades["status"] == "open").height
    assert held == scenarios.TOP_K


def test_c_top_k_per_bar_matches_batch(benchmark: Any, cross_section_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_c, cross_section_feed)
    batch = scenarios.run_b(cross_section_feed)
    open_batch = batch.trades.filter(batch.trades["status"] == "open")["asset"].sort()
    open_bar = result.trades.filter(result.trades["status"] == "open")["asset"].sort()
    assert open_bar.equals(open_batch)


def test_a_signal_with_rules(benchmark: Any, signal_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_a_rules, signal_feed)
    reasons = set(result.trades["exit_reason"])
    assert {"stop_loss", "take_profit"} <= reasons


def test_b_top_k_batch_with_rules(benchmark: Any, cross_section_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_b_rules, cross_section_feed)
    assert result.equity.height == cross_section_feed.frame["ts"].n_unique()
    assert "stop_loss" in set(result.trades["exit_reason"])


def test_b_with_python_rules_matches_builtins(benchmark: Any, cross_section_feed: Any) -> None:
    result = _bench(benchmark, scenarios.run_b_pyrules, cross_section_feed)
    assert result.fills.equals(scenarios.run_b_rules(cross_section_feed).fills)
