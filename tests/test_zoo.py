"""Real releases used by name: lazy splits, the parallel loader, skipped images, studies on release files, the
``datasets``/``prepare`` commands, and the real PneumoniaMNIST sample end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medrival.core.errors import ConfigError, DataError, UnknownNameError
from medrival.core.images import ImageGeometry
from medrival.core.types import ClassificationSplit
from medrival.data.catalog import dataset_info, load_dataset
from medrival.data.images import FileImageSource
from medrival.data.imageio import decode_image, fit_geometry
from medrival.data.zoo.api import check_release, load_release_split
from medrival.data.zoo.build import classification_split
from medrival.data.zoo.registry import release_registry
from medrival.methods.features import FeatureCache
from medrival.models.factory import create_model
from medrival.study.runner import run_study
from medrival.study.spec import parse_study

from release_fixtures import write_image

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization"
DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def write_ham(root: Path, lesions: int = 60, sizes=((40, 30), (33, 47), (64, 64))) -> Path:
    """HAM10000 layout: metadata CSV + JPEGs of several sizes in both part folders."""
    rows = []
    for lesion in range(lesions):
        image_id = f"ISIC_{lesion:07d}"
        rows.append(f"HAM_{lesion:07d},{image_id},{DX[lesion % 7]},histo,{40 + lesion % 30}.0,male,back")
        folder = "HAM10000_images_part_1" if lesion % 2 else "HAM10000_images_part_2"
        write_image(root / folder / f"{image_id}.jpg", lesion, sizes[lesion % len(sizes)])
    (root / "HAM10000_metadata.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root


@pytest.fixture(scope="module")
def ham_root(tmp_path_factory):
    return write_ham(tmp_path_factory.mktemp("ham"))


def test_real_datasets_are_registered_with_static_facts():
    info = dataset_info("ham10000-malignant")
    assert info.class_names == ("benign", "malignant") and info.modality == "dermoscopy"
    assert dataset_info("vqa-rad").modalities == ("ct", "mri", "xray")
    assert dataset_info("pneumoniamnist").licence == "CC BY 4.0"
    with pytest.raises(UnknownNameError, match="Did you mean 'ham10000'"):
        dataset_info("ham1000")


def test_building_a_split_decodes_no_image(ham_root, monkeypatch):
    import medrival.data.images as images

    monkeypatch.setattr(images, "decode_image", lambda *a, **k: pytest.fail("decoded while indexing"))
    split = load_dataset("ham10000", "train", root=ham_root)
    assert isinstance(split, ClassificationSplit) and split.lazy and len(split) > 20
    assert set(split.meta) >= {"group_id", "age", "sex"}
    assert split.subset([0, 2]).images.identities() == [split.ids[0], split.ids[2]]


def _in_memory(split: ClassificationSplit, geometry: ImageGeometry) -> np.ndarray:
    return np.stack([fit_geometry(decode_image(split.images.root / ref), geometry) for ref in split.ids])


def test_lazy_features_equal_features_of_the_decoded_arrays(ham_root, monkeypatch):
    model = create_model("demo-generalist-clip")
    split = load_dataset("ham10000", "train", root=ham_root)
    expected = model.encode_images(_in_memory(split, model.geometry)).numpy()
    for workers in ("0", "2"):  # in-process and two loader processes give the same rows in the same order
        monkeypatch.setenv("MEDRIVAL_LOADER_WORKERS", workers)
        cache = FeatureCache(None)
        features = cache.image_features(model, split)
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
        assert cache.encoded_images == len(split)


def test_duplicate_references_are_encoded_once(ham_root):
    model = create_model("demo-generalist-clip")
    split = load_dataset("ham10000", "train", root=ham_root)
    doubled = ClassificationSplit(split.info, "train", split.images.take([0, 1, 0, 1, 2]),
                                  split.labels[[0, 1, 0, 1, 2]], split.ids[[0, 1, 0, 1, 2]])
    cache = FeatureCache(None)
    features = cache.image_features(model, doubled)
    assert cache.encoded_images == 3 and np.array_equal(features[0], features[2])


def test_missing_and_unreadable_images_are_skipped_and_counted_or_strict(tmp_path):
    root = write_ham(tmp_path / "ham", lesions=30)
    index = release_registry().get("ham10000").read(root)
    train = index.split("train")["image"].tolist()
    (root / train[0]).unlink()
    (root / train[1]).write_text("this is not a JPEG")
    entry = release_registry().get("ham10000")
    split = classification_split(entry.info, index, "train", root)
    assert split.skipped == {"missing": 1, "unreadable": 1} and len(split) == len(train) - 2
    with pytest.raises(DataError, match="2 image\\(s\\) missing or unreadable") as error:
        classification_split(entry.info, index, "train", root, strict=True)
    assert "medrival datasets check ham10000" in str(error.value)
    summary = check_release("ham10000", root, workers=0)
    assert summary["files"]["missing"] == 1 and summary["files"]["unreadable"] == 1
    with pytest.raises(DataError, match="missing or unreadable"):
        check_release("ham10000", root, strict=True, workers=0)


def test_truncated_image_found_by_check_decoding(tmp_path):
    root = write_ham(tmp_path / "ham", lesions=20)
    image = root / "HAM10000_images_part_2" / "ISIC_0000000.jpg"
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) // 2])  # header intact, data cut
    summary = check_release("ham10000", root, workers=0)
    assert summary["files"]["unreadable"] == 1 and "ISIC_0000000" in summary["files"]["examples"][0]


def test_parquet_embedded_images_decode(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    buffer = __import__("io").BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))])
    pq.write_table(pa.table({"image": [{"bytes": buffer.getvalue(), "path": None}]}, schema=schema),
                   tmp_path / "part.parquet")
    source = FileImageSource(tmp_path, np.asarray(["parquet:part.parquet#0"]))
    assert np.array_equal(source.load(0), pixels)


STUDY = """
name: real-files
models: [demo-generalist-clip]
datasets: [ham10000-malignant]
methods: [zero_shot, linear_probe]
data_roots: {ham10000-malignant: ham}
"""


def test_study_runs_on_release_files_and_records_skips(tmp_path):
    root = write_ham(tmp_path / "ham", lesions=80)
    index = release_registry().get("ham10000-malignant").read(root)
    (root / index.split("test")["image"].iloc[0]).unlink()
    (tmp_path / "study.yaml").write_text(STUDY)
    from medrival.study.spec import load_study

    run = run_study(load_study(tmp_path / "study.yaml"), tmp_path / "out")
    frame = run.frame()
    assert set(frame["status"]) == {"done"}, frame.get("error")
    record = next(r for r in run.store.records() if r.spec["method"] == "linear_probe")
    assert record.cost["skipped_images"] == {"test": {"missing": 1, "unreadable": 0}}
    assert record.spec["modality"] == "dermoscopy"


def test_study_with_absent_dataset_is_refused_before_running(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDRIVAL_DATA_DIR", str(tmp_path / "nowhere"))
    spec = parse_study(STUDY.replace("data_roots: {ham10000-malignant: ham}\n", ""))
    with pytest.raises(ConfigError, match="ham10000-malignant.*medrival prepare ham10000-malignant"):
        run_study(spec, tmp_path / "out")


def test_data_roots_must_name_study_datasets():
    with pytest.raises(ConfigError, match="data roots are given for 'ham10000'.*Did you mean 'ham10000-malignant'"):
        parse_study(STUDY.replace("{ham10000-malignant: ham}", "{ham10000: ham}"))


def test_single_class_training_split_fails_the_cell_with_a_reason(tmp_path):
    root = tmp_path / "ham"
    rows = []
    for lesion in range(40):
        rows.append(f"HAM_{lesion:07d},ISIC_{lesion:07d},nv,histo,50.0,male,back")
        write_image(root / "HAM10000_images_part_1" / f"ISIC_{lesion:07d}.jpg", lesion)
    (root / "HAM10000_metadata.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    spec = parse_study(STUDY.replace("data_roots: {ham10000-malignant: ham}", f"data_roots: {{ham10000-malignant: {root}}}"))
    run = run_study(spec, tmp_path / "out")
    records = {r.spec["method"]: r for r in run.store.records()}
    assert records["linear_probe"].status == "failed"
    assert "holds one class only ('benign'" in records["linear_probe"].error
    zero_shot = records["zero_shot"]
    assert zero_shot.status == "done" and np.isnan(zero_shot.metrics["auroc"])
    assert any("AUROC is undefined" in note for note in zero_shot.cost["metric_notes"])


def test_cli_check_prints_json_last_and_prepare_prints_steps(ham_root, tmp_path):
    from test_cli import medrival_cli

    result = medrival_cli("datasets", "check", "ham10000", "--root", str(ham_root), "--workers", "0")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["files"]["decoded"] == 60 and sum(summary["examples"].values()) == 60
    assert set(summary["classes"]["train"]) == set(DX)
    result = medrival_cli("prepare", "chexpert", "--root", str(tmp_path / "cx"))
    assert result.returncode == 0 and "research use agreement" in result.stdout and str(tmp_path / "cx") in result.stdout
    result = medrival_cli("datasets", "check", "ham10000", "--root", str(tmp_path / "absent"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "medrival prepare ham10000" in result.stderr


def test_datasets_listing_says_what_is_here(ham_root, monkeypatch):
    from test_cli import medrival_cli

    result = medrival_cli("datasets")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in ("ham10000-malignant", "nih-chestxray14", "vqa-rad", "pneumoniamnist_224", "demo-xray"):
        assert name in text
    assert "CC BY-NC 4.0" in text and "built in (synthetic)" in text
    assert "medrival[download]" in text.replace(" ", "")  # cell text is not read as rich markup


@pytest.mark.skipif(not (REAL / "medmnist" / "pneumoniamnist.npz").is_file(), reason="real samples absent")
def test_real_pneumoniamnist_linear_probe_learns():
    spec = parse_study(f"""
