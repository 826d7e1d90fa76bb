"""Dataset and model catalogs: contract tests over every registered entry, and readable errors."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.cards import ModelCard, domain_of
from medrival.core.errors import ConfigError, MedrivalError, UnknownNameError
from medrival.core.types import MODALITIES, ClassificationSplit, TaskKind, VQASplit
from medrival.data.catalog import SPLITS, dataset_info, dataset_registry, load_dataset
from medrival.models.catalog import counterpart_pairs, get_card, model_registry, read_cards

DATASETS = dataset_registry().names()
# Built-in (synthetic) datasets load without files; real releases are covered by tests/test_zoo_contract.py.
SYNTHETIC = [name for name in DATASETS if dataset_registry().get(name).info.synthetic]
MODELS = model_registry().names()


# ----------------------------------------------------------------------------------------------- datasets
def test_registry_is_not_empty():
    assert DATASETS, "no dataset registered"
    assert {"demo-xray", "demo-dermoscopy", "demo-fundus", "demo-pathology"} <= set(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_info_contract(name):
    entry = dataset_registry().get(name)
    info = entry.info
    assert info.name == name
    assert isinstance(info.task, TaskKind)
    assert info.modalities and all(m in MODALITIES for m in info.modalities)
    assert info.licence.strip()
    assert info.description.strip()
    assert set(entry.split_sizes) <= set(SPLITS) and all(v > 0 for v in entry.split_sizes.values())
    if info.task == TaskKind.VQA:
        assert info.class_names == ()
    else:
        assert info.num_classes >= 2
        assert len(set(info.class_names)) == info.num_classes
        if info.task == TaskKind.BINARY:
            assert info.num_classes == 2
        # Zero-shot material: one tuple of phrasings per class and templates with a "{}" slot.
        assert len(info.class_descriptions) == info.num_classes
        assert all(len(d) >= 1 and all(isinstance(t, str) and t for t in d) for d in info.class_descriptions)
        assert info.prompt_templates and all("{}" in t for t in info.prompt_templates)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_every_dataset_loads_its_val_split(name):
    info = dataset_info(name)
    split = load_dataset(name, "val", n=8)
    assert split.info == info
    assert split.split == "val"
    assert split.images.dtype == np.uint8 and split.images.ndim == 4 and split.images.shape[-1] == 3
    if info.task == TaskKind.VQA:
        assert isinstance(split, VQASplit)
        assert len(split.images) == 8
    else:
        assert isinstance(split, ClassificationSplit)
        assert len(split) == 8
        labels = np.asarray(split.labels)
        assert labels.min() >= 0 and labels.max() < info.num_classes
        assert len(set(split.ids.tolist())) == 8
        example = split[0]
        assert example.image.shape == split.images.shape[1:]
        assert example.meta["id"] == split.ids[0]


@pytest.mark.parametrize("name", [n for n in SYNTHETIC if dataset_info(n).task != TaskKind.VQA])
def test_class_count_equals_label_range(name):
    info = dataset_info(name)
    labels = load_dataset(name, "val", n=60, size=32).labels
    assert sorted(set(np.asarray(labels).tolist())) == list(range(info.num_classes))


@pytest.mark.parametrize("name", [n for n in SYNTHETIC if dataset_info(n).task == TaskKind.VQA])
def test_vqa_split_lengths_are_consistent(name):
    split = load_dataset(name, "val", n=8, size=32)
    assert isinstance(split, VQASplit)
    n = len(split)
    assert n == len(split.questions) == len(split.answers) == len(split.answer_types) == len(split.ids)
    assert len(split.image_index) == n
    assert len(split.image_ids) == len(split.images) == 8
    assert split.image_index.min() >= 0 and split.image_index.max() < len(split.images)
    assert set(split.image_index.tolist()) == set(range(8)), "an image without questions"
    assert set(split.answer_types) <= {"closed", "open"}
    assert len(set(split.ids.tolist())) == n
    for answer, form, options in zip(split.answers, split.forms, split.options):
        if form == "yes_no":
            assert answer in ("yes", "no")
        elif form == "choice":
            assert answer in options
        elif form == "multiple_choice":
            assert answer in "ABCD"[:len(options)]
    example = split[n - 1]
    assert example.question == split.questions[-1] and example.answer == split.answers[-1]
    assert example.meta["image_id"] == split.image_ids[split.image_index[-1]]
    assert np.array_equal(example.image, split.images[split.image_index[-1]])


def test_vqa_pairs_with_classification_images():
    """The VQA dataset of a modality renders the same images as the classification dataset."""
    cls = load_dataset("demo-xray", "val", n=4, size=32)
    vqa = load_dataset("demo-xray-vqa", "val", n=4, size=32)
    assert np.array_equal(cls.images, vqa.images)
    for i in range(len(vqa)):
        if vqa.questions[i] == "is there an opacity in the lungs?":
            expected = "yes" if cls.labels[vqa.image_index[i]] == 1 else "no"
            assert vqa.answers[i] == expected


def test_loading_is_deterministic_and_seeded():
    a = load_dataset("demo-fundus", "val", n=6, size=32)
    b = load_dataset("demo-fundus", "val", n=6, size=32)
    c = load_dataset("demo-fundus", "val", n=6, size=32, seed=1)
    assert a.fingerprint() == b.fingerprint() and np.array_equal(a.labels, b.labels)
    assert a.fingerprint() != c.fingerprint()
    assert a.fingerprint() != load_dataset("demo-fundus", "test", n=6, size=32).fingerprint()


def test_unknown_dataset_suggests_close_match():
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("demo-xary", "val", n=2)
    message = str(caught.value)
    assert "'demo-xray'" in message and "Did you mean" in message
    assert "demo-pathology" in message  # lists what exists
    with pytest.raises(UnknownNameError, match="demo-xray"):
        dataset_info("demo-xary")


def test_unknown_split_is_a_clear_error():
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("demo-xray", "tset", n=2)
    assert "'test'" in str(caught.value)


# ----------------------------------------------------------------------------------------------- models
def test_model_registry_is_not_empty():
    assert {"demo-generalist-clip", "demo-specialist-clip"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_card_validates(name):
    card = get_card(name)
    assert card.id == name
    # Round trip through the validator: what is in the registry is a valid card.
    assert ModelCard.model_validate(card.model_dump()) == card
    assert card.pretraining_modalities and all(m in MODALITIES for m in card.pretraining_modalities)
    assert card.licence.strip()
    if card.role == "generalist":
        assert card.generalist_counterpart is None


@pytest.mark.parametrize("name", [n for n in MODELS if get_card(n).role == "specialist"])
def test_specialist_counterpart_is_a_registered_generalist(name):
    card = get_card(name)
    assert card.generalist_counterpart, f"specialist {name} names no generalist counterpart"
    counterpart = get_card(card.generalist_counterpart)
    assert counterpart.role == "generalist"
    assert counterpart.family == card.family
    assert (card.generalist_counterpart, name) in counterpart_pairs()


def test_counterpart_pairs_for_the_demo():
    assert ("demo-generalist-clip", "demo-specialist-clip") in counterpart_pairs()


def test_domain_of_demo_cards():
    specialist, generalist = get_card("demo-specialist-clip"), get_card("demo-generalist-clip")
    assert domain_of(specialist, dataset_info("demo-xray")) == "ID"
    assert domain_of(specialist, dataset_info("demo-pathology")) == "ID"
    assert domain_of(specialist, dataset_info("demo-dermoscopy")) == "OOD"
    assert domain_of(specialist, dataset_info("demo-fundus")) == "OOD"
    for name in ("demo-xray", "demo-dermoscopy", "demo-fundus", "demo-pathology"):
        assert domain_of(generalist, dataset_info(name)) == "ID"


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownNameError) as caught:
        get_card("demo-specalist-clip")
    message = str(caught.value)
    assert "Did you mean 'demo-specialist-clip'" in message
    assert "demo-generalist-clip" in message
    assert isinstance(caught.value, MedrivalError)


_GOOD_CARD = """\
- id: my-clip
  family: contrastive
  role: generalist
  source: {kind: local-dir, name: /tmp/nowhere}
  pretraining_modalities: [xray]
  licence: MIT
