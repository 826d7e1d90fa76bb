"""Prompt sensitivity of a study: how far each off-the-shelf arm's test metric moves with the wording of its prompts.

A ``zero_shot`` or ``vqa_zero_shot`` cell run with ``prompt_sensitivity: K`` stores, in its record's cost, the test
metrics of each of the first K template sets (``cost["prompt_sensitivity"]``: set -> metric -> value, scored by the
cell runner) and what it predicted with (``cost["prompt_selection"]``: mode, chosen set, validation score of each
candidate). This module reads those records -- no predictions, no torch -- and gives one row per arm and metric:
the spread of the test metric over the template sets, and the set the arm actually used. A wide spread says that
a verdict between two models may be a verdict between two prompts (Jeong et al., 2024); the spread is a report,
never a choice (a cell chooses its set on validation only).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

SENSITIVITY_KEY = "prompt_sensitivity"
SELECTION_KEY = "prompt_selection"
DEFAULT_SET = "default"
# The test metrics reported per task (the study's headline metric of each): AUROC for diagnosis; closed accuracy
# and open token F1 for VQA (a VQA split may hold either kind of question, or both).
METRICS_BY_TASK = {"binary": ("auroc",), "multiclass": ("auroc",), "multilabel": ("auroc",),
                   "vqa": ("closed_accuracy", "open_token_f1")}
COLUMNS = ["dataset", "model", "method", "arm", "budget", "selection", "metric", "n_cells", "n_sets", "min",
           "median", "max", "iqr", "range", "chosen_set", "chosen_value"]


def _arm_key(spec: dict) -> tuple[str, str, str, str]:
    """(dataset, model, method label, budget): the cells of one arm differ only by seed or few-shot draw."""
    return (str(spec.get("dataset")), str(spec.get("model")), str(spec.get("method_label") or spec.get("method")),
            str(spec.get("budget") or "full"))


def _value(metrics: dict, metric: str) -> float:
    """A stored metric as a float; missing or undefined (stored as null) is NaN."""
    value = metrics.get(metric) if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _sensitive_records(store) -> dict[tuple, list]:
    """Finished records that stored per-set test metrics, grouped by arm (in a deterministic order)."""
    by_arm: dict[tuple, list] = defaultdict(list)
    for record in store.records():
        if record.status == "done" and isinstance(record.cost.get(SENSITIVITY_KEY), dict):
            by_arm[_arm_key(record.spec)].append(record)
    return dict(sorted(by_arm.items()))


def _set_means(records: list, metric: str) -> dict[str, float]:
    """Each template set's test metric, averaged over the arm's cells (seeds, draws) that scored it."""
    values: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for name, metrics in record.cost[SENSITIVITY_KEY].items():
            values[name].append(_value(metrics, metric))
    return {name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            for name, v in values.items()}


def _chosen(records: list) -> tuple[str, str]:
    """(selection mode, chosen set) of an arm's cells; cells that chose differently are listed together."""
    selections = [record.cost.get(SELECTION_KEY) or {} for record in records]
    modes = sorted({str(s.get("mode", "fixed")) for s in selections})
    chosen = sorted({str(s.get("chosen", DEFAULT_SET)) for s in selections})
    return "/".join(modes), "/".join(chosen)


def _row(key: tuple, records: list, metric: str) -> dict | None:
    """One table row: the spread of ``metric`` over the template sets of one arm; None when no set defines it."""
    means = _set_means(records, metric)
    finite = np.array([v for v in means.values() if np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return None
    dataset, model, method, budget = key
    low, median, high = np.percentile(finite, [0, 50, 100])
    q1, q3 = np.percentile(finite, [25, 75])
    selection, chosen = _chosen(records)
    # The arm's own test metric: what it reported with the set it chose (the mean over its cells).
    own = [_value(record.metrics, metric) for record in records]
    suffix = "" if budget == "full" else f" ({budget})"
    return {"dataset": dataset, "model": model, "method": method, "arm": f"{model}+{method}{suffix}",
            "budget": budget, "selection": selection, "metric": metric, "n_cells": len(records),
            "n_sets": int(finite.size), "min": float(low), "median": float(median), "max": float(high),
            "iqr": float(q3 - q1), "range": float(high - low), "chosen_set": chosen,
            "chosen_value": float(np.nanmean(own)) if np.isfinite(own).any() else float("nan")}


def prompt_sensitivity_table(store) -> pd.DataFrame:
    """One row per (arm, metric) of the cells that ran with ``prompt_sensitivity``: columns ``COLUMNS``.

    ``n_sets``: template sets with a defined test metric; ``min``/``median``/``max``/``iqr``/``range``: of the test
    metric over those sets (each set's value averaged over the arm's seeds and draws); ``selection``: ``fixed`` or
    ``validation``; ``chosen_set``: the set the arm predicted with (several joined by "/" when its cells chose
    differently); ``chosen_value``: the arm's own test metric. Empty (with the columns) when no cell stored it."""
    rows = []
    for key, records in _sensitive_records(store).items():
        task = str(records[0].spec.get("task", ""))
        for metric in METRICS_BY_TASK.get(task, ("auroc",)):
            row = _row(key, records, metric)
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
