"""Type stub for ``ml4t.backtest._core``, the PyO3 extension built from ``rust/py/src``.

Hand-written; keep in step with ``lib.rs`` (exports), ``run.rs`` (functions), ``arrow_io.rs``
(``ArrowTable``), ``strategy/context.rs`` (``Context``), ``strategy/event.rs`` (``MarketEvent``,
``Signals``, ``FillEvent``, ``OrderUpdate``), ``risk/objects.rs`` (``RiskDecision``,
``RiskContext``, ``OrderContext``, ``PortfolioView``) and ``spec/risk.rs``
(``check_risk_rules``). The dicts the ``run_*`` functions read are typed in
``ml4t.backtest._engine_spec``. None of the classes can be
instantiated or subclassed from Python (``RiskDecision`` is built with its static
constructors): the engine creates them and hands them to strategies and risk rules, or returns
them from the ``run_*`` functions.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, SupportsIndex, TypeAlias, final, overload

from typing_extensions import CapsuleType

from ml4t.backtest._engine_spec import EngineSpec, UniverseSpec

__all__ = [
    "EXIT_REASONS",
    "ORDER_EVENT_STATUSES",
    "ORDER_ORIGINS",
    "ORDER_TYPES",
    "REJECT_REASONS",
    "TIME_IN_FORCE",
    "ArrowTable",
    "CheckedData",
    "Context",
    "FillEvent",
    "MarketEvent",
    "OrderContext",
    "OrderUpdate",
    "PortfolioView",
    "RiskContext",
    "RiskDecision",
    "Signals",
    "__version__",
    "check_risk_rules",
    "column_address",
    "group_runs",
    "rows_clear",
    "run_builtin",
    "run_python",
]

__version__: str
"""Version of the Rust crate the extension was built from."""

EXIT_REASONS: list[str]
"""Trade exit reason names, indexed by the ``exit_reason`` code of the trades table."""

REJECT_REASONS: list[str]
"""Rejection reason names, indexed by the ``reason`` code of the rejections table."""

ORDER_TYPES: list[str]
"""Order type names, indexed by the ``order_type`` code of the fills and orders tables."""

TIME_IN_FORCE: list[str]
"""Time-in-force names (``gtc``, ``day``, ``ioc``), indexed by the ``tif`` code of the orders
table."""

ORDER_ORIGINS: list[str]
"""Who created an order (``strategy``, ``target``, ``bracket``, ``risk_exit``, ``risk_level``,
``margin_call``, ``ruin``), indexed by the ``origin`` code of the orders table."""

ORDER_EVENT_STATUSES: list[str]
"""Order journal statuses, indexed by the ``status`` code of the order events table."""

_AssetRef: TypeAlias = str | SupportsIndex
"""An asset given by name (``str``) or by integer code (index into the sorted asset names)."""

class _ArrowStreamExportable(Protocol):
    """Any object implementing the Arrow PyCapsule stream interface, such as a Polars
    DataFrame (read without copying its buffers)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

# --- run.rs -------------------------------------------------------------------------------------

def run_builtin(
    data: CheckedData | _ArrowStreamExportable | Iterator[_ArrowStreamExportable],
    universe: UniverseSpec,
    config: EngineSpec,
    strategy: dict[str, Any],
    progress: Callable[[int], object] | None = None,
    risk: list[Any] | None = None,
    feature_groups: dict[str, list[str]] | None = None,
    actions: _ArrowStreamExportable | None = None,
    flows: _ArrowStreamExportable | None = None,
) -> dict[str, ArrowTable]:
    """Runs a built-in Rust strategy over ``data`` with the GIL released.

    ``universe``: the asset names by code and the feed's time zone (datetimes handed to Python
    are built from it); ``risk``: the rules (spec dicts or ``RiskRule`` instances);
    ``feature_groups``: ``{"indicators": [...], "context": [...]}`` (the feed's
    ``FeatureProvider.groups()``); ``actions``: the corporate actions, a frame of ``ts`` Int64
    ns, ``asset_id`` UInt32, ``split_ratio`` and ``dividend`` Float64 sorted by (ts,
    asset_id), one row per key (the feed's ``actions``; bad rows raise
    ``DataValidationError``); ``flows``: the capital flows, a frame of ``ts`` Int64 ns and
    ``amount`` Float64 strictly increasing in time (``Backtest``'s checked ``flows``), applied
    with the engine dict's ``account.on_withdrawal``.

    With ``progress``, the engine runs on a worker thread while the calling thread calls
    ``progress(rows_done)`` about ten times a second and once at the end; an exception raised
    by the callback cancels the run and propagates.

    Returns the tables ``"fills"``, ``"trades"``, ``"equity"``, ``"rejections"``,
    ``"financing"`` (``ts, borrow_fee, interest, dividend, flow``, one row per timestamp that
    had any), ``"splits"`` (``ts, asset_id, split_ratio, quantity_before, quantity_after``: each
    split of a held position, before any cash in lieu) and the
    order journal: ``"orders"`` (one row per order: ``order_id, ts, asset_id, order_type,
    quantity`` (signed), ``limit, stop, trail_amount, trail_percent`` (NaN when absent),
    ``tif, parent_id, oco_id`` (0 when none), ``origin, exit_reason``) and ``"order_events"``
    (every status change in the order it happened: ``order_id, ts, status, quantity,
    remaining`` (signed), ``price, limit, stop`` (NaN when absent), ``reason`` (255 when
    none)).
    """

