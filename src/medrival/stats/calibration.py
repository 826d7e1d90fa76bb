"""Calibration of predicted probabilities: expected calibration error (ECE), reliability tables, Brier score.

Definitions (``N`` items; "confidence" ``c_i`` and 0/1 "outcome" ``o_i`` depend on the task, see below):

* **ECE** (Naeini et al., AAAI 2015; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
  the items are put in ``B`` bins by confidence and ``ECE = sum_b (n_b / N) * |acc_b - conf_b|`` where ``n_b`` is
  the bin's count, ``acc_b`` the mean outcome and ``conf_b`` the mean confidence in the bin. Empty bins add 0.
  ``strategy="uniform"``: ``B`` equal-width bins, left-closed, the last one closed on both sides; for B = 15:
  ``[0, 1/15), [1/15, 2/15), ..., [14/15, 1]``. ``strategy="quantile"``: edges at the 0, 1/B, ..., 1 quantiles of
  the confidences (``np.percentile``, as scikit-learn), same left-closed rule; tied quantiles leave empty bins.
  (scikit-learn's ``calibration_curve`` closes its bins on the right instead; the two only differ for a
  confidence exactly on an inner edge.)
* **Brier score** (Brier, Monthly Weather Review 1950): binary ``mean_i (p_i - y_i)^2`` (what scikit-learn's
  ``brier_score_loss`` reports); multiclass: Brier's original multi-category score
  ``mean_i sum_k (p_ik - 1[y_i = k])^2``, which lies in [0, 2] and for two classes is twice the binary score.

Tasks (``task=None`` infers: ``y_true`` 2-D -> multilabel, ``y_prob`` 1-D or [N, 2] -> binary, else multiclass):

* binary: ``c_i`` = positive-class probability (``y_prob`` [N] or column 1 of [N, 2]), ``o_i`` = the 0/1 label;
  this is the reliability-diagram convention (scikit-learn's ``calibration_curve``), not top-label.
* multiclass: top-label calibration (Guo et al. 2017): ``c_i = max_k p_ik``, ``o_i = 1[argmax_k p_ik = y_i]``
  (the first maximum on ties, as ``np.argmax``).
* multilabel: each label is a binary problem; ECE and Brier are the unweighted means over labels.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.core.types import TaskKind
from medrival.metrics.classification import (
    UndefinedMetricWarning,
    _check_finite_numeric,
    _check_integer_labels,
    _check_label_range,
    _check_ndim,
    _check_same_length,
)

STRATEGIES = ("uniform", "quantile")
_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; anything further off is not probabilities


# ----------------------------------------------------------------------------------------------- input checks


def _check_task(task: TaskKind | str | None, y: np.ndarray, p: np.ndarray) -> TaskKind:
    """The task given, or the one inferred from the shapes (see the module docstring)."""
    if task is None:
        if y.ndim == 2:
            return TaskKind.MULTILABEL
        return TaskKind.BINARY if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 2) else TaskKind.MULTICLASS
    names = [k.value for k in TaskKind if k is not TaskKind.VQA]
    try:
        kind = TaskKind(task)
    except ValueError:
        kind = None
    if kind is None or kind is TaskKind.VQA:
        close = suggest(str(task), names)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"Unknown task {task!r} for a classification statistic.{hint} "
                               f"Known: {', '.join(names)} (or None to infer it from the shapes).")
    return kind


def _check_probabilities(p: np.ndarray, name: str) -> None:
    bad = (p < 0) | (p > 1)
    if bad.any():
        raise DataError(
            f"{name} has {int(bad.sum())} value(s) outside [0, 1] (e.g. {p[bad].flat[0].item()!r}); calibration "
            f"needs probabilities. Apply a sigmoid (binary/multilabel) or softmax (multiclass) to the scores first.")


def _check_rows_sum_to_one(p: np.ndarray, name: str) -> None:
    off = np.abs(p.sum(axis=1) - 1) > _SUM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(
            f"{name} row {i} sums to {p[i].sum():.6g}, expected 1 for single-label class probabilities; apply a "
            f"softmax to the scores, or pass task='multilabel' with [N, L] indicator targets if labels are "
            f"independent.")


def prepare(y_true, y_prob, task: TaskKind | str | None, name: str = "y_prob"
            ) -> tuple[TaskKind, np.ndarray, np.ndarray]:
    """Validated ``(task, y, p)``: binary and multilabel as [N, L] 0/1 targets with [N, L] probabilities (L = 1
    for binary); multiclass as labels [N] with [N, K] probabilities."""
    y = _check_integer_labels(y_true, "y_true")
    p = _check_finite_numeric(y_prob, name).astype(np.float64)
    kind = _check_task(task, y, p)
    if kind is TaskKind.BINARY:
        _check_ndim(y, "y_true", (1,), "a 1-D vector of 0/1 labels [N] for a binary task")
        _check_ndim(p, name, (1, 2), "positive-class probabilities [N] or an [N, 2] probability matrix")
        if p.ndim == 2:
            if p.shape[1] != 2:
                raise DataError(f"{name} has shape {p.shape}; a binary task expects [N] or [N, 2]. For "
                                f"{p.shape[1]} classes pass task='multiclass' (or 'multilabel').")
            _check_rows_sum_to_one(p, name)
            p = p[:, 1]
        _check_label_range(y, "y_true", 0, 2, "binary labels must be 0 (negative) or 1 (positive).")
        y, p = y[:, None], p[:, None]
    elif kind is TaskKind.MULTICLASS:
        _check_ndim(y, "y_true", (1,), "a 1-D vector of class indices [N]")
        _check_ndim(p, name, (2,), "an [N, K] probability matrix with one column per class")
        k = p.shape[1]
        _check_label_range(y, "y_true", 0, k, f"{name} has {k} columns, so labels must be 0..{k - 1}.")
        _check_rows_sum_to_one(p, name)
    else:
        _check_ndim(y, "y_true", (2,), "an [N, L] 0/1 indicator matrix")
        if y.shape != p.shape:
            raise DataError(f"y_true has shape {y.shape} but {name} has shape {p.shape}; both must be [N, L].")
        _check_label_range(y, "y_true", 0, 2, "a multilabel indicator matrix holds only 0 and 1.")
    _check_same_length(y, p, "y_true", name)
    _check_probabilities(p, name)
    return kind, y, p


def _check_bins(n_bins: int, strategy: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}; 15 is the usual choice (Guo et al.).")
    if strategy not in STRATEGIES:
        close = suggest(str(strategy), list(STRATEGIES))
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"Unknown binning strategy {strategy!r}.{hint} Known: {', '.join(STRATEGIES)}.")


# ------------------------------------------------------------------------------------------------------ binning


def _confidence_outcome(kind: TaskKind, y: np.ndarray, p: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (confidence, outcome) pair per binary problem: each label column, or the top label (multiclass)."""
    if kind is TaskKind.MULTICLASS:
        return [(p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64))]
    return [(p[:, j], y[:, j].astype(np.float64)) for j in range(p.shape[1])]


