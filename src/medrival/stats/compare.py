"""``medrival compare``: the paired comparison of two models, methods or cells on every dataset both scored.

A side is written ``MODEL``, ``MODEL:METHOD`` or ``MODEL:METHOD@BUDGET`` (e.g. ``clip-vit-b16:lora@16-shot``),
where METHOD may also be an arm's label (two configs of one method are two arms), or as a cell id (or a unique prefix of one, at least 6 characters). A bare model name means its off-the-shelf
cells when it has one such method, else its only method. Datasets are matched by name; on each, the two sides
are compared on the test items both scored, with the paired cluster bootstrap (and DeLong's test alongside for
binary AUROC). A VQA dataset gives one row per VQA metric (``closed_accuracy``, ``open_token_f1``, or the
``vqa_metrics`` given: means of per-question scores over the questions each applies to, clusters = images),
whatever ``metric`` says -- the same numbers, under the same names, as the RQ tables and ``load_results``. VQA cells
scored by earlier rules are left out with an ``OutdatedResultsWarning`` (``medrival.store.outdated_vqa_note``).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import pandas as pd

from medrival.core.errors import ConfigError
from medrival.core.registry import suggest
from medrival.stats.questions import (
    FULL,
    finished_cells,
    analysis_settings,
    compare_paired,
    is_off_the_shelf,
    paired_data,
    verdicts_by_metric,
)
from medrival.stats.vqa_arms import VQA_TASK, check_vqa_metrics, compare_vqa_arms
from medrival.store.results import OutdatedResultsWarning, outdated_vqa_note


def resolve_side(cells, text: str) -> dict[str, list[str]]:
    """Dataset -> cell ids of the side ``text`` (see the module docstring); errors list what exists."""
    by_id = [cell_id for ids in cells.by_arm.values() for cell_id in ids]
    if len(text) >= 6 and all(c in "0123456789abcdef" for c in text.lower()):
        matches = [cell_id for cell_id in by_id if cell_id.startswith(text)]
        if len(matches) == 1:
            return {cells.specs[matches[0]]["dataset"]: matches}
        if len(matches) > 1:
            raise ConfigError(f"cell id prefix {text!r} matches {len(matches)} cells; give more characters.")
    model, _, rest = text.partition(":")
    method, _, budget = rest.partition("@")
    arms = {arm for (_, arm) in cells.by_arm if arm.model == model}
    if not arms:
        models = sorted({arm.model for (_, arm) in cells.by_arm})
        close = suggest(model, models)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"no finished cells of model {model!r} in these results.{hint} Models: {', '.join(models)}.")
    method = method or _default_method(cells, arms, model)
    chosen = {arm for arm in arms if arm.budget == (budget or FULL) and method in (arm.method_label, arm.method)}
    by_label = {arm for arm in chosen if arm.method_label == method}
    chosen = by_label or chosen
    if len({arm.method_label for arm in chosen}) > 1:
        raise ConfigError(f"{text!r} matches several configs of {method!r}: "
                          f"{', '.join(sorted({arm.method_label for arm in chosen}))}; write MODEL:LABEL.")
    found = {dataset: ids for (dataset, arm), ids in cells.by_arm.items() if arm in chosen}
    if not found:
        options = sorted(f"{a.model}:{a.method_label}" + ("" if a.budget == FULL else f"@{a.budget}") for a in arms)
        raise ConfigError(f"no finished cells for {text!r}. This model has: {', '.join(options)}.")
    return found


def _default_method(cells, arms: set, model: str) -> str:
    labels = sorted({arm.method_label for arm in arms})
    off_the_shelf = sorted({arm.method_label for (dataset, arm) in cells.by_arm
                            if arm in arms and is_off_the_shelf(cells.first_spec(dataset, arm))})
    if len(off_the_shelf) == 1 or len(labels) == 1:  # zero_shot, or a generative model's own off-the-shelf method
        return off_the_shelf[0] if len(off_the_shelf) == 1 else labels[0]
    raise ConfigError(f"model {model!r} has several methods ({', '.join(labels)}); write MODEL:METHOD.")


def compare(store, side_a: str, side_b: str, *, metric: str = "auroc", n_resamples: int = 2000,
            level: float = 0.95, seed: int = 0, vqa_metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per shared dataset (per VQA metric on a VQA dataset): estimates, difference A - B with its CI,
    p-values (Holm across the rows) and the verdict."""
    vqa_metrics = check_vqa_metrics(vqa_metrics)
    cells = finished_cells(store, include_vqa=True)
    if cells.outdated:
        warnings.warn(outdated_vqa_note([store.get(cell_id) for cell_id in cells.outdated]),
                      OutdatedResultsWarning, stacklevel=2)
    a, b = resolve_side(cells, side_a), resolve_side(cells, side_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ConfigError(f"{side_a!r} and {side_b!r} share no dataset: {sorted(a)} vs {sorted(b)}.")
    rows, results = [], []
    options = dict(n_resamples=n_resamples, level=level, seed=seed)
    for dataset in shared:
        task = cells.specs[a[dataset][0]]["task"]
        if task == VQA_TASK:
            pairs = [(result, left_out, float("nan")) for result, left_out in
                     compare_vqa_arms(store, a[dataset], b[dataset], metrics=vqa_metrics, **options)]
        else:
            data = paired_data(store, a[dataset], b[dataset])
            pairs = [(compare_paired(data, metric=metric, task=task, **options), data.left_out,
                      _delong_p(data, task, metric))]
        for result, left_out, delong_p in pairs:
            rows.append({"dataset": dataset, "metric": result.metric, "estimate_a": result.estimate_a,
                         "estimate_b": result.estimate_b, "n_items": result.n_items,
                         "n_clusters": result.n_clusters, "items_left_out": left_out, "delong_p": delong_p})
            results.append(result)
    verdicts = verdicts_by_metric(results, level=level, correction="holm",
                                  margins=analysis_settings(store).get("margins"))
    return pd.concat([pd.DataFrame(rows), verdicts], axis=1)


def _delong_p(data, task: str, metric: str) -> float:
    """DeLong's p for a binary AUROC comparison of single cells, clustered (Obuchowski) by the items' clusters
    when they have any (NaN for other tasks and for arms with several draws, which DeLong does not model)."""
    if task != "binary" or metric != "auroc" or len(data.draws_a) != 1 or len(data.draws_b) != 1:
        return float("nan")
    from medrival.stats.delong import delong_test

    return float(delong_test(data.y, data.draws_a[0][:, 1], data.draws_b[0][:, 1], clusters=data.clusters).p_value)
