"""Mixed contrastive + generative studies: planning (refuse / skip unsupported combinations, VQA budgets) and a
generative study end to end on a tiny LLaVA given as a weights folder."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.errors import ConfigError
from medrival.study.runner import plan_cells, run_study
from medrival.study.spec import parse_study

MIXED = """\
name: mixed
models: [demo-generalist-clip, demo-generalist-vlm]
datasets: [demo-xray, demo-xray-vqa]
methods: [zero_shot, option_zero_shot, vqa_zero_shot]
"""


def test_unsupported_combinations_are_refused_by_default_with_the_way_out():
    with pytest.raises(ConfigError) as error:
        plan_cells(parse_study(MIXED))
    message = str(error.value)
    assert "method 'zero_shot' supports contrastive models, not generative ones (model 'demo-generalist-vlm'" in message
    assert "method 'vqa_zero_shot' supports generative models, not contrastive ones" in message
    assert "unsupported: skip" in message


def test_skip_keeps_exactly_the_supported_cells_and_lists_the_rest():
    left_out: list[str] = []
    cells = plan_cells(parse_study(MIXED + "unsupported: skip\n"), left_out)
    kept = {(c.model, c.dataset, c.method) for c in cells}
    assert kept == {("demo-generalist-clip", "demo-xray", "zero_shot"),
                    ("demo-generalist-vlm", "demo-xray", "option_zero_shot"),
                    ("demo-generalist-vlm", "demo-xray-vqa", "vqa_zero_shot")}
    assert len(left_out) == 2 * 2 * 3 - 3 and all("(model '" in line for line in left_out)


def test_label_budgets_on_vqa_datasets_are_refused_or_collapse_to_one_full_cell():
    budgeted = ("name: b\nmodels: [demo-generalist-vlm]\ndatasets: [demo-xray-vqa]\nmethods: [vqa_zero_shot]\n"
                "fewshot: {shots: [1, 4], draws: 2}\n")
    with pytest.raises(ConfigError, match="label budgets .* VQA dataset.*demo-xray-vqa.*unsupported: skip"):
        plan_cells(parse_study(budgeted))
    left_out: list[str] = []
    cells = plan_cells(parse_study(budgeted + "unsupported: skip\n"), left_out)
    assert [(c.budget, c.draw) for c in cells] == [("full", 0)]
    assert left_out == ["label budgets on VQA dataset 'demo-xray-vqa' (it runs at full budget only)."]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, one_torch_thread):
    from medrival.data import world
    from medrival.core.prompts import TEMPLATES, diagnosis_prompt
    from medrival.data.catalog import dataset_info
    from medrival.models.tiny_generative import build_tiny_llava

    texts = [t.format(question="", options="") for t in TEMPLATES.values()]
    texts += [diagnosis_prompt(dataset_info("demo-xray"))]
    texts += [f"{q} {a}" for attrs in world.render("xray", "train", 30, size=32).attrs
              for q, a, _ in world.questions("xray", attrs)]
    return build_tiny_llava(tmp_path_factory.mktemp("vlm"), texts, image_size=32, patch_size=16, text_layers=1)


def test_generative_study_stores_scored_questions_and_diagnosis_probabilities(tiny_folder, tmp_path):
    study = parse_study(
        "name: g\nmodels: [demo-generalist-vlm]\ndatasets: [demo-xray, demo-xray-vqa]\n"
        "methods: [option_zero_shot, {name: vqa_zero_shot, config: {batch_size: 64}}]\nunsupported: skip\n"
        f"weights: {{demo-generalist-vlm: '{tiny_folder}'}}\n")
    run = run_study(study, tmp_path / "store")
    assert not run.failed and len(run.ran) == 2
    frame = run.frame().set_index("method")
    assert np.isfinite(frame.loc["option_zero_shot", "auroc"])
    vqa = frame.loc["vqa_zero_shot"]
    cell = run.store.get(vqa["cell_id"])
    assert cell.metrics["n_closed"] > 0 and 0.0 <= cell.metrics["closed_accuracy"] <= 1.0
    assert cell.cost["prompt_version"] == "2" and cell.cost["normalisation_version"] == "2"
    assert cell.spec["vqa_rules"] == {"prompt": "2", "form": "1", "normalisation": "2", "extraction": "1"}
    questions = run.store.predictions(vqa["cell_id"])
    assert len(questions) == cell.metrics["n_closed"] + cell.metrics["n_open"]
    assert {"question", "form", "options", "answer", "response", "extracted", "scored_as", "closed_accuracy",
            "open_token_f1", "prob_yes"} <= set(questions.columns)
    closed = questions[questions["scored_as"] != "open"]
    assert closed["closed_accuracy"].mean() == pytest.approx(cell.metrics["closed_accuracy"])
    yes_no = questions[questions["scored_as"] == "yes_no"]
    assert yes_no["prob_yes"].between(0, 1).all()
    assert questions.loc[questions["form"] == "choice", "prob_yes"].isna().all()
    diagnosis = run.store.predictions(frame.loc["option_zero_shot", "cell_id"], split="val")
    assert len(diagnosis) == 300 and np.allclose(diagnosis[["prob_normal", "prob_pneumonia"]].sum(axis=1), 1)


from openai_stub import serve  # noqa: E402,F401  (a fixture)


def test_llm_judge_grades_open_answers_of_vqa_cells_and_changes_the_cell_id(tiny_folder, tmp_path, serve,
                                                                            monkeypatch):
    from medrival.study.spec import cell_id

    monkeypatch.setenv("JUDGE_KEY", "sk-judge-test")
    # The spread over repeats is tested in test_llm_judge.py; here every judgment agrees, so it is 0.
    stub = serve(lambda request: "Score: 0.4")
    text = ("name: j\nmodels: [demo-generalist-vlm]\ndatasets: [demo-xray-vqa]\n"
            "methods: [{name: vqa_zero_shot, config: {batch_size: 64, score_closed_options: false}}]\n"
            f"weights: {{demo-generalist-vlm: '{tiny_folder}'}}\n")
    judged = parse_study(text + f"llm_judge: {{base_url: '{stub.url}', model: judge-1, api_key_env: JUDGE_KEY, "
                                "repeats: 2}\n")
    plain_cells, judged_cells = plan_cells(parse_study(text)), plan_cells(judged)
    assert cell_id(plain_cells[0]) != cell_id(judged_cells[0]) and plain_cells[0].judge is None
    run = run_study(judged, tmp_path / "store")
    assert not run.failed
    record = run.store.get(run.ran[0])
    frame = run.store.predictions(run.ran[0])
    open_rows = frame["scored_as"] == "open"
    assert len(stub.requests) == 2 * open_rows.sum()
    assert np.allclose(frame.loc[open_rows, "judge_mean"], 0.4) and frame.loc[~open_rows, "judge_mean"].isna().all()
    assert np.allclose(frame.loc[open_rows, "judge_sd"], 0.0) and (frame.loc[open_rows, "judge_failures"] == 0).all()
    assert record.metrics["llm_judge"] == pytest.approx(0.4) and record.metrics["llm_judge_failures"] == 0
    assert record.spec["llm_judge"]["model"] == "judge-1" and "sk-judge-test" not in str(record)
    assert record.cost["judge_prompt_version"] == "llm-judge-v1"


@pytest.mark.parametrize("field, value, expected", [("base_url", "https://user:secret@host/v1", "base_url"),
                                                    ("api_key_env", "sk-pasted-key", "api_key_env")])
def test_llm_judge_settings_are_checked_like_api_cards(field, value, expected):
    judge = {"base_url": "http://127.0.0.1:1/v1", "model": "judge", field: value}
    text = ("name: j\nmodels: [demo-generalist-vlm]\ndatasets: [demo-xray-vqa]\nmethods: [vqa_zero_shot]\n"
            f"llm_judge: {judge}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=expected) as error:
        parse_study(text)
    assert "secret" not in str(error.value) and "sk-pasted-key" not in str(error.value)
