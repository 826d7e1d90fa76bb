"""Kermany 2018 parser: the Kaggle chest_xray zip (nested copy, __MACOSX, tiny val), Mendeley v3 names and OCT2017."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.kermany import CXR_3CLASSES, OCT_CLASSES, read_kermany

# Kaggle / Mendeley v2 names. With seed 0 and val_fraction 0.1, IM-0115, IM-0127, NORMAL2-IM-1407, person4 and
# person25 are carved into val; the rest of train/ and the official val/ stay in train.
CXR_FILES = {
    "train/NORMAL": ["IM-0115-0001.jpeg", "IM-0117-0001.jpeg", "IM-0119-0001.jpeg", "IM-0127-0001.jpeg",
                     "NORMAL2-IM-1400-0001.jpeg", "NORMAL2-IM-1407-0001.jpeg"],
    "train/PNEUMONIA": ["person1_bacteria_1.jpeg", "person1_bacteria_2.jpeg", "person2_virus_3.jpeg",
                        "person3_bacteria_10.jpeg", "person4_bacteria_14.jpeg", "person25_virus_59.jpeg"],
    "val/NORMAL": ["NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1430-0001.jpeg"],
    "val/PNEUMONIA": ["person1946_bacteria_4874.jpeg", "person1950_bacteria_4881.jpeg"],
    "test/NORMAL": ["IM-0001-0001.jpeg", "IM-0003-0001.jpeg", "NORMAL2-IM-0007-0001.jpeg"],
    "test/PNEUMONIA": ["person150_virus_300.jpeg", "person151_bacteria_716.jpeg", "person152_bacteria_717.jpeg"],
}
OCT_FILES = {
    "train/CNV": ["CNV-1000001-1.jpeg", "CNV-1000001-2.jpeg", "CNV-1000005-1.jpeg"],
    "train/DME": ["DME-1000002-1.jpeg", "DME-1000020-1.jpeg"],
    "train/DRUSEN": ["DRUSEN-1000001-3.jpeg", "DRUSEN-1000040-1.jpeg"],  # 1000001 also has CNV scans
    "train/NORMAL": ["NORMAL-1000003-1.jpeg", "NORMAL-1000044-1.jpeg"],
    "val/CNV": ["CNV-2000001-1.jpeg"], "val/DME": ["DME-2000002-1.jpeg"], "val/DRUSEN": ["DRUSEN-2000003-1.jpeg"],
    "val/NORMAL": ["NORMAL-2000004-1.jpeg"],
    "test/CNV": ["CNV-3000001-1.jpeg"], "test/DME": ["DME-3000002-1.jpeg"],
    "test/DRUSEN": ["DRUSEN-3000003-1.jpeg"], "test/NORMAL": ["NORMAL-3000004-1.jpeg", "NORMAL-3000005-1.jpeg"],
}


def _jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32), shade % 256, dtype=np.uint8)).save(path, quality=90)


def _write_tree(folder: Path, files: dict[str, list[str]]) -> None:
    for number, (where, names) in enumerate(files.items()):
        for k, name in enumerate(names):
            _jpeg(folder / where / name, 40 * number + k)
        (folder / where / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # Finder junk, not an image
        (folder / where / f"._{names[0]}").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble fork, not a JPEG


def write_kermany_cxr_fixture(root: Path) -> Path:
    """The Kaggle ``chest-xray-pneumonia`` zip, small: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}`` plus the
    zip's duplicate ``chest_xray/chest_xray/`` copy, a ``__MACOSX/`` tree and Finder files. Returns ``root``."""
    root = Path(root)
    _write_tree(root / "chest_xray", CXR_FILES)
    _write_tree(root / "chest_xray" / "chest_xray", CXR_FILES)
    fork = root / "__MACOSX" / "chest_xray" / "train" / "NORMAL" / "._IM-0115-0001.jpeg"
    fork.parent.mkdir(parents=True)
    fork.write_bytes(b"\x00\x05\x16\x07")
    return root


