"""Bootstrap CIs and paired comparisons of a *mean of per-item scores* (the VQA metrics ``closed_accuracy``,
``open_token_f1``, ``open_exact_match``, ... over the questions each applies to), with the same resampling as
``medrival.stats.bootstrap``.

A VQA metric is the mean over questions of a score each question already carries, so nothing has to be re-scored
per resample: with ``S[u]`` the sum of the scores of cluster u (an image: several questions share one) and
``n[u]`` its number of items, a chunk of resamples described by its multinomial counts [b, C] has the means
``(counts @ S) / (counts @ n)``, one matrix product per chunk, no per-resample Python loop. This is the item mean
of the explicitly rebuilt resample (exactly so for 0/1 scores, whose sums are integers; to rounding otherwise).

Everything else is ``medrival.stats.bootstrap``'s own machinery, imported rather than copied, so both kinds of
metric share one definition of a resample: the cluster design (clusters numbered by first appearance), the
seeded chunk streams (identical run to run and across thread counts), the hierarchical draw picks over seeds /
few-shot draws, the percentile interval and the paired p-value rule: the empirical
``min(1, 2 min((#{d <= 0} + 1)/(B + 1), (#{d >= 0} + 1)/(B + 1)))`` where at least one resample falls on the far
side of 0, else the normal tail ``min(2/(B + 1), 2 Phi(-|d_hat| / se_boot))``, so a VQA comparison is resolved
below the Monte Carlo floor 2/(B + 1) like any other and a grid-size Holm family can pass (``p_floor`` 0.0; see
``medrival.stats.bootstrap``). A resample always holds at least one item, so no resample is undefined. An empty
score vector gives a NaN estimate and interval.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from medrival.core.errors import DataError
from medrival.stats.bootstrap import (
    _chunk_hierarchical,
    _chunk_values,
    _check_draws,
    _check_options,
    _Design,
    _design,
    _nan_interval,
    _paired_result,
    _percentile,
    _run_chunks,
)
from medrival.stats.types import Interval, PairedComparison

__all__ = ["mean_ci", "hierarchical_mean_ci", "paired_mean_bootstrap", "paired_hierarchical_mean_bootstrap"]

# Per-chunk cache keys: every evaluator of a chunk sees the same counts, so their float copy and the resampled
# item totals are computed once per chunk, not once per side and draw.
_WEIGHTS_KEY, _SIZES_KEY = "item_means/weights", "item_means/sizes"


def _scores(values, name: str, n_items: int | None = None) -> np.ndarray:
    """A finite 1-D float array (one score per item); the callers drop unscored items before, on purpose."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must hold one numeric score per item, got {type(values).__name__}.") from None
    if array.ndim != 1:
        raise DataError(f"{name} must be 1-D (one score per item), got shape {array.shape}.")
    if n_items is not None and array.shape[0] != n_items:
        raise DataError(f"{name} has {array.shape[0]} items but the first score array has {n_items}; every array "
                        f"must score the same items in the same order.")
    if not np.isfinite(array).all():
        raise DataError(f"{name} holds NaN or infinite scores; leave unscored items (e.g. open questions for "
                        f"closed_accuracy) out before bootstrapping.")
    return array


class _ItemMean:
    """The mean of one score array on weighted resamples, in the evaluator interface of ``bootstrap``'s chunks."""

    threadsafe = True  # read-only arrays; NumPy's matmul releases the GIL

    def __init__(self, values: np.ndarray, design: _Design):
        self.sums = np.bincount(design.units, weights=values, minlength=design.n_units)
        self.sizes = np.bincount(design.units, minlength=design.n_units).astype(np.float64)
        self.value = float(values.mean()) if values.size else float("nan")

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        if _WEIGHTS_KEY not in cache:
            cache[_WEIGHTS_KEY] = counts.astype(np.float64)
            cache[_SIZES_KEY] = cache[_WEIGHTS_KEY] @ self.sizes
        weights = cache[_WEIGHTS_KEY]
        return (weights @ self.sums) / cache[_SIZES_KEY]

    def estimate(self) -> float:
        return self.value


def _evaluators(draws: list, design: _Design, name: str) -> list[_ItemMean]:
    return [_ItemMean(_scores(v, f"{name}[{i}]", design.n_items), design) for i, v in enumerate(draws)]


