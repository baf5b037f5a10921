"""Backtest configuration: a pydantic model, loadable from and savable to YAML or JSON.

Every section is a :class:`~ml4t.backtest._models.ValidatedModel`: frozen, and an invalid value
raises :class:`~ml4t.backtest.errors.ConfigError` with its location.

Example:
    >>> from ml4t.backtest import BacktestConfig
    >>> cfg = BacktestConfig(commission={"model": "percent", "rate": 0.001})
    >>> cfg.execution.mode
    'next_open'
    >>> BacktestConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, Field, StrictInt, ValidationInfo, field_validator, model_validator

from ml4t.backtest._engine_spec import (
    AccountSpec,
    CommissionSpec,
    EngineSpec,
    ExecutionSpec,
    SlippageSpec,
)
from ml4t.backtest._imports import ImportFailed, import_module, raised_where
from ml4t.backtest._models import ValidatedModel, check_duration, warn_units
from ml4t.backtest.errors import ConfigError
from ml4t.backtest.risk import AnyRule
from ml4t.backtest.strategies import BuiltinStrategy, SignalStrategy, TopKStrategy
from ml4t.backtest.strategy import Strategy


class ExecutionConfig(ValidatedModel):
    """When orders fill and how shares are rounded.

    ``mode``: ``next_open`` fills a market order at the open of the asset's next bar;
    ``same_close`` at the close of the decision bar; ``next_close`` at the close of the asset's
    next bar (zipline's convention). ``sizing``: target orders (``order_target_value``,
    ``order_target_percent``, ``rebalance``) are sized at the ``decision`` bar's close and equity
    (backtrader, zipline) or when they ``fill``: the account valued once at the fill bar's
    reference prices before any of its fills (vectorbt's ``targetpercent``).
    ``share_rounding``: ``fractional`` or ``integer`` (target orders round toward zero).
    ``intrabar_path``: which extreme of a bar is visited first when several order levels lie
    inside it (``ohlc``: the one nearer the open; ``pessimistic``/``optimistic``: the one
    adverse/favourable to the position). ``limit_fill``:
    ``touch`` or ``through_amount``/``through_fraction`` by ``limit_through``.
    ``stop_basis``: risk-rule stop and target levels are measured from the ``fill`` price or from
    the ``signal_close`` (the close of the bar before the entry fill; see ``docs/risk.md``).
    ``max_volume_fraction``: at most this fraction of a bar's volume fills per order (partial
    fills); ``None`` for no limit. ``on_delisting``: an asset whose data ends before the run's
    (no bar in the last ``delisting_gap`` timestamps) has its position ``close``d at its last
    bar's close (zipline's ``auto_close_date``), is ``hold``-en marked at its last close, or is
    an ``error``. ``on_non_member`` (with a point-in-time universe): an order that would open or
    grow a position in an asset that is not a member is ``reject``-ed (reason ``non_member``;
    reductions and exits always pass), or ``allow``-ed. See ``docs/semantics.md``.
    """

    mode: Literal["next_open", "same_close", "next_close"] = "next_open"
    sizing: Literal["decision", "fill"] = "decision"
    share_rounding: Literal["fractional", "integer"] = "fractional"
    intrabar_path: Literal["ohlc", "pessimistic", "optimistic"] = "ohlc"
    limit_fill: Literal["touch", "through_amount", "through_fraction"] = "touch"
    limit_through: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    max_volume_fraction: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    stop_basis: Literal["fill", "signal_close"] = "fill"
    on_delisting: Literal["close", "hold", "error"] = "close"
    delisting_gap: StrictInt = Field(default=5, ge=1)
    on_non_member: Literal["reject", "allow"] = "reject"


def _needs_model(value: str, info: ValidationInfo, amounts: tuple[str, ...], choices: str) -> str:
    """A cost section with a non-zero rate or amount but model ``none`` would charge nothing:
    refuse it instead of guessing (a rate could mean percent or per share)."""
    given = [name for name in amounts if info.data.get(name)]
    if value == "none" and given:
        raise ValueError(
            f"required: {' and '.join(given)} given but no model (so nothing would be "
            f"charged); set model to {choices}"
        )
    return value


class CommissionConfig(ValidatedModel):
    """Fee per fill: ``percent`` (rate * notional), ``per_share`` (rate * shares) or
    ``per_order`` (amount), each floored at ``minimum``."""

    rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    amount: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    minimum: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    # Declared after the values it governs so its check sees them (see _needs_model).
    model: Literal["none", "percent", "per_share", "per_order"] = Field(
        default="none", validate_default=True
    )

    @field_validator("model")
    @classmethod
    def _model_given(cls, value: str, info: ValidationInfo) -> str:
        rate = info.data.get("rate") or 0.0
        if value == "percent" and rate >= 0.1:
            warn_units(
                f"commission.rate={rate:g} with model 'percent' charges {rate:.0%} of every "
                "fill's notional; the rate is a fraction (0.001 = 10 bps)"
            )
        return _needs_model(
            value,
            info,
            ("rate", "amount"),
            "'percent' (rate x notional), 'per_share' (rate x shares) or 'per_order' (amount)",
        )


class SlippageConfig(ValidatedModel):
    """Price moved against the trader on market-like fills (limit fills have none); the result
    is clamped into the bar's range (see ``docs/semantics.md``, "Fill price").

    ``model``:

    - ``none``;
    - ``fixed``: ``amount`` per share;
    - ``percent``: ``rate`` of the reference price;
    - ``spread``: the bar's ``bid``/``ask`` feature columns when the data has them (a buy fills
      at the ask, a sell at the bid), else a ``spread`` column (full spread in price units, half
      on each side), else ``bps`` basis points of full spread (half on each side);
    - ``volume_share``: the price moves by ``min(impact * quantity / bar volume, cap)`` of the
      reference;
    - ``sqrt_impact``: by ``k * sigma * sqrt(quantity / ADV)`` of the reference, sigma and the
      ADV read from the feature columns ``sigma_column`` and ``adv_column`` (a missing column
      raises ``ConfigError`` when the run starts);
    - ``custom``: a :class:`~ml4t.backtest.SlippageModel` subclass instance passed as
      ``Backtest(..., slippage_model=...)`` (the slower path: one Python call per fill).
    """

    rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    amount: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    bps: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    # Declared after the values it governs so its check sees them (see _needs_model).
    model: Literal[
        "none", "fixed", "percent", "spread", "volume_share", "sqrt_impact", "custom"
    ] = Field(default="none", validate_default=True)
    impact: float = Field(default=0.1, gt=0.0, allow_inf_nan=False)
    cap: float = Field(default=0.05, gt=0.0, le=1.0, allow_inf_nan=False)
    k: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    sigma_column: str | None = Field(default=None, validate_default=True)
    adv_column: str | None = Field(default=None, validate_default=True)

    @field_validator("model")
    @classmethod
    def _model_given(cls, value: str, info: ValidationInfo) -> str:
        return _needs_model(
            value,
            info,
            ("rate", "amount", "bps"),
            "'percent' (rate), 'fixed' (amount) or 'spread' (bps)",
        )

    @field_validator("sigma_column", "adv_column")
    @classmethod
    def _impact_columns(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("model") == "sqrt_impact" and not value:
            raise ValueError("required by model 'sqrt_impact' (a feature column name)")
        return value


REG_T_INITIAL_MARGIN = 0.5
"""The default initial margin: equity covers half the gross exposure (Reg-T, 2x)."""
REG_T_MAINTENANCE_MARGIN = 0.25
"""The default maintenance margin (Reg-T/FINRA's 25%)."""


class AccountConfig(ValidatedModel):
    """Account rules (see ``docs/semantics.md``, "Accounts").

    ``type``: ``margin`` (shorting and leverage; limited by ``initial_margin``, the fraction of
    gross exposure equity must cover after an entry fill: 0.5 by default, Reg-T's 2x; and
    liquidated when equity falls below ``maintenance_margin`` of gross exposure at a close: 0.25
    by default) or ``cash`` (no shorting, no leverage: a buy needs its cash). Unlimited leverage
    is an explicit choice: ``initial_margin=None`` (the maintenance margin then defaults to
    ``None`` too, and to the initial margin when that is below 0.25). ``on_insufficient``:
    ``reject`` or ``resize`` an unaffordable order. Annual rates accrued every bar on calendar
    time: ``borrow_rate`` on short market value (per asset from the feed column
    ``borrow_rate_column`` when given: the last value seen for the asset, the global rate
    before the first), ``margin_interest_rate`` on a negative cash balance,
    ``cash_interest_rate`` on a positive one.
    ``allow_short=False`` cuts sells at a flat position (always so in a cash account).
    ``funding_rate_column``: the feed column with crypto perpetuals' funding rates (paid at each
    funding time, see ``docs/semantics.md``, "Instruments"). Instruments with their own margin
    (``PolarsDataFeed(instruments=...)``) replace the margin fractions for those assets.
    ``on_withdrawal``: what a capital flow (``Backtest(..., flows=...)``) withdrawing more
    than the cash held does: ``error`` (the default) stops the run; ``liquidate`` first sells
    whole long positions at that timestamp's open, largest first.
    ``base_currency``: the account's currency (a 3-letter code, ``USD`` by default): equity,
    metrics, margin and value targets are in it; an instrument quoted in another
    (``currency`` in ``PolarsDataFeed(instruments=...)``) settles in that one, valued at the
    feed's ``fx`` rates. ``auto_convert``: sweep foreign cash back to the base at each close,
    paying ``fx_fee`` (a fraction of the amount converted); by default cash stays in the
    currency it was paid in.
    """

    type: Literal["margin", "cash"] = "margin"
    allow_short: bool = True
    initial_margin: float | None = Field(
        default=REG_T_INITIAL_MARGIN, gt=0.0, le=1.0, allow_inf_nan=False
    )
    maintenance_margin: float | None = Field(
        default=REG_T_MAINTENANCE_MARGIN, gt=0.0, le=1.0, allow_inf_nan=False
    )
    on_insufficient: Literal["reject", "resize"] = "reject"
    borrow_rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    borrow_rate_column: str | None = None
    funding_rate_column: str | None = None
    margin_interest_rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    cash_interest_rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    on_withdrawal: Literal["error", "liquidate"] = "error"
    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    auto_convert: bool = False
    fx_fee: float = Field(default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _maintenance_follows_initial(cls, data: Any) -> Any:
        """A maintenance margin not chosen follows a lower initial margin (None: no margin
        calls either)."""
        if isinstance(data, dict) and "maintenance_margin" not in data:
            initial = data.get("initial_margin", REG_T_INITIAL_MARGIN)
            if initial is None or (
                isinstance(initial, int | float) and initial < REG_T_MAINTENANCE_MARGIN
            ):
                return {**data, "maintenance_margin": initial}
        return data

    @model_validator(mode="after")
    def _maintenance_below_initial(self) -> AccountConfig:
        if (
            self.initial_margin is not None
            and self.maintenance_margin is not None
            and self.maintenance_margin > self.initial_margin
        ):
            raise ValueError("maintenance_margin must not exceed initial_margin")
        return self


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
BUILTIN_STRATEGIES: dict[str, type[SignalStrategy] | type[TopKStrategy]] = {
    "signal": SignalStrategy,
    "SignalStrategy": SignalStrategy,
    "top_k": TopKStrategy,
    "TopKStrategy": TopKStrategy,
}
"""The built-in strategy names :class:`StrategyConfig` accepts, and their classes."""


MAX_YAML_VALUES = 100_000
"""The most values (scalars, lists and mappings, each alias counted as what it expands to) a
YAML config may hold. A real config has a few hundred; the limit stops a tiny file of nested
aliases (``&a [x, x]``, ``&b [*a, *a]``, ...) from expanding into gigabytes when it is saved."""


def load_yaml(text: str, location: str) -> Any:
    """Parses YAML with the safe loader, refusing documents that alias into more than
    :data:`MAX_YAML_VALUES` values or refer to themselves.

    Raises:
        ConfigError: ``location: not valid YAML: ...``, ``location: yaml_too_large: ...`` or
            ``location: yaml_recursive: ...``.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            raise ConfigError(f"{location}: not valid YAML: {err}") from None
        except RecursionError:
            raise ConfigError(
                f"{location}: yaml_too_large: the document nests too deeply"
            ) from None
        if node is None:
            return None
        _check_yaml_size(node, location)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml_size(root: yaml.Node, location: str) -> None:
    """Counts the values ``root`` expands to (aliases included) without expanding them."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = list(node.value)
        if children_done:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{location}: yaml_too_large: its aliases expand to more than "
                    f"{MAX_YAML_VALUES:,} values (a config needs a few hundred)"
                )
            continue
        if key in sizes:
            continue
        if key in active:
            raise ConfigError(f"{location}: yaml_recursive: an alias refers to itself")
        active.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise ConfigError(f"{location}: yaml_recursive: an alias refers to itself")
            if id(child) not in sizes:
                stack.append((child, False))


class ValidationConfig(ValidatedModel):
    """What the feed does when a row breaks a rule (see ``docs/data.md``).

    Every field defaults to ``"raise"`` (a :class:`~ml4t.backtest.errors.DataValidationError`
    naming the rule, the column and the first offending keys) except ``sort``. Cleaning is never
    silent: the feed records every action in ``feed.cleaning``; it warns
    (``DataCleaningWarning``) only for a policy not set by name here.

    - ``sort``: ``"sort"`` rows by (timestamp, asset), or ``"raise"`` if they are out of order.
    - ``duplicates``: ``"drop"`` keeps the last row of each duplicated (timestamp, asset).
    - ``missing``: null/NaN/inf in open, high, low, close, volume: ``"drop"`` the rows or
      ``"ffill"`` from the asset's previous bar.
    - ``missing_signals``: a feature (signal, indicator, context) column with no value at a bar
      (null, or nothing available yet from a joined frame): ``"nan"`` (= no signal),
      ``"drop"`` the bars, or ``"ffill"`` from the asset's previous bar. NaN is always allowed.
    - ``prices``: a price <= 0: ``"drop"`` the rows.
    - ``volume``: a negative volume: ``"drop"`` the rows or ``"clip"`` it to 0.
    - ``ohlc``: low > high or open/close outside [low, high]: ``"drop"`` the rows or ``"clip"``
      (swap low/high when reversed, then clip open and close into the range).
    """

    sort: Literal["sort", "raise"] = "sort"
    duplicates: Literal["raise", "drop"] = "raise"
    missing: Literal["raise", "drop", "ffill"] = "raise"
    missing_signals: Literal["raise", "nan", "drop", "ffill"] = "raise"
    prices: Literal["raise", "drop"] = "raise"
    volume: Literal["raise", "drop", "clip"] = "raise"
    ohlc: Literal["raise", "drop", "clip"] = "raise"


class DataConfig(ValidatedModel):
    """Where the data is and how to read it; :meth:`PolarsDataFeed.from_config` builds the feed.

    Paths (``prices``, ``signals``, ``indicators``, ``context``, ``actions``: the corporate
    actions, ``universe``: the point-in-time universe, ``fx``: FX rates to the base currency,
    ``flows``: capital flows) are a Parquet file, a glob or a (hive-partitioned) directory;
    relative paths are resolved against the config file's directory by the CLI.
    ``instruments`` is such a path or the specs inline (``{ES: {asset_class: future,
    multiplier: 50}}``, see :mod:`~ml4t.backtest.data.instruments`). ``flows`` is read by
    :class:`~ml4t.backtest.Backtest` (and the CLI's ``run``), the others by the feed.
    ``rename`` maps source column names to the names the feed expects
    (``{"Date": "timestamp", "Adj Close": "close"}``). ``start``/``end`` (inclusive; ISO text, a
    date alone means the whole day) are pushed into the scan. ``chunk_by`` (a period such as
    ``"1mo"``) or ``chunk_rows`` (a row budget) turn on streaming. ``available_column``,
    ``signal_timing`` and ``lag`` control when a signal may be used; ``hold`` names joined
    frames whose last value is kept until a newer row (see ``docs/data.md``).
    """

    prices: str | None = None
    signals: str | None = None
    indicators: str | None = None
    context: str | None = None
    actions: str | None = None
    universe: str | None = None
    instruments: str | dict[str, dict[str, Any]] | None = None
    fx: str | None = None
    flows: str | None = None
    timestamp_column: str = "timestamp"
    asset_column: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    available_column: str | None = None
    signal_timing: Literal["strict", "shift"] = "strict"
    lag: StrictInt | str | None = None
    hold: list[Literal["signals", "indicators", "context"]] = Field(default_factory=list)
    chunk_by: str | None = None
    chunk_rows: StrictInt | None = Field(default=None, gt=0)
    validation: ValidationConfig = ValidationConfig()

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> Any:
        # Kept as ISO text so a date stays a date (``end`` = the whole day) through a round trip.
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"'{value}' is not an ISO date or datetime") from None
        return value

    @field_validator("lag")
    @classmethod
    def _check_lag(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("a lag in bars must be >= 0")
        if isinstance(value, str):
            check_duration(value)
        return value

    @field_validator("chunk_by")
    @classmethod
    def _check_durations(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)

    @field_validator("chunk_rows")
    @classmethod
    def _one_chunking(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("chunk_by") is not None:
            raise ValueError("give chunk_by or chunk_rows, not both")
        return value


class StrategyConfig(ValidatedModel):
    """The strategy: a built-in name (``signal``/``SignalStrategy``, ``top_k``/``TopKStrategy``)
    or an import path ``package.module:Class`` (a :class:`~ml4t.backtest.Strategy` subclass),
    built with ``params`` as keyword arguments. Built-in parameters are checked when the config
    is loaded; an import path is imported only by :meth:`build`."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value not in BUILTIN_STRATEGIES and not _IMPORT_PATH.match(value):
            raise ValueError(
                f"'{value}' is neither a built-in strategy ({sorted(BUILTIN_STRATEGIES)}) nor an "
                "import path 'package.module:Class'"
            )
        return value

    @field_validator("params")
    @classmethod
    def _check_builtin_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("name")
        if name in BUILTIN_STRATEGIES:
            _build_builtin(str(name), value)
        return value

    def build(self, search_path: str | Path | None = None) -> Strategy | BuiltinStrategy:
        """Imports (if needed) and instantiates the strategy.

        Args:
            search_path: a directory put first on ``sys.path`` while importing (the CLI passes
                the config file's directory, so a ``strategies.py`` next to it is found).

        Raises:
            ConfigError: ``strategy.name: ...`` when the import fails or the class is not a
                strategy; ``strategy.params: ...`` when the parameters do not fit.
        """
        if self.name in BUILTIN_STRATEGIES:
            return _build_builtin(self.name, self.params)
        module_name, _, class_name = self.name.partition(":")
        try:
            module = import_module(module_name, search_path)
        except ImportFailed as err:
            raise ConfigError(f"strategy.name: {err}") from err.__cause__
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ConfigError(
                f"strategy.name: '{self.name}' is not a Strategy subclass "
                f"(found {type(cls).__name__ if cls is not None else 'nothing'})"
            )
        try:
            instance: Strategy = cls(**self.params)
        except TypeError as err:
            raise ConfigError(f"strategy.params: {class_name}: {err}") from None
        except Exception as err:
            raise ConfigError(
                f"strategy.params: construction_failed: {class_name}(**params) "
                f"({raised_where(err)}) raised {type(err).__name__}: {err}"
            ) from err
        return instance


def _build_builtin(name: str, params: dict[str, Any]) -> BuiltinStrategy:
    cls = BUILTIN_STRATEGIES[name]
    try:
        built: BuiltinStrategy = cls(**params)
        built.spec()
    except TypeError as err:
        raise ValueError(f"{cls.__name__}: {err}") from None
    except ConfigError as err:
        raise ValueError(f"{cls.__name__}: {err}") from None
    return built


class OutputConfig(ValidatedModel):
    """Where the CLI writes the results (``directory``), whether it writes the HTML report and
    the feature column of model predictions its signal views use (``prediction``)."""

    directory: str | None = None
    report: bool = True
    prediction: str | None = None


class BacktestConfig(ValidatedModel):
    """Everything about a run besides the data and the strategy.

    Invalid values raise :class:`~ml4t.backtest.errors.ConfigError` naming the field, e.g.
    ``commission.rate: Input should be greater than or equal to 0``.
    """

    initial_cash: float = Field(default=100_000.0, gt=0.0, allow_inf_nan=False)
    execution: ExecutionConfig = ExecutionConfig()
    commission: CommissionConfig = CommissionConfig()
    slippage: SlippageConfig = SlippageConfig()
    account: AccountConfig = AccountConfig()
    periods_per_year: float | Literal["infer"] | None = None
    """Annualisation of the metrics: ``None`` applies the rule table of
    :func:`ml4t.backtest.results.metrics.annualization` (252 for daily weekday bars, ...), a
    number overrides it, ``"infer"`` measures the density of the timestamps."""
    risk_free: float = Field(default=0.0, gt=-1.0, allow_inf_nan=False)
    """Annual risk-free rate for Sharpe, Sortino, Omega, alpha and beta (``0.04`` for 4 %)."""
    calendar: str | None = None
    """An exchange calendar of ``exchange_calendars`` (``"XNYS"``; the ``calendars`` extra):
    bars outside its sessions are a finding (``outside_sessions``) and metrics annualise by its
    sessions per year. ``None``: no calendar (24/7 data). A session frame of your own:
    ``Backtest(..., sessions=frame)``."""
    outside_sessions: Literal["raise", "drop"] = "raise"
    """With a calendar, what a bar outside every session does: ``raise`` a
    ``DataValidationError``, or ``drop`` it (in-memory feeds; the count is reported in
    ``result.run_info["sessions"]``, with no warning: the policy is the user's choice)."""
    data: DataConfig | None = None
    strategy: StrategyConfig | None = None
    risk: list[AnyRule] = Field(default_factory=list)
    output: OutputConfig = OutputConfig()

    @field_validator("periods_per_year")
    @classmethod
    def _positive_periods(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"must be a finite number > 0, 'infer' or null, got {value}")
        return value

    def engine_dict(self) -> EngineSpec:
        """The dict the Rust engine reads: ``initial_cash`` and the engine's sections, each
        section dumped with its field names (the keys ``_engine_spec.EngineSpec`` types)."""
        return {
            "initial_cash": self.initial_cash,
            "execution": cast(ExecutionSpec, self.execution.model_dump()),
            "commission": cast(CommissionSpec, self.commission.model_dump()),
            "slippage": cast(SlippageSpec, self.slippage.model_dump()),
            "account": cast(AccountSpec, self.account.model_dump()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacktestConfig:
        """Builds a config from a plain dict (as loaded from a file).

        A top-level ``preset: name`` key starts from that preset (see :meth:`preset`); the other
        keys override it. The result is fully resolved: it no longer mentions the preset.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"<root>: expected a mapping, got {type(data).__name__}")
        if "preset" in data:
            rest = dict(data)
            name = rest.pop("preset")
            if not isinstance(name, str):
                raise ConfigError(f"preset: expected a preset name, got {name!r}")
            return cls.preset(name, **rest)
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BacktestConfig:
        """A config following another framework's conventions, with ``overrides`` merged in.

        Names: ``default``, ``realistic``, ``backtrader``, ``vectorbt``, ``zipline`` (their
        conventions are listed in ``docs/data.md`` and :data:`PRESET_NOTES`). Section overrides
        are merged key by key::

            BacktestConfig.preset("realistic", commission={"rate": 0.01}, initial_cash=1e6)

        Raises:
            ConfigError: ``preset: unknown preset ...``, or the location of a bad override.
        """
        if name not in PRESETS:
            raise ConfigError(f"preset: unknown preset '{name}' (choose from {sorted(PRESETS)})")
        merged = copy.deepcopy(PRESETS[name])
        for key, value in overrides.items():
            if isinstance(value, BaseModel):
                value = value.model_dump()
            if isinstance(merged.get(key), dict) and isinstance(value, dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return cls(**merged)

    @staticmethod
    def presets() -> list[str]:
        """Names accepted by :meth:`preset`."""
        return sorted(PRESETS)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BacktestConfig:
        """Loads a config from a YAML file."""
        return cls.from_dict(load_yaml(Path(path).read_text(), f"<file {path}>") or {})

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> BacktestConfig:
        """Loads a config from a JSON string or a path to a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"<json>: not valid JSON: {err}") from None
        return cls.from_dict(data)

    def to_json(self) -> str:
        """The config as a JSON string (lossless)."""
        return self.model_dump_json(indent=2)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML; also written to ``path`` when given."""
        # Without a stream, safe_dump returns the document as a str.
        text: str = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **overrides: Any) -> BacktestConfig:
        """A validated copy with ``overrides`` applied; dotted keys reach nested sections::

            cfg.replace(initial_cash=1e6, **{"commission.rate": 0.0005, "risk.0.pct": 0.03})

        A key names a field (``initial_cash``, ``commission``), a field of a section
        (``commission.rate``, ``data.validation.sort``), a list item by its index
        (``risk.0.pct``) or a key of a mapping field (``data.rename.Date``,
        ``strategy.params.k``). A value replaces what the key names (a section given as a dict
        or model replaces the whole section). The copy is validated like a new config.

        Raises:
            ConfigError: a key names no field (``commission.rat: unknown field ... (did you
                mean 'rate'?)``), goes through a section that is not set, or a value is
                invalid (its location, exactly as construction reports it).
        """
        import difflib

        data = self.model_dump()
        for key, value in overrides.items():
            if isinstance(value, BaseModel):
                value = value.model_dump()
            parts = key.split(".")
            node: Any = self
            target: Any = data
            for depth, part in enumerate(parts):
                where = ".".join(parts[: depth + 1])
                last = depth == len(parts) - 1
                if isinstance(node, BaseModel):
                    fields = type(node).model_fields
                    if part not in fields:
                        close = difflib.get_close_matches(part, sorted(fields), n=1, cutoff=0.7)
                        hint = f" (did you mean '{close[0]}'?)" if close else ""
                        raise ConfigError(
                            f"{where}: unknown field: {type(node).__name__} has no field "
                            f"'{part}'{hint}"
                        )
                    child = getattr(node, part)
                elif isinstance(node, list):
                    if not part.isdigit() or int(part) >= len(node):
                        raise ConfigError(
                            f"{where}: unknown field: expected an index below {len(node)}"
                        )
                    part_index = int(part)
                    if last:
                        target[part_index] = value
                        break
                    node, target = node[part_index], target[part_index]
                    continue
                elif isinstance(node, dict):
                    child = node.get(part)
                else:
                    parent = ".".join(parts[:depth]) or "<root>"
                    raise ConfigError(
                        f"{where}: unknown field: {parent} is "
                        f"{'not set' if node is None else type(node).__name__}, it has no fields"
                    )
                if last:
                    target[part] = value
                else:
                    node, target = child, target[part]
        return type(self)(**data)


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "realistic": {
        "execution": {
            "mode": "next_open",
            "share_rounding": "integer",
            "intrabar_path": "pessimistic",
            "limit_fill": "through_fraction",
            "limit_through": 0.0001,
            "max_volume_fraction": 0.1,
            "stop_basis": "fill",
        },
        "commission": {"model": "per_share", "rate": 0.005, "minimum": 1.0},
        "slippage": {"model": "percent", "rate": 0.0005},
    },
    "backtrader": {
        "execution": {
            "mode": "next_open",
            "sizing": "decision",
            "share_rounding": "integer",
            "stop_basis": "signal_close",
        },
    },
    "vectorbt": {
        "execution": {
            "mode": "same_close",
            "sizing": "fill",
            "share_rounding": "fractional",
            "stop_basis": "fill",
        },
    },
    "zipline": {
        "execution": {
            "mode": "next_close",
            "sizing": "decision",
            "share_rounding": "integer",
            "stop_basis": "signal_close",
        },
        "commission": {"model": "per_share", "rate": 0.001},
        "slippage": {"model": "percent", "rate": 0.0005},
    },
}
"""Section values of each preset (everything else keeps its default)."""

PRESET_NOTES: dict[str, str] = {
    "default": (
        "next-bar open, fractional shares, no costs, exits filled before entries, risk-rule "
        "stops measured from the fill price."
    ),
    "realistic": (
        "next-bar open, whole shares, $0.005/share commission with a $1 minimum, 5 bps "
        "slippage, exits filled before entries, stops measured from the fill price; stops and "
        "targets inside one bar resolve pessimistically, limits need to trade 1 bp through, "
        "and at most 10% of a bar's volume fills per order."
    ),
    "backtrader": (
        "next-bar open (backtrader's Market order), targets sized at the decision bar's close "
        "and value (order_target_percent), whole shares (its default sizer trades whole "
        "units), no commission or slippage (its broker defaults). backtrader fills in "
        "submission order; this engine always fills exits first."
    ),
    "vectorbt": (
        "same-bar close (from_signals' default price), targets sized at the fill price with the "
        "account valued there before the bar's fills (targetpercent), fractional shares, no "
        "fees or slippage. vectorbt's default init_cash of 100 is not copied; for vectorbt's "
        "price=open, set execution.mode to next_open (the decision moves one bar earlier)."
    ),
    "zipline": (
        "next-bar close (zipline fills a market order at the close of the bar after the "
        "decision), targets sized at the decision bar's price, whole shares, $0.001/share "
        "commission (PerShare default), 5 bps slippage (FixedBasisPointsSlippage default, "
        "without its 10% volume cap)."
    ),
}
"""One line per preset: the conventions it sets and where it departs from the original."""
