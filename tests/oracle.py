"""A deliberately simple reference backtest engine (the "oracle").

It re-implements the contract in ``docs/semantics.md`` in plain Python, with no attempt at speed,
so that the differential tests can compare the real (Rust) engine against it on random data.
It must never import anything from ``ml4t``.

Usage::

    result = run_oracle(bars, config, decide)
    result.fills, result.trades, result.equity, result.rejected_orders   # lists of dicts

``bars`` is a polars DataFrame or a list of dicts with ``timestamp``, ``asset`` (or ``symbol``),
``open``, ``high``, ``low``, ``close``, ``volume`` and any signal columns. ``config`` is a dict
shaped like ``BacktestConfig``'s fields (``initial_cash``, ``execution``, ``commission``,
``slippage``, ``account``); ``execution`` may also hold ``intrabar_path`` (``ohlc``,
``pessimistic``, ``optimistic``), ``limit_fill`` (``touch``, ``through_amount``,
``through_fraction``) and ``limit_through``; ``execution.mode`` is ``next_open``, ``same_close``
or ``next_close`` and ``execution.sizing`` ``decision`` or ``fill``. ``account`` takes ``type``
(``margin``, ``cash``), ``allow_short``, ``initial_margin`` / ``maintenance_margin`` (the Reg-T
defaults 0.5 / 0.25 when absent; ``None`` is unlimited, and a maintenance margin not given follows
an initial margin that is ``None`` or below 0.25) and ``on_insufficient`` (``reject``,
``resize``). ``decide(timestamp, rows, ctx)`` is called once per timestamp with the rows (dicts)
of the assets that have a bar then, sorted by asset; ``ctx`` offers the same order methods as
the real strategy context.

Order types: market, limit, stop, stop-limit and market-on-close orders, time in force
(``gtc``, ``day``, ``ioc``), cancels, and brackets (``take_profit`` / ``stop_loss`` legs that
become active when their entry fills and cancel each other). Not modelled: trailing stops and
the volume participation cap.

Matching (the module doc of the engine's ``matching.rs``): a bar is walked open -> first extreme
-> second extreme -> close along straight lines; an order's trigger time is where on that path its
condition is first met, and the orders of a stage fill in (trigger time, exits first, submission
order). Bracket legs are evaluated from their entry's fill time and take their place in that same
time order. A limit whose start price (the open, or a leg's activation point) is strictly better
than the limit fills there whatever the through rule; exactly at the limit that is only a touch.
A flat position walks the bar like ``ohlc`` under every path policy.

Time in force: a DAY / IOC order lives for the first bar *of its asset* on which it is eligible,
in the stage where it can execute (same-close market and on-close orders: the close stage), and
expires after it. Exits at fill time: bracket legs never open a position, and with shorting off
no sell goes below flat; such an order is cut at the position held when it fills (a leg silently,
a sell with a ``short_not_allowed`` rejection for the cut part, at the fill's timestamp).

Accounts (semantics.md, "Accounts"): every fill is checked for buying power at its fill price
(a cash account's buy needs its cash, fee included; a margin account's opening part needs equity
to cover the initial margin of the gross exposure after the fill) and rejected or resized; at each
close a maintenance margin liquidates the largest position with a bar while equity is short of
it; equity <= 0 at the end of a timestamp ruins the account (pending orders and every later
order refused ``ruined``, positions closed at the next fill opportunity, exit reason ``ruin``).
Fill-time sizing (``execution.sizing = "fill"``) re-sizes value and percent targets when their
fill bar begins, at the account's value at that pass's reference prices. Not modelled: financing
and risk rules.

Instruments: ``config["instruments"]`` (``{asset: {"multiplier": m}}``) gives contract
multipliers: notionals, PnL, fees (on the notional), slippage cost, margin exposure and value
targets all scale by ``m``. Every position is kept on the notional (share) accounting: a
futures position marked to market has the same equity at every timestamp (cash differs by its
unsettled PnL), so the differential tests compare futures runs by equity, trades and fills.
Not modelled: ticks, lots, instrument margins, expiry and funding.

Currencies (semantics.md, *Instruments*, "Currencies"): an instrument's ``currency`` (default
the base, ``account.base_currency``), ``config["fx"]`` rows of (``timestamp``, ``currency``,
``rate`` in base per unit) applied at the start of the first timestamp at or after their time,
cash kept per currency (a fill's notional and fee, a dividend, cash in lieu and a delisting's
proceeds in the asset's currency; flows in base), every account figure in base at the rates in
force (equity, buying power, margins, margin calls, value and percent targets), fills with
``currency`` / ``fx_rate``, trades' PnL and costs in base (each amount at its fill's rate: exits
at their rates less the position's average cost in base) beside ``gross_pnl_local`` /
``net_pnl_local``, and ``account.auto_convert`` sweeping foreign cash to base at each close
less ``fx_fee``.
``OracleResult.cash`` is the per-currency cash table (a row when a balance or rate changed).
A foreign future is booked on the notional like any future, which gives the engine's equity
while foreign cash is kept; under ``auto_convert`` the sweep would convert the notional itself,
so that combination is not modelled.

The second half of the module holds engine-agnostic helpers for the tests: a seed-driven random
bar generator and strategy "logics" that only use the context's public methods, so the same logic
can drive both the oracle and the real engine.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Relative size below which a position or target difference is float rounding (semantics.md).
DUST = 1e-9

DEFAULT_CONFIG: dict[str, Any] = {
    "initial_cash": 100_000.0,
    "execution": {"mode": "next_open", "share_rounding": "fractional"},
    "commission": {"model": "none", "rate": 0.0, "amount": 0.0, "minimum": 0.0},
    "slippage": {"model": "none", "rate": 0.0, "amount": 0.0},
    "account": {"allow_short": True},
}

# Order kinds that fill at a reference price (open or close) rather than at a level.
_MARKET_KINDS = ("market", "market_on_close")


def merge_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Fill a (possibly partial) config dict with the defaults."""
    merged = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


@dataclass
class _Order:
    order_id: int
    timestamp: Any  # decision time
    asset: str
    quantity: float  # signed, still to fill
    kind: str = "market"  # market, limit, stop, stop_limit, market_on_close
    limit: float | None = None
    stop: float | None = None
    tif: str = "gtc"
    eligible: int = 0  # first timestamp index (0-based) at which it may fill
    active: bool = True  # bracket legs wait inactive until their entry fills
    parent: int | None = None  # bracket leg: the entry's id
    oco: int | None = None  # bracket leg: the other leg's id
    reason: str = "signal"  # exit reason of a trade this order closes
    fill_target: tuple[str, float] | None = None  # fill-time sizing: ("fraction"|"value", x)
    armed: bool = False  # stop-limit: triggered, resting as a limit
    had_bar: bool = False  # DAY/IOC: had its first eligible bar


@dataclass
class _OpenTrade:
    asset: str
    side: str  # "long" / "short"
    entry_time: Any
    entry_bar: int
    entry_qty: float = 0.0
    entry_notional: float = 0.0
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    exit_time: Any = None
    exit_bar: int | None = None
    gross_pnl: float = 0.0
    commission: float = 0.0
    multiplier: float = 1.0
    # the same totals in the base currency, each amount at its fill's rate
    gross_pnl_base: float = 0.0
    commission_base: float = 0.0


@dataclass
class OracleResult:
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    equity: list[dict[str, Any]] = field(default_factory=list)
    rejected_orders: list[dict[str, Any]] = field(default_factory=list)
    # the order journal's rows of the orders accepted into the book, as they were accepted
    orders: list[dict[str, Any]] = field(default_factory=list)
    ruined_at: Any = None  # the timestamp at whose end equity reached zero (None: never)
    # corporate actions: the dividends paid at each timestamp that paid any (signed)
    dividends: list[dict[str, Any]] = field(default_factory=list)
    # capital flows: the cash added (signed) at each timestamp that had any
    flows: list[dict[str, Any]] = field(default_factory=list)
    # several currencies: (timestamp, currency, cash, rate, converted, fx_fee) rows, sparse
    cash: list[dict[str, Any]] = field(default_factory=list)

    def to_polars(self) -> dict[str, Any]:
        import polars as pl

        return {
            "fills": pl.DataFrame(self.fills),
            "trades": pl.DataFrame(self.trades),
            "equity": pl.DataFrame(self.equity),
            "rejected_orders": pl.DataFrame(self.rejected_orders),
            "orders": pl.DataFrame(self.orders),
        }


def _bars_to_rows(bars: Any) -> list[dict[str, Any]]:
    source = bars.to_dicts() if hasattr(bars, "to_dicts") else bars  # a polars DataFrame or rows
    rows: list[dict[str, Any]] = [dict(r) for r in source]
    for r in rows:
        if "asset" not in r and "symbol" in r:
            r["asset"] = r.pop("symbol")
        r["asset"] = str(r["asset"])
    return rows


# --- the intrabar path ------------------------------------------------------------------------


class _Path:
    """A bar as four points open -> first extreme -> second extreme -> close.

    ``held`` is the sign of the position (for the pessimistic / optimistic policies)."""

    def __init__(self, bar: dict[str, Any], policy: str, held: float) -> None:
        o, h, lo, c = (float(bar[k]) for k in ("open", "high", "low", "close"))
        if policy == "pessimistic" and held != 0:
            low_first = held > 0  # the adverse extreme first
        elif policy == "optimistic" and held != 0:
            low_first = held < 0
        else:  # ohlc, and both others when flat: the extreme nearer the open (ties: the low)
            low_first = (o - lo) <= (h - o)
        self.points = [o, lo, h, c] if low_first else [o, h, lo, c]
        self.low, self.high = lo, h

    def price_at(self, t: float) -> float:
        k = min(math.floor(t), 2)
        frac = t - k
        p = self.points
        return p[k] + (p[k + 1] - p[k]) * frac

    def first_reach(self, level: float, up: bool, start: float) -> float | None:
        """First path time >= start with price >= level (up) or <= level (down)."""

        def reached(p: float) -> bool:
            return p >= level if up else p <= level

        if reached(self.price_at(start)):
            return start
        for k in range(min(math.floor(start), 2), 3):
            a, b = self.points[k], self.points[k + 1]
            if reached(b):
                t = k + ((level - a) / (b - a) if b != a else 0.0)
                return max(t, start)
        return None


