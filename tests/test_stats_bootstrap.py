"""Bootstrap CIs and paired comparisons: weighted metrics against the project's metrics on explicitly repeated
arrays (with ties), coverage of the percentile and BCa intervals in seeded simulations, cluster, paired and
hierarchical behaviour, determinism, and bad input."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from statistics import NormalDist

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, brier_score_loss

import medrival.stats.bootstrap as bs
from medrival.core.errors import ConfigError, DataError, UnknownNameError
from medrival.metrics import (
    UndefinedMetricWarning,
    accuracy,
    balanced_accuracy,
    binary_auroc,
    macro_f1,
    multiclass_auroc,
    multilabel_auroc,
)
from medrival.stats.bootstrap import (
    BootstrapWarning,
    bootstrap_ci,
    bootstrap_speed,
    hierarchical_bootstrap_ci,
    paired_bootstrap,
    paired_hierarchical_bootstrap,
)
from medrival.stats.types import Interval, PairedComparison
from medrival.stats.weighted import predictions, weighted_metric

PHI = NormalDist().cdf


def _binary(n: int, d: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binormal scores: negatives N(0, 1), positives N(d, 1); population AUROC = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    return y, rng.normal(size=n) + d * y


# -------------------------------------------------------------------------------------------------- imports


def test_import_does_not_load_torch():
    code = "import sys, medrival.stats.bootstrap, medrival.stats.weighted; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ weighted metrics == repeated-array metrics


def _case(task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with every class present, and scores on a 5-value grid in [0, 1] (many ties, argmax ties too)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 80))
    if task == "binary":
        y = rng.permutation(np.r_[0, 1, rng.integers(0, 2, n - 2)])
        return y, rng.integers(0, 5, size=n) / 4
    if task == "binary2":
        y = rng.permutation(np.r_[0, 1, rng.integers(0, 2, n - 2)])
        return y, rng.integers(0, 5, size=(n, 2)) / 4
    if task == "multiclass":
        return rng.permutation(np.r_[0:4, rng.integers(0, 4, n - 4)]), rng.integers(0, 5, size=(n, 4)) / 4
    y = rng.integers(0, 2, size=(n, 3))
    y[:2] = [[0, 0, 0], [1, 1, 1]]
    return y, rng.integers(0, 5, size=(n, 3)) / 4


def _reference(metric: str, task: str, y: np.ndarray, s: np.ndarray) -> float:
    """The project's metric (scikit-learn / explicit formula where the project has none)."""
    kind = "binary" if task == "binary2" else task
    pred = predictions(kind, s)
    k = 2 if s.ndim == 1 else s.shape[1]
    if metric == "auroc":
        return {"binary": binary_auroc, "multiclass": multiclass_auroc, "multilabel": multilabel_auroc}[kind](y, s)
    if metric == "accuracy":
        return accuracy(y, pred)
    if metric == "balanced_accuracy":
        if kind != "multilabel":
            return balanced_accuracy(y, pred)
        return float(np.mean([balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(y.shape[1])]))
    if metric == "macro_f1":
        return macro_f1(y, pred) if kind == "multilabel" else macro_f1(y, pred, num_classes=k)
    if kind == "binary":
        return brier_score_loss(y, s[:, 1] if s.ndim == 2 else s)
    if kind == "multiclass":
        return float(((s - np.eye(k)[y]) ** 2).sum(axis=1).mean())
    return float(((s - y) ** 2).mean())


@pytest.mark.parametrize("task", ["binary", "binary2", "multiclass", "multilabel"])
@pytest.mark.parametrize("metric", ["auroc", "accuracy", "balanced_accuracy", "macro_f1", "brier"])
def test_weighted_metric_equals_metric_on_repeated_arrays(task, metric):
    for seed in range(4):
        y, s = _case(task, seed)
        rng = np.random.default_rng(100 + seed)
        counts = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=25)
        counts[0] = 1  # the full data
        counts[1, :len(y) // 2] = 0  # a resample missing many items
        got = weighted_metric(metric, y, s, counts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined AUROC / absent classes: compared as NaN below
            want = [_reference(metric, task, y[np.repeat(np.arange(len(y)), c)], s[np.repeat(np.arange(len(y)), c)])
                    for c in counts]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)
        if metric == "auroc":
            assert np.array_equal(got, np.asarray(want), equal_nan=True)  # exact, not just close


def test_weighted_auroc_with_ties_only_between_classes():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.9])
    counts = np.array([[1, 1, 1, 1, 1, 1], [3, 0, 2, 0, 1, 0], [0, 0, 0, 4, 1, 1]])
    want = [binary_auroc(np.repeat(y, c), np.repeat(s, c)) for c in counts]
    assert weighted_metric("auroc", y, s, counts).tolist() == want


