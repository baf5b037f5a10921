"""An in-memory feed hands every run the same ``CheckedData``: its frame imported and
row-checked by the engine once. The check is the engine's own, so bad rows still fail with
the column and row; a token never travels in a pickle."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from ml4t.backtest import Backtest, PolarsDataFeed, SignalStrategy
from ml4t.backtest._core import CheckedData
from ml4t.backtest.errors import DataValidationError
from ml4t.backtest.synthetic import make_bars


def test_runs_reuse_one_token_and_give_the_same_result() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=3, n_bars=200, seed=9))
    strategy = SignalStrategy("signal", quantity=10)
    first = Backtest(feed, strategy).run(progress=False)
    token = feed.engine_data()
    second = Backtest(feed, strategy).run(progress=False)
    assert feed.engine_data() is token
    assert first.equity.equals(second.equity) and first.fills.equals(second.fills)
    # A frame handed straight to the engine (no token) gives the same run.
    fresh = PolarsDataFeed(make_bars(n_assets=3, n_bars=200, seed=9))
    assert Backtest(fresh, strategy).run(progress=False).equity.equals(first.equity)


def test_the_token_is_not_pickled() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=50, seed=1))
    token = feed.engine_data()
    clone = pickle.loads(pickle.dumps(feed))
    assert "_checked" not in clone.__dict__
    assert clone.engine_data() is not token and clone.engine_data().n_rows == token.n_rows


def _engine_frame(bars: pl.DataFrame) -> pl.DataFrame:
    return PolarsDataFeed(bars).engine_frame


def test_bad_rows_fail_with_column_and_row() -> None:
    frame = _engine_frame(make_bars(n_assets=2, n_bars=20, seed=3))
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise(pl.col("close")).alias("close")
    )
    with pytest.raises(DataValidationError, match=r"close.*row 7.*finite and > 0"):
        CheckedData(broken, 2)
    with pytest.raises(DataValidationError, match=r"asset code 1 is outside 0\.\.1"):
        CheckedData(frame, 1)


def test_a_token_for_another_universe_is_refused() -> None:
    feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=20, seed=3))
    token = CheckedData(feed.engine_frame, 3)
    assert token.n_rows == feed.engine_frame.height
    feed.__dict__["_checked"] = token
    with pytest.raises(DataValidationError, match="checked for 3 assets, the run has 2"):
        Backtest(feed, SignalStrategy("signal", quantity=1)).run(progress=False)


def test_the_feed_trusts_its_own_validation_but_not_a_frame_handed_in() -> None:
    """The feed's frame is taken without the engine's row re-check (its rows were validated
    when the feed was built), and gives the same run as a fully re-checked token; a frame
    given through ``with_frame`` is checked by the engine again."""
    bars = make_bars(n_assets=3, n_bars=120, seed=5)
    feed = PolarsDataFeed(bars)
    strategy = SignalStrategy("signal", quantity=10)
    trusted = Backtest(feed, strategy).run(progress=False)
    rechecked = PolarsDataFeed(bars)
    rechecked.__dict__["_checked"] = CheckedData(rechecked.engine_frame, 3)
    full = Backtest(rechecked, strategy).run(progress=False)
    assert trusted.fills.equals(full.fills) and trusted.equity.equals(full.equity)
    token = CheckedData(feed.engine_frame, 3, validated=True)
    assert token.n_rows == feed.engine_frame.height
    shuffled = feed.with_frame(feed.frame.reverse())
    with pytest.raises(DataValidationError, match=r"increasing asset codes|sorted by time"):
        Backtest(shuffled, strategy).run(progress=False)
