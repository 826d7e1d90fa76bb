"""The study's research questions, answered from the store and the cards' generalist-specialist pairs.

- RQ1: off-the-shelf specialist vs its paired generalist with the *same* off-the-shelf method (``zero_shot`` for
  contrastive models, ``option_zero_shot`` for generative ones on classification datasets, ``vqa_zero_shot`` on
  VQA datasets), on the specialist's in-domain (ID) datasets.
- RQ2: the adapted generalist (every method that is not off-the-shelf, at every label budget) vs the specialist's
  off-the-shelf arm on that dataset and vs the specialist adapted the same way, on ID datasets.
- RQ3: the same as RQ2 on out-of-domain (OOD) datasets; datasets whose modalities are partly in the specialist's
  pretraining ("mixed") are reported here too, with their domain shown.

ID/OOD is always the *specialist's* domain (the generalist's cards list natural images only). Each comparison
pairs the two arms on the same test items (joined on sample id) and uses the paired cluster bootstrap
(clusters: the stored ``cluster_id`` — patient, lesion or image); an arm with several seeds or few-shot draws is
resampled hierarchically (draws, then items). Classification datasets are compared on the chosen metric; a VQA
dataset yields one row per VQA metric (``closed_accuracy`` over the questions scored as closed and
``open_token_f1`` over those scored as open: means of per-item scores, ``medrival.stats.vqa_arms``; a metric
without questions is left out). Every RQ table, VQA rows included, is one family for Holm / Benjamini-Hochberg.
VQA cells scored by earlier rules (``medrival.store.is_outdated_vqa``) are left out; the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from medrival.stats.types import PairedComparison
from medrival.stats.vqa_arms import VQA_TASK
from medrival.store.results import is_outdated_vqa

ZERO_SHOT = "zero_shot"
# Methods that use a model as released, without training on the dataset: the "off-the-shelf" arms of RQ1-RQ3.
OFF_THE_SHELF = frozenset({ZERO_SHOT, "vqa_zero_shot", "option_zero_shot"})
FULL = "full"


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a model with a method at a label budget (all its seeds and draws)."""

    model: str
    method: str
    budget: str = FULL

    @property
    def label(self) -> str:
        suffix = "" if self.budget == FULL else f" ({self.budget})"
        return f"{self.model}+{self.method}{suffix}"


class CachedPredictions:
    """A store whose per-sample predictions are read once: the RQ tables, the per-arm summaries and the report
    read the same cells many times (a zero-shot specialist is side B of every RQ2 row of its dataset)."""

    def __init__(self, store):
        self._store, self._frames = store, {}

    def predictions(self, cell_id: str, split: str = "test") -> pd.DataFrame:
        key = (cell_id, split)
        if key not in self._frames:
            self._frames[key] = self._store.predictions(cell_id, split=split)
        return self._frames[key]

    def __getattr__(self, name: str):  # records(), get(), has_predictions(), root, ...
        return getattr(self._store, name)


@dataclass
class _Cells:
    """The finished cells of a store, grouped by (dataset, arm), with the facts the questions need."""

    by_arm: dict[tuple[str, Arm], list[str]]
    specs: dict[str, dict]
    outdated: list[str] = field(default_factory=list)  # VQA cells scored by earlier rules, left out


def _finished_cells(store, include_vqa: bool = False) -> _Cells:
    """Finished cells with stored predictions. VQA cells only with ``include_vqa``: their predictions are answers
    scored per item, not class probabilities, so the classification-only analyses (subgroups, operating points)
    must not see them. VQA cells scored by earlier rules are never used (their ids are in ``outdated``)."""
    by_arm: dict[tuple[str, Arm], list[str]] = {}
    specs, outdated = {}, []
    for record in store.records():
        if include_vqa and is_outdated_vqa(record):
            outdated.append(record.cell_id)
            continue
        if record.status != "done" or not store.has_predictions(record.cell_id) \
                or (record.spec.get("task") == VQA_TASK and not include_vqa):
            continue
        spec = record.spec
        arm = Arm(spec["model"], spec["method"], spec.get("budget") or FULL)
        by_arm.setdefault((spec["dataset"], arm), []).append(record.cell_id)
        specs[record.cell_id] = spec
    return _Cells(by_arm, specs, outdated)


def _sorted_arms(cells: _Cells) -> list[tuple[tuple[str, Arm], list[str]]]:
    return sorted(cells.by_arm.items(), key=lambda item: (item[0][0], item[0][1].label))


