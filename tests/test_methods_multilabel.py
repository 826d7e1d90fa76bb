"""Multilabel support of zero-shot, the linear probe and kNN (several independent findings per image).

The demo target is genuinely multilabel: demo-dermoscopy images labelled "melanoma", "seborrheic keratosis" and
"large lesion" (the lesion radius the world drew), so a row carries 0, 1 or 2 positives. Checked here: independent
probabilities in [0, 1]; zero-shot equals the hand-computed CheXzero positive/negative prompt softmax; the probe
equals one sklearn logistic regression per label; kNN and the probe learn well beyond zero-shot; save/load;
single-class labels; validation-only selection; and a study on an NIH ChestX-ray14 release fixture end to end.
"""
from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from medrival.core.types import ClassificationSplit, TaskKind
from medrival.data import world
from medrival.data.catalog import dataset_info, load_dataset
from medrival.methods import METHODS
from medrival.methods.features import FeatureCache
from medrival.methods.selection import validation_auroc
from medrival.methods.zero_shot import ZeroShotConfig, multilabel_prompts
from medrival.metrics import multilabel_auroc
from medrival.models.factory import create_model

MULTILABEL_METHODS = ("zero_shot", "knn", "linear_probe")
LABELS = ("melanoma", "seborrheic keratosis", "large lesion")
SIZES = {"train": 300, "val": 150, "test": 300}


def multilabel_split(split: str, n: int) -> ClassificationSplit:
    """n demo-dermoscopy images with the 3-label target above (the world's own attributes, so it is learnable)."""
    base = load_dataset("demo-dermoscopy", split, n=n)
    large = np.asarray([attrs["size"] == "large" for attrs in world.render("dermoscopy", split, n).attrs])
    labels = np.stack([base.labels == 1, base.labels == 2, large], axis=1).astype(np.int64)
    descriptions = base.info.class_descriptions
    info = dataclasses.replace(base.info, name="demo-dermoscopy-multilabel", task=TaskKind.MULTILABEL,
                               class_names=LABELS,
                               class_descriptions=(descriptions[1], descriptions[2], ("a large lesion", "a big mole")))
    return ClassificationSplit(info, split, base.images, labels, base.ids)


def with_labels(split: ClassificationSplit, labels: np.ndarray) -> ClassificationSplit:
    return ClassificationSplit(split.info, split.split, split.images, labels, split.ids)


@pytest.fixture(scope="module")
def model():
    return create_model("demo-specialist-clip")


@pytest.fixture(scope="module")
def cache():
    return FeatureCache(None)


@pytest.fixture(scope="module")
def data():
    return {split: multilabel_split(split, n) for split, n in SIZES.items()}


@pytest.fixture(scope="module")
def fit(model, cache):
    """fit(name, train, val, **config) -> fitted method, memoised so tests share fits."""
    fitted = {}

    def run(name, train, val, **config):
        key = (name, id(train), id(val), json.dumps(config, sort_keys=True))
        if key not in fitted:
            spec = METHODS.get(name)
            method = spec.build(spec.make_config(config))
            method.fit(model, train, val, cache, seed=0)
            fitted[key] = (method, train, val)  # holding the splits keeps their ids from being reused
        return fitted[key][0]
    return run


def test_demo_target_is_genuinely_multilabel(data):
    positives = data["train"].labels.sum(axis=1)
    assert set(np.unique(positives)) == {0, 1, 2}


def test_only_the_three_methods_declare_multilabel():
    declared = {name for name in METHODS.names() if "multilabel" in METHODS.get(name).tasks}
    assert declared == set(MULTILABEL_METHODS)
    assert "not multilabel" in METHODS.get("tip_adapter").check_supports("contrastive", "multilabel")