def write_kermany_oct_fixture(root: Path) -> Path:
    """The Kaggle ``kermany2018`` zip, small: ``OCT2017/{train,val,test}/{CNV,DME,DRUSEN,NORMAL}``. Returns ``root``."""
    root = Path(root)
    _write_tree(root / "OCT2017", OCT_FILES)
    (root / "__MACOSX" / "OCT2017").mkdir(parents=True)
    return root


def test_cxr_binary_from_the_kaggle_zip(tmp_path):
    index = read_kermany(write_kermany_cxr_fixture(tmp_path))
    assert index.name == "kermany-cxr" and index.task is TaskKind.BINARY and index.modality == "xray"
    assert index.class_names == ("normal", "pneumonia")
    assert len(index.frame) == sum(len(v) for v in CXR_FILES.values())  # the nested copy and junk are skipped
    assert index.frame["image"].str.startswith("chest_xray/train/").sum() == 12
    assert not index.frame["image"].str.contains("chest_xray/chest_xray|__MACOSX|/\\._").any()
    assert "release folder: chest_xray" in index.notes
    counts = index.counts()
    assert counts["examples"] == {"train": 11, "val": 5, "test": 6}
    assert counts["classes"]["test"] == {"normal": 3, "pneumonia": 3}
    assert sum(counts["examples"].values()) == 22


def test_patient_ids_and_subtypes_from_file_names(tmp_path):
    frame = read_kermany(write_kermany_cxr_fixture(tmp_path)).frame.set_index("image")
    row = lambda name: frame.loc[next(i for i in frame.index if i.endswith("/" + name))]  # noqa: E731
    assert row("person1_bacteria_2.jpeg")["patient_id"] == "person1"
    assert row("person1_bacteria_2.jpeg")["subtype"] == "bacterial"
    assert row("person25_virus_59.jpeg")["subtype"] == "viral"
    assert row("IM-0115-0001.jpeg")["patient_id"] == "IM-0115" and row("IM-0115-0001.jpeg")["subtype"] == "normal"
    assert row("NORMAL2-IM-1427-0001.jpeg")["patient_id"] == "NORMAL2-IM-1427"
    assert row("NORMAL2-IM-1427-0001.jpeg")["release_split"] == "val"


def test_val_is_carved_from_training_patients(tmp_path):
    index = read_kermany(write_kermany_cxr_fixture(tmp_path))
    frame = index.frame
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(frame.loc[frame["split"] == "val", "patient_id"]) == {"IM-0115", "IM-0127", "NORMAL2-IM-1407",
                                                                    "person4", "person25"}
    assert (frame.loc[frame["release_split"] == "test", "split"] == "test").all()
    assert (frame.loc[frame["release_split"] == "val", "split"] == "train").all()  # official val joins the pool
    assert any("4 official val image(s) joined the training pool" in note for note in index.notes)
    for split in ("train", "val", "test"):
        rows = index.split(split)
        assert rows["label"].nunique() == 2 and rows["patient_id"].nunique() >= 2


def test_official_val_on_request(tmp_path):
    index = read_kermany(write_kermany_cxr_fixture(tmp_path), use_official_val=True)
    assert index.counts()["examples"] == {"train": 12, "val": 4, "test": 6}
    assert (index.frame["split"] == index.frame["release_split"]).all()
    mendeley = tmp_path / "mendeley"
    _write_tree(mendeley / "ZhangLabData" / "CellData" / "chest_xray",
                {k: v for k, v in CXR_FILES.items() if not k.startswith("val/")})
    with pytest.raises(DataError, match="use_official_val=True but .*val is absent"):
        read_kermany(mendeley, use_official_val=True)


def test_three_classes(tmp_path):
    index = read_kermany(write_kermany_cxr_fixture(tmp_path), task="3class")
    assert index.name == "kermany-cxr-3class" and index.class_names == CXR_3CLASSES
    assert index.task is TaskKind.MULTICLASS
    assert index.frame.groupby("subtype")["label"].first().to_dict() == {"normal": 0, "bacterial": 1, "viral": 2}
    assert index.split("val")["label"].nunique() == 3


