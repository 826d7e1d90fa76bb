"""SLAKE 1.0 parser: fixtures in the release's format (three JSON lists, mixed languages, varying key order)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from medrival.core.errors import DataError
from medrival.data.releases.slake import SPLIT_FILES, load_slake


def _rec(qid, img_id, question, answer, lang="en", answer_type="OPEN", modality="MRI", reverse=False, **extra):
    record = {"img_id": img_id, "img_name": f"xmlab{img_id}/source.jpg", "question": question, "answer": answer,
              "q_lang": lang, "location": "Abdomen", "modality": modality, "answer_type": answer_type,
              "base_type": "vqa", "content_type": "Modality", "triple": ["vhead", "_", "_"], "qid": qid}
    record.update(extra)
    if reverse:  # key order varies between records
        record = dict(reversed(list(record.items())))
    return record


def write_slake(root: Path, files: dict | None = None) -> Path:
    if files is None:
        files = {
            "train": [_rec(0, 1, "What modality is used to take this image?", "MRI"),
                      _rec(1, 1, "这张图片的成像方式是什么?", "核磁共振", lang="zh"),
                      _rec(2, 1, "Does  the picture contain liver?", "Yes", answer_type="CLOSED", reverse=True),
                      _rec(3, 2, "Which organ is abnormal?", "Lung", modality="X-Ray", base_type="kvqa",
                           triple=["vhead", "belong to", "_"])],
            "val": [_rec(10, 3, "Is this a CT?", "No", answer_type=" closed ", modality="CT")],
            "test": [_rec(20, 4, "Is the lung healthy?", "No", answer_type="", modality="CT", reverse=True),
                     _rec(21, 4, "肺健康吗?", "不", lang="zh", modality="CT")],
        }
    root.mkdir(parents=True, exist_ok=True)
    for split, records in files.items():
        (root / SPLIT_FILES[split]).write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    for image_id in (1, 2, 3):  # xmlab4 deliberately missing
        (root / "imgs" / f"xmlab{image_id}").mkdir(parents=True, exist_ok=True)
        (root / "imgs" / f"xmlab{image_id}" / "source.jpg").write_bytes(b"never decoded")
    return root


def test_english_default(tmp_path):
    index = load_slake(write_slake(tmp_path))
    frame = index.frame
    assert list(frame["question_id"]) == ["0", "2", "3", "10", "20"]
    assert list(frame["split"]) == ["train", "train", "train", "val", "test"]
    assert list(frame["answer_type"]) == ["open", "closed", "open", "closed", "closed"]
    assert list(frame["answer_type_source"]) == ["release"] * 4 + ["derived"]
    assert list(frame["modality_tag"]) == ["mri", "mri", "xray", "ct", "ct"]
    assert frame.loc[0, "image"] == "imgs/xmlab1/source.jpg" and frame.loc[0, "image_id"] == "1"
    assert frame.loc[1, "question"] == "Does the picture contain liver?"
    assert frame.loc[2, "base_type"] == "kvqa" and json.loads(frame.loc[2, "triple"]) == ["vhead", "belong to", "_"]
    assert set(frame["q_lang"]) == {"en"}
    counts = index.counts()
    assert counts["questions"] == {"train": 3, "val": 1, "test": 1, "all": 5}
    assert counts["images"] == {"train": 2, "val": 1, "test": 1, "all": 4}
    assert counts["answer_types"]["all"] == {"closed": 3, "open": 2}
    assert list(index.missing_images(tmp_path)["question_id"]) == ["20"]
    assert index.modalities == ("ct", "mri", "xray")


def test_all_languages_share_image_ids(tmp_path):
    index = load_slake(write_slake(tmp_path), languages=None)
    frame = index.frame
    assert len(frame) == 7 and set(frame["q_lang"]) == {"en", "zh"}
    zh = frame[frame["q_lang"] == "zh"]
    assert list(zh["image_id"]) == ["1", "4"] and list(zh["answer"]) == ["核磁共振", "不"]
    assert index.counts()["images"]["all"] == 4
    only_zh = load_slake(tmp_path, languages=["ZH"])
    assert len(only_zh.frame) == 2


def test_qid_collisions_get_split_prefix(tmp_path):
    files = {"train": [_rec(0, 1, "q", "a")], "val": [_rec(0, 2, "q", "a")], "test": [_rec(0, 3, "q", "a")]}
    index = load_slake(write_slake(tmp_path, files))
    assert list(index.frame["question_id"]) == ["train:0", "val:0", "test:0"]
    assert any("<split>:<qid>" in n for n in index.notes)


def test_bad_inputs(tmp_path):
    root = write_slake(tmp_path / "ok")
    (root / "validate.json").unlink()
    with pytest.raises(DataError, match="validate.json"):
        load_slake(root)
    bad = {"train": [_rec(0, 1, "q", "a", img_name="../../etc/passwd")], "val": [], "test": []}
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_slake(write_slake(tmp_path / "escape", bad))
    bad = {"train": [{"qid": 0, "question": "q"}], "val": [], "test": []}
    with pytest.raises(DataError, match=r"train.json.*lacks keys"):
        load_slake(write_slake(tmp_path / "keys", bad))
    bad = {"train": {"qid": 0}, "val": [], "test": []}
    with pytest.raises(DataError, match="JSON list"):
        load_slake(write_slake(tmp_path / "obj", bad))
    only_zh = {"train": [_rec(0, 1, "q", "a", lang="zh")], "val": [], "test": []}
    with pytest.raises(DataError, match="no questions"):
        load_slake(write_slake(tmp_path / "zh", only_zh))
