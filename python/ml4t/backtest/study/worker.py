"""What a worker does: run a batch of trials over its feed and answer with compact Arrow IPC
bytes (one row of metrics per trial, plus the equity curves when they are kept).

The same function serves every executor: a thread calls it with the caller's feed, a process
with the feed it memory-mapped once (:func:`init_mapped`), a Ray actor with the table from the
object store, a Dask worker with the scattered feed.
"""

from __future__ import annotations

import copy
import io
import math
import time
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import polars as pl

from ml4t.backtest.backtest import Backtest
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.risk import RiskRule
from ml4t.backtest.strategy import Strategy
from ml4t.backtest.study.trials import Trial

STATUS_OK = "ok"
STATUS_ERROR = "error"


def quiet() -> None:
    """Silences the metrics' "undefined ratio" warnings (a NaN in the table says it)."""
    warnings.filterwarnings("ignore", message=r"metric '.*' is undefined", category=RuntimeWarning)


def run_batch(
    feed: PolarsDataFeed, trials: list[Trial], keep: str, results_dir: str | None
) -> tuple[bytes, bytes | None]:
    """Runs ``trials`` in order; returns (metric rows, equity curves or ``None``) as Arrow IPC
    bytes. A trial that raises is an ``error`` row with the message; the others still run.
    With ``keep="all"`` each result is saved under ``results_dir/<key>``."""
    rows: list[dict[str, Any]] = []
    curves: list[pl.DataFrame] = []
    for trial in trials:
        row, curve = run_one(feed, trial, keep, results_dir)
        rows.append(row)
        if curve is not None:
            curves.append(curve)
    return encode_rows(rows), encode(pl.concat(curves)) if curves else None


def run_one(
    feed: PolarsDataFeed, trial: Trial, keep: str, results_dir: str | None
) -> tuple[dict[str, Any], pl.DataFrame | None]:
    """One trial's row and (when kept) equity curve. Its result is freed on return, before
    the next trial runs, so a worker holds one result at a time."""
    start = time.perf_counter()
    row: dict[str, Any] = {"trial": trial.id, "key": trial.key}
    curve = None
    try:
        strategy, rules = fresh_copies(trial)
        backtest = Backtest(feed, strategy, config=trial.config, risk=rules)
        result = backtest.run(progress=False)
        metrics = result.metrics
        if keep == "all" and results_dir is not None:
            result.save(Path(results_dir) / trial.key)
        if keep in ("equity", "all"):
            curve = result.equity.select(
                pl.lit(trial.id, dtype=pl.Int64).alias("trial"), "timestamp", "equity"
            )
        row.update({"status": STATUS_OK, "error": None})
        row.update({f"m:{name}": float(value) for name, value in metrics.items()})
    except Exception as err:  # a failing trial does not stop the sweep
        row.update({"status": STATUS_ERROR, "error": f"{type(err).__name__}: {err}"})
    row["seconds"] = time.perf_counter() - start
    return row, curve


def fresh_copies(trial: Trial) -> tuple[Any, list[Any]]:
    """The trial's Python strategy and rules copied (built-ins are frozen values), so a trial
    run twice, in a thread or anywhere, starts from the same state."""
    strategy = trial.strategy
    if isinstance(strategy, Strategy):
        strategy = copy.deepcopy(strategy)
    rules = [copy.deepcopy(r) if isinstance(r, RiskRule) else r for r in trial.risk]
    return strategy, rules


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    """Rows as one frame in IPC bytes; metrics are ``m:<name>`` Float64 columns, in the order
    the first row that has them lists them."""
    names: list[str] = []
    for row in rows:
        for name in row:
            if name.startswith("m:") and name not in names:
                names.append(name)
    columns: dict[str, pl.Series] = {
        "trial": pl.Series([r["trial"] for r in rows], dtype=pl.Int64),
        "key": pl.Series([r["key"] for r in rows], dtype=pl.String),
        "status": pl.Series([r["status"] for r in rows], dtype=pl.String),
        "error": pl.Series([r["error"] for r in rows], dtype=pl.String),
        "seconds": pl.Series([r["seconds"] for r in rows], dtype=pl.Float64),
    }
    for name in names:
        columns[name] = pl.Series([r.get(name) for r in rows], dtype=pl.Float64)
    return encode(pl.DataFrame(columns))