def planned_comparisons(cells: _Cells) -> list[dict]:
    """Every (rq, dataset, A, B) the store can answer: pairs come from the cells' ``role`` and ``pair``; the
    specialist's off-the-shelf arms anchor them."""
    plans, adapted_done = [], set()
    for (dataset, arm), ids in _sorted_arms(cells):
        spec = cells.specs[ids[0]]
        generalist = spec.get("pair")
        if spec.get("role") != "specialist" or arm.method not in OFF_THE_SHELF or arm.budget != FULL \
                or not generalist:
            continue
        domain = spec.get("domain", "OOD")
        base = {"dataset": dataset, "modality": spec.get("modality"), "domain": domain, "task": spec.get("task")}
        if domain == "ID" and (dataset, Arm(generalist, arm.method)) in cells.by_arm:
            plans.append({**base, "rq": "RQ1", "a": arm, "b": Arm(generalist, arm.method)})
        # A specialist with two off-the-shelf arms on one dataset is compared with the adapted specialist once.
        with_adapted = (dataset, arm.model) not in adapted_done
        adapted_done.add((dataset, arm.model))
        plans += _adapted_plans(cells, base, dataset, arm, generalist, with_adapted)
    return plans


def _adapted_plans(cells: _Cells, base: dict, dataset: str, specialist: Arm, generalist: str,
                   with_adapted: bool = True) -> list[dict]:
    rq = "RQ2" if base["domain"] == "ID" else "RQ3"
    plans = []
    for (other_dataset, arm) in sorted(cells.by_arm, key=lambda key: key[1].label):
        if other_dataset != dataset or arm.model != generalist or arm.method in OFF_THE_SHELF:
            continue
        plans.append({**base, "rq": rq, "versus": "off-the-shelf specialist", "a": arm, "b": specialist})
        adapted = Arm(specialist.model, arm.method, arm.budget)
        if with_adapted and (dataset, adapted) in cells.by_arm:
            plans.append({**base, "rq": rq, "versus": "adapted specialist", "a": arm, "b": adapted})
    return plans


