"""The order journal's invariants, checked from a result's frames (shared by the journal tests
and the order fuzz test):

- one row per order id;
- every fill, and every rejection but a ``not_pending`` one (it names another order) or one of
  id 0, belongs to an order of ``result.orders``;
- each order's ``filled_quantity`` is the sum of its fills, and ``avg_fill_price`` their
  quantity-weighted mean price;
- each history is in time order, its last status is terminal and no earlier one is, and it
  leaves nothing open (``end_of_data`` rejections close what the data left open);
- ``history`` and ``order_events`` hold the same events.
"""

from __future__ import annotations

from typing import Any

import polars as pl

TERMINAL = ("filled", "cancelled", "expired", "rejected")


def check_journal(result: Any) -> None:
    orders = result.orders
    ids = set(orders["order_id"].to_list())
    assert len(ids) == orders.height, "an order id recorded twice"
    fill_ids = set(result.fills["order_id"].to_list())
    assert fill_ids <= ids, f"fills of orders without a row: {sorted(fill_ids - ids)}"
    rejected = result.rejected_orders.filter(
        (pl.col("order_id") != 0) & (pl.col("reason") != "not_pending")
    )
    missing = set(rejected["order_id"].to_list()) - ids
    assert not missing, f"rejections of orders without a row: {sorted(missing)}"

    signed = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0) * pl.col("quantity")
    by_order = result.fills.group_by("order_id").agg(
        signed.sum().alias("fills"),
        (pl.col("quantity") * pl.col("price")).sum().alias("notional"),
        pl.col("quantity").sum().alias("shares"),
    )
    joined = orders.join(by_order, on="order_id", how="left").with_columns(
        pl.col("fills").fill_null(0.0), pl.col("shares").fill_null(0.0)
    )
    side = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    wrong = joined.filter(
        (side * pl.col("filled_quantity") - pl.col("fills")).abs()
        > 1e-9 * pl.col("shares").abs().clip(1.0)
    )
    assert wrong.height == 0, f"filled_quantity differs from the fills:\n{wrong}"
    priced = joined.filter(pl.col("shares") > 0)
    avg = priced["notional"] / priced["shares"]
    assert ((priced["avg_fill_price"] - avg).abs() <= 1e-9 * avg.abs()).all()
    assert joined.filter(pl.col("shares") == 0)["avg_fill_price"].null_count() == (
        joined.filter(pl.col("shares") == 0).height
    )

    events = orders.select("order_id", "history").explode("history").unnest("history")
    flat = result.order_events.select(events.columns)
    assert events.sort("order_id", maintain_order=True).equals(
        flat.sort("order_id", maintain_order=True)
    ), "history and order_events differ"
    for order_id, group in events.group_by("order_id", maintain_order=True):
        statuses = group["status"].to_list()
        times = group["timestamp"].to_list()
        assert times == sorted(times), f"order {order_id}: history out of time order"
        assert statuses[-1] in TERMINAL, f"order {order_id}: ends {statuses[-1]}"
        assert not any(s in TERMINAL for s in statuses[:-1]), f"order {order_id}: {statuses}"
        assert group["remaining"][-1] == 0.0, f"order {order_id}: leaves shares open"
    assert (orders["status"] == orders["history"].list.last().struct.field("status")).all()