class OracleContext:
    """What the strategy sees at one timestamp (same method names as the real context)."""

    def __init__(self, engine: OracleEngine, timestamp: Any) -> None:
        self._engine = engine
        self.timestamp = timestamp

    # --- state -------------------------------------------------------------------------------
    @property
    def cash(self) -> float:
        return self._engine.cash

    @property
    def equity(self) -> float:
        return self._engine.equity()

    def position(self, asset: str) -> float:
        return self._engine.position[asset]

    @property
    def positions(self) -> dict[str, float]:
        return {a: q for a, q in self._engine.position.items() if q != 0.0}

    def price(self, asset: str) -> float:
        p = self._engine.last_price[asset]
        return math.nan if p is None else p

    # --- orders --------------------------------------------------------------------------------
    def submit_order(
        self,
        asset: str,
        quantity: float,
        *,
        limit: float | None = None,
        stop: float | None = None,
        order_type: str | None = None,
        tif: str = "gtc",
        take_profit: float | None = None,
        stop_loss: float | None = None,
    ) -> int:
        """Any order type (no trailing stops); returns the order id."""
        if order_type == "market_on_close":
            kind = "market_on_close"
        elif limit is not None and stop is not None:
            kind = "stop_limit"
        elif limit is not None:
            kind = "limit"
        elif stop is not None:
            kind = "stop"
        else:
            kind = "market"
        return self._engine.submit(
            self.timestamp,
            asset,
            float(quantity),
            kind=kind,
            limit=limit,
            stop=stop,
            tif=tif,
            take_profit=take_profit,
            stop_loss=stop_loss,
        )

    def cancel_order(self, order_id: int) -> None:
        self._engine.cancel(self.timestamp, order_id)

    def _refused(self, asset: str, wants: bool = True) -> bool:
        """A ruined account refuses every target order (``ruined``, a new id, no quantity); a
        delisted asset every non-zero target (``delisted``; a zero target has nothing to do)."""
        e = self._engine
        if e.ruined:
            e.reject(self.timestamp, asset, math.nan, "ruined")
            return True
        if e.delisted(asset, self.timestamp):
            if wants:
                e.reject(self.timestamp, asset, math.nan, "delisted")
            return True
        return False

    def order_target_quantity(self, asset: str, quantity: float) -> None:
        e = self._engine
        if not self._refused(asset, quantity != 0.0):
            e.place_target(self.timestamp, asset, quantity)

    def _value_target(self, asset: str, kind: str, x: float) -> None:
        """A value (``x`` in cash) or percent (``x`` a fraction of equity) target: sized now at
        the last close, or with fill-time sizing an estimate re-sized when it fills."""
        e = self._engine
        if self._refused(asset, x != 0.0):
            return
        price = e.last_price[asset]
        if price is None:
            e.reject(self.timestamp, asset, math.nan, "no_price")
            return
        price *= e.unit(asset)  # a contract's notional, in base
        shares = x / price if kind == "value" else x * e.equity() / price
        if e.fill_sizing:
            e.place_fill_sized(self.timestamp, asset, (kind, x), shares)
        else:
            e.place_target(self.timestamp, asset, shares)

    def order_target_value(self, asset: str, value: float) -> None:
        self._value_target(asset, "value", value)

    def order_target_percent(self, asset: str, fraction: float) -> None:
        self._value_target(asset, "fraction", fraction)

    def close_position(self, asset: str) -> None:
        e = self._engine
        if not self._refused(asset, False):
            e.place_target(self.timestamp, asset, 0.0)

    def rebalance(self, weights: dict[str, float]) -> None:
        e = self._engine
        if e.ruined:  # one refusal per listed asset, nothing for the closes
            for asset in weights:
                self._refused(asset)
            return
        held_before = [a for a in e.assets if e.current(a) != 0.0]
        for asset, weight in weights.items():
            self.order_target_percent(asset, weight)
        for asset in held_before:
            if asset not in weights:
                self.close_position(asset)


