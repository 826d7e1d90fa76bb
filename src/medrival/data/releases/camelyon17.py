"""Camelyon17-WILDS patches (Koh et al. 2021; Bandi et al. 2018) from ``metadata.csv``.

Release format: an unnamed index column, then ``patient,node,x_coord,y_coord,tumor,slide,center,split``; images
``patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}_x_{x}_y_{y}.png``. Quirks handled:
- ``patient`` is zero padded (``004``) and the padding is part of the file name: read as text, never as a number.
- The file's ``split`` column only says 0 = train / 1 = in-distribution validation for the training hospitals;
  the WILDS "official" scheme makes hospital (``center``) 1 the OOD validation set and hospital 2 the test set.
  ``val="ood"`` (default) keeps that scheme and leaves the ID-validation patches out; ``val="id"`` uses them as
  val and leaves hospital 1 out. The WILDS split name is kept in ``wilds_split``.
- Hospital (``center``) is kept as ``hospital`` (the domain for OOD analyses), ``slide`` as ``group_id``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex
from medrival.data.releases.paths import read_annotation_csv, require_file, safe_relative

RELEASE = "Camelyon17-WILDS"
VAL_CENTER, TEST_CENTER = 1, 2
_COLUMNS = ("patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split")
_INTEGERS = ("node", "x_coord", "y_coord", "tumor", "slide", "center", "split")
LICENCE = "CC0 1.0"
SOURCE = "WILDS camelyon17_v1.0 (Koh et al., ICML 2021), from the CAMELYON17 challenge (Bandi et al. 2018)"


def read_camelyon17(root: str | Path, *, val: str = "ood") -> ReleaseIndex:
    """Index ``metadata.csv`` under ``root`` (the ``camelyon17_v1.0`` folder) with the WILDS official split."""
    if val not in ("ood", "id"):
        raise ConfigError(f"{RELEASE}: val must be 'ood' (hospital {VAL_CENTER}) or 'id' (held-out patches of "
                          f"the training hospitals), got {val!r}.")
    root = Path(root)
    csv = require_file(root, ("metadata.csv",), RELEASE)
    raw = _read_metadata(csv)
    wilds = _wilds_split(raw)
    keep = {"train": "train", "test": "test", "val": "val" if val == "ood" else None,
            "id_val": "val" if val == "id" else None}
    frame = pd.DataFrame({
        "image": [safe_relative(root, _patch_path(*row), RELEASE) for row in
                  raw[["patient", "node", "x_coord", "y_coord"]].itertuples(index=False, name=None)],
        "label": raw["tumor"].astype("int64"), "patient_id": raw["patient"], "node": raw["node"],
        "group_id": raw["slide"].astype(str), "hospital": raw["center"], "wilds_split": wilds,
        "split": wilds.map(keep),
    })
    left_out = int(frame["split"].isna().sum())
    frame = frame[frame["split"].notna()].reset_index(drop=True)
    notes = [f"WILDS official split: train hospitals {sorted(set(frame['hospital'][frame['split'] == 'train']))}, "
             f"test hospital {TEST_CENTER}, val = {'hospital %d (OOD)' % VAL_CENTER if val == 'ood' else 'ID'}",
             f"{left_out} patch(es) of the unused validation set left out"]
    return ReleaseIndex(name="camelyon17-wilds", task=TaskKind.BINARY, modality="pathology",
                        class_names=("normal", "tumor"), frame=frame, licence=LICENCE, source=SOURCE, notes=notes)


def _read_metadata(csv: Path) -> pd.DataFrame:
    # index_col=0: the first column is the unnamed pandas index WILDS wrote; patient stays text (padding).
    raw = read_annotation_csv(csv, RELEASE, columns=_COLUMNS, index_col=0)
    out = raw.reset_index(drop=True)
    out["patient"] = out["patient"].str.strip()
    odd = out["patient"][~out["patient"].str.fullmatch(r"\d+")]
    if len(odd):  # the patient id becomes part of a folder name: digits only (zero padding kept)
        raise DataError(f"{RELEASE}: {csv.name} column 'patient' holds {odd.iloc[0]!r}; expected digits like '004'.")
    for column in _INTEGERS:
        values = pd.to_numeric(out[column].str.strip(), errors="coerce")
        if values.isna().any() or (values != values.round()).any():
            first = out[column][values.isna() | (values != values.round())].iloc[0]
            raise DataError(f"{RELEASE}: {csv.name} column {column!r} holds {first!r}; expected integers.")
        out[column] = values.astype("int64")
    if not out["tumor"].isin((0, 1)).all():
        raise DataError(f"{RELEASE}: {csv.name} column 'tumor' must be 0 or 1.")
    return out


def _wilds_split(raw: pd.DataFrame) -> pd.Series:
    bad = sorted(set(raw["split"]) - {0, 1})
    if bad:
        raise DataError(f"{RELEASE}: metadata.csv column 'split' holds {bad}; expected 0 (train) or 1 (id_val).")
    names = np.where(raw["split"] == 1, "id_val", "train").astype(object)
    names[raw["center"].to_numpy() == VAL_CENTER] = "val"
    names[raw["center"].to_numpy() == TEST_CENTER] = "test"
    return pd.Series(names, index=raw.index)


def _patch_path(patient: str, node: int, x: int, y: int) -> str:
    folder = f"patient_{patient}_node_{node}"
    return f"patches/{folder}/patch_{folder}_x_{x}_y_{y}.png"