# ---------------------------------------------------------------------------------------------- zero-shot
def test_multilabel_prompts_pair_each_finding_with_its_negation():
    info = dataset_info("nih-chestxray14")
    positive, negative = multilabel_prompts(info, ZeroShotConfig())[info.class_names.index("Cardiomegaly")]
    assert "a chest x-ray showing cardiomegaly." in positive
    assert "a chest x-ray showing no cardiomegaly." in negative
    assert len(positive) == len(negative) == len(info.prompt_templates)
    derm = multilabel_split("val", 4).info
    _, negative = multilabel_prompts(derm, ZeroShotConfig(templates=("{}",)))[2]
    assert negative == ["no large lesion", "no big mole"]  # the article is dropped: not "no a large lesion"


def _ensemble(model, prompts: list[str]) -> np.ndarray:
    mean = model.encode_texts(prompts).numpy().astype(np.float64).mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_zero_shot_is_the_pairwise_softmax_of_positive_and_negative_prompts(fit, model, data):
    test, info = data["test"], data["test"].info
    probabilities = fit("zero_shot", data["train"], data["val"]).predict(test).probabilities
    images = model.encode_images(test.images).numpy().astype(np.float64)
    for j, phrases in enumerate(info.class_descriptions):  # the prompts rebuilt by hand, not by the module
        positive = [t.format(p) for t in info.prompt_templates for p in phrases]
        negative = [t.format("no " + re.sub(r"^(a|an) ", "", p)) for t in info.prompt_templates for p in phrases]
        logits = model.logit_scale * np.stack(
            [images @ _ensemble(model, positive), images @ _ensemble(model, negative)], axis=1)
        pair = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probabilities[:, j], pair[:, 0] / pair.sum(axis=1), atol=1e-6)


def test_zero_shot_encodes_each_prompt_set_once_per_model(model, data, monkeypatch):
    encoded = []
    original = model.encode_texts
    monkeypatch.setattr(model, "encode_texts", lambda texts: encoded.append(list(texts)) or original(texts))
    cache, spec = FeatureCache(None), METHODS.get("zero_shot")
    for _ in range(2):  # a second cell of the same model reuses the cached prompt embeddings
        spec.build(spec.make_config({})).fit(model, data["train"], data["val"], cache)
    assert len(encoded) == 2 * len(LABELS)  # one positive and one negative set per label
    expected = [prompts for pair in multilabel_prompts(data["val"].info, ZeroShotConfig()) for prompts in pair]
    assert sorted(encoded) == sorted(expected)


# ---------------------------------------------------------------------------------------------- all three
def _macro_auroc(split, probabilities) -> float:
    return float(np.mean([roc_auc_score(split.labels[:, j], probabilities[:, j]) for j in range(len(LABELS))]))


@pytest.mark.parametrize("name", MULTILABEL_METHODS)
def test_outputs_are_independent_label_probabilities(name, fit, data):
    output = fit(name, data["train"], data["val"]).predict(data["test"])
    probabilities = output.probabilities
    assert probabilities.shape == (SIZES["test"], len(LABELS))
    assert np.isfinite(probabilities).all() and probabilities.min() >= 0 and probabilities.max() <= 1
    assert np.abs(probabilities.sum(axis=1) - 1).max() > 0.2  # not a softmax over labels
    json.dumps(output.extras, allow_nan=False)  # extras are stored as JSON in the cost record


def test_knn_and_probe_learn_far_beyond_zero_shot(fit, data):
    test = data["test"]
    auroc = {name: _macro_auroc(test, fit(name, data["train"], data["val"]).predict(test).probabilities)
             for name in MULTILABEL_METHODS}
    # Measured: zero-shot 0.335 (the specialist is out of domain on dermoscopy), kNN 0.881, probe 0.953.
    assert auroc["knn"] > max(0.8, auroc["zero_shot"] + 0.3)
    assert auroc["linear_probe"] > max(0.88, auroc["zero_shot"] + 0.3)
    assert auroc["linear_probe"] == pytest.approx(multilabel_auroc(test.labels, fit(
        "linear_probe", data["train"], data["val"]).predict(test).probabilities))


