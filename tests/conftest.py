"""Shared test helpers: run an engine-agnostic strategy logic through the real engine."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# make tests/oracle.py importable whatever pytest's import mode is
sys.path.insert(0, str(Path(__file__).parent))

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


@pytest.fixture(autouse=True, scope="session")
def _ledger_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every sweep of the suite records its trials in a temporary ledger, never under $HOME
    (subprocesses and spawned workers inherit the variable)."""
    from ml4t.backtest.ledger_store import ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, str(tmp_path_factory.mktemp("ledger")))
        yield


def _adapter(logic: Any, api: str, signals: tuple[str, ...]) -> Any:
    """Wrap a logic (``decide(ts, rows, ctx)`` / ``on_row(ts, row, ctx)``) as a Strategy."""
    from ml4t.backtest import Strategy

    columns = BAR_COLUMNS + signals
    if api == "batch":

        class BatchAdapter(Strategy):  # type: ignore[misc]
            def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
                values = {c: batch[c] for c in columns}
                rows = [
                    {"asset": a, **{c: float(values[c][i]) for c in columns}}
                    for i, a in enumerate(batch.assets)
                ]
                logic.decide(timestamp, rows, context)

        return BatchAdapter()

    class EventAdapter(Strategy):  # type: ignore[misc]
        def on_market_data(self, event: Any, context: Any) -> None:
            row = {
                "asset": event.asset,
                "open": event.open,
                "high": event.high,
                "low": event.low,
                "close": event.close,
                "volume": event.volume,
            }
            row.update({k: float(v) for k, v in dict(event.signals).items()})
            logic.on_row(event.timestamp, row, context)

    return EventAdapter()


def run_engine_impl(
    df: Any,
    strategy: Any,
    config: dict[str, Any],
    api: str = "batch",
    signals: tuple[str, ...] = (),
) -> Any:
    """Run the real engine. ``strategy`` is a logic object, or a ready Strategy if api='native'."""
    from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed

    if api != "native":
        strategy = _adapter(strategy, api, signals)
    return Backtest(PolarsDataFeed(df), strategy, config=BacktestConfig(**config)).run()


@pytest.fixture(scope="session")
def run_engine() -> Callable[..., Any]:
    return run_engine_impl
