"""Issue 14: a study's verdict exists for every label budget, sweeps are separate arms, verdicts have margins,
and exposed or unequally adapted comparisons are marked (run on the seeded demo world)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medrival.store import ResultStore
from medrival.study.runner import plan_cells, run_study
from medrival.study.spec import parse_study

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example_study() -> dict:
    """The README's first example study, as written (its first ```yaml block with a fewshot section)."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    study = next(yaml.safe_load(block) for block in blocks if "fewshot:" in block)
    assert study["fewshot"] and study["models"], "the README's example study lost its fewshot section"
    return study


def offline_version(study: dict) -> dict:
    """The README example with the demo pair for its two real models and a budget this machine runs in seconds;
    its structure (the demo datasets, zero-shot + trained methods, shots and fractions incl. 1.0, draws) is kept;
    the README's own data (HAM10000, a custom manifest) is not on this machine."""
    methods = [m for m in study["methods"] if (m if isinstance(m, str) else m["name"]) in ("zero_shot", "knn",
                                                                                            "linear_probe")]
    return {"name": "readme-offline", "models": ["demo-generalist-clip", "demo-specialist-clip"],
            "datasets": [d for d in study["datasets"] if d.startswith("demo-")], "methods": methods, "seeds": [0],
            "fewshot": {"shots": [4], "fractions": [1.0], "draws": 2}}


@pytest.fixture(scope="module")
def readme_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("readme")
    spec = parse_study(yaml.safe_dump(offline_version(readme_example_study())))
    run_study(spec, out)
    return ResultStore(out)


@pytest.fixture(scope="module")
def readme_tables(readme_store):
    from medrival.stats.questions import research_questions

    return research_questions(readme_store, n_resamples=300, seed=0)


def test_finding1_off_the_shelf_runs_once_and_is_the_baseline_of_every_budget(readme_store):
    zero_shot = [r.spec for r in readme_store.records() if r.spec["method"] == "zero_shot"]
    # One zero-shot cell per (model, dataset): never re-run per budget and relabelled "4-shot".
    assert len(zero_shot) == 2 * 2 and {spec["budget"] for spec in zero_shot} == {"full"}
    assert all(spec["capabilities"]["off_the_shelf"] for spec in zero_shot)
    trained = {r.spec["budget"] for r in readme_store.records() if r.spec["method"] == "linear_probe"}
    assert trained == {"4-shot", "100%"}


def test_finding1_the_readme_example_gets_an_answer_at_every_budget(readme_tables):
    from medrival.stats.questions import method_summaries

    assert set(readme_tables) == {"RQ1", "RQ2", "RQ3"}
    for rq in ("RQ2", "RQ3"):
        table = readme_tables[rq]
        for versus in ("off-the-shelf specialist", "adapted specialist"):
            rows = table[(table["versus"] == versus) & (table["method"] == "linear_probe")]
            assert set(rows["budget"]) == {"4-shot", "100%"}, (rq, versus)
        baseline = table[table["versus"] == "off-the-shelf specialist"]
        assert set(baseline["b"]) == {"demo-specialist-clip+zero_shot"}  # the full-budget zero-shot arm
        lines = method_summaries(rq, table)
        assert any(" at 4-shot " in line for line in lines) and any(" at 100% " in line for line in lines)
    # The adapted arms at a budget are hierarchical over their two draws.
    four = readme_tables["RQ2"][readme_tables["RQ2"]["budget"] == "4-shot"]
    assert set(four["draws_a"]) == {2}


SWEEP = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods:
  - zero_shot
  - linear_probe
  - name: linear_probe
    config: {Cs: [0.000001]}
