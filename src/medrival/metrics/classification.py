"""Classification metrics as pure functions: NumPy in, Python ``float`` out.

AUROC is computed with the rank (Mann–Whitney U) formulation; average ranks for ties make a tie count 1/2,
which is exactly the trapezoidal area under the ROC curve that scikit-learn reports. Undefined values (a class
with no positives or no negatives, empty input) give NaN and an ``UndefinedMetricWarning`` naming the class,
never a crash and never a silently re-weighted macro average. Input checks (``_check_*``) are kept apart from the
computation and raise ``DataError`` with what was given, what was expected and how to fix it.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.core.types import TaskKind
from medrival.metrics.registry import metric_specs

NAN = float("nan")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given data (returned as NaN)."""


# ----------------------------------------------------------------------------------------------- input checks


def _check_finite_numeric(x: object, name: str) -> np.ndarray:
    """``x`` as a numeric array with no NaN/inf."""
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{name} must be numeric, got dtype {arr.dtype}; pass a NumPy array of numbers.")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at index {first}); expected finite "
                f"numbers. Check the model output (e.g. a division by zero or overflow) before computing metrics.")
    return arr


def _check_ndim(arr: np.ndarray, name: str, ndims: tuple[int, ...], what: str) -> None:
    if arr.ndim not in ndims:
        raise DataError(f"{name} must be {what}, got an array of shape {arr.shape} ({arr.ndim}-D).")


def _check_integer_labels(x: object, name: str) -> np.ndarray:
    """``x`` as int64, refusing fractional values (a float label 0.5 is almost always scores passed as labels)."""
    arr = _check_finite_numeric(x, name)
    if np.issubdtype(arr.dtype, np.floating):
        frac = arr != np.round(arr)
        if frac.any():
            example = arr[frac].flat[0].item()
            raise DataError(
                f"{name} must hold integer class labels, got non-integer values such as {example!r}; "
                f"pass class indices (e.g. y_prob.argmax(axis=1)), not scores or probabilities.")
    return arr.astype(np.int64)


def _check_label_range(labels: np.ndarray, name: str, low: int, high: int, hint: str) -> None:
    """All labels in ``[low, high)``."""
    bad = (labels < low) | (labels >= high)
    if bad.any():
        raise DataError(
            f"{name} has label(s) {sorted(set(labels[bad].tolist()))[:5]} outside the expected range "
            f"[{low}, {high - 1}]; {hint}")


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise DataError(
            f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}; they must describe the same "
            f"examples in the same order.")


def _check_class_names(class_names: Sequence[str] | None, k: int, what: str) -> None:
    if class_names is not None and len(class_names) != k:
        raise DataError(
            f"class_names has {len(class_names)} entries but {what} has {k} columns; pass one name per column, "
            f"in column order.")


def _warn_empty(metric: str) -> float:
    warnings.warn(f"{metric} is undefined for empty input (0 examples); returning NaN.",
                  UndefinedMetricWarning, stacklevel=3)
    return NAN


