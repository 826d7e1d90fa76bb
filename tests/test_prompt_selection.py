"""Issue 14, finding 9: zero-shot prompts chosen per model on validation, and the spread of test metrics over
template sets (prompt sensitivity), for zero_shot (contrastive diagnosis) and vqa_zero_shot (generative VQA).

The demo world shows the effect the finding is about (Jeong et al., 2024): on demo-xray the specialist CLIP leads
the generalist by ~0.13 AUROC with the dataset's own prompts, and the lead vanishes once each model picks its
template set on validation."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from medrival.core.errors import ConfigError
from medrival.core.prompts import (
    CLASS_PROMPT_SETS, PROMPT_SET_OUTPUTS, PROMPT_VERSION, TEMPLATES, VQA_TEMPLATE_SETS, ClassPromptSet,
    class_set_templates, prompt_set_texts, vqa_prompt,
)
from medrival.core.types import CellSpec, ClassificationSplit, VQASplit
from medrival.data.catalog import load_dataset
from medrival.methods import METHODS
from medrival.methods.base import capabilities_of
from medrival.methods.features import FeatureCache
from medrival.methods.selection import validation_auroc
from medrival.methods.zero_shot import (
    ZeroShotConfig, class_prompts, zero_shot_classifier, zero_shot_logits,
)
from medrival.metrics import compute_classification_metrics
from medrival.stats.prompt_sensitivity import COLUMNS, prompt_sensitivity_table
from medrival.store import CellRecord, ResultStore

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest

ALL_SETS = len(CLASS_PROMPT_SETS)


@pytest.fixture(scope="module")
def xray():
    return {split: load_dataset("demo-xray", split) for split in ("val", "test")}


@pytest.fixture(scope="module")
def clip_models():
    from medrival.models.factory import create_model

    return {kind: create_model(f"demo-{kind}-clip") for kind in ("generalist", "specialist")}


@pytest.fixture(scope="module")
def cache():
    return FeatureCache(None)


def _zero_shot(model, val, cache, **config):
    spec = METHODS.get("zero_shot")
    method = spec.build(spec.make_config(config))
    method.fit(model, None, val, cache)
    return method


def _auroc(split, probabilities) -> float:
    return compute_classification_metrics(split.info.task, split.labels, probabilities)["auroc"]


class GuardedLabels(ClassificationSplit):
    """A split whose labels raise once read: proves a method predicts without them."""

    guarded = False

    def __getattribute__(self, name):
        if name == "labels" and object.__getattribute__(self, "guarded"):
            raise AssertionError("the test labels were read")
        return super().__getattribute__(name)


def _guarded(split: ClassificationSplit, labels) -> GuardedLabels:
    copy = GuardedLabels(split.info, split.split, split.images, np.asarray(labels), split.ids, dict(split.meta))
    object.__setattr__(copy, "guarded", True)
    return copy


def _relabelled(split: ClassificationSplit, labels) -> ClassificationSplit:
    return ClassificationSplit(split.info, split.split, split.images, np.asarray(labels), split.ids, dict(split.meta))


# ------------------------------------------------------------------------------------------ defaults, options
def test_finding9_default_sets_are_todays_prompts(xray, clip_models, cache):
    assert CLASS_PROMPT_SETS[0] == ClassPromptSet("default", None) and VQA_TEMPLATE_SETS["default"] is TEMPLATES
    assert PROMPT_VERSION == "2" and list(VQA_TEMPLATE_SETS)[0] == "default"
    assert vqa_prompt("is there an opacity?", "yes_no") == "is there an opacity? answer yes or no."
    json.dumps(prompt_set_texts())  # plain data: a study can fingerprint the alternative wordings
    assert vqa_prompt("is it left or right?", "choice", ("left", "right")) == \
        "is it left or right? answer with one of: left, right."
    info = xray["val"].info
    assert class_prompts(info, ZeroShotConfig()) == class_prompts(info, ZeroShotConfig(), CLASS_PROMPT_SETS[0])
    model = clip_models["specialist"]
    method = _zero_shot(model, xray["val"], cache)
    output = method.predict(xray["test"])
    classes = zero_shot_classifier(model, info, ZeroShotConfig(), cache)
    logits = zero_shot_logits(model.logit_scale, cache.image_features(model, xray["test"]), classes)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_array_equal(output.probabilities, expected / expected.sum(1, keepdims=True))
    assert output.extras == {}  # a default cell's record is what it was before prompt sets existed
    assert capabilities_of("zero_shot").prompt_selection and capabilities_of("vqa_zero_shot").prompt_selection


@pytest.mark.parametrize("method", ["zero_shot", "vqa_zero_shot"])
@pytest.mark.parametrize("option, value, expected", [
    ("prompt_selection", "test", "expected one of fixed, validation"),
    ("prompt_selection", None, "expected one of fixed, validation"),
    ("prompt_sensitivity", -1, "expected a whole number from 0"),
    ("prompt_sensitivity", 99, "expected a whole number from 0"),
    ("prompt_sensitivity", True, "expected a whole number from 0"),
    ("prompt_sensitivity", "3", "expected a whole number from 0"),
])
def test_finding9_bad_prompt_options_are_config_errors(method, option, value, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        METHODS.get(method).make_config({option: value})
    shown = {None: "null", True: "true"}.get(value, repr(value))
    assert shown in str(info.value) and method in str(info.value)
    with pytest.raises(ConfigError, match="did you mean 'prompt_selection'"):
        METHODS.get(method).make_config({"prompt_selectoin": "validation"})


def test_finding9_template_sets_read_the_modality_and_class_names(xray):
    info = xray["val"].info
    modality = next(s for s in CLASS_PROMPT_SETS if s.name == "modality")
    assert class_set_templates(modality, info, ())[0] == "an x-ray image showing {}."
    mixed = dataclasses.replace(info, modality="ct,mri,xray")
    assert class_set_templates(modality, mixed, ())[0] == "a medical image showing {}."
    names = next(s for s in CLASS_PROMPT_SETS if s.name == "class_names")
    assert class_prompts(info, ZeroShotConfig(), names) == [
        [t.format("normal") for t in info.prompt_templates], [t.format("pneumonia") for t in info.prompt_templates]]
    assert len({s.name for s in CLASS_PROMPT_SETS}) == ALL_SETS  # names key the record: they must be unique


# ---------------------------------------------------------------------------------- selection on validation
def test_finding9_selection_reads_validation_only(xray, clip_models, cache):
    model, val, test = clip_models["generalist"], xray["val"], xray["test"]
    method = _zero_shot(model, val, cache, prompt_selection="validation", prompt_sensitivity=ALL_SETS)
    by_hand = {s.name: validation_auroc(val.info.task, val.labels, _zero_shot_probabilities(model, val, s, cache))
               for s in CLASS_PROMPT_SETS}
    chosen = method.selection["chosen"]
    assert chosen == max(by_hand, key=by_hand.get) and method.selection["validation"] == pytest.approx(by_hand)
    # Predicting reads no test label, with every set's outputs asked for: the same outputs with permuted labels.
    first = method.predict(_guarded(test, test.labels))
    permuted = method.predict(_guarded(test, np.random.default_rng(0).permutation(test.labels)))
    np.testing.assert_array_equal(first.probabilities, permuted.probabilities)
    assert first.extras["prompt_selection"] == permuted.extras["prompt_selection"]
    # What is read is validation: with its labels inverted (AUROC -> 1 - AUROC) the set worst on validation is
    # chosen, and the set best on test -- worst on the inverted validation -- is not.
    on_test = {name: _auroc(test, p) for name, p in first.extras[PROMPT_SET_OUTPUTS].items()}
    inverted = _zero_shot(model, _relabelled(val, 1 - val.labels), cache, prompt_selection="validation")
    assert inverted.selection["chosen"] == min(by_hand, key=by_hand.get)
    assert inverted.selection["chosen"] != max(on_test, key=on_test.get)


def _zero_shot_probabilities(model, split, prompt_set, cache):
    classes = zero_shot_classifier(model, split.info, ZeroShotConfig(), cache, prompt_set)
    logits = zero_shot_logits(model.logit_scale, cache.image_features(model, split), classes)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def test_finding9_validation_selection_changes_the_xray_verdict(xray, clip_models, cache):
    """The learned effect: the specialist's in-domain zero-shot lead is a lead of its default prompts."""
    default, selected = {}, {}
    for kind, model in clip_models.items():
        default[kind] = _auroc(xray["test"], _zero_shot(model, xray["val"], cache).predict(xray["test"]).probabilities)
        method = _zero_shot(model, xray["val"], cache, prompt_selection="validation")
        selected[kind] = _auroc(xray["test"], method.predict(xray["test"]).probabilities)
        assert method.selection["chosen"] != "default" and selected[kind] > default[kind] + 0.1
    assert default["specialist"] - default["generalist"] > 0.1
    assert abs(selected["specialist"] - selected["generalist"]) < 0.05


