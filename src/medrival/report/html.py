"""One self-contained HTML report of a study store: the answer first, then heatmaps, details, spec and provenance.

Self-contained means no network at view time: inline CSS, figures as inline SVG, one inline script (sortable and
filterable tables) pinned by a Content-Security-Policy hash, nothing fetched from anywhere. Every string from the
store (model, dataset and class names, errors) goes through Jinja2's autoescaping; the only markup inserted
unescaped is SVG, and only as ``medrival.report.svg_safety.safe_svg`` re-serialised it from a parsed, whitelisted
tree (so any name is text, and a name can never block the report). Beside the HTML: the RQ tables as Markdown,
LaTeX (full and compact) and CSV (``rq1.md``, ``rq1.tex``, ``rq1-compact.tex``, ...), every figure as SVG and PNG
under ``figures/``, and ``summary.json`` (title, HTML path, summary lines per RQ, figure paths) for the terminal.
VQA cells scored by earlier VQA rules are left out of every section, and the page says so at the top
(``medrival.store.outdated_vqa_note``: how many, and the command that re-runs them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from jinja2 import Environment, StrictUndefined

from medrival.core.errors import MedrivalError
from medrival.report.answer import write_summary
from medrival.report.exports import RQ_HEADERS, arm_aliases, write_exports
from medrival.report.figures_out import FIGURES_DIR, FigureSet
from medrival.report.page_parts import (
    RQ_TITLES,
    heatmap_blocks,
    other_figures,
    reliability_block,
    rq_sections,
)
from medrival.report.page_script import SCRIPT, content_security_policy
from medrival.report.page_template import TEMPLATE
from medrival.report.sections import (
    ARM_HEADERS,
    BRIER_TEXT,
    GAP_HEADERS,
    POINT_HEADERS,
    POOLED_HEADERS,
    SENSITIVITY_HEADERS,
    SKIPPED_HEADERS,
    SKIPPED_IMAGE_HEADERS,
    SUBGROUP_HEADERS,
    VQA_EXAMPLE_HEADERS,
    arm_rows,
    failed_rows,
    gap_rows,
    operating_point_rows,
    provenance_rows,
    sensitivity_rows,
    skipped_image_rows,
    spec_rows,
    subgroup_rows,
    vqa_sections,
)
from medrival.report.tables import SYNTHETIC_NOTE, is_synthetic

__all__ = ["RQ_TITLES", "render_report", "verdict_rules", "write_report"]


def verdict_rules(tables: dict[str, pd.DataFrame], exposure: str) -> str:
    """The verdict rules in the words a reviewer checks, with this study's margins and exposure setting."""
    margins = {}
    for table in tables.values():
        if table is not None and not table.empty and "margin" in table.columns:
            margins.update(dict(zip(table["metric"], table["margin"])))
    shown = ", ".join(f"{metric} {margin:g}" for metric, margin in sorted(margins.items())) or "none in this store"
    return ("Each row pairs two arms on the same test items (cluster bootstrap; seeds and draws resampled first). "
            "With the margin m of the row's metric and the CI of A - B oriented so that positive means A is "
            "better: superior when the CI lies above 0; non-inferior when it lies above -m; inferior when it lies "
            "below 0 and reaches below -m; inconclusive otherwise. The corrected verdict applies the same rules "
            "to Holm-adjusted superiority and one-sided non-inferiority p-values over each RQ table (the family); "
            f"summary lines count the corrected verdicts. Margins here: {shown}. Comparisons on data a model was "
            "trained on (its card's trained_on) are flagged 'exposed'"
            + (" and left out of the verdicts" if exposure == "exclude" else "")
            + "; arms whose trainable parameters differ by more than 10 % are flagged. Across datasets, the "
              "paired differences are pooled with a random-effects model (REML; I² is the share of their spread "
              "beyond sampling error).")


def _has_vqa(arms: pd.DataFrame) -> bool:
    from medrival.stats.vqa_arms import VQA_TASK

    return not arms.empty and "task" in arms.columns and bool((arms["task"] == VQA_TASK).any())


# Per subgroup or operating point and arm: a study has many of them, and 1,000 resamples fix a 95% CI well.
SUBGROUP_RESAMPLES = 1000
MIN_GROUP = 20  # groups smaller than this are shown but not used for the worst-group gap


@dataclass
class _Analysis:
    """Everything the report computes from the store before rendering."""

    metric: str
    vqa_metrics: tuple[str, ...]
    tables: dict[str, pd.DataFrame]
    arms: pd.DataFrame
    subgroups: pd.DataFrame
    gaps: pd.DataFrame
    points: pd.DataFrame
    subgroup_resamples: int
    exposure: str  # the study's setting: "mark" or "exclude"
    other: dict[str, pd.DataFrame]  # the RQ tables under the other exposure setting
    pooled: pd.DataFrame
    sensitivity: pd.DataFrame