def _bin_stats(conf: np.ndarray, outcome: np.ndarray, n_bins: int, strategy: str):
    """Edges [B+1] and per-bin count, confidence sum and outcome sum [B] (left-closed bins, last one closed)."""
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.percentile(conf, np.linspace(0, 100, n_bins + 1))
    # Searching the inner edges only keeps 1.0 (and the maximum, for quantile bins) in the last bin;
    # side="right" puts a value equal to an edge in the bin that edge opens.
    ids = np.searchsorted(edges[1:-1], conf, side="right")
    count = np.bincount(ids, minlength=n_bins)
    return (edges, count, np.bincount(ids, weights=conf, minlength=n_bins),
            np.bincount(ids, weights=outcome, minlength=n_bins))


def _ece(conf: np.ndarray, outcome: np.ndarray, n_bins: int, strategy: str) -> float:
    _, count, conf_sum, out_sum = _bin_stats(conf, outcome, n_bins, strategy)
    # (n_b/N)|acc_b - conf_b| = |sum_outcome_b - sum_conf_b| / N; empty bins contribute exactly 0.
    return float(np.abs(out_sum - conf_sum).sum() / conf.size)


def _warn_empty(what: str) -> float:
    warnings.warn(f"{what} is undefined for empty input (0 examples); returning NaN.",
                  UndefinedMetricWarning, stacklevel=3)
    return float("nan")


