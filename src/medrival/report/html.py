"""One self-contained HTML report of a study store: spec, provenance, RQ1-RQ3 with plots, failures.

Self-contained means no network at view time: inline CSS, figures as inline SVG, no scripts, fonts or links
to anywhere. Every string from the store (model, dataset and class names, errors) goes through Jinja2's
autoescaping; the only markup inserted unescaped is SVG, and only after ``_checked_svg`` confirmed it is the
plain matplotlib output of ``medrival.report.plots`` (whose text nodes matplotlib escapes itself).
The RQ tables are also written next to the HTML as Markdown, LaTeX and CSV (``rq1.md``, ``rq1.tex``, ...).
VQA cells scored by earlier VQA rules are left out of every section, and the page says so at the top
(``medrival.store.outdated_vqa_note``: how many, and the command that re-runs them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from jinja2 import Environment, StrictUndefined

from medrival.core.errors import MedrivalError
from medrival.report import plots
from medrival.report.exports import RQ_HEADERS, fmt_p, rq_csv, rq_latex, rq_markdown, rq_rows
from medrival.report.sections import (
    VQA_EXAMPLE_HEADERS,
    gap_rows,
    number,
    operating_point_rows,
    skipped_image_rows,
    subgroup_rows,
    vqa_sections,
)
from medrival.report.tables import is_synthetic, one_line, SYNTHETIC_NOTE

RQ_TITLES = {
    "RQ1": "RQ1: off-the-shelf specialist vs generalist, in the specialist's domain",
    "RQ2": "RQ2: adapted generalist vs specialist, in the specialist's domain (ID)",
    "RQ3": "RQ3: adapted generalist vs specialist, outside the specialist's domain (OOD)",
}
# Anything that could run code or load a resource inside inline SVG; matplotlib writes none of these.
_UNSAFE_SVG = re.compile(r"<\s*(script|foreignObject|iframe|image)|\son\w+\s*=|href\s*=\s*[\"'](?!#)", re.I)

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>medrival report: {{ title }}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f0f0f0; } .note { color: #a33; } .summary { font-weight: bold; }
svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>medrival report: {{ title }}</h1>
{% if synthetic %}<p class="note">{{ synthetic_note }}</p>{% endif %}
{% if outdated_note %}<p class="note" id="outdated">{{ outdated_note }}</p>{% endif %}
<h2 id="verdicts">How verdicts are read</h2>
<p>{{ verdict_rules }}</p>
<h2 id="study">Study</h2>
<table>{% for key, values in spec %}<tr><th>{{ key }}</th><td>{{ values | join(", ") }}</td></tr>{% endfor %}</table>
<h2 id="provenance">Provenance</h2>
<table>{% for key, value in provenance %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
{% for rq in rqs %}
<h2 id="{{ rq.key | lower }}">{{ rq.title }}</h2>
{% if rq.rows %}{% for line in rq.summaries %}<p class="summary">{{ line }}</p>{% endfor %}
{% if rq.other_summaries %}<p>{{ rq.other_title }}:</p><ul>{% for line in rq.other_summaries %}<li>{{ line }}</li>
{% endfor %}</ul>{% endif %}
{% if rq.pooled %}<h3>Across datasets (random-effects pooled A - B)</h3>
<table><tr>{% for h in pooled_headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rq.pooled %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<table><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rq.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
<div class="plot">{{ rq.svg | safe }}</div>
{% if rq.budgets %}<h3>Paired differences by label budget</h3><div class="plot">{{ rq.budgets | safe }}</div>{% endif %}
{% else %}<p>No comparison in this store answers {{ rq.key }}{% if rq.other_summaries %} under this setting.
{{ rq.other_title }}:</p><ul>{% for line in rq.other_summaries %}<li>{{ line }}</li>{% endfor %}</ul>{% else %}.</p>
{% endif %}{% endif %}
{% endfor %}
<h2 id="datasets">Per-dataset results ({{ metric }})</h2>
{% if has_vqa %}<p>VQA datasets are not scored with {{ metric }}: they show {{ vqa_metrics | join(", ") }}, each
the mean of a per-question score over the questions it applies to (closed_accuracy and undecided_rate: questions
scored as closed -- yes/no, choice, multiple choice -- by the answer extracted from the response; the open_ metrics
such as open_token_f1: questions scored as open, including closed ones whose reference is not among their
options), named in brackets after the dataset; the
RQ tables, <code>medrival compare</code> and <code>load_results</code> use the same names and means, with
clusters = images.</p>{% endif %}
{% if bars %}<div class="plot">{{ bars | safe }}</div>{% else %}<p>No finished cells.</p>{% endif %}
{% if arms %}<h3 id="arms">Every model+method: {{ metric }} with its 95% CI, and calibration</h3>
<p>CIs: cluster bootstrap (seeds and few-shot draws resampled first when there are several). ECE: 15 equal-width
bins (positive class for binary tasks, top label for multiclass, mean over labels for multilabel); Brier: mean
squared error of the probabilities{% if has_vqa %} (n/a for VQA answers, which carry no class
probabilities){% endif %}.</p>
<table><tr><th>dataset</th><th>model+method</th><th>budget</th><th>draws</th><th>metric</th><th>estimate [CI]</th>
<th>ECE</th><th>Brier</th><th>n (clusters)</th></tr>
{% for row in arms %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<h2 id="subgroups">Subgroups ({{ metric }})</h2>
{% if gaps %}<p>Per-subgroup {{ metric }} with cluster-bootstrap CIs ({{ subgroup_resamples }} resamples, first draw of
each arm; ages in bands). Groups under {{ min_group }} items are shown but left out of the worst-group gap.
{% if synthetic %}The demo world assigns sex and age at random, so its gaps are chance.{% endif %}</p>
<table><tr><th>dataset</th><th>model+method</th><th>attribute</th><th>best group</th><th>worst group</th>
<th>gap</th><th>groups</th></tr>
{% for row in gaps %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
<details><summary>Every subgroup</summary>
<table><tr><th>dataset</th><th>model+method</th><th>attribute</th><th>group</th><th>n</th><th>{{ metric }} [CI]</th>
<th>note</th></tr>
{% for row in subgroups %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
</details>
{% else %}<p>No dataset in this study records subgroup attributes (sex, age, race, ...).</p>{% endif %}
<h2 id="operating">Operating points (binary tasks)</h2>
{% if points %}<p>Each threshold maximises Youden's J (sensitivity + specificity - 1) on the cell's validation
predictions and is then applied to test unchanged; sensitivity and specificity carry cluster-bootstrap CIs
({{ subgroup_resamples }} resamples, within each class).</p>
<table><tr><th>dataset</th><th>model+method</th><th>threshold</th><th>sensitivity [CI]</th>
<th>specificity [CI]</th><th>PPV</th><th>NPV</th><th>validation n</th></tr>
{% for row in points %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No binary task in this study.</p>{% endif %}
{% if sensitivity %}<h2 id="prompts">Prompt sensitivity</h2>
<p>Test metric of each off-the-shelf arm over its template sets (<code>prompt_sensitivity: K</code>): a spread this
wide can decide a verdict by wording alone. The set an arm used was chosen on validation
(<code>prompt_selection: validation</code>) or fixed; the spread is reported, never used to choose.</p>
<table><tr>{% for h in sensitivity_headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in sensitivity %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if fewshot %}<h2 id="fewshot">Few-shot curves ({{ metric }})</h2>
<div class="plot">{{ fewshot | safe }}</div>{% endif %}
<h2 id="cost">Cost vs performance</h2>
{% if cost %}<div class="plot">{{ cost | safe }}</div>{% else %}<p>No cost records.</p>{% endif %}
{% if vqa %}<h2 id="vqa">VQA answers</h2>
{% for cell in vqa %}<h3>{{ cell.dataset }}: {{ cell.arm }} ({{ cell.counts }})</h3>
{% if cell.rows %}<table><tr>{% for h in vqa_headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in cell.rows %}<tr>{% for value in row %}<td>{{ value }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>Every answer was right.</p>{% endif %}{% endfor %}{% endif %}
<h2 id="failed">Failed cells</h2>
{% if failed %}<table><tr><th>cell id</th><th>model</th><th>dataset</th><th>method</th><th>error</th></tr>
{% for f in failed %}<tr>{% for cell in f %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No failed cells.</p>{% endif %}
<h2 id="skipped">Skipped items</h2>
{% if skipped %}<table><tr><th>RQ</th><th>dataset</th><th>A</th><th>B</th><th>items left out</th></tr>
{% for s in skipped %}<tr>{% for cell in s %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No test items were left out of any comparison (both arms scored every item).</p>{% endif %}
<h3 id="skipped-images">Images left out of cells</h3>
{% if skipped_images %}<p>Missing or unreadable image files are skipped and counted (use <code>strict_images: true</code>
to fail instead); the metrics of these cells are over the images that could be read.</p>
<table><tr><th>cell id</th><th>model</th><th>dataset</th><th>method</th><th>left out</th></tr>
{% for s in skipped_images %}<tr>{% for cell in s %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>Every image of every finished cell was read.</p>{% endif %}
</body></html>
"""