class OracleEngine:
    def __init__(self, bars: Any, config: dict[str, Any] | None = None) -> None:
        self.config = merge_config(config)
        rows = _bars_to_rows(bars)
        self.assets: list[str] = sorted({r["asset"] for r in rows})  # asset code = index
        code = {a: i for i, a in enumerate(self.assets)}
        rows.sort(key=lambda r: (r["timestamp"], code[r["asset"]]))
        self.groups: list[tuple[Any, list[dict[str, Any]]]] = []
        for r in rows:
            if not self.groups or self.groups[-1][0] != r["timestamp"]:
                self.groups.append((r["timestamp"], []))
            self.groups[-1][1].append(r)

        execution = self.config["execution"]
        self.mode = execution["mode"]
        self.integer = execution["share_rounding"] == "integer"
        self.path_policy = execution.get("intrabar_path", "ohlc")
        self.limit_fill = execution.get("limit_fill", "touch")
        self.limit_through = float(execution.get("limit_through") or 0.0)
        self.fill_sizing = execution.get("sizing", "decision") == "fill"
        account = self.config["account"]
        self.cash_account = account.get("type", "margin") == "cash"
        # a cash account never shorts
        self.allow_short = bool(account["allow_short"]) and not self.cash_account
        self.initial_margin: float | None = account.get("initial_margin", 0.5)
        if "maintenance_margin" in account:
            self.maintenance_margin: float | None = account["maintenance_margin"]
        elif self.initial_margin is None or self.initial_margin < 0.25:
            self.maintenance_margin = self.initial_margin  # follows a lower initial margin
        else:
            self.maintenance_margin = 0.25
        self.resize = account.get("on_insufficient", "reject") == "resize"
        specs = self.config.get("instruments") or {}
        self.multiplier = {a: float(specs.get(a, {}).get("multiplier", 1.0)) for a in self.assets}
        # currencies: each asset's quote currency, the cash and rate per currency, the rates
        self.base = str(account.get("base_currency") or "USD")
        self.currency = {a: specs.get(a, {}).get("currency") or self.base for a in self.assets}
        fx = sorted(self.config.get("fx") or [], key=lambda r: (r["timestamp"], r["currency"]))
        self._fx = [(r["timestamp"], str(r["currency"]), float(r["rate"])) for r in fx]
        self._next_fx = 0
        foreign = sorted({c for c in self.currency.values() if c != self.base})
        self.currencies = [self.base, *foreign]
        self.several = bool(foreign)
        self.balance = {c: 0.0 for c in self.currencies}
        self.balance[self.base] = float(self.config["initial_cash"])
        self.rate = {c: math.nan for c in self.currencies}
        self.rate[self.base] = 1.0
        self.auto_convert = bool(account.get("auto_convert", False))
        self.fx_fee = float(account.get("fx_fee", 0.0) or 0.0)
        self._recorded = {c: (math.nan, math.nan) for c in self.currencies}
        self._swept: dict[str, tuple[float, float]] = {}
        # delistings (docs/semantics.md, "Delistings"): an asset with no bar in the data's last
        # `delisting_gap` timestamps is closed at its last bar (on_delisting="close")
        self.last_bar: dict[str, Any] = {}
        self.delisting_return: dict[str, float] = {}
        gap = int(execution.get("delisting_gap", 5))
        if execution.get("on_delisting", "close") == "close" and len(self.assets) > 1:
            if len(self.groups) >= gap:
                cutoff = self.groups[-gap][0]
                for ts, group in self.groups:
                    for r in group:
                        self.last_bar[r["asset"]] = ts
                self.last_bar = {a: t for a, t in self.last_bar.items() if t < cutoff}
        # the point-in-time universe (docs/semantics.md, "Point-in-time universe"): per asset
        # its (timestamp, member) rows in time order; None: every asset is a member
        self.membership: dict[str, list[tuple[Any, bool]]] | None = None
        self.reject_non_members = execution.get("on_non_member", "reject") == "reject"
        self.ruined = False
        self.position = {a: 0.0 for a in self.assets}
        self.avg_cost = {a: 0.0 for a in self.assets}
        self.avg_cost_base = {a: 0.0 for a in self.assets}  # in base, entries at their rates
        self.last_price: dict[str, float | None] = {a: None for a in self.assets}
        self.bars_seen = {a: 0 for a in self.assets}
        self.pending: list[_Order] = []  # the book, in submission order (legs after their entry)
        self.asset_of: dict[int, str] = {}  # every order id used so far (accepted or rejected)
        self.open_trade: dict[str, _OpenTrade | None] = {a: None for a in self.assets}
        self.next_order_id = 1
        self.index = 0  # 0-based index of the current timestamp
        self.result = OracleResult()

    # --- helpers -------------------------------------------------------------------------------
    @property
    def cash(self) -> float:
        """Cash in base: Σ each currency's cash x its rate now."""
        total = self.balance[self.base]
        for c in self.currencies[1:]:
            if self.balance[c] != 0.0:
                total += self.balance[c] * self.rate[c]
        return total

    def credit(self, asset: str | None, amount: float) -> None:
        """Adds ``amount`` to the cash of ``asset``'s currency (``None``: the base)."""
        self.balance[self.base if asset is None else self.currency[asset]] += amount

    def rate_of(self, asset: str) -> float:
        """Base units per unit of ``asset``'s currency now."""
        return self.rate[self.currency[asset]]

    def unit(self, asset: str) -> float:
        """What one unit of price of ``asset`` is worth in base: multiplier x rate."""
        return self.multiplier[asset] * self.rate_of(asset)

    def _apply_fx(self, timestamp: Any) -> None:
        """Step 0: the rates dated at or before ``timestamp`` take effect."""
        while self._next_fx < len(self._fx) and self._fx[self._next_fx][0] <= timestamp:
            _, c, rate = self._fx[self._next_fx]
            if c in self.rate:
                self.rate[c] = rate
            self._next_fx += 1

    def _close_fx(self, timestamp: Any) -> None:
        """End of a timestamp: ``auto_convert`` sweeps foreign cash to base less its fee; then
        each currency whose cash or rate changed gets a row in the cash table."""
        swept: dict[str, tuple[float, float]] = {}
        if self.auto_convert:
            for c in self.currencies[1:]:
                amount, rate = self.balance[c], self.rate[c]
                if amount == 0.0 or not math.isfinite(rate):
                    continue
                base = amount * rate
                charged = abs(base) * self.fx_fee
                self.balance[self.base] += base - charged
                self.balance[c] = 0.0
                swept[c] = (amount, charged)
        for c in self.currencies:
            balance, rate = self.balance[c], self.rate[c]
            amount, fee = swept.get(c, (0.0, 0.0))
            last = self._recorded[c]
            same = last[0] == balance and (
                last[1] == rate or (math.isnan(last[1]) and math.isnan(rate))
            )
            if same and amount == 0.0:
                continue
            self._recorded[c] = (balance, rate)
            self.result.cash.append(
                {
                    "timestamp": timestamp,
                    "currency": c,
                    "cash": balance,
                    "rate": rate,
                    "converted": amount,
                    "fx_fee": fee,
                }
            )

    def equity(self) -> float:
        long_value, short_value = self.market_values()
        return self.cash + long_value + short_value

    def market_values(self) -> tuple[float, float]:
        u = self.unit
        long_value = sum(q * self.mark(a) * u(a) for a, q in self.position.items() if q > 0)
        short_value = sum(q * self.mark(a) * u(a) for a, q in self.position.items() if q < 0)
        return long_value, short_value

    def mark(self, asset: str) -> float:
        price = self.last_price[asset]
        assert price is not None, f"{asset} is held but has no price"
        return price

    def current(self, asset: str) -> float:
        """Position plus the quantity of this asset's pending market and on-close orders
        (resting limit and stop orders may never fill, so sizing does not count them)."""
        return self.position[asset] + sum(
            o.quantity
            for o in self.pending
            if o.asset == asset and o.active and o.kind in _MARKET_KINDS
        )

    def reject(self, timestamp: Any, asset: str, quantity: float, reason: str) -> None:
        """Rejects an order that takes a new id."""
        self._rejection(self.next_order_id, timestamp, asset, quantity, reason)
        self.next_order_id += 1

    def _rejection(
        self, order_id: int, timestamp: Any, asset: str, quantity: float, reason: str
    ) -> None:
        if reason != "not_pending" and order_id:
            self.asset_of[order_id] = asset
        self.result.rejected_orders.append(
            {
                "order_id": order_id,
                "timestamp": timestamp,
                "asset": asset,
                "quantity": quantity,
                "reason": reason,
            }
        )

    def _eligible(self, kind: str) -> int:
        """First timestamp index at which an order of ``kind`` decided now may fill: market and
        on-close orders this bar in same-close mode, everything else the next bar."""
        same_bar = self.mode == "same_close" and kind in _MARKET_KINDS
        return self.index + (0 if same_bar else 1)

    def place_target(self, timestamp: Any, asset: str, target: float) -> None:
        """A target order: trade ``target - current``; a difference of at most DUST times the
        largest of the two and the position is float rounding, not a trade, and is dropped."""
        current = self.current(asset)
        quantity = target - current
        if abs(quantity) <= DUST * max(abs(target), abs(current), abs(self.position[asset])):
            return
        self.place(timestamp, asset, quantity, target_based=True)

    def place_fill_sized(
        self, timestamp: Any, asset: str, target: tuple[str, float], shares: float
    ) -> None:
        """Fill-time sizing at decision time: the newest target of an asset replaces a
        fill-sized order still waiting for it; the order carries the decision-time estimate
        (queued even when it is zero: the fill bar's prices decide), cut for shorting now."""
        self.pending = [o for o in self.pending if not (o.asset == asset and o.fill_target)]
        estimate = shares - self.current(asset)
        if self.integer:
            estimate = float(math.trunc(estimate))
        order_id = self.next_order_id
        self.next_order_id += 1
        if estimate != 0.0:
            estimate = self._short_cut(timestamp, order_id, asset, estimate)
            if estimate == 0.0:
                return
            estimate = self._member_cut(timestamp, order_id, asset, estimate)
            if estimate == 0.0:
                return
        eligible = self._eligible("market")
        self._accept(_Order(order_id, timestamp, asset, estimate, eligible=eligible))
        self.pending[-1].fill_target = target

    def is_member(self, asset: str, timestamp: Any) -> bool:
        """The asset's latest membership row at or before ``timestamp``; not a member before its
        first row (always a member without a universe)."""
        if self.membership is None:
            return True
        member = False
        for ts, value in self.membership.get(asset, []):
            if ts > timestamp:
                break
            member = value
        return member

    def _member_cut(self, timestamp: Any, order_id: int, asset: str, quantity: float) -> float:
        """At decision time: the part of an order that would open or grow a position in a
        non-member is refused (``non_member``); what reduces position plus pending passes."""
        if not self.reject_non_members or self.is_member(asset, timestamp):
            return quantity
        current = self.current(asset)
        closing = 0.0
        if current * quantity < 0:
            closing = _sign(quantity) * min(abs(quantity), abs(current))
        opening = quantity - closing
        if opening == 0.0:
            return quantity
        self._rejection(order_id, timestamp, asset, opening, "non_member")
        return closing

    def _cap_non_member(self, timestamp: Any, order: _Order) -> bool:
        """At fill time: a non-leg order that would open or grow a position in an asset that is
        not a member now is cut at flat (the cut part refused ``non_member``)."""
        if not self.reject_non_members or order.parent is not None:
            return True
        if self.is_member(order.asset, timestamp):
            return True
        q = order.quantity
        held = self.position[order.asset]
        room = abs(held) if held != 0.0 and _sign(held) != _sign(q) else 0.0
        if abs(q) <= room or abs(q) - room <= DUST * room:
            return True
        excess = q - room * _sign(q)
        self._rejection(order.order_id, timestamp, order.asset, excess, "non_member")
        if room == 0.0:
            self._remove_with_waiting_legs(order)
            return False
        order.quantity = q - excess
        return True

    def _short_cut(self, timestamp: Any, order_id: int, asset: str, quantity: float) -> float:
        """With shorting disabled, a sell is cut at a flat position; 0.0 (and a rejection) when
        nothing is left."""
        if self.allow_short or quantity >= 0:
            return quantity
        current = self.current(asset)
        if current + quantity < 0:
            if current <= 0:
                self._rejection(order_id, timestamp, asset, quantity, "short_not_allowed")
                return 0.0
            return -current  # cut at zero
        return quantity

    def place(self, timestamp: Any, asset: str, quantity: float, *, target_based: bool) -> None:
        """Steps 4-5 for one market order: round, drop zero, cut shorts, queue."""
        if self.integer and target_based:
            quantity = float(math.trunc(quantity))  # toward zero
        if quantity == 0.0:
            return  # nothing to trade: dropped silently
        order_id = self.next_order_id
        self.next_order_id += 1
        quantity = self._short_cut(timestamp, order_id, asset, quantity)
        if quantity == 0.0:
            return
        quantity = self._member_cut(timestamp, order_id, asset, quantity)
        if quantity == 0.0:
            return
        self._accept(
            _Order(order_id, timestamp, asset, quantity, eligible=self._eligible("market"))
        )

    def submit(
        self,
        timestamp: Any,
        asset: str,
        quantity: float,
        *,
        kind: str,
        limit: float | None,
        stop: float | None,
        tif: str,
        take_profit: float | None,
        stop_loss: float | None,
    ) -> int:
        """An explicit order of any kind with optional bracket legs (ids: entry, take profit,
        stop loss, in that order)."""
        if quantity == 0.0 or not math.isfinite(quantity):
            raise ValueError(f"quantity: must be finite and non-zero, got {quantity}")
        if self.integer and quantity != math.trunc(quantity):
            raise ValueError(f"quantity: must be whole with integer rounding, got {quantity}")
        # Bracket legs on the right sides: for a buy the take profit strictly above the stop loss
        # and the entry's limit, the stop loss strictly below that limit (mirrored for a sell).
        up = 1.0 if quantity > 0 else -1.0
        entry_limit = limit if kind in ("limit", "stop_limit") else None
        if take_profit is not None and (
            (stop_loss is not None and up * (take_profit - stop_loss) <= 0)
            or (entry_limit is not None and up * (take_profit - entry_limit) <= 0)
        ):
            raise ValueError(f"take_profit: on the wrong side, got {take_profit}")
        if (
            stop_loss is not None
            and entry_limit is not None
            and up * (entry_limit - stop_loss) <= 0
        ):
            raise ValueError(f"stop_loss: on the wrong side, got {stop_loss}")
        order_id = self.next_order_id
        tp_id = order_id + 1 if take_profit is not None else None
        sl_id = order_id + 1 + (tp_id is not None) if stop_loss is not None else None
        self.next_order_id += 1 + (tp_id is not None) + (sl_id is not None)
        if self.ruined:
            self._rejection(order_id, timestamp, asset, quantity, "ruined")
            return order_id
        if self.delisted(asset, timestamp):
            self._rejection(order_id, timestamp, asset, quantity, "delisted")
            return order_id
        quantity = self._short_cut(timestamp, order_id, asset, quantity)
        if quantity == 0.0:
            return order_id
        quantity = self._member_cut(timestamp, order_id, asset, quantity)
        if quantity == 0.0:
            return order_id
        eligible = self._eligible(kind)
        self._accept(_Order(order_id, timestamp, asset, quantity, kind, limit, stop, tif, eligible))
        if tp_id is not None:
            self._accept(
                _Order(
                    tp_id,
                    timestamp,
                    asset,
                    -quantity,
                    "limit",
                    limit=take_profit,
                    eligible=eligible,
                    active=False,
                    parent=order_id,
                    oco=sl_id,
                    reason="take_profit",
                )
            )
        if sl_id is not None:
            self._accept(
                _Order(
                    sl_id,
                    timestamp,
                    asset,
                    -quantity,
                    "stop",
                    stop=stop_loss,
                    eligible=eligible,
                    active=False,
                    parent=order_id,
                    oco=tp_id,
                    reason="stop_loss",
                )
            )
        return order_id

    def _accept(self, order: _Order) -> None:
        self.asset_of[order.order_id] = order.asset
        self.pending.append(order)
        self.result.orders.append(
            {
                "order_id": order.order_id,
                "timestamp": order.timestamp,
                "asset": order.asset,
                "side": None if order.quantity == 0 else ("buy" if order.quantity > 0 else "sell"),
                "order_type": order.kind,
                "quantity": abs(order.quantity),
                "limit": order.limit,
                "stop": order.stop,
                "tif": order.tif,
                "parent_id": order.parent,
                "oco_id": order.oco,
                "exit_reason": order.reason,
            }
        )

    def cancel(self, timestamp: Any, order_id: int) -> None:
        """Cancels a pending order and the waiting legs of a bracket entry; otherwise a
        ``not_pending`` rejection (the named order's asset, code 0 for an id never used; no
        quantity); a ruined account refuses it (``ruined``)."""
        if self.ruined:
            asset = self.asset_of.get(order_id, self.assets[0])
            self._rejection(order_id, timestamp, asset, math.nan, "ruined")
            return
        order = next((o for o in self.pending if o.order_id == order_id), None)
        if order is None:
            asset = self.asset_of.get(order_id, self.assets[0])
            self._rejection(order_id, timestamp, asset, math.nan, "not_pending")
            return
        self.pending = [
            o
            for o in self.pending
            if o is not order and not (o.parent == order_id and not o.active)
        ]

    # --- matching ----------------------------------------------------------------------------
    def _margin(self, limit: float) -> float:
        if self.limit_fill == "through_amount":
            return self.limit_through
        if self.limit_fill == "through_fraction":
            return self.limit_through * limit
        return 0.0

    def _limit(
        self, path: _Path, buy: bool, limit: float, start: float
    ) -> tuple[float, float] | None:
        """(time, fill price) of a limit: at the price at ``start`` when that is strictly better
        than the limit (gap rule, whatever the through rule says) or exactly at it under the
        touch rule; else at the limit when the price first trades at the limit (beyond it by the
        through margin). With a through rule a price exactly at the limit is only a touch."""
        margin = self._margin(limit)
        here = path.price_at(start)
        better = here < limit if buy else here > limit
        if better or (here == limit and margin == 0.0):
            return start, here
        level = limit - margin if buy else limit + margin
        t = path.first_reach(level, not buy, start)
        return None if t is None else (t, limit)

    @staticmethod
    def _stop(path: _Path, buy: bool, stop: float, start: float) -> tuple[float, float] | None:
        """(time, reference) of a stop: the stop level, or the price when already beyond it."""
        t = path.first_reach(stop, buy, start)
        if t is None:
            return None
        here = path.price_at(t)
        gapped = here > stop if buy else here < stop
        return t, (here if gapped else stop)

    def _trigger(
        self, order: _Order, path: _Path, start: float, stage: str
    ) -> tuple[float, float, bool] | str | None:
        """(time, reference, limit_like), "armed" for a stop-limit that must rest, or None."""
        buy = order.quantity > 0
        if order.kind == "market":
            if stage == "close" or self.mode != "next_open":  # the close modes
                return 3.0, path.points[3], False
            return start, path.price_at(start), False
        if order.kind == "market_on_close":
            return 3.0, path.points[3], False
        if order.kind == "limit" or (order.kind == "stop_limit" and order.armed):
            assert order.limit is not None
            hit = self._limit(path, buy, order.limit, start)
            return None if hit is None else (*hit, True)
        assert order.stop is not None
        triggered = self._stop(path, buy, order.stop, start)
        if triggered is None:
            return None
        if order.kind == "stop":
            return (*triggered, False)
        # stop-limit: fills at the trigger price only if it is within the limit
        assert order.limit is not None
        t, price = triggered
        within = price <= order.limit if buy else price >= order.limit
        return (t, price, True) if within else "armed"

    def _stage(self, timestamp: Any, bars: dict[str, dict[str, Any]], stage: str) -> None:
        """One fill pass: every eligible order of an asset with a bar, in (trigger time, exits
        first, submission order); bracket legs join from their entry's fill time."""
        queue: list[tuple[float, int, int, _Order, float, bool]] = []
        armed: list[_Order] = []
        seq = {id(o): k for k, o in enumerate(self.pending)}

        def consider(order: _Order, start: float) -> None:
            bar = bars.get(order.asset)
            if bar is None or not order.active or order.quantity == 0.0:
                return
            if order.eligible > self.index:
                return
            at_close = self.mode == "same_close" and order.kind in _MARKET_KINDS
            if (stage == "close") != at_close:
                return
            order.had_bar = True
            held = self.position[order.asset]
            hit = self._trigger(order, _Path(bar, self.path_policy, _sign(held)), start, stage)
            if hit == "armed":
                armed.append(order)
            elif isinstance(hit, tuple):
                q = order.quantity
                exit_ = held != 0.0 and _sign(q) != _sign(held) and abs(q) <= abs(held)
                t, reference, limit_like = hit
                queue.append((t, 0 if exit_ else 1, seq[id(order)], order, reference, limit_like))

        self._size_at_fill(timestamp, bars, stage)
        for order in list(self.pending):
            consider(order, 0.0)
        while queue:
            queue.sort(key=lambda c: c[:3])
            t, _, _, order, reference, limit_like = queue.pop(0)
            if order.quantity == 0.0 or order not in self.pending:
                continue  # cancelled earlier in this bar (one-cancels-other, orphaned leg)
            if not self._cap_at_flat(timestamp, order):
                continue
            if not self._cap_non_member(timestamp, order):
                continue
            for leg in self._execute(timestamp, order, bars[order.asset], reference, limit_like):
                consider(leg, t)

        # after the pass: arm stop-limits, expire DAY / IOC orders that had their bar
        for order in armed:
            order.armed = True
        for order in list(self.pending):
            if order.tif != "gtc" and order.had_bar and order.active and order.quantity != 0:
                self._rejection(order.order_id, timestamp, order.asset, order.quantity, "expired")
                self.pending = [
                    o
                    for o in self.pending
                    if o is not order and not (o.parent == order.order_id and not o.active)
                ]

    def _due(self, order: _Order, bars: dict[str, dict[str, Any]], stage: str) -> bool:
        """Whether ``order`` may execute in this stage now (eligible, active, its asset has a
        bar, the stage is its own)."""
        at_close = self.mode == "same_close" and order.kind in _MARKET_KINDS
        return (
            order.active
            and order.eligible <= self.index
            and order.asset in bars
            and (stage == "close") == at_close
        )

    def _reference(self, asset: str, bars: dict[str, dict[str, Any]], stage: str) -> float:
        """The price an asset's market orders fill at in this stage, before slippage (the open
        in next-open mode, else the close); an asset without a bar keeps its last mark."""
        bar = bars.get(asset)
        if bar is None:
            return self.mark(asset)
        at_close = stage == "close" or self.mode != "next_open"
        return float(bar["close"] if at_close else bar["open"])

    def _size_at_fill(self, timestamp: Any, bars: dict[str, dict[str, Any]], stage: str) -> None:
        """Fill-time sizing: each due fill-sized order becomes its target at the account's
        value V' = cash + sum of positions at this stage's reference prices (taken once, before
        any fill), less the position and the asset's other pending market orders; nothing left
        to trade cancels it, and without shorting it stops at flat."""
        value: float | None = None
        for order in list(self.pending):
            if order.fill_target is None or not self._due(order, bars, stage):
                continue
            if value is None:
                value = self.cash + sum(
                    q * self._reference(a, bars, stage) * self.unit(a)
                    for a, q in self.position.items()
                    if q
                )
            kind, x = order.fill_target
            reference = self._reference(order.asset, bars, stage) * self.unit(order.asset)
            shares = x / reference if kind == "value" else x * value / reference
            held = self.position[order.asset]
            others = self.current(order.asset) - held - order.quantity
            q = shares - held - others
            if self.integer:
                q = float(math.trunc(q))
            if not self.allow_short and held + others + q < 0:
                q = -max(held + others, 0.0)
            if q == 0.0 or abs(q) <= DUST * max(abs(shares), abs(held)):
                self.pending.remove(order)  # cancelled: nothing to trade
                continue
            order.quantity = q

    def _afford(self, timestamp: Any, order: _Order, price: float) -> bool:
        """Buying power at the fill price (semantics.md, "Accounts"). A cash account's buy needs
        ``q * price + fee(q) <= cash``; a margin account with an initial margin ``m`` lets the
        opening part of a fill add gross exposure only while ``gross after * m <= equity``
        (equity and the other exposure at the last marks before the fill, the opening part at
        the fill price; the closing part is always allowed). An unaffordable order is rejected
        (removed) or resized to the affordable part, the cut part recorded with the reason.
        Returns False when the order was rejected."""
        q = order.quantity
        m = self.unit(order.asset)  # in base
        if self.cash_account and q > 0:
            rate = self.rate_of(order.asset)
            allowed = min(self._cash_capacity(price * self.multiplier[order.asset], rate), q)
            reason = "insufficient_cash"
        elif not self.cash_account and self.initial_margin is not None:
            held = self.position[order.asset]
            closing = min(abs(q), abs(held)) if held != 0.0 and _sign(held) != _sign(q) else 0.0
            long_value, short_value = self.market_values()
            equity = self.cash + long_value + short_value
            gross = long_value - short_value
            if closing:
                gross -= closing * self.mark(order.asset) * m  # the closed part leaves the gross
            room = max(equity / self.initial_margin - gross, 0.0) / (price * m)
            allowed = min(closing + room, abs(q)) * _sign(q)
            reason = "insufficient_margin"
        else:
            return True
        if self.integer:
            allowed = float(math.trunc(allowed))
        if abs(allowed) >= abs(q):
            return True
        resize = self.resize and not abs(allowed) <= DUST * abs(q)
        cut = q - allowed if resize else q
        self._rejection(order.order_id, timestamp, order.asset, cut, reason)
        if not resize:
            self._remove_with_waiting_legs(order)
            return False
        order.quantity = allowed
        return True

    def _fee(self, quantity: float, price: float) -> float:
        """The commission of a fill of ``quantity`` (absolute) shares at ``price``."""
        c = self.config["commission"]
        model = c["model"]
        if model == "percent":
            fee = c["rate"] * quantity * price
        elif model == "per_share":
            fee = c["rate"] * quantity
        elif model == "per_order":
            fee = c["amount"]
        else:
            fee = 0.0
        return float(max(fee, c.get("minimum") or 0.0, 0.0))

    def _cash_capacity(self, price: float, rate: float = 1.0) -> float:
        """The largest q >= 0 with ``q * price + fee(q) <= cash`` (the fee at ``price``; both
        in the asset's currency, the cash in base converted at ``rate``)."""
        c, cash = self.config["commission"], self.cash / rate
        model, minimum = c["model"], c.get("minimum") or 0.0
        if model == "percent":
            q = cash / (price * (1 + c["rate"]))
            if c["rate"] * q * price < minimum:
                q = (cash - minimum) / price
        elif model == "per_share":
            q = cash / (price + c["rate"])
            if c["rate"] * q < minimum:
                q = (cash - minimum) / price
        elif model == "per_order":
            q = (cash - max(c["amount"], minimum)) / price
        else:
            q = cash / price
        return max(q, 0.0)

    def _margin_call(self, timestamp: Any, bars: dict[str, dict[str, Any]]) -> None:
        """At the close, while equity < maintenance x gross exposure: the largest position
        (market value; ties to the lower code) with a bar now is closed at the close, with
        slippage and commission (exit reason ``margin_call``)."""
        k = self.maintenance_margin
        assert k is not None
        while True:
            long_value, short_value = self.market_values()
            gross = long_value - short_value
            if gross == 0.0 or self.cash + long_value + short_value >= k * gross:
                return
            held = [a for a in self.assets if self.position[a] != 0.0 and a in bars]
            if not held:
                return
            asset = max(
                held,
                key=lambda a: (
                    abs(self.position[a] * self.mark(a) * self.unit(a)),
                    -self.assets.index(a),
                ),
            )
            order = _Order(
                self.next_order_id, timestamp, asset, -self.position[asset], reason="margin_call"
            )
            self.next_order_id += 1
            self._accept(order)
            self._execute(timestamp, order, bars[asset], float(bars[asset]["close"]), False)

    def _ruin(self, timestamp: Any) -> None:
        """Equity <= 0 at the end of a timestamp: every pending order is refused (``ruined``)
        and each open position gets a market order to flat, sized when it fills, eligible from
        the next timestamp (exit reason ``ruin``)."""
        self.ruined = True
        self.result.ruined_at = timestamp
        for o in self.pending:
            self._rejection(o.order_id, timestamp, o.asset, o.quantity, "ruined")
        self.pending = []
        for a in self.assets:
            if self.position[a] != 0.0:
                order = _Order(
                    self.next_order_id,
                    timestamp,
                    a,
                    -self.position[a],
                    eligible=self.index + 1,
                    reason="ruin",
                    fill_target=("value", 0.0),
                )
                self.next_order_id += 1
                self._accept(order)

    def _cap_at_flat(self, timestamp: Any, order: _Order) -> bool:
        """Bracket legs never open (or grow) a position, and with shorting disabled no sell goes
        below flat: at fill time such an order is cut at the position held then, a leg silently,
        a sell with a ``short_not_allowed`` rejection (at this timestamp) for the cut part.
        Returns False when nothing is left (the order is removed, a removed entry with its
        waiting legs)."""
        q = order.quantity
        is_leg = order.parent is not None
        no_short_sell = not self.allow_short and q < 0
        if not is_leg and not no_short_sell:
            return True
        held = self.position[order.asset]
        room = abs(held) if held != 0.0 and _sign(held) != _sign(q) else 0.0
        # An excess within DUST of the room is float rounding, not a cut (semantics.md).
        if abs(q) <= room or abs(q) - room <= DUST * room:
            return True
        excess = q - room * _sign(q)
        if no_short_sell and not is_leg:
            self._rejection(order.order_id, timestamp, order.asset, excess, "short_not_allowed")
        if room == 0.0:
            if is_leg:
                self.pending.remove(order)
                order.quantity = 0.0
            else:
                self._remove_with_waiting_legs(order)
            return False
        order.quantity = q - excess
        return True

    def _remove_with_waiting_legs(self, order: _Order) -> None:
        """Removes an entry that will never fill, and its waiting bracket legs with it (they
        could never activate; cancelled, no rejection row)."""
        self.pending = [
            o
            for o in self.pending
            if o is not order and not (o.parent == order.order_id and not o.active)
        ]
        order.quantity = 0.0

    def _execute(
        self,
        timestamp: Any,
        order: _Order,
        bar: dict[str, Any],
        reference: float,
        limit_like: bool,
    ) -> list[_Order]:
        """Fills ``order`` completely; returns the bracket legs it activates."""
        cfg_s = self.config["slippage"]
        q = order.quantity
        side = 1 if q > 0 else -1

        # fill price: a limit fills at its price (no slippage); everything else slips against
        # the trader; then the clamp into [low, high]
        if limit_like:
            price = reference
        elif cfg_s["model"] == "fixed":
            price = reference + side * cfg_s["amount"]
        elif cfg_s["model"] == "percent":
            price = reference * (1 + side * cfg_s["rate"])
        else:
            price = reference
        price = min(max(price, float(bar["low"])), float(bar["high"]))
        if not self._afford(timestamp, order, price):
            return []
        q = order.quantity  # a resize shrank it

        aq = abs(q)
        m = self.multiplier[order.asset]
        fee = self._fee(aq, price * m)

        self.credit(order.asset, -(q * price * m + fee))
        self.result.fills.append(
            {
                "order_id": order.order_id,
                "timestamp": timestamp,
                "asset": order.asset,
                "side": "buy" if q > 0 else "sell",
                "order_type": order.kind,
                "quantity": aq,
                "price": price,
                "reference_price": reference,
                "slippage": abs(price - reference) * aq * m,
                "commission": fee,
                "partial": False,
                "currency": self.currency[order.asset],
                "fx_rate": self.rate_of(order.asset),
            }
        )
        before = self.position[order.asset]
        self._book(timestamp, order.asset, q, price, fee, order.reason)
        after = self.position[order.asset]
        self.pending.remove(order)
        order.quantity = 0.0
        if before != 0.0 and (after == 0.0 or _sign(after) != _sign(before)):
            # the protected position is gone: its remaining bracket legs are cancelled
            self.pending = [
                o for o in self.pending if not (o.asset == order.asset and o.parent and o.active)
            ]
        if order.oco is not None:  # one-cancels-other: the sibling shrinks by the same amount
            for sibling in self.pending:
                if sibling.order_id == order.oco:
                    if abs(sibling.quantity) <= aq:
                        self.pending.remove(sibling)
                    else:
                        sibling.quantity += q
                    break
        legs = [o for o in self.pending if o.parent == order.order_id and not o.active]
        for leg in legs:
            leg.active = True
        return legs

    def _book(
        self, timestamp: Any, asset: str, q: float, price: float, fee: float, reason: str
    ) -> None:
        """Average-cost position update, realised PnL and round-trip bookkeeping."""
        bar_idx = self.bar_index[asset]
        old = self.position[asset]
        aq = abs(q)
        rate = self.rate_of(asset)
        if old == 0.0 or _sign(old) == _sign(q):  # open or increase
            if old == 0.0:
                self._open_trade(timestamp, asset, q, bar_idx)
            trade = self.open_trade[asset]
            assert trade is not None
            self.avg_cost[asset] = (self.avg_cost[asset] * abs(old) + price * aq) / (abs(old) + aq)
            self.avg_cost_base[asset] = (
                self.avg_cost_base[asset] * abs(old) + price * rate * aq
            ) / (abs(old) + aq)
            self.position[asset] = old + q
            trade.entry_qty += aq
            trade.entry_notional += aq * price
            trade.commission += fee
            trade.commission_base += fee * rate
            return

        # reduce, close or cross
        trade = self.open_trade[asset]
        assert trade is not None
        closed = min(aq, abs(old))
        avg = self.avg_cost[asset]
        pnl = (closed * (price - avg) if old > 0 else closed * (avg - price)) * self.multiplier[
            asset
        ]
        trade.gross_pnl += pnl
        entry_base = self.avg_cost_base[asset]
        trade.gross_pnl_base += (
            closed * (price * rate - entry_base) * _sign(old) * self.multiplier[asset]
        )
        trade.commission_base += fee * closed / aq * rate
        trade.exit_qty += closed
        trade.exit_notional += closed * price
        trade.exit_time = timestamp
        trade.exit_bar = bar_idx
        trade.commission += fee * (closed / aq)
        new = old + q
        if abs(new) <= DUST * max(abs(old), aq):
            new = 0.0  # float rounding left dust: the position is closed
        self.position[asset] = new
        if new != 0.0 and _sign(new) == _sign(old):
            return  # partial reduction: average cost unchanged
        self._close_trade(asset, trade, reason)
        self.avg_cost[asset] = 0.0
        self.avg_cost_base[asset] = 0.0
        if new != 0.0:  # crossed zero: the rest opens a new trade at this price
            rest = aq - abs(old)
            new = self._open_trade(timestamp, asset, q, bar_idx)
            new.entry_qty += rest
            new.entry_notional += rest * price
            new.commission += fee * (rest / aq)
            new.commission_base += fee * (rest / aq) * rate
            self.avg_cost[asset] = price
            self.avg_cost_base[asset] = price * rate

    def _open_trade(self, timestamp: Any, asset: str, q: float, bar_idx: int) -> _OpenTrade:
        trade = _OpenTrade(asset, "long" if q > 0 else "short", timestamp, bar_idx)
        trade.multiplier = self.multiplier[asset]
        self.open_trade[asset] = trade
        return trade

    def _close_trade(self, asset: str, t: _OpenTrade, reason: str = "signal") -> None:
        assert t.exit_bar is not None
        self.result.trades.append(
            self._trade_record(
                t,
                t.exit_time,
                t.exit_notional / t.exit_qty,
                t.gross_pnl_base,
                t.gross_pnl,
                t.exit_bar - t.entry_bar,
                reason,
                "closed",
            )
        )
        self.open_trade[asset] = None

    @staticmethod
    def _trade_record(
        t: _OpenTrade,
        exit_time: Any,
        exit_price: float,
        gross: float,
        gross_local: float,
        bars_held: int,
        reason: str,
        status: str,
    ) -> dict[str, Any]:
        entry_price = t.entry_notional / t.entry_qty
        net = gross - t.commission_base
        return {
            "asset": t.asset,
            "side": t.side,
            "entry_time": t.entry_time,
            "exit_time": exit_time,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "quantity": t.entry_qty,
            "gross_pnl": gross,
            "commission": t.commission_base,
            "net_pnl": net,
            "gross_pnl_local": gross_local,
            "net_pnl_local": gross_local - t.commission,
            # of the notional (in the asset's currency, as the engine's result computes it)
            "return_pct": net / (entry_price * t.entry_qty * t.multiplier),
            "bars_held": bars_held,
            "exit_reason": reason,
            "status": status,
        }

    # --- corporate actions (docs/semantics.md, "Corporate actions") ---------------------------
    _actions: tuple[dict[str, Any], ...] = ()

    def set_actions(self, actions: list[dict[str, Any]] | None) -> None:
        """Splits and dividends: dicts of ``timestamp`` (the ex-date), ``asset`` and optional
        ``split_ratio`` (new shares per old) and ``dividend`` (cash per share)."""
        code = {a: i for i, a in enumerate(self.assets)}
        rows = sorted(actions or [], key=lambda x: (x["timestamp"], code[x["asset"]]))
        self._actions = tuple(rows)
        self._next_action = 0

    @staticmethod
    def _split_shares(quantity: float, ratio: float) -> float:
        """``quantity * ratio``; within float rounding of a whole number, that number."""
        scaled = quantity * ratio
        nearest = float(round(scaled))
        return nearest if abs(scaled - nearest) <= 1e-9 * max(abs(scaled), 1.0) else scaled

    def _corporate_actions(self, timestamp: Any, bars: dict[str, dict[str, Any]]) -> None:
        """At the start of a timestamp, before any fill, the actions dated at or before it:
        each asset's dividend on the position held at the previous close, then its split."""
        paid, total = False, 0.0
        while self._next_action < len(self._actions):
            action = self._actions[self._next_action]
            if action["timestamp"] > timestamp:
                break
            self._next_action += 1
            asset = action["asset"]
            dividend = float(action.get("dividend") or 0.0)
            held = self.position[asset]
            if dividend != 0.0 and held != 0.0:
                self.credit(asset, held * dividend)
                trade = self.open_trade[asset]
                assert trade is not None
                trade.gross_pnl += held * dividend
                trade.gross_pnl_base += held * dividend * self.rate_of(asset)
                paid, total = True, total + held * dividend * self.rate_of(asset)
            ratio = float(action.get("split_ratio") or 1.0)
            if ratio != 1.0:
                self._split(timestamp, asset, ratio, bars.get(asset))
        if paid:
            self.result.dividends.append({"timestamp": timestamp, "dividend": total})

    def _split(self, timestamp: Any, asset: str, ratio: float, bar: dict[str, Any] | None) -> None:
        held = self.position[asset]
        self.position[asset] = self._split_shares(held, ratio)
        self.avg_cost[asset] /= ratio
        self.avg_cost_base[asset] /= ratio
        if self.last_price[asset] is not None:
            self.last_price[asset] = self.mark(asset) / ratio
        trade = self.open_trade[asset]
        if trade is not None:
            trade.entry_qty *= ratio
            trade.exit_qty *= ratio
        for order in list(self.pending):
            if order.asset != asset:
                continue
            quantity = self._split_shares(order.quantity, ratio)
            if self.integer:
                quantity = float(math.trunc(quantity))
            if quantity == 0.0 and order.active:
                self._rejection(order.order_id, timestamp, asset, order.quantity, "split")
                self.pending.remove(order)
                continue
            order.quantity = quantity
            order.limit = None if order.limit is None else order.limit / ratio
            order.stop = None if order.stop is None else order.stop / ratio
        after = self.position[asset]
        fraction = after - math.trunc(after)
        if not self.integer or held == 0.0 or fraction == 0.0:
            return
        # cash in lieu: the fractional share is sold at the open (the adjusted mark without a
        # bar), without commission or slippage
        price = float(bar["open"]) if bar is not None else self.mark(asset)
        order = _Order(self.next_order_id, timestamp, asset, -fraction, reason="cash_in_lieu")
        self.next_order_id += 1
        self.result.orders.append(
            {
                "order_id": order.order_id,
                "timestamp": timestamp,
                "asset": asset,
                "side": "buy" if fraction < 0 else "sell",
                "order_type": "market",
                "quantity": abs(fraction),
                "limit": None,
                "stop": None,
                "tif": "gtc",
                "parent_id": None,
                "oco_id": None,
                "exit_reason": "cash_in_lieu",
            }
        )
        self.credit(asset, fraction * price)
        self.result.fills.append(
            {
                "order_id": order.order_id,
                "timestamp": timestamp,
                "asset": asset,
                "side": "buy" if fraction < 0 else "sell",
                "order_type": "cash_in_lieu",
                "quantity": abs(fraction),
                "price": price,
                "reference_price": price,
                "slippage": 0.0,
                "commission": 0.0,
                "partial": False,
            }
        )
        no_bar = asset not in self.bar_index
        if no_bar:
            self.bar_index[asset] = self.bars_seen[asset] - 1  # its last bar
        self._book(timestamp, asset, -fraction, price, 0.0, "cash_in_lieu")
        if no_bar:
            del self.bar_index[asset]

    # --- delistings (docs/semantics.md, "Delistings") -----------------------------------------
    def delisted(self, asset: str, timestamp: Any) -> bool:
        """Whether ``asset``'s last bar, when it is delisted, is at or before ``timestamp``."""
        last = self.last_bar.get(asset)
        return last is not None and last <= timestamp

    def _delist(self, timestamp: Any, bars: dict[str, dict[str, Any]]) -> None:
        """Step 3, after marking: each asset whose last bar this is has its pending orders
        rejected (``delisted``) and its position closed at the close times one plus its
        delisting return (no slippage, commission as configured; exit reason ``delisted``)."""
        for asset in self.assets:
            if self.last_bar.get(asset) != timestamp:
                continue
            for o in [o for o in self.pending if o.asset == asset]:
                self._rejection(o.order_id, timestamp, asset, o.quantity, "delisted")
                self.pending.remove(o)
            held = self.position[asset]
            if held == 0.0:
                continue
            price = float(bars[asset]["close"]) * (1.0 + self.delisting_return.get(asset, 0.0))
            order = _Order(self.next_order_id, timestamp, asset, -held, reason="delisted")
            order.kind = "market_on_close"
            self.next_order_id += 1
            self._accept(order)
            fee = self._fee(abs(held), price)
            self.credit(asset, held * price - fee)
            self.result.fills.append(
                {
                    "order_id": order.order_id,
                    "timestamp": timestamp,
                    "asset": asset,
                    "side": "sell" if held > 0 else "buy",
                    "order_type": "delisting",
                    "quantity": abs(held),
                    "price": price,
                    "reference_price": price,
                    "slippage": 0.0,
                    "commission": fee,
                    "partial": False,
                }
            )
            self._book(timestamp, asset, -held, price, fee, "delisted")
            self.pending.remove(order)

    # --- capital flows (docs/semantics.md, "Capital flows") -----------------------------------
    _flows: tuple[dict[str, Any], ...] = ()

    def set_flows(self, flows: list[dict[str, Any]] | None, on_withdrawal: str = "error") -> None:
        """Deposits and withdrawals: dicts of ``timestamp`` and ``amount`` (+ in, - out)."""
        self._flows = tuple(sorted(flows or [], key=lambda x: x["timestamp"]))
        self._next_flow = 0
        self.on_withdrawal = on_withdrawal

    def _capital_flows(self, timestamp: Any, bars: dict[str, dict[str, Any]]) -> None:
        """At the start of a timestamp, after the corporate actions and before any fill: the
        flows dated at or before it, summed, move cash. A withdrawal beyond the cash raises, or
        first sells whole long positions with a bar now at the open (largest market value
        first, ties to the lower code; slippage and commission as configured)."""
        amount, due = 0.0, False
        while self._next_flow < len(self._flows):
            flow = self._flows[self._next_flow]
            if flow["timestamp"] > timestamp:
                break
            if self.index == 0 and flow["timestamp"] < timestamp:
                raise ValueError("outside_run: a flow dated before the first timestamp")
            self._next_flow += 1
            amount += float(flow["amount"])
            due = True
        if not due:
            return
        if amount < 0.0 and self.cash < -amount and self.on_withdrawal == "liquidate":
            while self.cash < -amount and not self.ruined:
                held = [a for a in self.assets if self.position[a] > 0.0 and a in bars]
                if not held:
                    break
                asset = max(
                    held, key=lambda a: (self.position[a] * self.mark(a), -self.assets.index(a))
                )
                order = _Order(
                    self.next_order_id, timestamp, asset, -self.position[asset], reason="withdrawal"
                )
                self.next_order_id += 1
                self._accept(order)
                self._execute(timestamp, order, bars[asset], float(bars[asset]["open"]), False)
        if amount < 0.0 and self.cash < -amount:
            raise ValueError(f"withdrawal_exceeds_cash: withdrawing {-amount} with {self.cash}")
        self.credit(None, amount)
        self.result.flows.append({"timestamp": timestamp, "amount": amount})

    # --- the loop ------------------------------------------------------------------------------
    def run(
        self, decide: Callable[[Any, list[dict[str, Any]], OracleContext], None]
    ) -> OracleResult:
        for index, (timestamp, rows) in enumerate(self.groups):
            self.index = index
            bars = {r["asset"]: r for r in rows}
            # index (0-based) of this timestamp's bar within each asset's own bar sequence
            self.bar_index = {a: self.bars_seen[a] for a in bars}
            if self._fx:
                self._apply_fx(timestamp)
            if self._actions:
                self._corporate_actions(timestamp, bars)
            if self._flows:
                self._capital_flows(timestamp, bars)

            # 1. fill pending orders against this bar (market orders at the open in next-bar
            #    mode; resting orders in both modes)
            self._stage(timestamp, bars, "bar")
            # 2. mark to market
            for a, r in bars.items():
                self.last_price[a] = float(r["close"])
                self.bars_seen[a] += 1
            if self.last_bar:
                self._delist(timestamp, bars)
            if self.maintenance_margin is not None and not self.ruined:
                self._margin_call(timestamp, bars)
            # 3-4. strategy; orders are resolved and checked as they are submitted
            decide(timestamp, rows, OracleContext(self, timestamp))
            # 5. same-bar mode: market and on-close orders fill now at the close
            if self.mode == "same_close":
                self._stage(timestamp, bars, "close")
            if self.several:
                self._close_fx(timestamp)
            if not self.ruined and self.equity() <= 0.0:
                self._ruin(timestamp)
            # 6. record equity
            long_value, short_value = self.market_values()
            self.result.equity.append(
                {
                    "timestamp": timestamp,
                    "cash": self.cash,
                    "long_value": long_value,
                    "short_value": short_value,
                    "positions_value": long_value + short_value,
                    "equity": self.cash + long_value + short_value,
                }
            )

        if self._flows and self._next_flow < len(self._flows):
            raise ValueError("outside_run: a flow dated after the last timestamp")
        # end of data: unfilled orders (waiting bracket legs too) are rejected, open positions
        # give open trades
        for o in self.pending:
            self._rejection(o.order_id, o.timestamp, o.asset, o.quantity, "end_of_data")
        self.pending = []
        last_time = self.groups[-1][0] if self.groups else None
        for a in self.assets:
            t = self.open_trade[a]
            if t is None:
                continue
            mark = self.last_price[a]
            assert mark is not None
            unrealised = self.position[a] * (mark - self.avg_cost[a]) * self.multiplier[a]
            unrealised_base = (
                self.position[a]
                * (mark * self.rate_of(a) - self.avg_cost_base[a])
                * self.multiplier[a]
            )
            self.result.trades.append(
                self._trade_record(
                    t,
                    last_time,
                    mark,
                    t.gross_pnl_base + unrealised_base,
                    t.gross_pnl + unrealised,
                    (self.bars_seen[a] - 1) - t.entry_bar,
                    "end_of_data",
                    "open",
                )
            )
        return self.result


