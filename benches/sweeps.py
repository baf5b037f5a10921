"""Sweep benchmarks (s1-s3 of the sweeps issue); figures in the README and docs/performance.md.

(s1) 1 asset x 1M minute bars, a +-1 signal (+1 while SMA(10) > SMA(50) of the close), entries
     only on a fresh change to +1 (a precomputed column: a stop-out is not re-entered at once),
     100 shares, next open, 0.1 % commission, the built-in SignalStrategy with StopLoss and
     TakeProfit (fill-price basis) over an 8 x 8 grid of stops 1-8 % and targets 2-16 %
     (64 trials): bar-simulations per second with 1 and 2 workers (threads: every trial is
     native), and vectorbt 1.2 broadcasting the same 64 pairs in one Portfolio.from_signals call
     (installed into this venv when missing: a benchmark-only dependency).
(s2) 500 assets x 2,520 days, a Python batch top-k strategy, 12 trials (k = 20..31) on
     processes: parallel efficiency at 2 workers, and the peak PSS of all workers together
     (/proc/PID/smaps_rollup sampled every 5 ms, so the memory-mapped data counts once) against
     the peak PSS of one single run of the heaviest trial (k = 31) in a fresh process.
(s3) (s1) on a local Ray against the process pool, ray.init and actor warm-up excluded (and
     reported).

Also measured in the same sitting: how two CPU-bound processes scale on this machine right now
(other jobs share its two cores), the yardstick for the speed-ups.

Run: ``.venv/bin/python benches/sweeps.py [--quick] [--repeats N] [--only s1,s2,s3]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

VECTORBT = "vectorbt==1.2.0"


# ----------------------------------------------------------------------------------- data


def s1_bars(n_bars: int) -> pl.DataFrame:
    """(s1)'s bars with the precomputed entry/exit signal (+1 enter, -1 exit, 0 hold)."""
    from ml4t.backtest.synthetic import make_bars

    bars = make_bars(n_assets=1, n_bars=n_bars, seed=1, interval="1m").drop("score", "signal")
    fast, slow = pl.col("close").rolling_mean(10), pl.col("close").rolling_mean(50)
    trend = pl.when(fast > slow).then(1.0).otherwise(-1.0).fill_null(-1.0)
    bars = bars.with_columns(trend.alias("trend"))
    fresh = (pl.col("trend") == 1.0) & (pl.col("trend").shift(1) != 1.0)
    signal = pl.when(fresh).then(1.0).when(pl.col("trend") == -1.0).then(-1.0).otherwise(0.0)
    return bars.with_columns(signal.alias("signal")).drop("trend")


STOPS = [0.01 * i for i in range(1, 9)]
TARGETS = [0.02 * i for i in range(1, 9)]


def s1_sweep(bars: pl.DataFrame) -> Any:
    from ml4t.backtest import BacktestConfig, PolarsDataFeed, SignalStrategy
    from ml4t.backtest.risk import StopLoss, TakeProfit
    from ml4t.backtest.study import Sweep

    config = BacktestConfig(
        commission={"model": "percent", "rate": 0.001}, execution={"stop_basis": "fill"}
    )
    strategy = SignalStrategy("signal", quantity=100, long_threshold=0.5, short_threshold=-0.5)
    return Sweep(
        PolarsDataFeed(bars),
        strategy,
        {"stop": STOPS, "target": TARGETS},
        config=config,
        risk=lambda stop, target: [StopLoss(pct=stop), TakeProfit(pct=target)],
    )


# ---------------------------------------------------------------------------- yardsticks


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def machine_scaling(n: int = 4_000_000) -> float:
    """Speed-up of 2 CPU-bound processes over 1 on this machine now (2.0 when idle)."""
    times = {}
    for workers in (1, 2):
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_spin, [10] * workers))
            start = time.perf_counter()
            list(pool.map(_spin, [n] * 4))
            times[workers] = time.perf_counter() - start
    return times[1] / times[2]


def summary(values: list[float]) -> dict[str, float]:
    return {"best": min(values), "median": statistics.median(values)}


# ------------------------------------------------------------------------------------- s1


def ensure_vectorbt() -> None:
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        print(f"installing {VECTORBT} into this venv (benchmark only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", VECTORBT], check=True)


