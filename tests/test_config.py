"""``BacktestConfig``: defaults, lossless YAML/JSON round trips, and ConfigError locations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml4t.backtest import (
    AccountConfig,
    Backtest,
    BacktestConfig,
    CommissionConfig,
    ExecutionConfig,
    PolarsDataFeed,
    SignalStrategy,
    SlippageConfig,
)
from ml4t.backtest.errors import BacktestError, ConfigError
from ml4t.backtest.synthetic import make_bars

DEFAULTS: dict[str, Any] = {
    "initial_cash": 100_000.0,
    "execution": {
        "mode": "next_open",
        "sizing": "decision",
        "share_rounding": "fractional",
        "intrabar_path": "ohlc",
        "limit_fill": "touch",
        "limit_through": 0.0,
        "max_volume_fraction": None,
        "stop_basis": "fill",
        "on_delisting": "close",
        "delisting_gap": 5,
        "on_non_member": "reject",
    },
    "commission": {"model": "none", "rate": 0.0, "amount": 0.0, "minimum": 0.0},
    "slippage": {
        "model": "none",
        "rate": 0.0,
        "amount": 0.0,
        "bps": 0.0,
        "impact": 0.1,
        "cap": 0.05,
        "k": 1.0,
        "sigma_column": None,
        "adv_column": None,
    },
    "account": {
        "type": "margin",
        "allow_short": True,
        "initial_margin": 0.5,
        "maintenance_margin": 0.25,
        "on_insufficient": "reject",
        "borrow_rate": 0.0,
        "borrow_rate_column": None,
        "funding_rate_column": None,
        "margin_interest_rate": 0.0,
        "cash_interest_rate": 0.0,
        "on_withdrawal": "error",
        "base_currency": "USD",
        "auto_convert": False,
        "fx_fee": 0.0,
    },
    "periods_per_year": None,
    "risk_free": 0.0,
    "calendar": None,
    "outside_sessions": "raise",
    "data": None,
    "strategy": None,
    "risk": [],
    "output": {"directory": None, "report": True, "prediction": None},
}

# values chosen to need every digit of a float64 and to exercise every section
CUSTOM: dict[str, Any] = {
    "initial_cash": 0.1 + 0.2,
    "execution": {
        "mode": "same_close",
        "sizing": "fill",
        "share_rounding": "integer",
        "intrabar_path": "pessimistic",
        "limit_fill": "through_fraction",
        "limit_through": 1 / 7,
        "max_volume_fraction": 0.1 + 0.2,
        "stop_basis": "signal_close",
        "on_delisting": "hold",
        "delisting_gap": 3,
        "on_non_member": "allow",
    },
    "commission": {"model": "percent", "rate": 1 / 3, "amount": 1e-300, "minimum": 5e-324},
    "slippage": {
        "model": "fixed",
        "rate": 2.0 / 7.0,
        "amount": 1e300,
        "bps": 1 / 9,
        "impact": 0.1 + 0.7,
        "cap": 1 / 11,
        "k": 3e-7,
        "sigma_column": "vol",
        "adv_column": "adv",
    },
    "account": {
        "type": "cash",
        "allow_short": False,
        "initial_margin": 0.5,
        "maintenance_margin": 0.1 + 0.2,
        "on_insufficient": "resize",
        "borrow_rate": 1 / 3,
        "borrow_rate_column": "borrow",
        "funding_rate_column": "funding_rate",
        "margin_interest_rate": 2 / 3,
        "cash_interest_rate": 1e-300,
        "on_withdrawal": "liquidate",
        "base_currency": "EUR",
        "auto_convert": True,
        "fx_fee": 1 / 7,
    },
    "periods_per_year": 252.123456789012345,
    "risk_free": 0.0312345678901234,
    "calendar": "XNYS",
    "outside_sessions": "drop",
}


def test_defaults() -> None:
    config = BacktestConfig()
    assert config.model_dump() == DEFAULTS
    assert config.execution == ExecutionConfig()
    assert config.commission == CommissionConfig()
    assert config.slippage == SlippageConfig()
    assert config.account == AccountConfig()
    assert config.engine_dict() == {
        "initial_cash": 100_000.0,
        "execution": {
            "mode": "next_open",
            "sizing": "decision",
            "share_rounding": "fractional",
            "intrabar_path": "ohlc",
            "limit_fill": "touch",
            "limit_through": 0.0,
            "max_volume_fraction": None,
            "stop_basis": "fill",
            "on_delisting": "close",
            "delisting_gap": 5,
            "on_non_member": "reject",
        },
        "commission": {"model": "none", "rate": 0.0, "amount": 0.0, "minimum": 0.0},
        "slippage": {
            "model": "none",
            "rate": 0.0,
            "amount": 0.0,
            "bps": 0.0,
            "impact": 0.1,
            "cap": 0.05,
            "k": 1.0,
            "sigma_column": None,
            "adv_column": None,
        },
        "account": {
            "type": "margin",
            "allow_short": True,
            "initial_margin": 0.5,
            "maintenance_margin": 0.25,
            "on_insufficient": "reject",
            "borrow_rate": 0.0,
            "borrow_rate_column": None,
            "funding_rate_column": None,
            "margin_interest_rate": 0.0,
            "cash_interest_rate": 0.0,
            "on_withdrawal": "error",
            "base_currency": "USD",
            "auto_convert": False,
            "fx_fee": 0.0,
        },
    }


def test_partial_sections_keep_other_defaults() -> None:
    config = BacktestConfig(commission={"model": "per_order", "amount": 1.5})
    assert config.commission.model == "per_order"
    assert config.commission.amount == 1.5
    assert config.commission.rate == 0.0 and config.commission.minimum == 0.0
    assert config.execution == ExecutionConfig()
    assert BacktestConfig(execution=ExecutionConfig(mode="same_close")).execution.mode == (
        "same_close"
    )


def test_config_is_immutable() -> None:
    config = BacktestConfig()
    with pytest.raises((TypeError, ValueError)):
        config.initial_cash = 5.0  # type: ignore[misc]
    with pytest.raises((TypeError, ValueError)):
        config.commission.rate = 5.0  # type: ignore[misc]


@pytest.mark.parametrize("data", [{}, CUSTOM], ids=["defaults", "custom"])
def test_yaml_round_trip_is_lossless(tmp_path: Path, data: dict[str, Any]) -> None:
    config = BacktestConfig(**data)
    path = tmp_path / "config.yaml"
    text = config.to_yaml(path)
    assert path.read_text() == text
    loaded = BacktestConfig.from_yaml(path)
    assert loaded == config
    assert loaded.model_dump() == config.model_dump()
    assert yaml.safe_load(text) == config.model_dump(mode="json")
    # and again: the text is a fixed point
    assert loaded.to_yaml() == text
    assert BacktestConfig.from_yaml(str(path)) == config


@pytest.mark.parametrize("data", [{}, CUSTOM], ids=["defaults", "custom"])
def test_json_round_trip_is_lossless(tmp_path: Path, data: dict[str, Any]) -> None:
    config = BacktestConfig(**data)
    text = config.to_json()
    assert json.loads(text) == config.model_dump(mode="json")
    loaded = BacktestConfig.from_json(text)
    assert loaded == config
    assert loaded.model_dump() == config.model_dump()
    assert loaded.to_json() == text
    path = tmp_path / "config.json"
    path.write_text(text)
    assert BacktestConfig.from_json(path) == config
    assert BacktestConfig.from_json(str(path)) == config


def test_custom_values_survive_exactly() -> None:
    loaded = BacktestConfig.from_json(BacktestConfig(**CUSTOM).to_json())
    assert loaded.initial_cash == 0.1 + 0.2
    assert loaded.commission.rate == 1 / 3
    assert loaded.commission.minimum == 5e-324
    assert loaded.slippage.amount == 1e300
    assert loaded.periods_per_year == 252.123456789012345


def test_yaml_written_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text(
        "initial_cash: 50000\n"
        "execution: {mode: same_close}\n"
        "commission:\n  model: per_share\n  rate: 5.0e-3\n  minimum: 1\n"
        "account:\n  allow_short: false\n"
    )
    config = BacktestConfig.from_yaml(path)
    assert config.initial_cash == 50_000.0
    assert config.execution.mode == "same_close"
    assert config.execution.share_rounding == "fractional"
    assert config.commission == CommissionConfig(model="per_share", rate=0.005, minimum=1.0)
    assert config.account.allow_short is False
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert BacktestConfig.from_yaml(empty) == BacktestConfig()


def test_loaded_config_drives_the_engine(tmp_path: Path) -> None:
    df = make_bars(n_assets=2, n_bars=30, seed=31)
    config = BacktestConfig(
        initial_cash=50_000.0,
        execution={"mode": "same_close"},
        commission={"model": "percent", "rate": 0.002},
        slippage={"model": "percent", "rate": 0.001},
        periods_per_year=252.0,
    )
    path = tmp_path / "run.yaml"
    config.to_yaml(path)
    strategy = SignalStrategy("signal", quantity=10.0)
    a = Backtest(PolarsDataFeed(df), strategy, config=config).run()
    b = Backtest(PolarsDataFeed(df), strategy, config=BacktestConfig.from_yaml(path)).run()
    assert a.equity.equals(b.equity)
    assert a.fills.equals(b.fills)
    assert (a.fills["commission"] > 0).all()
    assert (a.fills["slippage"] > 0).all()
    assert a.metrics["periods_per_year"] == 252.0
    # The result's config is the one given, plus the strategy it ran (as a file would name it).
    assert a.config.model_copy(update={"strategy": None}) == config
    assert a.config.strategy is not None and a.config.strategy.name == "signal"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"foo": 1}, "foo"),
        ({"commission": {"model": "percent", "rat": 0.1}}, "commission.rat"),
        ({"execution": {"fill": "next_open"}}, "execution.fill"),
        ({"account": {"allow_shorts": False}}, "account.allow_shorts"),
        ({"slippage": {"model": "fixed", "size": 1}}, "slippage.size"),
    ],
)
def test_unknown_key_raises_with_location(data: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(**data)
    message = str(info.value)
    assert message.startswith(f"{location}:"), message
    assert "Extra inputs" in message or "not permitted" in message


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"commission": {"model": "percent", "rate": -0.1}}, "commission.rate"),
        ({"commission": {"rate": math.nan}}, "commission.rate"),
        ({"commission": {"amount": math.inf}}, "commission.amount"),
        ({"commission": {"minimum": -1.0}}, "commission.minimum"),
        ({"commission": {"model": "flat"}}, "commission.model"),
        ({"slippage": {"model": "random"}}, "slippage.model"),
        ({"slippage": {"rate": -0.01}}, "slippage.rate"),
        ({"execution": {"mode": "market"}}, "execution.mode"),
        ({"execution": {"mode": "NEXT_OPEN"}}, "execution.mode"),
        ({"execution": {"share_rounding": "round"}}, "execution.share_rounding"),
        ({"execution": {"intrabar_path": "random"}}, "execution.intrabar_path"),
        ({"execution": {"max_volume_fraction": 1.5}}, "execution.max_volume_fraction"),
        ({"execution": {"limit_through": -1.0}}, "execution.limit_through"),
        ({"account": {"allow_short": "maybe"}}, "account.allow_short"),
        ({"initial_cash": 0.0}, "initial_cash"),
        ({"initial_cash": -5.0}, "initial_cash"),
        ({"initial_cash": "lots"}, "initial_cash"),
        ({"initial_cash": math.inf}, "initial_cash"),
        ({"periods_per_year": 0}, "periods_per_year"),
        ({"commission": 0.001}, "commission"),
    ],
)
def test_bad_value_raises_with_location(data: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(**data)
    assert str(info.value).startswith(f"{location}:"), str(info.value)
    assert isinstance(info.value, BacktestError) and isinstance(info.value, ValueError)


def test_every_bad_field_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(initial_cash=-1.0, slippage={"rate": -1.0})
    assert "initial_cash" in str(info.value)
    assert "slippage.rate" in str(info.value)


def test_file_errors_carry_the_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("commission:\n  model: percent\n  rate: -1\n")
    with pytest.raises(ConfigError, match=r"^commission\.rate:"):
        BacktestConfig.from_yaml(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        BacktestConfig.from_yaml(path)
    with pytest.raises(ConfigError, match=r"^execution\.bogus:"):
        BacktestConfig.from_json('{"execution": {"bogus": 1}}')
    with pytest.raises(ConfigError, match="mapping"):
        BacktestConfig.from_dict([("initial_cash", 1.0)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "location"),
    [
        (lambda: ExecutionConfig(mode="market"), "mode"),
        (lambda: CommissionConfig(rate=-1.0), "rate"),
        (lambda: SlippageConfig(model="random"), "model"),
        (lambda: AccountConfig(allow_shorts=False), "allow_shorts"),
    ],
    ids=["execution", "commission", "slippage", "account"],
)
def test_section_classes_raise_config_error(make: Any, location: str) -> None:
    """The section models are public: built directly with a bad value they must raise
    ConfigError too (every deliberate error is a BacktestError)."""
    with pytest.raises(ConfigError) as info:
        make()
    assert location in str(info.value)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [(".yaml", "commission: [model: x\n"), (".json", '{"initial_cash": ')],
)
def test_malformed_file_raises_config_error(tmp_path: Path, suffix: str, text: str) -> None:
    """A config file that does not parse is a configuration error, not a raw parser error."""
    path = tmp_path / f"broken{suffix}"
    path.write_text(text)
    load = BacktestConfig.from_yaml if suffix == ".yaml" else BacktestConfig.from_json
    with pytest.raises(ConfigError):
        load(path)


# --------------------------------------------------------------------------- data, strategy, output

FULL: dict[str, Any] = {
    **CUSTOM,
    "risk": [
        {
            "type": "time_exit",
            "assets": ["A"],
            "max_bars": 5,
            "max_duration": "2d",
            "max_sessions": None,
        },
        {
            "type": "regime",
            "assets": None,
            "feature": "vix",
            "threshold": 30.0 + 1 / 3,
            "above": [{"type": "scale_size", "assets": None, "factor": 0.5}],
            "below": [],
        },
    ],
    "data": {
        "prices": "data/bars/**/*.parquet",
        "signals": "preds.parquet",
        "indicators": None,
        "context": "macro.parquet",
        "actions": None,
        "universe": "members.parquet",
        "instruments": {"ES": {"asset_class": "future", "multiplier": 50.0}},
        "fx": "fx.parquet",
        "flows": "flows.parquet",
        "timestamp_column": "ts",
        "asset_column": "ticker",
        "rename": {"Adj Close": "close", "Date": "ts"},
        "start": "2020-01-01",
        "end": "2021-06-30T15:59:00+00:00",
        "available_column": "known_at",
        "signal_timing": "shift",
        "lag": 2,
        "hold": ["context"],
        "chunk_by": "1mo",
        "chunk_rows": None,
        "validation": {
            "sort": "raise",
            "duplicates": "drop",
            "missing": "ffill",
            "missing_signals": "nan",
            "prices": "drop",
            "volume": "clip",
            "ohlc": "clip",
        },
    },
    "strategy": {"name": "my_pkg.strategies:MeanReversion", "params": {"window": 20, "z": 1.5}},
    "output": {"directory": "results/run1", "report": True, "prediction": "score"},
}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_full_config_round_trip_is_lossless(tmp_path: Path, fmt: str) -> None:
    config = BacktestConfig(**FULL)
    assert config.model_dump(mode="json") == FULL
    path = tmp_path / f"config.{fmt}"
    if fmt == "yaml":
        text = config.to_yaml(path)
        loaded = BacktestConfig.from_yaml(path)
        assert loaded.to_yaml() == text
    else:
        path.write_text(config.to_json())
        loaded = BacktestConfig.from_json(path)
        assert loaded.to_json() == config.to_json()
    assert loaded == config and loaded.model_dump() == config.model_dump()


def test_dates_and_durations_survive_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text(
        "data:\n  prices: bars.parquet\n  start: 2020-01-02\n  end: 2020-03-31 16:00:00\n"
        "  lag: 15m\n"
    )
    data = BacktestConfig.from_yaml(path).data
    assert data is not None
    assert data.start == "2020-01-02" and data.end == "2020-03-31T16:00:00" and data.lag == "15m"


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"data": {"chunk_rows": 0}}, "data.chunk_rows"),
        ({"data": {"chunk_rows": 1.5}}, "data.chunk_rows"),
        ({"data": {"chunk_by": "1mo", "chunk_rows": 10}}, "data.chunk_rows"),
        ({"data": {"chunk_by": "monthly"}}, "data.chunk_by"),
        ({"data": {"lag": -1}}, "data.lag"),
        ({"data": {"lag": "soon"}}, "data.lag"),
        ({"data": {"start": "yesterday"}}, "data.start"),
        ({"data": {"signal_timing": "loose"}}, "data.signal_timing"),
        ({"data": {"hold": ["prices"]}}, "data.hold[0]"),
        ({"data": {"validation": {"ohlc": "fix"}}}, "data.validation.ohlc"),
        ({"data": {"validation": {"nulls": "drop"}}}, "data.validation.nulls"),
        ({"data": {"path": "x"}}, "data.path"),
        ({"strategy": {"params": {}}}, "strategy.name"),
        ({"strategy": {"name": "not a path"}}, "strategy.name"),
        ({"strategy": {"name": "signal", "params": {"column": "s"}}}, "strategy.params"),
        ({"strategy": {"name": "top_k", "params": {"score": "s", "k": 0}}}, "strategy.params"),
        (
            {"strategy": {"name": "TopKStrategy", "params": {"scor": "s", "k": 1}}},
            "strategy.params",
        ),
        ({"strategy": {"name": "signal", "kwargs": {}}}, "strategy.kwargs"),
        ({"output": {"report": "yes please"}}, "output.report"),
        ({"output": {"dir": "x"}}, "output.dir"),
        ({"risk": [{"pct": 0.1}]}, "risk[0]"),
        (
            {"risk": [{"type": "stop_loss", "pct": 0.1}, {"type": "stop_loss", "pct": -1}]},
            "risk[1].pct",
        ),
        ({"risk": [{"type": "any_of", "rules": [{"type": "take_profit"}]}]}, "risk[0].rules[0]"),
        ({"risk": [{"type": "stop_loss", "pct": 0.1, "pcts": 1}]}, "risk[0].pcts"),
    ],
)
def test_new_sections_raise_with_location(data: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(**data)
    assert str(info.value).startswith(f"{location}:"), str(info.value)


def test_builtin_strategies_are_built_and_checked() -> None:
    config = BacktestConfig(strategy={"name": "signal", "params": {"column": "s", "weight": 0.1}})
    assert config.strategy is not None
    assert config.strategy.build() == SignalStrategy("s", weight=0.1)
    from ml4t.backtest import TopKStrategy

    top = BacktestConfig(strategy={"name": "TopKStrategy", "params": {"score": "p", "k": 3}})
    assert top.strategy is not None and top.strategy.build() == TopKStrategy("p", k=3)


def test_import_path_strategies(tmp_path: Path) -> None:
    (tmp_path / "cfg_strats.py").write_text(
        "from ml4t.backtest import Strategy\n"
        "class Mine(Strategy):\n"
        "    def __init__(self, k=1):\n        self.k = k\n"
        "    def on_timestamp_batch(self, timestamp, batch, context):\n        pass\n"
        "NotAStrategy = dict\n"
    )
    from ml4t.backtest.config import StrategyConfig

    built = StrategyConfig(name="cfg_strats:Mine", params={"k": 4}).build(search_path=tmp_path)
    assert type(built).__name__ == "Mine" and built.k == 4  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"^strategy\.params: Mine:"):
        StrategyConfig(name="cfg_strats:Mine", params={"j": 4}).build(search_path=tmp_path)
    with pytest.raises(ConfigError, match=r"^strategy\.name: 'cfg_strats:NotAStrategy'"):
        StrategyConfig(name="cfg_strats:NotAStrategy").build(search_path=tmp_path)
    with pytest.raises(ConfigError, match=r"^strategy\.name: cannot import"):
        StrategyConfig(name="no_such_module_xyz:Mine").build()


# --------------------------------------------------------------------------- presets


def test_presets() -> None:
    assert BacktestConfig.presets() == ["backtrader", "default", "realistic", "vectorbt", "zipline"]
    assert BacktestConfig.preset("default") == BacktestConfig()
    realistic = BacktestConfig.preset("realistic")
    assert realistic.execution == ExecutionConfig(
        mode="next_open",
        share_rounding="integer",
        intrabar_path="pessimistic",
        limit_fill="through_fraction",
        limit_through=0.0001,
        max_volume_fraction=0.1,
    )
    assert realistic.commission == CommissionConfig(model="per_share", rate=0.005, minimum=1.0)
    assert realistic.slippage == SlippageConfig(model="percent", rate=0.0005)
    assert BacktestConfig.preset("vectorbt").execution.mode == "same_close"
    assert BacktestConfig.preset("backtrader").execution.share_rounding == "integer"
    zipline = BacktestConfig.preset("zipline")
    assert zipline.commission.rate == 0.001 and zipline.slippage.rate == 0.0005
    from ml4t.backtest.config import PRESET_NOTES, PRESETS

    assert set(PRESET_NOTES) == set(PRESETS)


def test_preset_overrides_merge_per_key() -> None:
    config = BacktestConfig.preset(
        "realistic", commission={"rate": 0.01}, initial_cash=1e6, account=AccountConfig()
    )
    assert config.commission == CommissionConfig(model="per_share", rate=0.01, minimum=1.0)
    assert config.initial_cash == 1e6 and config.execution.share_rounding == "integer"
    with pytest.raises(ConfigError, match=r"^preset: unknown preset 'pandas'"):
        BacktestConfig.preset("pandas")
    with pytest.raises(ConfigError, match=r"^commission\.rate:"):
        BacktestConfig.preset("zipline", commission={"rate": -1})


def test_preset_in_a_file_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("preset: zipline\nslippage: {rate: 0.001}\n")
    config = BacktestConfig.from_yaml(path)
    assert config == BacktestConfig.preset("zipline", slippage={"rate": 0.001})
    assert "preset" not in config.to_yaml()  # the stored config is fully resolved
    with pytest.raises(ConfigError, match=r"^preset:"):
        BacktestConfig.from_dict({"preset": 3})


def test_result_stores_the_resolved_config() -> None:
    config = BacktestConfig.preset(
        "realistic", strategy={"name": "signal", "params": {"column": "signal", "quantity": 5}}
    )
    assert config.strategy is not None
    feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=20, seed=3))
    result = Backtest(feed, config.strategy.build(), config=config).run(progress=False)
    assert result.config == config
    assert BacktestConfig.from_json(result.config.to_json()) == config