def run_oracle(
    bars: Any,
    config: dict[str, Any] | None,
    decide: Callable[[Any, list[dict[str, Any]], OracleContext], None],
    actions: list[dict[str, Any]] | None = None,
    flows: list[dict[str, Any]] | None = None,
    delisting_returns: dict[str, float] | None = None,
    universe: list[tuple[Any, str, bool]] | None = None,
) -> OracleResult:
    engine = OracleEngine(bars, config)
    engine.delisting_return = dict(delisting_returns or {})
    if universe is not None:
        engine.membership = {}
        for ts, asset, member in sorted(universe, key=lambda r: (r[0], r[1])):
            engine.membership.setdefault(asset, []).append((ts, member))
    if actions:
        engine.set_actions(actions)
    if flows:
        on_withdrawal = (config or {}).get("account", {}).get("on_withdrawal", "error")
        engine.set_flows(flows, on_withdrawal)
    return engine.run(decide)


# =================================================================================================
# Test helpers (engine-agnostic): random bars and strategy logics
# =================================================================================================

ASSET_NAMES = ("MSFT", "AAPL", "ZION", "BRKB")  # unsorted on purpose


def random_bar_rows(
    seed: int,
    n_assets: int = 3,
    n_timestamps: int = 30,
    missing: float = 0.15,
    shock: tuple[int, float] | None = None,
) -> list[dict[str, Any]]:
    """Random multi-asset OHLC rows (shuffled), with missing bars and some late starters.

    Signal columns: ``score`` (normal), ``action`` (0..6), ``size`` (uniform -1..1),
    ``rebal`` (0/1, the same for every asset of a timestamp). ``shock = (t, factor)``: every
    asset gaps by ``factor`` into the open of timestamp ``t`` (a crash below 1, a squeeze above).
    """
    rng = random.Random(seed)
    start = datetime(2024, 1, 2, 9, 30)
    names = list(ASSET_NAMES[:n_assets])
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(names):
        price = rng.uniform(20.0, 200.0)
        first = 0 if k == 0 else rng.choice([0, 0, 0, rng.randrange(n_timestamps // 2)])
        for t in range(n_timestamps):
            ts = start + timedelta(days=t)
            if shock is not None and t == shock[0]:
                price *= shock[1]
            # the price moves even on missing bars
            open_ = price * math.exp(rng.gauss(0, 0.01))
            close = open_ * math.exp(rng.gauss(0, 0.02))
            if rng.random() < 0.2:  # narrow bars make slippage clamping likely
                high, low = max(open_, close), min(open_, close)
            else:
                high = max(open_, close) * (1 + abs(rng.gauss(0, 0.01)))
                low = min(open_, close) * (1 - abs(rng.gauss(0, 0.01)))
            price = close
            action = rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6])
            size = rng.uniform(-1.0, 1.0)
            score = rng.gauss(0, 1)
            if t < first or (t > 0 and rng.random() < missing):
                continue
            rows.append(
                {
                    "timestamp": ts,
                    "asset": name,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": float(rng.randrange(1_000, 100_000)),
                    "score": score,
                    "action": float(action),
                    "size": size,
                    "rebal": float(t % 3 == 0),
                }
            )
    rng.shuffle(rows)
    return rows


SIGNAL_COLUMNS = ("score", "action", "size", "rebal")


class ActionLogic:
    """Per-row random orders driven by the ``action``/``size`` signal columns.

    ``on_row(timestamp, row, ctx)`` is the per-asset logic (``on_market_data``);
    ``decide(timestamp, rows, ctx)`` applies it to every row of a timestamp
    (``on_timestamp_batch``).
    """

    def __init__(self, assets: list[str], integer: bool, allow_short: bool = True) -> None:
        self.assets = sorted(assets)
        self.integer = integer
        self.allow_short = allow_short

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        asset = row["asset"]
        action = int(row["action"])
        size = float(row["size"])
        if action == 1:
            q = size * 40.0
            if self.integer:
                q = float(round(q))
            if q != 0.0:
                ctx.submit_order(asset, q)
        elif action == 2:
            ctx.order_target_quantity(asset, size * 60.0)
        elif action == 3:
            ctx.order_target_value(asset, size * 25_000.0)
        elif action == 4:
            ctx.order_target_percent(asset, size * 0.4)
        elif action == 5:
            ctx.close_position(asset)
        elif action == 6:  # an order on another asset (it may have no bar now, or no price yet)
            other = self.assets[(self.assets.index(asset) + 1) % len(self.assets)]
            ctx.order_target_percent(other, size * 0.3)

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)


