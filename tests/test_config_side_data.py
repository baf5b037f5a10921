"""Side data named in a config (``data.instruments``, ``data.fx``, ``data.flows``): a YAML run
through the CLI equals the same run built in Python from the frames, relative paths are read
against the config file's directory, inline instrument specs work, and a bad file still gets
the reader's error naming the frame and column."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, TopKStrategy
from ml4t.backtest.cli import load_config, main
from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=4, n_bars=60, seed=3)
ASSETS = sorted(BARS["asset"].unique().to_list())
START = BARS["timestamp"].min()
assert isinstance(START, datetime)


def eur_rates() -> pl.DataFrame:
    days = [START + timedelta(days=i) for i in range(-1, 90)]
    return pl.DataFrame(
        {
            "timestamp": days,
            "currency": ["EUR"] * len(days),
            "rate": [1.10 + 0.002 * ((i * 7) % 11 - 5) for i in range(len(days))],
        }
    )


def instruments() -> pl.DataFrame:
    return pl.DataFrame({"asset": ASSETS[:2], "currency": ["EUR", "EUR"]})


def flows() -> pl.DataFrame:
    first = START.date()
    return pl.DataFrame(
        {
            "timestamp": [first + timedelta(days=10), first + timedelta(days=30)],
            "amount": [5e4, 2e4],
        }
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    BARS.write_parquet(tmp_path / "data" / "bars.parquet")
    eur_rates().write_parquet(tmp_path / "data" / "fx.parquet")
    instruments().write_csv(tmp_path / "data" / "instruments.csv")
    flows().write_parquet(tmp_path / "data" / "flows.parquet")
    return tmp_path


CONFIG = """\
initial_cash: 100000
account: {base_currency: USD}
data:
  prices: data/bars.parquet
  instruments: data/instruments.csv
  fx: data/fx.parquet
  flows: data/flows.parquet
strategy: {name: top_k, params: {score: score, k: 2}}
output: {directory: results, report: false}
"""


def test_a_yaml_run_with_instruments_fx_and_flows_files_equals_the_python_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "run.yaml").write_text(CONFIG)
    monkeypatch.chdir(project.parent)  # relative paths are read against the file, not the cwd
    assert main(["run", str(project / "run.yaml"), "--no-progress"]) == 0
    results = project / "results"
    config = load_config(project / "run.yaml").model_copy(update={"data": None})
    feed = PolarsDataFeed(BARS, instruments=instruments(), fx=eur_rates())
    direct = Backtest(feed, TopKStrategy("score", k=2), config=config, flows=flows()).run(
        progress=False
    )
    fills = pl.read_parquet(results / "fills.parquet")
    assert fills.height > 0 and set(fills["currency"]) == {"EUR", "USD"}
    assert fills.equals(direct.fills)
    assert pl.read_parquet(results / "equity.parquet").equals(direct.equity)
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["total_flows"] == pytest.approx(70_000.0)
    assert metrics["total_flows"] == pytest.approx(direct.metrics["total_flows"])


def test_inline_instrument_specs_in_a_yaml_config(tmp_path: Path) -> None:
    BARS.write_parquet(tmp_path / "bars.parquet")
    (tmp_path / "run.yaml").write_text(
        textwrap.dedent(
            f"""\
            data:
              prices: bars.parquet
              instruments:
                {ASSETS[0]}: {{asset_class: future, multiplier: 50, margin_initial: 5000}}
            """
        )
    )
    config = load_config(tmp_path / "run.yaml")
    assert config.data is not None
    feed = PolarsDataFeed.from_config(config.data, tmp_path)
    specs = feed.instruments
    assert specs is not None
    future = specs[feed.universe.code(ASSETS[0])]
    assert future is not None and future["multiplier"] == 50.0
    assert [specs[feed.universe.code(a)] for a in ASSETS[1:]] == [None, None, None]


def test_a_bad_instruments_file_names_the_asset_and_field(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv"
    pl.DataFrame({"asset": [ASSETS[0]], "multiplier": [0.0]}).write_csv(path)
    with pytest.raises(ConfigError, match=rf"instruments\[{ASSETS[0]}\]\.multiplier"):
        PolarsDataFeed(BARS, instruments=str(path))
    with pytest.raises(DataValidationError, match="instruments"):
        PolarsDataFeed(BARS, instruments=str(tmp_path / "missing.parquet"))


def test_a_relative_flows_path_is_read_against_search_path(tmp_path: Path) -> None:
    flows().write_parquet(tmp_path / "flows.parquet")
    config = BacktestConfig(data={"prices": "unused.parquet", "flows": "flows.parquet"})
    backtest = Backtest(
        PolarsDataFeed(BARS), TopKStrategy("score", k=2), config=config, search_path=str(tmp_path)
    )
    assert backtest.flows is not None
    assert backtest.flows.equals(
        Backtest(PolarsDataFeed(BARS), TopKStrategy("score", k=2), flows=flows()).flows
    )
