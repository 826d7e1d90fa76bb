"""Label budgets: K examples per class or a fraction of a split, drawn reproducibly.

A draw depends only on the split's dataset and name, the budget and the draw number, never on the model or the
method, so every model and method of a study trains on exactly the same subset (the comparison stays paired).
Fractions are stratified by class and keep at least one example of every class present in the split.
"""
from __future__ import annotations

import hashlib

import numpy as np

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import ClassificationSplit

SHOT_CHOICES = (1, 2, 4, 8, 16)


def _rng(split: ClassificationSplit, budget: str, draw: int) -> np.random.Generator:
    text = f"{split.info.name}|{split.split}|{budget}|{draw}"
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _class_rows(labels: np.ndarray) -> dict[int, np.ndarray]:
    if labels.ndim != 1:
        raise DataError("few-shot budgets need one class label per example; multilabel splits are not supported "
                        "(use fractions of the full split instead of shots, or the whole split).")
    return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}


def draw_shots(split: ClassificationSplit, shots: int, draw: int = 0) -> ClassificationSplit:
    """``shots`` examples of each class (all of a class when it has fewer), as a subset of ``split``."""
    if not isinstance(shots, int) or shots < 1:
        raise ConfigError(f"shots must be a positive number of examples per class, got {shots!r}.")
    rng = _rng(split, f"shots={shots}", draw)
    chosen = [rng.choice(rows, size=min(shots, len(rows)), replace=False)
              for _, rows in sorted(_class_rows(split.labels).items())]
    return split.subset(np.sort(np.concatenate(chosen)))


def draw_fraction(split: ClassificationSplit, fraction: float, draw: int = 0) -> ClassificationSplit:
    """A class-stratified ``fraction`` of ``split`` (at least one example per class); 1.0 is the whole split."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}; write 10 % as 0.1.")
    if fraction == 1:
        return split
    rng = _rng(split, f"fraction={fraction!r}", draw)
    chosen = []
    for _, rows in sorted(_class_rows(split.labels).items()):
        count = max(1, int(round(fraction * len(rows))))
        chosen.append(rng.choice(rows, size=count, replace=False))
    return split.subset(np.sort(np.concatenate(chosen)))


def apply_budget(split: ClassificationSplit, shots: int | None, fraction: float | None,
                 draw: int) -> ClassificationSplit:
    """The split under a cell's label budget (the split itself when the cell has none)."""
    if shots is not None:
        return draw_shots(split, shots, draw)
    if fraction is not None:
        return draw_fraction(split, fraction, draw)
    return split


def shots_warnings(split: ClassificationSplit, shots: int | None) -> list[str]:
    """A warning when ``shots`` exceeds a class's count in ``split``: that class is used whole, so the cell's
    budget label overstates what it trained on."""
    if shots is None or np.asarray(split.labels).ndim != 1 or len(split) == 0:
        return []
    counts = {int(c): int(n) for c, n in zip(*np.unique(split.labels, return_counts=True))}
    smallest = min(counts, key=counts.get)
    if shots <= counts[smallest]:
        return []
    return [f"shots={shots} exceeds the {counts[smallest]} {split.split} example(s) of class "
            f"{split.info.class_names[smallest]!r}: classes with fewer examples are used whole"]