class RebalanceLogic:
    """Every timestamp with ``rebal == 1``: rebalance to weights from ``score``.

    Assets whose |score| is small are left out (so they are closed); sometimes an asset without
    a bar now is listed too (weighted at its last mark, or rejected with no_price).
    """

    def __init__(self, assets: list[str], gross: float = 0.9) -> None:
        self.assets = sorted(assets)
        self.gross = gross

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        if not rows or rows[0]["rebal"] != 1.0:
            return
        picked = [r for r in rows if abs(r["score"]) > 0.4]
        weights: dict[str, float] = {}
        if picked:
            total = sum(abs(r["score"]) for r in picked)
            for r in picked:
                weights[r["asset"]] = self.gross * r["score"] / total
        present = {r["asset"] for r in rows}
        absent = [a for a in self.assets if a not in present]
        if absent and rows[0]["size"] > 0.5:
            weights[absent[0]] = 0.1
        ctx.rebalance(weights)

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:  # pragma: no cover
        raise NotImplementedError("RebalanceLogic is a batch strategy")


class LeverLogic:
    """Levered per-row targets: ``action`` 1-3 a target percent up to ``±max_weight`` of equity
    for the row's asset (three assets at up to 3 each: gross far above 2), 4 a target value of up
    to ``±max_weight`` x 30,000, 5 a close, 6 an explicit order of up to ±400 shares (whole with
    ``integer``). Margin checks, resizes and margin calls follow.
    """

    def __init__(self, max_weight: float = 3.0, integer: bool = False) -> None:
        self.max_weight = max_weight
        self.integer = integer

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        asset, action, size = row["asset"], int(row["action"]), float(row["size"])
        if action in (1, 2, 3):
            ctx.order_target_percent(asset, size * self.max_weight)
        elif action == 4:
            ctx.order_target_value(asset, size * self.max_weight * 30_000.0)
        elif action == 5:
            ctx.close_position(asset)
        elif action == 6:
            q = size * 400.0
            if self.integer:
                q = float(round(q))
            if q != 0.0:
                ctx.submit_order(asset, q)

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)