def run_python(
    data: CheckedData | _ArrowStreamExportable | Iterator[_ArrowStreamExportable],
    universe: UniverseSpec,
    config: EngineSpec,
    target: object,
    mode: Literal["batch", "bar"],
    wants_fills: bool,
    context_out: Callable[[Context], object] | None = None,
    progress: Callable[[int], object] | None = None,
    wants_orders: bool = False,
    risk: list[Any] | None = None,
    feature_groups: dict[str, list[str]] | None = None,
    actions: _ArrowStreamExportable | None = None,
    flows: _ArrowStreamExportable | None = None,
) -> dict[str, Any]:
    """Runs a Python strategy over ``data``. ``mode`` is ``"batch"`` (then ``target`` is the
    driver with ``on_timestamp(start, end, ts)``) or ``"bar"`` (then ``target`` is the strategy
    with ``on_market_data(event, context)``); the other arguments are those of
    :func:`run_builtin`.

    ``context_out``, when given, is called once with the run's :class:`Context` before the run.
    ``progress``, when given, is called with the rows done about ten times a second (checked
    every 64 timestamps) and once at the end; an exception it raises stops the run and
    propagates.

    Returns the same tables as :func:`run_builtin` (:class:`ArrowTable` values) plus
    ``"records"``, an :class:`ArrowTable` of the values recorded with
    :meth:`Context.record` (columns ``ts`` Int64, ``name`` UInt32 code, ``value`` Float64), and
    ``"record_names"``, the ``list[str]`` of names indexed by that code.
    """

def check_risk_rules(rules: Sequence[dict[str, Any]], asset_names: Sequence[str]) -> None:
    """Builds the rule specs as a run would; raises ``RiskRuleError`` for the first bad one."""

def column_address(data: _ArrowStreamExportable, name: str) -> int | None:
    """Address of the first value of column ``name`` as seen from Rust after importing ``data``
    through the Arrow PyCapsule interface (used to prove the import makes no copy); ``None``
    when ``data`` is empty or has no such column."""

def group_runs(data: _ArrowStreamExportable, key: str, name: str) -> ArrowTable:
    """Groups the rows of ``data`` (one chunk, sorted by its non-null UInt64 column ``key``)
    into runs of equal keys: a table of each run's ``key`` and, as ``name``, the list of the
    run's rows of the other columns as structs, sharing ``data``'s buffers (no copy)."""

# --- arrow_io.rs --------------------------------------------------------------------------------