# -------------------------------------------------------------------------- sensitivity through a study cell
def _cell(model: str, label: str, **config) -> CellSpec:
    values = METHODS.get("zero_shot").normalised_config(config)
    return CellSpec(model=model, dataset="demo-xray", method="zero_shot", method_config=tuple(values.items()),
                    label=label)


def test_finding9_sensitivity_is_stored_by_the_cell_and_tabled(tmp_path):
    from medrival.study.cell import CellContext, execute_cell

    store, context = ResultStore(tmp_path / "store"), CellContext(None, device="cpu")
    cells = [_cell(f"demo-{kind}-clip", "zero_shot[validation]", prompt_selection="validation",
                   prompt_sensitivity=ALL_SETS) for kind in ("generalist", "specialist")]
    cells.append(_cell("demo-specialist-clip", "zero_shot[fixed]", prompt_sensitivity=3))
    for cell in cells:
        record, frame = execute_cell(cell, context)
        assert record.status == "done", record.error
        per_set, selection = record.cost["prompt_sensitivity"], record.cost["prompt_selection"]
        # The chosen set's stored test metrics are the cell's own: one scoring path for both.
        assert per_set[selection["chosen"]]["auroc"] == pytest.approx(record.metrics["auroc"], abs=1e-12)
        assert PROMPT_SET_OUTPUTS not in record.cost
        store.save(record, frame)
    table = prompt_sensitivity_table(ResultStore(tmp_path / "store"))
    assert list(table.columns) == COLUMNS and len(table) == 3 and set(table["metric"]) == {"auroc"}
    by_arm = table.set_index(["model", "method"])
    fixed = by_arm.loc[("demo-specialist-clip", "zero_shot[fixed]")]
    assert (fixed["selection"], fixed["chosen_set"], fixed["n_sets"]) == ("fixed", "default", 3)
    chosen = by_arm.xs("zero_shot[validation]", level="method")
    assert (chosen["n_sets"] == ALL_SETS).all() and (chosen["chosen_set"] != "default").all()
    assert (chosen["min"] <= chosen["median"]).all() and (chosen["median"] <= chosen["max"]).all()
    assert (table["iqr"] <= table["range"] + 1e-12).all() and (table["range"] > 0.2).any()  # a real spread
    assert (chosen["chosen_value"] <= chosen["max"] + 1e-12).all()


