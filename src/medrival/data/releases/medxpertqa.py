"""MedXpertQA MM (Zuo et al., ICML 2025, arXiv 2501.18362), the multimodal multiple-choice subset of MedXpertQA,
as published in the Hugging Face dataset ``TsinghuaC3I/MedXpertQA``.

Release format (as verified; sources below)::

    <root>/
        MM/test.jsonl      2,000 questions, ids "MM-<n>" from "MM-0"
        MM/dev.jsonl       5 questions (few-shot exemplars; the dataset viewer lists "MM-2000"... first)
        images.zip         every image file of MM, unzipped to images/<file name>
        Text/...           the text-only subset (10 options, no images): not read here

Each line of a JSONL file is one JSON object::

    {"id": "MM-0",
     "question": "<case text and question>\\nAnswer Choices: (A) ... (B) ... (C) ... (D) ... (E) ...",
     "options": {"A": "...", "B": "...", "C": "...", "D": "...", "E": "..."},
     "label": "A",
     "images": ["MM-0-a.jpeg", "MM-0-b.jpeg"],
     "medical_task": "Treatment", "body_system": "Skeletal", "question_type": "Reasoning"}

- ``question`` repeats the options inline after a newline, as ``Answer Choices: (A) <text> (B) <text> ...``.
- ``options``: 5 per MM question (A-E); ``label``: the gold letter.
- ``images``: bare file names (``<id>-a.jpeg``, ``<id>-b.png``, ...), relative to the folder images.zip unpacks
  to. Every MM question has at least one image; 419 of the 2,000 test questions have several (up to 6): 1,581
  have one, 236 two, 59 three, 22 four, 78 five, 24 six. test references 2,852 files, dev 6; no file is shared
  by two questions.
- ``medical_task``: Diagnosis, Treatment or Basic Science (dev also uses "Basic Medicine"); ``body_system``: 12
  values (Skeletal, Cardiovascular, ..., "Other / NA"); ``question_type``: Reasoning or Understanding.

Sources (checked for this module):
- the dataset card (huggingface.co/datasets/TsinghuaC3I/MedXpertQA, README.md): the configs (MM: dev ->
  MM/dev.jsonl, test -> MM/test.jsonl), the field list ("images: list of image filenames ... provided in
  images.zip"; "5 for MM, 10 for Text"; medical_task, body_system, question_type), the example record (its
  question ends "\\nAnswer Choices: (A) ... (E) ..."), ``license: mit``; the repository tree (MM/dev.jsonl,
  MM/test.jsonl, images.zip at the top level); the dataset viewer (rows MM-2000..., images ["MM-2000-a.jpeg"]);
- the authors' evaluation repository (github.com/TsinghuaC3I/MedXpertQA, ``eval/data/prepare_medxpertqa.ipynb``),
  whose output prints the first MM test record (MM-0, two images, "\\nAnswer Choices: (A) ..." in the question);
- third-party code that reads ``<root>/MM/test.jsonl`` with images at ``<root>/images/<file name>`` after
  unzipping images.zip (lmms-eval style task utils; a verl preprocessing script: "images.zip unpacks to
  <raw_dir>/images/<file>"), and a third-party integrity report and EDA of the release at revision 7e7c465a
  (github.com/javiers2004/MedXpertQA): 2,000 + 5 MM records, 2,852 + 6 referenced image files all present and
  decodable, no id shared by dev and test, no label outside its options, the images-per-question table above.
  The internal layout of images.zip is not documented by the authors; both ``images/`` and a flat extraction are
  accepted (below).

Licence: the dataset card declares ``license: mit`` and the GitHub repository is MIT licensed; the card states no
separate licence for the images, which come from exam and image-challenge material (USMLE, COMLEX-USA, specialty
boards, ACR DXIT/TXIT, EDiR, NEJM Image Challenge according to summaries of the paper).

Quirks handled:
- the question column drops the inline ``Answer Choices:`` block (the options live in ``option_a..option_e`` and
  prompts re-list them, so keeping it would show every option twice); the release text is kept verbatim in
  ``question_raw``. A question without the block is kept whole and counted in ``notes``.
- several images per question: a medrival VQA item shows one image. ``image``/``image_id`` are the *first* file of
  ``images``; ``n_images`` counts them and ``image_files`` (a JSON list) names them all. This is a limitation:
  questions that compare Figures A and B are asked with Figure A only, so accuracies on multi-image questions are
  not comparable to the authors' multi-image protocol; ``notes`` says how many questions are affected.
  ``datasets check`` decodes the first image of each question (the one studies use).
- splits: ``dev.jsonl`` (5 few-shot exemplars) -> "val", ``test.jsonl`` -> "test"; there is no training split.
  dev.jsonl is optional (a copy with only test.jsonl loads, with a note).
- image folder: ``images/`` (where the loaders above find the files); when it does not exist but the images lie
  directly in ``root`` (images.zip extracted without its folder), the root is used; ``image_folder`` overrides.
- every question is 5-way multiple choice: ``answer_type`` "closed" with source "release"; ``answer`` is the gold
  option's text and ``answer_label`` its letter. A label that is not one of the record's option letters, or whose
  option is empty, is a DataError naming the question and the release (the published files have none). Some
  options are themselves letters naming labels in a figure (the viewer shows options "C", "D", "A", "B", "None of
  the above"): ``answer`` is then a letter text such as "A" while ``answer_label`` is "C"; both are kept as is.
- the release does not say which modality an image shows (no per-question or per-image tag). Summaries of the
  paper list radiology, pathology, clinical photographs, ECGs, tables and diagrams. :data:`DEFAULT_MODALITY` is
  the controlled words for the first two (radiology read as X-ray, CT, MRI and ultrasound: our reading, not a
  release field); clinical photographs are not dermoscopy, and ECGs, tables and diagrams have no word. The index
  modality is the ``modality`` argument.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from medrival.core.errors import DataError
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, normalise_text, require_file, safe_relpath,
)

RELEASE = "MedXpertQA MM"
NAME = "medxpertqa-mm"
LICENCE = "MIT (dataset card of https://huggingface.co/datasets/TsinghuaC3I/MedXpertQA)"
SOURCE = "https://huggingface.co/datasets/TsinghuaC3I/MedXpertQA"
SUBSET_FOLDER = "MM"
SPLIT_FILES = {"val": "dev.jsonl", "test": "test.jsonl"}  # the release's dev set is 5 few-shot exemplars
IMAGE_FOLDER = "images"
IMAGES_ZIP = "images.zip"
LETTERS = ("A", "B", "C", "D", "E")
REQUIRED_KEYS = ("id", "question", "options", "label", "images")
OPTION_COLUMNS = tuple(f"option_{letter.lower()}" for letter in LETTERS)
EXTRA_COLUMNS = ("answer_label", *OPTION_COLUMNS, "question_raw", "n_images", "image_files", "medical_task",
                 "body_system", "question_type", "source_file")
# Radiology and pathology are the image types the paper names that have a controlled word; clinical photographs
# (not dermoscopy), ECGs, tables and diagrams have none. Per-question modality is not in the release.
DEFAULT_MODALITY = "xray,ct,mri,ultrasound,pathology"
# The inline block starts at "Answer Choices:" followed by "(A)"; the last one is taken, so a case text that
# happens to say "answer choices" earlier is kept.
_CHOICES_BLOCK = re.compile(r"\s*Answer Choices:\s*(?=\(A\))")


def strip_choices(question: str) -> tuple[str, bool]:
    """(the question text without its trailing ``Answer Choices: (A) ...`` block, whether a block was found)."""
    matches = list(_CHOICES_BLOCK.finditer(question))
    if not matches:
        return normalise_text(question), False
    return normalise_text(question[:matches[-1].start()]), True


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line; unreadable lines are DataErrors naming the line."""
    require_file(path, release=RELEASE)
    try:
        with open(path, encoding="utf-8-sig") as handle:
            lines = handle.readlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{RELEASE}: could not read {str(path)!r} ({err}).") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{RELEASE}: {path.name!r} line {number} is not a JSON object ({err}); expected JSON "
                            "Lines, one question record per line.") from err


