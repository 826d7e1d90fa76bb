"""Generic CSV manifest parser: labels as names or indices, multilabel forms, split spellings, root containment."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrival.core.errors import ConfigError, DataError
from medrival.core.types import TaskKind
from medrival.data.releases.index import label_column
from medrival.data.releases.manifest import read_manifest

# path, label, split (spelled as users do), patient, sex, age. Windows separators and "./" prefixes on purpose.
ROWS = [
    ("images/p01_a.png", "pneumonia", "Train", "p01", "F", "4"),
    ("images/p01_b.png", "pneumonia", "train", "p01", "F", "4"),
    ("images\\p02_a.png", "normal", "TRAINING", "p02", "M", "7"),
    ("./images/p03_a.png", "normal", "train", "p03", "M", ""),
    ("images/p04_a.png", "pneumonia", "Valid", "p04", "F", "2"),
    ("images/p05_a.png", "normal", "dev", "p05", "M", "3"),
    ("images/p06_a.png", "pneumonia", "Test", "p06", "M", "5"),
    ("images/p07_a.png", "normal", "testing", "p07", "F", "6"),
    ("images/p07_b.png", "normal", "TEST", "p07", "F", "6"),
]
HEADER = "path,label,split,patient,sex,age"


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), shade, dtype=np.uint8)).save(path)


def write_manifest(root: Path, header: str = HEADER, rows=ROWS, sep: str = ",", name: str = "manifest.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [header.replace(",", sep), *(sep.join(row) for row in rows)]
    (root / name).write_text("\n".join(lines) + "\n")
    return root


def write_fixture(root: Path) -> Path:
    """A user data set: ``manifest.csv`` (path,label,split,patient,sex,age; class names as labels, mixed split
    spellings, a Windows path) and a 32x24 PNG per row under ``images/``. Returns ``root``; read it with
    ``read_manifest(root, "manifest.csv", split_column="split", patient_column="patient", modality="xray",
    name="my-cxr")``."""
    root = Path(root)
    for number, row in enumerate(ROWS):
        _png(root / row[0].replace("\\", "/"), 20 * number)
    return write_manifest(root)


def _read(root, **options):
    defaults = dict(split_column="split", patient_column="patient", modality="xray", name="my-cxr")
    return read_manifest(root, "manifest.csv", **{**defaults, **options})


def test_names_as_labels_and_split_spellings(tmp_path):
    index = _read(write_fixture(tmp_path), subgroup_columns=("sex", "age"))
    assert index.name == "my-cxr" and index.task is TaskKind.BINARY and index.modality == "xray"
    assert index.class_names == ("normal", "pneumonia") and index.licence == "unknown (user data)"
    frame = index.frame.set_index("image")
    assert frame.loc["images/p02_a.png", "split"] == "train" and frame.loc["images/p03_a.png", "label"] == 0
    assert frame.loc["images/p05_a.png", "split"] == "val" and frame.loc["images/p07_b.png", "split"] == "test"
    assert frame.loc["images/p01_b.png", "patient_id"] == "p01" and frame.loc["images/p04_a.png", "sex"] == "F"
    assert frame.loc["images/p02_a.png", "age"] == 7 and np.isnan(frame.loc["images/p03_a.png", "age"])
    counts = index.counts()
    assert counts["examples"] == {"train": 4, "val": 2, "test": 3}
    assert counts["classes"]["test"] == {"normal": 2, "pneumonia": 1}
    assert all(v >= 1 for split in counts["classes"].values() for v in split.values())


def test_integer_labels_with_and_without_class_names(tmp_path):
    rows = [(p, {"normal": "0", "pneumonia": "1"}[y], *rest) for p, y, *rest in ROWS]
    write_manifest(tmp_path, rows=rows)
    named = _read(tmp_path, class_names=("normal", "pneumonia"))
    assert named.class_names == ("normal", "pneumonia")
    assert named.frame.set_index("image").loc["images/p01_a.png", "label"] == 1
    rows = [(p, str(i % 3 + 10), *rest) for i, (p, _y, *rest) in enumerate(ROWS)]
    write_manifest(tmp_path, rows=rows)
    index = _read(tmp_path)
    assert index.class_names == ("10", "11", "12") and index.task is TaskKind.MULTICLASS  # sorted as numbers
    assert index.frame["label"].tolist() == [i % 3 for i in range(len(ROWS))]
    with pytest.raises(DataError, match=r"class indices \[10, 11, 12\]; with 2 class_names"):
        _read(tmp_path, class_names=("a", "b"))


def test_multilabel_columns_with_blanks(tmp_path):
    rows = [("images/a.png", "1", "", "train", "p1"), ("images/b.png", "0", "1.0", "train", "p2"),
            ("images/c.png", "0", "0", "test", "p3"), ("images/d.png", "1", "1", "test", "p4")]
    write_manifest(tmp_path, header="path,effusion,nodule,split,patient", rows=rows)
    index = _read(tmp_path, label_columns=("effusion", "nodule"))
    assert index.task is TaskKind.MULTILABEL and index.class_names == ("effusion", "nodule")
    assert np.isnan(index.frame.loc[0, label_column("nodule")])
    counts = index.counts()
    assert counts["classes"]["train"] == {"effusion": 1, "nodule": 1}
    assert counts["unlabelled"] == {"train": {"nodule": 1}}
    renamed = _read(tmp_path, label_columns=("effusion", "nodule"), class_names=("Effusion", "Nodule"))
    assert renamed.label_columns == ("label:Effusion", "label:Nodule")
    rows[0] = ("images/a.png", "yes", "", "train", "p1")
    write_manifest(tmp_path, header="path,effusion,nodule,split,patient", rows=rows)
    with pytest.raises(DataError, match=r"label column 'effusion' holds \['yes'\]; expected 0, 1 or blank"):
        _read(tmp_path, label_columns=("effusion", "nodule"))


def test_multilabel_joined_names(tmp_path):
    rows = [("a.png", "effusion|nodule", "train", "p1"), ("b.png", "", "train", "p2"),
            ("c.png", "nodule", "test", "p3"), ("d.png", " effusion ", "test", "p4")]
    write_manifest(tmp_path, header="path,findings,split,patient", rows=rows)
    index = _read(tmp_path, label_columns="findings", multilabel_separator="|")
    assert index.task is TaskKind.MULTILABEL and index.class_names == ("effusion", "nodule")
    assert index.frame[[label_column("effusion"), label_column("nodule")]].values.tolist() == \
        [[1, 1], [0, 0], [0, 1], [1, 0]]
    with pytest.raises(DataError, match=r"not among the declared classes \['effusion', 'mass'\]: 'nodule' \(2 example"):
        _read(tmp_path, label_columns="findings", multilabel_separator="|", class_names=("effusion", "mass"))


def test_without_split_column_patients_never_share_splits(tmp_path):
    rows = [(f"img/{p}_{k}.png", "ab"[p % 2], f"pat{p}") for p in range(120) for k in range(2)]
    write_manifest(tmp_path, header="path,label,patient", rows=rows)
    index = read_manifest(tmp_path, "manifest.csv", patient_column="patient", modality="ct", name="x", seed=4)
    assert (index.frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(index.frame["split"]) == {"train", "val", "test"}
    per_image = read_manifest(tmp_path, "manifest.csv", modality="ct", name="x", seed=4)
    assert "patient_id" not in per_image.frame.columns
    assert any("by image (no patient column given)" in note for note in per_image.notes)


def test_unknown_split_values_are_listed(tmp_path):
    rows = list(ROWS) + [("images/x.png", "normal", "holdout", "p9", "F", "1"),
                         ("images/y.png", "normal", "Eval", "p9", "F", "1")]
    write_manifest(tmp_path, rows=rows)
    with pytest.raises(DataError, match=r"holds split value\(s\) \['eval', 'holdout'\]; accepted"):
        _read(tmp_path)


@pytest.mark.parametrize("path, message", [("../x.png", "escapes the dataset root"),
                                           ("/etc/passwd", "is absolute"),
                                           ("images/../../x.png", "escapes the dataset root"),
                                           ("C:\\data\\x.png", "is absolute")])
def test_paths_must_stay_inside_the_root(tmp_path, path, message):
    write_manifest(tmp_path, rows=list(ROWS) + [(path, "normal", "train", "p9", "F", "1")])
    with pytest.raises(DataError, match=message):
        _read(tmp_path)


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(DataError, match=r"my-cxr \(CSV manifest\): manifest not found; expected .*manifest\.csv"):
        _read(tmp_path)
    write_manifest(tmp_path)
    with pytest.raises(DataError, match=r"lacks column\(s\) 'diagnosis'"):
        _read(tmp_path, label_columns="diagnosis")
    with pytest.raises(DataError, match=r"lacks column\(s\) 'site'"):
        _read(tmp_path, subgroup_columns=("site",))
    outside = tmp_path / "elsewhere"
    write_manifest(outside, name="list.tsv", sep="\t")  # absolute csv_path, tab separated
    index = read_manifest(tmp_path, outside / "list.tsv", split_column="split", modality="xray", name="tabs")
    assert len(index.frame) == len(ROWS)


def test_semicolon_delimiter_and_duplicates(tmp_path):
    write_manifest(tmp_path, sep=";")
    assert len(_read(tmp_path).frame) == len(ROWS)
    write_manifest(tmp_path, rows=list(ROWS) + [ROWS[0]])
    with pytest.raises(DataError, match="lists image 'images/p01_a.png' more than once"):
        _read(tmp_path)


def test_task_and_option_errors(tmp_path):
    rows = [(p, "abc"[i % 3], *rest) for i, (p, _y, *rest) in enumerate(ROWS)]
    write_manifest(tmp_path, rows=rows)
    with pytest.raises(ConfigError, match="task 'binary' needs exactly 2 classes, found 3"):
        _read(tmp_path, task="binary")
    with pytest.raises(ConfigError, match="needs several label columns or multilabel_separator"):
        _read(tmp_path, task="multilabel")
    with pytest.raises(ConfigError, match="collide with index columns"):
        _read(tmp_path, subgroup_columns=("split",))
    with pytest.raises(DataError, match=r"not among the declared classes \['x', 'y'\]: 'a' \(3 example\(s\)\); 'b'"):
        _read(tmp_path, class_names=("x", "y"))
    write_manifest(tmp_path, rows=[(p, "normal", *rest) for p, _y, *rest in ROWS])
    with pytest.raises(DataError, match=r"holds a single class \['normal'\]"):
        _read(tmp_path)
    write_manifest(tmp_path, rows=list(ROWS) + [("images/z.png", "", "train", "p9", "F", "1")])
    with pytest.raises(DataError, match="line 11 has an empty 'label'"):
        _read(tmp_path)
