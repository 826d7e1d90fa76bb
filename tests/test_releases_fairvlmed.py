"""Harvard-FairVLMed / Harvard-GF parser: summary CSV first, npz scalar keys otherwise, pickles refused."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.fairvlmed import read_fairvlmed

# (split folder, glaucoma, age, gender/male, race, ethnicity, language, marital status): two classes and at
# least two patients in every split; a few -1 (unknown) codes as in the release.
PATIENTS = [
    ("Training", 1, 56.56, 0, 1, 0, 0, 1), ("Training", 1, 53.91, 0, 2, 0, 0, 1),
    ("Training", 0, 46.30, 0, 2, 0, 0, 1), ("Training", 1, 66.52, 1, 2, 0, 0, 1),
    ("Training", 0, 82.52, 0, 1, 1, 1, 2), ("Training", 0, 35.10, 1, 0, -1, 2, -1),
    ("Validation", 1, 71.42, 0, 0, 0, 0, 0), ("Validation", 0, 43.31, 1, 0, 0, -1, 1),
    ("Validation", 0, 61.00, 1, 1, 1, 1, 3),
    ("Test", 1, 84.71, 0, 2, 0, 0, 0), ("Test", 0, 40.32, 1, 2, 0, 0, 0), ("Test", 0, 57.58, 1, 1, 0, 0, 4),
    ("Test", 1, 73.03, 0, 0, -1, 2, 0),
]
USE = {"Training": "training", "Validation": "validation", "Test": "test"}
WORDS = {"gender": {0: "female", 1: "male"}, "race": {0: "asian", 1: "black", 2: "white"},
         "ethnicity": {0: "non-hispanic", 1: "hispanic", -1: "unknown"},
         "language": {0: "english", 1: "spanish", 2: "other", -1: "unknown"},
         "marital": {0: "married or partnered", 1: "single", 2: "divorced", 3: "widowed", 4: "legally separated",
                     -1: "unknown"}}


def _summary_rows(digits: int, gf: bool) -> list[dict]:
    rows = []
    for i, (folder, glaucoma, age, sex, race, eth, lang, marital) in enumerate(PATIENTS, start=1):
        row = {"filename": f"data_{i:0{digits}d}.npz", "age": f"{age:.2f}", "gender": WORDS["gender"][sex],
               "race": WORDS["race"][race], "ethnicity": WORDS["ethnicity"][eth],
               "language": "other languages" if gf and lang == 2 else WORDS["language"][lang],
               "maritalstatus": WORDS["marital"][marital]}
        if not gf:  # FairVLMed carries the de-identified note and its GPT-4 summary (commas, quotes, newlines)
            row["note"] = f'{int(age)} yo, "narrow angles" ou,\niop 17 mmhg; patient {i}'
            row["gpt4_summary"] = f"Patient {i}, {int(age)} y/o, glaucoma {'suspect' if not glaucoma else 'present'}."
        row.update(glaucoma="yes" if glaucoma else "no", use=USE[folder])
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_fairvlmed_fixture(root: Path) -> Path:
    """Harvard-FairVLMed, small: ``Training/``, ``Validation/``, ``Test/`` with ``data_000NN.npz`` (a 24x32 uint8
    ``slo_fundus`` image plus the documented scalar keys and notes) and ``ReadMe/data_summary.csv``. Returns the
    dataset folder."""
    folder = Path(root) / "Harvard-FairVLMed"
    rng = np.random.default_rng(0)
    for i, (split, glaucoma, age, sex, race, eth, lang, marital) in enumerate(PATIENTS, start=1):
        (folder / split).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / split / f"data_{i:05d}.npz", slo_fundus=rng.integers(0, 256, (24, 32), dtype=np.uint8),
            md=np.float64(-2.5 * glaucoma), tds=rng.normal(size=52), age=np.float64(age), gender=np.int64(sex),
            race=np.int64(race), ethnicity=np.int64(eth), language=np.int64(lang), maritalstatus=np.int64(marital),
            glaucoma=np.int64(glaucoma), note=np.array(f"note {i}"), note_extra=np.array(f"{age} yo; note {i}"))
    _write_csv(folder / "ReadMe" / "data_summary.csv", _summary_rows(5, gf=False))
    return folder


def write_harvard_gf_fixture(root: Path) -> Path:
    """Harvard-GF (GF3300), small: split folders of ``data_00NN.npz`` with a float 24x32 ``rnflt`` map, a tiny
    ``oct_bscans`` volume and the GF keys (``male``, ``hispanic``...), and ``data_summary.csv`` at the root.
    Returns the dataset folder."""
    folder = Path(root) / "Harvard-GF3300"
    rng = np.random.default_rng(1)
    for i, (split, glaucoma, age, sex, race, eth, lang, marital) in enumerate(PATIENTS, start=1):
        (folder / split).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / split / f"data_{i:04d}.npz", rnflt=rng.uniform(-2, 350, (24, 32)).astype(np.float32),
            oct_bscans=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8), md=np.float32(-3.0 * glaucoma),
            tds=rng.normal(size=52).astype(np.float32), glaucoma=np.int64(glaucoma), race=np.int64(race),
            male=np.int64(sex), hispanic=np.int64(eth), language=np.int64(lang), maritalstatus=np.int64(marital),
            age=np.float32(age))
    _write_csv(folder / "data_summary.csv", _summary_rows(4, gf=True))
    return folder


def test_fairvlmed_from_the_summary_csv(tmp_path, monkeypatch):
    root = write_fairvlmed_fixture(tmp_path)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("an npz was opened"))
    index = read_fairvlmed(root)
    assert index.name == "fairvlmed" and index.task is TaskKind.BINARY and index.modality == "fundus"
    assert index.class_names == ("non-glaucoma", "glaucoma")
    frame = index.frame.set_index("patient_id")
    row = frame.loc["data_00005"]
    assert row["image"] == "array:Training/data_00005.npz#slo_fundus" and row["split"] == "train"
    assert (row["label"], row["age"], row["sex"], row["race"]) == (0, 82.52, "female", "black")
    assert (row["ethnicity"], row["language"], row["marital_status"]) == ("hispanic", "spanish", "divorced")
    assert '"narrow angles" ou,\niop 17' in row["note"] and row["gpt4_summary"].startswith("Patient 5,")
    counts = index.counts()
    assert counts["examples"] == {"train": 6, "val": 3, "test": 4}
    assert counts["classes"]["val"] == {"non-glaucoma": 2, "glaucoma": 1}
    assert sum(n for split in counts["classes"].values() for n in split.values()) == len(PATIENTS)
    assert any("ReadMe/data_summary.csv" in note for note in index.notes)


def test_without_csv_only_scalar_keys_are_read(tmp_path, monkeypatch):
    root = write_fairvlmed_fixture(tmp_path)
    from_csv = read_fairvlmed(root).frame
    (root / "ReadMe" / "data_summary.csv").unlink()
    read_keys = []
    original = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__",
                        lambda self, key: read_keys.append(key) or original(self, key))
    index = read_fairvlmed(root)
    assert "slo_fundus" not in read_keys and "tds" not in read_keys and "glaucoma" in read_keys
    from_npz = index.frame
    columns = ["image", "split", "label", "patient_id", "sex", "race", "ethnicity", "language", "marital_status"]
    assert from_npz[columns].equals(from_csv[columns])
    assert np.allclose(from_npz["age"], from_csv["age"])
    assert any("scalar keys read from 13 npz" in note for note in index.notes)


@pytest.mark.parametrize("with_csv", [True, False])
def test_harvard_gf_rnflt(tmp_path, with_csv):
    root = write_harvard_gf_fixture(tmp_path)
    if not with_csv:
        (root / "data_summary.csv").unlink()
    index = read_fairvlmed(root, image_key="rnflt")
    assert index.name == "harvard-gf" and index.modality == "oct"
    row = index.frame.set_index("patient_id").loc["data_0006"]
    assert row["image"] == "array:Training/data_0006.npz#rnflt" and row["sex"] == "male"
    assert row["ethnicity"] == "unknown" and row["marital_status"] == "unknown"
    assert row["language"] == ("other languages" if with_csv else "other")  # each source's own words
    assert index.counts()["examples"] == {"train": 6, "val": 3, "test": 4}
    for split in ("train", "val", "test"):
        assert index.split(split)["label"].nunique() == 2 and index.split(split)["patient_id"].nunique() >= 2


def test_undocumented_codes_and_string_values_are_kept(tmp_path):
    folder = tmp_path / "Training"
    folder.mkdir()
    keys = dict(slo_fundus=np.zeros((4, 4), np.uint8), glaucoma=np.int64(1), age=np.float64(60))
    np.savez(folder / "data_00001.npz", race=np.int64(7), language=np.int64(9), **keys)
    np.savez(folder / "data_00002.npz", race=np.array("Black or African American"), gender=np.float64(1.0), **keys)
    frame = read_fairvlmed(tmp_path).frame.set_index("patient_id")
    assert frame.loc["data_00001", "race"] == "7" and frame.loc["data_00001", "language"] == "9"
    assert frame.loc["data_00001", "sex"] == "unknown"  # no gender key at all
    assert frame.loc["data_00002", "race"] == "Black or African American" and frame.loc["data_00002", "sex"] == "male"


def test_pickled_arrays_are_refused(tmp_path):
    folder = tmp_path / "Training"
    folder.mkdir()
    np.savez(folder / "data_00001.npz", slo_fundus=np.zeros((4, 4), np.uint8),
             glaucoma=np.array([1], dtype=object))
    with pytest.raises(DataError, match=r"data_00001\.npz:glaucoma is a pickled object array; refused"):
        read_fairvlmed(tmp_path)
    (folder / "data_00001.npz").write_bytes(pickle.dumps({"glaucoma": 1}))
    with pytest.raises(DataError, match="not a readable npz archive of plain arrays.*pickled files are refused"):
        read_fairvlmed(tmp_path)


def test_npz_missing_keys(tmp_path):
    folder = tmp_path / "Test"
    folder.mkdir()
    np.savez(folder / "data_00001.npz", glaucoma=np.int64(1), age=np.float64(50))
    with pytest.raises(DataError, match=r"lacks key\(s\) \['slo_fundus'\]"):
        read_fairvlmed(tmp_path)
    with pytest.raises(DataError, match=r"lacks key\(s\) \['rnflt'\]"):
        read_fairvlmed(tmp_path, image_key="rnflt")
    np.savez(folder / "data_00001.npz", slo_fundus=np.zeros((2, 2), np.uint8), glaucoma=np.int64(3))
    with pytest.raises(DataError, match="glaucoma is 3; expected 0 or 1"):
        read_fairvlmed(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda rows: [{k: v for k, v in r.items() if k != "use"} for r in rows], r"lacks column\(s\) 'use'"),
    (lambda rows: [{**r, "use": "holdout"} if i == 0 else r for i, r in enumerate(rows)], r"'use' holds \['holdout'\]"),
    (lambda rows: [{**r, "glaucoma": "maybe"} if i == 0 else r for i, r in enumerate(rows)],
     r"'glaucoma' holds \['maybe'\]"),
    (lambda rows: rows + [rows[0]], "lists 'data_00001.npz' more than once"),
    (lambda rows: [{**r, "filename": "../../etc/passwd"} if i == 0 else r for i, r in enumerate(rows)], "escapes"),
])
def test_bad_summary_csv(tmp_path, edit, message):
    root = write_fairvlmed_fixture(tmp_path)
    _write_csv(root / "ReadMe" / "data_summary.csv", edit(_summary_rows(5, gf=False)))
    with pytest.raises(DataError, match="Harvard-FairVLMed: .*" + message):
        read_fairvlmed(root)


def test_file_found_in_another_split_folder_keeps_the_csv_split(tmp_path):
    root = write_fairvlmed_fixture(tmp_path)
    (root / "Training" / "data_00001.npz").rename(root / "Test" / "data_00001.npz")
    row = read_fairvlmed(root).frame.set_index("patient_id").loc["data_00001"]
    assert row["image"] == "array:Test/data_00001.npz#slo_fundus" and row["split"] == "train"


def test_missing_release_and_bad_image_key(tmp_path):
    with pytest.raises(DataError, match=r"Harvard-FairVLMed: neither data_summary\.csv .*ReadMe/data_summary\.csv"
                                        r".* nor npz files in .*Training"):
        read_fairvlmed(tmp_path)
    with pytest.raises(DataError, match="Harvard-GF: dataset root .* is not a folder"):
        read_fairvlmed(tmp_path / "absent", image_key="rnflt")
    with pytest.raises(ConfigError, match="slo_fundus, rnflt"):
        read_fairvlmed(tmp_path, image_key="oct_bscans")