def run_vectorbt(bars: pl.DataFrame, repeats: int) -> dict[str, Any]:
    """The 64 pairs in one from_signals call: signals shifted one bar and filled at the open
    (next-open, as the engine), stops from the fill price."""
    ensure_vectorbt()
    import vectorbt as vbt

    frame = bars.select("open", "high", "low", "close", "signal").to_pandas()
    signal = frame["signal"].shift(1).fillna(0.0)
    entries, exits = signal == 1.0, signal == -1.0
    stops = np.array([[s for s in STOPS for _ in TARGETS]])
    targets = np.array([[t for _ in STOPS for t in TARGETS]])

    def simulate(n: int | None = None) -> Any:
        part = slice(None, n)
        return vbt.Portfolio.from_signals(
            close=frame["close"].iloc[part],
            entries=entries.iloc[part],
            exits=exits.iloc[part],
            open=frame["open"].iloc[part],
            high=frame["high"].iloc[part],
            low=frame["low"].iloc[part],
            price=frame["open"].iloc[part],
            size=100.0,
            size_type="amount",
            fees=0.001,
            init_cash=100_000.0,
            sl_stop=stops,
            tp_stop=targets,
            stop_entry_price="fillprice",
            freq="1min",
        )

    start = time.perf_counter()
    warm = simulate(2_000)  # numba compilation of the simulation and of the metrics
    warm.total_return(), warm.sharpe_ratio(), warm.max_drawdown()
    compile_s = time.perf_counter() - start
    sims, with_metrics, trades = [], [], 0
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        pf = simulate()
        sims.append(time.perf_counter() - start)
        pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()
        with_metrics.append(time.perf_counter() - start)
        trades = int(pf.trades.count().sum())
        del pf
    return {
        "compile_seconds": compile_s,
        "simulate_seconds": summary(sims),
        "with_3_metrics_seconds": summary(with_metrics),
        "trades_all_64": trades,
    }


def s1(n_bars: int, repeats: int, with_vectorbt: bool) -> dict[str, Any]:
    bars = s1_bars(n_bars)
    sweep = s1_sweep(bars)
    sweep.run(executor="threads", max_workers=2, progress=False, ledger=False)  # warm
    out: dict[str, Any] = {"bars": n_bars, "trials": len(sweep.trials)}
    walls: dict[int, list[float]] = {1: [], 2: []}
    tables = []
    for _ in range(repeats):
        for workers in (1, 2):
            gc.collect()
            start = time.perf_counter()
            result = sweep.run(
                executor="threads", max_workers=workers, progress=False, ledger=False
            )
            walls[workers].append(time.perf_counter() - start)
            tables.append(result.table.drop("seconds"))
    assert all(t.equals(tables[0]) for t in tables), "tables differ between runs"
    sims = n_bars * len(sweep.trials)
    for workers, values in walls.items():
        out[f"threads_{workers}"] = {
            "seconds": summary(values),
            "bar_sims_per_second": {  # best = the fastest run
                "best": sims / min(values),
                "median": sims / statistics.median(values),
            },
        }
    out["speedup_2_vs_1"] = summary([a / b for a, b in zip(walls[1], walls[2], strict=True)])
    out["trades_all_64"] = int(tables[0]["num_trades"].sum())
    # One trial's phases (1 worker): the engine (GIL released) and result + metrics.
    from ml4t.backtest import Backtest

    trial = sweep.trials[20]
    start = time.perf_counter()
    result = Backtest(sweep.feed, trial.strategy, config=trial.config, risk=trial.risk).run(
        progress=False
    )
    engine = time.perf_counter() - start
    start = time.perf_counter()
    _ = result.metrics
    out["one_trial_seconds"] = {"run": engine, "metrics": time.perf_counter() - start}
    if with_vectorbt:
        out["vectorbt"] = run_vectorbt(bars, repeats)
        ours = out["threads_2"]["seconds"]["median"]
        out["vectorbt_over_ours_2_workers"] = (
            out["vectorbt"]["with_3_metrics_seconds"]["median"] / ours
        )
    return out


