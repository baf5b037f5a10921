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
``slippage``, ``account``). ``decide(timestamp, rows, ctx)`` is called once per timestamp with the
rows (dicts) of the assets that have a bar then, sorted by asset; ``ctx`` offers the same order
methods as the real strategy context.

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
    quantity: float  # signed


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


@dataclass
class OracleResult:
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    equity: list[dict[str, Any]] = field(default_factory=list)
    rejected_orders: list[dict[str, Any]] = field(default_factory=list)

    def to_polars(self) -> dict[str, Any]:
        import polars as pl

        return {
            "fills": pl.DataFrame(self.fills),
            "trades": pl.DataFrame(self.trades),
            "equity": pl.DataFrame(self.equity),
            "rejected_orders": pl.DataFrame(self.rejected_orders),
        }


def _bars_to_rows(bars: Any) -> list[dict[str, Any]]:
    source = bars.to_dicts() if hasattr(bars, "to_dicts") else bars  # a polars DataFrame or rows
    rows: list[dict[str, Any]] = [dict(r) for r in source]
    for r in rows:
        if "asset" not in r and "symbol" in r:
            r["asset"] = r.pop("symbol")
        r["asset"] = str(r["asset"])
    return rows


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
    def submit_order(self, asset: str, quantity: float) -> None:
        self._engine.place(self.timestamp, asset, float(quantity), target_based=False)

    def order_target_quantity(self, asset: str, quantity: float) -> None:
        e = self._engine
        e.place_target(self.timestamp, asset, quantity)

    def order_target_value(self, asset: str, value: float) -> None:
        e = self._engine
        price = e.last_price[asset]
        if price is None:
            e.reject(self.timestamp, asset, math.nan, "no_price")
            return
        e.place_target(self.timestamp, asset, value / price)

    def order_target_percent(self, asset: str, fraction: float) -> None:
        e = self._engine
        price = e.last_price[asset]
        if price is None:
            e.reject(self.timestamp, asset, math.nan, "no_price")
            return
        target = fraction * e.equity() / price
        e.place_target(self.timestamp, asset, target)

    def close_position(self, asset: str) -> None:
        e = self._engine
        e.place_target(self.timestamp, asset, 0.0)

    def rebalance(self, weights: dict[str, float]) -> None:
        e = self._engine
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

        self.mode = self.config["execution"]["mode"]
        self.integer = self.config["execution"]["share_rounding"] == "integer"
        self.allow_short = bool(self.config["account"]["allow_short"])
        self.cash = float(self.config["initial_cash"])
        self.position = {a: 0.0 for a in self.assets}
        self.avg_cost = {a: 0.0 for a in self.assets}
        self.last_price: dict[str, float | None] = {a: None for a in self.assets}
        self.bars_seen = {a: 0 for a in self.assets}
        self.pending: list[_Order] = []
        self.open_trade: dict[str, _OpenTrade | None] = {a: None for a in self.assets}
        self.next_order_id = 0
        self.result = OracleResult()

    # --- helpers -------------------------------------------------------------------------------
    def equity(self) -> float:
        long_value, short_value = self.market_values()
        return self.cash + long_value + short_value

    def market_values(self) -> tuple[float, float]:
        long_value = sum(q * self.mark(a) for a, q in self.position.items() if q > 0)
        short_value = sum(q * self.mark(a) for a, q in self.position.items() if q < 0)
        return long_value, short_value

    def mark(self, asset: str) -> float:
        price = self.last_price[asset]
        assert price is not None, f"{asset} is held but has no price"
        return price

    def current(self, asset: str) -> float:
        """Position plus the quantity of this asset's pending orders."""
        return self.position[asset] + sum(o.quantity for o in self.pending if o.asset == asset)

    def reject(self, timestamp: Any, asset: str, quantity: float, reason: str) -> None:
        self.result.rejected_orders.append(
            {
                "order_id": self.next_order_id,
                "timestamp": timestamp,
                "asset": asset,
                "quantity": quantity,
                "reason": reason,
            }
        )
        self.next_order_id += 1

    def place_target(self, timestamp: Any, asset: str, target: float) -> None:
        """A target order: trade ``target - current``; a difference of at most DUST times the
        larger of the two is float rounding, not a trade, and is dropped."""
        current = self.current(asset)
        quantity = target - current
        if abs(quantity) <= DUST * max(abs(target), abs(current)):
            return
        self.place(timestamp, asset, quantity, target_based=True)

    def place(self, timestamp: Any, asset: str, quantity: float, *, target_based: bool) -> None:
        """Steps 4-5 for one order: round, drop zero, cut shorts, queue."""
        if self.integer and target_based:
            quantity = float(math.trunc(quantity))  # toward zero
        if quantity == 0.0:
            return  # nothing to trade: dropped silently
        if not self.allow_short and quantity < 0:
            current = self.current(asset)
            if current + quantity < 0:
                if current <= 0:
                    self.reject(timestamp, asset, quantity, "short_not_allowed")
                    return
                quantity = -current  # cut at zero
        self.pending.append(_Order(self.next_order_id, timestamp, asset, quantity))
        self.next_order_id += 1

    def _fill_pending(self, timestamp: Any, bars: dict[str, dict[str, Any]], ref: str) -> None:
        """Fill every pending order whose asset has a bar now: exits first, then the rest.

        An exit reduces the position held at the start of this step without crossing zero
        (opposite sign and ``|q| <= |position|``); the classification is made before anything
        fills. Each pass keeps submission order.
        """
        ready = [o for o in self.pending if o.asset in bars]
        start = {o.asset: self.position[o.asset] for o in ready}
        exits = [
            o
            for o in ready
            if start[o.asset] != 0.0
            and _sign(o.quantity) != _sign(start[o.asset])
            and abs(o.quantity) <= abs(start[o.asset])
        ]
        for o in exits + [o for o in ready if o not in exits]:
            self._fill(timestamp, o, bars[o.asset], ref)
            self.pending.remove(o)

    def _fill(self, timestamp: Any, order: _Order, bar: dict[str, Any], ref: str) -> None:
        cfg_s, cfg_c = self.config["slippage"], self.config["commission"]
        q = order.quantity
        side = 1 if q > 0 else -1
        reference = float(bar[ref])

        # fill price: slippage against the trader, then clamp into [low, high]
        if cfg_s["model"] == "fixed":
            price = reference + side * cfg_s["amount"]
        elif cfg_s["model"] == "percent":
            price = reference * (1 + side * cfg_s["rate"])
        else:
            price = reference
        price = min(max(price, float(bar["low"])), float(bar["high"]))

        # commission
        aq = abs(q)
        model = cfg_c["model"]
        if model == "percent":
            fee = cfg_c["rate"] * aq * price
        elif model == "per_share":
            fee = cfg_c["rate"] * aq
        elif model == "per_order":
            fee = cfg_c["amount"]
        else:
            fee = 0.0
        fee = max(fee, cfg_c.get("minimum") or 0.0, 0.0)

        self.cash -= q * price + fee
        self.result.fills.append(
            {
                "order_id": order.order_id,
                "timestamp": timestamp,
                "asset": order.asset,
                "side": "buy" if q > 0 else "sell",
                "quantity": aq,
                "price": price,
                "reference_price": reference,
                "slippage": abs(price - reference) * aq,
                "commission": fee,
            }
        )
        self._book(timestamp, order.asset, q, price, fee)

    def _book(self, timestamp: Any, asset: str, q: float, price: float, fee: float) -> None:
        """Average-cost position update, realised PnL and round-trip bookkeeping."""
        bar_idx = self.bar_index[asset]
        old = self.position[asset]
        aq = abs(q)
        if old == 0.0 or _sign(old) == _sign(q):  # open or increase
            if old == 0.0:
                self._open_trade(timestamp, asset, q, bar_idx)
            trade = self.open_trade[asset]
            assert trade is not None
            self.avg_cost[asset] = (self.avg_cost[asset] * abs(old) + price * aq) / (abs(old) + aq)
            self.position[asset] = old + q
            trade.entry_qty += aq
            trade.entry_notional += aq * price
            trade.commission += fee
            return

        # reduce, close or cross
        trade = self.open_trade[asset]
        assert trade is not None
        closed = min(aq, abs(old))
        avg = self.avg_cost[asset]
        pnl = closed * (price - avg) if old > 0 else closed * (avg - price)
        trade.gross_pnl += pnl
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
        self._close_trade(asset, trade)
        self.avg_cost[asset] = 0.0
        if new != 0.0:  # crossed zero: the rest opens a new trade at this price
            rest = aq - abs(old)
            new = self._open_trade(timestamp, asset, q, bar_idx)
            new.entry_qty += rest
            new.entry_notional += rest * price
            new.commission += fee * (rest / aq)
            self.avg_cost[asset] = price

    def _open_trade(self, timestamp: Any, asset: str, q: float, bar_idx: int) -> _OpenTrade:
        trade = _OpenTrade(asset, "long" if q > 0 else "short", timestamp, bar_idx)
        self.open_trade[asset] = trade
        return trade

    def _close_trade(self, asset: str, t: _OpenTrade) -> None:
        assert t.exit_bar is not None
        self.result.trades.append(
            self._trade_record(
                t,
                t.exit_time,
                t.exit_notional / t.exit_qty,
                t.gross_pnl,
                t.exit_bar - t.entry_bar,
                "signal",
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
        bars_held: int,
        reason: str,
        status: str,
    ) -> dict[str, Any]:
        entry_price = t.entry_notional / t.entry_qty
        net = gross - t.commission
        return {
            "asset": t.asset,
            "side": t.side,
            "entry_time": t.entry_time,
            "exit_time": exit_time,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "quantity": t.entry_qty,
            "gross_pnl": gross,
            "commission": t.commission,
            "net_pnl": net,
            "return_pct": net / (entry_price * t.entry_qty),  # not defined by the contract
            "bars_held": bars_held,
            "exit_reason": reason,
            "status": status,
        }

    # --- the loop ------------------------------------------------------------------------------
    def run(
        self, decide: Callable[[Any, list[dict[str, Any]], OracleContext], None]
    ) -> OracleResult:
        for timestamp, rows in self.groups:
            bars = {r["asset"]: r for r in rows}
            # index (0-based) of this timestamp's bar within each asset's own bar sequence
            self.bar_index = {a: self.bars_seen[a] for a in bars}

            # 1. fill pending orders at this bar's open (next-bar mode)
            if self.mode == "next_open":
                self._fill_pending(timestamp, bars, "open")
            # 2. mark to market
            for a, r in bars.items():
                self.last_price[a] = float(r["close"])
                self.bars_seen[a] += 1
            # 3-4. strategy; orders are resolved and checked as they are submitted
            decide(timestamp, rows, OracleContext(self, timestamp))
            # 5. same-bar mode: fill now at the close
            if self.mode == "same_close":
                self._fill_pending(timestamp, bars, "close")
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

        # end of data: unfilled orders are rejected, open positions give open trades
        for o in self.pending:
            self.result.rejected_orders.append(
                {
                    "order_id": o.order_id,
                    "timestamp": o.timestamp,
                    "asset": o.asset,
                    "quantity": o.quantity,
                    "reason": "end_of_data",
                }
            )
        self.pending = []
        last_time = self.groups[-1][0] if self.groups else None
        for a in self.assets:
            t = self.open_trade[a]
            if t is None:
                continue
            mark = self.last_price[a]
            assert mark is not None
            unrealised = self.position[a] * (mark - self.avg_cost[a])
            self.result.trades.append(
                self._trade_record(
                    t,
                    last_time,
                    mark,
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
) -> OracleResult:
    return OracleEngine(bars, config).run(decide)


# =================================================================================================
# Test helpers (engine-agnostic): random bars and strategy logics
# =================================================================================================

ASSET_NAMES = ("MSFT", "AAPL", "ZION", "BRKB")  # unsorted on purpose


def random_bar_rows(
    seed: int, n_assets: int = 3, n_timestamps: int = 30, missing: float = 0.15
) -> list[dict[str, Any]]:
    """Random multi-asset OHLC rows (shuffled), with missing bars and some late starters.

    Signal columns: ``score`` (normal), ``action`` (0..6), ``size`` (uniform -1..1),
    ``rebal`` (0/1, the same for every asset of a timestamp).
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
