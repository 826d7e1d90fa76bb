"""Issue 14, finding 2: bootstrap p-values must be able to pass Holm at grid size.

With B resamples the empirical bootstrap p cannot go below 2/(B + 1) (~0.001 for B = 2,000), so a Holm family of
300 comparisons could never be significant. The paired bootstrap now extrapolates the unresolved far tail with
the normal tail of the bootstrap distribution (``medrival.stats.bootstrap``, module docstring); these tests show
the old floor, that a 300-comparison family of 5-SE effects now passes Holm (classification metrics and VQA item
means, clustered), that the rule keeps its size under H0 (clustered and not), and that every procedure records
the smallest p it could have returned (``PairedComparison.p_floor``)."""
from __future__ import annotations

import math
import numpy as np
import pytest

import medrival.stats.bootstrap as bs
from medrival.metrics import binary_auroc
from medrival.stats.bootstrap import paired_bootstrap, paired_hierarchical_bootstrap
from medrival.stats.delong import delong_test
from medrival.stats.item_means import paired_hierarchical_mean_bootstrap, paired_mean_bootstrap
from medrival.stats.multiple import holm
from medrival.stats.permutation import paired_permutation_test

FAMILY, ALPHA, RESAMPLES = 300, 0.05, 2000
# Paired accuracy on 400 items with 65 items only A gets right and 20 only B: difference 0.1125, paired SE
# sqrt((p10 + p01 - (p10 - p01)^2) / n) = 0.0224, an observed effect of 5.0 SEs in every comparison. Observed, not
# only true: with true 5-SE effects the observed z of 300 comparisons spread as N(5, 1), the weakest near 2.3,
# and whether all pass Holm becomes a matter of power; here the question is resolution.
N_ITEMS, ONLY_A, ONLY_B, BOTH = 400, 65, 20, 240


# ------------------------------------------------------------------------------------------------ families


