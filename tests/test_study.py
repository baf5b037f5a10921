"""Sweeps (``ml4t.backtest.study``): the API, bad input, picklability, the threads and
processes executors, the cache (a killed sweep resumes to the same table), Optuna, the report
and ``BacktestConfig.replace``. Ray and Dask: ``test_study_cluster.py``."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    ConfigError,
    PolarsDataFeed,
    RiskRuleError,
    SignalStrategy,
    Strategy,
    TopKStrategy,
)
from ml4t.backtest import risk as rk
from ml4t.backtest.study import (
    DIRECTIONS,
    IntUniform,
    RandomSearch,
    Sweep,
    SweepResult,
    Uniform,
    feed_transports,
)
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=8, n_bars=160, seed=11)


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(BARS)


def strategy_class() -> type[Strategy]:
    """A Python strategy defined in a function, as in a notebook (cloudpickled by value)."""

    class TopN(Strategy):
        def __init__(self, k: int) -> None:
            self.k = k

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            best = np.argsort(-batch["score"], kind="stable")[: self.k]
            context.rebalance({batch.assets[i]: 1.0 / self.k for i in best})

    return TopN


def python_sweep(feed: PolarsDataFeed) -> Sweep:
    """8 trials: a Python strategy (k), a risk lambda (stop), a config axis, one failing."""
    top_n = strategy_class()
    scale = 1.0  # a closure variable

    def make(k: int) -> Strategy:
        if k == 3:
            raise_on_start = top_n(k)
            raise_on_start.on_start = lambda context: 1 / 0  # type: ignore[method-assign]
            return raise_on_start
        return top_n(k)

    return Sweep(
        feed,
        make,
        {"k": [2, 3], "stop": [0.02, 0.05]},
        risk=lambda stop: [rk.StopLoss(pct=stop * scale)],
        config={"commission.model": "percent", "commission.rate": [0.0, 0.001]},
    )


def same_table(a: SweepResult, b: SweepResult) -> None:
    left, right = a.table.drop("seconds"), b.table.drop("seconds")
    assert left.columns == right.columns
    assert left.equals(right), (left, right)


# ------------------------------------------------------------------------ BacktestConfig.replace


def test_replace_reaches_nested_sections_items_and_mappings() -> None:
    base = BacktestConfig(risk=[rk.StopLoss(pct=0.02)], data={"prices": "x.parquet"})
    new = base.replace(
        initial_cash=1e6,
        **{
            "commission.model": "percent",
            "commission.rate": 0.0005,
            "risk.0.pct": 0.03,
            "data.rename.Date": "timestamp",
            "data.validation.sort": "raise",
        },
    )
    assert new.initial_cash == 1e6 and new.commission.rate == 0.0005
    assert new.risk[0] == rk.StopLoss(pct=0.03)
    assert new.data is not None and new.data.rename == {"Date": "timestamp"}
    assert new.data.validation.sort == "raise"
    assert base.commission.rate == 0.0 and base.risk[0].pct == 0.02  # type: ignore[union-attr]
    assert base.replace() == base


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"commission.rat": 0.1},
            "commission.rat: unknown field: CommissionConfig has no field "
            "'rat' (did you mean 'rate'?)",
        ),
        ({"commission.rate": -1.0}, "commission.rate: Input should be greater than or equal to 0"),
        ({"commission.rate": 0.001}, "commission.model: required: rate given"),
        ({"risk.0.pct": 0.1}, "risk.0: unknown field: expected an index below 0"),
        ({"data.prices": "x"}, "data.prices: unknown field: data is not set"),
        ({"initial_cash": "lots"}, "initial_cash: Input should be a valid number"),
        ({"initial_cash.x": 1}, "initial_cash.x: unknown field: initial_cash is float"),
    ],
)
def test_replace_errors_name_the_location(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        BacktestConfig().replace(**override)
    assert message in str(err.value)


# ---------------------------------------------------------------------------------- pickling


ALL_RULES: list[rk.BuiltinRule] = [
    rk.StopLoss(pct=0.02),
    rk.TakeProfit(amount=3.0),
    rk.TrailingStop(pct=0.03, mark="extreme"),
    rk.TimeExit(max_bars=5),
    rk.BreakevenStop(trigger=0.02),
    rk.ScaledExit(levels=[(0.02, 0.5)]),
    rk.VolatilityScaledSizing(feature="score", risk_fraction=0.01),
    rk.MaxPositionSize(pct_equity=0.25),
    rk.MaxPositions(max=3),
    rk.MaxGrossExposure(max=1.5),
    rk.MaxNetExposure(max=1.0),
    rk.MaxDrawdownHalt(max_drawdown=0.2),
    rk.DailyLossLimit(max_loss=0.05),
    rk.ScaleSize(factor=0.5),
    rk.RuleChain(rules=[rk.StopLoss(pct=0.02), rk.TakeProfit(pct=0.04)]),
    rk.AnyOf(rules=[rk.StopLoss(pct=0.02)]),
    rk.AllOf(rules=[rk.MaxPositions(max=2)]),
    rk.RegimeRule(feature="score", threshold=0.0, above=[rk.ScaleSize(factor=0.5)]),
    rk.CustomRule(path="my_rules:Rule", params={"x": 1}),
]


def test_configs_strategies_and_rules_pickle_to_equal_objects() -> None:
    config = BacktestConfig.preset(
        "realistic",
        risk=ALL_RULES[:3],
        strategy={"name": "top_k", "params": {"score": "score", "k": 2}},
    )
    objects: list[Any] = [
        config,
        SignalStrategy("signal", quantity=10, stop_loss=0.02),
        TopKStrategy("score", k=3, bottom_k=1),
        *ALL_RULES,
    ]
    for obj in objects:
        copy = pickle.loads(pickle.dumps(obj))
        assert copy == obj and type(copy) is type(obj)


def test_feed_pickles_to_an_equal_feed_and_result(feed: PolarsDataFeed, tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    BARS.write_parquet(path)
    streaming = PolarsDataFeed(str(path), chunk_rows=300)
    strategy = TopKStrategy("score", k=2)
    for original in (feed, streaming):
        copy = pickle.loads(pickle.dumps(original))
        assert copy.assets == original.assets and copy.universe == original.universe
        assert copy.signal_columns == original.signal_columns
        assert copy.features.groups() == original.features.groups()
        assert copy.streaming == original.streaming and len(copy) == len(original)
        assert copy.frame.equals(original.frame)
        a = Backtest(original, strategy).run(progress=False)
        b = Backtest(copy, strategy).run(progress=False)
        assert a.fills.equals(b.fills) and a.equity.equals(b.equity)
    # An in-memory feed carries its frame, not its sources (nothing else to read).
    assert len(pickle.dumps(feed)) < 3 * feed.frame.estimated_size() + 20_000


def test_result_pickles_to_an_equal_result(feed: PolarsDataFeed) -> None:
    result = Backtest(feed, TopKStrategy("score", k=2), risk=[rk.StopLoss(pct=0.02)]).run(
        progress=False
    )
    copy: BacktestResult = pickle.loads(pickle.dumps(result))
    for name in ("fills", "trades", "equity", "rejected_orders", "records"):
        assert getattr(copy, name).equals(getattr(result, name)), name
    assert copy.metrics == result.metrics and copy.config == result.config
    assert copy.positions("1w").equals(result.positions("1w"))
    assert copy.input_summary() == result.input_summary() and copy.run_info == result.run_info


# ------------------------------------------------------------------------------ bad input


def test_bad_input_is_refused_before_any_trial_runs(
    feed: PolarsDataFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = TopKStrategy("score", k=2)
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ({}, {}, "params: empty: the grid has no parameters"),
        ({"k": []}, {}, "params.k: empty: no values to try"),
        ([], {}, "params: empty: the list has no trials"),
        ({"k": 3}, {}, "params.k: expected a list of values, got int"),
        ({"k": [1, 2]}, {}, "params.k: unused: no callable takes it (strategy is a value"),
        ({"commission.rat": [0.1]}, {}, "commission.rat: unknown field"),
        (
            [{}],
            {"config": {"comission.rate": [0.1]}},
            "comission: unknown field: BacktestConfig has no field 'comission' (did you mean",
        ),
        ({"x": [1]}, {"risk": lambda stop=0.02: []}, "params.x: unused: no callable takes it"),
        ({"sharpe": [1]}, {}, "params.sharpe: reserved: a column of the table"),
    ]
    for params, kwargs, message in cases:
        with pytest.raises(ConfigError) as err:
            Sweep(feed, strategy, params, **kwargs)
        assert message in str(err.value), (params, str(err.value))
    in_trial_1 = r"k and bottom_k.*\(in trial 1 \{'score': 'score', 'k': 0\}\)"
    with pytest.raises(ConfigError, match=in_trial_1):
        Sweep(feed, TopKStrategy, {"score": ["score"], "k": [2, 0]})
    with pytest.raises(ConfigError, match="strategy: factory_failed"):
        Sweep(feed, lambda k: 1 / 0, {"k": [1]})
    with pytest.raises(RiskRuleError, match=r"stop_loss.pct: .* \(in trial 0 \{'s': 0.0\}\)"):
        Sweep(feed, strategy, {"s": [0.0]}, risk=lambda s: [rk.StopLoss(pct=s)])
    sweep = Sweep(feed, TopKStrategy, {"score": ["score"], "k": [1]})
    with pytest.raises(ConfigError, match="keep: 'all' saves every trial's result under the cache"):
        sweep.run(keep="all", progress=False)
    with pytest.raises(ConfigError, match="keep: expected one of"):
        sweep.run(keep="everything", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="executor: expected None, 'threads'"):
        sweep.run(executor="gpu", progress=False)
    with pytest.raises(ConfigError, match="start_method: expected one of"):
        sweep.run(executor="processes", start_method="fork", progress=False)
    with pytest.raises(ConfigError, match="transport: 'scatter' does not work here"):
        sweep.run(executor="processes", transport="scatter", progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ml4t-backtest\[ray\]'"):
        sweep.run(executor="ray", progress=False)
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'ml4t-backtest\[optuna\]'"):
        sweep.optimize("sharpe", 4)


def test_import_loads_no_optional_dependency() -> None:
    code = (
        "import sys, ml4t.backtest.study as s; "
        "print([m for m in ('ray', 'dask', 'distributed', 'optuna') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------------- the table and executors


def test_grid_table_columns_best_and_directions(feed: PolarsDataFeed) -> None:
    sweep = python_sweep(feed)
    result = sweep.run(executor="threads", max_workers=2, progress=False)
    table = result.table
    metrics = list(Backtest(feed, TopKStrategy("score", k=2)).run(progress=False).metrics)
    assert table.columns == [
        "trial",
        "k",
        "stop",
        "commission.rate",
        *metrics,
        "status",
        "error",
        "seconds",
    ]
    assert table["trial"].to_list() == list(range(8))
    assert table["k"].to_list() == [2, 2, 2, 2, 3, 3, 3, 3]
    assert table["commission.rate"].to_list() == [0.0, 0.001] * 4
    failed = table.filter(pl.col("k") == 3)
    assert failed["status"].to_list() == ["error"] * 4
    assert all("ZeroDivisionError" in e for e in failed["error"].to_list())
    assert failed["sharpe"].null_count() == 4
    ok = table.filter(pl.col("status") == "ok")
    assert ok["error"].null_count() == 4 and (ok["seconds"] > 0).all()
    # Each ok row is the metrics of that backtest run on its own.
    row = ok.row(1, named=True)
    alone = Backtest(
        feed,
        strategy_class()(2),
        config=BacktestConfig(commission={"model": "percent", "rate": row["commission.rate"]}),
        risk=[rk.StopLoss(pct=row["stop"])],
    ).run(progress=False)
    assert {m: row[m] for m in metrics} == pytest.approx(alone.metrics, nan_ok=True)
    assert set(metrics) <= set(DIRECTIONS)
    best = result.best("total_return")
    assert isinstance(best, dict)
    assert best["total_return"] == ok["total_return"].max()
    worst_dd = result.best("max_drawdown")
    assert isinstance(worst_dd, dict) and worst_dd["max_drawdown"] == ok["max_drawdown"].max()
    top = result.best("sharpe", n=3)
    assert isinstance(top, pl.DataFrame) and top.height == 3
    assert top["sharpe"].is_sorted(descending=True)
    assert result.best("sharpe", direction="min")["trial"] == ok.sort("sharpe")["trial"][0]
    with pytest.raises(ConfigError, match="not a column"):
        result.best("alpha_beta")
    again = result.result(1)
    assert again.metrics == pytest.approx(
        {m: ok.row(1, named=True)[m] for m in metrics}, nan_ok=True
    )


def test_table_is_identical_for_every_executor_and_worker_count(feed: PolarsDataFeed) -> None:
    sweep = python_sweep(feed)
    one = sweep.run(executor="threads", max_workers=1, progress=False)
    two = sweep.run(executor="threads", max_workers=2, batch_size=1, progress=False)
    procs = sweep.run(executor="processes", max_workers=2, progress=False)
    assert procs.info["executor"] == "processes" and procs.info["transport"] == "mmap"
    same_table(one, two)
    same_table(one, procs)
    # The default picks processes for a Python strategy, threads for native trials.
    native = Sweep(feed, TopKStrategy, {"score": ["score"], "k": [1, 2, 3]})
    auto = native.run(max_workers=2, progress=False)
    assert auto.info["executor"] == "threads"
    same_table(auto, native.run(executor="threads", max_workers=1, progress=False))


def test_random_search_and_lists_of_dicts(feed: PolarsDataFeed) -> None:
    space = {"k": IntUniform(1, 4), "stop": Uniform(0.01, 0.05, log=True), "w": ["a", "b"]}
    search = RandomSearch(space, n=5, seed=3)
    assert search.points() == RandomSearch(space, n=5, seed=3).points()
    assert search.points() != RandomSearch(space, n=5, seed=4).points()
    sweep = Sweep(
        feed,
        lambda p: TopKStrategy("score", k=p["k"]),
        search,
        risk=lambda p: [rk.StopLoss(pct=p["stop"])],
    )
    table = sweep.run(executor="threads", progress=False).table
    assert table.height == 5 and set(table["k"].to_list()) <= {1, 2, 3, 4}
    assert ((table["stop"] >= 0.01) & (table["stop"] <= 0.05)).all()
    listed = Sweep(feed, TopKStrategy, [{"score": "score", "k": 1}, {"score": "score", "k": 4}])
    assert listed.run(progress=False).table["k"].to_list() == [1, 4]


def test_keep_equity_all_save_load_and_report(feed: PolarsDataFeed, tmp_path: Path) -> None:
    sweep = Sweep(
        feed,
        SignalStrategy("signal", quantity=10),
        {"stop": [0.01, 0.03], "target": [0.02, 0.04, 0.08]},
        risk=lambda stop, target: [rk.StopLoss(pct=stop), rk.TakeProfit(pct=target)],
    )
    with_equity = sweep.run(keep="equity", progress=False)
    curve = with_equity.equity(4)
    alone = sweep.rerun(4)
    assert curve.equals(alone.equity.select("timestamp", "equity"))
    full = sweep.run(keep="all", cache=tmp_path / "cache", progress=False)
    loaded = full.result(2)
    assert loaded.fills.equals(sweep.rerun(2).fills)
    assert full.equity(2).equals(sweep.rerun(2).equity.select("timestamp", "equity"))
    with pytest.raises(ConfigError, match="kept metrics only"):
        sweep.run(progress=False).equity(0)
    out = with_equity.save(tmp_path / "saved")
    back = SweepResult.load(out)
    assert back.table.equals(with_equity.table) and back.equity(4).equals(curve)
    assert back.params == ["stop", "target"] and back.keep == "equity"
    with pytest.raises(ConfigError, match="loaded without its sweep"):
        back.result(0)
    assert SweepResult.load(full.save(tmp_path / "full")).result(2).fills.equals(loaded.fills)
    page = full.report(tmp_path / "sweep.html", "sharpe").read_text()
    # plotly.js + heatmap, distribution and the PBO logits (keep="equity")
    assert page.count("<script") == 4 and "Plotly.newPlot" in page
    for part in (
        "chart-heatmap",
        "chart-distribution",
        "Top 6 trials by sharpe",
        "higher is better",
    ):
        assert part in page, part
    assert 'id="chart-heatmap"' in page and "stop" in page and "target" in page


def test_feed_transports_name_what_a_feed_supports(feed: PolarsDataFeed, tmp_path: Path) -> None:
    assert feed_transports(feed) == ("mmap", "object_store", "scatter", "pickle")
    path = tmp_path / "bars.parquet"
    BARS.write_parquet(path)
    streaming = PolarsDataFeed.scan(str(path))
    assert feed_transports(streaming) == ("source",)
    sweep = Sweep(streaming, TopKStrategy, {"score": ["score"], "k": [1, 2]})
    with pytest.raises(ConfigError, match=r"supports \('source',\)"):
        sweep.run(executor="processes", transport="mmap", progress=False)
    reference = Sweep(feed, TopKStrategy, {"score": ["score"], "k": [1, 2]})
    same_table(sweep.run(progress=False), reference.run(progress=False))


# ------------------------------------------------------------------------------------ cache

SLOW_SWEEP = """
import sys, time
import numpy as np
from ml4t.backtest import PolarsDataFeed, Strategy
from ml4t.backtest.study import Sweep
from ml4t.backtest.synthetic import make_bars


