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
    "execution": {"mode": "next_open", "share_rounding": "fractional"},
    "commission": {"model": "none", "rate": 0.0, "amount": 0.0, "minimum": 0.0},
    "slippage": {"model": "none", "rate": 0.0, "amount": 0.0},
    "account": {"allow_short": True},
    "periods_per_year": None,
}

# values chosen to need every digit of a float64 and to exercise every section
CUSTOM: dict[str, Any] = {
    "initial_cash": 0.1 + 0.2,
    "execution": {"mode": "same_close", "share_rounding": "integer"},
    "commission": {"model": "percent", "rate": 1 / 3, "amount": 1e-300, "minimum": 5e-324},
    "slippage": {"model": "fixed", "rate": 2.0 / 7.0, "amount": 1e300},
    "account": {"allow_short": False},
    "periods_per_year": 252.123456789012345,
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
        "execution_mode": "next_open",
        "share_rounding": "fractional",
        "commission_model": "none",
        "commission_rate": 0.0,
        "commission_amount": 0.0,
        "commission_minimum": 0.0,
        "slippage_model": "none",
        "slippage_rate": 0.0,
        "slippage_amount": 0.0,
        "allow_short": True,
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
    assert a.config == config


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
