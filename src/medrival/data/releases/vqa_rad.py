"""VQA-RAD, official OSF release (osf.io/89kps): ``VQA_RAD Dataset Public.json`` + ``VQA_RAD Image Folder/``.

Quirks of the official JSON that this parser tolerates (measured on the real file):
- ``qid`` is an int in every record but the first, where it is the string ``"0"`` -> always str here.
- five answers are JSON ints (``4``, ``2``, ``12``) -> their decimal text; one answer has a leading space.
- ``answer_type`` is ``CLOSED`` / ``OPEN`` and twice ``"CLOSED "`` with a trailing space -> stripped, lower-cased.
- missing values are the string ``"NULL"``, not JSON null, and ``question_rephrase`` is absent from two records
  -> both become missing (NA) in the extra columns.
- the split is given per question by ``phrase_type``: ``freeform``/``para`` are train, ``test_freeform``/
  ``test_para`` are test; there is no validation split (carve one from train by image, not by question).
- the split is by question, not by image: most test images also have train questions (reported in ``notes``;
  on the full OSF JSON 446 of the 451 test questions are on images with train questions, 202 of 203 test images).

``load_vqa_rad_image_disjoint`` re-splits the same files so that no image has questions in two splits (registered
as ``vqa-rad-image-disjoint``): see ``image_disjoint_splits`` for the rule.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from medrival.core.errors import DataError
from medrival.data.releases.index import grouped_split
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, derive_answer_type, normalise_text, read_json, safe_relpath,
)

RELEASE = "VQA-RAD (official OSF JSON)"
ANNOTATION_FILE = "VQA_RAD Dataset Public.json"
IMAGE_FOLDER = "VQA_RAD Image Folder"
LICENCE = "CC0 1.0"
SOURCE = "https://osf.io/89kps/"
PHRASE_TYPE_SPLITS = {"freeform": "train", "para": "train", "test_freeform": "test", "test_para": "test"}
REQUIRED_KEYS = ("qid", "phrase_type", "image_name", "question", "answer", "answer_type")
# Release fields kept as extra columns ("NULL" -> None).
EXTRA_KEYS = ("phrase_type", "image_organ", "question_type", "evaluation", "qid_linked_id",
              "question_rephrase", "question_relation", "question_frame")


def _null(value: Any) -> Any:
    """The release writes missing values as the string "NULL"."""
    if value is None or (isinstance(value, str) and value.strip().upper() == "NULL"):
        return None
    return normalise_text(value) if isinstance(value, (str, int, float)) else value


def _record_row(record: Any, position: int) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{RELEASE}: record #{position} of {ANNOTATION_FILE!r} is a {type(record).__name__}, "
                        "expected an object.")
    absent = [k for k in REQUIRED_KEYS if k not in record]
    if absent:
        raise DataError(f"{RELEASE}: record #{position} (qid {record.get('qid')!r}) of {ANNOTATION_FILE!r} lacks "
                        f"keys {absent}.")
    qid = normalise_text(record["qid"])
    phrase_type = normalise_text(record["phrase_type"]).lower()
    if phrase_type not in PHRASE_TYPE_SPLITS:
        raise DataError(f"{RELEASE}: qid {qid!r} has phrase_type {record['phrase_type']!r}; expected one of "
                        f"{sorted(PHRASE_TYPE_SPLITS)}.")
    image_name = safe_relpath(record["image_name"], release=RELEASE)
    answer = _null(record["answer"])
    if answer is None:
        raise DataError(f"{RELEASE}: qid {qid!r} has no answer (NULL).")
    answer_type = (_null(record["answer_type"]) or "").lower()
    source = "release"
    if answer_type not in ("closed", "open"):
        answer_type, source = derive_answer_type(record["question"]), "derived"
    row = {"question_id": qid, "image": f"{IMAGE_FOLDER}/{image_name}",
           "image_id": PurePosixPath(image_name).stem, "question": normalise_text(record["question"]),
           "answer": answer, "answer_type": answer_type, "answer_type_source": source,
           "split": PHRASE_TYPE_SPLITS[phrase_type]}
    row.update({key: _null(record.get(key)) for key in EXTRA_KEYS})
    return row


def load_vqa_rad(root: Path | str, *, annotation: str = ANNOTATION_FILE) -> VQAReleaseIndex:
    """Index the official VQA-RAD release under ``root`` (images are not opened, nor required to exist)."""
    root = check_root(root, release=RELEASE)
    records = read_json(root / annotation, release=RELEASE)
    if not isinstance(records, list):
        raise DataError(f"{RELEASE}: {annotation!r} must hold a JSON list of question records, "
                        f"found a {type(records).__name__}.")
    frame = build_frame((_record_row(r, i) for i, r in enumerate(records)), release=RELEASE, extras=EXTRA_KEYS)
    overlap = split_overlap(frame)
    derived = int((frame["answer_type_source"] == "derived").sum())
    shared = overlap["test_images_in_train"]
    notes = [
        "Official split is by question (phrase_type), not by image: "
        f"{shared} images have both train and test questions ({shared} "
        f"of the {overlap['test_images']} test images), and {overlap['test_questions_on_train_images']} of the "
        f"{overlap['test_questions']} test questions are about them "
        "(a model trained on the train split has seen those images; vqa-rad-image-disjoint avoids it).",
        "No validation split in the release; carve one from train grouped by image_id.",
        MODALITY_NOTE,
    ]
    if derived:
        notes.append(f"{derived} questions had no usable answer_type; derived from the question text.")
    # CT, MRI and plain radiographs are all present; listed in the controlled vocabulary's words.
    return VQAReleaseIndex("vqa-rad", "ct,mri,xray", frame, LICENCE, SOURCE, notes)


MODALITY_NOTE = "Modality per question is not in the release (image_organ is HEAD/CHEST/ABD); CT, MRI and X-ray mixed."


def split_overlap(frame: pd.DataFrame) -> dict[str, int]:
    """How much of a split's test set is about images that also have train questions (the official split's leak)."""
    train_images = set(frame.loc[frame["split"] == "train", "image_id"])
    test = frame[frame["split"] == "test"]
    on_train_image = test["image_id"].isin(train_images)
    return {"test_questions": int(len(test)), "test_questions_on_train_images": int(on_train_image.sum()),
            "test_images": int(test["image_id"].nunique()),
            "test_images_in_train": int(test.loc[on_train_image, "image_id"].nunique())}


def image_disjoint_splits(frame: pd.DataFrame, val_fraction: float = 0.1, seed: int = 0) -> pd.Series:
    """A split per question in which no image has questions in two splits.

    Test keeps the official test images: every question about an image that has at least one official test
    question goes to test, including that image's official train questions (dropping them would waste labelled
    questions; keeping them in train is the leak this removes). The remaining images, which only ever had train
    questions, go to train or val by a seeded hash of their image id (``grouped_split``), so an image keeps its
    split whatever else is in the file and the result is the same on every machine.
    """
    test_images = set(frame.loc[frame["split"] == "test", "image_id"])
    on_test_image = frame["image_id"].isin(test_images)
    splits = pd.Series("test", index=frame.index, dtype=object)
    splits[~on_test_image] = grouped_split(frame.loc[~on_test_image, "image_id"], (1 - val_fraction, val_fraction,
                                                                                     0.0), seed)
    return splits


def load_vqa_rad_image_disjoint(root: Path | str, *, annotation: str = ANNOTATION_FILE, val_fraction: float = 0.1,
                                seed: int = 0) -> VQAReleaseIndex:
    """The official VQA-RAD files re-split by image (``image_disjoint_splits``); the official split of each question
    is kept in the ``official_split`` column."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"{RELEASE}: val_fraction must be in [0, 1), got {val_fraction}.")
    frame = load_vqa_rad(root, annotation=annotation).frame.copy()
    frame["official_split"] = frame["split"]
    frame["split"] = image_disjoint_splits(frame, val_fraction, seed)
    moved = int(((frame["official_split"] == "train") & (frame["split"] == "test")).sum())
    counts = ", ".join(f"{split} {int((frame['split'] == split).sum())} questions / "
                       f"{frame.loc[frame['split'] == split, 'image_id'].nunique()} images"
                       for split in ("train", "val", "test"))
    notes = [
        "Image-disjoint re-split of the official files: every question about an image with an official test question "
        f"is test ({moved} official train questions moved there); the other images go to train or val "
        f"({val_fraction:g} of them, seeded hash of image_id, seed {seed}). No image has questions in two splits.",
        f"Counts: {counts}.",
        "Test is larger than the official 451 questions and differs from it: scores are not comparable with "
        "published VQA-RAD numbers, only across the models of one study.",
        MODALITY_NOTE,
    ]
    return VQAReleaseIndex("vqa-rad-image-disjoint", "ct,mri,xray", frame, LICENCE, SOURCE, notes)
