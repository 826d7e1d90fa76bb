"""OmniMedVQA (Hu et al., CVPR 2024), open-access part, as distributed in ``OmniMedVQA.zip`` on Hugging Face
(``foreverbeliever/OmniMedVQA``).

Release format::

    OmniMedVQA/
        Images/<dataset>/...                         image files, referenced by the QA records
        QA_information/Open-access/<dataset>.json    one JSON list per sub-dataset
        QA_information/Restricted-access/*.json      paths into the original datasets (not indexed here)

Each record: ``dataset, question_id, question_type, question, gt_answer, image_path, option_A, option_B,
option_C, option_D, modality_type``, with ``image_path`` relative to the dataset root (``Images/<dataset>/...``).

Quirks handled:
- the zip unpacks to an ``OmniMedVQA/`` folder: when ``root`` holds ``OmniMedVQA/QA_information`` rather than
  ``QA_information``, that folder is used and image paths are prefixed so they stay relative to ``root``.
- options C and D are absent (or null) for two-way questions -> ``option_c``/``option_d`` are missing (None).
- ``gt_answer`` is the answer *text*; ``answer_label`` is the letter of the option equal to it after case and
  whitespace normalisation; where none is equal, the one option whose words occur in the gt_answer (the real
  ISIC2019 files answer "Benign image." to the option "Benign"; counted in ``notes``). A record whose gt_answer
  matches no option (or several) is a DataError naming it.
- ``modality_type`` is free text with typos ("MR (Mag-netic Resonance Imaging)", "OCT (Optical Coherence
  Tomography" without the closing parenthesis, lower-case "ultrasound"); :data:`MODALITY_TYPES` maps every
  known spelling to the controlled vocabulary and unknown ones are an error. One record of ``Chest CT
  Scan.json`` names the key ``modality`` instead of ``modality_type``; both are read.
- "Microscopy Images" (blood smears, cell and tissue microscopy) has no word of its own in the controlled
  vocabulary; it is mapped to "pathology", the closest one. The raw value is kept as ``modality_type``.
- OmniMedVQA is an evaluation benchmark with no training data: every row is split "test".
- every question is multiple choice: ``answer_type`` "closed" with source "release".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import MODALITIES
from medrival.data.releases.vqa_index import (
    VQAReleaseIndex, build_frame, check_root, normalise_text, read_json, safe_relpath,
)

RELEASE = "OmniMedVQA (open access)"
# The dataset card gives no licence of its own: "Please adhere to the respective dataset's license".
LICENCE = "per sub-dataset (no single licence; see https://huggingface.co/datasets/foreverbeliever/OmniMedVQA)"
SOURCE = "https://huggingface.co/datasets/foreverbeliever/OmniMedVQA"
QA_FOLDER = "QA_information/Open-access"
ZIP_FOLDER = "OmniMedVQA"
LETTERS = ("A", "B", "C", "D")
REQUIRED_KEYS = ("dataset", "question_id", "question", "gt_answer", "image_path")
OPTION_COLUMNS = tuple(f"option_{letter.lower()}" for letter in LETTERS)
EXTRA_COLUMNS = ("dataset", "question_type", "modality_type", "modality_tag", "answer_label", *OPTION_COLUMNS,
                 "gold_inside_text")
# Release spelling (compared case- and space-insensitively) -> controlled vocabulary.
MODALITY_TYPES = {
    "CT(Computed Tomography)": "ct",
    "MR (Mag-netic Resonance Imaging)": "mri",
    "X-Ray": "xray",
    "ultrasound": "ultrasound",
    "Dermoscopy": "dermoscopy",
    "Fundus Photography": "fundus",
    "OCT (Optical Coherence Tomography": "oct",
    "Microscopy Images": "pathology",
    "Endoscopy": "endoscopy",
}


def _key(text: Any) -> str:
    return "".join(normalise_text(text).lower().split())


_MODALITY_LOOKUP = {_key(spelling): word for spelling, word in MODALITY_TYPES.items()}


def modality_word(value: Any, *, where: str) -> str:
    """The controlled word for a release ``modality_type``; unknown spellings raise listing the table."""
    word = _MODALITY_LOOKUP.get(_key(value))
    if word is None:
        table = "; ".join(f"{spelling!r} -> {word_}" for spelling, word_ in MODALITY_TYPES.items())
        raise DataError(f"{RELEASE}: {where} has modality_type {value!r}, which is not in the mapping table "
                        f"({table}). Add it to omnimedvqa.MODALITY_TYPES if it is a new spelling.")
    return word


def _words(text: Any) -> tuple[str, ...]:
    return tuple("".join(c if c.isalnum() else " " for c in normalise_text(text).lower()).split())


def _answer_label(answer: str, options: dict[str, str | None]) -> tuple[str | None, bool]:
    """(letter of the option the gold answer is, whether it was found inside a longer text). Equal texts (case and
    spaces ignored) first; else the one option whose words occur in the answer ("Benign image." -> "Benign", as
    the real ISIC2019 files write their answers)."""
    wanted = _key(answer)
    matches = [letter for letter, text in options.items() if text is not None and _key(text) == wanted]
    if len(matches) == 1:
        return matches[0], False
    words = _words(answer)
    inside = [letter for letter, text in options.items() if text is not None and _words(text) and any(
        words[i:i + len(_words(text))] == _words(text) for i in range(len(words)))]
    return (inside[0], True) if len(inside) == 1 else (None, False)


def _record_row(record: Any, where: str, prefix: str) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{RELEASE}: {where} is a {type(record).__name__}, expected an object.")
    absent = [k for k in REQUIRED_KEYS if k not in record]
    if "modality_type" not in record and "modality" not in record:
        absent.append("modality_type")
    if absent:
        raise DataError(f"{RELEASE}: {where} (question_id {record.get('question_id')!r}) lacks keys {absent}.")
    raw_modality = record.get("modality_type", record.get("modality"))
    options = {letter: normalise_text(record.get(f"option_{letter}")) or None for letter in LETTERS}
    answer = normalise_text(record["gt_answer"])
    label, inside = _answer_label(answer, options)
    if label is None:
        raise DataError(f"{RELEASE}: {where} (question_id {record.get('question_id')!r}) has gt_answer {answer!r}, "
                        f"which is not exactly one of its options {[o for o in options.values() if o]}; a "
                        "multiple-choice item needs its gold among its options. Fix or drop the record.")
    image = safe_relpath(record["image_path"], release=RELEASE)
    return {
        "question_id": normalise_text(record["question_id"]), "image": f"{prefix}{image}", "image_id": image,
        "question": normalise_text(record["question"]), "answer": answer, "answer_type": "closed",
        "answer_type_source": "release", "split": "test", "dataset": normalise_text(record["dataset"]),
        "question_type": normalise_text(record.get("question_type")) or None,
        "modality_type": normalise_text(raw_modality),
        "modality_tag": modality_word(raw_modality, where=where),
        "answer_label": label, "gold_inside_text": inside,
        **{column: options[letter] for column, letter in zip(OPTION_COLUMNS, LETTERS)},
    }


def _layout(root: Path) -> tuple[Path, str]:
    """(QA folder, prefix that makes record image paths relative to ``root``)."""
    if not (root / QA_FOLDER).is_dir() and (root / ZIP_FOLDER / QA_FOLDER).is_dir():
        return root / ZIP_FOLDER / QA_FOLDER, f"{ZIP_FOLDER}/"
    folder = root / QA_FOLDER
    if not folder.is_dir():
        raise DataError(f"{RELEASE}: folder {str(folder)!r} not found; expected {QA_FOLDER}/<dataset>.json under "
                        "the unpacked OmniMedVQA.zip.")
    return folder, ""


def _rows(qa_folder: Path, prefix: str, wanted: set[str] | None, present: set[str]) -> Iterable[dict]:
    """Rows of every QA file, keeping the ``wanted`` sub-datasets; ``present`` collects all ``dataset`` values."""
    files = sorted(qa_folder.glob("*.json"))
    if not files:
        raise DataError(f"{RELEASE}: no JSON files in {str(qa_folder)!r}; expected one <dataset>.json per "
                        "sub-dataset.")
    for path in files:
        records = read_json(path, release=RELEASE)
        if not isinstance(records, list):
            raise DataError(f"{RELEASE}: {path.name!r} must hold a JSON list of question records, "
                            f"found a {type(records).__name__}.")
        for position, record in enumerate(records):
            if not isinstance(record, dict) or "dataset" not in record:
                yield _record_row(record, f"{path.name!r} record #{position}", prefix)  # raises, naming the record
            dataset = normalise_text(record["dataset"])
            present.add(dataset)
            # Filter before mapping, so a subset is usable even if another file has an unmapped modality.
            if wanted is None or dataset in wanted:
                yield _record_row(record, f"{path.name!r} record #{position}", prefix)


def _unique_ids(rows: list[dict], notes: list[str]) -> None:
    """Prefix question ids with the sub-dataset when they repeat across files (ids are per file in the release)."""
    ids = [row["question_id"] for row in rows]
    if len(set(ids)) != len(ids):
        for row in rows:
            row["question_id"] = f"{row['dataset']}:{row['question_id']}"
        notes.append("question_id repeats across sub-datasets; question_id is '<dataset>:<question_id>'.")


def load_omnimedvqa(root: Path | str, *, subsets: Iterable[str] | None = None) -> VQAReleaseIndex:
    """Index the open-access OmniMedVQA QA files under ``root``; ``subsets`` keeps only those ``dataset`` values.

    Images are not opened, nor required to exist. Every row is split "test" (the release is a benchmark).
    """
    root = check_root(root, release=RELEASE)
    qa_folder, prefix = _layout(root)
    wanted = None if subsets is None else {str(s) for s in subsets}
    datasets: set[str] = set()
    rows = list(_rows(qa_folder, prefix, wanted, datasets))
    unknown = sorted((wanted or set()) - datasets)
    if unknown:
        raise ConfigError(f"{RELEASE}: subsets {unknown} are not 'dataset' values of the release; present: "
                          f"{sorted(datasets)}.")
    notes: list[str] = []
    _unique_ids(rows, notes)
    frame = build_frame(rows, release=RELEASE, extras=EXTRA_COLUMNS)
    inside = int(frame.pop("gold_inside_text").sum())
    if inside:
        notes.append(f"{inside} questions have a gt_answer that is one option's text inside a longer text "
                     "(\"Benign image.\" for the option \"Benign\"); answer_label is that option's letter.")
    present = set(frame["modality_tag"])
    modality = ",".join(word for word in MODALITIES if word in present)
    notes[:0] = ["Benchmark only: every question is in split 'test' (no train/val in the release).",
                 "All questions are multiple choice: answer_type 'closed' (source: release).",
                 f"Sub-datasets: {', '.join(sorted(set(frame['dataset'])))}.",
                 "modality_type mapped to the controlled vocabulary per question (modality_tag); "
                 "'Microscopy Images' -> pathology.",
                 "Restricted-access QA files are not indexed (their images are not in the release)."]
    return VQAReleaseIndex("omnimedvqa", modality, frame, LICENCE, SOURCE, notes)