models: [demo-generalist-clip]
datasets: [pneumoniamnist]
methods: [zero_shot, linear_probe]
data_roots: {{pneumoniamnist: {REAL / 'medmnist'}}}
""")
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        frame = run_study(spec, out).frame().set_index("method")
    assert set(frame["status"]) == {"done"}
    # Real chest X-rays through the tiny synthetic-world encoder: the probe still separates pneumonia well above
    # chance, and well above zero-shot (the encoder never saw the words of this task).
    assert frame.loc["linear_probe", "auroc"] > 0.8
    assert frame.loc["linear_probe", "auroc"] > frame.loc["zero_shot", "auroc"] + 0.1


@pytest.mark.skipif(not (REAL / "nih_chestxray14").is_dir(), reason="real samples absent")
def test_real_nih_sample_checks_and_decodes_its_two_images():
    summary = check_release("nih-chestxray14", REAL / "nih_chestxray14", workers=0)
    assert summary["examples"]["train"] + summary["examples"]["val"] + summary["examples"]["test"] == 112120
    assert summary["files"]["decoded"] == 2 and summary["files"]["unreadable"] == 0
    split = load_release_split("nih-chestxray14", "train", REAL / "nih_chestxray14")
    assert len(split) + split.skipped["missing"] == summary["examples"]["train"]


def test_study_on_a_custom_manifest_dataset(tmp_path):
    from test_releases_manifest import write_fixture

    write_fixture(tmp_path / "mine")
    (tmp_path / "study.yaml").write_text("""
