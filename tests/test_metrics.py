"""Classification metrics against scikit-learn: random inputs (with heavy ties), undefined cases, bad inputs."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.types import TaskKind
from medrival.metrics import (
    METRICS,
    UndefinedMetricWarning,
    accuracy,
    balanced_accuracy,
    binary_auroc,
    compute_classification_metrics,
    macro_f1,
    multiclass_auroc,
    multilabel_auroc,
)

SEEDS = range(20)
TOL = 1e-10


def _sizes(seed: int) -> tuple[np.random.Generator, int, int, bool]:
    """Per-seed generator, N, K and whether scores are small integers (many ties)."""
    rng = np.random.default_rng(seed)
    return rng, int(rng.integers(8, 300)), int(rng.integers(2, 8)), seed % 2 == 0


def _scores(rng: np.random.Generator, shape, tied: bool) -> np.ndarray:
    return rng.integers(0, 4, size=shape).astype(float) if tied else rng.normal(size=shape)


def _all_classes(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Labels in [0,k) with every class present."""
    y = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
    return rng.permutation(y)


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sk_multilabel_balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.mean([skm.balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(y.shape[1])]))


# ------------------------------------------------------------------------------------------- against sklearn


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_auroc_matches_sklearn(seed):
    rng, n, _, tied = _sizes(seed)
    y = _all_classes(rng, n, 2)
    s = _scores(rng, n, tied)
    expected = skm.roc_auc_score(y, s)
    assert binary_auroc(y, s) == pytest.approx(expected, abs=TOL)
    assert binary_auroc(y.astype(bool), np.stack([-s, s], axis=1)) == pytest.approx(expected, abs=TOL)
    assert isinstance(binary_auroc(y, s), float)


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_auroc_matches_sklearn(seed):
    rng, n, k, tied = _sizes(seed)
    k = max(k, 3)
    y = _all_classes(rng, n, k)
    raw = _scores(rng, (n, k), tied)
    # Integer counts normalised by row keep many exact ties; softmax keeps continuous scores sklearn-valid.
    prob = (raw + 1) / (raw + 1).sum(axis=1, keepdims=True) if tied else _softmax(raw)
    expected = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro", labels=range(k))
    assert multiclass_auroc(y, prob) == pytest.approx(expected, abs=TOL)
    # Rows need not sum to 1: on raw scores it is the mean of the per-class binary AUROCs.
    per_class = [skm.roc_auc_score(y == c, raw[:, c]) for c in range(k)]
    assert multiclass_auroc(y, raw) == pytest.approx(np.mean(per_class), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_auroc_matches_sklearn(seed):
    rng, n, k, tied = _sizes(seed)
    y = rng.integers(0, 2, size=(n, k))
    y[0], y[1] = 0, 1  # every label has a positive and a negative
    s = _scores(rng, (n, k), tied)
    assert multilabel_auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s, average="macro"), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_label_metrics_match_sklearn(seed):
    rng, n, k, _ = _sizes(seed)
    y = _all_classes(rng, n, k)
    pred = rng.integers(0, k, size=n)
    pred = np.where(rng.random(n) < 0.4, y, pred)  # better than chance, so the metrics are not all ~1/k
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    assert balanced_accuracy(y, pred) == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=TOL)
    # Extra classes absent from both arrays still count (as F1 = 0) when num_classes says they exist.
    for num in (None, k, k + 2):
        labels = None if num is None else range(num)
        expected = skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)
        assert macro_f1(y, pred, num_classes=num) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_label_metrics_match_sklearn(seed):
    rng, n, k, _ = _sizes(seed)
    y = rng.integers(0, 2, size=(n, k))
    pred = np.where(rng.random((n, k)) < 0.5, y, rng.integers(0, 2, size=(n, k)))
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    expected = skm.f1_score(y, pred, average="macro", zero_division=0)
    assert macro_f1(y, pred) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_average_ranks_match_scipy(seed):
    from scipy.stats import rankdata

    from medrival.metrics.classification import _average_ranks

    x = np.random.default_rng(seed).integers(0, 5, size=(40, 3)).astype(float)
    np.testing.assert_array_equal(_average_ranks(x), rankdata(x, axis=0))


def test_macro_f1_with_non_contiguous_labels_uses_union():
    y, pred = np.array([0, 3, 3, 5]), np.array([0, 3, 7, 5])
    assert macro_f1(y, pred) == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0), abs=TOL)


