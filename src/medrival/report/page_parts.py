"""Template data of the report's RQ sections and figures, from the analysis the report computed.

Figures come from ``medrival.report.plots`` (a matplotlib Figure, or an SVG string from older plot functions) and
go through one ``FigureSet``, which checks them for the page and writes them to ``figures/``.
"""
from __future__ import annotations

import pandas as pd

from medrival.report import plots
from medrival.report.answer import verdict_paragraph
from medrival.report.exports import compact_headers, compact_rows, legend_rows, rq_rows
from medrival.report.figures_out import FigureSet, figure_block
from medrival.report.sections import pooled_rows

RQ_TITLES = {
    "RQ1": "RQ1: off-the-shelf specialist vs generalist, in the specialist's domain",
    "RQ2": "RQ2: adapted generalist vs specialist, in the specialist's domain (ID)",
    "RQ3": "RQ3: adapted generalist vs specialist, outside the specialist's domain (OOD)",
}
RQ_SHORT = {"RQ1": "off-the-shelf, in domain", "RQ2": "adapted, in domain (ID)",
            "RQ3": "adapted, out of domain (OOD)"}


def _other_lines(key: str, table: pd.DataFrame, other: pd.DataFrame | None) -> list[str]:
    """Summary lines under the other exposure reading, when it changes the rows."""
    from medrival.stats.questions import method_summaries

    if other is not None and len(other) == len(table):
        return []
    lines = method_summaries(key, other) if other is not None and not other.empty else []
    return lines or [f"no {key} comparison is left"]


def _rq_figures(figures: FigureSet, key: str, table: pd.DataFrame) -> dict:
    adapted = table[table["versus"] != "off-the-shelf generalist"] if "versus" in table else table
    return {"matrix": figure_block(figures, f"{key}-verdict-matrix", plots.verdict_matrix(table)),
            "forest": figure_block(figures, f"forest-{key}", plots.forest_plot(table)),
            "budgets": figure_block(figures, f"budgets-{key}", plots.budget_differences(adapted))}


def rq_sections(tables: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame], other_title: str,
                pooled: pd.DataFrame, exposure: str, aliases: dict[str, str], figures: FigureSet
                ) -> tuple[list[dict], list[list[str]]]:
    """Template data for each RQ (answer paragraph, summaries under the study's exposure setting and under the
    other one, compact and full rows, alias legend, pooled rows, figures), and the rows of every comparison that
    left test items out."""
    from medrival.stats.questions import method_summaries

    sections, skipped = [], []
    for key, title in RQ_TITLES.items():
        table, kept = tables.get(key), other.get(key)
        base = {"key": key, "title": title, "short": RQ_SHORT[key], "other_title": other_title,
                "paragraph": verdict_paragraph(key, table, kept, exposure)}
        if table is None or table.empty:
            lines = method_summaries(key, kept) if kept is not None and not kept.empty else []
            sections.append({**base, "rows": [], "summaries": [], "matrix": None, "other_summaries": lines})
            continue
        sections.append({**base, "rows": rq_rows(table), "summaries": method_summaries(key, table),
                         "compact_headers": compact_headers(table), "compact_rows": compact_rows(table, aliases),
                         "legend": legend_rows(table, aliases), "other_summaries": _other_lines(key, table, kept),
                         "pooled": pooled_rows(pooled, key), **_rq_figures(figures, key, table)})
        skipped += [[key, str(r["dataset"]), str(r["a"]), str(r["b"]), str(r["items_left_out"])]
                    for r in table.to_dict("records") if int(r.get("items_left_out") or 0) > 0]
    return sections, skipped


def heatmap_blocks(figures: FigureSet, arms: pd.DataFrame, frame: pd.DataFrame, metric: str) -> list[dict]:
    """One model x dataset heatmap of ``metric`` per method (the seed paper's figure), models coloured by role."""
    if arms.empty:
        return []
    blocks = [figure_block(figures, f"heatmap-{method}", fig)
              for method, fig in plots.metric_heatmaps(plots.with_roles(arms, frame), metric)]
    return [block for block in blocks if block]


def reliability_block(figures: FigureSet, store) -> dict | None:
    """The reliability diagrams of every binary and multiclass arm (first draw, as the ECE column)."""
    return figure_block(figures, "reliability", plots.reliability_diagrams(plots.reliability_curves(store)))


def other_figures(figures: FigureSet, frame: pd.DataFrame, arms: pd.DataFrame, metric: str) -> dict:
    """Per-dataset bars, few-shot curves and cost vs performance."""
    return {"bars": figure_block(figures, "dataset-bars", plots.dataset_bars(frame, metric, arms)),
            "fewshot": figure_block(figures, "fewshot", plots.fewshot_curves(frame, metric)),
            "cost": figure_block(figures, "cost", plots.cost_plot(frame, metric))}
