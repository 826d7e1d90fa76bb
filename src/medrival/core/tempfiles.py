"""Temp files for atomic writes, named after the writing process so that leftovers of killed writers can be told
from files still being written, and removed.

A temp file for ``target`` is ``.<target name>.<pid>.<token>.tmp`` beside it. :func:`remove_stale_temp_files`
removes those whose pid is no longer alive, or that are older than a day (a pid may be reused); a file whose name
carries no pid is removed by the age rule only.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

TEMP_SUFFIX = ".tmp"
STALE_AFTER_S = 24 * 3600


def temp_path_for(target: Path) -> Path:
    """A fresh temp-file path beside ``target`` carrying this process's pid."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (True when it cannot be told: off POSIX, or owned by another user)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _pid_of(name: str) -> int | None:
    parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 2) if name.endswith(TEMP_SUFFIX) else []
    try:
        return int(parts[1]) if len(parts) == 3 else None
    except ValueError:
        return None


def remove_stale_temp_files(directory: Path, patterns: tuple[str, ...] = (f".*{TEMP_SUFFIX}",),
                            max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temp files in ``directory`` matching ``patterns`` left by dead writers or older than ``max_age_s``;
    returns what was removed. Never raises for a file that vanished or cannot be removed."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    now = time.time()
    for pattern in patterns:
        for path in directory.glob(pattern):
            pid = _pid_of(path.name)
            try:
                if (pid is not None and not pid_alive(pid)) or now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return removed
