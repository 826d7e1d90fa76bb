"""PMC-VQA (Zhang et al. 2023), Hugging Face dataset ``xmcmic/PMC-VQA``: multiple-choice questions on PubMed
Central figures, one CSV per split.

Release format (one row per question, comma-separated, header line):

- version 1: ``train.csv``, ``test.csv`` and the manually checked ``test_clean.csv`` with columns
  ``Figure_path, Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label``; ``Answer`` is the gold
  choice's text, ``Answer_label`` its letter. Images: ``images.zip``, unpacked as ``images/<Figure_path>``.
- version 2 (non-compound figures): ``train_2.csv``, ``test_2.csv`` with columns ``index, Figure_path, Caption,
  Question, Choice A, Choice B, Choice C, Choice D, Answer, split``; here ``Answer`` is the gold *letter* and
  there is no ``Answer_label``. Images: ``images_2.zip`` -> ``figures/<Figure_path>``.

Quirks handled:
- choices carry their own letter, usually with a leading space: ``" A:Diffuse uptake pattern"``. The prefix is
  stripped from ``option_a..option_d`` and from ``answer`` (the gold choice's text); ``answer_label`` keeps the
  letter, so prompts can re-letter the options themselves.
- the gold column is detected from the header, not from the file name: ``Answer_label`` when present (v1), else
  ``Answer`` (v2). The dataset card and the authors' training code spell ``Anwser``/``Anwser_label``; copies
  with that spelling are accepted.
- some copies were re-saved by pandas with an unnamed index column (``Unnamed: 0``) -> dropped. v2's ``index``
  and ``Caption`` are kept as ``release_index``/``caption``; its ``split`` column repeats the file's split and
  is not read (the file decides).
- image folder: ``images/`` for v1 and ``figures/`` for v2 by default; when only the other one exists it is
  used, and ``image_folder`` overrides both.
- cells are read as text with no NA guessing: an answer "None" or "NA" stays the string.
- rows whose gold letter is not A-D or whose gold choice is empty cannot be scored; they are skipped and counted
  in ``notes`` (a generated release of 227k rows; one bad row should not make it unusable).
- every question is multiple choice, so ``answer_type`` is "closed" with source "release": the release fixes the
  candidate answers, which is what "closed" means here, although many choices are not yes/no.
- there is no validation split: one is carved from the training file by image (seeded hash,
  :func:`medrival.data.releases.index.grouped_split`), so an image's questions never straddle train and val.
- the release does not say which modality a figure shows (PMC figures mix radiology, microscopy, charts...);
  the index modality is the ``modality`` argument (see :data:`DEFAULT_MODALITY`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from medrival.core.errors import ConfigError
from medrival.data.releases.index import grouped_split
from medrival.data.releases.paths import read_annotation_csv, require_columns
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, normalise_text, require_file, safe_relpath,
)

RELEASE = "PMC-VQA"
# The dataset card's "Dataset License" section: "PMC-VQA is under CC BY-SA licenses" (no version given); the
# source papers are from the PMC OA commercial-use subset (CC0 / CC BY).
LICENCE = "CC BY-SA (version not stated; see https://huggingface.co/datasets/xmcmic/PMC-VQA)"
SOURCE = "https://huggingface.co/datasets/xmcmic/PMC-VQA"
VERSION_FILES = {1: {"train": "train.csv", "test": "test.csv"}, 2: {"train": "train_2.csv", "test": "test_2.csv"}}
CLEAN_TEST_FILE = "test_clean.csv"
IMAGE_FOLDERS = {1: "images", 2: "figures"}
LETTERS = ("A", "B", "C", "D")
CHOICE_COLUMNS = tuple(f"Choice {letter}" for letter in LETTERS)
OPTION_COLUMNS = tuple(f"option_{letter.lower()}" for letter in LETTERS)
EXTRA_COLUMNS = ("answer_label", *OPTION_COLUMNS, "caption", "release_index", "source_file")
# The paper reports radiology (CT, MRI, X-ray, ultrasound, PET) and pathology/microscopy figures as the bulk of
# PMC-VQA; charts and photographs have no controlled word. Per-question modality is not in the release.
DEFAULT_MODALITY = "xray,ct,mri,ultrasound,pet,pathology"
_ALIASES = {"Anwser": "Answer", "Anwser_label": "Answer_label"}
_CHOICE_PREFIX = re.compile(r"^\s*[A-Da-d]\s*:\s*")
_GOLD_LETTER = re.compile(r"^\s*([A-Da-d])\s*(?:[:.)].*)?$", re.DOTALL)


def _read_csv(path: Path) -> pd.DataFrame:
    require_file(path, release=RELEASE)
    raw = read_annotation_csv(path, RELEASE, allow_empty=True)
    raw.columns = [_ALIASES.get(c, c) for c in raw.columns]
    # A pandas index re-saved without a name ("Unnamed: 0") carries no information.
    raw = raw[[c for c in raw.columns if not c.startswith("Unnamed:")]]
    gold = "Answer_label" if "Answer_label" in raw.columns else "Answer"
    require_columns(raw, ("Figure_path", "Question", *CHOICE_COLUMNS, gold), path, RELEASE)
    return raw


def _strip_choice(value: Any) -> str:
    return _CHOICE_PREFIX.sub("", normalise_text(value), count=1)


def _gold_letter(value: Any) -> str | None:
    match = _GOLD_LETTER.match(normalise_text(value))
    return match.group(1).upper() if match else None


def _file_rows(raw: pd.DataFrame, name: str, split: str, folder: str, skipped: list[str]) -> list[dict]:
    """Index rows of one CSV; unscorable rows are described in ``skipped`` instead."""
    gold_column = "Answer_label" if "Answer_label" in raw.columns else "Answer"
    stem = Path(name).stem
    rows = []
    for position, record in enumerate(raw.to_dict("records")):
        letter = _gold_letter(record[gold_column])
        options = dict(zip(LETTERS, (_strip_choice(record[c]) for c in CHOICE_COLUMNS)))
        if letter is None or not options[letter]:
            skipped.append(f"{name} row {position}: gold {record[gold_column]!r}")
            continue
        figure = safe_relpath(record["Figure_path"], release=RELEASE)
        rows.append({
            "question_id": f"{stem}-{position:06d}", "image": f"{folder}/{figure}", "image_id": figure,
            "question": normalise_text(record["Question"]), "answer": options[letter], "answer_type": "closed",
            "answer_type_source": "release", "split": split, "answer_label": letter,
            **{column: options[letter_] or None for column, letter_ in zip(OPTION_COLUMNS, LETTERS)},
            "caption": normalise_text(record.get("Caption")) or None,
            "release_index": normalise_text(record.get("index")) or None, "source_file": name,
        })
    return rows


def _image_folder(root: Path, version: int, image_folder: str | None) -> str:
    """The folder holding the figures: as given, else the version's own if present, else the other's."""
    if image_folder is not None:
        return safe_relpath(image_folder, release=RELEASE)
    default, other = IMAGE_FOLDERS[version], IMAGE_FOLDERS[3 - version]
    if not (root / default).is_dir() and (root / other).is_dir():
        return other  # some mirrors unzip both archives into one folder name
    return default


def _check_options(version: int, clean_test: bool, val_fraction: float) -> None:
    if version not in VERSION_FILES:
        raise ConfigError(f"{RELEASE}: version {version!r} is not one of {sorted(VERSION_FILES)}.")
    if clean_test and version != 1:
        raise ConfigError(f"{RELEASE}: {CLEAN_TEST_FILE} exists for version 1 only; use version=1 or "
                          "clean_test=False.")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"{RELEASE}: val_fraction must lie in [0, 1), got {val_fraction!r}.")


def _carve_val(frame: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """train/val per image for the training file's rows; test rows keep their split."""
    is_train = frame["split"] == "train"
    carved = grouped_split(frame.loc[is_train, "image_id"], (1.0 - val_fraction, val_fraction, 0.0), seed)
    # With a zero test fraction only float rounding of the cumulative edge can yield "test"; it is val.
    split = frame["split"].copy()
    split[is_train] = carved.where(carved != "test", "val")
    return split


