"""Validation-only model selection shared by the feature-space methods.

Every method picks its hyperparameters (k, alpha/beta, epochs, C...) by the AUROC it reaches on the validation
split; these helpers make that one rule: undefined AUROC (a validation split with a single class) counts as the
worst score, and ties go to the earliest candidate, which each method orders from simplest to most complex.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from medrival.metrics import binary_auroc, multiclass_auroc


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64-safe form (the max is subtracted first)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities


def validation_auroc(task, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUROC on the validation split; ``-inf`` when it is undefined, so such a candidate is never preferred."""
    metric = binary_auroc if getattr(task, "value", task) == "binary" else multiclass_auroc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a single-class validation split warns; it is handled just below
        auroc = metric(labels, probabilities)
    return -math.inf if auroc is None or np.isnan(auroc) else float(auroc)


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; the first one wins ties (candidates are ordered simplest first)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


def json_score(score: float) -> float | None:
    """A score as a JSON-able value: ``None`` when it was undefined (-inf)."""
    return None if not math.isfinite(score) else float(score)
