"""The real-release entries of the dataset catalog: what each dataset is, where it lives, how to get it.

An entry's ``info`` (task, classes, modality, licence) is known without the files, so a study can be checked and
``medrival datasets`` can list everything before anything is downloaded; when the files are read, the index must
agree with it (a different class table means a different release, which is an error, not a silent relabelling).
Roots: an explicit root (``--root``, a study's ``data_roots``), else ``$MEDRIVAL_DATA_DIR/<folder>``, else
``~/medrival-data/<folder>``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medrival.core.types import DatasetInfo, TaskKind

DATA_DIR_ENV = "MEDRIVAL_DATA_DIR"

# Zero-shot prompt sentences per modality ("{}" is a class description). Several phrasings are averaged.
MODALITY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "xray": ("a chest x-ray showing {}.", "a radiograph with {}.", "chest radiograph: {}."),
    "ct": ("a CT scan showing {}.", "a computed tomography image of {}."),
    "mri": ("an MRI scan showing {}.", "a magnetic resonance image of {}."),
    "ultrasound": ("an ultrasound image showing {}.", "a sonogram of {}."),
    "dermoscopy": ("a dermoscopy image of {}.", "a skin lesion: {}."),
    "fundus": ("a fundus photograph showing {}.", "a retinal image with {}."),
    "oct": ("an optical coherence tomography scan showing {}.", "a retinal OCT image of {}."),
    "pathology": ("a histopathology image of {}.", "an H&E stained slide showing {}."),
}


@dataclass(frozen=True)
class ReleaseEntry:
    """One registered real dataset (a release, possibly with a fixed task option, e.g. HAM10000-malignant)."""

    info: DatasetInfo
    folder: str  # default folder name under the data directory
    read: Callable[[Path], object]  # root -> ReleaseIndex | VQAReleaseIndex (annotations only; no image decoded)
    obtain: tuple[str, ...]  # exact steps a person follows to get the files
    download: Callable[[Path], None] | None = None  # fetches the files where the host allows it
    custom: bool = False  # registered at run time from the user's own files (manifest, image folder, VQA file)
    # The release this entry is a variant of: same images (and questions), re-split, relabelled or resized. Training
    # exposure follows it (medrival.data.zoo.exposure), so it is declared, never guessed from the name.
    parent: str | None = None
    # Facts about the release a user must know before trusting its split (leakage, clusters), known without the
    # files; `datasets check` prints them before the notes the reader computes from the files.
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_vqa(self) -> bool:
        return self.info.task is TaskKind.VQA


def data_dir() -> Path:
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / "medrival-data"


def resolve_root(entry: ReleaseEntry, root: str | Path | None = None) -> Path:
    """The folder to read ``entry`` from: ``root`` when given, else ``<data dir>/<entry.folder>``."""
    return Path(root).expanduser() if root is not None else data_dir() / entry.folder


def readable_class(name: str) -> str:
    """"Pleural_Thickening" -> "pleural thickening": class names as a prompt would say them."""
    return name.replace("_", " ").replace("-", " ").strip().lower()


def make_info(name: str, task: TaskKind | str, modality: str, classes: tuple[str, ...], licence: str, source: str,
              description: str) -> DatasetInfo:
    """A DatasetInfo with prompt material derived from the class names and the modality's templates."""
    templates = MODALITY_TEMPLATES.get(modality.split(",")[0], ("a medical image showing {}.",))
    descriptions = tuple((readable_class(c),) for c in classes)
    return DatasetInfo(name=name, task=TaskKind(task), modality=modality, class_names=tuple(classes), licence=licence,
                       description=description, source=source, class_descriptions=descriptions,
                       prompt_templates=templates)
