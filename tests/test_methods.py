"""Methods on the demo models: zero-shot prompt ensembles and the linear probe's validation-only selection."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medrival.data.catalog import load_dataset
from medrival.methods import METHODS
from medrival.methods.features import FeatureCache
from medrival.methods.zero_shot import ZeroShotConfig, class_prompts
from medrival.models.factory import create_model


@pytest.fixture(scope="module")
def xray():
    return {split: load_dataset("demo-xray", split) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def specialist():
    return create_model("demo-specialist-clip")


def _run(name, model, data, cache, **config):
    spec = METHODS.get(name)
    method = spec.build(spec.make_config(config))
    method.fit(model, data["train"], data["val"], cache, seed=0)
    return method, method.predict(data["test"])


def test_prompt_ensemble_covers_templates_times_descriptions(xray):
    prompts = class_prompts(xray["val"].info, ZeroShotConfig())
    info = xray["val"].info
    assert [len(p) for p in prompts] == [len(info.prompt_templates) * len(d) for d in info.class_descriptions]
    names_only = class_prompts(info, ZeroShotConfig(templates=("{}",), use_descriptions=False))
    assert names_only == [["normal"], ["pneumonia"]]


def test_zero_shot_matches_a_hand_computed_reference(specialist, xray):
    cache = FeatureCache(None)
    _, output = _run("zero_shot", specialist, xray, cache)
    images = specialist.encode_images(xray["test"].images).numpy()
    classes = []
    for prompts in class_prompts(xray["val"].info, ZeroShotConfig()):
        mean = specialist.encode_texts(prompts).numpy().mean(0)
        classes.append(mean / np.linalg.norm(mean))
    logits = specialist.logit_scale * images @ np.stack(classes).T
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(output.probabilities, expected, atol=1e-5)
    assert output.trainable_parameters == 0


def test_linear_probe_selection_never_looks_at_test_labels(specialist, xray):
    cache = FeatureCache(None)
    method, output = _run("linear_probe", specialist, xray, cache)
    shuffled = dict(xray)
    test = xray["test"]
    shuffled["test"] = type(test)(test.info, "test", test.images, np.random.default_rng(0).permutation(test.labels),
                                  test.ids)
    method_shuffled, output_shuffled = _run("linear_probe", specialist, shuffled, cache)
    assert method_shuffled.chosen_C == method.chosen_C
    np.testing.assert_array_equal(output.probabilities, output_shuffled.probabilities)


def test_linear_probe_matches_sklearn_on_cached_features(specialist, xray):
    cache = FeatureCache(None)
    method, output = _run("linear_probe", specialist, xray, cache, Cs=[0.1], refit_on_train_val=False)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = {s: specialist.encode_images(xray[s].images).numpy() for s in ("train", "test")}
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=0))
    reference.fit(features["train"], xray["train"].labels)
    np.testing.assert_allclose(output.probabilities, reference.predict_proba(features["test"]), atol=1e-6)
    assert output.trainable_parameters == features["train"].shape[1] + 1
    assert roc_auc_score(xray["test"].labels, output.probabilities[:, 1]) > 0.8


def test_feature_cache_encodes_each_split_once_and_survives_restarts(specialist, xray, tmp_path):
    cache = FeatureCache(tmp_path)
    first = cache.image_features(specialist, xray["val"])
    cache.image_features(specialist, xray["val"])
    assert (cache.misses, cache.hits) == (1, 1)
    fresh = FeatureCache(tmp_path)
    np.testing.assert_array_equal(fresh.image_features(specialist, xray["val"]), first)
    assert fresh.misses == 0
    (next(tmp_path.glob("*.npy"))).write_bytes(b"damaged")
    recovered = FeatureCache(tmp_path).image_features(specialist, xray["val"])
    np.testing.assert_allclose(recovered, first, atol=1e-6)


def test_bad_options_are_clear_errors():
    from medrival.core.errors import ConfigError

    with pytest.raises(ConfigError, match="positive"):
        METHODS.get("linear_probe").make_config({"Cs": [0, 1]})
    with pytest.raises(ConfigError, match="slot"):
        METHODS.get("zero_shot").make_config({"templates": ["no slot here"]})
    with pytest.raises(Exception, match="Did you mean 'zero_shot'"):
        METHODS.get("zeroshot")
