"""DeLong (binary and one-vs-rest), the paired permutation test, Holm/BH and the win/tie/loss verdicts."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from medrival.core.errors import DataError, UnknownNameError
from medrival.metrics import accuracy, binary_auroc, multiclass_auroc
from medrival.stats.delong import (
    delong_auc_covariance,
    delong_ci,
    delong_speed,
    delong_test,
    delong_test_multiclass,
)
from medrival.stats.multiple import benjamini_hochberg, holm
from medrival.stats.permutation import paired_permutation_test
from medrival.stats.types import Interval, PairedComparison
from medrival.stats.verdicts import non_inferiority_p, summary_line, verdict, verdict_table

Z975 = 1.959963984540054  # qnorm(0.975)


def _se(result) -> float:
    """Standard error implied by a 95% normal CI."""
    return (result.high - result.low) / (2 * Z975)


# --------------------------------------------------------------------------------------------- DeLong: reference


def _brute_force_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and DeLong covariance from the explicit m x n kernel psi (1 if X > Y, 1/2 if tied, 0 otherwise)."""
    x, z = scores[:, y == 1], scores[:, y == 0]
    psi = (x[:, :, None] > z[:, None, :]) + 0.5 * (x[:, :, None] == z[:, None, :])  # [K, m, n]
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)  # structural components per positive / per negative
    cov = np.cov(v10, ddof=1) / x.shape[1] + np.cov(v01, ddof=1) / z.shape[1]
    return psi.mean(axis=(1, 2)), cov


@pytest.mark.parametrize("seed", range(12))
def test_delong_matches_brute_force_kernel_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    y = np.r_[0, 0, 1, 1, (rng.random(n - 4) < 0.4)].astype(int)
    # Few distinct values: many ties within and across classes and between the two models.
    a = rng.integers(0, 5, n) + y
    b = np.where(rng.random(n) < 0.5, a, rng.integers(0, 6, n))
    auc_ref, cov_ref = _brute_force_delong(y, np.stack([a, b]).astype(float))
    auc, cov = delong_auc_covariance(y, [a, b])
    np.testing.assert_allclose(auc, auc_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-10, atol=1e-15)

    var = cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1]
    result = delong_test(y, a, b)
    assert result.difference == pytest.approx(auc_ref[0] - auc_ref[1], abs=1e-12)
    if var > 1e-20:
        z = (auc_ref[0] - auc_ref[1]) / math.sqrt(var)
        assert result.difference / _se(result) == pytest.approx(z, rel=1e-8, abs=1e-10)
        assert result.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-8, abs=1e-14)
    single = delong_ci(y, a)
    assert single.estimate == pytest.approx(auc_ref[0], abs=1e-12)
    half = Z975 * math.sqrt(cov_ref[0, 0])
    assert single.low == pytest.approx(max(0.0, auc_ref[0] - half), abs=1e-10)
    assert single.high == pytest.approx(min(1.0, auc_ref[0] + half), abs=1e-10)


def test_delong_auroc_equals_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(int)
    score = np.round(y * 0.7 + rng.normal(size=500), 1)  # rounded: ties
    assert delong_ci(y, score).estimate == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)
    assert delong_ci(y, np.stack([1 - score, score], axis=1)).estimate == pytest.approx(
        metrics.roc_auc_score(y, score), abs=1e-12)


# ------------------------------------------------------------------------------- DeLong: published figures (pROC)

