"""Regenerates the stored reference runs of other frameworks used by
``tests/test_reference_frameworks.py``.

The script builds a small deterministic OHLCV panel and a target-weight schedule, runs them
through the real frameworks and writes what they produced next to this file. The test suite only
reads those files; it never needs the frameworks. Nothing here installs anything: run it from
throwaway environments that have them. zipline-reloaded needs pandas < 3 and vectorbt 1.2 needs
pandas >= 3, so they take two environments:

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install vectorbt==1.2.0 backtrader==1.9.78.123 pyarrow
    /tmp/refvenv/bin/python tests/reference/make_references.py vectorbt backtrader

    python -m venv /tmp/zlvenv
    /tmp/zlvenv/bin/pip install zipline-reloaded==3.2.1 pyarrow
    /tmp/zlvenv/bin/python tests/reference/make_references.py zipline

Each invocation regenerates the panel and the schedule (seeded) and checks them against the
files an earlier invocation wrote, so every run sees the same data. (None of these frameworks is
a dependency of ml4t-backtest, not even of its dev extra.)

Files written (all Parquet, float64 values as the frameworks computed them):

- ``panel.parquet``: timestamp, asset, open, high, low, close, volume (3 assets x the 250 NYSE
  sessions of 2021 from 4 January, prices in cents).
- ``schedule.parquet``: timestamp (the decision bar), asset, weight. Every asset has a row at
  every decision; weight 0 closes the position.
- ``<run>_equity.parquet``: timestamp, equity (portfolio value at each bar's close).
- ``<run>_fills.parquet``: timestamp, asset, size (signed: + buys), price, fee.
- ``versions.json``: the parameters shared by the runs and, per run, the versions that made it.

Runs (``<run>``), all with 100,000 initial cash:

- ``vectorbt_close``: ``Portfolio.from_orders(size_type="targetpercent", fees=0.001,
  cash_sharing=True, group_by=True, call_seq="auto")`` at the close: the weights decided at
  bar t are sized and filled at bar t's close.
- ``vectorbt_open``: the same with ``price=open`` and the weights shifted one bar: decided at
  t's close, sized and filled at t+1's open (vectorbt values the account at the order prices,
  i.e. the opens, once before that bar's orders).
- ``backtrader``: one data feed per asset, ``order_target_percent`` at each decision bar
  (market orders, filled at the next bar's open, sized at the decision close with the broker
  value at decision, whole shares), ``setcommission(commission=0.001)``. Sells are submitted
  before buys so that backtrader's submission-time cash check never rejects a buy for cash a
  sell of the same bar frees.
- ``zipline``: ``order_target_percent`` in ``handle_data`` at each decision session (filled at
  the next session's close, sized at the decision close, whole shares), ``PerShare(0.001)``
  commission, ``FixedBasisPointsSlippage(5 bps, volume_limit=1.0)``, the XNYS calendar.
- ``zipline_no_slippage``: the same with ``FixedBasisPointsSlippage(basis_points=0)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ASSETS = ("AAA", "BBB", "CCC")
N_BARS = 250
SEED = 20240612
INIT_CASH = 100_000.0
FEE_RATE = 0.001
NYSE_HOLIDAYS_2021 = (
    "2021-01-18", "2021-02-15", "2021-04-02", "2021-05-31",
    "2021-07-05", "2021-09-06", "2021-11-25", "2021-12-24",
)  # fmt: skip
SESSIONS = pd.bdate_range("2021-01-04", "2021-12-29", name="timestamp").drop(
    pd.DatetimeIndex(NYSE_HOLIDAYS_2021)
)
"""The NYSE's sessions of 2021 from 4 January (zipline's default calendar, checked there)."""
assert len(SESSIONS) == N_BARS


def make_panel() -> pd.DataFrame:
    """Daily bars in cents: overnight gap to the open, intraday move to the close, high and low
    beyond both; every price positive and OHLC consistent."""
    rng = np.random.default_rng(SEED)
    index = SESSIONS
    frames = []
    for asset, start in zip(ASSETS, (40.0, 95.0, 180.0), strict=True):
        gaps = rng.normal(0.0, 0.006, N_BARS)
        moves = rng.normal(0.0003, 0.016, N_BARS)
        opens = np.empty(N_BARS)
        closes = np.empty(N_BARS)
        prev = start
        for i in range(N_BARS):
            opens[i] = round(prev * np.exp(gaps[i]), 2)
            closes[i] = round(opens[i] * np.exp(moves[i]), 2)
            prev = closes[i]
        top = np.maximum(opens, closes)
        bottom = np.minimum(opens, closes)
        highs = np.round(top + np.round(top * np.abs(rng.normal(0.0, 0.006, N_BARS)), 2), 2)
        lows = np.round(bottom - np.round(bottom * np.abs(rng.normal(0.0, 0.006, N_BARS)), 2), 2)
        volume = rng.integers(200_000, 2_000_000, N_BARS).astype(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": index,
                    "asset": asset,
                    "open": opens,
                    "high": highs,
                    "low": lows,
                    "close": closes,
                    "volume": volume,
                }
            )
        )
    panel = pd.concat(frames, ignore_index=True).sort_values(["timestamp", "asset"])
    panel = panel.reset_index(drop=True)
    assert (panel[["open", "high", "low", "close"]] > 0).all().all()
    assert (panel["high"] >= panel[["open", "close"]].max(axis=1)).all()
    assert (panel["low"] <= panel[["open", "close"]].min(axis=1)).all()
    return panel


def make_schedule(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Long-only target weights at irregular decision bars (gaps of 1 to 8 bars), gross between
    0.4 and 0.9; about a quarter of the weights are 0 (a close) and one decision is all cash.
    The last decision is at least two bars before the end, so every decision fills in each run."""
    rng = np.random.default_rng(SEED + 1)
    bars: list[int] = []
    bar = 0
    while bar <= len(index) - 3:
        bars.append(bar)
        bar += int(rng.choice([1, 2, 3, 5, 8]))
    all_cash = bars[len(bars) // 2]
    rows = []
    for b in bars:
        raw = rng.uniform(0.1, 1.0, len(ASSETS)) * (rng.uniform(size=len(ASSETS)) > 0.25)
        if b == all_cash or raw.sum() == 0.0:
            weights = np.zeros(len(ASSETS))
        else:
            weights = raw / raw.sum() * rng.uniform(0.4, 0.9)
        for asset, w in zip(ASSETS, weights, strict=True):
            rows.append({"timestamp": index[b], "asset": asset, "weight": float(w)})
    return pd.DataFrame(rows)


def wide(panel: pd.DataFrame, column: str) -> pd.DataFrame:
    """A (timestamp x asset) frame of one panel column."""
    return panel.pivot(index="timestamp", columns="asset", values=column)[list(ASSETS)]


def run_vectorbt(panel: pd.DataFrame, schedule: pd.DataFrame, at_open: bool) -> dict[str, Any]:
    """vectorbt target-percent orders; at the open the weights fill one bar after decision."""
    import vectorbt as vbt

    close = wide(panel, "close")
    weights = schedule.pivot(index="timestamp", columns="asset", values="weight")[list(ASSETS)]
    size = weights.reindex(close.index)  # NaN: no order on that bar
    extra: dict[str, Any] = {}
    if at_open:
        size = size.shift(1)
        extra["price"] = wide(panel, "open")
    pf = vbt.Portfolio.from_orders(
        close,
        size=size,
        size_type="targetpercent",
        fees=FEE_RATE,
        init_cash=INIT_CASH,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        freq="1D",
        **extra,
    )
    records = pf.orders.values
    fills = pd.DataFrame(
        {
            "timestamp": close.index[records["idx"]],
            "asset": [ASSETS[c] for c in records["col"]],
            "size": np.where(records["side"] == 0, records["size"], -records["size"]),
            "price": records["price"],
            "fee": records["fees"],
        }
    )
    value = pf.value()
    equity = pd.DataFrame({"timestamp": value.index, "equity": value.to_numpy(np.float64)})
    return {"fills": fills, "equity": equity}


def run_backtrader(panel: pd.DataFrame, schedule: pd.DataFrame) -> dict[str, Any]:
    """backtrader order_target_percent on each decision bar, market orders (next open)."""
    import backtrader as bt

    targets: dict[pd.Timestamp, dict[str, float]] = {}
    for row in schedule.itertuples(index=False):
        targets.setdefault(pd.Timestamp(row.timestamp), {})[str(row.asset)] = float(row.weight)

    equity_rows: list[dict[str, Any]] = []
    fill_rows: list[dict[str, Any]] = []

    class Schedule(bt.Strategy):  # type: ignore[misc]
        def next(self) -> None:
            now = pd.Timestamp(self.datas[0].datetime.datetime(0))
            value = self.broker.getvalue()
            equity_rows.append({"timestamp": now, "equity": float(value)})
            todo = targets.get(now)
            if todo is None:
                return
            sells, buys = [], []
            for data in self.datas:
                held = self.getposition(data).size * data.close[0]
                (sells if todo[data._name] * value < held else buys).append(data)
            for data in sells + buys:
                self.order_target_percent(data=data, target=todo[data._name])

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                fill_rows.append(
                    {
                        "timestamp": pd.Timestamp(bt.num2date(order.executed.dt)),
                        "asset": order.data._name,
                        "size": float(order.executed.size),
                        "price": float(order.executed.price),
                        "fee": float(order.executed.comm),
                    }
                )
            elif order.status in (order.Margin, order.Rejected, order.Canceled):
                raise RuntimeError(f"backtrader refused an order: {order}")

    cerebro = bt.Cerebro(stdstats=False)
    for asset in ASSETS:
        frame = panel[panel["asset"] == asset].set_index("timestamp")
        frame = frame[["open", "high", "low", "close", "volume"]].assign(openinterest=0.0)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=asset)
    cerebro.broker.setcash(INIT_CASH)
    cerebro.broker.setcommission(commission=FEE_RATE)
    cerebro.addstrategy(Schedule)
    cerebro.run()
    return {"fills": pd.DataFrame(fill_rows), "equity": pd.DataFrame(equity_rows)}


