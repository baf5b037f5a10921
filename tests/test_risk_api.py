"""Risk rules end to end through the public API, on tiny hand-made frames.

Every expected number is computed by hand in the comments. Conventions (``ml4t.backtest.risk``):

- bars are ``(open, high, low, close)``, one per day from 2024-01-01 (day 0);
- the default ``next_open`` mode: an order decided at day ``d``'s close fills at day ``d+1``'s
  open; an entry filled at day ``d``'s open is evaluated by the position rules at day ``d``'s
  close and the levels set then are live from day ``d+1``;
- a stop fills at its level, or at the open when the bar gaps through it; a target (limit-like)
  at its level, or at a better open; at most one level exit per asset and bar;
- pre-trade rules see the opening part of an order; a cut part is a ``risk_limit`` rejection
  (signed quantity, the decision timestamp).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    PolarsDataFeed,
    RiskDecision,
    RiskRule,
    SignalStrategy,
    Strategy,
)
from ml4t.backtest.risk import (
    BreakevenStop,
    CustomRule,
    DailyLossLimit,
    MaxDrawdownHalt,
    MaxPositionSize,
    RegimeRule,
    ScaledExit,
    ScaleSize,
    StopLoss,
    TakeProfit,
    TimeExit,
    TrailingStop,
    VolatilityScaledSizing,
)
from ml4t.backtest.synthetic import make_bars

T0 = datetime(2024, 1, 1)
# Tiny runs leave ratio metrics undefined (NaN with a warning); not what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

Bar = tuple[float, float, float, float]
FLAT: Bar = (100, 100, 100, 100)


def day(i: int) -> datetime:
    return T0 + timedelta(days=i)


def prices(*ohlc: Bar, asset: str = "A") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [day(i) for i in range(len(ohlc))],
            "asset": [asset] * len(ohlc),
            "open": [float(b[0]) for b in ohlc],
            "high": [float(b[1]) for b in ohlc],
            "low": [float(b[2]) for b in ohlc],
            "close": [float(b[3]) for b in ohlc],
            "volume": [1e6] * len(ohlc),
        }
    )


class Script(Strategy):
    """Submits ``orders[i]`` (``(asset, signed quantity)`` pairs) at the i-th timestamp."""

    def __init__(self, orders: dict[int, list[tuple[str, float]]]) -> None:
        self.orders = orders
        self.index = 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        for asset, quantity in self.orders.get(self.index, []):
            context.submit_order(asset, quantity)
        self.index += 1


def run(
    feed: PolarsDataFeed | pl.DataFrame,
    orders: dict[int, list[tuple[str, float]]],
    risk: list[Any],
    config: BacktestConfig | None = None,
) -> BacktestResult:
    if isinstance(feed, pl.DataFrame):
        feed = PolarsDataFeed(feed)
    return Backtest(feed, Script(orders), config=config, risk=risk).run(progress=False)


def fills(result: BacktestResult) -> list[tuple[int, str, str, str, float, float]]:
    """(day, asset, side, order type, quantity, price) of every fill."""
    return [
        (
            (f["timestamp"] - T0).days,
            f["asset"],
            f["side"],
            f["order_type"],
            f["quantity"],
            pytest.approx(f["price"]),
        )
        for f in result.fills.iter_rows(named=True)
    ]


def trades(result: BacktestResult) -> list[tuple[str, str, int, int, float, str]]:
    """(asset, side, entry day, exit day, exit price, exit reason) of every trade."""
    return [
        (
            t["asset"],
            t["side"],
            (t["entry_time"] - T0).days,
            (t["exit_time"] - T0).days,
            pytest.approx(t["exit_price"]),
            t["exit_reason"],
        )
        for t in result.trades.iter_rows(named=True)
    ]


def rejections(result: BacktestResult) -> list[tuple[int, str, float, str]]:
    """(day, asset, signed quantity, reason) of every rejection."""
    return [
        ((r["timestamp"] - T0).days, r["asset"], r["quantity"], r["reason"])
        for r in result.rejected_orders.iter_rows(named=True)
    ]


BUY_10 = {0: [("A", 10.0)]}
SELL_10 = {0: [("A", -10.0)]}


# ------------------------------------------------------------------------------------------------
# position rules: stops, targets, trailing stops, time exits
# ------------------------------------------------------------------------------------------------


def test_stop_loss_fills_at_its_level_from_the_bar_after_it_is_set() -> None:
    df = prices(
        FLAT,  # day 0: buy 10 decided
        (100, 101, 94, 100),  # day 1: bought at the open (100); the stop (95) is set at the
        # close, so this bar's low of 94 does not stop the trade out
        (99, 99.5, 94, 96),  # day 2: opens above 95, the low 94 reaches it: sold at 95
        (96, 96, 96, 96),
    )
    result = run(df, BUY_10, [StopLoss(pct=0.05)])
    # stop = 100 * (1 - 0.05) = 95
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (2, "A", "sell", "stop", 10.0, 95.0),
    ]
    assert trades(result) == [("A", "long", 1, 2, 95.0, "stop_loss")]
    # realised: 10 * (95 - 100) = -50
    assert result.equity["equity"][-1] == pytest.approx(100_000 - 50)


@pytest.mark.parametrize(
    ("stop_basis", "exit_day", "exit_price"),
    [
        # basis = the fill, 102: stop 102 * 0.95 = 96.9; day 2 opens at 97 and its low 95.5
        # reaches the stop: sold at 96.9
        ("fill", 2, 96.9),
        # basis = the signal bar's close, 100: stop 95; day 2's low 95.5 stays above it, day 3
        # gaps through it: sold at day 3's open, 94
        ("signal_close", 3, 94.0),
    ],
)
def test_stop_basis_moves_the_level(stop_basis: str, exit_day: int, exit_price: float) -> None:
    df = prices(
        FLAT,  # day 0: buy 10 decided at the close, 100
        (102, 103, 101, 102),  # day 1: bought at the open, 102
        (97, 98, 95.5, 96),
        (94, 95, 93, 94),
        (94, 94, 94, 94),
    )
    cfg = BacktestConfig(execution={"stop_basis": stop_basis})
    result = run(df, BUY_10, [StopLoss(pct=0.05)], cfg)
    assert trades(result) == [("A", "long", 1, exit_day, exit_price, "stop_loss")]


def test_same_close_entry_gets_its_levels_at_that_close() -> None:
    df = prices(
        FLAT,  # day 0: bought 10 at the close, 100; the stop (95) is set right after
        (99, 99.5, 94, 96),  # day 1: the low 94 reaches 95: sold at 95
        (96, 96, 96, 96),
    )
    cfg = BacktestConfig(execution={"mode": "same_close"})
    result = run(df, BUY_10, [StopLoss(pct=0.05)], cfg)
    assert fills(result) == [
        (0, "A", "buy", "market", 10.0, 100.0),
        (1, "A", "sell", "stop", 10.0, 95.0),
    ]
    assert trades(result) == [("A", "long", 0, 1, 95.0, "stop_loss")]


@pytest.mark.parametrize(
    ("orders", "gap_bar", "exit_price", "side"),
    [
        # long: stop at 95; day 2 opens at 93, below the stop: sold at the open, 93
        (BUY_10, (93, 94, 92, 93), 93.0, "long"),
        # short: stop at 100 * 1.05 = 105; day 2 opens at 107, above it: bought back at 107
        (SELL_10, (107, 108, 106, 107), 107.0, "short"),
    ],
)
def test_stop_loss_gap_fills_at_the_open(
    orders: dict[int, list[tuple[str, float]]], gap_bar: Bar, exit_price: float, side: str
) -> None:
    df = prices(FLAT, (100, 101, 99, 100), gap_bar, gap_bar)
    result = run(df, orders, [StopLoss(pct=0.05)])
    assert trades(result) == [("A", side, 1, 2, exit_price, "stop_loss")]
    assert result.fills["order_type"].to_list() == ["market", "stop"]


@pytest.mark.parametrize(
    ("bar", "exit_price"),
    [
        # target = 100 * 1.10 = 110; day 2 opens below it and its high 111 reaches it: at 110
        ((105, 111, 104, 108), 110.0),
        # day 2 opens at 112, above the target: a limit fills at the better open, 112
        ((112, 113, 111, 112), 112.0),
    ],
)
def test_take_profit_is_limit_like(bar: Bar, exit_price: float) -> None:
    df = prices(FLAT, (100, 101, 99, 100), bar, bar)
    result = run(df, BUY_10, [TakeProfit(pct=0.10)])
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (2, "A", "sell", "limit", 10.0, exit_price),
    ]
    assert trades(result) == [("A", "long", 1, 2, exit_price, "take_profit")]


@pytest.mark.parametrize(
    ("mark", "exit_price"),
    [
        # the best close (120, day 2) sets the level: 120 * 0.9 = 108
        ("close", 108.0),
        # the best high (121, day 2) sets it: 121 * 0.9 = 108.9
        ("extreme", 108.9),
    ],
)
def test_trailing_stop_follows_the_water_mark(mark: str, exit_price: float) -> None:
    df = prices(
        FLAT,  # day 0: buy 10
        (100, 100, 100, 100),  # day 1: bought at 100; level 100 * 0.9 = 90
        (100, 121, 99, 120),  # day 2: low 99 > 90; close 120 (high 121) lifts the level
        (119, 119, 110, 115),  # day 3: low 110 stays above 108.9; the mark does not fall
        (114, 114, 105, 106),  # day 4: opens above the level, the low 105 reaches it
        (106, 106, 106, 106),
    )
    result = run(df, BUY_10, [TrailingStop(pct=0.10, mark=mark)])  # type: ignore[arg-type]
    assert trades(result) == [("A", "long", 1, 4, exit_price, "trailing_stop")]
    assert result.fills["order_type"].to_list() == ["market", "stop"]


def test_time_exit_after_max_bars_at_the_next_open() -> None:
    df = prices(
        FLAT,  # day 0: buy 10
        (100, 101, 99, 100),  # day 1: bought at 100; bars_held 0 at the close
        (101, 102, 100, 101),  # day 2: bars_held 1
        (102, 103, 101, 102),  # day 3: bars_held 2 = max_bars: an exit is queued at the close
        (103, 104, 102, 103),  # day 4: sold at the open, 103
        (104, 104, 104, 104),
    )
    result = run(df, BUY_10, [TimeExit(max_bars=2)])
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (4, "A", "sell", "market", 10.0, 103.0),
    ]
    assert trades(result) == [("A", "long", 1, 4, 103.0, "time_exit")]
    assert result.trades["bars_held"].to_list() == [3]


def test_time_exit_by_duration() -> None:
    df = prices(FLAT, (100, 101, 99, 100), (101, 102, 100, 101), (102, 103, 101, 102), FLAT)
    # entry at day 1; at day 3's close 2 days have passed >= "2d": sold at day 4's open, 100
    result = run(df, BUY_10, [TimeExit(max_duration="2d")])
    assert trades(result) == [("A", "long", 1, 4, 100.0, "time_exit")]


def test_scaled_exit_takes_partial_profits() -> None:
    df = prices(
        FLAT,  # day 0: buy 10
        (100, 100, 100, 100),  # day 1: bought at 100; first level 100 * 1.05 = 105 (half)
        (101, 106, 101, 104),  # day 2: high 106 reaches 105: 5 sold at 105; next level 110
        (104, 111, 104, 108),  # day 3: high 111 reaches 110: the remaining 5 sold at 110
        (108, 108, 108, 108),
    )
    result = run(df, BUY_10, [ScaledExit(levels=[(0.05, 0.5), (0.10, 1.0)])])
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (2, "A", "sell", "limit", 5.0, 105.0),
        (3, "A", "sell", "limit", 5.0, 110.0),
    ]
    # one round trip: exit price (5 * 105 + 5 * 110) / 10 = 107.5
    assert trades(result) == [("A", "long", 1, 3, 107.5, "take_profit")]
    # realised: 5 * 5 + 5 * 10 = 75
    assert result.equity["equity"][-1] == pytest.approx(100_075)


def test_feature_distance_is_fixed_at_entry() -> None:
    n = 5
    df = prices(
        FLAT,  # day 0: buy 10
        (100, 100, 100, 100),  # day 1: bought at 100; atr 2 at the close: stop 100 - 2 * 2 = 96
        (100, 101, 99, 100),  # day 2: the atr jumps to 10 (a recomputed stop would be 80)
        (97, 97, 95, 96),  # day 3: the low 95 reaches the stop fixed at entry, 96
        (96, 96, 96, 96),
    )
    atr = [2.0, 2.0, 10.0, 10.0, 10.0]
    indicators = pl.DataFrame(
        {"timestamp": [day(i) for i in range(n)], "asset": ["A"] * n, "atr": atr}
    )
    feed = PolarsDataFeed(df, indicators=indicators)
    result = run(feed, BUY_10, [StopLoss(feature="atr", multiple=2)])
    assert trades(result) == [("A", "long", 1, 3, 96.0, "stop_loss")]


def test_breakeven_stop_moves_to_the_entry_after_the_trigger() -> None:
    df = prices(
        FLAT,  # day 0: buy 10
        (100, 100, 100, 100),  # day 1: bought at 100; best return 0 < 2%: no stop
        (101, 104, 101, 103),  # day 2: closes at 103, best return 3% >= 2%: stop at 100
        (101, 101, 99, 99.5),  # day 3: the low 99 reaches 100: sold at 100
        (99, 99, 99, 99),
    )
    result = run(df, BUY_10, [BreakevenStop(trigger=0.02)])
    assert trades(result) == [("A", "long", 1, 3, 100.0, "stop_loss")]


# ------------------------------------------------------------------------------------------------
# portfolio halts and pre-trade limits
# ------------------------------------------------------------------------------------------------


def test_max_drawdown_halt_liquidates_and_blocks_new_entries() -> None:
    df = prices(
        FLAT,  # day 0: buy 10 with all the cash (1,000)
        (100, 100, 100, 100),  # day 1: bought at 100; equity 1,000 = the peak
        (95, 95, 84, 85),  # day 2: equity 10 * 85 = 850, drawdown 15% >= 10%: halted; the
        # liquidation is queued at the close
        (86, 90, 86, 88),  # day 3: sold at the open, 86; a new buy decided now is rejected
        (88, 88, 88, 88),
    )
    cfg = BacktestConfig(initial_cash=1_000)
    result = run(
        df,
        {0: [("A", 10.0)], 3: [("A", 1.0)]},
        [MaxDrawdownHalt(max_drawdown=0.1, liquidate=True)],
        cfg,
    )
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (3, "A", "sell", "market", 10.0, 86.0),
    ]
    assert trades(result) == [("A", "long", 1, 3, 86.0, "risk_limit")]
    assert rejections(result) == [(3, "A", 1.0, "risk_limit")]
    # 1,000 - 10 * (100 - 86)
    assert result.equity["equity"][-1] == pytest.approx(860.0)


def test_max_drawdown_halt_without_liquidate_keeps_the_position() -> None:
    df = prices(FLAT, FLAT, (95, 95, 84, 85), (86, 90, 86, 88), (88, 88, 88, 88))
    cfg = BacktestConfig(initial_cash=1_000)
    result = run(df, {0: [("A", 10.0)], 3: [("A", 1.0)]}, [MaxDrawdownHalt(max_drawdown=0.1)], cfg)
    assert trades(result) == [("A", "long", 1, 4, 88.0, "end_of_data")]
    assert rejections(result) == [(3, "A", 1.0, "risk_limit")]


def test_daily_loss_limit_blocks_entries_for_the_rest_of_the_day() -> None:
    df = prices(
        FLAT,  # day 0: buy 10 with all the cash (1,000)
        FLAT,  # day 1: bought at 100; equity 1,000 at the close (day 2's starting equity)
        (95, 95, 84, 85),  # day 2: equity 850, 15% below the day's start: halted today
        (86, 90, 86, 86),  # day 3: starts at 850, ends at 860: entries allowed again
        (86, 86, 86, 86),
    )
    cfg = BacktestConfig(initial_cash=1_000)
    orders = {0: [("A", 10.0)], 2: [("A", 1.0)], 3: [("A", 1.0)]}
    result = run(df, orders, [DailyLossLimit(max_loss=0.1)], cfg)
    assert rejections(result) == [(2, "A", 1.0, "risk_limit")]
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (4, "A", "buy", "market", 1.0, 86.0),
    ]


def test_max_position_size_cuts_the_opening_part_only() -> None:
    df = prices(FLAT, FLAT, FLAT, FLAT)
    orders = {
        0: [("A", 8.0)],  # 5 accepted (fills day 1), the other 3 rejected
        1: [("A", 2.0)],  # already 5 held: no room, all 2 rejected
        # closes 5 (never checked) and opens 7 short, cut to 5: 2 rejected; sells 10 on day 3
        2: [("A", -12.0)],
    }
    result = run(df, orders, [MaxPositionSize(shares=5)])
    assert fills(result) == [
        (1, "A", "buy", "market", 5.0, 100.0),
        (3, "A", "sell", "market", 10.0, 100.0),
    ]
    assert rejections(result) == [
        (0, "A", 3.0, "risk_limit"),
        (1, "A", 2.0, "risk_limit"),
        (2, "A", -2.0, "risk_limit"),
    ]


def two_assets(*ohlc: Bar) -> pl.DataFrame:
    return pl.concat([prices(*ohlc, asset="A"), prices(*ohlc, asset="B")])


def test_volatility_scaled_sizing_reads_an_indicator_column() -> None:
    n = 3
    df = pl.concat([prices(*[FLAT] * n, asset=a) for a in ("A", "B", "C")])
    indicators = pl.DataFrame(
        {
            "timestamp": [day(i) for i in range(n)] * 3,
            "asset": ["A"] * n + ["B"] * n + ["C"] * n,
            "atr": [5.0] * n + [10.0] * n + [math.nan] * n,
        }
    )
    feed = PolarsDataFeed(df, indicators=indicators)
    rule = VolatilityScaledSizing(feature="atr", risk_fraction=0.01, multiple=2.0)
    result = run(feed, {0: [("A", 1.0), ("B", 1.0), ("C", 1.0)]}, [rule])
    # shares = 0.01 * 100,000 / (2 * atr): A 1,000 / 10 = 100, B 1,000 / 20 = 50 (the 1-share
    # orders are sized up); C has no finite volatility: rejected
    assert fills(result) == [
        (1, "A", "buy", "market", 100.0, 100.0),
        (1, "B", "buy", "market", 50.0, 100.0),
    ]
    assert rejections(result) == [(0, "C", 1.0, "risk_limit")]


def test_regime_rule_scales_sizes_while_the_context_column_is_high() -> None:
    n = 4
    df = prices(*[FLAT] * n)
    # the regime is "above" while vix >= 30: day 1 (exactly 30) and day 2
    context = pl.DataFrame({"timestamp": [day(i) for i in range(n)], "vix": [20.0, 30.0, 35, 25]})
    feed = PolarsDataFeed(df, context=context)
    rule = RegimeRule(feature="vix", threshold=30, above=[ScaleSize(factor=0.5)])
    orders = {i: [("A", 10.0)] for i in range(3)}
    result = run(feed, orders, [rule])
    # day 0 (vix 20): 10 shares; days 1 and 2: halved to 5, the other 5 rejected
    assert result.fills["quantity"].to_list() == [10.0, 5.0, 5.0]
    assert rejections(result) == [(1, "A", 5.0, "risk_limit"), (2, "A", 5.0, "risk_limit")]


def test_rules_scoped_to_assets_leave_the_others_alone() -> None:
    df = two_assets(FLAT, (100, 101, 99, 100), (99, 99.5, 94, 96), (96, 96, 96, 96))
    orders = {0: [("A", 10.0), ("B", 10.0)]}
    result = run(df, orders, [StopLoss(pct=0.05, assets=["A"])])
    # both bought at 100; only A has a stop (95), which day 2's low of 94 reaches
    assert trades(result) == [
        ("A", "long", 1, 2, 95.0, "stop_loss"),
        ("B", "long", 1, 3, 96.0, "end_of_data"),
    ]
    assert result.trades["status"].to_list() == ["closed", "open"]


def test_scoped_pre_trade_rule_only_checks_its_assets() -> None:
    df = two_assets(FLAT, FLAT, FLAT)
    orders = {0: [("A", 10.0), ("B", 10.0)]}
    result = run(df, orders, [MaxPositionSize(shares=4, assets=["B"])])
    assert result.fills["quantity"].to_list() == [10.0, 4.0]
    assert rejections(result) == [(0, "B", 6.0, "risk_limit")]


class AllowAll(RiskRule):
    """A pre-trade rule that never objects."""

    def __init__(self) -> None:
        self.calls = 0

    def check_order(self, order: Any) -> None:
        self.calls += 1


def test_a_permissive_rule_does_not_reject_orders_before_the_first_bar() -> None:
    a = prices(FLAT, FLAT, FLAT, FLAT)
    # B's first bar is day 1; its order is decided at day 0
    b = prices(FLAT, FLAT, FLAT, asset="B").with_columns(pl.col("timestamp") + timedelta(days=1))
    df = pl.concat([a, b])
    orders = {0: [("B", 5.0)]}
    without_rules = run(df, orders, [])
    assert fills(without_rules) == [(1, "B", "buy", "market", 5.0, 100.0)]
    rule = AllowAll()
    with_rule = run(df, orders, [rule])
    assert rejections(with_rule) == []
    assert fills(with_rule) == fills(without_rules)


# ------------------------------------------------------------------------------------------------
# custom Python rules
# ------------------------------------------------------------------------------------------------


class CapAndBlock(RiskRule):
    """Rejects every order for B, and cuts any other opening part to 3 shares."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float, float, int]] = []

    def check_order(self, order: Any) -> RiskDecision | None:
        self.seen.append(
            (order.asset, order.quantity, order.position, order.price, order.open_positions)
        )
        if order.asset == "B":
            return RiskDecision.reject("B is blocked")
        if abs(order.quantity) > 3:
            return RiskDecision.resize(3)
        return None


