"""Generic VQA annotations (user data): one JSON, JSON Lines or CSV file of question records + image files.

Accepted formats, chosen by the annotation file's suffix:

- ``.json``: a list of objects, or an object ``{"questions": [...]}`` holding that list;
- ``.jsonl``: one object per line (blank lines ignored);
- ``.csv``: a header line then one row per question (cells read as text, no NA guessing: "None" stays text).

Column (key) names are arguments; by default ``image``, ``question``, ``answer``. Rules:

- ``image`` is a path relative to ``root``; absolute paths and ``..`` escapes are rejected (annotation files are
  input and must never make us read outside the root). ``image_id`` defaults to the normalised image path, so
  questions about the same file share it.
- ``answer_type`` (optional column): closed / yes-no / yes_no / closed-ended -> "closed"; open / open-ended /
  free -> "open" (case, ``_`` and spaces ignored; source "release"). A blank cell, or no column at all, is
  derived from the question, never the answer (yes/no shaped or stating options -> closed; source "derived"). Any other value is rejected, listing them all.
- ``split`` (optional column): train/training, val/valid/validation/dev, test/testing (case ignored). Without a
  split column the split is drawn per image (seeded hash over ``image_id``, ``fractions`` train/val/test), so one
  image's questions never land in two splits. With one, images shared between splits are counted in ``notes``.
- ``question_id`` defaults to the record's position (0-based) in the file; ids must be unique.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from medrival.core.errors import DataError
from medrival.data.releases.index import grouped_split
from medrival.data.releases.paths import read_annotation_csv, reject_links_outside
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, derive_answer_type, normalise_text, read_json, require_file,
    safe_relpath,
)

RELEASE = "generic VQA annotations"
LICENCE = "unknown (user data)"
SOURCE = "user-supplied annotation file"
SUFFIXES = (".json", ".jsonl", ".csv")
ANSWER_TYPE_VALUES = {
    "closed": "closed", "yes-no": "closed", "closed-ended": "closed",
    "open": "open", "open-ended": "open", "free": "open",
}
SPLIT_VALUES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


def _read_jsonl(path: Path, release: str) -> list:
    require_file(path, release=release)
    records = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{release}: line {number} of {str(path)!r} is not JSON ({err}).") from err
    return records


def _read_csv(path: Path, release: str) -> list:
    require_file(path, release=release)
    return read_annotation_csv(path, release, allow_empty=True).to_dict("records")


def _read_records(path: Path, release: str) -> list:
    """The annotation file's records (a list; items are checked one by one later)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, release)
    if suffix == ".csv":
        return _read_csv(path, release)
    if suffix != ".json":
        raise DataError(f"{release}: annotation file {path.name!r} has suffix {path.suffix!r}; expected one of "
                        f"{', '.join(SUFFIXES)}.")
    data = read_json(path, release=release)
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        return data["questions"]
    if not isinstance(data, list):
        raise DataError(f"{release}: {path.name!r} must hold a JSON list of question objects or "
                        '{"questions": [...]}; found a ' f"{type(data).__name__}.")
    return data


def _lookup(value: Any, table: dict[str, str], *, dashes: bool) -> str | None:
    key = normalise_text(value).lower()
    if dashes:  # "yes_no", "Closed Ended" and "closed-ended" are one spelling
        key = "-".join(key.replace("_", " ").split())
    return table.get(key)


