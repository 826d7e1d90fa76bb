"""A user's own data set from a CSV manifest: one row per image, a path column relative to the dataset root.

Format: a header line, then rows; the delimiter (``,``, ``;`` or tab) is read from the header unless given.
Columns (names configurable): ``path`` (image path relative to the root), the label column(s), optionally a
split column, a patient column and subgroup columns (``sex``, ``age``, ...). Quirks handled:
- Labels may be class names (``pneumonia``) or integer class indices (``0``/``1``); without ``class_names`` the
  classes are the sorted distinct values (integers sorted numerically). With ``class_names``, integers index it
  and names must belong to it.
- Multilabel: several 0/1 label columns (blank = not labelled -> NaN, counted as ``unlabelled``), or one column
  of names joined by ``multilabel_separator`` (e.g. ``effusion|nodule``; blank = no positive class).
- Task inferred when not given: multilabel as above, else 2 classes -> binary, more -> multiclass.
- Split values are normalised case-insensitively: train/training, val/valid/validation/dev, test/testing; any
  other value is rejected with the list of offending values. Without a split column, rows are split (seeded) by
  the patient column when given, else per image path (no patient information: near-duplicate images of one
  patient may then straddle splits, which the notes say).
- Every path must stay inside the root (``../x.png`` and ``/etc/passwd`` are rejected, and so is a path whose
  symbolic link, or a linked folder on the way, leads outside the root); the CSV itself may live anywhere (an
  absolute ``csv_path``, or one relative to the root).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import (LABEL_PREFIX, ReleaseIndex, grouped_split, label_column,
                                          undeclared_labels_error)
from medrival.data.releases.paths import (read_annotation_csv, reject_links_outside, require_columns,
                                          safe_relative)

RELEASE = "CSV manifest"
LICENCE = "unknown (user data)"
SOURCE = "user-supplied CSV manifest"
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_RESERVED = ("image", "split", "label", "patient_id")
_INTEGER = re.compile(r"^[+-]?\d+(\.0*)?$")
_BINARY_VALUES = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "": np.nan}


def read_manifest(root: str | Path, csv_path: str | Path, *, path_column: str = "path",
                  label_columns: Sequence[str] | str = ("label",), split_column: str | None = None,
                  patient_column: str | None = None, subgroup_columns: Sequence[str] = (),
                  class_names: Sequence[str] | None = None, task: str | TaskKind | None = None, modality: str,
                  name: str, licence: str = LICENCE, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), delimiter: str | None = None,
                  multilabel_separator: str | None = None, classes: Sequence[str] | None = None) -> ReleaseIndex:
    """Index the manifest ``csv_path`` (absolute, or relative to ``root``); see the module docstring.
    ``classes`` is another name for ``class_names`` (the declared classes; any other label is an error)."""
    class_names = _declared(classes, class_names, f"{name} ({RELEASE})")
    label_columns = (label_columns,) if isinstance(label_columns, str) else tuple(label_columns)
    subgroup_columns = (subgroup_columns,) if isinstance(subgroup_columns, str) else tuple(subgroup_columns)
    release = f"{name} ({RELEASE})"
    _check_options(label_columns, subgroup_columns, multilabel_separator, release)
    root = Path(root)
    csv = _csv_file(root, Path(csv_path), release)
    raw = _read(csv, delimiter, release)
    wanted = [path_column, *label_columns, *(c for c in (split_column, patient_column) if c), *subgroup_columns]
    require_columns(raw, wanted, csv, release)
    images = pd.Series([safe_relative(root, p, release) for p in raw[path_column]], name="image")
    twice = images[images.duplicated()]
    if len(twice):
        raise DataError(f"{release}: {csv.name} lists image {twice.iloc[0]!r} more than once.")
    reject_links_outside(root, images, release)
    labels, classes, kind = _labels(raw, label_columns, class_names, task, multilabel_separator, csv, release)
    frame = pd.concat([images, labels], axis=1)
    if patient_column:
        frame["patient_id"] = _required_text(raw[patient_column], csv, patient_column, release)
    for column in subgroup_columns:
        text = raw[column].str.strip()
        frame[column] = pd.to_numeric(text, errors="coerce") if column.lower() == "age" else text
    if split_column:
        frame["split"] = normalise_splits(raw[split_column], f"{csv.name} column {split_column!r}", release)
        notes = [f"splits from column {split_column!r}"]
    else:
        groups = frame["patient_id"] if patient_column else frame["image"]
        frame["split"] = grouped_split(groups, fractions, seed)
        notes = [f"no split column: seeded split {fractions} (seed {seed}) by "
                 + (f"patient ({patient_column!r})" if patient_column else "image (no patient column given)")]
    return ReleaseIndex(name=name, task=kind, modality=modality, class_names=classes, frame=frame, licence=licence,
                        source=f"{SOURCE}: {csv}", notes=[f"manifest: {csv}", *notes])


def normalise_splits(values: pd.Series, where: str, release: str) -> pd.Series:
    """train/val/test from the usual spellings (case-insensitive); the error lists every unknown value."""
    clean = values.astype(str).str.strip().str.lower()
    unknown = sorted(set(clean) - set(SPLIT_ALIASES))
    if unknown:
        raise DataError(f"{release}: {where} holds split value(s) {unknown}; accepted (any case): "
                        f"{', '.join(SPLIT_ALIASES)}.")
    return clean.map(SPLIT_ALIASES)


def _declared(classes: Sequence[str] | None, class_names: Sequence[str] | None,
              release: str) -> Sequence[str] | None:
    if classes is not None and class_names is not None:
        raise ConfigError(f"{release}: both classes and class_names were given; they mean the same (the declared "
                          "classes), give one.")
    declared = classes if classes is not None else class_names
    if declared is not None and (isinstance(declared, str) or len(set(map(str, declared))) != len(declared)):
        raise ConfigError(f"{release}: classes must be a list of distinct class names, e.g. [normal, pneumonia]; "
                          f"got {declared!r}.")
    return declared


def _check_options(label_columns: tuple[str, ...], subgroup_columns: tuple[str, ...], separator: str | None,
                   release: str) -> None:
    if not label_columns:
        raise ConfigError(f"{release}: label_columns is empty; name at least one label column.")
    clash = [c for c in subgroup_columns if c in _RESERVED or c.startswith(LABEL_PREFIX)]
    if clash:
        raise ConfigError(f"{release}: subgroup column(s) {clash} collide with index columns {_RESERVED}; rename "
                          "them in the CSV.")
    if separator is not None and (len(label_columns) != 1 or not separator):
        raise ConfigError(f"{release}: multilabel_separator needs exactly one label column and a non-empty "
                          f"separator, got columns {label_columns} and separator {separator!r}.")


def _csv_file(root: Path, csv_path: Path, release: str) -> Path:
    csv = csv_path if csv_path.is_absolute() else root / csv_path
    if not csv.is_file():
        raise DataError(f"{release}: manifest not found; expected {csv} (csv_path is absolute or relative to the "
                        f"dataset root {root}).")
    return csv


def _read(csv: Path, delimiter: str | None, release: str) -> pd.DataFrame:
    return read_annotation_csv(csv, release, delimiter=delimiter)


def _required_text(values: pd.Series, csv: Path, column: str, release: str) -> pd.Series:
    text = values.str.strip()
    blank = text[text == ""]
    if len(blank):
        raise DataError(f"{release}: {csv.name} line {blank.index[0] + 2} has an empty {column!r}; every row "
                        "needs one.")
    return text


def _labels(raw: pd.DataFrame, columns: tuple[str, ...], class_names: Sequence[str] | None,
            task: str | TaskKind | None, separator: str | None, csv: Path,
            release: str) -> tuple[pd.DataFrame, tuple[str, ...], TaskKind]:
    try:
        wanted = TaskKind(task) if task is not None else None
    except ValueError as error:
        raise ConfigError(f"{release}: task {task!r} is not binary, multiclass or multilabel.") from error
    if wanted is TaskKind.VQA:
        raise ConfigError(f"{release}: a CSV manifest indexes classification data; task 'vqa' is not supported.")
    if len(columns) > 1 or separator is not None:
        if wanted not in (None, TaskKind.MULTILABEL):
            raise ConfigError(f"{release}: several label columns (or a separator) make a multilabel task, but "
                              f"task={wanted.value!r} was given.")
        if separator is not None:
            return (*_joined_labels(raw[columns[0]], separator, class_names, csv, release), TaskKind.MULTILABEL)
        return (*_column_labels(raw, columns, class_names, csv, release), TaskKind.MULTILABEL)
    if wanted is TaskKind.MULTILABEL:
        raise ConfigError(f"{release}: task 'multilabel' needs several label columns or multilabel_separator.")
    labels, classes = _single_labels(raw[columns[0]], class_names, csv, columns[0], release)
    kind = wanted or (TaskKind.BINARY if len(classes) == 2 else TaskKind.MULTICLASS)
    if kind is TaskKind.BINARY and len(classes) != 2:
        raise ConfigError(f"{release}: task 'binary' needs exactly 2 classes, found {len(classes)}: {classes}.")
    return labels.to_frame("label"), classes, kind


def _single_labels(values: pd.Series, class_names: Sequence[str] | None, csv: Path, column: str,
                   release: str) -> tuple[pd.Series, tuple[str, ...]]:
    text = _required_text(values, csv, column, release)
    integers = bool(text.map(lambda v: bool(_INTEGER.match(v))).all())
    if class_names is not None:
        classes = tuple(str(c) for c in class_names)
        if integers:
            index = text.map(lambda v: int(float(v)))
            bad = sorted(set(index[(index < 0) | (index >= len(classes))]))
            if bad:
                raise DataError(f"{release}: {csv.name} column {column!r} holds class indices {bad}; with "
                                f"{len(classes)} class_names they must lie in 0..{len(classes) - 1}.")
            return index.astype("int64"), classes
        if set(text) - set(classes):
            raise undeclared_labels_error(release, f"{csv.name} column {column!r}", text, classes)
    else:
        if integers:
            text = text.map(lambda v: str(int(float(v))))
            classes = tuple(sorted(set(text), key=int))
        else:
            classes = tuple(sorted(set(text)))
        if len(classes) < 2:
            raise DataError(f"{release}: {csv.name} column {column!r} holds a single class {list(classes)}; a "
                            "classifier needs two or more (pass class_names to name classes absent here).")
    position = {c: i for i, c in enumerate(classes)}
    return text.map(position).astype("int64"), classes


def _column_labels(raw: pd.DataFrame, columns: tuple[str, ...], class_names: Sequence[str] | None, csv: Path,
                   release: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    classes = tuple(str(c) for c in class_names) if class_names is not None else columns
    if len(classes) != len(columns):
        raise ConfigError(f"{release}: {len(class_names)} class_names for {len(columns)} label columns; give one "
                          "name per column (in the same order) or none.")
    out = {}
    for column, cls in zip(columns, classes):
        text = raw[column].str.strip()
        unknown = sorted(set(text) - set(_BINARY_VALUES))
        if unknown:
            raise DataError(f"{release}: {csv.name} label column {column!r} holds {unknown}; expected 0, 1 or "
                            "blank (not labelled).")
        out[label_column(cls)] = text.map(_BINARY_VALUES).astype(float)
    return pd.DataFrame(out), classes


def _joined_labels(values: pd.Series, separator: str, class_names: Sequence[str] | None, csv: Path,
                   release: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    parts = values.map(lambda v: [p.strip() for p in str(v).split(separator) if p.strip()])
    seen = {p for row in parts for p in row}
    classes = tuple(str(c) for c in class_names) if class_names is not None else tuple(sorted(seen))
    if seen - set(classes):
        raise undeclared_labels_error(release, f"{csv.name} column {values.name!r}",
                                      [p for row in parts for p in row], classes)
    if not classes:
        raise DataError(f"{release}: {csv.name} column {values.name!r} names no class at all; pass class_names.")
    matrix = np.zeros((len(values), len(classes)))
    position = {c: i for i, c in enumerate(classes)}
    for row, names in enumerate(parts):
        matrix[row, [position[n] for n in names]] = 1.0
    return pd.DataFrame(matrix, columns=[label_column(c) for c in classes]), classes