def _analyse(store, metric: str, n_resamples: int, seed: int, vqa_metrics=None, margins=None,
             exposure: str | None = None) -> _Analysis:
    from medrival.stats.across_datasets import pooled_differences
    from medrival.stats.questions import analysis_settings, arm_summaries, research_questions, without_exposed
    from medrival.stats.prompt_sensitivity import prompt_sensitivity_table
    from medrival.stats.study_operating_points import study_operating_points
    from medrival.stats.study_subgroups import study_subgroups
    from medrival.stats.vqa_arms import check_vqa_metrics

    vqa_metrics = check_vqa_metrics(vqa_metrics)
    options = dict(metric=metric, n_resamples=n_resamples, seed=seed, vqa_metrics=vqa_metrics)
    exposure = exposure or analysis_settings(store).get("exposure") or "mark"
    tables = research_questions(store, margins=margins, exposure=exposure, **options)
    other = without_exposed(tables) if exposure == "mark" else research_questions(store, margins=margins,
                                                                                    exposure="mark", **options)
    pooled = pooled_differences(tables)
    arms = arm_summaries(store, **options)
    resamples = min(n_resamples, SUBGROUP_RESAMPLES)
    groups, gaps = study_subgroups(store, metric=metric, n_resamples=resamples, seed=seed, min_size=MIN_GROUP)
    points = study_operating_points(store, rule="youden", n_resamples=resamples, seed=seed)
    return _Analysis(metric, vqa_metrics, tables, arms, groups, gaps, points, resamples, exposure, other, pooled,
                     prompt_sensitivity_table(store))


def study_title(store) -> str:
    """The study's name as saved with its store (``analysis.json``, "study"), else the store folder's name (also
    for a study left at the default name "study", which says less than the folder does)."""
    from medrival.stats.questions import analysis_settings

    name = analysis_settings(store).get("study")
    named = isinstance(name, str) and name.strip() not in ("", "study")
    return name.strip() if named else store.root.name


def _toc(context: dict) -> list[tuple[str, str]]:
    """(section id, entry) of the contents at the top of the page, in page order, for the sections shown."""
    entries = [("answer", "The answer", True), ("heatmaps", "Heatmaps", bool(context["heatmaps"])),
               ("verdicts", "How verdicts are read", True)]
    entries += [(rq["key"].lower(), rq["key"], True) for rq in context["rqs"]]
    entries += [("datasets", "Per dataset", True), ("reliability", "Reliability", bool(context["reliability"])),
                ("subgroups", "Subgroups", True), ("operating", "Operating points", True),
                ("prompts", "Prompt sensitivity", bool(context["sensitivity"])),
                ("fewshot", "Few-shot", bool(context["fewshot"])), ("cost", "Cost", True),
                ("vqa", "VQA answers", bool(context["vqa"])),
                ("failed", f"Failed cells ({len(context['failed'])})", True),
                ("skipped", "Skipped items", True), ("study", "Study", True), ("provenance", "Provenance", True)]
    return [(key, name) for key, name, shown in entries if shown]


# The column headers of the page's tables, by template name.
_HEADERS = {"pooled_headers": POOLED_HEADERS, "sensitivity_headers": SENSITIVITY_HEADERS, "arm_headers": ARM_HEADERS,
            "gap_headers": GAP_HEADERS, "subgroup_headers": SUBGROUP_HEADERS, "point_headers": POINT_HEADERS,
            "skipped_headers": SKIPPED_HEADERS, "skipped_image_headers": SKIPPED_IMAGE_HEADERS,
            "vqa_headers": VQA_EXAMPLE_HEADERS}


def _context(store, analysis: _Analysis, figures: FigureSet) -> dict:
    from medrival.store.results import is_outdated_vqa, outdated_vqa_note

    everything = store.records()
    records = [record for record in everything if not is_outdated_vqa(record)]
    frame = store.results_frame()  # without the outdated VQA cells, like ``records``
    metric, arms = analysis.metric, analysis.arms
    other_title = ("Leaving out the comparisons on data a model was trained on" if analysis.exposure == "mark"
                   else "Keeping the comparisons on data a model was trained on")
    sections, skipped = rq_sections(analysis.tables, analysis.other, other_title, analysis.pooled,
                                    analysis.exposure, arm_aliases(analysis.tables), figures)
    context = {
        "title": study_title(store), "csp": content_security_policy(SCRIPT), "script": SCRIPT,
        "synthetic": is_synthetic(frame), "synthetic_note": SYNTHETIC_NOTE,
        "outdated_note": outdated_vqa_note(everything) or "", "vqa_metrics": list(analysis.vqa_metrics),
        "spec": spec_rows(records), "provenance": provenance_rows(records), "rqs": sections,
        "headers": RQ_HEADERS, "metric": metric, "has_vqa": _has_vqa(arms), "brier_text": BRIER_TEXT,
        "verdict_rules": verdict_rules(analysis.tables, analysis.exposure),
        "heatmaps": heatmap_blocks(figures, arms, frame, metric),
        "sensitivity": sensitivity_rows(analysis.sensitivity), "arms": arm_rows(arms),
        "gaps": gap_rows(analysis.gaps), "subgroups": subgroup_rows(analysis.subgroups),
        "subgroup_resamples": analysis.subgroup_resamples, "min_group": MIN_GROUP,
        "points": operating_point_rows(analysis.points), "vqa": vqa_sections(store, records),
        "failed": failed_rows(records), "skipped": skipped, "skipped_images": skipped_image_rows(records),
        **other_figures(figures, frame, arms, metric), "reliability": reliability_block(figures, store),
        **_HEADERS}
    context["toc"] = _toc(context)
    return context