class CrashLogic:
    """Holds every asset at ``direction x lever / n`` of equity (plus noise from ``size``) on
    every bar, so a shock in the data (``random_bar_rows(shock=...)``) against the position takes
    equity through zero: ruin (or margin calls first). Also an explicit order on ``action`` 1 and
    a close on 6, which a ruined account refuses."""

    def __init__(self, direction: float, lever: float, n_assets: int, integer: bool) -> None:
        self.weight = direction * lever / n_assets
        self.integer = integer

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        asset, action, size = row["asset"], int(row["action"]), float(row["size"])
        if action == 1:
            q = float(round(size * 50.0)) if self.integer else size * 50.0
            if q != 0.0:
                ctx.submit_order(asset, q)
        elif action == 6:
            ctx.close_position(asset)
        else:
            ctx.order_target_percent(asset, self.weight * (1.0 + 0.2 * size))

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)


class SignalLogic:
    """Python re-statement of the built-in ``SignalStrategy`` (quantity variant)."""

    def __init__(
        self,
        column: str,
        quantity: float,
        long_threshold: float = 0.0,
        short_threshold: float = 0.0,
        allow_short: bool = False,
    ) -> None:
        self.column = column
        self.quantity = quantity
        self.long_threshold = long_threshold
        self.short_threshold = short_threshold
        self.allow_short = allow_short

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        s = row[self.column]
        if s > self.long_threshold:
            ctx.order_target_quantity(row["asset"], self.quantity)
        elif s < self.short_threshold:
            ctx.order_target_quantity(row["asset"], -self.quantity if self.allow_short else 0.0)

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)