# ------------------------------------------------------------------------------------------------- public API


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 15, strategy: str = "uniform",
                               task: TaskKind | str | None = None) -> float:
    """Expected calibration error in [0, 1] (lower is better).

    Uniform strategy: 15 equal-width bins, [0,1/15), [1/15,2/15), ..., [14/15, 1] (last bin closed);
    ``ECE = sum_b (n_b/N) |acc_b - conf_b|``, empty bins skipped. Binary: positive-class probability against the
    0/1 label; multiclass: top-label (max probability against argmax correctness, Guo et al. 2017); multilabel:
    mean over labels of the binary ECE. NaN with an ``UndefinedMetricWarning`` for empty input.
    """
    _check_bins(n_bins, strategy)
    kind, y, p = prepare(y_true, y_prob, task)
    if y.shape[0] == 0:
        return _warn_empty("ECE")
    return float(np.mean([_ece(c, o, n_bins, strategy) for c, o in _confidence_outcome(kind, y, p)]))


def calibration_curve_table(y_true, y_prob, *, n_bins: int = 15, strategy: str = "uniform",
                            task: TaskKind | str | None = None) -> pd.DataFrame:
    """Per-bin reliability table for plots: ``bin, lower, upper, count, mean_confidence, accuracy``.

    Same bins and task conventions as ``expected_calibration_error``. Every bin is listed (a fixed shape for
    plotting); an empty bin has count 0 and NaN mean_confidence/accuracy. Multilabel adds a leading ``label``
    column (the column index) with one block of bins per label.
    """
    _check_bins(n_bins, strategy)
    kind, y, p = prepare(y_true, y_prob, task)
    if y.shape[0] == 0:
        raise DataError("calibration_curve_table got 0 examples; there is nothing to bin. Pass non-empty data.")
    frames = []
    for j, (c, o) in enumerate(_confidence_outcome(kind, y, p)):
        edges, count, conf_sum, out_sum = _bin_stats(c, o, n_bins, strategy)
        with np.errstate(invalid="ignore", divide="ignore"):  # empty bins -> NaN, by design
            frame = pd.DataFrame({"bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:],
                                  "count": count, "mean_confidence": conf_sum / count, "accuracy": out_sum / count})
        if kind is TaskKind.MULTILABEL:
            frame.insert(0, "label", j)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def brier_score(y_true, y_prob, *, task: TaskKind | str | None = None) -> float:
    """Brier score (lower is better).

    Binary: ``mean (p - y)^2`` with p the positive-class probability (equals scikit-learn's
    ``brier_score_loss``). Multiclass: the original multi-category score of Brier (1950),
    ``mean_i sum_k (p_ik - 1[y_i = k])^2``, in [0, 2]. Multilabel: mean over labels of the binary score.
    NaN with an ``UndefinedMetricWarning`` for empty input.
    """
    kind, y, p = prepare(y_true, y_prob, task)
    if y.shape[0] == 0:
        return _warn_empty("Brier score")
    if kind is TaskKind.MULTICLASS:
        onehot = (y[:, None] == np.arange(p.shape[1])[None, :]).astype(np.float64)
        return float(((p - onehot) ** 2).sum(axis=1).mean())
    return float(((p - y) ** 2).mean(axis=0).mean())
