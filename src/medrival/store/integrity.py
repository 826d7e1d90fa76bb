"""Is every finished cell's predictions file still the one that was saved?

A cell's row records the size and sha256 of its predictions file at commit (schema 2). A file that is missing,
has another size or another checksum, or (rows of schema-1 stores, which have no checksum) does not read as
Parquet makes its cell *damaged*: the cell no longer counts as finished, so ``medrival run`` redoes it, and the
readers behind ``report``, ``compare`` and ``export`` refuse the store (``require_intact``) instead of silently
dropping the cell or failing half-way with a traceback.

Hashing is done at most once per file per ``DigestCache`` (one per opened store), keyed by the file's size,
mtime and inode, so a changed file is hashed again; nothing is cached across processes.
"""
from __future__ import annotations

import os
from pathlib import Path

from medrival.core.errors import MedrivalError
from medrival.store.files import file_digest

REDO_COMMAND = "medrival run STUDY.yaml --out {root}"
VERIFY_COMMAND = "medrival verify {root}"
SHOWN = 5  # damaged cells named in an error message; `medrival verify` lists them all


class DamagedStoreError(MedrivalError):
    """A reader was given a store whose finished cells include damaged ones (``damaged``: cell id -> reason)."""

    def __init__(self, message: str, damaged: dict[str, str]):
        super().__init__(message)
        self.damaged = dict(damaged)


class DigestCache:
    """sha256 of files already hashed by this store object, valid while size, mtime and inode are unchanged."""

    def __init__(self) -> None:
        self._known: dict[tuple, str] = {}

    def sha256(self, path: Path, stat: os.stat_result) -> str:
        key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in self._known:
            self._known[key] = file_digest(path).sha256
        return self._known[key]


def _parquet_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable Parquet file (schema-1 rows have no checksum to compare), or None."""
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(path)
    except ImportError:  # pandas may be using fastparquet; reading the whole file is the only check left
        import pandas as pd

        try:
            pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 -- any failure to read is the finding
            return f"unreadable as Parquet ({type(exc).__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001 -- any failure to read is the finding
        return f"unreadable as Parquet ({type(exc).__name__}: {exc})"
    return None


def file_problem(path: Path, size: int | None, sha256: str | None, cache: DigestCache) -> str | None:
    """Why the predictions file at ``path`` is not the one recorded (``size``/``sha256``), or None when it is."""
    try:
        stat = path.stat()
    except OSError:
        return f"missing file: predictions/{path.name} is missing"
    if size is None or sha256 is None:  # a schema-1 row: all we can check is that the file still reads
        return _parquet_problem(path)
    if stat.st_size != size:
        return f"wrong size: predictions/{path.name} has {stat.st_size} bytes, {size} were saved"
    try:
        found = cache.sha256(path, stat)
    except OSError as exc:
        return f"unreadable: predictions/{path.name} ({exc})"
    if found != sha256:
        return f"wrong checksum: predictions/{path.name} changed after it was saved"
    return None


def repair_hint(root: Path | str) -> str:
    """The commands that redo damaged cells and list them, for ``root``."""
    return (f"Redo them with `{REDO_COMMAND.format(root=root)}` (a damaged cell counts as not run, so only "
            f"these cells run again), or list them all with `{VERIFY_COMMAND.format(root=root)}`.")


def damaged_message(root: Path | str, damaged: dict[str, str], shown: int = SHOWN) -> str:
    """One message naming the first ``shown`` damaged cells (id and reason), how many there are, and the fix."""
    ids = sorted(damaged)
    lines = [f"  {cell_id}: {damaged[cell_id]}" for cell_id in ids[:shown]]
    if len(ids) > shown:
        lines.append(f"  ... and {len(ids) - shown} more")
    cells = "1 finished cell" if len(ids) == 1 else f"{len(ids)} finished cells"
    return (f"{cells} in the store {str(root)!r} {'is' if len(ids) == 1 else 'are'} damaged: the predictions "
            f"file no longer matches what was saved, so the results cannot be trusted:\n" + "\n".join(lines)
            + "\n" + repair_hint(root))
