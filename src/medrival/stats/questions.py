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

What a method is comes from its declared capabilities stored with each cell (``spec["capabilities"]``), never
from name lists: an off-the-shelf arm runs once at the full budget and is the baseline of every label budget, so
every budget gets its RQ2/RQ3 rows. Arms are (model, method, config, budget): two configs of one method (a
sweep) are two arms, named by their label, never pooled. Verdicts are read against the study's non-inferiority
margins (``medrival.stats.verdicts``). Rows where either model was trained on the dataset's images or questions
(its card's ``trained_on``, stored as ``spec["exposure"]``) are marked, or left out with ``exposure="exclude"``;
rows whose two arms train parameter counts more than 10 % apart are flagged (``capacity_mismatch``).
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
# Only for records written before methods declared their capabilities (they carry no ``capabilities``): the
# off-the-shelf methods of that time. Every newer record says what its method is.
LEGACY_OFF_THE_SHELF = frozenset({ZERO_SHOT, "vqa_zero_shot", "option_zero_shot"})
FULL = "full"
CAPACITY_TOLERANCE = 0.10  # trainable-parameter counts of two adapted arms may differ this much before a flag
EXPOSURE_MODES = ("mark", "exclude")


def is_off_the_shelf(spec: dict) -> bool:
    """True when the stored cell's method uses the model as released (its declared capabilities)."""
    capabilities = spec.get("capabilities")
    if isinstance(capabilities, dict) and "off_the_shelf" in capabilities:
        return bool(capabilities["off_the_shelf"])
    return spec.get("method") in LEGACY_OFF_THE_SHELF


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a model with a method config at a label budget (all its seeds and draws).

    ``config`` (canonical JSON of the method config) keeps two configs of one method apart; ``name`` is the arm's
    display name for its method (the study's label), not part of its identity."""

    model: str
    method: str
    budget: str = FULL
    config: str = ""
    name: str = field(default="", compare=False)

    @property
    def method_label(self) -> str:
        return self.name or self.method

    @property
    def label(self) -> str:
        suffix = "" if self.budget == FULL else f" ({self.budget})"
        return f"{self.model}+{self.method_label}{suffix}"

    def of(self, model: str, budget: str | None = None) -> "Arm":
        """The same method config for another model (at another budget)."""
        return Arm(model, self.method, self.budget if budget is None else budget, self.config, self.name)


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
    costs: dict[str, dict] = field(default_factory=dict)

    def first_spec(self, dataset: str, arm: Arm) -> dict:
        return self.specs[self.by_arm[(dataset, arm)][0]]

    def trainable(self, dataset: str, arm: Arm) -> int | None:
        """The arm's adapted parameters (its first cell's record): the LoRA count where LoRA ran (heads of equal
        size are not capacity), else every trainable parameter; None when not recorded."""
        cost = self.costs.get(self.by_arm[(dataset, arm)][0], {})
        value = cost.get("lora_parameters", cost.get("trainable_params"))
        return int(value) if isinstance(value, (int, float)) and value == value else None


def finished_cells(store, include_vqa: bool = False) -> _Cells:
    """Finished cells with stored predictions. VQA cells only with ``include_vqa``: their predictions are answers
    scored per item, not class probabilities, so the classification-only analyses (subgroups, operating points)
    must not see them. VQA cells scored by earlier rules are never used (their ids are in ``outdated``)."""
    from medrival.store.results import config_text

    by_arm: dict[tuple[str, Arm], list[str]] = {}
    specs, outdated, costs = {}, [], {}
    for record in store.records():
        if include_vqa and is_outdated_vqa(record):
            outdated.append(record.cell_id)
            continue
        if record.status != "done" or not store.has_predictions(record.cell_id) \
                or (record.spec.get("task") == VQA_TASK and not include_vqa):
            continue
        spec = record.spec
        name = spec.get("method_label") or spec["method"]
        arm = Arm(spec["model"], spec["method"], spec.get("budget") or FULL, config_text(spec.get("method_config")),
                  "" if name == spec["method"] else name)
        by_arm.setdefault((spec["dataset"], arm), []).append(record.cell_id)
        specs[record.cell_id], costs[record.cell_id] = spec, record.cost or {}
    return _Cells(_named_apart(by_arm), specs, outdated, costs)


def _named_apart(by_arm: dict[tuple[str, Arm], list[str]]) -> dict[tuple[str, Arm], list[str]]:
    """Two configs of one method stored without labels (or with one label) must still read as two arms: the
    second and later get their config's short hash appended to the name."""
    import hashlib

    seen: dict[tuple[str, str, str, str], str] = {}
    renamed = {}
    for (dataset, arm), ids in by_arm.items():
        key = (dataset, arm.model, arm.budget, arm.method_label)
        if seen.setdefault(key, arm.config) != arm.config:
            tag = hashlib.sha256(arm.config.encode()).hexdigest()[:6]
            arm = Arm(arm.model, arm.method, arm.budget, arm.config, f"{arm.method_label}#{tag}")
        renamed[(dataset, arm)] = ids
    return renamed


def _sorted_arms(cells: _Cells) -> list[tuple[tuple[str, Arm], list[str]]]:
    return sorted(cells.by_arm.items(), key=lambda item: (item[0][0], item[0][1].label))


def planned_comparisons(cells: _Cells) -> list[dict]:
    """Every (rq, dataset, A, B) the store can answer: pairs come from the cells' ``role`` and ``pair``; the
    specialist's off-the-shelf arms anchor them."""
    plans, adapted_done = [], set()
    for (dataset, arm), ids in _sorted_arms(cells):
        spec = cells.specs[ids[0]]
        generalist = spec.get("pair")
        if spec.get("role") != "specialist" or not is_off_the_shelf(spec) or arm.budget != FULL \
                or not generalist:
            continue
        domain = spec.get("domain", "OOD")
        base = {"dataset": dataset, "modality": spec.get("modality"), "domain": domain, "task": spec.get("task")}
        if domain == "ID" and (dataset, arm.of(generalist)) in cells.by_arm:
            plans.append({**base, "rq": "RQ1", "a": arm, "b": arm.of(generalist)})
        # A specialist with two off-the-shelf arms on one dataset is compared with the adapted specialist once.
        with_adapted = (dataset, arm.model) not in adapted_done
        adapted_done.add((dataset, arm.model))
        plans += _adapted_plans(cells, base, dataset, arm, generalist, with_adapted)
    return plans


def _adapted_plans(cells: _Cells, base: dict, dataset: str, specialist: Arm, generalist: str,
                   with_adapted: bool = True) -> list[dict]:
    rq = "RQ2" if base["domain"] == "ID" else "RQ3"
    plans = []
    for (other_dataset, arm) in sorted(cells.by_arm, key=lambda key: (budget_rank(key[1].budget), key[1].label)):
        if other_dataset != dataset or arm.model != generalist or is_off_the_shelf(cells.first_spec(dataset, arm)):
            continue
        # Every label budget of the adapted generalist meets the one off-the-shelf specialist (it read no labels).
        plans.append({**base, "rq": rq, "versus": "off-the-shelf specialist", "a": arm, "b": specialist})
        adapted = arm.of(specialist.model)
        if with_adapted and (dataset, adapted) in cells.by_arm:
            plans.append({**base, "rq": rq, "versus": "adapted specialist", "a": arm, "b": adapted})
    return plans


def budget_rank(budget: str) -> tuple[int, float]:
    """The order of label budgets from fewest labels to most: K-shot by K, then fractions by size, then the full
    split (rows, summary lines, curves and "the richest budget" all use it); an unknown label sorts first."""
    text = str(budget)
    if text == FULL:
        return (3, 0.0)
    number = text[:-5] if text.endswith("-shot") else text[:-1] if text.endswith("%") else ""
    try:
        return (1 if text.endswith("-shot") else 2, float(number))
    except ValueError:
        return (0, 0.0)


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


def _exposure_of(cells: _Cells, dataset: str, arm: Arm) -> list[str]:
    """Why the arm's model saw this dataset's images or questions in training (its record), [] when not known."""
    return [f"{arm.model}: {reason}" for reason in cells.first_spec(dataset, arm).get("exposure") or []]


def capacity_mismatch(trainable_a: int | None, trainable_b: int | None) -> bool:
    """True when both arms train parameters and their counts differ by more than ``CAPACITY_TOLERANCE`` of the
    larger: "equally adapted" would then not hold (e.g. LoRA on more modules of one model)."""
    if not trainable_a or not trainable_b:
        return False
    return abs(trainable_a - trainable_b) > CAPACITY_TOLERANCE * max(trainable_a, trainable_b)


def _row(cells: _Cells, plan: dict, result: PairedComparison, left_out: int) -> dict:
    dataset, a, b = plan["dataset"], plan["a"], plan["b"]
    exposure = _exposure_of(cells, dataset, a) + _exposure_of(cells, dataset, b)
    trainable_a, trainable_b = cells.trainable(dataset, a), cells.trainable(dataset, b)
    return {"dataset": dataset, "modality": plan["modality"], "domain": plan["domain"],
            "task": plan["task"], "a": a.label, "b": b.label, "method": a.method, "method_label": a.method_label,
            "versus": plan.get("versus", "off-the-shelf generalist"), "budget": a.budget,
            "metric": result.metric, "estimate_a": result.estimate_a, "estimate_b": result.estimate_b,
            "n_items": result.n_items, "n_clusters": result.n_clusters,
            "draws_a": len(cells.by_arm[(dataset, a)]), "draws_b": len(cells.by_arm[(dataset, b)]),
            "items_left_out": left_out, "test": result.method, "p_floor": result.p_floor,
            "exposed": bool(exposure), "exposure": "; ".join(exposure),
            "trainable_a": trainable_a, "trainable_b": trainable_b,
            "capacity_mismatch": capacity_mismatch(trainable_a, trainable_b)}


def verdicts_by_metric(comparisons: list[PairedComparison], *, level: float, correction: str,
                       margins: dict[str, float] | None = None) -> pd.DataFrame:
    """The verdict table of one family, each row oriented by its own metric (a table can mix Brier rows with
    VQA accuracy rows, or ``undecided_rate`` rows with ``closed_accuracy`` ones) and judged against its metric's
    margin (``margins`` over ``medrival.stats.verdicts.DEFAULT_MARGINS``); the adjusted p-values of the
    superiority tests do not depend on the orientation."""
    from medrival.stats.verdicts import higher_is_better, margins_for, verdict_table

    metrics = [c.metric for c in comparisons]
    rows = verdict_table(comparisons, level=level, correction=correction, margin=margins_for(metrics, margins),
                         higher_is_better=[higher_is_better(m) for m in metrics])
    return pd.DataFrame(rows).drop(columns=["label"], errors="ignore")


def analysis_settings(store) -> dict:
    """The study's verdict settings saved with its store by the runner (``analysis.json``): margins and the
    exposure mode; {} for a store written without them."""
    import json

    path = getattr(store, "root", None)
    path = path / ANALYSIS_FILE if path is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


ANALYSIS_FILE = "analysis.json"


def _check_exposure(exposure: str) -> str:
    from medrival.core.errors import UnknownNameError
    from medrival.core.registry import suggest

    if exposure not in EXPOSURE_MODES:
        close = suggest(str(exposure), list(EXPOSURE_MODES))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"Unknown exposure mode {exposure!r}.{hint} Use 'mark' (exposed comparisons are "
                               f"marked) or 'exclude' (they are left out of the verdicts).")
    return exposure


def research_questions(store, *, metric: str = "auroc", n_resamples: int = 2000, level: float = 0.95,
                       seed: int = 0, correction: str = "holm", vqa_metrics: Sequence[str] | None = None,
                       margins: dict[str, float] | None = None, exposure: str | None = None
                       ) -> dict[str, pd.DataFrame]:
    """RQ name -> table of paired differences with CIs, p-values (raw, Holm, BH), margins and verdicts.

    ``metric`` is the classification metric; VQA datasets are compared on ``vqa_metrics`` (per-item columns of
    ``medrival.metrics.vqa``; default ``medrival.stats.vqa_arms.VQA_METRICS``: closed_accuracy, open_token_f1).
    ``margins`` (metric -> non-inferiority margin) and ``exposure`` ("mark" or "exclude") default to the study's
    settings saved with the store, else ``DEFAULT_MARGINS`` and "mark". With "exclude", rows on a dataset either
    model was trained on are left out before the family is corrected."""
    from medrival.stats.vqa_arms import check_vqa_metrics

    settings = analysis_settings(store)
    margins = {**(settings.get("margins") or {}), **dict(margins or {})}
    exposure = _check_exposure(exposure or settings.get("exposure") or "mark")
    vqa_metrics = check_vqa_metrics(vqa_metrics)
    cells = finished_cells(store, include_vqa=True)
    rows: dict[str, list[dict]] = {}
    comparisons: dict[str, list[PairedComparison]] = {}
    for plan in planned_comparisons(cells):
        if exposure == "exclude" and (_exposure_of(cells, plan["dataset"], plan["a"])
                                      or _exposure_of(cells, plan["dataset"], plan["b"])):
            continue
        for result, left_out in _plan_results(store, cells, plan, metric=metric, n_resamples=n_resamples,
                                              level=level, seed=seed, vqa_metrics=vqa_metrics):
            rows.setdefault(plan["rq"], []).append(_row(cells, plan, result, left_out))
            comparisons.setdefault(plan["rq"], []).append(result)
    return {rq: pd.concat([pd.DataFrame(rows[rq]), verdicts_by_metric(comparisons[rq], level=level,
                                                                       correction=correction, margins=margins)],
                          axis=1) for rq in sorted(rows)}


def _off_the_shelf_name(method: str) -> str:
    return "zero-shot" if method == ZERO_SHOT else f"off-the-shelf, {method}"


def method_summaries(rq: str, table: pd.DataFrame) -> list[str]:
    """One summary line per adaptation method (its label), opponent, label budget and metric of an RQ table, e.g.
    "generalist+lora vs off-the-shelf specialist, 9 ID comparisons (margin 0.02; corrected by Holm): 1 superior,
    5 non-inferior, 2 inconclusive, 1 inferior"; RQ1 has one line per off-the-shelf method. The verdicts counted
    are the corrected ones, under the correction applied across the whole RQ table (the family)."""
    from medrival.stats.verdicts import summary_line

    if table is None or table.empty:
        return []
    label = "method_label" if "method_label" in table.columns else "method"
    by_metric = "metric" in table.columns and table["metric"].nunique() > 1
    by_budget = "budget" in table.columns and table["budget"].nunique() > 1
    keys = [label] + ([] if rq == "RQ1" else ["versus"]) + (["budget"] if by_budget else []) \
        + (["metric"] if by_metric else [])
    lines = []
    groups = [(dict(zip(keys, values)), part) for values, part in table.groupby(keys, sort=True)]
    if by_budget:  # full, then K-shot by K, then fractions (a stable sort keeps the rest in order)
        groups.sort(key=lambda group: budget_rank(group[0]["budget"]))
    for named, part in groups:
        scope = "/".join(sorted({str(d) for d in part["domain"]}))  # "ID", "OOD", or "OOD/mixed"
        scope += f" {named['metric']}" if by_metric else ""
        if rq == "RQ1":
            kind = _off_the_shelf_name(str(named[label]))
            subject, opponent = f"specialist ({kind})", f"generalist ({kind})"
        else:
            budget = f" at {named['budget']}" if by_budget else ""
            subject, opponent = f"generalist+{named[label]}{budget}", str(named["versus"])
        line = summary_line(part.to_dict("records"), subject=subject, object=opponent, scope=scope)
        flags = _row_flags(part)
        lines.append(line + (f" [{flags}]" if flags else ""))
    return lines


def _row_flags(part: pd.DataFrame) -> str:
    """"2 exposed, 1 capacity mismatch" for the rows of one summary line; "" when none."""
    flags = []
    if "exposed" in part.columns and part["exposed"].any():
        flags.append(f"{int(part['exposed'].sum())} on data a model was trained on")
    if "capacity_mismatch" in part.columns and part["capacity_mismatch"].any():
        flags.append(f"{int(part['capacity_mismatch'].sum())} with trainable parameters >10 % apart")
    return "; ".join(flags)


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
    cells = finished_cells(store, include_vqa=True)
    options = dict(n_resamples=n_resamples, level=level, seed=seed)
    rows = []
    for (dataset, arm), ids in _sorted_arms(cells):
        task = cells.specs[ids[0]].get("task")
        where = {"dataset": dataset, "arm": arm.label, "model": arm.model, "method": arm.method,
                 "method_label": arm.method_label, "config": arm.config, "budget": arm.budget, "draws": len(ids),
                 "task": task}
        parts = _vqa_summary(store, ids, vqa_metrics=vqa_metrics, **options) if task == VQA_TASK else \
            _classification_summary(store, ids, metric=metric, **options)
        rows += [{**where, **part} for part in parts]
    return pd.DataFrame(rows)


def comparisons_of(table: pd.DataFrame, level: float = 0.95) -> list[PairedComparison]:
    """The paired comparisons behind an RQ table's rows (estimates, CI, p-value), to re-run its verdicts."""
    return [PairedComparison(r["metric"], r["estimate_a"], r["estimate_b"], r["difference"], r["low"], r["high"],
                             r["p_value"], level, str(r.get("test", "")), int(r["n_items"]), int(r["n_clusters"]),
                             p_floor=float(r.get("p_floor", float("nan"))))
            for r in table.to_dict("records")]


def without_exposed(tables: dict[str, pd.DataFrame], *, level: float = 0.95) -> dict[str, pd.DataFrame]:
    """The RQ tables with the rows on data a model was trained on left out and each family's verdicts
    re-corrected over the rows that remain (the "exclude" reading of a study run with ``exposure: mark``);
    margins and correction are those recorded in the rows."""
    out = {}
    for rq, table in tables.items():
        if table is None or table.empty or "exposed" not in table.columns:
            out[rq] = table
            continue
        kept = table[~table["exposed"].astype(bool)].reset_index(drop=True)
        if kept.empty:
            out[rq] = kept
            continue
        correction = str(kept["correction"].iloc[0]) if "correction" in kept.columns else "holm"
        margins = dict(zip(kept["metric"], kept["margin"])) if "margin" in kept.columns else None
        verdicts = verdicts_by_metric(comparisons_of(kept, level), level=level, correction=correction,
                                      margins=margins)
        out[rq] = pd.concat([kept.drop(columns=[c for c in verdicts.columns if c in kept.columns]), verdicts],
                            axis=1)
    return out
