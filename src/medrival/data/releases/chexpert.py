"""CheXpert v1.0-small (Irvin et al. 2019) from ``train.csv`` / ``valid.csv``.

Release format: columns ``Path,Sex,Age,Frontal/Lateral,AP/PA`` then 14 observations valued 1.0 (positive),
0.0 (negative), -1.0 (uncertain) or blank (not mentioned). Quirks handled:
- ``Path`` starts with the release folder (``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``)
  and is relative to the folder *above* the CSV; the root may be either that folder or its parent.
- Blank means "not mentioned" and is read as negative (as the CheXpert authors do); -1.0 follows the uncertainty
  policy: ``zeros``, ``ones`` or ``ignore`` (NaN, masked out of losses and metrics), globally or per observation.
- ``AP/PA`` is blank for lateral views; ``Sex`` may be ``Unknown``.
- The public test set is not part of v1.0-small, so the official ``valid.csv`` (200 patients, radiologist
  consensus) is the test split and ``train.csv`` is divided train/val by patient.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split, label_column
from medrival.data.releases.paths import read_annotation_csv, safe_relative

RELEASE = "CheXpert v1.0-small"
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)
POLICIES = ("zeros", "ones", "ignore")
_META = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
_RELEASE_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
_PATIENT = re.compile(r"^patient\d+$")
_STUDY = re.compile(r"^study\d+$")
LICENCE = "Stanford University School of Medicine CheXpert Dataset Research Use Agreement (non-commercial)"
SOURCE = "stanfordmlgroup.github.io/competitions/chexpert (Irvin et al., AAAI 2019)"


def read_chexpert(root: str | Path, policy: str | Mapping[str, str] = "zeros", *, seed: int = 0,
                  val_fraction: float = 0.1, frontal_only: bool = False) -> ReleaseIndex:
    """Index the release. ``policy`` maps -1.0: one of ``zeros``/``ones``/``ignore``, or a dict per observation
    (observations not named get ``zeros``), e.g. U-Ones for Atelectasis and Edema as in the CheXpert paper."""
    policies = _policies(policy)
    root = Path(root)
    folder = _csv_folder(root)
    frames = []
    for name, split in (("train.csv", None), ("valid.csv", "test")):
        frame = _read_split(root, folder, folder / name, policies)
        if split is None:
            split = grouped_split(frame["patient_id"], (1.0 - val_fraction, val_fraction, 0.0), seed)
        frames.append(frame.assign(split=split))
    frame = pd.concat(frames, ignore_index=True)
    if frontal_only:
        frame = frame[frame["view"] == "Frontal"].reset_index(drop=True)
    notes = [f"uncertain (-1.0) labels: {_describe(policies)}; blank = not mentioned = 0",
             "valid.csv is the test split (no public test set in v1.0-small); train.csv split train/val by "
             f"patient ({val_fraction:g} val, seed {seed})"]
    if frontal_only:
        notes.append("frontal views only")
    return ReleaseIndex(name="chexpert", task=TaskKind.MULTILABEL, modality="xray", class_names=OBSERVATIONS,
                        frame=frame, licence=LICENCE, source=SOURCE, notes=notes)


def _policies(policy: str | Mapping[str, str]) -> dict[str, str]:
    chosen = {name: policy for name in OBSERVATIONS} if isinstance(policy, str) else \
        {name: policy.get(name, "zeros") for name in OBSERVATIONS}
    if not isinstance(policy, str):
        unknown = sorted(set(policy) - set(OBSERVATIONS))
        if unknown:
            raise ConfigError(f"{RELEASE}: uncertainty policy names unknown observation(s) {unknown}; "
                              f"observations are {', '.join(OBSERVATIONS)}.")
    bad = sorted({p for p in chosen.values() if p not in POLICIES})
    if bad:
        raise ConfigError(f"{RELEASE}: uncertainty policy {bad} is not one of {', '.join(POLICIES)}.")
    return chosen


def _describe(policies: dict[str, str]) -> str:
    distinct = set(policies.values())
    if len(distinct) == 1:
        return next(iter(distinct))
    return ", ".join(f"{name}={p}" for name, p in policies.items() if p != "zeros") + ", others=zeros"


def _csv_folder(root: Path) -> Path:
    """The folder holding train.csv: the root itself or one of the release folders inside it."""
    for folder in (root, *(root / name for name in _RELEASE_FOLDERS)):
        if (folder / "train.csv").is_file() and (folder / "valid.csv").is_file():
            return folder
    raise DataError(f"{RELEASE}: train.csv and valid.csv not found in {root} or {root}/CheXpert-v1.0-small; "
                    "point the root at the unzipped CheXpert-v1.0-small folder (or its parent).")


def _read_split(root: Path, folder: Path, csv: Path, policies: dict[str, str]) -> pd.DataFrame:
    raw = read_annotation_csv(csv, RELEASE, columns=(*_META, *OBSERVATIONS))
    images = [_image_path(root, folder, text) for text in raw["Path"]]
    parts = [p.split("/") for p in images]
    frame = pd.DataFrame({
        "image": images,
        "patient_id": [_component(p, _PATIENT, csv, text) for p, text in zip(parts, raw["Path"])],
        "study_id": [_component(p, _STUDY, csv, text) for p, text in zip(parts, raw["Path"])],
        "sex": raw["Sex"].str.strip(),
        "age": pd.to_numeric(raw["Age"], errors="coerce"),
        "view": raw["Frontal/Lateral"].str.strip(),
        "ap_pa": raw["AP/PA"].str.strip().replace("", np.nan),
    })
    labels = {label_column(n): _observation(raw[n], policies[n], csv, n) for n in OBSERVATIONS}
    return pd.concat([frame, pd.DataFrame(labels)], axis=1)


def _image_path(root: Path, folder: Path, text: str) -> str:
    # Paths are relative to the CSV's parent folder and begin with the release folder's name. When the CSV sits
    # in the root itself, that first component is the root: drop it (whatever the folder was renamed to).
    relative = safe_relative(root, text, RELEASE)
    if folder == root:
        head, _, rest = relative.partition("/")
        if rest and (head in _RELEASE_FOLDERS or head == root.name):
            return rest
        return relative
    prefix = folder.parent.relative_to(root).as_posix()
    return relative if prefix == "." else f"{prefix}/{relative}"


def _component(parts: list[str], pattern: re.Pattern, csv: Path, text: str) -> str:
    for part in parts:
        if pattern.match(part):
            return part
    raise DataError(f"{RELEASE}: {csv.name} path {text!r} has no {pattern.pattern.strip('^$')} folder; expected "
                    "train/patientNNNNN/studyN/viewN_frontal.jpg.")


def _observation(column: pd.Series, policy: str, csv: Path, name: str) -> np.ndarray:
    text = column.str.strip()
    values = pd.to_numeric(text.replace("", "0"), errors="coerce")
    bad = sorted(set(text[values.isna() | ~values.isin((1.0, 0.0, -1.0))]))
    if bad:
        raise DataError(f"{RELEASE}: {csv.name} column {name!r} holds {bad[:5]}; expected 1.0, 0.0, -1.0 or blank.")
    uncertain = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[policy]
    return np.where(values == -1.0, uncertain, values).astype(np.float64)
