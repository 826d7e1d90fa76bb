"""Kermany et al. 2018 (Cell) pediatric chest X-rays and retinal OCT, from the image folders themselves.

Release format (Mendeley Data "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for
Classification"; ``ZhangLabData/CellData/{chest_xray,OCT}``, Kaggle copies ``chest_xray/`` and ``OCT2017/``):
``{train,test}/{NORMAL,PNEUMONIA}/*.jpeg`` for X-rays and ``{train,test}/{CNV,DME,DRUSEN,NORMAL}/*.jpeg`` for
OCT. There is no annotation file: the class is the folder, the patient and pneumonia subtype are in the file name:

- X-ray, Mendeley v2 / Kaggle: ``person1_bacteria_1.jpeg`` (patient ``person1``, bacterial), ``person3_virus_15``,
  ``IM-0115-0001.jpeg`` (patient ``IM-0115``), ``NORMAL2-IM-1427-0001.jpeg`` (patient ``NORMAL2-IM-1427``).
- X-ray, Mendeley v3: ``NORMAL-11419-0001.jpeg``, ``BACTERIA-1351146-0002.jpeg``, ``VIRUS-614452-0001.jpeg``
  (patient = the number). OCT: ``CNV-1016042-1.jpeg`` (patient ``1016042``).

Quirks handled:
- The archive nests its folders differently per copy (``chest_xray/chest_xray/`` twice in the Kaggle zip,
  ``__MACOSX/`` resource forks, ``._*`` and ``.DS_Store`` files): the shallowest folder holding ``train/`` and
  ``test/`` with the expected class folders is used; ``__MACOSX`` and dotfiles are ignored.
- The Kaggle copy's ``val/`` holds 16 X-rays (32 OCT scans): too few to select anything. By default its images
  join the training pool and val is carved from training *patients* (seeded, ``val_fraction``);
  ``use_official_val=True`` keeps the official folder instead. The official test folder is always the test split.
- ``person<N>`` numbers of ``test/`` also occur in ``train/``; whether they denote the same child is not
  documented, so ids are kept as written (the official test split is fixed either way; val is carved from the
  training pool only, so it never shares a patient id with train).
- Names that fit no pattern keep their stem as patient id (counted in the notes); a bacteria/virus file inside
  ``NORMAL/`` (or an OCT prefix that contradicts its folder) is an error, not a silent relabel.
"""
from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path

import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split
from medrival.data.releases.paths import safe_relative, scan_names

RELEASE = "Kermany 2018 (CXR/OCT)"
LICENCE = "CC BY 4.0"
SOURCE = ("Mendeley Data doi:10.17632/rscbjbr9sj (Kermany et al., Cell 172(5), 2018); Kaggle mirrors "
          "paultimothymooney/chest-xray-pneumonia and paultimothymooney/kermany2018")
PARTS = ("cxr", "oct")
TASKS: dict[str, tuple[str, ...]] = {"cxr": ("binary", "3class"), "oct": ("4class",)}
CLASS_FOLDERS: dict[str, tuple[str, ...]] = {"cxr": ("NORMAL", "PNEUMONIA"), "oct": ("CNV", "DME", "DRUSEN", "NORMAL")}
CXR_CLASSES = ("normal", "pneumonia")
CXR_3CLASSES = ("normal", "bacterial", "viral")
OCT_CLASSES = ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_MAX_DEPTH = 4
_CXR_PATTERNS = (  # (pattern, group holding the patient id, group holding bacteria/virus or None = normal)
    (re.compile(r"^(person\d+)_(bacteria|virus)_\d+$", re.I), 1, 2),
    (re.compile(r"^(BACTERIA|VIRUS)-(\d+)-\d+$", re.I), 2, 1),
    (re.compile(r"^(NORMAL2-IM-\d+)-\d+$", re.I), 1, None),
    (re.compile(r"^(IM-\d+)-\d+$", re.I), 1, None),
    (re.compile(r"^NORMAL-(\d+)-\d+$", re.I), 1, None),
)
_OCT_PATTERN = re.compile(r"^(CNV|DME|DRUSEN|NORMAL)-(\d+)-\d+$", re.I)
_SUBTYPES = {"bacteria": "bacterial", "virus": "viral"}


def read_kermany(root: str | Path, part: str = "cxr", *, task: str | None = None, seed: int = 0,
                 val_fraction: float = 0.1, use_official_val: bool = False) -> ReleaseIndex:
    """Index the chest X-ray (``part="cxr"``, task ``binary`` or ``3class``) or OCT (``part="oct"``, 4 classes)
    half of the release under ``root`` (any folder above ``train/`` and ``test/``)."""
    if part not in PARTS:
        raise ConfigError(f"{RELEASE}: part {part!r} is not one of {', '.join(PARTS)}.")
    task = task or TASKS[part][0]
    if task not in TASKS[part]:
        raise ConfigError(f"{RELEASE}: task {task!r} is not available for part {part!r}; "
                          f"choose {', '.join(TASKS[part])}.")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"{RELEASE}: val_fraction must lie strictly between 0 and 1, got {val_fraction}.")
    root = Path(root)
    folder = find_release_folder(root, part)
    frame = pd.concat([_split_frame(root, folder, split, part) for split in ("train", "val", "test")
                       if (folder / split).is_dir()], ignore_index=True)
    frame["split"], notes = _splits(frame, seed, val_fraction, use_official_val, folder)
    frame["label"], classes = _labels(frame, part, task)
    unparsed = int((frame["patient_from"] == "stem").sum())
    notes.append(f"release folder: {folder.relative_to(root).as_posix() or '.'}")
    if unparsed:
        notes.append(f"{unparsed} file name(s) fit no known pattern; their stem is used as patient id")
    frame = frame.drop(columns="patient_from")
    name = {"binary": "kermany-cxr", "3class": "kermany-cxr-3class", "4class": "kermany-oct"}[task]
    kind = TaskKind.BINARY if task == "binary" else TaskKind.MULTICLASS
    return ReleaseIndex(name=name, task=kind, modality="xray" if part == "cxr" else "oct", class_names=classes,
                        frame=frame, licence=LICENCE, source=SOURCE, notes=notes)


