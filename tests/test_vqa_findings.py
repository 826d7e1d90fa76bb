"""The eight VQA scoring findings of issue 13, one named test each (finding 7, one meaning of open_token_f1
everywhere, is tested with the store in tests/test_stats_vqa.py): each shows its failure cannot come back."""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import DataError
from medrival.core.prompts import DEFAULT_MAX_NEW_TOKENS, vqa_prompt
from medrival.core.types import VQASplit
from medrival.data.catalog import dataset_registry, load_dataset
from medrival.data.zoo.build import frame_forms, release_options, vqa_split
from medrival.data.zoo.registry import release_registry
from medrival.methods.vqa_answers import (
    VQAGenerationConfig, VQAOutput, question_prompts, token_limits, training_answers,
)
from medrival.metrics.vqa import score_answers, summarise
from medrival.study.vqa_cell import score_vqa, vqa_metrics
from release_fixtures import ANNOTATION_WRITERS, write_fixture

REAL_VQA_RAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "vqa_rad"
VQA_RELEASES = sorted(name for name, entry in release_registry().items()
                      if entry.is_vqa and name in ANNOTATION_WRITERS)


def _split(name: str, root: Path, split: str = "test") -> VQASplit:
    entry = release_registry().get(name)
    return vqa_split(entry.info, entry.read(root), split, root)


# ----------------------------------------------------------------------------------- 1. multiple choice works


def test_finding1_multiple_choice_keeps_options_prompts_letters_and_trains_on_them(tmp_path):
    test = _split("pmc-vqa", write_fixture("pmc-vqa", tmp_path))
    assert set(test.forms) == {"multiple_choice"} and all(len(options) == 4 for options in test.options)
    prompt = question_prompts(test)[0]
    assert "answer yes or no" not in prompt and prompt.endswith("answer with the option's letter.")
    assert all(f"{letter}. {text}" in prompt for letter, text in zip("ABCD", test.options[0]))
    assert token_limits(test, VQAGenerationConfig())[0] == DEFAULT_MAX_NEW_TOKENS["multiple_choice"] > 4
    assert set(test.answers) <= set("ABCD")  # the release's gold letter (answer_label)
    frame = score_vqa(test, VQAOutput([f"({letter})" for letter in test.answers], np.full(len(test), np.nan)))
    assert frame["mc_accuracy"].eq(1.0).all() and frame["closed_accuracy"].eq(1.0).all()
    target = training_answers(test)[0]  # vqa_lora is taught the letter plus the option's text
    assert target == f"{test.answers[0]}. {test.options[0]['ABCD'.index(test.answers[0])]}"


# -------------------------------------------------------------------------- 2. choice questions are choices


def test_finding2_choice_questions_list_their_options_and_verbose_answers_count():
    question = "Is the abnormality in the heart or lung?"
    split = load_dataset("demo-xray-vqa", "test", n=2, size=32)
    edited = VQASplit(split.info, "test", split.images, np.array([0]), [question], ["heart"], ["closed"],
                      np.array(["q0"]), split.image_ids[:1])
    assert edited.forms == ["choice"] and edited.options == [("heart", "lung")]
    assert question_prompts(edited) == [f"{question} answer with one of: heart, lung."]
    frame = score_vqa(edited, VQAOutput(["The image shows an abnormal heart."], np.array([np.nan])))
    assert frame.loc[0, "choice_accuracy"] == 1.0


@pytest.mark.skipif(not REAL_VQA_RAD.is_dir(), reason="shared/data/real/vqa_rad is absent")
def test_finding2_real_vqa_rad_closed_test_questions_by_form():
    index = release_registry().get("vqa-rad").read(REAL_VQA_RAD)
    test = index.frame[index.frame["split"] == "test"].reset_index(drop=True)
    forms, _ = frame_forms(test)
    closed = test["answer_type"] == "closed"
    assert closed.sum() == 272
    asked = pd.Series(forms)[closed].value_counts().to_dict()
    assert asked.get("choice", 0) >= 17 and asked["yes_no"] >= 245  # "supratentorial or infratentorial?"
    scored = score_answers(test["answer"], test["answer"], forms, frame_forms(test)[1], questions=test["question"])
    non_yes_no = closed & ~test["answer"].str.lower().isin(["yes", "no"])
    assert non_yes_no.sum() == 21 and (scored.loc[non_yes_no, "scored_as"] != "yes_no").all()


