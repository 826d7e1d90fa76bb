"""The common output of every classification release parser: ``ReleaseIndex``.

A release is indexed as one pandas frame, one row per image, without opening a single image: counting examples
or classes is a frame operation (MedVLMBench decodes every image just to count labels). Columns:

- ``image``: posix path relative to the dataset root, or ``array:<file>#<key>[<row>]`` for releases that store
  pixels in arrays (MedMNIST, FairVLMed npz).
- ``split``: train / val / test.
- ``label`` (int) for binary and multiclass tasks, or one 0/1 column ``label:<class>`` per class for multilabel
  tasks (float, NaN where an uncertainty policy says "ignore").
- optional ``patient_id``, ``group_id`` (e.g. HAM10000 lesion_id) and subgroup columns (``sex``, ``age``, ...).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medrival.core.errors import DataError
from medrival.core.types import DatasetInfo, TaskKind, check_modality

SPLITS: tuple[str, ...] = ("train", "val", "test")
LABEL_PREFIX = "label:"
ARRAY_PREFIX = "array:"


def label_column(class_name: str) -> str:
    return f"{LABEL_PREFIX}{class_name}"


def array_ref(file_name: str, key: str, row: int) -> str:
    return f"{ARRAY_PREFIX}{file_name}#{key}[{row}]"


SMALL_CLASS = 2  # a class with this many examples or fewer in a split is worth a warning


def small_class_warnings(classes: dict[str, dict[str, int]], limit: int = SMALL_CLASS) -> list[str]:
    """One line per (split, class) with ``limit`` examples or fewer, from per-split, per-class counts (as
    :meth:`ReleaseIndex.counts` gives them): such a class is often a label typo, and its metrics are noise."""
    return [f"class {name!r} has {count} example(s) in the {split} split (<= {limit}): a misspelt label, or too few "
            "examples to train or evaluate it; fix the labels or declare the dataset's classes."
            for split, tally in classes.items() for name, count in tally.items() if count <= limit]


def split_class_warnings(splits: dict) -> list[str]:
    """:func:`small_class_warnings` of loaded classification splits (name -> split); empty splits are skipped."""
    counts = {}
    for name, split in splits.items():
        labels = np.asarray(split.labels)
        if len(labels) == 0:
            continue
        tally = labels.sum(axis=0) if split.info.task is TaskKind.MULTILABEL else \
            np.bincount(labels.astype(np.int64), minlength=len(split.info.class_names))
        counts[name] = {c: int(n) for c, n in zip(split.info.class_names, tally)}
    return small_class_warnings(counts)


def undeclared_labels_error(release: str, where: str, values, classes) -> DataError:
    """The error for labels outside the declared ``classes``: each undeclared label with its count and the
    declared classes it most resembles (a typo such as ``pnuemonia`` names ``pneumonia``)."""
    import difflib
    from collections import Counter

    declared = [str(c) for c in classes]
    lowered = {c.lower(): c for c in declared}
    counts = Counter(str(v) for v in values if str(v) not in set(declared))
    parts = []
    for label, count in sorted(counts.items()):
        close = [lowered[c] for c in difflib.get_close_matches(label.lower(), list(lowered), n=2, cutoff=0.6)]
        hint = f", did you mean {' or '.join(map(repr, close))}?" if close else ""
        parts.append(f"{label!r} ({count} example(s){hint})")
    return DataError(f"{release}: {where} holds label(s) that are not among the declared classes {declared}: "
                     f"{'; '.join(parts)}. Correct the misspelt labels in the data, or add a real class to the "
                     "dataset's classes option.")


@dataclass
class ReleaseIndex:
    name: str
    task: TaskKind
    modality: str
    class_names: tuple[str, ...]
    frame: pd.DataFrame
    licence: str
    source: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = TaskKind(self.task)
        self.class_names = tuple(self.class_names)
        check_modality(self.modality)
        if self.task is TaskKind.VQA:
            raise DataError(f"{self.name}: ReleaseIndex is for classification; use VQAReleaseIndex for VQA.")
        if len(self.class_names) < 2 and self.task is not TaskKind.MULTILABEL:
            raise DataError(f"{self.name}: a {self.task.value} task needs at least two classes.")
        missing = [c for c in ("image", "split", *self.label_columns) if c not in self.frame.columns]
        if missing:
            raise DataError(f"{self.name}: index frame lacks column(s) {missing}; a parser bug, please report.")
        bad = sorted(set(self.frame["split"].unique()) - set(SPLITS))
        if bad:
            raise DataError(f"{self.name}: split values {bad} are not among {SPLITS}.")
        self._check_labels()

    def _check_labels(self) -> None:
        if self.task is TaskKind.MULTILABEL:
            values = self.frame[list(self.label_columns)].to_numpy(dtype=float)
            if not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
                raise DataError(f"{self.name}: multilabel columns must hold 0, 1 or NaN.")
            return
        labels = self.frame["label"]
        if labels.isna().any() or not pd.api.types.is_integer_dtype(labels):
            raise DataError(f"{self.name}: the label column must be integer with no missing values.")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(f"{self.name}: labels must lie in 0..{len(self.class_names) - 1} "
                            f"({len(self.class_names)} classes), found {labels.min()}..{labels.max()}.")

    @property
    def label_columns(self) -> tuple[str, ...]:
        if self.task is TaskKind.MULTILABEL:
            return tuple(label_column(c) for c in self.class_names)
        return ("label",)

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (a view-free copy with a fresh 0..n-1 index)."""
        if name not in SPLITS:
            raise DataError(f"{self.name}: unknown split {name!r}; splits are {', '.join(SPLITS)}.")
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def counts(self) -> dict:
        """Per-split example counts and per-split, per-class counts, from the frame alone (no image is opened).

        Multilabel: a class counts its positive rows; ``unlabelled`` counts NaN entries (uncertainty policy
        "ignore") per class where there are any. Every split appears, empty ones with 0, so a missing split or a
        split with a single class is visible in the summary.
        """
        examples = {s: int((self.frame["split"] == s).sum()) for s in SPLITS}
        classes: dict[str, dict[str, int]] = {}
        unlabelled: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            rows = self.frame[self.frame["split"] == split]
            if self.task is TaskKind.MULTILABEL:
                classes[split] = {c: int((rows[label_column(c)] == 1).sum()) for c in self.class_names}
                nan = {c: int(rows[label_column(c)].isna().sum()) for c in self.class_names}
                if any(nan.values()):
                    unlabelled[split] = {c: n for c, n in nan.items() if n}
            else:
                tally = np.bincount(rows["label"].to_numpy(dtype=np.int64), minlength=len(self.class_names))
                classes[split] = {c: int(n) for c, n in zip(self.class_names, tally)}
        result = {"examples": examples, "classes": classes}
        if unlabelled:
            result["unlabelled"] = unlabelled
        return result

    def info(self, description: str = "") -> DatasetInfo:
        """The dataset description the rest of medrival uses (catalog entries, model prompts)."""
        return DatasetInfo(name=self.name, task=self.task, modality=self.modality, class_names=self.class_names,
                           licence=self.licence, description=description, source=self.source)


def grouped_split(groups: pd.Series, fractions: tuple[float, float, float], seed: int) -> pd.Series:
    """Assign train/val/test per group (patient, lesion...), so that no group spans two splits.

    Each group's split comes from a hash of (seed, group id), not from a shuffle of the whole list: a group keeps
    its split when rows are added or removed (a subset CSV, the 2017 vs 2020 NIH metadata), and the same seed
    always gives the same assignment on any machine.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}.")
    unique = pd.Series(groups.astype(str).unique())
    draws = unique.map(lambda g: _unit_hash(f"{seed}:{g}"))
    edges = np.cumsum(fractions)
    names = np.where(draws < edges[0], "train", np.where(draws < edges[1], "val", "test"))
    mapping = dict(zip(unique, names))
    return groups.astype(str).map(mapping)


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64
