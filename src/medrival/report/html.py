"""One self-contained HTML report of a study store: spec, provenance, RQ1-RQ3 with plots, failures.

Self-contained means no network at view time: inline CSS, figures as inline SVG, no scripts, fonts or links
to anywhere. Every string from the store (model, dataset and class names, errors) goes through Jinja2's
autoescaping; the only markup inserted unescaped is SVG, and only after ``_checked_svg`` confirmed it is the
plain matplotlib output of ``medrival.report.plots`` (whose text nodes matplotlib escapes itself).
The RQ tables are also written next to the HTML as Markdown, LaTeX and CSV (``rq1.md``, ``rq1.tex``, ...).
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from jinja2 import Environment, StrictUndefined

from medrival.core.errors import MedrivalError
from medrival.report import plots
from medrival.report.exports import RQ_HEADERS, rq_csv, rq_latex, rq_markdown, rq_rows
from medrival.report.tables import is_synthetic, one_line, SYNTHETIC_NOTE

RQ_TITLES = {
    "RQ1": ("RQ1: off-the-shelf specialist vs generalist, in the specialist's domain",
            "specialist (zero-shot)", "generalist (zero-shot)"),
    "RQ2": ("RQ2: adapted generalist vs specialist, in the specialist's domain (ID)",
            "adapted generalist", "specialist"),
    "RQ3": ("RQ3: adapted generalist vs specialist, outside the specialist's domain (OOD)",
            "adapted generalist", "specialist"),
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
<h2 id="study">Study</h2>
<table>{% for key, values in spec %}<tr><th>{{ key }}</th><td>{{ values | join(", ") }}</td></tr>{% endfor %}</table>
<h2 id="provenance">Provenance</h2>
<table>{% for key, value in provenance %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
{% for rq in rqs %}
<h2 id="{{ rq.key | lower }}">{{ rq.title }}</h2>
{% if rq.rows %}<p class="summary">{{ rq.summary }}</p>
<table><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rq.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
<div class="plot">{{ rq.svg | safe }}</div>
{% else %}<p>No comparison in this store answers {{ rq.key }}.</p>{% endif %}
{% endfor %}
<h2 id="datasets">Per-dataset results ({{ metric }})</h2>
{% if bars %}<div class="plot">{{ bars | safe }}</div>{% else %}<p>No finished cells.</p>{% endif %}
{% if arms %}<h3 id="arms">Every model+method: {{ metric }} with its 95% CI, and calibration</h3>
<p>CIs: cluster bootstrap (seeds and few-shot draws resampled first when there are several). ECE: 15 equal-width
bins (positive class for binary tasks, top label for multiclass, mean over labels for multilabel); Brier: mean
squared error of the probabilities.</p>
<table><tr><th>dataset</th><th>model+method</th><th>budget</th><th>draws</th><th>{{ metric }} [CI]</th>
<th>ECE</th><th>Brier</th><th>n (clusters)</th></tr>
{% for row in arms %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if fewshot %}<h2 id="fewshot">Few-shot curves ({{ metric }})</h2>
<div class="plot">{{ fewshot | safe }}</div>{% endif %}
<h2 id="cost">Cost vs performance</h2>
{% if cost %}<div class="plot">{{ cost | safe }}</div>{% else %}<p>No cost records.</p>{% endif %}
<h2 id="failed">Failed cells</h2>
{% if failed %}<table><tr><th>cell id</th><th>model</th><th>dataset</th><th>method</th><th>error</th></tr>
{% for f in failed %}<tr>{% for cell in f %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No failed cells.</p>{% endif %}
<h2 id="skipped">Skipped items</h2>
{% if skipped %}<table><tr><th>RQ</th><th>dataset</th><th>A</th><th>B</th><th>items left out</th></tr>
{% for s in skipped %}<tr>{% for cell in s %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No test items were left out of any comparison (both arms scored every item).</p>{% endif %}
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


def _rq_sections(tables: dict[str, pd.DataFrame]) -> tuple[list[dict], list[list[str]]]:
    """Template data for each RQ, and the rows of every comparison that left test items out."""
    from medrival.stats.verdicts import summary_line

    sections, skipped = [], []
    for key, (title, subject, obj) in RQ_TITLES.items():
        table = tables.get(key)
        if table is None or table.empty:
            sections.append({"key": key, "title": title, "rows": []})
            continue
        records = table.to_dict("records")
        sections.append({"key": key, "title": title, "rows": rq_rows(table),
                         "summary": summary_line(records, subject=subject, object=obj),
                         "svg": _checked_svg(plots.forest_plot(table))})
        skipped += [[key, str(r["dataset"]), str(r["a"]), str(r["b"]), str(r["items_left_out"])]
                    for r in records if int(r.get("items_left_out") or 0) > 0]
    return sections, skipped


def write_exports(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """``rqN.md``, ``rqN.tex`` and ``rqN.csv`` for every non-empty RQ table, in ``folder``."""
    written = []
    for key, table in tables.items():
        if table is None or table.empty:
            continue
        stem = folder / key.lower()
        caption = RQ_TITLES.get(key, (key,))[0]
        stem.with_suffix(".md").write_text(rq_markdown(table), encoding="utf-8")
        stem.with_suffix(".tex").write_text(rq_latex(table, caption, f"tab:{key.lower()}"), encoding="utf-8")
        written += [stem.with_suffix(".md"), stem.with_suffix(".tex"), rq_csv(table, stem.with_suffix(".csv"))]
    return written


def _arm_rows(arms: pd.DataFrame) -> list[list[str]]:
    def number(value) -> str:
        return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"

    return [[str(r["dataset"]), str(r["arm"]), str(r["budget"]), str(r["draws"]),
             f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]", number(r["ece"]),
             number(r["brier"]), f"{r['n_items']} ({r['n_clusters']})"] for r in arms.to_dict("records")]


def _context(store, tables: dict[str, pd.DataFrame], metric: str, arms: pd.DataFrame) -> dict:
    records = store.records()
    frame = store.results_frame()
    sections, skipped = _rq_sections(tables)
    return {"title": store.root.name, "synthetic": is_synthetic(frame), "synthetic_note": SYNTHETIC_NOTE,
            "spec": _spec_rows(records), "provenance": _provenance_rows(records), "rqs": sections,
            "headers": RQ_HEADERS, "metric": metric,
            "bars": _checked_svg(plots.dataset_bars(frame, metric, arms)), "arms": _arm_rows(arms),
            "fewshot": _checked_svg(plots.fewshot_curves(frame, metric)),
            "cost": _checked_svg(plots.cost_plot(frame, metric)),
            "failed": _failed_rows(records), "skipped": skipped}


def render_report(store, *, n_resamples: int = 2000, seed: int = 0, metric: str = "auroc"
                  ) -> tuple[str, dict[str, pd.DataFrame]]:
    """(the HTML text, the RQ tables it shows) for a ``ResultStore``."""
    from medrival.stats.questions import CachedPredictions, arm_summaries, research_questions

    store = CachedPredictions(store)
    tables = research_questions(store, metric=metric, n_resamples=n_resamples, seed=seed)
    arms = arm_summaries(store, metric=metric, n_resamples=n_resamples, seed=seed)
    env = Environment(autoescape=True, undefined=StrictUndefined)
    return env.from_string(_TEMPLATE).render(**_context(store, tables, metric, arms)), tables


def write_report(store_dir: str | Path, out_path: str | Path | None = None, *, n_resamples: int = 2000,
                 seed: int = 0) -> Path:
    """Write the report of the store in ``store_dir`` (default ``<store_dir>/report/report.html``) and the RQ
    tables as Markdown/LaTeX/CSV next to it; returns the HTML path."""
    from medrival.store import ResultStore
    from medrival.store import require_store

    if n_resamples < 1:
        raise MedrivalError(f"--resamples must be a positive number of bootstrap resamples, got {n_resamples}; "
                            "use e.g. 2000.")
    store = ResultStore(require_store(store_dir))
    out = Path(out_path) if out_path is not None else Path(store_dir) / "report" / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    html, tables = render_report(store, n_resamples=n_resamples, seed=seed)
    out.write_text(html, encoding="utf-8")
    write_exports(tables, out.parent)
    return out