def _record_row(record: Any, position: int, columns: dict[str, str | None], *, release: str, file: str,
                root: Path) -> dict:
    """One index row; ``answer_type``/``split`` hold the raw cell when it is not a known spelling."""
    where = f"{release}: {file}"
    if not isinstance(record, dict):
        raise DataError(f"{where} record #{position} is a {type(record).__name__}, expected an object.")
    absent = [c for c in columns.values() if c is not None and c not in record]
    if absent:
        raise DataError(f"{where} record #{position} lacks column(s)/key(s) {absent}; "
                        f"found: {', '.join(map(str, record))}.")
    image = safe_relpath(record[columns["image"]], release=release, root=root)
    question, answer = normalise_text(record[columns["question"]]), normalise_text(record[columns["answer"]])
    if not question or not answer:
        raise DataError(f"{where} record #{position} has an empty question or answer.")
    row = {"question_id": normalise_text(record[columns["question_id"]]) if columns["question_id"] else str(position),
           "image": image, "question": question, "answer": answer,
           "image_id": normalise_text(record[columns["image_id"]]) if columns["image_id"] else image}
    raw_type = normalise_text(record[columns["answer_type"]]) if columns["answer_type"] else ""
    if raw_type:
        row["answer_type"] = _lookup(raw_type, ANSWER_TYPE_VALUES, dashes=True) or raw_type
        row["answer_type_source"] = "release"
    else:
        row["answer_type"], row["answer_type_source"] = derive_answer_type(question), "derived"
    if columns["split"]:
        raw_split = normalise_text(record[columns["split"]])
        row["split"] = _lookup(raw_split, SPLIT_VALUES, dashes=False) or raw_split
    return row


def _reject_unknown(rows: list[dict], column: str, allowed: dict[str, str], where: str) -> None:
    bad = sorted({row[column] for row in rows if row[column] not in set(allowed.values())})
    if bad:
        raise DataError(f"{where} column {column!r} has values {bad} that are not recognised; accepted (any case): "
                        f"{', '.join(sorted(allowed))}.")


def _assign_splits(frame: pd.DataFrame, has_split: bool, fractions: tuple, seed: int) -> list[str]:
    """Seeded per-image split when the file has none; notes on how the split was made."""
    if not has_split:
        frame["split"] = grouped_split(frame["image_id"], tuple(fractions), seed)
        return [f"No split column: split per image with fractions {tuple(fractions)} (seed {seed}); no image "
                "spans two splits."]
    spans = frame.groupby("image_id")["split"].nunique()
    return [f"Split from the annotation file: {int((spans > 1).sum())} images have questions in more than one "
            "split."]


def read_generic_vqa(root: Path | str, annotation: Path | str, *, image_column: str = "image",
                     question_column: str = "question", answer_column: str = "answer",
                     answer_type_column: str | None = None, split_column: str | None = None,
                     image_id_column: str | None = None, question_id_column: str | None = None,
                     modality: str, name: str, licence: str = LICENCE, seed: int = 0,
                     fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> VQAReleaseIndex:
    """Index a user VQA annotation file (``annotation``, relative to ``root`` unless absolute) as release ``name``.

    ``modality`` is one controlled word, or several joined by commas. Images are not opened.
    """
    root = check_root(root, release=name)
    path = Path(annotation) if Path(annotation).is_absolute() else root / annotation
    where = f"{name}: {path.name}"
    columns = {"image": image_column, "question": question_column, "answer": answer_column,
               "answer_type": answer_type_column, "split": split_column, "image_id": image_id_column,
               "question_id": question_id_column}
    rows = [_record_row(r, i, columns, release=name, file=path.name, root=root)
            for i, r in enumerate(_read_records(path, name))]
    if answer_type_column:
        _reject_unknown(rows, "answer_type", ANSWER_TYPE_VALUES, where)
    if split_column:
        _reject_unknown(rows, "split", SPLIT_VALUES, where)
    if not rows:
        raise DataError(f"{name}: {str(path)!r} holds no questions.")
    frame = pd.DataFrame(rows)
    reject_links_outside(root, list(dict.fromkeys(frame["image"])), name)
    notes = _assign_splits(frame, bool(split_column), fractions, seed)
    frame = build_frame(frame.to_dict("records"), release=name)
    derived = int((frame["answer_type_source"] == "derived").sum())
    if derived:
        notes.append(f"{derived} questions have no answer type in the file; derived from the question text.")
    return VQAReleaseIndex(name, modality, frame, licence, str(path), notes)
