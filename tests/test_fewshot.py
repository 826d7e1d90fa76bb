"""Label budgets: reproducible, paired draws; subsets served from the parent's cached features; study expansion."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import CellSpec
from medrival.data.catalog import load_dataset
from medrival.data.fewshot import draw_fraction, draw_shots
from medrival.methods.features import FeatureCache
from medrival.study.spec import cell_id, expand_cells, parse_study


@pytest.fixture(scope="module")
def fundus_train():
    return load_dataset("demo-fundus", "train", n=120)


def test_shots_take_k_per_class_reproducibly(fundus_train):
    subset = draw_shots(fundus_train, 4, draw=1)
    assert sorted(np.bincount(subset.labels).tolist()) == [4, 4, 4]
    again = draw_shots(fundus_train, 4, draw=1)
    np.testing.assert_array_equal(subset.parent_indices, again.parent_indices)
    other = draw_shots(fundus_train, 4, draw=2)
    assert not np.array_equal(subset.parent_indices, other.parent_indices)
    # rows really are the parent's rows
    np.testing.assert_array_equal(subset.images, fundus_train.images[subset.parent_indices])
    np.testing.assert_array_equal(subset.labels, fundus_train.labels[subset.parent_indices])


def test_shots_beyond_a_class_size_take_the_whole_class(fundus_train):
    counts = np.bincount(fundus_train.labels)
    subset = draw_shots(fundus_train, 1000)
    np.testing.assert_array_equal(np.bincount(subset.labels), counts)


def test_fraction_is_stratified_and_keeps_every_class(fundus_train):
    counts = np.bincount(fundus_train.labels)
    subset = draw_fraction(fundus_train, 0.1)
    np.testing.assert_array_equal(np.bincount(subset.labels), np.maximum(1, np.round(0.1 * counts)).astype(int))
    assert draw_fraction(fundus_train, 0.01).labels.size == len(counts)  # at least one per class
    assert draw_fraction(fundus_train, 1.0) is fundus_train


def test_bad_budgets_are_refused(fundus_train):
    with pytest.raises(ConfigError, match="positive number"):
        draw_shots(fundus_train, 0)
    with pytest.raises(ConfigError, match=r"write 10 % as 0.1"):
        draw_fraction(fundus_train, 10)
    with pytest.raises(DataError, match="subset indices"):
        fundus_train.subset([len(fundus_train)])


def test_subsets_of_subsets_point_at_the_root(fundus_train):
    inner = draw_shots(draw_fraction(fundus_train, 0.5), 2)
    assert inner.parent is fundus_train
    np.testing.assert_array_equal(inner.images, fundus_train.images[inner.parent_indices])


class CountingModel:
    """Stands in for an encoder: records every image it is asked to encode."""
    fingerprint = "counting-model"

    def __init__(self):
        self.seen = 0

    def encode_images(self, images):
        import torch
        self.seen += len(images)
        return torch.from_numpy(images.reshape(len(images), -1)[:, :8].astype(np.float32))


def test_subsets_and_duplicates_never_encode_an_image_twice(fundus_train):
    doubled = fundus_train.subset(np.r_[np.arange(len(fundus_train)), np.arange(10)])
    doubled = type(fundus_train)(fundus_train.info, "train", doubled.images, doubled.labels,
                                 np.arange(len(doubled.labels)).astype(str))  # a split with 10 duplicate images
    cache, model = FeatureCache(None), CountingModel()
    features = cache.image_features(model, doubled)
    assert model.seen == cache.encoded_images == len(fundus_train)
    np.testing.assert_array_equal(features[-10:], features[:10])
    for shots in (1, 2, 4):
        for draw in range(3):
            subset = draw_shots(doubled, shots, draw)
            np.testing.assert_array_equal(cache.image_features(model, subset), features[subset.parent_indices])
    assert model.seen == len(fundus_train)


STUDY = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-fundus]
methods: [linear_probe]
seeds: [0]
fewshot: {shots: [1, 4], fractions: [0.1, 1.0], draws: 2}
"""


def test_fewshot_expands_budgets_and_draws_with_distinct_ids():
    cells = expand_cells(parse_study(STUDY))
    per_model = [c for c in cells if c.model == "demo-generalist-clip"]
    assert [(c.shots, c.fraction, c.draw) for c in per_model] == [
        (1, None, 0), (1, None, 1), (4, None, 0), (4, None, 1), (None, 0.1, 0), (None, 0.1, 1), (None, 1.0, 0)]
    assert all(c.subsample_val for c in cells)
    assert len({cell_id(c) for c in cells}) == len(cells)
    assert [c.budget for c in per_model[::2]] == ["1-shot", "4-shot", "10%", "100%"]


def test_cells_without_a_budget_keep_their_ids():
    plain = CellSpec(model="m", dataset="d", method="zero_shot")
    assert cell_id(plain) == cell_id(CellSpec(model="m", dataset="d", method="zero_shot", draw=0))
    assert cell_id(plain) != cell_id(CellSpec(model="m", dataset="d", method="zero_shot", shots=1))


def test_fewshot_needs_a_budget_and_rejects_bad_values():
    with pytest.raises(ConfigError, match=r"line 6: fewshot: fewshot needs at least one budget"):
        parse_study(STUDY.replace("shots: [1, 4], fractions: [0.1, 1.0], ", ""))
    with pytest.raises(ConfigError, match="fewshot.shots"):
        parse_study(STUDY.replace("shots: [1, 4]", "shots: [0]"))
    with pytest.raises(ConfigError, match="listed twice"):
        parse_study(STUDY.replace("shots: [1, 4]", "shots: [4, 4]"))


def test_weights_must_name_a_study_model(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'demo-specialist-clip'"):
        parse_study(STUDY + "weights: {demo-specialist-clp: /x}\n")
    study = tmp_path / "study.yaml"
    study.write_text(STUDY + "weights: {demo-specialist-clip: ckpt}\n")
    from medrival.study.spec import load_study
    spec = load_study(study)
    assert spec.weights == {"demo-specialist-clip": str(tmp_path / "ckpt")}


def test_prompts_are_encoded_once_per_model_across_methods_and_draws():
    from medrival.methods import METHODS
    from medrival.models.factory import create_model

    model = create_model("demo-specialist-clip")
    calls = []
    original = model.encode_texts
    model.encode_texts = lambda texts, *a, **k: calls.append(len(texts)) or original(texts, *a, **k)
    train, val = load_dataset("demo-xray", "train", n=60), load_dataset("demo-xray", "val", n=40)
    cache = FeatureCache(None)
    for name in ("zero_shot", "tip_adapter", "clip_adapter"):
        for draw in range(2):
            spec = METHODS.get(name)
            method = spec.build(spec.make_config({"epochs": 1} if name == "clip_adapter" else {}))
            method.fit(model, draw_shots(train, 2, draw), draw_shots(val, 2, draw), cache, seed=0)
    assert len(calls) == train.info.num_classes  # one encoding per class prompt list, for all six fits
