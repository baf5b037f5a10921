"""Callbacks and the context behave under hostile use: numpy integers are asset codes and bad
ids or argument types give ``OrderError`` naming the argument (r05); an order submitted from
``on_order`` after the last bar is an ``end_of_data`` rejection, not an error that discards the
run, and a strategy resubmitting on every rejection still ends (r08); Ctrl-C stops a built-in
run without a progress bar (r10) and a Python-strategy run."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestResult, PolarsDataFeed, Strategy
from ml4t.backtest.errors import OrderError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=3, n_bars=6, seed=1)
ASSETS = sorted(BARS["asset"].unique().to_list())


def _run(strategy: Strategy, **config: Any) -> BacktestResult:
    from ml4t.backtest import BacktestConfig

    cfg = BacktestConfig.from_dict(config) if config else None
    return Backtest(PolarsDataFeed(BARS), strategy, config=cfg).run(progress=False)


def _first_bar(check: Callable[[Any, Any], None]) -> list[BaseException]:
    """Runs ``check(batch, context)`` on the first timestamp; returns what it raised."""
    raised: list[BaseException] = []

    class Probe(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if not raised:
                try:
                    check(batch, context)
                except BaseException as err:
                    raised.append(err)
                else:
                    raised.append(AssertionError("no exception"))

    _run(Probe())
    return raised


# --------------------------------------------------------------------------- asset codes (r05)

NUMPY_INTS = [np.uint32, np.int64, np.int32, np.uint8, np.int8, np.uint64, np.intp]


def _orders_by(ref: Callable[[int], object]) -> pl.DataFrame:
    """Fills of a run placing every kind of asset-taking order with assets given by ``ref``."""

    class ByRef(Strategy):
        def __init__(self) -> None:
            self.i = 0

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            codes = [int(c) for c in batch.asset_ids]
            a, b, c = (ref(code) for code in codes[:3])
            assert context.position(a) == context.positions.get(ASSETS[codes[0]], 0.0)
            assert np.isfinite(context.price(b)) or self.i == 0
            step = [
                lambda: context.submit_order(a, 5.0),
                lambda: context.order_target_quantity(b, 3.0),
                lambda: context.order_target_value(c, 500.0),
                lambda: context.order_target_percent(a, 0.01),
                lambda: context.close_position(b),
                lambda: context.rebalance({a: 0.02, c: 0.01}),
            ]
            if self.i < len(step):
                step[self.i]()
            self.i += 1

    return _run(ByRef()).fills


@pytest.mark.parametrize("np_int", NUMPY_INTS, ids=lambda t: t.__name__)
def test_numpy_integers_are_asset_codes_everywhere(np_int: type) -> None:
    assert _orders_by(np_int).equals(_orders_by(int))
    assert _orders_by(int).height > 0


def test_batch_asset_ids_are_accepted_as_they_are() -> None:
    def check(batch: Any, context: Any) -> None:
        code = batch.asset_ids[0]
        assert isinstance(code, np.uint32)
        context.order_target_quantity(code, 1.0)
        context.submit_order(code, 1.0)
        raise OrderError("asset: reached")  # stop here: both calls were accepted

    (err,) = _first_bar(check)
    assert str(err) == "asset: reached"


BAD_CODES: dict[str, object] = {
    "negative": -1,
    "n_assets": 3,
    "int64_max": 2**63 - 1,
    "above_int64": 2**63,
    "above_uint64": 2**64,
    "huge": 2**200,
    "numpy_negative": np.int8(-3),
    "numpy_uint64_max": np.uint64(2**64 - 1),
}
BAD_TYPES: dict[str, object] = {
    "float": 1.0,
    "numpy_float": np.float64(0.0),
    "bool": True,
    "false": False,
    "numpy_bool": np.True_,
    "none": None,
    "bytes": b"A0000",
    "list": [0],
}


@pytest.mark.parametrize("name", sorted(BAD_CODES))
def test_a_code_outside_the_universe_is_an_order_error(name: str) -> None:
    code = BAD_CODES[name]
    for call in ("position", "price", "close_position"):
        (err,) = _first_bar(lambda batch, ctx, call=call: getattr(ctx, call)(code))
        assert type(err) is OrderError, repr(err)
        assert str(err) == f"asset: code {int(code)} is outside 0..3"  # type: ignore[call-overload]


@pytest.mark.parametrize("name", sorted(BAD_TYPES))
def test_an_asset_of_another_type_is_an_order_error(name: str) -> None:
    ref = BAD_TYPES[name]
    for call in (
        lambda ctx: ctx.position(ref),
        lambda ctx: ctx.submit_order(ref, 1.0),
        lambda ctx: ctx.order_target_percent(ref, 0.1),
        lambda ctx: ctx.rebalance([(ref, 0.1)]),
    ):
        (err,) = _first_bar(lambda batch, ctx, call=call: call(ctx))
        assert type(err) is OrderError, repr(err)
        assert str(err) == f"asset: expected a name (str) or code (int), got {type(ref)}"


def test_a_users_index_error_is_the_cause() -> None:
    class Code:
        def __index__(self) -> int:
            raise ValueError("no code today")

    (err,) = _first_bar(lambda batch, ctx: ctx.position(Code()))
    assert type(err) is OrderError
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "no code today"


# ------------------------------------------------------------------------ argument types (r09)

BAD_ARGUMENTS: dict[str, tuple[Callable[[Any], object], str]] = {
    "quantity_str": (lambda c: c.submit_order("A0000", "10"), "quantity: expected a number"),
    "quantity_none": (lambda c: c.submit_order("A0000", None), "quantity: expected a number"),
    "quantity_huge_int": (
        lambda c: c.submit_order("A0000", 10**400),
        "quantity: expected a number, got 10000000000000000000000000000000...",
    ),
    "limit_str": (lambda c: c.submit_order("A0000", 1, limit="x"), "limit: expected a number"),
    "stop_list": (lambda c: c.submit_order("A0000", 1, stop=[1]), "stop: expected a number"),
    "trail_amount": (
        lambda c: c.submit_order("A0000", 1, trail_amount="1"),
        "trail_amount: expected a number",
    ),
    "trail_percent": (
        lambda c: c.submit_order("A0000", 1, trail_percent={}),
        "trail_percent: expected a number",
    ),
    "take_profit": (
        lambda c: c.submit_order("A0000", 1, take_profit="2"),
        "take_profit: expected a number",
    ),
    "stop_loss": (
        lambda c: c.submit_order("A0000", 1, stop_loss=b"1"),
        "stop_loss: expected a number",
    ),
    "order_type_int": (
        lambda c: c.submit_order("A0000", 1, order_type=3),
        "order_type: expected a str, got <class 'int'>",
    ),
    "tif_int": (lambda c: c.submit_order("A0000", 1, tif=1), "tif: expected a str, got"),
    "tif_none": (lambda c: c.submit_order("A0000", 1, tif=None), "tif: expected a str, got"),
    "tif_unknown": (
        lambda c: c.submit_order("A0000", 1, tif="gtd"),
        "tif: must be 'gtc', 'day' or 'ioc', got 'gtd'",
    ),
    "cancel_negative": (
        lambda c: c.cancel_order(-1),
        "order_id: expected an order id (int >= 0), got -1",
    ),
    "cancel_above_u64": (
        lambda c: c.cancel_order(2**64),
        "order_id: expected an order id (int >= 0), got 18446744073709551616",
    ),
    "cancel_str": (lambda c: c.cancel_order("1"), "order_id: expected an order id"),
    "modify_id": (lambda c: c.modify_order(None, quantity=1), "order_id: expected an order id"),
    "modify_quantity": (
        lambda c: c.modify_order(1, quantity="2"),
        "quantity: expected a number",
    ),
    "modify_limit": (lambda c: c.modify_order(1, limit="2"), "limit: expected a number"),
    "modify_stop": (lambda c: c.modify_order(1, stop=()), "stop: expected a number"),
    "target_quantity": (
        lambda c: c.order_target_quantity("A0000", "1"),
        "target: expected a number",
    ),
    "target_value": (lambda c: c.order_target_value("A0000", None), "value: expected a number"),
    "target_percent": (
        lambda c: c.order_target_percent("A0000", "z"),
        "fraction: expected a number",
    ),
    "rebalance_int": (lambda c: c.rebalance(5), "weights: expected {asset: weight}"),
    "rebalance_not_pairs": (lambda c: c.rebalance([1]), "weights: expected {asset: weight}"),
    "rebalance_weight": (lambda c: c.rebalance({"A0000": "w"}), "weight: expected a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_a_bad_argument_type_is_an_order_error_naming_it(case: str) -> None:
    call, message = BAD_ARGUMENTS[case]
    (err,) = _first_bar(lambda batch, ctx: call(ctx))
    assert type(err) is OrderError, repr(err)
    assert str(err).startswith(message), str(err)


def test_a_users_float_error_is_the_cause() -> None:
    class Quantity:
        def __float__(self) -> float:
            raise ArithmeticError("not today")

    (err,) = _first_bar(lambda batch, ctx: ctx.submit_order("A0000", Quantity()))
    assert type(err) is OrderError
    assert isinstance(err.__cause__, ArithmeticError)


def test_numbers_of_other_types_are_still_accepted() -> None:
    def check(batch: Any, context: Any) -> None:
        context.submit_order("A0000", np.float32(2), limit=np.int64(1000), tif="day")
        context.submit_order(0, 3, stop=np.float64(1e9), take_profit=None)
        context.order_target_percent(np.uint32(1), np.float64(0.01))
        context.cancel_order(np.uint64(1))
        context.modify_order(np.int64(2), quantity=2, limit=None)
        raise OrderError("asset: reached")

    (err,) = _first_bar(check)
    assert str(err) == "asset: reached"


# ----------------------------------------------------------------- orders after the data (r08)


class Resubmit(Strategy):
    """Keeps a resting limit that never fills and resubmits it on every rejection."""

    def __init__(self, how: str = "submit") -> None:
        self.how = how
        self.events: list[tuple[int, str, str | None]] = []
        self.resubmitted: list[int] = []

    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if not self.events:
            context.submit_order("A0000", 1.0, limit=1.0)

    def on_order(self, order: Any, context: Any) -> None:
        self.events.append((order.order_id, order.status, order.reason))
        if order.status != "rejected":
            return
        if self.how == "submit":
            self.resubmitted.append(context.submit_order("A0000", 1.0, limit=1.0))
        elif self.how == "target":
            context.order_target_quantity("A0001", 7.0)
            context.rebalance({"A0002": 0.1})
        else:
            context.cancel_order(order.order_id)


def test_an_order_resubmitted_on_end_of_data_is_rejected_and_the_run_ends() -> None:
    strategy = Resubmit()
    result = _run(strategy)
    rejected = result.rejected_orders
    assert rejected["reason"].to_list() == ["end_of_data", "end_of_data"]
    first, late = rejected.rows(named=True)
    assert late["order_id"] == strategy.resubmitted[0] != first["order_id"]
    assert (late["asset"], late["quantity"]) == ("A0000", 1.0)
    assert late["timestamp"] == result.equity["timestamp"][-1]  # at the last timestamp
    # no event is delivered for the late order: on_order saw the first rejection only
    assert [e for e in strategy.events if e[1] == "rejected"] == [
        (first["order_id"], "rejected", "end_of_data")
    ]
    assert strategy.resubmitted == [late["order_id"]]


def test_late_target_orders_and_cancels_are_recorded_unsized() -> None:
    rejected = _run(Resubmit("target")).rejected_orders
    assert rejected["reason"].to_list() == ["end_of_data"] * 3
    late = rejected.slice(1)
    assert late["order_id"].to_list() == [0, 0]
    assert late["asset"].to_list() == ["A0001", "A0002"]
    assert late["quantity"].is_nan().all()

    rejected = _run(Resubmit("cancel")).rejected_orders
    assert rejected["reason"].to_list() == ["end_of_data", "not_pending"]
    assert rejected["order_id"][0] == rejected["order_id"][1]


@pytest.mark.parametrize("mode", ["next_open", "same_close"])
def test_orders_from_the_last_fills_are_end_of_data(mode: str) -> None:
    """An order submitted in on_fill or on_order after the last timestamp's callback."""

    class Chase(Strategy):
        def __init__(self) -> None:
            self.submitted: list[int] = []

        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            context.submit_order("A0000", 1.0)

        def on_fill(self, fill: Any, context: Any) -> None:
            self.submitted.append(context.submit_order("A0001", -1.0))

        def on_order(self, order: Any, context: Any) -> None:
            if order.status == "accepted":
                self.submitted.append(context.submit_order("A0002", 2.0))

    strategy = Chase()
    result = _run(strategy, execution={"mode": mode})
    ids = set(result.fills["order_id"].to_list()) | set(result.rejected_orders["order_id"])
    assert set(strategy.submitted) <= ids  # every order submitted ended somewhere
    assert result.rejected_orders["reason"].unique().to_list() == ["end_of_data"]


