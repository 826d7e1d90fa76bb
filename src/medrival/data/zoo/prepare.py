"""``prepare``: download a release where its host allows it, else say exactly how to obtain it."""
from __future__ import annotations

from pathlib import Path

from medrival.data.zoo.api import is_available, read_release
from medrival.data.zoo.entries import resolve_root
from medrival.data.zoo.registry import release_registry


def obtain_steps(name: str, root: Path) -> list[str]:
    entry = release_registry().get(name)
    return [f"  {i}. {step.replace('<root>', str(root)).replace('<data dir>', str(root.parent))}"
            for i, step in enumerate(entry.obtain, 1)]


def prepare_release(name: str, root: str | Path | None = None) -> list[str]:
    """Lines to show the user: what was found or downloaded, or the steps to follow."""
    entry = release_registry().get(name)
    resolved = resolve_root(entry, root)
    if is_available(name, resolved):
        return [f"{name}: already here at {resolved}. Check the images with: medrival datasets check {name} "
                f"--root {resolved}"]
    if entry.download is None:
        return [f"{name} cannot be downloaded automatically ({entry.info.licence}). To obtain it:",
                *obtain_steps(name, resolved),
                f"Then run: medrival datasets check {name} --root {resolved}"]
    entry.download(resolved)
    index = read_release(name, resolved)
    total = sum(index.counts().get("examples", index.counts().get("questions", {})).values())
    return [f"{name}: downloaded to {resolved} ({total} entries indexed).",
            f"Check the images with: medrival datasets check {name} --root {resolved}"]
