"""Where a sweep's batches run, and how each worker gets the feed.

=================  ===========================================================================
executor           transport of the feed
=================  ===========================================================================
``"threads"``      none: every thread reads the caller's frame (built-in runs release the GIL)
``"processes"``    ``"mmap"``: one Arrow IPC file, written once per sweep, memory-mapped by
                   every worker (spawn or forkserver start: Polars is not fork-safe)
``"ray"``          ``"object_store"``: the Arrow table put into Ray's object store once, held
                   by long-lived actors that run batch after batch
any ``Executor``   ``"scatter"`` for Dask's ``Client.get_executor()`` (the feed sent to every
                   worker once); ``"mmap"`` when its workers share this file system;
                   ``"pickle"`` otherwise (the feed travels with every batch)
=================  ===========================================================================

A streaming feed is never materialised: every transport carries its lazy plan instead
(``"source"``), and each worker reads the feed's own files, which must be readable there (a
shared file system or object storage path).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from pathlib import Path
from types import TracebackType
from typing import Any

import cloudpickle

from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.study.trials import Trial
from ml4t.backtest.study.worker import (
    FeedRef,
    call_mapped,
    call_remote,
    init_mapped,
    ping,
    quiet,
    run_batch,
    run_mapped,
    run_remote,
    write_mapped,
)

Answer = tuple[bytes, bytes | None]
"""A batch's metric rows and equity curves (Arrow IPC bytes)."""

TRANSPORTS = ("auto", "mmap", "object_store", "scatter", "pickle", "source")
"""The transports :meth:`Sweep.run` accepts (see the module doc)."""

START_METHODS = ("spawn", "forkserver")


def feed_transports(feed: PolarsDataFeed) -> tuple[str, ...]:
    """The transports ``feed`` supports: an in-memory feed all but ``"source"``; a streaming
    feed only ``"source"`` (its workers read its files)."""
    if feed.streaming:
        return ("source",)
    return ("mmap", "object_store", "scatter", "pickle")


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _state(feed: PolarsDataFeed, with_frame: bool) -> bytes:
    state = feed.__getstate__()
    if not with_frame:
        state.pop("_frame", None)
    return bytes(cloudpickle.dumps(state))


class Backend:
    """A pool of workers for one sweep (a context manager); :meth:`run` yields each batch's
    answer as it finishes."""

    name = "?"

    def __init__(self, feed: PolarsDataFeed, workers: int, transport: str) -> None:
        self.feed = feed
        self.workers = workers
        self.transport = transport
        self.setup_seconds = 0.0

    def __enter__(self) -> Backend:
        start = time.perf_counter()
        self.start()
        self.setup_seconds = time.perf_counter() - start
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Starts the workers and hands them the feed."""

    def close(self) -> None:
        """Stops the workers."""

    def run(
        self, payloads: list[tuple[list[Trial], bytes]], keep: str, results: str | None
    ) -> Iterator[Answer]:
        raise NotImplementedError

    def map(self, fn: Callable[[PolarsDataFeed, Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(feed, item) for item in items]`` on the workers, each over the feed it holds,
        in the order of ``items`` (threads call ``fn`` directly; elsewhere ``fn`` and the item
        travel, and the answer returns, cloudpickled). The first task that raises raises here."""
        futures = [self._submit(fn, item) for item in items]
        try:
            return [self._answer(future) for future in futures]
        finally:
            for future in futures:
                if hasattr(future, "cancel"):
                    future.cancel()

    def _submit(self, fn: Callable[[PolarsDataFeed, Any], Any], item: Any) -> Any:
        raise NotImplementedError

    def _answer(self, future: Any) -> Any:
        return cloudpickle.loads(future.result())


def _as_completed(futures: list[Future[Answer]]) -> Iterator[Answer]:
    """Answers in completion order; pending ones are cancelled if the consumer stops early."""
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.index):
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


class ThreadBackend(Backend):
    """Threads over the caller's feed."""

    name = "threads"

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ml4t-sweep")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self, payloads: list[tuple[list[Trial], bytes]], keep: str, results: str | None
    ) -> Iterator[Answer]:
        futures = [
            self.pool.submit(run_batch, self.feed, trials, keep, results) for trials, _ in payloads
        ]
        return _as_completed(futures)

    def _submit(self, fn: Callable[[PolarsDataFeed, Any], Any], item: Any) -> Any:
        return self.pool.submit(fn, self.feed, item)

    def _answer(self, future: Any) -> Any:
        return future.result()


