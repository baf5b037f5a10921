"""Backtest configuration: a pydantic model, loadable from and savable to YAML or JSON.

Example:
    >>> from ml4t.backtest import BacktestConfig
    >>> cfg = BacktestConfig(commission={"model": "percent", "rate": 0.001})
    >>> cfg.execution.mode
    'next_open'
    >>> BacktestConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml4t.backtest.errors import ConfigError

_VALIDATING: ContextVar[bool] = ContextVar("ml4t_config_validating", default=False)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        location = ""
        for piece in item["loc"]:
            location += f"[{piece}]" if isinstance(piece, int) else f".{piece}"
        parts.append(f"{location.lstrip('.') or '<root>'}: {item['msg']}")
    return "; ".join(parts)


class _Section(BaseModel):
    """A frozen config section; invalid values raise :class:`ConfigError` with their location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        if _VALIDATING.get():
            # Nested inside another section's validation: let pydantic collect the errors with
            # their full location; the outermost section converts them.
            super().__init__(**data)
            return
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(err)) from None
        finally:
            _VALIDATING.reset(token)


class ExecutionConfig(_Section):
    """When orders fill and how shares are rounded.

    ``mode``: ``next_open`` fills a market order at the open of the asset's next bar;
    ``same_close`` at the close of the decision bar. ``share_rounding``: ``fractional`` or
    ``integer`` (target orders round toward zero).
    """

    mode: Literal["next_open", "same_close"] = "next_open"
    share_rounding: Literal["fractional", "integer"] = "fractional"


class CommissionConfig(_Section):
    """Fee per fill: ``percent`` (rate * notional), ``per_share`` (rate * shares) or
    ``per_order`` (amount), each floored at ``minimum``."""

    model: Literal["none", "percent", "per_share", "per_order"] = "none"
    rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    amount: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    minimum: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


class SlippageConfig(_Section):
    """Price moved against the trader: ``fixed`` (amount per share) or ``percent`` (rate)."""

    model: Literal["none", "fixed", "percent"] = "none"
    rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    amount: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


class AccountConfig(_Section):
    """Account rules. ``allow_short=False`` cuts sells at a flat position."""

    allow_short: bool = True


class BacktestConfig(_Section):
    """Everything about a run besides the data and the strategy.

    Invalid values raise :class:`~ml4t.backtest.errors.ConfigError` naming the field, e.g.
    ``commission.rate: Input should be greater than or equal to 0``.
    """

    initial_cash: float = Field(default=100_000.0, gt=0.0, allow_inf_nan=False)
    execution: ExecutionConfig = ExecutionConfig()
    commission: CommissionConfig = CommissionConfig()
    slippage: SlippageConfig = SlippageConfig()
    account: AccountConfig = AccountConfig()
    periods_per_year: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)

    def engine_dict(self) -> dict[str, Any]:
        """The flat dict the Rust engine reads."""
        return {
            "initial_cash": self.initial_cash,
            "execution_mode": self.execution.mode,
            "share_rounding": self.execution.share_rounding,
            "commission_model": self.commission.model,
            "commission_rate": self.commission.rate,
            "commission_amount": self.commission.amount,
            "commission_minimum": self.commission.minimum,
            "slippage_model": self.slippage.model,
            "slippage_rate": self.slippage.rate,
            "slippage_amount": self.slippage.amount,
            "allow_short": self.account.allow_short,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacktestConfig:
        """Builds a config from a plain dict (as loaded from a file)."""
        if not isinstance(data, dict):
            raise ConfigError(f"<root>: expected a mapping, got {type(data).__name__}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BacktestConfig:
        """Loads a config from a YAML file."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"<file {path}>: not valid YAML: {err}") from None
        return cls.from_dict(data or {})

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