# ------------------------------------------------------------------------------------ 3. negation and echoes


@pytest.mark.parametrize("response, gold, correct", [
    ("The angiogram does not show parathyroid adenoma.", "no", 1.0),
    ("Negative", "no", 1.0), ("Not present", "no", 1.0), ("Nope", "no", 1.0), ("Certainly not", "no", 1.0),
    ("Yes/No", "yes", 0.0), ("yes or no", "yes", 0.0), ("yes and no", "yes", 0.0),
    ("It is not possible to say yes", "yes", 0.0),
    ("Yes, the image shows an adenoma.", "no", 0.0),
])
def test_finding3_negated_answers_echoes_and_hedges(response, gold, correct):
    table = score_answers([response], [gold], ["yes_no"], questions=["Does the angiogram show parathyroid adenoma?"])
    assert table.loc[0, "yes_no_accuracy"] == correct


# ------------------------------------------------------------------------------------------- 4. number words


def test_finding4_number_words_and_digits_agree_and_wrong_counts_stay_wrong():
    table = score_answers(["There are two kidneys in this image.", "two", "two"], ["2", "2", "1"], ["open"] * 3)
    assert table["open_token_recall"].tolist() == [1.0, 1.0, 0.0]
    assert table["open_exact_match"].tolist() == [0.0, 1.0, 0.0] and table.loc[0, "open_token_f1"] > 0
    choice = score_answers(["There are two kidneys."], ["2"], ["choice"], options=[("one", "two")])
    assert choice.loc[0, "choice_accuracy"] == 1.0


# ------------------------------------------------------------------------- 5. nothing depends on the gold