def run_zipline(
    panel: pd.DataFrame, schedule: pd.DataFrame, basis_points: float = 5.0
) -> dict[str, Any]:
    """zipline order_target_percent on each decision bar: filled at the next bar's close with
    ``basis_points`` of slippage (no volume cap in effect) and $0.001 per share."""
    import tempfile

    from zipline import run_algorithm
    from zipline.api import (
        order_target_percent,
        set_commission,
        set_slippage,
        symbol,
    )
    from zipline.data.bundles import ingest, register
    from zipline.finance.commission import PerShare
    from zipline.finance.slippage import FixedBasisPointsSlippage
    from zipline.utils.calendar_utils import get_calendar

    sessions = pd.DatetimeIndex(panel["timestamp"].unique())
    calendar = get_calendar("XNYS")
    if not calendar.sessions_in_range(sessions[0], sessions[-1]).equals(sessions):
        raise RuntimeError("the panel's days are not the NYSE's sessions")

    def ingest_panel(environ, asset_db_writer, minute_bar_writer, daily_bar_writer,
                     adjustment_writer, calendar, start_session, end_session, cache,
                     show_progress, output_dir):  # fmt: skip
        meta = pd.DataFrame(
            {
                "symbol": list(ASSETS),
                "start_date": sessions[0],
                "end_date": sessions[-1],
                "auto_close_date": sessions[-1] + pd.Timedelta(days=30),
                "exchange": "REF",
            }
        )
        exchanges = pd.DataFrame({"exchange": ["REF"], "country_code": ["US"]})
        asset_db_writer.write(equities=meta, exchanges=exchanges)
        daily_bar_writer.write(
            (
                sid,
                panel[panel["asset"] == asset].set_index("timestamp")[
                    ["open", "high", "low", "close", "volume"]
                ],
            )
            for sid, asset in enumerate(ASSETS)
        )
        adjustment_writer.write()

    targets: dict[pd.Timestamp, dict[str, float]] = {}
    for row in schedule.itertuples(index=False):
        targets.setdefault(pd.Timestamp(row.timestamp), {})[str(row.asset)] = float(row.weight)

    def initialize(context: Any) -> None:
        context.assets = {asset: symbol(asset) for asset in ASSETS}
        set_commission(us_equities=PerShare(cost=FEE_RATE, min_trade_cost=0.0))
        set_slippage(
            us_equities=FixedBasisPointsSlippage(basis_points=basis_points, volume_limit=1.0)
        )

    def handle_data(context: Any, data: Any) -> None:
        now = pd.Timestamp(data.current_session)
        for asset, weight in targets.get(now, {}).items():
            order_target_percent(context.assets[asset], weight)

    with tempfile.TemporaryDirectory() as root:
        environ = {"ZIPLINE_ROOT": root}
        register("ml4t_reference", ingest_panel, calendar_name="XNYS")
        ingest("ml4t_reference", environ=environ, show_progress=False)
        perf = run_algorithm(
            start=sessions[0],
            end=sessions[-1],
            initialize=initialize,
            handle_data=handle_data,
            capital_base=INIT_CASH,
            data_frequency="daily",
            bundle="ml4t_reference",
            trading_calendar=calendar,
            benchmark_returns=pd.Series(0.0, index=sessions.tz_localize("UTC")),
            environ=environ,
        )
    # zipline stamps each day's results and transactions with its session's close (UTC).
    closes = pd.DatetimeIndex([calendar.session_close(day) for day in sessions])
    if not pd.DatetimeIndex(perf.index).equals(closes):
        raise RuntimeError("zipline's result rows are not the panel's sessions")
    session_of = dict(zip(closes, sessions, strict=True))
    equity = pd.DataFrame({"timestamp": sessions, "equity": perf["portfolio_value"].to_numpy()})
    fees: dict[str, float] = {}
    for orders in perf["orders"]:
        for order in orders:
            fees[order["id"]] = float(order["commission"])
    fill_rows = []
    for transactions in perf["transactions"]:
        for txn in transactions:
            fill_rows.append(
                {
                    "timestamp": session_of[pd.Timestamp(txn["dt"])],
                    "asset": txn["sid"].symbol,
                    "size": float(txn["amount"]),
                    "price": float(txn["price"]),
                    "fee": fees[txn["order_id"]],
                }
            )
    return {"fills": pd.DataFrame(fill_rows), "equity": equity}


