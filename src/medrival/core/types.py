"""Core data types shared by every layer: task kinds, modalities, examples, dataset splits, cells and results.

Splits hold arrays (not lists of objects) so that a whole split can be encoded in batches and fingerprinted for
the content-addressed feature cache; indexing a split yields the per-example dataclasses. The images of a split
are either one uint8 array (the demo world) or an ``ImageSource`` (real releases: files decoded on demand).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.images import ImageSource
from medrival.core.registry import suggest
from medrival.core.vqa_forms import FORMS, closed_or_open, item_forms


class TaskKind(str, Enum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    VQA = "vqa"


# One controlled vocabulary for imaging modalities; cards and datasets must use these words.
MODALITIES: tuple[str, ...] = (
    "xray", "ct", "mri", "ultrasound", "dermoscopy", "fundus", "oct", "pathology",
    "endoscopy", "mammography", "pet", "natural",
)


def check_modality(name: str) -> str:
    """Return ``name`` if it is a known modality, else raise with close matches."""
    if name in MODALITIES:
        return name
    close = suggest(name, list(MODALITIES))
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise UnknownNameError(f"Unknown modality {name!r}.{hint} Known modalities: {', '.join(MODALITIES)}.")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: its task, classes, modality and licence."""

    name: str
    task: TaskKind
    modality: str
    class_names: tuple[str, ...]
    licence: str
    description: str = ""
    source: str = ""
    synthetic: bool = False
    # Zero-shot prompt material: several phrasings per class and sentence templates with a "{}" slot.
    class_descriptions: tuple[tuple[str, ...], ...] = ()
    prompt_templates: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality words: mixed releases (VQA-RAD: CT, MRI and X-ray) join several with commas."""
        return tuple(word.strip() for word in self.modality.split(","))


@dataclass(frozen=True)
class ClassificationExample:
    image: np.ndarray  # H x W x 3, uint8
    labels: Any  # int for binary/multiclass, 0/1 vector for multilabel
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VQAExample:
    image: np.ndarray
    question: str
    answer: str
    answer_type: str  # "closed" or "open", as the release declares (or as derived from the question)
    meta: dict = field(default_factory=dict)
    form: str = "open"  # yes_no | choice | multiple_choice | open (medrival.core.vqa_forms)
    options: tuple[str, ...] | None = None  # choice: parsed from the question; multiple choice: in letter order


def _hash_arrays(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str(part.dtype).encode() + str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()[:24]


@dataclass
class ClassificationSplit:
    """One split of a classification dataset, held as arrays."""

    info: DatasetInfo
    split: str
    images: np.ndarray | ImageSource  # N x H x W x 3 uint8, or decoded on demand
    labels: np.ndarray  # N (int) or N x L (0/1) for multilabel
    ids: np.ndarray  # N strings, unique per image
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    # A few-shot subset remembers the split it was drawn from and which rows: its features are rows of the
    # parent's cached features, so drawing many subsets never encodes an image twice.
    parent: "ClassificationSplit | None" = field(default=None, repr=False, compare=False)
    parent_indices: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Rows left out when the split was built, by reason ("missing", "unreadable"): reported, never silent.
    skipped: dict[str, int] = field(default_factory=dict, compare=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.images)
        if isinstance(self.images, np.ndarray) and (
                self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8):
            raise DataError(
                f"{self.info.name}/{self.split}: images must be uint8 N x H x W x 3, got "
                f"{self.images.dtype} {self.images.shape}.")
        if len(self.labels) != n or len(self.ids) != n:
            raise DataError(
                f"{self.info.name}/{self.split}: {n} images but {len(self.labels)} labels and "
                f"{len(self.ids)} ids; every image needs one label entry and one id.")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ClassificationExample:
        meta = {"id": str(self.ids[i]), **{k: v[i] for k, v in self.meta.items()}}
        return ClassificationExample(self.image(i), self.labels[i], meta)

    @property
    def lazy(self) -> bool:
        """True when images are decoded on demand (an ``ImageSource``) rather than held as one array."""
        return not isinstance(self.images, np.ndarray)

    def image(self, i: int) -> np.ndarray:
        """Row ``i`` as H x W x 3 uint8 (decoded now for a lazy split)."""
        return self.images.load(int(i)) if self.lazy else self.images[i]

    def subset(self, indices) -> "ClassificationSplit":
        """The rows ``indices`` (in that order) as a split that knows its parent (see ``parent``)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or (len(indices) and (indices.min() < 0 or indices.max() >= len(self))):
            raise DataError(f"{self.info.name}/{self.split}: subset indices must be a 1-D array of rows in "
                            f"0..{len(self) - 1}.")
        root, rows = (self.parent, self.parent_indices[indices]) if self.parent is not None else (self, indices)
        images = self.images.take(indices) if self.lazy else self.images[indices]
        return ClassificationSplit(self.info, self.split, images, self.labels[indices],
                                   self.ids[indices], {k: v[indices] for k, v in self.meta.items()},
                                   parent=root, parent_indices=rows)

    def fingerprint(self) -> str:
        """Content hash of the images alone: the feature-cache key does not depend on labels.

        Hashed once per split object: every cell of a run asks for it, and images are not edited in place."""
        if self._fingerprint is None:
            self._fingerprint = self.images.fingerprint() if self.lazy else _hash_arrays(self.images)
        return self._fingerprint


