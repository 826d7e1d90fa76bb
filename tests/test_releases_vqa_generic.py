"""Generic VQA annotations (user data): JSON / JSONL / CSV, column options, split by image, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medrival.core.errors import DataError, MedrivalError
from medrival.data.releases.vqa_generic import read_generic_vqa

# What a registry entry for the fixture passes to read_generic_vqa besides the root.
GENERIC_ANNOTATION = "vqa.json"
GENERIC_KWARGS = {"modality": "xray,ct", "name": "my-vqa"}
_TYPES = ["CLOSED", "yes_no", "Closed-Ended", "Yes-No"]
_OPEN_TYPES = ["open", "Open-Ended", "free", ""]
_SPLITS = {"train": "Training", "val": "dev", "test": "Testing"}


def _records() -> list[dict]:
    """12 images x (one yes/no + one open question); split values consistent per image."""
    records = []
    for i in range(12):
        image = f"images/case{i:02d}.png"
        split = _SPLITS["test" if i in (0, 3, 7) else "val" if i == 10 else "train"]
        records.append({"qid": f"q{2 * i}", "image": image, "question": f"Is there  an effusion in case {i}?",
                        "answer": "Yes" if i % 2 else "no", "answer_type": _TYPES[i % 4], "split": split,
                        "case": f"case-{i}"})
        # "./" prefix: the same file written differently must still share image_id.
        records.append({"qid": f"q{2 * i + 1}", "image": f"./{image}" if i == 1 else image,
                        "question": "Which organ is shown?", "answer": "None" if i == 2 else ["lung", "heart"][i % 2],
                        "answer_type": _OPEN_TYPES[i % 4], "split": split, "case": f"case-{i}"})
    return records


def _write(root: Path, name: str, records: list[dict]) -> Path:
    path = root / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    elif name.endswith(".csv"):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def write_generic_vqa_fixture(root: Path) -> Path:
    """User data: ``vqa.json`` (also as ``vqa.jsonl``, ``vqa.csv``, ``vqa_wrapped.json``) + 12 PNG images."""
    root.mkdir(parents=True, exist_ok=True)
    records = _records()
    for name in (GENERIC_ANNOTATION, "vqa.jsonl", "vqa.csv"):
        _write(root, name, records)
    (root / "vqa_wrapped.json").write_text(json.dumps({"questions": records}), encoding="utf-8")
    (root / "images").mkdir(exist_ok=True)
    for i in range(12):
        Image.new("L", (32, 24), 20 * i).save(root / "images" / f"case{i:02d}.png")
    return root


write_fixture = write_generic_vqa_fixture


def _load(root: Path, annotation: str = GENERIC_ANNOTATION, **kwargs):
    return read_generic_vqa(root, annotation, **{**GENERIC_KWARGS, **kwargs})


def test_defaults_derive_types_and_split_by_image(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    index = _load(root)
    frame = index.frame
    assert index.name == "my-vqa" and index.modality == "xray,ct" and index.licence == "unknown (user data)"
    assert len(frame) == 24 and list(frame["question_id"][:3]) == ["0", "1", "2"]
    assert frame.loc[2, "image"] == frame.loc[3, "image"] == frame.loc[3, "image_id"] == "images/case01.png"
    assert frame.loc[0, "question"] == "Is there an effusion in case 0?" and frame.loc[5, "answer"] == "None"
    assert set(frame["answer_type_source"]) == {"derived"}
    assert list(frame["answer_type"][:4]) == ["closed", "open", "closed", "open"]
    assert (frame.groupby("image_id")["split"].nunique() == 1).all()
    assert index.splits == ("train", "val", "test")
    assert index.counts()["images"] == {"train": 8, "val": 1, "test": 3, "all": 12}
    assert index.missing_images(root).empty and index.source == str(root / GENERIC_ANNOTATION)


def test_formats_agree(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    frames = [_load(root, name, answer_type_column="answer_type").frame
              for name in (GENERIC_ANNOTATION, "vqa.jsonl", "vqa.csv", "vqa_wrapped.json")]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_answer_type_column_normalised(tmp_path):
    frame = _load(write_generic_vqa_fixture(tmp_path), answer_type_column="answer_type").frame
    closed, open_ = frame.iloc[0::2], frame.iloc[1::2]
    assert set(closed["answer_type"]) == {"closed"} and set(closed["answer_type_source"]) == {"release"}
    assert set(open_["answer_type"]) == {"open"}
    blank = open_["question_id"].astype(int) % 8 == 7  # records whose answer_type cell is ""
    assert set(open_.loc[blank, "answer_type_source"]) == {"derived"}
    assert set(open_.loc[~blank, "answer_type_source"]) == {"release"}


def test_unknown_answer_types_rejected_listing_all(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    records = _records()
    records[0]["answer_type"], records[5]["answer_type"] = "short", "numeric"
    _write(root, "bad.json", records)
    with pytest.raises(DataError, match=r"my-vqa: bad.json column 'answer_type'.*\['numeric', 'short'\].*yes-no"):
        _load(root, "bad.json", answer_type_column="answer_type")


def test_split_column(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    index = _load(root, split_column="split")
    assert index.counts()["images"] == {"train": 8, "val": 1, "test": 3, "all": 12}
    assert any("0 images have questions in more than one split" in n for n in index.notes)
    records = _records()
    records[1]["split"] = "valid"  # case00: one question in val, one in test
    _write(root, "mixed.csv", records)
    assert any("1 images have questions in more than one" in n
               for n in _load(root, "mixed.csv", split_column="split").notes)
    records[2]["split"], records[4]["split"] = "holdout", ""
    _write(root, "bad.json", records)
    with pytest.raises(DataError, match=r"column 'split'.*\['', 'holdout'\].*validation"):
        _load(root, "bad.json", split_column="split")


def test_id_columns_and_seed(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    index = _load(root, question_id_column="qid", image_id_column="case")
    assert list(index.frame["question_id"][:2]) == ["q0", "q1"] and index.frame.loc[0, "image_id"] == "case-0"
    assert (index.frame.groupby("image_id")["split"].nunique() == 1).all()
    assert list(_load(root).frame["split"]) == list(_load(root, seed=0).frame["split"])
    assert list(_load(root).frame["split"]) != list(_load(root, seed=1).frame["split"])
    assert set(_load(root, fractions=(0.0, 0.0, 1.0)).frame["split"]) == {"test"}
    records = _records()
    records[1]["qid"] = "q0"
    _write(root, "dup.json", records)
    with pytest.raises(DataError, match="not unique"):
        _load(root, "dup.json", question_id_column="qid")


@pytest.mark.parametrize("path, message", [("../outside.png", "escapes the dataset root"),
                                           ("images/../../x.png", "escapes the dataset root"),
                                           ("/etc/passwd", "absolute"), ("", "empty image path")])
def test_paths_escaping_root_rejected(tmp_path, path, message):
    root = write_generic_vqa_fixture(tmp_path)
    records = _records()
    records[3]["image"] = path
    _write(root, "bad.json", records)
    with pytest.raises(DataError, match=message):
        _load(root, "bad.json")


def test_bad_inputs(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    with pytest.raises(DataError, match=r"my-vqa.*missing\.json"):
        _load(root, "missing.json")
    with pytest.raises(DataError, match="not a directory"):
        _load(tmp_path / "nope")
    (root / "vqa.txt").write_text("x")
    with pytest.raises(DataError, match=r"suffix '\.txt'.*\.json, \.jsonl, \.csv"):
        _load(root, "vqa.txt")
    with pytest.raises(DataError, match=r"vqa.csv record #0 lacks column\(s\)/key\(s\) \['img'\]"):
        _load(root, "vqa.csv", image_column="img")
    with pytest.raises(DataError, match=r"lacks column\(s\)/key\(s\) \['kind'\]"):
        _load(root, answer_type_column="kind")
    (root / "obj.json").write_text(json.dumps({"data": []}))
    with pytest.raises(DataError, match="JSON list"):
        _load(root, "obj.json")
    (root / "broken.jsonl").write_text('{"image": "a.png"}\n{"image": \n')
    with pytest.raises(DataError, match="line 2 of"):
        _load(root, "broken.jsonl")
    _write(root, "empty_answer.json", [dict(_records()[0], answer="  ")])
    with pytest.raises(DataError, match="empty question or answer"):
        _load(root, "empty_answer.json")
    (root / "none.json").write_text("[]")
    with pytest.raises(DataError, match="no questions"):
        _load(root, "none.json")
    with pytest.raises(MedrivalError, match="Unknown modality"):
        _load(root, modality="radiology")


def test_counts_and_summary(tmp_path):
    root = write_generic_vqa_fixture(tmp_path)
    index = _load(root, answer_type_column="answer_type")
    counts = index.counts()
    assert counts["questions"] == {"train": 16, "val": 2, "test": 6, "all": 24}
    assert counts["answer_types"]["all"] == {"closed": 12, "open": 12}
    assert counts["answer_type_source"]["test"] == {"release": 4, "derived": 2}
    (root / "images" / "case00.png").unlink()
    summary = index.summary(root)
    assert summary["missing_images"] == {"questions": 2, "images": 1}
    json.dumps(summary)