# -------------------------------------------------------------------------------------------------------- AUROC


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks down each column of ``x`` [N,C], ties sharing their mean rank (as scipy's rankdata).

    Written in NumPy so that importing the metrics does not pull in scipy.stats (about a second).
    """
    n = x.shape[0]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    pos = np.broadcast_to(np.arange(n)[:, None], x.shape)
    differs = xs[1:] != xs[:-1]
    first = np.vstack([np.ones((1, x.shape[1]), bool), differs])  # a tie group starts here
    last = np.vstack([differs, np.ones((1, x.shape[1]), bool)])  # a tie group ends here
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2 + 1, axis=0)
    return ranks


def _auroc_columns(pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column AUROC of ``scores`` [N,C] for 0/1 targets ``pos`` [N,C]; NaN where undefined.

    Returns (auroc, n_pos, n_neg) so callers can say why a column is undefined.
    """
    ranks = _average_ranks(scores)  # average ranks: a tied positive/negative pair counts 1/2
    n_pos = pos.sum(axis=0).astype(np.float64)
    n_neg = pos.shape[0] - n_pos
    rank_sum = np.where(pos.astype(bool), ranks, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc, n_pos, n_neg


def _name(k: int, class_names: Sequence[str] | None, word: str) -> str:
    return f"{word} {class_names[k]!r}" if class_names is not None else f"{word} {k}"


def _undefined_reasons(n_pos: np.ndarray, n_neg: np.ndarray, class_names, word: str) -> list[str]:
    reasons = []
    for k in np.flatnonzero((n_pos == 0) | (n_neg == 0)):
        why = "has no positive examples" if n_pos[k] == 0 else "has only positive examples (no negatives)"
        reasons.append(f"{_name(int(k), class_names, word)} {why} in y_true")
    return reasons


def _macro_auroc(pos: np.ndarray, scores: np.ndarray, class_names, word: str) -> float:
    """Macro AUROC over columns; NaN with one warning naming every undefined column."""
    auc, n_pos, n_neg = _auroc_columns(pos, scores)
    reasons = _undefined_reasons(n_pos, n_neg, class_names, word)
    if reasons:
        # Averaging over the defined subset would silently report a different metric, so refuse.
        warnings.warn(
            f"macro AUROC is undefined, returning NaN: {'; '.join(reasons)}; AUROC is undefined for a "
            f"{word} without both positives and negatives. Evaluate on data containing every {word}, or drop "
            f"those columns explicitly.", UndefinedMetricWarning, stacklevel=3)
        return NAN
    return float(auc.mean())


def binary_auroc(y_true, y_score, class_names: Sequence[str] | None = None) -> float:
    """AUROC for 0/1 ``y_true`` [N]; ``y_score`` is the positive-class score [N] or a [N,2] matrix (column 1)."""
    y = _check_integer_labels(y_true, "y_true")
    s = _check_finite_numeric(y_score, "y_score")
    _check_ndim(y, "y_true", (1,), "a 1-D vector of 0/1 labels [N]")
    _check_ndim(s, "y_score", (1, 2), "positive-class scores [N] or an [N, 2] probability matrix")
    if s.ndim == 2 and s.shape[1] != 2:
        raise DataError(
            f"y_score has shape {s.shape}; a binary task expects scores [N] or an [N, 2] matrix. For "
            f"{s.shape[1]} classes use multiclass_auroc (single label) or multilabel_auroc (indicator targets).")
    _check_same_length(y, s, "y_true", "y_score")
    _check_label_range(y, "y_true", 0, 2, "binary labels must be 0 (negative) or 1 (positive).")
    _check_class_names(class_names, 2, "a binary task")
    if y.size == 0:
        return _warn_empty("AUROC")
    score = s[:, 1] if s.ndim == 2 else s
    auc, n_pos, n_neg = _auroc_columns(y[:, None], score[:, None].astype(np.float64))
    if np.isnan(auc[0]):
        missing = 1 if n_pos[0] == 0 else 0
        role = "positive" if missing == 1 else "negative"
        warnings.warn(
            f"{_name(missing, class_names, 'class')} has no examples in y_true, so there are no {role} examples; "
            f"AUROC is undefined, returning NaN. Evaluate on data containing both classes.",
            UndefinedMetricWarning, stacklevel=2)
        return NAN
    return float(auc[0])


def multiclass_auroc(y_true, y_score, class_names: Sequence[str] | None = None) -> float:
    """Macro one-vs-rest AUROC: ``y_true`` ints in [0,K) [N], ``y_score`` [N,K] (rows need not sum to 1)."""
    y = _check_integer_labels(y_true, "y_true")
    s = _check_finite_numeric(y_score, "y_score")
    if y.size == 0 and s.size == 0:  # an empty score list has no column count to check
        return _warn_empty("AUROC")
    _check_ndim(y, "y_true", (1,), "a 1-D vector of class indices [N]")
    _check_ndim(s, "y_score", (2,), "an [N, K] score matrix with one column per class")
    if s.shape[1] < 2:
        raise DataError(f"y_score has shape {s.shape}; multiclass AUROC needs at least 2 columns (one per class).")
    _check_same_length(y, s, "y_true", "y_score")
    k = s.shape[1]
    _check_class_names(class_names, k, "y_score")
    _check_label_range(y, "y_true", 0, k, f"y_score has {k} columns, so labels must be class indices 0..{k - 1}.")
    if y.size == 0:
        return _warn_empty("AUROC")
    onehot = y[:, None] == np.arange(k)[None, :]
    return _macro_auroc(onehot, s.astype(np.float64), class_names, "class")


def multilabel_auroc(y_true, y_score, class_names: Sequence[str] | None = None) -> float:
    """Macro AUROC over labels: ``y_true`` 0/1 [N,L], ``y_score`` [N,L]."""
    y = _check_integer_labels(y_true, "y_true")
    s = _check_finite_numeric(y_score, "y_score")
    if y.size == 0 and s.size == 0:  # an empty score list has no column count to check
        return _warn_empty("AUROC")
    _check_ndim(y, "y_true", (2,), "an [N, L] 0/1 indicator matrix")
    _check_ndim(s, "y_score", (2,), "an [N, L] score matrix with one column per label")
    if y.shape != s.shape:
        raise DataError(f"y_true has shape {y.shape} but y_score has shape {s.shape}; both must be [N, L].")
    _check_class_names(class_names, s.shape[1], "y_score")
    _check_label_range(y, "y_true", 0, 2, "a multilabel indicator matrix holds only 0 and 1.")
    if y.shape[0] == 0:
        return _warn_empty("AUROC")
    return _macro_auroc(y, s.astype(np.float64), class_names, "label")


# ----------------------------------------------------------------------------------- label-based metrics


def _check_pred_pair(y_true, y_pred, ndims: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer label arrays of identical shape."""
    y = _check_integer_labels(y_true, "y_true")
    p = _check_integer_labels(y_pred, "y_pred")
    what = "a 1-D vector of class labels [N]" + (" or an [N, L] 0/1 indicator matrix" if 2 in ndims else "")
    _check_ndim(y, "y_true", ndims, what)
    _check_ndim(p, "y_pred", ndims, what)
    if y.shape != p.shape:
        raise DataError(
            f"y_true has shape {y.shape} but y_pred has shape {p.shape}; pass predicted labels (not a score "
            f"matrix) for the same examples, e.g. y_pred = y_prob.argmax(axis=1).")
    if y.ndim == 2:
        _check_label_range(y, "y_true", 0, 2, "a multilabel indicator matrix holds only 0 and 1.")
        _check_label_range(p, "y_pred", 0, 2, "a multilabel indicator matrix holds only 0 and 1.")
    return y, p


def accuracy(y_true, y_pred) -> float:
    """Fraction correct; for [N,L] indicator matrices, exact-match (subset) accuracy."""
    y, p = _check_pred_pair(y_true, y_pred, (1, 2))
    if y.shape[0] == 0:
        return _warn_empty("accuracy")
    correct = (y == p) if y.ndim == 1 else (y == p).all(axis=1)
    return float(correct.mean())


def _confusion(y: np.ndarray, p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confusion matrix [C,C] (rows true, columns predicted) over sorted ``labels``."""
    c = labels.size
    idx = np.searchsorted(labels, y) * c + np.searchsorted(labels, p)
    return np.bincount(idx, minlength=c * c).reshape(c, c)


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (as scikit-learn)."""
    y, p = _check_pred_pair(y_true, y_pred, (1,))
    if y.size == 0:
        return _warn_empty("balanced accuracy")
    labels = np.unique(np.concatenate([y, p]))
    cm = _confusion(y, p, labels)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.all():
        # scikit-learn warns here too: such a class has no recall and is left out of the mean.
        warnings.warn(
            f"y_pred contains classes not in y_true: {labels[~present].tolist()}; they are left out of "
            f"balanced accuracy.", UndefinedMetricWarning, stacklevel=2)
    return float((np.diag(cm)[present] / support[present]).mean())


def _multilabel_balanced_accuracy(y: np.ndarray, p: np.ndarray, class_names) -> float:
    """Mean over labels of the binary balanced accuracy of each column of [N,L] indicator matrices."""
    tp = (y & p).sum(axis=0)
    fn = (y & (1 - p)).sum(axis=0)
    tn = ((1 - y) & (1 - p)).sum(axis=0)
    fp = ((1 - y) & p).sum(axis=0)
    recalls = np.stack([tp / np.maximum(tp + fn, 1), tn / np.maximum(tn + fp, 1)])
    # A side absent from y_true has no recall and is left out, as binary balanced accuracy does.
    present = np.stack([tp + fn > 0, tn + fp > 0])
    # Warn exactly where scikit-learn would: a predicted class that y_true lacks.
    odd = [(k, side) for side, pred_count in ((0, tp + fp), (1, tn + fn))
           for k in np.flatnonzero(~present[side] & (pred_count > 0))]
    if odd:
        names = ", ".join(f"{_name(int(k), class_names, 'label')} (predicted "
                          f"{'positive' if side == 0 else 'negative'})" for k, side in odd)
        warnings.warn(f"y_pred contains classes not in y_true for {names}; left out of balanced accuracy.",
                      UndefinedMetricWarning, stacklevel=3)
    per_label = (recalls * present).sum(axis=0) / present.sum(axis=0)
    return float(per_label.mean())


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted mean F1 over classes ``range(num_classes)`` (default: labels seen); an F1 of 0/0 counts as 0.

    For [N,L] indicator matrices, the mean over labels of each label's F1.
    """
    y, p = _check_pred_pair(y_true, y_pred, (1, 2))
    if y.shape[0] == 0:
        return _warn_empty("macro F1")
    if y.ndim == 2:
        tp, fp, fn = (y & p).sum(0), ((1 - y) & p).sum(0), (y & (1 - p)).sum(0)
    else:
        if num_classes is None:
            labels = np.unique(np.concatenate([y, p]))
        else:
            hint = f"num_classes={num_classes}, so labels must be class indices 0..{num_classes - 1}."
            _check_label_range(y, "y_true", 0, num_classes, hint)
            _check_label_range(p, "y_pred", 0, num_classes, hint)
            labels = np.arange(num_classes)
        cm = _confusion(y, p, labels)
        tp = np.diag(cm)
        fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)  # zero_division=0
    return float(f1.mean()) if f1.size else NAN


# ------------------------------------------------------------------------------------------------ dispatcher


def _check_task(task: TaskKind | str) -> TaskKind:
    try:
        kind = TaskKind(task)
    except ValueError:
        names = [k.value for k in TaskKind]
        close = suggest(str(task), names)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"Unknown task kind {task!r}.{hint} Known task kinds: {', '.join(names)}.") from None
    if kind is TaskKind.VQA:
        raise DataError("compute_classification_metrics got task 'vqa', which is not a classification task; "
                        "score VQA answers with the VQA metrics instead.")
    return kind


def predicted_labels(task: TaskKind | str, y_prob) -> np.ndarray:
    """Predicted labels from probabilities: argmax of the columns (a 1-D binary ``p`` read as ``[1 - p, p]``);
    multilabel ``p >= 0.5`` per label."""
    prob = np.asarray(y_prob)
    if TaskKind(task) is TaskKind.MULTILABEL:
        return (prob >= 0.5).astype(np.int64)
    if prob.ndim == 1:
        prob = np.stack([1 - prob, prob], axis=1)
    return prob.argmax(axis=1) if prob.shape[0] else np.zeros(0, dtype=np.int64)


# The registered aggregates of the classification metrics (``medrival.metrics.registry``): labels and class
# probabilities in, one float out, for every task -- the functions ``compute_classification_metrics`` calls.


def auroc_from_probabilities(y_true, y_prob, *, task: TaskKind | str,
                             class_names: Sequence[str] | None = None) -> float:
    """Binary, macro one-vs-rest (multiclass) or macro over labels (multilabel) AUROC."""
    kind = TaskKind(task)
    if kind is TaskKind.MULTILABEL:
        return multilabel_auroc(y_true, y_prob, class_names)
    return (binary_auroc if kind is TaskKind.BINARY else multiclass_auroc)(y_true, y_prob, class_names)


def accuracy_from_probabilities(y_true, y_prob, *, task: TaskKind | str,
                                class_names: Sequence[str] | None = None) -> float:
    """Accuracy of the predicted labels (multilabel: exact-match accuracy)."""
    return accuracy(y_true, predicted_labels(task, y_prob))


def balanced_accuracy_from_probabilities(y_true, y_prob, *, task: TaskKind | str,
                                         class_names: Sequence[str] | None = None) -> float:
    """Balanced accuracy of the predicted labels (multilabel: mean over labels of the binary one)."""
    pred = predicted_labels(task, y_prob)
    if TaskKind(task) is TaskKind.MULTILABEL:
        y = _check_integer_labels(y_true, "y_true")
        return _multilabel_balanced_accuracy(y, pred, class_names) if y.shape[0] else NAN
    return balanced_accuracy(y_true, pred)


def macro_f1_from_probabilities(y_true, y_prob, *, task: TaskKind | str,
                                class_names: Sequence[str] | None = None) -> float:
    """Macro F1 of the predicted labels over all score columns (classes, or labels for multilabel)."""
    pred = predicted_labels(task, y_prob)
    if TaskKind(task) is TaskKind.MULTILABEL:
        return macro_f1(y_true, pred)
    prob = np.asarray(y_prob)
    return macro_f1(y_true, pred, num_classes=2 if prob.ndim == 1 else prob.shape[1])


def compute_classification_metrics(task: TaskKind | str, y_true, y_prob,
                                   class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Every registered classification metric (``medrival.metrics.registry``, source "classification": AUROC,
    accuracy, balanced accuracy, macro F1) from probabilities, for a binary/multiclass/multilabel task.

    Binary and multiclass: ``y_prob`` [N,K] (K=2 for binary), predictions by argmax. Multilabel: ``y_prob`` [N,L]
    independent probabilities, predictions ``y_prob >= 0.5``, accuracy is exact-match accuracy.
    """
    kind = _check_task(task)
    prob = _check_finite_numeric(y_prob, "y_prob")
    _check_ndim(prob, "y_prob", (2,), "an [N, K] probability matrix with one column per class")
    if kind is TaskKind.BINARY and prob.shape[1] != 2:
        raise DataError(f"y_prob has shape {prob.shape}; a binary task expects [N, 2] (negative, positive) "
                        f"probabilities. Stack them as np.stack([1 - p, p], axis=1) if you have only p.")
    _check_class_names(class_names, prob.shape[1], "y_prob")
    if kind is TaskKind.MULTILABEL:
        y_true = _check_integer_labels(y_true, "y_true")
    return {spec.name: spec.aggregate(y_true, prob, task=kind, class_names=class_names)
            for spec in metric_specs(task=kind.value, source="classification")}