# pROC's aSAH data (113 patients with aneurysmal subarachnoid haemorrhage; 41 poor outcomes = positives listed
# first, then 72 good outcomes, each in data-set order). The scores are rank-preserving integer recodings of wfns,
# s100b and ndka, reconstructed from the DeLong placements (structural components) that pROC's own test suite
# expects (tests/testthat/helper-deLongPlacementsCpp-expected.R, github.com/xrobin/pROC). DeLong's statistics
# depend on the scores only through those placements, so every figure below equals pROC's on the raw data; the
# AUCs match pROC's thetas exactly, which checks the reconstruction.
ASAH_N_POSITIVE = 41
ASAH = {
    "wfns": [
        6, 4, 8, 10, 10, 10, 10, 4, 10, 4, 2, 4, 10, 8, 8, 4, 10, 10, 10, 4, 10, 4, 10, 4, 8, 10, 8, 8, 2, 8, 8, 4, 4,
        10, 10, 4, 4, 10, 10, 10, 10, 2, 2, 2, 2, 10, 2, 4, 4, 2, 4, 4, 2, 2, 2, 4, 2, 4, 2, 2, 6, 8, 2, 8, 2, 10, 10,
        2, 2, 4, 8, 2, 2, 4, 4, 2, 4, 2, 4, 4, 2, 2, 2, 2, 4, 2, 4, 2, 2, 6, 4, 8, 4, 2, 8, 2, 2, 10, 8, 4, 4, 2, 2, 2,
        6, 2, 4, 4, 8, 8, 2, 2, 2,
    ],
    "s100b": [
        14, 10, 20, 13, 37, 43, 41, 4, 30, 8, 4, 35, 33, 40, 43, 25, 43, 43, 43, 4, 43, 27, 1, 8, 23, 43, 25, 43, 6,
        25, 14, 10, 12, 23, 43, 16, 43, 28, 43, 43, 37, 14, 16, 10, 2, 38, 22, 10, 10, 2, 6, 2, 8, 12, 4, 22, 4, 12,
        14, 22, 2, 20, 16, 32, 8, 42, 38, 20, 4, 36, 38, 12, 6, 8, 6, 2, 14, 10, 16, 18, 2, 2, 8, 2, 8, 6, 20, 8, 6,
        30, 12, 26, 4, 10, 28, 4, 2, 24, 34, 10, 18, 6, 16, 10, 4, 2, 22, 18, 38, 22, 18, 42, 40,
    ],
    "ndka": [
        43, 27, 33, 41, 5, 11, 21, 49, 53, 49, 49, 17, 37, 45, 7, 9, 35, 3, 57, 45, 19, 21, 25, 35, 47, 30, 45, 9, 55,
        40, 5, 14, 45, 5, 13, 49, 23, 37, 51, 21, 41, 2, 10, 8, 20, 6, 40, 6, 44, 34, 44, 42, 52, 12, 6, 26, 6, 6, 56,
        28, 16, 16, 44, 4, 8, 6, 14, 32, 8, 38, 50, 8, 6, 26, 12, 8, 32, 48, 46, 18, 24, 54, 6, 42, 16, 20, 20, 38, 4,
        42, 26, 12, 20, 44, 20, 24, 8, 16, 20, 48, 10, 26, 30, 50, 22, 26, 12, 48, 18, 36, 46, 6, 34,
    ],
}
ASAH_Y = np.r_[np.ones(ASAH_N_POSITIVE), np.zeros(113 - ASAH_N_POSITIVE)].astype(int)
PROC_AUC = {"wfns": 0.823678861788618, "s100b": 0.731368563685637, "ndka": 0.611957994579946}
# pROC tests/testthat/test-roc.test.R: roc.test(r.a, r.b) (paired DeLong, two-sided, 95% CI of AUC_a - AUC_b).
PROC_ROC_TEST = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
]


