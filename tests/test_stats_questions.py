"""RQ1-RQ3 tables and `medrival compare` from a small real study store (demo models, two datasets)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import ConfigError, UnknownNameError
from medrival.stats.verdicts import VERDICTS
from medrival.store import ResultStore
from medrival.study.runner import run_study
from medrival.study.spec import parse_study

STUDY = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-dermoscopy]
methods: [zero_shot, linear_probe]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("rq")
    run_study(parse_study(STUDY), out)
    return ResultStore(out)


@pytest.fixture(scope="module")
def tables(store):
    from medrival.stats.questions import research_questions

    return research_questions(store, n_resamples=500, seed=0)


def test_rq_tables_follow_the_specialists_domain(tables):
    assert set(tables) == {"RQ1", "RQ2", "RQ3"}
    rq1 = tables["RQ1"]
    # The demo specialist's pretraining covers xray (ID) but not dermoscopy (OOD).
    assert list(rq1["dataset"]) == ["demo-xray"]
    assert rq1.loc[0, "a"] == "demo-specialist-clip+zero_shot" and rq1.loc[0, "b"] == "demo-generalist-clip+zero_shot"
    rq2, rq3 = tables["RQ2"], tables["RQ3"]
    assert set(rq2["dataset"]) == {"demo-xray"} and set(rq3["dataset"]) == {"demo-dermoscopy"}
    assert set(rq2["versus"]) == {"off-the-shelf specialist", "adapted specialist"}
    assert set(rq2["a"]) == {"demo-generalist-clip+linear_probe"}


def test_rq_rows_agree_with_the_stored_metrics(tables, store):
    frame = store.results_frame().set_index(["model", "dataset", "method"])
    for rq, table in tables.items():
        for row in table.to_dict("records"):
            model_a, method_a = row["a"].split("+")
            model_b, method_b = row["b"].split("+")
            auroc_a = frame.loc[(model_a, row["dataset"], method_a), "auroc"]
            auroc_b = frame.loc[(model_b, row["dataset"], method_b), "auroc"]
            assert row["estimate_a"] == pytest.approx(auroc_a, abs=1e-9)
            assert row["difference"] == pytest.approx(auroc_a - auroc_b, abs=1e-9)
            assert row["low"] <= row["difference"] <= row["high"]
            assert 0 <= row["p_value"] <= 1 and row["p_holm"] >= row["p_value"] - 1e-12
            assert row["verdict"] in VERDICTS and row["n_items"] == 600
            assert row["margin"] == 0.02 and row["method_label"] == row["method"]


def test_adapted_generalist_wins_against_zero_shot_specialist(tables):
    # Measured on the demo: linear probe generalist ~0.97 vs zero-shot specialist 0.67 on demo-xray.
    row = tables["RQ2"].set_index("versus").loc["off-the-shelf specialist"]
    assert row["difference"] > 0.1 and row["verdict"] == "superior" and row["verdict_corrected"] == "superior"


def test_one_summary_line_per_method_and_opponent(tables):
    from medrival.stats.questions import method_summaries

    rq2 = tables["RQ2"]
    lines = method_summaries("RQ2", rq2)
    assert len(lines) == 2  # linear_probe vs the adapted and vs the off-the-shelf specialist
    off_the_shelf = next(line for line in lines if "off-the-shelf" in line)
    row = rq2.set_index("versus").loc["off-the-shelf specialist"]
    counts = ", ".join(f"{int(row['verdict_corrected'] == word)} {word}" for word in VERDICTS)
    assert off_the_shelf == ("generalist+linear_probe vs off-the-shelf specialist, 1 ID comparison (margin 0.02; "
                             f"corrected by Holm): {counts}")
    assert method_summaries("RQ3", tables["RQ3"])[0].startswith(
        "generalist+linear_probe vs adapted specialist, 1 OOD comparison (margin 0.02; corrected by Holm): ")
    assert method_summaries("RQ1", tables["RQ1"])[0].startswith("specialist (zero-shot) vs generalist (zero-shot)")
    assert all("≥" not in line for rq in tables for line in method_summaries(rq, tables[rq]))
    assert method_summaries("RQ2", rq2.iloc[0:0]) == []


def test_brier_comparisons_call_the_lower_score_a_win(store):
    from medrival.stats.compare import compare

    frame = compare(store, "demo-generalist-clip:linear_probe", "demo-specialist-clip", metric="brier",
                    n_resamples=300).set_index("dataset")
    xray = frame.loc["demo-xray"]  # the probe's Brier is far lower than the zero-shot specialist's
    assert xray["difference"] < 0 and xray["high"] < 0 and xray["verdict"] == "superior"


def test_compare_two_sides_by_name_and_cell(store):
    from medrival.stats.compare import compare

    frame = compare(store, "demo-generalist-clip:linear_probe", "demo-specialist-clip", n_resamples=300)
    assert list(frame["dataset"]) == ["demo-dermoscopy", "demo-xray"]
    binary = frame.set_index("dataset").loc["demo-xray"]
    assert 0 <= binary["delong_p"] <= 1 and np.isnan(frame.set_index("dataset").loc["demo-dermoscopy", "delong_p"])
    from medrival.stats.delong import delong_test
    from medrival.stats.questions import paired_data

    ids = {side: [r.cell_id for r in store.records() if r.spec["dataset"] == "demo-xray"
                  and (r.spec["model"], r.spec["method"]) == side]
           for side in (("demo-generalist-clip", "linear_probe"), ("demo-specialist-clip", "zero_shot"))}
    data = paired_data(store, *ids.values())  # compare's DeLong p uses the items' clusters (Obuchowski)
    expected = delong_test(data.y, data.draws_a[0][:, 1], data.draws_b[0][:, 1], clusters=data.clusters)
    assert binary["delong_p"] == expected.p_value
    cell = next(r.cell_id for r in store.records() if r.spec["dataset"] == "demo-xray"
                and r.spec["model"] == "demo-specialist-clip" and r.spec["method"] == "zero_shot")
    by_cell = compare(store, "demo-generalist-clip:linear_probe", cell[:8], n_resamples=300)
    assert list(by_cell["dataset"]) == ["demo-xray"]
    assert by_cell.loc[0, "difference"] == pytest.approx(binary["difference"])


@pytest.mark.parametrize("side, message", [
    ("demo-generalst-clip", "Did you mean 'demo-generalist-clip'"),
    ("demo-generalist-clip:lora", "This model has: demo-generalist-clip:linear_probe, demo-generalist-clip:zero_shot"),
])
def test_compare_bad_sides(store, side, message):
    from medrival.stats.compare import compare

    with pytest.raises(ConfigError, match=message):
        compare(store, side, "demo-specialist-clip")


def test_compare_cli_prints_the_table(store):
    from test_cli import medrival_cli

    result = medrival_cli("compare", str(store.root), "--a", "demo-generalist-clip:linear_probe", "--b",
                          "demo-specialist-clip", "--resamples", "200")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "demo-xray" in text and "superior" in text
    missing = medrival_cli("compare", str(store.root / "nope"), "--a", "x", "--b", "y")
    assert missing.returncode == 2 and "No medrival store" in missing.stderr


def test_arm_summaries_match_the_store_and_carry_calibration(store):
    from medrival.stats.questions import arm_summaries

    arms = arm_summaries(store, n_resamples=300).set_index(["model", "dataset", "method"])
    frame = store.results_frame().set_index(["model", "dataset", "method"])
    assert len(arms) == len(frame) == 8
    for key, row in arms.iterrows():
        assert row["estimate"] == pytest.approx(frame.loc[key, "auroc"], abs=1e-12)
        assert row["low"] <= row["estimate"] <= row["high"]
        assert 0 <= row["ece"] <= 1 and 0 <= row["brier"] <= 2


def test_study_subgroups_match_direct_computation(store):
    from sklearn.metrics import roc_auc_score

    from medrival.stats.study_subgroups import study_subgroups

    groups, gaps = study_subgroups(store, n_resamples=200)
    assert set(groups["attribute"]) == {"sex", "age"}
    assert len(gaps) == 8 * 2  # every arm of both demo datasets, for sex and for age
    # Ages are banded; the bands and the sexes each cover the 600 test items.
    for (_, _, attribute), part in groups.groupby(["dataset", "arm", "attribute"]):
        assert part["n"].sum() == 600
        if attribute == "age":
            assert set(part["group"]) == {"18-39", "40-59", "60-79", "80+"}
    cell = next(r for r in store.records() if r.spec["dataset"] == "demo-xray"
                and r.spec["model"] == "demo-specialist-clip" and r.spec["method"] == "zero_shot")
    frame = store.predictions(cell.cell_id)
    female = frame[frame["sg_sex"] == "female"]
    row = groups.set_index(["dataset", "arm", "attribute", "group"]).loc[
        ("demo-xray", "demo-specialist-clip+zero_shot", "sex", "female")]
    assert row["n"] == len(female)
    assert row["estimate"] == pytest.approx(roc_auc_score(female["label"], female["prob_pneumonia"]), abs=1e-12)
    assert row["low"] <= row["estimate"] <= row["high"]
    gap = gaps.set_index(["dataset", "arm", "attribute"]).loc[("demo-xray", "demo-specialist-clip+zero_shot", "sex")]
    by_sex = groups.set_index(["dataset", "arm", "attribute"]).loc[
        ("demo-xray", "demo-specialist-clip+zero_shot", "sex")]
    assert gap["gap"] == pytest.approx(by_sex["estimate"].max() - by_sex["estimate"].min())


def test_ages_are_banded_and_impossible_ages_count_as_missing():
    from medrival.stats.study_subgroups import _groups

    frame = pd.DataFrame({"sg_age": [25, -1, 70, None, 85], "sg_sex": ["F", "M", "F", "F", None],
                          "sg_view": ["PA", "AP", "PA", "PA", "AP"]})
    groups = _groups(frame)
    assert list(groups["age"]) == ["18-39", "missing", "60-79", "missing", "80+"]
    assert list(groups["sex"][:4]) == ["F", "M", "F", "F"] and pd.isna(groups["sex"][4])
    assert set(groups) == {"age", "sex", "view"}


def test_a_store_without_subgroup_columns_has_no_subgroup_rows(tmp_path):
    from medrival.stats.study_subgroups import study_subgroups
    from medrival.store.results import CellRecord

    empty = ResultStore(tmp_path)
    empty.save(CellRecord(cell_id="c1", status="done", metrics={"auroc": 0.5},
                          spec={"dataset": "d", "model": "m", "method": "zero_shot", "task": "binary"}),
               pd.DataFrame({"sample_id": ["a", "b"], "label": [0, 1],
                            "prob_no": [0.6, 0.3], "prob_yes": [0.4, 0.7]}))
    groups, gaps = study_subgroups(empty)
    assert groups.empty and gaps.empty


def test_binary_cells_store_validation_predictions_and_thresholds_come_from_them(store):
    from medrival.stats.study_operating_points import study_operating_points
    from medrival.stats.thresholds import choose_threshold

    cell = next(r for r in store.records() if r.spec["dataset"] == "demo-xray"
                and r.spec["model"] == "demo-generalist-clip" and r.spec["method"] == "linear_probe")
    val, test = store.predictions(cell.cell_id, split="val"), store.predictions(cell.cell_id)
    assert len(val) == 300 and len(test) == 600 and "split" not in test.columns
    assert val["sample_id"].str.startswith("demo-xray/val/").all()
    derm = next(r for r in store.records() if r.spec["dataset"] == "demo-dermoscopy")
    assert store.predictions(derm.cell_id, split="val").empty  # multiclass: no operating point, nothing stored
    points = study_operating_points(store, n_resamples=200).set_index(["dataset", "arm"])
    assert set(points.index.get_level_values("dataset")) == {"demo-xray"} and len(points) == 4
    row = points.loc[("demo-xray", "demo-generalist-clip+linear_probe")]
    threshold = choose_threshold(val["label"], val["prob_pneumonia"], rule="youden")
    assert row["threshold"] == threshold and row["n_val"] == 300
    positive = test["label"] == 1
    predicted = test["prob_pneumonia"] >= threshold
    assert row["sensitivity"] == pytest.approx((predicted & positive).sum() / positive.sum())
    assert row["specificity"] == pytest.approx((~predicted & ~positive).sum() / (~positive).sum())
    assert row["sensitivity_low"] <= row["sensitivity"] <= row["sensitivity_high"]
    with pytest.raises(UnknownNameError, match="Did you mean 'youden'"):
        study_operating_points(store, rule="youdn")


def test_predictions_split_is_checked(store):
    from medrival.core.errors import DataError

    cell = store.records()[0].cell_id
    with pytest.raises(DataError, match="split must be one of test, val"):
        store.predictions(cell, split="train")
