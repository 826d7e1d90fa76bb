"""The metric registry: every metric a study can produce, registered once with what it means.

An entry (``MetricSpec``) says which tasks the metric applies to (binary / multiclass / multilabel / vqa) and, for
a VQA metric, which questions it averages over (``population``: the ``scored_as`` forms of
``medrival.metrics.vqa.score_answers``); whether higher is better; the exact function that computes it
(``aggregate``); for a mean of per-item scores, the stored per-item column and, where one exists, the function
that scores one item (``per_item``) -- the per-item form is what ``medrival.stats.item_means`` resamples; how the
study's bootstrap resamples it by name (``bootstrap``); and where a study's value comes from (``source``).
Display order is registration order. Every other list of metric names in medrival (``VQA_METRICS``,
``OPEN_METRICS``, ``LOWER_IS_BETTER``, ``METRIC_NAMES``, the report's column order, ``medrival compare --metric``)
is computed from here, so a metric is added in one place and statistics, verdicts and reports follow.

Aggregate signatures, by ``source``:
    - ``classification`` / ``calibration``: ``aggregate(y_true, y_prob, *, task)`` on a cell's labels and class
      probabilities (``compute_classification_metrics`` and the research questions' arm summaries call exactly
      these).
    - ``score_answers`` / ``llm_judge``: ``aggregate(item_scores)``, the mean over the items where the column is
      not NaN (the metric's population; :func:`item_mean`).
    - ``vqa_cell`` (``yes_no_auroc``): ``aggregate(y_true, y_score)``, the binary AUROC of the yes-probability on
      the yes/no questions.

Function references are ``"module:function"`` strings resolved on first use: this module imports nothing
heavier than ``medrival.core``, so ``medrival compare --help`` can list the metrics without loading NumPy, and the
modules that own the functions (``metrics.vqa``, ``metrics.classification``) can read the registry at import.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from medrival.core.registry import Registry
from medrival.core.vqa_forms import CLOSED_FORMS

TASKS = ("binary", "multiclass", "multilabel", "vqa")
CLASSIFICATION_TASKS = ("binary", "multiclass", "multilabel")
SOURCES = ("classification", "calibration", "score_answers", "vqa_cell", "llm_judge")
BOOTSTRAPS = ("weighted", "item_mean")  # medrival.stats.weighted (by name) | medrival.stats.item_means (column)

__all__ = ["BOOTSTRAPS", "CLASSIFICATION_TASKS", "METRIC_REGISTRY", "MetricSpec", "SOURCES", "TASKS",
           "higher_is_better", "item_mean", "lower_is_better_names", "metric_names", "metric_spec", "metric_specs"]


def _resolve(path: str) -> Callable:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, meaning and the functions that compute it (see the module docstring)."""

    name: str
    label: str  # how reports write it
    tasks: tuple[str, ...]
    higher_is_better: bool
    source: str  # what produces it in a study (SOURCES)
    aggregate_path: str  # "module:function" of the exact function that computes the cell's value
    population: tuple[str, ...] | None = None  # VQA: the scored_as forms averaged over; None: every item
    column: str | None = None  # the per-item score column whose mean over the population is the metric
    per_item_path: str | None = None  # "module:function" (predictions, references) -> per-item scores
    bootstrap: str | None = None  # how the study bootstraps it by name (BOOTSTRAPS); None: it does not
    headline: bool = False  # shown in the terminal report; the default VQA metrics of the research questions
    aliases: tuple[str, ...] = ()  # other names of the same quantity (a callable named brier_score)
    description: str = ""
    order: int = 0  # display order (registration order)

    def __post_init__(self):
        # Checked at registration so that a wrong declaration fails on import, not in a report.
        if not self.tasks or set(self.tasks) - set(TASKS):
            raise ValueError(f"metric {self.name!r}: tasks must be among {TASKS}, got {self.tasks}")
        if self.source not in SOURCES or (self.bootstrap is not None and self.bootstrap not in BOOTSTRAPS):
            raise ValueError(f"metric {self.name!r}: unknown source {self.source!r} or bootstrap {self.bootstrap!r}")
        if self.bootstrap == "item_mean" and self.column is None:
            raise ValueError(f"metric {self.name!r}: an item-mean bootstrap needs the per-item column")

    @property
    def aggregate(self) -> Callable:
        return _resolve(self.aggregate_path)

    @property
    def per_item(self) -> Callable | None:
        return _resolve(self.per_item_path) if self.per_item_path else None

    @property
    def is_vqa(self) -> bool:
        return "vqa" in self.tasks


