"""The self-contained HTML report, its RQ exports (Markdown, LaTeX, CSV) and ``medrival report``, on real stores."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import MedrivalError
from medrival.store import ResultStore
from medrival.store.results import CellRecord
from medrival.study.runner import run_study
from medrival.study.spec import parse_study

STUDY = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-dermoscopy]
methods: [zero_shot, linear_probe]
"""
# A second, cheap study into the same store adds K-shot budgets (linear probe on one dataset only).
FEWSHOT = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods: [linear_probe]
fewshot: {shots: [2, 8], draws: 2}
"""
EVIL = "<script>alert(1)</script>"
RESAMPLES = 200
URL = re.compile(r"https?://")
SVG_NAMESPACES = ('xmlns="http://www.w3.org/2000/svg"', 'xmlns:xlink="http://www.w3.org/1999/xlink"')


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    run_study(parse_study(STUDY), out)
    run_study(parse_study(FEWSHOT), out)
    ResultStore(out).save(CellRecord(cell_id="failedcell0001", status="failed", error="boom <b>",
                                     spec={"model": "demo-generalist-clip", "dataset": "demo-xray",
                                           "method": "lora"}))
    return out


@pytest.fixture(scope="module")
def report(study_dir):
    from medrival.report.html import write_report

    path = write_report(study_dir, n_resamples=RESAMPLES, seed=0)
    return path, path.read_text(encoding="utf-8")


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)


def _without_namespaces(html: str) -> str:
    for namespace in SVG_NAMESPACES:
        html = html.replace(namespace, "")
    return html


def test_report_has_every_section_and_a_plot_each(report, study_dir):
    path, html = report
    assert path == study_dir / "report" / "report.html" and html.startswith("<!DOCTYPE html>")
    for heading in ("RQ1:", "RQ2:", "RQ3:", "Per-dataset results", "Few-shot curves", "Cost vs performance",
                    "Failed cells", "Skipped items", "Provenance", "Subgroups (auroc)", "Operating points"):
        assert heading in html
    # Three forest plots, the paired differences by budget of RQ2 (its arms ran at 2-shot, 8-shot and full),
    # per-dataset bars, few-shot curves, cost: seven figures.
    assert len(_svgs(html)) == 7 and html.count("<svg") == 7
    assert "Paired differences by label budget" in html and "How verdicts are read" in html
    assert "demo-generalist-clip" in html and "git_commit" in html and "package numpy" in html


def test_summary_lines_match_the_rq_tables(report, study_dir):
    from medrival.stats.questions import method_summaries, research_questions

    tables = research_questions(ResultStore(study_dir), n_resamples=RESAMPLES, seed=0)
    _, html = report
    lines = [line for rq in ("RQ1", "RQ2", "RQ3") for line in method_summaries(rq, tables[rq])]
    # RQ1; RQ2: linear_probe at each of its three budgets (2-shot, 8-shot, full) vs the off-the-shelf and the
    # adapted specialist; RQ3: linear_probe (full only) vs both.
    assert len(lines) == 1 + 3 * 2 + 2
    for line in lines:
        assert f'<p class="summary">{line}</p>' in html
    for rq in ("RQ1", "RQ2", "RQ3"):
        assert len(tables[rq]) > 0
    assert "(2-shot)" in html and "(8-shot)" in html  # the few-shot arms reach RQ2


def test_every_arm_has_its_ci_and_calibration_in_the_page(report, study_dir):
    from medrival.stats.questions import arm_summaries

    _, html = report
    arms = arm_summaries(ResultStore(study_dir), n_resamples=RESAMPLES, seed=0)
    assert "ECE" in html and "Brier" in html
    for row in arms.to_dict("records"):
        assert f"{row['estimate']:.3f} [{row['low']:.3f}, {row['high']:.3f}]" in html


def test_report_fetches_nothing_from_the_network(report):
    _, html = report
    assert not URL.search(_without_namespaces(html)), "only the SVG xmlns attributes may name a URL"
    # matplotlib's SVG reuses its own markers with xlink:href="#id": only such in-page references are allowed.
    assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!#)", html) and "<script" not in html.lower()
    assert "<link" not in html and "@import" not in html and not re.search(r"url\((?!#)", html)


def test_failed_cells_are_listed_with_their_error_escaped(report):
    _, html = report
    failed = html[html.index('id="failed"'):html.index('id="skipped"')]
    assert "failedcell0001" in failed and "lora" in failed and "boom &lt;b&gt;" in failed
    assert "Every image of every finished cell was read." in html
    assert "boom <b>" not in html


def test_rq_exports_sit_next_to_the_html(report):
    path, _ = report
    for rq in ("rq1", "rq2", "rq3"):
        table = pd.read_csv(path.parent / f"{rq}.csv")
        markdown = (path.parent / f"{rq}.md").read_text().splitlines()
        assert markdown[0].startswith("| dataset | A | B |") and len(markdown) == 2 + len(table)
        latex = (path.parent / f"{rq}.tex").read_text()
        assert latex.count(r" \\") == 1 + len(table) and r"\bottomrule" in latex


def _table(**overrides) -> pd.DataFrame:
    row = {"dataset": "ds_1", "modality": "xray", "domain": "ID", "a": "gen+lora", "b": "spec+zero_shot",
           "versus": "off-the-shelf specialist", "budget": "full", "metric": "auroc", "estimate_a": 0.91234,
           "estimate_b": 0.8, "n_items": 100, "n_clusters": 80, "draws_a": 1, "draws_b": 1, "items_left_out": 0,
           "test": "paired-bootstrap", "difference": 0.11234, "low": 0.05, "high": 0.17, "p_value": 0.0004,
           "p_holm": 0.0008, "p_bh": 0.0008, "p_corrected": 0.0008, "correction": "holm", "verdict": "superior",
           "verdict_corrected": "superior"}
    return pd.DataFrame([{**row, **overrides}, {**row, "dataset": "second", "p_value": 0.25, "p_corrected": 0.5}])


def test_markdown_has_a_header_and_one_row_per_comparison():
    from medrival.report.exports import rq_markdown

    lines = rq_markdown(_table(a="a|b")).splitlines()
    assert len(lines) == 4 and "| A - B | CI |" in lines[0]
    assert "0.912" in lines[2] and "+0.112" in lines[2] and "[0.050, 0.170]" in lines[2]
    assert "<0.001" in lines[2] and "0.250" in lines[3] and r"a\|b" in lines[2]


def test_latex_uses_booktabs_and_escapes_specials():
    from medrival.report.exports import latex_escape, rq_latex

    latex = rq_latex(_table(dataset="50% of ds_1 & {x} #2 $y$ ~^\\"), caption="RQ_2 at 100%", label="tab:rq2")
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert r"50\% of ds\_1 \& \{x\} \#2 \$y\$ \textasciitilde{}\textasciicircum{}\textbackslash{}" in latex
    assert r"\caption{RQ\_2 at 100\%}" in latex and r"\label{tab:rq2}" in latex
    assert latex_escape("a_b%") == r"a\_b\%"


def test_csv_round_trips_with_pandas(tmp_path):
    from medrival.report.exports import rq_csv

    table = _table()
    back = pd.read_csv(rq_csv(table, tmp_path / "rq.csv"))
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_exports_name_missing_columns():
    from medrival.core.errors import DataError
    from medrival.report.exports import rq_markdown

    with pytest.raises(DataError, match="lacks columns.*difference"):
        rq_markdown(pd.DataFrame({"dataset": ["x"]}))


def _evil_store(root) -> ResultStore:
    """Cells whose model, dataset and class names carry a script tag, with predictions so RQ1-RQ3 see them."""
    store = ResultStore(root)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    base = {"dataset": f"ds{EVIL}", "modality": "xray", "domain": "ID", "task": "binary", "budget": "full",
            "draw": 0, "seed": 0}
    arms = [(f"spec{EVIL}", "specialist", "zero_shot", f"gen{EVIL}", 0),
            (f"gen{EVIL}", "generalist", "zero_shot", None, 0), (f"gen{EVIL}", "generalist", "linear_probe", None, 65)]
    for i, (model, role, method, pair, params) in enumerate(arms):
        p = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 60), 0, 1)
        ids = [f"s{j}" for j in range(60)]
        predictions = pd.DataFrame({"sample_id": ids, "cluster_id": ids, f"sg_site{EVIL}": [f"h{EVIL}", "b"] * 30,
                                    "label": labels, "prediction": (p > 0.5).astype(int),
                                    f"prob_no{EVIL}": 1 - p, f"prob_yes{EVIL}": p})
        skipped = {"test": {"missing": 2, f"unreadable{EVIL}": 1}} if i == 0 else {}
        store.save(CellRecord(cell_id=f"evil{i}", status="done", metrics={"auroc": 0.7 + 0.1 * i},
                              spec={**base, "model": model, "role": role, "method": method, "pair": pair},
                              cost={"trainable_params": params, "wall_s": 1.0, "skipped_images": skipped}),
                   predictions)
    store.save(CellRecord(cell_id="evil-failed", status="failed", error=EVIL,
                          spec={**base, "model": f"gen{EVIL}", "method": f"m{EVIL}"}))
    answers = pd.DataFrame({"sample_id": ["q0", "q1"], "cluster_id": ["i0", "i0"], "answer_type": ["open", "closed"],
                            "form": ["open", f"choice{EVIL}"], "scored_as": ["open", "choice"],
                            "question": [f"where{EVIL}?", "is it?"], "answer": [f"left{EVIL}", "yes"],
                            "response": [f"right{EVIL}", "no"], "extracted": [None, f"no{EVIL}"],
                            "open_exact_match": [0.0, np.nan], "open_token_f1": [0.0, np.nan],
                            "closed_accuracy": [np.nan, 0.0]})
    store.save(CellRecord(cell_id="evil-vqa", status="done", metrics={"open_exact_match": 0.0, "open_token_f1": 0.0},
                          spec={**base, "task": "vqa", "dataset": f"vqa{EVIL}", "model": f"gen{EVIL}",
                                "method": "zero_shot"}), answers)
    return store


def test_names_from_the_store_are_escaped_in_html_and_svg(tmp_path):
    from medrival.report.html import write_report

    _evil_store(tmp_path)
    html = write_report(tmp_path, n_resamples=50).read_text(encoding="utf-8")
    assert "&lt;script&gt;" in html and "<script" not in html.lower() and "alert(1)</script>" not in html
    svgs = _svgs(html)
    assert len(svgs) >= 3  # an RQ1 forest plot, bars and cost at least
    for svg in svgs:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "<script" not in svg
    vqa = html[html.index('id="vqa"'):html.index('id="failed"')]
    # The class names, the subgroup attribute and value, and the VQA question, reference and answer, all escaped.
    for text in ("where&lt;script&gt;", "left&lt;script&gt;", "right&lt;script&gt;", "choice&lt;script&gt;",
                 "no&lt;script&gt;"):
        assert text in vqa
    left_out = html[html.index('id="skipped-images"'):]
    assert "evil0" in left_out and "test: 2 missing, 1 unreadable&lt;script&gt;" in left_out
    points = html[html.index('id="operating"'):]
    assert "no validation predictions stored" in points  # a store written without them says so per row
    subgroups = html[html.index('id="subgroups"'):]
    assert "site&lt;script&gt;" in subgroups and "h&lt;script&gt;alert(1)&lt;/script&gt;" in subgroups


def test_dollar_signs_in_names_are_not_mathtext():
    from medrival.report.plots import dataset_bars

    frame = pd.DataFrame({"model": ["m$x$"], "method": ["a$^$b"], "dataset": ["d$1"], "status": ["done"],
                          "budget": ["full"], "auroc": [0.8]})
    svg = dataset_bars(frame)
    assert "m$x$+a$^$b" in svg and "d$1" in svg


def test_plots_of_a_frame_without_few_shot_budgets_or_cells():
    from medrival.report.plots import cost_plot, dataset_bars, fewshot_curves

    frame = pd.DataFrame({"model": ["m"], "method": ["zero_shot"], "dataset": ["d"], "status": ["done"],
                          "budget": ["full"], "auroc": [0.8], "trainable_params": [0]})
    assert fewshot_curves(frame, "auroc") == "" and dataset_bars(frame.iloc[:0]) == ""
    assert "drawn at 1" in cost_plot(frame, "auroc")


def test_a_folder_without_a_store_is_refused(tmp_path):
    from medrival.report.html import write_report

    with pytest.raises(MedrivalError, match="No medrival store"):
        write_report(tmp_path)


def test_cli_report_writes_the_file(study_dir, tmp_path):
    from test_cli import medrival_cli

    out = tmp_path / "mine.html"
    result = medrival_cli("report", str(study_dir), "--out", str(out), "--resamples", "50", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(out) in result.stdout and out.is_file() and (tmp_path / "rq2.tex").is_file()
    help_text = medrival_cli("report", "--help")
    assert "Example: medrival report results/" in " ".join(help_text.stdout.replace("│", " ").split())


def test_cli_report_on_a_folder_without_a_store_exits_2(tmp_path):
    from test_cli import medrival_cli

    result = medrival_cli("report", str(tmp_path))
    assert result.returncode == 2 and "No medrival store" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_report_metric_option_and_subgroup_section(study_dir, tmp_path):
    from medrival.report.html import write_report
    from medrival.stats.questions import research_questions
    from medrival.stats.weighted import UnknownMetricError

    html = write_report(study_dir, tmp_path / "ba.html", n_resamples=50, metric="balanced_accuracy").read_text()
    assert "Per-dataset results (balanced_accuracy)" in html and "Subgroups (balanced_accuracy)" in html
    rq2 = pd.read_csv(tmp_path / "rq2.csv")
    assert set(rq2["metric"]) == {"balanced_accuracy"}
    expected = research_questions(ResultStore(study_dir), metric="balanced_accuracy", n_resamples=50, seed=0)["RQ2"]
    np.testing.assert_allclose(rq2["difference"], expected["difference"])
    # The demo datasets carry synthetic sex and age: a gap row per arm and attribute, the bands in the details.
    subgroups = html[html.index('id="subgroups"'):html.index('id="fewshot"')]
    assert "worst group" in subgroups and "60-79" in subgroups and "female" in subgroups
    assert "assigns sex and age at random" in subgroups
    from medrival.stats.study_operating_points import study_operating_points

    points = study_operating_points(ResultStore(study_dir), n_resamples=50).iloc[0]
    assert f"{points['sensitivity']:.3f} [{points['sensitivity_low']:.3f}, " in html
    with pytest.raises(UnknownMetricError, match="balanced_accuracy"):
        write_report(study_dir, tmp_path / "x.html", metric="balanced_acc")
