"""SLAKE 1.0 (Liu et al., ISBI 2021): ``train.json``, ``validate.json``, ``test.json`` + ``imgs/{img_name}``.

Each file is a JSON list of records with the keys ``img_id, img_name, question, answer, q_lang, location,
modality, answer_type, base_type, content_type, triple, qid`` (key order varies between records and copies).
Quirks handled:
- English and Chinese questions share the files; ``q_lang == "en"`` is kept by default (``languages=None``
  keeps every language; the two languages share ``img_id``, so they also share ``image_id``).
- ``img_name`` is ``xmlab{N}/source.jpg``: the image folder's name, not the file name, identifies the image.
- ``answer_type`` is ``CLOSED``/``OPEN`` (case and spaces tolerated); anything else is derived from the question text.
- ``modality`` is ``CT``/``MRI``/``X-Ray``, mapped to the controlled vocabulary in ``modality_tag``.
- ``triple`` (knowledge-graph triple, a JSON list) is kept as compact JSON text so the frame stays flat.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from medrival.core.errors import DataError
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, derive_answer_type, normalise_text, read_json, safe_relpath,
)

RELEASE = "SLAKE 1.0"
SPLIT_FILES = {"train": "train.json", "val": "validate.json", "test": "test.json"}
IMAGE_FOLDER = "imgs"
LICENCE = "CC BY 4.0"
SOURCE = "https://www.med-vqa.com/slake/"
REQUIRED_KEYS = ("img_id", "img_name", "question", "answer", "q_lang", "qid")
EXTRA_KEYS = ("q_lang", "location", "modality_tag", "content_type", "base_type", "triple")
# Release spelling -> controlled vocabulary (medrival.core.types.MODALITIES).
_MODALITY_WORDS = {"ct": "ct", "mri": "mri", "x-ray": "xray", "xray": "xray"}


def _text_or_none(value: Any) -> str | None:
    text = normalise_text(value)
    return text or None


def _record_row(record: Any, split: str, position: int) -> dict:
    where = f"{SPLIT_FILES[split]!r} record #{position}"
    if not isinstance(record, dict):
        raise DataError(f"{RELEASE}: {where} is a {type(record).__name__}, expected an object.")
    absent = [k for k in REQUIRED_KEYS if k not in record]
    if absent:
        raise DataError(f"{RELEASE}: {where} (qid {record.get('qid')!r}) lacks keys {absent}.")
    answer = normalise_text(record["answer"])
    answer_type = normalise_text(record.get("answer_type")).lower()
    source = "release"
    if answer_type not in ("closed", "open"):
        answer_type, source = derive_answer_type(record["question"]), "derived"
    modality = _text_or_none(record.get("modality"))
    triple = record.get("triple")
    return {
        "question_id": normalise_text(record["qid"]),
        "image": f"{IMAGE_FOLDER}/{safe_relpath(record['img_name'], release=RELEASE)}",
        "image_id": normalise_text(record["img_id"]), "question": normalise_text(record["question"]),
        "answer": answer, "answer_type": answer_type, "answer_type_source": source, "split": split,
        "q_lang": normalise_text(record["q_lang"]).lower(), "location": _text_or_none(record.get("location")),
        "modality_tag": _MODALITY_WORDS.get(modality.lower(), modality) if modality else None,
        "content_type": _text_or_none(record.get("content_type")),
        "base_type": _text_or_none(record.get("base_type")),
        "triple": json.dumps(triple, ensure_ascii=False) if triple is not None else None,
    }


def _rows(root: Path, languages: set[str] | None) -> Iterable[dict]:
    for split, name in SPLIT_FILES.items():
        records = read_json(root / name, release=RELEASE)
        if not isinstance(records, list):
            raise DataError(f"{RELEASE}: {name!r} must hold a JSON list of question records, "
                            f"found a {type(records).__name__}.")
        for position, record in enumerate(records):
            row = _record_row(record, split, position)
            if languages is None or row["q_lang"] in languages:
                yield row


def load_slake(root: Path | str, *, languages: Iterable[str] | None = ("en",)) -> VQAReleaseIndex:
    """Index SLAKE 1.0 under ``root``; ``languages`` filters ``q_lang`` (None keeps all). Images are not opened."""
    root = check_root(root, release=RELEASE)
    wanted = None if languages is None else {str(lang).lower() for lang in languages}
    rows = list(_rows(root, wanted))
    notes = [f"Languages kept: {'all' if wanted is None else ', '.join(sorted(wanted))}."]
    ids = [r["question_id"] for r in rows]
    if len(set(ids)) != len(ids):
        # qid is unique across the official files; copies that renumber per file still get unique ids.
        for row in rows:
            row["question_id"] = f"{row['split']}:{row['question_id']}"
        notes.append("qid repeats across split files; question_id is '<split>:<qid>'.")
    frame = build_frame(rows, release=RELEASE, extras=EXTRA_KEYS)
    derived = int((frame["answer_type_source"] == "derived").sum())
    if derived:
        notes.append(f"{derived} questions had no usable answer_type; derived from the question text.")
    return VQAReleaseIndex("slake", "ct,mri,xray", frame, LICENCE, SOURCE, notes)