"""


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    run_study(parse_study(SWEEP), out)
    return ResultStore(out)


def test_finding5_two_configs_of_one_method_are_two_arms(sweep_store):
    from medrival.stats.questions import arm_summaries, research_questions

    frame = sweep_store.results_frame()
    probes = frame[frame["method"] == "linear_probe"]
    assert set(probes["method_label"]) == {"linear_probe", "linear_probe(Cs=[1e-06])"}
    assert probes["config"].nunique() == 2
    arms = arm_summaries(sweep_store, n_resamples=200)
    generalist = arms[(arms["model"] == "demo-generalist-clip") & (arms["method"] == "linear_probe")]
    assert len(generalist) == 2 and set(generalist["draws"]) == {1}  # never pooled into one arm of 2 draws
    stored = probes[probes["model"] == "demo-generalist-clip"].set_index("method_label")["auroc"]
    for name in ("linear_probe", "linear_probe(Cs=[1e-06])"):  # each arm is its own cell's number, not a blend
        assert generalist.set_index("method_label").loc[name, "estimate"] == pytest.approx(stored[name], abs=1e-9)
    assert stored.nunique() == 2
    rq2 = research_questions(sweep_store, n_resamples=200)["RQ2"]
    adapted = rq2[rq2["versus"] == "adapted specialist"]
    # Each config meets the specialist adapted with the *same* config.
    assert sorted(zip(adapted["a"], adapted["b"])) == [
        ("demo-generalist-clip+linear_probe", "demo-specialist-clip+linear_probe"),
        ("demo-generalist-clip+linear_probe(Cs=[1e-06])", "demo-specialist-clip+linear_probe(Cs=[1e-06])")]


def test_finding5_labels_name_arms_and_must_be_unique():
    from medrival.core.errors import ConfigError

    spec = parse_study(SWEEP.replace("  - linear_probe\n", "  - {name: linear_probe, label: probe-default}\n"))
    labels = {c.label for c in plan_cells(spec) if c.method == "linear_probe"}
    # The labelled entry keeps its label; the other entry of the sweep is named by its non-default options.
    assert labels == {"probe-default", "linear_probe(Cs=[1e-06])"}
    once = parse_study(SWEEP.replace("  - linear_probe\n", ""))
    assert {c.label for c in plan_cells(once)} == {None}  # a method listed once is named by its method
    with pytest.raises(ConfigError, match="the label 'x' is given to two methods"):
        parse_study(SWEEP.replace("  - linear_probe\n", "  - {name: linear_probe, label: x}\n")
                    .replace("config: {Cs: [0.000001]}", "config: {Cs: [0.000001]}\n    label: x"))


def test_finding3_study_margins_reach_the_verdicts(sweep_store, tmp_path):
    from medrival.stats.questions import research_questions

    default = research_questions(sweep_store, n_resamples=200)["RQ2"]
    assert set(default["margin"]) == {0.02}
    wide = research_questions(sweep_store, n_resamples=200, margins={"auroc": 0.5})["RQ2"]
    assert set(wide["margin"]) == {0.5}
    # With a margin of 0.5 nothing here is worse by more than the margin: no row stays inferior.
    assert "inferior" not in set(wide["verdict"])
    with pytest.raises(Exception, match="did you mean 'auroc'"):
        parse_study(SWEEP + "verdicts: {margin: {aroc: 0.02}}\n")


EXPOSED = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-dermoscopy]
methods: [zero_shot, linear_probe]
exposure: mark
"""


@pytest.fixture(scope="module")
def exposed_store(tmp_path_factory):
    """A store where the demo specialist's card says it was trained on demo-xray's images (the demo cards document
    no exposure, so the study's exposure lookup is replaced for this one study)."""
    import medrival.study.cell as cell_module

    out = tmp_path_factory.mktemp("exposed")
    real = cell_module.exposure_of
    reason = "trained on demo-xray images (source: test fixture)"
    cell_module.exposure_of = lambda card, dataset: (reason,) if (card.id, dataset) == (
        "demo-specialist-clip", "demo-xray") else real(card, dataset)
    try:
        run_study(parse_study(EXPOSED), out)
    finally:
        cell_module.exposure_of = real
    return ResultStore(out)


