"""A user's own data set laid out as image folders: ``root/{class}/*`` or ``root/{split}/{class}/*``.

Format: one folder per class (its name is the class name) holding images with suffix png, jpg, jpeg, bmp, tif,
tiff or dcm (any case), directly or in sub-folders; optionally one level of split folders above the class folders.
Quirks handled:
- Split folder names are normalised like manifest split values (train/training, val/valid/validation/dev,
  test/testing, any case). Without split folders the images are split per image (seeded): folders carry no
  patient ids. With split folders but no val folder, val is carved from train (``val_fraction``, per image).
- A root mixing split folders and other folders is rejected: ``root/train/`` next to ``root/pneumonia/`` is
  ambiguous.
- Dotfiles and dot-folders (``.DS_Store``, ``._x.png`` resource forks, ``.ipynb_checkpoints``), ``__MACOSX`` and
  files with other suffixes (``notes.txt``, ``labels.csv``) are ignored.
- Class names are sorted (label = position); a class folder without images is an error naming it.
- Symbolic links are followed only when they resolve inside the root; a link leading outside is rejected (the
  index must not become a way to read arbitrary files).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split, undeclared_labels_error
from medrival.data.releases.manifest import SPLIT_ALIASES
from medrival.data.releases.paths import safe_relative

RELEASE = "image folder"
LICENCE = "unknown (user data)"
SOURCE = "user-supplied image folders"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")


def read_imagefolder(root: str | Path, *, modality: str, name: str | None = None, licence: str = LICENCE,
                     seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                     val_fraction: float = 0.1, classes: Sequence[str] | None = None) -> ReleaseIndex:
    """Index ``root/{class}/*`` (seeded ``fractions`` split per image) or ``root/{split}/{class}/*``;
    ``name`` defaults to the root folder's name. ``classes`` declares the classes (in label order): a class
    folder not among them is an error naming its image count and the declared classes it resembles."""
    root = Path(root)
    name = name or root.resolve().name.lower() or "imagefolder"
    release = f"{name} ({RELEASE})"
    if not root.is_dir():
        raise DataError(f"{release}: dataset root {root} is not a folder; expected root/<class>/<images> or "
                        "root/<split>/<class>/<images>.")
    top = _folders(root, root.resolve(), release)
    splits = {f: SPLIT_ALIASES.get(f.lower()) for f in top}
    if any(splits.values()):
        others = [f for f, s in splits.items() if s is None]
        if others:
            raise DataError(f"{release}: {root} mixes split folders ({', '.join(f for f in top if splits[f])}) with "
                            f"other folders ({', '.join(others)}); put every class folder inside a split folder.")
        frame, notes = _split_layout(root, top, splits, release, seed, val_fraction)
    else:
        frame = _class_images(root, root, release)
        frame["split"] = grouped_split(frame["image"], fractions, seed)
        notes = [f"no split folders: seeded split {fractions} (seed {seed}) per image (no patient ids)"]
    if classes is None:
        classes = tuple(sorted(set(frame["class_name"])))
    else:
        classes = _declared(classes, release)
        if set(frame["class_name"]) - set(classes):
            raise undeclared_labels_error(release, f"{root} (class folders)", frame["class_name"], classes)
    if len(classes) < 2:
        raise DataError(f"{release}: found a single class folder {list(classes)} under {root}; a classifier needs "
                        "two or more.")
    frame["label"] = frame["class_name"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    kind = TaskKind.BINARY if len(classes) == 2 else TaskKind.MULTICLASS
    return ReleaseIndex(name=name, task=kind, modality=modality, class_names=classes, frame=frame,
                        licence=licence, source=f"{SOURCE}: {root}", notes=notes)


def _declared(classes: Sequence[str], release: str) -> tuple[str, ...]:
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise ConfigError(f"{release}: classes must be a list of distinct class (folder) names, e.g. "
                          f"[normal, pneumonia]; got {classes!r}.")
    return tuple(classes)


def _split_layout(root: Path, top: list[str], splits: dict[str, str | None], release: str, seed: int,
                  val_fraction: float) -> tuple[pd.DataFrame, list[str]]:
    seen: dict[str, str] = {}
    frames = []
    for folder in top:
        split = splits[folder]
        if split in seen:
            raise DataError(f"{release}: folders {seen[split]!r} and {folder!r} both mean split {split!r}; keep one.")
        seen[split] = folder
        frames.append(_class_images(root, root / folder, release).assign(split=split))
    frame = pd.concat(frames, ignore_index=True)
    notes = [f"split folders: {', '.join(f'{f} -> {s}' for s, f in seen.items())}"]
    if "train" not in seen or "test" not in seen:
        raise DataError(f"{release}: split folders {sorted(seen)} found under {root}; a train and a test folder "
                        f"are required (val is optional). Expected one of {', '.join(SPLIT_ALIASES)}.")
    if "val" not in seen:
        is_train = frame["split"] == "train"
        carved = grouped_split(frame["image"], (1.0 - val_fraction, val_fraction, 0.0), seed)
        frame["split"] = carved.where(is_train, frame["split"])
        notes.append(f"no val folder: val = {val_fraction:g} of train images (seed {seed})")
    return frame, notes


def _folders(folder: Path, resolved_root: Path, release: str) -> list[str]:
    """Visible sub-folders (links allowed only inside the root), sorted."""
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue
            if entry.is_symlink():
                _inside(Path(entry.path), resolved_root, release)
            if entry.is_dir():
                names.append(entry.name)
    return sorted(names)


def _class_images(root: Path, folder: Path, release: str) -> pd.DataFrame:
    resolved_root = root.resolve()
    classes = _folders(folder, resolved_root, release)
    if not classes:
        raise DataError(f"{release}: {folder} holds no class folders; expected {folder}/<class>/<images>.")
    rows = []
    for class_name in classes:
        images = _images(folder / class_name, resolved_root, release, set())
        if not images:
            raise DataError(f"{release}: class folder {folder / class_name} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)}); remove it or add its images.")
        rows += [{"image": safe_relative(root, p.relative_to(root).as_posix(), release), "class_name": class_name}
                 for p in images]
    return pd.DataFrame(rows)


def _images(folder: Path, resolved_root: Path, release: str, visited: set[Path]) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted); ``visited`` stops symlink cycles."""
    real = folder.resolve()
    if real in visited:
        return []
    visited.add(real)
    found: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                _inside(path, resolved_root, release)
            if entry.is_dir():
                found += _images(path, resolved_root, release, visited)
            elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                found.append(path)
    return found


def _inside(link: Path, resolved_root: Path, release: str) -> None:
    target = link.resolve()
    if target != resolved_root and resolved_root not in target.parents:
        raise DataError(f"{release}: {link} is a symbolic link to {target}, outside the dataset root "
                        f"{resolved_root}; copy the file into the root or remove the link.")
