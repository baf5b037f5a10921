"""The ``ml4t-backtest`` command line, run as a subprocess (``python -m ml4t.backtest.cli``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, TopKStrategy
from ml4t.backtest.cli import main
from ml4t.backtest.data import write_dataset
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=4, n_bars=80, seed=9)

STRATEGY_MODULE = """
import numpy as np
from ml4t.backtest import Strategy


class Top(Strategy):
    def __init__(self, k: int = 2, column: str = "score") -> None:
        self.k, self.column = k, column

    def on_timestamp_batch(self, timestamp, batch, context):
        best = np.argsort(-batch[self.column], kind="stable")[: self.k]
        context.rebalance({batch.assets[i]: 1 / self.k for i in best})
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml4t.backtest.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    write_dataset(BARS, tmp_path / "data" / "bars", partition_by="month")
    (tmp_path / "my_strategies.py").write_text(STRATEGY_MODULE)
    return tmp_path


def test_help() -> None:
    outputs = {}
    for args in (["--help"], ["run", "--help"], ["validate", "--help"]):
        out = cli(*args, cwd=Path.cwd())
        assert out.returncode == 0, out.stderr
        assert "usage: ml4t-backtest" in out.stdout
        outputs[args[0]] = out.stdout
    assert "run" in outputs["--help"] and "validate" in outputs["--help"]
    assert "CONFIG" in outputs["run"] and "--output" in outputs["run"]
    assert "DATA" in outputs["validate"] and "--chunk-rows" in outputs["validate"]


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_run_a_yaml_config(project: Path) -> None:
    (project / "run.yaml").write_text(
        textwrap.dedent(
            """\
            preset: realistic
            initial_cash: 50000
            data:
              prices: data/bars
              chunk_by: 1mo
            strategy:
              name: my_strategies:Top
              params: {k: 2}
            output:
              directory: results
            """
        )
    )
    out = cli("run", "run.yaml", "--no-progress", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "Sharpe ratio" in out.stdout and "results written to" in out.stdout
    results = project / "results"
    assert (results / "fills.parquet").is_file() and (results / "metrics.json").is_file()
    metrics = json.loads((results / "metrics.json").read_text())
    saved = BacktestConfig.from_yaml(results / "config.yaml")
    assert saved == BacktestConfig.preset(
        "realistic",
        initial_cash=50_000,
        data={"prices": "data/bars", "chunk_by": "1mo"},
        strategy={"name": "my_strategies:Top", "params": {"k": 2}},
        output={"directory": "results"},
    )
    assert saved.execution.share_rounding == "integer"  # the preset is resolved
    # the same run through the Python API
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_strategies", project / "my_strategies.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    direct = Backtest(PolarsDataFeed(BARS), module.Top(k=2), config=saved).run(progress=False)
    assert pl.read_parquet(results / "fills.parquet").equals(direct.fills)
    assert metrics["total_return"] == pytest.approx(direct.metrics["total_return"])


def test_run_a_json_config_with_a_builtin_and_output_flag(project: Path) -> None:
    config = BacktestConfig(
        data={"prices": str(project / "data" / "bars")},
        strategy={"name": "top_k", "params": {"score": "score", "k": 2}},
        commission={"model": "percent", "rate": 0.001},
    )
    (project / "cfg.json").write_text(config.to_json())
    out = cli("run", "cfg.json", "-o", "elsewhere", "--no-progress", cwd=project)
    assert out.returncode == 0, out.stderr
    fills = pl.read_parquet(project / "elsewhere" / "fills.parquet")
    direct = Backtest(PolarsDataFeed(BARS), TopKStrategy("score", k=2), config=config).run(
        progress=False
    )
    assert fills.equals(direct.fills)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "data: {prices: data/bars}\nstrategy: {name: signal, params: {column: x}}\n",
            "strategy.params",
        ),
        (
            "data: {prices: data/bars, chunk_rows: -1}\nstrategy: {name: signal}\n",
            "data.chunk_rows",
        ),
        ("strategy: {name: 'my_strategies:Top'}\n", "data:"),
        ("data: {prices: data/bars}\nstrategy: {name: 'nope_module:Top'}\n", "strategy.name"),
        (
            "data: {prices: data/nothing_here}\nstrategy: {name: 'my_strategies:Top'}\n",
            "prices: source",
        ),
        ("data: {prices: data/bars}\nstrategy: {name: 'my_strategies:Top'}\nriks: []\n", "riks"),
    ],
    ids=["bad params", "bad value", "no data", "bad import", "no files", "unknown key"],
)
def test_run_errors_exit_1_with_the_location(
    project: Path,
    text: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "bad.yaml").write_text(text)
    monkeypatch.chdir(project)
    assert main(["run", "bad.yaml", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


def test_validate_good_and_bad_data(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cli("validate", "data/bars", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "validation: OK" in out.stdout and f"{BARS.height} rows" in out.stdout
    bad = BARS.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([5, 9])).then(-1.0).otherwise("volume").alias("volume")
    )
    bad.write_parquet(project / "bad.parquet")
    out = cli("validate", "bad.parquet", cwd=project)
    assert out.returncode == 1
    assert "volume: non_negative_volume" in out.stdout and "2 rows break it" in out.stdout
    monkeypatch.chdir(project)
    assert main(["validate", "data/bars", "--chunk-rows", "50"]) == 0
    assert "OK" in capsys.readouterr().out
    BARS.reverse().write_parquet(project / "shuffled.parquet")
    assert main(["validate", "shuffled.parquet"]) == 0
    assert main(["validate", "shuffled.parquet", "--sort", "raise"]) == 1
    assert "sort_order" in capsys.readouterr().out


def test_validate_a_config_file(project: Path) -> None:
    BARS.select("timestamp", "asset", pl.col("score").alias("pred")).with_columns(
        available_at=pl.col("timestamp") + pl.duration(days=1)
    ).write_parquet(project / "preds.parquet")
    (project / "run.yaml").write_text(
        "data:\n  prices: data/bars\n  signals: preds.parquet\n"
        "strategy: {name: 'my_strategies:Top'}\n"
    )
    out = cli("validate", "run.yaml", cwd=project)
    assert out.returncode == 1
    assert "signals.available_at: signal_timing" in out.stdout


RULE_MODULE = """
from ml4t.backtest import RiskDecision, RiskRule


class ExitAfter(RiskRule):
    def __init__(self, bars: int) -> None:
        self.bars = bars

    def evaluate(self, context):
        if context.bars_held >= self.bars:
            return RiskDecision.exit(reason="time_exit")
        return None
"""


def test_run_a_config_with_risk_rules(project: Path) -> None:
    # Built-in rules and a custom rule found next to the config file; the results directory
    # keeps the resolved rules.
    (project / "my_rules.py").write_text(RULE_MODULE)
    (project / "risk.yaml").write_text(
        textwrap.dedent(
            """\
            data: {prices: data/bars}
            strategy: {name: 'my_strategies:Top', params: {k: 2}}
            execution: {stop_basis: signal_close}
            risk:
              - {type: stop_loss, pct: 0.01}
              - {type: max_position_size, pct_equity: 0.4}
              - {type: custom, path: 'my_rules:ExitAfter', params: {bars: 3}}
            output: {directory: out, report: false}
            """
        )
    )
    out = cli("run", "risk.yaml", "--no-progress", cwd=project)
    assert out.returncode == 0, out.stderr
    trades = pl.read_parquet(project / "out" / "trades.parquet")
    reasons = set(trades["exit_reason"])
    assert {"stop_loss", "time_exit"} <= reasons, reasons
    saved = BacktestConfig.from_yaml(project / "out" / "config.yaml")
    assert [rule.type for rule in saved.risk] == ["stop_loss", "max_position_size", "custom"]
    assert saved.execution.stop_basis == "signal_close"
