"""NIH ChestX-ray14 (Wang et al. 2017) from ``Data_Entry_2017*.csv`` (plain or gzipped).

Quirks handled:
- The header ``...,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]`` has commas inside brackets, so a
  CSV reader sees 11 (2020 file) or 12 (2017 file, trailing comma) columns for 9 names. Only the first seven
  columns are used, selected by position after checking their names.
- ``Finding Labels`` is ``|``-joined findings or ``No Finding`` (all 14 negative); 14-way multilabel.
- The 2017 file has a few impossible ages (> 120, years mistyped); they become NaN with a note.
- Official split lists ``train_val_list.txt`` / ``test_list.txt`` (patient-disjoint) are used when present; the
  train_val part is divided train/val by patient. Without them the whole set is split by patient (seeded).
- Images live in ``images/`` (official tarballs), in ``images_0XX/images/`` (Kaggle mirror) or in the root.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split, label_column
from medrival.data.releases.paths import read_annotation_csv, safe_relative, scan_names

RELEASE = "NIH ChestX-ray14"
# Order of the original paper (and of ChestMNIST's labels), not alphabetical.
FINDINGS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
NO_FINDING = "No Finding"
_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
            "View Position")
_CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017.csv",
              "Data_Entry_2017.csv.gz")
LICENCE = "NIH Clinical Center: unrestricted use, attribution requested (commonly listed as CC0)"
SOURCE = "NIH Clinical Center, nihcc.app.box.com/v/ChestXray-NIHCC (Wang et al., CVPR 2017)"


def find_metadata(root: Path) -> Path:
    """The metadata CSV: the 2020 revision first, then the 2017 original, then any ``Data_Entry_2017*.csv[.gz]``."""
    for name in _CSV_NAMES:
        if (root / name).is_file():
            return root / name
    others = sorted(root.glob("Data_Entry_2017*.csv*")) if root.is_dir() else []
    if others:
        return others[0]
    raise DataError(f"{RELEASE}: Data_Entry_2017*.csv (or .csv.gz) not found under {root}; download "
                    f"Data_Entry_2017_v2020.csv from {SOURCE}.")


def read_nih_chestxray14(root: str | Path, *, seed: int = 0, val_fraction: float = 0.1,
                         fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                         locate_images: bool = True) -> ReleaseIndex:
    """Index the release; ``val_fraction`` of train_val patients go to val when official lists exist,
    otherwise ``fractions`` (train, val, test) split all patients."""
    root = Path(root)
    csv = find_metadata(root)
    raw = _read_csv(csv)
    frame, notes = _base_frame(raw, csv)
    frame = pd.concat([frame, _finding_columns(raw["Finding Labels"], csv)], axis=1)
    frame["split"], split_notes = _splits(root, frame, seed, val_fraction, fractions)
    frame = frame[frame["split"].notna()].reset_index(drop=True)
    notes += split_notes
    if locate_images:
        frame["image"], located = _locate(root, frame["image"])
        notes.append(located)
    return ReleaseIndex(name="nih-chestxray14", task=TaskKind.MULTILABEL, modality="xray", class_names=FINDINGS,
                        frame=frame, licence=LICENCE, source=SOURCE, notes=[f"metadata: {csv.name}", *notes])


def _read_csv(csv: Path) -> pd.DataFrame:
    # usecols by position: the bracketed names split into extra columns (see module docstring).
    return read_annotation_csv(csv, RELEASE, columns=_COLUMNS, usecols=range(7), compression="infer")


def _base_frame(raw: pd.DataFrame, csv: Path) -> tuple[pd.DataFrame, list[str]]:
    images = [safe_relative(csv.parent, name, RELEASE) for name in raw["Image Index"]]
    age = pd.to_numeric(raw["Patient Age"].str.strip().str.rstrip("Y"), errors="coerce")
    impossible = int((age > 120).sum())
    age = age.where(age <= 120)
    frame = pd.DataFrame({
        "image": images, "patient_id": raw["Patient ID"].str.strip().str.lstrip("0").replace("", "0"),
        "sex": raw["Patient Gender"].str.strip(), "age": age,
        "view_position": raw["View Position"].str.strip(),
        "follow_up": pd.to_numeric(raw["Follow-up #"], errors="coerce").astype("Int64"),
    })
    if frame["image"].duplicated().any():
        raise DataError(f"{RELEASE}: {csv.name} lists {int(frame['image'].duplicated().sum())} image(s) twice.")
    notes = [f"{impossible} impossible age(s) > 120 set to NaN"] if impossible else []
    return frame, notes


def _finding_columns(labels: pd.Series, csv: Path) -> pd.DataFrame:
    parts = labels.str.split("|")
    seen = {p.strip() for row in parts for p in row}
    unknown = sorted(seen - set(FINDINGS) - {NO_FINDING})
    if unknown:
        raise DataError(f"{RELEASE}: {csv.name} 'Finding Labels' holds unknown finding(s) {unknown}; expected "
                        f"'|'-joined names from {', '.join(FINDINGS)} or {NO_FINDING!r}.")
    values = np.zeros((len(labels), len(FINDINGS)), dtype=np.float64)
    position = {name: i for i, name in enumerate(FINDINGS)}
    for row, findings in enumerate(parts):
        for finding in findings:
            if finding.strip() != NO_FINDING:
                values[row, position[finding.strip()]] = 1.0
    return pd.DataFrame(values, columns=[label_column(c) for c in FINDINGS])


def _splits(root: Path, frame: pd.DataFrame, seed: int, val_fraction: float,
            fractions: tuple[float, float, float]) -> tuple[pd.Series, list[str]]:
    train_val, test = root / "train_val_list.txt", root / "test_list.txt"
    if not (train_val.is_file() and test.is_file()):
        split = grouped_split(frame["patient_id"], fractions, seed)
        return split, [f"no official split lists; seeded patient-level split {fractions} (seed {seed})"]
    names = frame["image"].map(lambda p: p.rsplit("/", 1)[-1])
    in_test = names.isin(_read_list(test))
    in_train_val = names.isin(_read_list(train_val))
    by_patient = grouped_split(frame["patient_id"], (1.0 - val_fraction, val_fraction, 0.0), seed)
    split = pd.Series(np.where(in_test, "test", np.where(in_train_val, by_patient, None)), index=frame.index)
    notes = [f"official train_val/test lists; val = {val_fraction:g} of train_val patients (seed {seed})"]
    dropped = int(split.isna().sum())
    if dropped:
        notes.append(f"{dropped} image(s) in neither train_val_list.txt nor test_list.txt were left out")
    return split, notes


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _locate(root: Path, images: pd.Series) -> tuple[pd.Series, str]:
    """Prefix each file name with the folder that holds it; names found nowhere default to ``images/``."""
    folders = [root / "images", root, *sorted(root.glob("images_*/images"))]
    where: dict[str, str] = {}
    for folder in reversed(folders):  # earlier folders win
        prefix = "" if folder == root else folder.relative_to(root).as_posix() + "/"
        where.update({name: prefix + name for name in scan_names(folder)})
    located = images.map(lambda name: where.get(name, f"images/{name}"))
    found = int(images.isin(list(where)).sum())
    return located, f"{found} of {len(images)} image files found locally"
