"""The study's research questions, answered from the store and the cards' generalist-specialist pairs.

- RQ1: off-the-shelf (zero-shot) specialist vs its paired generalist, on the specialist's in-domain (ID)
  datasets.
- RQ2: the adapted generalist (every method but zero-shot, at every label budget) vs the off-the-shelf specialist
  and vs the specialist adapted the same way, on ID datasets.
- RQ3: the same as RQ2 on out-of-domain (OOD) datasets; datasets whose modalities are partly in the specialist's
  pretraining ("mixed") are reported here too, with their domain shown.

ID/OOD is always the *specialist's* domain (the generalist's cards list natural images only). Each comparison
pairs the two arms on the same test items (joined on sample id) and uses the paired cluster bootstrap
(clusters: the stored ``cluster_id`` — patient, lesion or image); an arm with several seeds or few-shot draws is
resampled hierarchically (draws, then items). Every RQ table is one family for Holm / Benjamini-Hochberg.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medrival.stats.types import PairedComparison
from medrival.stats.weighted import LOWER_IS_BETTER

ZERO_SHOT = "zero_shot"
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


VQA_TASK = "vqa"


def _finished_cells(store) -> _Cells:
    """Finished classification cells with stored predictions. VQA cells are left to the VQA sections: their
    predictions are answers scored per item, not class probabilities."""
    by_arm: dict[tuple[str, Arm], list[str]] = {}
    specs = {}
    for record in store.records():
        if record.status != "done" or not store.has_predictions(record.cell_id) \
                or record.spec.get("task") == VQA_TASK:
            continue
        spec = record.spec
        arm = Arm(spec["model"], spec["method"], spec.get("budget") or FULL)
        by_arm.setdefault((spec["dataset"], arm), []).append(record.cell_id)
        specs[record.cell_id] = spec
    return _Cells(by_arm, specs)


def planned_comparisons(cells: _Cells) -> list[dict]:
    """Every (rq, dataset, A, B) the store can answer: pairs come from the cells' ``role`` and ``pair``."""
    plans = []
    for (dataset, arm), ids in sorted(cells.by_arm.items(), key=lambda item: (item[0][0], item[0][1].label)):
        spec = cells.specs[ids[0]]
        generalist = spec.get("pair")
        if spec.get("role") != "specialist" or arm.method != ZERO_SHOT or arm.budget != FULL or not generalist:
            continue
        domain = spec.get("domain", "OOD")
        base = {"dataset": dataset, "modality": spec.get("modality"), "domain": domain, "task": spec.get("task")}
        if domain == "ID" and (dataset, Arm(generalist, ZERO_SHOT)) in cells.by_arm:
            plans.append({**base, "rq": "RQ1", "a": Arm(arm.model, ZERO_SHOT), "b": Arm(generalist, ZERO_SHOT)})
        plans += _adapted_plans(cells, base, dataset, specialist=arm.model, generalist=generalist)
    return plans


def _adapted_plans(cells: _Cells, base: dict, dataset: str, specialist: str, generalist: str) -> list[dict]:
    rq = "RQ2" if base["domain"] == "ID" else "RQ3"
    plans = []
    for (other_dataset, arm) in sorted(cells.by_arm, key=lambda key: key[1].label):
        if other_dataset != dataset or arm.model != generalist or arm.method == ZERO_SHOT:
            continue
        plans.append({**base, "rq": rq, "versus": "off-the-shelf specialist", "a": arm,
                      "b": Arm(specialist, ZERO_SHOT)})
        adapted = Arm(specialist, arm.method, arm.budget)
        if (dataset, adapted) in cells.by_arm:
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


