"""Weighted classification metrics, evaluated for a whole chunk of bootstrap resamples at once.

A bootstrap resample is fully described by how many times it drew each resampling unit (an item, or a cluster of
items: all questions of one image, all images of one patient). A chunk of ``b`` resamples is therefore an integer
matrix ``counts`` [b, C]; item i of unit u gets weight ``counts[r, u]`` in resample r. Every metric below is a
function of such weights, evaluated for all rows of ``counts`` with vectorised NumPy, and equals the project's
metric (``medrival.metrics.classification``) on the explicitly repeated arrays:

* AUROC (Mann–Whitney form). The negatives of a score column are sorted once; per resample, one ``cumsum`` of
  their weights in that order gives the negative weight below any score, and
  ``AUROC = sum_pos w_i * (Wneg(< s_i) + Wneg(<= s_i)) / 2 / (Wpos * Wneg)``: a tied positive/negative pair counts
  1/2, i.e. the trapezoidal AUROC (Hanley & McNeil 1982). Exact ties are handled by the two ``searchsorted``
  bounds, not by perturbation. With integer weights every sum is an exact integer, so the value equals the
  average-rank formula to the last bit. Macro AUROC (multiclass one-vs-rest, multilabel) is the mean of the
  per-column AUROCs, undefined (NaN) as soon as one column lacks positives or negatives.
* Accuracy, Brier score, balanced accuracy and macro F1 are ratios of weighted sums of per-item indicators
  (correct; in class k; predicted k; both). Those indicators are summed per unit once; a single matrix product
  ``counts @ table`` then gives the confusion counts of every resample in the chunk.

Named metrics follow ``compute_classification_metrics``: predictions are the argmax of the scores (a 1-D binary
score ``p`` is read as ``[1 - p, p]``), multilabel predictions are ``p >= 0.5``; macro F1 averages over all K
score columns. Brier: binary ``mean (p - y)^2``; multiclass ``mean_i sum_k (p_ik - 1[y_i = k])^2`` (Brier 1950);
multilabel the mean over labels of the binary score (as ``medrival.stats.calibration.brier_score``).

A callable metric ``f(y_true, y_score) -> float`` is supported by ``CallableMetric``, which rebuilds each resample
explicitly (slow, but any metric works). NumPy only: no scipy, no torch.
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Callable

import numpy as np

from medrival.core.errors import ConfigError, DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.metrics.classification import (
    UndefinedMetricWarning,
    _check_finite_numeric,
    _check_integer_labels,
    _check_label_range,
)
from medrival.metrics.registry import METRIC_REGISTRY, lower_is_better_names, metric_names

# The metrics bootstrapped here by name: those the metric registry (medrival.metrics.registry) declares "weighted".
METRIC_NAMES = metric_names(bootstrap="weighted")
# Metrics where smaller is better (registered names and aliases): verdicts are mirrored and the best subgroup is
# the one with the smallest value.
LOWER_IS_BETTER = lower_is_better_names()
TASKS = ("binary", "multiclass", "multilabel")
_INT32_MAX = np.iinfo(np.int32).max


class UnknownMetricError(UnknownNameError, ConfigError):
    """A metric name that does not exist (both an ``UnknownNameError`` and a ``ConfigError``)."""


# ------------------------------------------------------------------------------------------------- inputs


def check_metric_name(metric: str) -> str:
    if metric in METRIC_NAMES:
        return metric
    if metric in METRIC_REGISTRY:  # a real metric, but not one this bootstrap evaluates by name
        raise UnknownMetricError(f"Metric {metric!r} has no bootstrap by name; the metrics bootstrapped by name are "
                                 f"{', '.join(METRIC_NAMES)}; or pass a callable f(y_true, y_score) -> float.")
    close = suggest(str(metric), list(METRIC_NAMES))
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownMetricError(f"Unknown metric {metric!r}.{hint} Known metrics: {', '.join(METRIC_NAMES)}; or pass "
                             f"a callable f(y_true, y_score) -> float.")


def check_task(task) -> str:
    name = str(getattr(task, "value", task))  # accepts TaskKind members as well as strings
    if name in TASKS:
        return name
    close = suggest(name, list(TASKS))
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"Unknown task {task!r}.{hint} Expected one of {', '.join(TASKS)}, or None to infer it from "
                      f"the shapes of y_true and y_score.")


def infer_task(y: np.ndarray, s: np.ndarray) -> str:
    """binary: scores [N] or [N, 2]; multiclass: labels [N] with scores [N, K > 2]; multilabel: labels [N, L]."""
    if y.ndim == 2:
        return "multilabel"
    if y.ndim == 1 and (s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 2)):
        return "binary"
    if y.ndim == 1 and s.ndim == 2 and s.shape[1] > 2:
        return "multiclass"
    raise DataError(f"cannot infer the task from y_true of shape {y.shape} and y_score of shape {s.shape}; expected "
                    f"labels [N] with scores [N] or [N, K], or indicators [N, L] with scores [N, L]. Pass task=.")


def _check_shapes(task: str, y: np.ndarray, s: np.ndarray) -> None:
    """Shapes and label ranges for ``task`` (after the lengths were found equal)."""
    if task == "multilabel":
        if y.ndim != 2 or y.shape != s.shape:
            raise DataError(f"a multilabel task needs y_true [N, L] and y_score [N, L] of the same shape, got "
                            f"{y.shape} and {s.shape}.")
        _check_label_range(y, "y_true", 0, 2, "a multilabel indicator matrix holds only 0 and 1.")
        return
    if y.ndim != 1:
        raise DataError(f"a {task} task needs y_true as a 1-D vector of labels [N], got shape {y.shape}.")
    if task == "binary":
        if not (s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 2)):
            raise DataError(f"a binary task needs y_score [N] or [N, 2], got shape {s.shape}; for more columns use "
                            f"task='multiclass' or 'multilabel'.")
        _check_label_range(y, "y_true", 0, 2, "binary labels must be 0 (negative) or 1 (positive).")
        return
    if s.ndim != 2 or s.shape[1] < 2:
        raise DataError(f"a multiclass task needs y_score [N, K] with K >= 2 columns, got shape {s.shape}.")
    k = s.shape[1]
    _check_label_range(y, "y_true", 0, k, f"y_score has {k} columns, so labels must be class indices 0..{k - 1}.")


def check_inputs(y_true, y_score, task=None, *, score_name: str = "y_score") -> tuple[str, np.ndarray, np.ndarray]:
    """(task, labels as int64, scores as float64), validated; raises ``DataError`` saying what to change."""
    y = _check_integer_labels(y_true, "y_true")
    s = _check_finite_numeric(y_score, score_name).astype(np.float64)
    if y.ndim == 0 or s.ndim == 0:
        raise DataError(f"y_true and {score_name} must be arrays with one row per item, got shapes {y.shape} and "
                        f"{s.shape}.")
    if y.shape[0] != s.shape[0]:
        raise DataError(f"y_true has {y.shape[0]} rows but {score_name} has {s.shape[0]}; they must describe the "
                        f"same items in the same order.")
    if y.shape[0] == 0:
        raise DataError("y_true is empty (0 items); a bootstrap needs at least one item.")
    kind = infer_task(y, s) if task is None else check_task(task)
    _check_shapes(kind, y, s)
    return kind, y, s


# -------------------------------------------------------------------------------------------------- AUROC


class AurocColumn:
    """Weighted AUROC of one score column against boolean targets, for every row of a count matrix.

    ``units[i]`` is the resampling unit (column of ``counts``) of item i; ``max_total`` bounds the total item
    weight of a resample and picks exact integer dtypes (int32 while no sum can overflow it, else int64).
    """

    def __init__(self, positive: np.ndarray, score: np.ndarray, units: np.ndarray, key, max_total: int):
        pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
        order = np.argsort(score[neg], kind="stable")
        sorted_neg = score[neg][order]
        self.key = key  # positives' weights are shared by every evaluator of the same labels (paired models)
        self.pos_units = units[pos]
        self.neg_units = units[neg[order]]
        self.left = np.searchsorted(sorted_neg, score[pos], side="left")  # negatives strictly below
        self.right = np.searchsorted(sorted_neg, score[pos], side="right")  # negatives below or tied
        self.ties = bool((self.left != self.right).any())
        self.cum_dtype = np.int32 if max_total <= _INT32_MAX else np.int64
        # num2 <= 2 * Wpos * Wneg <= max_total**2 / 2
        self.acc_dtype = np.int32 if max_total * max_total // 2 <= _INT32_MAX else np.int64

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        if self.key not in cache:
            wp = np.take(counts, self.pos_units, axis=1)
            cache[self.key] = wp, wp.sum(axis=1, dtype=np.int64)
        wp, n_pos = cache[self.key]
        b = counts.shape[0]
        cum = np.empty((b, self.neg_units.size + 1), dtype=self.cum_dtype)
        cum[:, 0] = 0
        if counts.dtype == self.cum_dtype:  # mode="clip" writes straight into ``out`` (no buffer copy)
            np.take(counts, self.neg_units, axis=1, out=cum[:, 1:], mode="clip")
        else:
            cum[:, 1:] = counts[:, self.neg_units]
        np.cumsum(cum[:, 1:], axis=1, out=cum[:, 1:])
        below = np.take(cum, self.left, axis=1)
        if self.ties:
            below += np.take(cum, self.right, axis=1)  # Wneg(<) + Wneg(<=): a tie counts 1/2
            num2 = np.einsum("ij,ij->i", wp, below, dtype=self.acc_dtype)
        else:
            num2 = 2 * np.einsum("ij,ij->i", wp, below, dtype=self.acc_dtype).astype(np.int64)
        denom = 2.0 * n_pos * cum[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = num2 / denom
        auc[denom == 0] = np.nan  # no positives or no negatives drawn: AUROC undefined
        return auc


class MacroAuroc:
    """Mean of per-column AUROCs (one column: binary AUROC)."""

    def __init__(self, columns: list[AurocColumn]):
        self.columns = columns

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        if len(self.columns) == 1:
            return self.columns[0](counts, cache)
        # [b, K] rows reduced along the contiguous axis: the same summation as the 1-D mean of one resample.
        per_column = np.stack([c(counts, cache) for c in self.columns], axis=1)
        return per_column.mean(axis=1)


def _auroc_columns(task: str, y: np.ndarray, s: np.ndarray, units: np.ndarray, max_total: int) -> MacroAuroc:
    if task == "binary":
        score = s[:, 1] if s.ndim == 2 else s
        return MacroAuroc([AurocColumn(y == 1, score, units, ("pos", task, 0), max_total)])
    targets = y == 1 if task == "multilabel" else y[:, None] == np.arange(s.shape[1])[None, :]
    return MacroAuroc([AurocColumn(targets[:, j], s[:, j], units, ("pos", task, j), max_total)
                       for j in range(s.shape[1])])


# ------------------------------------------------------------------------------------------ linear metrics


def predictions(task: str, s: np.ndarray) -> np.ndarray:
    """Predicted labels as ``compute_classification_metrics`` makes them."""
    if task == "multilabel":
        return (s >= 0.5).astype(np.int64)
    if s.ndim == 1:  # a binary positive-class probability p, read as [1 - p, p]
        s = np.stack([1 - s, s], axis=1)
    return s.argmax(axis=1)


def _onehot(labels: np.ndarray, k: int) -> np.ndarray:
    return (labels[:, None] == np.arange(k)[None, :]).astype(np.float64)


def _brier_errors(task: str, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if s.min() < 0 or s.max() > 1:
        raise DataError(f"the Brier score needs probabilities in [0, 1], got scores in [{s.min():g}, {s.max():g}]; "
                        f"apply a softmax/sigmoid first or choose another metric.")
    if task == "binary":
        p = s[:, 1] if s.ndim == 2 else s
        return (p - y) ** 2
    if task == "multiclass":
        return ((s - _onehot(y, s.shape[1])) ** 2).sum(axis=1)
    return ((s - y) ** 2).mean(axis=1)


def _ratio(stats: np.ndarray) -> np.ndarray:
    return stats[:, 0] / stats[:, 1]


def _balanced_single(stats: np.ndarray, k: int) -> np.ndarray:
    """Mean recall over the classes present in the resample (as ``balanced_accuracy``)."""
    support, correct = stats[:, :k], stats[:, k:2 * k]
    present = support > 0
    recall = np.where(present, correct / np.where(present, support, 1.0), 0.0)
    return recall.sum(axis=1) / present.sum(axis=1)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)  # an F1 of 0/0 counts as 0


def _macro_f1_single(stats: np.ndarray, k: int) -> np.ndarray:
    in_class, predicted, tp = stats[:, :k], stats[:, k:2 * k], stats[:, 2 * k:]
    return _f1(tp, predicted - tp, in_class - tp).mean(axis=1)


def _balanced_multilabel(stats: np.ndarray, n_labels: int) -> np.ndarray:
    """Per label the mean of the recalls of the sides present in y_true; then the mean over labels."""
    tp, fn, tn, fp = (stats[:, i * n_labels:(i + 1) * n_labels] for i in range(4))
    recalls = np.stack([tp / np.maximum(tp + fn, 1), tn / np.maximum(tn + fp, 1)])
    present = np.stack([tp + fn > 0, tn + fp > 0])
    return ((recalls * present).sum(axis=0) / present.sum(axis=0)).mean(axis=1)


def _macro_f1_multilabel(stats: np.ndarray, n_labels: int) -> np.ndarray:
    tp, fn, _, fp = (stats[:, i * n_labels:(i + 1) * n_labels] for i in range(4))
    return _f1(tp, fp, fn).mean(axis=1)


def _features(metric: str, task: str, y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, Callable]:
    """Per-item indicator columns [N, m] and the function of their weighted sums that gives the metric."""
    ones = np.ones(y.shape[0])
    if metric == "brier":
        return np.column_stack([_brier_errors(task, y, s), ones]), _ratio
    pred = predictions(task, s)
    if metric == "accuracy":
        correct = (pred == y) if task != "multilabel" else (pred == y).all(axis=1)
        return np.column_stack([correct, ones]), _ratio
    if task == "multilabel":
        n_labels = y.shape[1]
        table = np.hstack([y & pred, y & (1 - pred), (1 - y) & (1 - pred), (1 - y) & pred]).astype(np.float64)
        finish = _balanced_multilabel if metric == "balanced_accuracy" else _macro_f1_multilabel
        return table, partial(finish, n_labels=n_labels)
    k = 2 if s.ndim == 1 else s.shape[1]
    in_class, predicted = _onehot(y, k), _onehot(pred, k)
    if metric == "balanced_accuracy":
        return np.hstack([in_class, in_class * predicted]), partial(_balanced_single, k=k)
    return np.hstack([in_class, predicted, in_class * predicted]), partial(_macro_f1_single, k=k)


class LinearMetric:
    """A metric that is a function of weighted sums of per-item features; one matmul per chunk."""

    def __init__(self, features: np.ndarray, finish: Callable, units: np.ndarray, n_units: int):
        self.table = np.zeros((n_units, features.shape[1]))
        np.add.at(self.table, units, features)  # per-unit sums, computed once
        self.finish = finish

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        weights = cache.get("float64")
        if weights is None:
            weights = cache["float64"] = counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.finish(weights @ self.table)


# ---------------------------------------------------------------------------------------------- callables


class CallableMetric:
    """Any ``f(y_true, y_score) -> float``, evaluated on each resample rebuilt explicitly (one call per resample).

    Resamples where ``f`` returns NaN or raises ``ValueError`` (e.g. scikit-learn's "only one class present")
    count as undefined; warnings inside resamples are silenced (the full-data call still shows them). Not run in
    threads: ``f`` may hold the GIL or not be thread-safe.
    """

    threadsafe = False

    def __init__(self, fn: Callable, y: np.ndarray, s: np.ndarray, units: np.ndarray):
        self.fn, self.y, self.s, self.units = fn, y, s, units
        self.items = np.arange(units.size)

    def _one(self, idx: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined resamples are counted and reported once by the caller
            try:
                return float(self.fn(self.y[idx], self.s[idx]))
            except ValueError:
                return float("nan")

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        return np.array([self._one(np.repeat(self.items, row[self.units])) for row in counts])

    def estimate(self) -> float:
        return float(self.fn(self.y, self.s))  # on the full data, warnings reach the caller


# ---------------------------------------------------------------------------------------------- factories


class NamedMetric:
    """A named metric for one score array: the vectorised evaluator plus its full-data estimate."""

    threadsafe = True

    def __init__(self, metric: str, task: str, y: np.ndarray, s: np.ndarray, units: np.ndarray, n_units: int,
                 max_total: int):
        self.metric, self.task, self.y = metric, task, y
        self.n_units = n_units
        if metric == "auroc":
            self.evaluate = _auroc_columns(task, y, s, units, max_total)
        else:
            self.evaluate = LinearMetric(*_features(metric, task, y, s), units, n_units)

    def __call__(self, counts: np.ndarray, cache: dict) -> np.ndarray:
        return self.evaluate(counts, cache)

    def estimate(self) -> float:
        value = float(self(np.ones((1, self.n_units), dtype=np.int32), {})[0])
        if not np.isfinite(value):
            warnings.warn(f"{self.metric} is undefined on the full data, returning NaN: {undefined_reason(self)}",
                          UndefinedMetricWarning, stacklevel=3)
        return value


def undefined_reason(named: NamedMetric) -> str:
    """Why a named metric is NaN on the full data (only AUROC can be)."""
    y, task = named.y, named.task
    if task == "binary":
        targets = (y == 1)[:, None]
    elif task == "multiclass":
        targets = y[:, None] == np.arange(len(named.evaluate.columns))[None, :]
    else:
        targets = y == 1
    word = "label" if task == "multilabel" else "class"
    n_pos = targets.sum(axis=0)
    bad = [f"{word} {j} has {'no positives' if n_pos[j] == 0 else 'no negatives'}"
           for j in np.flatnonzero((n_pos == 0) | (n_pos == y.shape[0]))]
    if not bad:
        return "the metric has no defined value."
    return "; ".join(bad) + ". AUROC needs positives and negatives in every column; evaluate on data containing both."


def units_bound(units: np.ndarray, n_units: int, draws: int) -> int:
    """Largest possible total item weight of a resample of ``draws`` unit draws."""
    return int(draws) * int(np.bincount(units, minlength=n_units).max())


def weighted_metric(metric: str, y_true, y_score, counts, *, task=None) -> np.ndarray:
    """``metric`` for every row of integer item weights ``counts`` [b, N] (or one row [N]).

    Row r is the data set that repeats item i ``counts[r, i]`` times; the result equals the project's metric on
    those repeated arrays (NaN where undefined, without a warning).
    """
    check_metric_name(metric)
    kind, y, s = check_inputs(y_true, y_score, task)
    w = np.atleast_2d(np.asarray(counts))
    if w.ndim != 2 or w.shape[1] != y.shape[0] or not np.issubdtype(w.dtype, np.integer) or (w < 0).any():
        raise DataError(f"counts must be non-negative integers of shape [b, {y.shape[0]}] (one weight per item), "
                        f"got dtype {w.dtype} and shape {w.shape}.")
    units = np.arange(y.shape[0])
    max_total = max(int(w.sum(axis=1).max()), 1)
    w = w.astype(np.int32 if max_total <= _INT32_MAX else np.int64)
    return NamedMetric(metric, kind, y, s, units, y.shape[0], max_total)(w, {})
