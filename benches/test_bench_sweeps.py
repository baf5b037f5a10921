"""The sweep benchmark harness in quick mode (figures come from ``benches/sweeps.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sweeps


def test_sweep_benchmarks_run_quick() -> None:
    s1 = sweeps.s1(5_000, 1, with_vectorbt=False)
    assert s1["trials"] == 64 and s1["threads_2"]["bar_sims_per_second"]["best"] > 0
    s2 = sweeps.s2(40, 60)
    assert s2["trials"] == 12 and s2["single_run_pss_peak_mib"] > 0
    assert s2["processes_2"]["workers_pss_peak_mib"] > 0