class MappedFile:
    """The feed's frame as an uncompressed Arrow IPC file (one record batch) that workers
    memory-map; written once (kept in the cache when there is one, else in a temporary
    directory removed at the end)."""

    def __init__(self, feed: PolarsDataFeed, keep_at: Path | None) -> None:
        self.tmp: str | None = None
        if keep_at is None:
            self.tmp = tempfile.mkdtemp(prefix="ml4t-sweep-")
            keep_at = Path(self.tmp) / "feed.arrow"
        self.path = keep_at
        if not keep_at.is_file():
            keep_at.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=keep_at.parent)
            os.close(fd)
            try:
                write_mapped(feed.frame, tmp)
                os.replace(tmp, keep_at)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def remove(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


class ProcessBackend(Backend):
    """A process pool; each worker memory-maps the feed file once (its initializer)."""

    name = "processes"

    def __init__(
        self,
        feed: PolarsDataFeed,
        workers: int,
        transport: str,
        start_method: str,
        feed_file: Path | None,
    ) -> None:
        super().__init__(feed, workers, transport)
        self.start_method = start_method
        self.feed_file = feed_file
        self.mapped: MappedFile | None = None

    def start(self) -> None:
        if self.transport == "source":
            state, path = _state(self.feed, with_frame=True), None
        else:
            self.mapped = MappedFile(self.feed, self.feed_file)
            state, path = _state(self.feed, with_frame=False), str(self.mapped.path)
        context = multiprocessing.get_context(self.start_method)
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=init_mapped, initargs=(state, path)
        )
        for future in [self.pool.submit(ping) for _ in range(self.workers)]:
            future.result()

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.mapped is not None:
            self.mapped.remove()

    def run(
        self, payloads: list[tuple[list[Trial], bytes]], keep: str, results: str | None
    ) -> Iterator[Answer]:
        return _as_completed([self.pool.submit(run_mapped, payload) for _, payload in payloads])

    def _submit(self, fn: Callable[[PolarsDataFeed, Any], Any], item: Any) -> Any:
        return self.pool.submit(call_mapped, bytes(cloudpickle.dumps((fn, item))))


def is_dask(executor: Executor) -> bool:
    """Whether ``executor`` is Dask's ``Client.get_executor()``."""
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "_client")


class ExecutorBackend(Backend):
    """Any ``concurrent.futures.Executor``; the feed goes as :attr:`transport` says."""

    name = "executor"

    def __init__(
        self,
        feed: PolarsDataFeed,
        workers: int,
        transport: str,
        executor: Executor,
        feed_file: Path | None,
    ) -> None:
        super().__init__(feed, workers, transport)
        self.executor = executor
        self.feed_file = feed_file
        self.mapped: MappedFile | None = None
        self.name = "dask" if is_dask(executor) else type(executor).__name__

    def start(self) -> None:
        self.feed_arg: Any
        if self.transport == "scatter":
            client = self.executor._client  # type: ignore[attr-defined]
            self.feed_arg = client.scatter(self.feed, broadcast=True, hash=False)
        elif self.transport == "mmap":
            self.mapped = MappedFile(self.feed, self.feed_file)
            self.feed_arg = FeedRef(_state(self.feed, with_frame=False), str(self.mapped.path))
        else:  # pickle, source: the feed itself (a streaming feed pickles as its plan)
            self.feed_arg = self.feed

    def close(self) -> None:
        if self.mapped is not None:
            self.mapped.remove()

    def run(
        self, payloads: list[tuple[list[Trial], bytes]], keep: str, results: str | None
    ) -> Iterator[Answer]:
        futures = [
            self.executor.submit(run_remote, self.feed_arg, payload) for _, payload in payloads
        ]
        return _as_completed(futures)

    def _submit(self, fn: Callable[[PolarsDataFeed, Any], Any], item: Any) -> Any:
        payload = bytes(cloudpickle.dumps((fn, item)))
        return self.executor.submit(call_remote, self.feed_arg, payload)


# ------------------------------------------------------------------------------------- Ray

_ACTOR: Any = None


