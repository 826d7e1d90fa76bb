"""Reliability diagrams: per arm, the observed frequency against the mean predicted probability in 15 equal-width
bins, the same bins and conventions as the ECE the report prints (``medrival.stats.calibration``): the
positive-class probability for binary tasks, the top label for multiclass; multilabel tasks are left out (one
curve per label would not fit a small panel)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medrival.report.plot_style import (
    grid,
    label_text,
    new_figure,
    styled,
    wrap,
)

N_BINS = 15
CURVE_COLUMNS = ("dataset", "arm", "role", "bin", "lower", "upper", "count", "mean_confidence", "accuracy")


def arm_cells(store) -> dict[tuple[str, str], list[str]]:
    """{(dataset, arm label): cell ids} of every finished classification arm, labelled as ``arm_summaries``
    labels them (``model+method (budget)``): the default ``cell_ids_by_arm`` of ``reliability_curves``."""
    from medrival.stats.questions import finished_cells  # the stats layer's grouping of cells into arms

    cells = finished_cells(store)
    return {(dataset, arm.label): ids for (dataset, arm), ids in sorted(cells.by_arm.items(),
                                                                          key=lambda item: (item[0][0],
                                                                                            item[0][1].label))}


def reliability_curves(store, cell_ids_by_arm: dict | None = None) -> pd.DataFrame:
    """One row per (dataset, arm, bin) with columns ``CURVE_COLUMNS``: the test predictions of the arm's FIRST
    cell (first draw/seed, as the report's ECE column), binned into 15 equal-width bins.

    ``cell_ids_by_arm``: {(dataset, arm label): [cell ids]} (``arm_cells(store)`` gives every classification
    arm; a plain {arm label: [cell ids]} is accepted too, its dataset read from the cell). Arms whose cells
    are VQA or multilabel, or have no stored probabilities, are skipped. An empty frame when none is left."""
    from medrival.stats.calibration import calibration_curve_table
    from medrival.stats.questions import labels_of

    frames = []
    for key, ids in (arm_cells(store) if cell_ids_by_arm is None else cell_ids_by_arm).items():
        if not ids:
            continue
        record = store.get(ids[0])
        spec = getattr(record, "spec", {}) or {}
        task = spec.get("task")
        if task not in ("binary", "multiclass"):
            continue
        predictions = store.predictions(ids[0])
        probs = predictions[[c for c in predictions.columns if c.startswith("prob_")]].to_numpy(dtype=float)
        if probs.size == 0 or len(predictions) == 0:
            continue
        dataset, arm = key if isinstance(key, tuple) else (spec.get("dataset", ""), key)
        table = calibration_curve_table(labels_of(predictions), probs, n_bins=N_BINS, task=task)
        frames.append(table.assign(dataset=str(dataset), arm=str(arm), role=str(spec.get("role") or "other")))
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]


@styled
def reliability_diagrams(curves: pd.DataFrame):
    """Small multiples, one panel per (dataset, arm), a row of panels per dataset: observed frequency against
    mean predicted probability over the non-empty bins, point size by bin count, and the diagonal of perfect
    calibration; blue for a generalist's arm, orange for a specialist's. ``curves``:
    ``reliability_curves(store, ...)``. None when there is no bin with items."""
    if curves is None or curves.empty:
        return None
    curves = curves[curves["count"] > 0]
    if curves.empty:
        return None
    datasets = sorted(curves["dataset"].astype(str).unique())
    arms = {d: sorted(curves.loc[curves["dataset"].astype(str) == d, "arm"].astype(str).unique())
            for d in datasets}
    n_cols = min(max(len(a) for a in arms.values()), 5)
    n_rows = sum(grid(len(a), n_cols)[0] for a in arms.values())
    fig = new_figure(n_cols * 2.3 + 0.4, n_rows * 2.55 + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)  # not shared: a hidden panel would take ticks
    r = 0
    for dataset in datasets:
        rows_here = grid(len(arms[dataset]), n_cols)[0]
        panels = axes[r:r + rows_here].flat
        for ax, arm in zip(panels, arms[dataset]):
            part = curves[(curves["dataset"].astype(str) == dataset) & (curves["arm"].astype(str) == arm)]
            _panel(ax, part)
            ax.set_title(wrap(dataset, 26) + "\n" + wrap(arm, 26), fontsize=7)
            ax.set_xlabel("mean predicted probability", fontsize=7)
        for ax in list(axes[r:r + rows_here].flat)[len(arms[dataset]):]:
            ax.set_visible(False)
        r += rows_here
    for ax in axes[:, 0]:
        ax.set_ylabel("observed frequency", fontsize=7)
    return fig


ROLE_COLOURS = {"generalist": "#2171b5", "specialist": "#d94801"}  # mid shades of the role families


def _panel(ax, part: pd.DataFrame) -> None:
    """One arm: the diagonal, then its non-empty bins joined, each dot's area growing with its count."""
    counts = part["count"].to_numpy(dtype=float)
    role = str(part["role"].iloc[0]) if "role" in part.columns else "other"
    colour = ROLE_COLOURS.get(role, "#525252")
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8)
    ax.plot(part["mean_confidence"], part["accuracy"], color=colour, linewidth=1)
    ax.scatter(part["mean_confidence"], part["accuracy"], s=6 + 40 * np.sqrt(counts / counts.max()),
               color=colour, edgecolors="white", linewidths=0.4, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.text(0.97, 0.03, label_text(f"n = {int(counts.sum())}"), transform=ax.transAxes, ha="right",
            va="bottom", fontsize=6.5, color="#555555")
