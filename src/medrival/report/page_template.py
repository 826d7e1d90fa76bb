"""The report page's Jinja2 template (autoescaped: every string from the store is escaped; figures are inserted
with ``| safe`` only after ``medrival.report.svg_safety.safe_svg`` re-serialised them from a checked tree).

Order: the answer (a paragraph per RQ, then its verdict matrix and summary lines), metric heatmaps, then the
details, each a collapsible ``<details open>`` section, and the study spec and provenance last.
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}: medrival report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; padding: 0 1em; color: #222;
  line-height: 1.4; }
h1 { margin: 0 0 0.2em; } h1 small { font-weight: normal; color: #666; font-size: 0.5em; }
nav.toc ol { display: flex; flex-wrap: wrap; gap: 0.2em 1.2em; padding: 0; margin: 0.5em 0 1em;
  list-style: none; font-size: 0.9em; }
section.answer { border: 2px solid #1f4e79; border-radius: 6px; padding: 0.3em 1em 0.6em; margin-bottom: 1em; }
.verdict { font-size: 1.02em; margin: 0.3em 0 0.6em; } .verdict b { color: #1f4e79; }
ul.summaries { font-size: 0.82em; color: #333; margin: 0.2em 0 0.8em; padding-left: 1.2em; }
details.section { border-top: 1px solid #ccc; margin: 0.6em 0; }
details.section > summary { cursor: pointer; } details.section > summary > h2 { display: inline; font-size: 1.3em; }
table { border-collapse: collapse; margin: 0.3em 0 1em; font-size: 0.82em; }
th, td { border: 1px solid #ccc; padding: 0.15em 0.45em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } table.sortable th { cursor: pointer; white-space: nowrap; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { overflow-x: auto; } input.filter { font-size: 0.85em; width: 16em; margin-top: 0.3em; }
td.error { white-space: pre-wrap; font-family: monospace; font-size: 0.95em; max-width: 60em; }
.note { color: #a33; } figure.plot { margin: 0.5em 0; } figcaption { font-size: 0.75em; color: #777; }
svg { max-width: 100%; height: auto; }
div.figures { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
</style></head><body>
{%- macro figure(f) -%}
{%- if f -%}{%- if f.svg -%}<figure class="plot" id="figure-{{ f.name }}">{{ f.svg | safe }}
<figcaption>figures/{{ f.name }}.svg</figcaption></figure>{%- else -%}<p class="note">{{ f.note }}</p>
{%- endif -%}{%- endif -%}
{%- endmacro -%}
{%- macro table(id, headers, rows) -%}
<input class="filter" type="search" id="{{ id }}-filter" placeholder="filter rows" aria-label="filter the rows">
<div class="scroll"><table class="sortable" id="{{ id }}"><thead><tr>{% for h in headers %}<th>{{ h }}</th>
{%- endfor %}</tr></thead><tbody>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{%- endmacro -%}
<h1>{{ title }} <small>medrival report</small></h1>
{% if synthetic %}<p class="note">{{ synthetic_note }}</p>{% endif %}
{% if outdated_note %}<p class="note" id="outdated">{{ outdated_note }}</p>{% endif %}
<nav class="toc" aria-label="contents"><ol>{% for id, name in toc %}<li><a href="#{{ id }}">{{ name }}</a></li>
{% endfor %}</ol></nav>
<section class="answer" id="answer"><h2>The answer</h2>
{% for rq in rqs %}<p class="verdict" id="answer-{{ rq.key | lower }}"><b>{{ rq.key }}</b> ({{ rq.short }}):
{{ rq.paragraph }}</p>
{% endfor %}</section>
{% for rq in rqs %}{% if rq.matrix or rq.summaries %}<h3 id="matrix-{{ rq.key | lower }}">{{ rq.title }}</h3>
{{ figure(rq.matrix) }}
{% if rq.summaries %}<ul class="summaries">{% for line in rq.summaries %}<li class="summary">{{ line }}</li>
{% endfor %}</ul>{% endif %}{% endif %}{% endfor %}
{% if heatmaps %}<details class="section" open id="heatmaps"><summary><h2>{{ metric }} per model and dataset
</h2></summary><p>Each cell: the arm's estimate at its richest label budget; model names coloured by role.</p>
<div class="figures">{% for f in heatmaps %}{{ figure(f) }}{% endfor %}</div></details>{% endif %}
<details class="section" open id="verdicts"><summary><h2>How verdicts are read</h2></summary>
<p>{{ verdict_rules }}</p></details>
{% for rq in rqs %}<details class="section" open id="{{ rq.key | lower }}"><summary><h2>{{ rq.title }}</h2></summary>
{% if rq.rows %}<p>Arms by alias (the legend beside the table); A - B with its CI, the p-value and verdict
corrected across the RQ. Click a header to sort; type to filter.</p>
<div class="figures"><div>{{ table(rq.key | lower ~ "-table", rq.compact_headers, rq.compact_rows) }}</div>
<table class="legend"><tr><th>alias</th><th>arm (model+method, budget)</th></tr>
{% for alias, full in rq.legend %}<tr><td>{{ alias }}</td><td>{{ full }}</td></tr>{% endfor %}</table></div>
{% if rq.other_summaries %}<p>{{ rq.other_title }}:</p><ul class="summaries">{% for line in rq.other_summaries %}
<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% if rq.pooled %}<h3>Across datasets (random-effects pooled A - B)</h3>
{{ table(rq.key | lower ~ "-pooled", pooled_headers, rq.pooled) }}{% endif %}
{{ figure(rq.forest) }}
{% if rq.budgets %}<h3>Paired differences by label budget</h3>{{ figure(rq.budgets) }}{% endif %}
<details><summary>Every column (as in {{ rq.key | lower }}.md, .tex and .csv)</summary>
{{ table(rq.key | lower ~ "-full", headers, rq.rows) }}</details>
{% else %}<p>No comparison in this store answers {{ rq.key }}{% if rq.other_summaries %} under this setting.
{{ rq.other_title }}:</p><ul>{% for line in rq.other_summaries %}<li>{{ line }}</li>{% endfor %}</ul>{% else %}.</p>
{% endif %}{% endif %}</details>
{% endfor %}
<details class="section" open id="datasets"><summary><h2>Per-dataset results ({{ metric }})</h2></summary>
{% if has_vqa %}<p>VQA datasets are not scored with {{ metric }}: they show {{ vqa_metrics | join(", ") }}, each
the mean of a per-question score over the questions it applies to (closed_accuracy and undecided_rate: questions
scored as closed -- yes/no, choice, multiple choice -- by the answer extracted from the response; the open_ metrics
such as open_token_f1: questions scored as open, including closed ones whose reference is not among their
options), named in brackets after the dataset; the RQ tables, <code>medrival compare</code> and
<code>load_results</code> use the same names and means, with clusters = images.</p>{% endif %}
{% if bars %}{{ figure(bars) }}{% else %}<p>No finished cells.</p>{% endif %}
{% if arms %}<h3 id="arms">Every model+method: {{ metric }} with its 95% CI, and calibration</h3>
<p>CIs: cluster bootstrap (seeds and few-shot draws resampled first when there are several). ECE: expected
calibration error, 15 equal-width bins (positive class for binary tasks, top label for multiclass, mean over labels
for multilabel). {{ brier_text }}{% if has_vqa %} Both are n/a for VQA answers, which carry no class
probabilities.{% endif %}</p>
{{ table("arms-table", arm_headers, arms) }}{% endif %}</details>
{% if reliability %}<details class="section" open id="reliability"><summary><h2>Reliability diagrams</h2></summary>
<p>Predicted probability against the observed frequency per bin; the diagonal is perfect calibration.</p>
{{ figure(reliability) }}</details>{% endif %}
<details class="section" open id="subgroups"><summary><h2>Subgroups ({{ metric }})</h2></summary>
{% if gaps %}<p>Per-subgroup {{ metric }} with cluster-bootstrap CIs ({{ subgroup_resamples }} resamples, first draw of
each arm; ages in bands). Groups under {{ min_group }} items are shown but left out of the worst-group gap.
{% if synthetic %}The demo world assigns sex and age at random, so its gaps are chance.{% endif %}</p>
{{ table("gaps-table", gap_headers, gaps) }}
<details><summary>Every subgroup</summary>{{ table("subgroups-table", subgroup_headers, subgroups) }}</details>
{% else %}<p>No dataset in this study records subgroup attributes (sex, age, race, ...).</p>{% endif %}</details>
<details class="section" open id="operating"><summary><h2>Operating points (binary tasks)</h2></summary>
{% if points %}<p>Each threshold (a predicted probability of the positive class) maximises Youden's J (sensitivity +
specificity - 1) on the cell's validation predictions and is then applied to test unchanged; sensitivity and
specificity carry cluster-bootstrap CIs ({{ subgroup_resamples }} resamples, within each class).</p>
{{ table("operating-table", point_headers, points) }}
{% else %}<p>No binary task in this study.</p>{% endif %}</details>
{% if sensitivity %}<details class="section" open id="prompts"><summary><h2>Prompt sensitivity</h2></summary>
<p>Test metric of each off-the-shelf arm over its template sets (<code>prompt_sensitivity: K</code>): a spread this
wide can decide a verdict by wording alone. The set an arm used was chosen on validation
(<code>prompt_selection: validation</code>) or fixed; the spread is reported, never used to choose.</p>
{{ table("prompts-table", sensitivity_headers, sensitivity) }}</details>{% endif %}
{% if fewshot %}<details class="section" open id="fewshot"><summary><h2>Few-shot curves ({{ metric }})</h2></summary>
{{ figure(fewshot) }}</details>{% endif %}
<details class="section" open id="cost"><summary><h2>Cost vs performance</h2></summary>
{% if cost %}{{ figure(cost) }}{% else %}<p>No cost records.</p>{% endif %}</details>
{% if vqa %}<details class="section" open id="vqa"><summary><h2>VQA answers</h2></summary>
{% for cell in vqa %}<h3>{{ cell.dataset }}: {{ cell.arm }} ({{ cell.counts }})</h3>
{% if cell.rows %}{{ table("vqa-" ~ loop.index, vqa_headers, cell.rows) }}
{% else %}<p>Every answer was right.</p>{% endif %}{% endfor %}</details>{% endif %}
<details class="section" open id="failed"><summary><h2>Failed cells</h2></summary>
{% if failed %}<div class="scroll"><table><thead><tr><th>cell id</th><th>model</th><th>dataset</th><th>method</th>
<th>error</th></tr></thead><tbody>
{% for f in failed %}<tr>{% for cell in f[:-1] %}<td>{{ cell }}</td>{% endfor %}<td class="error">{{ f[-1] }}</td></tr>
{% endfor %}</tbody></table></div>
{% else %}<p>No failed cells.</p>{% endif %}</details>
<details class="section" open id="skipped"><summary><h2>Skipped items</h2></summary>
{% if skipped %}{{ table("skipped-table", skipped_headers, skipped) }}
{% else %}<p>No test items were left out of any comparison (both arms scored every item).</p>{% endif %}
<h3 id="skipped-images">Images left out of cells</h3>
{% if skipped_images %}<p>Missing or unreadable image files are skipped and counted (use
<code>strict_images: true</code> to fail instead); the metrics of these cells are over the images that could be read.</p>
{{ table("skipped-images-table", skipped_image_headers, skipped_images) }}
{% else %}<p>Every image of every finished cell was read.</p>{% endif %}</details>
<details class="section" open id="study"><summary><h2>Study</h2></summary>
<table>{% for key, values in spec %}<tr><th>{{ key }}</th><td>{{ values | join(", ") }}</td></tr>{% endfor %}</table>
</details>
<details class="section" open id="provenance"><summary><h2>Provenance</h2></summary>
<table>{% for key, value in provenance %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
</details>
<script>{{ script | safe }}</script>
</body></html>
"""
