"""``BacktestResult``: fills, trades, equity and rejected orders as Polars frames, plus metrics.

The frames are built from the Arrow tables the engine returns (no copy of the numeric columns);
codes are mapped to names and nanoseconds to datetimes in the feed's time zone.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import polars as pl

from ml4t.backtest import _core
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import PolarsDataFeed
from ml4t.backtest.metrics import compute_metrics

EXIT_REASONS: list[str] = list(_core.EXIT_REASONS)
REJECT_REASONS: list[str] = list(_core.REJECT_REASONS)
ORDER_TYPES: list[str] = list(_core.ORDER_TYPES)


def _names(codes: pl.Expr, names: list[str]) -> pl.Expr:
    return codes.replace_strict(list(range(len(names))), names, return_dtype=pl.String)


class BacktestResult:
    """The outcome of :meth:`Backtest.run`.

    Attributes:
        fills: one row per execution.
        trades: one row per round trip (flat to flat), closed or still open at the end.
        equity: one row per timestamp: cash, long/short market value, equity.
        rejected_orders: orders that never filled, with the reason.
        config: the resolved configuration.
    """

    def __init__(self, raw: dict[str, Any], feed: PolarsDataFeed, config: BacktestConfig) -> None:
        self.config = config
        self._feed = feed
        self.fills = self._fills(pl.DataFrame(raw["fills"]))
        self.trades = self._trades(pl.DataFrame(raw["trades"]))
        self.equity = self._equity(pl.DataFrame(raw["equity"]))
        self.rejected_orders = self._rejections(pl.DataFrame(raw["rejections"]))

    def _asset(self) -> pl.Expr:
        return self._feed.asset_expr(pl.col("asset_id")).alias("asset")

    def _fills(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.select(
            "order_id",
            self._feed.timestamps(pl.col("ts")).alias("timestamp"),
            self._asset(),
            pl.when(pl.col("side") == 0)
            .then(pl.lit("buy"))
            .otherwise(pl.lit("sell"))
            .alias("side"),
            "quantity",
            "price",
            "reference_price",
            "slippage",
            "commission",
        )

    def _trades(self, df: pl.DataFrame) -> pl.DataFrame:
        net = pl.col("gross_pnl") - pl.col("commission")
        return df.select(
            self._asset(),
            pl.when(pl.col("long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
            self._feed.timestamps(pl.col("entry_ts")).alias("entry_time"),
            self._feed.timestamps(pl.col("exit_ts")).alias("exit_time"),
            "entry_price",
            "exit_price",
            "quantity",
            "gross_pnl",
            "commission",
            net.alias("net_pnl"),
            (net / (pl.col("entry_price") * pl.col("quantity"))).alias("return_pct"),
            pl.col("bars_held").cast(pl.Int64),
            _names(pl.col("exit_reason"), EXIT_REASONS),
            pl.when(pl.col("open"))
            .then(pl.lit("open"))
            .otherwise(pl.lit("closed"))
            .alias("status"),
        )

    def _equity(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.select(
            self._feed.timestamps(pl.col("ts")).alias("timestamp"),
            "cash",
            "long_value",
            "short_value",
            "positions_value",
            "equity",
        )

    def _rejections(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.select(
            "order_id",
            self._feed.timestamps(pl.col("ts")).alias("timestamp"),
            self._asset(),
            "quantity",
            _names(pl.col("reason"), REJECT_REASONS),
        )

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Performance metrics (see :func:`ml4t.backtest.metrics.compute_metrics`)."""
        return compute_metrics(
            self.equity,
            self.trades,
            self.fills,
            initial_cash=self.config.initial_cash,
            periods_per_year=self.config.periods_per_year,
        )

    def summary(self) -> str:
        """A plain-text table of the metrics."""
        width = max(len(k) for k in self.metrics)
        lines = [f"{k.ljust(width)}  {v:,.6g}" for k, v in self.metrics.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"BacktestResult(timestamps={self.equity.height}, fills={self.fills.height}, "
            f"trades={self.trades.height}, final_equity={self.final_equity:,.2f})"
        )

    @property
    def final_equity(self) -> float:
        """Equity at the last timestamp."""
        if self.equity.is_empty():
            return self.config.initial_cash
        return float(self.equity["equity"][-1])
