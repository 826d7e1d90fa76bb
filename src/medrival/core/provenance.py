"""Provenance recorded with every result: package versions, git commit, platform, seed, time."""
from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_PACKAGES = ("medrival", "torch", "open_clip_torch", "numpy", "scikit-learn", "pandas", "pyarrow", "transformers")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the medrival checkout this code runs from (None for an installed wheel or no git)."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def capture(seed: int) -> dict:
    return {"seed": seed, "packages": package_versions(), "git_commit": git_commit(),
            "python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}