def research_questions(store, *, metric: str = "auroc", n_resamples: int = 2000, level: float = 0.95,
                       seed: int = 0, correction: str = "holm") -> dict[str, pd.DataFrame]:
    """RQ name -> table of paired differences with CIs, p-values (raw, Holm, BH) and verdicts."""
    from medrival.stats.verdicts import verdict_table

    cells = _finished_cells(store)
    rows: dict[str, list[dict]] = {}
    comparisons: dict[str, list[PairedComparison]] = {}
    for plan in planned_comparisons(cells):
        ids_a = cells.by_arm[(plan["dataset"], plan["a"])]
        ids_b = cells.by_arm[(plan["dataset"], plan["b"])]
        result, left_out = compare_arms(store, ids_a, ids_b, metric=metric, task=plan["task"],
                                        n_resamples=n_resamples, level=level, seed=seed)
        rows.setdefault(plan["rq"], []).append({
            "dataset": plan["dataset"], "modality": plan["modality"], "domain": plan["domain"],
            "a": plan["a"].label, "b": plan["b"].label, "method": plan["a"].method, "versus": plan.get("versus", "off-the-shelf generalist"),
            "budget": plan["a"].budget, "metric": result.metric, "estimate_a": result.estimate_a,
            "estimate_b": result.estimate_b, "n_items": result.n_items, "n_clusters": result.n_clusters,
            "draws_a": len(ids_a), "draws_b": len(ids_b), "items_left_out": left_out, "test": result.method})
        comparisons.setdefault(plan["rq"], []).append(result)
    tables = {}
    for rq in sorted(rows):
        verdicts = verdict_table(comparisons[rq], level=level, correction=correction,
                                 higher_is_better=metric not in LOWER_IS_BETTER)
        tables[rq] = pd.concat([pd.DataFrame(rows[rq]), pd.DataFrame(verdicts).drop(columns=["label"], errors="ignore")],
                               axis=1)
    return tables


def method_summaries(rq: str, table: pd.DataFrame) -> list[str]:
    """One summary line per adaptation method (and per opponent) of an RQ table, e.g. "generalist+lora ≥
    off-the-shelf specialist in 7/9 ID comparisons (...); 2 significant after Holm". Significance is counted
    with the correction applied across the whole RQ table (the family), not within the method's rows."""
    from medrival.stats.verdicts import summary_line

    if table is None or table.empty:
        return []
    if rq == "RQ1":
        return [summary_line(table.to_dict("records"), subject="specialist (zero-shot)",
                             object="generalist (zero-shot)", scope="ID")]
    lines = []
    for (method, versus), part in table.groupby(["method", "versus"], sort=True):
        scope = "/".join(sorted({str(d) for d in part["domain"]}))  # "ID", "OOD", or "OOD/mixed"
        lines.append(summary_line(part.to_dict("records"), subject=f"generalist+{method}", object=str(versus),
                                  scope=scope))
    return lines


def arm_summaries(store, *, metric: str = "auroc", n_resamples: int = 2000, level: float = 0.95,
                  seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, model+method, budget): the metric with its bootstrap CI (cluster-aware; draws and
    seeds resampled hierarchically), and calibration (ECE with 15 equal-width bins, Brier) of the first draw."""
    from medrival.stats.bootstrap import bootstrap_ci, hierarchical_bootstrap_ci
    from medrival.stats.calibration import brier_score, expected_calibration_error

    rows = []
    for (dataset, arm), ids in sorted(_finished_cells(store).by_arm.items(), key=lambda i: (i[0][0], i[0][1].label)):
        frame, scores = arm_outputs(store, ids)
        y = labels_of(frame)
        task = store.get(ids[0]).spec.get("task")
        clusters = frame["cluster_id"].to_numpy() if "cluster_id" in frame.columns else None
        options = dict(clusters=clusters, n_resamples=n_resamples, level=level, seed=seed, task=task)
        interval = bootstrap_ci(metric, y, scores[0], **options) if len(scores) == 1 else \
            hierarchical_bootstrap_ci(metric, y, scores, **options)
        binary = scores[0][:, 1] if task == "binary" else scores[0]
        rows.append({"dataset": dataset, "arm": arm.label, "model": arm.model, "method": arm.method,
                     "budget": arm.budget, "draws": len(ids), "metric": metric, "estimate": interval.estimate,
                     "low": interval.low, "high": interval.high, "ece": expected_calibration_error(y, binary, task=task),
                     "brier": brier_score(y, binary, task=task), "n_items": len(y),
                     "n_clusters": interval.n_clusters})
    return pd.DataFrame(rows)
