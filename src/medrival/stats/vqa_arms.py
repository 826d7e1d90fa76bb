"""VQA arms for the research questions and the per-arm summaries: the per-question scores of finished VQA cells,
aligned across an arm's draws (and against the other arm of a comparison), per VQA metric.

A VQA cell's predictions carry one row per question with its ``answer_type`` ("closed" | "open"), its image
(``cluster_id``) and per-item score columns. The study reports two metrics per VQA dataset, each a mean of
per-item scores over the questions it applies to (``VQA_METRICS``): closed-question accuracy over the closed
questions and token F1 over the open ones; a metric is skipped when the dataset has no question of its type. The
intervals and paired comparisons are ``medrival.stats.item_means``' cluster bootstrap over images (hierarchical
over draws/seeds when an arm has several cells).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medrival.stats.types import Interval, PairedComparison

VQA_TASK = "vqa"
# (per-item score column, answer type whose questions it is averaged over), in report order.
VQA_METRICS = (("closed_accuracy", "closed"), ("token_f1", "open"))


@dataclass
class VqaScores:
    """One VQA metric's scores on the questions every draw of both arms scored, aligned row by row."""

    metric: str
    draws_a: list[np.ndarray]
    draws_b: list[np.ndarray]
    clusters: np.ndarray | None
    left_out: int  # questions of the type (in A's first cell) without a finite score in some draw of A or B


def _answer_types(frame: pd.DataFrame) -> np.ndarray:
    if "answer_type" not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return frame["answer_type"].astype(str).str.strip().str.lower().to_numpy()


def _aligned(store, cell_ids: list[str], sample_ids: pd.Index, column: str) -> list[np.ndarray]:
    """One score array per cell on ``sample_ids``; NaN where the cell lacks the question or the score."""
    arrays = []
    for cell_id in cell_ids:
        frame = store.predictions(cell_id)
        if column not in frame.columns:
            arrays.append(np.full(len(sample_ids), np.nan))
            continue
        scores = pd.Series(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float),
                           index=frame["sample_id"])
        arrays.append(scores.reindex(sample_ids).to_numpy(dtype=float))
    return arrays


def vqa_scores(store, ids_a: list[str], ids_b: list[str] | None = None) -> list[VqaScores]:
    """Per VQA metric whose question type the dataset has: the aligned scores of arm A (and B, if given)."""
    first = store.predictions(ids_a[0])
    types = _answer_types(first)
    out = []
    for metric, kind in VQA_METRICS:
        rows = types == kind
        if not rows.any():
            continue  # e.g. a closed-only dataset has no token F1 row
        sample_ids = pd.Index(first["sample_id"].to_numpy()[rows])
        draws_a = _aligned(store, ids_a, sample_ids, metric)
        draws_b = _aligned(store, ids_b, sample_ids, metric) if ids_b else []
        keep = np.logical_and.reduce([np.isfinite(v) for v in draws_a + draws_b])
        clusters = first["cluster_id"].to_numpy()[rows][keep] if "cluster_id" in first.columns else None
        out.append(VqaScores(metric, [v[keep] for v in draws_a], [v[keep] for v in draws_b], clusters,
                             int((~keep).sum())))
    return out


def compare_vqa_arms(store, ids_a: list[str], ids_b: list[str], *, n_resamples: int, level: float,
                     seed: int) -> list[tuple[PairedComparison, int]]:
    """Per VQA metric, (the paired comparison A - B, questions left out); hierarchical when an arm has draws."""
    from medrival.stats.item_means import paired_hierarchical_mean_bootstrap, paired_mean_bootstrap

    results = []
    for data in vqa_scores(store, ids_a, ids_b):
        options = dict(n_resamples=n_resamples, level=level, seed=seed, metric=data.metric)
        if len(data.draws_a) == 1 and len(data.draws_b) == 1:
            result = paired_mean_bootstrap(data.draws_a[0], data.draws_b[0], data.clusters, **options)
        else:
            result = paired_hierarchical_mean_bootstrap(data.draws_a, data.draws_b, data.clusters, **options)
        results.append((result, data.left_out))
    return results


def vqa_arm_intervals(store, ids: list[str], *, n_resamples: int, level: float,
                      seed: int) -> list[tuple[str, Interval, int]]:
    """Per VQA metric, (metric, its estimate with a cluster bootstrap CI, questions used)."""
    from medrival.stats.item_means import hierarchical_mean_ci, mean_ci

    out = []
    for data in vqa_scores(store, ids):
        options = dict(n_resamples=n_resamples, level=level, seed=seed)
        interval = mean_ci(data.draws_a[0], data.clusters, **options) if len(data.draws_a) == 1 else \
            hierarchical_mean_ci(data.draws_a, data.clusters, **options)
        out.append((data.metric, interval, len(data.draws_a[0])))
    return out
