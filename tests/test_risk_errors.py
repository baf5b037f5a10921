"""Risk rule errors: bad parameters, features or assets the feed lacks, config locations, Python
rules that raise or answer with the wrong type, and bad ``RiskDecision`` values.

Built-in rules check their parameters when they are created (``RiskRuleError`` naming the rule
and the parameter); features and assets are checked by ``Backtest(...)`` before the run
(``RiskRuleError`` for ``risk=[...]``, ``ConfigError`` for the rules of ``config.risk``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    RiskDecision,
    RiskRule,
    SignalStrategy,
    Strategy,
)
from ml4t.backtest.errors import BacktestError, ConfigError, RiskRuleError
from ml4t.backtest.risk import (
    AnyOf,
    BreakevenStop,
    CustomRule,
    DailyLossLimit,
    MaxDrawdownHalt,
    MaxGrossExposure,
    MaxPositions,
    MaxPositionSize,
    RegimeRule,
    RuleChain,
    ScaledExit,
    ScaleSize,
    StopLoss,
    TakeProfit,
    TimeExit,
    TrailingStop,
    VolatilityScaledSizing,
)
from ml4t.backtest.synthetic import make_bars

# ------------------------------------------------------------------------------------------------
# bad parameters, at construction
# ------------------------------------------------------------------------------------------------

BAD_PARAMETERS: list[tuple[str, Callable[[], Any], tuple[str, ...]]] = [
    ("negative pct", lambda: StopLoss(pct=-0.02), ("stop_loss.pct",)),
    ("zero pct", lambda: TakeProfit(pct=0.0), ("take_profit.pct",)),
    ("nan pct", lambda: TrailingStop(pct=float("nan")), ("trailing_stop.pct",)),
    ("stop pct of 100%", lambda: StopLoss(pct=1.0), ("stop_loss", "pct")),
    ("zero multiple", lambda: StopLoss(feature="atr", multiple=0), ("stop_loss.multiple",)),
    ("both pct and amount", lambda: StopLoss(pct=0.02, amount=1.0), ("stop_loss", "pct", "amount")),
    ("no distance", lambda: TakeProfit(), ("take_profit", "pct")),
    ("multiple without feature", lambda: StopLoss(pct=0.02, multiple=2), ("stop_loss", "multiple")),
    (
        "gains not increasing",
        lambda: ScaledExit(levels=[(0.05, 0.5), (0.03, 1.0)]),
        ("scaled_exit.levels", "increase"),
    ),
    ("fraction above 1", lambda: ScaledExit(levels=[(0.05, 1.5)]), ("scaled_exit.levels",)),
    ("no levels", lambda: ScaledExit(levels=[]), ("scaled_exit.levels",)),
    (
        "offset >= trigger",
        lambda: BreakevenStop(trigger=0.02, offset=0.02),
        ("breakeven_stop", "offset", "trigger"),
    ),
    (
        "intrabar with close mark",
        lambda: TrailingStop(pct=0.02, mark="close", update="intrabar"),
        ("trailing_stop", "intrabar", "mark"),
    ),
    ("unknown mark", lambda: TrailingStop(pct=0.02, mark="high"), ("trailing_stop.mark",)),
    ("max positions 0", lambda: MaxPositions(max=0), ("max_positions.max",)),
    ("two size limits", lambda: MaxPositionSize(shares=1, notional=1e3), ("max_position_size",)),
    ("negative shares", lambda: MaxPositionSize(shares=-5), ("max_position_size.shares",)),
    ("zero exposure", lambda: MaxGrossExposure(max=0), ("max_gross_exposure.max",)),
    (
        "drawdown above 1",
        lambda: MaxDrawdownHalt(max_drawdown=1.5),
        ("max_drawdown_halt.max_drawdown",),
    ),
    ("zero daily loss", lambda: DailyLossLimit(max_loss=0), ("daily_loss_limit.max_loss",)),
    ("zero factor", lambda: ScaleSize(factor=0), ("scale_size.factor",)),
    (
        "zero risk fraction",
        lambda: VolatilityScaledSizing(feature="atr", risk_fraction=0),
        ("volatility_scaled_sizing.risk_fraction",),
    ),
    ("no time limit", lambda: TimeExit(), ("time_exit", "max_bars")),
    ("zero max bars", lambda: TimeExit(max_bars=0), ("time_exit.max_bars",)),
    ("bad duration", lambda: TimeExit(max_duration="5 days"), ("time_exit.max_duration",)),
    ("zero duration", lambda: TimeExit(max_duration=timedelta(0)), ("time_exit.max_duration",)),
    ("regime without rules", lambda: RegimeRule(feature="vix", threshold=1), ("regime",)),
    ("empty assets", lambda: StopLoss(pct=0.02, assets=[]), ("stop_loss.assets",)),
    ("unknown parameter", lambda: StopLoss(pct=0.02, stop=0.1), ("stop_loss.stop",)),
    ("empty composite", lambda: AnyOf(), ("any_of.rules",)),
    ("bad custom path", lambda: CustomRule(path="no-colon"), ("custom.path",)),
]


@pytest.mark.parametrize(
    ("make", "expected"),
    [pytest.param(make, expected, id=name) for name, make, expected in BAD_PARAMETERS],
)
def test_bad_parameters_raise_at_construction(
    make: Callable[[], Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(RiskRuleError) as info:
        make()
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert isinstance(info.value, BacktestError)


def test_a_bad_nested_rule_is_named() -> None:
    with pytest.raises(RiskRuleError, match=r"^stop_loss\.pct"):
        RuleChain(StopLoss(pct=-1.0))
    with pytest.raises(RiskRuleError, match=r"^regime\.above\[0\]\.pct"):
        RegimeRule(feature="vix", threshold=30, above=[{"type": "stop_loss", "pct": -1.0}])


def test_good_parameters_build() -> None:
    rules = [
        StopLoss(feature="atr", multiple=2),
        TrailingStop(amount=1.5, mark="extreme", update="intrabar"),
        BreakevenStop(trigger=0.02, offset=0.005),
        ScaledExit(levels=[(0.03, 0.5), (0.06, 1.0)]),
        TimeExit(max_duration=timedelta(hours=2)),
        RuleChain(StopLoss(pct=0.02), TakeProfit(pct=0.05)),
    ]
    assert [r.type for r in rules] == [
        "stop_loss",
        "trailing_stop",
        "breakeven_stop",
        "scaled_exit",
        "time_exit",
        "rule_chain",
    ]
    # a timedelta becomes an engine duration in nanoseconds
    assert rules[4].spec()["max_duration_ns"] == 2 * 3_600 * 10**9


# ------------------------------------------------------------------------------------------------
# features and assets the feed lacks: before the run
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feed() -> PolarsDataFeed:
    return PolarsDataFeed(make_bars(n_assets=2, n_bars=20, seed=1))


STRATEGY = SignalStrategy("signal", quantity=10)


class NeedsAtr(RiskRule):
    features = ("atr",)

    def evaluate(self, context: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("rule", "location"),
    [
        (StopLoss(feature="atr", multiple=2), "risk[0].stop_loss.feature"),
        (
            VolatilityScaledSizing(feature="atr", risk_fraction=0.01),
            "risk[0].volatility_scaled_sizing",
        ),
        (RegimeRule(feature="vix", threshold=30, below=[ScaleSize(factor=0.5)]), "risk[0].regime"),
        (AnyOf(StopLoss(pct=0.1), TrailingStop(feature="atr", multiple=3)), "risk[0].any_of[1]"),
        (NeedsAtr(), "risk[0].NeedsAtr"),
    ],
)
def test_missing_feature_raises_in_backtest_before_run(
    feed: PolarsDataFeed, rule: Any, location: str
) -> None:
    with pytest.raises(RiskRuleError, match="has no feature column") as info:
        Backtest(feed, STRATEGY, risk=[rule])
    message = str(info.value)
    assert message.startswith(location), message
    assert "'atr'" in message or "'vix'" in message


def test_missing_feature_in_config_risk_is_a_config_error(feed: PolarsDataFeed) -> None:
    config = BacktestConfig(risk=[{"type": "stop_loss", "feature": "atr", "multiple": 2}])
    with pytest.raises(ConfigError, match=r"^risk\[0\]\.stop_loss\.feature: .*'atr'"):
        Backtest(feed, STRATEGY, config=config)


def test_unknown_asset_in_assets(feed: PolarsDataFeed) -> None:
    with pytest.raises(RiskRuleError, match=r"^risk\[1\]\.take_profit\.assets: .*'ZZZ'"):
        Backtest(feed, STRATEGY, risk=[StopLoss(pct=0.1), TakeProfit(pct=0.1, assets=["ZZZ"])])
    config = BacktestConfig(risk=[{"type": "stop_loss", "pct": 0.1, "assets": ["A0000", "ZZZ"]}])
    with pytest.raises(ConfigError, match=r"^risk\[0\]\.stop_loss\.assets: .*'ZZZ'"):
        Backtest(feed, STRATEGY, config=config)


def test_not_a_rule(feed: PolarsDataFeed) -> None:
    with pytest.raises(RiskRuleError, match=r"^risk\[0\]: expected .* got str"):
        Backtest(feed, STRATEGY, risk=["stop_loss"])  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------------
# config locations
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "pattern"),
    [
        (
            [
                {"type": "stop_loss", "pct": 0.02},
                {"type": "take_profit", "pct": 0.04},
                {"type": "stop_loss", "pct": -0.02},
            ],
            r"^risk\[2\]\.pct: ",
        ),
        ([{"type": "trailing_stop"}], r"^risk\[0\]: give exactly one of pct"),
        ([{"type": "stop_losss", "pct": 0.02}], r"^risk\[0\]: .*'stop_losss'"),
        ([{"pct": 0.02}], r"^risk\[0\]"),
        ([{"type": "max_positions", "max": 0}], r"^risk\[0\]\.max: "),
        (
            [{"type": "any_of", "rules": [{"type": "time_exit", "max_bars": 0}]}],
            r"^risk\[0\]\.rules\[0\]\.max_bars: ",
        ),
        ([{"type": "stop_loss", "pct": 0.02, "extra": 1}], r"^risk\[0\]\.extra: "),
    ],
)
def test_config_errors_name_the_location(risk: list[dict[str, Any]], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        BacktestConfig(risk=risk)


def test_yaml_config_error_names_the_location(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "risk:\n  - type: stop_loss\n    pct: 0.02\n  - type: take_profit\n    pct: -1\n"
    )
    with pytest.raises(ConfigError, match=r"^risk\[1\]\.pct: "):
        BacktestConfig.from_yaml(path)


def test_config_custom_rule_import_errors(feed: PolarsDataFeed) -> None:
    config = BacktestConfig(risk=[{"type": "custom", "path": "no_such_module_xyz:Rule"}])
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        Backtest(feed, STRATEGY, config=config)
    config = BacktestConfig(risk=[{"type": "custom", "path": "ml4t.backtest:Backtest"}])
    with pytest.raises(ConfigError, match="is not a RiskRule subclass"):
        Backtest(feed, STRATEGY, config=config)


# ------------------------------------------------------------------------------------------------
# Python rules that raise or answer wrongly: during the run
# ------------------------------------------------------------------------------------------------


class RaisesInEvaluate(RiskRule):
    def evaluate(self, context: Any) -> None:
        raise ZeroDivisionError("boom in evaluate")


class RaisesInBatch(RiskRule):
    def evaluate_batch(self, contexts: list[Any]) -> list[Any]:
        raise KeyError("boom in batch")


class RaisesInCheck(RiskRule):
    def check_order(self, order: Any) -> None:
        raise ValueError("boom in check_order")


class BuyEveryBar(Strategy):
    """A Python strategy (the engine's other entry point), per bar: buys 1 share each bar."""

    def on_market_data(self, event: Any, context: Any) -> None:
        context.submit_order(event.asset, 1.0)


@pytest.mark.parametrize("python_strategy", [False, True], ids=["builtin", "python"])
@pytest.mark.parametrize(
    ("rule", "error", "method"),
    [
        (RaisesInEvaluate(), ZeroDivisionError, "evaluate"),
        (RaisesInBatch(), KeyError, "evaluate_batch"),
        (RaisesInCheck(), ValueError, "check_order"),
    ],
)
def test_exception_in_a_python_rule_is_chained(
    feed: PolarsDataFeed,
    rule: RiskRule,
    error: type[Exception],
    method: str,
    python_strategy: bool,
) -> None:
    strategy = BuyEveryBar() if python_strategy else STRATEGY
    with pytest.raises(RiskRuleError) as info:
        Backtest(feed, strategy, risk=[rule]).run(progress=False)
    message = str(info.value)
    assert type(rule).__name__ in message
    assert f"{type(rule).__name__}.{method}:" in message  # the method the user wrote
    assert isinstance(info.value.__cause__, error)
    assert "boom" in str(info.value.__cause__)
    assert info.value.__cause__.__traceback__ is not None


class ReturnsFive(RiskRule):
    def evaluate(self, context: Any) -> Any:
        return 5


class ReturnsFiveOnOrders(RiskRule):
    def check_order(self, order: Any) -> Any:
        return 5


class ReturnsAStopOnOrders(RiskRule):
    def check_order(self, order: Any) -> Any:
        return RiskDecision.stop(1.0)


class ReturnsADict(RiskRule):
    def evaluate(self, context: Any) -> Any:
        return {"stop": 1.0}


class ReturnsAListWithANumber(RiskRule):
    def evaluate(self, context: Any) -> Any:
        return [RiskDecision.stop(1.0), 5]


class BatchTooShort(RiskRule):
    def evaluate_batch(self, contexts: list[Any]) -> list[Any]:
        return []


class BatchNotAList(RiskRule):
    def evaluate_batch(self, contexts: list[Any]) -> Any:
        return None


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        (ReturnsFive(), "must return a RiskDecision, a list of them or None, got <class 'int'>"),
        (ReturnsFiveOnOrders(), "check_order must return a RiskDecision, got <class 'int'>"),
        (ReturnsAStopOnOrders(), "check_order must return allow, reject or resize"),
        (ReturnsADict(), "must return a RiskDecision, a list of them or None, got <class 'dict'>"),
        (ReturnsAListWithANumber(), "got <class 'int'>"),
        (BatchTooShort(), r"returned 0 answers for \d+ positions"),
        (BatchNotAList(), "evaluate_batch must return a list"),
    ],
)
def test_wrong_return_types(feed: PolarsDataFeed, rule: RiskRule, pattern: str) -> None:
    with pytest.raises(RiskRuleError, match=pattern) as info:
        Backtest(feed, STRATEGY, risk=[rule]).run(progress=False)
    assert type(rule).__name__ in str(info.value)


