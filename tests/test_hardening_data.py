"""Fault injection, data side: manifest links leaving the root, label typos, corrupt image bodies, feature-cache
temp files of failed or interrupted writes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medrival.methods.features import FeatureCache


# ------------------------------------------------------------------------------------- feature-cache temp files
def test_a_failed_feature_write_leaves_no_temp_file(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def broken_save(stream, array, allow_pickle=False):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache._write("key", np.zeros((2, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_feature_temp_files_carry_the_pid(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(source, target):
        seen.append(Path(source).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    FeatureCache(tmp_path)._write("key", np.zeros((2, 3), np.float32))
    assert f".{os.getpid()}." in seen[0] and seen[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["key.npy"]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_feature_temp_files_are_removed_when_the_cache_opens(tmp_path):
    dead = tmp_path / f".key.npy.{_dead_pid()}.abcd1234.tmp"
    live = tmp_path / f".other.npy.{os.getpid()}.abcd1234.tmp"  # a writer of this process: kept
    old = tmp_path / ".tmp-x8k2.npy"  # an older version's unnamed temp file, two days old
    for path in (dead, live, old):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    (tmp_path / "done.npy").write_bytes(b"kept")
    FeatureCache(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "done.npy"])


# ------------------------------------------------------------------------------------------- manifest symlinks
from medrival.core.errors import ConfigError, DataError  # noqa: E402
from medrival.data.imageio import decode_image, probe_image  # noqa: E402
from medrival.data.releases.imagefolder import read_imagefolder  # noqa: E402
from medrival.data.releases.manifest import read_manifest  # noqa: E402
from test_releases_manifest import ROWS, _png, write_fixture, write_manifest  # noqa: E402


def _read(root, **options):
    defaults = dict(split_column="split", patient_column="patient", modality="xray", name="my-cxr")
    return read_manifest(root, "manifest.csv", **{**defaults, **options})


def test_a_manifest_image_linked_outside_the_root_is_refused(tmp_path):
    root = write_fixture(tmp_path / "data")
    secret = tmp_path / "secret.png"
    _png(secret, 7)
    (root / "images" / "link.png").symlink_to(secret)
    write_manifest(root, rows=list(ROWS) + [("images/link.png", "normal", "train", "p9", "F", "1")])
    with pytest.raises(DataError, match=r"1 image path\(s\) lead outside the dataset root .*images/link.png -> "
                                        r".*secret.png.*Copy those files into the root or remove the links"):
        _read(root)


def test_a_manifest_folder_linked_outside_the_root_is_refused_even_before_download(tmp_path):
    root = write_fixture(tmp_path / "data")
    (tmp_path / "elsewhere").mkdir()
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    write_manifest(root, rows=list(ROWS) + [("linked/not-yet-here.png", "normal", "train", "p9", "F", "1")])
    with pytest.raises(DataError, match="lead outside the dataset root"):
        _read(root)


def test_a_manifest_link_inside_the_root_is_followed(tmp_path):
    root = write_fixture(tmp_path / "data")
    (root / "images" / "again.png").symlink_to(root / "images" / "p01_a.png")
    write_manifest(root, rows=list(ROWS) + [("images/again.png", "normal", "train", "p9", "F", "1")])
    assert "images/again.png" in set(_read(root).frame["image"])


# ------------------------------------------------------------------------------------------- declared classes
TYPO_ROWS = [*ROWS, ("images/t1.png", "pnuemonia", "train", "p10", "F", "1"),
             ("images/t2.png", "pnuemonia", "test", "p11", "F", "1"), ("images/t3.png", "Normal ", "train", "p12",
                                                                        "F", "1")]


def test_undeclared_labels_are_an_error_naming_counts_and_close_matches(tmp_path):
    write_manifest(tmp_path, rows=[r if r[1] != "Normal " else (*r[:1], "normall", *r[2:]) for r in TYPO_ROWS])
    with pytest.raises(DataError) as caught:
        _read(tmp_path, classes=["normal", "pneumonia"])
    message = str(caught.value)
    assert "'normall' (1 example(s), did you mean 'normal'?)" in message
    assert "'pnuemonia' (2 example(s), did you mean 'pneumonia'?)" in message
    assert "declared classes ['normal', 'pneumonia']" in message
    # without a declaration the typos are classes, as before -- and the check says so
    index = _read(tmp_path)
    assert index.class_names == ("normal", "normall", "pneumonia", "pnuemonia")


def test_declared_classes_keep_their_order_and_reject_bad_declarations(tmp_path):
    write_manifest(tmp_path)
    assert _read(tmp_path, classes=["pneumonia", "normal"]).class_names == ("pneumonia", "normal")
    with pytest.raises(ConfigError, match="both classes and class_names"):
        _read(tmp_path, classes=["normal", "pneumonia"], class_names=["normal", "pneumonia"])
    with pytest.raises(ConfigError, match="distinct class names"):
        _read(tmp_path, classes=["normal", "normal"])


def test_imagefolder_declared_classes(tmp_path):
    for name, count in (("normal", 3), ("pneumonia", 3), ("pnemonia", 2)):
        for i in range(count):
            _png(tmp_path / "data" / name / f"{i}.png", 10 * i)
    with pytest.raises(DataError, match=r"'pnemonia' \(2 example\(s\), did you mean 'pneumonia'\?\)"):
        read_imagefolder(tmp_path / "data", modality="xray", classes=["normal", "pneumonia"])
    (tmp_path / "data" / "pnemonia" / "0.png").unlink()
    (tmp_path / "data" / "pnemonia" / "1.png").unlink()
    (tmp_path / "data" / "pnemonia").rmdir()
    index = read_imagefolder(tmp_path / "data", modality="xray", classes=["pneumonia", "normal"])
    assert index.class_names == ("pneumonia", "normal")
    assert (index.frame["label"] == index.frame["class_name"].map({"pneumonia": 0, "normal": 1})).all()


def test_datasets_check_warns_about_tiny_classes(tmp_path):
    from medrival.data.zoo.api import check_release
    from medrival.data.zoo.custom import register_custom_dataset

    root = write_fixture(tmp_path / "data")
    for row in TYPO_ROWS[len(ROWS):]:
        _png(root / row[0], 3)
    write_manifest(root, rows=TYPO_ROWS)
    register_custom_dataset("hardening-typos", "manifest", root, csv_path="manifest.csv", split_column="split",
                            patient_column="patient", modality="xray")
    summary = check_release("hardening-typos", annotations_only=True)
    assert any("'pnuemonia' has 1 example(s) in the train split" in w for w in summary["warnings"])
    assert any("'Normal' has 1 example(s)" in w for w in summary["warnings"])


# ------------------------------------------------------------------------------------------- corrupt image bodies
def _noise_png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)


def _corrupt_middle(path: Path) -> None:
    """Overwrite bytes in the middle of the pixel data: the header parses and the file ends as a PNG should."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_the_probe_finds_a_file_cut_short_and_a_middle_corruption_is_found_by_decoding(tmp_path):
    cut = tmp_path / "cut.png"
    _noise_png(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    assert "truncated" in probe_image(cut)
    broken = tmp_path / "broken.png"
    _noise_png(broken)
    _corrupt_middle(broken)
    with pytest.raises(Exception):
        decode_image(broken)


def _study(tmp_path: Path, strict: bool) -> Path:
    (tmp_path / "study.yaml").write_text(f"""
models: [demo-specialist-clip]
datasets: [my-cxr-hardening]
methods: [zero_shot]
strict_images: {str(strict).lower()}
custom_datasets:
  my-cxr-hardening: {{format: manifest, root: mine, options: {{csv_path: manifest.csv, split_column: split,
                                                   patient_column: patient, modality: xray}}}}
""")
    return tmp_path / "study.yaml"


def _run(tmp_path: Path, strict: bool):
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    return run_study(load_study(_study(tmp_path, strict)), tmp_path / "out")


def _record(run):
    (record,) = run.store.records()
    return record


@pytest.mark.parametrize("damage", ["cut", "middle"])
def test_a_corrupt_image_body_is_skipped_and_counted(tmp_path, damage):
    root = write_fixture(tmp_path / "mine")
    victim = root / "images" / "p06_a.png"  # a test image
    _noise_png(victim)
    if damage == "cut":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    else:
        _corrupt_middle(victim)
        assert probe_image(victim) is None  # the header probe cannot see it: found when the cell decodes
    record = _record(_run(tmp_path, strict=False))
    assert record.status == "done", record.error
    assert record.cost["skipped_images"]["test"]["unreadable"] == 1
    assert record.cost["skipped_images"]["test"].get("missing", 0) == 0
    assert any("in the val split" in w for w in record.cost["data_warnings"])  # val: one example per class


@pytest.mark.parametrize("damage", ["cut", "middle"])
def test_strict_images_fail_naming_the_corrupt_file(tmp_path, damage):
    root = write_fixture(tmp_path / "mine")
    victim = root / "images" / "p06_a.png"
    _noise_png(victim)
    if damage == "cut":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    else:
        _corrupt_middle(victim)
    record = _record(_run(tmp_path, strict=True))
    assert record.status == "failed" and "images/p06_a.png" in record.error
