"""Paired permutation (randomisation) test of a metric difference between two models scored on the same items.

H0: the two models' outputs are exchangeable -- for every item (or, with ``clusters``, for every cluster as a
whole) the output labelled "A" could equally have been labelled "B". Each permutation swaps the outputs of A and
B on a seeded random subset of the items (each item, or each cluster with all its items, swapped with probability
1/2) and recomputes d = metric(A') - metric(B'). The two-sided p-value counts permuted differences at least as
extreme as the observed one, including the observed data themselves (Phipson & Smyth 2010):

    p = (#{|d_perm| >= |d_obs|} + 1) / (n_permutations + 1),

so it is never 0 and is valid for any number of permutations; its floor 1/(n_permutations + 1) is recorded as
``p_floor`` (a Holm family of m comparisons needs n_permutations >= m / alpha to be able to pass at all).
Permutations are drawn at random (with replacement), not enumerated, even when there are few clusters. A permuted
difference counts as "at least as extreme" when it is within 1e-12 of |d_obs|, so that rounding cannot drop
permutations equal in exact arithmetic to the observed one (the identity swap, or every swap when the models are
identical).

No confidence interval: a permutation test inverts no interval here, so ``low`` and ``high`` of the result are
NaN by design (a percentile interval of d_obs - d_perm would be an interval under H0, not for the difference).
Use the paired bootstrap for a CI. ``level`` is only recorded, for ``verdict`` to turn p into a decision.

Speed: for the project's ``binary_auroc`` and ``accuracy`` the permutations are evaluated in batches with NumPy
(AUROC from one sort of the 2N scores, a permutation being a selection of N of them); any other ``metric_fn`` is called
twice per permutation. Both paths use the same random swaps, so they give the same p-value.

References:
    R. A. Fisher (1935). The Design of Experiments. Oliver & Boyd (the randomisation test).
    B. Phipson, G. K. Smyth (2010). Permutation p-values should never be zero. Stat. Appl. Genet. Mol. Biol. 9(1).
    E. W. Noreen (1989). Computer-Intensive Methods for Testing Hypotheses. Wiley (approximate randomisation).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from medrival.core.errors import DataError
from medrival.metrics.classification import accuracy, binary_auroc
from medrival.stats.delong import check_level
from medrival.stats.types import PairedComparison

MetricFn = Callable[[np.ndarray, np.ndarray], float]

_TOL = 1e-12  # see "at least as extreme" in the module docstring
_BATCH_CELLS = 1_000_000  # items x permutations per batch: bounds the memory of the vectorised paths (~100 MB)


# ----------------------------------------------------------------------------------------------- input checks


def _check_inputs(y_true, score_a, score_b, n_permutations) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise DataError(f"n_permutations must be a positive integer, got {n_permutations!r}; 10_000 gives p-values "
                        f"resolved to about 0.0001.")
    y, a, b = np.asarray(y_true), np.asarray(score_a), np.asarray(score_b)
    if a.shape != b.shape:
        raise DataError(f"score_a has shape {a.shape} but score_b has shape {b.shape}; the two models' outputs must "
                        f"have the same shape (same items in the same order) to be swapped.")
    if a.ndim == 0 or y.ndim == 0 or y.shape[0] != a.shape[0]:
        raise DataError(f"y_true has shape {y.shape} but the scores have shape {a.shape}; they must describe the "
                        f"same items (first dimension), in the same order.")
    return y, a, b, int(n_permutations)


def _cluster_index(clusters, n_items: int) -> tuple[np.ndarray, int]:
    """(index of each item's cluster [N], number of clusters); every item its own cluster when ``clusters`` is None."""
    if clusters is None:
        return np.arange(n_items), n_items
    c = np.asarray(clusters)
    if c.shape != (n_items,):
        raise DataError(f"clusters has shape {c.shape}; expected one cluster id per item, shape ({n_items},), e.g. "
                        f"the patient id of each image.")
    if c.dtype.kind == "f" and np.isnan(c).any():
        raise DataError("clusters contains NaN; give every item a cluster id (an item alone is its own cluster).")
    try:
        _, inverse = np.unique(c, return_inverse=True)
    except TypeError as err:
        raise DataError(f"clusters could not be sorted ({err}); use ids of one type (all str or all int).") from None
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if n_items else 0


def _observed(metric_fn: MetricFn, y, a, b) -> tuple[float, float]:
    values = []
    for name, score in (("A", a), ("B", b)):
        value = float(metric_fn(y, score))
        if not math.isfinite(value):
            raise DataError(f"metric_fn returned {value} for model {name} on the observed data; a permutation test "
                            f"needs a defined metric (check that y_true has both classes for AUROC).")
        values.append(value)
    return values[0], values[1]


# ------------------------------------------------------------------------------------- permuted differences


def _swap(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of A and B with the items in ``mask`` [N] exchanged (broadcast over trailing output dimensions)."""
    m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
    return np.where(m, b, a), np.where(m, a, b)


def _generic_differences(metric_fn: MetricFn, y, a, b, swaps: np.ndarray) -> np.ndarray:
    out = np.empty(swaps.shape[0])
    for i, mask in enumerate(swaps):
        a_perm, b_perm = _swap(mask, a, b)
        out[i] = float(metric_fn(y, a_perm)) - float(metric_fn(y, b_perm))
    return out


def _auroc_differences(y, a, b, swaps: np.ndarray) -> np.ndarray:
    """Binary AUROC differences for a batch of swaps [B, N], without sorting per permutation.

    Every permuted data set takes, per item, one of its two scores for A' and the other for B'. So the 2N scores
    are sorted once; in that order a permutation is a 0/1 selection, and the midrank of a tie group of the
    selected scores is (#selected up to and including the group) - (#selected in it - 1) / 2. The positives'
    rank sums give the AUROCs (Mann-Whitney), in O(B N) per batch: one cumulative sum, no sort.
    """
    sa = a[:, 1] if a.ndim == 2 else a
    sb = b[:, 1] if b.ndim == 2 else b
    n = sa.shape[0]
    values = np.concatenate([sa, sb]).astype(np.float64)
    order = np.argsort(values, kind="stable")
    item, from_b = np.tile(np.arange(n), 2)[order], np.repeat([False, True], n)[order]
    starts = np.flatnonzero(np.r_[True, values[order][1:] != values[order][:-1]])  # tie groups
    positive = (np.asarray(y).astype(np.int64)[item] == 1).astype(np.int64)
    n_pos = int(positive.sum()) // 2
    take_a = (swaps[:, item] == from_b).astype(np.int64)  # A' takes b_i exactly where item i is swapped
    if starts.size == 2 * n:  # no ties (continuous scores): each score is its own group, skip the reductions
        count_a, pos_a, size, pos_all = take_a, take_a * positive, np.ones(2 * n, np.int64), positive
    else:
        count_a = np.add.reduceat(take_a, starts, axis=1)
        pos_a = np.add.reduceat(take_a * positive, starts, axis=1)
        size, pos_all = np.diff(np.r_[starts, 2 * n]), np.add.reduceat(positive, starts)
    cum_a = np.cumsum(count_a, axis=1)
    # Twice the rank sums, in integers: 2 * midrank = 2 * (#selected up to the group) - (#in group) + 1.
    twice_a = (pos_a * (2 * cum_a - count_a + 1)).sum(axis=1)
    count_b, cum_b = size - count_a, np.cumsum(size) - cum_a
    twice_b = ((pos_all - pos_a) * (2 * cum_b - count_b + 1)).sum(axis=1)
    # AUC = (rank sum - m(m+1)/2) / (m n); the m(m+1)/2 cancels in the difference A' - B'.
    return (twice_a - twice_b) / (2.0 * n_pos * (n - n_pos))


def _accuracy_differences(y, a, b, swaps: np.ndarray) -> np.ndarray:
    """Accuracy differences for a batch of swaps [B, N]: a swap flips the sign of that item's correct_A - correct_B."""
    y, a, b = (np.asarray(v).astype(np.int64) for v in (y, a, b))
    correct_a = (a == y) if y.ndim == 1 else (a == y).all(axis=1)
    correct_b = (b == y) if y.ndim == 1 else (b == y).all(axis=1)
    delta = correct_a.astype(np.float64) - correct_b
    return (np.where(swaps, -delta, delta)).sum(axis=1) / y.shape[0]


# Vectorised equivalents of the project's metrics, keyed by the function object (a wrapper takes the generic path).
_BATCHED = {binary_auroc: _auroc_differences, accuracy: _accuracy_differences}


# ------------------------------------------------------------------------------------------------- public API


def paired_permutation_test(metric_fn: MetricFn, y_true, score_a, score_b, *, clusters=None,
                            n_permutations: int = 10_000, seed: int = 0, level: float = 0.95,
                            metric: str | None = None) -> PairedComparison:
    """Two-sided paired permutation test of metric_fn(y, A) - metric_fn(y, B) (see the module docstring).

    ``metric_fn(y_true, score) -> float``; ``score_a``/``score_b`` are the two models' outputs for the same items
    (first dimension N; any trailing shape, e.g. [N, K] probabilities). ``clusters`` [N] (e.g. patient ids) makes
    whole clusters swap together. Returns a ``PairedComparison`` with method "permutation", NaN ``low``/``high``
    (no CI), ``n_resamples = n_permutations``, ``n_clusters`` the number of swapped units. ``metric`` names the
    metric in the result (default: ``metric_fn.__name__``). Same ``seed``, same result.
    """
    level = check_level(level)
    y, a, b, n_permutations = _check_inputs(y_true, score_a, score_b, n_permutations)
    inverse, n_units = _cluster_index(clusters, y.shape[0])
    estimate_a, estimate_b = _observed(metric_fn, y, a, b)
    observed = abs(estimate_a - estimate_b)
    batched = next((fast for fn, fast in _BATCHED.items() if fn is metric_fn), None)  # callables may be unhashable
    rng = np.random.default_rng(seed)
    batch = max(1, min(1024, _BATCH_CELLS // max(1, y.shape[0])))
    extreme = 0
    for start in range(0, n_permutations, batch):
        # Rows are drawn one after another from one stream, so the swaps do not depend on the batch size.
        units = rng.random((min(batch, n_permutations - start), n_units)) < 0.5
        swaps = units[:, inverse]
        d = batched(y, a, b, swaps) if batched else _generic_differences(metric_fn, y, a, b, swaps)
        if not np.isfinite(d).all():
            raise DataError("metric_fn returned NaN/inf on a permuted data set; the metric must be defined for any "
                            "mix of the two models' outputs.")
        extreme += int(np.count_nonzero(np.abs(d) >= observed - _TOL))
    return PairedComparison(
        metric=metric or getattr(metric_fn, "__name__", "metric"), estimate_a=estimate_a, estimate_b=estimate_b,
        difference=estimate_a - estimate_b, low=math.nan, high=math.nan,
        p_value=(extreme + 1) / (n_permutations + 1), level=level, method="permutation", n_items=int(y.shape[0]),
        n_clusters=n_units, n_resamples=n_permutations, p_floor=1 / (n_permutations + 1))
