"""Validation-only model selection shared by the feature-space methods.

Every method picks its hyperparameters (k, alpha/beta, epochs, C...) by the AUROC it reaches on the validation
split; these helpers make that one rule: undefined AUROC (a validation split with a single class) counts as the
worst score, and ties go to the earliest candidate, which each method orders from simplest to most complex.

Multilabel tasks are scored by macro AUROC over labels. For SELECTION only, a label with a single class in the
validation split (common for rare findings in a small split) is left out of that mean rather than making every
candidate undefined: all candidates are scored on the same defined labels, so the comparison stays fair. The
reported test metric never does this (``medrival.metrics`` returns NaN and names the undefined labels).
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from medrival.core.errors import DataError
from medrival.metrics import binary_auroc, multiclass_auroc, multilabel_auroc


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64-safe form (the max is subtracted first)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities


def validation_auroc(task, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUROC on the validation split; ``-inf`` when it is undefined, so such a candidate is never preferred.

    Multilabel: macro AUROC over the labels with both classes in ``labels`` (see the module docstring)."""
    kind = getattr(task, "value", task)
    if kind == "multilabel":
        return _defined_labels_auroc(labels, probabilities)
    metric = binary_auroc if kind == "binary" else multiclass_auroc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a single-class validation split warns; it is handled just below
        auroc = metric(labels, probabilities)
    return -math.inf if auroc is None or np.isnan(auroc) else float(auroc)


def _defined_labels_auroc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro AUROC over the labels that have positives and negatives in ``labels`` (N x L); ``-inf`` if none has."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape != np.shape(probabilities):
        raise DataError(f"multilabel validation needs labels and probabilities of one shape N x L; got labels "
                        f"{labels.shape} and probabilities {np.shape(probabilities)}. A multilabel split's labels "
                        "are an N x L 0/1 matrix with one column per class name.")
    positives = labels.sum(axis=0)
    defined = (positives > 0) & (positives < len(labels))
    if not defined.any():
        return -math.inf
    auroc = multilabel_auroc(labels[:, defined], np.asarray(probabilities)[:, defined])
    return -math.inf if np.isnan(auroc) else float(auroc)


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; the first one wins ties (candidates are ordered simplest first)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


def json_score(score: float) -> float | None:
    """A score as a JSON-able value: ``None`` when it was undefined (-inf)."""
    return None if not math.isfinite(score) else float(score)