METRIC_REGISTRY: Registry[MetricSpec] = Registry("metric")
_ALIASES: dict[str, str] = {}


def _register(name: str, label: str, tasks: tuple[str, ...], source: str, aggregate: str, **fields: Any) -> None:
    spec = MetricSpec(name=name, label=label, tasks=tasks, source=source, aggregate_path=aggregate,
                      higher_is_better=fields.pop("higher_is_better", True), order=len(METRIC_REGISTRY), **fields)
    METRIC_REGISTRY.register(name, spec)
    _ALIASES.update({alias: name for alias in spec.aliases})


def item_mean(item_scores: Any) -> float:
    """The mean of the per-item scores that are not NaN (the items the metric applies to); NaN when none are.
    Non-numeric entries count as NaN, as ``summarise`` has always read a stored column."""
    import pandas as pd  # here: the registry itself stays importable without pandas

    return float(pd.to_numeric(pd.Series(item_scores), errors="coerce").astype(float).mean())


# ---------------------------------------------------------------------------------------- registrations
# Order here is display order: classification first, then VQA (closed, open, then the extra VQA columns).
_CLS, _CAL = "medrival.metrics.classification", "medrival.stats.calibration"
_register("auroc", "AUROC", CLASSIFICATION_TASKS, "classification", f"{_CLS}:auroc_from_probabilities",
          bootstrap="weighted", headline=True,
          description="Trapezoidal area under the ROC curve; macro one-vs-rest (multiclass) or over labels.")
_register("accuracy", "accuracy", CLASSIFICATION_TASKS, "classification", f"{_CLS}:accuracy_from_probabilities",
          bootstrap="weighted", headline=True,
          description="Share of argmax predictions that are right; multilabel: exact-match (subset) accuracy.")
_register("balanced_accuracy", "balanced accuracy", CLASSIFICATION_TASKS, "classification",
          f"{_CLS}:balanced_accuracy_from_probabilities", bootstrap="weighted", headline=True,
          description="Mean per-class recall; multilabel: the mean over labels of each binary balanced accuracy.")
_register("macro_f1", "macro F1", CLASSIFICATION_TASKS, "classification", f"{_CLS}:macro_f1_from_probabilities",
          bootstrap="weighted", headline=True,
          description="Unweighted mean F1 over all K classes (the score columns); multilabel: over labels.")
_register("brier", "Brier score", CLASSIFICATION_TASKS, "calibration", f"{_CAL}:brier_score",
          higher_is_better=False, bootstrap="weighted", aliases=("brier_score",),
          description="Mean squared error of the probabilities (multiclass: Brier's multi-category score).")
_register("ece", "ECE", CLASSIFICATION_TASKS, "calibration", f"{_CAL}:expected_calibration_error",
          higher_is_better=False, aliases=("expected_calibration_error",),
          description="Expected calibration error, 15 equal-width bins (multiclass: top-label).")

_VQA, _MEAN = ("vqa",), "medrival.metrics.registry:item_mean"
for _name, _label, _forms, _what in (
        ("closed_accuracy", "closed accuracy", CLOSED_FORMS, "1 if the extracted answer is the reference"),
        ("yes_no_accuracy", "yes/no accuracy", ("yes_no",), "closed accuracy on yes/no questions only"),
        ("choice_accuracy", "choice accuracy", ("choice",), "closed accuracy on choice questions only"),
        ("mc_accuracy", "multiple-choice accuracy", ("multiple_choice",),
         "closed accuracy on multiple-choice questions only"),
        ("undecided_rate", "undecided rate", CLOSED_FORMS, "1 if no answer could be extracted (scores 0)")):
    _register(_name, _label, _VQA, "score_answers", _MEAN, population=_forms, column=_name, bootstrap="item_mean",
              higher_is_better=_name != "undecided_rate", headline=_name == "closed_accuracy",
              description=f"Mean over closed questions of the per-item score: {_what}.")
