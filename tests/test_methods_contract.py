"""Contract tests over the method registry: every registered method -- contrastive and generative, diagnosis and
VQA -- is tested here without a new test, on a tiny demo model of each family it declares and a tiny split of
each task it declares (finding 10: no method escapes the contract by being listed elsewhere by name).

Declarations (no model needed):
- a config dataclass whose defaults build, with help text on every option and a JSON-able normalised form (it is
  hashed into the cell id); families, tasks, a summary and capabilities declared, the latter at every
  ``METHODS.register`` call; methods that use no training labels are exactly the off-the-shelf ones.
On every declared (family, task), on tiny data:
- fit/predict give valid outputs (class probabilities, or one answer per question), never read the test labels
  (the test split raises on any access to them, and a copy with permuted labels gives identical outputs), are
  deterministic for a seed, and a method that saves its state reloads to identical outputs;
- label use matches the declaration: with training/validation labels that raise on access, an off-the-shelf
  method fits and predicts exactly as before, and a method that declares ``uses_labels`` is caught reading them.
On every family/task a method does not declare, fit + predict refuse (raise) instead of producing outputs.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from medrival.core.types import ClassificationSplit, TaskKind, VQASplit
from medrival.data.catalog import load_dataset
from medrival.data.fewshot import draw_shots
from medrival.methods import METHODS
from medrival.methods.base import Capabilities, help_of
from medrival.methods.features import FeatureCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest

# One tiny demo model per family; one tiny split triple (train, val, test) per task.
FAMILY_MODELS = {"contrastive": "demo-specialist-clip", "generative": "demo-specialist-vlm"}
TASKS = tuple(kind.value for kind in TaskKind)
DECLARED = [(n, f, t) for n in METHODS.names() for f in METHODS.get(n).families for t in METHODS.get(n).tasks]
UNDECLARED = [(n, f, t) for n in METHODS.names() for f in FAMILY_MODELS for t in TASKS
              if METHODS.get(n).check_supports(f, t) is not None]


def combo_id(combo) -> str:
    return "-".join(combo)


# ------------------------------------------------------------------------------------------- guarded splits


class LabelGuardedSplit(ClassificationSplit):
    """A classification split whose labels cannot be read once guarded."""

    guarded = False

    def __getattribute__(self, name):
        if name == "labels" and object.__getattribute__(self, "guarded"):
            raise AssertionError("a method read guarded labels")
        return super().__getattribute__(name)


class AnswerGuardedSplit(VQASplit):
    """A VQA split whose reference answers cannot be read once guarded (forms and options stay readable: they
    are decided from the questions, never the answers)."""

    guarded = False

    def __getattribute__(self, name):
        if name == "answers" and object.__getattribute__(self, "guarded"):
            raise AssertionError("a method read guarded reference answers")
        return super().__getattribute__(name)


def guarded(split, permute_seed: int | None = None):
    """A copy of ``split`` whose labels (classification) or answers (VQA) raise on access; ``permute_seed``
    shuffles them first, so outputs that still match the original cannot depend on them."""
    kwargs = {f.name: getattr(split, f.name) for f in dataclasses.fields(split) if f.init}
    if "parent" in kwargs:  # a few-shot subset's parent would hand out the labels unguarded
        kwargs.update(parent=None, parent_indices=None)
    key, cls = ("labels", LabelGuardedSplit) if isinstance(split, ClassificationSplit) else ("answers",
                                                                                             AnswerGuardedSplit)
    if permute_seed is not None:
        values = np.random.default_rng(permute_seed).permutation(np.asarray(kwargs[key], dtype=object
                                                                            if key == "answers" else None))
        kwargs[key] = list(values) if key == "answers" else values
    copy = cls(**kwargs)
    copy.guarded = True
    return copy


# ---------------------------------------------------------------------------------------- models and data


@pytest.fixture(scope="module")
def models():
    """Tiny demo models, created on first use (a module that only needs the contrastive one never loads the
    generative one)."""
    from medrival.models.factory import create_model

    return functools.lru_cache(maxsize=None)(create_model)


@functools.lru_cache(maxsize=None)
def splits(task: str):
    """(train, val, test) for ``task``: a few shots per class, a dozen test items."""
    if task == "vqa":
        return tuple(load_dataset("demo-xray-vqa", split, n=n) for split, n in (("train", 8), ("val", 4),
                                                                                 ("test", 8)))
    if task == "multilabel":
        from test_methods_multilabel import multilabel_split

        return multilabel_split("train", 24), multilabel_split("val", 24), multilabel_split("test", 12)
    name = {"binary": "demo-xray", "multiclass": "demo-dermoscopy"}[task]
    return (draw_shots(load_dataset(name, "train"), 4), draw_shots(load_dataset(name, "val"), 4),
            load_dataset(name, "test", n=12))


def fast_config(name: str) -> dict:
    """Defaults, with training shortened so the contract runs in seconds."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).config_class)}
    return {key: value for key, value in (("epochs", 1), ("max_new_tokens_open", 4)) if key in fields}


