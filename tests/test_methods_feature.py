"""The feature-space ladder on the demo world: kNN, linear probe, Tip-Adapter(-F), CLIP-Adapter and CoOp.

Each method learns something real (beats chance, and the trained ones beat zero-shot where zero-shot is weak),
works from one example per class, picks its hyperparameters on validation only, is reproducible for a seed and
reloads from its checkpoint to identical probabilities. Reference checks: kNN against sklearn, the linear probe
against sklearn, Tip-Adapter against the paper's equation and zero-shot (alpha = 0), untrained CoOp against the
zero-shot prompt it starts from.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import ClassificationSplit
from medrival.data.catalog import load_dataset
from medrival.methods import METHODS
from medrival.methods.features import FeatureCache
from medrival.methods.zero_shot import ZeroShotConfig, zero_shot_classifier
from medrival.models.factory import create_model

FEATURE_METHODS = ["linear_probe", "knn", "tip_adapter", "tip_adapter_f", "clip_adapter", "coop"]
# Short training so the file runs in seconds; enough steps for each method to learn on the demo world.
FAST = {"tip_adapter_f": {"epochs": 5}, "clip_adapter": {"epochs": 15, "residual_ratios": [0.6]},
        "coop": {"epochs": 8, "batch_size": 8, "lr": 0.005}}


def shots(split: ClassificationSplit, k: int, seed: int = 0) -> ClassificationSplit:
    """k examples of every class, as a new split made by indexing the arrays."""
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(split.labels == c), k, replace=False)
                                   for c in range(split.info.num_classes)]))
    return ClassificationSplit(split.info, split.split, split.images[rows], split.labels[rows], split.ids[rows])


def with_labels(split: ClassificationSplit, labels: np.ndarray) -> ClassificationSplit:
    return ClassificationSplit(split.info, split.split, split.images, labels, split.ids)


@pytest.fixture(scope="module")
def model():
    return create_model("demo-specialist-clip")


@pytest.fixture(scope="module")
def cache():
    return FeatureCache(None)  # shared by the whole file: every split is encoded once


@pytest.fixture(scope="module")
def xray():
    train = load_dataset("demo-xray", "train")
    return {"train": train, "k16": shots(train, 16), "k1": shots(train, 1), "val": load_dataset("demo-xray", "val"),
            "test": load_dataset("demo-xray", "test", n=300)}


@pytest.fixture(scope="module")
def derm():
    return {split: load_dataset("demo-dermoscopy", split, n=150) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fit(model, cache):
    """fit(name, train, val, seed=0, **config) -> fitted method; memoised so tests share fits."""
    fitted = {}

    def run(name, train, val, seed=0, **config):
        key = (name, id(train), id(val), seed, json.dumps(config, sort_keys=True))
        if key not in fitted:
            spec = METHODS.get(name)
            method = spec.build(spec.make_config({**FAST.get(name, {}), **config}))
            method.fit(model, train, val, cache, seed=seed)
            fitted[key] = (method, train, val)  # holding the splits keeps their ids from being reused
        return fitted[key][0]
    return run


def _check_probabilities(probabilities: np.ndarray, n: int, k: int) -> None:
    assert probabilities.shape == (n, k)
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def _auroc(split, probabilities) -> float:
    return roc_auc_score(split.labels, probabilities[:, 1])


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_method_learns_from_16_shots_and_outputs_probabilities(name, fit, xray, model, cache):
    method = fit(name, xray["k16"], xray["val"])
    output = method.predict(xray["test"])
    _check_probabilities(output.probabilities, len(xray["test"]), 2)
    zero_shot = fit("zero_shot", xray["k16"], xray["val"]).predict(xray["test"])
    # The specialist's zero-shot x-ray AUROC is ~0.67: every method must learn well beyond it.
    assert _auroc(xray["test"], output.probabilities) > max(0.8, _auroc(xray["test"], zero_shot.probabilities) + 0.1)
    json.dumps(output.extras, allow_nan=False)  # extras are stored as JSON in the cost record
    assert isinstance(output.trainable_parameters, int)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_method_works_with_one_example_per_class(name, fit, xray, derm):
    for data, train in ((xray, xray["k1"]), (derm, shots(derm["train"], 1))):
        output = fit(name, train, data["val"]).predict(data["test"])
        _check_probabilities(output.probabilities, len(data["test"]), data["test"].info.num_classes)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_poisoned_test_labels_change_neither_predictions_nor_choices(name, fit, xray):
    method = fit(name, xray["k16"], xray["val"])
    test = xray["test"]
    clean = method.predict(test)
    poisoned = method.predict(with_labels(test, np.random.default_rng(1).permutation(test.labels)))
    np.testing.assert_array_equal(clean.probabilities, poisoned.probabilities)
    assert clean.extras == poisoned.extras


def test_selection_reads_validation_labels(fit, xray):
    """The chosen alpha/beta come from validation: shuffled validation labels make validation AUROC chance."""
    honest = fit("tip_adapter", xray["k16"], xray["val"])
    shuffled_val = with_labels(xray["val"], np.random.default_rng(0).permutation(xray["val"].labels))
    shuffled = fit("tip_adapter", xray["k16"], shuffled_val)
    assert honest.validation_auroc > 0.95 and abs(shuffled.validation_auroc - 0.5) < 0.15


@pytest.mark.parametrize("name", ["tip_adapter_f", "clip_adapter", "coop"])
def test_same_seed_gives_identical_outputs(name, fit, xray, model, cache):
    first = fit(name, xray["k16"], xray["val"], seed=3).predict(xray["test"]).probabilities
    spec = METHODS.get(name)
    again = spec.build(spec.make_config(FAST[name]))
    again.fit(model, xray["k16"], xray["val"], cache, seed=3)
    np.testing.assert_array_equal(again.predict(xray["test"]).probabilities, first)


def test_seed_changes_randomly_initialised_weights(fit, xray):
    adapters = [fit("clip_adapter", xray["k16"], xray["val"], seed=s).adapter for s in (0, 1)]
    assert not np.allclose(adapters[0][0].weight.detach().numpy(), adapters[1][0].weight.detach().numpy())
    contexts = [fit("coop", xray["k16"], xray["val"], seed=s, context_init="", epochs=0).context for s in (0, 1)]
    assert contexts[0].shape == (4, 64) and not np.allclose(contexts[0].numpy(), contexts[1].numpy())


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_saved_method_reloads_to_identical_probabilities(name, fit, xray, model, cache, tmp_path):
    method = fit(name, xray["k16"], xray["val"])
    method.save(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["method.json", "state.safetensors"]
    reloaded = METHODS.get(name).build.load(tmp_path / name, model, FeatureCache(None))
    expected = method.predict(xray["test"])
    again = reloaded.predict(xray["test"])
    np.testing.assert_array_equal(again.probabilities, expected.probabilities)
    assert again.extras == expected.extras and again.trainable_parameters == expected.trainable_parameters


def test_checkpoint_of_another_method_or_folder_is_refused(fit, xray, model, tmp_path):
    fit("knn", xray["k16"], xray["val"]).save(tmp_path / "knn")
    with pytest.raises(ConfigError, match="holds method 'knn'"):
        METHODS.get("linear_probe").build.load(tmp_path / "knn", model, FeatureCache(None))
    with pytest.raises(DataError, match="not a medrival method checkpoint"):
        METHODS.get("knn").build.load(tmp_path / "missing", model, FeatureCache(None))


# ---------------------------------------------------------------------------------------------- kNN
@pytest.mark.parametrize("k", [1, 5, 15])
def test_knn_matches_sklearn_cosine_neighbours(k, fit, model, cache, xray, derm):
    for data in (xray, derm):
        output = fit("knn", data["train"], data["val"], ks=[k]).predict(data["test"])
        features = {s: cache.image_features(model, data[s]) for s in ("train", "test")}
        reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
        reference.fit(features["train"], data["train"].labels)
        np.testing.assert_allclose(output.probabilities, reference.predict_proba(features["test"]), atol=1e-12)


def test_knn_refuses_a_k_above_the_training_size_and_weights_by_similarity(fit, model, cache, xray):
    with pytest.raises(DataError, match=r"every candidate k \(\[50\]\) exceeds the 2 training examples"):
        fit("knn", xray["k1"], xray["val"], ks=[50])  # it would vote with the whole split: chance level
    assert fit("knn", xray["k1"], xray["val"], ks=[1, 50]).chosen_k in (1, 2)  # larger candidates are capped
    weighted = fit("knn", xray["k1"], xray["val"], ks=[2], weighting="similarity", temperature=0.1)
    similarity = cache.image_features(model, xray["test"]) @ cache.image_features(model, xray["k1"]).T
    votes = np.exp(similarity / 0.1)
    expected = np.stack([votes[:, xray["k1"].labels == c].sum(1) for c in (0, 1)], axis=1)
    np.testing.assert_allclose(weighted.predict(xray["test"]).probabilities, expected / expected.sum(1, keepdims=True),
                               atol=1e-6)


# ---------------------------------------------------------------------------------------------- linear probe
def test_linear_probe_class_balanced_matches_sklearn_on_multiclass(fit, model, cache, derm):
    output = fit("linear_probe", derm["train"], derm["val"], Cs=[1.0], refit_on_train_val=False,
                 class_balanced=True).predict(derm["test"])
    x_train, x_test = (cache.image_features(model, derm[s]) for s in ("train", "test"))
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=0,
                                                                   class_weight="balanced"))
    reference.fit(x_train, derm["train"].labels)
    np.testing.assert_allclose(output.probabilities, reference.predict_proba(x_test), atol=1e-6)


def test_class_balanced_probe_lifts_the_minority_class(fit, xray):
    train = xray["train"]
    rows = np.concatenate([np.flatnonzero(train.labels == 0)[:60], np.flatnonzero(train.labels == 1)[:5]])
    imbalanced = ClassificationSplit(train.info, "train", train.images[rows], train.labels[rows], train.ids[rows])
    plain, balanced = (fit("linear_probe", imbalanced, xray["val"], Cs=[0.01], refit_on_train_val=False,
                           class_balanced=flag).predict(xray["test"]).probabilities for flag in (False, True))
    assert balanced[:, 1].mean() > plain[:, 1].mean() + 0.05


def test_linear_probe_with_one_shot_and_a_single_class_validation_split(fit, xray, model, cache):
    val = xray["val"]
    one_class_val = ClassificationSplit(val.info, "val", val.images[val.labels == 0][:20],
                                        val.labels[val.labels == 0][:20], val.ids[val.labels == 0][:20])
    method = fit("linear_probe", xray["k1"], one_class_val, Cs=[0.1, 1.0])
    assert method.chosen_C == 0.1 and method.validation_auroc is None  # undefined AUROC: the simplest C
    probabilities = method.predict(xray["test"]).probabilities
    # Two training images say little (this draw scores 0.33 on test); the point is a usable, valid probe.
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(1), 1)
    assert len(np.unique(probabilities[:, 1].round(6))) > 10
    single = shots(xray["train"], 1)
    single = ClassificationSplit(single.info, "train", single.images[:1], single.labels[:1], single.ids[:1])
    with pytest.raises(DataError, match="at least two classes"):
        fit("linear_probe", single, val)


def test_linear_probe_checkpoint_is_arrays_not_pickle(fit, xray, tmp_path):
    method = fit("linear_probe", xray["k16"], xray["val"])
    method.save(tmp_path)
    arrays = load_file(str(tmp_path / "state.safetensors"))
    assert sorted(arrays) == ["classes", "coef", "intercept", "mean", "scale"]
    assert json.loads((tmp_path / "method.json").read_text())["chosen"]["chosen_C"] == method.chosen_C


# ---------------------------------------------------------------------------------------------- Tip-Adapter
def test_tip_adapter_with_alpha_zero_is_zero_shot_exactly(fit, xray):
    tip = fit("tip_adapter", xray["k16"], xray["val"], alphas=[0.0])
    zero_shot = fit("zero_shot", xray["k16"], xray["val"])
    np.testing.assert_array_equal(tip.predict(xray["test"]).probabilities,
                                  zero_shot.predict(xray["test"]).probabilities)


def test_tip_adapter_follows_the_paper_equation(fit, model, cache, xray):
    tip = fit("tip_adapter", xray["k16"], xray["val"], alphas=[2.0], betas=[3.0])
    f, keys = cache.image_features(model, xray["test"]), cache.image_features(model, xray["k16"])
    classes = zero_shot_classifier(model, xray["val"].info)
    one_hot = np.eye(2)[xray["k16"].labels]
    logits = model.logit_scale * f @ classes.T + 2.0 * np.exp(-3.0 * (1 - f @ keys.T)) @ one_hot
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(tip.predict(xray["test"]).probabilities, expected / expected.sum(1, keepdims=True),
                               atol=1e-5)


def test_tip_adapter_f_trains_keys_without_losing_validation_auroc(fit, xray):
    free = fit("tip_adapter", xray["k1"], xray["val"])
    untrained = fit("tip_adapter_f", xray["k1"], xray["val"], epochs=0)
    np.testing.assert_array_equal(untrained.predict(xray["test"]).probabilities,
                                  free.predict(xray["test"]).probabilities)
    trained = fit("tip_adapter_f", xray["k1"], xray["val"], epochs=10, lr=0.01)
    assert trained.best_epoch > 0 and not np.array_equal(trained.keys, free.keys)
    assert trained.validation_auroc > free.validation_auroc
    assert trained.predict(xray["test"]).trainable_parameters == trained.keys.size


# ---------------------------------------------------------------------------------------------- CoOp
def test_untrained_coop_is_zero_shot_with_its_initial_prompt(fit, xray):
    coop = fit("coop", xray["k16"], xray["val"], epochs=0)
    config = ZeroShotConfig(templates=("a photo of a {}.",), use_descriptions=False)
    zero_shot = fit("zero_shot", xray["k16"], xray["val"], **{"templates": config.templates,
                                                             "use_descriptions": False})
    np.testing.assert_allclose(coop.predict(xray["test"]).probabilities, zero_shot.predict(xray["test"]).probabilities,
                               atol=1e-5)


def test_coop_trains_only_the_context(fit, xray, model):
    before = {name: p.detach().clone() for name, p in model.model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.model.named_parameters()}
    coop = fit("coop", xray["k16"], xray["val"], class_specific=True, seed=5)
    assert all(np.array_equal(p.detach().numpy(), before[n].numpy()) for n, p in model.model.named_parameters())
    assert flags == {name: p.requires_grad for name, p in model.model.named_parameters()}
    assert coop.best_epoch > 0 and coop.context.shape == (2, 4, 64)
    assert coop.predict(xray["test"]).trainable_parameters == 2 * 4 * 64


def test_coop_init_phrase_must_match_n_ctx(fit, xray):
    with pytest.raises(ConfigError, match="n_ctx"):
        fit("coop", xray["k1"], xray["val"], n_ctx=16)


# ---------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("name, option, value", [
    ("knn", "ks", [0, 3]), ("knn", "weighting", "distance"), ("knn", "temperature", 0),
    ("linear_probe", "max_iter", 0), ("linear_probe", "Cs", ["big"]),
    ("tip_adapter", "alphas", [-1.0]), ("tip_adapter", "alphas", "many"), ("tip_adapter", "betas", [0.0]),
    ("tip_adapter_f", "epochs", -1), ("tip_adapter_f", "train_beta", 0),
    ("tip_adapter_f", "lr", 0), ("coop", "lr", "fast"), ("clip_adapter", "residual_ratios", [1.5]),
    ("clip_adapter", "residual_ratios", ["a"]), ("knn", "temperature", "warm"), ("clip_adapter", "reduction", 0),
    ("clip_adapter", "batch_size", -2), ("coop", "n_ctx", 0), ("coop", "class_text", "synonym"),
    ("coop", "weight_decay", -0.1),
])
def test_bad_option_values_are_config_errors_naming_the_option(name, option, value):
    with pytest.raises(ConfigError, match=f"{name} {option}"):
        METHODS.get(name).make_config({option: value})