def test_custom_check_order_resizes_and_rejects() -> None:
    df = two_assets(FLAT, FLAT, FLAT, FLAT)
    rule = CapAndBlock()
    # day 0: A 10 -> 3 (7 rejected), B 10 rejected; day 2: selling the 3 held closes only, so
    # it is not checked; day 2 also sells 5 of B short: checked and rejected
    orders = {0: [("A", 10.0), ("B", 10.0)], 2: [("A", -3.0), ("B", -5.0)]}
    result = run(df, orders, [rule])
    assert fills(result) == [
        (1, "A", "buy", "market", 3.0, 100.0),
        (3, "A", "sell", "market", 3.0, 100.0),
    ]
    assert rejections(result) == [
        (0, "A", 7.0, "risk_limit"),
        (0, "B", 10.0, "risk_limit"),
        (2, "B", -5.0, "risk_limit"),
    ]
    # the order contexts: (asset, opening, position, price = last close, open positions);
    # at day 0, A's accepted 3 shares count as a position being opened when B is checked
    assert rule.seen == [
        ("A", 10.0, 0.0, 100.0, 0),
        ("B", 10.0, 0.0, 100.0, 1),
        ("B", -5.0, 0.0, 100.0, 1),
    ]


class Recorder(RiskRule):
    """Records what it sees of each position (and sets no levels)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def evaluate(self, context: Any) -> None:
        self.seen.append(
            {
                "day": (context.timestamp - T0).days,
                "asset": context.asset,
                "quantity": context.quantity,
                "entry_price": context.entry_price,
                "basis_price": context.basis_price,
                "entry_day": (context.entry_time - T0).days,
                "bars_held": context.bars_held,
                "is_new": context.is_new,
                "close": context.close,
                "unrealized_pnl": context.unrealized_pnl,
                "high_water": context.high_water,
                "low_water": context.low_water,
                "high_close": context.high_close,
                "low_close": context.low_close,
                "mfe": context.mfe,
                "mae": context.mae,
                "features": dict(context.features),
                "market_features": dict(context.market_features),
                "equity": context.portfolio.equity,
                "cash": context.portfolio.cash,
                "gross_exposure": context.portfolio.gross_exposure,
                "net_exposure": context.portfolio.net_exposure,
                "peak_equity": context.portfolio.peak_equity,
                "drawdown": context.portfolio.drawdown,
                "day_start_equity": context.portfolio.day_start_equity,
                "open_positions": context.portfolio.open_positions,
            }
        )


def feature_feed(n: int, *ohlc: Bar) -> PolarsDataFeed:
    """Asset A with a ``score`` signal (in the price frame), an ``atr`` indicator and a market
    ``vix`` context column: score = i / 10, atr = 2 + i, vix = 20 + i on day i."""
    df = prices(*ohlc).with_columns(score=pl.Series([i / 10 for i in range(n)]))
    indicators = pl.DataFrame(
        {
            "timestamp": [day(i) for i in range(n)],
            "asset": ["A"] * n,
            "atr": [2.0 + i for i in range(n)],
        }
    )
    context = pl.DataFrame(
        {"timestamp": [day(i) for i in range(n)], "vix": [20.0 + i for i in range(n)]}
    )
    return PolarsDataFeed(df, indicators=indicators, context=context)


def test_risk_context_fields_seen_by_a_python_rule() -> None:
    feed = feature_feed(
        4,
        FLAT,  # day 0: buy 10
        (100, 102, 99, 101),  # day 1: bought at 100
        (101, 104, 100, 103),  # day 2
        (103, 103, 98, 99),  # day 3
    )
    rule = Recorder()
    result = run(feed, BUY_10, [rule])
    assert [s["day"] for s in rule.seen] == [1, 2, 3]
    assert [s["bars_held"] for s in rule.seen] == [0, 1, 2]
    assert [s["is_new"] for s in rule.seen] == [True, False, False]
    for s in rule.seen:
        assert (s["asset"], s["quantity"], s["entry_day"]) == ("A", 10.0, 1)
        assert s["entry_price"] == s["basis_price"] == 100.0
        assert s["open_positions"] == 1
    assert [s["close"] for s in rule.seen] == [101.0, 103.0, 99.0]
    # 10 * (close - 100)
    assert [s["unrealized_pnl"] for s in rule.seen] == pytest.approx([10.0, 30.0, -10.0])
    # marks start at the fill (100) and take the bars' highs / lows / closes
    assert [s["high_water"] for s in rule.seen] == [102.0, 104.0, 104.0]
    assert [s["low_water"] for s in rule.seen] == [99.0, 99.0, 98.0]
    assert [s["high_close"] for s in rule.seen] == [101.0, 103.0, 103.0]
    assert [s["low_close"] for s in rule.seen] == [100.0, 100.0, 99.0]
    # best / worst close return so far: 1%, then 3%; worst 0 until day 3's -1%
    assert [s["mfe"] for s in rule.seen] == pytest.approx([0.01, 0.03, 0.03])
    assert [s["mae"] for s in rule.seen] == pytest.approx([0.0, 0.0, -0.01])
    # per-asset features: the signal and the indicator; market features: the context column
    assert [s["features"] for s in rule.seen] == [
        {"score": pytest.approx(i / 10), "atr": 2.0 + i} for i in (1, 2, 3)
    ]
    assert [s["market_features"] for s in rule.seen] == [{"vix": 20.0 + i} for i in (1, 2, 3)]
    # the portfolio at the close: cash 100,000 - 1,000 and equity = cash + 10 * close
    equity = dict(zip(result.equity["timestamp"], result.equity["equity"], strict=True))
    for s in rule.seen:
        assert s["cash"] == pytest.approx(99_000.0)
        assert s["equity"] == pytest.approx(99_000.0 + 10 * s["close"])
        assert s["equity"] == pytest.approx(equity[day(s["day"])])
        assert s["gross_exposure"] == s["net_exposure"] == pytest.approx(10 * s["close"])
    # equity 100,010, 100,030, 99,990: the peak is 100,030 from day 2 on, day 3's drawdown
    # 1 - 99,990 / 100,030; each day starts from the previous close's equity
    assert [s["peak_equity"] for s in rule.seen] == pytest.approx([100_010, 100_030, 100_030])
    assert [s["drawdown"] for s in rule.seen] == pytest.approx([0, 0, 1 - 99_990 / 100_030])
    assert [s["day_start_equity"] for s in rule.seen] == pytest.approx([100_000, 100_010, 100_030])


def test_same_close_first_evaluation_sees_the_account_after_the_fill() -> None:
    df = prices(FLAT, (101, 101, 101, 101), (102, 102, 102, 102))
    rule = Recorder()
    cfg = BacktestConfig(execution={"mode": "same_close"})
    result = run(df, BUY_10, [rule], cfg)
    first = rule.seen[0]
    assert (first["day"], first["is_new"]) == (0, True)
    # bought 10 at day 0's close, 100: the account at that close (as result.equity records it)
    assert result.equity["cash"][0] == pytest.approx(99_000.0)
    assert first["cash"] == pytest.approx(99_000.0)
    assert first["open_positions"] == 1
    assert first["gross_exposure"] == pytest.approx(1_000.0)


def test_python_rule_exit_and_stop_decisions() -> None:
    """A custom rule can exit part of a position and set stops like the built-ins."""

    class HalfThenStop(RiskRule):
        def evaluate(self, context: Any) -> Any:
            if context.is_new:
                return RiskDecision.exit(fraction=0.5, reason="time_exit")
            return RiskDecision.stop(context.entry_price - 2.0)

    df = prices(
        FLAT,  # day 0: buy 10
        (100, 100, 100, 100),  # day 1: bought at 100; at the close, half is exited
        (101, 101, 101, 101),  # day 2: 5 sold at the open (101); stop 98 set at the close
        (100, 100, 97, 99),  # day 3: the low 97 reaches 98: the other 5 sold at 98
        (99, 99, 99, 99),
    )
    result = run(df, BUY_10, [HalfThenStop()])
    assert fills(result) == [
        (1, "A", "buy", "market", 10.0, 100.0),
        (2, "A", "sell", "market", 5.0, 101.0),
        (3, "A", "sell", "stop", 5.0, 98.0),
    ]
    # one round trip: exit price (5 * 101 + 5 * 98) / 10 = 99.5, the last exit's reason
    assert trades(result) == [("A", "long", 1, 3, 99.5, "stop_loss")]


# ------------------------------------------------------------------------------------------------
# features for strategies: MarketEvent.indicators / .context and feed.features
# ------------------------------------------------------------------------------------------------


def test_market_event_indicators_and_context() -> None:
    class Watch(Strategy):
        def __init__(self) -> None:
            self.seen: list[tuple[int, dict, dict, dict]] = []

        def on_market_data(self, event: Any, context: Any) -> None:
            self.seen.append(
                (
                    (event.timestamp - T0).days,
                    dict(event.signals.items()),
                    dict(event.indicators.items()),
                    dict(event.context.items()),
                )
            )

    feed = feature_feed(3, FLAT, FLAT, FLAT)
    strategy = Watch()
    Backtest(feed, strategy).run(progress=False)
    assert strategy.seen == [
        (
            i,
            # signals: every feature column of the bar
            {"score": pytest.approx(i / 10), "atr": 2.0 + i, "vix": 20.0 + i},
            {"atr": 2.0 + i},
            {"vix": 20.0 + i},
        )
        for i in range(3)
    ]


def test_feed_features_groups_and_lookups() -> None:
    feed = feature_feed(3, FLAT, FLAT, FLAT)
    features = feed.features
    assert features.signals == ("score",)
    assert features.indicators == ("atr",)
    assert features.context == ("vix",)
    assert features.asset_features == ("score", "atr")
    assert features.market_features == ("vix",)
    assert features.groups() == {"indicators": ["atr"], "context": ["vix"]}
    assert features.at(day(1), "A") == {"score": pytest.approx(0.1), "atr": 3.0}
    assert features.market_at(day(2)) == {"vix": 22.0}
    # no bar at that time: empty
    assert features.at(day(9), "A") == {}
    assert features.market_at(day(9)) == {}


# ------------------------------------------------------------------------------------------------
# the same run from a YAML config
# ------------------------------------------------------------------------------------------------

YAML = """\
initial_cash: 50000
execution:
  mode: next_open
  stop_basis: signal_close
