"""PAPILA parser: the clinical sheets in the release layout (two merged header rows plus an ``ID`` row), CSV
exports, the three suspect policies and the patient-level split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases import papila
from medrival.data.releases.papila import read_papila

RELEASE_FOLDER = "PapilaDB-PAPILA-17f8fa7746adb20275b5b6a0d99dc9dfe3007e9f"
HEADER_1 = [None, "Age", "Gender", "Diagnosis", "Refractive_Defect", None, None, "Phakic/Pseudophakic", "IOP", None,
            "Pachymetry", "Axial_Length", "VF_MD"]
HEADER_2 = [None, "Age", "Gender", "Diagnosis", "dioptre_1", "dioptre_2", "astigmatism", "Phakic/Pseudophakic",
            "Pneumatic", "Perkins", "Pachymetry", "Axial_Length", "VF_MD"]
# (ID, age, gender, OD diagnosis, OS diagnosis). With seed 0 and (0.7, 0.1, 0.2): 002-007 -> train,
# 003/027/041 -> val, 001/008/011/012 -> test; every split keeps both classes once suspects (2) are excluded.
PATIENTS = [
    ("#001", 61, 1, 0, 0), ("#002", 47, 0, 2, 2), ("#003", 39, 1, 0, 0), ("#004", 58, 1, 1, 1),
    ("#005", 89, 1, 1, 1), ("#006", 69, 0, 0, 0), ("#007", 22, 1, 0, 0), ("#008", 75, 0, 1, 1),
    ("#011", 54, 0, 0, 0), ("#012", 70, 1, 1, 0), ("#027", 66, 0, 1, 1), ("#041", 50, 1, 0, 2),
]


def _measures(eye: str, row: int) -> list:
    # Perkins is blank when the pneumatic tonometer was used, as in most real rows; axial length as float.
    return [0.75 - row / 4, -1.75, 90.0 if eye == "OD" else 88.0, row % 2, 21.0, None, 586 - row, 23.64, -0.07]


def sheet_rows(eye: str, patients=PATIENTS) -> list[list]:
    """The rows of ``patient_data_{eye}.xlsx``: two header rows, the ``ID`` row, one row per patient."""
    column = 3 if eye == "OD" else 4
    body = [[p[0], p[1], p[2], p[column], *_measures(eye, i)] for i, p in enumerate(patients)]
    return [HEADER_1, HEADER_2, ["ID"], *body]


def _write_xlsx(path: Path, rows: list[list]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for row in rows:
        sheet.append(row)
    for cells in ("E1:G1", "I1:J1"):  # the release merges the group headers over their sub-columns
        sheet.merge_cells(cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


def write_fixture(root: Path) -> Path:
    """A complete small PAPILA release under ``root``: the figshare zip's hashed top folder, both clinical
    sheets in the original xlsx layout and a 32x24 JPEG for every eye. Returns ``root`` (the folder above the
    release folder, a layout the parser accepts)."""
    folder = Path(root) / RELEASE_FOLDER
    for eye in ("OD", "OS"):
        rows = sheet_rows(eye) + [[None] * 13]  # a trailing empty row, as spreadsheets often carry
        _write_xlsx(folder / "ClinicalData" / f"patient_data_{eye.lower()}.xlsx", rows)
    images = folder / "FundusImages"
    images.mkdir(parents=True, exist_ok=True)
    for number, (pid, *_rest) in enumerate(PATIENTS):
        for eye in ("OD", "OS"):
            pixels = np.full((24, 32, 3), (number * 20) % 256, dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"RET{pid[1:]}{eye}.jpg", quality=90)
    (folder / "HelpCode").mkdir(exist_ok=True)
    return Path(root)


def _write_csv(folder: Path, eye: str, rows: list[list], sep: str = ",", decimal: str = ".") -> None:
    def text(value):
        if value is None:
            return ""
        return str(value).replace(".", decimal) if isinstance(value, float) else str(value)

    lines = [sep.join(text(v) for v in row) for row in rows]
    (folder / "ClinicalData").mkdir(parents=True, exist_ok=True)
    (folder / "ClinicalData" / f"patient_data_{eye.lower()}.csv").write_text("\n".join(lines) + "\n")


def test_binary_task_excludes_suspects(tmp_path):
    index = read_papila(write_fixture(tmp_path))
    assert index.name == "papila" and index.task is TaskKind.BINARY and index.modality == "fundus"
    assert index.class_names == ("healthy", "glaucoma")
    frame = index.frame.set_index("image")
    assert len(frame) == 2 * len(PATIENTS) - 3  # #002 (both eyes) and #041 OS are suspects
    row = frame.loc[f"{RELEASE_FOLDER}/FundusImages/RET005OD.jpg"]
    assert (row["patient_id"], row["eye"], row["age"], row["sex"], row["label"]) == ("005", "OD", 89, "female", 1)
    assert frame.loc[f"{RELEASE_FOLDER}/FundusImages/RET012OS.jpg", "label"] == 0  # eyes may differ
    assert f"{RELEASE_FOLDER}/FundusImages/RET041OD.jpg" in frame.index
    assert f"{RELEASE_FOLDER}/FundusImages/RET041OS.jpg" not in frame.index
    counts = index.counts()
    assert sum(counts["examples"].values()) == 21
    assert sum(n for split in counts["classes"].values() for n in split.values()) == 21
    assert "3 suspect eye(s) excluded" in index.notes and "21 of 21 fundus images found locally" in index.notes


def test_split_by_patient_keeps_both_eyes_together(tmp_path):
    index = read_papila(write_fixture(tmp_path))
    frame = index.frame
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()
    for split in ("train", "val", "test"):
        rows = index.split(split)
        assert rows["patient_id"].nunique() >= 2 and rows["label"].nunique() == 2
    other = read_papila(tmp_path, seed=1)
    assert (other.frame.groupby("patient_id")["split"].nunique() == 1).all()


@pytest.mark.parametrize("suspects, name, classes, positives", [
    ("glaucoma", "papila-suspects-as-glaucoma", ("healthy", "glaucoma"), {1: 12}),
    ("class", "papila-3class", ("healthy", "glaucoma", "suspect"), {1: 9, 2: 3}),
])
def test_suspect_policies(tmp_path, suspects, name, classes, positives):
    index = read_papila(write_fixture(tmp_path), suspects=suspects)
    assert index.name == name and index.class_names == classes and len(index.frame) == 24
    assert {k: int((index.frame["label"] == k).sum()) for k in positives} == positives
    assert index.task is (TaskKind.MULTICLASS if suspects == "class" else TaskKind.BINARY)
    suspect = index.frame.set_index("image").loc[f"{RELEASE_FOLDER}/FundusImages/RET002OD.jpg"]
    assert suspect["diagnosis"] == 2 and suspect["diagnosis_name"] == "suspect"


def test_merged_headers_name_the_clinical_columns(tmp_path):
    frame = read_papila(write_fixture(tmp_path)).frame.set_index("image")
    row = frame.loc[f"{RELEASE_FOLDER}/FundusImages/RET004OS.jpg"]
    assert row["dioptre_1"] == 0.0 and row["dioptre_2"] == -1.75 and row["astigmatism"] == 88.0
    assert row["iop_pneumatic"] == 21.0 and np.isnan(row["iop_perkins"]) and row["pachymetry"] == 583
    assert row["axial_length"] == 23.64 and row["vf_md"] == -0.07 and row["phakic"] == 1


@pytest.mark.parametrize("header_rows, sep, decimal", [(2, ",", "."), (1, ",", "."), (2, ";", ",")])
def test_csv_exports_for_users_without_openpyxl(tmp_path, header_rows, sep, decimal):
    for eye in ("OD", "OS"):
        rows = sheet_rows(eye)
        rows = rows if header_rows == 2 else [["ID", *HEADER_2[1:]], *rows[3:]]
        _write_csv(tmp_path, eye, rows, sep, decimal)
    index = read_papila(tmp_path)
    assert len(index.frame) == 21
    row = index.frame.set_index("image").loc["FundusImages/RET004OS.jpg"]
    assert row["dioptre_2"] == -1.75 and row["axial_length"] == 23.64 and row["age"] == 58
    assert "0 of 21 fundus images found locally" in index.notes


def test_xlsx_without_openpyxl_says_how_to_fix(tmp_path, monkeypatch):
    write_fixture(tmp_path)
    monkeypatch.setattr(papila, "_has_openpyxl", lambda: False)
    with pytest.raises(DataError, match=r"openpyxl.*patient_data_od\.csv"):
        read_papila(tmp_path)
    folder = tmp_path / RELEASE_FOLDER
    for eye in ("OD", "OS"):
        _write_csv(folder, eye, sheet_rows(eye))
    assert len(read_papila(tmp_path).frame) == 21  # the CSV exports are used instead


def test_missing_sheet_names_the_expected_paths(tmp_path):
    root = write_fixture(tmp_path) / RELEASE_FOLDER
    (root / "ClinicalData" / "patient_data_os.xlsx").unlink()
    with pytest.raises(DataError, match=r"PAPILA: clinical data sheet not found.*patient_data_os\.xlsx.*"
                                        r"patient_data_os\.csv"):
        read_papila(root)
    with pytest.raises(DataError, match="PAPILA"):
        read_papila(tmp_path / "nowhere")


def test_missing_diagnosis_column(tmp_path):
    for eye in ("OD", "OS"):
        rows = [[cell for i, cell in enumerate(row) if i != 3] for row in sheet_rows(eye)]
        _write_csv(tmp_path, eye, rows)
    with pytest.raises(DataError, match=r"PAPILA: patient_data_od\.csv lacks column\(s\) 'diagnosis'"):
        read_papila(tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows[3].__setitem__(3, 7), r"'Diagnosis' holds '7'; expected 0 = healthy"),
    (lambda rows: rows[3].__setitem__(2, "F"), r"'Gender' holds 'F'; expected a number"),
    (lambda rows: rows.append(list(rows[4])), "lists patient #002 more than once"),
    (lambda rows: rows.append(["patient 9", 40, 0, 0]), "ID is 'patient 9'"),
])
def test_bad_rows_raise(tmp_path, change, message):
    for eye in ("OD", "OS"):
        rows = sheet_rows(eye)
        if eye == "OD":
            change(rows)
        _write_csv(tmp_path, eye, rows)
    with pytest.raises(DataError, match=message):
        read_papila(tmp_path)


def test_sheet_without_patient_rows_and_unknown_option(tmp_path):
    for eye in ("OD", "OS"):
        _write_csv(tmp_path, eye, [HEADER_1, HEADER_2, ["ID"]])
    with pytest.raises(DataError, match="no header rows followed by patient rows"):
        read_papila(tmp_path)
    with pytest.raises(ConfigError, match="exclude, glaucoma, class"):
        read_papila(tmp_path, suspects="drop")
