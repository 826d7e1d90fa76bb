"""HAM10000 (Tschandl et al. 2018) from ``HAM10000_metadata.csv``.

Release format: ``lesion_id,image_id,dx,dx_type,age,sex,localization``; images
``HAM10000_images_part_1/{image_id}.jpg`` and ``HAM10000_images_part_2/{image_id}.jpg``. Quirks handled:
- ``age`` is written ``80`` in some copies, ``80.0`` in others, and is blank for a few rows (-> NaN).
- ``sex``/``localization`` use the word ``unknown``; kept as is (a subgroup of its own).
- Several images show the same lesion: the seeded split is by ``lesion_id`` so a lesion never spans splits
  (otherwise near-duplicate images leak from train to test).
- Tasks: ``dx`` (7 classes) or ``malignant`` (binary): mel, bcc and akiec are malignant. Basal cell carcinoma is
  a malignant tumour; MedVLMBench's binary HAM10000 labels bcc benign, which is wrong.
- The Dataverse copy may be tab-separated (``.tab``); the delimiter is read from the header line.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split
from medrival.data.releases.paths import read_annotation_csv, require_file, safe_relative, scan_names

RELEASE = "HAM10000"
DX_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
MALIGNANT: frozenset[str] = frozenset({"mel", "bcc", "akiec"})
BINARY_CLASSES: tuple[str, ...] = ("benign", "malignant")
TASKS = ("dx", "malignant")
IMAGE_FOLDERS: tuple[str, ...] = ("HAM10000_images_part_1", "HAM10000_images_part_2")
_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
_METADATA = ("HAM10000_metadata.csv", "HAM10000_metadata.tab", "HAM10000_metadata")
LICENCE = "CC BY-NC 4.0"
SOURCE = "Harvard Dataverse doi:10.7910/DVN/DBW86T (Tschandl et al., Sci. Data 2018)"


def read_ham10000(root: str | Path, task: str = "dx", *, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), locate_images: bool = True) -> ReleaseIndex:
    """Index the release for ``task`` ``dx`` (7-class) or ``malignant`` (binary), split by lesion (seeded)."""
    if task not in TASKS:
        raise ConfigError(f"{RELEASE}: task {task!r} is not one of {', '.join(TASKS)}.")
    root = Path(root)
    csv = require_file(root, _METADATA, RELEASE, "metadata file")
    raw = _read_metadata(csv)
    dx = raw["dx"].str.strip().str.lower()
    unknown = sorted(set(dx) - set(DX_CLASSES))
    if unknown:
        raise DataError(f"{RELEASE}: {csv.name} column 'dx' holds {unknown}; expected {', '.join(DX_CLASSES)}.")
    if task == "dx":
        classes, labels = DX_CLASSES, dx.map({c: i for i, c in enumerate(DX_CLASSES)})
    else:
        classes, labels = BINARY_CLASSES, dx.isin(MALIGNANT).astype(int)
    image_ids = raw["image_id"].str.strip()
    frame = pd.DataFrame({
        "image": _image_paths(root, image_ids, locate_images), "label": labels.astype("int64"),
        "group_id": raw["lesion_id"].str.strip(), "image_id": image_ids, "dx": dx,
        "dx_type": raw["dx_type"].str.strip(), "age": pd.to_numeric(raw["age"].str.strip(), errors="coerce"),
        "sex": raw["sex"].str.strip(), "localization": raw["localization"].str.strip(),
    })
    frame["split"] = grouped_split(frame["group_id"], fractions, seed)
    notes = [f"split by lesion_id {fractions} (seed {seed}); no lesion spans two splits"]
    if task == "malignant":
        notes.append("malignant = mel, bcc, akiec (bcc is malignant; MedVLMBench labels it benign)")
    return ReleaseIndex(name="ham10000" if task == "dx" else "ham10000-malignant",
                        task=TaskKind.MULTICLASS if task == "dx" else TaskKind.BINARY, modality="dermoscopy",
                        class_names=classes, frame=frame, licence=LICENCE, source=SOURCE, notes=notes)


def _read_metadata(csv: Path) -> pd.DataFrame:
    raw = read_annotation_csv(csv, RELEASE, columns=_COLUMNS, delimiter=None)  # the Dataverse copy is tabbed
    twice = raw["image_id"][raw["image_id"].duplicated()]
    if len(twice):
        raise DataError(f"{RELEASE}: {csv.name} lists image_id {twice.iloc[0]!r} more than once.")
    return raw


def _image_paths(root: Path, image_ids: pd.Series, locate: bool) -> list[str]:
    """``part_1`` or ``part_2`` by where the file is; the split between parts is by download, not by id."""
    where: dict[str, str] = {}
    if locate:
        for folder in reversed(IMAGE_FOLDERS):  # part_1 wins if a file is in both
            where.update({name: folder for name in scan_names(root / folder)})
    return [safe_relative(root, f"{where.get(i + '.jpg', IMAGE_FOLDERS[0])}/{i}.jpg", RELEASE) for i in image_ids]
