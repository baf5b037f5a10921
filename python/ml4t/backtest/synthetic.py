"""Synthetic market data for examples, tests and benchmarks.

Prices follow a geometric random walk per asset with consistent OHLC bars. Each row carries an
ML-style ``score`` (a noisy forecast of the return from the next bar's open to the open after
it, as a trained model would emit at the close) and ``signal`` = sign of the score (±1).

Example:
    >>> df = make_bars(n_assets=3, n_bars=5, seed=0)
    >>> df.columns
    ['timestamp', 'asset', 'open', 'high', 'low', 'close', 'volume', 'score', 'signal']
    >>> df.height
    15
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
import polars as pl


def make_bars(
    n_assets: int = 10,
    n_bars: int = 252,
    *,
    seed: int = 0,
    start: datetime = datetime(2020, 1, 1),
    interval: str = "1d",
    skill: float = 0.05,
    volatility: float = 0.02,
    missing_fraction: float = 0.0,
) -> pl.DataFrame:
    """Generates a long frame of ``n_assets * n_bars`` bars.

    Args:
        n_assets: number of assets, named ``A0000``, ``A0001``, ...
        n_bars: bars per asset.
        seed: random seed (same seed, same frame).
        start: first timestamp.
        interval: Polars duration between bars (``"1d"``, ``"1m"``, ...); daily bars skip
            weekends.
        skill: correlation of ``score`` with the next bar's return.
        volatility: per-bar return standard deviation.
        missing_fraction: fraction of bars dropped at random (assets with gaps).
    """
    rng = np.random.default_rng(seed)
    if interval == "1d":
        times = pl.date_range(start, start.replace(year=start.year + 40), "1d", eager=True)
        times = times.filter(times.dt.weekday() <= 5).head(n_bars).cast(pl.Datetime("us"))
    else:
        times = _regular_times(start, interval, n_bars)
    returns = rng.normal(0.0, volatility, size=(n_bars, n_assets))
    gap = rng.normal(0.0, volatility * 0.3, size=(n_bars, n_assets))
    open_ = 100.0 * np.exp(np.cumsum(returns, axis=0) + gap)
    close = open_ * np.exp(rng.normal(0.0, volatility * 0.5, size=(n_bars, n_assets)))
    wick = np.abs(rng.normal(0.0, volatility * 0.3, size=(2, n_bars, n_assets)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    volume = rng.integers(1_000, 100_000, size=(n_bars, n_assets)).astype(np.float64)
    # The return a position entered at the next open earns until the open after it.
    next_return = np.zeros((n_bars, n_assets))
    next_return[:-2] = open_[2:] / open_[1:-1] - 1.0
    noise = rng.normal(0.0, 1.0, size=(n_bars, n_assets))
    score = skill * next_return / volatility + np.sqrt(max(1.0 - skill**2, 0.0)) * noise
    signal = np.where(score >= 0.0, 1.0, -1.0)
    names = [f"A{i:04d}" for i in range(n_assets)]
    frame = pl.DataFrame(
        {
            "timestamp": np.repeat(times.to_numpy(), n_assets),
            "asset": np.tile(np.array(names), n_bars),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "score": score.ravel(),
            "signal": signal.ravel(),
        }
    )
    if missing_fraction > 0.0:
        keep = rng.random(frame.height) >= missing_fraction
        frame = frame.filter(pl.Series(keep))
    return frame


_UNITS: dict[str, Literal["s", "m", "h"]] = {"s": "s", "m": "m", "h": "h"}


def _regular_times(start: datetime, interval: str, n: int) -> pl.Series:
    """``n`` evenly spaced timestamps, ``interval`` like ``"1m"``, ``"5m"``, ``"1h"``, ``"30s"``."""
    count, unit = interval[:-1], interval[-1]
    if unit not in _UNITS or not count.isdigit():
        raise ValueError(
            f"interval must look like '1m', '5m', '1h', '30s' or '1d', got {interval!r}"
        )
    step = np.timedelta64(int(count), _UNITS[unit])
    stamps = np.datetime64(start, "us") + np.arange(n) * step
    return pl.Series("timestamp", stamps.astype("datetime64[us]"))
