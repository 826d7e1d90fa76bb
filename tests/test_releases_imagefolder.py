"""Generic image-folder parser: flat and split layouts, junk files, empty classes and symlinks leaving the root."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrival.core.errors import DataError
from medrival.core.types import TaskKind
from medrival.data.releases.imagefolder import read_imagefolder

# split folder (as users spell it) -> class -> image file names; nested sub-folders and mixed suffix case.
LAYOUT = {
    "train": {"benign": ["b1.png", "b2.jpg", "clinic_a/b3.PNG"], "malignant": ["m1.png", "m2.tif", "m3.bmp"]},
    "Validation": {"benign": ["b4.png", "b5.jpeg"], "malignant": ["m4.png"]},
    "TEST": {"benign": ["b6.png", "b7.png"], "malignant": ["m5.tiff", "m6.png"]},
}


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), shade % 256, dtype=np.uint8)).save(path)


def write_fixture(root: Path) -> Path:
    """``root/{train,Validation,TEST}/{benign,malignant}/`` with 32x24 images in five formats (one in a nested
    folder), plus junk the parser must skip: ``.DS_Store``, a ``._`` resource fork, ``notes.txt``, ``__MACOSX/``
    and a ``.ipynb_checkpoints`` folder. Returns ``root``; read it with ``read_imagefolder(root,
    modality="dermoscopy")``."""
    root = Path(root)
    number = 0
    for split, classes in LAYOUT.items():
        for class_name, names in classes.items():
            for name in names:
                _image(root / split / class_name / name, 25 * number)
                number += 1
            (root / split / class_name / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
            (root / split / class_name / f"._{names[0]}").write_bytes(b"\x00\x05\x16\x07")
            (root / split / class_name / "notes.txt").write_text("scanned 2021\n")
    (root / "__MACOSX" / "train" / "benign").mkdir(parents=True)
    (root / "train" / "benign" / ".ipynb_checkpoints").mkdir()
    _image(root / "train" / "benign" / ".ipynb_checkpoints" / "b1-checkpoint.png", 1)
    return root


def test_split_layout_with_junk(tmp_path):
    index = read_imagefolder(write_fixture(tmp_path / "derm"), modality="dermoscopy")
    assert index.name == "derm" and index.task is TaskKind.BINARY and index.class_names == ("benign", "malignant")
    frame = index.frame.set_index("image")
    assert len(frame) == 13
    assert frame.loc["train/benign/clinic_a/b3.PNG", "label"] == 0
    assert frame.loc["Validation/malignant/m4.png", "split"] == "val"
    assert frame.loc["TEST/malignant/m5.tiff", ("split", "label")].tolist() == ["test", 1]
    assert not frame.index.str.contains(r"\._|notes|checkpoint|MACOSX").any()
    counts = index.counts()
    assert counts["examples"] == {"train": 6, "val": 3, "test": 4}
    assert counts["classes"]["val"] == {"benign": 2, "malignant": 1}
    assert any("Validation -> val" in note for note in index.notes)


def test_flat_class_layout_is_split_per_image(tmp_path):
    for k in range(60):
        _image(tmp_path / ["normal", "cyst", "tumour"][k % 3] / f"img{k:03d}.png", k)
    index = read_imagefolder(tmp_path, modality="mri", name="kidney", seed=2)
    assert index.name == "kidney" and index.task is TaskKind.MULTICLASS
    assert index.class_names == ("cyst", "normal", "tumour")
    assert set(index.frame["split"]) == {"train", "val", "test"}
    again = read_imagefolder(tmp_path, modality="mri", name="kidney", seed=2)
    assert again.frame["split"].tolist() == index.frame["split"].tolist()
    assert any("per image (no patient ids)" in note for note in index.notes)


def test_val_carved_from_train_when_absent(tmp_path):
    for k in range(40):
        _image(tmp_path / "training" / ("a" if k % 2 else "b") / f"{k}.png", k)
    for k in range(4):
        _image(tmp_path / "testing" / ("a" if k % 2 else "b") / f"{k}.png", k)
    index = read_imagefolder(tmp_path, modality="ct", val_fraction=0.25)
    examples = index.counts()["examples"]
    assert examples["test"] == 4 and examples["val"] > 0 and examples["train"] + examples["val"] == 40
    assert any("no val folder" in note for note in index.notes)


def test_dicom_suffix_is_an_image(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            (tmp_path / split / cls / "slice.DCM").write_bytes(b"\x00" * 128 + b"DICM")
    index = read_imagefolder(tmp_path, modality="ct")
    assert sorted(index.frame["image"]) == ["test/a/slice.DCM", "test/b/slice.DCM", "train/a/slice.DCM",
                                            "train/b/slice.DCM"]


def test_empty_class_folder_is_named(tmp_path):
    root = write_fixture(tmp_path)
    (root / "TEST" / "atypical").mkdir()
    (root / "TEST" / "atypical" / "readme.txt").write_text("to do")
    with pytest.raises(DataError, match=r"class folder .*TEST/atypical holds no images"):
        read_imagefolder(root, modality="dermoscopy")


def test_layout_errors(tmp_path):
    root = write_fixture(tmp_path / "a")
    _image(root / "pneumonia" / "x.png", 3)
    with pytest.raises(DataError, match=r"mixes split folders .* with other folders \(pneumonia\)"):
        read_imagefolder(root, modality="xray")
    root = write_fixture(tmp_path / "b")
    _image(root / "training" / "benign" / "x.png", 3)
    with pytest.raises(DataError, match="folders 'train' and 'training' both mean split 'train'"):
        read_imagefolder(root, modality="xray")
    root = tmp_path / "c"
    _image(root / "train" / "a" / "x.png", 1)
    _image(root / "train" / "b" / "y.png", 2)
    with pytest.raises(DataError, match="a train and a test folder are required"):
        read_imagefolder(root, modality="xray")
    _image(tmp_path / "d" / "only" / "x.png", 1)
    with pytest.raises(DataError, match=r"single class folder \['only'\]"):
        read_imagefolder(tmp_path / "d", modality="xray")
    with pytest.raises(DataError, match="is not a folder"):
        read_imagefolder(tmp_path / "missing", modality="xray")


def test_symlinks_leaving_the_root_are_rejected(tmp_path):
    outside = tmp_path / "outside"
    _image(outside / "secret.png", 9)
    root = write_fixture(tmp_path / "data")
    os.symlink(root / "train" / "benign" / "b1.png", root / "train" / "benign" / "b1_copy.png")
    index = read_imagefolder(root, modality="dermoscopy")
    assert "train/benign/b1_copy.png" in set(index.frame["image"])  # a link inside the root is fine
    os.symlink(outside / "secret.png", root / "train" / "malignant" / "leak.png")
    with pytest.raises(DataError, match=r"leak\.png is a symbolic link to .*outside.*secret\.png, outside the "
                                        "dataset root"):
        read_imagefolder(root, modality="dermoscopy")
    (root / "train" / "malignant" / "leak.png").unlink()
    os.symlink(outside, root / "TEST" / "benign" / "more")
    with pytest.raises(DataError, match="more is a symbolic link"):
        read_imagefolder(root, modality="dermoscopy")


def test_link_cycle_inside_the_root_and_options(tmp_path):
    root = write_fixture(tmp_path / "Derm_Set")
    os.symlink(root / "train", root / "train" / "benign" / "loop")  # inside the root, but a cycle
    index = read_imagefolder(root, modality="dermoscopy", licence="CC BY 4.0")
    assert index.name == "derm_set" and index.licence == "CC BY 4.0"
    assert index.frame["image"].is_unique
    assert sum(index.counts()["examples"].values()) == len(index.frame) > 13  # followed once, no endless recursion