def test_balanced_accuracy_warns_like_sklearn_for_class_missing_from_y_true():
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    with pytest.warns(UserWarning, match="not in y_true"):
        expected = skm.balanced_accuracy_score(y, pred)
    with pytest.warns(UndefinedMetricWarning, match=r"not in y_true: \[2\]"):
        assert balanced_accuracy(y, pred) == pytest.approx(expected, abs=TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a class in y_true that is never predicted is fine, no warning
        balanced_accuracy(np.array([0, 1, 2]), np.array([0, 1, 1]))


# --------------------------------------------------------------------------------------- compute_classification


@pytest.mark.parametrize("seed", range(6))
def test_compute_binary_and_multiclass_match_sklearn(seed):
    rng, n, k, _ = _sizes(seed)
    for task, kk in ((TaskKind.BINARY, 2), ("multiclass", max(k, 3))):
        y = _all_classes(rng, n, kk)
        prob = _softmax(rng.normal(size=(n, kk)) + 2.0 * np.eye(kk)[y] * rng.random((n, 1)))
        pred = prob.argmax(axis=1)
        if kk == 2:
            auroc = skm.roc_auc_score(y, prob[:, 1])
        else:
            auroc = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro", labels=range(kk))
        expected = {
            "auroc": auroc,
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "macro_f1": skm.f1_score(y, pred, average="macro", labels=range(kk), zero_division=0),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every class is present in y_true: nothing is undefined
            got = compute_classification_metrics(task, y, prob, [f"c{i}" for i in range(kk)])
        assert set(got) == set(expected)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=TOL), key
            assert isinstance(got[key], float)


@pytest.mark.parametrize("seed", range(6))
def test_compute_multilabel_matches_sklearn(seed):
    rng, n, k, _ = _sizes(seed)
    y = rng.integers(0, 2, size=(n, k))
    y[0], y[1] = 0, 1
    prob = np.clip(0.5 * y + rng.random((n, k)) * 0.7, 0, 1)
    prob[2, 0] = 0.5  # exactly at the threshold counts as positive
    pred = (prob >= 0.5).astype(int)
    expected = {
        "auroc": skm.roc_auc_score(y, prob, average="macro"),
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": _sk_multilabel_balanced_accuracy(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro", zero_division=0),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every label has positives and negatives: nothing is undefined
        got = compute_classification_metrics("multilabel", y, prob, None)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=TOL), key


def test_compute_multilabel_balanced_accuracy_label_without_positives():
    y = np.array([[0, 1], [0, 0], [0, 1], [0, 0]])
    prob = np.array([[0.9, 0.8], [0.1, 0.2], [0.2, 0.7], [0.3, 0.1]])
    pred = (prob >= 0.5).astype(int)
    with pytest.warns(UndefinedMetricWarning) as record:
        got = compute_classification_metrics(TaskKind.MULTILABEL, y, prob, ["effusion", "edema"])
    messages = " ".join(str(w.message) for w in record)
    assert "'effusion' has no positive examples" in messages  # AUROC
    assert "label 'effusion' (predicted positive)" in messages  # balanced accuracy, as sklearn warns
    assert np.isnan(got["auroc"])
    assert got["balanced_accuracy"] == pytest.approx(_sk_multilabel_balanced_accuracy(y, pred), abs=TOL)


def test_compute_rejects_vqa_and_unknown_task():
    y, prob = np.array([0, 1]), np.array([[0.7, 0.3], [0.2, 0.8]])
    with pytest.raises(DataError, match="not a classification task"):
        compute_classification_metrics(TaskKind.VQA, y, prob, None)
    with pytest.raises(UnknownNameError, match="Did you mean 'binary'"):
        compute_classification_metrics("binray", y, prob, None)
    with pytest.raises(DataError, match=r"expects \[N, 2\]"):
        compute_classification_metrics("binary", y, np.ones((2, 3)) / 3, None)
    with pytest.raises(DataError, match="class_names has 3 entries"):
        compute_classification_metrics("binary", y, prob, ["a", "b", "c"])


# -------------------------------------------------------------------------------------------- undefined cases


def test_multiclass_auroc_absent_class_is_nan_and_named():
    y = np.array([0, 1, 0, 1, 0])  # class 2 ('melanoma') never occurs
    s = np.random.default_rng(0).random((5, 3))
    with pytest.warns(UndefinedMetricWarning, match=r"class 'melanoma' has no positive examples in y_true"):
        assert np.isnan(multiclass_auroc(y, s, class_names=["nevus", "bcc", "melanoma"]))
    with pytest.warns(UndefinedMetricWarning, match=r"class 2 has no positive"):
        assert np.isnan(multiclass_auroc(y, s))


def test_macro_auroc_names_every_undefined_class():
    y = np.array([1, 1, 1])  # only class 1: classes 0 and 2 have no positives, class 1 no negatives
    s = np.eye(3)[[0, 1, 2]]
    with pytest.warns(UndefinedMetricWarning) as record:
        assert np.isnan(multiclass_auroc(y, s, class_names=["a", "b", "c"]))
    msg = str(record[0].message)
    assert "class 'a' has no positive" in msg and "class 'c' has no positive" in msg
    assert "class 'b' has only positive examples" in msg


