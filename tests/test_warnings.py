"""Warnings that point at the user (issue 17, item 5): every metric and data warning is
issued at the user's own line (its ``filename`` is this file, whichever path inside the
package led to it), once per kind per run, and a cleaning policy the user chose by name is
recorded in ``feed.cleaning`` without a ``DataCleaningWarning``."""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, Strategy, ValidationConfig
from ml4t.backtest.data import DataCleaningWarning
from ml4t.backtest.errors import HoldOutWarning, MarginWarning, UnitsWarning
from ml4t.backtest.synthetic import make_bars

HERE = str(Path(__file__).resolve())
BARS = make_bars(n_assets=3, n_bars=40, seed=4)
HOLE = pl.int_range(pl.len()) == 7


def with_a_missing_close() -> pl.DataFrame:
    return BARS.with_columns(pl.when(HOLE).then(None).otherwise(pl.col("close")).alias("close"))


def caught(kind: type[Warning], record: list[warnings.WarningMessage]) -> list[str]:
    """The files the warnings of ``kind`` point at."""
    return [w.filename for w in record if issubclass(w.category, kind)]


class BuyOnce(Strategy):
    """Buys ``quantity`` of two assets on the first bar, then holds."""

    def __init__(self, quantity: float = 1.0) -> None:
        self.quantity = quantity

    def on_timestamp_batch(self, timestamp: object, batch: object, context: object) -> None:
        if not getattr(self, "done", False):
            context.submit_order(batch.assets[0], self.quantity)  # type: ignore[attr-defined]
            context.submit_order(batch.assets[1], self.quantity)  # type: ignore[attr-defined]
            self.done = True


def test_metric_warnings_point_at_the_line_that_asks_for_the_metrics() -> None:
    result = Backtest(PolarsDataFeed(BARS), BuyOnce()).run(progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        metrics = result.metrics  # no closed trade: win_rate and friends are undefined
    undefined = [w for w in record if "is undefined" in str(w.message)]
    assert undefined and np.isnan(metrics["win_rate"])
    assert {w.filename for w in undefined} == {HERE}
    names = [str(w.message).split("'")[1] for w in undefined]
    assert len(names) == len(set(names))  # once per metric
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result.metrics is metrics  # computed once: no second warning


def test_a_runs_warnings_point_at_run_and_come_once_per_kind() -> None:
    config = BacktestConfig(account={"type": "cash"}, initial_cash=1_000.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        Backtest(PolarsDataFeed(BARS), BuyOnce(1e7), config=config).run(progress=False)
    margin = caught(MarginWarning, record)
    assert margin == [HERE]  # two refused orders, one warning


def test_units_warnings_point_at_the_config_line() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        BacktestConfig(commission={"model": "percent", "rate": 0.1})
    assert caught(UnitsWarning, record) == [HERE]


def test_an_explicit_cleaning_policy_is_recorded_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_dict = PolarsDataFeed(with_a_missing_close(), validation={"missing": "drop"})
        by_model = PolarsDataFeed(
            with_a_missing_close(), validation=ValidationConfig(missing="drop")
        )
        streaming = PolarsDataFeed(
            with_a_missing_close(), chunk_rows=20, validation={"missing": "drop"}
        )
        Backtest(streaming, BuyOnce()).run(progress=False)
    assert [c.rule for c in by_dict.cleaning] == ["missing"] and by_dict.n_rows == 119
    assert by_model.cleaning == by_dict.cleaning
    assert streaming.cleaning == by_dict.cleaning


def test_a_policy_not_chosen_explicitly_warns_at_the_users_line() -> None:
    """No default policy cleans today (every default but ``sort`` raises), so the policy is
    made implicit by hand: as if a future default dropped rows. The warning then names the
    user's line, for an in-memory feed, a wide one (built through ``from_wide``) and a
    streaming one read by a run."""
    policy = ValidationConfig(missing="drop")
    policy.__pydantic_fields_set__.discard("missing")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        PolarsDataFeed(with_a_missing_close(), validation=policy)
    assert caught(DataCleaningWarning, record) == [HERE]
    wide = BARS.pivot(on="asset", index="timestamp", values="close").with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(-1.0).otherwise(pl.col("A0000")).alias("A0000")
    )
    prices = ValidationConfig(prices="drop")
    prices.__pydantic_fields_set__.discard("prices")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        PolarsDataFeed.from_wide(wide, validation=prices)
    assert caught(DataCleaningWarning, record) == [HERE]
    streaming = PolarsDataFeed(with_a_missing_close(), chunk_rows=20, validation=policy)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        Backtest(streaming, BuyOnce()).run(progress=False)
    assert caught(DataCleaningWarning, record) == [HERE]  # once for the run's pass


def test_the_hold_out_warning_points_at_the_hold_out_call(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    cut = datetime(2020, 2, 3)
    feed.hold_out(cut, ledger=tmp_path)
    feed.unlock_hold_out()
    with pytest.warns(HoldOutWarning) as record:
        PolarsDataFeed(BARS).hold_out(cut, ledger=tmp_path)
    assert [w.filename for w in record] == [HERE]