def fit(name, model, train, val, seed=0):
    spec = METHODS.get(name)
    method = spec.build(spec.make_config(fast_config(name)))
    try:
        method.fit(model, train, val, FeatureCache(None), seed=seed)
    except BaseException:
        close(method)  # a failed fit may have injected adapters into the shared model already
        raise
    return method


def close(method) -> None:
    """Trained adapters are removed, so the shared model is the base model again (as the study runner does)."""
    if method is not None and hasattr(method, "close"):
        method.close()


def outputs(output):
    """What a prediction is, as arrays to compare: probabilities, or the answers and yes-probabilities."""
    if hasattr(output, "probabilities"):
        return (np.asarray(output.probabilities),)
    return np.asarray(output.responses, dtype=object), np.asarray(output.yes_probability)


def assert_same(first, second, atol=1e-6):
    for a, b in zip(outputs(first), outputs(second)):
        if a.dtype == object:
            assert a.tolist() == b.tolist()
        else:
            np.testing.assert_allclose(a, b, atol=atol)


def check_output(output, test, task: str) -> None:
    assert isinstance(output.trainable_parameters, int) and output.trainable_parameters >= 0
    if task == "vqa":
        assert len(output.responses) == len(test) and all(isinstance(r, str) for r in output.responses)
        assert np.asarray(output.yes_probability).shape == (len(test),)
        return
    p = output.probabilities
    assert p.shape == (len(test), test.info.num_classes)
    assert np.all(p >= 0) and np.all(p <= 1)
    if task != "multilabel":  # one label per item: a distribution over classes
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def reload(name: str, directory: Path, model):
    # Two load signatures exist: (directory, model, features) for the contrastive ladder, (model, directory) for
    # vqa_lora; both are exercised here.
    load = METHODS.get(name).build.load
    if next(iter(inspect.signature(load).parameters)) == "model":
        return load(model, directory)
    return load(directory, model, FeatureCache(None))


# --------------------------------------------------------------------------------------- declarations only


def test_every_register_call_declares_capabilities():
    """Each ``MethodSpec(...)`` in the methods package passes ``capabilities=`` (the dataclass default must never
    decide what a method is), and the calls found are exactly the registered methods."""
    import medrival.methods as package

    calls = []  # (file, capabilities passed?) per MethodSpec(...) call
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MethodSpec":
                calls.append((path.name, any(k.arg == "capabilities" for k in node.keywords)))
    assert [file for file, declared in calls if not declared] == []
    assert len(calls) == len(METHODS)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_declares_families_tasks_summary_and_capabilities(name):
    spec = METHODS.get(name)
    assert spec.name == name and spec.summary.strip()
    assert spec.families and set(spec.families) <= set(FAMILY_MODELS)
    assert spec.tasks and set(spec.tasks) <= set(TASKS)
    assert isinstance(spec.capabilities, Capabilities)
    # label use and off-the-shelf are one fact: a method that reads no training label is used as released
    assert spec.capabilities.uses_labels == (not spec.capabilities.off_the_shelf)
    fields = {f.name for f in dataclasses.fields(spec.config_class)}
    assert spec.capabilities.prompt_selection == bool(fields & {"prompt_selection", "prompt_sensitivity"})


