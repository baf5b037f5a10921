"""Error handling: every deliberate failure is a ``BacktestError`` subclass whose message locates
the problem, user exceptions are chained, and no Rust panic ever reaches Python."""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    PolarsDataFeed,
    SignalStrategy,
    Strategy,
    TopKStrategy,
    validate,
)
from ml4t.backtest.errors import (
    BacktestError,
    ConfigError,
    DataValidationError,
    OrderError,
    StrategyError,
)
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=2, n_bars=4, seed=1)  # rows sorted by (timestamp, asset)
ROW = 3
ROW_KEY = f"({BARS['timestamp'][ROW]}, {BARS['asset'][ROW]})"  # "(2020-01-02 00:00:00, A0001)"


def set_value(column: str, value: Any, row: int = ROW, df: pl.DataFrame = BARS) -> pl.DataFrame:
    """``df`` with ``df[row, column] = value``."""
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=df.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
    )


def expect_error(cls: type[BaseException], fn: Callable[[], Any]) -> BaseException:
    """Runs ``fn``; it must raise ``cls`` (a BacktestError) and never a PanicException."""
    try:
        fn()
    except BaseException as exc:  # PanicException derives from BaseException
        assert type(exc).__name__ != "PanicException", f"Rust panic reached Python: {exc}"
        assert isinstance(exc, cls), f"expected {cls.__name__}, got {type(exc).__name__}: {exc}"
        assert isinstance(exc, BacktestError)
        return exc
    raise AssertionError(f"expected {cls.__name__}, nothing was raised")


def run(strategy: Any, df: pl.DataFrame = BARS, **config: Any) -> Any:
    return Backtest(PolarsDataFeed(df), strategy, config=BacktestConfig(**config)).run()


# --------------------------------------------------------------------------- data validation

DATA_CASES: list[tuple[str, Callable[[], pl.DataFrame], str]] = [
    ("missing close", lambda: BARS.drop("close"), "close"),
    ("missing open", lambda: BARS.drop("open"), "open"),
    ("missing volume", lambda: BARS.drop("volume"), "volume"),
    ("missing timestamp", lambda: BARS.drop("timestamp"), "timestamp"),
    ("missing asset", lambda: BARS.drop("asset"), "asset"),
    ("close as string", lambda: BARS.with_columns(pl.col("close").cast(pl.String)), "close"),
    ("volume as bool", lambda: BARS.with_columns(pl.col("volume") > 0), "volume"),
    (
        "timestamp as string",
        lambda: BARS.with_columns(pl.col("timestamp").cast(pl.String)),
        "timestamp",
    ),
    (
        "asset as integer",
        lambda: BARS.with_columns(pl.int_range(pl.len()).alias("asset")),
        "asset",
    ),
    ("string signal column", lambda: BARS.with_columns(pl.lit("x").alias("note")), "note"),
    ("null close", lambda: set_value("close", None), "close"),
    ("null volume", lambda: set_value("volume", None), "volume"),
    ("null signal", lambda: set_value("score", None), "score"),
    ("null timestamp", lambda: set_value("timestamp", None), "timestamp"),
    ("null asset", lambda: set_value("asset", None), "asset"),
    ("NaN close", lambda: set_value("close", math.nan), "close"),
    ("inf high", lambda: set_value("high", math.inf), "high"),
    ("-inf low", lambda: set_value("low", -math.inf), "low"),
    ("NaN volume", lambda: set_value("volume", math.nan), "volume"),
    ("zero open", lambda: set_value("open", 0.0), "open"),
    ("negative close", lambda: set_value("close", -1.0), "close"),
    ("negative volume", lambda: set_value("volume", -1.0), "volume"),
    ("low above high", lambda: set_value("low", 1000.0), "low"),
    ("open above high", lambda: set_value("open", 1000.0), "open"),
    ("open below low", lambda: set_value("open", 1.0), "open"),
    ("close below low", lambda: set_value("close", 1.0), "close"),
]


