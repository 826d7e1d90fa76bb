"""DeLong's confidence interval and test for (paired) AUROCs, with the fast midrank algorithm.

For positives X_1..X_m and negatives Y_1..Y_n scored by a model, the AUROC is the mean of the kernel
psi(X, Y) = 1 if X > Y, 1/2 if X = Y, 0 otherwise. DeLong et al. (1988) estimate its variance from the
*structural components*

    V10(X_i) = (1/n) sum_j psi(X_i, Y_j)      (one per positive: the fraction of negatives it outranks)
    V01(Y_j) = (1/m) sum_i psi(X_i, Y_j)      (one per negative: the fraction of positives that outrank it)

as S = S10/m + S01/n, where S10 and S01 are the sample covariance matrices (ddof 1) of the components over the
positives and over the negatives, stacked over the models scored on the same items. Sun & Xu (2014) showed that
the components come from midranks: a positive's midrank among all items minus its midrank among the positives is
the number of negatives below it (ties counting 1/2), which makes the whole computation O(N log N) instead of
the O(m n) of the kernel matrix.

The paired test of two models uses z = (AUC_A - AUC_B) / sqrt(var), var = c' S c with c = (1, -1), and a
two-sided p from the standard normal; the CI of the difference is diff +/- z_{1-alpha/2} sqrt(var) and the
single-AUROC CI is AUC +/- z_{1-alpha/2} sqrt(S_AA), clipped to [0, 1]. All inference is conditional on the
labels (the numbers of positives and negatives are fixed), as in DeLong's paper.

Zero variance. When every structural component of the difference is constant the estimated variance is 0:
identical scores, both models separating the classes perfectly, or (say) a perfect model against a constant
one. The normal approximation then degenerates to a point mass at the observed difference, so this module
reports z = 0 and p = 1 when the difference is 0 (within 1e-12, i.e. rounding) and z = +/-inf, p = 0
otherwise, with a zero-width CI; it never divides by zero. (pROC reports p = 1 for two perfect curves likewise.)
A variance below 1e-24 counts as zero: the smallest non-zero DeLong variance for a million items is ~1e-18,
while rounding noise on a constant component is ~1e-30.

Clustered items (Obuchowski 1997). When several items share a cluster (a patient's images, an image's lesions),
the components are not independent. ``clusters=`` sums them per cluster: A_k = sum of V10 over the positives of
cluster k (m_k of them), B_k = sum of V01 over its negatives (n_k), and with M positives, N negatives, I clusters,
I10 of them holding a positive and I01 a negative,

    S10 = I10 / ((I10 - 1) M) sum_k (A_k - m_k AUC)^2        S01 = I01 / ((I01 - 1) N) sum_k (B_k - n_k AUC)^2
    S11 = I / (I - 1) sum_k (A_k - m_k AUC)(B_k - n_k AUC)    var = S10/M + S01/N + 2 S11/(M N),

applied to the components of the difference for the paired test. With every item its own cluster this is
DeLong's variance; the code then takes DeLong's path, so the result is identical to the last bit.

Validated in tests/test_stats_tests.py against a brute-force O(m n) kernel implementation and against the
expected values of pROC's test suite (aSAH data, ``roc.test`` and ``ci.auc``); the clustered variance against
the cluster bootstrap and its size on simulated clustered data.

References:
    E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson (1988). Comparing the areas under two or more correlated
        receiver operating characteristic curves: a nonparametric approach. Biometrics 44(3), 837-845.
    X. Sun, W. Xu (2014). Fast implementation of DeLong's algorithm for comparing the areas under correlated
        receiver operating characteristic curves. IEEE Signal Processing Letters 21(11), 1389-1393.
    X. Robin et al. (2011). pROC: an open-source package for R and S+ to analyze and compare ROC curves.
        BMC Bioinformatics 12, 77.
    N. A. Obuchowski (1997). Nonparametric analysis of clustered ROC curve data. Biometrics 53(2), 567-578.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
from scipy.special import ndtr, ndtri  # the normal CDF and its inverse, without importing scipy.stats (~1 s)

from medrival.core.errors import DataError
from medrival.metrics.classification import (
    _average_ranks,
    _check_finite_numeric,
    _check_integer_labels,
    _check_label_range,
    _check_ndim,
    _check_same_length,
)
from medrival.stats.types import Interval, PairedComparison

_VAR_TOL = 1e-24  # variances below this are rounding noise on constant components (see the module docstring)
_DIFF_TOL = 1e-12  # differences below this are rounding noise on equal AUROCs


# ----------------------------------------------------------------------------------------------- input checks


def check_level(level: object) -> float:
    """``level`` as a float strictly inside (0, 1); shared by every procedure in ``medrival.stats``."""
    ok = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool)
    if not ok or not (0.0 < float(level) < 1.0):
        raise DataError(
            f"level must be a confidence level strictly between 0 and 1, got {level!r}; pass e.g. level=0.95 "
            f"for a 95% interval (not 95).")
    return float(level)


def _check_binary_labels(y_true: object) -> np.ndarray:
    """0/1 labels [N] with at least 2 positives and 2 negatives (DeLong's variances use ddof 1)."""
    y = _check_integer_labels(y_true, "y_true")
    _check_ndim(y, "y_true", (1,), "a 1-D vector of 0/1 labels [N]")
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise DataError(
            f"y_true must hold binary labels 0/1 for DeLong's test, got label(s) {sorted(set(y[bad].tolist()))[:5]}; "
            f"for K classes use delong_test_multiclass(y_true, prob_a, prob_b), or binarise the labels first.")
    _check_both_classes(int(y.sum()), int(y.size - y.sum()), "y_true")
    return y


def _check_both_classes(n_pos: int, n_neg: int, what: str) -> None:
    if n_pos < 2 or n_neg < 2:
        raise DataError(
            f"{what} has {n_pos} positive and {n_neg} negative example(s); DeLong's method needs at least 2 of "
            f"each (AUROC is undefined without both classes, and its variance needs 2 per class). Evaluate on "
            f"data containing both classes.")


def _binary_scores(y: np.ndarray, scores: dict[str, object]) -> np.ndarray:
    """The positive-class scores [K, N] of each named score array ([N], or [N, 2] whose column 1 is used)."""
    rows = []
    for name, score in scores.items():
        s = _check_finite_numeric(score, name).astype(np.float64)
        _check_ndim(s, name, (1, 2), "positive-class scores [N] or an [N, 2] probability matrix")
        if s.ndim == 2 and s.shape[1] != 2:
            raise DataError(
                f"{name} has shape {s.shape}; DeLong's binary test expects scores [N] or an [N, 2] matrix. For "
                f"{s.shape[1]} classes use delong_test_multiclass.")
        _check_same_length(y, s, "y_true", name)
        rows.append(s[:, 1] if s.ndim == 2 else s)
    return np.stack(rows)


# ------------------------------------------------------------------------------------------------ computation


def _structural_components(pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROCs [K], V10 [K, m] over the positives and V01 [K, n] over the negatives, for bool ``pos`` [N].

    Sun & Xu (2014): with midranks (ties share their mean rank), rank among all minus rank within the own class
    counts the items of the other class below, each tie counting 1/2 -- exactly sum_j psi.
    """
    x, z = scores[:, pos], scores[:, ~pos]
    m, n = x.shape[1], z.shape[1]
    rank_all = _average_ranks(scores.T).T
    v10 = (rank_all[:, pos] - _average_ranks(x.T).T) / n
    # For a negative, the same difference counts the positives *below* it; V01 is the fraction above it.
    v01 = 1.0 - (rank_all[:, ~pos] - _average_ranks(z.T).T) / m
    return v10.mean(axis=1), v10, v01


def _variance_of(v10: np.ndarray, v01: np.ndarray) -> float:
    """DeLong variance S10/m + S01/n of one linear combination, given its components [m] and [n]."""
    return float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)


def _cluster_codes(clusters: object, n_items: int) -> np.ndarray | None:
    """Integer cluster codes [N], or None when there are no clusters or every item is its own cluster."""
    if clusters is None:
        return None
    values = np.asarray(clusters)
    if values.ndim != 1 or values.size != n_items:
        raise DataError(f"clusters must hold one id per item ({n_items}), got shape {values.shape}.")
    codes = np.unique(values.astype(str), return_inverse=True)[1]
    return None if codes.max(initial=-1) + 1 == n_items else codes


def _clustered_variance(pos: np.ndarray, codes: np.ndarray, v10: np.ndarray, v01: np.ndarray,
                        theta: float) -> float:
    """Obuchowski's variance of one AUROC (or of a difference) from its components and the items' clusters."""
    n_clusters = int(codes.max()) + 1
    pos_codes, neg_codes = codes[pos], codes[~pos]
    m_k = np.bincount(pos_codes, minlength=n_clusters)
    n_k = np.bincount(neg_codes, minlength=n_clusters)
    dev10 = np.bincount(pos_codes, weights=v10, minlength=n_clusters) - m_k * theta
    dev01 = np.bincount(neg_codes, weights=v01, minlength=n_clusters) - n_k * theta
    big_m, big_n = v10.size, v01.size
    i10, i01 = int((m_k > 0).sum()), int((n_k > 0).sum())
    if i10 < 2 or i01 < 2:
        raise DataError(f"the clustered DeLong variance needs positives in at least 2 clusters and negatives in at "
                        f"least 2; got {i10} and {i01}.")
    s10 = i10 / ((i10 - 1) * big_m) * float(dev10 @ dev10)
    s01 = i01 / ((i01 - 1) * big_n) * float(dev01 @ dev01)
    s11 = n_clusters / (n_clusters - 1) * float(dev10 @ dev01)
    return s10 / big_m + s01 / big_n + 2.0 * s11 / (big_m * big_n)


def _normal_inference(estimate: float, var: float, level: float) -> tuple[float, float, float]:
    """(z, two-sided p, CI half-width) of ``estimate`` under H0: 0, degenerate variances as documented above."""
    if var < _VAR_TOL:
        if abs(estimate) <= _DIFF_TOL:
            return 0.0, 1.0, 0.0
        return math.copysign(math.inf, estimate), 0.0, 0.0
    se = math.sqrt(var)
    z = estimate / se
    return z, float(2.0 * ndtr(-abs(z))), float(ndtri(0.5 + level / 2.0)) * se


def _paired(metric: str, auc_a: float, auc_b: float, diff: float, var: float, level: float,
            n_items: int, n_clusters: int | None = None, method: str = "delong") -> PairedComparison:
    _, p, half = _normal_inference(diff, var, level)
    return PairedComparison(metric=metric, estimate_a=float(auc_a), estimate_b=float(auc_b), difference=diff,
                            low=diff - half, high=diff + half, p_value=p, level=level, method=method,
                            n_items=n_items, n_clusters=n_items if n_clusters is None else n_clusters,
                            n_resamples=0, p_floor=0.0)


# ------------------------------------------------------------------------------------------------- public API


def delong_auc_covariance(y_true, scores: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs [K] and their DeLong covariance matrix S = S10/m + S01/n [K, K] for K score vectors on the same items.

    ``scores``: a sequence of K score arrays, each [N] or [N, 2] (column 1 used). The diagonal holds each
    AUROC's variance; the off-diagonal entries are the covariances that pair the test.
    """
    y = _check_binary_labels(y_true)
    s = _binary_scores(y, {f"scores[{k}]": v for k, v in enumerate(scores)})
    auc, v10, v01 = _structural_components(y == 1, s)
    cov = np.atleast_2d(np.cov(v10, ddof=1)) / v10.shape[1] + np.atleast_2d(np.cov(v01, ddof=1)) / v01.shape[1]
    return auc, cov


def delong_ci(y_true, score, *, level: float = 0.95, clusters=None) -> Interval:
    """AUROC of ``score`` for 0/1 ``y_true`` with DeLong's normal CI (clipped to [0, 1]); method "delong", or
    "delong-clustered" (Obuchowski's variance) when ``clusters`` groups items."""
    level = check_level(level)
    y = _check_binary_labels(y_true)
    s = _binary_scores(y, {"score": score})
    auc, v10, v01 = _structural_components(y == 1, s)
    estimate = float(auc[0])
    codes = _cluster_codes(clusters, y.size)
    var = (_variance_of(v10[0], v01[0]) if codes is None
           else _clustered_variance(y == 1, codes, v10[0], v01[0], estimate))
    _, _, half = _normal_inference(estimate, var, level)
    return Interval(estimate=estimate, low=max(0.0, estimate - half), high=min(1.0, estimate + half), level=level,
                    method="delong" if codes is None else "delong-clustered", n_resamples=0,
                    n_clusters=int(y.size) if codes is None else int(codes.max()) + 1)


def delong_test(y_true, score_a, score_b, *, level: float = 0.95, clusters=None) -> PairedComparison:
    """DeLong's paired test of AUROC(A) - AUROC(B) on the same items: difference, its normal CI and two-sided p.

    ``y_true`` 0/1 [N]; each score [N] or [N, 2] (column 1 used). ``clusters`` [N] (patient, lesion or image ids):
    Obuchowski's clustered variance (method "delong-clustered"); None, or every item its own cluster, is DeLong's
    test exactly. Zero variance (identical scores, or both models perfect): p = 1 when the difference is 0, else
    p = 0, CI of width 0 -- see the module docstring.
    """
    level = check_level(level)
    y = _check_binary_labels(y_true)
    s = _binary_scores(y, {"score_a": score_a, "score_b": score_b})
    auc, v10, v01 = _structural_components(y == 1, s)
    diff = float(auc[0] - auc[1])
    # var(c'S c) from the differences of the components, not S_aa + S_bb - 2 S_ab: identical models then give
    # exactly 0 rather than rounding noise, and the two are algebraically the same.
    codes = _cluster_codes(clusters, y.size)
    if codes is None:
        return _paired("auroc", auc[0], auc[1], diff, _variance_of(v10[0] - v10[1], v01[0] - v01[1]), level,
                       int(y.size))
    var = _clustered_variance(y == 1, codes, v10[0] - v10[1], v01[0] - v01[1], diff)
    return _paired("auroc", auc[0], auc[1], diff, var, level, int(y.size), int(codes.max()) + 1,
                   "delong-clustered")


# ------------------------------------------------------------------------------------------------- multiclass


def _multiclass_inputs(y_true, prob_a, prob_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class indices [N] and the two [N, K] score matrices, checked against each other."""
    y = _check_integer_labels(y_true, "y_true")
    _check_ndim(y, "y_true", (1,), "a 1-D vector of class indices [N]")
    probs = []
    for name, prob in (("prob_a", prob_a), ("prob_b", prob_b)):
        arr = _check_finite_numeric(prob, name).astype(np.float64)
        _check_ndim(arr, name, (2,), "an [N, K] score matrix with one column per class")
        if arr.shape[1] < 2:
            raise DataError(f"{name} has shape {arr.shape}; a multiclass test needs at least 2 columns, one per "
                            f"class.")
        _check_same_length(y, arr, "y_true", name)
        probs.append(arr)
    if probs[0].shape != probs[1].shape:
        raise DataError(f"prob_a has shape {probs[0].shape} but prob_b has shape {probs[1].shape}; both models must "
                        f"score the same classes, in the same column order, for the same items.")
    k = probs[0].shape[1]
    _check_label_range(y, "y_true", 0, k, f"the score matrices have {k} columns, so labels must be 0..{k - 1}.")
    return y, probs[0], probs[1]


def _check_every_class(y: np.ndarray, k: int, class_names: Sequence[str] | None) -> None:
    """Every class has >= 2 positives and >= 2 negatives; the error names each class that does not."""
    if class_names is not None and len(class_names) != k:
        raise DataError(f"class_names has {len(class_names)} entries but the score matrices have {k} columns; "
                        f"pass one name per column, in column order.")
    counts = np.bincount(y, minlength=k)
    problems = []
    for c in range(k):
        name = f"class {c}" + (f" ({class_names[c]!r})" if class_names is not None else "")
        if counts[c] < 2:
            problems.append(f"{name} has {'no' if counts[c] == 0 else 'only 1'} positive example"
                            f"{'s' if counts[c] == 0 else ''}")
        elif y.size - counts[c] < 2:
            problems.append(f"{name} has fewer than 2 negative examples")
    if problems:
        raise DataError(
            f"one-vs-rest DeLong is undefined here: {'; '.join(problems)} in y_true. Each class needs at least 2 "
            f"positives and 2 negatives; evaluate on data containing every class, or drop that class explicitly.")


def _influence(d: np.ndarray) -> np.ndarray:
    """Centred components of one group scaled so that their sum of squares is DeLong's var(d)/g (ddof 1)."""
    g = d.size
    return (d - d.mean()) / math.sqrt(g * (g - 1))


def delong_test_multiclass(y_true, prob_a, prob_b, *, level: float = 0.95,
                           class_names: Sequence[str] | None = None) -> PairedComparison:
    """Paired DeLong test of the macro one-vs-rest AUROC: ``y_true`` class indices [N], ``prob_*`` [N, K].

    The difference is the mean over classes of the per-class one-vs-rest AUROC differences (estimates are the
    macro AUROCs, as ``multiclass_auroc``). Its variance is 1'Sigma 1 / K^2, Sigma [K, K] being the covariance
    of the per-class differences, estimated from the stacked structural components: item k gets, per class c,
    phi_c(k) = (D_c(k) - mean of D_c over k's group) / sqrt(g (g - 1)), where D_c is the A - B difference of its
    component for class c (V10 if k is in class c, V01 otherwise) and g the size of that group; Sigma = Phi'Phi.

    The diagonal is exactly the binary DeLong variance of each class; the off-diagonal terms are the
    influence-function (sandwich) covariance for independent items. That is the approximation: each class is
    centred and ddof-corrected within its own one-vs-rest split, so the cross terms of two classes are centred in
    different groupings (an O(1/N) bias), and, like DeLong, the negatives of a class are treated as one sample
    although they mix K - 1 classes (which can make the variance slightly conservative). With K = 2 and
    complementary columns it is exactly the binary test. A class with fewer than 2 positives (or negatives)
    raises ``DataError`` naming it.
    """
    level = check_level(level)
    y, pa, pb = _multiclass_inputs(y_true, prob_a, prob_b)
    k = pa.shape[1]
    _check_every_class(y, k, class_names)
    auc_a, auc_b, phi = np.empty(k), np.empty(k), np.empty((y.size, k))
    for c in range(k):
        pos = y == c
        auc, v10, v01 = _structural_components(pos, np.stack([pa[:, c], pb[:, c]]))
        auc_a[c], auc_b[c] = auc
        phi[pos, c] = _influence(v10[0] - v10[1])
        phi[~pos, c] = _influence(v01[0] - v01[1])
    var = float((phi.T @ phi).sum()) / k ** 2
    return _paired("auroc", auc_a.mean(), auc_b.mean(), float((auc_a - auc_b).mean()), var, level, int(y.size))


# ------------------------------------------------------------------------------------------------------ speed


def delong_speed(n_items: int = 10_000, seed: int = 0) -> dict:
    """Wall-clock seconds of ``delong_test`` on ``n_items`` synthetic items (best of 3, after a warm-up run).

    Returns {"delong_s", "n_items", "n_positive", "pairs", "p_value"}; "pairs" is m * n, the size of the kernel
    matrix that the midrank algorithm avoids.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n_items) < 0.3).astype(np.int64)
    shared = rng.normal(size=n_items)  # correlated models, as two models scored on the same items are
    score_a = 1.0 * y + shared + rng.normal(size=n_items)
    score_b = 0.8 * y + shared + rng.normal(size=n_items)
    result = delong_test(y, score_a, score_b)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = delong_test(y, score_a, score_b)
        times.append(time.perf_counter() - start)
    n_pos = int(y.sum())
    return {"delong_s": min(times), "n_items": int(n_items), "n_positive": n_pos,
            "pairs": n_pos * (int(n_items) - n_pos), "p_value": result.p_value}
