"""Tearsheet tables computed from a result's frames (pure Polars, no plotting).

Each function returns a Polars frame that a chart of :mod:`~ml4t.backtest.results.plots`
draws and a user can read: turnover and costs by period, the Sharpe ratio against an extra
cost, PnL by asset and side, holdings and concentration, and, for ML strategies, the
information coefficient and returns by prediction quantile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from ml4t.backtest.universe import Universe

__all__ = [
    "COST_BPS",
    "cost_sensitivity",
    "exposure_by_class",
    "forward_returns",
    "holdings",
    "information_coefficient",
    "pnl_by_asset",
    "quantile_returns",
    "traded_fraction",
    "turnover_and_costs",
]

COST_BPS = (0.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0)
"""Extra costs (basis points of traded notional) of the default cost-sensitivity view."""


def traded_fraction(fills: pl.DataFrame, equity: pl.DataFrame) -> pl.Series:
    """Per equity row: the notional traded at that timestamp over the equity there."""
    traded = fills.group_by("timestamp").agg(
        (pl.col("quantity").abs() * pl.col("price")).sum().alias("notional")
    )
    joined = equity.select("timestamp", "equity").join(
        traded, on="timestamp", how="left", maintain_order="left"
    )
    return joined.select(
        (pl.col("notional").fill_null(0.0) / pl.col("equity")).alias("traded_fraction")
    ).to_series()


def cost_sensitivity(
    returns: pl.Series,
    traded: pl.Series,
    periods_per_year: float,
    bps: Sequence[float] = COST_BPS,
) -> pl.DataFrame:
    """The annualised Sharpe ratio after an extra cost of ``bps`` basis points of the notional
    traded (pyfolio's capacity view): ``r - traded_fraction * bps / 10_000`` per period, the
    same approximation as pyfolio (the lost equity is not compounded).

    Returns:
        ``extra_cost_bps, sharpe`` (NaN where the returns have zero spread).
    """
    r = returns.cast(pl.Float64).to_numpy()
    f = traded.cast(pl.Float64).fill_null(0.0).to_numpy()
    out = []
    for cost in bps:
        net = r - f * cost / 10_000.0
        std = float(np.std(net, ddof=1)) if net.shape[0] > 1 else math.nan
        sharpe = float(np.mean(net)) / std * math.sqrt(periods_per_year) if std > 0 else math.nan
        out.append(sharpe)
    return pl.DataFrame(
        {"extra_cost_bps": [float(b) for b in bps], "sharpe": out},
        schema={"extra_cost_bps": pl.Float64, "sharpe": pl.Float64},
    )


def turnover_and_costs(
    fills: pl.DataFrame, equity: pl.DataFrame, every: str = "1mo"
) -> pl.DataFrame:
    """Turnover and costs per calendar period (``every``, a Polars duration).

    Returns:
        ``period`` (the period's start), ``turnover`` (notional traded / mean equity of the
        period), ``commission``, ``slippage`` and ``costs`` (their sum, currency).
    """
    dtype = equity.schema["timestamp"]
    periods = equity.group_by_dynamic("timestamp", every=every).agg(
        pl.col("equity").mean().alias("mean_equity")
    )
    if fills.height:
        traded = fills.group_by_dynamic("timestamp", every=every).agg(
            (pl.col("quantity").abs() * pl.col("price")).sum().alias("notional"),
            pl.col("commission").sum(),
            pl.col("slippage").sum(),
        )
        traded = traded.with_columns(pl.col("timestamp").cast(dtype))
        periods = periods.join(traded, on="timestamp", how="left", maintain_order="left")
    else:
        periods = periods.with_columns(
            pl.lit(0.0).alias("notional"),
            pl.lit(0.0).alias("commission"),
            pl.lit(0.0).alias("slippage"),
        )
    return periods.select(
        pl.col("timestamp").alias("period"),
        (pl.col("notional").fill_null(0.0) / pl.col("mean_equity")).alias("turnover"),
        pl.col("commission").fill_null(0.0),
        pl.col("slippage").fill_null(0.0),
        (pl.col("commission").fill_null(0.0) + pl.col("slippage").fill_null(0.0)).alias("costs"),
    )


def pnl_by_asset(trades: pl.DataFrame) -> pl.DataFrame:
    """Net PnL of closed trades by asset and side: ``asset, long, short, total, trades``,
    sorted by ``total`` (best first)."""
    closed = trades.filter(pl.col("status") == "closed")
    return (
        closed.group_by(pl.col("asset").cast(pl.String))
        .agg(
            pl.col("net_pnl").filter(pl.col("side") == "long").sum().alias("long"),
            pl.col("net_pnl").filter(pl.col("side") == "short").sum().alias("short"),
            pl.col("net_pnl").sum().alias("total"),
            pl.len().alias("trades"),
        )
        .sort("total", "asset", descending=[True, False])
    )


def exposure_by_class(
    positions: pl.DataFrame, classes: dict[str, str], multipliers: dict[str, float]
) -> pl.DataFrame:
    """Exposure per asset class and timestamp from ``result.positions(...)``:
    ``timestamp, asset_class, gross, net``, the notional ``quantity x price x multiplier``
    summed (absolute for ``gross``). ``classes`` and ``multipliers`` map asset names to their
    instrument's class and contract size (absent: ``equity``, 1)."""
    names = pl.col("asset").cast(pl.String)
    notional = (
        pl.col("quantity")
        * pl.col("price")
        * names.replace_strict(multipliers, default=1.0, return_dtype=pl.Float64)
    )
    return (
        positions.with_columns(
            names.replace_strict(classes, default="equity", return_dtype=pl.String).alias(
                "asset_class"
            ),
            notional.alias("notional"),
        )
        .group_by("timestamp", "asset_class")
        .agg(pl.col("notional").abs().sum().alias("gross"), pl.col("notional").sum().alias("net"))
        .sort("timestamp", "asset_class")
    )


def holdings(positions: pl.DataFrame) -> pl.DataFrame:
    """Holdings count and concentration per timestamp from ``result.positions(...)``:
    ``timestamp, holdings`` (open positions), ``largest`` (largest |market value| over the
    gross market value) and ``hhi`` (the sum of squared weights of |market value|; 1 / hhi is
    the effective number of positions)."""
    weight = pl.col("market_value").abs() / pl.col("market_value").abs().sum()
    return (
        positions.group_by("timestamp", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("holdings"),
            weight.max().alias("largest"),
            (weight**2).sum().alias("hhi"),
        )
        .sort("timestamp")
    )


def forward_returns(frame: pl.DataFrame, prediction: str) -> pl.DataFrame:
    """Per bar of the engine frame: ``ts, asset_id``, the prediction and ``forward_return``,
    the asset's next close over this close minus one (null on its last bar)."""
    if prediction not in frame.columns:
        raise ValueError(
            f"prediction: unknown_column: '{prediction}' is not a feature of the data "
            f"(features: {[c for c in frame.columns if c not in _BAR_COLUMNS]})"
        )
    return (
        frame.select("ts", "asset_id", "close", pl.col(prediction).alias("prediction"))
        .sort("asset_id", "ts")
        .with_columns(
            (pl.col("close").shift(-1).over("asset_id") / pl.col("close") - 1.0).alias(
                "forward_return"
            )
        )
        .filter(
            pl.col("forward_return").is_finite()
            & pl.col("prediction").is_not_null()
            & pl.col("prediction").is_finite()
        )
    )


_BAR_COLUMNS = {"ts", "asset_id", "open", "high", "low", "close", "volume"}


def information_coefficient(
    frame: pl.DataFrame, prediction: str, universe: Universe
) -> pl.DataFrame:
    """The information coefficient at each timestamp: the Spearman rank correlation across
    assets between ``prediction`` and the next bar's close-to-close return.

    Returns:
        ``timestamp, ic, assets`` (the number of assets ranked; timestamps with fewer than 3
        are left out).
    """
    data = forward_returns(frame, prediction)
    ic = (
        data.group_by("ts")
        .agg(
            pl.corr("prediction", "forward_return", method="spearman").alias("ic"),
            pl.len().alias("assets"),
        )
        .filter((pl.col("assets") >= 3) & pl.col("ic").is_finite())
        .sort("ts")
    )
    return ic.select(
        universe.timestamps(pl.col("ts")).alias("timestamp"), "ic", pl.col("assets").cast(pl.Int64)
    )


def quantile_returns(frame: pl.DataFrame, prediction: str, quantiles: int = 5) -> pl.DataFrame:
    """Mean next-bar return by prediction quantile (alphalens' view): at each timestamp the
    assets are cut into ``quantiles`` equal groups by rank of ``prediction`` (1 = lowest);
    each group's mean forward return is averaged over timestamps.

    Returns:
        ``quantile`` (1 ... quantiles), ``mean_return`` (per bar), ``observations``.
    """
    if quantiles < 2:
        raise ValueError(f"quantiles must be at least 2, got {quantiles}")
    data = forward_returns(frame, prediction).with_columns(
        (
            (pl.col("prediction").rank("ordinal").over("ts") - 1) * quantiles // pl.len().over("ts")
            + 1
        )
        .cast(pl.Int64)
        .alias("quantile")
    )
    per_ts = data.group_by("ts", "quantile").agg(pl.col("forward_return").mean())
    return (
        per_ts.group_by("quantile")
        .agg(
            pl.col("forward_return").mean().alias("mean_return"),
            pl.len().cast(pl.Int64).alias("observations"),
        )
        .sort("quantile")
    )
