"""The dicts Python hands to the Rust engine (``_core.run_builtin`` / ``_core.run_python``), typed.

The engine dict mirrors the pydantic sections of :class:`~ml4t.backtest.BacktestConfig`, so
each key is named once and the engine derives an error's location from its path
(``account.type``); ``rust/py/src/spec/config.rs`` reads it. The universe dict carries the
asset names by code and the feed's time zone (``rust/py/src/universe.rs``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ExecutionSpec(TypedDict):
    """``execution``: when and how orders fill (:class:`~ml4t.backtest.config.ExecutionConfig`)."""

    mode: Literal["next_open", "same_close", "next_close"]
    sizing: Literal["decision", "fill"]
    share_rounding: Literal["fractional", "integer"]
    intrabar_path: Literal["ohlc", "pessimistic", "optimistic"]
    limit_fill: Literal["touch", "through_amount", "through_fraction"]
    limit_through: float
    max_volume_fraction: float | None
    stop_basis: Literal["fill", "signal_close"]
    on_delisting: Literal["close", "hold", "error"]
    delisting_gap: int
    on_non_member: Literal["reject", "allow"]


class CommissionSpec(TypedDict):
    """``commission``: the fee model (:class:`~ml4t.backtest.config.CommissionConfig`)."""

    model: Literal["none", "percent", "per_share", "per_order"]
    rate: float
    amount: float
    minimum: float


class _SlippageFields(TypedDict):
    model: Literal["none", "fixed", "percent", "spread", "volume_share", "sqrt_impact", "custom"]
    rate: float
    amount: float
    bps: float
    impact: float
    cap: float
    k: float
    sigma_column: str | None
    adv_column: str | None


class SlippageSpec(_SlippageFields, total=False):
    """``slippage``: the price impact model (:class:`~ml4t.backtest.config.SlippageConfig`);
    ``custom`` (optional) holds the :class:`~ml4t.backtest.SlippageModel` instance of a
    ``custom`` model."""

    custom: object


class AccountSpec(TypedDict):
    """``account``: shorting, margin and financing
    (:class:`~ml4t.backtest.config.AccountConfig`)."""

    type: Literal["margin", "cash"]
    allow_short: bool
    initial_margin: float | None
    maintenance_margin: float | None
    on_insufficient: Literal["reject", "resize"]
    borrow_rate: float
    borrow_rate_column: str | None
    funding_rate_column: str | None
    margin_interest_rate: float
    cash_interest_rate: float
    on_withdrawal: Literal["error", "liquidate"]
    base_currency: str
    auto_convert: bool
    fx_fee: float


class EngineSpec(TypedDict):
    """The engine dict of :meth:`~ml4t.backtest.BacktestConfig.engine_dict`."""

    initial_cash: float
    execution: ExecutionSpec
    commission: CommissionSpec
    slippage: SlippageSpec
    account: AccountSpec


class _UniverseFields(TypedDict):
    names: list[str]
    time_zone: str | None


class UniverseSpec(_UniverseFields, total=False):
    """The assets of a run: ``names`` by code, the feed's ``time_zone`` (``None``: naive) and,
    optionally, ``delisted_at``: per asset the ns timestamp of its last bar when the engine
    closes it as delisted (``None``: not delisted); ``delisting_return``: per asset the
    return from its last close to its delisting value (``None``: none; CRSP's DLRET);
    ``instruments``: per asset its instrument spec (:mod:`~ml4t.backtest.data.instruments`;
    ``None``: a share); ``session_closes``: with a trading calendar, the last data timestamp
    (ns) of each session; with several currencies, ``currencies`` (names by code, the base
    first), ``asset_currency`` (each asset's code) and ``fx`` (the rates: ``ts``, ``currency``
    code, ``rate``; :mod:`~ml4t.backtest.data.fx`); ``membership``: the point-in-time
    universe's changes as columns ``ts`` (ns), ``asset_id`` and ``member``;
    ``reject_non_members``: with it, whether an entry into a non-member is refused."""

    delisted_at: list[int | None]
    delisting_return: list[float | None]
    instruments: list[dict[str, Any] | None]
    session_closes: list[int]
    currencies: list[str]
    asset_currency: list[int]
    fx: Any
    membership: dict[str, list[Any]]
    reject_non_members: bool