class Slow(Strategy):
    def __init__(self, k):
        self.k = k

    def on_timestamp_batch(self, timestamp, batch, context):
        best = np.argsort(-batch["score"], kind="stable")[: self.k]
        context.rebalance({batch.assets[i]: 1.0 / self.k for i in best})

    def on_end(self, context):
        time.sleep(0.25)


if __name__ == "__main__":
    cache, out, executor = sys.argv[1], sys.argv[2], sys.argv[3]
    feed = PolarsDataFeed(make_bars(n_assets=6, n_bars=120, seed=2))
    sweep = Sweep(feed, Slow, {"k": [1, 2, 3, 4, 5, 6]},
                  config={"commission.model": "percent", "commission.rate": [0.0, 0.001]})
    result = sweep.run(executor=executor, max_workers=2, cache=cache or None, batch_size=1,
                       progress=False)
    result.table.write_parquet(out)
    print(result.info["ran"], result.info["cached"])
"""


def test_a_killed_sweep_resumes_to_the_same_table(tmp_path: Path) -> None:
    script = tmp_path / "slow_sweep.py"
    script.write_text(SLOW_SWEEP)
    cache = tmp_path / "cache"
    run = [sys.executable, str(script)]
    child = subprocess.Popen(
        [*run, str(cache), str(tmp_path / "killed.parquet"), "processes"],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        done: list[Path] = []
        while time.monotonic() < deadline and len(done) < 3:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
            done = list((cache / "trials").glob("*.arrow")) if (cache / "trials").is_dir() else []
        assert len(done) >= 3
        child.send_signal(signal.SIGKILL)  # the pool's parent, mid-sweep
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its orphaned workers
        except ProcessLookupError:
            pass
    finished = len(list((cache / "trials").glob("*.arrow")))
    assert 3 <= finished < 12
    assert not list((cache / "trials").glob(".tmp-*")) or True  # temp files never count
    resumed = subprocess.run(
        [*run, str(cache), str(tmp_path / "resumed.parquet"), "threads"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    ran, cached = map(int, resumed.stdout.split())
    assert cached >= finished and ran + cached == 12
    fresh = subprocess.run(
        [*run, "", str(tmp_path / "fresh.parquet"), "threads"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert fresh.stdout.split() == ["12", "0"]
    a = pl.read_parquet(tmp_path / "resumed.parquet").drop("seconds")
    b = pl.read_parquet(tmp_path / "fresh.parquet").drop("seconds")
    assert a.equals(b)
    again = subprocess.run(
        [*run, str(cache), str(tmp_path / "again.parquet"), "threads"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert again.stdout.split() == ["0", "12"]
    assert pl.read_parquet(tmp_path / "again.parquet").equals(
        pl.read_parquet(tmp_path / "resumed.parquet")
    )


def test_cache_keys_follow_what_decides_a_trial(feed: PolarsDataFeed, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    grid = {"score": ["score"], "k": [1, 2]}
    first = Sweep(feed, TopKStrategy, grid).run(cache=cache, progress=False)
    assert first.info["ran"] == 2
    assert Sweep(feed, TopKStrategy, grid).run(cache=cache, progress=False).info["cached"] == 2
    more = Sweep(feed, TopKStrategy, {"score": ["score"], "k": [1, 2, 3]})
    assert more.run(cache=cache, progress=False).info["ran"] == 1
    costs = Sweep(feed, TopKStrategy, grid, config=BacktestConfig(initial_cash=5e4))
    assert costs.run(cache=cache, progress=False).info["ran"] == 2
    other = PolarsDataFeed(make_bars(n_assets=8, n_bars=160, seed=12))
    assert Sweep(other, TopKStrategy, grid).run(cache=cache, progress=False).info["ran"] == 2
    # keep="equity" needs curves the metrics-only entries lack: those trials run again.
    assert (
        Sweep(feed, TopKStrategy, grid).run(cache=cache, keep="equity", progress=False).info["ran"]
        == 2
    )


# ------------------------------------------------------------------------------------ optuna


def test_optimize_is_the_same_for_every_executor(feed: PolarsDataFeed) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = Sweep(
        feed,
        SignalStrategy("signal", quantity=10),
        RandomSearch({"stop": Uniform(0.005, 0.05), "target": [0.02, 0.04, 0.08]}, n=1),
        risk=lambda stop, target: [rk.StopLoss(pct=stop), rk.TakeProfit(pct=target)],
    )
    one = sweep.optimize(
        "sharpe", 10, seed=7, batch_size=4, executor="threads", max_workers=1, progress=False
    )
    two = sweep.optimize(
        "sharpe", 10, seed=7, batch_size=4, executor="threads", max_workers=2, progress=False
    )
    same_table(one, two)
    assert one.table.height == 10 and one.table["trial"].to_list() == list(range(10))
    assert one.info["optimized"] == "sharpe" and one.info["direction"] == "max"
    other = sweep.optimize("sharpe", 10, seed=8, batch_size=4, executor="threads", progress=False)
    assert not other.table["stop"].equals(one.table["stop"])
    with pytest.raises(ConfigError, match="optimize needs a space"):
        Sweep(feed, TopKStrategy, [{"score": "score", "k": 1}]).optimize("sharpe", 2)
    with pytest.raises(ConfigError, match="unknown metric"):
        sweep.optimize("happiness", 2)


# --------------------------------------------------------------------------------------- CLI


def test_cli_sweep_writes_the_table_and_the_report(tmp_path: Path) -> None:
    BARS.write_parquet(tmp_path / "bars.parquet")
    (tmp_path / "sweep.yaml").write_text(
        textwrap.dedent(
            """
            data: {prices: bars.parquet}
            strategy: {name: top_k, params: {score: score, k: 2}}
            commission: {model: percent, rate: 0.001}
            sweep:
              grid:
                k: [1, 2, 3]
                commission.rate: [0.0, 0.001]
              executor: threads
              workers: 2
              cache: cache
              metric: total_return
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "ml4t.backtest.cli", "sweep", "sweep.yaml", "--progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "6/6" in out.stderr and "trial" in out.stderr  # the bar, with its ETA field
    folder = tmp_path / "output" / "sweep"
    table = pl.read_parquet(folder / "table.parquet")
    assert table.height == 6 and table.columns[:3] == ["trial", "k", "commission.rate"]
    assert (folder / "report.html").is_file() and "best total_return" in out.stdout
    meta = json.loads((folder / "sweep.json").read_text())
    assert (
        meta["info"]["executor"] == "threads"
        and len(list((tmp_path / "cache" / "trials").iterdir())) == 6
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "data: {prices: bars.parquet}\nstrategy: {name: top_k, params: {score: score, "
        "k: 2}}\nsweep: {grid: {k: [1]}, workerz: 2}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "ml4t.backtest.cli", "sweep", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        out.returncode == 1
        and "sweep.workerz" in out.stderr
        and "did you mean 'workers'" in (out.stderr)
    )