class OrderTypeLogic:
    """Random explicit orders of every type the oracle models, driven by the signal columns.

    ``action`` picks the type (1 market, 2 limit, 3 stop, 4 stop-limit, 5 market-on-close,
    6 cancel of an earlier order), ``size`` the signed quantity (with ``exits``, an order
    against the position held is for the whole position), ``score`` the distance of the
    price from the close and the time in force (from ``tifs``). Order ids returned by
    ``submit_order`` are kept for the cancels, so use one instance per run.
    """

    def __init__(
        self, tifs: tuple[str, ...] = ("gtc",), integer: bool = False, exits: bool = False
    ) -> None:
        self.tifs = tifs
        self.integer = integer
        self.exits = exits
        self.ids: list[int] = []

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        asset = row["asset"]
        action = int(row["action"])
        size, score, close = float(row["size"]), float(row["score"]), float(row["close"])
        quantity = size * 40.0
        held = ctx.position(asset)
        if self.exits and held * quantity < 0:
            quantity = -held  # several such exits at once: all but the first are cut at flat
        if self.integer:
            quantity = float(round(quantity))
        if action == 0 or quantity == 0.0:
            return
        tif = self.tifs[int(abs(score) * 1000) % len(self.tifs)]
        level = close * (1.0 + 0.02 * score)
        if action == 1:
            order_id = ctx.submit_order(asset, quantity, tif=tif)
        elif action == 2:
            order_id = ctx.submit_order(asset, quantity, limit=level, tif=tif)
        elif action == 3:
            order_id = ctx.submit_order(asset, quantity, stop=level, tif=tif)
        elif action == 4:  # the limit on either side of the stop: some fill, some arm
            limit = level * (1.0 + 0.01 * size)
            order_id = ctx.submit_order(asset, quantity, stop=level, limit=limit, tif=tif)
        elif action == 5:
            order_id = ctx.submit_order(asset, quantity, order_type="market_on_close", tif=tif)
        else:  # a cancel: of an earlier order (pending or not), or of an unknown id
            if self.ids:
                ctx.cancel_order(self.ids[int(abs(score) * 7919) % len(self.ids)])
            else:
                ctx.cancel_order(10_000)
            return
        self.ids.append(order_id)

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)


