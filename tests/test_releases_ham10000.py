"""HAM10000 metadata parser: exact CSV format (ages 80 / 80.0 / blank), both tasks, lesion-level split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.ham10000 import DX_CLASSES, read_ham10000

HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization"
ROWS = [
    "HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp",
    "HAM_0000118,ISIC_0025030,bkl,histo,80.0,male,scalp",
    "HAM_0002730,ISIC_0026769,bkl,histo,80,male,scalp",
    "HAM_0001466,ISIC_0031633,nv,histo,75.0,male,ear",
    "HAM_0002761,ISIC_0029176,mel,histo,60.0,female,face",
    "HAM_0005132,ISIC_0025837,bcc,histo,,female,back",
    "HAM_0001396,ISIC_0025276,akiec,histo,55.0,unknown,unknown",
    "HAM_0004234,ISIC_0029396,df,consensus,65.0,female,lower extremity",
    "HAM_0001949,ISIC_0025767,vasc,consensus,70.0,male,trunk",
]


def write_release(root: Path, rows=ROWS, sep=",", name="HAM10000_metadata.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("\n".join(line.replace(",", sep) for line in [HEADER, *rows]) + "\n")
    return root


def test_seven_class_task_and_quirky_ages(tmp_path):
    index = read_ham10000(write_release(tmp_path))
    assert index.task is TaskKind.MULTICLASS and index.class_names == DX_CLASSES and index.modality == "dermoscopy"
    frame = index.frame.set_index("image_id")
    assert frame.loc["ISIC_0027419", "age"] == 80.0 and frame.loc["ISIC_0026769", "age"] == 80.0
    assert np.isnan(frame.loc["ISIC_0025837", "age"])
    assert DX_CLASSES[frame.loc["ISIC_0029176", "label"]] == "mel"
    assert frame.loc["ISIC_0025276", "sex"] == "unknown"
    assert frame.loc["ISIC_0027419", "group_id"] == "HAM_0000118"
    assert sum(sum(c.values()) for c in index.counts()["classes"].values()) == len(ROWS)


def test_binary_malignant_counts_bcc_as_malignant(tmp_path):
    index = read_ham10000(write_release(tmp_path), task="malignant")
    assert index.task is TaskKind.BINARY and index.class_names == ("benign", "malignant")
    by_dx = index.frame.groupby("dx")["label"].first().to_dict()
    assert by_dx["bcc"] == 1  # MedVLMBench labels bcc benign: a bug this test guards against
    assert {dx for dx, y in by_dx.items() if y == 1} == {"mel", "bcc", "akiec"}
    assert {dx for dx, y in by_dx.items() if y == 0} == {"nv", "bkl", "df", "vasc"}


def test_split_by_lesion_never_spans_splits(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"HAM_{lesion:07d},ISIC_{lesion * 10 + k:07d},{DX_CLASSES[lesion % 7]},histo,50.0,male,back"
            for lesion in range(400) for k in range(int(rng.integers(1, 5)))]
    index = read_ham10000(write_release(tmp_path, rows=rows), seed=5)
    assert (index.frame.groupby("group_id")["split"].nunique() == 1).all()
    assert set(index.frame["split"]) == {"train", "val", "test"}
    other = read_ham10000(tmp_path, seed=6)
    assert not (other.frame["split"] == index.frame["split"]).all()
    assert (read_ham10000(tmp_path, seed=5).frame["split"] == index.frame["split"]).all()


def test_images_found_in_either_part_folder(tmp_path):
    root = write_release(tmp_path)
    for part, image in (("HAM10000_images_part_1", "ISIC_0027419"), ("HAM10000_images_part_2", "ISIC_0031633")):
        (root / part).mkdir()
        (root / part / f"{image}.jpg").write_bytes(b"")
    images = read_ham10000(root).frame.set_index("image_id")["image"]
    assert images["ISIC_0027419"] == "HAM10000_images_part_1/ISIC_0027419.jpg"
    assert images["ISIC_0031633"] == "HAM10000_images_part_2/ISIC_0031633.jpg"
    assert images["ISIC_0029176"] == "HAM10000_images_part_1/ISIC_0029176.jpg"  # not downloaded: default part


def test_tab_separated_dataverse_copy(tmp_path):
    index = read_ham10000(write_release(tmp_path, sep="\t", name="HAM10000_metadata.tab"))
    assert len(index.frame) == len(ROWS)


@pytest.mark.parametrize("rows, message", [
    (ROWS + ["HAM_1,ISIC_1,melanoma,histo,50,male,back"], "melanoma"),
    (ROWS + [ROWS[0]], "more than once"),
    (ROWS + ["HAM_1,../../x,mel,histo,50,male,back"], "escapes"),
])
def test_bad_rows_raise(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        read_ham10000(write_release(tmp_path, rows=rows))


def test_missing_file_column_and_unknown_task(tmp_path):
    with pytest.raises(DataError, match="HAM10000_metadata.csv"):
        read_ham10000(tmp_path)
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nHAM_1,ISIC_1,mel\n")
    with pytest.raises(DataError, match="'dx_type'"):
        read_ham10000(tmp_path)
    with pytest.raises(ConfigError, match="malignant"):
        read_ham10000(tmp_path, task="binary")
