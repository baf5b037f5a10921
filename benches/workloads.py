"""Issue 18's workloads, end to end from Python, against vectorbt 1.2 and a numba floor on the
same data in the same run.

W1: 1 asset x 1M minute bars; the signal is the sign of SMA(close, 10) - SMA(close, 50) (+1
    long 100 shares, -1 flat; 27,348 position changes, the issue's 27,549 within 1 %),
    next-open fills, 0.1 % commission. Ours: the built-in ``SignalStrategy`` (``w1``) and the
    same rule as a Python ``on_market_data`` (``w1_python``), against a plain
    Python loop making one call a bar over the same values (``plain_loop``).
W2: 500 assets x 2,520 days, a Python ``on_timestamp_batch`` holding the 25 highest scores at
    0.95/25 each, rebalanced daily at the next open, 0.1 % commission (``w2``).
W2 at 5,000 assets x 504 days: the built-in ``TopKStrategy`` (``topk_builtin``) against the
    same holdings picked by a Python ``argpartition`` strategy (``topk_python``).
``feed_cold``: ``PolarsDataFeed`` construction over W1's 1M rows, first in a fresh process
    (every validation rule runs).

Peers run in their own virtual environment (``.venv-peers``, made by this script with
vectorbt 1.2.0 and numba; the package never imports them): ``vbt_w1`` (``from_signals``),
``vbt_w2`` (``from_orders``, target percent, one cash-sharing group) and the numba floors
``numba_w1`` / ``numba_w2`` (only the fill and cash arithmetic, nothing recorded). Each timed
run is a fresh process reading the same Parquet files (written once, seeded), interleaved
round by round; numba's compilation and vectorbt's first call are warmed up on a slice first,
outside the timer. Ours are timed as ``Backtest(...).run()`` and, apart, the first access of the
record frames it builds lazily (``equity``, ``fills``, ``trades``, ``orders``, ``order_events``):
``with_frames_*`` is the sum of the two.

Peak memory (ours), ``memory_mib``: the input counted at its Arrow bytes, plus what the feed,
the run and the five frames add at their peak (the peak RSS from the moment the data is read,
``VmHWM`` reset then through ``/proc/self/clear_refs``, minus the RSS after reading). Against
the input's Arrow bytes plus the result frames' bytes (``arrow_bytes``: a string column counted
at its Arrow string-view buffers, 16 bytes a row plus the strings too long to inline, which is
what it holds in memory, where Polars' ``estimated_size`` counts only its characters; every
other column at ``estimated_size``; ``*_estimated_mib`` give the Polars figures): the issue's
"peak RSS minus the interpreter-and-imports baseline" without the pages the Parquet reader
leaves resident after the read (``reader_retained_mib``, about the input's size again here,
reported apart). The lifetime ``ru_maxrss`` would count the reader's own transient peak.

Run: ``.venv/bin/python benches/workloads.py [--quick] [--repeats N] [--only w1,w2,...]
[--no-peers]``; ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-peers"
PEERS = ["vectorbt==1.2.0", "pyarrow>=15"]
FEE = 0.001
FAST, SLOW = 10, 50
K = 25
W2_WEIGHT = 0.95 / K
CASH = 1_000_000.0

SIZES = {
    "full": {"w1": 1_000_000, "w2": (500, 2_520), "topk": (5_000, 504)},
    "quick": {"w1": 20_000, "w2": (50, 100), "topk": (200, 40)},
}
OURS = ["w1", "w1_python", "plain_loop", "w2", "topk_builtin", "topk_python", "feed_cold"]
PEER_RUNS = ["vbt_w1", "numba_w1", "vbt_w2", "numba_w2"]
DATA_OF = {
    "w1": "w1",
    "w1_python": "w1",
    "plain_loop": "w1",
    "feed_cold": "w1",
    "vbt_w1": "w1",
    "numba_w1": "w1",
    "w2": "w2",
    "vbt_w2": "w2",
    "numba_w2": "w2",
    "topk_builtin": "topk",
    "topk_python": "topk",
}


# ------------------------------------------------------------------------------------ data


def write_data(directory: Path, size: str) -> None:
    """Writes the workloads' bars as Parquet, deterministically (seeded)."""
    import numpy as np
    import polars as pl

    sizes = SIZES[size]
    rng = np.random.default_rng(18)
    n = sizes["w1"]
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * (1.0 + rng.normal(0.0, 0.0002, n - 1))
    spread = np.abs(rng.normal(0.0, 0.0005, n)) * close
    w1 = pl.DataFrame(
        {
            "timestamp": pl.datetime_range(
                pl.datetime(2020, 1, 1),
                pl.datetime(2020, 1, 1) + pl.duration(minutes=n - 1),
                "1m",
                eager=True,
            ),
            "asset": "A",
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": 1_000_000.0,
        }
    ).with_columns(
        pl.when(pl.col("close").rolling_mean(FAST) > pl.col("close").rolling_mean(SLOW))
        .then(1.0)
        .otherwise(-1.0)
        .alias("signal")
    )
    w1.write_parquet(directory / "w1.parquet")
    for name in ("w2", "topk"):
        n_assets, n_days = sizes[name]
        panel = _panel(rng, n_assets, n_days)
        panel.write_parquet(directory / f"{name}.parquet")