def test_orders_submitted_in_on_end_still_raise() -> None:
    class Late(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            pass

        def on_end(self, context: Any) -> None:
            context.submit_order("A0000", 1.0)

    with pytest.raises(OrderError, match="on_end: orders submitted in on_end can never fill"):
        _run(Late())


# ------------------------------------------------------------------------------ Ctrl-C (r10)

CHILD = textwrap.dedent(
    """
    import sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, polars as pl
    from ml4t.backtest import Backtest, PolarsDataFeed, SignalStrategy, Strategy
    from ml4t.backtest.risk import StopLoss, TakeProfit, TrailingStop

    kind, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    start = pl.datetime(2000, 1, 1)
    df = pl.DataFrame({
        "timestamp": pl.datetime_range(start, start + pl.duration(minutes=n - 1), "1m",
                                       eager=True),
        "asset": ["A"] * n, "open": close, "high": close * 1.003, "low": close * 0.997,
        "close": close, "volume": 1e6,
        "signal": np.where(rng.random(n) < 0.5, 1.0, -1.0),
    })

    class Slow(Strategy):
        def on_timestamp_batch(self, timestamp, batch, context):
            context.order_target_quantity("A", 100.0 * float(batch["signal"][0]))

    strategy = SignalStrategy("signal", quantity=100, allow_short=True)
    risk = [StopLoss(pct=0.002), TakeProfit(pct=0.004), TrailingStop(pct=0.003)]
    bt = Backtest(PolarsDataFeed(df), Slow() if kind == "python" else strategy, risk=risk)
    print("READY", flush=True)
    started = time.monotonic()
    try:
        bt.run(progress=False)
        print(f"FINISHED {time.monotonic() - started:.3f}", flush=True)
    except KeyboardInterrupt:
        print(f"INTERRUPTED {time.monotonic():.6f}", flush=True)
    """
)


@pytest.mark.parametrize(("kind", "n_bars"), [("builtin", 3_000_000), ("python", 1_000_000)])
def test_ctrl_c_stops_a_run_without_a_progress_bar(kind: str, n_bars: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(n_bars)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY", child.stderr
        time.sleep(0.5)  # well inside the run (several seconds)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        exited = time.monotonic() - sent
    finally:
        child.kill()
    word, value = out.split()
    assert word == "INTERRUPTED", (out, err)
    latency = float(value) - sent  # time.monotonic() is one clock for both processes
    print(f"{kind}: KeyboardInterrupt {latency * 1000:.0f} ms after SIGINT, exit {exited:.2f} s")
    assert latency < 1.0  # measured 1-50 ms on a loaded 2-core machine
    assert exited < 1.0  # including the interpreter's teardown
    assert child.returncode == 0
