"""Config mistakes that used to pass silently: a cost rate with no model (charged nothing) and
misspelt keys (now with the nearest field as a hint)."""

from __future__ import annotations

import re
import warnings

import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, RiskRule, Strategy
from ml4t.backtest.errors import ConfigError, RiskRuleError, UnitsWarning
from ml4t.backtest.risk import MaxPositionSize, StopLoss
from ml4t.backtest.synthetic import make_bars


@pytest.mark.parametrize(
    ("section", "values", "given"),
    [
        ("commission", {"rate": 0.001}, "rate"),
        ("commission", {"amount": 1.0}, "amount"),
        ("commission", {"model": "none", "rate": 0.001, "amount": 1.0}, "rate and amount"),
        ("slippage", {"rate": 0.0005}, "rate"),
        ("slippage", {"bps": 2.0}, "bps"),
    ],
)
def test_a_cost_rate_without_a_model_is_refused(
    section: str, values: dict[str, object], given: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{section}\.model: required: {given} given") as info:
        BacktestConfig(**{section: values})
    assert "nothing would be charged" in str(info.value)
    with pytest.raises(ConfigError, match=rf"^{section}\.model: required: "):
        BacktestConfig.from_dict({section: values})


def test_cost_sections_with_a_model_or_zero_rates_still_load() -> None:
    config = BacktestConfig(commission={"model": "percent", "rate": 0.001}, slippage={"bps": 0})
    assert config.commission.rate == 0.001 and config.slippage.model == "none"
    assert BacktestConfig(commission={"minimum": 1.0}).commission.model == "none"
    assert BacktestConfig.from_dict(config.model_dump(mode="json")) == config


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        ({"comission": {"model": "percent"}}, "comission: .*did you mean 'commission'"),
        ({"commission": {"model": "percent", "rat": 0.1}}, "commission.rat: .*'rate'"),
        ({"account": {"allow_shorts": False}}, "account.allow_shorts: .*'allow_short'"),
        ({"execution": {"mdoe": "same_close"}}, "execution.mdoe: .*'mode'"),
        ({"risk": [{"type": "stop_loss", "pctt": 0.1}]}, r"risk\[0\]\.pctt: .*'pct'"),
    ],
)
def test_a_misspelt_key_suggests_the_nearest_field(data: dict[str, object], hint: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{hint}\?\)"):
        BacktestConfig(**data)


def test_no_hint_when_nothing_is_close() -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(foo=1)
    assert "did you mean" not in str(info.value)


def test_risk_rule_keyword_typo_suggests_the_field() -> None:
    with pytest.raises(RiskRuleError, match=r"^stop_loss\.pcct: .*did you mean 'pct'\?"):
        StopLoss(pcct=0.1)  # type: ignore[call-arg]


# ------------------------------------------------------------------- percent vs fraction


def test_a_ten_percent_commission_warns_with_its_value() -> None:
    with pytest.warns(UnitsWarning, match=r"commission\.rate=0\.1 .* charges 10% "):
        BacktestConfig(commission={"model": "percent", "rate": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BacktestConfig(commission={"model": "percent", "rate": 0.001})
        BacktestConfig(commission={"model": "per_share", "rate": 0.5})


def test_a_position_cap_above_all_equity_warns() -> None:
    with pytest.warns(UnitsWarning, match=r"pct_equity=25 .* 2500% of equity"):
        MaxPositionSize(pct_equity=25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaxPositionSize(pct_equity=0.25)


def test_positional_rule_parameters_say_the_keyword() -> None:
    with pytest.raises(RiskRuleError, match=r"^stop_loss: positional: .*StopLoss\(pct=0\.08\)\?"):
        StopLoss(0.08)  # type: ignore[misc]
    assert StopLoss(pct=0.08).pct == 0.08


# ------------------------------------------------------------------------- async callbacks


class AsyncBatch(Strategy):
    async def on_timestamp_batch(  # type: ignore[override]
        self, timestamp: object, batch: object, context: object
    ) -> None:
        pass


class AsyncFill(Strategy):
    def on_timestamp_batch(self, timestamp: object, batch: object, context: object) -> None:
        pass

    async def on_fill(self, fill: object, context: object) -> None:  # type: ignore[override]
        pass


class Plain(Strategy):
    def on_timestamp_batch(self, timestamp: object, batch: object, context: object) -> None:
        pass


class AsyncRule(RiskRule):
    async def evaluate(self, context: object) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("strategy", "risk", "location"),
    [
        (AsyncBatch(), [], "strategy.on_timestamp_batch"),
        (AsyncFill(), [], "strategy.on_fill"),
        (Plain(), [AsyncRule()], "risk.AsyncRule.evaluate"),
    ],
)
def test_async_callbacks_are_refused_at_backtest(
    strategy: Strategy, risk: list[RiskRule], location: str
) -> None:
    feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=5, seed=1))
    with pytest.raises(ConfigError, match=rf"^{re.escape(location)}: async: "):
        Backtest(feed, strategy, risk=risk)
