"""Binary operating points: choose a decision threshold on validation data, report it on test data.

A threshold ``t`` predicts positive when ``score >= t``. ``choose_threshold`` takes validation labels and scores
only (its signature has no place for test data), so the operating point cannot leak test labels; report it on the
test split with ``operating_point``. Candidate thresholds are the distinct validation scores (every other value
gives the same predictions as one of them), so the returned threshold is always an observed validation score.

Rules (P positives, N negatives on validation; TP/FP counted at ``score >= t``):

* ``"youden"``: maximise Youden's J = sensitivity + specificity - 1 = TP/P - FP/N (Youden, Cancer 1950).
* ``"f1"``: maximise F1 = 2 TP / (2 TP + FP + FN).
* ``"sensitivity"``: the largest threshold whose validation sensitivity TP/P reaches ``target`` (0 < target <= 1),
  i.e. the most specific operating point with at least that sensitivity (a screening setting).

Ties (several thresholds with the same best J or F1): the smallest threshold among them, i.e. the most sensitive
of the equally good operating points, which is the safer error in screening.

``operating_point`` reports sensitivity (recall), specificity, PPV (precision), NPV, F1 and accuracy; a ratio with
a zero denominator (e.g. PPV when nothing is predicted positive) is NaN with an ``UndefinedMetricWarning``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.metrics.classification import (
    UndefinedMetricWarning,
    _check_finite_numeric,
    _check_integer_labels,
    _check_label_range,
    _check_ndim,
    _check_same_length,
)

RULES = ("youden", "f1", "sensitivity")
_TIE_TOLERANCE = 1e-12  # J and F1 are ratios of counts; equal ones may differ by rounding only


def _check_binary(y_true, y_score, y_name: str, s_name: str) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels [N] and positive-class scores [N] (column 1 of an [N, 2] matrix)."""
    y = _check_integer_labels(y_true, y_name)
    s = _check_finite_numeric(y_score, s_name).astype(np.float64)
    _check_ndim(y, y_name, (1,), "a 1-D vector of 0/1 labels [N]")
    _check_ndim(s, s_name, (1, 2), "positive-class scores [N] or an [N, 2] probability matrix")
    if s.ndim == 2:
        if s.shape[1] != 2:
            raise DataError(f"{s_name} has shape {s.shape}; operating points are for binary tasks, which expect "
                            f"scores [N] or [N, 2]. For more classes, threshold each class one-vs-rest.")
        s = s[:, 1]
    _check_same_length(y, s, y_name, s_name)
    _check_label_range(y, y_name, 0, 2, "binary labels must be 0 (negative) or 1 (positive).")
    return y, s


def _check_rule(rule: str, target: float | None) -> None:
    if rule not in RULES:
        close = suggest(str(rule), list(RULES))
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"Unknown threshold rule {rule!r}.{hint} Known rules: {', '.join(RULES)}.")
    if rule == "sensitivity":
        if target is None or isinstance(target, bool) or not isinstance(target, (int, float, np.number)) \
                or not 0 < float(target) <= 1:
            raise DataError(f"rule='sensitivity' needs target in (0, 1], the validation sensitivity to reach, "
                            f"got target={target!r}; e.g. target=0.9.")
    elif target is not None:
        # Silently ignoring it would hide a mistaken rule name.
        raise DataError(f"target={target!r} is only used by rule='sensitivity', but rule={rule!r}; drop target "
                        f"or use rule='sensitivity'.")


def _counts_by_threshold(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with TP and FP for ``score >= threshold``."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # The last position of each run of equal scores: all items with score >= that value are predicted positive.
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    return s_sorted[last], tp, fp


def choose_threshold(y_val, score_val, *, rule: str = "youden", target: float | None = None) -> float:
    """Decision threshold chosen on validation data (predict positive when ``score >= threshold``).

    ``rule``: ``"youden"`` (max sensitivity + specificity - 1), ``"f1"`` (max F1) or ``"sensitivity"`` (the
    largest threshold with validation sensitivity >= ``target``). Ties go to the smallest threshold among the
    best. Validation data must hold both classes.
    """
    _check_rule(rule, target)
    y, s = _check_binary(y_val, score_val, "y_val", "score_val")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"y_val has {n_pos} positive(s) and {n_neg} negative(s); choosing a threshold needs both "
                        f"classes in the validation data. Use a larger or stratified validation split.")
    thresholds, tp, fp = _counts_by_threshold(y, s)
    if rule == "sensitivity":
        # Sensitivity grows as the threshold falls; the lowest threshold gives 1, so the target is always reached.
        reached = tp >= float(target) * n_pos - _TIE_TOLERANCE * n_pos
        return float(thresholds[np.flatnonzero(reached)[0]])
    if rule == "youden":
        value = tp / n_pos - fp / n_neg
    else:
        value = 2 * tp / (tp + fp + n_pos)  # 2TP + FP + FN with FN = P - TP
    best = np.flatnonzero(value >= value.max() - _TIE_TOLERANCE)
    return float(thresholds[best[-1]])  # thresholds descend, so the last of the best is the smallest


def _ratio(num: int, den: int, what: str, why: str) -> float:
    if den == 0:
        warnings.warn(f"{what} is undefined ({why}); returning NaN.", UndefinedMetricWarning, stacklevel=3)
        return math.nan
    return num / den


def operating_point(y_test, score_test, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV, F1 and accuracy at ``threshold`` (positive when score >= threshold).

    Also returns the ``threshold`` and the counts ``n, tp, fp, tn, fn``.
    """
    y, s = _check_binary(y_test, score_test, "y_test", "score_test")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or math.isnan(threshold):
        raise DataError(f"threshold must be a number, got {threshold!r}; use choose_threshold on validation data.")
    if y.size == 0:
        raise DataError("y_test is empty; an operating point needs at least one test example.")
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    return {
        "threshold": float(threshold),
        "sensitivity": _ratio(tp, tp + fn, "sensitivity", "no positives in y_test"),
        "specificity": _ratio(tn, tn + fp, "specificity", "no negatives in y_test"),
        "ppv": _ratio(tp, tp + fp, "PPV", "nothing is predicted positive at this threshold"),
        "npv": _ratio(tn, tn + fn, "NPV", "nothing is predicted negative at this threshold"),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, "F1", "no positives in y_test and none predicted"),
        "accuracy": (tp + tn) / y.size,
        "n": int(y.size), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }
