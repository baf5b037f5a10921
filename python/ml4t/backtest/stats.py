"""The statistics of trying many: is a Sharpe ratio real, and is a sweep's winner overfit?

Every function works on per-period simple returns and per-period Sharpe ratios internally:
``SR = mean(r) / std(r, ddof=1)``, skewness ``γ₃`` and kurtosis ``γ₄`` as population moments
(``γ₄`` is the non-excess kurtosis: 3 for a normal distribution). ``periods_per_year``, where a
function takes it, only annualises what it reports. Returns come as a 1-D numpy array (or
anything ``numpy.asarray`` reads), a Polars Series, or, where a function needs many trials, a
(T periods x N trials) matrix: a 2-D numpy array or a Polars DataFrame with one column per trial.

- :func:`probabilistic_sharpe_ratio` and :func:`min_track_record_length`: Bailey and López de
  Prado (2012), *The Sharpe Ratio Efficient Frontier*, Journal of Risk 15(2).
- :func:`expected_max_sharpe` and :func:`deflated_sharpe_ratio`: Bailey and López de Prado
  (2014), *The Deflated Sharpe Ratio*, Journal of Portfolio Management 40(5).
- :func:`probability_of_backtest_overfitting`: combinatorially symmetric cross-validation,
  Bailey, Borwein, López de Prado and Zhu (2015), *The Probability of Backtest Overfitting*,
  Journal of Computational Finance 20(4).
- :func:`stationary_bootstrap`, :func:`optimal_block_length` and :func:`confidence_intervals`:
  Politis and Romano (1994), *The Stationary Bootstrap*, JASA 89(428); the mean block length
  by Politis and White (2004), *Automatic Block-Length Selection for the Dependent Bootstrap*,
  Econometric Reviews 23(1), with the correction of Patton, Politis and White (2009).

Bad input raises :class:`~ml4t.backtest.errors.StatsError` (a ``ValueError``) shaped
``argument: rule: detail``. Results are deterministic: the bootstrap takes a ``seed``.
See ``docs/statistics.md`` for the formulas and worked examples.

Example:
    >>> import numpy as np
    >>> r = np.random.default_rng(1).normal(0.001, 0.01, 1000)
    >>> round(probabilistic_sharpe_ratio(r), 3)
    0.928
    >>> round(min_track_record_length(r), 1)
    1261.1
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from ml4t.backtest.errors import StatsError

__all__ = [
    "EULER_MASCHERONI",
    "BootstrapIntervals",
    "DeflatedSharpe",
    "Interval",
    "PBOResult",
    "ReturnMoments",
    "confidence_intervals",
    "deflated_sharpe",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "min_track_record_length",
    "optimal_block_length",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "return_moments",
    "sharpe_ratio",
    "stationary_bootstrap",
]

EULER_MASCHERONI: float = 0.5772156649015329
"""The Euler-Mascheroni constant γ of the expected maximum Sharpe ratio."""

Returns: TypeAlias = "npt.ArrayLike | pl.Series"
"""One return series: a 1-D array-like or a Polars Series."""

ReturnsMatrix: TypeAlias = "npt.ArrayLike | pl.DataFrame"
"""Many return series: a (T x N) array-like or a Polars DataFrame, one column per trial."""

Floats: TypeAlias = npt.NDArray[np.float64]

_NORMAL = NormalDist()

# A standard deviation at or below this (per-period returns) is rounding noise.
_ZERO_STD_TOL = 1e-12


# ------------------------------------------------------------------------------ input checks


def _finite(values: Floats, name: str) -> Floats:
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), values.shape)
        where = f"row {first[0]}" if values.ndim == 1 else f"row {first[0]}, column {first[1]}"
        raise StatsError(
            f"{name}: finite: {int(bad.sum())} value(s) are NaN, infinite or null "
            f"(first at {where}); drop or fill them first"
        )
    return values


def _float_array(returns: object, name: str) -> Floats:
    """``returns`` read as a float64 array (any array-like), or a ``numeric`` error."""
    try:
        return np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise StatsError(f"{name}: numeric: cannot read the returns as numbers ({err})") from err


def _as_series(returns: Returns, name: str = "returns") -> Floats:
    """A 1-D float64 array of finite returns."""
    if isinstance(returns, pl.DataFrame):
        raise StatsError(
            f"{name}: one_series: got a DataFrame with {returns.width} column(s); pass one "
            "column (frame['name']) or use a function that takes a matrix"
        )
    if isinstance(returns, pl.Series):
        if not returns.dtype.is_numeric():
            raise StatsError(f"{name}: numeric: the series has dtype {returns.dtype}")
        values = returns.cast(pl.Float64).fill_null(np.nan).to_numpy()
    else:
        values = _float_array(returns, name)
    if values.ndim != 1:
        raise StatsError(
            f"{name}: one_series: expected a 1-D series of returns, got shape {values.shape}"
        )
    return _finite(np.ascontiguousarray(values), name)


def _as_matrix(
    returns: ReturnsMatrix, name: str = "returns_matrix"
) -> tuple[Floats, tuple[str, ...] | None]:
    """A (T x N) float64 array of finite returns and the trials' names (DataFrame columns)."""
    names: tuple[str, ...] | None = None
    if isinstance(returns, pl.DataFrame):
        not_numeric = [c for c, t in returns.schema.items() if not t.is_numeric()]
        if not_numeric:
            raise StatsError(
                f"{name}: numeric: column(s) {not_numeric} are not numeric; every column is a "
                "trial's returns"
            )
        names = tuple(returns.columns)
        values = returns.cast(pl.Float64).fill_null(np.nan).to_numpy()
    else:
        values = _float_array(returns, name)
    if values.ndim != 2:
        raise StatsError(
            f"{name}: matrix: expected a (T periods x N trials) matrix, got shape {values.shape}"
        )
    return _finite(np.ascontiguousarray(values), name), names