@pytest.mark.parametrize("name_a, name_b, z, p, low, high", PROC_ROC_TEST)
def test_delong_reproduces_proc_roc_test_on_asah(name_a, name_b, z, p, low, high):
    result = delong_test(ASAH_Y, ASAH[name_a], ASAH[name_b])
    assert isinstance(result, PairedComparison) and result.method == "delong" and result.metric == "auroc"
    assert result.estimate_a == pytest.approx(PROC_AUC[name_a], abs=1e-12)
    assert result.estimate_b == pytest.approx(PROC_AUC[name_b], abs=1e-12)
    assert result.difference / _se(result) == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert (result.low, result.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert (result.n_items, result.n_clusters, result.n_resamples) == (113, 113, 0)
    swapped = delong_test(ASAH_Y, ASAH[name_b], ASAH[name_a])  # pROC: reversing the curves flips z, keeps p
    assert swapped.p_value == pytest.approx(p, rel=1e-9) and swapped.difference == -result.difference


def test_delong_ci_reproduces_proc_ci_auc_on_asah():
    # pROC tests/testthat/test-ci.auc.R: ci.auc(r.ndka) == c(0.501244999271703, 0.611957994579946, 0.722670989888189)
    interval = delong_ci(ASAH_Y, ASAH["ndka"])
    assert isinstance(interval, Interval) and interval.method == "delong"
    assert interval.low == pytest.approx(0.501244999271703, abs=1e-12)
    assert interval.estimate == pytest.approx(0.611957994579946, abs=1e-12)
    assert interval.high == pytest.approx(0.722670989888189, abs=1e-12)
    assert (interval.level, interval.n_resamples, interval.n_clusters) == (0.95, 0, 113)


def test_delong_identical_curves_give_p_one_like_proc():
    result = delong_test(ASAH_Y, ASAH["wfns"], ASAH["wfns"])  # pROC: p = 1, Z = 0
    assert (result.difference, result.p_value, result.low, result.high) == (0.0, 1.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------- DeLong: behaviour


def test_delong_size_under_null_is_nominal():
    """Two correlated models with the same score distribution: the 5% test rejects 3-7% of 1,000 data sets."""
    rng = np.random.default_rng(2024)
    n, rho, rejections = 200, 0.5, 0
    for _ in range(1000):
        y = (rng.random(n) < 0.4).astype(int)
        shared = rng.normal(size=n)
        a = y + math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(size=n)
        b = y + math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(size=n)
        rejections += delong_test(y, a, b).p_value < 0.05
    assert 0.03 <= rejections / 1000 <= 0.07


def test_delong_zero_variance_cases():
    y = np.array([0, 0, 0, 1, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    also_perfect = np.array([0.0, 0.1, 0.4, 0.5, 0.6, 1.0])
    both = delong_test(y, perfect, also_perfect)  # both separate perfectly: no difference, no variance
    assert (both.difference, both.p_value, both.low, both.high) == (0.0, 1.0, 0.0, 0.0)
    constant = delong_test(y, perfect, np.full(6, 0.5))  # components constant (1 vs 1/2): difference 0.5, var 0
    assert constant.difference == 0.5 and constant.p_value == 0.0 and constant.low == constant.high == 0.5
    single = delong_ci(y, perfect)
    assert (single.estimate, single.low, single.high) == (1.0, 1.0, 1.0)


def test_delong_single_ci_is_clipped_to_unit_interval():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(5), np.ones(5)].astype(int)
    score = y * 3.0 + rng.normal(size=10) * 0.1
    score[0] = 5.0  # one negative above every positive: AUROC 0.8 with a CI wider than the room up to 1
    interval = delong_ci(y, score, level=0.99)
    assert interval.estimate == pytest.approx(0.8) and interval.high == 1.0 and interval.low < 0.8


def test_delong_speed_is_well_under_a_second():
    speed = delong_speed(n_items=10_000, seed=0)
    assert speed["n_items"] == 10_000 and speed["delong_s"] < 1.0


# ------------------------------------------------------------------------------------------ DeLong: multiclass


def test_delong_multiclass_with_two_classes_equals_binary():
    rng = np.random.default_rng(1)
    y = (rng.random(150) < 0.4).astype(int)
    pa = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=150))))
    pb = 1 / (1 + np.exp(-(1.5 * y - 0.75 + rng.normal(size=150))))
    multi = delong_test_multiclass(y, np.stack([1 - pa, pa], 1), np.stack([1 - pb, pb], 1))
    binary = delong_test(y, pa, pb)
    for field in ("estimate_a", "estimate_b", "difference", "low", "high", "p_value"):
        assert getattr(multi, field) == pytest.approx(getattr(binary, field), rel=1e-9, abs=1e-12)


def test_delong_multiclass_variance_matches_simulation():
    """The macro-difference variance (with the cross-class covariances) against Monte-Carlo, labels held fixed."""
    rng = np.random.default_rng(7)
    k, per = 3, 80
    y = np.repeat(np.arange(k), per)
    onehot = np.eye(k)[y]
    diffs, estimated, diagonal_only = [], [], []
    for _ in range(400):
        difficulty = rng.normal(size=(y.size, 1))  # shared by both models and all classes: correlates the classes
        base = 1.2 * onehot + 0.8 * difficulty * (2 * onehot - 1) + rng.normal(size=(y.size, k))
        pa = _softmax(base + 0.7 * rng.normal(size=base.shape))
        pb = _softmax(0.8 * base + 0.7 * rng.normal(size=base.shape))
        result = delong_test_multiclass(y, pa, pb)
        assert result.difference == pytest.approx(multiclass_auroc(y, pa) - multiclass_auroc(y, pb), abs=1e-12)
        diffs.append(result.difference)
        estimated.append(_se(result) ** 2)
        diagonal_only.append(sum(_se(delong_test((y == c).astype(int), pa[:, c], pb[:, c])) ** 2
                                 for c in range(k)) / k ** 2)
    empirical = np.var(diffs, ddof=1)
    assert 0.8 <= np.mean(estimated) / empirical <= 1.25
    assert np.mean(diagonal_only) < 0.85 * np.mean(estimated)  # the cross-class terms matter here


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_delong_multiclass_names_a_class_without_positives():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])  # class 2 never occurs
    prob = np.full((8, 3), 1 / 3)
    with pytest.raises(DataError, match=r"class 2 \('effusion'\) has no positive examples"):
        delong_test_multiclass(y, prob, prob, class_names=["normal", "pneumonia", "effusion"])
    with pytest.raises(DataError, match="prob_a has shape .* but prob_b has shape"):
        delong_test_multiclass(y, prob, prob[:, :2])