def _panel(rng: Any, n_assets: int, n_days: int) -> Any:
    import numpy as np
    import polars as pl

    shape = (n_days, n_assets)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, shape), axis=0))
    open_ = np.vstack([np.full((1, n_assets), 50.0), close[:-1]]) * (
        1.0 + rng.normal(0.0, 0.002, shape)
    )
    spread = np.abs(rng.normal(0.0, 0.004, shape)) * close
    days = pl.date_range(pl.date(2010, 1, 1), pl.date(2040, 1, 1), "1d", eager=True)
    days = days.filter(days.dt.weekday() <= 5).head(n_days).cast(pl.Datetime("ns"))
    width = len(str(n_assets - 1))
    return pl.DataFrame(
        {
            "timestamp": np.repeat(days.to_numpy(), n_assets),
            "asset": np.tile([f"S{i:0{width}d}" for i in range(n_assets)], n_days),
            "open": open_.ravel(),
            "high": (np.maximum(open_, close) + spread).ravel(),
            "low": (np.minimum(open_, close) - spread).ravel(),
            "close": close.ravel(),
            "volume": 1_000_000.0,
            "score": rng.normal(0.0, 1.0, shape).ravel(),
        }
    )


# ------------------------------------------------------------------------------ children


def arrow_bytes(frame: Any) -> int:
    """The bytes of ``frame``'s Arrow buffers: string columns (or columns holding strings) as
    exported, in Arrow's string-view layout without a copy (their views, 16 bytes a row, are
    what they hold in memory; ``estimated_size`` counts only their characters); every other
    column at Polars' ``estimated_size`` (which counts a constant column once, as it is held)."""
    import pyarrow as pa

    total = 0
    for name, dtype in frame.schema.items():
        column = frame.select(name)
        if "String" in str(dtype):
            total += pa.table(column).nbytes
        else:
            total += column.estimated_size()
    return total


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    """The peak RSS since :func:`_reset_peak` (or the process's start where it cannot be reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Starts the peak RSS afresh at the current RSS (Linux: ``clear_refs`` mode 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not allowed: the peak stays the process's lifetime peak
        pass


def _with_input(frame: Any, memory: dict[str, Any]) -> dict[str, Any]:
    """``memory`` with the input's Arrow bytes, measured after the peaks were read (the
    measure imports pyarrow): the peak with the input counted at them, and what the reader
    left resident besides."""
    out = dict(memory)
    out["input_mib"] = arrow_bytes(frame) / 2**20
    out["reader_retained_mib"] = out.pop("retained_mib") - out["input_mib"]
    if "added_mib" in out:
        out["memory_mib"] = out["input_mib"] + out.pop("added_mib")
    return out


def child_ours(name: str, directory: Path) -> dict[str, Any]:
    """One timed run of one of our workloads, in this (fresh) process."""
    import numpy as np
    import polars as pl

    from ml4t.backtest import (
        Backtest,
        BacktestConfig,
        PolarsDataFeed,
        SignalStrategy,
        Strategy,
        TopKStrategy,
    )

    config = BacktestConfig(
        initial_cash=CASH,
        commission={"model": "percent", "rate": FEE},
        account={"initial_margin": None},
    )

    class W1Python(Strategy):
        def on_market_data(self, event: Any, context: Any) -> None:
            asset = event.asset_id
            held = context.position(asset)
            if event.signals["signal"] > 0.0:
                if held == 0.0:
                    context.submit_order(asset, 100.0)
            elif held != 0.0:
                context.close_position(asset)

    class TopKBatch(Strategy):
        def __init__(self, k: int, weight: float) -> None:
            self.k = k
            self.weight = weight

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            best = np.argpartition(-batch["score"], self.k)[: self.k]
            context.rebalance(dict.fromkeys(batch.asset_ids[best].tolist(), self.weight))

    imports = _rss_mib()
    frame = pl.read_parquet(directory / f"{DATA_OF[name]}.parquet")
    input_estimated_mib = frame.estimated_size() / 2**20
    base = _rss_mib()
    _reset_peak()
    memory = {"input_estimated_mib": input_estimated_mib, "retained_mib": base - imports}
    if name == "feed_cold":
        start = time.perf_counter()
        feed = PolarsDataFeed(frame)
        seconds = time.perf_counter() - start
        memory["feed_added_mib"] = _peak_mib() - base
        return {"seconds": seconds, "bars": frame.height, **_with_input(frame, memory)}
    if name == "plain_loop":
        values = frame.get_column("signal").to_list()
        state = [0.0, 0]

        def on_bar(value: float) -> None:
            if value > 0.0:
                if state[0] == 0.0:
                    state[0] = 100.0
                    state[1] += 1
            elif state[0] != 0.0:
                state[0] = 0.0
                state[1] += 1

        start = time.perf_counter()
        for value in values:
            on_bar(value)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "bars": frame.height, "fills": state[1]}
    feed = PolarsDataFeed(frame)
    strategy: Any = {
        "w1": lambda: SignalStrategy("signal", quantity=100),
        "w1_python": W1Python,
        "w2": lambda: TopKBatch(K, W2_WEIGHT),
        "topk_builtin": lambda: TopKStrategy("score", k=K),
        "topk_python": lambda: TopKBatch(K, 1.0 / K),
    }[name]()
    backtest = Backtest(feed, strategy, config=config)
    memory["feed_added_mib"] = _peak_mib() - base
    start = time.perf_counter()
    result = backtest.run(progress=False)
    seconds = time.perf_counter() - start
    # The record frames are built on first access: timed apart, and reported with the run.
    start = time.perf_counter()
    frames = [result.equity, result.fills, result.trades, result.orders, result.order_events]
    frames_seconds = time.perf_counter() - start
    memory["added_mib"] = _peak_mib() - base
    result_bytes = sum(arrow_bytes(f) for f in frames)
    result_estimated = sum(f.estimated_size() for f in frames)
    return {
        "seconds": seconds,
        "frames_seconds": frames_seconds,
        "bars": frame.height,
        "fills": result.fills.height,
        "final_equity": float(result.equity["equity"][-1]),
        "result_mib": result_bytes / 2**20,
        "result_estimated_mib": result_estimated / 2**20,
        **_with_input(frame, memory),
    }


def child_peer(name: str, directory: Path) -> dict[str, Any]:
    """One timed run of a peer (vectorbt or the numba floor), in the peers' environment."""
    import numba
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(directory / f"{DATA_OF[name]}.parquet")
    if DATA_OF[name] == "w1":
        open_ = frame["open"].to_numpy()
        close = frame["close"].to_numpy()
        signal = frame["signal"].to_numpy()
    else:
        wide = {
            c: frame.pivot(index="timestamp", columns="asset", values=c)
            for c in ("open", "close", "score")
        }
        open_w, close_w, score_w = (wide[c].to_numpy() for c in ("open", "close", "score"))

    if name == "numba_w1":

        @numba.njit(cache=False)
        def floor_w1(open_: Any, signal: Any, fee: float, cash: float) -> tuple[float, int]:
            held = 0.0
            fills = 0
            for i in range(1, open_.shape[0]):
                want = 100.0 if signal[i - 1] > 0.0 else 0.0
                if want != held:
                    value = (want - held) * open_[i]
                    cash -= value + abs(value) * fee
                    held = want
                    fills += 1
            return cash + held * open_[-1], fills

        floor_w1(open_[:100], signal[:100], FEE, CASH)
        start = time.perf_counter()
        _, fills = floor_w1(open_, signal, FEE, CASH)
        return {"seconds": time.perf_counter() - start, "bars": open_.shape[0], "fills": fills}
    if name == "numba_w2":

        @numba.njit(cache=False)
        def floor_w2(
            open_: Any, close: Any, score: Any, k: int, weight: float, fee: float, cash: float
        ) -> tuple[float, int]:
            n_days, n_assets = open_.shape
            held = np.zeros(n_assets)
            equity = cash
            fills = 0
            for t in range(1, n_days):
                best = np.argsort(-score[t - 1])[:k]
                target = np.zeros(n_assets)
                for a in best:
                    target[a] = weight * equity / open_[t, a]
                for a in range(n_assets):
                    delta = target[a] - held[a]
                    if delta != 0.0:
                        value = delta * open_[t, a]
                        cash -= value + abs(value) * fee
                        held[a] = target[a]
                        fills += 1
                equity = cash
                for a in range(n_assets):
                    equity += held[a] * close[t, a]
            return equity, fills

        floor_w2(open_w[:5], close_w[:5], score_w[:5], K, W2_WEIGHT, FEE, CASH)
        start = time.perf_counter()
        _, fills = floor_w2(open_w, close_w, score_w, K, W2_WEIGHT, FEE, CASH)
        return {"seconds": time.perf_counter() - start, "bars": open_w.size, "fills": fills}

    import vectorbt as vbt

    if name == "vbt_w1":
        long = pd.Series(signal > 0.0)
        entries = (long & ~long.shift(1, fill_value=False)).shift(1, fill_value=False)
        exits = (~long & long.shift(1, fill_value=False)).shift(1, fill_value=False)

        def simulate(n: int | None = None) -> Any:
            sl = slice(None, n)
            pf = vbt.Portfolio.from_signals(
                pd.Series(close[sl]),
                entries=entries[sl],
                exits=exits[sl],
                price=pd.Series(open_[sl]),
                size=100.0,
                fees=FEE,
                init_cash=CASH,
                freq="1min",
            )
            pf.value()
            return pf

        simulate(200)
        start = time.perf_counter()
        pf = simulate()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "bars": close.shape[0], "fills": int(pf.orders.count())}
    # vbt_w2: target percents decided on day t-1's scores, filled at day t's open.
    ranks = np.argsort(np.argsort(-score_w, axis=1), axis=1)
    target = np.where(ranks < K, W2_WEIGHT, 0.0)
    size = np.vstack([np.full((1, target.shape[1]), np.nan), target[:-1]])

    def simulate_w2(n: int | None = None) -> Any:
        sl = slice(None, n)
        pf = vbt.Portfolio.from_orders(
            pd.DataFrame(close_w[sl]),
            size=pd.DataFrame(size[sl]),
            size_type="targetpercent",
            price=pd.DataFrame(open_w[sl]),
            fees=FEE,
            init_cash=CASH,
            group_by=True,
            cash_sharing=True,
            call_seq="auto",
            freq="1D",
        )
        pf.value()
        return pf

    simulate_w2(5)
    start = time.perf_counter()
    pf = simulate_w2()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bars": close_w.size, "fills": int(pf.orders.count().sum())}


