"""PAPILA (Kovalyk et al., Sci. Data 2022) from ``ClinicalData/patient_data_{od,os}.xlsx``.

Release format: ``FundusImages/RET{ID}{OD|OS}.jpg`` (ID zero padded to three digits, e.g. ``RET002OD.jpg``) and
one spreadsheet per eye, one row per patient. The sheets carry a two-row header (merged group cells), then a
row holding only ``ID``, then the patients (columns A..M)::

    row 1: -    Age Gender Diagnosis Refractive_Defect (E:G)           Phakic/Pseudophakic IOP (I:J)
           Pachymetry Axial_Length VF_MD
    row 2: -    Age Gender Diagnosis dioptre_1 dioptre_2 astigmatism Phakic/Pseudophakic Pneumatic Perkins
           Pachymetry Axial_Length VF_MD
    row 3: ID
    row 4: #002 47  0      2         0.75      -1.75     90          0                   21        (blank)
           586        23.64        -0.07

Codes (the release documentation): Gender 0 = male, 1 = female; Diagnosis 0 = healthy, 1 = glaucoma,
2 = suspect; Phakic/Pseudophakic 0 = phakic, 1 = pseudophakic. ``patient_id`` is the ID without ``#``, zero
padded as in the file names (``#002`` -> ``002``). Quirks handled:
- The header is not at a fixed row: every row before the first ``#NNN`` row is header, and each column takes the
  lowest non-empty header cell (``Pneumatic`` under the merged ``IOP``). CSV exports with one header row or two
  (``patient_data_od.csv``) read the same way, for users without openpyxl; a ``;``-separated export with decimal
  commas (Excel in a Spanish locale, where PAPILA was made) is recognised from its header line.
- The diagnosis is per eye (the two eyes of a patient may differ); a row is one eye image.
- Tasks: glaucoma vs healthy with suspects excluded (default), suspects counted as glaucoma, or 3 classes.
- No official split: patients are split (seeded) so both eyes stay together; the k-fold lists in ``HelpCode/``
  are not used.
- The figshare zip unpacks into ``PapilaDB-PAPILA-<commit hash>/``; the root may be that folder or its parent.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split
from medrival.data.releases.paths import require_columns, require_file, safe_relative, scan_names

RELEASE = "PAPILA"
LICENCE = "CC BY 4.0 (figshare record; see https://figshare.com/articles/dataset/PAPILA/14798004)"
SOURCE = ("https://figshare.com/articles/dataset/PAPILA/14798004 (Kovalyk et al., Sci. Data 9:291, 2022, "
          "doi:10.1038/s41597-022-01388-1)")
SUSPECTS = ("exclude", "glaucoma", "class")
DIAGNOSES: dict[int, str] = {0: "healthy", 1: "glaucoma", 2: "suspect"}
SEX: dict[int, str] = {0: "male", 1: "female"}
EYES: tuple[str, ...] = ("OD", "OS")
IMAGE_FOLDER = "FundusImages"
CLINICAL_FOLDER = "ClinicalData"
# Lower-cased header text -> index column. Unknown headers are ignored (a re-exported sheet may add columns).
_MEASURES = {"dioptre_1": "dioptre_1", "dioptre_2": "dioptre_2", "astigmatism": "astigmatism",
             "phakic/pseudophakic": "phakic", "pneumatic": "iop_pneumatic", "perkins": "iop_perkins",
             "pachymetry": "pachymetry", "axial_length": "axial_length", "vf_md": "vf_md"}
_REQUIRED = ("age", "gender", "diagnosis")
_ID = re.compile(r"^#?\s*(\d+)$")


def read_papila(root: str | Path, *, suspects: str = "exclude", seed: int = 0,
                fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> ReleaseIndex:
    """Index both eyes of every patient; ``suspects`` is ``exclude`` (binary, default), ``glaucoma`` (binary,
    suspects positive) or ``class`` (3 classes: healthy, glaucoma, suspect). Split by patient (seeded)."""
    if suspects not in SUSPECTS:
        raise ConfigError(f"{RELEASE}: suspects={suspects!r} is not one of {', '.join(SUSPECTS)}.")
    folder = _release_folder(Path(root))
    frame = pd.concat([_eye_frame(Path(root), folder, eye) for eye in EYES], ignore_index=True)
    frame["split"] = grouped_split(frame["patient_id"], fractions, seed)
    code = frame["diagnosis"]
    if suspects == "exclude":
        frame = frame[code != 2].reset_index(drop=True)
        frame["label"] = (frame["diagnosis"] == 1).astype("int64")
    elif suspects == "glaucoma":
        frame["label"] = code.isin((1, 2)).astype("int64")
    else:
        frame["label"] = code.astype("int64")
    found = len(scan_names(folder / IMAGE_FOLDER) & {p.rsplit("/", 1)[-1] for p in frame["image"]})
    notes = [f"split by patient {fractions} (seed {seed}); both eyes of a patient share a split",
             {"exclude": f"{int((code == 2).sum())} suspect eye(s) excluded",
              "glaucoma": "suspect eyes counted as glaucoma", "class": "3 classes: healthy, glaucoma, suspect"}
             [suspects], f"{found} of {len(frame)} fundus images found locally"]
    name = {"exclude": "papila", "glaucoma": "papila-suspects-as-glaucoma", "class": "papila-3class"}[suspects]
    classes = ("healthy", "glaucoma", "suspect") if suspects == "class" else ("healthy", "glaucoma")
    task = TaskKind.MULTICLASS if suspects == "class" else TaskKind.BINARY
    return ReleaseIndex(name=name, task=task, modality="fundus", class_names=classes, frame=frame,
                        licence=LICENCE, source=SOURCE, notes=notes)


def _release_folder(root: Path) -> Path:
    """``root`` itself, or the single ``PapilaDB-PAPILA-*`` style child holding ``ClinicalData/``."""
    if (root / CLINICAL_FOLDER).is_dir() or not root.is_dir():
        return root
    children = [c for c in sorted(root.iterdir()) if c.is_dir() and (c / CLINICAL_FOLDER).is_dir()
                and not c.name.startswith(".") and c.name != "__MACOSX"]
    if len(children) > 1:
        raise DataError(f"{RELEASE}: {root} holds several release folders ({', '.join(c.name for c in children)}); "
                        "pass one of them as the root.")
    return children[0] if children else root


def _eye_frame(root: Path, folder: Path, eye: str) -> pd.DataFrame:
    sheet = _sheet_file(folder, f"patient_data_{eye.lower()}")
    table = _parse_sheet(_read_grid(sheet), sheet)
    prefix = "" if folder == root else folder.relative_to(root).as_posix() + "/"
    ids = table["id"].map(lambda text: f"{int(_ID.match(text).group(1)):03d}")
    twice = ids[ids.duplicated()]
    if len(twice):
        raise DataError(f"{RELEASE}: {sheet.name} lists patient #{twice.iloc[0]} more than once.")
    diagnosis = _codes(table["diagnosis"], DIAGNOSES, sheet, "Diagnosis", blank_ok=False)
    gender = _codes(table["gender"], SEX, sheet, "Gender", blank_ok=True)
    frame = pd.DataFrame({
        "image": [safe_relative(root, f"{prefix}{IMAGE_FOLDER}/RET{i}{eye}.jpg", RELEASE) for i in ids],
        "patient_id": ids.to_numpy(), "eye": eye, "age": _numbers(table["age"], sheet, "Age").to_numpy(),
        "sex": gender.map(lambda c: SEX.get(c, "unknown")).to_numpy(),
        "diagnosis": diagnosis.astype("int64").to_numpy(),
        "diagnosis_name": diagnosis.map(DIAGNOSES).to_numpy(),
    })
    for header, column in _MEASURES.items():
        if header in table.columns:
            frame[column] = _numbers(table[header], sheet, header).to_numpy()
    return frame


def _sheet_file(folder: Path, stem: str) -> Path:
    """The ``.xlsx`` sheet (needs openpyxl), else its CSV export; the error names both and the fix."""
    clinical = folder / CLINICAL_FOLDER
    xlsx, csv = clinical / f"{stem}.xlsx", clinical / f"{stem}.csv"
    has_openpyxl = _has_openpyxl()
    if xlsx.is_file() and (has_openpyxl or not csv.is_file()):
        if not has_openpyxl:
            raise DataError(f"{RELEASE}: reading {xlsx} needs the openpyxl package (`pip install openpyxl`); "
                            f"or save the sheet as CSV next to it ({csv.name}).")
        return xlsx
    return require_file(folder, (f"{CLINICAL_FOLDER}/{stem}.xlsx", f"{CLINICAL_FOLDER}/{stem}.csv"), RELEASE,
                        "clinical data sheet")


def _has_openpyxl() -> bool:
    return importlib.util.find_spec("openpyxl") is not None


def _read_grid(sheet: Path) -> list[list[str]]:
    """Every cell of the first worksheet (or of the CSV) as stripped text, '' for empty cells."""
    try:
        if sheet.suffix.lower() == ".xlsx":
            raw = pd.read_excel(sheet, header=None, dtype=object, sheet_name=0, engine="openpyxl")
            decimal_comma = False
        else:
            with sheet.open(encoding="utf-8-sig") as handle:
                first = handle.readline()
            sep = ";" if first.count(";") > first.count(",") else ","
            raw = pd.read_csv(sheet, header=None, dtype=str, keep_default_na=False, sep=sep, encoding="utf-8-sig")
            decimal_comma = sep == ";"  # a ';' export comes from a locale whose decimal mark is ','
    except (OSError, ValueError, UnicodeDecodeError, KeyError) as error:
        raise DataError(f"{RELEASE}: cannot read {sheet} ({error}). Is it the original release file?") from error
    grid = [[_cell(value) for value in row] for row in raw.itertuples(index=False, name=None)]
    if decimal_comma:
        grid = [[re.sub(r"^(-?\d+),(\d+)$", r"\1.\2", cell) for cell in row] for row in grid]
    return grid


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 47 as 47.0
    return str(value).strip()


def _parse_sheet(grid: list[list[str]], sheet: Path) -> pd.DataFrame:
    """Header rows = every row above the first patient row; a column is named by its lowest header cell."""
    start = next((i for i, row in enumerate(grid) if row and _ID.match(row[0])), None)
    if start is None or start == 0:
        raise DataError(f"{RELEASE}: {sheet.name} has no header rows followed by patient rows whose first cell is "
                        "an ID like '#002'. Is this the original release sheet?")
    width = max(len(row) for row in grid)
    names = ["id"]
    for column in range(1, width):
        cells = [row[column] for row in grid[:start] if column < len(row) and row[column]]
        names.append(cells[-1].lower() if cells else f"unnamed_{column}")
    rows = [row + [""] * (width - len(row)) for row in grid[start:] if row and row[0]]
    odd = [row[0] for row in rows if not _ID.match(row[0])]
    if odd:
        raise DataError(f"{RELEASE}: {sheet.name} has a row whose ID is {odd[0]!r}; expected IDs like '#002'.")
    table = pd.DataFrame(rows, columns=names)
    table = table.loc[:, ~table.columns.duplicated()]
    require_columns(table, _REQUIRED, sheet, RELEASE)
    return table


def _numbers(values: pd.Series, sheet: Path, column: str) -> pd.Series:
    numbers = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    bad = values[numbers.isna() & (values != "")]
    if len(bad):
        raise DataError(f"{RELEASE}: {sheet.name} column {column!r} holds {bad.iloc[0]!r}; expected a number.")
    return numbers.astype(float)


def _codes(values: pd.Series, legend: dict[int, str], sheet: Path, column: str, blank_ok: bool) -> pd.Series:
    numbers = _numbers(values, sheet, column)
    allowed = numbers.isin(list(legend)) | (numbers.isna() & blank_ok)
    if not allowed.all():
        shown = values[~allowed].iloc[0] or "(blank)"
        codes = ", ".join(f"{k} = {v}" for k, v in legend.items())
        raise DataError(f"{RELEASE}: {sheet.name} column {column!r} holds {shown!r}; expected {codes}.")
    return numbers
