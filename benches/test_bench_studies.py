"""The walk-forward and CPCV benchmark harness in quick mode (figures come from
``benches/studies.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import studies


def test_study_benchmarks_run_quick() -> None:
    w1 = studies.scenario_wf(40, 300, 1)
    assert w1["folds"] == 10 and w1["ratio_1_worker"]["median_of_repeats"] > 0
    assert w1["peak_rss_mib"] >= w1["rss_with_feed_mib"] > 0
    w2 = studies.scenario_cpcv(40, 300, 1)
    assert w2["splits"] == 15 and w2["paths"] == 5 and len(w2["sharpe_by_path"]) == 5