# -------------------------------------------------------------------------------- driver


def ensure_peers() -> Path:
    """The peers' interpreter, creating their environment the first time."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEERS_VENV} with {', '.join(PEERS)} (benchmark only)", file=sys.stderr)
        venv.create(PEERS_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
    return python


def run_child(python: str, name: str, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [python, __file__, "--child", name, "--data", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    bars = runs[0]["bars"]
    out: dict[str, Any] = {
        "bars": bars,
        "best_ms": min(seconds) * 1e3,
        "median_ms": statistics.median(seconds) * 1e3,
        "best_bars_per_s": bars / min(seconds),
        "median_bars_per_s": bars / statistics.median(seconds),
    }
    if "frames_seconds" in runs[0]:
        # run() and then the first access of equity, fills, trades, orders and order_events.
        total = [r["seconds"] + r["frames_seconds"] for r in runs]
        out["with_frames_best_ms"] = min(total) * 1e3
        out["with_frames_median_ms"] = statistics.median(total) * 1e3
    memory = (
        "memory_mib",
        "input_mib",
        "input_estimated_mib",
        "result_mib",
        "result_estimated_mib",
        "feed_added_mib",
        "reader_retained_mib",
    )
    for key in ("fills", "final_equity", *memory):
        if key in runs[-1]:
            out[key] = runs[-1][key]
    return out


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    def median(name: str) -> float | None:
        return figures[name]["median_ms"] if name in figures else None

    out: dict[str, float] = {}
    # label: (numerator, denominator) of median times; > 1 means the denominator is faster.
    for label, (top, bottom) in {
        "vectorbt_over_w1": ("vbt_w1", "w1"),
        "w1_over_numba_floor": ("w1", "numba_w1"),
        "w1_python_rate_over_plain_loop": ("plain_loop", "w1_python"),
        "vectorbt_over_w2": ("vbt_w2", "w2"),
        "w2_rate_over_numba_floor": ("numba_w2", "w2"),
        "topk_python_over_builtin": ("topk_python", "topk_builtin"),
    }.items():
        a, b = median(top), median(bottom)
        if a is not None and b is not None:
            out[label] = a / b
    if "w1" in figures:
        out["w1_median_ms_per_1m_bars"] = figures["w1"]["median_ms"] * 1e6 / figures["w1"]["bars"]
    for name in ("w1", "w2"):
        if name in figures and "memory_mib" in figures[name]:
            run = figures[name]
            out[f"{name}_memory_over_budget"] = run["memory_mib"] / (
                run["input_mib"] + run["result_mib"]
            )
            # The same peak against Polars' estimated sizes (strings at their characters).
            added = run["memory_mib"] - run["input_mib"]
            estimated = run["input_estimated_mib"]
            out[f"{name}_memory_over_budget_estimated"] = (estimated + added) / (
                estimated + run["result_estimated_mib"]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", default="")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_peer if args.child in PEER_RUNS else child_ours
        print(json.dumps(run(args.child, args.data)))
        return
    size = "quick" if args.quick else "full"
    repeats = args.repeats or (1 if args.quick else 7)
    names = OURS + ([] if args.no_peers else PEER_RUNS)
    if args.only:
        wanted = set(args.only.split(","))
        names = [n for n in names if n in wanted]
    peers_python = str(ensure_peers()) if any(n in PEER_RUNS for n in names) else None
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="ml4t-workloads-") as tmp:
        directory = Path(tmp)
        write_data(directory, size)
        for round_ in range(repeats):
            for name in names:
                python = peers_python if name in PEER_RUNS else sys.executable
                assert python is not None
                runs[name].append(run_child(python, name, directory))
            print(f"round {round_ + 1}/{repeats} done", file=sys.stderr)
    figures = {name: summarise(r) for name, r in runs.items()}
    report = {"size": size, "repeats": repeats, "figures": figures, "ratios": ratios(figures)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