def _interval(values: np.ndarray, estimate: float, level: float, method: str, design: _Design) -> Interval:
    low, high = _percentile(values, level)
    return Interval(float(estimate), low, high, float(level), method, int(values.size), design.n_units)


def mean_ci(values, clusters=None, *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile (cluster) bootstrap CI of the mean of ``values`` (one finite score per item)."""
    _check_options(n_resamples, level, seed)
    values = _scores(values, "values")
    design = _design(clusters, values)
    evaluator = _ItemMean(values, design)
    if design.n_units == 0:
        return _nan_interval(evaluator.value, level, "percentile", design)
    chunk = partial(_chunk_values, evaluators=[evaluator], seed=seed, n_units=design.n_units)
    boot = _run_chunks(chunk, n_resamples, design, parallel=True)[0]
    return _interval(boot, evaluator.value, level, "percentile", design)


def hierarchical_mean_ci(values_by_draw, clusters=None, *, n_resamples: int = 2000, level: float = 0.95,
                         seed: int = 0) -> Interval:
    """CI of the mean over D seeds/draws of the item mean: each resample draws D draws with replacement, then
    the clusters (``bootstrap.hierarchical_bootstrap_ci`` for item means)."""
    _check_options(n_resamples, level, seed)
    draws = _check_draws(values_by_draw, "values_by_draw")
    design = _design(clusters, _scores(draws[0], "values_by_draw[0]"))
    evaluators = _evaluators(draws, design, "values_by_draw")
    estimate = float(np.mean([ev.value for ev in evaluators]))
    method = "hierarchical-percentile"
    if design.n_units == 0:
        return _nan_interval(estimate, level, method, design)
    chunk = partial(_chunk_hierarchical, sides=[evaluators], seed=seed, n_units=design.n_units)
    boot = _run_chunks(chunk, n_resamples, design, parallel=True)[0]
    return _interval(boot, estimate, level, method, design)


def paired_mean_bootstrap(values_a, values_b, clusters=None, *, n_resamples: int = 2000, level: float = 0.95,
                          seed: int = 0, metric: str = "mean") -> PairedComparison:
    """mean(A) - mean(B) on the same items (paired cluster bootstrap CI, two-sided p); ``metric`` names the
    score in the result (e.g. "closed_accuracy")."""
    _check_options(n_resamples, level, seed)
    values_a = _scores(values_a, "values_a")
    design = _design(clusters, values_a)
    evaluators = _evaluators([values_a, values_b], design, "values")
    values = None
    if design.n_units:
        chunk = partial(_chunk_values, evaluators=evaluators, seed=seed, n_units=design.n_units)
        values = _run_chunks(chunk, n_resamples, design, parallel=True)
    est_a, est_b = (ev.value for ev in evaluators)
    return _paired_result(metric, est_a, est_b, values, level, "paired-bootstrap", design)


def paired_hierarchical_mean_bootstrap(draws_a, draws_b, clusters=None, *, n_resamples: int = 2000,
                                       level: float = 0.95, seed: int = 0, metric: str = "mean") -> PairedComparison:
    """Mean over A's draws of the item mean minus the same for B; draws resampled per side, clusters shared.
    With one draw per side this equals ``paired_mean_bootstrap`` (same resamples)."""
    _check_options(n_resamples, level, seed)
    draws_a, draws_b = _check_draws(draws_a, "draws_a"), _check_draws(draws_b, "draws_b")
    design = _design(clusters, _scores(draws_a[0], "draws_a[0]"))
    evs_a, evs_b = _evaluators(draws_a, design, "draws_a"), _evaluators(draws_b, design, "draws_b")
    values = None
    if design.n_units:
        chunk = partial(_chunk_hierarchical, sides=[evs_a, evs_b], seed=seed, n_units=design.n_units)
        values = _run_chunks(chunk, n_resamples, design, parallel=True)
    est_a = float(np.mean([ev.value for ev in evs_a]))
    est_b = float(np.mean([ev.value for ev in evs_b]))
    return _paired_result(metric, est_a, est_b, values, level, "paired-hierarchical-bootstrap", design)