# ------------------------------------------------------------------------------------------- permutation test


def _two_models(n: int, seed: int, effect_b: float = 1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    return y, y * 1.0 + rng.normal(size=n), y * effect_b + rng.normal(size=n)


def test_permutation_identical_models_give_p_one():
    y, a, _ = _two_models(200, 0)
    result = paired_permutation_test(binary_auroc, y, a, a.copy(), n_permutations=500)
    assert result.p_value == 1.0 and result.difference == 0.0
    assert result.method == "permutation" and math.isnan(result.low) and math.isnan(result.high)
    same_distribution = paired_permutation_test(binary_auroc, *_two_models(200, 1), n_permutations=500)
    assert same_distribution.p_value >= 0.05


def test_permutation_detects_a_clear_difference():
    y, a, b = _two_models(300, 2, effect_b=0.0)  # B is noise
    result = paired_permutation_test(binary_auroc, y, a, b, n_permutations=999)
    assert result.difference > 0.2 and result.p_value < 0.01
    assert result.p_value == pytest.approx(1 / 1000)  # (0 + 1) / (999 + 1): never 0


def test_permutation_is_seeded_and_batched_paths_equal_the_generic_one():
    y, a, b = _two_models(400, 3, effect_b=0.8)
    first = paired_permutation_test(binary_auroc, y, a, b, n_permutations=700, seed=5)
    again = paired_permutation_test(binary_auroc, y, a, b, n_permutations=700, seed=5)
    assert (again.p_value, again.difference) == (first.p_value, first.difference)
    assert paired_permutation_test(binary_auroc, y, a, b, n_permutations=700, seed=6).p_value != first.p_value
    generic = paired_permutation_test(lambda t, s: binary_auroc(t, s), y, a, b, n_permutations=700, seed=5)
    assert generic.p_value == first.p_value and generic.difference == first.difference
    ties = np.round(a, 0), np.round(b, 0)  # tie groups take the reduceat path
    fast = paired_permutation_test(binary_auroc, y, *ties, n_permutations=300, seed=1)
    slow = paired_permutation_test(lambda t, s: binary_auroc(t, s), y, *ties, n_permutations=300, seed=1)
    assert fast.p_value == slow.p_value
    pred_a, pred_b = (a > 0.5).astype(int), (b > 0.5).astype(int)
    fast = paired_permutation_test(accuracy, y, pred_a, pred_b, n_permutations=300, seed=2)
    slow = paired_permutation_test(lambda t, s: accuracy(t, s), y, pred_a, pred_b, n_permutations=300, seed=2)
    assert fast.p_value == slow.p_value and fast.metric == "accuracy"


def test_permutation_swaps_whole_clusters():
    """20 patients x 50 images; A beats B on all images of 12 patients and loses on 8: a patient-level effect."""
    n_clusters, per = 20, 50
    clusters = np.repeat(np.arange(n_clusters), per)
    y = np.zeros(n_clusters * per, dtype=int)
    a_wins = np.repeat(np.arange(n_clusters) < 12, per)
    pred_a, pred_b = np.where(a_wins, 0, 1), np.where(a_wins, 1, 0)
    items = paired_permutation_test(accuracy, y, pred_a, pred_b, n_permutations=999)
    grouped = paired_permutation_test(accuracy, y, pred_a, pred_b, clusters=clusters, n_permutations=999)
    assert items.difference == grouped.difference == pytest.approx(0.2)
    assert items.p_value < 0.01 < 0.3 < grouped.p_value
    assert (items.n_clusters, grouped.n_clusters) == (1000, 20)
    named = np.array([f"patient-{c:02d}" for c in clusters])  # string ids, sorting as the ints: the same swaps
    assert paired_permutation_test(accuracy, y, pred_a, pred_b, clusters=named,
                                   n_permutations=999).p_value == grouped.p_value


def test_permutation_2000_items_2000_auroc_permutations_is_fast():
    y, a, b = _two_models(2000, 4, effect_b=0.9)
    start = time.perf_counter()
    result = paired_permutation_test(binary_auroc, y, a, b, n_permutations=2000)
    assert time.perf_counter() - start < 10.0  # ~0.3 s on one core; generous for a loaded CI machine
    assert result.n_resamples == 2000 and 0 < result.p_value <= 1


def test_permutation_bad_input():
    y, a, b = _two_models(50, 5)
    with pytest.raises(DataError, match="score_a has shape"):
        paired_permutation_test(binary_auroc, y, a, b[:-1])
    with pytest.raises(DataError, match="clusters has shape"):
        paired_permutation_test(binary_auroc, y, a, b, clusters=np.arange(10))
    with pytest.raises(DataError, match="n_permutations must be a positive integer"):
        paired_permutation_test(binary_auroc, y, a, b, n_permutations=0)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="metric_fn returned nan"):
        paired_permutation_test(binary_auroc, np.zeros(50, int), a, b)