def _positive_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StatsError(f"{name}: integer: expected an integer, got {value!r}")
    if value < minimum:
        raise StatsError(f"{name}: at_least_{minimum}: got {value}")
    return int(value)


def _probability(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
        raise StatsError(
            f"{name}: open_unit_interval: must be strictly between 0 and 1, got {value}"
        )
    return float(value)


def _positive_finite(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0):
        raise StatsError(f"{name}: positive: must be a positive finite number, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------- moments


@dataclass(frozen=True)
class ReturnMoments:
    """What the Sharpe-ratio tests need from a return series.

    Attributes:
        n: number of returns ``T``.
        sharpe: per-period Sharpe ratio ``mean / std(ddof=1)``.
        skewness: ``γ₃``, the population skewness.
        kurtosis: ``γ₄``, the population (non-excess) kurtosis: 3 for a normal distribution.

    Build it with :func:`return_moments` from returns, or directly from published figures
    (every function that takes returns also takes a ``ReturnMoments``).

    Example:
        >>> m = ReturnMoments(n=1250, sharpe=2.5 / 250**0.5, skewness=-3.0, kurtosis=10.0)
        >>> round(probabilistic_sharpe_ratio(m), 4)
        1.0
    """

    n: int
    sharpe: float
    skewness: float
    kurtosis: float

    def __post_init__(self) -> None:
        _positive_int(self.n, "n", 2)
        for field in ("sharpe", "skewness", "kurtosis"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise StatsError(f"{field}: finite: must be a finite number, got {value!r}")


def _moments_of(x: Floats, name: str) -> ReturnMoments:
    n = x.shape[0]
    if n < 2:
        raise StatsError(f"{name}: at_least_2: {n} return(s), at least 2 are needed")
    mean = float(x.mean())
    dev = x - mean
    std = float(np.std(x, ddof=1))
    if std <= _ZERO_STD_TOL:
        raise StatsError(
            f"{name}: nonzero_std: the returns have zero standard deviation; the Sharpe ratio "
            "is undefined"
        )
    m2 = float(np.mean(dev**2))
    skew = float(np.mean(dev**3)) / m2**1.5
    kurt = float(np.mean(dev**4)) / m2**2
    return ReturnMoments(n=n, sharpe=mean / std, skewness=skew, kurtosis=kurt)


def return_moments(returns: Returns) -> ReturnMoments:
    """Length, per-period Sharpe ratio, population skewness and (non-excess) kurtosis.

    Raises:
        StatsError: fewer than 2 returns, a NaN/inf/null, zero standard deviation.

    Example:
        >>> m = return_moments([0.01, -0.02, 0.03, 0.0])
        >>> m.n, round(m.sharpe, 4), round(m.skewness, 4), round(m.kurtosis, 4)
        (4, 0.2402, -0.0, 1.8521)
    """
    return _moments_of(_as_series(returns), "returns")


def _moments(returns: Returns | ReturnMoments) -> ReturnMoments:
    return returns if isinstance(returns, ReturnMoments) else return_moments(returns)


def sharpe_ratio(returns: Returns, periods_per_year: float | None = None) -> float:
    """``mean(r) / std(r, ddof=1)``, times ``sqrt(periods_per_year)`` when that is given.

    Example:
        >>> round(sharpe_ratio([0.01, 0.03, -0.01, 0.02], periods_per_year=4.0), 4)
        1.4639
    """
    ppy = _positive_finite(periods_per_year, "periods_per_year")
    sr = return_moments(returns).sharpe
    return sr * math.sqrt(ppy) if ppy is not None else sr


def _column_sharpes(matrix: Floats, name: str) -> Floats:
    if matrix.shape[0] < 2:
        raise StatsError(f"{name}: at_least_2: {matrix.shape[0]} row(s), at least 2 are needed")
    std = matrix.std(axis=0, ddof=1)
    flat = np.flatnonzero(std <= _ZERO_STD_TOL)
    if flat.size:
        raise StatsError(
            f"{name}: nonzero_std: trial(s) {flat[:5].tolist()} have zero standard deviation; "
            "their Sharpe ratio is undefined (drop them)"
        )
    out: Floats = matrix.mean(axis=0) / std
    return out


# ---------------------------------------------------------------------------- PSR and MinTRL


def _sharpe_variance_factor(m: ReturnMoments) -> float:
    """``1 - γ₃·SR + (γ₄ - 1)/4·SR²``: ``(T - 1)`` times the variance of the Sharpe estimate."""
    factor = 1.0 - m.skewness * m.sharpe + (m.kurtosis - 1.0) / 4.0 * m.sharpe**2
    if not factor > 0.0:
        raise StatsError(
            f"kurtosis: moments: 1 - γ₃·SR + (γ₄ - 1)/4·SR² = {factor:.6g} is not positive "
            f"(SR {m.sharpe:.6g}, γ₃ {m.skewness:.6g}, γ₄ {m.kurtosis:.6g}); γ₄ must be the "
            "non-excess kurtosis (3 for a normal distribution)"
        )
    return factor


def _psr(m: ReturnMoments, benchmark: float) -> float:
    z = (m.sharpe - benchmark) * math.sqrt(m.n - 1) / math.sqrt(_sharpe_variance_factor(m))
    return _NORMAL.cdf(z)


def _finite_number(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise StatsError(f"{name}: finite: must be a finite number, got {value!r}")
    return float(value)


def probabilistic_sharpe_ratio(returns: Returns | ReturnMoments, benchmark: float = 0.0) -> float:
    """The probability that the true Sharpe ratio exceeds ``benchmark`` (Bailey and López de
    Prado 2012):

    ``PSR = Φ((SR - SR*) · sqrt(T - 1) / sqrt(1 - γ₃·SR + (γ₄ - 1)/4 · SR²))``

    Args:
        returns: the returns (or their :class:`ReturnMoments`).
        benchmark: ``SR*``, a per-period Sharpe ratio (divide an annual one by
            ``sqrt(periods_per_year)``).

    Returns:
        A probability in [0, 1].

    Example:
        >>> m = ReturnMoments(n=24, sharpe=0.4, skewness=0.0, kurtosis=3.0)
        >>> round(probabilistic_sharpe_ratio(m), 4)
        0.9675
    """
    return _psr(_moments(returns), _finite_number(benchmark, "benchmark"))


def min_track_record_length(
    returns: Returns | ReturnMoments,
    benchmark: float = 0.0,
    confidence: float = 0.95,
    *,
    periods_per_year: float | None = None,
) -> float:
    """The track record needed to reject ``SR ≤ benchmark`` at ``confidence`` (Bailey and López
    de Prado 2012):

    ``MinTRL = 1 + (1 - γ₃·SR + (γ₄ - 1)/4 · SR²) · (Φ⁻¹(confidence) / (SR - SR*))²``

    Args:
        returns: the returns (or their :class:`ReturnMoments`); their length does not enter.
        benchmark: ``SR*``, per period.
        confidence: the one-sided confidence level.
        periods_per_year: when given, the length is reported in years instead of periods.

    Returns:
        Periods (or years); ``inf`` when ``SR ≤ SR*``: no track record is long enough.

    Example:
        >>> m = ReturnMoments(n=24, sharpe=0.4, skewness=0.0, kurtosis=3.0)
        >>> round(min_track_record_length(m), 2)
        19.26
    """
    m = _moments(returns)
    sr_star = _finite_number(benchmark, "benchmark")
    alpha = _probability(confidence, "confidence")
    ppy = _positive_finite(periods_per_year, "periods_per_year")
    factor = _sharpe_variance_factor(m)
    if m.sharpe <= sr_star:
        return math.inf
    periods = 1.0 + factor * (_NORMAL.inv_cdf(alpha) / (m.sharpe - sr_star)) ** 2
    return periods / ppy if ppy is not None else periods


# ----------------------------------------------------------------------------------- the DSR


def expected_max_sharpe(n_trials: float, sharpe_variance: float, mean: float = 0.0) -> float:
    """``SR₀``: the expected maximum of ``n_trials`` Sharpe ratios drawn independently from a
    normal distribution with ``mean`` and variance ``sharpe_variance`` (Bailey and López de
    Prado 2014):

    ``SR₀ = mean + sqrt(V) · ((1 - γ)·Φ⁻¹(1 - 1/N) + γ·Φ⁻¹(1 - 1/(N·e)))``

    ``γ`` the Euler-Mascheroni constant. ``n_trials`` may be fractional (an effective number of
    independent trials); with one trial the expected maximum is ``mean``.

    Example:
        >>> round(expected_max_sharpe(100, 0.5 / 250), 4)  # the 2014 paper's example, per day
        0.1132
    """
    n = _finite_number(n_trials, "n_trials")
    if n < 1.0:
        raise StatsError(f"n_trials: at_least_1: got {n_trials}")
    variance = _finite_number(sharpe_variance, "sharpe_variance")
    if variance < 0.0:
        raise StatsError(f"sharpe_variance: non_negative: got {sharpe_variance}")
    centre = _finite_number(mean, "mean")
    if n == 1.0:
        return centre
    g = EULER_MASCHERONI
    spread = (1.0 - g) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + g * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return centre + math.sqrt(variance) * spread


@dataclass(frozen=True)
class DeflatedSharpe:
    """A deflated Sharpe ratio and what went into it (see :func:`deflated_sharpe`).

    Attributes:
        dsr: the deflated Sharpe ratio, a probability in [0, 1].
        sharpe: the selected trial's per-period Sharpe ratio.
        expected_max_sharpe: ``SR₀``, the per-period benchmark it is tested against.
        n_trials: ``N``, the trials counted.
        sharpe_variance: ``V``, the per-period variance of their Sharpe ratios.
        moments: the selected trial's :class:`ReturnMoments`.
        trial: the selected trial (a matrix column, or a sweep's trial id), when known.
        source: where ``N`` and ``V`` came from: ``"given"``, ``"matrix"``, ``"ledger"``
            (every variant recorded on the data) or ``"sweep"`` (this sweep only).
    """

    dsr: float
    sharpe: float
    expected_max_sharpe: float
    n_trials: float
    sharpe_variance: float
    moments: ReturnMoments
    trial: int | None = None
    source: str = "given"

    def passes(self, confidence: float = 0.95) -> bool:
        """Whether the selection is significant at ``confidence`` (``dsr >= confidence``)."""
        return self.dsr >= _probability(confidence, "confidence")

    def __repr__(self) -> str:
        return (
            f"DeflatedSharpe(dsr={self.dsr:.4f}, sharpe={self.sharpe:.4g}, "
            f"expected_max_sharpe={self.expected_max_sharpe:.4g}, n_trials={self.n_trials:g}, "
            f"sharpe_variance={self.sharpe_variance:.4g}, trial={self.trial}, "
            f"source={self.source!r})"
        )


def deflated_sharpe(
    returns: Returns | ReturnsMatrix | ReturnMoments,
    n_trials: float | None = None,
    sharpe_variance: float | None = None,
) -> DeflatedSharpe:
    """:func:`deflated_sharpe_ratio` with what went into it: the selected trial's Sharpe ratio
    and moments, ``SR₀``, ``N`` and ``V`` (a :class:`DeflatedSharpe`).

    Example:
        >>> m = ReturnMoments(n=1250, sharpe=2.5 / 250**0.5, skewness=-3.0, kurtosis=10.0)
        >>> d = deflated_sharpe(m, n_trials=100, sharpe_variance=0.5 / 250)
        >>> round(d.dsr, 4), round(d.expected_max_sharpe, 4), d.passes()
        (0.9004, 0.1132, False)
    """
    moments: ReturnMoments
    trial: int | None = None
    source = "given"
    is_matrix = isinstance(returns, pl.DataFrame) or (
        not isinstance(returns, (ReturnMoments, pl.Series)) and np.ndim(returns) == 2
    )
    if is_matrix:
        matrix, _ = _as_matrix(returns, "returns")  # type: ignore[arg-type]
        if matrix.shape[1] < 2 and (n_trials is None or sharpe_variance is None):
            raise StatsError(
                "returns: at_least_2_trials: a matrix with one trial says nothing about the "
                "variance across trials; pass n_trials and sharpe_variance"
            )
        sharpes = _column_sharpes(matrix, "returns")
        trial = int(np.argmax(sharpes))
        moments = _moments_of(matrix[:, trial], f"returns[:, {trial}]")
        if n_trials is None or sharpe_variance is None:
            source = "matrix"
        if n_trials is None:
            n_trials = float(matrix.shape[1])
        if sharpe_variance is None:
            sharpe_variance = float(np.var(sharpes, ddof=1))
    else:
        moments = _moments(returns)
        missing = [
            name
            for name, value in (("n_trials", n_trials), ("sharpe_variance", sharpe_variance))
            if value is None
        ]
        if missing:
            raise StatsError(
                f"{missing[0]}: required: one return series needs n_trials and "
                "sharpe_variance (or pass the matrix of every trial's returns)"
            )
    assert n_trials is not None and sharpe_variance is not None
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return DeflatedSharpe(
        dsr=_psr(moments, sr0),
        sharpe=moments.sharpe,
        expected_max_sharpe=sr0,
        n_trials=float(n_trials),
        sharpe_variance=float(sharpe_variance),
        moments=moments,
        trial=trial,
        source=source,
    )


def deflated_sharpe_ratio(
    returns: Returns | ReturnsMatrix | ReturnMoments,
    n_trials: float | None = None,
    sharpe_variance: float | None = None,
) -> float:
    """The probability that the selected strategy's true Sharpe ratio beats the best of
    ``n_trials`` skill-less ones: the PSR against ``SR₀ = expected_max_sharpe(n_trials,
    sharpe_variance)`` (Bailey and López de Prado 2014).

    Args:
        returns: the selected trial's returns (or their :class:`ReturnMoments`), or the
            (T x N) matrix of every trial's returns. From a matrix the selected trial is the
            one with the highest Sharpe ratio (the first of equals), ``n_trials`` defaults to
            ``N`` and ``sharpe_variance`` to the sample variance (``ddof=1``) of the N trials'
            per-period Sharpe ratios.
        n_trials: ``N``, the number of trials tried (every variant ever tried on the data, not
            only the last sweep's); required with one series.
        sharpe_variance: ``V``, the variance across the trials of their per-period Sharpe
            ratios; required with one series.

    Returns:
        A probability in [0, 1]; the selection passes at 95 % when it is at least 0.95.
        :func:`deflated_sharpe` returns it with what went into it.

    Example:
        >>> m = ReturnMoments(n=1250, sharpe=2.5 / 250**0.5, skewness=-3.0, kurtosis=10.0)
        >>> round(deflated_sharpe_ratio(m, n_trials=100, sharpe_variance=0.5 / 250), 4)
        0.9004
    """
    return deflated_sharpe(returns, n_trials, sharpe_variance).dsr


# ----------------------------------------------------------------------------------- the PBO


@dataclass(frozen=True)
class PBOResult:
    """The outcome of :func:`probability_of_backtest_overfitting`, one entry per combination of
    the CSCV (in :func:`itertools.combinations` order of the blocks taken in sample).

    Attributes:
        pbo: the share of combinations whose logit is ≤ 0: the in-sample best ranked in the
            lower half out of sample.
        logits: ``λ = log(ω / (1 - ω))``, ``ω = rank / (N + 1)`` the out-of-sample relative
            rank of the in-sample best.
        selected: the in-sample best trial of each combination (column index).
        is_sharpe: its per-period in-sample Sharpe ratio.
        oos_sharpe: its per-period out-of-sample Sharpe ratio.
        oos_rank: its out-of-sample rank, 1 (worst) to N (best).
        n_trials: ``N``.
        n_splits: ``S``, the number of blocks.
        rows_used: the rows used (a multiple of ``S``).
        rows_dropped: the rows dropped from the start to make it one.
        trial_names: the DataFrame's column names, when the matrix was one.
    """

    pbo: float
    logits: Floats
    selected: npt.NDArray[np.int64]
    is_sharpe: Floats
    oos_sharpe: Floats
    oos_rank: npt.NDArray[np.int64]
    n_trials: int
    n_splits: int
    rows_used: int
    rows_dropped: int
    trial_names: tuple[str, ...] | None = None

    @property
    def n_combinations(self) -> int:
        """``C(S, S/2)``."""
        return int(self.logits.shape[0])

    @property
    def probability_of_loss(self) -> float:
        """The share of combinations whose selected trial lost out of sample (OOS Sharpe < 0)."""
        return float(np.mean(self.oos_sharpe < 0.0))

    def __repr__(self) -> str:
        return (
            f"PBOResult(pbo={self.pbo:.4f}, n_trials={self.n_trials}, n_splits={self.n_splits}, "
            f"combinations={self.n_combinations}, rows_used={self.rows_used})"
        )


def _subset_sharpe(raw_sum: Floats, dev_sum: Floats, dev_sq: Floats, count: int) -> Floats:
    """Sharpe ratios of row subsets from block sums: mean from the raw sums, variance from sums
    of deviations from each column's overall mean (no cancellation). A subset with zero
    variance has Sharpe ``+inf``, ``-inf`` or 0 by the sign of its mean."""
    mean = raw_sum / count
    ss = dev_sq - dev_sum**2 / count
    flat = ss <= 1e-10 * dev_sq
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / np.sqrt(np.where(flat, 1.0, ss) / (count - 1))
    signed = np.where(mean > 0.0, np.inf, np.where(mean < 0.0, -np.inf, 0.0))
    out: Floats = np.where(flat, signed, sr)
    return out


def _combination_masks(n_splits: int, batch: int) -> Iterator[Floats]:
    combos = itertools.combinations(range(n_splits), n_splits // 2)
    while True:
        chunk = list(itertools.islice(combos, batch))
        if not chunk:
            return
        mask = np.zeros((len(chunk), n_splits))
        rows = np.repeat(np.arange(len(chunk)), n_splits // 2)
        mask[rows, np.asarray(chunk).ravel()] = 1.0
        yield mask


def probability_of_backtest_overfitting(
    returns_matrix: ReturnsMatrix, n_splits: int = 16
) -> PBOResult:
    """The probability that the in-sample best of N trials is overfit, by combinatorially
    symmetric cross-validation (Bailey, Borwein, López de Prado and Zhu 2015).

    The rows beyond a multiple of ``n_splits`` are dropped from the start; the rest is cut into
    ``S = n_splits`` equal blocks of consecutive rows. For each of the ``C(S, S/2)`` ways to
    take half the blocks in sample (the other half out of sample), the trial with the highest
    in-sample Sharpe ratio is selected (the first of equals), its out-of-sample rank among the N
    trials is found (1 the worst; equal Sharpe ratios ranked by trial order, the earlier one
    lower), ``ω = rank / (N + 1)`` and ``λ = log(ω / (1 - ω))``. ``PBO`` is the share of
    ``λ ≤ 0``. A subset on which a trial's returns do not vary has Sharpe ``±inf`` (by the sign
    of its mean) or 0.

    Args:
        returns_matrix: (T x N) per-period returns, one column per trial (N ≥ 2).
        n_splits: ``S``, even, at least 2; each block needs at least 2 rows.

    Returns:
        A :class:`PBOResult` with ``.pbo`` and the ``.logits``.

    Example:
        >>> import numpy as np
        >>> noise = np.random.default_rng(0).normal(0.0, 0.01, (480, 8))
        >>> result = probability_of_backtest_overfitting(noise, n_splits=8)
        >>> result.n_combinations, 0.0 <= result.pbo <= 1.0
        (70, True)
    """
    matrix, names = _as_matrix(returns_matrix)
    s = _positive_int(n_splits, "n_splits", 2)
    if s % 2:
        raise StatsError(f"n_splits: even: the blocks are split in halves, got {s}")
    total, n = matrix.shape
    if n < 2:
        raise StatsError(f"returns_matrix: at_least_2_trials: got {n} column(s)")
    block = total // s
    if block < 2:
        raise StatsError(
            f"returns_matrix: too_short: {total} rows make blocks of {block} row(s) with "
            f"n_splits={s}; each block needs at least 2 (at least {2 * s} rows)"
        )
    dropped = total - block * s
    used = matrix[dropped:]
    centred = used - used.mean(axis=0)
    shape = (s, block, n)
    raw = used.reshape(shape).sum(axis=1)
    dev = centred.reshape(shape).sum(axis=1)
    sq = (centred**2).reshape(shape).sum(axis=1)
    half = block * (s // 2)
    raw_all, dev_all, sq_all = raw.sum(axis=0), dev.sum(axis=0), sq.sum(axis=0)

    logits, selected, is_best, oos_best, ranks = [], [], [], [], []
    batch = max(1, 2_000_000 // (n * 4))
    for mask in _combination_masks(s, batch):
        is_raw, is_dev, is_sq = mask @ raw, mask @ dev, mask @ sq
        is_sr = _subset_sharpe(is_raw, is_dev, is_sq, half)
        oos_sr = _subset_sharpe(raw_all - is_raw, dev_all - is_dev, sq_all - is_sq, half)
        rows = np.arange(mask.shape[0])
        star = np.argmax(is_sr, axis=1)
        star_oos = oos_sr[rows, star]
        below = (oos_sr < star_oos[:, None]).sum(axis=1)
        tied_before = ((oos_sr == star_oos[:, None]) & (np.arange(n) < star[:, None])).sum(axis=1)
        rank = 1 + below + tied_before
        omega = rank / (n + 1.0)
        logits.append(np.log(omega / (1.0 - omega)))
        selected.append(star)
        is_best.append(is_sr[rows, star])
        oos_best.append(star_oos)
        ranks.append(rank)
    lam = np.concatenate(logits)
    return PBOResult(
        pbo=float(np.mean(lam <= 0.0)),
        logits=lam,
        selected=np.concatenate(selected).astype(np.int64),
        is_sharpe=np.concatenate(is_best),
        oos_sharpe=np.concatenate(oos_best),
        oos_rank=np.concatenate(ranks).astype(np.int64),
        n_trials=n,
        n_splits=s,
        rows_used=block * s,
        rows_dropped=dropped,
        trial_names=names,
    )


# ----------------------------------------------------------------------------- the bootstrap


def _flat_top(t: Floats) -> Floats:
    """The flat-top lag window of Politis and White: 1 to |t| = 1/2, then linear to 0 at 1."""
    a = np.abs(t)
    out: Floats = np.where(a <= 0.5, 1.0, np.where(a <= 1.0, 2.0 * (1.0 - a), 0.0))
    return out


def optimal_block_length(returns: Returns) -> float:
    """The mean block length of the stationary bootstrap by Politis and White's (2004) rule,
    with the correction of Patton, Politis and White (2009).

    With ``n`` returns: autocorrelations up to ``m_max = ceil(sqrt(n)) + K``, ``K = max(5,
    ceil(sqrt(log10 n)))``; ``m̂`` the first lag after which ``K`` autocorrelations in a row are
    below ``2·sqrt(log10(n)/n)`` in absolute value (``m_max`` when none is); ``M = min(2·m̂,
    m_max)``; with the flat-top window ``λ`` and autocovariances ``R(k)``,
    ``G = Σ_{|k|≤M} λ(k/M)·|k|·R(k)``, ``g = Σ_{|k|≤M} λ(k/M)·R(k)``, ``D = 2·g²`` and
    ``b = (2·G² / D)^(1/3) · n^(1/3)``, capped at ``ceil(min(3·sqrt(n), n/3))`` and at least 1.

    Example:
        >>> import numpy as np
        >>> optimal_block_length(np.random.default_rng(0).normal(size=500))  # no dependence
        1.0
    """
    x = _as_series(returns)
    n = x.shape[0]
    if n < 9:
        raise StatsError(f"returns: at_least_9: {n} return(s); the block length rule needs 9")
    x = x - x.mean()
    k_n = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = min(math.ceil(math.sqrt(n)) + k_n, n - 1)
    b_max = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    acov = np.array([np.dot(x[: n - k], x[k:]) / n for k in range(m_max + 1)])
    if acov[0] <= 0.0:
        raise StatsError("returns: nonzero_std: the returns do not vary")
    rho = acov[1:] / acov[0]
    threshold = 2.0 * math.sqrt(math.log10(n) / n)
    small = np.abs(rho) < threshold
    m_hat = m_max
    for m in range(0, m_max - k_n + 1):
        if small[m : m + k_n].all():
            m_hat = m
            break
    big_m = min(2 * m_hat, m_max)
    if big_m == 0:
        return 1.0
    lags = np.arange(1, big_m + 1)
    weights = _flat_top(lags / big_m)
    g_big = 2.0 * float(np.sum(weights * lags * acov[1 : big_m + 1]))
    g_small = acov[0] + 2.0 * float(np.sum(weights * acov[1 : big_m + 1]))
    if g_small <= 0.0:
        return float(b_max)
    b = (g_big**2 / g_small**2) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(min(max(b, 1.0), b_max))


def _resample_indices(
    n: int, count: int, block_length: float, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``count`` rows of ``n`` indices of the stationary bootstrap: a block starts at a uniform
    random index, and each next position starts a new block with probability ``1/b`` (else it
    follows the previous one, wrapping around)."""
    new = rng.random(count * n) < 1.0 / block_length
    new[::n] = True  # every resample starts a block
    first = np.flatnonzero(new)  # where each block starts in the flat stream
    starts = rng.integers(0, n, size=first.shape[0])
    block = np.cumsum(new) - 1
    offset = np.arange(count * n) - first[block]
    out: npt.NDArray[np.int64] = ((starts[block] + offset) % n).reshape(count, n)
    return out


def stationary_bootstrap(
    returns: Returns,
    statistic: Callable[[Floats], npt.ArrayLike],
    *,
    n: int = 2000,
    block_length: float | None = None,
    seed: int = 0,
) -> Floats:
    """The statistic on ``n`` stationary-bootstrap resamples of the returns (Politis and Romano
    1994).

    Args:
        returns: the returns.
        statistic: maps a (resamples x T) matrix, one resample a row, to one value per row
            (vectorised: it is called on batches of rows).
        n: the number of resamples.
        block_length: the mean block length ``b`` (blocks are geometric with mean ``b``);
            ``None`` chooses it with :func:`optimal_block_length`.
        seed: the seed of numpy's default generator; the same inputs and seed give the same
            values.

    Returns:
        ``n`` values, in resample order.

    Example:
        >>> import numpy as np
        >>> r = np.random.default_rng(3).normal(0.001, 0.01, 250)
        >>> means = stationary_bootstrap(r, lambda m: m.mean(axis=1), n=100, seed=1)
        >>> means.shape
        (100,)
    """
    x = _as_series(returns)
    count = _positive_int(n, "n", 1)
    if block_length is None:
        b = optimal_block_length(x)
    else:
        b = _finite_number(block_length, "block_length")
        if b < 1.0:
            raise StatsError(f"block_length: at_least_1: got {block_length}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise StatsError(f"seed: integer: expected an integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    t = x.shape[0]
    batch = max(1, min(count, 1_000_000 // t))
    out = np.empty(count)
    done = 0
    while done < count:
        size = min(batch, count - done)
        values = np.asarray(statistic(x[_resample_indices(t, size, b, rng)]), dtype=np.float64)
        if values.shape != (size,):
            raise StatsError(
                f"statistic: one_per_row: returned shape {values.shape} for {size} resamples"
            )
        out[done : done + size] = values
        done += size
    return out


@dataclass(frozen=True)
class Interval:
    """A statistic of the sample and its bootstrap percentile interval."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals of Sharpe ratio, CAGR and maximum drawdown from one set of
    stationary-bootstrap resamples (see :func:`confidence_intervals`)."""

    sharpe: Interval
    cagr: Interval
    max_drawdown: Interval
    level: float
    n: int
    seed: int
    block_length: float

    def to_frame(self) -> pl.DataFrame:
        """One row per statistic: ``statistic, estimate, lower, upper``."""
        rows = {"sharpe": self.sharpe, "cagr": self.cagr, "max_drawdown": self.max_drawdown}
        return pl.DataFrame(
            {
                "statistic": list(rows),
                "estimate": [i.estimate for i in rows.values()],
                "lower": [i.lower for i in rows.values()],
                "upper": [i.upper for i in rows.values()],
            }
        )


def _path_statistics(paths: Floats, sqrt_ppy: float, years: float) -> Floats:
    """(rows x 3): Sharpe, CAGR and max drawdown of each row of returns."""
    std = paths.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > _ZERO_STD_TOL, paths.mean(axis=1) / std * sqrt_ppy, np.nan)
    wealth = np.cumprod(1.0 + paths, axis=1)
    final = wealth[:, -1]
    with np.errstate(invalid="ignore", over="ignore"):
        cagr = np.where(final >= 0.0, np.power(np.maximum(final, 0.0), 1.0 / years) - 1.0, np.nan)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=1), 1.0)
    drawdown = (wealth / peak - 1.0).min(axis=1)  # <= 0, empyrical's sign
    return np.column_stack((sharpe, cagr, drawdown))


def confidence_intervals(
    returns: Returns,
    *,
    level: float = 0.95,
    n: int = 2000,
    seed: int = 0,
    block_length: float | None = None,
    periods_per_year: float | None = None,
    years: float | None = None,
) -> BootstrapIntervals:
    """Stationary-bootstrap percentile intervals for Sharpe ratio, CAGR and maximum drawdown.

    The same ``n`` resamples (mean block length by :func:`optimal_block_length` unless given)
    give all three; each interval is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of
    its statistic over the resamples (resamples where it is undefined left out).

    - Sharpe: ``mean / std(ddof=1)``, times ``sqrt(periods_per_year)`` when given.
    - CAGR: ``prod(1 + r) ** (1 / years) - 1``; ``years`` defaults to ``T / periods_per_year``
      (to ``T``, i.e. growth per period, without ``periods_per_year``).
    - Max drawdown: the largest fall of the compounded curve from its running peak, the peak
      starting at 1 (the starting capital), as a negative fraction (empyrical's sign, as
      ``result.metrics["max_drawdown"]``).

    Example:
        >>> import numpy as np
        >>> r = np.random.default_rng(5).normal(0.0005, 0.01, 756)
        >>> ci = confidence_intervals(r, n=500, periods_per_year=252)
        >>> ci.sharpe.lower < ci.sharpe.estimate < ci.sharpe.upper
        True
    """
    x = _as_series(returns)
    alpha = _probability(level, "level")
    ppy = _positive_finite(periods_per_year, "periods_per_year")
    span = _positive_finite(years, "years")
    t = x.shape[0]
    if t < 9:
        raise StatsError(f"returns: at_least_9: {t} return(s) are too few to resample")
    if span is None:
        span = t / ppy if ppy is not None else float(t)
    sqrt_ppy = math.sqrt(ppy) if ppy is not None else 1.0
    b = optimal_block_length(x) if block_length is None else block_length
    count = _positive_int(n, "n", 1)
    columns: list[Floats] = []

    def collect(paths: Floats) -> Floats:
        stats = _path_statistics(paths, sqrt_ppy, span)
        columns.append(stats)
        return stats[:, 0]

    stationary_bootstrap(x, collect, n=count, block_length=b, seed=seed)
    resampled = np.concatenate(columns)
    point = _path_statistics(x[None, :], sqrt_ppy, span)[0]
    quantiles = [(1.0 - alpha) / 2.0, (1.0 + alpha) / 2.0]
    intervals = []
    for j in range(3):
        column = resampled[:, j]
        column = column[np.isfinite(column)]
        lo, hi = np.quantile(column, quantiles) if column.size else (math.nan, math.nan)
        intervals.append(Interval(float(point[j]), float(lo), float(hi)))
    return BootstrapIntervals(
        sharpe=intervals[0],
        cagr=intervals[1],
        max_drawdown=intervals[2],
        level=alpha,
        n=count,
        seed=int(seed),
        block_length=float(b),
    )