def test_mendeley_v3_names_and_both_parts_in_one_root(tmp_path):
    cell = tmp_path / "ZhangLabData" / "CellData"
    _write_tree(cell / "chest_xray", {
        "train/NORMAL": ["NORMAL-11419-0001.jpeg", "NORMAL-11420-0001.jpeg"],
        "train/PNEUMONIA": ["BACTERIA-1351146-0001.jpeg", "BACTERIA-1351146-0002.jpeg", "VIRUS-614452-0001.jpeg"],
        "test/NORMAL": ["NORMAL-1049278-0001.jpeg"], "test/PNEUMONIA": ["VIRUS-9896495-0001.jpeg"]})
    _write_tree(cell / "OCT", OCT_FILES)
    cxr = read_kermany(tmp_path, task="3class").frame.set_index("image")
    row = cxr.loc["ZhangLabData/CellData/chest_xray/train/PNEUMONIA/BACTERIA-1351146-0002.jpeg"]
    assert row["patient_id"] == "1351146" and row["subtype"] == "bacterial" and row["label"] == 1
    assert cxr.loc["ZhangLabData/CellData/chest_xray/train/NORMAL/NORMAL-11420-0001.jpeg", "patient_id"] == "11420"
    oct_index = read_kermany(tmp_path, part="oct")
    assert oct_index.frame["image"].str.startswith("ZhangLabData/CellData/OCT/").all()


def test_oct_four_classes_and_patients_across_classes(tmp_path):
    index = read_kermany(write_kermany_oct_fixture(tmp_path), part="oct")
    assert index.name == "kermany-oct" and index.modality == "oct" and index.class_names == OCT_CLASSES
    frame = index.frame.set_index("image")
    row = frame.loc["OCT2017/train/DRUSEN/DRUSEN-1000001-3.jpeg"]
    assert row["patient_id"] == "1000001" and row["finding"] == "DRUSEN" and row["label"] == 2
    assert (index.frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(index.split("val")["patient_id"]) >= {"1000005", "1000020", "1000040", "1000044"}
    counts = index.counts()
    assert sum(counts["examples"].values()) == 18 and counts["examples"]["test"] == 5
    assert all(len([n for n in counts["classes"][s].values() if n]) >= 2 for s in ("train", "val", "test"))


def test_unparsed_names_keep_their_stem(tmp_path):
    root = write_kermany_cxr_fixture(tmp_path)
    _jpeg(root / "chest_xray" / "train" / "PNEUMONIA" / "scan_0042.jpeg", 9)
    index = read_kermany(root)
    assert "scan_0042" in set(index.frame["patient_id"])
    assert any("1 file name(s) fit no known pattern" in note for note in index.notes)
    with pytest.raises(DataError, match="scan_0042.jpeg has neither"):
        read_kermany(root, task="3class")


@pytest.mark.parametrize("where, name, message", [
    ("train/NORMAL", "person9_virus_20.jpeg", "names a viral image but sits in NORMAL/"),
    ("train/PNEUMONIA", "IM-0500-0001.jpeg", "names a normal image but sits in PNEUMONIA/"),
])
def test_file_in_the_wrong_class_folder(tmp_path, where, name, message):
    root = write_kermany_cxr_fixture(tmp_path)
    _jpeg(root / "chest_xray" / where / name, 1)
    with pytest.raises(DataError, match=message):
        read_kermany(root)


def test_missing_or_empty_folders_and_bad_options(tmp_path):
    with pytest.raises(DataError, match=r"Kermany 2018.*no folder under .* holds \{train,test\}/\{NORMAL,PNEUMONIA\}"):
        read_kermany(tmp_path)
    root = write_kermany_cxr_fixture(tmp_path)
    with pytest.raises(DataError, match=r"holds \{train,test\}/\{CNV,DME,DRUSEN,NORMAL\}"):
        read_kermany(root, part="oct")
    for image in (root / "chest_xray" / "test" / "NORMAL").glob("*.jpeg"):
        image.unlink()
    with pytest.raises(DataError, match=r"test/NORMAL holds no images"):
        read_kermany(root)
    with pytest.raises(ConfigError, match="cxr, oct"):
        read_kermany(root, part="mri")
    with pytest.raises(ConfigError, match="choose 4class"):
        read_kermany(root, part="oct", task="3class")
