"""Operating points of a whole study: for every finished binary model+method, a decision threshold chosen on
that cell's *validation* predictions and the sensitivity, specificity, PPV and NPV it gives on test.

The threshold never sees test labels (``choose_threshold`` takes validation data only); it is the one a
deployment would have fixed in advance. Sensitivity and specificity come with cluster-bootstrap CIs, each
resampling the clusters of its own class (positives for sensitivity, negatives for specificity): they are
accuracies on one class, so this is the stratified bootstrap of a proportion that keeps patients whole. An arm
with several draws is shown for its first draw; a cell stored without validation predictions (an older store)
is listed with the reason instead of a number.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from medrival.metrics.classification import UndefinedMetricWarning
from medrival.stats.questions import finished_cells

BINARY = "binary"


def _class_interval(y: np.ndarray, predicted: np.ndarray, clusters, wanted: int, n_resamples: int,
                    level: float, seed: int) -> tuple[float, float]:
    """CI of the share of class-``wanted`` items predicted as ``wanted`` (sensitivity for 1, specificity for 0)."""
    from medrival.stats.bootstrap import bootstrap_ci

    rows = y == wanted
    if rows.sum() < 2:
        return math.nan, math.nan
    hit = (predicted[rows] == wanted).astype(float)
    scores = np.stack([1.0 - hit, hit], axis=1)  # "accuracy" of all-ones labels = share of hits
    part = None if clusters is None else clusters[rows]
    ci = bootstrap_ci("accuracy", np.ones(int(rows.sum()), dtype=np.int64), scores, clusters=part,
                      n_resamples=n_resamples, level=level, seed=seed, task=BINARY)
    return ci.low, ci.high


def _positive_scores(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    prob_columns = [c for c in frame.columns if c.startswith("prob_")]
    return frame["label"].to_numpy(dtype=np.int64), frame[prob_columns[1]].to_numpy(dtype=float)


def _row(store, cell_id: str, rule: str, target, n_resamples: int, level: float, seed: int) -> dict:
    from medrival.stats.thresholds import choose_threshold, operating_point

    val = store.predictions(cell_id, split="val")
    if val.empty:
        return {"note": "no validation predictions stored (re-run the cell with this medrival version)"}
    y_val, s_val = _positive_scores(val)
    if y_val.min() == y_val.max():
        return {"note": f"validation holds one class only ({len(y_val)} items); no threshold can be chosen"}
    threshold = choose_threshold(y_val, s_val, rule=rule, target=target)
    test = store.predictions(cell_id)
    y, s = _positive_scores(test)
    with warnings.catch_warnings():  # e.g. NPV when nothing is predicted negative: NaN, shown as n/a
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        point = operating_point(y, s, threshold)
    clusters = test["cluster_id"].to_numpy() if "cluster_id" in test.columns else None
    predicted = (s >= threshold).astype(np.int64)
    sens = _class_interval(y, predicted, clusters, 1, n_resamples, level, seed)
    spec = _class_interval(y, predicted, clusters, 0, n_resamples, level, seed)
    return {**point, "sensitivity_low": sens[0], "sensitivity_high": sens[1], "specificity_low": spec[0],
            "specificity_high": spec[1], "n_val": len(y_val), "note": ""}


def study_operating_points(store, *, rule: str = "youden", target: float | None = None, n_resamples: int = 1000,
                           level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per binary (dataset, model+method, budget): rule, threshold (chosen on validation), the test
    operating point (sensitivity, specificity, PPV, NPV, F1, accuracy, counts) and CIs of sensitivity and
    specificity; ``note`` says why a row has no numbers."""
    from medrival.stats.thresholds import _check_rule

    _check_rule(rule, target)  # a bad rule fails here, not once per cell
    rows = []
    cells = finished_cells(store)
    for (dataset, arm), ids in sorted(cells.by_arm.items(), key=lambda item: (item[0][0], item[0][1].label)):
        if cells.specs[ids[0]].get("task") != BINARY:
            continue
        where = {"dataset": dataset, "arm": arm.label, "budget": arm.budget, "rule": rule, "target": target}
        rows.append({**where, **_row(store, ids[0], rule, target, n_resamples, level, seed)})
    return pd.DataFrame(rows)