@dataclass
class Rendered:
    """A rendered report: the page, the RQ tables it shows, its figures, its title and summary lines."""

    html: str
    tables: dict[str, pd.DataFrame]
    figures: FigureSet
    title: str
    summaries: dict[str, list[str]]


def render(store, *, n_resamples: int = 2000, seed: int = 0, metric: str = "auroc", vqa_metrics=None,
           margins: dict[str, float] | None = None, exposure: str | None = None) -> Rendered:
    """The page and everything written beside it, for a ``ResultStore``."""
    from medrival.stats.questions import CachedPredictions

    store = CachedPredictions(store)
    analysis = _analyse(store, metric, n_resamples, seed, vqa_metrics, margins, exposure)
    figures = FigureSet()
    context = _context(store, analysis, figures)
    env = Environment(autoescape=True, undefined=StrictUndefined)
    summaries = {rq["key"]: list(rq["summaries"]) for rq in context["rqs"]}
    return Rendered(env.from_string(TEMPLATE).render(**context), analysis.tables, figures, context["title"],
                    summaries)


def render_report(store, *, n_resamples: int = 2000, seed: int = 0, metric: str = "auroc", vqa_metrics=None,
                  margins: dict[str, float] | None = None, exposure: str | None = None
                  ) -> tuple[str, dict[str, pd.DataFrame]]:
    """(the HTML text, the RQ tables it shows) for a ``ResultStore``; ``vqa_metrics``: the per-question metrics
    of VQA datasets (default closed_accuracy, open_token_f1); ``margins`` and ``exposure`` override the study's
    verdict settings saved with the store (``medrival.stats.questions.research_questions``)."""
    rendered = render(store, n_resamples=n_resamples, seed=seed, metric=metric, vqa_metrics=vqa_metrics,
                      margins=margins, exposure=exposure)
    return rendered.html, rendered.tables


def write_report(store_dir: str | Path, out_path: str | Path | None = None, *, n_resamples: int = 2000,
                 seed: int = 0, metric: str = "auroc", vqa_metrics=None, margins: dict[str, float] | None = None,
                 exposure: str | None = None) -> Path:
    """Write the report of the store in ``store_dir`` (default ``<store_dir>/report/report.html``); beside it the
    RQ tables as Markdown/LaTeX/CSV, ``figures/`` (every figure as SVG and PNG) and ``summary.json``; returns the
    HTML path. ``metric`` is the one every comparison, CI and plot uses on classification datasets (auroc,
    accuracy, balanced_accuracy, macro_f1 or brier, where lower wins); VQA datasets use ``vqa_metrics`` (default
    closed_accuracy and open_token_f1, each over the questions it applies to)."""
    from medrival.stats.vqa_arms import check_vqa_metrics
    from medrival.stats.weighted import check_metric_name
    from medrival.store import ResultStore, require_store

    if n_resamples < 1:
        raise MedrivalError(f"--resamples must be a positive number of bootstrap resamples, got {n_resamples}; "
                            "use e.g. 2000.")
    check_metric_name(metric)
    vqa_metrics = check_vqa_metrics(vqa_metrics)
    store = ResultStore(require_store(store_dir), read_only=True).require_intact()  # refuse damaged cells
    out = Path(out_path) if out_path is not None else Path(store_dir) / "report" / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    rendered = render(store, n_resamples=n_resamples, seed=seed, metric=metric, vqa_metrics=vqa_metrics,
                      margins=margins, exposure=exposure)
    out.write_text(rendered.html, encoding="utf-8")
    write_exports(rendered.tables, out.parent, RQ_TITLES)
    written = rendered.figures.write(out.parent / FIGURES_DIR)
    write_summary(out.parent / "summary.json", rendered.title, out, rendered.summaries, written)
    return out
