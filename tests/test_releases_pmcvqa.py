"""PMC-VQA parser: v1 and v2 CSV layouts with the release's quirks (prefixed choices, header variants)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from medrival.core.errors import DataError, MedrivalError
from medrival.data.releases.pmcvqa import DEFAULT_MODALITY, load_pmcvqa

V1_HEADER = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
V2_HEADER = ["index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D",
             "Answer", "split"]


def _v1(figure, question, answer, choices, label):
    # Choices as in the release: the letter and a colon, mostly after a leading space.
    return [figure, question, answer, *choices, label]


V1_TRAIN = [
    _v1("PMC1000_F1.jpg", "What is the uptake pattern in the breast?", "Focal uptake pattern",
        [" A:Diffuse uptake pattern", " B:Focal uptake pattern", " C:No uptake pattern",
         " D:Cannot determine from the information given"], "B"),
    _v1("PMC1000_F1.jpg", "Which  imaging modality was used?", "PET", [" A:CT", " B:MRI", " C:PET", " D:Ultrasound"],
        "C"),
    _v1("PMC1001_F1.jpg", "What is abnormal?", "None", ["A: None", "B: Lesion", "C: Mass", "D: Cyst"], "A"),
    _v1("PMC1002_F1.jpg", "Where is the lesion?", "Left lobe", [" A:Left lobe", " B:Right lobe", " C:Both",
                                                                 " D:Neither"], "A"),
    _v1("PMC1015_F1.jpg", "What does the arrow show?", "A stent", [" A:A clip", " B:A coil", " C:A wire",
                                                                    " D:A stent"], "D"),
    _v1("PMC1015_F1.jpg", "What stain was used?", "H&E", [" A:H&E", " B:PAS", " C:Gram", " D:Silver"], "A"),
]
V1_TEST = [
    _v1("PMC1100_F1.jpg", "What is shown?", "Fracture", [" A:Fracture", " B:Tumour", " C:Normal", " D:Cyst"], "A"),
    _v1("PMC1100_F1.jpg", "Which side?", "Right", [" A:Left", " B:Right", " C:Both", " D:Neither"], "B"),
    _v1("PMC1000_F1.jpg", "Is the uptake focal?", "Yes", [" A:Yes", " B:No", " C:Unclear", " D:Diffuse"], "A"),
]
V2_TRAIN = [
    ["0", "PMC3000_F2_1.jpg", "Axial CT of the chest.", "What plane is shown?", " A:Axial", " B:Sagittal",
     " C:Coronal", " D:Oblique", "A", "train"],
    ["1", "PMC3000_F2_1.jpg", "Axial CT of the chest.", "What organ is shown?", " A:Liver", " B:Lung",
     " C:Heart", " D:Brain", "B", "train"],
    ["2", "PMC3001_F2_1.jpg", "H&E section.", "What tissue is shown?", " A:Bone", " B:Muscle", " C:Skin",
     " D:Fat", "C", "train"],
    ["3", "PMC3002_F2_1.jpg", "Ultrasound.", "What is measured?", " A:Size", " B:Flow", " C:Depth",
     " D:Density", "B", "train"],
]
V2_TEST = [
    ["0", "PMC3100_F2_1.jpg", "T2 MRI.", "Which sequence?", " A:T1", " B:T2", " C:FLAIR", " D:DWI", "B", "test"],
    ["1", "PMC3100_F2_1.jpg", "T2 MRI.", "Which region?", " A:Head", " B:Neck", " C:Spine", " D:Knee", "A", "test"],
]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_images(folder: Path, rows: list[list[str]], column: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if not (folder / row[column]).exists():
            Image.new("RGB", (32, 24), (len(row[column]) * 7 % 255, 90, 160)).save(folder / row[column], "JPEG")


def write_pmcvqa_fixture(root: Path) -> Path:
    """A small complete PMC-VQA: v1 (train/test/test_clean + images/) and v2 (train_2/test_2 + figures/)."""
    root.mkdir(parents=True, exist_ok=True)
    _write_csv(root / "train.csv", V1_HEADER, V1_TRAIN)
    _write_csv(root / "test.csv", V1_HEADER, V1_TEST)
    # test_clean.csv as re-saved by pandas: an unnamed index column first.
    _write_csv(root / "test_clean.csv", ["", *V1_HEADER], [[str(i), *row] for i, row in enumerate(V1_TEST[:2])])
    _write_csv(root / "train_2.csv", V2_HEADER, V2_TRAIN)
    _write_csv(root / "test_2.csv", V2_HEADER, V2_TEST)
    _write_images(root / "images", V1_TRAIN + V1_TEST, 0)
    _write_images(root / "figures", V2_TRAIN + V2_TEST, 1)
    return root


write_fixture = write_pmcvqa_fixture


def test_version1_layout_and_quirks(tmp_path):
    index = load_pmcvqa(write_pmcvqa_fixture(tmp_path))
    frame = index.frame
    assert index.name == "pmc-vqa" and len(frame) == 9
    assert list(frame["question_id"][:3]) == ["train-000000", "train-000001", "train-000002"]
    assert frame.loc[0, "image"] == "images/PMC1000_F1.jpg" and frame.loc[0, "image_id"] == "PMC1000_F1.jpg"
    assert list(frame.loc[0, ["option_a", "option_b", "option_c", "option_d"]]) == [
        "Diffuse uptake pattern", "Focal uptake pattern", "No uptake pattern",
        "Cannot determine from the information given"]
    assert frame.loc[0, "answer"] == "Focal uptake pattern" and frame.loc[0, "answer_label"] == "B"
    assert frame.loc[1, "question"] == "Which imaging modality was used?"
    assert frame.loc[2, "answer"] == "None" and frame.loc[2, "option_b"] == "Lesion"  # "A: None" is not NA
    assert set(frame["answer_type"]) == {"closed"} and set(frame["answer_type_source"]) == {"release"}
    assert frame["caption"].isna().all() and set(frame["source_file"]) == {"train.csv", "test.csv"}
    assert index.modality == DEFAULT_MODALITY
    assert any("1 images have both train and test" in n for n in index.notes)


def test_val_is_carved_by_image(tmp_path):
    index = load_pmcvqa(write_pmcvqa_fixture(tmp_path))
    frame = index.frame
    assert list(frame["split"]) == ["train"] * 4 + ["val"] * 2 + ["test"] * 3
    by_image = frame[frame["split"] != "test"].groupby("image_id")["split"].nunique()
    assert (by_image == 1).all()
    assert index.counts()["images"] == {"train": 3, "val": 1, "test": 2, "all": 5}
    # Same seed, same split; no val fraction, no val.
    assert list(load_pmcvqa(tmp_path).frame["split"]) == list(frame["split"])
    assert "val" not in load_pmcvqa(tmp_path, val_fraction=0.0).splits


def test_version2_layout(tmp_path):
    index = load_pmcvqa(write_pmcvqa_fixture(tmp_path), version=2)
    frame = index.frame
    assert index.name == "pmc-vqa-v2" and len(frame) == 6
    assert frame.loc[0, "image"] == "figures/PMC3000_F2_1.jpg"
    assert list(frame["answer_label"]) == ["A", "B", "C", "B", "B", "A"]
    assert list(frame["answer"]) == ["Axial", "Lung", "Skin", "Flow", "T2", "Head"]
    assert frame.loc[0, "caption"] == "Axial CT of the chest." and frame.loc[3, "release_index"] == "3"
    assert list(frame["split"]) == ["train", "train", "val", "train", "test", "test"]
    assert list(frame["question_id"][-2:]) == ["test_2-000000", "test_2-000001"]


def test_clean_test_and_header_variants(tmp_path):
    root = write_pmcvqa_fixture(tmp_path / "r")
    clean = load_pmcvqa(root, clean_test=True)
    assert clean.name == "pmc-vqa-clean" and "Unnamed: 0" not in clean.frame.columns
    assert clean.counts()["questions"]["test"] == 2
    assert list(clean.split("test")["question_id"]) == ["test_clean-000000", "test_clean-000001"]
    # An early copy: the "Anwser"/"Anwser_label" spelling of the dataset card.
    _write_csv(root / "test.csv", ["Figure_path", "Question", "Anwser", "Choice A", "Choice B", "Choice C",
                                   "Choice D", "Anwser_label"], V1_TEST)
    assert list(load_pmcvqa(root).split("test")["answer_label"]) == ["A", "B", "A"]


def test_unscorable_rows_are_skipped_and_counted(tmp_path):
    root = write_pmcvqa_fixture(tmp_path)
    bad = [_v1("PMC1100_F1.jpg", "q?", "x", [" A:x", " B:y", " C:z", " D:w"], "E"),
           _v1("PMC1100_F1.jpg", "q2?", "x", [" A:x", " B:y", " C:", " D:w"], "C")]
    _write_csv(root / "test.csv", V1_HEADER, V1_TEST + bad)
    index = load_pmcvqa(root)
    assert index.counts()["questions"]["test"] == 3
    assert any("2 rows skipped" in n and "test.csv row 3" in n for n in index.notes)


def test_image_folder_fallback_and_override(tmp_path):
    root = write_pmcvqa_fixture(tmp_path)
    (root / "images").rename(root / "figures_v1")
    assert load_pmcvqa(root).frame.loc[0, "image"] == "figures/PMC1000_F1.jpg"  # only figures/ exists
    index = load_pmcvqa(root, image_folder="figures_v1")
    assert index.frame.loc[0, "image"] == "figures_v1/PMC1000_F1.jpg" and index.missing_images(root).empty
    with pytest.raises(DataError, match="escapes"):
        load_pmcvqa(root, image_folder="../elsewhere")


def test_counts_summary_and_images_exist(tmp_path):
    root = write_pmcvqa_fixture(tmp_path)
    index = load_pmcvqa(root)
    counts = index.counts()
    assert counts["questions"] == {"train": 4, "val": 2, "test": 3, "all": 9}
    assert counts["answer_types"]["all"] == {"closed": 9, "open": 0}
    assert counts["answer_type_source"]["test"] == {"release": 3, "derived": 0}
    summary = index.summary(root)
    assert summary["missing_images"] == {"questions": 0, "images": 0} and summary["dataset"] == "pmc-vqa"
    json.dumps(summary)
    with Image.open(root / index.frame.loc[0, "image"]) as image:  # the fixture's files are real images
        assert image.size == (32, 24)


def test_bad_inputs(tmp_path):
    root = write_pmcvqa_fixture(tmp_path / "ok")
    (root / "test.csv").unlink()
    with pytest.raises(DataError, match=r"PMC-VQA.*test\.csv"):
        load_pmcvqa(root)
    with pytest.raises(DataError, match="not a directory"):
        load_pmcvqa(tmp_path / "nope")
    _write_csv(root / "test.csv", V1_HEADER[:4] + V1_HEADER[5:], [r[:4] + r[5:] for r in V1_TEST])
    with pytest.raises(DataError, match="lacks column.*'Choice B'"):
        load_pmcvqa(root)
    _write_csv(root / "test.csv", V1_HEADER, [["../../etc/passwd", *V1_TEST[0][1:]]])
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_pmcvqa(root)
    _write_csv(root / "test.csv", V1_HEADER, [["/etc/passwd", *V1_TEST[0][1:]]])
    with pytest.raises(DataError, match="absolute"):
        load_pmcvqa(root)


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 3}, "version 3"), ({"version": 2, "clean_test": True}, "version 1 only"),
    ({"val_fraction": 1.0}, "val_fraction"), ({"modality": "radiology"}, "Unknown modality"),
])
def test_bad_options(tmp_path, kwargs, message):
    with pytest.raises(MedrivalError, match=message):
        load_pmcvqa(write_pmcvqa_fixture(tmp_path), **kwargs)
