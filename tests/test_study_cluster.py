"""Sweeps on a local Ray (one module-scoped cluster, 2 CPUs, no dashboard) and on a Dask
``distributed.LocalCluster`` (2 worker processes): the same table as threads, for native and
Python strategies (defined here in a function, so cloudpickle carries them by value)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import distributed
import pytest
import ray

from ml4t.backtest import ConfigError, PolarsDataFeed, TopKStrategy
from ml4t.backtest import risk as rk
from ml4t.backtest.study import RandomSearch, Sweep, SweepResult
from ml4t.backtest.synthetic import make_bars
from test_study import python_sweep, same_table


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=8, n_bars=160, seed=11))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def native_sweep(feed: PolarsDataFeed) -> Sweep:
    return Sweep(
        feed,
        TopKStrategy,
        {"score": ["score"], "k": [1, 2, 3]},
        risk=lambda p: [rk.StopLoss(pct=0.02 * p["k"])],
        config={"commission.model": "percent", "commission.rate": [0.0, 0.001]},
    )


def test_ray_gives_the_threads_table(feed: PolarsDataFeed, local_ray: Any) -> None:
    for sweep in (native_sweep(feed), python_sweep(feed)):
        reference = sweep.run(executor="threads", max_workers=1, progress=False)
        on_ray = sweep.run(executor="ray", progress=False)
        assert on_ray.info["executor"] == "ray" and on_ray.info["workers"] == 2
        assert on_ray.info["transport"] == "object_store"
        same_table(reference, on_ray)
        same_table(
            reference, sweep.run(executor="ray", max_workers=1, batch_size=1, progress=False)
        )


def test_ray_optimize_and_keep_all(feed: PolarsDataFeed, local_ray: Any, tmp_path: Any) -> None:
    sweep = Sweep(
        feed,
        TopKStrategy,
        RandomSearch({"score": ["score"], "k": [1, 2, 3, 4, 5]}, n=1),
    )
    local = sweep.optimize(
        "total_return", 6, seed=1, batch_size=3, executor="threads", progress=False
    )
    remote = sweep.optimize("total_return", 6, seed=1, batch_size=3, executor="ray", progress=False)
    same_table(local, remote)
    kept = native_sweep(feed).run(
        executor="ray", cache=tmp_path / "cache", keep="all", progress=False
    )
    assert kept.result(3).fills.equals(native_sweep(feed).rerun(3).fills)
    assert isinstance(SweepResult.load(kept.save(tmp_path / "out")), SweepResult)


def test_dask_executor_gives_the_threads_table(feed: PolarsDataFeed, dask_client: Any) -> None:
    executor = dask_client.get_executor()
    for sweep in (native_sweep(feed), python_sweep(feed)):
        reference = sweep.run(executor="threads", max_workers=1, progress=False)
        scattered = sweep.run(executor=executor, progress=False)
        assert scattered.info["executor"] == "dask" and scattered.info["transport"] == "scatter"
        same_table(reference, scattered)
    mapped = python_sweep(feed).run(executor=executor, transport="mmap", progress=False)
    assert mapped.info["transport"] == "mmap"
    same_table(reference, mapped)
    with pytest.raises(ConfigError, match="transport: 'object_store' does not work here"):
        python_sweep(feed).run(executor=executor, transport="object_store", progress=False)


def test_any_executor_with_the_feed_pickled(feed: PolarsDataFeed) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sweep = python_sweep(feed)
    with ThreadPoolExecutor(2) as pool:
        pickled = sweep.run(executor=pool, progress=False)
    assert pickled.info["transport"] == "pickle"
    same_table(sweep.run(executor="threads", progress=False), pickled)


def _ridge() -> Any:
    """A walk-forward fit defined in a function (cloudpickle carries it by value)."""
    import numpy as np
    import polars as pl

    def fit(train: Any, fold: Any) -> Any:
        data = train.with_columns(
            (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("y")
        ).drop_nulls("y")
        x = np.column_stack([data["score"].to_numpy(), np.ones(data.height)])
        coef = np.linalg.lstsq(x, data["y"].to_numpy(), rcond=None)[0]
        return fold.test_data.select(
            "timestamp", "asset", (pl.col("score") * coef[0] + coef[1]).alias("pred")
        )

    return fit


def test_walk_forward_and_cpcv_on_ray_and_dask(
    feed: PolarsDataFeed, local_ray: Any, dask_client: Any
) -> None:
    from ml4t.backtest.study import CombinatorialPurgedCV, WalkForward

    wf = WalkForward(
        feed, _ridge(), TopKStrategy("pred", k=2), train=60, test=25, purge=2, continuous=False
    )
    reference = wf.run(executor="threads", max_workers=1)
    for executor in ("ray", dask_client.get_executor()):
        other = wf.run(executor=executor)
        assert reference.equity.equals(other.equity)
        assert reference.folds.drop("fit_seconds").equals(other.folds.drop("fit_seconds"))
    cv = CombinatorialPurgedCV(4, 2, label_horizon=2)
    local = cv.run(feed, _ridge(), TopKStrategy("pred", k=2), executor="threads")
    remote = cv.run(feed, _ridge(), TopKStrategy("pred", k=2), executor=dask_client.get_executor())
    assert local.paths.equals(remote.paths) and local.equity.equals(remote.equity)