# ------------------------------------------------------------------------------------- s2


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _is_worker(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return False
    return b"spawn_main" in cmd and b"resource_tracker" not in cmd


class PssSampler:
    """Peak of the summed PSS of the given processes (or of this process's pool workers)."""

    def __init__(self, pids: list[int] | None = None, every: float = 0.02) -> None:
        self.pids, self.every, self.peak = pids, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.pids or [p for p in _children(os.getpid()) if _is_worker(p)]
            self.peak = max(self.peak, sum(_pss_kib(p) for p in pids))
            time.sleep(self.every)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self._stop.set()
        self._thread.join()


S2_SINGLE = """
import sys, gc
sys.path.insert(0, {benches!r})
import scenarios
from ml4t.backtest import Backtest
feed = scenarios.cross_section_feed({assets}, {days})
gc.collect()
print("ready", flush=True)
sys.stdin.readline()
Backtest(feed, scenarios.TopKBatch(31), config=scenarios.CONFIG).run(progress=False).metrics
print("done", flush=True)
sys.stdin.readline()
"""


def s2(n_assets: int, n_days: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import scenarios

    from ml4t.backtest.study import Sweep

    feed = scenarios.cross_section_feed(n_assets, n_days)
    sweep = Sweep(
        feed,
        scenarios.TopKBatch,
        {"k": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]},
        config=scenarios.CONFIG,
    )
    out: dict[str, Any] = {"assets": n_assets, "days": n_days, "trials": len(sweep.trials)}
    runs: dict[int, Any] = {}
    for workers in (1, 2):
        with PssSampler(every=0.005) as sampler:
            start = time.perf_counter()
            result = sweep.run(
                executor="processes", max_workers=workers, progress=False, ledger=False
            )
            wall = time.perf_counter() - start
        runs[workers] = result
        out[f"processes_{workers}"] = {
            "wall_seconds": wall,
            "setup_seconds": result.info["setup_seconds"],
            "run_seconds": result.info["run_seconds"],
            "trial_seconds_sum": float(result.table["seconds"].sum()),
            "workers_pss_peak_mib": sampler.peak / 1024,
        }
    assert runs[1].table.drop("seconds").equals(runs[2].table.drop("seconds"))
    one, two = out["processes_1"], out["processes_2"]
    out["efficiency_run"] = one["run_seconds"] / (2 * two["run_seconds"])
    out["efficiency_wall"] = one["wall_seconds"] / (2 * two["wall_seconds"])
    # One single run in a fresh process: its PSS peak while it runs one trial.
    code = S2_SINGLE.format(benches=str(Path(__file__).parent), assets=n_assets, days=n_days)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdout.readline()
    with PssSampler([child.pid], every=0.005) as sampler:
        child.stdin.write("\n")
        child.stdin.flush()
        child.stdout.readline()
    child.stdin.write("\n")
    child.stdin.flush()
    child.wait()
    out["single_run_pss_peak_mib"] = sampler.peak / 1024
    out["memory_ratio_2_workers"] = two["workers_pss_peak_mib"] / out["single_run_pss_peak_mib"]
    return out


# ------------------------------------------------------------------------------------- s3


def s3(n_bars: int, repeats: int) -> dict[str, Any]:
    import ray

    sweep = s1_sweep(s1_bars(n_bars))
    out: dict[str, Any] = {}
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out["ray_init_seconds"] = time.perf_counter() - start
    try:
        runs: dict[str, list[Any]] = {"processes_1": [], "processes": [], "ray": []}
        for _ in range(repeats):
            for name, executor, workers in (
                ("processes_1", "processes", 1),
                ("processes", "processes", 2),
                ("ray", "ray", 2),
            ):
                gc.collect()
                runs[name].append(
                    sweep.run(executor=executor, max_workers=workers, progress=False, ledger=False)
                )
        tables = [r.table.drop("seconds") for rs in runs.values() for r in rs]
        assert all(t.equals(tables[0]) for t in tables)
        for executor, results in runs.items():
            out[executor] = {
                "setup_seconds": summary([r.info["setup_seconds"] for r in results]),
                "run_seconds": summary([r.info["run_seconds"] for r in results]),
            }
        out["processes_speedup_2_vs_1"] = (
            out["processes_1"]["run_seconds"]["median"] / out["processes"]["run_seconds"]["median"]
        )
        out["ray_overhead_run"] = (
            out["ray"]["run_seconds"]["median"] / out["processes"]["run_seconds"]["median"] - 1
        )
    finally:
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a harness check)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="s1,s2,s3")
    parser.add_argument("--no-vectorbt", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    n_bars = 20_000 if args.quick else 1_000_000
    assets, days = (50, 252) if args.quick else (500, 2_520)
    wanted = args.only.split(",")
    figures: dict[str, Any] = {"machine_scaling_before": machine_scaling()}
    if "s1" in wanted:
        figures["s1"] = s1(n_bars, args.repeats, not args.no_vectorbt)
    if "s2" in wanted:
        figures["s2"] = s2(assets, days)
    if "s3" in wanted:
        figures["s3"] = s3(n_bars, args.repeats)
    figures["machine_scaling_after"] = machine_scaling()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