def load_pmcvqa(root: Path | str, *, version: int = 1, clean_test: bool = False, val_fraction: float = 0.1,
                seed: int = 0, modality: str = DEFAULT_MODALITY, image_folder: str | None = None) -> VQAReleaseIndex:
    """Index PMC-VQA ``version`` 1 or 2 under ``root`` (images are not opened, nor required to exist).

    ``clean_test`` uses ``test_clean.csv`` (v1's manually verified test set) as the test split. Validation is
    carved from the training file by image with ``val_fraction`` and ``seed``.
    """
    _check_options(version, clean_test, val_fraction)
    root = check_root(root, release=RELEASE)
    files = dict(VERSION_FILES[version], **({"test": CLEAN_TEST_FILE} if clean_test else {}))
    folder = _image_folder(root, version, image_folder)
    rows: list[dict] = []
    skipped: list[str] = []
    for split, name in files.items():
        rows.extend(_file_rows(_read_csv(root / name), name, split, folder, skipped))
    frame = build_frame(rows, release=RELEASE, extras=EXTRA_COLUMNS)
    by_split = frame.groupby("split")["image_id"].agg(set)
    shared = by_split.get("train", set()) & by_split.get("test", set())
    frame["split"] = _carve_val(frame, val_fraction, seed)
    notes = [f"Files: {', '.join(files.values())}; images under {folder}/.",
             "All questions are 4-way multiple choice: answer_type 'closed' (source: release); answer is the gold "
             "choice's text without its 'X:' prefix, answer_label its letter.",
             f"No validation split in the release: {val_fraction:g} of training images carved as val (seed {seed}).",
             f"{len(shared)} images have both train and test questions in the release.",
             "Modality is not given per question; index modality is the 'modality' argument."]
    if skipped:
        notes.append(f"{len(skipped)} rows skipped (gold letter not A-D or gold choice empty), e.g. {skipped[0]}.")
    name = "pmc-vqa" if version == 1 else "pmc-vqa-v2"
    return VQAReleaseIndex(f"{name}-clean" if clean_test else name, modality, frame, LICENCE, SOURCE, notes)
