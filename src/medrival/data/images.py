"""Lazily decoded images of a real release: :class:`FileImageSource` and its parallel data loader.

A source holds the dataset root and one reference per row, as the release index wrote it: a posix path relative
to the root (PNG, JPEG, TIFF, DICOM...), ``array:<file>#<key>[<row>]`` (one image of an npz array: MedMNIST) or
``array:<file>#<key>`` (an npz whose array is the image: FairVLMed). Nothing is decoded until a batch is asked
for. File rows are decoded by a torch ``DataLoader`` with worker processes (decoding and resampling are CPU-bound;
processes scale where threads share one interpreter lock), each image brought to the model's square input by
:func:`medrival.data.imageio.fit_geometry`. Array rows are sliced in the calling process from the array loaded once
per source family (an npz member is compressed, so per-row access in workers would decompress it again and again).
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from medrival.core.errors import DataError
from medrival.core.images import ImageGeometry
from medrival.data.imageio import ImageDecodeError, array_to_rgb_uint8, decode_image, fit_geometry
from medrival.data.releases.paths import safe_relative

ARRAY_PREFIX = "array:"
PARQUET_PREFIX = "parquet:"  # parquet:<file>#<row>: encoded image bytes in the ``image`` column (HF layout)
_ARRAY_REF = re.compile(r"^array:(?P<file>[^#]+)#(?P<key>[^\[\]]+)(?:\[(?P<row>\d+)\])?$")


@dataclass(frozen=True)
class ArrayRef:
    file: str
    key: str
    row: int | None


def parse_array_ref(reference: str) -> ArrayRef:
    match = _ARRAY_REF.match(reference)
    if match is None:
        raise DataError(f"malformed array reference {reference!r}; expected 'array:<file>#<key>' or "
                        "'array:<file>#<key>[<row>]'.")
    row = match.group("row")
    return ArrayRef(match.group("file"), match.group("key"), None if row is None else int(row))


class _ArrayStore:
    """npz arrays loaded once and shared by a source and every subset taken from it (thread-safe)."""

    def __init__(self, root: Path):
        self.root = root
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def array(self, file: str, key: str) -> np.ndarray:
        with self._lock:
            if (file, key) not in self._arrays:
                self._arrays[(file, key)] = _read_npz_member(self.root / file, key)
            return self._arrays[(file, key)]

    def image(self, ref: ArrayRef, name: str) -> np.ndarray:
        if ref.row is None:  # one image per file: no point keeping it
            return array_to_rgb_uint8(_read_npz_member(self.root / ref.file, ref.key), name=name)
        array = self.array(ref.file, ref.key)
        if ref.row >= len(array):
            raise ImageDecodeError(f"{name}: row {ref.row} is past the end of {ref.file}:{ref.key} "
                                   f"({len(array)} rows).")
        return array_to_rgb_uint8(array[ref.row], name=name)


    def parquet_bytes(self, file: str, row: int, name: str) -> bytes:
        """The encoded bytes of row ``row`` of ``file``'s image column (the column is read once per file)."""
        with self._lock:
            if (file, "") not in self._arrays:
                self._arrays[(file, "")] = _read_parquet_images(self.root / file)
            cells = self._arrays[(file, "")]
        if row >= len(cells) or not cells[row]:
            raise ImageDecodeError(f"{name}: row {row} of {file} has no image bytes ({len(cells)} rows).")
        return cells[row]


def _read_parquet_images(path: Path) -> list:
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path, columns=["image"]).column("image").to_pylist()
    except (OSError, KeyError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot read its 'image' column ({error}).") from error
    return [cell.get("bytes") if isinstance(cell, dict) else cell for cell in column]


def _read_npz_member(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise ImageDecodeError(f"{path}: no array {key!r} (found: {', '.join(archive.files)}).")
            return np.asarray(archive[key])
    except ImageDecodeError:
        raise
    except (OSError, ValueError) as error:  # ValueError: pickled object arrays are refused, never loaded
        raise ImageDecodeError(f"{path}: cannot read array {key!r} ({error}).") from error


@dataclass
class FileImageSource:
    """Images of one split as references under ``root`` (see the module docstring); row i = split row i."""

    root: Path
    references: np.ndarray  # str per row
    _store: _ArrayStore | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.references = np.asarray(self.references, dtype=object)
        if self._store is None:
            self._store = _ArrayStore(self.root)

    def __len__(self) -> int:
        return len(self.references)

    def take(self, rows: Sequence[int] | np.ndarray) -> "FileImageSource":
        return FileImageSource(self.root, self.references[np.asarray(rows, dtype=np.int64)], self._store)

    def identities(self) -> list[str]:
        return [str(r) for r in self.references]

    def fingerprint(self) -> str:
        """Hash of every reference with its file's size and modification time: no pixel is read, yet a file
        replaced by another image invalidates cached features."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            stats: dict[str, str] = {}
            for reference in self.references:
                file = file_of(str(reference))
                if file not in stats:
                    stats[file] = _stat_text(self.root / file)
                digest.update(f"{reference}\0{stats[file]}\n".encode())
            self._fingerprint = digest.hexdigest()[:24]
        return self._fingerprint

    def load(self, row: int) -> np.ndarray:
        return decode_reference(self.root, str(self.references[row]), self._store)

    def batches(self, geometry: ImageGeometry, batch_size: int = 64, workers: int | None = None
                ) -> Iterator[np.ndarray]:
        from medrival.data.loader import iterate_batches

        return iterate_batches(self, geometry, batch_size, default_workers() if workers is None else workers)

    def path_of(self, row: int) -> Path:
        return self.root / file_of(str(self.references[row]))


def decode_reference(root: Path, reference: str, store: _ArrayStore | None = None) -> np.ndarray:
    """One referenced image as H x W x 3 uint8 (ImageDecodeError naming the file when it cannot be read).

    The file part of every reference is checked lexically against the root first: an index built from a user's
    manifest must not make the loader open ``array:/etc/x.npz#k`` or ``../outside.png``."""
    safe_relative(root, file_of(reference), "image reference")
    if reference.startswith(ARRAY_PREFIX):
        return (store or _ArrayStore(root)).image(parse_array_ref(reference), reference)
    if reference.startswith(PARQUET_PREFIX):
        file, row = reference[len(PARQUET_PREFIX):].rsplit("#", 1)
        return decode_image((store or _ArrayStore(root)).parquet_bytes(file, int(row), reference), name=reference)
    return decode_image(root / reference, name=reference)


def load_fitted(source: FileImageSource, row: int, geometry: ImageGeometry) -> np.ndarray:
    return fit_geometry(source.load(row), geometry)


def file_of(reference: str) -> str:
    if reference.startswith(ARRAY_PREFIX):
        return parse_array_ref(reference).file
    if reference.startswith(PARQUET_PREFIX):
        return reference[len(PARQUET_PREFIX):].rsplit("#", 1)[0]
    return reference


def _stat_text(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def default_workers() -> int:
    """Loader processes: ``$MEDRIVAL_LOADER_WORKERS`` or the usable cores (at most 8)."""
    configured = os.environ.get("MEDRIVAL_LOADER_WORKERS")
    if configured:
        try:
            return max(0, int(configured))
        except ValueError:
            raise DataError(f"MEDRIVAL_LOADER_WORKERS={configured!r} is not a whole number of worker processes "
                            "(use 0 to decode in the main process).") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores))
