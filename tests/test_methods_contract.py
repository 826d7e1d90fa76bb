"""Contract tests over the method registry: every registered method is tested here without a new test.

- It never reads the test labels: the test split it predicts raises on any access to ``labels``, and a copy with
  permuted labels gives bit-identical probabilities.
- Its outputs are valid class probabilities, it is deterministic for a seed, it reports its trainable parameters,
  and a method with learned state saves and reloads to identical predictions.
- A method that declares the multilabel task passes the same contract on a multilabel split (N x L 0/1 labels),
  with independent label probabilities in [0, 1] instead of rows summing to 1.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medrival.core.types import ClassificationSplit
from medrival.data.catalog import load_dataset
from medrival.data.fewshot import draw_shots
from medrival.methods import METHODS
from medrival.methods.features import FeatureCache
from medrival.models.factory import create_model


class LabelGuardedSplit(ClassificationSplit):
    """A test split whose labels cannot be read once guarded."""

    guarded = False

    def __getattribute__(self, name):
        if name == "labels" and object.__getattribute__(self, "guarded"):
            raise AssertionError("a method read the test labels")
        return super().__getattribute__(name)


def guarded(split: ClassificationSplit, labels: np.ndarray) -> LabelGuardedSplit:
    copy = LabelGuardedSplit(split.info, split.split, split.images, labels, split.ids, dict(split.meta))
    copy.guarded = True
    return copy


def fast_config(name: str) -> dict:
    """Defaults, with training shortened so the contract runs in seconds."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).config_class)}
    return {"epochs": 2} if "epochs" in fields else {}


@pytest.fixture(scope="module")
def model():
    return create_model("demo-specialist-clip")


@pytest.fixture(scope="module")
def data():
    train = draw_shots(load_dataset("demo-dermoscopy", "train"), 8)
    val = draw_shots(load_dataset("demo-dermoscopy", "val"), 8)
    return train, val, load_dataset("demo-dermoscopy", "test", n=60)


def fit(name, model, train, val, seed=0):
    spec = METHODS.get(name)
    method = spec.build(spec.make_config(fast_config(name)))
    method.fit(model, train, val, FeatureCache(None), seed=seed)
    return method


_FITTED: dict[str, object] = {}
# This contract is for classification methods of contrastive models; generative methods have theirs in
# tests/test_methods_vqa.py.
CONTRASTIVE = [n for n in METHODS.names() if "contrastive" in METHODS.get(n).families]


def fitted(key, model, data, name=None):
    """One fit per method (and task) for the whole module, under ``key``; the determinism test fits a second
    one itself. ``name`` is the method when ``key`` is not its name."""
    if key not in _FITTED:
        _FITTED[key] = fit(name or key, model, *data[:2])
    return _FITTED[key]


@pytest.mark.parametrize("name", CONTRASTIVE)
def test_method_never_reads_test_labels(name, model, data):
    test = data[2]
    method = fitted(name, model, data)
    rng = np.random.default_rng(0)
    first = method.predict(guarded(test, test.labels)).probabilities
    poisoned = method.predict(guarded(test, rng.permutation(test.labels))).probabilities
    np.testing.assert_array_equal(first, poisoned)


@pytest.mark.parametrize("name", CONTRASTIVE)
def test_method_outputs_probabilities_deterministically(name, model, data):
    train, val, test = data
    output = fitted(name, model, data).predict(test)
    assert output.probabilities.shape == (len(test), test.info.num_classes)
    assert np.all(output.probabilities >= 0)
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert isinstance(output.trainable_parameters, int) and output.trainable_parameters >= 0
    again = fit(name, model, train, val).predict(test)
    np.testing.assert_allclose(again.probabilities, output.probabilities, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in CONTRASTIVE if hasattr(METHODS.get(n).build, "load")])
def test_method_state_saves_and_reloads(name, model, data, tmp_path):
    test = data[2]
    method = fitted(name, model, data)
    method.save(tmp_path / name)
    reloaded = METHODS.get(name).build.load(tmp_path / name, model, FeatureCache(None))
    np.testing.assert_allclose(reloaded.predict(test).probabilities, method.predict(test).probabilities, atol=1e-6)


# ---------------------------------------------------------------------------------------------- multilabel
MULTILABEL = [n for n in CONTRASTIVE if "multilabel" in METHODS.get(n).tasks]


@pytest.fixture(scope="module")
def multilabel_data():
    from test_methods_multilabel import multilabel_split

    return multilabel_split("train", 48), multilabel_split("val", 48), multilabel_split("test", 60)


@pytest.mark.parametrize("name", MULTILABEL)
def test_multilabel_method_never_reads_test_labels(name, model, multilabel_data):
    test = multilabel_data[2]
    method = fitted(f"{name}/multilabel", model, multilabel_data, name)
    rng = np.random.default_rng(0)
    first = method.predict(guarded(test, test.labels)).probabilities
    poisoned = method.predict(guarded(test, rng.permutation(test.labels))).probabilities
    np.testing.assert_array_equal(first, poisoned)


@pytest.mark.parametrize("name", MULTILABEL)
def test_multilabel_method_outputs_label_probabilities_deterministically(name, model, multilabel_data):
    train, val, test = multilabel_data
    output = fitted(f"{name}/multilabel", model, multilabel_data, name).predict(test)
    assert output.probabilities.shape == (len(test), test.info.num_classes)
    assert np.all(output.probabilities >= 0) and np.all(output.probabilities <= 1)
    assert isinstance(output.trainable_parameters, int) and output.trainable_parameters >= 0
    again = fit(name, model, train, val).predict(test)
    np.testing.assert_allclose(again.probabilities, output.probabilities, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in MULTILABEL if hasattr(METHODS.get(n).build, "load")])
def test_multilabel_method_state_saves_and_reloads(name, model, multilabel_data, tmp_path):
    test = multilabel_data[2]
    method = fitted(f"{name}/multilabel", model, multilabel_data, name)
    method.save(tmp_path / name)
    reloaded = METHODS.get(name).build.load(tmp_path / name, model, FeatureCache(None))
    np.testing.assert_allclose(reloaded.predict(test).probabilities, method.predict(test).probabilities, atol=1e-6)
