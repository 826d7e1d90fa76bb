"""Path and file helpers shared by the release parsers.

Every image path a parser reads from an annotation file goes through :func:`safe_relative`: annotation files are
user-supplied data, and a manifest line such as ``../../home/me/.ssh/id_rsa`` or ``/etc/passwd`` must never make
the data loader read outside the dataset root. The check is lexical (no filesystem access), so indexing a release
whose images are not downloaded yet (``--annotations-only``) still validates its paths.
"""
from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from medrival.core.errors import DataError

# "C:/x", "c:\\x" and "C:x": Windows drive paths are absolute (or drive-relative) on the machine that wrote them.
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relative(root: str | Path, path_text: str, release: str) -> str:
    """``path_text`` as a normalised posix path relative to ``root``; raise if it could leave ``root``.

    Backslashes count as separators (several releases were written on Windows). ``a/./b`` and ``a/x/../b``
    normalise to ``a/b``; anything absolute, empty or climbing above the root is rejected with a ``DataError``.
    """
    if not isinstance(path_text, str) or not path_text.strip():
        raise DataError(f"{release}: empty image path in the annotations under {root}; every row needs a path.")
    text = path_text.strip().replace("\\", "/")
    if "\x00" in text:
        raise DataError(f"{release}: image path {path_text!r} contains a NUL byte; the annotation file is corrupt.")
    if text.startswith("/") or _DRIVE.match(text) or text.startswith("~"):
        raise DataError(
            f"{release}: image path {path_text!r} is absolute; paths in the annotations must be relative to the "
            f"dataset root {root}. Rewrite the manifest with relative paths.")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise DataError(
            f"{release}: image path {path_text!r} escapes the dataset root {root} (it climbs above it with '..'); "
            "only files inside the root may be referenced.")
    return normal


def links_outside(root: str | Path, paths: Iterable[str]) -> dict[str, Path]:
    """Path -> resolved target for every (lexically safe) relative path whose target, once symbolic links are
    followed (the file itself or any folder on the way), lies outside ``root``. Missing files resolve as far as
    they exist, so a linked folder leading outside is found even before its images are downloaded."""
    resolved_root = Path(root).resolve()
    outside: dict[str, Path] = {}
    for path in paths:
        target = (resolved_root / path).resolve()
        if target != resolved_root and resolved_root not in target.parents:
            outside[path] = target
    return outside


def reject_links_outside(root: str | Path, paths: Iterable[str], release: str) -> None:
    """Raise naming the paths (how many, the first few) that lead outside ``root`` through symbolic links: the
    index must not become a way to read arbitrary files (the image-folder reader refuses such links too)."""
    outside = links_outside(root, paths)
    if outside:
        shown = "; ".join(f"{p} -> {t}" for p, t in list(outside.items())[:3])
        raise DataError(f"{release}: {len(outside)} image path(s) lead outside the dataset root {Path(root).resolve()} "
                        f"through symbolic links ({shown}). Copy those files into the root or remove the links.")


def safe_relative_all(root: str | Path, paths: Iterable[str], release: str) -> list[str]:
    """:func:`safe_relative` over many paths (a whole annotation column)."""
    return [safe_relative(root, p, release) for p in paths]


def require_file(root: Path, names: Iterable[str], release: str, what: str = "annotation file") -> Path:
    """The first of ``names`` (relative to ``root``) that exists; the error lists every name that was tried."""
    names = list(names)
    if not Path(root).is_dir():
        raise DataError(f"{release}: dataset root {root} is not a folder; expected it to hold {names[0]}.")
    for name in names:
        candidate = Path(root) / name
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(Path(root) / name) for name in names)
    raise DataError(f"{release}: {what} not found; expected one of: {tried}.")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], file: Path | str, release: str) -> None:
    """Raise naming every missing column (and the columns that were found) of ``file``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise DataError(f"{release}: {Path(file).name} lacks column(s) {', '.join(map(repr, missing))} "
                        f"(found: {found}). Is this the original release file?")


def scan_names(folder: Path) -> set[str]:
    """File names directly inside ``folder`` (empty when absent). Listing names never opens an image."""
    if not folder.is_dir():
        return set()
    # os.scandir reuses the directory entry types: fast for folders of ~100k images (NIH ChestX-ray14).
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def read_annotation_csv(csv: Path, release: str, *, columns: Iterable[str] = (), delimiter: str | None = ",",
                        allow_empty: bool = False, **pandas_options) -> pd.DataFrame:
    """An annotation CSV as text cells (no NaN guessing, BOM tolerated, header names stripped of spaces and
    quotes), with the columns ``columns`` required and, unless ``allow_empty``, at least one row.

    ``delimiter=None`` takes whichever of comma, semicolon or tab the header line holds most of (Dataverse
    ``.tab`` copies, spreadsheet exports with semicolons). Every read error names the file and the release."""
    try:
        if delimiter is None:
            with open(csv, encoding="utf-8-sig") as handle:
                header = handle.readline()
            delimiter = max((",", ";", "\t"), key=header.count)  # ties keep ","
        raw = pd.read_csv(csv, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                          **pandas_options)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as error:  # EOFError: a truncated .gz
        raise DataError(f"{release}: cannot read {csv} as CSV ({error}).") from error
    raw.columns = [str(c).strip().strip('"') for c in raw.columns]
    require_columns(raw, columns, csv, release)
    if raw.empty and not allow_empty:
        raise DataError(f"{release}: {Path(csv).name} has a header but no rows.")
    return raw
