"""Content fingerprints of the data a cell reads, so that changed annotations make new cells (never stale reuse).

A result id must change when the data behind it changes. Three kinds of dataset, three fingerprints:

- a real release or a custom dataset: its parsed annotation index (every column of ``index.frame``: image
  references, labels, splits, patient ids, subgroup attributes, VQA questions and answers) plus its task, modality
  and class table. The parsed index is what a cell reads, so this covers edited annotation files, a changed reader
  option (split seed, uncertainty policy) and a fixed parser alike, while image pixels are never read here and
  moving the dataset folder keeps the id (image references are relative to the root);
- the synthetic demo world: the source of its generator package and the split sizes the catalog renders;
- every dataset: the text a zero-shot or prompt-initialised method builds from it (class names, descriptions,
  sentence templates), see ``prompt_material_fingerprint``.

Digests are sha256 over a canonical byte form (numbers as little-endian int64/float64, text as UTF-8), so they are
the same in every process, platform and pandas version.
"""
from __future__ import annotations

import hashlib
import json
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medrival.core.types import DatasetInfo

DIGEST_CHARS = 16
_SEPARATOR = b"\x1f"  # between the text values of a column: a value holding it is vanishingly rare in annotations
# Parsed indexes already hashed in this process, by object identity (the release reader caches indexes, so the
# same object comes back until the annotations are re-read); the weak reference proves the id was not reused.
_INDEX_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))  # length-prefixed: no two part lists hash alike
        digest.update(part)
    return digest.hexdigest()[:DIGEST_CHARS]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=str).encode()


def _column_bytes(column: pd.Series) -> bytes:
    """A column as canonical bytes: numbers widened to one dtype (int32 on one platform and int64 on another must
    agree), everything else (text, lists, None, NaN in object columns) as its ``str`` joined by a separator."""
    values = column.to_numpy()
    kind = values.dtype.kind
    if kind in "biu":
        return np.ascontiguousarray(values.astype("<i8")).tobytes()
    if kind == "f":
        return np.ascontiguousarray(values.astype("<f8")).tobytes()
    return _SEPARATOR.join(str(value).encode("utf-8", "surrogatepass") for value in values)


def index_fingerprint(index: Any) -> str:
    """Digest of a parsed release index (``ReleaseIndex`` or ``VQAReleaseIndex``): its frame, column by column,
    with the task, modality and class table. Computed once per index object."""
    known = _INDEX_DIGESTS.get(id(index))
    if known is not None and known[0]() is index:
        return known[1]
    task = getattr(index, "task", None)  # a VQA index has no task field: VQA is its task
    header = {"task": "vqa" if task is None else task.value,
              "modality": index.modality, "class_names": list(getattr(index, "class_names", ())),
              "rows": len(index.frame)}
    parts = [_canonical(header)]
    for name in index.frame.columns:
        column = index.frame[name]
        parts += [str(name).encode(), column.dtype.kind.encode(), _column_bytes(column)]
    digest = _digest(*parts)
    _INDEX_DIGESTS[id(index)] = (weakref.ref(index), digest)
    return digest


def prompt_material_fingerprint(info: DatasetInfo) -> str:
    """Digest of what methods build class text from: class names, their descriptions, the sentence templates, and
    the task and modality. The licence, description and source line are documentation and stay out."""
    return _digest(_canonical({"task": info.task.value, "modality": info.modality,
                               "class_names": list(info.class_names),
                               "class_descriptions": [list(d) for d in info.class_descriptions],
                               "prompt_templates": list(info.prompt_templates)}))


@lru_cache(maxsize=1)
def demo_world_fingerprint() -> str:
    """Digest of the synthetic world's generator code and the demo split sizes: the demo datasets have no files,
    they are rendered by this code, so the code is their annotation (and pixel) source. Any edit re-runs the demo
    cells, which take minutes; a hand-bumped version number would be forgotten exactly when it matters."""
    from medrival.data import catalog, world

    folder = Path(world.__file__).parent
    parts = [path.name.encode() + b"\0" + path.read_bytes() for path in sorted(folder.glob("*.py"))]
    sizes = {"classification": catalog.DEMO_SPLIT_SIZES, "vqa": catalog.DEMO_VQA_SPLIT_SIZES,
             "multiple_choice": catalog.DEMO_MC_SPLIT_SIZES}
    return _digest(_canonical(sizes), *parts)
