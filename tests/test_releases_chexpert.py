"""CheXpert v1.0-small parser: train.csv / valid.csv fixtures in the release format (blanks, -1.0, prefixes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.chexpert import OBSERVATIONS, read_chexpert
from medrival.data.releases.index import label_column

HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)
# Real-looking rows: 14 observation fields, blank = not mentioned, -1.0 = uncertain, lateral views have no AP/PA.
TRAIN = [
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
    "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,"
    ",,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,",
    "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,83,Frontal,AP,,,,1.0,,,-1.0,,,,,,1.0,",
    "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Female,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,",
    "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,AP,,,,,,1.0,,,,0.0,,,,",
    "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Unknown,20,Frontal,PA,1.0,0.0,,,,,,,,,0.0,,,",
]
VALID = [
    "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,"
    "0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    "CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Male,70,Lateral,,"
    "0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0",
]


def write_release(folder: Path, train=TRAIN, valid=VALID) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("\n".join([HEADER, *train]) + "\n")
    (folder / "valid.csv").write_text("\n".join([HEADER, *valid]) + "\n")
    return folder


def _row(index, image):
    return index.frame.set_index("image").loc[image]


@pytest.mark.parametrize("policy, expected", [("zeros", 0.0), ("ones", 1.0), ("ignore", None)])
def test_uncertainty_policies(tmp_path, policy, expected):
    index = read_chexpert(write_release(tmp_path / "CheXpert-v1.0-small"), policy)
    row = _row(index, "train/patient00002/study2/view1_frontal.jpg")
    value = row[label_column("Cardiomegaly")]
    assert (np.isnan(value) if expected is None else value == expected)
    assert row[label_column("Lung Opacity")] == 1.0 and row[label_column("No Finding")] == 0.0  # blank = 0
    if policy == "ignore":  # patient00002 has 3 uncertain Consolidation entries, whichever split it landed in
        unlabelled = index.counts()["unlabelled"]
        assert sum(split.get("Consolidation", 0) for split in unlabelled.values()) == 3
        assert sum(split.get("Edema", 0) for split in unlabelled.values()) == 1


def test_root_is_the_release_folder_or_its_parent(tmp_path):
    write_release(tmp_path / "CheXpert-v1.0-small")
    inner = read_chexpert(tmp_path / "CheXpert-v1.0-small")
    outer = read_chexpert(tmp_path)
    assert inner.frame["image"].iloc[0] == "train/patient00001/study1/view1_frontal.jpg"
    assert outer.frame["image"].iloc[0] == "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    renamed = read_chexpert(write_release(tmp_path / "chexpert_copy"))
    assert renamed.frame["image"].iloc[0] == "train/patient00001/study1/view1_frontal.jpg"


def test_metadata_splits_and_patients(tmp_path):
    index = read_chexpert(write_release(tmp_path), seed=1, val_fraction=0.5)
    assert index.task is TaskKind.MULTILABEL and index.class_names == OBSERVATIONS and len(OBSERVATIONS) == 14
    frame = index.frame
    assert frame["split"][frame["image"].str.startswith("valid/")].eq("test").all()
    assert not frame["split"][frame["image"].str.startswith("train/")].eq("test").any()
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()
    row = _row(index, "train/patient00002/study1/view2_lateral.jpg")
    assert row["patient_id"] == "patient00002" and row["study_id"] == "study1"
    assert row["view"] == "Lateral" and np.isnan(row["ap_pa"]) and row["age"] == 83 and row["sex"] == "Female"
    assert index.counts()["examples"]["test"] == 2
    frontal = read_chexpert(tmp_path, frontal_only=True)
    assert set(frontal.frame["view"]) == {"Frontal"} and len(frontal.frame) == 6


def test_per_observation_policy(tmp_path):
    index = read_chexpert(write_release(tmp_path), {"Atelectasis": "ones", "Edema": "ignore"})
    row = _row(index, "train/patient00002/study2/view1_frontal.jpg")
    assert row[label_column("Atelectasis")] == 1.0 and np.isnan(row[label_column("Edema")])
    assert row[label_column("Cardiomegaly")] == 0.0
    with pytest.raises(ConfigError, match="Atelectasiss"):
        read_chexpert(tmp_path, {"Atelectasiss": "ones"})
    with pytest.raises(ConfigError, match="U-Ones|not one of"):
        read_chexpert(tmp_path, "U-Ones")


@pytest.mark.parametrize("train, message", [
    ([TRAIN[0].replace(",1.0,,,", ",2.0,,,", 1)], "expected 1.0, 0.0, -1.0"),
    ([TRAIN[0].replace("CheXpert-v1.0-small/", "/abs/")], "absolute"),
    ([TRAIN[0].replace("CheXpert-v1.0-small/", "../../")], "escapes"),
    ([TRAIN[0].replace("patient00001", "p1")], "patient"),
])
def test_bad_rows_raise(tmp_path, train, message):
    with pytest.raises(DataError, match=message):
        read_chexpert(write_release(tmp_path, train=train))


def test_missing_files_and_columns(tmp_path):
    with pytest.raises(DataError, match="train.csv and valid.csv"):
        read_chexpert(tmp_path)
    write_release(tmp_path)
    (tmp_path / "valid.csv").write_text("Path,Sex,Age\nx,Male,1\n")
    with pytest.raises(DataError, match="valid.csv lacks column.*Frontal/Lateral"):
        read_chexpert(tmp_path)