models: [demo-specialist-clip]
datasets: [my-cxr]
methods: [zero_shot, knn]
custom_datasets:
  my-cxr: {format: manifest, root: mine, options: {csv_path: manifest.csv, split_column: split,
                                                   patient_column: patient, modality: xray}}
""")
    from medrival.study.spec import load_study

    run = run_study(load_study(tmp_path / "study.yaml"), tmp_path / "out")
    frame = run.frame()
    assert set(frame["status"]) == {"done"}, frame.get("error")
    assert set(frame["modality"]) == {"xray"}


def test_custom_dataset_errors_cite_the_study(tmp_path):
    from medrival.data.zoo.custom import register_custom_dataset

    with pytest.raises(ConfigError, match="Did you mean 'manifest'"):
        register_custom_dataset("mine", "manifst", tmp_path)
    with pytest.raises(ConfigError, match="taken by a built-in dataset"):
        register_custom_dataset("ham10000", "imagefolder", tmp_path, modality="dermoscopy")
    spec = parse_study("""
models: [demo-specialist-clip]
datasets: [mine]
methods: [zero_shot]
custom_datasets:
  mine: {format: imagefolder, root: /nonexistent-folder, options: {modality: dermoscopy}}
""", "study.yaml")
    with pytest.raises(ConfigError, match="study.yaml: custom_datasets.mine: .*nonexistent-folder"):
        run_study(spec, tmp_path / "out")


def test_prepare_downloads_medmnist_through_the_package(tmp_path, monkeypatch):
    import sys
    import types

    from medrival.data.zoo.prepare import prepare_release
    from test_releases_medmnist import write_npz

    calls = []

    class FakePneumonia:  # the medmnist package's dataset class: download=True writes {flag}[_{size}].npz
        def __init__(self, split, root, download, size=28):
            calls.append((split, root, download, size))
            write_npz(Path(root) / ("pneumoniamnist.npz" if size == 28 else f"pneumoniamnist_{size}.npz"),
                      size=size)

    fake = types.SimpleNamespace(INFO={"pneumoniamnist": {"python_class": "FakePneumonia"}},
                                 FakePneumonia=FakePneumonia)
    monkeypatch.setitem(sys.modules, "medmnist", fake)
    lines = prepare_release("pneumoniamnist_64", tmp_path / "mm")
    assert calls == [("test", str(tmp_path / "mm"), True, 64)]
    assert "downloaded" in lines[0] and "11 entries" in lines[0]
    assert "already here" in prepare_release("pneumoniamnist_64", tmp_path / "mm")[0]


def test_prepare_without_the_medmnist_package_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from medrival.core.errors import MedrivalError
    from medrival.data.zoo.prepare import prepare_release

    monkeypatch.setitem(sys.modules, "medmnist", None)  # import fails
    with pytest.raises(MedrivalError, match=r"pip install 'medrival\[download\]'"):
        prepare_release("dermamnist", tmp_path / "mm")


def test_archive_extraction_refuses_members_outside_the_root(tmp_path):
    import zipfile

    from medrival.data.zoo.downloads import safe_extract

    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("imgs/ok.png", b"x")
        bundle.writestr("../escaped.txt", b"owned")
    with pytest.raises(DataError, match="escapes the dataset root"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("reference", ["array:/etc/hosts#k", "parquet:../x.parquet#0", "../outside.png",
                                       "/etc/hosts"])
def test_references_outside_the_root_are_never_opened(reference, tmp_path):
    source = FileImageSource(tmp_path / "root", np.asarray([reference], dtype=object))
    with pytest.raises(DataError, match="absolute|escapes the dataset root"):
        source.load(0)


def test_lora_on_release_files_equals_lora_on_the_same_decoded_pixels(ham_root):
    """Training reads lazy splits through the uint8 pixel store: same pixels, same seed -> same predictions."""
    from medrival.data.fewshot import apply_budget
    from medrival.methods import METHODS

    model = create_model("demo-generalist-clip")
    splits = {s: load_dataset("ham10000-malignant", s, root=ham_root) for s in ("train", "val", "test")}

    def in_memory(split):
        return ClassificationSplit(split.info, split.split, _in_memory(split, model.geometry), split.labels, split.ids)

    spec = METHODS.get("lora")
    outputs = []
    for variant in (splits, {k: in_memory(v) for k, v in splits.items()}):
        method = spec.build(spec.make_config({"epochs": 1, "batch_size": 8}))
        method.fit(model, variant["train"], variant["val"], FeatureCache(None), seed=0)
        outputs.append(method.predict(variant["test"]).probabilities)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


def test_multilabel_release_study_stores_label_columns_and_clusters(tmp_path):
    """A multilabel release (NIH layout) runs end to end; predictions keep per-class labels and patient ids."""
    from release_fixtures import write_fixture

    root = write_fixture("nih-chestxray14", tmp_path / "nih")
    spec = parse_study(f"""
models: [demo-generalist-clip]
datasets: [nih-chestxray14]
methods: [zero_shot]
data_roots: {{nih-chestxray14: {root}}}
""")
    run = run_study(spec, tmp_path / "out")
    record = run.store.records()[0]
    assert record.status == "done", record.error
    predictions = run.store.predictions(record.cell_id)
    assert {"label_Cardiomegaly", "prob_Cardiomegaly", "cluster_id", "sg_sex"} <= set(predictions.columns)
    assert "prediction" not in predictions.columns
    index = release_registry().get("nih-chestxray14").read(root)
    test_rows = index.split("test")
    assert sorted(predictions["cluster_id"]) == sorted(test_rows["patient_id"].astype(str))
