"""Walk-forward and CPCV benchmarks (item 7 of the studies issue); figures in docs/studies.md.

Data: 500 assets x 2,520 days (``make_bars``, seed 7) with the score and two noise features.
The fit is a ridge regression (numpy, the normal equations) of the next-open-to-open return on
the three features, over the fold's training rows, predicting its test window; the strategy is
the built-in ``TopKStrategy`` (k = 25) on the prediction.

(w1) ``WalkForward(train=1260, test=126, purge=2)``: 10 folds, one continuous account, on
     threads with 1 and 2 workers. Against the yardstick: the fits' own time (the same fit
     called on the same training frames, one after the other, outside the study) plus one
     backtest of the whole data (2,520 days) with a precomputed prediction column. The ratio
     is the study's wall time over that sum in the same repeat (the repeats interleave both
     sides, so a change of the machine's load hits both): the median and the worst of them.
(w2) ``CombinatorialPurgedCV(6, 2, label_horizon=2, embargo=2).run``: 15 fits, 5 paths, each
     path a backtest of the whole data; seconds with 1 and 2 workers.

Each scenario runs in a fresh process, which reports its peak RSS (``ru_maxrss``, over all its
runs; one result is alive at a time) next to the RSS it had with the data loaded and the feed
built.

Run: ``.venv/bin/python benches/studies.py [--quick] [--repeats N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

FEATURES = ("score", "f1", "f2")
K = 25


def _rss_mib() -> float:
    """This process's current RSS."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_feed(n_assets: int, n_days: int) -> Any:
    from ml4t.backtest import PolarsDataFeed
    from ml4t.backtest.synthetic import make_bars

    bars = make_bars(n_assets=n_assets, n_bars=n_days, seed=7, skill=0.05).drop("signal")
    rng = np.random.default_rng(8)
    bars = bars.with_columns(
        pl.Series("f1", rng.normal(size=bars.height)),
        pl.Series("f2", rng.normal(size=bars.height)),
    )
    return PolarsDataFeed(bars)


def ridge(train: pl.DataFrame, fold: Any) -> pl.DataFrame:
    """Ridge (lambda = 1e-3) of the next-open-to-open return on the features."""
    data = train.with_columns(
        (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("label")
    ).drop_nulls("label")
    x = np.column_stack([data[f].to_numpy() for f in FEATURES] + [np.ones(data.height)])
    coef = np.linalg.solve(x.T @ x + 1e-3 * np.eye(x.shape[1]), x.T @ data["label"].to_numpy())
    prediction = sum(coef[i] * pl.col(f) for i, f in enumerate(FEATURES)) + coef[-1]
    return fold.test_data.select("timestamp", "asset", prediction.alias("pred"))


def _summary(values: list[float]) -> dict[str, float]:
    return {"best": min(values), "median": statistics.median(values)}


def scenario_wf(n_assets: int, n_days: int, repeats: int) -> dict[str, Any]:
    from dataclasses import replace

    from ml4t.backtest import Backtest, TopKStrategy
    from ml4t.backtest.study import WalkForward
    from ml4t.backtest.study.refit import user_rows

    feed = make_feed(n_assets, n_days)
    loaded = _rss_mib()
    train = n_days // 2
    test = (n_days - train) // 10
    study = WalkForward(feed, ridge, TopKStrategy("pred", k=K), train=train, test=test, purge=2)
    assert len(study.folds) == 10
    out: dict[str, Any] = {"assets": n_assets, "days": n_days, "folds": len(study.folds)}
    # The yardstick: the same fits on the same frames, called directly, then one full run.
    tasks = [study._task(f, p) for f, p in zip(study.folds, study._plans, strict=True)]
    frames = [(user_rows(feed, t.train), user_rows(feed, t.test)) for t in tasks]
    full = feed.window(signals=feed.frame.select("ts", "asset_id", pl.col("score").alias("pred")))
    walls: dict[int, list[float]] = {1: [], 2: []}
    fits: list[float] = []
    backtests: list[float] = []
    result: Any = None
    for _ in range(repeats):  # interleaved, so a change of the machine's load hits both sides
        for workers in (1, 2):
            result = None  # one result alive at a time: the peak is one run's
            start = time.perf_counter()
            result = study.run(executor="threads", max_workers=workers)
            walls[workers].append(time.perf_counter() - start)
        start = time.perf_counter()
        for task, (train_rows, test_rows) in zip(tasks, frames, strict=True):
            ridge(train_rows, replace(task.fold, test_data=test_rows))
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        Backtest(full, TopKStrategy("pred", k=K)).run(progress=False)
        backtests.append(time.perf_counter() - start)
    out["walkforward_1_worker_seconds"] = _summary(walls[1])
    out["walkforward_2_workers_seconds"] = _summary(walls[2])
    out["fits_own_seconds"] = _summary(fits)
    out["full_backtest_seconds"] = _summary(backtests)
    for workers, name in ((1, "ratio_1_worker"), (2, "ratio_2_workers")):
        paired = [w / (f + b) for w, f, b in zip(walls[workers], fits, backtests, strict=True)]
        out[name] = {"median_of_repeats": statistics.median(paired), "max": max(paired)}
    out["oos_sharpe"] = result.metrics["sharpe"]
    out["rss_with_feed_mib"] = loaded
    out["peak_rss_mib"] = _peak_mib()
    return out


def scenario_cpcv(n_assets: int, n_days: int, repeats: int) -> dict[str, Any]:
    from ml4t.backtest import TopKStrategy
    from ml4t.backtest.study import CombinatorialPurgedCV

    feed = make_feed(n_assets, n_days)
    loaded = _rss_mib()
    cv = CombinatorialPurgedCV(6, 2, label_horizon=2, embargo=2)
    out: dict[str, Any] = {"assets": n_assets, "days": n_days, "splits": cv.n_splits}
    walls: dict[int, list[float]] = {1: [], 2: []}
    result: Any = None
    for _ in range(repeats):
        for workers in (1, 2):
            result = None  # one result alive at a time: the peak is one run's
            start = time.perf_counter()
            result = cv.run(feed, ridge, TopKStrategy("pred", k=K), max_workers=workers)
            walls[workers].append(time.perf_counter() - start)
    out["paths"] = result.n_paths
    out["cpcv_1_worker_seconds"] = _summary(walls[1])
    out["cpcv_2_workers_seconds"] = _summary(walls[2])
    out["fit_seconds_sum"] = float(result.splits["fit_seconds"].sum())
    out["sharpe_by_path"] = result.metric("sharpe").to_list()
    out["rss_with_feed_mib"] = loaded
    out["peak_rss_mib"] = _peak_mib()
    return out


SCENARIOS = {"w1": scenario_wf, "w2": scenario_cpcv}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a harness check)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="w1,w2")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # one scenario, in this process
    args = parser.parse_args()
    assets, days = (40, 300) if args.quick else (500, 2_520)
    if args.scenario:
        print(json.dumps(SCENARIOS[args.scenario](assets, days, args.repeats)))
        return
    figures: dict[str, Any] = {}
    for name in args.only.split(","):
        command = [sys.executable, __file__, "--scenario", name, "--repeats", str(args.repeats)]
        if args.quick:
            command.append("--quick")
        answer = subprocess.run(command, check=True, capture_output=True, text=True)
        figures[name] = json.loads(answer.stdout.strip().splitlines()[-1])
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
