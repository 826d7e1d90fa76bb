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
]