@final
class ArrowTable:
    """A result table that Polars (or pyarrow) reads through ``__arrow_c_stream__`` without
    copying."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> CapsuleType:
        """Exports the table as an Arrow C stream capsule (``requested_schema`` is ignored)."""

    def columns(self) -> list[ArrowTable]:
        """One single-column table per column, over the same buffers: imported one by one, each
        column is freed on its own (one import of the whole table keeps every column alive
        while any one of them is)."""

    def __len__(self) -> int:
        """Number of rows."""

# --- checked.rs ---------------------------------------------------------------------------------

@final
class CheckedData:
    """A frame's chunks imported through the Arrow C stream and row-checked once by the engine
    for a universe of ``n_assets``; runs handed it skip the import and the re-check (an
    in-memory ``PolarsDataFeed`` builds it on its first run). Shares the frame's buffers."""

    def __new__(
        cls,
        data: _ArrowStreamExportable | Sequence[_ArrowStreamExportable],
        n_assets: int,
        *,
        validated: bool = False,
    ) -> CheckedData:
        """Imports ``data`` (a frame, or a sequence of frames: one frame's pages in time order,
        each imported in place) and checks every row; raises ``DataValidationError`` naming
        the column and row. ``validated=True``: the rows were proven by the feed's validation
        (only the schema, dtypes and nulls are checked again)."""

    @property
    def n_rows(self) -> int:
        """The number of rows."""

def rows_clear(pages: Iterable[_ArrowStreamExportable], n_assets: int, *, features: bool) -> bool:
    """Whether the rows of ``pages`` (frames in row order, each exported in place; a timestamp
    may span two) hold every row rule the engine checks and, with ``features``, have no null
    or infinite feature value (NaN allowed). ``False`` only says some rule is broken."""

# --- strategy/context.rs ------------------------------------------------------------------------

