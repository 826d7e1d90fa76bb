"""Metrics: pure NumPy functions (no torch here, so reports stay light).

``medrival.metrics.registry`` holds every metric a study reports (name, tasks, population, orientation, the
function computing it); ``METRICS`` maps the names of the raw classification functions to them. Attributes are
imported on first use (PEP 562), so that importing the light registry -- as ``medrival compare --help`` does --
does not load NumPy and pandas.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "medrival.metrics.classification": ("UndefinedMetricWarning", "accuracy", "balanced_accuracy", "binary_auroc",
                                        "compute_classification_metrics", "macro_f1", "multiclass_auroc",
                                        "multilabel_auroc"),
    "medrival.metrics.vqa": ("VQA_METRICS", "bleu1", "exact_match", "open_recall_at_0_75", "rouge_l",
                             "score_answers", "summarise", "token_f1", "token_recall"),
    "medrival.metrics.vqa_extract": ("EXTRACTION_VERSION", "extract_answer"),
    "medrival.metrics.vqa_text": ("NORMALISATION_VERSION", "answer_tokens", "normalise_answer"),
    "medrival.metrics.registry": ("METRIC_REGISTRY", "MetricSpec", "higher_is_better", "metric_names",
                                  "metric_spec", "metric_specs"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["METRICS", *sorted(_WHERE)]


def _function_registry():
    from medrival.core.registry import Registry
    from medrival.metrics import classification

    functions: Registry = Registry("metric function")
    for name in ("binary_auroc", "multiclass_auroc", "multilabel_auroc", "accuracy", "balanced_accuracy",
                 "macro_f1"):
        functions.register(name, getattr(classification, name))
    return functions


def __getattr__(name: str) -> Any:
    if name == "METRICS":
        value = _function_registry()
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'medrival.metrics' has no attribute {name!r}")
    globals()[name] = value  # once resolved, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