def _checked_svg(svg: str) -> str:
    """``svg`` when it is a bare matplotlib ``<svg>`` element with nothing active in it; else an error."""
    if not svg:
        return ""
    text = svg.strip()
    if not (text.startswith("<svg") and text.endswith("</svg>")) or _UNSAFE_SVG.search(text):
        raise MedrivalError("A report figure is not plain matplotlib SVG (it holds a script, event handler or "
                            "external link); refusing to inline it. This is a bug: please report it.")
    return text


def _spec_rows(records) -> list[tuple[str, list[str]]]:
    """The study's models, datasets, methods, budgets and seeds, from the stored cell specs."""
    keys = ("model", "dataset", "method", "budget", "seed")
    values = {k: sorted({str(r.spec.get(k)) for r in records if r.spec.get(k) is not None}) for k in keys}
    return [(k + "s", values[k]) for k in keys] + [("cells", [str(len(records))])]


def _provenance_rows(records) -> list[tuple[str, str]]:
    """Versions and commit from the first finished record (all cells of one run share them)."""
    record = next((r for r in records if r.status == "done" and r.provenance), None)
    if record is None:
        return [("provenance", "not recorded")]
    prov = record.provenance
    rows = [(k, str(prov[k])) for k in ("git_commit", "python", "platform", "machine") if prov.get(k)]
    rows += [(f"package {name}", str(version)) for name, version in sorted((prov.get("packages") or {}).items())]
    return rows