@dataclass
class VQASplit:
    """One split of a VQA dataset: questions point at images by index (an image has several questions)."""

    info: DatasetInfo
    split: str
    images: np.ndarray | ImageSource  # M x H x W x 3 uint8, or decoded on demand
    image_index: np.ndarray  # N ints into images
    questions: list[str]
    answers: list[str]
    answer_types: list[str]
    ids: np.ndarray  # N question ids
    image_ids: np.ndarray  # M image ids (cluster key for statistics)
    skipped: dict[str, int] = field(default_factory=dict, compare=False)
    # Per question: its form and options (medrival.core.vqa_forms). Give ``options`` as the release's lettered
    # options (None for items without) and leave ``forms`` None: both are then decided from the questions, the
    # declared answer types and those options -- never from the answers.
    forms: list[str] | None = None
    options: list[tuple[str, ...] | None] | None = None

    def __post_init__(self) -> None:
        n = len(self.questions)
        if not (len(self.answers) == len(self.answer_types) == len(self.ids) == len(self.image_index) == n):
            raise DataError(f"{self.info.name}/{self.split}: {n} questions but {len(self.answers)} answers, "
                            f"{len(self.answer_types)} answer types, {len(self.ids)} ids and "
                            f"{len(self.image_index)} image indices; every question needs one of each.")
        if self.options is not None and len(self.options) != n:
            raise DataError(f"{self.info.name}/{self.split}: {len(self.options)} option entries for {n} questions.")
        if self.forms is None:
            self.forms, self.options = item_forms(self.questions, self.answer_types, self.options)
        elif len(self.forms) != n or any(form not in FORMS for form in self.forms):
            raise DataError(f"{self.info.name}/{self.split}: forms must give one of {', '.join(FORMS)} per "
                            "question.")
        elif self.options is None:
            self.options = [None] * n

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, i: int) -> VQAExample:
        img = int(self.image_index[i])
        meta = {"id": str(self.ids[i]), "image_id": str(self.image_ids[img])}
        image = self.images[img] if isinstance(self.images, np.ndarray) else self.images.load(img)
        return VQAExample(image, self.questions[i], self.answers[i], self.answer_types[i], meta, self.forms[i],
                          self.options[i])

    def closed_or_open(self) -> list[str]:
        """The coarse type of each question as asked: "closed" for yes/no, choice and multiple choice."""
        return [closed_or_open(form) for form in self.forms]


@dataclass(frozen=True)
class CellSpec:
    """One unit of work in a study: a model, a dataset, a method with its config, a seed."""

    model: str
    dataset: str
    method: str
    seed: int = 0
    method_config: tuple[tuple[str, Any], ...] = ()
    # Label budget of the training data: ``shots`` examples per class or a ``fraction`` of the training split
    # (neither: all of it), and which seeded ``draw`` of that budget. Draws depend on the dataset and budget
    # only, so every model and method of a study sees the same subsets (paired comparisons).
    shots: int | None = None
    fraction: float | None = None
    draw: int = 0
    subsample_val: bool = False  # validation gets the same budget as training ("matched" few-shot protocol)
    weights: str | None = None  # a local weights folder overriding the model card's source
    # The model's resolved precision when it is not plain fp32 ((("dtype", "bf16"),) or with ("quantization",
    # "4bit")): it changes numbers, so it is part of the id; None (fp32) leaves ids of older stores unchanged.
    precision: tuple[tuple[str, Any], ...] | None = None
    # Where a transformers model's weights go (device_map, max_memory as canonical JSON): not part of the id.
    placement: str | None = None
    judge: tuple[tuple[str, Any], ...] | None = None  # VQA cells: the LLM judge of open answers, when the study has one
    # VQA cells: the versions of the rules that give their numbers meaning (prompts, forms, normalisation,
    # extraction), and the answer extractor of undecided closed answers when the study has one.
    vqa_rules: tuple[tuple[str, Any], ...] | None = None
    extractor: tuple[tuple[str, Any], ...] | None = None
    # The arm's name within its method when a study runs one method with several configs (a sweep): set from the
    # method entry's ``label:`` or derived from its non-default options; None for a method listed once.
    label: str | None = None
    # What the result reads besides this spec (dataset annotations and prompt material, model files and source,
    # prompt texts), as fingerprints set by the planner (``medrival.study.fingerprints``); part of the id when set.
    inputs: tuple[tuple[str, Any], ...] | None = None

    def config_dict(self) -> dict[str, Any]:
        return dict(self.method_config)

    @property
    def budget(self) -> str:
        """"full", "16-shot" or "10%": a short label for tables and plots."""
        if self.shots is not None:
            return f"{self.shots}-shot"
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        return "full"
