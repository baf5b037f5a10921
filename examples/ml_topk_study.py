"""The integrated example as an honest study: refit the model walk-forward, then count what a
small parameter search costs in evidence.

1. The data and the strategy of ``ml_topk_backtest.py``: 100 assets x 4 years of daily bars,
   three features (one informative), the ``TopPredictions`` strategy holding the k highest
   predictions.
2. Walk-forward: the linear model is refit every month on the previous two years, purged by
   the label horizon (a label at t needs the opens of t+1 and t+2, so the last 2 training bars
   are left out). ``fit`` gets only the rows before each fold's cut-off; its predictions for
   the month are joined to the bars as signals, and one account trades all the months.
3. A small sweep over k and the stop distance on those out-of-sample predictions (the built-in
   ``TopKStrategy``, identical to ``TopPredictions`` by design), then the deflated Sharpe ratio
   of the winner and the probability of backtest overfitting of the search.
4. Writes ``walkforward.html`` (the equity curve with the fold boundaries), the sweep's
   ``sweep.html``, ``folds.parquet`` and ``study.txt``.

Run: ``./scripts/run_example.sh`` (or ``.venv/bin/python examples/ml_topk_study.py``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl
from ml_topk_backtest import FEATURES, TOP_K, TopPredictions, make_dataset

from ml4t.backtest import BacktestConfig, PolarsDataFeed, TopKStrategy
from ml4t.backtest.risk import StopLoss
from ml4t.backtest.study import Fold, Sweep, WalkForward

LABEL_HORIZON = 2
"""Bars a label looks ahead: the return from the next open to the open after it."""

CONFIG = BacktestConfig(
    initial_cash=1_000_000.0,
    commission={"model": "percent", "rate": 0.0005},
    slippage={"model": "percent", "rate": 0.0002},
)


def fit(train: pl.DataFrame, fold: Fold) -> pl.DataFrame:
    """Least squares of the label on the features, on the training rows only; predictions for
    the fold's test month. ``train`` ends before the cut-off: the labels of its last rows
    would need opens it does not have, so they are null and dropped."""
    labelled = train.with_columns(
        (pl.col("open").shift(-2) / pl.col("open").shift(-1) - 1).over("asset").alias("label")
    ).drop_nulls("label")
    x = np.column_stack([labelled[f].to_numpy() for f in FEATURES] + [np.ones(labelled.height)])
    coef, *_ = np.linalg.lstsq(x, labelled["label"].to_numpy(), rcond=None)
    prediction = sum(coef[i] * pl.col(f) for i, f in enumerate(FEATURES)) + coef[-1]
    assert fold.test_data is not None
    return fold.test_data.select("timestamp", "asset", prediction.alias("prediction"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output/study", help="results directory")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    out = Path(args.output)
    started = time.perf_counter()

    # The bars and features only: the label column is the future, and stays out of the feed.
    feed = PolarsDataFeed(make_dataset(args.seed).drop("label"))
    study = WalkForward(
        feed,
        fit,
        TopPredictions(TOP_K),
        train=504,
        test="1mo",
        purge=LABEL_HORIZON,
        config=CONFIG,
    )
    wf = study.run()
    assert wf.result is not None
    print(f"{wf!r}: {len(study.folds)} monthly refits, {wf.result!r}")
    print(wf.folds.select("fold", "train_start", "cutoff", "test_start", "test_end", "sharpe"))
    m = wf.metrics
    print(
        f"out of sample: Sharpe {m['sharpe']:.2f}, CAGR {m['cagr']:.2%}, max drawdown "
        f"{m['max_drawdown']:.2%}, {int(m['num_trades'])} trades"
    )

    # The search: k and the stop distance, on the out-of-sample predictions.
    assert wf.predictions is not None
    oos = PolarsDataFeed(
        feed.frame.select(
            feed.universe.timestamps(pl.col("ts")).alias("timestamp"),
            pl.lit(pl.Series(feed.assets, dtype=feed.universe.asset_dtype))
            .gather(pl.col("asset_id"))
            .alias("asset"),
            "open",
            "high",
            "low",
            "close",
            "volume",
        ),
        signals=wf.predictions,
        start=study.folds[0].test_start,
    )
    sweep = Sweep(
        oos,
        lambda k: TopKStrategy("prediction", k=k),
        {"k": [5, 10, 20], "stop": [0.03, 0.06, 0.12]},
        risk=lambda stop: [StopLoss(pct=stop)],
        config=CONFIG,
    )
    searched = sweep.run(executor="threads", keep="equity", progress=False)
    table = searched.table.sort("sharpe", descending=True)
    print(table.select("trial", "k", "stop", "sharpe", "total_return", "max_drawdown"))

    best = searched.best("sharpe")
    # N and V from the trial ledger: every variant ever tried on these out-of-sample rows.
    deflated = searched.deflated_sharpe("sharpe")
    dsr = deflated.dsr
    pbo = searched.pbo(n_splits=16)
    print(
        f"winner k={best['k']} stop={best['stop']}: Sharpe {best['sharpe']:.2f}; deflated "
        f"Sharpe ratio over {deflated.n_trials:.0f} trials {dsr:.3f}; PBO {pbo.pbo:.3f} "
        f"({len(pbo.logits)} combinations)"
    )

    out.mkdir(parents=True, exist_ok=True)
    wf.report(out / "walkforward.html")
    searched.report(out / "sweep.html", "sharpe")
    wf.folds.write_parquet(out / "folds.parquet")
    (out / "study.txt").write_text(
        f"{wf!r}\n{wf.result.summary()}\n\nsweep (best first):\n{table}\n\n"
        f"deflated Sharpe ratio of the winner: {dsr:.4f}\nPBO: {pbo.pbo:.4f}\n"
    )
    print(f"study written to {out}/ in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
