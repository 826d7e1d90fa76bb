"""A few-shot study end to end: budgets recorded per result, curves rise with K, each image encoded once."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.study.runner import run_study
from medrival.study.spec import parse_study

STUDY = """
name: fewshot
models: [demo-specialist-clip]
datasets: [demo-dermoscopy]
methods: [linear_probe]
fewshot: {shots: [1, 4, 16], draws: 3}
"""


@pytest.fixture(scope="module")
def fewshot_run(tmp_path_factory):
    return run_study(parse_study(STUDY), tmp_path_factory.mktemp("fewshot"))


def test_every_budget_and_draw_is_a_recorded_cell(fewshot_run):
    frame = fewshot_run.frame()
    assert len(frame) == 9 and set(frame["status"]) == {"done"}
    assert sorted(zip(frame["budget"], frame["draw"])) == sorted(
        (f"{k}-shot", d) for k in (1, 4, 16) for d in range(3))
    records = {r.cell_id: r for r in fewshot_run.store.records()}
    for record in records.values():
        shots = record.spec["shots"]
        assert record.cost["n_train"] == 3 * shots  # three dermoscopy classes
        assert record.cost["n_val"] == 3 * shots  # matched validation budget
        assert record.cost["peak_rss_mb"] > 50 and record.cost["trainable_params"] > 0


def test_few_shot_curve_rises_with_k(fewshot_run):
    frame = fewshot_run.frame()
    means = frame.groupby("budget")["auroc"].mean()
    # Measured: 1-shot 0.675, 4-shot 0.769, 16-shot 0.878 (demo-specialist-clip, demo-dermoscopy, 3 draws).
    assert means["1-shot"] < means["4-shot"] < means["16-shot"]
    assert means["16-shot"] - means["1-shot"] > 0.1


def test_draws_differ_but_all_models_would_see_the_same_subsets(fewshot_run):
    frame = fewshot_run.frame()
    one_shot = frame[frame["budget"] == "1-shot"]["auroc"].to_numpy()
    assert len(np.unique(np.round(one_shot, 6))) > 1  # three different draws, three different results


def test_a_weights_folder_is_used_and_recorded(tmp_path):
    from medrival.models.demo_weights import materialize

    folder = materialize("demo-specialist-clip")  # an open_clip local-dir, like a downloaded checkpoint
    study = tmp_path / "study.yaml"
    study.write_text("models: [demo-specialist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n"
                     f"weights: {{demo-specialist-clip: {folder}}}\n")
    from medrival.study.spec import load_study
    run = run_study(load_study(study), tmp_path / "out")
    (record,) = run.store.records()
    assert record.status == "done" and record.spec["weights"] == str(folder)
    assert record.metrics["auroc"] == pytest.approx(0.673, abs=0.001)  # the shipped specialist's zero-shot


def test_a_missing_weights_folder_stops_the_study_before_it_runs(tmp_path):
    from medrival.core.errors import ConfigError
    from medrival.study.spec import load_study

    study = tmp_path / "study.yaml"
    study.write_text("models: [demo-specialist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n"
                     "weights: {demo-specialist-clip: nowhere}\n")
    with pytest.raises(ConfigError, match=r"weights folders do not exist:\n- demo-specialist-clip: .*nowhere"):
        run_study(load_study(study), tmp_path / "out")
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_saved_checkpoints_reload_to_the_stored_predictions(tmp_path):
    """save_checkpoints: the linear-probe head (and any learned state) is saved per cell and reloads exactly."""
    from medrival.data.catalog import load_dataset
    from medrival.methods import METHODS
    from medrival.methods.features import FeatureCache
    from medrival.models.factory import create_model

    spec = parse_study("models: [demo-generalist-clip]\ndatasets: [demo-fundus]\n"
                       "methods: [linear_probe, tip_adapter_f]\nsave_checkpoints: true\n")
    run = run_study(spec, tmp_path)
    model, test = create_model("demo-generalist-clip"), load_dataset("demo-fundus", "test")
    for record in run.store.records():
        folder = tmp_path / "checkpoints" / record.cell_id
        assert folder.is_dir(), record.spec["method"]
        method = METHODS.get(record.spec["method"]).build.load(folder, model, FeatureCache(None))
        stored = run.store.predictions(record.cell_id).filter(like="prob_").to_numpy()
        np.testing.assert_allclose(method.predict(test).probabilities, stored, atol=1e-6)