def _accuracy_data(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary labels and one-hot predictions of two models, A ahead of B by 5 paired SEs (shuffled items)."""
    rng = np.random.default_rng([14, 2, k])
    y = rng.integers(0, 2, N_ITEMS)
    right_a = np.zeros(N_ITEMS, bool)
    right_b = np.zeros(N_ITEMS, bool)
    right_a[:ONLY_A + BOTH] = True
    right_b[ONLY_A:ONLY_A + BOTH + ONLY_B] = True
    order = rng.permutation(N_ITEMS)
    one_hot = np.eye(2)
    return y, one_hot[np.where(right_a[order], y, 1 - y)], one_hot[np.where(right_b[order], y, 1 - y)]


@pytest.fixture(scope="module")
def accuracy_family() -> tuple[list, np.ndarray]:
    """The 300 comparisons, and the p-values the old rule (the empirical p alone) gives on the same resamples."""
    old, real = [], bs._bootstrap_p

    def spy(difference, d):
        old.append(bs._empirical_p(d)[0])
        return real(difference, d)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bs, "_bootstrap_p", spy)
        family = [paired_bootstrap("accuracy", *_accuracy_data(k), n_resamples=RESAMPLES, seed=k)
                  for k in range(FAMILY)]
    return family, np.array(old)


def test_finding2_empirical_p_alone_cannot_pass_holm_at_grid_size(accuracy_family):
    """The old rule on the same family: every p sits at the floor 2/(B + 1), and Holm multiplies the smallest by
    300, so nothing is significant however large the effects."""
    _, old = accuracy_family
    floor = 2 / (RESAMPLES + 1)
    assert old.size == FAMILY and (old == floor).all()
    assert FAMILY * floor > ALPHA
    assert not (holm(old) <= ALPHA).any()


def test_finding2_family_of_300_five_se_effects_all_significant_after_holm(accuracy_family):
    family, _ = accuracy_family
    assert all(c.difference == pytest.approx((ONLY_A - ONLY_B) / N_ITEMS) for c in family)
    p = np.array([c.p_value for c in family])
    assert (holm(p) <= ALPHA).all()
    assert p.max() < 1e-5  # 2 Phi(-5) = 5.7e-7: resolved far below the Monte Carlo floor of 1e-3
    assert all(c.p_floor == 0.0 and c.n_resamples == RESAMPLES and c.low > 0 for c in family)


def _clustered_pair(rng, n_clusters: int, per: int, z: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-question scores of two arms on images of ``per`` questions. The difference has an image effect (sd 0.5)
    and a question effect (sd 0.5); its mean is 0 in expectation (``z`` None: H0) or, observed, ``z`` SEs of the
    image-level mean (the SE that the cluster bootstrap estimates)."""
    clusters = np.repeat(rng.permutation(n_clusters), per)
    base = rng.normal(0, 1, n_clusters)[clusters] + rng.normal(0, 0.5, clusters.size)
    diff = rng.normal(0, 0.5, n_clusters)[clusters] + rng.normal(0, 0.5, clusters.size)
    if z is not None:
        image_means = np.bincount(clusters, weights=diff) / per
        diff += z * image_means.std() / math.sqrt(n_clusters) - diff.mean()
    return base + diff, base, clusters.astype(str)


def test_finding2_vqa_item_means_family_of_300_clustered_all_significant_after_holm():
    """The VQA arms' path (item means, cluster bootstrap over images) gets the same resolution."""
    rng = np.random.default_rng(1402)
    p = [paired_mean_bootstrap(*_clustered_pair(rng, 150, 3, 5.0), n_resamples=RESAMPLES, seed=k).p_value
         for k in range(FAMILY)]
    assert (holm(p) <= ALPHA).all() and max(p) < 1e-5  # z ~ 5 give or take the bootstrap SE's noise


# ---------------------------------------------------------------------------------------------- size (H0)


def _null_auroc(rng, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    shared = rng.normal(size=n)  # correlated models of equal quality
    return y, y + shared + 0.7 * rng.normal(size=n), y + shared + 0.7 * rng.normal(size=n)


@pytest.mark.parametrize("clustered", [False, True], ids=["items", "images"])
def test_finding2_p_rule_has_nominal_size_under_h0(monkeypatch, clustered):
    """400 simulated nulls (AUROC on items; clustered item means on images), B = 1,000: the reported p and the
    normal-tail p it falls back to both reject H0 at 5 % in 2-9 % of the data sets."""
    normal = []
    real = bs._bootstrap_p

    def spy(difference, d):
        normal.append(bs._normal_p(difference, d))  # the tail rule alone, on the same bootstrap differences
        return real(difference, d)

    monkeypatch.setattr(bs, "_bootstrap_p", spy)
    rng = np.random.default_rng(77 + clustered)
    reported = []
    for k in range(400):
        if clustered:
            a, b, clusters = _clustered_pair(rng, 60, 3, None)
            result = paired_mean_bootstrap(a, b, clusters, n_resamples=1000, seed=k)
        else:
            result = paired_bootstrap("auroc", *_null_auroc(rng), n_resamples=1000, seed=k)
        reported.append(result.p_value)
    for p in (np.array(reported), np.array(normal)):
        assert 0.02 <= np.mean(p <= ALPHA) <= 0.09


# ------------------------------------------------------------------------------------------------ the rule


def test_finding2_p_rule_on_bootstrap_differences():
    rng = np.random.default_rng(3)
    floor = 2 / 2001
    resolved = rng.normal(0.1, 0.1, 2000)  # ~16 % of resamples below 0: the empirical p, unchanged
    tail = min(np.sum(resolved <= 0), np.sum(resolved >= 0))
    assert bs._bootstrap_p(0.1, resolved) == min(1.0, 2 * (tail + 1) / 2001)
    far = rng.normal(1.0, 0.1, 2000)  # none below 0: the normal tail at |z| ~ 10
    assert bs._bootstrap_p(1.0, far) == pytest.approx(math.erfc(1.0 / np.std(far, ddof=1) / math.sqrt(2)))
    assert bs._bootstrap_p(1.0, far) < 1e-20
    skewed = np.r_[np.full(1999, 0.01), 10.0]  # none below 0, but a huge SE: capped at the floor, never above
    assert bs._bootstrap_p(0.01, skewed) == floor
    assert bs._bootstrap_p(0.3, np.full(2000, 0.3)) == 0.0  # a point mass away from 0 (as DeLong)
    assert bs._bootstrap_p(0.0, np.zeros(2000)) == 1.0  # identical models
    assert bs._bootstrap_p(0.2, np.array([0.2])) == 1.0  # one resample: floor 1
    assert bs._bootstrap_p(40.0, far + 39.0) == 0.0  # past |z| ~ 38 the tail underflows: p_floor is 0.0


def test_finding2_every_procedure_records_its_p_floor():
    rng = np.random.default_rng(5)
    y, a, b = _null_auroc(rng, 300)
    boot = paired_bootstrap("auroc", y, a, b, n_resamples=300)
    assert boot.p_floor == 0.0 and boot.as_dict()["p_floor"] == 0.0
    assert paired_hierarchical_bootstrap("auroc", y, [a, a + 0.1], [b], n_resamples=300).p_floor == 0.0
    assert paired_mean_bootstrap(a, b, n_resamples=300).p_floor == 0.0
    assert paired_hierarchical_mean_bootstrap([a], [b, b], n_resamples=300).p_floor == 0.0
    assert paired_permutation_test(binary_auroc, y, a, b, n_permutations=999).p_floor == 1 / 1000
    assert delong_test(y, a, b).p_floor == 0.0
    with pytest.warns(Warning):
        undefined = paired_bootstrap("auroc", np.zeros(50, int), a[:50], b[:50], n_resamples=100)
    assert math.isnan(undefined.p_value) and math.isnan(undefined.p_floor)


def test_finding2_family_speed_small():
    out = bs.family_speed(n_comparisons=10, n_items=2000, n_resamples=500, gap=0.4)
    assert out["holm_significant"] == 10 and out["max_p"] < out["empirical_p_floor"]
    assert {"family_s", "n_comparisons", "n_items", "n_resamples", "median_effect_se"} <= set(out)
    again = bs.family_speed(n_comparisons=10, n_items=2000, n_resamples=500, gap=0.4)
    assert again["max_p"] == out["max_p"]


def _multiclass(rng, n: int = 600, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, k, n)
    logits_a = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    logits_b = logits_a + rng.normal(size=(n, k))
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    return y, softmax(logits_a), softmax(logits_b)


@pytest.mark.parametrize("metric", ["auroc", "accuracy", "balanced_accuracy", "macro_f1", "brier"])
def test_finding2_kept_uint8_resamples_equal_freshly_drawn_int32_ones(monkeypatch, metric):
    """Counts are now handed to the metrics as (kept) uint8; every metric gives the same result to the last bit
    as with the int32 counts drawn afresh for each comparison (the code before the cache)."""
    y, a, b = _multiclass(np.random.default_rng(11))
    clusters = np.arange(y.size) // 2
    options = dict(clusters=clusters, n_resamples=300, seed=4)
    bs.clear_resample_cache()
    cold = paired_bootstrap(metric, y, a, b, **options)
    warm = paired_bootstrap(metric, y, a, b, **options)
    hier = paired_hierarchical_bootstrap(metric, y, [a, b], [b], **options)
    monkeypatch.setattr(bs, "_item_counts", lambda seed, k, size, n: bs._counts(bs._generator(seed, k), size, n))
    assert paired_bootstrap(metric, y, a, b, **options) == cold == warm
    assert paired_hierarchical_bootstrap(metric, y, [a, b], [b], **options) == hier
    bs.clear_resample_cache()


def test_finding2_kept_resamples_give_identical_results_and_respect_the_cap(monkeypatch):
    """Comparisons on test sets of one size re-use the drawn resamples (the family's speed); the results are the
    same to the last bit as freshly drawn ones, and the kept counts stay under their memory cap."""
    rng = np.random.default_rng(9)
    y, a, b = _null_auroc(rng, 3000)
    bs.clear_resample_cache()
    cold = paired_bootstrap("auroc", y, a, b, n_resamples=400, seed=2)
    assert bs._COUNTS_CACHE  # kept
    warm = paired_bootstrap("auroc", y, a, b, n_resamples=400, seed=2)
    other_pair = paired_bootstrap("auroc", y, b, a + 0.1, n_resamples=400, seed=2)
    bs.clear_resample_cache()
    assert warm == cold and paired_bootstrap("auroc", y, b, a + 0.1, n_resamples=400, seed=2) == other_pair
    means = paired_hierarchical_mean_bootstrap([a, b], [b], np.arange(3000) // 3, n_resamples=400, seed=2)
    with pytest.MonkeyPatch.context() as patch:  # int32 counts drawn afresh: the code before the cache
        patch.setattr(bs, "_item_counts", lambda seed, k, size, n: bs._counts(bs._generator(seed, k), size, n))
        assert paired_hierarchical_mean_bootstrap([a, b], [b], np.arange(3000) // 3, n_resamples=400, seed=2) == means
    bs.clear_resample_cache()
    monkeypatch.setattr(bs, "_COUNTS_CACHE_BYTES", 1 << 20)  # 1 MiB: less than one test set's 1.2 MB of counts
    for n in (3000, 3001, 3002):
        paired_bootstrap("auroc", y[:n], a[:n], b[:n], n_resamples=400, seed=2)
        assert sum(c.nbytes for c in bs._COUNTS_CACHE.values()) <= 1 << 20
    bs.clear_resample_cache()