@pytest.mark.parametrize("name", MULTILABEL_METHODS)
def test_test_labels_change_neither_predictions_nor_choices(name, fit, data):
    method = fit(name, data["train"], data["val"])
    test = data["test"]
    clean = method.predict(test)
    poisoned = method.predict(with_labels(test, np.random.default_rng(1).permutation(test.labels)))
    np.testing.assert_array_equal(clean.probabilities, poisoned.probabilities)
    assert clean.extras == poisoned.extras


@pytest.mark.parametrize("name", ["knn", "linear_probe"])
def test_selection_reads_validation_labels(name, fit, data):
    honest = fit(name, data["train"], data["val"])
    shuffled_val = with_labels(data["val"], np.random.default_rng(0).permutation(data["val"].labels))
    shuffled = fit(name, data["train"], shuffled_val)
    assert honest.validation_auroc > 0.85 and abs(shuffled.validation_auroc - 0.5) < 0.1


@pytest.mark.parametrize("name", ["knn", "linear_probe"])
def test_saved_method_reloads_to_identical_probabilities(name, fit, data, model, tmp_path):
    method = fit(name, data["train"], data["val"])
    method.save(tmp_path / name)
    reloaded = METHODS.get(name).build.load(tmp_path / name, model, FeatureCache(None))
    expected, again = method.predict(data["test"]), reloaded.predict(data["test"])
    np.testing.assert_array_equal(again.probabilities, expected.probabilities)
    assert again.extras == expected.extras and again.trainable_parameters == expected.trainable_parameters


# ---------------------------------------------------------------------------------------------- linear probe
def _reference_probe(x_train, labels, x_test, C, balanced=False):
    """One sklearn logistic regression per label on the standardised features: (coef L x D, intercept L, probs)."""
    scaler = StandardScaler().fit(x_train)
    coef, intercept, probabilities = [], [], []
    for j in range(labels.shape[1]):
        reference = LogisticRegression(C=C, max_iter=2000, random_state=0,
                                       class_weight="balanced" if balanced else None)
        reference.fit(scaler.transform(x_train), labels[:, j])
        coef.append(reference.coef_[0])
        intercept.append(reference.intercept_[0])
        probabilities.append(reference.predict_proba(scaler.transform(x_test))[:, 1])
    return np.stack(coef), np.asarray(intercept), np.stack(probabilities, axis=1)


@pytest.mark.parametrize("balanced", [False, True])
def test_probe_equals_one_sklearn_logistic_regression_per_label(balanced, fit, model, cache, data):
    method = fit("linear_probe", data["train"], data["val"], class_balanced=balanced)
    x_train, x_test = (cache.image_features(model, data[s]) for s in ("train", "test"))
    coef, intercept, probabilities = _reference_probe(x_train, data["train"].labels, x_test, method.chosen_C,
                                                      balanced)
    assert method.probe["coef"].shape == (len(LABELS), x_train.shape[1]) and method.probe["intercept"].shape == (3,)
    np.testing.assert_allclose(method.probe["coef"], coef, atol=1e-6)
    np.testing.assert_allclose(method.probe["intercept"], intercept, atol=1e-6)
    output = method.predict(data["test"])
    np.testing.assert_allclose(output.probabilities, probabilities, atol=1e-6)
    assert output.trainable_parameters == coef.size + intercept.size


def test_probe_checkpoint_is_plain_arrays(fit, data, tmp_path):
    method = fit("linear_probe", data["train"], data["val"])
    method.save(tmp_path)
    arrays = load_file(str(tmp_path / "state.safetensors"))
    assert sorted(arrays) == ["coef", "fitted", "intercept", "mean", "prevalence", "scale"]
    assert arrays["coef"].shape[0] == arrays["intercept"].shape[0] == len(LABELS)