for _name, _label, _function, _what in (
        ("open_exact_match", "open exact match", "exact_match", "normalised strings equal"),
        ("open_token_f1", "open token F1", "token_f1", "SQuAD multiset token F1"),
        ("open_token_recall", "open token recall", "token_recall", "share of reference tokens in the answer"),
        ("open_bleu1", "open BLEU-1", "bleu1", "nltk sentence BLEU, unigram weights only"),
        ("open_rouge_l", "open ROUGE-L", "rouge_l", "rouge-score ROUGE-L F-measure"),
        ("open_recall_at_0_75", "open recall@0.75", "open_recall_at_0_75",
         "1 if token recall >= 0.75 (the legacy open 'accuracy')")):
    _register(_name, _label, _VQA, "score_answers", _MEAN, population=("open",), column=_name,
              per_item_path=f"medrival.metrics.vqa:{_function}", bootstrap="item_mean",
              headline=_name == "open_token_f1", description=f"Mean over open questions of: {_what}.")
_register("yes_no_auroc", "yes/no AUROC", _VQA, "vqa_cell", f"{_CLS}:binary_auroc", population=("yes_no",),
          headline=True, description="AUROC of the model's yes-probability on the yes/no questions.")
_register("llm_judge", "LLM judge", _VQA, "llm_judge", _MEAN, population=("open",), column="judge_mean",
          description="Mean over open questions of the LLM judge's mean score of each answer.")
_register("llm_judge_sd_mean", "LLM judge SD", _VQA, "llm_judge", _MEAN, population=("open",), column="judge_sd",
          higher_is_better=False,
          description="Mean over open questions of the spread of the judge's repeated scores (a diagnostic of "
                      "the judge: lower is a more consistent judge).")
del _name, _label, _forms, _what, _function


# -------------------------------------------------------------------------------------------------- lookups


def metric_spec(name: str) -> MetricSpec:
    """The entry of ``name`` (or of one of its aliases); an unknown name raises ``UnknownNameError`` naming the
    closest registered metrics and listing all of them."""
    return METRIC_REGISTRY.get(_ALIASES.get(name, name))


def metric_specs(*, task: str | None = None, source: str | tuple[str, ...] | None = None,
                 bootstrap: str | None = None, headline: bool | None = None) -> tuple[MetricSpec, ...]:
    """Registered metrics in display order, filtered by task, source(s), bootstrap kind and headline flag."""
    sources = (source,) if isinstance(source, str) else source
    specs = sorted((spec for _, spec in METRIC_REGISTRY.items()), key=lambda spec: spec.order)
    return tuple(spec for spec in specs
                 if (task is None or task in spec.tasks) and (sources is None or spec.source in sources)
                 and (bootstrap is None or spec.bootstrap == bootstrap)
                 and (headline is None or spec.headline == headline))


def metric_names(**filters: Any) -> tuple[str, ...]:
    """Names of :func:`metric_specs` (same filters), in display order."""
    return tuple(spec.name for spec in metric_specs(**filters))


def higher_is_better(name: str) -> bool:
    """The registered orientation of ``name``; an unknown name raises ``UnknownNameError`` (a typo must not
    silently become a higher-is-better metric)."""
    return metric_spec(name).higher_is_better


def lower_is_better_names(**filters: Any) -> frozenset[str]:
    """Names (and aliases) of the registered metrics where lower is better, among :func:`metric_specs`."""
    return frozenset(name for spec in metric_specs(**filters) if not spec.higher_is_better
                     for name in (spec.name, *spec.aliases))
