"""MedMNIST v2/v3 (the 12 2D flags, sizes 28/64/128/224) from the official ``.npz`` files.

Release format: ``{flag}.npz`` (28 px) or ``{flag}_{size}.npz``, keys ``{train,val,test}_images`` (N,H,W) or
(N,H,W,3) uint8 and ``{train,val,test}_labels`` (N,1) — (N,14) 0/1 for ChestMNIST. Class names and the task come
from the MedMNIST ``INFO`` table (shipped copy in :mod:`medmnist_info`, or a JSON given by ``info_path``).

Indexing reads only the label arrays: image arrays are checked from their ``.npy`` headers inside the zip (shape
and dtype) and referenced per row as ``array:<file>#<split>_images[<row>]``, so a 224 px file of several GB is
indexed in milliseconds. ``allow_pickle=False`` everywhere: an npz could otherwise carry executable pickles.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import SPLITS, ReleaseIndex, array_ref, label_column
from medrival.data.releases.medmnist_info import INFO, INFO_VERSION

RELEASE = "MedMNIST"
SIZES: tuple[int, ...] = (28, 64, 128, 224)
FLAGS: tuple[str, ...] = tuple(INFO)
# Modality per flag in medrival's vocabulary. Blood smears and kidney-cortex cell images are light microscopy,
# which the vocabulary files under "pathology" (closest: stained-cell microscopy); said in the index notes.
MODALITY: dict[str, str] = {
    "pathmnist": "pathology", "chestmnist": "xray", "dermamnist": "dermoscopy", "octmnist": "oct",
    "pneumoniamnist": "xray", "retinamnist": "fundus", "breastmnist": "ultrasound", "bloodmnist": "pathology",
    "tissuemnist": "pathology", "organamnist": "ct", "organcmnist": "ct", "organsmnist": "ct",
}
INFO_TASKS = {"binary-class": TaskKind.BINARY, "multi-class": TaskKind.MULTICLASS,
          "multi-label, binary-class": TaskKind.MULTILABEL, "ordinal-regression": TaskKind.MULTICLASS}


def info_class_names(entry: dict) -> tuple[str, ...]:
    """Class names of one INFO entry, in label order."""
    return tuple(entry["label"][str(i)] for i in range(len(entry["label"])))


def medmnist_file_names(flag: str, size: int) -> list[str]:
    """Accepted file names: the official one first (28 px files carry no size suffix)."""
    return [f"{flag}.npz", f"{flag}_28.npz"] if size == 28 else [f"{flag}_{size}.npz"]


def read_medmnist(root: str | Path, flag: str, size: int = 28, info_path: str | Path | None = None) -> ReleaseIndex:
    """Index ``{flag}[_{size}].npz`` under ``root`` (labels read, images referenced, never loaded)."""
    flag = flag.lower()
    if flag not in MODALITY:
        raise ConfigError(f"{RELEASE}: unknown 2D flag {flag!r}; flags are {', '.join(MODALITY)}.")
    if size not in SIZES:
        raise ConfigError(f"{RELEASE}: size {size} is not released; sizes are {', '.join(map(str, SIZES))}.")
    entry, version = _info_entry(flag, info_path)
    task = INFO_TASKS.get(entry["task"])
    if task is None:
        raise DataError(f"{RELEASE}: INFO task {entry['task']!r} for {flag} is not one of {sorted(INFO_TASKS)}.")
    class_names = info_class_names(entry)
    path = _find_npz(Path(root), flag, size)
    frames = [_split_frame(path, split, task, class_names, size) for split in SPLITS]
    frame = pd.concat(frames, ignore_index=True)
    notes = [f"class table: MedMNIST INFO v{version}", f"file: {path.name} ({size}x{size})"]
    if entry["task"] == "ordinal-regression":
        notes.append(f"{flag}: the release task is ordinal regression; indexed as multiclass (grades 0..4).")
    if flag in ("bloodmnist", "tissuemnist"):
        notes.append(f"{flag}: light microscopy, filed under modality 'pathology' (closest in the vocabulary).")
    notes += _count_notes(frame, entry)
    return ReleaseIndex(name=f"{flag}" if size == 28 else f"{flag}_{size}", task=task, modality=MODALITY[flag],
                        class_names=class_names, frame=frame, licence=entry["license"],
                        source="MedMNIST (Yang et al. 2023), zenodo.org/records/10519652", notes=notes)


def _info_entry(flag: str, info_path: str | Path | None) -> tuple[dict, str]:
    if info_path is None:
        return INFO[flag], INFO_VERSION
    try:
        table = json.loads(Path(info_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{RELEASE}: cannot read the INFO table {info_path} as JSON ({error}).") from error
    entry = table.get(flag) if isinstance(table, dict) else None
    if not isinstance(entry, dict) or not {"label", "task", "license"} <= set(entry):
        raise DataError(f"{RELEASE}: {info_path} has no INFO entry for {flag!r} with 'label', 'task' and "
                        "'license' (expected the INFO dict of medmnist/info.py as JSON).")
    return entry, f"from {Path(info_path).name}"


def _find_npz(root: Path, flag: str, size: int) -> Path:
    names = medmnist_file_names(flag, size)
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{RELEASE}: {' or '.join(names)} not found under {root}. Download it with the medmnist "
                    f"package (`python -m medmnist download`) or from zenodo.org/records/10519652.")


def _split_frame(path: Path, split: str, task: TaskKind, class_names: tuple[str, ...], size: int) -> pd.DataFrame:
    image_key, label_key = f"{split}_images", f"{split}_labels"
    shape, dtype = _npy_header(path, image_key)
    if dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] != 3):
        raise DataError(f"{RELEASE}: {path.name}:{image_key} is {dtype} {shape}; expected uint8 (N,H,W) or "
                        "(N,H,W,3).")
    if shape[1:3] != (size, size):
        raise DataError(f"{RELEASE}: {path.name}:{image_key} holds {shape[1]}x{shape[2]} images but the file is "
                        f"read as size {size}; pass size={shape[1]} or use the matching file.")
    with np.load(path, allow_pickle=False) as archive:
        if label_key not in archive.files:
            raise DataError(f"{RELEASE}: {path.name} lacks key {label_key!r} (found: {', '.join(archive.files)}).")
        try:
            labels = np.asarray(archive[label_key])
        except ValueError as error:  # object (pickled) arrays are refused: they could run code when loaded
            raise DataError(f"{RELEASE}: {path.name}:{label_key} is not a plain numeric array ({error}).") from error
    if len(labels) != shape[0]:
        raise DataError(f"{RELEASE}: {path.name} has {shape[0]} {image_key} but {len(labels)} {label_key}.")
    frame = pd.DataFrame({"image": [array_ref(path.name, image_key, i) for i in range(shape[0])], "split": split})
    return pd.concat([frame, _label_frame(labels, task, class_names, path.name, label_key)], axis=1)


def _label_frame(labels: np.ndarray, task: TaskKind, class_names: tuple[str, ...], file: str,
                 key: str) -> pd.DataFrame:
    k = len(class_names)
    if task is TaskKind.MULTILABEL:
        if labels.ndim != 2 or labels.shape[1] != k or not np.isin(labels, (0, 1)).all():
            raise DataError(f"{RELEASE}: {file}:{key} is {labels.shape}; expected (N,{k}) with 0/1 entries.")
        return pd.DataFrame(labels.astype(np.float64), columns=[label_column(c) for c in class_names])
    # The official files hold (N,1); some re-saved copies flatten to (N,) — the same labels, so accept both.
    if not (labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)):
        raise DataError(f"{RELEASE}: {file}:{key} is {labels.shape}; expected (N,1) class indices.")
    flat = labels.reshape(-1).astype(np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() >= k):
        raise DataError(f"{RELEASE}: {file}:{key} holds labels {flat.min()}..{flat.max()}; expected 0..{k - 1}.")
    return pd.DataFrame({"label": flat})


def _npy_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one array in an npz from its ``.npy`` header (works for stored and deflated members)."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = f"{key}.npy"
            if member not in archive.namelist():
                found = ", ".join(n.removesuffix(".npy") for n in archive.namelist())
                raise DataError(f"{RELEASE}: {path.name} lacks key {key!r} (found: {found}).")
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, _fortran, dtype = reader(handle)
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise DataError(f"{RELEASE}: {path} is not a readable npz archive ({error}).") from error
    return tuple(shape), np.dtype(dtype)


def _count_notes(frame: pd.DataFrame, entry: dict) -> list[str]:
    # Re-saved or subsampled copies circulate (e.g. class-balanced PneumoniaMNIST); say so rather than fail.
    official = entry.get("n_samples") or {}
    found = {s: int((frame["split"] == s).sum()) for s in SPLITS}
    if official and any(found[s] != official.get(s) for s in SPLITS):
        return [f"split sizes {found} differ from the official {official}: a modified or subset copy."]
    return []
