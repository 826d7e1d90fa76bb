"""VQA-RAD official JSON parser + the shared VQAReleaseIndex: quirk fixtures and the real sample."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.data.releases.vqa_index import (
    VQA_COLUMNS, VQAReleaseIndex, derive_answer_type, normalise_text, safe_relpath,
)
from medrival.data.releases.vqa_rad import ANNOTATION_FILE, IMAGE_FOLDER, load_vqa_rad

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "vqa_rad"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real/vqa_rad")


def _record(qid, phrase, image, question, answer, answer_type, **extra):
    # Key order of the official file.
    record = {"qid": qid, "phrase_type": phrase, "qid_linked_id": f"link-{qid}",
              "image_case_url": "https://medpix.nlm.nih.gov/case?id=x", "image_name": image,
              "image_organ": "HEAD", "evaluation": "not evaluated", "question": question,
              "question_rephrase": "NULL", "question_relation": "NULL", "question_frame": "NULL",
              "question_type": "PRES", "answer": answer, "answer_type": answer_type}
    record.update(extra)
    return record


def write_vqa_rad(root: Path, records=None) -> Path:
    """The official layout: pretty-printed (3-space indent) JSON list + image folder with the referenced files."""
    if records is None:
        no_rephrase = _record(5, "test_para", "synpic2.jpg", "How many?", 12, "OPEN")
        del no_rephrase["question_rephrase"]  # absent in qid 2036/2037 of the real file
        records = [
            _record("0", "freeform", "synpic1.jpg", "Are regions  of the brain infarcted?", "Yes", "CLOSED"),
            _record(1, "para", "synpic1.jpg", "Is the brain infarcted?", "yes", "CLOSED ",
                    question_rephrase="Is there an infarct?", question_type="POS, PRES"),
            _record(2, "freeform", "synpic2.jpg", "How many lesions?", 4, "OPEN"),
            _record(3, "test_freeform", "synpic2.jpg", "Where is the mass?", " superficial to the skin", "OPEN"),
            _record(4, "test_freeform", "synpic3.jpg", "Is this normal?", "No", "NULL"),
            no_rephrase,
        ]
    root.mkdir(parents=True, exist_ok=True)
    (root / ANNOTATION_FILE).write_text(json.dumps(records, indent=3), encoding="utf-8")
    (root / IMAGE_FOLDER).mkdir(exist_ok=True)
    for name in ("synpic1.jpg", "synpic2.jpg"):  # synpic3 deliberately missing
        (root / IMAGE_FOLDER / name).write_bytes(b"not decoded")
    return root


def test_helpers_normalise_and_derive():
    assert normalise_text("  a \n b ") == "a b"
    assert normalise_text(12) == "12" and normalise_text(2.0) == "2" and normalise_text(None) == ""
    # derived from the question text, never the answer
    for closed in ("Is there an effusion?", "does the CT show a mass", "Is this axial or coronal?",
                   "Which side, left or right?"):
        assert derive_answer_type(closed) == "closed"
    for open_ in ("What is shown?", "yes", "no", "Where is the lesion?", ""):
        assert derive_answer_type(open_) == "open"


@pytest.mark.parametrize("bad", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "..\\x.jpg", ""])
def test_safe_relpath_rejects_escapes(bad):
    with pytest.raises(DataError, match="VQA-RAD"):
        safe_relpath(bad, release="VQA-RAD")


def test_safe_relpath_keeps_relative():
    assert safe_relpath("./imgs/a b.jpg", release="x") == "imgs/a b.jpg"
    assert safe_relpath("imgs/x/../y.jpg", release="x") == "imgs/y.jpg"
    assert safe_relpath("imgs\\x.jpg", release="x") == "imgs/x.jpg"


def test_fixture_quirks(tmp_path):
    index = load_vqa_rad(write_vqa_rad(tmp_path))
    frame = index.frame
    assert list(frame.columns[: len(VQA_COLUMNS)]) == list(VQA_COLUMNS)
    assert list(frame["question_id"]) == ["0", "1", "2", "3", "4", "5"]
    assert list(frame["split"]) == ["train", "train", "train", "test", "test", "test"]
    assert list(frame["answer"]) == ["Yes", "yes", "4", "superficial to the skin", "No", "12"]
    assert frame.loc[0, "question"] == "Are regions of the brain infarcted?"
    assert list(frame["answer_type"]) == ["closed", "closed", "open", "open", "closed", "open"]
    assert list(frame["answer_type_source"]) == ["release"] * 4 + ["derived", "release"]
    assert frame.loc[0, "image"] == f"{IMAGE_FOLDER}/synpic1.jpg" and frame.loc[0, "image_id"] == "synpic1"
    assert pd.isna(frame.loc[0, "question_rephrase"]) and pd.isna(frame.loc[5, "question_rephrase"])
    assert frame.loc[1, "question_rephrase"] == "Is there an infarct?"
    assert frame.loc[1, "question_type"] == "POS, PRES"
    assert index.modalities == ("ct", "mri", "xray") and index.licence == "CC0 1.0"
    assert any("1 images have both train and test" in n for n in index.notes)
    assert any("derived" in n for n in index.notes)


def test_counts_and_missing_images(tmp_path):
    root = write_vqa_rad(tmp_path)
    index = load_vqa_rad(root)
    counts = index.counts()
    assert counts["questions"] == {"train": 3, "test": 3, "all": 6}
    assert counts["answer_types"]["train"] == {"closed": 2, "open": 1}
    assert counts["answer_types"]["all"] == {"closed": 3, "open": 3}
    assert counts["answer_type_source"]["test"] == {"release": 2, "derived": 1}
    assert counts["images"] == {"train": 2, "test": 2, "all": 3}
    missing = index.missing_images(root)
    assert list(missing["question_id"]) == ["4"]
    summary = index.summary(root)
    assert summary["missing_images"] == {"questions": 1, "images": 1}
    json.dumps(summary)  # JSON-able for `datasets check`
    assert index.split("test")["question_id"].tolist() == ["3", "4", "5"]
    with pytest.raises(ConfigError, match="unknown split"):
        index.split("dev")


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="VQA_RAD Dataset Public.json"):
        load_vqa_rad(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_vqa_rad(tmp_path / "nope")
    cases = {
        "phrase_type": [_record(0, "validation", "a.jpg", "q", "a", "OPEN")],
        "lacks keys": [{"qid": 0, "question": "q"}],
        "escapes": [_record(0, "freeform", "../../secret.jpg", "q", "a", "OPEN")],
        "absolute": [_record(0, "freeform", "/etc/passwd", "q", "a", "OPEN")],
        "not unique": [_record(0, "freeform", "a.jpg", "q", "a", "OPEN"),
                       _record("0", "para", "a.jpg", "q", "a", "OPEN")],
        "no answer": [_record(0, "freeform", "a.jpg", "q", "NULL", "OPEN")],
        "no questions": [],
    }
    for i, (message, records) in enumerate(cases.items()):
        with pytest.raises(DataError, match=message):
            load_vqa_rad(write_vqa_rad(tmp_path / str(i), records))
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj" / ANNOTATION_FILE).write_text('{"qid": 0}')
    with pytest.raises(DataError, match="JSON list"):
        load_vqa_rad(tmp_path / "obj")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / ANNOTATION_FILE).write_text('[{"qid": 0,')
    with pytest.raises(DataError, match="could not parse"):
        load_vqa_rad(tmp_path / "broken")


def test_index_validates_its_frame():
    frame = pd.DataFrame([{c: "x" for c in VQA_COLUMNS}])
    with pytest.raises(ConfigError, match="answer_type"):
        VQAReleaseIndex("x", "ct", frame, "l", "s")
    with pytest.raises(ConfigError, match="lacks columns"):
        VQAReleaseIndex("x", "ct", frame.drop(columns=["image_id"]), "l", "s")
    with pytest.raises(Exception, match="Unknown modality"):
        VQAReleaseIndex("x", "radiology", frame, "l", "s")


@pytest.mark.skipif(not (REAL / ANNOTATION_FILE).is_file(), reason="real VQA-RAD sample absent")
def test_real_release():
    index = load_vqa_rad(REAL)
    counts = index.counts()
    # Numbers from SOURCE.md, measured on the official file.
    assert counts["questions"] == {"train": 1797, "test": 451, "all": 2248}
    assert counts["answer_types"]["all"] == {"closed": 1299, "open": 949}
    assert counts["answer_type_source"]["train"]["derived"] == 0
    assert counts["images"]["all"] == 314
    frame = index.frame.set_index("question_id")
    assert frame.loc["0", "answer"] == "Yes" and frame.loc["0", "image_id"] == "synpic54610"
    assert [frame.loc[q, "answer"] for q in ("1511", "1568", "1683", "2234", "2235")] == ["4", "2", "2", "12", "12"]
    assert pd.isna(frame.loc["2036", "question_rephrase"])
    assert any("202 images have both train and test" in n for n in index.notes)
    # Only 13 of 314 images are in the sample: missing ones are counted, not fatal.
    missing = index.missing_images(REAL)
    present = 314 - missing["image_id"].nunique()
    assert present == 13
    summary = index.summary(REAL)
    assert summary["missing_images"]["images"] == 301
    assert summary["missing_images"]["questions"] == len(missing) > 0
