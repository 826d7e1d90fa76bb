"""Camelyon17-WILDS metadata parser: unnamed index column, zero-padded patients, WILDS official split."""
from __future__ import annotations

from pathlib import Path

import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.camelyon17 import read_camelyon17

HEADER = ",patient,node,x_coord,y_coord,tumor,slide,center,split"
ROWS = [
    "0,004,4,3328,21792,1,0,0,0",
    "1,004,4,3200,22272,1,0,0,1",
    "2,010,4,8000,20000,0,5,0,0",
    "3,015,1,1234,5678,0,10,1,0",
    "4,020,2,2000,3000,1,15,2,0",
    "5,042,3,4000,5000,0,23,2,0",
    "6,099,0,100,200,0,45,4,0",
    "7,100,0,300,400,1,47,3,1",
]


def write_release(root: Path, rows=ROWS, header=HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_paths_keep_zero_padding_and_official_ood_split(tmp_path):
    index = read_camelyon17(write_release(tmp_path))
    assert index.task is TaskKind.BINARY and index.modality == "pathology"
    assert index.class_names == ("normal", "tumor")
    first = index.frame.iloc[0]
    assert first["image"] == "patches/patient_004_node_4/patch_patient_004_node_4_x_3328_y_21792.png"
    assert first["patient_id"] == "004" and first["label"] == 1 and first["hospital"] == 0
    split = dict(zip(index.frame["patient_id"], index.frame["split"]))
    assert split["015"] == "val" and split["020"] == "test" and split["042"] == "test" and split["010"] == "train"
    assert len(index.frame) == 6  # the two id_val patches (split == 1) are left out
    assert set(index.frame["wilds_split"]) == {"train", "val", "test"}
    assert index.counts()["examples"] == {"train": 3, "val": 1, "test": 2}


def test_in_distribution_val(tmp_path):
    index = read_camelyon17(write_release(tmp_path), val="id")
    val = index.split("val")
    assert set(val["wilds_split"]) == {"id_val"} and set(val["hospital"]) == {0, 3}
    assert 1 not in set(index.frame["hospital"])
    with pytest.raises(ConfigError, match="'ood'"):
        read_camelyon17(tmp_path, val="oracle")


@pytest.mark.parametrize("rows, message", [
    (ROWS + ["8,004,4,1.5,2,0,0,0,0"], "x_coord"),
    (ROWS + ["8,004,4,1,2,2,0,0,0"], "tumor"),
    (ROWS + ["8,004,4,1,2,0,0,0,3"], "split"),
    (ROWS + ["8,../..,4,1,2,0,0,0,0"], "patient"),
    (ROWS + ["8,4a,4,1,2,0,0,0,0"], "digits"),
])
def test_bad_rows_raise(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        read_camelyon17(write_release(tmp_path, rows=rows))


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="metadata.csv"):
        read_camelyon17(tmp_path)
    write_release(tmp_path, rows=["0,004,4,1,2,0,0,0"], header=",patient,node,x_coord,y_coord,tumor,slide,split")
    with pytest.raises(DataError, match="'center'"):
        read_camelyon17(tmp_path)