# ------------------------------------------------------------------------------------------------------- VQA
class GuardedAnswers(VQASplit):
    guarded = False

    def __getattribute__(self, name):
        if name == "answers" and object.__getattribute__(self, "guarded"):
            raise AssertionError("the test answers were read")
        return super().__getattribute__(name)


def test_finding9_vqa_selection_reads_validation_and_reports_the_spread():
    from medrival.methods.vqa_answers import answer_questions
    from medrival.methods.vqa_zero_shot import VQA_SET_NAMES, validation_score
    from medrival.models.factory import create_model
    from medrival.study.vqa_cell import prompt_set_vqa_metrics, score_vqa, vqa_metrics

    model = create_model("demo-generalist-vlm")
    val, test = (load_dataset("demo-xray-vqa", split, n=12) for split in ("val", "test"))
    spec = METHODS.get("vqa_zero_shot")
    method = spec.build(spec.make_config({"prompt_selection": "validation", "prompt_sensitivity": len(VQA_SET_NAMES),
                                          "batch_size": 64}))
    method.fit(model, None, val)
    by_hand = {name: validation_score(val, answer_questions(model, val, method.config, name))
               for name in VQA_SET_NAMES}
    assert method.selection["validation"] == pytest.approx(by_hand)
    assert method.selection["chosen"] == max(by_hand, key=by_hand.get)  # first on ties, as dicts keep order
    guarded = GuardedAnswers(**{f.name: getattr(test, f.name) for f in dataclasses.fields(VQASplit)})
    object.__setattr__(guarded, "guarded", True)
    output = method.predict(guarded)  # answering reads no test answer, for any of the sets
    per_set = prompt_set_vqa_metrics(test, output.extras[PROMPT_SET_OUTPUTS])
    assert set(per_set) == set(VQA_SET_NAMES)
    assert per_set[method.selection["chosen"]]["closed_accuracy"] == \
        pytest.approx(vqa_metrics(score_vqa(test, output))["closed_accuracy"])
    assert len({round(metrics["closed_accuracy"], 6) for metrics in per_set.values()}) > 1  # wording matters


