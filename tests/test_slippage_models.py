"""Slippage models through the public API: ``BacktestConfig(slippage={...})`` and, for a custom
Python model, ``Backtest(..., slippage_model=...)``.

Every expected price is computed by hand. The frame has one asset ``A`` and three daily bars;
a script buys at bar 0 (filled at the open of bar 1, reference 100) and sells at bar 1 (filled
at the open of bar 2, reference 101). Bars are wide enough that no price is clamped unless the
test says so.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    SlippageModel,
    Strategy,
)
from ml4t.backtest.errors import ConfigError, StrategyError

T0 = datetime(2024, 1, 1)
BARS = [(100.0, 100.5, 99.5, 100.0), (100.0, 102.0, 98.0, 101.0), (101.0, 103.0, 99.0, 102.0)]


def frame(volume: tuple[float, ...] = (1000.0, 1000.0, 1000.0), **features: list[float]) -> Any:
    rows = []
    for i, (o, h, lo, c) in enumerate(BARS):
        row = {
            "timestamp": T0 + timedelta(days=i),
            "asset": "A",
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": volume[i],
        }
        row.update({name: values[i] for name, values in features.items()})
        rows.append(row)
    return pl.DataFrame(rows)


class BuyThenSell(Strategy):
    """Buys ``buy`` shares at bar 0 and sells ``sell`` at bar 1."""

    def __init__(self, buy: float = 10.0, sell: float = 10.0, limit: float | None = None) -> None:
        self.buy, self.sell, self.limit, self.index = buy, sell, limit, 0

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if self.index == 0:
            context.submit_order("A", self.buy)
        elif self.index == 1:
            context.submit_order("A", -self.sell, limit=self.limit)
        self.index += 1


def run(
    slippage: dict[str, Any],
    data: Any = None,
    strategy: Strategy | None = None,
    model: SlippageModel | None = None,
    **config: Any,
) -> Any:
    feed = PolarsDataFeed(frame() if data is None else data)
    cfg = BacktestConfig(slippage=slippage, **config)
    return Backtest(feed, strategy or BuyThenSell(), config=cfg, slippage_model=model).run(
        progress=False
    )


def prices(result: Any) -> list[tuple[str, float, float, float]]:
    """(side, price, reference_price, slippage) of every fill."""
    return [
        (f["side"], f["price"], f["reference_price"], f["slippage"])
        for f in result.fills.iter_rows(named=True)
    ]


def check(result: Any, expected: list[tuple[str, float, float]]) -> None:
    got = prices(result)
    assert len(got) == len(expected)
    for (side, price, reference, slippage), (want_side, want_price, want_ref) in zip(
        got, expected, strict=True
    ):
        assert side == want_side
        assert reference == want_ref
        assert price == pytest.approx(want_price, abs=1e-9)
        assert slippage == pytest.approx(abs(want_price - want_ref) * 10.0, abs=1e-9)


def test_none_fixed_and_percent_are_unchanged() -> None:
    check(run({"model": "none"}), [("buy", 100.0, 100.0), ("sell", 101.0, 101.0)])
    check(
        run({"model": "fixed", "amount": 0.25}),
        [("buy", 100.25, 100.0), ("sell", 100.75, 101.0)],
    )
    check(
        run({"model": "percent", "rate": 0.01}),
        [("buy", 101.0, 100.0), ("sell", 99.99, 101.0)],
    )


def test_spread_fills_buys_at_the_ask_and_sells_at_the_bid() -> None:
    data = frame(bid=[99.0, 99.9, 100.8], ask=[101.0, 100.1, 101.3])
    result = run(
        {"model": "spread", "bps": 50.0},
        data,
        commission={"model": "per_order", "amount": 1.0},
    )
    check(result, [("buy", 100.1, 100.0), ("sell", 100.8, 101.0)])
    # Commission is its own column, slippage its own.
    assert result.fills["commission"].to_list() == [1.0, 1.0]
    assert result.fills["slippage"].sum() == pytest.approx(1.0 + 2.0)
    assert result.trades["slippage"].sum() == pytest.approx(1.0 + 2.0)


def test_spread_column_and_bps_fallback() -> None:
    # A spread column of 0.4 then 0.6: half on each side of the reference.
    check(
        run({"model": "spread"}, frame(spread=[1.0, 0.4, 0.6])),
        [("buy", 100.2, 100.0), ("sell", 100.7, 101.0)],
    )
    # No quote columns: 20 bps of full spread, 10 bps a side.
    check(
        run({"model": "spread", "bps": 20.0}),
        [("buy", 100.1, 100.0), ("sell", 100.899, 101.0)],
    )


def test_limit_fills_never_slip() -> None:
    data = frame(bid=[99.0, 99.0, 99.0], ask=[101.0, 101.0, 101.0])
    # The limit sell at 101.5 fills at its limit inside bar 2 (open 101, high 103).
    result = run({"model": "spread"}, data, BuyThenSell(limit=101.5))
    got = prices(result)
    assert got[0][:3] == ("buy", 101.0, 100.0)
    assert got[1] == ("sell", 101.5, 101.5, 0.0)


def test_volume_share_grows_with_the_order_and_is_capped() -> None:
    data = frame(volume=(1000.0, 2000.0, 1000.0))
    # Buy 20 of 2000: 0.5 * 0.01 = 0.5% -> 100.5. Sell 100 of 1000: 5% > cap 1% -> 101 * 0.99.
    result = run(
        {"model": "volume_share", "impact": 0.5, "cap": 0.01},
        data,
        BuyThenSell(buy=20.0, sell=100.0),
    )
    got = prices(result)
    assert got[0][1] == pytest.approx(100.5)
    assert got[0][3] == pytest.approx(0.5 * 20)
    assert got[1][1] == pytest.approx(99.99)
    assert got[1][3] == pytest.approx(1.01 * 100)


def test_sqrt_impact_reads_sigma_and_adv_columns() -> None:
    data = frame(vol=[0.05, 0.02, 0.01], adv20=[1.0, 40_000.0, 10_000.0])
    slip = {"model": "sqrt_impact", "k": 1.0, "sigma_column": "vol", "adv_column": "adv20"}
    result = run(slip, data, BuyThenSell(buy=100.0, sell=400.0))
    got = prices(result)
    # 0.02 * sqrt(100 / 40000) = 0.001 -> 100.1; 0.01 * sqrt(400 / 10000) = 0.002 -> 100.798.
    assert got[0][1] == pytest.approx(100.1)
    assert got[1][1] == pytest.approx(100.798)
    assert got[1][3] == pytest.approx(0.202 * 400)


def test_sqrt_impact_missing_column_fails_at_the_start() -> None:
    class Never(Strategy):
        started = False

        def on_start(self, context: Any) -> None:
            Never.started = True

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            pass

    slip = {"model": "sqrt_impact", "sigma_column": "vol", "adv_column": "adv20"}
    with pytest.raises(ConfigError, match=re.escape("slippage.adv_column: column 'adv20'")):
        run(slip, frame(vol=[0.01] * 3), Never())
    assert not Never.started
    # The same with a built-in strategy.
    with pytest.raises(ConfigError, match=re.escape("slippage.sigma_column: column 'vol'")):
        run(slip, frame(signal=[1.0, 0.0, 0.0], adv20=[1.0] * 3), SignalStrategy("signal", 1))


class Proportional(SlippageModel):
    """Moves the price by ``bps`` basis points per 10% of bar volume; records its calls."""

    def __init__(self, bps: float) -> None:
        self.bps = bps
        self.calls: list[tuple[str, float, float, dict[str, float]]] = []

    def price(self, side: str, quantity: float, reference: float, bar: dict[str, float]) -> float:
        self.calls.append((side, quantity, reference, dict(bar)))
        move = reference * self.bps / 10_000 * (quantity / bar["volume"]) / 0.1
        return reference + move if side == "buy" else reference - move


def test_custom_python_model() -> None:
    model = Proportional(bps=10.0)
    result = run({"model": "custom"}, frame(score=[0.1, 0.2, 0.3]), model=model)
    # 10 of 1000 = 1% = 0.1 * 10% -> 1 bp: 100 * 1.0001 = 100.01 and 101 * 0.9999 = 100.9899.
    check(result, [("buy", 100.01, 100.0), ("sell", 100.9899, 101.0)])
    assert [c[:3] for c in model.calls] == [("buy", 10.0, 100.0), ("sell", 10.0, 101.0)]
    bar = model.calls[0][3]
    assert bar["asset"] == "A" and bar["asset_id"] == 0
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == BARS[1]
    assert bar["score"] == 0.2 and bar["volume"] == 1000.0
    assert isinstance(bar["ts"], int)


def test_custom_model_with_a_builtin_strategy_runs_without_holding_the_gil() -> None:
    model = Proportional(bps=0.0)
    data = frame(signal=[1.0, 1.0, 0.0])
    result = run({"model": "custom"}, data, SignalStrategy("signal", quantity=5), model=model)
    assert result.fills.height >= 1
    assert len(model.calls) == result.fills.height
    assert result.fills["slippage"].to_list() == [0.0] * result.fills.height


class Broken(SlippageModel):
    def price(self, side: str, quantity: float, reference: float, bar: dict[str, float]) -> float:
        raise ValueError("no quote today")


class NotANumber(SlippageModel):
    def price(self, side: str, quantity: float, reference: float, bar: dict[str, float]) -> float:
        return math.nan


def test_an_exception_in_the_custom_model_is_chained() -> None:
    with pytest.raises(
        StrategyError, match=re.escape("ValueError in Broken.price: no quote today")
    ) as info:
        run({"model": "custom"}, model=Broken())
    assert isinstance(info.value.__cause__, ValueError)
    data = frame(signal=[1.0, 1.0, 0.0])
    with pytest.raises(StrategyError, match=re.escape("Broken.price")) as info:
        run({"model": "custom"}, data, SignalStrategy("signal", quantity=5), model=Broken())
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(StrategyError, match="finite and > 0"):
        run({"model": "custom"}, model=NotANumber())


@pytest.mark.parametrize(
    ("slippage", "location"),
    [
        ({"model": "spread", "bps": -1.0}, "slippage.bps"),
        ({"model": "volume_share", "impact": 0.0}, "slippage.impact"),
        ({"model": "volume_share", "cap": 1.5}, "slippage.cap"),
        ({"model": "sqrt_impact", "k": 0.0, "sigma_column": "v", "adv_column": "a"}, "slippage.k"),
        ({"model": "sqrt_impact", "adv_column": "a"}, "slippage.sigma_column"),
        ({"model": "sqrt_impact", "sigma_column": "v"}, "slippage.adv_column"),
        ({"model": "square_root"}, "slippage.model"),
    ],
)
def test_bad_parameters_raise_config_error(slippage: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError, match=location):
        BacktestConfig(slippage=slippage)


def test_custom_model_wiring_errors() -> None:
    feed = PolarsDataFeed(frame())
    with pytest.raises(
        ConfigError, match=re.escape("slippage.model: 'custom' needs a SlippageModel")
    ):
        Backtest(feed, BuyThenSell(), config=BacktestConfig(slippage={"model": "custom"}))
    with pytest.raises(
        ConfigError, match=re.escape("slippage_model: given, but slippage.model is 'none'")
    ):
        Backtest(feed, BuyThenSell(), slippage_model=Broken())
    custom = BacktestConfig(slippage={"model": "custom"})
    with pytest.raises(ConfigError, match="expected a SlippageModel subclass instance"):
        Backtest(feed, BuyThenSell(), config=custom, slippage_model=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not implement price"):
        Backtest(feed, BuyThenSell(), config=custom, slippage_model=SlippageModel())


def test_engine_dict_rejects_bad_values_from_rust_too() -> None:
    # A config that bypasses pydantic (e.g. a hand-built engine dict) is checked by the engine.
    cfg = BacktestConfig(slippage={"model": "volume_share"})

    class Hacked(BacktestConfig):  # type: ignore[misc]
        def engine_dict(self) -> dict[str, Any]:
            spec = super().engine_dict()
            return {**spec, "slippage": {**spec["slippage"], "k": 0.0, "model": "sqrt_impact"}}

    hacked = Hacked(slippage=cfg.slippage)
    with pytest.raises(ConfigError, match=r"slippage\.k: must be > 0"):
        Backtest(PolarsDataFeed(frame()), BuyThenSell(), config=hacked).run(progress=False)
