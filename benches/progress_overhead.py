"""Cost of the progress bar on scenario (b): 500 assets x 2,520 days, Python batch top-25.

Runs the scenario with the bar forced on (``progress=True``, drawn into a file, not a terminal)
and off (``progress=False``), interleaved so drift affects both alike, and prints best and
median wall and CPU time of each, the overhead, and the cost of the bar measured alone. The bar
must cost under 1 %.

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


def _once(feed: PolarsDataFeed, progress: bool, sink: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one run."""
    with contextlib.redirect_stderr(sink):
        wall, cpu = time.perf_counter(), time.process_time()
        Backtest(feed, TopKBatch(), config=CONFIG).run(progress=progress)
        return time.perf_counter() - wall, time.process_time() - cpu


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


def _stats(off: list[float], on: list[float]) -> dict[str, float]:
    # Each iteration runs both back to back: the median of the paired ratios cancels drift.
    paired = statistics.median(b / a - 1.0 for a, b in zip(off, on, strict=True))
    return {
        "off_best": min(off),
        "on_best": min(on),
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "overhead_best": min(on) / min(off) - 1.0,
        "overhead_median": statistics.median(on) / statistics.median(off) - 1.0,
        "overhead_paired": paired,
    }


def measure(feed: PolarsDataFeed, repeats: int = 15) -> dict[str, float]:
    """``repeats`` interleaved runs with the bar on and off (after one warm-up run of each).

    Returns, for wall time (plain keys) and for this process's CPU time (keys prefixed
    ``cpu_``), the best and median seconds of each and the overhead as a fraction (best vs best,
    median vs median, median of the paired ratios); and the bar's own cost measured alone
    (``bar_seconds``, and ``bar_fraction`` of the median run without it). CPU time is less
    disturbed by other processes on a shared machine than wall time.
    """
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryFile("w+") as sink:
        _once(feed, False, sink)
        _once(feed, True, sink)
        for i in range(repeats):
            # Alternate which goes first so neither always runs on a warmer machine.
            for progress in (False, True) if i % 2 == 0 else (True, False):
                w, c = _once(feed, progress, sink)
                wall[progress].append(w)
                cpu[progress].append(c)
        sink.seek(0)
        drawn = sink.read()
    if "bars/s" not in drawn:
        raise RuntimeError("the forced progress bar drew nothing")
    out = {"rows": float(len(feed)), "repeats": float(repeats)}
    out.update(_stats(wall[False], wall[True]))
    out.update({f"cpu_{k}": v for k, v in _stats(cpu[False], cpu[True]).items()})
    out["bar_seconds"] = bar_cost(len(feed))
    out["bar_fraction"] = out["bar_seconds"] / out["off_median"]
    return out


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
    for clock, prefix in (("wall", ""), ("cpu", "cpu_")):
        for name in ("off", "on"):
            best, median = f[f"{prefix}{name}_best"], f[f"{prefix}{name}_median"]
            print(
                f"  {clock:>4} progress {name:>3}: best {best * 1e3:7.1f} ms "
                f"({rows / best / 1e6:5.1f}M bars/s)   median {median * 1e3:7.1f} ms"
            )
        print(
            f"  {clock:>4} overhead: {f[prefix + 'overhead_best'] * 100:+.2f} % (best vs best), "
            f"{f[prefix + 'overhead_median'] * 100:+.2f} % (median vs median), "
            f"{f[prefix + 'overhead_paired'] * 100:+.2f} % (median of pairs)"
        )
    print(
        f"  the bar alone (create, 2 updates, close): {f['bar_seconds'] * 1e6:.0f} us = "
        f"{f['bar_fraction'] * 100:.2f} % of the median run; target < 1 %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
