"""Few-shot curves: the metric against K (labelled examples per class), one panel per dataset.

Each trained arm is its mean over draws (and seeds) with a band from the lowest to the highest draw, so the
spread a single draw hides is visible. An off-the-shelf arm read no labels, so it is a horizontal dashed
reference line at its value, not a curve over K.
"""
from __future__ import annotations

import math
import re

import pandas as pd

from medrival.report.plot_style import (
    arm_styles,
    done_rows,
    grid,
    label_text,
    new_figure,
    outside_legend,
    role_of,
    styled,
    wrap,
)

_SHOTS = re.compile(r"^(\d+)-shot$")
# Records written before methods declared capabilities: the off-the-shelf methods of that time.
_OFF_THE_SHELF = frozenset({"zero_shot", "vqa_zero_shot", "option_zero_shot"})


def shots(budget) -> float:
    match = _SHOTS.match(str(budget))
    return float(match.group(1)) if match else math.nan


def _off_the_shelf(part: pd.DataFrame) -> pd.Series:
    """Rows of arms that read no labels: 0 trainable parameters at the full budget (or a legacy zero-shot
    method name); the results frame carries no capabilities, and an arm that trained has parameters."""
    params = pd.to_numeric(part.get("trainable_params", pd.Series(math.nan, index=part.index)), errors="coerce")
    untrained = (params == 0) | part["method"].astype(str).isin(_OFF_THE_SHELF)
    return untrained & (part["budget"].fillna("full").astype(str) == "full")


@styled
def fewshot_curves(results_frame: pd.DataFrame, metric: str = "auroc"):
    """``metric`` vs K, one panel per dataset that has K-shot cells: per model+method the mean over draws
    with a min-max band; off-the-shelf arms of that dataset as dashed horizontal lines. Colour: the model
    (blues generalists, oranges specialists); marker: the method. None when there are no K-shot budgets."""
    done = done_rows(results_frame, metric)
    if done.empty or "budget" not in done.columns:
        return None
    done = done.assign(k=done["budget"].map(shots), role=role_of(done))
    curves = done.dropna(subset=["k"])
    if curves.empty:
        return None
    datasets = sorted(curves["dataset"].astype(str).unique())
    references = done[_off_the_shelf(done) & done["dataset"].astype(str).isin(datasets)]
    styles = arm_styles(pd.concat([curves, references]))
    n_rows, n_cols = grid(len(datasets))
    fig = new_figure(n_cols * 3.3 + 0.3, n_rows * 2.7 + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    ks = sorted(curves["k"].unique())
    for ax, dataset in zip(axes.flat, datasets):
        _curve_panel(ax, curves[curves["dataset"].astype(str) == dataset], styles, metric)
        for (model, method), rows in references[references["dataset"].astype(str) == dataset].groupby(
                ["model", "method_label"]):
            ax.axhline(float(rows[metric].mean()), color=styles.colour[str(model)], linestyle="--", linewidth=1.1)
        _plain_log2_ticks(ax, ks)
        ax.set_title(wrap(dataset, 40))
        ax.set_xlabel("K (labelled examples per class)")
        ax.set_ylabel(label_text(metric))
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    # Off-the-shelf arms are dashed lines, not markers: only the methods drawn as curves get a marker entry.
    handles, labels = styles.legend_entries("marker", set(curves["method_label"].astype(str)))
    _add_line_keys(handles, labels, bool(len(references)))
    outside_legend(fig, handles, labels)
    return fig


def _curve_panel(ax, part: pd.DataFrame, styles, metric: str) -> None:
    """Mean over draws and seeds per K, with the band from the lowest to the highest draw."""
    for (model, method), rows in part.groupby(["model", "method_label"]):
        stats = rows.groupby("k")[metric].agg(["mean", "min", "max"]).sort_index()
        colour = styles.colour[str(model)]
        ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.18, linewidth=0)
        ax.plot(stats.index, stats["mean"], color=colour, marker=styles.marker[str(method)], markersize=4,
                linewidth=1.3)
    ax.grid(color="#eeeeee", linewidth=0.5)


def _plain_log2_ticks(ax, ks: list[float]) -> None:
    """A log2 axis labelled with the K values themselves ("2", "4", "8"), never as powers (2^1)."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, labels=[f"{k:g}" for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ks) == 1:  # one K: a visible span around it instead of a degenerate axis
        ax.set_xlim(ks[0] / 1.5, ks[0] * 1.5)


def _add_line_keys(handles: list, labels: list[str], with_reference: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles += [Line2D([], [], linestyle="none"), Line2D([], [], color="#444444"),
                Patch(facecolor="#444444", alpha=0.18)]
    labels += ["lines", "mean over draws", "lowest to highest draw"]
    if with_reference:
        handles.append(Line2D([], [], color="#444444", linestyle="--"))
        labels.append("off-the-shelf (no labels)")