def test_sweep_report_renders_in_chromium_without_errors(
    feed: PolarsDataFeed, tmp_path: Path
) -> None:
    from test_report import PROBE_ELEMENT, console_errors, render

    sweep = Sweep(
        feed,
        SignalStrategy("signal", quantity=10),
        {"stop": [0.01, 0.03], "target": [0.02, 0.04, 0.08]},
        risk=lambda stop, target: [rk.StopLoss(pct=stop), rk.TakeProfit(pct=target)],
    )
    page = sweep.run(progress=False).report(tmp_path / "sweep.html", "total_return")
    dom, stderr = render(page, tmp_path)
    assert PROBE_ELEMENT not in dom and console_errors(stderr) == []
    for chart in ("chart-heatmap", "chart-distribution"):
        match = re.search(rf'<div id="{chart}" class="([^"]*)"', dom)
        assert match is not None and "js-plotly-plot" in match.group(1), chart
    assert "heatmaplayer" in dom or 'class="hm"' in dom
    assert 'class="point"' in dom  # histogram bars


def test_a_stateful_strategy_gives_the_same_table_every_run(feed: PolarsDataFeed) -> None:
    class Counting(Strategy):
        """Trades less each time the same instance runs again, unless it starts fresh."""

        def __init__(self, k: int) -> None:
            self.k, self.runs = k, 0

        def on_start(self, context: Any) -> None:
            self.runs += 1

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            best = np.argsort(-batch["score"], kind="stable")[: self.k + self.runs - 1]
            context.rebalance({batch.assets[i]: 0.1 for i in best})

    sweep = Sweep(
        feed, Counting(2), {"stop": [0.02, 0.04]}, risk=lambda stop: [rk.StopLoss(pct=stop)]
    )
    first = sweep.run(executor="threads", progress=False)
    same_table(first, sweep.run(executor="threads", progress=False))
    assert sweep.rerun(0).metrics["num_trades"] == first.table["num_trades"][0]
