"""MedMNIST npz parser: fixtures in the official layout, plus the real PneumoniaMNIST sample when present."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import label_column
from medrival.data.releases.medmnist import FLAGS, MODALITY, read_medmnist
from medrival.data.releases.medmnist_info import INFO

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "medmnist"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real/medmnist")


def write_npz(path, sizes=(6, 2, 3), size=28, rgb=False, classes=2, multilabel=0, flat=False, compressed=True,
              seed=0):
    """An npz with the official keys, dtypes and shapes (labels (N,1), or (N,L) 0/1 when multilabel)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if multilabel:
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, multilabel)).astype(np.uint8)
        else:
            labels = (np.arange(n) % classes).astype(np.uint8)
            arrays[f"{split}_labels"] = labels if flat else labels[:, None]
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


def test_twelve_2d_flags_with_modalities():
    assert len(FLAGS) == 12 and set(FLAGS) == set(MODALITY)
    assert not any(flag.endswith("3d") for flag in FLAGS)


def test_binary_flag_28_indexes_labels_and_array_refs(tmp_path):
    arrays = write_npz(tmp_path / "breastmnist.npz")
    index = read_medmnist(tmp_path, "breastmnist")
    assert index.task is TaskKind.BINARY and index.modality == "ultrasound"
    assert index.class_names == ("malignant", "normal, benign")  # a class name holding a comma
    assert index.frame["image"].iloc[0] == "array:breastmnist.npz#train_images[0]"
    assert index.frame["image"].iloc[-1] == "array:breastmnist.npz#test_images[2]"
    assert index.frame["label"].tolist() == np.concatenate(
        [arrays[f"{s}_labels"][:, 0] for s in ("train", "val", "test")]).tolist()
    counts = index.counts()
    assert counts["examples"] == {"train": 6, "val": 2, "test": 3}
    assert counts["classes"]["train"] == {"malignant": 3, "normal, benign": 3}
    assert index.licence == "CC BY 4.0" and any("differ from the official" in n for n in index.notes)


def test_rgb_size_224_file_name(tmp_path):
    write_npz(tmp_path / "pathmnist_224.npz", size=224, rgb=True, classes=9, compressed=False, sizes=(2, 1, 1))
    index = read_medmnist(tmp_path, "pathmnist", size=224)
    assert index.name == "pathmnist_224" and index.task is TaskKind.MULTICLASS and len(index.class_names) == 9
    assert index.frame["image"].iloc[0] == "array:pathmnist_224.npz#train_images[0]"
    with pytest.raises(DataError, match="pathmnist_64.npz"):
        read_medmnist(tmp_path, "pathmnist", size=64)


def test_chestmnist_multilabel(tmp_path):
    arrays = write_npz(tmp_path / "chestmnist_64.npz", size=64, multilabel=14)
    index = read_medmnist(tmp_path, "chestmnist", size=64)
    assert index.task is TaskKind.MULTILABEL and len(index.class_names) == 14
    column = label_column(index.class_names[0])
    assert index.split("val")[column].tolist() == arrays["val_labels"][:, 0].astype(float).tolist()
    assert index.counts()["classes"]["test"][index.class_names[13]] == int(arrays["test_labels"][:, 13].sum())


def test_ordinal_retinamnist_and_flat_labels_accepted(tmp_path):
    write_npz(tmp_path / "retinamnist.npz", rgb=True, classes=5, flat=True)
    index = read_medmnist(tmp_path, "RetinaMNIST")
    assert index.task is TaskKind.MULTICLASS and index.modality == "fundus"
    assert any("ordinal" in note for note in index.notes)


def test_indexing_reads_no_image_array(tmp_path, monkeypatch):
    write_npz(tmp_path / "octmnist.npz", classes=4)
    loaded = []
    original = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__",
                        lambda self, key: loaded.append(key) or original(self, key))
    read_medmnist(tmp_path, "octmnist")
    assert loaded and all(key.endswith("_labels") for key in loaded)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(train_labels=np.full((6, 1), 7, np.uint8)), "0..1"),
    (lambda a: a.pop("val_labels"), "val_labels"),
    (lambda a: a.pop("test_images"), "test_images"),
    (lambda a: a.update(train_images=a["train_images"].astype(np.float32)), "uint8"),
    (lambda a: a.update(train_labels=np.zeros((5, 1), np.uint8)), "6 train_images but 5"),
    (lambda a: a.update(train_labels=np.zeros((6, 2), np.uint8)), r"\(N,1\)"),
    (lambda a: a.update(val_labels=np.array([[1], [None]], dtype=object)), "plain numeric"),
])
def test_malformed_files_raise_naming_the_key(tmp_path, mutate, message):
    arrays = write_npz(tmp_path / "x.npz")
    mutate(arrays)
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    with pytest.raises(DataError, match=message):
        read_medmnist(tmp_path, "pneumoniamnist")


def test_wrong_size_unknown_flag_missing_file_and_not_a_zip(tmp_path):
    write_npz(tmp_path / "dermamnist_128.npz", size=64, rgb=True, classes=7)
    with pytest.raises(DataError, match="64x64.*size=64"):
        read_medmnist(tmp_path, "dermamnist", size=128)
    with pytest.raises(ConfigError, match="organmnist3d|flags"):
        read_medmnist(tmp_path, "organmnist3d")
    with pytest.raises(ConfigError, match="size 32"):
        read_medmnist(tmp_path, "dermamnist", size=32)
    with pytest.raises(DataError, match="bloodmnist.npz or bloodmnist_28.npz not found"):
        read_medmnist(tmp_path, "bloodmnist")
    (tmp_path / "bloodmnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable npz"):
        read_medmnist(tmp_path, "bloodmnist")


def test_info_table_from_json_path(tmp_path):
    import json
    write_npz(tmp_path / "pneumoniamnist.npz")
    table = {"pneumoniamnist": {**INFO["pneumoniamnist"], "label": {"0": "healthy", "1": "sick"}}}
    (tmp_path / "info.json").write_text(json.dumps(table))
    assert read_medmnist(tmp_path, "pneumoniamnist", info_path=tmp_path / "info.json").class_names == \
        ("healthy", "sick")
    (tmp_path / "bad.json").write_text(json.dumps({"other": {}}))
    with pytest.raises(DataError, match="no INFO entry"):
        read_medmnist(tmp_path, "pneumoniamnist", info_path=tmp_path / "bad.json")


def test_shipped_table_matches_the_real_info_json():
    path = REAL / "medmnist_INFO_v3.0.2.json"
    if not path.is_file():
        pytest.skip("real MedMNIST INFO table absent")
    import json
    real = json.loads(path.read_text())
    for flag, entry in INFO.items():
        assert {k: real[flag][k] for k in entry} == entry


def test_real_pneumoniamnist_sample():
    if not (REAL / "pneumoniamnist.npz").is_file():
        pytest.skip("real PneumoniaMNIST sample absent")
    index = read_medmnist(REAL, "pneumoniamnist", info_path=REAL / "medmnist_INFO_v3.0.2.json")
    counts = index.counts()
    # Documented in SOURCE.md: a class-balanced copy, 2,428 / 270 / 468, each split 50/50.
    assert counts["examples"] == {"train": 2428, "val": 270, "test": 468}
    assert counts["classes"]["val"] == {"normal": 135, "pneumonia": 135}
    assert index.class_names == ("normal", "pneumonia") and index.modality == "xray"
    with np.load(REAL / "pneumoniamnist.npz", allow_pickle=False) as archive:
        assert index.split("test")["label"].tolist() == archive["test_labels"][:, 0].tolist()