def _failed_rows(records) -> list[list[str]]:
    return [[r.cell_id, str(r.spec.get("model", "")), str(r.spec.get("dataset", "")),
             str(r.spec.get("method", "")), one_line(r.error or "", 300)] for r in records if r.status == "failed"]


POOLED_HEADERS = ("method", "versus", "budget", "metric", "datasets (k)", "pooled A - B [CI]", "p", "I²", "tau²")


def _pooled_rows(pooled: pd.DataFrame, rq: str) -> list[list[str]]:
    rows = pooled[pooled["rq"] == rq] if not pooled.empty else pooled
    return [[str(r["method_label"]), str(r["versus"]), str(r["budget"]), str(r["metric"]),
             f"{r['datasets']} ({r['k']})", f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]",
             fmt_p(r["p_value"]), number(r["i2"]), number(r["tau2"])] for r in rows.to_dict("records")]


def _rq_sections(tables: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame], other_title: str,
                 pooled: pd.DataFrame) -> tuple[list[dict], list[list[str]]]:
    """Template data for each RQ (summaries under the study's exposure setting and under the other one, pooled
    rows, table, plots), and the rows of every comparison that left test items out."""
    from medrival.stats.questions import method_summaries

    sections, skipped = [], []
    for key, title in RQ_TITLES.items():
        table = tables.get(key)
        if table is None or table.empty:
            kept = other.get(key)
            lines = method_summaries(key, kept) if kept is not None and not kept.empty else []
            sections.append({"key": key, "title": title, "rows": [], "other_title": other_title,
                              "other_summaries": lines})
            continue
        records = table.to_dict("records")
        other_table = other.get(key)
        different = other_table is None or len(other_table) != len(table)
        other_lines = (method_summaries(key, other_table) if other_table is not None else []) if different else []
        if different and not other_lines:
            other_lines = [f"no {key} comparison is left"]
        sections.append({"key": key, "title": title, "rows": rq_rows(table),
                         "summaries": method_summaries(key, table),
                         "other_title": other_title,
                         "other_summaries": other_lines,
                         "pooled": _pooled_rows(pooled, key),
                         "svg": _checked_svg(plots.forest_plot(table)),
                         "budgets": _checked_svg(plots.budget_differences(
                             table[table["versus"] != "off-the-shelf generalist"] if "versus" in table else table))})
        skipped += [[key, str(r["dataset"]), str(r["a"]), str(r["b"]), str(r["items_left_out"])]
                    for r in records if int(r.get("items_left_out") or 0) > 0]
    return sections, skipped


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


