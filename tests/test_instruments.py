"""Instruments (issue 15): futures with a multiplier, variation margin, per-contract fees and
margins, expiry and the roll recipe; crypto perpetuals' funding and liquidation; the instrument
spec's checks. Every expected number is computed by hand in the comments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import ConfigError, OrderError

START = datetime(2024, 3, 1)
ES = {
    "asset_class": "future",
    "multiplier": 50,
    "tick_size": 0.25,
    "margin_initial": 12_000,
    "margin_maintenance": 11_000,
    "commission_per_contract": 2.5,
}


def bars(prices: dict[str, list[float]], step: timedelta = timedelta(days=1), **extra: Any):
    """One bar per step and asset, open = close = high = low (``None``: no bar)."""
    rows = []
    for asset, series in prices.items():
        for i, p in enumerate(series):
            if p is None:
                continue
            row = {
                "timestamp": START + i * step,
                "asset": asset,
                "open": p,
                "high": p,
                "low": p,
                "close": p,
                "volume": 1e6,
            }
            for name, values in extra.items():
                row[name] = values[asset][i]
            rows.append(row)
    return pl.DataFrame(rows)


class Script(Strategy):
    """Submits ``orders[day] = [(asset, quantity), ...]``; records the cash it sees."""

    def __init__(self, orders: dict[int, list[tuple[str, float]]], step=timedelta(days=1)):
        self.orders = orders
        self.step = step
        self.cash: list[float] = []

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        self.cash.append(context.cash)
        for asset, quantity in self.orders.get((timestamp - START) // self.step, []):
            context.submit_order(asset, quantity)


def run(frame: pl.DataFrame, instruments: Any, strategy: Strategy, **config: Any) -> Any:
    feed = PolarsDataFeed(frame, instruments=instruments)
    return Backtest(feed, strategy, config=BacktestConfig(**config)).run()


def test_an_es_round_trip_with_a_variation_margin_day() -> None:
    frame = bars({"ES": [4500.0, 4510.0, 4490.0, 4480.0]})
    strategy = Script({0: [("ES", 2.0)], 2: [("ES", -2.0)]})
    result = run(frame, {"ES": ES}, strategy)
    # Bought 2 at 4510 ($5 fees): the close at 4510 settles nothing; at 4490 the variation is
    # 2 x -20 x 50 = -2_000 in cash; sold at 4480: 2 x -10 x 50 - 5 = -1_005.
    assert result.equity["cash"].to_list() == [100_000.0, 99_995.0, 97_995.0, 96_990.0]
    assert result.equity["equity"].to_list() == [100_000.0, 99_995.0, 97_995.0, 96_990.0]
    assert strategy.cash[2] == 97_995.0
    trade = result.trades.row(0, named=True)
    assert (trade["multiplier"], trade["gross_pnl"], trade["commission"]) == (50.0, -3_000.0, 10.0)
    assert trade["net_pnl"] == -3_010.0
    # return on the entry notional: -3_010 / (4510 x 2 x 50)
    assert trade["return_pct"] == pytest.approx(-3_010.0 / 451_000.0)
    assert result.fills["multiplier"].to_list() == [50.0, 50.0]
    assert result.metrics["total_commission"] == 10.0


def test_a_frame_of_specs_equals_the_dict() -> None:
    frame = bars({"ES": [4500.0, 4510.0, 4490.0, 4480.0], "SPY": [500.0] * 4})
    specs = pl.DataFrame([{"asset": "ES", **ES}])
    strategy = Script({0: [("ES", 2.0), ("SPY", 10.0)], 2: [("ES", -2.0)]})
    by_frame = run(frame, specs, strategy)
    by_dict = run(frame, {"ES": ES}, Script(strategy.orders))
    assert by_frame.equity.equals(by_dict.equity)
    # SPY is a share: its notional left cash.
    assert by_frame.equity["long_value"].to_list()[1:] == [5_000.0] * 3


def test_margin_per_contract_is_checked_at_the_fill() -> None:
    frame = bars({"ES": [4500.0, 4500.0]})
    result = run(frame, {"ES": ES}, Script({0: [("ES", 2.0)]}), initial_cash=20_000.0)
    assert result.fills.height == 0
    assert result.rejected_orders["reason"].to_list() == ["insufficient_margin"]


def test_ticks_round_a_buy_limit_down() -> None:
    frame = bars({"ES": [4500.0, 4499.0, 4499.0]})

    class Limit(Strategy):
        def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
            if timestamp == START:
                context.submit_order("ES", 1.0, limit=4499.1)

    result = run(frame, {"ES": ES}, Limit())
    assert result.orders["limit"].to_list() == [4499.0]
    assert result.fills["price"].to_list() == [4499.0]


def test_lots_refuse_an_odd_quantity() -> None:
    frame = bars({"ES": [4500.0, 4500.0]})
    with pytest.raises(OrderError, match="lot_size"):
        run(frame, {"ES": ES}, Script({0: [("ES", 1.5)]}))


def test_expiry_closes_the_position_and_refuses_later_orders() -> None:
    frame = bars({"ESH4": [4500.0, 4500.0, 4510.0, 4510.0]})
    specs = {"ESH4": {**ES, "expiry": START + timedelta(days=2)}}
    result = run(frame, specs, Script({0: [("ESH4", 1.0)], 3: [("ESH4", 1.0)]}))
    trade = result.trades.row(0, named=True)
    assert (trade["exit_reason"], trade["exit_time"]) == ("contract_expired", START + 2 * DAY)
    assert trade["gross_pnl"] == 500.0  # (4510 - 4500) x 50
    assert result.rejected_orders["reason"].to_list() == ["contract_expired"]
    assert result.orders.filter(pl.col("origin") == "expiry").height == 1


DAY = timedelta(days=1)


class Roll(Strategy):
    """The roll recipe (docs/semantics.md, "Instruments"): hold one contract of the front
    month; ``days`` before its expiry close it and buy the next contract."""

    def __init__(self, contracts: list[tuple[str, datetime]], days: int) -> None:
        self.contracts = contracts  # (asset, expiry), front first
        self.days = days

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        live = [(a, e) for a, e in self.contracts if timestamp < e - timedelta(days=self.days)]
        target = live[0][0] if live else None
        for asset, _ in self.contracts:
            held = context.position(asset)
            if asset == target and held == 0.0:
                context.submit_order(asset, 1.0)
            elif asset != target and held != 0.0:
                context.close_position(asset)


def test_the_roll_recipe_moves_the_position_before_expiry() -> None:
    frame = bars({"ESH4": [4500.0 + i for i in range(8)], "ESM4": [4520.0 + i for i in range(8)]})
    expiries = [("ESH4", START + 5 * DAY), ("ESM4", START + 60 * DAY)]
    specs = {a: {**ES, "expiry": e} for a, e in expiries}
    result = run(frame, specs, Roll(expiries, days=2))
    trades = result.trades.sort("entry_time")
    assert trades["asset"].cast(pl.String).to_list() == ["ESH4", "ESM4"]
    # The front month is sold at day 4's open (decided at day 3, 2 days before its expiry).
    front = trades.row(0, named=True)
    assert (front["exit_reason"], front["exit_time"]) == ("signal", START + 4 * DAY)
    assert "contract_expired" not in result.trades["exit_reason"].to_list()
    assert result.rejected_orders.height == 0


def test_a_btc_perpetual_pays_three_fundings_long_and_short() -> None:
    step = timedelta(hours=4)
    closes = [20_000.0, 20_000.0, 20_000.0, 20_500.0, 21_000.0, 21_500.0, 22_000.0]
    nan = float("nan")
    rates = [nan, nan, 0.0001, nan, -0.0002, nan, 0.0003]
    frame = bars({"BTC-PERP": closes}, step=step, funding_rate={"BTC-PERP": rates})
    spec = {"BTC-PERP": {"asset_class": "crypto_perp", "margin_initial_pct": 0.1}}
    for side in (1.0, -1.0):
        strategy = Script({0: [("BTC-PERP", side)]}, step=step)
        result = run(frame, spec, strategy, account={"funding_rate_column": "funding_rate"})
        # At 08:00 (close 20_000, 1e-4) a long pays 2; at 16:00 (21_000, -2e-4) receives 4.2;
        # at 24:00 (22_000, 3e-4) pays 6.6; a short the opposite.
        funding = result.equity.filter(pl.col("funding") != 0.0)
        assert funding["funding"].to_list() == pytest.approx([-2.0 * side, 4.2 * side, -6.6 * side])
        assert funding["timestamp"].to_list() == [
            START + 2 * step,
            START + 4 * step,
            START + 6 * step,
        ]
        assert result.trades["funding"].to_list() == pytest.approx([-4.4 * side])
        assert result.metrics["total_funding"] == pytest.approx(-4.4 * side)
        assert result.equity["equity"][-1] == pytest.approx(100_000 + side * 2_000 - 4.4 * side)


def test_a_perpetual_is_liquidated_at_its_maintenance_margin() -> None:
    frame = bars({"BTC-PERP": [20_000.0, 20_000.0, 19_500.0, 18_500.0, 18_000.0]})
    spec = {
        "BTC-PERP": {
            "asset_class": "crypto_perp",
            "margin_initial_pct": 0.1,
            "margin_maintenance_pct": 0.05,
        }
    }
    result = run(frame, spec, Script({0: [("BTC-PERP", 5.0)]}), initial_cash=10_000.0)
    # At 18_500 equity is 2_500 < 0.05 x 92_500 = 4_625: liquidated at that close.
    trade = result.trades.row(0, named=True)
    assert (trade["exit_reason"], trade["exit_time"]) == ("liquidation", START + 3 * DAY)
    assert result.equity["equity"][-1] == 2_500.0


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"NOPE": {"multiplier": 2}}, r"instruments\[NOPE\]: unknown asset"),
        ({"ES": {**ES, "multiplier": 0}}, r"instruments\[ES\]\.multiplier: must be finite and > 0"),
        ({"ES": {**ES, "tick_size": -0.25}}, r"instruments\[ES\]\.tick_size"),
        ({"ES": {"asset_class": "bond"}}, r"instruments\[ES\]\.asset_class: must be one of"),
        ({"ES": {"currency": "EUR1"}}, r"instruments\[ES\]\.currency: must be a 3-letter"),
        ({"ES": {"expiry": "2024-03-15"}}, r"instruments\[ES\]\.expiry: only futures expire"),
        (
            {"ES": {**ES, "margin_initial_pct": 0.1}},
            r"instruments\[ES\]\.margin_initial: give margin_initial .* not both",
        ),
        ({"ES": {**ES, "margin_maintenance_pct": 2}}, r"margin_maintenance_pct: must be in"),
        (
            {"ES": {"asset_class": "crypto_perp", "funding_interval": "1mo"}},
            r"instruments\[ES\]\.funding_interval: not a fixed duration",
        ),
    ],
)
def test_bad_specs_are_errors_naming_the_asset_and_field(specs: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PolarsDataFeed(bars({"ES": [4500.0, 4500.0]}), instruments=specs)


def test_equity_only_runs_are_unchanged_by_plain_specs() -> None:
    frame = bars({"A": [10.0, 11.0, 12.0], "B": [20.0, 19.0, 18.0]})
    orders = {0: [("A", 10.0), ("B", -5.0)]}
    plain = run(frame, None, Script(orders))
    specs = run(frame, {"A": {"asset_class": "equity"}}, Script(orders))
    assert plain.equity.equals(specs.equity)
    assert plain.fills.equals(specs.fills)


def test_the_report_shows_exposure_per_asset_class(tmp_path: Any) -> None:
    frame = bars({"ES": [4500.0] * 4, "SPY": [500.0] * 4})
    result = run(frame, {"ES": ES}, Script({0: [("ES", 1.0), ("SPY", 100.0)]}))
    page = result.report(tmp_path / "report.html", plotlyjs="cdn").read_text()
    assert "Exposure by asset class" in page
    # ES: 4500 x 50 = 225_000 of notional on ~100_000 of equity over 3 of 4 timestamps.
    positions = result.positions(None)
    from ml4t.backtest.results.analysis import exposure_by_class

    table = exposure_by_class(positions, {"ES": "future"}, {"ES": 50.0})
    last = table.filter(pl.col("timestamp") == table["timestamp"].max())
    assert dict(zip(last["asset_class"], last["gross"], strict=True)) == {
        "equity": 50_000.0,
        "future": 225_000.0,
    }


def test_validate_takes_the_instrument_specs() -> None:
    from ml4t.backtest.data import validate

    frame = bars({"ES": [4500.0, 4500.0]})
    assert validate(frame, instruments={"ES": ES}).ok
    with pytest.raises(ConfigError, match=r"instruments\[ES\]\.multiplier"):
        validate(frame, instruments={"ES": {**ES, "multiplier": -1}})


def test_a_pickled_feed_keeps_its_instruments() -> None:
    import pickle

    feed = PolarsDataFeed(bars({"ES": [4500.0, 4510.0]}), instruments={"ES": ES})
    assert pickle.loads(pickle.dumps(feed)).instruments == feed.instruments
    assert feed.instruments == [
        {
            "asset_class": "future",
            "multiplier": 50.0,
            "tick_size": 0.25,
            "margin_initial": 12_000.0,
            "margin_maintenance": 11_000.0,
            "commission_per_contract": 2.5,
            "lot_size": 1.0,
        }
    ]
