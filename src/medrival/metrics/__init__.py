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
    VQA_METRICS,
    bleu1,
    exact_match,
    open_recall_at_0_75,
    rouge_l,
    score_answers,
    summarise,
    token_f1,
    token_recall,
)
from medrival.metrics.vqa_extract import EXTRACTION_VERSION, extract_answer
from medrival.metrics.vqa_text import NORMALISATION_VERSION, answer_tokens, normalise_answer

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
    "EXTRACTION_VERSION",
    "NORMALISATION_VERSION",
    "VQA_METRICS",
    "answer_tokens",
    "bleu1",
    "exact_match",
    "extract_answer",
    "normalise_answer",
    "open_recall_at_0_75",
    "rouge_l",
    "score_answers",
    "summarise",
    "token_f1",
    "token_recall",
]