@pytest.mark.parametrize("name", METHODS.names())
def test_method_config_builds_from_defaults_with_help_on_every_option(name):
    spec = METHODS.get(name)
    assert dataclasses.is_dataclass(spec.config_class)
    method = spec.build(spec.make_config({}))
    assert callable(method.fit) and callable(method.predict)
    missing = [option for option, text in help_of(spec.config_class).items() if not text.strip()]
    assert not missing, f"{name}: options without help text: {missing}"
    normalised = spec.normalised_config({})
    assert json.loads(json.dumps(normalised, default=list)) is not None  # hashed into the cell id
    assert spec.normalised_config(normalised) == normalised  # defaults written out give the same config


def test_off_the_shelf_methods_exist_for_every_family_and_task_they_serve():
    """Every (family, task) that some method adapts also has an off-the-shelf baseline (the research
    questions' reference arm)."""
    def served(off_the_shelf: bool) -> set:
        return {(f, t) for n, f, t in DECLARED if METHODS.get(n).capabilities.off_the_shelf == off_the_shelf}

    assert served(False) <= served(True), served(False) - served(True)


def test_every_declared_family_and_task_has_a_contract_model_and_split():
    assert {f for _, f, _ in DECLARED} <= set(FAMILY_MODELS) and {t for _, _, t in DECLARED} <= set(TASKS)


# ------------------------------------------------------------------------------------ behaviour, per combo


@pytest.mark.parametrize("combo", DECLARED, ids=combo_id)
def test_method_outputs_never_read_test_labels_repeat_and_reload(combo, models, tmp_path):
    name, family, task = combo
    model = models(FAMILY_MODELS[family])
    train, val, test = splits(task)
    method = again = None
    try:
        method = fit(name, model, train, val)
        first = method.predict(guarded(test))
        check_output(first, test, task)
        assert_same(first, method.predict(guarded(test, permute_seed=0)), atol=0)
        if hasattr(method, "save") and hasattr(METHODS.get(name).build, "load"):
            method.save(tmp_path / name)
            close(method)
            method = reload(name, tmp_path / name, model)
            assert_same(first, method.predict(test))
        close(method)
        method = None
        again = fit(name, model, train, val)  # same seed: the same outputs
        assert_same(first, again.predict(test))
    finally:
        close(method)
        close(again)


@pytest.mark.parametrize("combo", DECLARED, ids=combo_id)
def test_method_reads_training_labels_exactly_when_it_declares_it(combo, models):
    name, family, task = combo
    model = models(FAMILY_MODELS[family])
    train, val, test = splits(task)
    if METHODS.get(name).capabilities.uses_labels:
        method = None
        try:
            with pytest.raises(AssertionError, match="read guarded"):
                method = fit(name, model, guarded(train), guarded(val))
                method.predict(test)
        finally:
            close(method)
        return
    method = blind = None
    try:
        method = fit(name, model, train, val)
        expected = method.predict(test)
        close(method)
        method = None
        blind = fit(name, model, guarded(train, permute_seed=1), guarded(val, permute_seed=2))
        assert_same(expected, blind.predict(test), atol=0)
    finally:
        close(method)
        close(blind)


@pytest.mark.parametrize("combo", UNDECLARED, ids=combo_id)
def test_method_refuses_a_family_or_task_it_does_not_declare(combo, models):
    """An undeclared use fails instead of producing numbers (the runner skips it first, with the reason)."""
    name, family, task = combo
    assert METHODS.get(name).check_supports(family, task)
    model = models(FAMILY_MODELS[family])
    train, val, test = splits(task)
    method = None
    try:
        with pytest.raises(Exception):
            method = fit(name, model, train, val)
            method.predict(test)
    finally:
        close(method)
