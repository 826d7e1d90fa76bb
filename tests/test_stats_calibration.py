"""Calibration (ECE, reliability table, Brier), subgroup metrics, age bands and operating thresholds.

Checked against hand computations and scikit-learn (``calibration_curve``, ``brier_score_loss``, ``roc_curve``,
``precision_recall_curve``); bootstrap CIs only where ``medrival.stats.bootstrap`` exists.
"""
from __future__ import annotations

import inspect
import math
import subprocess
import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_curve

from medrival.core.errors import DataError, MedrivalError, UnknownNameError
from medrival.metrics.classification import UndefinedMetricWarning, balanced_accuracy, binary_auroc
from medrival.stats.calibration import brier_score, calibration_curve_table, expected_calibration_error
from medrival.stats.subgroups import age_bands, subgroup_metrics, worst_group_gap
from medrival.stats.thresholds import choose_threshold, operating_point
from medrival.stats.types import Interval


def _calibrated_binary(n: int, seed: int, sharpen: float = 1.0):
    """p_true ~ U(0,1), y ~ Bernoulli(p_true); the model reports sigmoid(sharpen * logit(p_true))."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.001, 0.999, n)
    y = (rng.uniform(size=n) < p).astype(int)
    logit = np.log(p / (1 - p))
    return y, 1 / (1 + np.exp(-sharpen * logit))


# ------------------------------------------------------------------------------------------------------- ECE


def test_ece_binary_hand_computed():
    y = [0, 1, 1, 1, 0]
    p = [0.1, 0.2, 0.7, 0.9, 0.95]
    # bins [0, .5) and [.5, 1]: (2/5)|0.5 - 0.15| + (3/5)|2/3 - 0.85| = 0.14 + 0.11
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.25)
    # [N, 2] input uses column 1 and gives the same value
    p2 = np.stack([1 - np.array(p), p], axis=1)
    assert expected_calibration_error(y, p2, n_bins=2) == pytest.approx(0.25)


def test_ece_multiclass_top_label_hand_computed():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.3, 0.4]])
    y = [0, 0, 2]  # confidences .7 .5 .4, correct 1 0 1
    # bin [0, .5): {.4} -> (1/3)|1 - .4| = .2 ; bin [.5, 1]: {.7, .5} -> (2/3)|.5 - .6| = 1/15
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.2 + 1 / 15)
    assert expected_calibration_error(y, p, n_bins=2, task="multiclass") == pytest.approx(0.2 + 1 / 15)


def test_ece_multilabel_is_mean_of_binary():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(300, 3))
    y = (rng.uniform(size=(300, 3)) < p ** 2).astype(int)
    per_label = [expected_calibration_error(y[:, j], p[:, j]) for j in range(3)]
    assert expected_calibration_error(y, p) == pytest.approx(np.mean(per_label))
    assert expected_calibration_error(y, p, task="multilabel") == pytest.approx(np.mean(per_label))


def test_ece_empty_bins_skipped_and_edges_left_closed():
    # 10 bins, only two occupied: the sum runs over the occupied bins only.
    y = [1, 0, 1, 1]
    p = [0.05, 0.05, 0.95, 0.95]
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    table = calibration_curve_table(y, p, n_bins=10)
    assert len(table) == 10 and table["count"].sum() == 4
    assert table.loc[table["count"] == 0, ["mean_confidence", "accuracy"]].isna().all().all()
    # [0, .25), [.25, .5), [.5, .75), [.75, 1]: an edge value opens its bin; 1.0 sits in the last bin.
    edges = calibration_curve_table([0, 0, 0, 0, 1], [0.0, 0.25, 0.5, 0.75, 1.0], n_bins=4)
    assert edges["count"].tolist() == [1, 1, 1, 2]
    assert edges["lower"].tolist() == [0, 0.25, 0.5, 0.75] and edges["upper"].tolist() == [0.25, 0.5, 0.75, 1]


def test_calibration_table_matches_sklearn_uniform_and_quantile():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < p ** 1.5).astype(int)
    for strategy, n_bins in (("uniform", 15), ("quantile", 10)):
        prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        table = calibration_curve_table(y, p, n_bins=n_bins, strategy=strategy)
        nonempty = table[table["count"] > 0]
        np.testing.assert_allclose(nonempty["accuracy"], prob_true, rtol=1e-12)
        np.testing.assert_allclose(nonempty["mean_confidence"], prob_pred, rtol=1e-12)
        ece = (nonempty["count"] / 2000 * (nonempty["accuracy"] - nonempty["mean_confidence"]).abs()).sum()
        assert expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy) == pytest.approx(ece)
    quantile = calibration_curve_table(y, p, n_bins=10, strategy="quantile")
    assert quantile["count"].tolist() == [200] * 10  # equal-mass bins


def test_calibration_table_multiclass_and_multilabel_shape():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.3, 0.4]])
    t = calibration_curve_table([0, 0, 2], p, n_bins=2)
    assert list(t.columns) == ["bin", "lower", "upper", "count", "mean_confidence", "accuracy"]
    assert t["count"].tolist() == [1, 2] and t["accuracy"].tolist() == [1.0, 0.5]
    ml = calibration_curve_table([[0, 1], [1, 1]], [[0.2, 0.9], [0.6, 0.8]], n_bins=5)
    assert list(ml.columns)[0] == "label" and len(ml) == 10 and ml.groupby("label")["count"].sum().tolist() == [2, 2]


def test_perfectly_calibrated_has_small_ece_and_overconfident_larger():
    y, p = _calibrated_binary(100_000, seed=1)
    ece = expected_calibration_error(y, p)
    assert ece < 0.01
    y, p_over = _calibrated_binary(100_000, seed=1, sharpen=3.0)  # logits x3: systematically over-confident
    assert expected_calibration_error(y, p_over) > 0.05 > ece
    assert expected_calibration_error(y, p, strategy="quantile") < 0.01


def test_multiclass_calibrated_dirichlet_small_ece():
    rng = np.random.default_rng(2)
    p = rng.dirichlet([1.0, 1.0, 1.0, 1.0], size=100_000)
    y = (rng.uniform(size=(100_000, 1)) > p.cumsum(axis=1)).sum(axis=1)  # y ~ Categorical(p)
    assert expected_calibration_error(y, p) < 0.01
    sharp = p ** 4 / (p ** 4).sum(axis=1, keepdims=True)
    assert expected_calibration_error(y, sharp) > 0.05


def test_ece_empty_input_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="empty"):
        assert math.isnan(expected_calibration_error([], []))


@pytest.mark.parametrize("y, p, kwargs, error, match", [
    ([0, 1], [0.2, 1.3], {}, DataError, r"outside \[0, 1\].*sigmoid"),
    ([0, 1], [0.2, float("nan")], {}, DataError, "NaN"),
    ([0, 2], [0.2, 0.3], {}, DataError, "binary labels"),
    ([0, 1, 1], [0.2, 0.3], {}, DataError, "3 rows"),
    ([0, 1], [[0.5, 0.2, 0.1], [0.1, 0.1, 0.8]], {}, DataError, "sums to 0.8.*softmax"),
    ([0, 3], [[0.5, 0.4, 0.1], [0.1, 0.1, 0.8]], {}, DataError, r"0\.\.2"),
    ([0, 1], [0.2, 0.3], {"strategy": "unifrom"}, UnknownNameError, "Did you mean 'uniform'"),
    ([0, 1], [0.2, 0.3], {"n_bins": 0}, DataError, "positive integer"),
    ([0, 1], [0.2, 0.3], {"task": "binry"}, UnknownNameError, "Did you mean 'binary'"),
    ([0, 1], [0.2, 0.3], {"task": "vqa"}, UnknownNameError, "Known: binary"),
    ([0, 1], [[0.2, 0.8, 0.0], [0.3, 0.7, 0.0]], {"task": "binary"}, DataError, "task='multiclass'"),
    ([[0, 1]], [[0.2, 0.3, 0.1]], {}, DataError, "both must be"),
])
def test_ece_bad_input(y, p, kwargs, error, match):
    with pytest.raises(error, match=match):
        expected_calibration_error(y, p, **kwargs)


# ------------------------------------------------------------------------------------------------------ Brier


def test_brier_binary_matches_sklearn():
    rng = np.random.default_rng(4)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert brier_score(y, np.stack([1 - p, p], 1)) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert brier_score([0, 1, 1], [0.1, 0.8, 0.4]) == pytest.approx((0.01 + 0.04 + 0.36) / 3)


def test_brier_multiclass_original_definition():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]])
    # (.09 + .04 + .01) and (.16 + .25 + .01), averaged
    assert brier_score([0, 1], p) == pytest.approx(0.28)
    assert brier_score([0, 1], p) == pytest.approx(brier_score_loss([0, 1], p, labels=[0, 1, 2]))
    # two classes read as multiclass: twice the binary score
    p2 = np.array([[0.3, 0.7], [0.6, 0.4]])
    assert brier_score([1, 1], p2, task="multiclass") == pytest.approx(2 * brier_score([1, 1], p2))


def test_brier_multilabel_mean_over_labels():
    y = np.array([[1, 0], [0, 0], [1, 1]])
    p = np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.5]])
    expected = np.mean([brier_score(y[:, 0], p[:, 0]), brier_score(y[:, 1], p[:, 1])])
    assert brier_score(y, p) == pytest.approx(expected)


def test_brier_bad_input():
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        brier_score([0, 1], [-0.1, 0.5])
    with pytest.raises(DataError, match="integer class labels"):
        brier_score([0.5, 1], [0.1, 0.5])


# -------------------------------------------------------------------------------------------------- subgroups


def _subgroup_data(n: int = 400, seed: int = 5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    sex = rng.choice(np.array(["F", "M"], dtype=object), n)
    sex[:7] = None
    sex[7:10] = "unknown"
    return y, score, sex


def test_subgroup_table_values_and_missing_groups():
    y, score, sex = _subgroup_data()
    table = subgroup_metrics("auroc", y, score, {"sex": sex}, n_resamples=0, min_size=5)
    assert table["group"].tolist() == ["F", "M", "unknown", "missing"]  # "unknown" as written, missing last
    assert table["n"].tolist() == [int((sex == "F").sum()), int((sex == "M").sum()), 3, 7]
    for _, row in table.iterrows():
        mask = sex == row["group"] if row["group"] != "missing" else np.array([v is None for v in sex])
        if not row["undefined"]:
            assert row["estimate"] == pytest.approx(binary_auroc(y[mask], score[mask]))
    assert table["overall"].iloc[0] == pytest.approx(binary_auroc(y, score))
    assert table.loc[table["group"] == "unknown", "too_small"].item()  # 3 < 5, still reported
    assert "min_size=5" in table.loc[table["group"] == "unknown", "note"].item()
    assert table[["low", "high"]].isna().all().all()  # n_resamples=0: no CI
    assert set(table.columns) >= {"attribute", "group", "n", "metric", "estimate", "low", "high", "too_small",
                                  "undefined", "note", "overall", "higher_is_better"}


def test_subgroup_one_class_is_undefined_with_note():
    y = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    score = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.7, 0.4, 0.2])
    site = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])  # site b: positives only
    table = subgroup_metrics("auroc", y, score, {"site": site}, n_resamples=0, min_size=1)
    b = table[table["group"] == "b"].iloc[0]
    assert b["undefined"] and math.isnan(b["estimate"]) and "no negative examples" in b["note"]
    assert not table[table["group"] == "a"].iloc[0]["undefined"]
    # a label-based metric is still defined on that group
    acc = subgroup_metrics("balanced_accuracy", y, score, {"site": site}, n_resamples=0, min_size=1)
    with pytest.warns(UndefinedMetricWarning, match="not in y_true"):  # predicted 0, absent from group b
        expected = balanced_accuracy(y[4:], (score[4:] > 0.5).astype(int))
    assert acc.loc[acc["group"] == "b", "estimate"].item() == pytest.approx(expected)


def test_worst_group_gap_excludes_small_and_undefined():
    y, score, sex = _subgroup_data()
    band = np.where(np.arange(y.size) % 2 == 0, "young", "old").astype(object)
    band[:4] = "tiny"
    table = subgroup_metrics("auroc", y, score, {"sex": sex, "age_band": band}, n_resamples=0, min_size=20)
    gap = worst_group_gap(table).set_index("attribute")
    sex_rows = table[(table["attribute"] == "sex") & ~table["too_small"]].set_index("group")["estimate"]
    assert gap.loc["sex", "best"] == pytest.approx(sex_rows.max())
    assert gap.loc["sex", "worst"] == pytest.approx(sex_rows.min())
    assert gap.loc["sex", "gap"] == pytest.approx(sex_rows.max() - sex_rows.min())
    assert gap.loc["sex", "best_group"] == sex_rows.idxmax() and gap.loc["sex", "n_excluded"] == 2
    assert gap.loc["age_band", "n_groups"] == 2 and gap.loc["age_band", "n_excluded"] == 1
    assert gap.loc["sex", "overall"] == pytest.approx(binary_auroc(y, score))


def test_worst_group_gap_lower_is_better_and_too_few_groups():
    y, score, sex = _subgroup_data()
    table = subgroup_metrics("brier", y, score, {"sex": sex}, n_resamples=0)
    assert not table["higher_is_better"].any()
    gap = worst_group_gap(table).iloc[0]
    ok = table[~table["too_small"]].set_index("group")["estimate"]
    assert gap["best_group"] == ok.idxmin() and gap["worst_group"] == ok.idxmax()
    assert gap["gap"] == pytest.approx(ok.max() - ok.min()) and gap["gap"] >= 0
    single = subgroup_metrics("auroc", y, score, {"all": ["x"] * y.size}, n_resamples=0)
    one = worst_group_gap(single).iloc[0]
    assert math.isnan(one["gap"]) and "at least 2" in one["note"] and one["best_group"] == "x"
    with pytest.raises(DataError, match="subgroup_metrics"):
        worst_group_gap(pd.DataFrame({"a": [1]}))


def test_subgroup_callable_and_multiclass_names():
    rng = np.random.default_rng(6)
    p = rng.dirichlet([1, 1, 1], 90)
    y = p.argmax(axis=1)
    y[:10] = (y[:10] + 1) % 3
    g = {"site": np.repeat(["a", "b", "c"], 30)}
    acc = subgroup_metrics("accuracy", y, p, g, n_resamples=0)
    assert acc["estimate"].tolist() == pytest.approx([20 / 30, 1.0, 1.0])

    def top1(yt, ys):
        return float((np.asarray(ys).argmax(1) == yt).mean())

    same = subgroup_metrics(top1, y, p, g, n_resamples=0)
    assert same["metric"].iloc[0] == "top1" and same["estimate"].tolist() == acc["estimate"].tolist()


def test_subgroup_passes_cluster_subsets_to_bootstrap(monkeypatch):
    calls = []

    def fake_ci(metric, y_true, y_score, *, clusters=None, n_resamples=2000, level=0.95, method="percentile",
                seed=0, task=None):
        calls.append(dict(metric=metric, n=len(y_true), clusters=clusters, n_resamples=n_resamples, level=level,
                          seed=seed, task=task))
        if len(y_true) < 3:
            raise DataError("too few items to resample")
        return Interval(0.5, 0.4, 0.6, level, method, n_resamples, len(set(clusters.tolist())))

    monkeypatch.setitem(sys.modules, "medrival.stats.bootstrap", types.SimpleNamespace(bootstrap_ci=fake_ci))
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.9, 0.3, 0.7, 0.2, 0.6, 0.8, 0.4])
    patient = np.array([10, 10, 11, 11, 12, 12, 13, 13])
    sex = np.array(["F", "F", "M", "M", "F", "F", "M", "X"])
    table = subgroup_metrics("accuracy", y, score, {"sex": sex}, clusters=patient, n_resamples=50, level=0.9,
                             seed=7, min_size=1)
    assert [c["clusters"].tolist() for c in calls] == [[10, 10, 12, 12], [11, 11, 13], [13]]
    assert all(c["n_resamples"] == 50 and c["level"] == 0.9 and c["seed"] == 7 and c["task"] == "binary"
               and c["metric"] == "accuracy" for c in calls)
    assert table["low"].tolist()[:2] == [0.4, 0.4]
    x = table[table["group"] == "X"].iloc[0]
    assert math.isnan(x["low"]) and "no CI: too few items" in x["note"] and x["estimate"] == 1.0


def test_subgroup_real_bootstrap_intervals():
    pytest.importorskip("medrival.stats.bootstrap")
    y, score, sex = _subgroup_data()
    patient = np.arange(y.size) // 2
    table = subgroup_metrics("auroc", y, score, {"sex": sex}, clusters=patient, n_resamples=200, min_size=5)
    defined = table[~table["undefined"]]
    assert (defined["low"] <= defined["estimate"] + 1e-12).all()
    assert (defined["estimate"] <= defined["high"] + 1e-12).all()
    again = subgroup_metrics("auroc", y, score, {"sex": sex}, clusters=patient, n_resamples=200, min_size=5)
    pd.testing.assert_frame_equal(table, again)  # seeded


@pytest.mark.parametrize("kwargs, error, match", [
    ({"groups": {"sex": ["F", "M"]}}, DataError, "2 values but there are 6"),
    ({"groups": {}}, DataError, "non-empty dict"),
    ({"metric": "aurco"}, UnknownNameError, "Did you mean 'auroc'"),
    ({"clusters": [1, 2]}, DataError, "one cluster id"),
    ({"min_size": 0}, DataError, "min_size"),
])
def test_subgroup_bad_input(kwargs, error, match):
    args = {"metric": "auroc", "groups": {"sex": ["F", "M"] * 3}} | kwargs
    with pytest.raises(error, match=match):
        subgroup_metrics(args.pop("metric"), [0, 1] * 3, [0.2, 0.7] * 3, args.pop("groups"), n_resamples=0,
                         **args)


def test_age_bands():
    ages = [0, 17, 17.9, 18, 39, 40, 59.5, 60, 79, 80, 104, None, float("nan")]
    assert age_bands(ages).tolist() == ["0-17", "0-17", "0-17", "18-39", "18-39", "40-59", "40-59", "60-79",
                                        "60-79", "80+", "80+", "missing", "missing"]
    assert age_bands(np.array([25.0, 75.0]), edges=(0, 50, 100)).tolist() == ["0-49", "50-99"]
    assert age_bands([0.2, 3], edges=(0, 0.5, math.inf)).tolist() == ["0-<0.5", "0.5+"]
    assert age_bands([]).tolist() == []
    with pytest.raises(DataError, match=r"outside \[0, 100\)"):
        age_bands([100], edges=(0, 50, 100))
    with pytest.raises(DataError, match="outside"):
        age_bands([-1])
    with pytest.raises(DataError, match="'abc'"):
        age_bands([30, "abc"])
    with pytest.raises(DataError, match="strictly increasing"):
        age_bands([30], edges=(0, 40, 40))


# ------------------------------------------------------------------------------------------------ thresholds


def test_choose_threshold_youden_known_exactly_with_tie():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    # J: t=.7 -> 3/4 - 0 = .75 ; t=.4 -> 4/4 - 1/4 = .75 ; every other threshold is lower. Tie -> smallest.
    assert choose_threshold(y, s) == 0.4
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.35, 0.4, 0.8]) == 0.4  # separable: J = 1 at 0.4


def test_choose_threshold_agrees_with_sklearn_curves():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.8, 1.0), 2)  # rounded: ties in the scores
    t = choose_threshold(y, s, rule="youden")
    fpr, tpr, thr = roc_curve(y, s)
    op = operating_point(y, s, t)
    assert op["sensitivity"] + op["specificity"] - 1 == pytest.approx((tpr - fpr).max())
    assert t <= thr[np.argmax(tpr - fpr)]  # sklearn keeps the first (largest) of tied maxima
    precision, recall, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    assert operating_point(y, s, choose_threshold(y, s, rule="f1"))["f1"] == pytest.approx(f1.max())


def test_choose_threshold_sensitivity_target():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    assert choose_threshold(y, s, rule="sensitivity", target=0.75) == 0.7
    assert choose_threshold(y, s, rule="sensitivity", target=1) == 0.4
    rng = np.random.default_rng(9)
    yv = rng.integers(0, 2, 400)
    sv = rng.normal(yv, 1.0)
    t = choose_threshold(yv, sv, rule="sensitivity", target=0.9)
    assert operating_point(yv, sv, t)["sensitivity"] >= 0.9
    higher = np.min(sv[sv > t])  # the next larger threshold no longer reaches the target
    assert operating_point(yv, sv, higher)["sensitivity"] < 0.9


def test_choose_threshold_takes_validation_data_only():
    params = inspect.signature(choose_threshold).parameters
    assert list(params) == ["y_val", "score_val", "rule", "target"]
    assert params["rule"].kind is params["target"].kind is inspect.Parameter.KEYWORD_ONLY


def test_operating_point_values():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    s = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4, 0.5]
    op = operating_point(y, s, 0.5)  # predicted positive: .9 .6 .7 .5 -> tp 3, fp 1, fn 1, tn 3
    assert (op["tp"], op["fp"], op["fn"], op["tn"]) == (3, 1, 1, 3)
    assert op["sensitivity"] == 0.75 and op["specificity"] == 0.75 and op["ppv"] == 0.75 and op["npv"] == 0.75
    assert op["f1"] == pytest.approx(0.75) and op["accuracy"] == 0.75 and op["threshold"] == 0.5
    with pytest.warns(UndefinedMetricWarning, match="PPV"):
        none = operating_point(y, s, 2.0)
    assert math.isnan(none["ppv"]) and none["specificity"] == 1.0 and none["sensitivity"] == 0.0


@pytest.mark.parametrize("y, s, kwargs, error, match", [
    ([0, 1, 2], [0.1, 0.5, 0.9], {}, DataError, "binary labels"),
    ([0, 0, 0], [0.1, 0.5, 0.9], {}, DataError, "both classes"),
    ([0, 1], [[0.1, 0.5, 0.4], [0.2, 0.2, 0.6]], {}, DataError, "binary tasks"),
    ([0, 1], [0.1, 0.9], {"rule": "sensitivity", "target": 0}, DataError, r"target in \(0, 1\]"),
    ([0, 1], [0.1, 0.9], {"rule": "sensitivity", "target": 1.5}, DataError, r"target in \(0, 1\]"),
    ([0, 1], [0.1, 0.9], {"rule": "sensitivity"}, DataError, "target=None"),
    ([0, 1], [0.1, 0.9], {"target": 0.9}, DataError, "only used by rule='sensitivity'"),
    ([0, 1], [0.1, 0.9], {"rule": "youdn"}, UnknownNameError, "Did you mean 'youden'"),
    ([0, 1], [0.1, 0.9], {"rule": "F1"}, UnknownNameError, "Did you mean 'f1'"),
])
def test_choose_threshold_bad_input(y, s, kwargs, error, match):
    with pytest.raises(error, match=match):
        choose_threshold(y, s, **kwargs)


def test_errors_are_user_errors():
    with pytest.raises(MedrivalError):
        operating_point([0, 1], [0.1, 0.9], float("nan"))


# ------------------------------------------------------------------------------------------------ imports


def test_stats_modules_do_not_import_torch():
    code = ("import sys; import medrival.stats.calibration, medrival.stats.subgroups, medrival.stats.thresholds; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_warnings_on_clean_input():
    y, p = _calibrated_binary(1000, seed=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected_calibration_error(y, p)
        brier_score(y, p)
        operating_point(y, p, choose_threshold(y, p))
