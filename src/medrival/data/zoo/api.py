"""Using a registered release: read its index, build a split, check the files, say whether it is here."""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from medrival.core.errors import DataError, MedrivalError
from medrival.core.types import ClassificationSplit, VQASplit
from medrival.data.images import FileImageSource
from medrival.data.loader import scan_decodable
from medrival.data.releases.index import small_class_warnings
from medrival.data.zoo.build import check_index_matches, classification_split, file_problems, vqa_split
from medrival.data.zoo.entries import resolve_root
from medrival.data.zoo.registry import release_registry


def read_release(name: str, root: str | Path | None = None):
    """The release index of ``name`` (annotations only), read once per process for a given root."""
    entry = release_registry().get(name)
    resolved = resolve_root(entry, root).resolve()
    return _read_cached(name, str(resolved))


def forget_cached() -> None:
    """Drop the indexes read so far (a custom dataset was re-registered under a known name)."""
    _read_cached.cache_clear()


@lru_cache(maxsize=16)
def _read_cached(name: str, root: str):
    entry = release_registry().get(name)
    if not Path(root).is_dir():
        raise DataError(f"{name}: dataset folder {root} does not exist. Get the files with "
                        f"`medrival prepare {name}` (or pass --root / set data_roots: to where they are).")
    index = entry.read(Path(root))
    check_index_matches(entry.info, index)
    return index


def load_release_split(name: str, split: str, root: str | Path | None = None, *, strict: bool = False,
                       probe: bool = True) -> ClassificationSplit | VQASplit:
    """One split of a real release; images stay on disk until a model needs them."""
    entry = release_registry().get(name)
    resolved = resolve_root(entry, root).resolve()
    index = _read_cached(name, str(resolved))
    build = vqa_split if entry.is_vqa else classification_split
    return build(entry.info, index, split, resolved, strict=strict, probe=probe)


def release_loader(name: str):
    """The catalog's ``load(split, root=None, strict=False, probe=True)`` for release ``name``."""
    def load(split: str, root=None, strict: bool = False, probe: bool = True):
        return load_release_split(name, split, root, strict=strict, probe=probe)
    return load


def is_available(name: str, root: str | Path | None = None) -> bool:
    """Whether the annotation files of ``name`` are found and parse (images are not looked at)."""
    try:
        read_release(name, root)
    except MedrivalError:
        return False
    return True


def check_release(name: str, root: str | Path | None = None, *, annotations_only: bool = False,
                  strict: bool = False, workers: int | None = None) -> dict:
    """Validate the files of ``name``: counts per split and class (or answer type), and, unless
    ``annotations_only``, missing files and images that fail to decode (every image is decoded, in parallel)."""
    started = time.perf_counter()
    entry = release_registry().get(name)
    resolved = resolve_root(entry, root).resolve()
    index = _read_cached(name, str(resolved))
    summary = {"dataset": name, "root": str(resolved), "task": entry.info.task.value,
               "modality": entry.info.modality, "licence": entry.info.licence, **index.counts(),
               "notes": [*entry.notes, *index.notes]}
    if "classes" in summary:
        summary["warnings"] = small_class_warnings(summary["classes"])
    if entry.is_vqa:
        from medrival.data.zoo.vqa_check import vqa_form_report

        summary["vqa_forms"], notes = vqa_form_report(index, name)
        summary["notes"] += notes
    if not annotations_only:
        summary["files"] = _file_report(index.frame["image"], resolved, workers)
        bad = summary["files"]["missing"] + summary["files"]["unreadable"]
        if strict and bad:
            raise DataError(f"{name}: {bad} image file(s) missing or unreadable under {resolved} (first: "
                            f"{summary['files']['examples'][0]}); see the list above, or drop --strict.")
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _file_report(references, root: Path, workers: int | None) -> dict:
    missing = sorted(file_problems(root, references, headers=False))  # a stat each; decoding finds the rest
    absent = set(missing)
    to_decode = [r for r in dict.fromkeys(map(str, references)) if r not in absent]
    unreadable = scan_decodable(FileImageSource(root, np.asarray(to_decode, dtype=object)), workers)
    examples = [f"{r}: missing" for r in missing[:5]] + [f"{r}: {why}" for r, why in list(unreadable.items())[:5]]
    return {"referenced": int(len(set(map(str, references)))), "missing": len(missing),
            "unreadable": len(unreadable), "decoded": len(to_decode) - len(unreadable), "examples": examples}
