"""Metrics: pure NumPy functions registered by name in ``METRICS`` (no torch here, so reports stay light)."""
from __future__ import annotations

from medrival.core.registry import Registry
from medrival.metrics.classification import (
    UndefinedMetricWarning,
    accuracy,
    balanced_accuracy,
    binary_auroc,
    compute_classification_metrics,
    macro_f1,
    multiclass_auroc,
    multilabel_auroc,
)
from medrival.metrics.vqa import (
    NORMALISATION_VERSION,
    VQA_METRICS,
    answer_tokens,
    bleu1,
    closed_accuracy,
    exact_match,
    extract_choice,
    normalise_answer,
    open_recall_at_0_75,
    rouge_l,
    score_answers,
    summarise,
    token_f1,
    token_recall,
)

METRICS: Registry = Registry("metric")
for _fn in (binary_auroc, multiclass_auroc, multilabel_auroc, accuracy, balanced_accuracy, macro_f1):
    METRICS.register(_fn.__name__, _fn)
del _fn

__all__ = [
    "METRICS",
    "UndefinedMetricWarning",
    "accuracy",
    "balanced_accuracy",
    "binary_auroc",
    "compute_classification_metrics",
    "macro_f1",
    "multiclass_auroc",
    "multilabel_auroc",
    # VQA answer scoring (medrival.metrics.vqa)
    "NORMALISATION_VERSION",
    "VQA_METRICS",
    "answer_tokens",
    "bleu1",
    "closed_accuracy",
    "exact_match",
    "extract_choice",
    "normalise_answer",
    "open_recall_at_0_75",
    "rouge_l",
    "score_answers",
    "summarise",
    "token_f1",
    "token_recall",
]
