"""Risk rules: built-in rules that run in Rust, and :class:`RiskRule` for custom Python rules.

The engine applies the rules on every bar; a strategy never calls them. **Position rules**
(stops, targets, trailing stops, time exits, halts that liquidate) are evaluated after each
bar's close on every open position; the levels they set are live from the next bar, where a
stop fills at its level (or at the open when the bar gaps through it) and a target at its level
or better. **Pre-trade rules** (size, count and exposure limits, volatility sizing, halts) check
the opening part of every new order before it is queued: accept, resize, or reject it with the
reason ``risk_limit`` in ``result.rejected_orders``. See ``docs/risk.md`` for the conventions.

Example:
    >>> from ml4t.backtest import Backtest, PolarsDataFeed, SignalStrategy
    >>> from ml4t.backtest.risk import StopLoss, TakeProfit, TrailingStop
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=200, seed=3))
    >>> rules = [StopLoss(pct=0.02), TakeProfit(pct=0.04), TrailingStop(pct=0.03)]
    >>> result = Backtest(feed, SignalStrategy("signal", quantity=10), risk=rules).run()
    >>> set(result.trades["exit_reason"]) <= {
    ...     "signal", "stop_loss", "take_profit", "trailing_stop", "end_of_data"}
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ml4t.backtest._core import OrderContext, PortfolioView, RiskContext, RiskDecision
from ml4t.backtest._imports import ImportFailed, import_module, raised_where
from ml4t.backtest._models import (
    UNION_TAGS,
    UNIT_NS,
    ValidatedModel,
    duration_pieces,
    timedelta_text,
    warn_units,
)
from ml4t.backtest.errors import BacktestError, RiskRuleError

Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]


def _fixed_duration_ns(text: str) -> int | None:
    """A one-unit fixed-length duration (``"5d"``, ``"90m"``) in nanoseconds, else ``None``."""
    pieces = duration_pieces(text)
    if pieces is None or len(pieces) != 1 or pieces[0][1] not in UNIT_NS:
        return None
    count, unit = pieces[0]
    return count * UNIT_NS[unit]


class RiskRule:
    """Base class of custom Python risk rules.

    Override any of:

    - :meth:`evaluate` (one open position; return a :class:`RiskDecision`, a list of them, or
      ``None``), or :meth:`evaluate_batch` (every open position with a bar at this timestamp at
      once: the engine makes **one call per timestamp**);
    - :meth:`check_order` (the opening part of a new order; return ``RiskDecision.allow()``,
      ``.reject()`` or ``.resize(quantity)``).

    Declare the feature columns the rule reads in ``features``; a name the feed lacks raises
    :class:`~ml4t.backtest.errors.RiskRuleError` when the backtest is built. An exception inside
    the rule stops the run with ``RiskRuleError`` (the original exception, with its traceback,
    as ``__cause__``).

    Example:
        >>> class ExitLosers(RiskRule):
        ...     def evaluate(self, context):
        ...         if context.bars_held >= 5 and context.unrealized_pnl < 0:
        ...             return RiskDecision.exit(reason="time_exit")
        ...         return None
    """

    features: ClassVar[Sequence[str]] = ()

    def evaluate(self, context: RiskContext) -> RiskDecision | Sequence[RiskDecision] | None:
        """Decides about one open position (default: nothing)."""
        return None

    def evaluate_batch(
        self, contexts: list[RiskContext]
    ) -> Sequence[RiskDecision | Sequence[RiskDecision] | None]:
        """Decides about every open position with a bar now, in order; one answer each. The
        default calls :meth:`evaluate` per position."""
        return [self.evaluate(context) for context in contexts]

    def check_order(self, order: OrderContext) -> RiskDecision | None:
        """Checks the opening part of a new order (default: allow)."""
        return None

    def evaluates_positions(self) -> bool:
        """Whether the subclass implements a position hook (asked once, before the run)."""
        cls = type(self)
        own_batch = cls.evaluate_batch is not RiskRule.evaluate_batch
        return cls.evaluate is not RiskRule.evaluate or own_batch

    def position_hook(self) -> str:
        """The position hook the subclass wrote, as errors name it: ``evaluate_batch`` when
        overridden, else ``evaluate`` (which the default ``evaluate_batch`` calls)."""
        own_batch = type(self).evaluate_batch is not RiskRule.evaluate_batch
        return "evaluate_batch" if own_batch else "evaluate"

    def checks_orders(self) -> bool:
        """Whether the subclass implements :meth:`check_order`."""
        return type(self).check_order is not RiskRule.check_order


class BuiltinRule(ValidatedModel):
    """A built-in rule: its parameters, checked when it is created (a bad value raises
    :class:`~ml4t.backtest.errors.RiskRuleError` naming the rule and the parameter). Every rule
    takes ``assets``: apply it to these assets only (default: all)."""

    error_type: ClassVar[type[BacktestError]] = RiskRuleError

    type: str
    assets: list[str] | None = Field(default=None, min_length=1)

    @classmethod
    def error_prefix(cls) -> str:
        """A rule built on its own names itself: ``stop_loss.pct: ...``."""
        return str(cls.model_fields["type"].default)

    def spec(self) -> dict[str, Any]:
        """The dict the Rust engine builds the rule from."""
        return self.model_dump(exclude_none=True)

    def feature_names(self) -> list[str]:
        """Feature columns the rule reads (checked against the feed)."""
        feature = getattr(self, "feature", None)
        return [feature] if isinstance(feature, str) else []

    def children(self) -> list[AnyRule]:
        """Nested rules (composites and regimes)."""
        return []


class _DistanceRule(BuiltinRule):
    """A distance from a reference price: ``pct`` (fraction), ``amount`` (price units), or
    ``feature`` * ``multiple`` (an ATR or volatility column in price units, taken at the
    position's first evaluation and fixed for the trade)."""

    max_pct: ClassVar[float | None] = 1.0

    pct: Positive | None = None
    amount: Positive | None = None
    feature: str | None = None
    multiple: Positive | None = None

    @model_validator(mode="after")
    def _one_distance(self) -> _DistanceRule:
        given = [n for n in ("pct", "amount", "feature") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of pct, amount or feature (with multiple)")
        if self.multiple is not None and self.feature is None:
            raise ValueError("multiple applies to feature distances only")
        if self.pct is not None and self.max_pct is not None and self.pct >= self.max_pct:
            raise ValueError(f"pct must be < {self.max_pct}, got {self.pct}")
        return self


class StopLoss(_DistanceRule):
    """Exits when the price moves the distance against the position from its basis price (the
    fill, or the signal bar's close with ``execution.stop_basis='signal_close'``). Trades record
    ``stop_loss``. ``StopLoss(pct=0.02)``, ``StopLoss(feature="atr", multiple=2)``."""

    type: Literal["stop_loss"] = "stop_loss"


class TakeProfit(_DistanceRule):
    """Exits (limit-like: at the level or a better open) when the price moves the distance in
    the position's favour. Trades record ``take_profit``."""

    max_pct: ClassVar[float | None] = None
    type: Literal["take_profit"] = "take_profit"


class TrailingStop(_DistanceRule):
    """A stop trailing the best price since entry by the distance. ``mark``: the water mark
    follows ``close``\\ s or bar ``extreme``\\ s; ``update``: ``lagged`` (the level moves at each
    close, for the next bar) or ``intrabar`` (it also follows the bar's path, so a new high can
    lift the stop before a later low in the same bar; needs ``mark='extreme'``). Trades record
    ``trailing_stop``."""

    type: Literal["trailing_stop"] = "trailing_stop"
    mark: Literal["close", "extreme"] = "close"
    update: Literal["lagged", "intrabar"] = "lagged"

    @field_validator("update")
    @classmethod
    def _intrabar_needs_extremes(cls, value: str, info: ValidationInfo) -> str:
        if value == "intrabar" and info.data.get("mark") == "close":
            raise ValueError("'intrabar' follows the bar's extremes: use mark='extreme'")
        return value


class TimeExit(BuiltinRule):
    """Exits a position held ``max_bars`` of its asset's bars, for ``max_duration``
    (``"5d"``, ``"90m"`` or a ``timedelta``), or ``max_sessions`` trading sessions (the
    sessions begun since the entry's; needs a calendar: ``BacktestConfig(calendar=...)`` or
    ``Backtest(..., sessions=...)``), at the next fill opportunity. Trades record
    ``time_exit``."""

    type: Literal["time_exit"] = "time_exit"
    max_bars: int | None = Field(default=None, ge=1)
    max_duration: str | None = None
    max_sessions: int | None = Field(default=None, ge=1)

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, timedelta):
            if value <= timedelta(0):
                raise ValueError(f"must be positive, got {value}")
            return timedelta_text(value)
        if isinstance(value, str) and _fixed_duration_ns(value) is None:
            raise ValueError(f"'{value}' is not a duration like '5d', '90m', '30s'")
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> TimeExit:
        if self.max_bars is None and self.max_duration is None and self.max_sessions is None:
            raise ValueError("give max_bars, max_duration or max_sessions")
        return self

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        if self.max_duration is not None:
            ns = _fixed_duration_ns(out.pop("max_duration"))
            assert ns is not None
            out["max_duration_ns"] = ns
        return out


class BreakevenStop(BuiltinRule):
    """Once the trade's best return (MFE, at closes) reaches ``trigger``, a stop at the entry
    price moved ``offset`` in the position's favour. Trades record ``stop_loss``."""

    type: Literal["breakeven_stop"] = "breakeven_stop"
    trigger: Positive
    offset: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @field_validator("offset")
    @classmethod
    def _offset_below_trigger(cls, value: float, info: ValidationInfo) -> float:
        trigger = info.data.get("trigger")
        if trigger is not None and value >= trigger:
            raise ValueError(f"must be < trigger ({trigger}), got {value}")
        return value


class ScaledExit(BuiltinRule):
    """Partial profit-taking: ``levels`` of ``(gain, fraction)``, gains increasing from the
    basis price, each exiting that fraction of the position then held. Trades record
    ``take_profit``. ``ScaledExit(levels=[(0.03, 0.5), (0.06, 1.0)])``."""

    type: Literal["scaled_exit"] = "scaled_exit"
    levels: list[tuple[Positive, Fraction]] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _increasing(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        gains = [gain for gain, _ in value]
        if any(b <= a for a, b in itertools.pairwise(gains)):
            raise ValueError(f"gains must increase, got {gains}")
        return value


class VolatilityScaledSizing(BuiltinRule):
    """Sizes each entry to risk ``risk_fraction`` of equity over ``multiple`` * the volatility
    ``feature`` (in price units, an ATR; or, with ``returns=True``, a fraction of the price):
    shares = risk_fraction * equity / (multiple * volatility). An asset without a finite,
    positive volatility at the decision bar is rejected (``risk_limit``)."""

    type: Literal["volatility_scaled_sizing"] = "volatility_scaled_sizing"
    feature: str
    risk_fraction: Positive
    multiple: Positive = 1.0
    returns: bool = False


class MaxPositionSize(BuiltinRule):
    """Caps each position at ``shares``, a ``notional`` value, or ``pct_equity`` of equity;
    larger orders are cut to fit (the cut part is a ``risk_limit`` rejection)."""

    type: Literal["max_position_size"] = "max_position_size"
    shares: Positive | None = None
    notional: Positive | None = None
    pct_equity: Positive | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> MaxPositionSize:
        given = [n for n in ("shares", "notional", "pct_equity") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of shares, notional or pct_equity")
        if self.pct_equity is not None and self.pct_equity > 1:
            warn_units(
                f"max_position_size.pct_equity={self.pct_equity:g} lets one position be "
                f"{self.pct_equity:.0%} of equity; pct_equity is a fraction (0.25 = 25%)"
            )
        return self


class MaxPositions(BuiltinRule):
    """At most ``max`` positions open at once; an order that would open another is rejected."""

    type: Literal["max_positions"] = "max_positions"
    max: int = Field(ge=1)


class MaxGrossExposure(BuiltinRule):
    """Gross exposure (sum of |market values|) at most ``max`` * equity."""

    type: Literal["max_gross_exposure"] = "max_gross_exposure"
    max: Positive


class MaxNetExposure(BuiltinRule):
    """|Net exposure| at most ``max`` * equity (orders toward zero are never cut)."""

    type: Literal["max_net_exposure"] = "max_net_exposure"
    max: Positive


class MaxDrawdownHalt(BuiltinRule):
    """Once the drawdown from the equity peak reaches ``max_drawdown`` at a close, rejects
    every new entry for the rest of the run; with ``liquidate``, also exits every position
    (trades record ``risk_limit``)."""

    type: Literal["max_drawdown_halt"] = "max_drawdown_halt"
    max_drawdown: Fraction
    liquidate: bool = False


class DailyLossLimit(BuiltinRule):
    """Once equity has lost ``max_loss`` of the UTC day's starting equity, rejects new entries
    until the next day; with ``liquidate``, also exits every position."""

    type: Literal["daily_loss_limit"] = "daily_loss_limit"
    max_loss: Fraction
    liquidate: bool = False


class ScaleSize(BuiltinRule):
    """Multiplies the opening part of every order by ``factor`` (in a :class:`RegimeRule`:
    halve sizes when volatility is high)."""

    type: Literal["scale_size"] = "scale_size"
    factor: Positive


class _Composite(BuiltinRule):
    """Rules given positionally or as ``rules=[...]``."""

    rules: list[AnyRule] = Field(min_length=1)

    def __init__(self, *rules: AnyRule, **data: Any) -> None:
        if rules:
            data["rules"] = list(rules)
        super().__init__(**data)

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        out["rules"] = [rule_spec(rule) for rule in self.rules]
        return out

    def children(self) -> list[AnyRule]:
        return list(self.rules)


class RuleChain(_Composite):
    """The first rule (in order) that triggers decides; the rest are not consulted."""

    type: Literal["rule_chain"] = "rule_chain"


class AnyOf(_Composite):
    """Every triggered rule counts (the tightest stop, the nearest target, the largest exit);
    orders pass each rule in turn. The top-level rule list behaves the same way."""

    type: Literal["any_of"] = "any_of"


class AllOf(_Composite):
    """Acts only when every rule triggers, with the first rule's decision."""

    type: Literal["all_of"] = "all_of"


class RegimeRule(BuiltinRule):
    """Picks a rule set by the market-wide ``feature`` (a context column such as the VIX) at
    each timestamp: ``above`` while it is ``>= threshold``, ``below`` otherwise (or missing).

    Example: ``RegimeRule(feature="vix", threshold=30, above=[ScaleSize(factor=0.5),
    StopLoss(pct=0.01)], below=[StopLoss(pct=0.02)])``.
    """

    type: Literal["regime"] = "regime"
    feature: str
    threshold: float = Field(allow_inf_nan=False)
    above: list[AnyRule] = Field(default_factory=list)
    below: list[AnyRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_rules(self) -> RegimeRule:
        if not self.above and not self.below:
            raise ValueError("give rules above or below the threshold")
        return self

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        out["above"] = [rule_spec(rule) for rule in self.above]
        out["below"] = [rule_spec(rule) for rule in self.below]
        return out

    def children(self) -> list[AnyRule]:
        return [*self.above, *self.below]


class CustomRule(BuiltinRule):
    """A :class:`RiskRule` subclass named by import path (``package.module:Class``), built with
    ``params``; the config-file form of a custom rule."""

    type: Literal["custom"] = "custom"
    path: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self, search_path: str | Path | None = None) -> RiskRule:
        """Imports and instantiates the rule.

        Raises:
            RiskRuleError: the import fails, the class is not a ``RiskRule`` subclass or the
                parameters do not fit.
        """
        module_name, _, class_name = self.path.partition(":")
        try:
            module = import_module(module_name, search_path)
        except ImportFailed as err:
            raise RiskRuleError(f"custom.path: {err}") from err.__cause__
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, RiskRule)):
            raise RiskRuleError(f"custom.path: '{self.path}' is not a RiskRule subclass")
        try:
            return cls(**self.params)
        except TypeError as err:
            raise RiskRuleError(f"custom.params: {class_name}: {err}") from None
        except Exception as err:
            raise RiskRuleError(
                f"custom.params: construction_failed: {class_name}(**params) "
                f"({raised_where(err)}) raised {type(err).__name__}: {err}"
            ) from err


AnyRule = Annotated[
    StopLoss
    | TakeProfit
    | TrailingStop
    | TimeExit
    | BreakevenStop
    | ScaledExit
    | VolatilityScaledSizing
    | MaxPositionSize
    | MaxPositions
    | MaxGrossExposure
    | MaxNetExposure
    | MaxDrawdownHalt
    | DailyLossLimit
    | ScaleSize
    | RuleChain
    | AnyOf
    | AllOf
    | RegimeRule
    | CustomRule,
    Field(discriminator="type"),
]
"""Any built-in rule, as a config file names it by ``type``."""

RULE_TYPES: frozenset[str] = frozenset(
    cls.model_fields["type"].default for cls in get_args(get_args(AnyRule)[0])
)
"""The ``type`` names of the built-in rules."""

for _model in (RuleChain, AnyOf, AllOf, RegimeRule):
    _model.model_rebuild()
UNION_TAGS.update(RULE_TYPES)


def rule_spec(rule: BuiltinRule | RiskRule, search_path: str | Path | None = None) -> Any:
    """What the engine receives for ``rule``: a spec dict, or the Python rule itself."""
    if isinstance(rule, CustomRule):
        return rule.build(search_path)
    if isinstance(rule, BuiltinRule):
        return rule.spec()
    return rule


def check_rules(
    rules: Sequence[BuiltinRule | RiskRule],
    feature_columns: Sequence[str],
    assets: Sequence[str],
    where: str = "risk",
) -> None:
    """Checks ``rules`` against a feed before a run: every feature and asset they name exists.

    Raises:
        RiskRuleError: naming the rule (``risk[1].stop_loss``), the feature or asset, and what
            the feed has.
    """
    known = set(feature_columns)
    names = set(assets)

    def visit(rule: BuiltinRule | RiskRule, location: str) -> None:
        if isinstance(rule, RiskRule):
            needed = list(rule.features)
            label = f"{location}.{type(rule).__name__}"
        elif isinstance(rule, BuiltinRule):
            needed = rule.feature_names()
            label = f"{location}.{rule.type}"
            for asset in rule.assets or []:
                if asset not in names:
                    raise RiskRuleError(
                        f"{label}.assets: unknown asset '{asset}' (not in the feed)"
                    )
            for i, child in enumerate(rule.children()):
                visit(child, f"{label}[{i}]")
        else:
            raise RiskRuleError(
                f"{location}: expected a built-in rule or a RiskRule subclass instance, got "
                f"{type(rule).__name__}"
            )
        for feature in needed:
            if feature not in known:
                raise RiskRuleError(
                    f"{label}.feature: the feed has no feature column '{feature}' "
                    f"(features: {sorted(known)})"
                )

    for i, rule in enumerate(rules):
        visit(rule, f"{where}[{i}]")


__all__ = [
    "AllOf",
    "AnyOf",
    "AnyRule",
    "BreakevenStop",
    "BuiltinRule",
    "CustomRule",
    "DailyLossLimit",
    "MaxDrawdownHalt",
    "MaxGrossExposure",
    "MaxNetExposure",
    "MaxPositionSize",
    "MaxPositions",
    "OrderContext",
    "PortfolioView",
    "RegimeRule",
    "RiskContext",
    "RiskDecision",
    "RiskRule",
    "RuleChain",
    "ScaleSize",
    "ScaledExit",
    "StopLoss",
    "TakeProfit",
    "TimeExit",
    "TrailingStop",
    "VolatilityScaledSizing",
    "check_rules",
    "rule_spec",
]
