"""Metric heatmaps, model x dataset, one per method, as in the seed paper (MedVLMBench's AUROC heatmaps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medrival.report.plot_rq import dataset_order
from medrival.report.plot_style import (
    label_text,
    new_figure,
    outside_legend,
    role_of,
    role_order,
    styled,
    text_size,
    wrap,
)

CMAP = "viridis"  # perceptually uniform and colour-blind safe
ROLE_TEXT = {"generalist": "#08519c", "specialist": "#a63603"}  # the darkest shades of the role families


def metric_heatmaps(arms: pd.DataFrame, metric: str) -> list[tuple[str, object]]:
    """[(method label, Figure)], one heatmap per method: models (rows; generalists first, names coloured by role
    when ``arms`` has a ``role`` column, see ``plot_style.with_roles``) x datasets (columns, ID first), each cell
    the arm's estimate of ``metric`` at its richest label budget, annotated. ``arms`` is
    ``medrival.stats.questions.arm_summaries(store)``; rows of other metrics (VQA) are left out. [] when no
    row has ``metric``."""
    if arms is None or arms.empty or "metric" not in arms.columns:
        return []
    from medrival.report.plot_arms import richest_budget

    rows = arms[arms["metric"].astype(str) == metric]
    if rows.empty:
        return []
    rows = richest_budget(rows.assign(method_label=rows.get("method_label", rows["method"])))
    # One colour scale for every method's heatmap, so the same colour is the same value across figures.
    finite = rows["estimate"].astype(float).dropna()
    limits = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    figures = []
    for method in sorted(rows["method_label"].astype(str).unique()):
        part = rows[rows["method_label"].astype(str) == method]
        figures.append((method, _heatmap(part, method, metric, limits)))
    return figures


@styled
def _heatmap(part: pd.DataFrame, method: str, metric: str, limits: tuple[float, float]):
    from matplotlib import colormaps

    datasets = dataset_order(part)
    roles = dict(zip(part["model"].astype(str), role_of(part)))
    models = sorted(roles, key=lambda m: (role_order(roles[m]), m))
    values = np.full((len(models), len(datasets)), np.nan)
    for row in part.to_dict("records"):
        values[models.index(str(row["model"])), datasets.index(str(row["dataset"]))] = float(row["estimate"])
    columns, labels = [wrap(d, 16) for d in datasets], [wrap(m, 30) for m in models]
    budgets = sorted(part["budget"].astype(str).unique())
    label_w = max(text_size(label)[0] for label in labels)
    column_h = max(text_size(c)[0] for c in columns)
    title = wrap(f"{method}" + (f" ({budgets[0]})" if len(budgets) == 1 else " (richest budget)"), 40)
    fig = new_figure(max(label_w + 0.62 * len(datasets) + 1.6, text_size(title)[0] + 1.0),
                     0.36 * len(models) + column_h + 1.0)
    ax = fig.add_subplot()
    low, high = limits
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormaps[CMAP].with_extremes(bad="#f2f2f2"), vmin=low,
                      vmax=max(high, low + 1e-6), aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):  # dark text on the light (yellow) end of viridis, white elsewhere
            light = (value - low) / max(high - low, 1e-6) > 0.6
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
    ax.set_yticks(range(len(models)), labels=labels)
    for tick, model in zip(ax.get_yticklabels(), models):
        tick.set_color(ROLE_TEXT.get(roles[model], "black"))
    ax.set_xticks(range(len(datasets)), labels=columns, rotation=90)
    ax.tick_params(length=0)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, aspect=12).set_label(label_text(metric))
    _role_key(fig, set(roles.values()))
    return fig


def _role_key(fig, roles: set[str]) -> None:
    """A key to the coloured model names, when the roles are known."""
    from matplotlib.patches import Patch

    known = [role for role in ("generalist", "specialist") if role in roles]
    if known:
        outside_legend(fig, [Patch(facecolor=ROLE_TEXT[r]) for r in known], [f"{r} (name colour)" for r in known])