class BracketLogic:
    """One bracket at a time per asset. While flat: cancel the previous entry (still pending or
    not) and, on ``action`` 1-6, submit a new one: a market entry with both legs (1, 2), a stop
    entry with both legs (3), a market entry with a single leg (4), a limit entry with both legs
    (5) or a stop-limit entry with both legs (6). While held (``meddle``): on ``action`` 5 sell
    half of the position by a market order (the legs then cover more than is held and are capped
    at fill time), on 6 trade through zero (the legs are cancelled). Use one instance per run.
    """

    def __init__(self, tifs: tuple[str, ...] = ("gtc",), meddle: bool = True) -> None:
        self.tifs = tifs
        self.meddle = meddle
        self.entries: dict[str, int] = {}

    def on_row(self, timestamp: Any, row: dict[str, Any], ctx: Any) -> None:
        asset = row["asset"]
        action = int(row["action"])
        held = ctx.position(asset)
        if held != 0.0:
            if self.meddle and action == 5 and math.trunc(held / 2) != 0:
                ctx.submit_order(asset, -float(math.trunc(held / 2)))
            elif self.meddle and action == 6:
                ctx.submit_order(asset, -float(math.trunc(held * 1.5)))
            return
        if asset in self.entries:
            ctx.cancel_order(self.entries.pop(asset))
        if action not in (1, 2, 3, 4, 5, 6):
            return
        size, score, close = float(row["size"]), float(row["score"]), float(row["close"])
        direction = 1.0 if size >= 0 else -1.0
        quantity = direction * float(max(1, round(abs(size) * 30)))
        target = 0.004 + 0.012 * min(abs(score), 2.0)
        loss = 0.004 + 0.012 * (1.0 - abs(size))
        tif = self.tifs[int(abs(score) * 1000) % len(self.tifs)]
        if action in (1, 2):
            order_id = ctx.submit_order(
                asset,
                quantity,
                take_profit=close * (1 + direction * target),
                stop_loss=close * (1 - direction * loss),
                tif=tif,
            )
        elif action == 3:
            stop = close * (1 + direction * 0.004)
            order_id = ctx.submit_order(
                asset,
                quantity,
                stop=stop,
                take_profit=stop * (1 + direction * target),
                stop_loss=stop * (1 - direction * loss),
                tif=tif,
            )
        elif action == 5:  # a limit entry a little better than the close
            limit = close * (1 - direction * 0.004 * abs(score))
            order_id = ctx.submit_order(
                asset,
                quantity,
                limit=limit,
                take_profit=limit * (1 + direction * target),
                stop_loss=limit * (1 - direction * loss),
                tif=tif,
            )
        elif action == 6:  # a stop-limit entry: some fill at the trigger, some arm
            stop = close * (1 + direction * 0.003)
            limit = stop * (1 + direction * 0.004 * size * score)
            order_id = ctx.submit_order(
                asset,
                quantity,
                stop=stop,
                limit=limit,
                take_profit=max(stop, limit) * (1 + direction * target)
                if direction > 0
                else min(stop, limit) * (1 + direction * target),
                stop_loss=min(stop, limit) * (1 - direction * loss)
                if direction > 0
                else max(stop, limit) * (1 - direction * loss),
                tif=tif,
            )
        elif score > 0:
            order_id = ctx.submit_order(asset, quantity, stop_loss=close * (1 - direction * loss))
        else:
            order_id = ctx.submit_order(
                asset, quantity, take_profit=close * (1 + direction * target)
            )
        self.entries[asset] = order_id

    def decide(self, timestamp: Any, rows: list[dict[str, Any]], ctx: Any) -> None:
        for row in rows:
            self.on_row(timestamp, row, ctx)
