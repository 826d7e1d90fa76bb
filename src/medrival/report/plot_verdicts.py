"""The verdict matrix: the answer to one research question in one figure.

Rows are comparisons (arm A vs arm B, per method and label budget, and metric where a table mixes several);
columns are datasets, ID first, then mixed, then OOD, under a group heading. A cell's colour is the paired
difference oriented so that positive means A is better (Brier, where lower wins, is flipped), on a diverging
colour-blind-safe map centred at 0; its text is the corrected verdict and the raw difference; a hatched cell
with "*" is a comparison on data a model was trained on (exposed).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medrival.report.plot_rq import DOMAIN_ORDER, dataset_order, verdict_of
from medrival.report.plot_style import (
    LINE_H,
    label_text,
    new_figure,
    outside_legend,
    styled,
    text_size,
    wrap,
)

CMAP = "RdBu"  # ColorBrewer diverging, colour-blind safe; blue = A better, red = B better
CELL_W, CELL_H = 0.95, 0.46  # inches: room for "non-inferior" and a signed difference at 7 pt


def oriented(row: dict) -> float:
    """The difference with its sign turned so that positive means A is better for this row's metric."""
    from medrival.stats.verdicts import higher_is_better

    value = float(row["difference"])
    return value if higher_is_better(str(row.get("metric", "auroc"))) else -value


def _row_key(row: dict, many_metrics: bool) -> tuple:
    from medrival.stats.questions import budget_rank

    name = row.get("method_label", row.get("method", ""))
    return (str(row.get("versus", "")), str(name), budget_rank(str(row.get("budget", "full"))),
            str(row["a"]), str(row["b"]), str(row.get("metric", "")) if many_metrics else "")


def _matrix(table: pd.DataFrame):
    """(row keys, row labels, datasets, values, cell records) of the table."""
    records = table.to_dict("records")
    many = "metric" in table.columns and table["metric"].nunique() > 1
    keys = sorted({_row_key(r, many) for r in records})
    datasets = dataset_order(table)
    cells = {(_row_key(r, many), str(r["dataset"])): r for r in records}
    values = np.full((len(keys), len(datasets)), np.nan)
    for (key, dataset), row in cells.items():
        values[keys.index(key), datasets.index(dataset)] = oriented(row)
    labels = [wrap(k[3], 34) + "\n" + wrap(f"vs {k[4]}" + (f" [{k[5]}]" if k[5] else ""), 34) for k in keys]
    return keys, labels, datasets, values, cells


@styled
def verdict_matrix(table: pd.DataFrame):
    """The verdict matrix of one RQ table (``medrival.stats.questions.research_questions(store)[rq]``, which
    has dataset, domain, a, b, method_label, versus, budget, metric, difference, verdict_corrected and
    exposed); None for an empty table."""
    if table is None or table.empty:
        return None
    from matplotlib import colormaps
    from matplotlib.colors import CenteredNorm

    keys, labels, datasets, values, cells = _matrix(table)
    columns = [wrap(d, 16) for d in datasets]
    label_w = max(text_size(label)[0] for label in labels)
    column_h = max(text_size(c)[0] for c in columns)  # the dataset names are drawn upright (rotated 90)
    row_h = max(CELL_H, LINE_H * (max(label.count("\n") for label in labels) + 1.6))  # imshow rows are equal
    # At least as wide as the two-line x label under the cells, for a single dataset column.
    fig = new_figure(label_w + max(CELL_W * len(datasets) + 1.4, 2.8), row_h * len(keys) + column_h + 1.6)
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    norm = CenteredNorm(0.0, halfrange=max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-6))
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormaps[CMAP].with_extremes(bad="#f2f2f2"), norm=norm,
                      aspect="auto")  # grey: no comparison on that dataset
    for (key, dataset), row in cells.items():
        _cell(ax, keys.index(key), datasets.index(dataset), row, norm(oriented(row)))
    ax.set_yticks(range(len(keys)), labels=labels)
    ax.set_xticks(range(len(datasets)), labels=columns, rotation=90)
    ax.tick_params(length=0)
    ax.set_xlabel("cell: corrected verdict for A\n(the row's first arm), then A - B")
    _domain_groups(ax, table, datasets)
    bar = fig.colorbar(image, ax=ax, shrink=min(1.0, 3.0 / max(1, len(keys))) if len(keys) > 3 else 1.0,
                       aspect=12)
    bar.set_label("A - B (+ = A better)")
    outside_legend(fig, *_legend(table))
    return fig


def _cell(ax, i: int, j: int, row: dict, level: float) -> None:
    """The verdict and signed difference in a cell; an exposed cell hatched and starred."""
    dark = not math.isnan(level) and abs(level - 0.5) > 0.3  # deep colours at both ends need white text
    star = "*" if bool(row.get("exposed")) else ""
    difference = float(row["difference"])
    text = f"{verdict_of(row)}{star}\n{difference:+.3f}" if math.isfinite(difference) else f"n/a{star}"
    box = {"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0} if star else None
    # An exposed cell's text sits on a light box over the hatch, in black, so the hatch never hides it.
    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark and not star else "black",
            bbox=box, zorder=4)
    if star:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="////", edgecolor="#55555599",
                               linewidth=0, zorder=3))


def _domain_groups(ax, table: pd.DataFrame, datasets: list[str]) -> None:
    """ID / mixed / OOD headings over their columns (a secondary top axis) and a white rule between groups."""
    domain = dict(zip(table["dataset"].astype(str), table.get("domain", pd.Series("", index=table.index))))
    groups: list[tuple[str, list[int]]] = []
    for j, dataset in enumerate(datasets):
        name = str(domain.get(dataset) or "")
        if groups and groups[-1][0] == name:
            groups[-1][1].append(j)
        else:
            groups.append((name, [j]))
    top = ax.secondary_xaxis("top")
    top.set_xticks([sum(js) / len(js) for _, js in groups],
                   labels=[label_text(name if name in DOMAIN_ORDER else name or "-") for name, _ in groups])
    top.tick_params(length=0)
    for _, js in groups[1:]:
        ax.axvline(js[0] - 0.5, color="white", linewidth=3)


def _legend(table: pd.DataFrame) -> tuple[list, list[str]]:
    from matplotlib.patches import Patch

    handles, labels = [], []
    if "exposed" in table.columns and table["exposed"].fillna(False).astype(bool).any():
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="////"))
        labels.append("* exposed: a model\n  was trained on\n  this dataset")
    return handles, labels
