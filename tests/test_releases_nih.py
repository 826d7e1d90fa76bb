"""NIH ChestX-ray14 metadata parser: fixtures in the exact CSV format, plus the real gzipped metadata."""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from medrival.core.errors import DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import label_column
from medrival.data.releases.nih_chestxray14 import FINDINGS, read_nih_chestxray14

REAL = Path("/work/shared/data/real/nih_chestxray14")
HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
          "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
ROWS = [
    "00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.14300000000000002,0.14300000000000002",
    "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.14300000000000002,0.14300000000000002",
    "00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171",
    "00000003_000.png,Hernia|Pleural_Thickening|Infiltration,0,3,413,F,AP,2500,2048,0.168,0.168",
    "00000004_000.png,Mass|Nodule,0,4,82,M,AP,2500,2048,0.168,0.168",
]


def write_release(root: Path, rows=ROWS, name="Data_Entry_2017_v2020.csv", trailing_comma=False, gz=False):
    lines = [HEADER + ("," if trailing_comma else "")] + [r + ("," if trailing_comma else "") for r in rows]
    text = "\n".join(lines) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(root / (name + ".gz"), "wt") as handle:
            handle.write(text)
    else:
        (root / name).write_text(text)
    return root


def test_header_with_bracketed_commas_and_labels(tmp_path):
    index = read_nih_chestxray14(write_release(tmp_path))
    frame = index.frame.set_index("image")
    assert index.task is TaskKind.MULTILABEL and index.class_names == FINDINGS and index.modality == "xray"
    assert frame.loc["images/00000001_001.png", label_column("Emphysema")] == 1.0
    row = frame.loc["images/00000003_000.png"]
    assert [c for c in FINDINGS if row[label_column(c)] == 1] == ["Infiltration", "Pleural_Thickening", "Hernia"]
    assert frame.loc["images/00000002_000.png", [label_column(c) for c in FINDINGS]].sum() == 0  # No Finding
    assert frame.loc["images/00000001_000.png", "sex"] == "M" and frame.loc["images/00000004_000.png", "age"] == 82
    assert frame.loc["images/00000001_001.png", "follow_up"] == 1
    assert frame.loc["images/00000004_000.png", "view_position"] == "AP"


def test_2017_file_trailing_comma_gzip_and_impossible_age(tmp_path):
    index = read_nih_chestxray14(write_release(tmp_path, name="Data_Entry_2017.csv", trailing_comma=True, gz=True))
    assert len(index.frame) == 5 and "metadata: Data_Entry_2017.csv.gz" in index.notes
    assert pd.isna(index.frame.set_index("image").loc["images/00000003_000.png", "age"])
    assert any("1 impossible age" in note for note in index.notes)


def test_kaggle_sample_ages_with_year_suffix(tmp_path):
    rows = [r.replace(",57,", ",057Y,") for r in ROWS]
    index = read_nih_chestxray14(write_release(tmp_path, rows=rows))
    assert index.frame["age"].iloc[0] == 57


def test_official_lists_and_patient_level_val(tmp_path):
    root = write_release(tmp_path)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n")
    index = read_nih_chestxray14(root, val_fraction=0.5)
    split = index.frame.set_index("image")["split"]
    assert split["images/00000003_000.png"] == "test"
    assert split["images/00000001_000.png"] == split["images/00000001_001.png"] in ("train", "val")
    assert "images/00000004_000.png" not in split.index  # in neither list
    assert any("1 image(s) in neither" in note for note in index.notes)


def test_seeded_patient_split_without_lists(tmp_path):
    rows = [f"{p:08d}_{k:03d}.png,No Finding,{k},{p},40,F,PA,1,1,0.1,0.1" for p in range(1, 200) for k in range(3)]
    index = read_nih_chestxray14(write_release(tmp_path, rows=rows), seed=3)
    assert (index.frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(index.frame["split"]) == {"train", "val", "test"}
    again = read_nih_chestxray14(tmp_path, seed=3)
    assert again.frame["split"].tolist() == index.frame["split"].tolist()


def test_images_located_in_official_kaggle_and_root_layouts(tmp_path):
    root = write_release(tmp_path)
    (root / "images").mkdir()
    (root / "images" / "00000001_000.png").write_bytes(b"")
    (root / "images_002" / "images").mkdir(parents=True)
    (root / "images_002" / "images" / "00000002_000.png").write_bytes(b"")
    (root / "00000004_000.png").write_bytes(b"")
    images = read_nih_chestxray14(root).frame["image"].tolist()
    assert images == ["images/00000001_000.png", "images/00000001_001.png", "images_002/images/00000002_000.png",
                      "images/00000003_000.png", "00000004_000.png"]


@pytest.mark.parametrize("rows, message", [
    (ROWS + ["00000009_000.png,Cardiomegally,0,9,50,M,PA,1,1,0.1,0.1"], "Cardiomegally"),
    (ROWS + [ROWS[0]], "twice"),
    (ROWS + ["../../etc/passwd,No Finding,0,9,50,M,PA,1,1,0.1,0.1"], "escapes"),
])
def test_bad_rows_raise(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        read_nih_chestxray14(write_release(tmp_path, rows=rows))


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="Data_Entry_2017"):
        read_nih_chestxray14(tmp_path)
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Labels,a,b,c,d,e\nx.png,No Finding,0,1,2,M,PA\n")
    with pytest.raises(DataError, match="'Finding Labels'"):
        read_nih_chestxray14(tmp_path)


def test_real_metadata():
    if not (REAL / "Data_Entry_2017_v2020.csv.gz").is_file():
        pytest.skip("real NIH ChestX-ray14 metadata absent")
    index = read_nih_chestxray14(REAL)
    counts = index.counts()
    assert sum(counts["examples"].values()) == 112_120
    assert index.frame["patient_id"].nunique() == 30_805
    totals = {c: sum(counts["classes"][s][c] for s in counts["classes"]) for c in FINDINGS}
    assert totals["Hernia"] == 227 and totals["Infiltration"] == 19_894  # published label frequencies
    assert (index.frame.groupby("patient_id")["split"].nunique() == 1).all()
    frame = index.frame.set_index("image")
    assert frame.loc["00000001_000.png", label_column("Cardiomegaly")] == 1.0  # the real PNG sits in the root
    assert frame.loc["00000001_000.png", "age"] == 57
    assert any("2 of 112120 image files found" in note for note in index.notes)