risk:
  - type: stop_loss
    pct: 0.02
  - type: take_profit
    pct: 0.04
  - type: trailing_stop
    pct: 0.03
    mark: extreme
  - type: time_exit
    max_bars: 8
  - type: max_position_size
    shares: 15
    assets: [A0001]
  - type: regime
    feature: vix
    threshold: 25
    above:
      - type: scale_size
        factor: 0.5
"""


def yaml_feed() -> PolarsDataFeed:
    df = make_bars(n_assets=3, n_bars=80, seed=4)
    times = df["timestamp"].unique().sort()
    context = pl.DataFrame(
        {"timestamp": times, "vix": [15.0 + (i % 20) for i in range(len(times))]}
    )
    return PolarsDataFeed(df, context=context)


def test_yaml_risk_section_equals_the_api_run(tmp_path: Path) -> None:
    path = tmp_path / "backtest.yaml"
    path.write_text(YAML)
    from_file = BacktestConfig.from_yaml(path)
    assert [rule.type for rule in from_file.risk] == [
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "time_exit",
        "max_position_size",
        "regime",
    ]
    rules = [
        StopLoss(pct=0.02),
        TakeProfit(pct=0.04),
        TrailingStop(pct=0.03, mark="extreme"),
        TimeExit(max_bars=8),
        MaxPositionSize(shares=15, assets=["A0001"]),
        RegimeRule(feature="vix", threshold=25, above=[ScaleSize(factor=0.5)]),
    ]
    assert list(from_file.risk) == rules
    api_config = BacktestConfig(initial_cash=50_000, execution={"stop_basis": "signal_close"})
    strategy = SignalStrategy("signal", quantity=20, allow_short=True)
    by_file = Backtest(yaml_feed(), strategy, config=from_file).run(progress=False)
    by_api = Backtest(yaml_feed(), strategy, config=api_config, risk=rules).run(progress=False)
    for name in ("fills", "trades", "equity", "rejected_orders"):
        assert getattr(by_file, name).equals(getattr(by_api, name)), name
    # the rules did something
    reasons = set(by_api.trades["exit_reason"].to_list())
    assert {"stop_loss", "take_profit"} <= reasons
    assert "risk_limit" in set(by_api.rejected_orders["reason"].to_list())
    # and a config round trip keeps the rules
    again = tmp_path / "again.yaml"
    from_file.to_yaml(again)
    assert BacktestConfig.from_yaml(again) == from_file


CUSTOM_MODULE = """\
from ml4t.backtest import RiskDecision, RiskRule


