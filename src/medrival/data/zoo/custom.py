"""A user's own data as a named dataset: a CSV manifest, an image-folder tree, or a generic VQA file.

``register_custom_dataset("my-skin", "manifest", root, csv_path="labels.csv", modality="dermoscopy", ...)`` reads
the annotations once (no image is opened) to learn the classes, then registers the dataset so studies, the
feature cache and ``medrival datasets check`` use it exactly like a public release. A study file does the same
with a ``custom_datasets:`` section.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from medrival.core.errors import ConfigError
from medrival.core.registry import suggest
from medrival.core.types import DatasetInfo
from medrival.data.releases.imagefolder import read_imagefolder
from medrival.data.releases.manifest import read_manifest
from medrival.data.releases.vqa_generic import read_generic_vqa
from medrival.data.zoo.entries import ReleaseEntry, make_info

FORMATS: dict[str, Callable[..., Any]] = {"manifest": read_manifest, "imagefolder": read_imagefolder,
                                          "vqa": read_generic_vqa}


def register_custom_dataset(name: str, format: str, root: str | Path, **options: Any) -> DatasetInfo:
    """Register ``root`` (read with the ``format`` reader and ``options``) under ``name``; returns its info.

    Registering the same name again with the same files replaces the entry (re-running a study); a name that a
    built-in dataset already uses is refused."""
    from medrival.data.catalog import DatasetEntry, dataset_registry
    from medrival.data.zoo.api import forget_cached, release_loader
    from medrival.data.zoo.registry import release_registry

    reader = _reader(format)
    existing = release_registry().get(name) if name in release_registry() else None
    if (name in dataset_registry() and existing is None) or (existing is not None and not existing.custom):
        raise ConfigError(f"custom dataset name {name!r} is taken by a built-in dataset; choose another name.")
    root = Path(root).expanduser().resolve()
    read = partial(reader, **{**options, "name": name})
    index = read(root)
    info = make_info(name, index.task if hasattr(index, "task") else "vqa", index.modality,
                     tuple(getattr(index, "class_names", ())), index.licence, f"user data at {root}",
                     f"User dataset ({format}) at {root}.")
    entry = ReleaseEntry(info, str(root), read, obtain=(f"user data: the files under {root}",), custom=True)
    release_registry().register(name, entry, overwrite=True)
    dataset_registry().register(name, DatasetEntry(info, release_loader(name), {}), overwrite=True)
    forget_cached()
    return info


def _reader(format: str) -> Callable[..., Any]:
    if format not in FORMATS:
        close = suggest(format, list(FORMATS))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown custom dataset format {format!r}.{hint} Formats: {', '.join(FORMATS)}.")
    return FORMATS[format]
