"""Issue 14, finding 6: exposure is not modality. Cards say what they were trained on (``trained_on``, every entry
sourced in SOURCES.md), datasets say what they are made of (variant parents, shared images), and
``exposure_of(card, dataset)`` says why a checkpoint has seen a benchmark -- Lingshu-7B on VQA-RAD, SLAKE, PathVQA
and PMC-VQA; PMC-CLIP on PMC-VQA's figures. Registry-wide loops, so a new card or dataset is checked too."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from medrival.core.cards import DatasetLineage, ImageLink, ModelCard, TrainedOn, exposure_of_lineage
from medrival.core.errors import ConfigError, UnknownNameError
from medrival.data.catalog import dataset_registry
from medrival.data.zoo.api import check_release
from medrival.data.zoo.exposure import (
    CORPORA, IMAGE_SOURCES, check_trained_on, dataset_lineage, exposure_of, trained_on_names,
)
from medrival.data.zoo.registry import release_registry
from medrival.models.catalog import CARDS_DIR, model_registry

from release_fixtures import write_fixture

SOURCES_MD = CARDS_DIR / "SOURCES.md"


def _source_keys() -> set[str]:
    """Keys of the exposure table in SOURCES.md (rows written | `key` | ... after its heading)."""
    text = SOURCES_MD.read_text(encoding="utf-8")
    section = text[text.index("## Training-data exposure"):]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE))


def _card(*entries: dict, card_id: str = "probe") -> ModelCard:
    return ModelCard.model_validate({
        "id": card_id, "family": "contrastive", "role": "generalist", "source": {"kind": "demo", "name": card_id},
        "pretraining_modalities": ["xray"], "licence": "test", "trained_on": list(entries)})


# ------------------------------------------------------------------------------------------------ card schema


def test_finding6_trained_on_schema_refuses_bad_entries():
    assert _card().trained_on == []
    entry = TrainedOn(name="vqa-rad", contains="both", source="lingshu-data")
    assert entry.note == ""
    with pytest.raises(ValidationError, match="contains"):
        _card({"name": "vqa-rad", "contains": "labels", "source": "x"})
    with pytest.raises(ValidationError, match="non-empty"):
        _card({"name": "vqa-rad", "contains": "both", "source": " "})
    with pytest.raises(ValidationError, match="more than once"):
        _card({"name": "slake", "contains": "images", "source": "a"}, {"name": "slake", "contains": "both",
                                                                         "source": "b"})
    with pytest.raises(ValidationError, match="extra"):
        _card({"name": "slake", "contains": "both", "source": "a", "split": "train"})


def test_finding6_every_card_names_known_data_with_a_source_in_sources_md():
    keys = _source_keys()
    for name, card in model_registry().items():
        check_trained_on(card)  # raises ConfigError on an unknown or variant name
        missing = {entry.source for entry in card.trained_on} - keys
        assert not missing, f"{name}: trained_on sources {missing} have no row in {SOURCES_MD.name}"
    link_keys = {source.source for sources in IMAGE_SOURCES.values() for source in sources}
    assert link_keys <= keys, link_keys - keys


def test_finding6_unknown_trained_on_name_is_a_config_error_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"'vqa_rad'.*Did you mean 'vqa-rad'"):
        check_trained_on(_card({"name": "vqa_rad", "contains": "both", "source": "lingshu-data"}))
    with pytest.raises(ConfigError, match=r"Did you mean 'PMC-OA'"):
        check_trained_on(_card({"name": "pmc-oa", "contains": "images", "source": "pmc-clip-data"}))
    with pytest.raises(ConfigError, match=r"variant of 'vqa-rad'"):
        check_trained_on(_card({"name": "vqa-rad-image-disjoint", "contains": "both", "source": "x"}))
    assert "vqa-rad-image-disjoint" not in trained_on_names() and "MIMIC-CXR" in trained_on_names()


def test_finding6_core_cards_does_not_import_the_data_layer():
    code = ("import sys, medrival.core.cards; "
            "print(sorted(m for m in sys.modules if m.startswith(('medrival.data', 'medrival.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------- dataset lineage


def test_finding6_parents_and_image_sources_are_declared_and_flat():
    releases = release_registry()
    roots = {name for name, entry in releases.items() if entry.parent is None}
    for name, entry in releases.items():
        if entry.parent is not None:
            assert entry.parent in roots, f"{name}: parent {entry.parent!r} is not a release without a parent"
            assert entry.info.task.value and entry.folder == releases.get(entry.parent).folder
    assert set(IMAGE_SOURCES) <= roots
    for release, sources in IMAGE_SOURCES.items():
        for source in sources:
            assert source.origin in roots or source.origin in CORPORA, (release, source.origin)
    assert releases.get("vqa-rad-image-disjoint").parent == "vqa-rad"
    assert releases.get("dermamnist_224").parent == "dermamnist" and releases.get("dermamnist").parent is None
    assert releases.get("pmc-vqa-clean").parent == "pmc-vqa" and releases.get("kermany-oct").parent is None


def test_finding6_every_registered_dataset_has_a_lineage():
    for name in dataset_registry().names():
        lineage = dataset_lineage(name)
        assert lineage.name == name and lineage.release in dataset_registry()
    assert dataset_lineage("demo-xray") == DatasetLineage("demo-xray")
    with pytest.raises(UnknownNameError, match="vqa-rad"):
        dataset_lineage("vqa-rad-disjoint")


def test_finding6_variants_share_their_release_exposure():
    cards = [card for _, card in model_registry().items()]
    for name, entry in release_registry().items():
        if entry.parent is None:
            continue
        for card in cards:
            assert exposure_of(card, name) == exposure_of(card, entry.parent), (card.id, name)


# ------------------------------------------------------------------------------------------------- exposure


def test_finding6_lingshu_is_exposed_on_the_benchmarks_of_rq1():
    lingshu = model_registry().get("lingshu-7b")
    for dataset in ("vqa-rad", "vqa-rad-image-disjoint", "slake", "pathvqa", "pmc-vqa", "pmc-vqa-clean"):
        reasons = exposure_of(lingshu, dataset)
        assert reasons and all("(source: lingshu-data" in reason for reason in reasons), (dataset, reasons)
    assert exposure_of(lingshu, "vqa-rad") == ("trained on vqa-rad images and questions (source: lingshu-data)",)
    assert exposure_of(lingshu, "ham10000") == () and exposure_of(lingshu, "demo-xray-vqa") == ()
    generalist = model_registry().get("qwen2.5-vl-7b")  # nothing documented: empty, not "clean"
    assert all(exposure_of(generalist, name) == () for name in ("vqa-rad", "slake", "pathvqa", "pmc-vqa"))


def test_finding6_corpora_expose_the_datasets_built_from_them():
    pmc_clip = exposure_of(model_registry().get("pmc-clip-vit-l14"), "pmc-vqa")
    assert pmc_clip == ("trained on PMC-OA images, a source of pmc-vqa's images (source: pmc-clip-data; "
                        "link: pmc-vqa-paper)",)
    biomedclip = exposure_of(model_registry().get("biomedclip"), "pmc-vqa-v2")
    assert len(biomedclip) == 1 and "likely a source of pmc-vqa's images" in biomedclip[0]
    medgemma = model_registry().get("medgemma-4b")
    assert any("slake images and questions" in reason for reason in exposure_of(medgemma, "slake"))
    # SLAKE's chest X-rays come from NIH ChestX-ray14: a model trained on SLAKE saw some of NIH's images.
    assert exposure_of(medgemma, "nih-chestxray14") == (
        "trained on slake images, which took images from nih-chestxray14 (source: medgemma-data; link: slake-paper)",)
    assert exposure_of(model_registry().get("smolvlm-256m"), "vqa-rad-image-disjoint")


def test_finding6_links_work_both_ways_and_questions_do_not_share_images():
    dermamnist_trained = _card({"name": "dermamnist", "contains": "images", "source": "k"})
    assert exposure_of(dermamnist_trained, "ham10000-malignant") == (
        "trained on dermamnist images, which took images from ham10000 (source: k; link: medmnist-paper)",)
    assert exposure_of(_card({"name": "ham10000", "contains": "both", "source": "k"}), "dermamnist_64")
    lineage = DatasetLineage("pmc-vqa", image_links=(ImageLink("PMC-OA", "source", "pmc-vqa-paper"),))
    questions_only = _card({"name": "PMC-OA", "contains": "questions", "source": "k"})
    assert exposure_of_lineage(questions_only, lineage) == ()
    assert exposure_of_lineage(_card({"name": "pmc-vqa", "contains": "questions", "source": "k"}), lineage) == (
        "trained on pmc-vqa questions (source: k)",)


# -------------------------------------------------------------------------------------------- dataset notes


def test_finding6_dataset_notes_flag_dermamnist_leakage_and_medmnist_clusters(tmp_path):
    releases = release_registry()
    derma = " ".join(releases.get("dermamnist_128").notes)
    assert "by image, not by lesion" in derma and "train and test" in derma and "cluster = image" in derma
    for name, entry in releases.items():
        if name.split("_")[0].endswith("mnist"):
            assert any("cluster = image" in note for note in entry.notes), name
    assert not any("HAM10000" in note for note in releases.get("pathmnist").notes)
    summary = check_release("dermamnist", write_fixture("dermamnist", tmp_path / "derma"), annotations_only=True)
    assert any("not by lesion" in note for note in summary["notes"])
    assert any("446 of the 451 test questions" in note for note in releases.get("vqa-rad").notes)
