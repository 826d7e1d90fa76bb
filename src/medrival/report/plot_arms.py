"""Figures of every model+method ("arm"): per-dataset bars and cost vs performance, as small multiples (one
panel per dataset) with the arm names on the axis and one legend outside the panels."""
from __future__ import annotations

import math

import pandas as pd

from medrival.report.plot_style import (
    LINE_H,
    arm_name,
    arm_styles,
    done_rows,
    grid,
    label_text,
    new_figure,
    outside_legend,
    role_of,
    role_order,
    styled,
    text_size,
    with_roles,
    wrap,
)

PANEL_W = 2.4  # inches of data area per panel


def richest_budget(intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (dataset, model, method label) at its richest budget: a few-shot study without a full
    budget still gets its bars (zero-shot at full, the trained arms at their largest budget)."""
    name = "method_label" if "method_label" in intervals.columns else "method"
    from medrival.stats.questions import budget_rank

    rank = intervals["budget"].map(budget_rank)
    best = rank.groupby([intervals["dataset"], intervals["model"], intervals[name]]).transform("max")
    return intervals[rank == best]


def _bar_groups(intervals: pd.DataFrame, metric: str) -> pd.Series:
    """The panel of each arm summary: its dataset, or "dataset (metric)" for a row of another metric (VQA)."""
    if "metric" not in intervals.columns:
        return intervals["dataset"].astype(str)
    other = intervals["metric"].astype(str) != metric
    named = intervals["dataset"].astype(str) + " (" + intervals["metric"].astype(str) + ")"
    return named.where(other, intervals["dataset"].astype(str))


def _bar_rows(results_frame: pd.DataFrame, metric: str, intervals: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (panel, arm): group, arm, model, role, method_label, estimate, low, high (NaN without CIs)."""
    if intervals is not None and not intervals.empty:
        rows = richest_budget(intervals)
        rows = with_roles(rows.assign(method_label=rows.get("method_label", rows["method"])), results_frame)
        return rows.assign(group=_bar_groups(rows, metric), arm=rows["arm"].astype(str))
    done = done_rows(results_frame, metric)
    if done.empty:
        return done
    if "budget" in done.columns:
        done = done[done["budget"].fillna("full") == "full"]
    done = done.assign(arm=arm_name(done), role=role_of(done))
    keys = ["dataset", "arm", "model", "role", "method_label"]
    means = done.groupby(keys, as_index=False)[metric].mean().rename(columns={metric: "estimate"})
    return means.assign(group=means["dataset"].astype(str), low=math.nan, high=math.nan)


def _arm_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Generalists first, then specialists; by model, method and arm name within."""
    key = rows.assign(_r=role_of(rows).map(role_order))
    return key.sort_values(["_r", "model", "method_label", "arm"], kind="mergesort").drop(columns="_r")


@styled
def dataset_bars(results_frame: pd.DataFrame, metric: str = "auroc", intervals: pd.DataFrame | None = None):
    """Small multiples, one panel per dataset: a horizontal bar per model+method at its richest label budget
    (the full training split when it ran; else its largest fraction, else its largest K, named in the label).

    With ``intervals`` (``medrival.stats.questions.arm_summaries``) the bars are those estimates with their
    bootstrap CIs as whiskers, and a VQA dataset gets one panel per VQA metric, titled "dataset (metric)";
    without, the mean over seeds of the stored metric. Colour: the model (blues generalists, oranges
    specialists); hatch: the method. None when there is nothing to draw."""
    rows = _bar_rows(results_frame, metric, intervals)
    if rows is None or rows.empty:
        return None
    groups = list(dict.fromkeys(sorted(rows["group"].astype(str))))
    styles = arm_styles(rows)
    panels = [(g, _arm_order(rows[rows["group"].astype(str) == g])) for g in groups]
    labels = {arm: wrap(arm, 30) for arm in rows["arm"].astype(str)}
    label_w = max(text_size(label)[0] for label in labels.values())
    n_rows, n_cols = grid(len(panels))
    heights = [max(LINE_H * sum(labels[a].count("\n") + 1.4 for a in part["arm"]) for _, part in
                   panels[r * n_cols:(r + 1) * n_cols]) + 0.9 for r in range(n_rows)]
    fig = new_figure(n_cols * (label_w + PANEL_W + 0.3) + 0.3, sum(heights) + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={"height_ratios": heights})
    with_ci = rows["low"].notna().any()
    for ax, (group, part) in zip(axes.flat, panels):
        _bar_panel(ax, part, styles, labels)
        ax.set_title(wrap(group, 40))
        ax.set_xlabel(label_text(metric if group == part["dataset"].iloc[0] or "(" not in group else "score")
                      + (" (95% CI)" if with_ci else ""))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    outside_legend(fig, *styles.legend_entries("hatch"))
    return fig


def _bar_panel(ax, part: pd.DataFrame, styles, labels: dict) -> None:
    """One dataset's arms, first on top; whiskers only where a CI exists."""
    ys = list(range(len(part)))[::-1]
    values = part["estimate"].astype(float)
    errors = None
    if part["low"].notna().any():  # asymmetric CI whiskers; a missing CI draws none
        errors = [(values - part["low"].astype(float)).clip(lower=0).fillna(0.0).to_numpy(),
                  (part["high"].astype(float) - values).clip(lower=0).fillna(0.0).to_numpy()]
    ax.barh(ys, values.fillna(0.0), height=0.72, xerr=errors, capsize=2, error_kw={"elinewidth": 0.7},
            color=[styles.colour[m] for m in part["model"].astype(str)],
            hatch=[styles.hatch[m] for m in part["method_label"].astype(str)], edgecolor="white", linewidth=0.5)
    ax.set_yticks(ys, labels=[labels[a] for a in part["arm"].astype(str)])
    ax.set_ylim(-0.6, len(part) - 0.4)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)


def _count_text(value: float, _position=None) -> str:
    """A parameter count for people: 1, 10, 100, 1k, 10k, 1M (never 10^3 as mathtext)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _plain_count_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(_count_text)


@styled
def cost_plot(results_frame: pd.DataFrame, metric: str = "auroc"):
    """``metric`` vs trainable parameters (log x; 0 drawn at 1), one point per cell, one panel per dataset;
    colour: the model (blues generalists, oranges specialists), marker: the method. None when no cell has a
    cost record."""
    done = done_rows(results_frame, metric)
    if done.empty or "trainable_params" not in done.columns:
        return None
    params = pd.to_numeric(done["trainable_params"], errors="coerce")
    done = done.assign(x=params.clip(lower=1), role=role_of(done)).dropna(subset=["x"])
    if done.empty:
        return None
    datasets = sorted(done["dataset"].astype(str).unique())
    styles = arm_styles(done)
    n_rows, n_cols = grid(len(datasets))
    fig = new_figure(n_cols * 3.2 + 0.3, n_rows * 2.6 + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        part = done[done["dataset"].astype(str) == dataset]
        for (model, method), points in part.groupby(["model", "method_label"]):
            ax.scatter(points["x"], points[metric], s=22, color=styles.colour[str(model)],
                       marker=styles.marker[str(method)], edgecolors="white", linewidths=0.4)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(_plain_count_formatter())
        ax.set_title(wrap(dataset, 40))
        ax.set_xlabel("trainable parameters\n(log scale; 0 drawn at 1)" if (params == 0).any()
                      else "trainable parameters (log scale)")
        ax.set_ylabel(label_text(metric))
        ax.grid(color="#eeeeee", linewidth=0.5)
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    outside_legend(fig, *styles.legend_entries("marker"))
    return fig