def test_weighted_metric_undefined_resample_is_nan_without_warning():
    y, s = _binary(20, 1.0, 0)
    counts = np.where(y == 1, 2, 0)[None, :]  # positives only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(weighted_metric("auroc", y, s, counts)[0])


def test_weighted_metric_rejects_bad_counts():
    y, s = _binary(10, 1.0, 0)
    with pytest.raises(DataError, match="non-negative integers"):
        weighted_metric("auroc", y, s, -np.ones(10, dtype=int))
    with pytest.raises(DataError, match=r"\[b, 10\]"):
        weighted_metric("auroc", y, s, np.ones((2, 9), dtype=int))


# -------------------------------------------------------------------------------------- engine == explicit


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_fast_path_equals_callable_path_on_the_same_resamples(method):
    """The vectorised weighted AUROC and a callable evaluated on rebuilt resamples see identical resamples."""
    y, s = _binary(60, 1.0, 1)
    clusters = np.repeat(np.arange(30), 2)
    fast = bootstrap_ci("auroc", y, s, clusters=clusters, n_resamples=300, method=method, seed=3)
    slow = bootstrap_ci(binary_auroc, y, s, clusters=clusters, n_resamples=300, method=method, seed=3)
    assert fast == slow


def test_multiclass_and_multilabel_named_equal_callable():
    y, s = _case("multiclass", 5)
    fast = bootstrap_ci("macro_f1", y, s, n_resamples=100, seed=1)
    slow = bootstrap_ci(lambda a, b: macro_f1(a, b.argmax(1), num_classes=4), y, s, n_resamples=100, seed=1)
    assert (fast.low, fast.high, fast.n_resamples) == (slow.low, slow.high, slow.n_resamples)
    y, s = _case("multilabel", 5)
    fast = bootstrap_ci("auroc", y, s, n_resamples=100, seed=1)
    slow = bootstrap_ci(multilabel_auroc, y, s, n_resamples=100, seed=1)
    assert fast.low == pytest.approx(slow.low, abs=1e-12) and fast.high == pytest.approx(slow.high, abs=1e-12)
    assert fast.n_resamples == slow.n_resamples


# ---------------------------------------------------------------------------------------------- coverage


def _coverage(n_datasets: int, d: float, method: str, n: int, n_resamples: int) -> float:
    truth = PHI(d / math.sqrt(2))
    hits = 0
    for seed in range(n_datasets):
        y, s = _binary(n, d, seed)
        ci = bootstrap_ci("auroc", y, s, n_resamples=n_resamples, method=method, seed=seed)
        hits += ci.low <= truth <= ci.high
    return hits / n_datasets


