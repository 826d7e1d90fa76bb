"""The common output of every VQA release parser: ``VQAReleaseIndex``, plus the small helpers the parsers share.

A VQA release is indexed as one pandas frame, one row per question, without opening a single image: counting
questions, answer types or images is a frame operation (MedVLMBench decodes every image just to count).
Required columns:

- ``question_id`` (str): unique within the release.
- ``image``: posix path relative to the dataset root, or a ``parquet:<file>#<row>`` reference for releases that
  embed image bytes in parquet files.
- ``image_id`` (str): questions about the same image share it (cluster key for cluster-aware statistics).
- ``question``, ``answer`` (str): whitespace normalised, original casing kept (metrics decide how to compare).
- ``answer_type``: "closed" or "open"; ``answer_type_source``: "release" when the release says so, "derived"
  when we inferred it from the *question* with :func:`derive_answer_type` (never from the answer).
- ``split``: train / val / test.

Release-specific extras (``image_organ``, ``content_type``, ``modality_tag``, ...) are kept as further columns.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import check_modality
from medrival.core.vqa_forms import closed_or_open, question_form
from medrival.data.releases import paths
from medrival.data.releases.paths import safe_relative

VQA_COLUMNS: tuple[str, ...] = (
    "question_id", "image", "image_id", "question", "answer", "answer_type", "answer_type_source", "split",
)
ANSWER_TYPES: tuple[str, ...] = ("closed", "open")
ANSWER_TYPE_SOURCES: tuple[str, ...] = ("release", "derived")
SPLITS: tuple[str, ...] = ("train", "val", "test")
PARQUET_PREFIX = "parquet:"

_WHITESPACE = re.compile(r"\s+")


def normalise_text(value: Any) -> str:
    """Return ``value`` as a string with runs of whitespace collapsed and ends stripped; casing is kept.

    Releases store some answers as JSON numbers (VQA-RAD: ``4``, ``12``); they become their decimal text.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2.0 read from a CSV is the answer "2"
    return _WHITESPACE.sub(" ", str(value)).strip()


def derive_answer_type(question: Any) -> str:
    """Closed/open for a release that does not label it, from the question alone: "closed" when the question is
    yes/no shaped or states its options (``medrival.core.vqa_forms``), else "open". The answer is never read, so
    the type (and the prompt it leads to) cannot leak it. Rows typed this way carry ``answer_type_source ==
    "derived"``.
    """
    form, _ = question_form(normalise_text(question), None)
    return closed_or_open(form)


def safe_relpath(raw: Any, *, release: str, root: Path | str = "the dataset root") -> str:
    """Return ``raw`` (a path read from an annotation file) as a posix path relative to the dataset root.

    Delegates to the shared lexical check in ``paths.safe_relative``: absolute paths, drive letters and ``..``
    escapes are rejected with a DataError, because annotation files are input and must never make us read
    outside the root. Non-string values (some releases store ids as numbers) are converted first.
    """
    text = "" if raw is None else str(raw)
    return safe_relative(root, text, release)


def require_file(path: Path, *, release: str) -> Path:
    """``path`` when it is a file; else the shared DataError naming the expected file and its release."""
    return paths.require_file(path.parent, [path.name], release)


def read_json(path: Path, *, release: str) -> Any:
    """Parse a JSON annotation file, turning I/O and syntax errors into DataErrors naming the file."""
    require_file(path, release=release)
    try:
        with open(path, encoding="utf-8-sig") as handle:  # some releases ship a BOM
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{release}: could not parse {str(path)!r} as JSON ({err}).") from err


