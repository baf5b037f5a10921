"""The statistics of trying many, tested by simulation (the papers' worked numbers are in
``tests/test_stats.py``: the 2014 DSR example, and PSR/MinTRL/PBO by independent routes).

What ``test_stats.py`` already simulates on return matrices: the PSR's nominal rate with one
trial, the DSR "at most nominal" with 20, PBO = 0.5 on noise and about 0 with an edge, and
bootstrap coverage of the Sharpe ratio at 95 %. This file adds: the DSR's and the naive
PSR's rejection rates on noise against the rates their own theory predicts (the DSR's is far
below its nominal 5 %, and the test says by how much), the DSR's power on a planted edge, PBO
and DSR through the engine on sweeps of real backtests, and bootstrap coverage at 90 % and of
the CAGR.

Every simulation is seeded, so a pass is reproducible and cannot flake; each tolerance is
three binomial (or sample) standard errors unless its comment says otherwise. Sizes are kept
small for a 2-core machine (the file runs in about 15 s).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import PolarsDataFeed, TopKStrategy
from ml4t.backtest.stats import (
    confidence_intervals,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from ml4t.backtest.study import Sweep
from ml4t.backtest.synthetic import make_bars

NORMAL = NormalDist()


def three_se(p: float, trials: int) -> float:
    """Three binomial standard errors of a rate ``p`` estimated from ``trials`` draws."""
    return 3.0 * math.sqrt(p * (1.0 - p) / trials)


# ------------------------------------------------------------------------------ the DSR


def test_on_noise_the_dsr_and_the_naive_psr_reject_at_the_rates_their_theory_predicts() -> None:
    """N = 10 skill-less strategies of T = 120 normal returns, 6,000 seeded simulations, the
    winner tested at 95 %.

    The naive PSR of the winner rejects when the best of N standardised Sharpe ratios exceeds
    Φ⁻¹(0.95): with probability ``1 - 0.95^N`` = 40.1 %, eight times its nominal 5 %. The DSR
    (V the per-period variance of a Sharpe estimate under the null, 1/(T - 1)) rejects when it
    exceeds ``E + Φ⁻¹(0.95)``, E the expected-maximum approximation in standard units: with
    probability ``1 - Φ(E + 1.645)^N`` = 0.64 %. So the DSR does not reject at its nominal
    rate: it is conservative by design (SR₀ is the expected maximum, and the winner scatters
    around it less than one Sharpe ratio's standard error), and its false-positive rate is
    what this formula says. Both measured rates are within three binomial standard errors of
    the predicted ones (the normal approximation of the Sharpe estimate at T = 120 adds less
    than one standard error: measured 40.4 % and 0.58 %)."""
    rng = np.random.default_rng(314)
    n, t, sims = 10, 120, 6000
    variance = 1.0 / (t - 1)
    e_max = expected_max_sharpe(n, 1.0)
    predicted_dsr = 1.0 - NORMAL.cdf(e_max + NORMAL.inv_cdf(0.95)) ** n
    predicted_naive = 1.0 - 0.95**n
    dsr_rejections = naive_rejections = 0
    for _ in range(sims // 500):
        block = rng.normal(0.0, 0.01, (500, t, n))
        sharpes = block.mean(axis=1) / block.std(axis=1, ddof=1)
        best = sharpes.argmax(axis=1)
        for i in range(block.shape[0]):
            winner = block[i, :, best[i]]
            dsr_rejections += deflated_sharpe_ratio(winner, n, variance) > 0.95
            naive_rejections += probabilistic_sharpe_ratio(winner) > 0.95
    assert abs(naive_rejections / sims - predicted_naive) <= three_se(predicted_naive, sims)
    assert abs(dsr_rejections / sims - predicted_dsr) <= three_se(predicted_dsr, sims)
    assert predicted_dsr < 0.05 / 5  # far below nominal: the documented conservatism


def test_the_dsr_finds_a_planted_edge() -> None:
    """One strategy with a per-period Sharpe of 0.25 among 19 skill-less ones (T = 1,000): the
    DSR of the winner, with N and V estimated from the 20 trials (the edge inflates V, so SR₀
    is about 0.12), passes 95 % in at least 90 % of 400 seeded simulations (measured 100 %:
    the edge stands about four standard errors of a Sharpe estimate above SR₀), and the
    winner is the planted strategy in at least 95 % (measured 100 %)."""
    rng = np.random.default_rng(2718)
    passes = found = 0
    for _ in range(400):
        matrix = rng.normal(0.0, 0.01, (1000, 20))
        matrix[:, 7] += 0.0025
        sharpes = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
        found += int(np.argmax(sharpes)) == 7
        passes += deflated_sharpe_ratio(matrix) > 0.95
    assert passes / 400 >= 0.90
    assert found / 400 >= 0.95


# ------------------------------------------------------- PBO and DSR through the engine


def noise_feed(seed: int, skill: float = 0.0, n_noise: int = 7) -> PolarsDataFeed:
    """6 assets x 300 daily bars; ``score`` has the given skill, ``n0...`` are pure noise."""
    bars = make_bars(n_assets=6, n_bars=300, seed=seed, skill=skill)
    rng = np.random.default_rng(seed + 1000)
    noise = {f"n{i}": rng.normal(size=bars.height) for i in range(n_noise)}
    return PolarsDataFeed(bars.with_columns(**{k: pl.Series(v) for k, v in noise.items()}))


def test_sweeps_of_noise_strategies_have_pbo_near_one_half() -> None:
    """Ten seeded datasets; on each, a sweep of 8 strategies that trade the top 2 of 6 assets
    by a pure-noise score (the close price is one: it knows nothing of the next return). The
    mean PBO (8 blocks, 70 combinations) is 0.5 within three standard errors of the mean, from
    the sample standard deviation of the ten PBOs (measured: mean 0.55, standard deviation
    0.34; one sweep's PBO scatters widely, so this is the engine-level check, and
    ``test_stats.py`` pins 0.5 to ±0.075 over 400 matrices). No winner's DSR passes 95 %."""
    pbos, dsrs = [], []
    for seed in range(10):
        feed = noise_feed(seed)
        sweep = Sweep(
            feed, TopKStrategy, {"score": [f"n{i}" for i in range(7)] + ["close"], "k": [2]}
        )
        result = sweep.run(
            executor="threads", max_workers=2, progress=False, keep="equity", ledger=False
        )
        pbos.append(result.pbo(n_splits=8).pbo)
        dsrs.append(result.deflated_sharpe(source="sweep").dsr)
    spread = float(np.std(pbos, ddof=1))
    assert abs(float(np.mean(pbos)) - 0.5) <= 3.0 * spread / math.sqrt(len(pbos))
    assert max(dsrs) < 0.95


def test_a_sweep_with_a_planted_edge_has_pbo_near_zero_and_a_passing_dsr() -> None:
    """The same sweep where one score predicts the next bar's return (make_bars' skill 0.3):
    the in-sample best is that strategy in nearly every combination, so PBO ≤ 0.05, and its
    DSR passes 95 %."""
    feed = noise_feed(3, skill=0.3)
    sweep = Sweep(feed, TopKStrategy, {"score": ["score"] + [f"n{i}" for i in range(7)], "k": [2]})
    result = sweep.run(
        executor="threads", max_workers=2, progress=False, keep="equity", ledger=False
    )
    pbo = result.pbo(n_splits=8)
    assert pbo.pbo <= 0.05
    assert (np.asarray(pbo.trial_names)[pbo.selected] == "0").mean() >= 0.95
    dsr = result.deflated_sharpe(source="sweep")
    assert dsr.trial == 0 and dsr.passes()


# ---------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("level", [0.90])
def test_bootstrap_intervals_cover_the_true_sharpe_at_other_levels(level: float) -> None:
    """200 seeded series of 300 independent normal returns (true per-period Sharpe 0.05), 400
    resamples each: the interval covers the true Sharpe in ``level`` of them within three
    binomial standard errors (measured 89.5 %)."""
    rng = np.random.default_rng(77)
    series = rng.normal(0.05, 1.0, (200, 300))
    covered = 0
    for i, row in enumerate(series):
        interval = confidence_intervals(row, n=400, seed=i, level=level).sharpe
        covered += interval.lower <= 0.05 <= interval.upper
    assert abs(covered / 200 - level) <= three_se(level, 200)


def test_bootstrap_intervals_cover_the_true_cagr() -> None:
    """Log-normal returns, ``1 + r = exp(N(m, s²))``, have a known growth rate: the true
    per-period CAGR is ``exp(m) - 1`` (``years`` = T gives per-period growth). Over 200
    seeded series of 400 returns the 95 % interval covers it in 95 % of them, within three
    binomial standard errors (measured 95.0 %)."""
    rng = np.random.default_rng(5)
    m, s = 0.0004, 0.01
    true_cagr = math.exp(m) - 1.0
    covered = 0
    for i in range(200):
        r = np.expm1(rng.normal(m, s, 400))
        interval = confidence_intervals(r, n=400, seed=i).cagr
        covered += interval.lower <= true_cagr <= interval.upper
    assert abs(covered / 200 - 0.95) <= three_se(0.95, 200)