# A string is a Python sequence, and its items are strings again: an answer of "stop" (or a
# list holding one) is walked as a sequence of sequences forever instead of being refused.
STRING_ANSWER = textwrap.dedent(
    """
    from ml4t.backtest import Backtest, PolarsDataFeed, RiskRule, SignalStrategy
    from ml4t.backtest.errors import RiskRuleError
    from ml4t.backtest.synthetic import make_bars

    class ReturnsAString(RiskRule):
        def evaluate(self, context):
            return "stop"

    feed = PolarsDataFeed(make_bars(n_assets=1, n_bars=10, seed=1))
    try:
        Backtest(feed, SignalStrategy("signal", quantity=10), risk=[ReturnsAString()]).run(
            progress=False
        )
    except RiskRuleError as err:
        print("RiskRuleError:", err)
    """
)


def test_returning_a_string_raises_risk_rule_error_instead_of_crashing() -> None:
    # in a subprocess: the bug kills the interpreter
    done = subprocess.run(
        [sys.executable, "-c", STRING_ANSWER], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"crashed with return code {done.returncode}: {done.stderr}"
    assert "RiskRuleError:" in done.stdout
    assert "str" in done.stdout  # names what the rule returned


# ------------------------------------------------------------------------------------------------
# RiskDecision values
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: RiskDecision.exit(fraction=2), r"RiskDecision\.fraction: must be in \(0, 1\]"),
        (lambda: RiskDecision.exit(fraction=0), r"RiskDecision\.fraction"),
        (lambda: RiskDecision.stop(level=-1), r"RiskDecision\.level: must be finite and > 0"),
        (lambda: RiskDecision.stop(level=float("nan")), r"RiskDecision\.level"),
        (lambda: RiskDecision.target(level=0.0), r"RiskDecision\.level"),
        (lambda: RiskDecision.target(level=100.0, fraction=1.5), r"RiskDecision\.fraction"),
        (lambda: RiskDecision.resize(-1), r"RiskDecision\.quantity: must be finite and >= 0"),
        (lambda: RiskDecision.exit(reason="because"), r"RiskDecision\.reason: .*'because'"),
        (lambda: RiskDecision.stop(100.0, reason="signal"), r"RiskDecision\.reason"),
        (lambda: RiskDecision.target(100.0, reason="end_of_data"), r"RiskDecision\.reason"),
    ],
)
def test_bad_risk_decisions(make: Callable[[], Any], pattern: str) -> None:
    with pytest.raises(RiskRuleError, match=pattern):
        make()


def test_good_risk_decisions() -> None:
    stop = RiskDecision.stop(95.0, reason="trailing_stop")
    assert (stop.kind, stop.level, stop.reason) == ("stop", 95.0, "trailing_stop")
    target = RiskDecision.target(110.0, fraction=0.5)
    assert (target.kind, target.level, target.fraction, target.reason) == (
        "target",
        110.0,
        0.5,
        "take_profit",
    )
    exit_ = RiskDecision.exit()
    assert (exit_.kind, exit_.fraction, exit_.reason) == ("exit", 1.0, "risk_limit")
    assert RiskDecision.resize(0).quantity == 0.0
    assert RiskDecision.reject("too big").note == "too big"
    assert RiskDecision.allow().kind == "allow"
    assert RiskDecision.stop(95.0) == RiskDecision.stop(95.0)
    with pytest.raises(TypeError):
        RiskDecision()  # type: ignore[call-arg]