# ------------------------------------------------------------------------------------------ Holm / BH


@pytest.mark.parametrize("method, fn", [("holm", holm), ("fdr_bh", benjamini_hochberg)])
def test_holm_and_bh_match_statsmodels(method, fn):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(11)
    for _ in range(25):  # multipletests runs gc.collect() on every call (~0.1 s in a test process): keep it short
        m = int(rng.integers(1, 40))
        p = rng.choice(np.round(rng.random(m) ** 2, 2), m)  # rounded and resampled: many ties, some 0s
        np.testing.assert_allclose(fn(p), multitest.multipletests(p, method=method)[1], rtol=0, atol=1e-12)
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.2])  # NaN: passed through, not counted in the family
    adjusted = fn(p)
    assert np.isnan(adjusted[[1, 4]]).all()
    finite = ~np.isnan(p)
    np.testing.assert_allclose(adjusted[finite], multitest.multipletests(p[finite], method=method)[1], atol=1e-12)


def test_holm_and_bh_properties_and_errors():
    p = np.array([0.04, 0.001, 0.5, 0.04, 0.9])
    for fn in (holm, benjamini_hochberg):
        adjusted = fn(p)
        assert (adjusted >= p).all() and (adjusted <= 1).all()
        order = np.argsort(p)
        assert (np.diff(adjusted[order]) >= 0).all()
        assert fn([]).shape == (0,) and np.isnan(fn([np.nan])).all()
    np.testing.assert_allclose(holm([0.3, 0.4, 0.5]), [0.9, 0.9, 0.9])  # 3 x 0.3, then the running maximum
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        holm([0.2, 1.5])
    with pytest.raises(DataError, match="1-D"):
        benjamini_hochberg([[0.1, 0.2]])


# ------------------------------------------------------------------------------------------------- verdicts


def _comparison(difference: float, low: float, high: float, p: float, method: str = "paired-bootstrap"):
    return PairedComparison(metric="auroc", estimate_a=0.8, estimate_b=0.8 - difference, difference=difference,
                            low=low, high=high, p_value=p, level=0.95, method=method, n_items=500,
                            n_clusters=500, n_resamples=2000)