@pytest.mark.parametrize(
    ("make", "column"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_invalid_data_raises_naming_the_column(
    make: Callable[[], pl.DataFrame], column: str
) -> None:
    df = make()
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(df))
    assert re.search(rf"\b{column}\b", str(exc)), str(exc)
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume", "score"])
def test_bad_value_message_names_first_offending_key(column: str) -> None:
    value = None if column == "score" else math.nan
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(set_value(column, value)))
    message = str(exc)
    assert message.startswith(f"{column}:"), message
    assert ROW_KEY in message, message


def test_inconsistent_prices_message_names_first_offending_key() -> None:
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(set_value("low", 1000.0)))
    assert str(exc).startswith("low:")
    assert ROW_KEY in str(exc)


def test_duplicate_rows_name_the_first_offending_key() -> None:
    df = pl.concat([BARS, BARS.slice(ROW, 1)])
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(df))
    message = str(exc)
    assert "duplicate" in message
    assert "asset" in message
    assert ROW_KEY in message, message
    # the key shown first is the first duplicated one in the frame
    first = message.index("(2020-")
    assert message[first:].startswith(ROW_KEY)


def test_null_timestamp_message_gives_the_offending_row() -> None:
    """The null sits at row 3 of the input; the message must not point elsewhere."""
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(set_value("timestamp", None)))
    assert re.search(r"\[3\]", str(exc)), str(exc)


def test_signals_frame_errors() -> None:
    prices = BARS.drop("score", "signal")
    keys = BARS.select("timestamp", "asset", "score")
    exc = expect_error(
        DataValidationError, lambda: PolarsDataFeed(prices, signals=keys.drop("asset"))
    )
    assert "signals.asset" in str(exc)
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(BARS, signals=keys))
    assert "signals.score" in str(exc)
    exc = expect_error(
        DataValidationError, lambda: PolarsDataFeed(prices, signals=pl.concat([keys, keys]))
    )
    assert "duplicate" in str(exc)
    # a bar without a signal row leaves a null: named by column
    exc = expect_error(DataValidationError, lambda: PolarsDataFeed(prices, signals=keys.head(3)))
    assert str(exc).startswith("score:")


def test_not_a_frame() -> None:
    expect_error(DataValidationError, lambda: PolarsDataFeed({"close": [1.0]}))  # type: ignore[arg-type]


def test_empty_frame_is_an_error_not_a_panic() -> None:
    with pytest.raises(DataValidationError, match=r"^prices: empty: the data has no rows$"):
        PolarsDataFeed(BARS.clear())
    report = validate(BARS.clear())
    assert [(f.rule, f.column) for f in report.errors] == [("empty", "prices")]


# --------------------------------------------------------------------------- strategy errors


class Boom(Exception):
    pass


def raise_boom() -> None:
    raise Boom("boom from user code")