def test_multilabel_auroc_undefined_label_is_nan_and_named():
    y = np.array([[1, 0], [1, 1], [1, 0]])
    s = np.array([[0.2, 0.3], [0.4, 0.9], [0.5, 0.1]])
    with pytest.warns(UndefinedMetricWarning, match=r"label 'cardiomegaly' has only positive examples"):
        assert np.isnan(multilabel_auroc(y, s, class_names=["cardiomegaly", "edema"]))


def test_binary_auroc_single_class_is_nan_and_named():
    with pytest.warns(UndefinedMetricWarning, match=r"class 'malignant' has no examples.*no positive"):
        assert np.isnan(binary_auroc([0, 0, 0], [0.1, 0.5, 0.9], class_names=["benign", "malignant"]))
    with pytest.warns(UndefinedMetricWarning, match=r"class 0 has no examples.*no negative"):
        assert np.isnan(binary_auroc([1, 1], [0.1, 0.5]))


@pytest.mark.parametrize("call", [
    lambda: binary_auroc([], []),
    lambda: multiclass_auroc([], []),
    lambda: multiclass_auroc(np.zeros(0, int), np.zeros((0, 3))),
    lambda: multilabel_auroc(np.zeros((0, 2), int), np.zeros((0, 2))),
    lambda: accuracy([], []),
    lambda: balanced_accuracy([], []),
    lambda: macro_f1([], [], num_classes=3),
])
def test_empty_inputs_give_nan_with_warning(call):
    with pytest.warns(UndefinedMetricWarning, match="empty input"):
        assert np.isnan(call())


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("call, fragment", [
    (lambda: binary_auroc([0, 1, 1], [0.1, 0.2]), "y_true has 3 rows but y_score has 2"),
    (lambda: binary_auroc([0, 1], [np.nan, 0.2]), "NaN/inf"),
    (lambda: binary_auroc([0, 1], [np.inf, 0.2]), "NaN/inf"),
    (lambda: binary_auroc([0, 2], [0.1, 0.2]), r"outside the expected range \[0, 1\]"),
    (lambda: binary_auroc([0, 1], np.ones((2, 3))), "use multiclass_auroc"),
    (lambda: binary_auroc([[0, 1]], [0.1, 0.2]), "y_true must be a 1-D vector"),
    (lambda: binary_auroc([0.0, 0.5], [0.1, 0.2]), "integer class labels"),
    (lambda: binary_auroc(["a", "b"], [0.1, 0.2]), "must be numeric"),
    (lambda: multiclass_auroc([0, 1], [0.1, 0.2]), r"y_score must be an \[N, K\] score matrix"),
    (lambda: multiclass_auroc([0, 3], np.ones((2, 3))), "labels must be class indices 0..2"),
    (lambda: multiclass_auroc([0, -1], np.ones((2, 3))), r"label\(s\) \[-1\]"),
    (lambda: multiclass_auroc([0, 1], np.ones((2, 3)), ["a", "b"]), "class_names has 2 entries"),
    (lambda: multilabel_auroc(np.ones((2, 3)), np.ones((2, 2))), r"y_true has shape \(2, 3\)"),
    (lambda: multilabel_auroc([[0, 2], [1, 0]], np.ones((2, 2))), "holds only 0 and 1"),
    (lambda: accuracy([0, 1], [[0, 1], [1, 0]]), "y_pred = y_prob.argmax"),
    (lambda: accuracy([0, 1, 1], [0, 1]), "same examples"),
    (lambda: balanced_accuracy([0, 1], [0.3, 1.0]), "not scores or probabilities"),
    (lambda: macro_f1([0, 1, 4], [0, 1, 1], num_classes=3), "num_classes=3"),
])
def test_bad_inputs_raise_data_error(call, fragment):
    with pytest.raises(DataError, match=fragment):
        call()


# ---------------------------------------------------------------------------------------------- registry etc.


def test_registry_lookup_and_did_you_mean():
    assert set(METRICS.names()) == {"binary_auroc", "multiclass_auroc", "multilabel_auroc", "accuracy",
                                    "balanced_accuracy", "macro_f1"}
    assert METRICS.get("accuracy") is accuracy
    assert METRICS.get("macro_f1")([0, 1], [0, 1]) == 1.0
    with pytest.raises(UnknownNameError, match="Did you mean 'accuracy'"):
        METRICS.get("acuracy")


def test_metrics_package_does_not_import_torch():
    # Static check (a fresh interpreter would cost a second): no module in medrival.metrics imports torch.
    import medrival.metrics

    for path in Path(medrival.metrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torch" for n in names), f"{path.name} imports torch"