def test_verdict_from_the_ci():
    assert verdict(_comparison(0.05, 0.01, 0.09, 0.01)) == "superior"
    assert verdict(_comparison(0.02, -0.01, 0.05, 0.2)) == "inconclusive"
    assert verdict(_comparison(-0.05, -0.09, -0.01, 0.01)) == "inferior"
    # With a margin: a CI above -margin is non-inferior, even when it lies wholly below 0.
    assert verdict(_comparison(0.02, -0.01, 0.05, 0.2), margin=0.02) == "non-inferior"
    assert verdict(_comparison(-0.01, -0.015, -0.005, 0.01), margin=0.02) == "non-inferior"
    assert verdict(_comparison(-0.05, -0.09, -0.01, 0.01), margin=0.02) == "inferior"
    assert verdict(_comparison(-0.01, -0.05, 0.03, 0.5), margin=0.02) == "inconclusive"
    no_ci = _comparison(0.05, math.nan, math.nan, 0.004, method="permutation")  # falls back to p < 1 - level
    assert verdict(no_ci) == "superior"
    assert verdict(_comparison(-0.05, math.nan, math.nan, 0.3, method="permutation")) == "inconclusive"
    with pytest.raises(DataError, match="no confidence interval"):
        verdict(no_ci, margin=0.01)
    with pytest.raises(DataError, match="margin must be"):
        verdict(no_ci, margin=-0.1)


def test_finding3_an_inconclusive_result_never_reads_as_rivals():
    # The case: a difference of -0.15 with CI [-0.35, 0.05] is inconclusive, with or without a margin,
    # and the summary says so instead of counting it under "≥".
    case = _comparison(-0.15, -0.35, 0.05, 0.15)
    rows = verdict_table([case], margin=0.02)
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["verdict_corrected"] == "inconclusive"
    line = summary_line(rows, subject="generalist+lora", object="off-the-shelf specialist", scope="ID")
    assert "≥" not in line
    assert line == ("generalist+lora vs off-the-shelf specialist, 1 ID comparison (margin 0.02; corrected by Holm): "
                    "0 superior, 0 non-inferior, 1 inconclusive, 0 inferior")


def test_finding3_non_inferiority_p_agrees_with_the_ci_and_is_corrected_with_the_family():
    c = _comparison(-0.01, -0.03, 0.01, 0.3)  # low = -0.03
    assert non_inferiority_p(c, 0.03) == pytest.approx(0.025, abs=1e-12)  # exactly at the bound: p = alpha / 2
    assert non_inferiority_p(c, 0.04) < 0.025 < non_inferiority_p(c, 0.02)
    # Alone, [-0.03, 0.01] with margin 0.035 is non-inferior; in a family of 4 after Holm it no longer is.
    alone = verdict_table([c], margin=0.035, correction="none")[0]
    assert alone["verdict"] == alone["verdict_corrected"] == "non-inferior"
    family = verdict_table([c] * 4, margin=0.035, correction="holm")
    assert all(r["verdict"] == "non-inferior" and r["verdict_corrected"] == "inconclusive" for r in family)
    assert family[0]["p_non_inferiority_corrected"] == pytest.approx(4 * alone["p_non_inferiority"])
    # A significant loss inside the margin is non-inferior; outside it, inferior.
    small_loss = _comparison(-0.01, -0.015, -0.005, 0.0001)
    assert verdict_table([small_loss], margin=0.02)[0]["verdict_corrected"] == "non-inferior"
    assert verdict_table([small_loss], margin=0.0)[0]["verdict_corrected"] == "inferior"


