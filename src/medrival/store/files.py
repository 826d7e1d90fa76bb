"""Predictions files of the results store: safe names, atomic writes and copies, digests, stale temp files.

Every file is written to a temporary name in its final directory and ``os.replace``d into place, so a reader (or
a crash) never sees half a file; the digest (size + sha256) is taken from the bytes on disk after the write, so it
describes exactly what a later reader will find.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TMP_SUFFIX = ".tmp"
STALE_TMP_S = 24 * 3600  # a temp file this old is garbage even if its pid was reused by another process
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]{0,150}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What a predictions file must still be for its cell to count as finished."""

    size: int
    sha256: str


def file_stem(cell_id: str) -> str:
    """A file-system-safe, unique stem for a cell id: the id itself when it is safe, else a cleaned id + hash."""
    if _SAFE_NAME.match(cell_id) and not cell_id.endswith(TMP_SUFFIX):
        return cell_id
    cleaned = re.sub(r"[^A-Za-z0-9._=+-]", "_", cell_id)[:100].lstrip(".") or "cell"
    return f"{cleaned}-{hashlib.sha256(cell_id.encode()).hexdigest()[:12]}"


def file_digest(path: Path) -> FileDigest:
    """Size and sha256 of the file at ``path`` (read in 1 MiB chunks: predictions files can be large)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(size, digest.hexdigest())


def pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would send CTRL_C on Windows; rely on the age rule there
        return True
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def clean_temp_files(directory: Path) -> list[Path]:
    """Remove temp files left by killed writers (dead pid, or older than a day). Returns what was removed."""
    removed = []
    for path in directory.glob(f".*{TMP_SUFFIX}"):
        parts = path.name[: -len(TMP_SUFFIX)].rsplit(".", 2)  # ".<stem>", "<pid>", "<token>"
        try:
            pid = int(parts[1]) if len(parts) == 3 else -1
            age = time.time() - path.stat().st_mtime
            if pid < 0 or not pid_alive(pid) or age > STALE_TMP_S:
                path.unlink()
                removed.append(path)
        except (OSError, ValueError):
            continue  # vanished meanwhile, or not ours: leave it
    return removed


def _temp_name(target: Path) -> Path:
    # The pid lets clean_temp_files tell a dead writer's leftovers from a live one's file in progress.
    return target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def _publish(tmp: Path, target: Path) -> FileDigest:
    """fsync ``tmp``, digest the bytes on disk, then rename it onto ``target`` (atomic)."""
    with open(tmp, "rb") as fh:  # flush to disk so the rename never exposes an empty file after power loss
        os.fsync(fh.fileno())
    digest = file_digest(tmp)
    os.replace(tmp, target)
    return digest


def atomic_write_parquet(frame: pd.DataFrame, target: Path) -> FileDigest:
    """Write ``frame`` to ``target`` via a temp file + ``os.replace``; on any error no partial file remains."""
    tmp = _temp_name(target)
    try:
        frame.to_parquet(tmp)
        return _publish(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_copy(source: Path, target: Path, expected: FileDigest) -> FileDigest:
    """Copy ``source`` onto ``target`` atomically; raises ``OSError`` when the copy's bytes differ from
    ``expected`` (the source changed after it was verified, or the copy was damaged on the way)."""
    tmp = _temp_name(target)
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        digest = file_digest(tmp)
        if digest != expected:
            raise OSError(f"copy of {str(source)!r} has sha256 {digest.sha256[:12]}… ({digest.size} bytes), "
                          f"expected {expected.sha256[:12]}… ({expected.size} bytes)")
        os.replace(tmp, target)
        return digest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
