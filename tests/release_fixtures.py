"""One small fixture per registered real release, in that release's exact format, for the registry-wide contract
test: annotation files written by each parser's own test module, then a real decodable image for every file the
index references (each test module writes annotations with placeholder bytes where images are not decoded)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from medrival.data.releases.medmnist_info import INFO
from medrival.data.zoo.registry import release_registry

Writer = Callable[[Path], Path]
_SUFFIX_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> None:
    """A small random image in the format of ``path``'s suffix (greyscale for PNG, colour otherwise)."""
    rng = np.random.default_rng(seed)
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower(), "JPEG")
    shape = (size[1], size[0]) if fmt == "PNG" else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, format=fmt)


def materialise_images(name: str, root: Path) -> Path:
    """Write a decodable image at every plain file path the release index of ``name`` references."""
    index = release_registry().get(name).read(root)
    for seed, reference in enumerate(sorted(set(map(str, index.frame["image"])))):
        if ":" not in reference.split("/")[0]:  # array:/parquet: references live inside their container files
            write_image(root / reference, seed)
    return root


def _medmnist(flag: str, size: int) -> Writer:
    def write(root: Path) -> Path:
        from test_releases_medmnist import write_npz

        table = INFO[flag]
        name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
        root.mkdir(parents=True, exist_ok=True)
        multilabel = len(table["label"]) if table["task"].startswith("multi-label") else 0
        write_npz(root / name, sizes=(8, 4, 6), size=size, rgb=table["n_channels"] == 3,
                  classes=len(table["label"]), multilabel=multilabel)
        return root
    return write


def _annotations(module: str, function: str, **kwargs) -> Writer:
    def write(root: Path) -> Path:
        writer = getattr(__import__(module), function)
        result = writer(root, **kwargs)
        return Path(result) if result is not None else root
    return write


def _chexpert(root: Path) -> Path:
    from test_releases_chexpert import write_release

    write_release(root / "CheXpert-v1.0-small")
    return root


ANNOTATION_WRITERS: dict[str, Writer] = {
    "nih-chestxray14": _annotations("test_releases_nih", "write_release"),
    "chexpert": _chexpert, "chexpert-uones": _chexpert,
    "ham10000": _annotations("test_releases_ham10000", "write_release"),
    "ham10000-malignant": _annotations("test_releases_ham10000", "write_release"),
    "camelyon17-wilds": _annotations("test_releases_camelyon17", "write_release"),
    "vqa-rad": _annotations("test_releases_vqa_rad", "write_vqa_rad"),
    "vqa-rad-image-disjoint": _annotations("test_releases_vqa_rad", "write_vqa_rad"),
    "slake": _annotations("test_releases_slake", "write_slake"),
    "pathvqa": _annotations("test_releases_pathvqa", "write_pickles"),
    "pmc-vqa": _annotations("test_releases_pmcvqa", "write_pmcvqa_fixture"),
    "pmc-vqa-clean": _annotations("test_releases_pmcvqa", "write_pmcvqa_fixture"),
    "pmc-vqa-v2": _annotations("test_releases_pmcvqa", "write_pmcvqa_fixture"),
    "omnimedvqa": _annotations("test_releases_omnimedvqa", "write_omnimedvqa_fixture"),
    "medxpertqa-mm": _annotations("test_releases_medxpertqa", "write_medxpertqa_fixture"),
    "papila": _annotations("test_releases_papila", "write_fixture"),
    "papila-suspects-as-glaucoma": _annotations("test_releases_papila", "write_fixture"),
    "papila-3class": _annotations("test_releases_papila", "write_fixture"),
    "kermany-cxr": _annotations("test_releases_kermany", "write_kermany_cxr_fixture"),
    "kermany-cxr-3class": _annotations("test_releases_kermany", "write_kermany_cxr_fixture"),
    "kermany-oct": _annotations("test_releases_kermany", "write_kermany_oct_fixture"),
    "fairvlmed": _annotations("test_releases_fairvlmed", "write_fairvlmed_fixture"),
    "harvard-gf": _annotations("test_releases_fairvlmed", "write_harvard_gf_fixture"),
}
for _flag in INFO:
    for _size in (28, 64, 128, 224):
        ANNOTATION_WRITERS[_flag if _size == 28 else f"{_flag}_{_size}"] = _medmnist(_flag, _size)


def write_fixture(name: str, root: Path) -> Path:
    """The whole fixture of release ``name`` under ``root``; returns the dataset root to read it from."""
    dataset_root = ANNOTATION_WRITERS[name](root)
    return materialise_images(name, dataset_root)
