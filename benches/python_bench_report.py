"""Bars per second and peak memory of the foundation scenarios, end to end through Python.

Each scenario runs in a fresh subprocess so that its peak RSS is its own. Run:
``.venv/bin/python benches/python_bench_report.py [--quick] [--repeats N]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    "full": {
        "a": (1, 1_000_000),
        "a+rules": (1, 1_000_000),
        "b": (500, 2_520),
        "b+rules": (500, 2_520),
        "b+pyrules": (500, 2_520),
        "c": (500, 2_520),
    },
    "quick": {
        "a": (1, 50_000),
        "a+rules": (1, 50_000),
        "b": (100, 252),
        "b+rules": (100, 252),
        "b+pyrules": (100, 252),
        "c": (100, 252),
    },
}


def _child(name: str, n_assets: int, n_bars: int, repeats: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import scenarios

    feed = (
        scenarios.signal_feed(n_bars)
        if name.startswith("a")
        else scenarios.cross_section_feed(n_assets, n_bars)
    )
    run = {
        "a": scenarios.run_a,
        "b": scenarios.run_b,
        "c": scenarios.run_c,
        "a+rules": scenarios.run_a_rules,
        "b+rules": scenarios.run_b_rules,
        "b+pyrules": scenarios.run_b_pyrules,
    }[name]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(feed)
        times.append(time.perf_counter() - start)
        del result
    times.sort()
    rows = len(feed)
    print(
        json.dumps(
            {
                "scenario": name,
                "rows": rows,
                "best_bars_per_s": rows / times[0],
                "median_bars_per_s": rows / times[len(times) // 2],
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_after_data_mib": rss_before,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    args = parser.parse_args()
    if args.child:
        name, n_assets, n_bars, repeats = args.child
        _child(name, int(n_assets), int(n_bars), int(repeats))
        return
    sizes = SIZES["quick" if args.quick else "full"]
    for name, (n_assets, n_bars) in sizes.items():
        if args.only and name not in args.only:
            continue
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                str(n_assets),
                str(n_bars),
                str(args.repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"({r['scenario']}) rows={r['rows']:>9,}"
            f"  best={r['best_bars_per_s'] / 1e6:7.2f} M bars/s"
            f"  median={r['median_bars_per_s'] / 1e6:7.2f} M bars/s"
            f"  peak_rss={r['peak_rss_mib']:7.1f}"
            f" MiB (after data {r['rss_after_data_mib']:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