def _shuffled_answers(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    edited = frame.copy()
    edited["answer"] = [rng.choice(["yes", "no", "left", "2", "zzz"]) for _ in range(len(frame))]
    if "answer_label" in edited.columns:  # another valid gold letter for each multiple-choice item
        counts = [len(options or ()) for options in release_options(frame)]
        edited["answer_label"] = [rng.choice("ABCDE"[:count]) if count else None for count in counts]
    return edited


@pytest.mark.parametrize("name", VQA_RELEASES)
def test_finding5_forms_options_and_prompts_never_depend_on_the_gold(name, tmp_path):
    entry = release_registry().get(name)
    root = write_fixture(name, tmp_path)
    index = entry.read(root)
    for split in index.splits:
        original = vqa_split(entry.info, index, split, root)
        for seed in (0, 1):
            swapped = replace(index, frame=_shuffled_answers(index.frame, seed))
            other = vqa_split(entry.info, swapped, split, root)
            assert other.forms == original.forms and other.options == original.options
            assert question_prompts(other) == question_prompts(original)


def test_finding5_derived_answer_types_come_from_the_question(tmp_path):
    from test_releases_pathvqa import RECORDS, write_pickles

    from medrival.data.releases.pathvqa import load_pathvqa_pickles

    first = load_pathvqa_pickles(write_pickles(tmp_path / "a"))
    flipped = {split: [{**item, "answer": "yes" if item["answer"] != "yes" else "a lobule"} for item in items]
               for split, items in RECORDS.items()}
    second = load_pathvqa_pickles(write_pickles(tmp_path / "b", flipped))
    assert list(first.frame["answer"]) != list(second.frame["answer"])
    assert list(first.frame["answer_type"]) == list(second.frame["answer_type"])


@pytest.mark.parametrize("name", sorted(n for n in dataset_registry().names() if n.startswith("demo-")
                                        and dataset_registry().get(n).info.task.value == "vqa"))
def test_finding5_demo_vqa_forms_never_depend_on_the_gold(name):
    split = load_dataset(name, "test", n=6, size=32)
    fresh = VQASplit(split.info, split.split, split.images, split.image_index, split.questions,
                     ["zzz"] * len(split), split.answer_types, split.ids, split.image_ids,
                     options=[o if f == "multiple_choice" else None for f, o in zip(split.forms, split.options)])
    assert fresh.forms == split.forms and fresh.options == split.options
    assert question_prompts(fresh) == question_prompts(split)


# ------------------------------------------------------------------------------------ 6. one scoring path


@pytest.mark.skipif(not REAL_VQA_RAD.is_dir(), reason="shared/data/real/vqa_rad is absent")
def test_finding6_score_answers_accepts_the_real_vqa_rad_release():
    index = release_registry().get("vqa-rad").read(REAL_VQA_RAD)
    frame = index.frame
    forms, options = frame_forms(frame)
    scored = score_answers(frame["answer"], frame["answer"], forms, options, questions=frame["question"])
    closed = scored["scored_as"] != "open"
    assert scored.loc[closed, "closed_accuracy"].eq(1.0).all()  # every usable reference scores itself right
    assert scored["score_note"].notna().sum() == summarise(scored)["n_closed_scored_open"] > 0


def test_finding6_multiple_choice_gold_outside_options_is_a_data_error_naming_item_and_release():
    with pytest.raises(DataError, match=r"item 'x1' of omnimedvqa"):
        score_answers(["A"], ["Maybe"], ["multiple_choice"], options=[("Yes", "No")], item_ids=["x1"],
                      source="omnimedvqa")


# ----------------------------------------------------------------------- 8. reasoning blocks and undecided


def test_finding8_reasoning_blocks_are_stripped_and_undecided_answers_are_counted():
    split = load_dataset("demo-xray-vqa", "test", n=2, size=32)
    responses = ["<think>It could be yes... or no?</think> No." if form == "yes_no" else "hmm"
                 for form in split.forms]
    frame = score_vqa(split, VQAOutput(responses, np.full(len(split), np.nan)))
    yes_no = frame["scored_as"] == "yes_no"
    assert frame.loc[yes_no, "extracted"].eq("no").all()
    assert frame.loc[yes_no, "response"].str.startswith("<think>").all()  # the raw answer is kept
    metrics = vqa_metrics(frame)
    choice = frame["scored_as"] == "choice"
    assert metrics["undecided_rate"] == pytest.approx(choice.sum() / (yes_no.sum() + choice.sum()))


# ------------------------------------------------------------------------------------------- datasets check


def test_check_counts_forms_and_why_closed_items_are_scored_open(tmp_path):
    import json

    from medrival.data.releases.vqa_generic import read_generic_vqa
    from medrival.data.zoo.vqa_check import vqa_form_report

    records = [
        {"image": "a.png", "question": "Is this supratentorial or infratentorial?", "answer": "supratentorial",
         "split": "test", "answer_type": "closed"},
        {"image": "a.png", "question": "Is this axial or coronal?", "answer": "sagittal", "split": "test",
         "answer_type": "closed"},  # the gold is not among the parsed options: scored as open
        {"image": "b.png", "question": "Is there a mass?", "answer": "left", "split": "test",
         "answer_type": "closed"},  # a yes/no question answered otherwise: scored as open
        {"image": "b.png", "question": "How many lesions?", "answer": "2", "split": "test",
         "answer_type": "closed"},  # closed in the release, no options: asked as open
        {"image": "b.png", "question": "What is shown?", "answer": "liver", "split": "test", "answer_type": "open"},
    ]
    (tmp_path / "qa.json").write_text(json.dumps(records))
    index = read_generic_vqa(tmp_path, "qa.json", modality="ct", name="mine", answer_type_column="answer_type",
                             split_column="split")
    report, notes = vqa_form_report(index, "mine")
    test = report["test"]
    assert test["asked"] == {"choice": 2, "yes_no": 1, "open": 2}
    assert test["scored_as"] == {"choice": 1, "open": 4}
    assert test["scored_open_because"] == {"choice_reference_not_in_options": 1, "yes_no_reference_not_yes_no": 1}
    assert test["declared_closed_asked_open"] == 1
    assert any("2 questions state their options in the question text" in note for note in notes)


def test_multiple_choice_gold_outside_options_fails_when_the_split_is_built(tmp_path):
    entry = release_registry().get("pmc-vqa")
    root = write_fixture("pmc-vqa", tmp_path)
    index = entry.read(root)
    frame = index.frame.copy()
    row = frame.index[frame["split"] == "test"][0]
    frame.loc[row, ["answer_label", "answer"]] = [None, "a finding in no option"]
    with pytest.raises(DataError, match=rf"item '{frame.loc[row, 'question_id']}' of pmc-vqa: the reference"):
        vqa_split(entry.info, replace(index, frame=frame), "test", root)