RUNNERS = {
    "vectorbt": {
        "vectorbt_close": lambda p, s: run_vectorbt(p, s, at_open=False),
        "vectorbt_open": lambda p, s: run_vectorbt(p, s, at_open=True),
    },
    "backtrader": {"backtrader": run_backtrader},
    "zipline": {
        "zipline": run_zipline,
        "zipline_no_slippage": lambda p, s: run_zipline(p, s, basis_points=0.0),
    },
}
"""Each framework's runs, by the package that must be importable."""


def write_or_check(frame: pd.DataFrame, path: Path) -> None:
    """Writes ``frame``, or checks it equals the file another environment already wrote."""
    if path.exists():
        stored = pd.read_parquet(path)
        pd.testing.assert_frame_equal(
            stored.astype({"timestamp": "datetime64[ns]", "asset": object}),
            frame.astype({"timestamp": "datetime64[ns]", "asset": object}),
            check_exact=True,
        )
    else:
        frame.to_parquet(path, index=False)


def main(argv: list[str]) -> None:
    """Runs the frameworks named in ``argv`` (default: vectorbt and backtrader)."""
    import importlib

    frameworks = argv or ["vectorbt", "backtrader"]
    unknown = sorted(set(frameworks) - set(RUNNERS))
    if unknown:
        raise SystemExit(f"unknown framework(s) {unknown}; choose from {sorted(RUNNERS)}")
    panel = make_panel()
    index = pd.DatetimeIndex(panel["timestamp"].unique())
    schedule = make_schedule(index)
    write_or_check(panel, HERE / "panel.parquet")
    write_or_check(schedule, HERE / "schedule.parquet")
    versions_path = HERE / "versions.json"
    versions = json.loads(versions_path.read_text()) if versions_path.exists() else {}
    versions.update({"seed": SEED, "init_cash": INIT_CASH, "fee_rate": FEE_RATE})
    runs = versions.setdefault("runs", {})
    for framework in frameworks:
        module = importlib.import_module(framework)
        for name, runner in RUNNERS[framework].items():
            out = runner(panel, schedule)
            out["fills"].to_parquet(HERE / f"{name}_fills.parquet", index=False)
            out["equity"].to_parquet(HERE / f"{name}_equity.parquet", index=False)
            runs[name] = {
                framework: module.__version__,
                "pandas": pd.__version__,
                "numpy": np.__version__,
            }
            final = out["equity"]["equity"].iat[-1]
            print(f"{name}: {len(out['fills'])} fills, final equity {final:.6f}")
    versions["runs"] = dict(sorted(runs.items()))
    versions_path.write_text(json.dumps(versions, indent=2) + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
