"""Subgroup results of a whole study: every finished model+method on every dataset that carries subgroup
attributes (the ``sg_<attribute>`` columns of its stored predictions: sex, age, race, view, hospital, ...).

For each (dataset, arm) the metric is computed per subgroup with its cluster bootstrap CI
(``medrival.stats.subgroups.subgroup_metrics``) and summarised by the worst-group gap. Ages are grouped into the
bands of ``age_bands`` (0-18, 18-40, 40-60, 60-80, 80+) so that each group has enough items to mean something;
every other attribute is used as stored. An arm with several seeds or few-shot draws is shown for its first
draw, as the per-arm calibration is: subgroup gaps are a property of one fitted model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from medrival.stats.questions import finished_cells, arm_outputs, labels_of

SUBGROUP_PREFIX = "sg_"
NUMERIC_BANDED = ("age",)  # numeric attributes reported as bands rather than one group per value


def subgroup_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(SUBGROUP_PREFIX)]


def _groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    from medrival.stats.subgroups import age_bands

    groups = {}
    for column in subgroup_columns(frame):
        name = column[len(SUBGROUP_PREFIX):]
        values = frame[column]
        years = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        if name in NUMERIC_BANDED and np.isfinite(years).mean() >= 0.5:
            # An impossible age (a negative "unknown" code, text) counts as missing rather than failing the report.
            groups[name] = age_bands(np.where(np.isfinite(years) & (years >= 0), years, np.nan))
        else:
            groups[name] = values.to_numpy(dtype=object)
    return groups


def study_subgroups(store, *, metric: str = "auroc", n_resamples: int = 1000, level: float = 0.95,
                    seed: int = 0, min_size: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-group table, worst-group-gap table), each with ``dataset``, ``arm`` and ``budget`` columns first.

    Both are empty when no stored predictions carry subgroup attributes.
    """
    from medrival.stats.subgroups import subgroup_metrics, worst_group_gap

    group_tables, gap_tables = [], []
    cells = finished_cells(store)
    for (dataset, arm), ids in sorted(cells.by_arm.items(), key=lambda item: (item[0][0], item[0][1].label)):
        frame, scores = arm_outputs(store, ids[:1])
        groups = _groups(frame)
        if not groups:
            continue
        clusters = frame["cluster_id"].to_numpy() if "cluster_id" in frame.columns else None
        table = subgroup_metrics(metric, labels_of(frame), scores[0], groups, clusters=clusters,
                                 n_resamples=n_resamples, level=level, seed=seed, min_size=min_size,
                                 task=cells.specs[ids[0]].get("task"))
        where = {"dataset": dataset, "arm": arm.label, "budget": arm.budget}
        group_tables.append(table.assign(**where))
        gap_tables.append(worst_group_gap(table).assign(**where))
    return _front(group_tables), _front(gap_tables)


def _front(tables: list[pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame()
    frame = pd.concat(tables, ignore_index=True)
    first = ["dataset", "arm", "budget"]
    return frame[first + [c for c in frame.columns if c not in first]]
