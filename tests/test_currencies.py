"""Several currencies (issue 15, item 3): a EUR-quoted stock bought from a USD account while
EUR/USD moves (equity, cash per currency, trade PnL local and base), ``auto_convert`` with its
cost, the point-in-time rate, every construction error, and a property: equity in base is
Σ cash_c x rate_c + Σ positions marked x rate at every timestamp. Expected numbers are
computed by hand in the comments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy
from ml4t.backtest.errors import ConfigError, DataValidationError

START = datetime(2024, 3, 1)
DAY = timedelta(days=1)


def bars(prices: dict[str, list[float]]) -> pl.DataFrame:
    """One bar per day and asset, open = close = high = low."""
    rows = [
        {
            "timestamp": START + i * DAY,
            "asset": asset,
            "open": p,
            "high": p,
            "low": p,
            "close": p,
            "volume": 1e6,
        }
        for asset, series in prices.items()
        for i, p in enumerate(series)
    ]
    return pl.DataFrame(rows)


def rates(currency: str, values: list[float], offset: timedelta = timedelta(0)) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [START + i * DAY + offset for i in range(len(values))],
            "currency": [currency] * len(values),
            "rate": values,
        }
    )


class Script(Strategy):
    """Submits ``orders[day] = [(asset, quantity), ...]``; records the cash and equity it sees."""

    def __init__(self, orders: dict[int, list[tuple[str, float]]]):
        self.orders = orders
        self.seen: list[tuple[float, float]] = []

    def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
        self.seen.append((context.cash, context.equity))
        for asset, quantity in self.orders.get((timestamp - START) // DAY, []):
            context.submit_order(asset, quantity)


SAP = {"SAP": {"currency": "EUR"}}


def run(frame: pl.DataFrame, fx: Any, strategy: Strategy, instruments: Any = SAP, **config: Any):
    feed = PolarsDataFeed(frame, instruments=instruments, fx=fx)
    config.setdefault("execution", {"mode": "same_close"})
    return Backtest(feed, strategy, config=BacktestConfig(**config)).run()


def test_a_eur_stock_bought_from_a_usd_account_while_eurusd_moves() -> None:
    # SAP closes 100, 110, 120 EUR; EUR/USD 1.10, 1.20, 1.00. Bought 100 at the day-1 close
    # (100 EUR at 1.20), sold at the day-2 close (110 EUR at 1.00).
    frame = bars({"SAP": [90.0, 100.0, 110.0]})
    strategy = Script({1: [("SAP", 100.0)], 2: [("SAP", -100.0)]})
    result = run(frame, rates("EUR", [1.10, 1.20, 1.00]), strategy)
    # day 0: 100_000 USD. day 1: EUR cash -10_000 (worth -12_000), the position 100 x 100 x 1.2
    # = 12_000: equity 100_000. day 2: EUR cash -10_000 + 11_000 = 1_000 at 1.00: equity 101_000.
    assert result.equity["cash"].to_list() == [100_000.0, 88_000.0, 101_000.0]
    assert result.equity["long_value"].to_list() == [0.0, 12_000.0, 0.0]
    assert result.equity["equity"].to_list() == [100_000.0, 100_000.0, 101_000.0]
    fills = result.fills
    assert fills["currency"].to_list() == ["EUR", "EUR"]
    assert fills["fx_rate"].to_list() == [1.2, 1.0]
    trade = result.trades.row(0, named=True)
    # Local: 100 x (110 - 100) = 1_000 EUR. Base, each fill at its rate: 11_000 x 1.0 - 10_000
    # x 1.2 = -1_000 USD (the rest of the equity's +1_000 is the EUR debt's revaluation).
    assert trade["currency"] == "EUR"
    assert trade["gross_pnl_local"] == pytest.approx(1_000.0)
    assert trade["net_pnl_local"] == pytest.approx(1_000.0)
    assert trade["gross_pnl"] == pytest.approx(-1_000.0)
    cash = result.cash_by_currency()
    assert cash is not None
    eur = cash.filter(pl.col("currency") == "EUR")
    # EUR's row when its rate or balance changed: 0 at 1.1 (day 0), -10_000 at 1.2, 1_000 at 1.0.
    assert eur["cash"].to_list() == [0.0, -10_000.0, 1_000.0]
    assert eur["rate"].to_list() == [1.1, 1.2, 1.0]
    assert eur["cash_in_base"].to_list() == [0.0, -12_000.0, 1_000.0]
    usd = cash.filter(pl.col("currency") == "USD")
    assert usd["cash"].to_list() == [100_000.0]
    assert result.metrics["total_return"] == pytest.approx(0.01)


def test_auto_convert_sweeps_foreign_cash_to_base_at_each_close_with_its_fee() -> None:
    frame = bars({"SAP": [90.0, 100.0, 110.0]})
    strategy = Script({1: [("SAP", 100.0)], 2: [("SAP", -100.0)]})
    account = {"auto_convert": True, "fx_fee": 0.001}
    result = run(frame, rates("EUR", [1.10, 1.20, 1.00]), strategy, account=account)
    # day 1: -10_000 EUR swept at 1.20 = -12_000 USD, fee 12: cash 87_988, equity 87_988 +
    # 12_000 = 99_988. day 2: +11_000 EUR at 1.00, fee 11: cash 98_977.
    assert result.equity["cash"].to_list() == pytest.approx([100_000.0, 87_988.0, 98_977.0])
    assert result.equity["equity"].to_list() == pytest.approx([100_000.0, 99_988.0, 98_977.0])
    cash = result.cash_by_currency()
    assert cash is not None
    eur = cash.filter(pl.col("currency") == "EUR")
    assert eur["converted"].to_list() == pytest.approx([0.0, -10_000.0, 11_000.0])
    assert eur["fx_fee"].to_list() == pytest.approx([0.0, 12.0, 11.0])
    assert eur["cash"].to_list() == [0.0, 0.0, 0.0]
    # Swept at every close, the trade's base PnL is the equity's change less the fees.
    trade = result.trades.row(0, named=True)
    assert trade["gross_pnl"] == pytest.approx(-1_000.0)


def test_a_rate_is_used_from_its_timestamp_on_never_before() -> None:
    # A rate stamped 12:00 on day 1 is not in force at the day-1 bar (00:00): the buy at the
    # day-1 close uses day 0's 1.10; the day-2 bar sees the 12:00 rate of day 1 (1.50).
    frame = bars({"SAP": [100.0, 100.0, 100.0]})
    fx = pl.concat([rates("EUR", [1.10]), rates("EUR", [9.9, 1.50], offset=timedelta(hours=12))])
    fx = fx.filter(pl.col("rate") != 9.9)
    strategy = Script({1: [("SAP", 10.0)]})
    result = run(frame, fx, strategy)
    assert result.fills["fx_rate"].to_list() == [1.1]
    # day 2: -1_000 EUR and 10 x 100 EUR, both at 1.50: equity unchanged at 100_000.
    assert result.equity["equity"].to_list() == pytest.approx([100_000.0] * 3)
    assert result.equity["long_value"].to_list() == pytest.approx([0.0, 1_100.0, 1_500.0])


def test_value_targets_are_in_base_at_the_decision_rate() -> None:
    class Target(Strategy):
        def on_timestamp_batch(self, timestamp: datetime, batch: Any, context: Any) -> None:
            context.order_target_value("SAP", 12_000.0)

    frame = bars({"SAP": [100.0]})
    result = run(frame, rates("EUR", [1.2]), Target())
    # 12_000 USD / (100 EUR x 1.2) = 100 shares.
    assert result.fills["quantity"].to_list() == [100.0]


def test_a_cash_account_buys_a_foreign_stock_with_its_base_cash_converted() -> None:
    frame = bars({"SAP": [100.0]})
    strategy = Script({0: [("SAP", 1_000.0)]})
    config = {"account": {"type": "cash", "on_insufficient": "resize"}, "initial_cash": 60_000.0}
    result = run(frame, rates("EUR", [1.2]), strategy, **config)
    # 60_000 USD buy 60_000 / 1.2 = 50_000 EUR of SAP: 500 shares.
    assert result.fills["quantity"].to_list() == [pytest.approx(500.0)]


def test_dividends_settle_in_the_assets_currency() -> None:
    frame = bars({"SAP": [100.0, 100.0, 100.0]})
    actions = pl.DataFrame({"timestamp": [START + 2 * DAY], "asset": ["SAP"], "dividend": [2.0]})
    feed = PolarsDataFeed(frame, instruments=SAP, fx=rates("EUR", [1.1, 1.2, 1.5]), actions=actions)
    config = BacktestConfig(execution={"mode": "same_close"})
    result = Backtest(feed, Script({0: [("SAP", 10.0)]}), config=config).run()
    # 10 x 2 EUR = 20 EUR, recorded in base at 1.5 = 30 USD; EUR cash -1_000 + 20 = -980.
    assert result.equity["dividend"].to_list() == [0.0, 0.0, pytest.approx(30.0)]
    cash = result.cash_by_currency()
    assert cash is not None
    assert cash.filter(pl.col("currency") == "EUR")["cash"].to_list()[-1] == pytest.approx(-980.0)


def test_one_currency_runs_keep_one_balance() -> None:
    frame = bars({"SAP": [100.0]})
    result = run(frame, None, Script({}), instruments={"SAP": {"currency": "USD"}})
    assert result.cash_by_currency() is None
    assert result.fills["currency"].to_list() == []
    assert result.trades["currency"].dtype == pl.String


def test_construction_errors_name_the_asset_and_field() -> None:
    frame = bars({"SAP": [100.0, 100.0]})
    feed = PolarsDataFeed(frame, instruments=SAP)
    with pytest.raises(ConfigError, match=r"instruments\[SAP\]\.currency: no_fx_rate"):
        Backtest(feed, Script({}))
    with pytest.raises(ConfigError, match=r"instruments\[SAP\]\.currency: must be a 3-letter"):
        PolarsDataFeed(frame, instruments={"SAP": {"currency": "euro"}})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(DataValidationError, match=r"fx\.rate: not_positive"):
            PolarsDataFeed(frame, instruments=SAP, fx=rates("EUR", [1.1, bad]))
    twice = pl.concat([rates("EUR", [1.1]), rates("EUR", [1.2])])
    with pytest.raises(DataValidationError, match=r"fx\.currency: duplicate"):
        PolarsDataFeed(frame, instruments=SAP, fx=twice)
    late = rates("EUR", [1.1], offset=DAY)
    with pytest.raises(DataValidationError, match=r"fx\.rate: no_fx_rate: asset SAP"):
        PolarsDataFeed(frame, instruments=SAP, fx=late)
    feed = PolarsDataFeed(
        frame, instruments=SAP, fx=pl.concat([rates("EUR", [1.1]), rates("USD", [1.0])])
    )
    with pytest.raises(DataValidationError, match=r"fx\.currency: base_rate"):
        Backtest(feed, Script({}))
    with pytest.raises(ConfigError, match="base_currency"):
        BacktestConfig(account={"base_currency": "usd"})


def test_a_streaming_feed_is_checked_by_the_engine() -> None:
    frame = bars({"SAP": [100.0, 100.0]})
    feed = PolarsDataFeed(frame, instruments=SAP, fx=rates("EUR", [1.1], offset=DAY), chunk_rows=1)
    with pytest.raises(DataValidationError, match="no_fx_rate"):
        Backtest(feed, Script({})).run()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(3, 12),
)
def test_equity_is_cash_by_currency_plus_positions_at_their_rates(data: Any, n: int) -> None:
    price = st.floats(10.0, 200.0, allow_nan=False)
    rate = st.floats(0.5, 2.0, allow_nan=False)
    prices = {a: data.draw(st.lists(price, min_size=n, max_size=n)) for a in ("A", "B", "C")}
    eur = data.draw(st.lists(rate, min_size=n, max_size=n))
    jpy = data.draw(st.lists(rate, min_size=n, max_size=n))
    orders: dict[int, list[tuple[str, float]]] = {}
    for day in range(n):
        picks = data.draw(st.lists(st.sampled_from("ABC"), max_size=2))
        orders[day] = [(a, data.draw(st.sampled_from([-20.0, -5.0, 5.0, 20.0]))) for a in picks]
    auto = data.draw(st.booleans())
    fx = pl.concat([rates("EUR", eur), rates("JPY", jpy)])
    instruments = {"A": {"currency": "EUR"}, "B": {"currency": "JPY"}}
    account = {"auto_convert": auto, "fx_fee": 0.002 if auto else 0.0}
    result = run(bars(prices), fx, Script(orders), instruments=instruments, account=account)
    cash = result.cash_by_currency()
    assert cash is not None
    times = result.equity.select("timestamp")
    currencies = {"A": "EUR", "B": "JPY", "C": "USD"}
    expected_cash = pl.Series([0.0] * n)
    for currency in ("USD", "EUR", "JPY"):
        rows = cash.filter(pl.col("currency") == currency).sort("timestamp")
        asof = times.join_asof(rows, on="timestamp", strategy="backward")
        expected_cash += asof["cash_in_base"].fill_null(0.0)
    closes = pl.DataFrame(prices)
    rate_of = {"USD": [1.0] * n, "EUR": eur, "JPY": jpy}
    fills = result.fills.with_columns(
        pl.when(pl.col("side") == "buy")
        .then(pl.col("quantity"))
        .otherwise(-pl.col("quantity"))
        .alias("q")
    )
    expected_positions = [0.0] * n
    for asset, currency in currencies.items():
        held = 0.0
        for day in range(n):
            ts = START + day * DAY
            held += fills.filter((pl.col("asset") == asset) & (pl.col("timestamp") == ts))[
                "q"
            ].sum()
            expected_positions[day] += held * closes[asset][day] * rate_of[currency][day]
    equity = result.equity
    for day in range(n):
        assert equity["cash"][day] == pytest.approx(expected_cash[day], rel=1e-9, abs=1e-6)
        assert equity["positions_value"][day] == pytest.approx(
            expected_positions[day], rel=1e-9, abs=1e-6
        )
        assert equity["equity"][day] == pytest.approx(
            expected_cash[day] + expected_positions[day], rel=1e-9, abs=1e-6
        )


def test_risk_rules_size_by_notional_in_base() -> None:
    from ml4t.backtest.risk import MaxPositionSize

    # A future of multiplier 50 quoted in EUR at 1.2: a unit is 100 x 50 x 1.2 = 6_000 USD, so
    # a 30_000 USD notional cap allows 5 contracts of the 8 asked.
    frame = bars({"FESX": [100.0]})
    instruments = {"FESX": {"asset_class": "future", "multiplier": 50, "currency": "EUR"}}
    feed = PolarsDataFeed(frame, instruments=instruments, fx=rates("EUR", [1.2]))
    config = BacktestConfig(execution={"mode": "same_close"})
    rule = MaxPositionSize(notional=30_000.0)
    result = Backtest(feed, Script({0: [("FESX", 8.0)]}), config=config, risk=[rule]).run()
    assert result.fills["quantity"].to_list() == [5.0]


def test_futures_exposure_is_notional_not_the_unsettled_pnl() -> None:
    # 2 ES at 4_500 x 50: gross exposure 450_000 (its marked value, the unsettled PnL, is 0).
    frame = bars({"ES": [4_500.0, 4_500.0]})
    instruments = {"ES": {"asset_class": "future", "multiplier": 50, "margin_initial": 1_000}}
    feed = PolarsDataFeed(frame, instruments=instruments)
    config = BacktestConfig(execution={"mode": "same_close"})
    result = Backtest(feed, Script({0: [("ES", 2.0)]}), config=config).run()
    assert result.equity["long_value"].to_list() == [0.0, 0.0]
    assert result.equity["gross_exposure"].to_list() == [450_000.0, 450_000.0]
    assert result.equity["net_exposure"].to_list() == [450_000.0, 450_000.0]
    assert result.metrics["avg_gross_exposure"] == pytest.approx(4.5)