def _options(record: dict, where: str) -> dict[str, str | None]:
    options = record["options"]
    if not isinstance(options, dict):
        raise DataError(f"{RELEASE}: {where} has options of type {type(options).__name__}; expected an object "
                        "{'A': ..., 'E': ...}.")
    unknown = sorted(str(k) for k in options if str(k) not in LETTERS)
    if unknown:
        raise DataError(f"{RELEASE}: {where} has option letters {unknown}; MM questions have options "
                        f"{list(LETTERS)} (the Text subset's 10 options are not read here).")
    return {letter: normalise_text(options.get(letter)) or None for letter in LETTERS}


def _images(record: dict, where: str) -> list[str]:
    images = record["images"]
    if not isinstance(images, list) or not images or not all(isinstance(i, str) and i.strip() for i in images):
        raise DataError(f"{RELEASE}: {where} has images {images!r}; expected a non-empty list of image file "
                        "names (every MM question has at least one image).")
    return [safe_relpath(name.strip(), release=RELEASE) for name in images]


def _record_row(record: Any, where: str, split: str, source_file: str) -> tuple[dict, bool]:
    """(index row, whether the inline choices block was found) for one release record; ``image`` is the first
    file name, made relative to the root by the caller."""
    if not isinstance(record, dict):
        raise DataError(f"{RELEASE}: {where} is a {type(record).__name__}, expected a question object.")
    absent = [key for key in REQUIRED_KEYS if key not in record]
    if absent:
        raise DataError(f"{RELEASE}: {where} (id {record.get('id')!r}) lacks keys {absent}; MM records have "
                        f"{list(REQUIRED_KEYS)} and medical_task, body_system, question_type.")
    question_id = normalise_text(record["id"])
    where = f"{where} (id {question_id!r})"
    options = _options(record, where)
    label = normalise_text(record["label"]).upper()
    if label not in options or options[label] is None:
        present = [letter for letter, text in options.items() if text is not None]
        raise DataError(f"{RELEASE}: question {question_id!r} ({source_file}) has label {record['label']!r}, which "
                        f"is not one of its option letters {present}; a multiple-choice item needs its gold among "
                        "its options.")
    images = _images(record, where)
    raw = "" if record["question"] is None else str(record["question"])
    question, had_block = strip_choices(raw)
    return {
        "question_id": question_id, "image": images[0], "image_id": images[0],
        "question": question, "answer": options[label], "answer_type": "closed", "answer_type_source": "release",
        "split": split, "answer_label": label,
        **{column: options[letter] for column, letter in zip(OPTION_COLUMNS, LETTERS)},
        "question_raw": raw, "n_images": len(images), "image_files": json.dumps(images),
        "medical_task": normalise_text(record.get("medical_task")) or None,
        "body_system": normalise_text(record.get("body_system")) or None,
        "question_type": normalise_text(record.get("question_type")) or None,
        "source_file": source_file,
    }, had_block


