"""VQA arms for the research questions and the per-arm summaries: the per-question scores of finished VQA cells,
aligned across an arm's draws (and against the other arm of a comparison), per VQA metric.

A VQA cell's predictions carry one row per question with its image (``cluster_id``) and one per-item column per
metric of ``medrival.metrics.vqa`` (``score_answers``), NaN outside the metric's population: ``closed_accuracy`` is
finite on the questions scored as closed (yes/no, choice, multiple choice), ``open_token_f1`` on those scored as
open (open questions, and closed ones whose reference is not among their options). So a metric's population is
the rows where its column is finite -- the same rule as the cell-level metric (``summarise``: the NaN-skipping
mean), so a table's estimate equals the stored metric -- and a dataset with no open question simply has no
``open_token_f1`` row. The study reports ``VQA_METRICS`` (closed accuracy and open token F1); any per-item metric
can be listed instead (``vqa_metrics=``), ``undecided_rate`` included (lower is better: its verdicts are
mirrored, like Brier's). The intervals and paired comparisons are ``medrival.stats.item_means``' cluster bootstrap
over images (hierarchical over draws/seeds when an arm has several cells), with the same p-value rule as the
classification metrics (resolved below the Monte Carlo floor 2/(B + 1), ``p_floor`` recorded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from medrival.metrics.registry import metric_names
from medrival.stats.types import Interval, PairedComparison

VQA_TASK = "vqa"
# The per-item score columns reported for every VQA dataset, in report order: the headline metrics of
# ``score_answers`` in the metric registry (closed_accuracy, open_token_f1).
VQA_METRICS: tuple[str, ...] = metric_names(source="score_answers", headline=True)


def check_vqa_metrics(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """``names`` as a tuple of known per-item VQA metrics (``VQA_METRICS`` when None); an unknown name raises
    ``UnknownNameError`` listing the known ones."""
    from medrival.core.errors import UnknownNameError
    from medrival.core.registry import suggest

    per_item = metric_names(source="score_answers")  # the per-item columns every VQA cell stores
    if names is None:
        return VQA_METRICS
    names = tuple(part.strip() for part in names.split(",") if part.strip()) if isinstance(names, str) \
        else tuple(names)
    for name in names:
        if name not in per_item:
            close = suggest(str(name), list(per_item))
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"Unknown VQA metric {name!r}.{hint} Known VQA metrics: {', '.join(per_item)}.")
    if not names:
        raise UnknownNameError(f"No VQA metric given; known VQA metrics: {', '.join(per_item)}.")
    return names


@dataclass
class VqaScores:
    """One VQA metric's scores on the questions every draw of both arms scored, aligned row by row."""

    metric: str
    draws_a: list[np.ndarray]
    draws_b: list[np.ndarray]
    clusters: np.ndarray | None
    left_out: int  # questions of the metric's population (in A's first cell) unscored in some draw of A or B


def _scores(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _aligned(store, cell_ids: list[str], sample_ids: pd.Index, column: str) -> list[np.ndarray]:
    """One score array per cell on ``sample_ids``; NaN where the cell lacks the question or the score."""
    arrays = []
    for cell_id in cell_ids:
        frame = store.predictions(cell_id)
        scores = pd.Series(_scores(frame, column), index=frame["sample_id"])
        arrays.append(scores.reindex(sample_ids).to_numpy(dtype=float))
    return arrays


def vqa_scores(store, ids_a: list[str], ids_b: list[str] | None = None,
               metrics: Sequence[str] | None = None) -> list[VqaScores]:
    """Per VQA metric (``VQA_METRICS`` by default) with a population in A's first cell (the rows where its column
    is finite): the aligned scores of arm A (and B, if given) on the questions every draw scored."""
    first = store.predictions(ids_a[0])
    out = []
    for metric in check_vqa_metrics(metrics):
        rows = np.isfinite(_scores(first, metric))
        if not rows.any():
            continue  # e.g. a closed-only dataset has no open_token_f1 row
        sample_ids = pd.Index(first["sample_id"].to_numpy()[rows])
        draws_a = _aligned(store, ids_a, sample_ids, metric)
        draws_b = _aligned(store, ids_b, sample_ids, metric) if ids_b else []
        keep = np.logical_and.reduce([np.isfinite(v) for v in draws_a + draws_b])
        clusters = first["cluster_id"].to_numpy()[rows][keep] if "cluster_id" in first.columns else None
        out.append(VqaScores(metric, [v[keep] for v in draws_a], [v[keep] for v in draws_b], clusters,
                             int((~keep).sum())))
    return out


def compare_vqa_arms(store, ids_a: list[str], ids_b: list[str], *, n_resamples: int, level: float, seed: int,
                     metrics: Sequence[str] | None = None) -> list[tuple[PairedComparison, int]]:
    """Per VQA metric, (the paired comparison A - B, questions left out); hierarchical when an arm has draws."""
    from medrival.stats.item_means import paired_hierarchical_mean_bootstrap, paired_mean_bootstrap

    results = []
    for data in vqa_scores(store, ids_a, ids_b, metrics):
        options = dict(n_resamples=n_resamples, level=level, seed=seed, metric=data.metric)
        if len(data.draws_a) == 1 and len(data.draws_b) == 1:
            result = paired_mean_bootstrap(data.draws_a[0], data.draws_b[0], data.clusters, **options)
        else:
            result = paired_hierarchical_mean_bootstrap(data.draws_a, data.draws_b, data.clusters, **options)
        results.append((result, data.left_out))
    return results


def vqa_arm_intervals(store, ids: list[str], *, n_resamples: int, level: float, seed: int,
                      metrics: Sequence[str] | None = None) -> list[tuple[str, Interval, int]]:
    """Per VQA metric, (metric, its estimate with a cluster bootstrap CI, questions used)."""
    from medrival.stats.item_means import hierarchical_mean_ci, mean_ci

    out = []
    for data in vqa_scores(store, ids, metrics=metrics):
        options = dict(n_resamples=n_resamples, level=level, seed=seed)
        interval = mean_ci(data.draws_a[0], data.clusters, **options) if len(data.draws_a) == 1 else \
            hierarchical_mean_ci(data.draws_a, data.clusters, **options)
        out.append((data.metric, interval, len(data.draws_a[0])))
    return out