def import_ray() -> Any:
    """Ray, or a ``ConfigError`` naming the extra to install."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            "executor: 'ray' needs Ray, which is not installed: pip install 'ml4t-backtest[ray]'"
        ) from err
    return ray


def _actor_class() -> Any:
    global _ACTOR
    if _ACTOR is None:
        ray = import_ray()

        class SweepActor:
            """Holds the feed (from the object store) and runs batches of trials."""

            def __init__(self, state: bytes, table: Any) -> None:
                import polars as pl

                quiet()
                restored = cloudpickle.loads(state)
                if table is not None:
                    restored["_frame"] = pl.DataFrame(table)
                self.feed = PolarsDataFeed.__new__(PolarsDataFeed)
                self.feed.__setstate__(restored)

            def ready(self) -> bool:
                return True

            def run(self, payload: bytes) -> Answer:
                trials, keep, results = cloudpickle.loads(payload)
                return run_batch(self.feed, trials, keep, results)

            def call(self, payload: bytes) -> bytes:
                fn, item = cloudpickle.loads(payload)
                return bytes(cloudpickle.dumps(fn(self.feed, item)))

        _ACTOR = ray.remote(num_cpus=1)(SweepActor)
    return _ACTOR


class RayBackend(Backend):
    """Long-lived Ray actors, each holding the feed's table from the object store. Uses the
    running Ray (``ray.init()`` locally or ``ray.init(address=...)`` on a cluster), or starts a
    local one."""

    name = "ray"

    def start(self) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init()
        if self.workers < 1:  # one actor per CPU of the cluster
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if self.transport == "source":
            state, table_ref = _state(self.feed, with_frame=True), None
        else:
            state = _state(self.feed, with_frame=False)
            table_ref = ray.put(self.feed.frame.rechunk().to_arrow())
        actor = _actor_class()
        self.actors = [actor.remote(state, table_ref) for _ in range(self.workers)]
        ray.get([a.ready.remote() for a in self.actors])
        self.ray = ray

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)

    def run(
        self, payloads: list[tuple[list[Trial], bytes]], keep: str, results: str | None
    ) -> Iterator[Answer]:
        ray = self.ray
        queue = [payload for _, payload in payloads]
        queue.reverse()
        pending: dict[Any, Any] = {}
        for actor in self.actors:
            if queue:
                pending[actor.run.remote(queue.pop())] = actor
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            if queue:
                pending[actor.run.remote(queue.pop())] = actor
            yield ray.get(done[0])

    def map(self, fn: Callable[[PolarsDataFeed, Any], Any], items: Sequence[Any]) -> list[Any]:
        ray = self.ray
        refs = [
            self.actors[i % len(self.actors)].call.remote(bytes(cloudpickle.dumps((fn, item))))
            for i, item in enumerate(items)
        ]
        return [cloudpickle.loads(answer) for answer in ray.get(refs)]


def make_backend(
    executor: Any,
    feed: PolarsDataFeed,
    workers: int,
    transport: str,
    all_native: bool,
    start_method: str,
    feed_file: Path | None,
) -> Backend:
    """The backend for ``Sweep.run``'s arguments (transport checked against the feed).

    Raises:
        ConfigError: an unknown executor, transport or start method, a transport the executor
            or the feed does not support, or ``"ray"`` without Ray installed.
    """
    if transport not in TRANSPORTS:
        raise ConfigError(f"transport: unknown transport {transport!r} (choose from {TRANSPORTS})")
    if start_method not in START_METHODS:
        raise ConfigError(
            f"start_method: expected one of {START_METHODS} (fork is unsafe with Polars), got "
            f"{start_method!r}"
        )
    if executor is None:
        executor = "threads" if all_native or workers == 1 else "processes"
    supported = feed_transports(feed)
    allowed: tuple[str, ...]
    if isinstance(executor, Executor):
        allowed = ("scatter", "mmap", "pickle") if is_dask(executor) else ("mmap", "pickle")
        auto = "scatter" if is_dask(executor) else "pickle"
    elif executor == "threads":
        allowed, auto = ("auto",), "auto"
    elif executor == "processes":
        allowed, auto = ("mmap",), "mmap"
    elif executor == "ray":
        import_ray()
        allowed, auto = ("object_store",), "object_store"
    else:
        raise ConfigError(
            "executor: expected None, 'threads', 'processes', 'ray' or a "
            f"concurrent.futures.Executor, got {executor!r}"
        )
    if feed.streaming and executor != "threads":
        allowed, auto = ("source",), "source"
    chosen = auto if transport == "auto" else transport
    if executor != "threads" and chosen not in allowed:
        raise ConfigError(
            f"transport: {chosen!r} does not work here: this executor takes {allowed}, and this "
            f"{'streaming' if feed.streaming else 'in-memory'} feed supports {supported}"
        )
    if isinstance(executor, Executor):
        return ExecutorBackend(feed, workers, chosen, executor, feed_file)
    if executor == "threads":
        return ThreadBackend(feed, workers, "shared")
    if executor == "processes":
        return ProcessBackend(feed, workers, chosen, start_method, feed_file)
    return RayBackend(feed, workers, chosen)
