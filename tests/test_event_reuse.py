"""A per-bar strategy's ``MarketEvent`` (and its ``signals``) is moved to the next bar in place
only while the strategy keeps no reference to it: whatever a strategy keeps still shows the
bar it was given."""

from __future__ import annotations

from typing import Any

import polars as pl

from ml4t.backtest import Backtest, PolarsDataFeed, Strategy
from ml4t.backtest.synthetic import make_bars


def _feed() -> tuple[PolarsDataFeed, pl.DataFrame]:
    bars = make_bars(n_assets=3, n_bars=40, seed=4)
    bars = bars.with_columns((pl.col("close") * 10).alias("ten"))
    return PolarsDataFeed(bars), bars.sort("timestamp", "asset")


class Keeper(Strategy):
    """Keeps every third event, the signals of every fifth, and reads all of them."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, str, float, float]] = []
        self.events: list[tuple[Any, Any, str, float, float]] = []
        self.signals: list[tuple[Any, float]] = []
        self.count = 0

    def on_market_data(self, event: Any, context: Any) -> None:
        signals = event.signals
        assert signals is event.signals  # one mapping per bar
        row = (event.timestamp, event.asset, event.close, signals["ten"])
        self.seen.append(row)
        if self.count % 3 == 0:
            self.events.append((event, *row))
        if self.count % 5 == 0:
            self.signals.append((signals, signals["ten"]))
        self.count += 1


def test_kept_events_and_signals_keep_their_bar() -> None:
    feed, bars = _feed()
    strategy = Keeper()
    Backtest(feed, strategy).run(progress=False)
    expected = list(bars.select("timestamp", "asset", "close", "ten").iter_rows())
    assert [(ts.replace(tzinfo=None), a, c, t) for ts, a, c, t in strategy.seen] == expected
    assert len(strategy.events) == len(range(0, len(expected), 3))
    for event, ts, asset, close, ten in strategy.events:
        assert (event.timestamp, event.asset, event.close, event.signals["ten"]) == (
            ts,
            asset,
            close,
            ten,
        )
    for signals, ten in strategy.signals:
        assert signals["ten"] == ten


class Reader(Strategy):
    """Keeps nothing: every bar's values must still be that bar's."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.values: list[tuple[str, float, float]] = []

    def on_market_data(self, event: Any, context: Any) -> None:
        self.ids.add(id(event))
        self.values.append((event.asset, event.close, event.signals["ten"]))


def test_an_unkept_event_is_reused_and_reads_each_bar() -> None:
    feed, bars = _feed()
    strategy = Reader()
    Backtest(feed, strategy).run(progress=False)
    assert strategy.values == list(bars.select("asset", "close", "ten").iter_rows())
    assert len(strategy.ids) == 1  # one event object for the whole run: no allocation a bar