def encode(frame: pl.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes (lossless: floats bit for bit)."""
    out = io.BytesIO()
    frame.write_ipc_stream(out, compat_level=pl.CompatLevel.newest())
    return out.getvalue()


def decode(data: bytes) -> pl.DataFrame:
    """The frame of :func:`encode`."""
    return pl.read_ipc_stream(io.BytesIO(data))


# ------------------------------------------------------------------ process and remote workers

_FEEDS: dict[str, PolarsDataFeed] = {}
"""The feeds this process has loaded, by where they came from (one per sweep)."""


def load_feed(state: bytes, path: str | None) -> PolarsDataFeed:
    """The feed from its pickled state and, for an in-memory feed, the Arrow IPC file holding
    its frame, memory-mapped (no copy: every process maps the same pages). Loaded once per
    process and file."""
    token = path or state.hex()[:64]
    feed = _FEEDS.get(token)
    if feed is None:
        feed = PolarsDataFeed.__new__(PolarsDataFeed)
        restored: dict[str, Any] = cloudpickle.loads(state)
        if path is not None:
            restored["_frame"] = read_mapped(path)
        feed.__setstate__(restored)
        _FEEDS.clear()  # one sweep at a time per worker: drop an older sweep's feed
        _FEEDS[token] = feed
    return feed


def write_mapped(frame: pl.DataFrame, path: str | Path) -> None:
    """Writes ``frame`` as an uncompressed Arrow IPC file of one record batch, the layout
    :func:`read_mapped` maps without a copy."""
    import pyarrow as pa
    import pyarrow.ipc

    table = frame.rechunk().to_arrow()
    with pa.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def read_mapped(path: str | Path) -> pl.DataFrame:
    """The frame of :func:`write_mapped`, its buffers in the file's memory map: every process
    that reads the file shares the same page-cache pages (Polars' own reader copies)."""
    import pyarrow as pa
    import pyarrow.ipc

    table = pyarrow.ipc.open_file(pa.memory_map(str(path))).read_all()
    frame = pl.DataFrame(table)
    return frame


_MAPPED: tuple[bytes, str | None] | None = None


def init_mapped(state: bytes, path: str | None) -> None:
    """Process pool initializer: loads the feed once for every batch this process runs."""
    global _MAPPED
    quiet()
    _MAPPED = (state, path)
    load_feed(state, path)


def ping() -> bool:
    """A no-op task (warms a pool up)."""
    return True


def run_mapped(payload: bytes) -> tuple[bytes, bytes | None]:
    """Process pool task: a cloudpickled (trials, keep, results_dir) over the mapped feed."""
    if _MAPPED is None:
        raise RuntimeError("run_mapped: the worker was not initialised with init_mapped")
    feed = load_feed(*_MAPPED)
    trials, keep, results_dir = cloudpickle.loads(payload)
    return run_batch(feed, trials, keep, results_dir)


class FeedRef:
    """How a remote task finds its feed: the pickled state and an Arrow IPC file path that
    every worker can read (a shared file system), or the whole pickled feed."""

    def __init__(self, state: bytes, path: str | None) -> None:
        self.state = state
        self.path = path

    def load(self) -> PolarsDataFeed:
        return load_feed(self.state, self.path)


def run_remote(feed: PolarsDataFeed | FeedRef, payload: bytes) -> tuple[bytes, bytes | None]:
    """Task for any ``concurrent.futures.Executor`` (Dask's included): ``feed`` is the feed
    itself (scattered or pickled with the task) or a :class:`FeedRef`."""
    quiet()
    if isinstance(feed, FeedRef):
        feed = feed.load()
    trials, keep, results_dir = cloudpickle.loads(payload)
    return run_batch(feed, trials, keep, results_dir)


# ------------------------------------------------------------------ any task (fits, fold runs)


def call_mapped(payload: bytes) -> bytes:
    """Process pool task: a cloudpickled ``(fn, item)`` called as ``fn(feed, item)`` over the
    mapped feed; the answer cloudpickled (a user's model may need it)."""
    if _MAPPED is None:
        raise RuntimeError("call_mapped: the worker was not initialised with init_mapped")
    fn, item = cloudpickle.loads(payload)
    return bytes(cloudpickle.dumps(fn(load_feed(*_MAPPED), item)))


def call_remote(feed: PolarsDataFeed | FeedRef, payload: bytes) -> bytes:
    """Task for any ``concurrent.futures.Executor``: :func:`call_mapped` over ``feed``."""
    quiet()
    if isinstance(feed, FeedRef):
        feed = feed.load()
    fn, item = cloudpickle.loads(payload)
    return bytes(cloudpickle.dumps(fn(feed, item)))


def finite(value: float | None) -> bool:
    """True for a real, finite number."""
    return value is not None and math.isfinite(value)