class ExitAfter(RiskRule):
    def __init__(self, bars):
        self.bars = bars

    def evaluate(self, context):
        if context.bars_held >= self.bars:
            return RiskDecision.exit(reason="time_exit")
        return None
"""


def test_yaml_custom_rule_equals_the_instance(tmp_path: Path) -> None:
    (tmp_path / "risk_rules_for_yaml_test.py").write_text(CUSTOM_MODULE)
    path = tmp_path / "custom.yaml"
    path.write_text(
        "risk:\n"
        "  - type: custom\n"
        "    path: risk_rules_for_yaml_test:ExitAfter\n"
        "    params: {bars: 3}\n"
    )
    config = BacktestConfig.from_yaml(path)
    assert config.risk == [
        CustomRule(path="risk_rules_for_yaml_test:ExitAfter", params={"bars": 3})
    ]
    df = make_bars(n_assets=2, n_bars=40, seed=2)
    strategy = SignalStrategy("signal", quantity=10)
    by_file = Backtest(PolarsDataFeed(df), strategy, config=config, search_path=str(tmp_path)).run(
        progress=False
    )
    # the equivalent built-in: exit once held 3 bars
    by_api = Backtest(PolarsDataFeed(df), strategy, risk=[TimeExit(max_bars=3)]).run(progress=False)
    for name in ("fills", "trades", "equity", "rejected_orders"):
        assert getattr(by_file, name).equals(getattr(by_api, name)), name
    assert "time_exit" in set(by_file.trades["exit_reason"].to_list())


def test_the_result_config_lists_the_rules_of_the_run(tmp_path: Path) -> None:
    # Built-in rules given to Backtest join config.risk in the result's (resolved) config;
    # a Python rule is named in the run info of the manifest.
    class Noop(RiskRule):
        def evaluate(self, context: Any) -> None:
            return None

    feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=30, seed=4))
    config = BacktestConfig(risk=[{"type": "take_profit", "pct": 0.1}])
    rules = [StopLoss(pct=0.05), Noop()]
    result = Backtest(feed, SignalStrategy("signal", quantity=1), config=config, risk=rules).run()
    assert [rule.type for rule in result.config.risk] == ["take_profit", "stop_loss"]
    assert config.risk[0].type == "take_profit" and len(config.risk) == 1  # not modified
    assert result.run_info["python_risk_rules"] == [f"{__name__}:{Noop.__qualname__}"]
    result.save(tmp_path / "run")
    loaded = BacktestResult.load(tmp_path / "run")
    assert loaded.config == result.config
    assert loaded.run_info["python_risk_rules"] == result.run_info["python_risk_rules"]