"""


def _write(tmp_path, text):
    path = tmp_path / "cards.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_cards_accepts_a_good_file(tmp_path):
    (card,) = read_cards(_write(tmp_path, _GOOD_CARD))
    assert card.id == "my-clip" and card.source.kind == "local-dir"
    assert read_cards(_write(tmp_path, "")) == []


def test_bad_card_unknown_modality(tmp_path):
    path = _write(tmp_path, _GOOD_CARD.replace("[xray]", "[xary]"))
    with pytest.raises(ConfigError) as caught:
        read_cards(path)
    message = str(caught.value)
    assert str(path) in message and "card #1" in message
    assert "'xary'" in message and "'xray'" in message


def test_bad_card_extra_field(tmp_path):
    path = _write(tmp_path, _GOOD_CARD + "  colour: red\n")
    with pytest.raises(ConfigError) as caught:
        read_cards(path)
    message = str(caught.value)
    assert str(path) in message and "card #1" in message and "colour" in message


@pytest.mark.parametrize("text, fragment", [
    ("id: lonely\n", "list of cards"),
    (_GOOD_CARD.replace("generalist", "expert"), "role"),
    (_GOOD_CARD.replace("local-dir", "ftp"), "kind"),
    (_GOOD_CARD.replace("  licence: MIT\n", ""), "licence"),
    ("- id: [unclosed\n", "YAML"),
])
def test_bad_card_files_raise_config_error(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        read_cards(_write(tmp_path, text))