def arm_outputs(store, cell_ids: list[str]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """(id/label/cluster frame of the first cell, one score array per cell aligned to it)."""
    frames = [store.predictions(cell_id) for cell_id in cell_ids]
    first = frames[0]
    prob_columns = [c for c in first.columns if c.startswith("prob_")]
    scores = []
    for frame in frames:
        aligned = frame.set_index("sample_id").loc[first["sample_id"]]
        scores.append(aligned[prob_columns].to_numpy(dtype=float))
    return first, scores


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    """The label vector (single-label) or N x L indicator matrix (multilabel) of a predictions frame."""
    if "label" in frame.columns:
        return frame["label"].to_numpy(dtype=np.int64)
    return frame[[c for c in frame.columns if c.startswith("label_")]].to_numpy(dtype=np.int64)


@dataclass
class PairedData:
    """Two arms' outputs on the test items both scored, aligned row by row."""

    y: np.ndarray
    clusters: np.ndarray | None
    draws_a: list[np.ndarray]
    draws_b: list[np.ndarray]
    left_out: int  # items of A that B did not score


def paired_data(store, ids_a: list[str], ids_b: list[str]) -> PairedData:
    frame_a, scores_a = arm_outputs(store, ids_a)
    frame_b, scores_b = arm_outputs(store, ids_b)
    keep_a = frame_a["sample_id"].isin(set(frame_b["sample_id"])).to_numpy()
    order_b = pd.Index(frame_b["sample_id"]).get_indexer(frame_a["sample_id"][keep_a])
    clusters = frame_a["cluster_id"].to_numpy()[keep_a] if "cluster_id" in frame_a.columns else None
    return PairedData(labels_of(frame_a)[keep_a], clusters, [s[keep_a] for s in scores_a],
                      [s[order_b] for s in scores_b], int((~keep_a).sum()))


def compare_paired(data: PairedData, *, metric: str, task: str, n_resamples: int, level: float,
                   seed: int) -> PairedComparison:
    """The paired comparison A - B (hierarchical over draws when either arm has several)."""
    from medrival.stats.bootstrap import paired_bootstrap, paired_hierarchical_bootstrap

    options = dict(clusters=data.clusters, n_resamples=n_resamples, level=level, seed=seed, task=task)
    if len(data.draws_a) == 1 and len(data.draws_b) == 1:
        return paired_bootstrap(metric, data.y, data.draws_a[0], data.draws_b[0], **options)
    return paired_hierarchical_bootstrap(metric, data.y, data.draws_a, data.draws_b, **options)


def compare_arms(store, ids_a: list[str], ids_b: list[str], *, metric: str, task: str, n_resamples: int,
                 level: float, seed: int) -> tuple[PairedComparison, int]:
    """The paired comparison A - B on the test items both arms scored; also returns the items left out."""
    data = paired_data(store, ids_a, ids_b)
    return compare_paired(data, metric=metric, task=task, n_resamples=n_resamples, level=level,
                          seed=seed), data.left_out


def _plan_results(store, cells: _Cells, plan: dict, *, metric: str, n_resamples: int, level: float,
                  seed: int, vqa_metrics: Sequence[str] | None = None) -> list[tuple[PairedComparison, int]]:
    """(comparison, items left out) of one plan: one for a classification dataset, one per VQA metric."""
    from medrival.stats.vqa_arms import compare_vqa_arms

    ids_a = cells.by_arm[(plan["dataset"], plan["a"])]
    ids_b = cells.by_arm[(plan["dataset"], plan["b"])]
    options = dict(n_resamples=n_resamples, level=level, seed=seed)
    if plan["task"] == VQA_TASK:
        return compare_vqa_arms(store, ids_a, ids_b, metrics=vqa_metrics, **options)
    return [compare_arms(store, ids_a, ids_b, metric=metric, task=plan["task"], **options)]


def _row(plan: dict, result: PairedComparison, left_out: int, draws: tuple[int, int]) -> dict:
    return {"dataset": plan["dataset"], "modality": plan["modality"], "domain": plan["domain"],
            "task": plan["task"], "a": plan["a"].label, "b": plan["b"].label, "method": plan["a"].method,
            "versus": plan.get("versus", "off-the-shelf generalist"), "budget": plan["a"].budget,
            "metric": result.metric, "estimate_a": result.estimate_a, "estimate_b": result.estimate_b,
            "n_items": result.n_items, "n_clusters": result.n_clusters, "draws_a": draws[0], "draws_b": draws[1],
            "items_left_out": left_out, "test": result.method}


def verdicts_by_metric(comparisons: list[PairedComparison], *, level: float, correction: str) -> pd.DataFrame:
    """The verdict table of one family, each row oriented by its own metric (a table can mix Brier rows with
    VQA accuracy rows, or ``undecided_rate`` rows with ``closed_accuracy`` ones); the adjusted p-values do not
    depend on the orientation, only the win/loss words do."""
    from medrival.stats.verdicts import higher_is_better, verdict_table

    options = dict(level=level, correction=correction)
    higher, lower = (verdict_table(comparisons, higher_is_better=h, **options) for h in (True, False))
    rows = [high if higher_is_better(c.metric) else low for c, high, low in zip(comparisons, higher, lower)]
    return pd.DataFrame(rows).drop(columns=["label"], errors="ignore")


def research_questions(store, *, metric: str = "auroc", n_resamples: int = 2000, level: float = 0.95,
                       seed: int = 0, correction: str = "holm",
                       vqa_metrics: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """RQ name -> table of paired differences with CIs, p-values (raw, Holm, BH) and verdicts.

    ``metric`` is the classification metric; VQA datasets are compared on ``vqa_metrics`` (per-item columns of
    ``medrival.metrics.vqa``; default ``medrival.stats.vqa_arms.VQA_METRICS``: closed_accuracy, open_token_f1)."""
    from medrival.stats.vqa_arms import check_vqa_metrics

    vqa_metrics = check_vqa_metrics(vqa_metrics)
    cells = _finished_cells(store, include_vqa=True)
    rows: dict[str, list[dict]] = {}
    comparisons: dict[str, list[PairedComparison]] = {}
    for plan in planned_comparisons(cells):
        draws = (len(cells.by_arm[(plan["dataset"], plan["a"])]), len(cells.by_arm[(plan["dataset"], plan["b"])]))
        for result, left_out in _plan_results(store, cells, plan, metric=metric, n_resamples=n_resamples,
                                              level=level, seed=seed, vqa_metrics=vqa_metrics):
            rows.setdefault(plan["rq"], []).append(_row(plan, result, left_out, draws))
            comparisons.setdefault(plan["rq"], []).append(result)
    return {rq: pd.concat([pd.DataFrame(rows[rq]), verdicts_by_metric(comparisons[rq], level=level, correction=correction)],
                          axis=1) for rq in sorted(rows)}


def _off_the_shelf_name(method: str) -> str:
    return "zero-shot" if method == ZERO_SHOT else f"off-the-shelf, {method}"


def method_summaries(rq: str, table: pd.DataFrame) -> list[str]:
    """One summary line per adaptation method (and per opponent) of an RQ table, e.g. "generalist+lora ≥
    off-the-shelf specialist in 7/9 ID comparisons (...); 2 significant after Holm"; RQ1 has one line per
    off-the-shelf method. A table mixing metrics (VQA rows) gets one line per metric as well, the metric named in
    the scope. Significance is counted with the correction applied across the whole RQ table (the family), not
    within the method's rows."""
    from medrival.stats.verdicts import summary_line

    if table is None or table.empty:
        return []
    by_metric = "metric" in table.columns and table["metric"].nunique() > 1
    keys = ["method"] + ([] if rq == "RQ1" else ["versus"]) + (["metric"] if by_metric else [])
    lines = []
    for values, part in table.groupby(keys, sort=True):
        named = dict(zip(keys, values))
        scope = "/".join(sorted({str(d) for d in part["domain"]}))  # "ID", "OOD", or "OOD/mixed"
        scope += f" {named['metric']}" if by_metric else ""
        if rq == "RQ1":
            kind = _off_the_shelf_name(str(named["method"]))
            subject, opponent = f"specialist ({kind})", f"generalist ({kind})"
        else:
            subject, opponent = f"generalist+{named['method']}", str(named["versus"])
        lines.append(summary_line(part.to_dict("records"), subject=subject, object=opponent, scope=scope))
    return lines


def _classification_summary(store, ids: list[str], *, metric: str, n_resamples: int, level: float,
                            seed: int) -> list[dict]:
    """The arm's metric with its bootstrap CI, and calibration (ECE, Brier) of its first draw."""
    from medrival.stats.bootstrap import bootstrap_ci, hierarchical_bootstrap_ci
    from medrival.stats.calibration import brier_score, expected_calibration_error

    frame, scores = arm_outputs(store, ids)
    y = labels_of(frame)
    task = store.get(ids[0]).spec.get("task")
    clusters = frame["cluster_id"].to_numpy() if "cluster_id" in frame.columns else None
    options = dict(clusters=clusters, n_resamples=n_resamples, level=level, seed=seed, task=task)
    interval = bootstrap_ci(metric, y, scores[0], **options) if len(scores) == 1 else \
        hierarchical_bootstrap_ci(metric, y, scores, **options)
    binary = scores[0][:, 1] if task == "binary" else scores[0]
    return [{"metric": metric, "estimate": interval.estimate, "low": interval.low, "high": interval.high,
             "ece": expected_calibration_error(y, binary, task=task), "brier": brier_score(y, binary, task=task),
             "n_items": len(y), "n_clusters": interval.n_clusters}]


def _vqa_summary(store, ids: list[str], *, n_resamples: int, level: float, seed: int,
                 vqa_metrics: Sequence[str] | None = None) -> list[dict]:
    """One row per VQA metric: the item mean with its cluster bootstrap CI; no probabilities, so no calibration."""
    from medrival.stats.vqa_arms import vqa_arm_intervals

    nan = float("nan")
    return [{"metric": name, "estimate": interval.estimate, "low": interval.low, "high": interval.high,
             "ece": nan, "brier": nan, "n_items": n_items, "n_clusters": interval.n_clusters}
            for name, interval, n_items in vqa_arm_intervals(store, ids, n_resamples=n_resamples, level=level,
                                                             seed=seed, metrics=vqa_metrics)]


def arm_summaries(store, *, metric: str = "auroc", n_resamples: int = 2000, level: float = 0.95,
                  seed: int = 0, vqa_metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (dataset, model+method, budget) and metric: the metric with its bootstrap CI (cluster-aware;
    draws and seeds resampled hierarchically), and calibration (ECE with 15 equal-width bins, Brier) of the first
    draw. Classification arms use ``metric``; VQA arms get one row per VQA metric (``vqa_metrics``, default
    closed_accuracy and open_token_f1) that has questions, with NaN calibration."""
    from medrival.stats.vqa_arms import check_vqa_metrics

    vqa_metrics = check_vqa_metrics(vqa_metrics)
    cells = _finished_cells(store, include_vqa=True)
    options = dict(n_resamples=n_resamples, level=level, seed=seed)
    rows = []
    for (dataset, arm), ids in _sorted_arms(cells):
        task = cells.specs[ids[0]].get("task")
        where = {"dataset": dataset, "arm": arm.label, "model": arm.model, "method": arm.method,
                 "budget": arm.budget, "draws": len(ids), "task": task}
        parts = _vqa_summary(store, ids, vqa_metrics=vqa_metrics, **options) if task == VQA_TASK else \
            _classification_summary(store, ids, metric=metric, **options)
        rows += [{**where, **part} for part in parts]
    return pd.DataFrame(rows)