def _image_prefix(root: Path, first_image: str, image_folder: str | None) -> str:
    """The path prefix that makes image file names relative to ``root``."""
    if image_folder is not None:
        if image_folder.strip() in ("", ".", "./"):
            return ""  # the images lie directly in root
        return f"{safe_relpath(image_folder, release=RELEASE).rstrip('/')}/"
    if not (root / IMAGE_FOLDER).is_dir() and first_image and (root / first_image).is_file():
        return ""  # images.zip extracted without its folder
    return f"{IMAGE_FOLDER}/"


def load_medxpertqa(root: Path | str, *, modality: str = DEFAULT_MODALITY,
                    image_folder: str | None = None) -> VQAReleaseIndex:
    """Index MedXpertQA MM under ``root`` (``MM/test.jsonl``, optional ``MM/dev.jsonl``, ``images/``).

    Images are not opened, nor required to exist. One row per question; the first image of each question is its
    ``image`` (see the module docstring for multi-image questions).
    """
    root = check_root(root, release=RELEASE)
    folder = root / SUBSET_FOLDER
    if not (folder / SPLIT_FILES["test"]).is_file():
        raise DataError(f"{RELEASE}: {str(folder / SPLIT_FILES['test'])!r} not found; expected the Hugging Face "
                        f"dataset TsinghuaC3I/MedXpertQA under {str(root)!r} (MM/test.jsonl, MM/dev.jsonl and "
                        "images.zip unzipped to images/). Run: medrival prepare medxpertqa-mm")
    files, rows, without_block = [], [], []
    for split, name in SPLIT_FILES.items():
        path = folder / name
        if split == "val" and not path.is_file():
            continue
        source_file = f"{SUBSET_FOLDER}/{name}"
        files.append(source_file)
        for number, record in read_jsonl(path):
            row, had_block = _record_row(record, f"{name!r} line {number}", split, source_file)
            rows.append(row)
            if not had_block:
                without_block.append(row["question_id"])
    prefix = _image_prefix(root, rows[0]["image_id"] if rows else "", image_folder)
    for row in rows:
        row["image"] = f"{prefix}{row['image_id']}"
    frame = build_frame(rows, release=RELEASE, extras=EXTRA_COLUMNS)
    multi = frame[frame["n_images"] > 1]
    notes = [f"Files: {', '.join(files)}; images under {prefix or './'}.",
             "Splits: dev.jsonl (few-shot exemplars) -> val, test.jsonl -> test; the release has no training split.",
             "All questions are 5-way multiple choice (A-E): answer_type 'closed' (source: release); answer is the "
             "gold option's text, answer_label its letter.",
             "The question column omits the inline 'Answer Choices: (A) ...' block (options are in option_a.."
             "option_e); the release text is in question_raw.",
             f"{len(multi)} of {len(frame)} questions have more than one image (up to "
             f"{int(frame['n_images'].max())}); only the first is shown (image); all are listed in image_files.",
             "Modality is not given per question; index modality is the 'modality' argument."]
    if "val" not in set(frame["split"]):
        notes.append(f"{SUBSET_FOLDER}/{SPLIT_FILES['val']} not found: no val split.")
    if without_block:
        notes.append(f"{len(without_block)} questions have no inline 'Answer Choices:' block and are kept whole, "
                     f"e.g. {without_block[0]}.")
    return VQAReleaseIndex(NAME, modality, frame, LICENCE, SOURCE, notes)
