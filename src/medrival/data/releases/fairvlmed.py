"""Harvard-FairVLMed (Luo et al., CVPR 2024, "FairCLIP") and Harvard-GF / GF3300 (Luo et al., IEEE TMI 2024):
glaucoma per patient, one ``.npz`` per patient, with demographics for fairness analyses.

Release format: ``Training/``, ``Validation/``, ``Test/`` holding ``data_XXXXX.npz`` (FairVLMed: 7,000 / 1,000 /
2,000, five-digit ids; GF3300: 2,100 / 300 / 900, four-digit ids), one patient per file, and a summary CSV
``data_summary.csv`` (FairVLMed: in ``ReadMe/`` in the Harvard download, at the root in other copies) with
``filename,age,gender,race,ethnicity,language,maritalstatus[,note,gpt4_summary],glaucoma,use``, where
``glaucoma`` is ``yes``/``no`` and ``use`` is ``training``/``validation``/``test``; demographics are words
(``female``, ``black``, ``non-hispanic``, ``english``, ``married or partnered``).

npz keys — FairVLMed: ``slo_fundus`` (SLO fundus image), ``md``, ``tds``, ``age``, ``gender``, ``race``,
``ethnicity``, ``language``, ``maritalstatus``, ``glaucoma``, ``note``, ``note_extra``. GF3300: ``rnflt`` (200x200
RNFL thickness map, float), ``oct_bscans``, ``md``, ``tds``, ``age``, ``male``, ``race``, ``hispanic``,
``language``, ``maritalstatus``, ``glaucoma``. Integer codes, as documented in the two READMEs
(github.com/Harvard-Ophthalmology-AI-Lab/FairCLIP, .../Harvard-GF): gender/male 0 = female, 1 = male; race
0 = asian, 1 = black, 2 = white; ethnicity/hispanic 0 = non-hispanic, 1 = hispanic, -1 = unknown; language
0 = english, 1 = spanish, 2 = other, -1 = unknown; maritalstatus 0 = married or partnered, 1 = single,
2 = divorced, 3 = widowed, 4 = legally separated, -1 = unknown. Quirks handled:
- Labels come from the summary CSV when present (no npz is opened); without it, only the small scalar keys of
  each npz are read (``allow_pickle=False``; the image array is never loaded). Object (pickled) arrays are
  refused: unpickling a downloaded file can run code.
- Codes are mapped to the README's words only where documented; other codes are kept as text (``"7"``), and
  words already in a CSV or npz are kept as written (the Harvard-GF code also expects race strings such as
  ``"Black or African American"`` in some npz copies).
- Images are referenced as ``array:<split folder>/<file>#<image_key>`` (a whole array per file).
- The official split (``use`` / the folders) is kept; one patient per file, so ``patient_id`` is the file stem.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ARRAY_PREFIX, ReleaseIndex
from medrival.data.releases.paths import read_annotation_csv, safe_relative

RELEASE = "Harvard-FairVLMed / Harvard-GF"
LICENCE = "CC BY-NC-ND 4.0 (non-commercial research only)"
SOURCE = ("Harvard-FairVLMed: ophai.hms.harvard.edu/datasets/harvard-fairvlmed10k (Luo et al., CVPR 2024); "
          "Harvard-GF: github.com/Harvard-Ophthalmology-AI-Lab/Harvard-GF (Luo et al., IEEE TMI 2024)")
# image key -> (index name, release, modality). An RNFL thickness map is measured by OCT, not photographed.
IMAGE_KEYS: dict[str, tuple[str, str, str]] = {
    "slo_fundus": ("fairvlmed", "Harvard-FairVLMed", "fundus"),
    "rnflt": ("harvard-gf", "Harvard-GF", "oct"),
}
CLASS_NAMES = ("non-glaucoma", "glaucoma")
SPLIT_FOLDERS: dict[str, str] = {"Training": "train", "Validation": "val", "Test": "test"}
_FOLDER_OF = {split: folder for folder, split in SPLIT_FOLDERS.items()}
_USE = {"training": "train", "train": "train", "validation": "val", "val": "val", "test": "test"}
_GLAUCOMA = {"yes": 1, "no": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
_SUMMARY = ("data_summary.csv", "ReadMe/data_summary.csv")
_COLUMNS = ("filename", "age", "gender", "race", "ethnicity", "language", "maritalstatus", "glaucoma", "use")
_SEX = {0: "female", 1: "male"}
# index column -> (npz keys that may hold it, documented codes)
DEMOGRAPHICS: dict[str, tuple[tuple[str, ...], dict[int, str]]] = {
    "sex": (("gender", "male"), _SEX),
    "race": (("race",), {0: "asian", 1: "black", 2: "white"}),
    "ethnicity": (("ethnicity", "hispanic"), {0: "non-hispanic", 1: "hispanic", -1: "unknown"}),
    "language": (("language",), {0: "english", 1: "spanish", 2: "other", -1: "unknown"}),
    "marital_status": (("maritalstatus",), {0: "married or partnered", 1: "single", 2: "divorced", 3: "widowed",
                                            4: "legally separated", -1: "unknown"}),
}


def read_fairvlmed(root: str | Path, *, image_key: str = "slo_fundus") -> ReleaseIndex:
    """Index FairVLMed (``image_key="slo_fundus"``) or Harvard-GF (``image_key="rnflt"``) under ``root`` with the
    official split; binary glaucoma task."""
    if image_key not in IMAGE_KEYS:
        raise ConfigError(f"{RELEASE}: image_key {image_key!r} is not one of {', '.join(IMAGE_KEYS)} "
                          "(slo_fundus: FairVLMed; rnflt: Harvard-GF).")
    name, release, modality = IMAGE_KEYS[image_key]
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{release}: dataset root {root} is not a folder; expected it to hold data_summary.csv "
                        f"and {', '.join(SPLIT_FOLDERS)}/.")
    summary = next((root / n for n in _SUMMARY if (root / n).is_file()), None)
    if summary is not None:
        frame = _from_summary(root, summary, image_key, release)
        notes = [f"labels and demographics from {summary.relative_to(root).as_posix()} (no npz opened)"]
    else:
        frame = _from_npz(root, image_key, release)
        notes = [f"no data_summary.csv: scalar keys read from {len(frame)} npz file(s) (images not loaded)"]
    notes.append("official split (use column / Training, Validation, Test folders); one patient per file")
    return ReleaseIndex(name=name, task=TaskKind.BINARY, modality=modality, class_names=CLASS_NAMES, frame=frame,
                        licence=LICENCE, source=SOURCE, notes=notes)


def _from_summary(root: Path, csv: Path, image_key: str, release: str) -> pd.DataFrame:
    raw = read_annotation_csv(csv, release, columns=_COLUMNS)
    files = raw["filename"].str.strip()
    twice = files[files.duplicated()]
    if len(twice):
        raise DataError(f"{release}: {csv.name} lists {twice.iloc[0]!r} more than once.")
    split = _mapped(raw["use"], _USE, csv, "use", release)
    where = _located(root)
    frame = pd.DataFrame({
        "image": [_ref(root, where.get(f, f"{_FOLDER_OF[s]}/{f}"), image_key, release) for f, s in zip(files, split)],
        "split": split, "label": _mapped(raw["glaucoma"], _GLAUCOMA, csv, "glaucoma", release).astype("int64"),
        "patient_id": files.str.rsplit(".", n=1).str[0].astype(str),
        "age": pd.to_numeric(raw["age"].str.strip(), errors="coerce"),
        "sex": raw["gender"].str.strip(), "race": raw["race"].str.strip(),
        "ethnicity": raw["ethnicity"].str.strip(), "language": raw["language"].str.strip(),
        "marital_status": raw["maritalstatus"].str.strip(),
    })
    for text in ("note", "gpt4_summary"):
        if text in raw.columns:
            frame[text] = raw[text]
    return frame


def _mapped(values: pd.Series, table: dict, csv: Path, column: str, release: str) -> pd.Series:
    clean = values.str.strip().str.lower()
    unknown = sorted(set(clean) - set(table))
    if unknown:
        raise DataError(f"{release}: {csv.name} column {column!r} holds {unknown}; expected "
                        f"{', '.join(sorted(set(table)))}.")
    return clean.map(table)


def _located(root: Path) -> dict[str, str]:
    """npz file name -> ``<split folder>/<name>`` for the files present (names only, nothing opened)."""
    where: dict[str, str] = {}
    for folder in SPLIT_FOLDERS:
        if (root / folder).is_dir():
            with os.scandir(root / folder) as entries:
                where.update({e.name: f"{folder}/{e.name}" for e in entries if e.name.endswith(".npz")})
    return where


def _ref(root: Path, relative: str, image_key: str, release: str) -> str:
    return f"{ARRAY_PREFIX}{safe_relative(root, relative, release)}#{image_key}"


def _from_npz(root: Path, image_key: str, release: str) -> pd.DataFrame:
    rows = []
    for folder, split in SPLIT_FOLDERS.items():
        if not (root / folder).is_dir():
            continue
        with os.scandir(root / folder) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".npz") and not e.name.startswith("."))
        for name in names:
            values = _npz_scalars(root / folder / name, image_key, release)
            rows.append({"image": _ref(root, f"{folder}/{name}", image_key, release), "split": split,
                         "label": values.pop("label"), "patient_id": name.rsplit(".", 1)[0], **values})
    if not rows:
        raise DataError(f"{release}: neither data_summary.csv (tried {', '.join(str(root / n) for n in _SUMMARY)}) "
                        f"nor npz files in {', '.join(str(root / f) for f in SPLIT_FOLDERS)} were found.")
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("int64")
    return frame


def _npz_scalars(path: Path, image_key: str, release: str) -> dict:
    """label, age and the demographic columns of one npz, reading only its scalar arrays."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            missing = [k for k in (image_key, "glaucoma") if k not in keys]
            if missing:
                raise DataError(f"{release}: {path} lacks key(s) {missing} (found: {', '.join(sorted(keys))}).")
            label = _scalar(archive, "glaucoma", path, release)
            if label not in (0, 1):
                raise DataError(f"{release}: {path.name}:glaucoma is {label!r}; expected 0 or 1.")
            values = {"label": int(label)}
            values["age"] = float(_scalar(archive, "age", path, release)) if "age" in keys else np.nan
            for column, (candidates, codes) in DEMOGRAPHICS.items():
                key = next((k for k in candidates if k in keys), None)
                values[column] = "unknown" if key is None else _word(_scalar(archive, key, path, release), codes)
            return values
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # np.load refuses a pickle file (not an npz) with ValueError when allow_pickle=False.
        raise DataError(f"{release}: {path} is not a readable npz archive of plain arrays ({error}); pickled "
                        "files are refused because unpickling can run code.") from error


def _scalar(archive, key: str, path: Path, release: str):
    try:
        value = archive[key]
    except ValueError as error:  # object arrays are stored pickled; allow_pickle=False refuses them
        raise DataError(f"{release}: {path.name}:{key} is a pickled object array; refused (allow_pickle=False) "
                        "because unpickling can run code. Re-save it as a plain numeric or string array.") from error
    if value.size != 1:
        raise DataError(f"{release}: {path.name}:{key} has shape {value.shape}; expected a single value.")
    return value.reshape(-1)[0].item()


def _word(value, codes: dict[int, str]) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return codes.get(value, str(value)) if isinstance(value, (int, bool)) else str(value)