@final
class Context:
    """Account state at the current timestamp and the order buffer the engine drains after each
    callback. Assets are given by name or by integer code.

    An asset is a name or an integer code: an ``int`` or any integer with ``__index__`` (numpy's,
    as ``batch.asset_ids`` hands out), never a ``bool``. Every method taking ``asset`` raises
    :class:`~ml4t.backtest.errors.OrderError` for an unknown name, an out-of-range code or any
    other type; every method raises it, naming the argument, for an argument of the wrong type
    (the conversion's exception as ``__cause__``); order methods raise it for an invalid order.
    """

    @property
    def timestamp(self) -> datetime:
        """The current timestamp as a datetime (in the feed's time zone)."""

    @property
    def timestamp_ns(self) -> int:
        """The current timestamp in nanoseconds since the epoch."""

    def is_active(self, asset: str | int) -> bool:
        """Whether ``asset`` still trades now: false from the last bar of an asset delisted in
        this run (its position was closed at that bar's close; orders for it are refused)."""
    def is_member(self, asset: str | int) -> bool:
        """Whether ``asset`` is a member of the point-in-time universe now (its latest row at or
        before this timestamp; always true when the feed has no universe)."""
    @property
    def member_mask(self) -> bytes:
        """Each asset's membership now by code, one byte each (1: a member), for
        ``np.frombuffer(..., dtype=bool)``; empty when the feed has no universe."""
    @property
    def cash(self) -> float:
        """Cash balance."""

    @property
    def equity(self) -> float:
        """Equity: cash plus positions marked at the last closes."""

    @property
    def asset_names(self) -> list[str]:
        """Names of every asset in the feed, by code."""

    def position(self, asset: _AssetRef) -> float:
        """Signed shares held in ``asset``."""

    @property
    def positions(self) -> dict[str, float]:
        """Every non-zero position as ``{asset: shares}``."""

    def price(self, asset: _AssetRef) -> float:
        """Last close of ``asset`` (NaN before its first bar)."""

    def submit_order(
        self,
        asset: _AssetRef,
        quantity: float,
        *,
        limit: float | None = None,
        stop: float | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        order_type: Literal[
            "market", "limit", "stop", "stop_limit", "market_on_close", "trailing_stop"
        ]
        | None = None,
        tif: Literal["gtc", "day", "ioc"] = "gtc",
        take_profit: float | None = None,
        stop_loss: float | None = None,
    ) -> int:
        """Submit an order (signed quantity; + buys) and return its id. The type follows the
        prices given; ``take_profit``/``stop_loss`` attach a one-cancels-other bracket."""
    def modify_order(
        self,
        order_id: int,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> None:
        """Change a pending order's remaining quantity (signed, same side) and/or its limit /
        stop price, after this callback; a change it cannot take is ``invalid_modify``."""
    def cancel_order(self, order_id: int) -> None:
        """Cancel a pending order (and the waiting legs of a bracket entry)."""
    def order_target_quantity(self, asset: _AssetRef, target: float) -> None:
        """Trade toward a target position in shares."""

    def order_target_value(self, asset: _AssetRef, value: float) -> None:
        """Trade toward a target market value (negative for a short)."""

    def order_target_percent(self, asset: _AssetRef, fraction: float) -> None:
        """Trade toward a target fraction of equity (negative for a short)."""

    def close_position(self, asset: _AssetRef) -> None:
        """Go flat in ``asset``."""

    def rebalance(
        self,
        weights: Mapping[str, float]
        | Mapping[int, float]
        | Mapping[_AssetRef, float]
        | Iterable[tuple[_AssetRef, float]],
    ) -> None:
        """Hold exactly ``weights`` (``{asset: fraction of equity}`` or ``(asset, weight)`` pairs)
        and close every other position."""

    def record(self, **values: float) -> None:
        """Records user values at the current timestamp, e.g. ``context.record(gross=1.2)``;
        they come back as ``result.records`` (timestamp, name, value). Raises
        :class:`~ml4t.backtest.errors.BacktestError` for a value that is not a number."""

# --- strategy/event.rs --------------------------------------------------------------------------

@final
class MarketEvent:
    """One asset's bar at one timestamp, as seen by ``Strategy.on_market_data``."""

    @property
    def timestamp(self) -> datetime:
        """Bar time as a datetime (in the feed's time zone)."""

    @property
    def timestamp_ns(self) -> int:
        """Bar time in nanoseconds since the epoch."""

    @property
    def asset(self) -> str:
        """Asset name."""

    @property
    def asset_id(self) -> int:
        """Asset code."""

    @property
    def open(self) -> float:
        """Open price."""

    @property
    def high(self) -> float:
        """High price."""

    @property
    def low(self) -> float:
        """Low price."""

    @property
    def close(self) -> float:
        """Close price."""

    @property
    def volume(self) -> float:
        """Volume."""

    @property
    def signals(self) -> Signals:
        """Every feature column of the bar (signals, indicators, context) as a read-only
        mapping ``{name: value}``."""

    @property
    def indicators(self) -> Signals:
        """The bar's indicator columns (the feed's ``indicators`` frame)."""

    @property
    def context(self) -> Signals:
        """This timestamp's market-wide context columns (the feed's ``context`` frame)."""

@final
class Signals:
    """Read-only mapping of a bar's signal values (``name -> float``).

    Mapping-like, but not registered as a ``collections.abc.Mapping``.
    """

    def __getitem__(self, name: str, /) -> float:
        """Value of signal ``name``; raises ``KeyError`` when the feed has no such column."""

    def __len__(self) -> int:
        """Number of signal columns."""

    def __contains__(self, name: str, /) -> bool:
        """True when the feed has a signal column ``name``."""

    def __iter__(self) -> Iterator[str]:
        """Iterates over the column names."""

    @overload
    def get(self, name: str, default: None = None) -> float | None:
        """Value of ``name``, or ``default`` when the feed has no such column."""

    @overload
    def get(self, name: str, default: float) -> float: ...
    def keys(self) -> list[str]:
        """Column names."""

    def values(self) -> list[float]:
        """Values, in column order."""

    def items(self) -> list[tuple[str, float]]:
        """``(name, value)`` pairs."""

@final
class OrderUpdate:
    """One order status change, as seen by ``Strategy.on_order``."""

    @property
    def order_id(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def asset(self) -> str: ...
    @property
    def status(
        self,
    ) -> Literal["accepted", "partially_filled", "filled", "cancelled", "expired", "rejected"]: ...
    @property
    def filled(self) -> float:
        """Signed shares filled by this event (0 unless a fill)."""
    @property
    def remaining(self) -> float:
        """Signed shares still open after it."""
    @property
    def reason(self) -> str | None:
        """The reason of a rejection or expiry, else None."""

@final
class FillEvent:
    """One execution, as seen by ``Strategy.on_fill``."""

    @property
    def order_id(self) -> int:
        """Id of the order filled."""

    @property
    def timestamp(self) -> datetime:
        """Fill time as a datetime (in the feed's time zone)."""

    @property
    def asset(self) -> str:
        """Asset name."""

    @property
    def side(self) -> Literal["buy", "sell"]:
        """``"buy"`` or ``"sell"``."""

    @property
    def quantity(self) -> float:
        """Signed shares (+ bought)."""

    @property
    def price(self) -> float:
        """Fill price."""

    @property
    def reference_price(self) -> float:
        """Bar price the fill referenced (open or close)."""

    @property
    def slippage(self) -> float:
        """Slippage cost."""

    @property
    def commission(self) -> float:
        """Fee."""

# --- risk/objects.rs ----------------------------------------------------------------------------

@final
class RiskDecision:
    """What a risk rule decides. Build one with the static constructors; a bad value raises
    ``RiskRuleError``."""

    @staticmethod
    def allow() -> RiskDecision:
        """Nothing to do."""

    @staticmethod
    def reject(note: str = "") -> RiskDecision:
        """Pre-trade: refuse the order's opening part (a ``risk_limit`` rejection)."""

    @staticmethod
    def resize(quantity: float) -> RiskDecision:
        """Pre-trade: set the order's opening part to ``quantity`` shares (>= 0; 0 rejects)."""

    @staticmethod
    def exit(fraction: float = 1.0, reason: str = "risk_limit") -> RiskDecision:
        """Position: exit ``fraction`` (0, 1] at the next fill opportunity."""

    @staticmethod
    def stop(level: float, reason: str = "stop_loss") -> RiskDecision:
        """Position: a protective stop at ``level``, live from the next bar."""

    @staticmethod
    def target(level: float, fraction: float = 1.0, reason: str = "take_profit") -> RiskDecision:
        """Position: a profit target at ``level`` exiting ``fraction``, live from the next bar."""

    @property
    def kind(self) -> Literal["allow", "reject", "resize", "exit", "stop", "trail", "target"]:
        """Which decision this is."""

    @property
    def level(self) -> float | None:
        """The stop or target level."""

    @property
    def fraction(self) -> float | None:
        """The exit or target fraction."""

    @property
    def quantity(self) -> float | None:
        """The resize quantity."""

    @property
    def reason(self) -> str | None:
        """The exit reason recorded on the trade."""

    @property
    def note(self) -> str:
        """The note given to ``reject``."""

@final
class PortfolioView:
    """The account at this bar's close."""

    equity: float
    cash: float
    gross_exposure: float
    net_exposure: float
    peak_equity: float
    drawdown: float
    day_start_equity: float
    open_positions: int

@final
class RiskContext:
    """One open position at this bar's close, as a Python risk rule sees it."""

    @property
    def asset(self) -> str: ...
    @property
    def asset_id(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def quantity(self) -> float:
        """Signed shares held."""
    @property
    def entry_price(self) -> float:
        """Average entry price."""
    @property
    def basis_price(self) -> float:
        """The price levels are measured from (``execution.stop_basis``)."""
    @property
    def entry_time(self) -> datetime: ...
    @property
    def bars_held(self) -> int: ...
    @property
    def unrealized_pnl(self) -> float: ...
    @property
    def high_water(self) -> float:
        """Highest bar high since entry."""
    @property
    def low_water(self) -> float:
        """Lowest bar low since entry."""
    @property
    def high_close(self) -> float: ...
    @property
    def low_close(self) -> float: ...
    @property
    def mfe(self) -> float: ...
    @property
    def mae(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def target_exits(self) -> int:
        """Take-profit level exits already filled for this position."""
    @property
    def is_new(self) -> bool:
        """True on the position's first evaluation (the entry bar's close)."""
    @property
    def features(self) -> dict[str, float]:
        """Per-asset features of this bar (signals and indicators)."""
    @property
    def market_features(self) -> dict[str, float]:
        """Market-wide features of this timestamp (context columns)."""
    @property
    def portfolio(self) -> PortfolioView: ...

@final
class OrderContext:
    """A new order's opening part before it is accepted."""

    @property
    def asset(self) -> str: ...
    @property
    def asset_id(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def quantity(self) -> float:
        """Signed shares that open or add to a position."""
    @property
    def position(self) -> float:
        """Signed position (with pending orders) the opening part adds to."""
    @property
    def price(self) -> float: ...
    @property
    def unit_value(self) -> float:
        """One unit's value in the base currency at `price` (price x multiplier x FX rate)."""
    @property
    def open_positions(self) -> int: ...
    @property
    def gross_exposure(self) -> float: ...
    @property
    def net_exposure(self) -> float: ...
    @property
    def features(self) -> dict[str, float]: ...
    @property
    def market_features(self) -> dict[str, float]: ...
    @property
    def portfolio(self) -> PortfolioView: ...