def test_percentile_ci_coverage_of_binary_auroc():
    """1,000 seeded binormal data sets (n = 200, population AUROC 0.76), B = 500: nominal 95 %."""
    coverage = _coverage(1000, 1.0, "percentile", 200, 500)
    print(f"percentile coverage: {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97


def test_bca_ci_coverage_of_skewed_auroc():
    """AUROC 0.95 (skewed bootstrap distribution), 1,000 data sets, n = 200, B = 500: BCa within 93-97 %."""
    coverage = _coverage(1000, 2.33, "bca", 200, 500)
    print(f"BCa coverage: {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97


# ---------------------------------------------------------------------------------------------- clusters


def test_cluster_ci_wider_than_item_ci_for_duplicated_items():
    y0, s0 = _binary(80, 1.0, 2)
    y, s, clusters = np.repeat(y0, 5), np.repeat(s0, 5), np.repeat(np.arange(80), 5)
    item = bootstrap_ci("auroc", y, s, n_resamples=1000, seed=0)
    cluster = bootstrap_ci("auroc", y, s, clusters=clusters, n_resamples=1000, seed=0)
    assert cluster.n_clusters == 80 and item.n_clusters == 400
    assert cluster.estimate == item.estimate
    assert cluster.high - cluster.low > 1.8 * (item.high - item.low)  # ~sqrt(5) wider


def test_singleton_clusters_reproduce_the_item_bootstrap():
    y, s = _binary(100, 1.0, 3)
    item = bootstrap_ci("auroc", y, s, n_resamples=500, method="bca", seed=4)
    assert bootstrap_ci("auroc", y, s, clusters=np.arange(100), n_resamples=500, method="bca", seed=4) == item
    ids = np.array([f"img-{i}" for i in np.random.default_rng(0).permutation(100)])  # unsorted string ids
    assert bootstrap_ci("auroc", y, s, clusters=ids, n_resamples=500, method="bca", seed=4) == item


def test_bca_with_grouped_jackknife_on_many_clusters():
    y, s = _binary(1000, 1.0, 5)
    clusters = np.repeat(np.arange(500), 2)
    ci = bootstrap_ci("auroc", y, s, clusters=clusters, n_resamples=500, method="bca", seed=0)
    pct = bootstrap_ci("auroc", y, s, clusters=clusters, n_resamples=500, seed=0)
    assert ci.method == "bca" and ci.n_clusters == 500
    assert ci.low < ci.estimate < ci.high
    assert abs(ci.low - pct.low) < 0.01 and abs(ci.high - pct.high) < 0.01


def test_bca_falls_back_to_percentile_when_undefined():
    y = np.array([0, 1] * 20)
    ci = bootstrap_ci("accuracy", y, np.eye(2)[y], n_resamples=200, method="bca")  # always 1.0: a = 0/0
    assert ci.method == "bca->percentile"
    assert (ci.low, ci.estimate, ci.high) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------------ paired


def test_paired_identical_models():
    y, s = _binary(200, 1.0, 6)
    cmp = paired_bootstrap("auroc", y, s, s.copy(), n_resamples=500)
    assert isinstance(cmp, PairedComparison)
    assert (cmp.difference, cmp.low, cmp.high, cmp.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert cmp.method == "paired-bootstrap" and cmp.n_items == 200 and cmp.n_resamples == 500


def test_paired_clearly_better_model():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    good, poor = rng.normal(size=300) + 2.0 * y, rng.normal(size=300) + 0.5 * y
    cmp = paired_bootstrap("auroc", y, good, poor, n_resamples=1000, seed=1)
    assert cmp.difference > 0 and cmp.low > 0 and cmp.p_value < 0.01
    assert cmp.estimate_a == binary_auroc(y, good) and cmp.estimate_b == binary_auroc(y, poor)
    swapped = paired_bootstrap("auroc", y, poor, good, n_resamples=1000, seed=1)
    assert swapped.difference == -cmp.difference
    assert swapped.low == pytest.approx(-cmp.high, abs=1e-12)
    assert swapped.high == pytest.approx(-cmp.low, abs=1e-12)
    assert swapped.p_value == cmp.p_value


def test_paired_cluster_bootstrap_and_label_metrics():
    y, s = _case("multiclass", 9)
    other = np.roll(s, 1, axis=1)
    clusters = np.arange(len(y)) // 3
    cmp = paired_bootstrap("balanced_accuracy", y, s, other, clusters=clusters, n_resamples=300, seed=2)
    assert cmp.n_clusters == len(np.unique(clusters))
    assert cmp.low <= cmp.difference <= cmp.high
    assert 0 < cmp.p_value <= 1


# ------------------------------------------------------------------------------------------ hierarchical


def test_hierarchical_with_identical_draws_equals_plain_bootstrap():
    y, s = _binary(150, 1.0, 10)
    plain = bootstrap_ci("auroc", y, s, n_resamples=400, seed=5)
    hier = hierarchical_bootstrap_ci("auroc", y, [s, s.copy(), s.copy()], n_resamples=400, seed=5)
    assert hier.method == "hierarchical-percentile"
    assert hier.estimate == pytest.approx(plain.estimate, abs=1e-12)
    assert hier.low == pytest.approx(plain.low, abs=1e-12) and hier.high == pytest.approx(plain.high, abs=1e-12)


def test_hierarchical_with_different_draws_is_wider():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 300)
    draws = [rng.normal(size=300) + d * y for d in (0.6, 1.2, 2.5)]  # seeds of very different quality
    plain = bootstrap_ci("auroc", y, draws[1], n_resamples=500, seed=0)
    hier = hierarchical_bootstrap_ci("auroc", y, draws, n_resamples=500, seed=0)
    assert hier.estimate == pytest.approx(np.mean([binary_auroc(y, d) for d in draws]))
    assert hier.high - hier.low > 2 * (plain.high - plain.low)


def test_paired_hierarchical():
    rng = np.random.default_rng(12)
    y = rng.integers(0, 2, 200)
    a, b = rng.normal(size=200) + 1.5 * y, rng.normal(size=200) + 1.0 * y
    single = paired_hierarchical_bootstrap("auroc", y, [a], [b], n_resamples=300, seed=3)
    plain = paired_bootstrap("auroc", y, a, b, n_resamples=300, seed=3)
    assert (single.low, single.high, single.p_value) == (plain.low, plain.high, plain.p_value)
    assert single.method == "paired-hierarchical-bootstrap"
    several = paired_hierarchical_bootstrap("auroc", y, [a, a + rng.normal(size=200)], [b], n_resamples=300, seed=3)
    assert several.estimate_b == plain.estimate_b and several.low <= several.difference <= several.high


# ------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_result_and_different_seed_different_bounds():
    y, s = _binary(300, 1.0, 13)
    first = bootstrap_ci("auroc", y, s, n_resamples=300, seed=1)
    assert bootstrap_ci("auroc", y, s, n_resamples=300, seed=1) == first
    other = bootstrap_ci("auroc", y, s, n_resamples=300, seed=2)
    assert (other.low, other.high) != (first.low, first.high)


def test_result_does_not_depend_on_thread_count(monkeypatch):
    y, s = _binary(3000, 1.0, 14)
    kwargs = dict(n_resamples=1000, seed=0)  # 3e6 resample x items: large enough to run in threads
    threaded = paired_bootstrap("auroc", y, s, s + np.random.default_rng(0).normal(size=3000), **kwargs)
    monkeypatch.setattr(bs, "_MAX_THREADS", 1)
    serial = paired_bootstrap("auroc", y, s, s + np.random.default_rng(0).normal(size=3000), **kwargs)
    assert threaded == serial


def test_bootstrap_speed_small():
    out = bootstrap_speed(n_items=500, n_resamples=200, seed=0)
    assert {"bootstrap_s", "difference", "low", "high"} <= set(out)
    assert out["low"] <= out["difference"] <= out["high"]
    again = bootstrap_speed(n_items=500, n_resamples=200, seed=0)
    assert (again["difference"], again["low"], again["high"]) == (out["difference"], out["low"], out["high"])


# --------------------------------------------------------------------------------------------- bad input


def test_mismatched_lengths():
    y, s = _binary(50, 1.0, 0)
    with pytest.raises(DataError, match="50 rows but y_score has 49"):
        bootstrap_ci("auroc", y, s[:49])
    with pytest.raises(DataError, match="score_b"):
        paired_bootstrap("auroc", y, s, s[:10])
    with pytest.raises(DataError, match="one id per item"):
        bootstrap_ci("auroc", y, s, clusters=np.arange(10))
    with pytest.raises(DataError, match="has shape"):
        bootstrap_ci(binary_auroc, y, s[:10])


def test_unknown_metric_suggests_close_names():
    y, s = _binary(50, 1.0, 0)
    with pytest.raises(ConfigError, match="Did you mean 'auroc'"):
        bootstrap_ci("aucroc", y, s)
    with pytest.raises(UnknownNameError, match="balanced_accuracy"):
        paired_bootstrap("balanced_acc", y, s, s)
    with pytest.raises(ConfigError, match="callable"):
        bootstrap_ci(3, y, s)


@pytest.mark.parametrize("kwargs, match", [
    (dict(level=1.0), "strictly between 0 and 1"), (dict(level=0), "strictly between 0 and 1"),
    (dict(n_resamples=0), "n_resamples"), (dict(n_resamples=2.5), "n_resamples"),
    (dict(method="bcaa"), "Did you mean 'bca'"), (dict(seed=-1), "seed"), (dict(task="binay"), "Did you mean"),
])
def test_bad_options(kwargs, match):
    y, s = _binary(50, 1.0, 0)
    with pytest.raises(ConfigError, match=match):
        bootstrap_ci("auroc", y, s, **kwargs)


def test_bad_shapes_and_values():
    y, s = _binary(50, 1.0, 0)
    with pytest.raises(DataError, match="probabilities in"):
        bootstrap_ci("brier", y, s)  # raw scores, not probabilities
    with pytest.raises(DataError, match="integer class labels"):
        bootstrap_ci("auroc", s, s)
    with pytest.raises(DataError, match="outside the expected range"):
        bootstrap_ci("auroc", y + 1, s)
    with pytest.raises(DataError, match="non-empty list"):
        hierarchical_bootstrap_ci("auroc", y, s)
    with pytest.raises(DataError, match="same task"):
        paired_hierarchical_bootstrap("auroc", y, [np.eye(2)[y]], [np.eye(3)[y]])


def test_one_class_gives_nan_interval_and_warning():
    y, s = np.ones(30, dtype=int), np.linspace(0, 1, 30)
    with pytest.warns(UndefinedMetricWarning, match="no negatives"):
        ci = bootstrap_ci("auroc", y, s, method="bca")
    assert isinstance(ci, Interval) and ci.method == "bca"
    assert math.isnan(ci.estimate) and math.isnan(ci.low) and math.isnan(ci.high)
    with pytest.warns(UndefinedMetricWarning):
        cmp = paired_bootstrap("auroc", y, s, s)
    assert math.isnan(cmp.difference) and math.isnan(cmp.p_value) and cmp.n_resamples == 0


def test_undefined_resamples_are_dropped_with_a_warning():
    y = np.zeros(40, dtype=int)
    y[:4] = 1  # all positives in cluster 0 of 10
    s = np.random.default_rng(0).normal(size=40) + y
    clusters = np.arange(40) // 4
    with pytest.warns(BootstrapWarning, match=r"of 1000 bootstrap resamples .* too few clusters"):
        ci = bootstrap_ci("auroc", y, s, clusters=clusters, n_resamples=1000)
    dropped = 1000 - ci.n_resamples
    assert 300 < dropped < 400  # P(cluster 0 never drawn) = 0.9 ** 10 = 0.35