def check_root(root: Path | str, *, release: str) -> Path:
    """Return ``root`` as a Path if it is a directory, else raise naming the release."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{release}: dataset root {str(path)!r} is not a directory.")
    return path


def build_frame(rows: Iterable[dict], *, release: str, extras: Iterable[str] = ()) -> pd.DataFrame:
    """Make the index frame from row dicts: required columns first, then ``extras``, all as Python strings."""
    columns = list(VQA_COLUMNS) + [c for c in extras if c not in VQA_COLUMNS]
    frame = pd.DataFrame(list(rows), columns=columns)
    if frame.empty:
        raise DataError(f"{release}: the annotation files hold no questions (after filtering).")
    duplicated = frame["question_id"][frame["question_id"].duplicated()]
    if len(duplicated):
        raise DataError(f"{release}: question ids are not unique (e.g. {duplicated.iloc[0]!r}).")
    return frame.reset_index(drop=True)


def _check_modality(modality: str) -> str:
    # Mixed-modality releases (VQA-RAD, SLAKE: CT + MRI + X-ray) list their controlled words joined by commas.
    words = [w.strip() for w in modality.split(",")]
    for word in words:
        check_modality(word)
    return ",".join(words)


@dataclass
class VQAReleaseIndex:
    """A parsed VQA release: one row per question (see the module docstring for the columns)."""

    name: str
    modality: str
    frame: pd.DataFrame
    licence: str
    source: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modality = _check_modality(self.modality)
        missing = [c for c in VQA_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ConfigError(f"{self.name}: VQA index frame lacks columns {missing}; required: {list(VQA_COLUMNS)}.")
        for column, allowed in (("answer_type", ANSWER_TYPES), ("answer_type_source", ANSWER_TYPE_SOURCES),
                                ("split", SPLITS)):
            bad = sorted(set(self.frame[column]) - set(allowed))
            if bad:
                raise ConfigError(f"{self.name}: column {column!r} has values {bad}; allowed: {list(allowed)}.")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.modality.split(","))

    @property
    def splits(self) -> tuple[str, ...]:
        present = set(self.frame["split"])
        return tuple(s for s in SPLITS if s in present)

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (a copy, index reset)."""
        if name not in SPLITS:
            raise ConfigError(f"{self.name}: unknown split {name!r}; expected one of {list(SPLITS)}.")
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def counts(self) -> dict:
        """Question, answer-type and distinct-image counts per split and overall, from the frame only."""
        out: dict = {"questions": {}, "answer_types": {}, "answer_type_source": {}, "images": {}}
        for split in self.splits:
            part = self.frame[self.frame["split"] == split]
            out["questions"][split] = int(len(part))
            out["answer_types"][split] = {t: int((part["answer_type"] == t).sum()) for t in ANSWER_TYPES}
            out["answer_type_source"][split] = {s: int((part["answer_type_source"] == s).sum())
                                                for s in ANSWER_TYPE_SOURCES}
            out["images"][split] = int(part["image_id"].nunique())
        out["questions"]["all"] = int(len(self.frame))
        out["answer_types"]["all"] = {t: int((self.frame["answer_type"] == t).sum()) for t in ANSWER_TYPES}
        out["images"]["all"] = int(self.frame["image_id"].nunique())
        return out

    def missing_images(self, root: Path | str) -> pd.DataFrame:
        """Rows whose image file does not exist under ``root`` (a stat per distinct file; nothing is decoded).

        For ``parquet:<file>#<row>`` references the parquet file must exist; rows inside it are not checked.
        """
        root = Path(root)
        files = self.frame["image"].map(_image_file)
        exists = {f: (root / f).is_file() for f in files.unique()}
        return self.frame[~files.map(exists)].reset_index(drop=True)

    def summary(self, root: Path | str | None = None) -> dict:
        """JSON-able summary for ``datasets check``: counts, and missing images when a root is given."""
        out = {"dataset": self.name, "modality": self.modality, **self.counts(), "notes": list(self.notes)}
        if root is not None:
            missing = self.missing_images(root)
            out["missing_images"] = {"questions": int(len(missing)), "images": int(missing["image_id"].nunique())}
        return out


def _image_file(reference: str) -> str:
    if reference.startswith(PARQUET_PREFIX):
        return reference[len(PARQUET_PREFIX):].rsplit("#", 1)[0]
    return reference
