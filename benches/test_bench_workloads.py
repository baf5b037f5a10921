"""Issue 18's workload harness in quick mode, without the peers (figures come from
``benches/workloads.py``): every workload of ours runs in its own process, and the built-in
``TopKStrategy`` makes exactly the trades of the Python ``argpartition`` strategy it races."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import workloads


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    directory = tmp_path_factory.mktemp("workloads")
    workloads.write_data(directory, "quick")
    names = ["w1", "w1_python", "plain_loop", "topk_builtin", "topk_python", "feed_cold"]
    return {
        n: workloads.summarise([workloads.run_child(sys.executable, n, directory)]) for n in names
    }


def test_every_workload_reports_a_rate(figures: dict[str, dict[str, float]]) -> None:
    for name, fig in figures.items():
        assert fig["best_bars_per_s"] > 0, name
    ratios = workloads.ratios(figures)
    assert ratios["w1_python_rate_over_plain_loop"] > 0
    # The memory figure counts at least the input and what the run keeps of its results.
    w1 = figures["w1"]
    assert w1["memory_mib"] >= w1["input_mib"] > 0 and w1["feed_added_mib"] >= 0


def test_builtin_signal_and_python_rule_trade_alike(figures: dict[str, dict[str, float]]) -> None:
    # The Python on_market_data W1 strategy is the built-in SignalStrategy's rule; the plain
    # loop counts the same position changes the engine fills.
    assert figures["w1"]["fills"] == figures["w1_python"]["fills"] == figures["plain_loop"]["fills"]
    assert figures["w1"]["final_equity"] == figures["w1_python"]["final_equity"]


def test_builtin_topk_matches_the_python_argpartition(figures: dict[str, dict[str, float]]) -> None:
    assert figures["topk_builtin"]["fills"] == figures["topk_python"]["fills"]
    assert figures["topk_builtin"]["final_equity"] == pytest.approx(
        figures["topk_python"]["final_equity"], rel=1e-12
    )