def write_exports(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """``rqN.md``, ``rqN.tex`` and ``rqN.csv`` for every non-empty RQ table, in ``folder``."""
    written = []
    for key, table in tables.items():
        if table is None or table.empty:
            continue
        stem = folder / key.lower()
        caption = RQ_TITLES.get(key, key)
        stem.with_suffix(".md").write_text(rq_markdown(table), encoding="utf-8")
        stem.with_suffix(".tex").write_text(rq_latex(table, caption, f"tab:{key.lower()}"), encoding="utf-8")
        written += [stem.with_suffix(".md"), stem.with_suffix(".tex"), rq_csv(table, stem.with_suffix(".csv"))]
    return written


SENSITIVITY_HEADERS = ("dataset", "model+method", "metric", "selection", "sets", "min", "median", "max", "IQR",
                       "set used (its value)")


def _sensitivity_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[str(r["dataset"]), str(r["arm"]), str(r["metric"]), str(r["selection"]), str(r["n_sets"]),
             number(r["min"]), number(r["median"]), number(r["max"]), number(r["iqr"]),
             f"{r['chosen_set']} ({number(r['chosen_value'])})"] for r in table.to_dict("records")]


def _arm_rows(arms: pd.DataFrame) -> list[list[str]]:
    return [[str(r["dataset"]), str(r["arm"]), str(r["budget"]), str(r["draws"]), str(r["metric"]),
             f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]", number(r["ece"]),
             number(r["brier"]), f"{r['n_items']} ({r['n_clusters']})"] for r in arms.to_dict("records")]


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


