"""Peak memory of a streaming run against an in-memory run of the same backtest.

Generates 250 assets x one year (252 days x 390 minutes) of one-minute bars with a ±1 signal
column (about 24.5M rows) as a month-partitioned Parquet dataset in a temporary directory,
written one day at a time so generation itself stays small. Then runs the built-in
``SignalStrategy`` over it twice, each in its own subprocess: streaming
(``PolarsDataFeed(path, chunk_by=...)``) and in memory (``PolarsDataFeed(path)``), and reports
each process's peak RSS (``resource.getrusage(...).ru_maxrss``), the wall time, and whether the
two runs gave identical equity curves and fills.

Usage::

    .venv/bin/python benches/streaming_memory.py            # full size (a few minutes)
    .venv/bin/python benches/streaming_memory.py --quick    # 20 assets x 5 days (seconds)
    .venv/bin/python benches/streaming_memory.py --assets 250 --days 252 --chunk-by 1mo

Target: streaming peak RSS < 1 GiB at full size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

MINUTES_PER_DAY = 390


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def trading_days(n: int, start: datetime = datetime(2023, 1, 2)) -> list[datetime]:
    days: list[datetime] = []
    day = start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def generate(root: Path, n_assets: int, n_days: int, seed: int = 7) -> int:
    """Writes the dataset one day at a time; returns the number of rows."""
    import polars as pl

    from ml4t.backtest.data import write_dataset

    rng = np.random.default_rng(seed)
    names = [f"S{i:04d}" for i in range(n_assets)]
    close = np.full(n_assets, 100.0)
    signal = np.where(rng.random(n_assets) < 0.5, 1.0, -1.0)
    rows = 0
    for day in trading_days(n_days):
        stamps = np.datetime64(day + timedelta(hours=9, minutes=30), "us") + np.arange(
            MINUTES_PER_DAY
        ).astype("timedelta64[m]")
        shape = (MINUTES_PER_DAY, n_assets)
        returns = rng.normal(0.0, 0.001, size=shape)
        closes = close * np.exp(np.cumsum(returns, axis=0))
        opens = np.vstack([close, closes[:-1]])
        wick = np.abs(rng.normal(0.0, 0.0005, size=(2, *shape)))
        highs = np.maximum(opens, closes) * (1.0 + wick[0])
        lows = np.minimum(opens, closes) * (1.0 - wick[1])
        flips = rng.random(shape) < 0.01
        flips[0] = False
        signals = signal * np.where(np.cumsum(flips, axis=0) % 2 == 1, -1.0, 1.0)
        close, signal = closes[-1], signals[-1]
        frame = pl.DataFrame(
            {
                "timestamp": np.repeat(stamps, n_assets),
                "asset": np.tile(np.array(names), MINUTES_PER_DAY),
                "open": opens.ravel(),
                "high": highs.ravel(),
                "low": lows.ravel(),
                "close": closes.ravel(),
                "volume": rng.integers(100, 10_000, size=shape).astype(np.float64).ravel(),
                "signal": signals.ravel(),
            }
        )
        write_dataset(frame, root, partition_by="month", assets=names, existing="append")
        rows += frame.height
    return rows


def child(mode: str, root: str, chunk_by: str) -> dict[str, Any]:
    """One run in this process; returns its figures."""
    import polars as pl

    from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, SignalStrategy

    baseline = peak_rss_mib()
    start = time.perf_counter()
    feed = PolarsDataFeed(root, chunk_by=chunk_by) if mode == "stream" else PolarsDataFeed(root)
    loaded = time.perf_counter()
    config = BacktestConfig(commission={"model": "percent", "rate": 0.0005})
    result = Backtest(feed, SignalStrategy("signal", quantity=10.0), config=config).run(
        progress=False
    )
    done = time.perf_counter()
    digest = pl.concat(
        [
            result.equity.select(pl.col("equity").hash().sum().alias("h")),
            result.fills.select(pl.col("price").hash().sum().alias("h")),
        ]
    )["h"].to_list()
    return {
        "mode": mode,
        "rows": len(feed),
        "timestamps": result.equity.height,
        "fills": result.fills.height,
        "final_equity": result.final_equity,
        "digest": digest,
        "seconds_feed": round(loaded - start, 2),
        "seconds_total": round(done - start, 2),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def run_child(*args: str) -> dict[str, Any]:
    """Runs this script with ``args`` in a fresh process; returns the JSON it prints. (Linux
    carries a parent's peak RSS into a forked child, so the parent here stays small: it never
    imports Polars or holds data.)"""
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=250)
    parser.add_argument("--days", type=int, default=252)
    parser.add_argument("--chunk-by", default="1mo", help="streaming period (default 1mo)")
    parser.add_argument("--quick", action="store_true", help="20 assets x 5 days")
    parser.add_argument("--dir", help="use (or fill) this dataset directory")
    parser.add_argument("--child", choices=("generate", "stream", "memory"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "generate":
        started = time.perf_counter()
        rows = generate(Path(args.dir), args.assets, args.days)
        seconds = round(time.perf_counter() - started, 1)
        print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.dir, args.chunk_by)))
        return 0
    if args.quick:
        args.assets, args.days = 20, 5
    with tempfile.TemporaryDirectory(prefix="ml4t-stream-bench-") as tmp:
        root = Path(args.dir) if args.dir else Path(tmp) / "bars"
        if not (root / "_ml4t_dataset.json").exists():
            size_args = ["--assets", str(args.assets), "--days", str(args.days)]
            gen = run_child("--child", "generate", "--dir", str(root), *size_args)
            print(
                f"generated {gen['rows']:,} rows ({args.assets} assets x {args.days} days x "
                f"{MINUTES_PER_DAY} minutes) in {gen['seconds']} s, "
                f"generator peak RSS {gen['peak_rss_mib']:.0f} MiB"
            )
        size = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 2**20
        print(f"dataset: {root} ({size:.0f} MiB of Parquet)")
        common = ["--dir", str(root), "--chunk-by", args.chunk_by]
        stream = run_child("--child", "stream", *common)
        memory = run_child("--child", "memory", *common)
    print(f"{'mode':<28}{'peak RSS':>12}{'baseline':>12}{'time':>10}{'fills':>12}")
    for label, fig in ((f"streaming (chunk_by={args.chunk_by})", stream), ("in memory", memory)):
        print(
            f"{label:<28}{fig['peak_rss_mib']:>8.0f} MiB{fig['baseline_rss_mib']:>8.0f} MiB"
            f"{fig['seconds_total']:>9.1f}s{fig['fills']:>12,}"
        )
    same = all(stream[k] == memory[k] for k in ("digest", "fills", "final_equity", "timestamps"))
    print(f"rows {stream['rows']:,}; identical results: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
