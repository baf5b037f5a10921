"""Positions sampled from the fills: the running signed quantity of each asset, marked at the
asset's last close, at chosen equity timestamps. A split of a held position is a change of its
quantity at the start of its ex-date (before that timestamp's fills), and a close from before
the split is restated in post-split units.

The engine does not record positions yet; until it does, they are rebuilt here from the fills
with the engine's dust rule (a fill that leaves ``|position| <= 1e-9 x max(|before|, |fill|)``
closes it exactly), so that ``market_value`` summed over assets equals
``equity.positions_value``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ml4t.backtest._models import duration_pieces
from ml4t.backtest.universe import Universe

_DUST = 1e-9
"""A position whose size is at most this fraction of the larger of the position before the fill
and the fill itself is float residue, not a position (the engine's dust rule)."""


def sample_times(equity: pl.DataFrame, frequency: str | None) -> pl.Series:
    """The equity timestamps sampled: the last one of each period (all when ``None``).

    Raises:
        ValueError: ``frequency`` is not a positive Polars duration string.
    """
    ts = equity.get_column("timestamp")
    if frequency is None:
        return ts
    pieces = duration_pieces(frequency) if isinstance(frequency, str) else None
    if not pieces or all(count == 0 for count, _ in pieces):
        raise ValueError(
            "frequency: expected a positive Polars duration string such as '1d', '1w', "
            f"'1mo' or '4h' (or None for every timestamp), got {frequency!r}"
        )
    return (
        equity.select("timestamp")
        .group_by(pl.col("timestamp").dt.truncate(frequency).alias("period"), maintain_order=True)
        .agg(pl.col("timestamp").last())
        .get_column("timestamp")
    )


def positions_at(
    fills: pl.DataFrame,
    marks: pl.DataFrame,
    sample_ts: np.ndarray[Any, np.dtype[np.int64]],
    universe: Universe,
    splits: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Non-zero positions at the engine timestamps ``sample_ts`` (ns, sorted).

    Args:
        fills: the result's fills (``timestamp, asset, side, quantity``, ...).
        marks: the engine frame's ``ts, asset_id, close``, sorted by time.
        sample_ts: when to sample.
        universe: the run's assets and time zone.
        splits: the engine's splits of held positions (``ts, asset_id, split_ratio,
            quantity_before, quantity_after``), if any.

    Returns:
        ``timestamp, asset, quantity, price, market_value``, sorted by timestamp then asset.
    """
    schema: dict[str, pl.DataType] = {
        "timestamp": universe.timestamp_dtype,
        "asset": universe.asset_dtype,
        "quantity": pl.Float64(),
        "price": pl.Float64(),
        "market_value": pl.Float64(),
    }
    if fills.height == 0 or sample_ts.shape[0] == 0:
        return pl.DataFrame(schema=schema)
    signed = (
        pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    )
    moves = fills.lazy().select(
        pl.col("timestamp").dt.cast_time_unit("ns").to_physical().alias("ts"),
        pl.col("asset").to_physical().cast(pl.UInt32).alias("asset_id"),
        signed.alias("q"),
    )
    has_splits = splits is not None and splits.height > 0
    if has_splits:
        assert splits is not None
        # A split changes the position by (after - before) before the ex-date's fills.
        split_moves = splits.lazy().select(
            "ts",
            "asset_id",
            (pl.col("quantity_after") - pl.col("quantity_before")).alias("q"),
        )
        moves = (
            pl.concat(
                [
                    split_moves.with_columns(pl.lit(0).alias("__kind")),
                    moves.with_columns(pl.lit(1).alias("__kind")),
                ]
            )
            .with_row_index("__seq")
            .sort("ts", "__kind", "__seq")
            .drop("__kind", "__seq")
        )
    changes = (
        moves.with_columns(pl.col("q").cum_sum().over("asset_id").alias("cum"))
        .with_columns(
            # The dust rule: a fill that leaves a residue closes the position; restart the
            # running sum there.
            (
                pl.col("cum").abs()
                <= _DUST
                * pl.max_horizontal(
                    pl.col("cum").shift(1, fill_value=0.0).over("asset_id").abs(),
                    pl.col("q").abs(),
                )
            ).alias("flat")
        )
        .with_columns(
            pl.when(pl.col("flat"))
            .then(pl.col("cum"))
            .otherwise(None)
            .forward_fill()
            .over("asset_id")
            .fill_null(0.0)
            .alias("base")
        )
        .with_columns(
            pl.when(pl.col("flat"))
            .then(0.0)
            .otherwise(pl.col("cum") - pl.col("base"))
            .alias("position")
        )
        .group_by("asset_id", "ts", maintain_order=True)
        .agg(pl.col("position").last())
        .collect()
    )
    # Each change holds from its timestamp until the asset's next change. Map both ends to the
    # range of sample indices they cover and expand only the non-zero spans: the work is
    # proportional to the rows returned.
    starts = np.searchsorted(sample_ts, changes.get_column("ts").to_numpy(), side="left")
    held = (
        changes.with_columns(pl.Series("lo", starts, dtype=pl.Int64))
        .with_columns(
            pl.col("lo").shift(-1).over("asset_id").fill_null(sample_ts.shape[0]).alias("hi")
        )
        .filter((pl.col("position") != 0.0) & (pl.col("hi") > pl.col("lo")))
        .select(
            "asset_id",
            "position",
            pl.int_ranges("lo", "hi", dtype=pl.Int64).alias("index"),
        )
        .explode("index")
    )
    held = held.with_columns(
        pl.Series("ts", sample_ts[held.get_column("index").to_numpy()], dtype=pl.Int64)
    )
    marked = held.sort("ts", "asset_id").join_asof(
        marks.with_columns(pl.col("ts").alias("__mark_ts")),
        on="ts",
        by="asset_id",
        strategy="backward",
        check_sortedness=False,
    )
    if has_splits:
        assert splits is not None
        # A close from before a split (the asset had no bar since) is restated in post-split
        # units, as the engine restates its mark: divided by the product of the ratios of the
        # splits after it.
        growth = (
            splits.sort("ts", maintain_order=True)
            .select("ts", "asset_id", pl.col("split_ratio").cum_prod().over("asset_id").alias("g"))
            .group_by("asset_id", "ts", maintain_order=True)
            .agg(pl.col("g").last())
            .sort("ts")
        )
        marked = (
            marked.join_asof(
                growth.rename({"g": "__g_now"}),
                on="ts",
                by="asset_id",
                strategy="backward",
                check_sortedness=False,
            )
            .sort("__mark_ts")
            .join_asof(
                growth.rename({"ts": "__mark_ts", "g": "__g_mark"}),
                on="__mark_ts",
                by="asset_id",
                strategy="backward",
                check_sortedness=False,
            )
            .sort("ts", "asset_id")
            .with_columns(
                (
                    pl.col("close")
                    * pl.col("__g_mark").fill_null(1.0)
                    / pl.col("__g_now").fill_null(1.0)
                ).alias("close")
            )
        )
    return marked.select(
        universe.timestamps(pl.col("ts")).alias("timestamp"),
        universe.asset_names(pl.col("asset_id")).alias("asset"),
        pl.col("position").alias("quantity"),
        pl.col("close").alias("price"),
        (pl.col("position") * pl.col("close")).alias("market_value"),
    )
