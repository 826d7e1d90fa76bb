"""Random-effects pooling of per-dataset paired differences: one summary of "A - B" across datasets.

Each dataset gives a difference ``d_i`` (A - B on that dataset) with a standard error ``s_i``; the datasets are
taken to estimate different true differences ``theta_i ~ N(mu, tau^2)`` (a model can rival a specialist on one
modality and not on another), so the pooled ``mu`` is weighted by ``w_i = 1 / (s_i^2 + tau^2)``:

* ``mu = sum w_i d_i / sum w_i``, ``SE(mu) = 1 / sqrt(sum w_i)``, a Wald interval ``mu +- z SE`` and the two-sided
  z-test p-value ``2 Phi(-|mu| / SE)``.
* ``Q = sum v_i (d_i - mu_FE)^2`` with the fixed-effect weights ``v_i = 1 / s_i^2`` (Cochran's Q, k - 1 degrees of
  freedom); ``I^2 = max(0, (Q - (k - 1)) / Q)`` (Higgins & Thompson 2002, Stat Med 21:1539) -- a property of the
  data, the same for every tau^2 estimator (metafor prints a tau^2-based I^2 for REML, which differs slightly).
* ``tau^2`` by DerSimonian & Laird (1986, Control Clin Trials 7:177): ``max(0, (Q - (k - 1)) / (sum v - sum v^2 /
  sum v))``; or by restricted maximum likelihood (REML; Viechtbauer 2005, J Educ Behav Stat 30:261), the root of
  the REML score found by Fisher scoring from the DL value, as metafor's ``rma(method="REML")`` does, and
  truncated at 0.

One dataset (k = 1) has no between-dataset spread to estimate: the result is that dataset's difference with its
own Wald interval, ``tau2``/``i2`` NaN and ``q`` 0. The bootstrap CIs the research questions store are turned into
standard errors by :func:`standard_error_from_ci` (``(high - low) / (2 z)``, exact for a normal sampling
distribution, an approximation for a skewed bootstrap one). NumPy and ``scipy.special`` only (no scipy.stats).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.special import chdtrc, ndtr, ndtri  # chi-square survival and the normal CDF/quantile, without scipy.stats

from medrival.core.errors import ConfigError, DataError

__all__ = ["METHODS", "PooledEstimate", "pool_random_effects", "standard_error_from_ci"]

METHODS = ("dl", "reml")
_REML_TOLERANCE = 1e-12  # on the Fisher-scoring step, relative to max(1, tau^2): far below any printed digit
_REML_MAX_ITERATIONS = 500


@dataclass(frozen=True)
class PooledEstimate:
    """The random-effects pooled difference across ``k`` datasets, with its interval and heterogeneity."""

    estimate: float
    standard_error: float
    low: float
    high: float
    level: float
    z: float
    p_value: float
    tau2: float  # between-dataset variance of the true differences (NaN for k = 1)
    i2: float  # share of the spread of the differences that is not sampling error, in [0, 1] (NaN for k = 1)
    q: float  # Cochran's Q (k - 1 degrees of freedom)
    q_p_value: float  # chi-square test of homogeneity (NaN for k = 1)
    k: int
    method: str  # "dl" | "reml"

    def as_dict(self) -> dict:
        return asdict(self)


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise ConfigError(f"level must be a number strictly between 0 and 1 (0.95 for a 95 % interval), got "
                          f"{level!r}.")
    return float(level)


def _z(level: float) -> float:
    return float(ndtri(0.5 + level / 2))


def _check_inputs(differences, standard_errors) -> tuple[np.ndarray, np.ndarray]:
    """Finite 1-D differences and finite, strictly positive standard errors of the same length."""
    try:
        d = np.asarray(differences, dtype=np.float64)
        s = np.asarray(standard_errors, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("differences and standard_errors must be sequences of numbers (one per dataset).") from None
    if d.ndim != 1 or s.ndim != 1 or d.shape != s.shape or d.size == 0:
        raise DataError(f"differences and standard_errors must be 1-D with one entry per dataset and the same "
                        f"length (at least 1); got shapes {d.shape} and {s.shape}.")
    if not np.isfinite(d).all():
        bad = np.flatnonzero(~np.isfinite(d))
        raise DataError(f"differences has NaN/inf at position(s) {bad.tolist()}; expected a finite A - B per "
                        f"dataset. Leave out the datasets whose difference is undefined before pooling.")
    bad = np.flatnonzero(~(np.isfinite(s) & (s > 0)))
    if bad.size:
        raise DataError(f"standard_errors has {s[bad].tolist()} at position(s) {bad.tolist()}; expected finite "
                        f"standard errors > 0. A zero or NaN SE comes from a degenerate interval (e.g. a bootstrap "
                        f"with no resamples or identical arms): leave that dataset out, or recompute its interval.")
    return d, s


def _cochran_q(d: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """(Q, sum of fixed-effect weights, sum of their squares) for within-dataset variances ``v``."""
    w = 1.0 / v
    mean_fe = float(w @ d / w.sum())
    return float(w @ (d - mean_fe) ** 2), float(w.sum()), float(w @ w)


def _tau2_dl(q: float, k: int, w_sum: float, w2_sum: float) -> float:
    """DerSimonian-Laird moment estimate, truncated at 0 (a variance)."""
    return max(0.0, (q - (k - 1)) / (w_sum - w2_sum / w_sum))


def _tau2_reml(d: np.ndarray, v: np.ndarray, start: float) -> float:
    """REML tau^2 by Fisher scoring (metafor's algorithm): step = (score) / (information), where with
    ``w = 1 / (v + tau^2)`` and ``P = W - w w' / sum w``: score ~ ``d' P P d - tr P`` and information ~ ``tr(P P)``;
    a negative iterate is set to 0, where the likelihood is then maximised on the boundary."""
    tau2 = start
    for _ in range(_REML_MAX_ITERATIONS):
        w = 1.0 / (v + tau2)
        w_sum = w.sum()
        residual = d - (w @ d) / w_sum
        trace_p = w_sum - (w @ w) / w_sum
        trace_pp = (w @ w) - 2 * (w ** 3).sum() / w_sum + ((w @ w) / w_sum) ** 2
        step = ((w ** 2) @ residual ** 2 - trace_p) / trace_pp
        new = max(0.0, tau2 + step)
        if abs(new - tau2) <= _REML_TOLERANCE * max(1.0, tau2):
            return new
        tau2 = new
    raise DataError(f"the REML estimate of tau^2 did not converge in {_REML_MAX_ITERATIONS} Fisher-scoring steps "
                    f"(last value {tau2!r}); use method='dl', which has a closed form.")


def _single(d: float, s: float, level: float, method: str) -> PooledEstimate:
    """One dataset: its own difference and Wald interval; no heterogeneity can be estimated."""
    z = _z(level)
    stat = d / s
    return PooledEstimate(estimate=d, standard_error=s, low=d - z * s, high=d + z * s, level=level, z=stat,
                          p_value=float(2 * ndtr(-abs(stat))), tau2=math.nan, i2=math.nan, q=0.0,
                          q_p_value=math.nan, k=1, method=method)


def pool_random_effects(differences: Sequence[float], standard_errors: Sequence[float], *, level: float = 0.95,
                        method: str = "dl") -> PooledEstimate:
    """Random-effects pooled difference of per-dataset differences with their standard errors (module docstring).

    ``method``: "dl" (DerSimonian-Laird, closed form) or "reml" (restricted maximum likelihood). Raises
    ``DataError`` for non-finite differences or non-finite / non-positive standard errors."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)} (DerSimonian-Laird or REML), got {method!r}.")
    level = _check_level(level)
    d, s = _check_inputs(differences, standard_errors)
    if d.size == 1:
        return _single(float(d[0]), float(s[0]), level, method)
    v = s ** 2
    k = d.size
    q, w_sum, w2_sum = _cochran_q(d, v)
    tau2 = _tau2_dl(q, k, w_sum, w2_sum)
    if method == "reml":
        tau2 = _tau2_reml(d, v, tau2)
    w = 1.0 / (v + tau2)
    estimate = float(w @ d / w.sum())
    se = float(1.0 / math.sqrt(w.sum()))
    z = _z(level)
    stat = estimate / se
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0  # Q = 0: identical differences, nothing to explain
    return PooledEstimate(estimate=estimate, standard_error=se, low=estimate - z * se, high=estimate + z * se,
                          level=level, z=stat, p_value=float(2 * ndtr(-abs(stat))), tau2=float(tau2), i2=float(i2),
                          q=q, q_p_value=float(chdtrc(k - 1, q)), k=int(k), method=method)


def standard_error_from_ci(low: float, high: float, level: float = 0.95) -> float:
    """The standard error implied by a two-sided ``level`` interval [low, high]: ``(high - low) / (2 z)``, with
    ``z`` the normal quantile of ``0.5 + level / 2`` (exact for a Wald interval; for a bootstrap percentile
    interval, the SE of the normal distribution with the same width). Raises ``DataError`` for an interval that
    is not finite or has ``high <= low``."""
    level = _check_level(level)
    if not (math.isfinite(low) and math.isfinite(high)) or not high > low:
        raise DataError(f"the interval [{low!r}, {high!r}] gives no standard error; expected finite bounds with "
                        f"low < high. Leave out a dataset whose interval is missing or has zero width.")
    return (float(high) - float(low)) / (2 * _z(level))
