"""Issue 14, finding 6 (data side): VQA-RAD's official split is by question, so training on it trains on the test
images. ``vqa-rad-image-disjoint`` re-splits the same files so that no validation or test image appears in train;
tested on a fixture in the official format and on the real release JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medrival.core.errors import DataError
from medrival.data.releases.vqa_rad import (
    ANNOTATION_FILE, image_disjoint_splits, load_vqa_rad, load_vqa_rad_image_disjoint, split_overlap,
)
from medrival.data.zoo.api import check_release, load_release_split
from medrival.data.zoo.registry import release_registry

from test_releases_vqa_rad import _record, write_vqa_rad

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "vqa_rad"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real/vqa_rad")


def _records() -> list[dict]:
    """Official-format records: 80 train-only images (two questions each, freeform + para), 3 images with train and
    test questions, 2 test-only images -- the mix of the real release, small."""
    records, qid = [], 0
    for number in range(80):
        for phrase in ("freeform", "para"):
            records.append(_record(qid, phrase, f"synpic{number}.jpg", f"Is organ {number} normal?", "yes", "CLOSED"))
            qid += 1
    for number in range(100, 103):
        for phrase in ("freeform", "test_freeform", "test_para"):
            records.append(_record(qid, phrase, f"synpic{number}.jpg", "Where is the mass?", "liver", "OPEN"))
            qid += 1
    for number in range(200, 202):
        records.append(_record(qid, "test_freeform", f"synpic{number}.jpg", "Is there a fracture?", "no", "CLOSED"))
        qid += 1
    return records


def _assert_image_disjoint(frame: pd.DataFrame) -> None:
    spans = frame.groupby("image_id")["split"].nunique()
    assert (spans == 1).all(), spans[spans > 1]  # every question of an image stays in one split
    images = {split: set(frame.loc[frame["split"] == split, "image_id"]) for split in ("train", "val", "test")}
    assert not images["train"] & images["test"] and not images["train"] & images["val"]
    assert not images["val"] & images["test"]


def test_finding6_image_disjoint_fixture_keeps_test_images_out_of_train(tmp_path):
    root = write_vqa_rad(tmp_path / "rad", _records())
    official = load_vqa_rad(root).frame
    assert split_overlap(official) == {"test_questions": 8, "test_questions_on_train_images": 6,
                                       "test_images": 5, "test_images_in_train": 3}
    index = load_vqa_rad_image_disjoint(root)
    frame = index.frame
    _assert_image_disjoint(frame)
    # Test is exactly the official test images, with all their questions (the 3 moved train questions included).
    assert set(frame.loc[frame["split"] == "test", "image_id"]) == set(official.loc[official["split"] == "test",
                                                                                     "image_id"])
    assert (frame["split"] == "test").sum() == 11 and len(frame) == len(official)
    assert list(frame["question_id"]) == list(official["question_id"])
    assert (frame["official_split"] == official["split"]).all()
    assert split_overlap(frame)["test_questions_on_train_images"] == 0
    assert set(frame["split"]) == {"train", "val", "test"}  # 80 train-only images: some land in val
    assert any("3 official train questions moved" in note for note in index.notes)


def test_finding6_image_disjoint_split_is_deterministic_and_stable(tmp_path):
    root = write_vqa_rad(tmp_path / "rad", _records())
    first, second = load_vqa_rad_image_disjoint(root).frame, load_vqa_rad_image_disjoint(root).frame
    assert first["split"].tolist() == second["split"].tolist()
    # An image's split does not depend on the rest of the file (hash per image id, not a shuffle).
    part = load_vqa_rad(root).frame.iloc[::2].reset_index(drop=True)
    again = image_disjoint_splits(part)
    by_image = dict(zip(first["image_id"], first["split"]))
    train_only = ~part["image_id"].isin(set(part.loc[part["split"] == "test", "image_id"]))
    assert (again[train_only] == part.loc[train_only, "image_id"].map(by_image)).all()
    different_seed = image_disjoint_splits(load_vqa_rad(root).frame, seed=1)
    assert (different_seed[first["split"] == "test"] == "test").all()


def test_finding6_image_disjoint_refuses_bad_val_fraction(tmp_path):
    root = write_vqa_rad(tmp_path / "rad", _records())
    with pytest.raises(DataError, match="val_fraction"):
        load_vqa_rad_image_disjoint(root, val_fraction=1.0)


def test_finding6_registered_variant_builds_disjoint_splits(tmp_path):
    entry = release_registry().get("vqa-rad-image-disjoint")
    assert entry.parent == "vqa-rad" and entry.folder == release_registry().get("vqa-rad").folder
    root = write_vqa_rad(tmp_path / "rad", _records())
    summary = check_release("vqa-rad-image-disjoint", root, annotations_only=True)
    assert summary["notes"][0] == entry.notes[0]  # the entry's static note comes first
    splits = {name: load_release_split("vqa-rad-image-disjoint", name, root, probe=False)
              for name in ("train", "val", "test")}
    images = {name: set(split.image_ids) for name, split in splits.items()}
    assert not images["train"] & (images["val"] | images["test"]) and not images["val"] & images["test"]
    assert sum(len(split) for split in splits.values()) == len(_records())


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/real/vqa_rad is absent")
def test_finding6_real_vqa_rad_official_overlap_and_disjoint_counts():
    official = load_vqa_rad(REAL)
    # The real file is the full official JSON (2,248 questions): 446 of 451 test questions are about images that
    # also have train questions; 202 of the 203 test images have train questions (not 182, as the issue says).
    assert split_overlap(official.frame) == {"test_questions": 451, "test_questions_on_train_images": 446,
                                             "test_images": 203, "test_images_in_train": 202}
    assert "446 of the 451 test questions" in official.notes[0]
    index = load_vqa_rad_image_disjoint(REAL)
    _assert_image_disjoint(index.frame)
    counts = index.counts()
    assert counts["questions"] == {"train": 670, "val": 64, "test": 1514, "all": 2248}
    assert counts["images"] == {"train": 101, "val": 10, "test": 203, "all": 314}
    assert "train 670 / val 64 / test 1,514 questions on 101 / 10 / 203 images" in \
        release_registry().get("vqa-rad-image-disjoint").notes[0]
    assert any("446 of the 451 test questions" in note for note in release_registry().get("vqa-rad").notes)
    records = json.loads((REAL / ANNOTATION_FILE).read_text(encoding="utf-8"))
    assert len(records) == len(index.frame)  # no question dropped
