"""Cost of the progress bar on scenario (b): 500 assets x 2,520 days, Python batch top-25.

Runs the scenario with the bar forced on (``progress=True``, drawn into a file, not a terminal)
and off (``progress=False``), interleaved so drift affects both alike, and prints best and
median wall time of each and the overhead. The bar must cost under 1 %.

    .venv/bin/python benches/progress_overhead.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from scenarios import CONFIG, TopKBatch, cross_section_feed

from ml4t.backtest import Backtest, PolarsDataFeed
from ml4t.backtest.progress import progress_bar

__all__ = ["cross_section_feed", "main", "measure"]


def _once(feed: PolarsDataFeed, progress: bool, sink: Any) -> float:
    with contextlib.redirect_stderr(sink):
        start = time.perf_counter()
        Backtest(feed, TopKBatch(), config=CONFIG).run(progress=progress)
        return time.perf_counter() - start


def bar_cost(rows: int, repeats: int = 200) -> float:
    """Median seconds of the bar's whole life in isolation: create, two updates (the engine's
    mid-run call and its final call), close, drawn into a file."""
    times = []
    with tempfile.TemporaryFile("w+") as sink:
        for _ in range(repeats):
            start = time.perf_counter()
            with progress_bar(rows, True, file=sink) as update:
                assert update is not None
                update(rows // 2)
                update(rows)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(feed: PolarsDataFeed, repeats: int = 15) -> dict[str, float]:
    """Wall time of ``repeats`` interleaved runs with the bar on and off (after one warm-up
    run of each). Returns seconds (best and median of each) and the overhead as a fraction."""
    off: list[float] = []
    on: list[float] = []
    with tempfile.TemporaryFile("w+") as sink:
        _once(feed, False, sink)
        _once(feed, True, sink)
        for i in range(repeats):
            # Alternate which goes first so neither always runs on a warmer machine.
            order = (False, True) if i % 2 == 0 else (True, False)
            for progress in order:
                (on if progress else off).append(_once(feed, progress, sink))
        sink.seek(0)
        drawn = sink.read()
    if "bars/s" not in drawn:
        raise RuntimeError("the forced progress bar drew nothing")
    off_best, on_best = min(off), min(on)
    # Each iteration runs both back to back: the median of the paired ratios cancels slow drift.
    paired = statistics.median(b / a - 1.0 for a, b in zip(off, on, strict=True))
    off_median, on_median = statistics.median(off), statistics.median(on)
    return {
        "rows": float(len(feed)),
        "repeats": float(repeats),
        "off_best": off_best,
        "on_best": on_best,
        "off_median": off_median,
        "on_median": on_median,
        "overhead_best": on_best / off_best - 1.0,
        "overhead_median": on_median / off_median - 1.0,
        "overhead_paired": paired,
        "bar_seconds": bar_cost(len(feed)),
        "bar_fraction": bar_cost(len(feed)) / off_median,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--bars", type=int, default=2_520)
    args = parser.parse_args(argv)
    feed = cross_section_feed(args.assets, args.bars)
    f = measure(feed, args.repeats)
    rows = f["rows"]
    print(
        f"scenario (b): {args.assets} assets x {args.bars} bars = {rows:,.0f} rows, "
        f"{args.repeats} interleaved runs each"
    )
    for name in ("off", "on"):
        best, median = f[f"{name}_best"], f[f"{name}_median"]
        print(
            f"  progress {name:>3}: best {best * 1e3:8.1f} ms ({rows / best / 1e6:5.1f}M bars/s)"
            f"   median {median * 1e3:8.1f} ms ({rows / median / 1e6:5.1f}M bars/s)"
        )
    print(
        f"  overhead: {f['overhead_best'] * 100:+.2f} % (best vs best), "
        f"{f['overhead_median'] * 100:+.2f} % (median vs median), "
        f"{f['overhead_paired'] * 100:+.2f} % (median of paired runs); target < 1 %"
    )
    print(
        f"  the bar alone (create, 2 updates, close): {f['bar_seconds'] * 1e6:.0f} us = "
        f"{f['bar_fraction'] * 100:.2f} % of the median run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