def test_verdict_table_and_summary_line():
    comparisons = [
        _comparison(0.05, 0.01, 0.09, 0.001),   # superior, stays significant after Holm (0.001 * 4)
        _comparison(0.03, 0.001, 0.06, 0.035),  # borderline: superior uncorrected, inconclusive after Holm
        _comparison(0.01, -0.02, 0.04, 0.5),    # inconclusive
        _comparison(-0.06, -0.1, -0.02, 0.002),  # inferior, significant after Holm
    ]
    rows = verdict_table(comparisons, level=0.95, correction="holm", labels=["a", "b", "c", "d"])
    assert [r["label"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["verdict"] for r in rows] == ["superior", "superior", "inconclusive", "inferior"]
    assert [r["verdict_corrected"] for r in rows] == ["superior", "inconclusive", "inconclusive", "inferior"]
    np.testing.assert_allclose([r["p_holm"] for r in rows], [0.004, 0.07, 0.5, 0.006])
    np.testing.assert_allclose([r["p_bh"] for r in rows], [0.004, 0.035 * 4 / 3, 0.5, 0.004])
    assert rows[1]["p_corrected"] == rows[1]["p_holm"] and rows[0]["difference"] == 0.05
    assert summary_line(rows) == ("generalist+LoRA vs specialist, 4 comparisons (margin 0; corrected by Holm): "
                                  "1 superior, 0 non-inferior, 2 inconclusive, 1 inferior")
    bh = verdict_table(comparisons, correction="bh")
    assert [r["verdict_corrected"] for r in bh] == ["superior", "superior", "inconclusive", "inferior"]
    assert summary_line(bh, subject="A", object="B").endswith(
        "corrected by Benjamini-Hochberg): 2 superior, 0 non-inferior, 1 inconclusive, 1 inferior")
    none = verdict_table(comparisons, correction="none")
    assert [r["verdict_corrected"] for r in none] == [r["verdict"] for r in rows]
    assert "uncorrected" in summary_line(none)


def test_lower_is_better_metrics_mirror_both_verdicts():
    # A Brier difference A - B of -0.05 (CI below 0) means A is better: superior, corrected or not.
    better = _comparison(-0.05, -0.09, -0.01, 0.001)
    assert verdict(better) == "inferior" and verdict(better, higher_is_better=False) == "superior"
    worse, tie = _comparison(0.04, 0.01, 0.07, 0.002), _comparison(0.01, -0.02, 0.04, 0.5)
    rows = verdict_table([better, worse, tie], higher_is_better=False)
    assert [r["verdict"] for r in rows] == ["superior", "inferior", "inconclusive"]
    assert [r["verdict_corrected"] for r in rows] == ["superior", "inferior", "inconclusive"]
    # Margins are oriented too: a Brier rise of at most 0.01 is non-inferior at margin 0.02.
    slightly_worse = _comparison(0.005, -0.002, 0.01, 0.2)
    assert verdict(slightly_worse, margin=0.02, higher_is_better=False) == "non-inferior"
    assert summary_line(rows, subject="A", object="B", scope="ID") == (
        "A vs B, 3 ID comparisons (margin 0; corrected by Holm): 1 superior, 0 non-inferior, 1 inconclusive, "
        "1 inferior")


def test_verdict_table_errors():
    c = _comparison(0.05, 0.01, 0.09, 0.01)
    with pytest.raises(UnknownNameError, match="Did you mean 'holm'"):
        verdict_table([c], correction="hlm")
    with pytest.raises(DataError, match="labels has 2 entries"):
        verdict_table([c], labels=["x", "y"])
    with pytest.raises(DataError, match="computed at level 0.95 but verdict_table was given level=0.9"):
        verdict_table([c], level=0.9)
    with pytest.raises(DataError, match="margins has 2 entries"):
        verdict_table([c], margin=[0.1, 0.2])
    with pytest.raises(DataError, match="margin must be a finite number"):
        verdict_table([c], margin=float("nan"))
    assert verdict_table([]) == []


# ------------------------------------------------------------------------------------------------ bad input


def test_delong_bad_input_messages():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.linspace(0, 1, 6)
    with pytest.raises(DataError, match=r"y_true has 6 rows but score_b has 5.*same examples"):
        delong_test(y, s, s[:5])
    with pytest.raises(DataError, match=r"binary labels 0/1.*got label\(s\) \[2\].*delong_test_multiclass"):
        delong_test(np.array([0, 1, 2, 1, 0, 1]), s, s)
    with pytest.raises(DataError, match=r"level must be .* strictly between 0 and 1, got 95.*level=0.95"):
        delong_ci(y, s, level=95)
    with pytest.raises(DataError, match="level must be"):
        delong_test(y, s, s, level=1.0)
    with pytest.raises(DataError, match=r"6 positive and 0 negative.*at least 2 of each.*both classes"):
        delong_test(np.ones(6, int), s, s)
    with pytest.raises(DataError, match="integer class labels"):
        delong_ci(s, s)
    with pytest.raises(DataError, match=r"\[N, 2\] matrix.*delong_test_multiclass"):
        delong_test(y, np.ones((6, 3)), s)
    with pytest.raises(DataError, match="NaN/inf"):
        delong_ci(y, np.r_[s[:5], np.nan])


# ---------------------------------------------------------------------------------------------- import hygiene


def test_stats_modules_do_not_import_torch():
    code = ("import medrival.stats.delong, medrival.stats.multiple, medrival.stats.verdicts, "
            "medrival.stats.permutation, sys; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------- clustered DeLong (Obuchowski)


def _clustered_sample(rng, patients: int = 60, per: int = 8):
    """Images of patients: per-patient prevalence and per-patient shifts of each model's scores (a null effect)."""
    clusters = np.repeat(np.arange(patients), per)
    y = (rng.random(clusters.size) < rng.beta(2, 3, patients)[clusters]).astype(int)
    shift_a, shift_b = rng.normal(0, 1.5, patients)[clusters], rng.normal(0, 1.5, patients)[clusters]
    return y, y + shift_a + rng.normal(0, 1, y.size), y + shift_b + rng.normal(0, 1, y.size), clusters


def _obuchowski_by_kernel(y, score, clusters) -> float:
    """Obuchowski (1997) variance of one AUROC straight from the kernel matrix, cluster by cluster (O(m n))."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    psi = (score[pos][:, None] > score[neg][None, :]) + 0.5 * (score[pos][:, None] == score[neg][None, :])
    auc, m, n = psi.mean(), pos.size, neg.size
    ids = np.unique(clusters)
    a = np.array([psi[clusters[pos] == k].sum() / n for k in ids]) - auc * np.array([(clusters[pos] == k).sum()
                                                                                     for k in ids])
    b = np.array([psi[:, clusters[neg] == k].sum() / m for k in ids]) - auc * np.array([(clusters[neg] == k).sum()
                                                                                        for k in ids])
    i10, i01, i = (np.array([(clusters[pos] == k).any() for k in ids]).sum(),
                   np.array([(clusters[neg] == k).any() for k in ids]).sum(), ids.size)
    s10, s01 = i10 / ((i10 - 1) * m) * (a @ a), i01 / ((i01 - 1) * n) * (b @ b)
    return s10 / m + s01 / n + 2 * (i / (i - 1)) * (a @ b) / (m * n)


def test_clustered_delong_matches_the_kernel_formula_and_reduces_to_delong():
    rng = np.random.default_rng(3)
    y, a, b, clusters = _clustered_sample(rng, patients=12, per=5)
    a = np.round(a, 1)  # ties
    ci = delong_ci(y, a, clusters=clusters, level=0.95)
    assert 0 < ci.low and ci.high < 1  # not clipped, so the half-width is z * sqrt(var)
    half = (ci.high - ci.low) / 2
    assert half == pytest.approx(1.959963984540054 * math.sqrt(_obuchowski_by_kernel(y, a, clusters)), rel=1e-9)
    assert ci.method == "delong-clustered" and ci.n_clusters == 12
    # every item its own cluster (or none): DeLong exactly, to the last bit
    plain, singletons = delong_test(y, a, b), delong_test(y, a, b, clusters=np.arange(y.size))
    assert (plain.p_value, plain.low, plain.high) == (singletons.p_value, singletons.low, singletons.high)
    assert singletons.method == "delong"


def test_finding7_clustered_delong_keeps_its_size_where_plain_delong_does_not():
    rng = np.random.default_rng(0)
    plain, clustered = [], []
    for _ in range(300):  # 60 patients x 8 images, no true difference between the models
        y, a, b, clusters = _clustered_sample(rng)
        plain.append(delong_test(y, a, b).p_value < 0.05)
        clustered.append(delong_test(y, a, b, clusters=clusters).p_value < 0.05)
    assert np.mean(plain) > 0.1  # anti-conservative: about 13 % at a nominal 5 %
    assert 0.02 <= np.mean(clustered) <= 0.085


def test_clustered_delong_se_agrees_with_the_cluster_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    y, a, b, clusters = _clustered_sample(rng)
    result = delong_test(y, a, b, clusters=clusters)
    se = (result.high - result.low) / (2 * 1.959963984540054)
    members = [np.flatnonzero(clusters == k) for k in range(60)]
    draws = []
    for _ in range(800):
        rows = np.concatenate([members[k] for k in rng.integers(0, 60, 60)])
        draws.append(roc_auc_score(y[rows], a[rows]) - roc_auc_score(y[rows], b[rows]))
    assert se == pytest.approx(np.std(draws, ddof=1), rel=0.15)


def test_clustered_delong_bad_clusters():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match="one id per item"):
        delong_test(y, [0.1, 0.9, 0.2, 0.8], [0.2, 0.7, 0.1, 0.9], clusters=[0, 0, 1])
    with pytest.raises(DataError, match="at least 2 clusters"):
        delong_test(y, [0.1, 0.9, 0.2, 0.8], [0.2, 0.7, 0.1, 0.9], clusters=[0, 0, 0, 0])