def _context(store, analysis: _Analysis) -> dict:
    from medrival.store.results import is_outdated_vqa, outdated_vqa_note

    everything = store.records()
    records = [record for record in everything if not is_outdated_vqa(record)]
    frame = store.results_frame()  # without the outdated VQA cells, like ``records``
    metric, arms = analysis.metric, analysis.arms
    other_title = ("Leaving out the comparisons on data a model was trained on" if analysis.exposure == "mark"
                   else "Keeping the comparisons on data a model was trained on")
    sections, skipped = _rq_sections(analysis.tables, analysis.other, other_title, analysis.pooled)
    return {"title": store.root.name, "synthetic": is_synthetic(frame), "synthetic_note": SYNTHETIC_NOTE,
            "outdated_note": outdated_vqa_note(everything) or "", "vqa_metrics": list(analysis.vqa_metrics),
            "vqa_headers": VQA_EXAMPLE_HEADERS,
            "spec": _spec_rows(records), "provenance": _provenance_rows(records), "rqs": sections,
            "headers": RQ_HEADERS, "metric": metric, "has_vqa": _has_vqa(arms),
            "verdict_rules": verdict_rules(analysis.tables, analysis.exposure), "pooled_headers": POOLED_HEADERS,
            "sensitivity": _sensitivity_rows(analysis.sensitivity), "sensitivity_headers": SENSITIVITY_HEADERS,
            "bars": _checked_svg(plots.dataset_bars(frame, metric, arms)), "arms": _arm_rows(arms),
            "gaps": gap_rows(analysis.gaps), "subgroups": subgroup_rows(analysis.subgroups),
            "subgroup_resamples": analysis.subgroup_resamples, "min_group": MIN_GROUP,
            "points": operating_point_rows(analysis.points),
            "fewshot": _checked_svg(plots.fewshot_curves(frame, metric)),
            "cost": _checked_svg(plots.cost_plot(frame, metric)), "vqa": vqa_sections(store, records),
            "failed": _failed_rows(records), "skipped": skipped, "skipped_images": skipped_image_rows(records)}


def render_report(store, *, n_resamples: int = 2000, seed: int = 0, metric: str = "auroc", vqa_metrics=None,
                  margins: dict[str, float] | None = None, exposure: str | None = None
                  ) -> tuple[str, dict[str, pd.DataFrame]]:
    """(the HTML text, the RQ tables it shows) for a ``ResultStore``; ``vqa_metrics``: the per-question metrics
    of VQA datasets (default closed_accuracy, open_token_f1); ``margins`` and ``exposure`` override the study's
    verdict settings saved with the store (``medrival.stats.questions.research_questions``)."""
    from medrival.stats.questions import CachedPredictions

    store = CachedPredictions(store)
    analysis = _analyse(store, metric, n_resamples, seed, vqa_metrics, margins, exposure)
    env = Environment(autoescape=True, undefined=StrictUndefined)
    return env.from_string(_TEMPLATE).render(**_context(store, analysis)), analysis.tables


def write_report(store_dir: str | Path, out_path: str | Path | None = None, *, n_resamples: int = 2000,
                 seed: int = 0, metric: str = "auroc", vqa_metrics=None, margins: dict[str, float] | None = None,
                 exposure: str | None = None) -> Path:
    """Write the report of the store in ``store_dir`` (default ``<store_dir>/report/report.html``) and the RQ
    tables as Markdown/LaTeX/CSV next to it; returns the HTML path. ``metric`` is the one every comparison,
    CI and plot uses on classification datasets (auroc, accuracy, balanced_accuracy, macro_f1 or brier, where lower
    wins); VQA datasets use ``vqa_metrics`` (default closed_accuracy and open_token_f1, each over the questions
    it applies to)."""
    from medrival.stats.vqa_arms import check_vqa_metrics
    from medrival.stats.weighted import check_metric_name
    from medrival.store import ResultStore, require_store

    if n_resamples < 1:
        raise MedrivalError(f"--resamples must be a positive number of bootstrap resamples, got {n_resamples}; "
                            "use e.g. 2000.")
    check_metric_name(metric)
    vqa_metrics = check_vqa_metrics(vqa_metrics)
    store = ResultStore(require_store(store_dir))
    out = Path(out_path) if out_path is not None else Path(store_dir) / "report" / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    html, tables = render_report(store, n_resamples=n_resamples, seed=seed, metric=metric,
                                 vqa_metrics=vqa_metrics, margins=margins, exposure=exposure)
    out.write_text(html, encoding="utf-8")
    write_exports(tables, out.parent)
    return out