def test_finding6_exposed_comparisons_are_marked_and_can_be_left_out(exposed_store):
    from medrival.stats.questions import research_questions, without_exposed

    marked = research_questions(exposed_store, n_resamples=200)
    rows = pd.concat(marked.values())
    on_xray = rows[rows["dataset"] == "demo-xray"]
    assert len(on_xray) > 0 and on_xray["exposed"].all()
    assert all("demo-specialist-clip: trained on demo-xray images" in text for text in on_xray["exposure"])
    assert not rows[rows["dataset"] == "demo-dermoscopy"]["exposed"].any()
    excluded = research_questions(exposed_store, n_resamples=200, exposure="exclude")
    assert "RQ1" not in excluded  # its only row was on the exposed dataset
    assert set(pd.concat(excluded.values())["dataset"]) == {"demo-dermoscopy"}
    # The cheap "exclude" reading of the marked tables gives the same rows and verdicts as running it.
    again = without_exposed(marked)
    for rq, table in excluded.items():
        assert list(again[rq]["verdict_corrected"]) == list(table["verdict_corrected"])
        assert np.allclose(again[rq]["p_corrected"], table["p_corrected"])
    with pytest.raises(Exception, match="Did you mean 'exclude'"):
        research_questions(exposed_store, n_resamples=50, exposure="exclud")


def test_finding6_the_report_flags_exposure_and_shows_both_readings(exposed_store, tmp_path):
    from medrival.report.html import write_report

    html = write_report(exposed_store.root, tmp_path / "r.html", n_resamples=200).read_text()
    assert "exposed (demo-specialist-clip: trained on demo-xray images" in html
    assert "Leaving out the comparisons on data a model was trained on" in html
    excluded = write_report(exposed_store.root, tmp_path / "x.html", n_resamples=200, exposure="exclude").read_text()
    assert "and left out of the verdicts" in excluded and "Keeping the comparisons" in excluded


def test_finding4_rows_flag_trainable_parameters_more_than_ten_percent_apart():
    from medrival.report.exports import row_flags
    from medrival.stats.questions import capacity_mismatch

    # The numbers: clip-vit-b32 1,179,648 LoRA parameters against PLIP's 294,912 before the fix.
    assert capacity_mismatch(1_179_648, 294_912) and capacity_mismatch(100, 112)
    assert not capacity_mismatch(100, 110) and not capacity_mismatch(1_327_104, 1_327_104)
    assert not capacity_mismatch(0, 5000) and not capacity_mismatch(None, 10)  # off-the-shelf arms train nothing
    row = {"exposed": False, "capacity_mismatch": True, "trainable_a": 1_179_648, "trainable_b": 294_912}
    assert row_flags(row) == "trainable 1.18M vs 295k"


def test_finding4_lora_rows_compare_lora_parameters_not_heads(tmp_path):
    from medrival.stats.questions import _Cells, Arm

    arm = Arm("m", "lora")
    cells = _Cells({("d", arm): ["c"]}, {"c": {}}, costs={"c": {"lora_parameters": 32256, "trainable_params": 32451}})
    assert cells.trainable("d", arm) == 32256


def test_finding3_report_margins_from_the_command_line(sweep_store):
    from test_cli import medrival_cli

    result = medrival_cli("report", str(sweep_store.root), "--resamples", "100", "--margin", "auroc=0.1")
    assert result.returncode == 0, result.stderr
    page = (sweep_store.root / "report" / "report.html").read_text()
    assert "Margins here: auroc 0.1." in page
    bad = medrival_cli("report", str(sweep_store.root), "--margin", "aroc=0.1")
    assert bad.returncode == 2 and "Did you mean 'auroc'" in bad.stderr
    malformed = medrival_cli("report", str(sweep_store.root), "--margin", "auroc")
    assert malformed.returncode == 2 and "is not METRIC=VALUE" in malformed.stderr


def test_every_readme_study_example_is_a_valid_study_file():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    studies = [block for block in blocks if "models:" in block and "methods:" in block]
    assert len(studies) >= 2
    for block in studies:
        parse_study(block)  # raises ConfigError naming the field and line when an example goes stale
