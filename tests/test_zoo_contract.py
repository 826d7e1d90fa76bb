"""Registry-wide contract: every registered real release has a fixture in its exact format, and on it
``datasets check`` finds every file decodable, the counts agree with the splits built for studies, and images
decode to H x W x 3 uint8 only when asked for."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.types import ClassificationSplit, TaskKind, VQASplit
from medrival.data.zoo.api import check_release, load_release_split
from medrival.data.zoo.registry import release_registry

from release_fixtures import ANNOTATION_WRITERS, write_fixture

RELEASES = release_registry().names()


def test_every_registered_release_has_a_fixture():
    assert set(RELEASES) <= set(ANNOTATION_WRITERS), sorted(set(RELEASES) - set(ANNOTATION_WRITERS))


@pytest.mark.parametrize("name", RELEASES)
def test_check_and_splits_on_the_release_fixture(name, tmp_path):
    root = write_fixture(name, tmp_path / name)
    entry = release_registry().get(name)
    summary = check_release(name, root, workers=0)
    files = summary["files"]
    assert files["missing"] == 0 and files["unreadable"] == 0 and files["decoded"] == files["referenced"] > 0
    counts = summary["questions"] if entry.is_vqa else summary["examples"]
    built = 0
    for split in ("train", "val", "test"):
        if not entry.is_vqa and counts[split] == 0:
            continue
        data = load_release_split(name, split, root)
        assert data.info == entry.info and not data.skipped
        if len(data) == 0:  # a VQA release without this split (VQA-RAD, OmniMedVQA: no official val)
            continue
        if entry.is_vqa:
            assert isinstance(data, VQASplit)
            assert set(data.answer_types) <= {"closed", "open"}
            assert len(data.images) == len(data.image_ids) and data.image_index.max() < len(data.images)
        else:
            assert isinstance(data, ClassificationSplit) and data.lazy and len(data) == counts[split]
            if entry.info.task is TaskKind.MULTILABEL:
                assert data.labels.shape == (len(data), entry.info.num_classes)
            else:
                assert data.labels.min() >= 0 and data.labels.max() < entry.info.num_classes
        image = data[0].image
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        built += len(data)
    assert built == (counts["all"] if entry.is_vqa else sum(counts.values()))


@pytest.mark.parametrize("name", [n for n in RELEASES if n in ("ham10000", "vqa-rad", "pneumoniamnist")])
def test_annotations_only_opens_no_image(name, tmp_path, monkeypatch):
    root = write_fixture(name, tmp_path / name)
    import medrival.data.imageio as imageio

    def refuse(*args, **kwargs):
        raise AssertionError("an image was opened")

    monkeypatch.setattr(imageio, "decode_image", refuse)
    monkeypatch.setattr(imageio, "probe_image", refuse)
    summary = check_release(name, root, annotations_only=True)
    assert "files" not in summary


CUSTOM = {
    "manifest": ("test_releases_manifest", {"csv_path": "manifest.csv", "split_column": "split",
                                            "patient_column": "patient", "modality": "xray"}),
    "imagefolder": ("test_releases_imagefolder", {"modality": "dermoscopy"}),
    "vqa": ("test_releases_vqa_generic", {"annotation": "vqa.json", "modality": "xray,ct"}),
}


@pytest.mark.parametrize("format", sorted(CUSTOM))
def test_custom_formats_register_check_and_load(format, tmp_path):
    from medrival.data.catalog import dataset_info, load_dataset
    from medrival.data.zoo.custom import register_custom_dataset

    module, options = CUSTOM[format]
    root = __import__(module).write_fixture(tmp_path / format)
    name = f"user-{format}"
    info = register_custom_dataset(name, format, root, **options)
    assert dataset_info(name) == info and info.source.startswith("user data at")
    summary = check_release(name, root, workers=0)
    assert summary["files"]["missing"] == 0 and summary["files"]["unreadable"] == 0
    test = load_dataset(name, "test", root=root)
    assert len(test) > 0 and test[0].image.dtype == np.uint8