# ----------------------------------------------------------------------------------------- the table itself
def _record(cell_id: str, per_set: dict | None, *, seed=0, task="binary", chosen="default", mode="fixed",
            metrics=None, status="done", method_label=None) -> CellRecord:
    spec = {"dataset": "d", "model": "m", "method": "zero_shot", "seed": seed, "task": task, "budget": "full",
            **({"method_label": method_label} if method_label else {})}
    cost = {} if per_set is None else {"prompt_sensitivity": per_set,
                                       "prompt_selection": {"mode": mode, "chosen": chosen}}
    return CellRecord(cell_id, spec, status, metrics or {}, cost)


def test_finding9_table_summarises_sets_over_seeds_and_skips_undefined_metrics(tmp_path):
    store = ResultStore(tmp_path)
    assert list(prompt_sensitivity_table(store).columns) == COLUMNS and prompt_sensitivity_table(store).empty
    for seed, shift in ((0, 0.0), (1, 0.2)):  # per set, the mean over the arm's seeds
        store.save(_record(f"a{seed}", {"default": {"auroc": 0.5 + shift}, "bare": {"auroc": 0.6 + shift},
                                        "clip": {"auroc": 0.9 + shift}, "none": {"auroc": None}},
                           seed=seed, chosen="bare" if seed else "clip", mode="validation",
                           metrics={"auroc": 0.7 + shift}))
    store.save(_record("b0", None, metrics={"auroc": 0.5}))  # no sensitivity asked: not a row
    store.save(_record("c0", {"default": {"auroc": 0.1}}, status="failed"))
    store.save(_record("v0", {"default": {"closed_accuracy": 0.4, "open_token_f1": None},
                              "qa": {"closed_accuracy": 0.6, "open_token_f1": None}},
                       task="vqa", method_label="vqa_zero_shot", metrics={"closed_accuracy": 0.4}))
    table = prompt_sensitivity_table(store)
    assert len(table) == 2  # open token F1 is undefined for every set of the VQA arm: no row
    row = table[table["method"] == "zero_shot"].iloc[0]
    assert (row["n_cells"], row["n_sets"], row["selection"], row["chosen_set"]) == (2, 3, "validation", "bare/clip")
    assert (row["min"], row["median"], row["max"]) == pytest.approx((0.6, 0.7, 1.0))
    assert row["iqr"] == pytest.approx(0.2) and row["range"] == pytest.approx(0.4)
    assert row["chosen_value"] == pytest.approx(0.8) and row["arm"] == "m+zero_shot"
    vqa = table[table["method"] == "vqa_zero_shot"].iloc[0]
    assert (vqa["metric"], vqa["n_sets"], vqa["chosen_set"]) == ("closed_accuracy", 2, "default")
    assert vqa["range"] == pytest.approx(0.2) and vqa["chosen_value"] == pytest.approx(0.4)