@pytest.mark.parametrize("value", [0, 1])
def test_label_with_one_training_class_predicts_its_prevalence(value, fit, data, model, tmp_path):
    train = data["train"]
    labels = train.labels.copy()
    labels[:, 2] = value  # "large lesion": every training image the same
    method = fit("linear_probe", with_labels(train, labels), data["val"])
    output = method.predict(data["test"])
    np.testing.assert_array_equal(output.probabilities[:, 2], float(value))
    assert output.extras["constant_labels"] == {"large lesion": float(value)}
    assert "large lesion" in output.extras["notes"][0]
    assert output.trainable_parameters == 2 * (method.probe["coef"].shape[1] + 1)
    for j in (0, 1):  # the other labels are still learned
        assert roc_auc_score(data["test"].labels[:, j], output.probabilities[:, j]) > 0.9
    method.save(tmp_path)
    again = METHODS.get("linear_probe").build.load(tmp_path, model, FeatureCache(None)).predict(data["test"])
    np.testing.assert_array_equal(again.probabilities, output.probabilities)
    assert again.extras == output.extras
    knn = fit("knn", with_labels(train, labels), data["val"]).predict(data["test"])
    np.testing.assert_allclose(knn.probabilities[:, 2], float(value))


def test_label_with_one_validation_class_is_left_out_of_selection_only(fit, data):
    val = data["val"]
    labels = val.labels.copy()
    labels[:, 0] = 0  # no melanoma in validation: its AUROC is undefined there
    method = fit("linear_probe", data["train"], with_labels(val, labels))
    probe_val = method.predict(val).probabilities  # the final probe is the chosen candidate (no refit on val)
    expected = np.mean([roc_auc_score(labels[:, j], probe_val[:, j]) for j in (1, 2)])
    assert method.validation_auroc == pytest.approx(expected)
    assert fit("knn", data["train"], with_labels(val, labels)).validation_auroc is not None


def test_validation_auroc_averages_only_labels_defined_in_validation():
    labels = np.array([[0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]])
    scores = np.array([[0.1, 0.5, 0.8], [0.9, 0.2, 0.1], [0.4, 0.3, 0.7], [0.2, 0.9, 0.6]])
    expected = np.mean([roc_auc_score(labels[:, j], scores[:, j]) for j in (0, 2)])
    assert validation_auroc(TaskKind.MULTILABEL, labels, scores) == pytest.approx(expected)
    assert validation_auroc("multilabel", labels[:, 1:2], scores[:, 1:2]) == -np.inf
    assert validation_auroc("multilabel", labels[:0], scores[:0]) == -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # selection on a partly undefined split must not warn either
        validation_auroc("multilabel", labels, scores)


# ---------------------------------------------------------------------------------------------- a study
STUDY = """
name: multilabel-release
models: [demo-generalist-clip]
datasets: [nih-chestxray14]
methods: [zero_shot, knn, linear_probe]
data_roots: {{nih-chestxray14: {root}}}
"""


def test_study_on_an_nih_release_fixture_runs_every_cell(tmp_path):
    from release_fixtures import write_fixture

    from medrival.study.runner import run_study
    from medrival.study.spec import parse_study

    root = write_fixture("nih-chestxray14", tmp_path / "nih")
    run = run_study(parse_study(STUDY.format(root=root)), tmp_path / "out")
    frame = run.frame()
    assert len(frame) == 3 and set(frame["status"]) == {"done"}, frame.get("error")
    findings = dataset_info("nih-chestxray14").class_names
    for record in run.store.records():
        predictions = run.store.predictions(record.cell_id)
        for name in findings:
            assert {f"label_{name}", f"prob_{name}"} <= set(predictions.columns)
        probabilities = predictions[[f"prob_{name}" for name in findings]].to_numpy()
        assert probabilities.min() >= 0 and probabilities.max() <= 1
        assert "prediction" not in predictions.columns  # no single predicted class for a multilabel row