def find_release_folder(root: Path, part: str) -> Path:
    """The shallowest folder (breadth first, ``__MACOSX`` and dotfolders skipped) whose ``train/`` and ``test/``
    both hold the class folders of ``part``."""
    if not root.is_dir():
        raise DataError(f"{RELEASE}: dataset root {root} is not a folder.")
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        if all((folder / split / name).is_dir() for split in ("train", "test") for name in CLASS_FOLDERS[part]):
            return folder
        if depth < _MAX_DEPTH:
            queue.extend((child, depth + 1) for child in _subfolders(folder))
    expected = "{train,test}/{" + ",".join(CLASS_FOLDERS[part]) + "}"
    raise DataError(f"{RELEASE}: no folder under {root} (searched {_MAX_DEPTH} levels deep) holds {expected}. "
                    f"Unpack the {'chest_xray' if part == 'cxr' else 'OCT2017'} archive and pass its folder.")


def _subfolders(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(".") and e.name != "__MACOSX")
    return [folder / name for name in names]


def _split_frame(root: Path, folder: Path, split: str, part: str) -> pd.DataFrame:
    rows = []
    for class_folder in CLASS_FOLDERS[part]:
        path = folder / split / class_folder
        names = sorted(n for n in scan_names(path) if not n.startswith(".") and n.lower().endswith(IMAGE_SUFFIXES))
        if not names and split != "val":
            raise DataError(f"{RELEASE}: {path} holds no images (*.jpeg); is the download complete?")
        for name in names:
            patient, detail, source = _parse_name(name, part, class_folder, path)
            rows.append({"image": safe_relative(root, (path / name).relative_to(root).as_posix(), RELEASE),
                         "folder": class_folder, "patient_id": patient,
                         "subtype" if part == "cxr" else "finding": detail, "release_split": split,
                         "patient_from": source})
    return pd.DataFrame(rows)


def _parse_name(name: str, part: str, class_folder: str, path: Path) -> tuple[str, str, str]:
    """(patient id, subtype or OCT finding, 'pattern' or 'stem'); a name contradicting its folder raises."""
    stem = name.rsplit(".", 1)[0]
    if part == "oct":
        match = _OCT_PATTERN.match(stem)
        if match and match.group(1).upper() != class_folder:
            raise DataError(f"{RELEASE}: {path / name} is named {match.group(1)} but sits in {class_folder}/.")
        return (match.group(2), class_folder, "pattern") if match else (stem, class_folder, "stem")
    for pattern, patient_group, subtype_group in _CXR_PATTERNS:
        match = pattern.match(stem)
        if match:
            subtype = "normal" if subtype_group is None else _SUBTYPES[match.group(subtype_group).lower()]
            if (subtype == "normal") != (class_folder == "NORMAL"):
                raise DataError(f"{RELEASE}: {path / name} names a {subtype} image but sits in {class_folder}/.")
            return match.group(patient_group), subtype, "pattern"
    return stem, "normal" if class_folder == "NORMAL" else "unknown", "stem"


def _splits(frame: pd.DataFrame, seed: int, val_fraction: float, use_official_val: bool,
            folder: Path) -> tuple[pd.Series, list[str]]:
    official = frame["release_split"]
    if use_official_val:
        if not (official == "val").any():
            raise DataError(f"{RELEASE}: use_official_val=True but {folder / 'val'} is absent or empty (the "
                            "Mendeley copy has no val folder); leave use_official_val=False to carve val from train.")
        return official.copy(), ["official train/val/test folders"]
    pool = official != "test"
    carved = grouped_split(frame["patient_id"], (1.0 - val_fraction, val_fraction, 0.0), seed)
    split = carved.where(pool, "test")
    note = (f"val = {val_fraction:g} of training patients (seed {seed}); official test folder is test; "
            f"{int((official == 'val').sum())} official val image(s) joined the training pool")
    return split, [note]


def _labels(frame: pd.DataFrame, part: str, task: str) -> tuple[pd.Series, tuple[str, ...]]:
    if part == "oct":
        position = {name: i for i, name in enumerate(CLASS_FOLDERS["oct"])}
        return frame["folder"].map(position).astype("int64"), OCT_CLASSES
    if task == "binary":
        return (frame["folder"] == "PNEUMONIA").astype("int64"), CXR_CLASSES
    unknown = frame["image"][frame["subtype"] == "unknown"]
    if len(unknown):
        raise DataError(f"{RELEASE}: task '3class' needs bacteria/virus in every pneumonia file name; "
                        f"{unknown.iloc[0]} has neither (use task='binary').")
    return frame["subtype"].map({c: i for i, c in enumerate(CXR_3CLASSES)}).astype("int64"), CXR_3CLASSES