class BatchRaises(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
        if timestamp == BARS["timestamp"][2]:
            raise_boom()


class BarRaises(Strategy):
    def on_market_data(self, event: Any, context: Any) -> None:
        if event.asset == "A0001":
            raise_boom()


def _hook_strategy(hook: str) -> Strategy:
    class HookRaises(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if not context.positions:
                context.submit_order("A0000", 1.0)

    setattr(HookRaises, hook, lambda self, *args: raise_boom())
    return HookRaises()


@pytest.mark.parametrize(
    ("make", "site"),
    [
        (BatchRaises, "on_timestamp_batch"),
        (BarRaises, "on_market_data"),
        (lambda: _hook_strategy("on_start"), "on_start"),
        (lambda: _hook_strategy("on_fill"), "on_fill"),
        (lambda: _hook_strategy("on_end"), "on_end"),
    ],
    ids=["on_timestamp_batch", "on_market_data", "on_start", "on_fill", "on_end"],
)
def test_strategy_exception_is_wrapped_with_cause(make: Callable[[], Strategy], site: str) -> None:
    exc = expect_error(StrategyError, lambda: run(make()))
    cause = exc.__cause__
    assert isinstance(cause, Boom)
    assert str(cause) == "boom from user code"
    assert "Boom" in str(exc) and "boom from user code" in str(exc)
    assert site in str(exc)
    assert cause.__traceback__ is not None
    frames = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert "raise_boom" in frames
    formatted = "".join(traceback.format_exception(exc))
    assert "raise_boom" in formatted and "The above exception was the direct cause" in formatted


def test_keyboard_interrupt_is_not_wrapped() -> None:
    """Ctrl-C inside a strategy must stop the run as KeyboardInterrupt, not become a
    StrategyError (an Exception that ``except Exception`` handlers would swallow)."""

    class Interrupted(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(Interrupted())


def test_library_error_inside_strategy_is_not_rewrapped() -> None:
    class Bad(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            context.submit_order("A0000", 0.0)

    exc = expect_error(OrderError, lambda: run(Bad()))
    assert not isinstance(exc, StrategyError)
    assert "quantity" in str(exc)


# --------------------------------------------------------------------------- order errors


ORDER_CASES: list[tuple[str, Callable[[Any], None], str, dict[str, Any]]] = [
    ("quantity zero", lambda c: c.submit_order("A0000", 0.0), "quantity", {}),
    ("quantity NaN", lambda c: c.submit_order("A0000", math.nan), "quantity", {}),
    ("quantity inf", lambda c: c.submit_order("A0000", math.inf), "quantity", {}),
    ("quantity -inf", lambda c: c.submit_order("A0000", -math.inf), "quantity", {}),
    ("unknown asset", lambda c: c.submit_order("ZZZ", 1.0), "ZZZ", {}),
    ("asset code out of range", lambda c: c.submit_order(7, 1.0), "asset", {}),
    ("negative asset code", lambda c: c.position(-1), "asset", {}),
    ("asset of wrong type", lambda c: c.submit_order(1.5, 1.0), "asset", {}),
    ("unknown asset in price", lambda c: c.price("ZZZ"), "ZZZ", {}),
    ("target NaN", lambda c: c.order_target_quantity("A0000", math.nan), "target", {}),
    ("value inf", lambda c: c.order_target_value("A0000", math.inf), "value", {}),
    ("fraction NaN", lambda c: c.order_target_percent("A0000", math.nan), "fraction", {}),
    ("close unknown", lambda c: c.close_position("ZZZ"), "ZZZ", {}),
    ("rebalance unknown", lambda c: c.rebalance({"A0000": 0.5, "ZZZ": 0.5}), "ZZZ", {}),
    ("rebalance NaN", lambda c: c.rebalance({"A0000": math.nan}), "weight", {}),
    (
        "fractional quantity with integer rounding",
        lambda c: c.submit_order("A0000", 1.5),
        "quantity",
        {"execution": {"share_rounding": "integer"}},
    ),
]


@pytest.mark.parametrize(
    ("submit", "needle", "config"),
    [c[1:] for c in ORDER_CASES],
    ids=[c[0] for c in ORDER_CASES],
)
def test_order_error_at_submission(
    submit: Callable[[Any], None], needle: str, config: dict[str, Any]
) -> None:
    raised: list[BaseException] = []

    class Submits(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if raised:
                return
            # raised synchronously by the context call, where the user can catch it
            raised.append(expect_error(OrderError, lambda: submit(context)))

    result = run(Submits(), **config)
    assert len(raised) == 1
    assert needle in str(raised[0]), str(raised[0])
    # the bad order left nothing behind
    assert result.fills.height == 0
    assert result.rejected_orders.height == 0


def test_whole_float_quantity_is_fine_with_integer_rounding() -> None:
    class Submits(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp == BARS["timestamp"][0]:
                context.submit_order("A0000", 2.0)

    result = run(Submits(), execution={"share_rounding": "integer"})
    assert result.fills["quantity"].to_list() == [2.0]


def test_unpriced_asset_is_rejected_no_price() -> None:
    df = BARS.filter((pl.col("asset") == "A0000") | (pl.col("timestamp") > BARS["timestamp"][0]))

    class Sizes(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp == BARS["timestamp"][0]:
                assert math.isnan(context.price("A0001"))
                context.order_target_percent("A0001", 0.5)

    result = run(Sizes(), df=df)
    assert result.rejected_orders["reason"].to_list() == ["no_price"]
    assert result.fills.height == 0


def test_short_not_allowed_rejection() -> None:
    class Shorts(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            if timestamp == BARS["timestamp"][0]:
                context.submit_order("A0000", -5.0)

    result = run(Shorts(), account={"allow_short": False})
    rejected = result.rejected_orders.row(0, named=True)
    assert rejected["reason"] == "short_not_allowed"
    assert rejected["quantity"] == -5.0
    assert result.fills.height == 0


# --------------------------------------------------------------------------- config errors


def test_strategy_overriding_neither_method() -> None:
    class Neither(Strategy):
        pass

    exc = expect_error(ConfigError, lambda: run(Neither()))
    assert "neither" in str(exc)


def test_strategy_overriding_both_methods() -> None:
    class Both(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            pass

        def on_market_data(self, event: Any, context: Any) -> None:
            pass

    exc = expect_error(ConfigError, lambda: run(Both()))
    assert "both" in str(exc)


@pytest.mark.parametrize(
    ("strategy", "needle"),
    [
        (SignalStrategy("nope", quantity=1.0), "nope"),
        (SignalStrategy("close", quantity=1.0), "close"),  # a price column is not a signal
        (TopKStrategy("nope", k=1), "nope"),
    ],
)
def test_builtin_with_unknown_column(strategy: Any, needle: str) -> None:
    exc = expect_error(ConfigError, lambda: run(strategy))
    assert needle in str(exc)
    assert "strategy." in str(exc)


@pytest.mark.parametrize(
    ("strategy", "needle"),
    [
        (SignalStrategy("signal"), "quantity or weight"),
        (SignalStrategy("signal", quantity=1.0, weight=0.1), "quantity or weight"),
        (SignalStrategy("signal", quantity=0.0), "strategy.size"),
        (SignalStrategy("signal", quantity=math.nan), "strategy.size"),
        (SignalStrategy("signal", weight=-0.1), "strategy.size"),
        (
            SignalStrategy("signal", quantity=1.0, long_threshold=-1.0, short_threshold=1.0),
            "threshold",
        ),
        (SignalStrategy("signal", quantity=1.0, long_threshold=math.inf), "threshold"),
        (TopKStrategy("score", k=0), "strategy.k"),
        (TopKStrategy("score", k=-1, bottom_k=2), "strategy.k"),
        (TopKStrategy("score", k=1, rebalance_every=0), "rebalance_every"),
        (TopKStrategy("score", k=1.5), "k"),  # type: ignore[arg-type]
        (SignalStrategy("signal", quantity="x"), "quantity"),  # type: ignore[arg-type]
    ],
)
def test_builtin_bad_parameters(strategy: Any, needle: str) -> None:
    exc = expect_error(ConfigError, lambda: run(strategy))
    assert needle in str(exc)


def test_backtest_argument_types() -> None:
    feed = PolarsDataFeed(BARS)
    expect_error(ConfigError, lambda: Backtest(BARS, SignalStrategy("signal", quantity=1)))  # type: ignore[arg-type]
    expect_error(ConfigError, lambda: Backtest(feed, object()))  # type: ignore[arg-type]


def test_error_hierarchy() -> None:
    for cls in (DataValidationError, ConfigError, OrderError, StrategyError):
        assert issubclass(cls, BacktestError)
    for cls in (DataValidationError, ConfigError, OrderError):
        assert issubclass(cls, ValueError)


def test_no_panic_on_odd_inputs() -> None:
    """Odd but possible inputs end in a result or a BacktestError, never a panic."""

    class Odd(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            context.rebalance({})
            context.rebalance([("A0000", 0.25), ("A0001", -0.25)])
            context.order_target_percent("A0000", 0.0)
            context.close_position(1)
            context.submit_order("A0001", 1e-12)

    for strategy in (
        Odd(),
        TopKStrategy("score", k=1000),
        TopKStrategy("score", k=1, bottom_k=1000),
        SignalStrategy("score", weight=5.0, allow_short=True),
    ):
        result = run(strategy)
        assert result.equity.height == BARS["timestamp"].n_unique()
    single = BARS.head(1)
    result = run(SignalStrategy("signal", quantity=1.0), df=single)
    assert result.equity.height == 1
    assert datetime(2020, 1, 1) == result.equity["timestamp"][0]
