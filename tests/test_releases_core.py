"""Shared release helpers: safe paths, ReleaseIndex validation and counts, grouped splits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.types import TaskKind
from medrival.data.releases.index import ReleaseIndex, grouped_split, label_column
from medrival.data.releases.paths import require_columns, require_file, safe_relative


@pytest.mark.parametrize("text, expected", [
    ("a/b.png", "a/b.png"), ("./a//b.png", "a/b.png"), ("a/x/../b.png", "a/b.png"),
    ("images\\00001.png", "images/00001.png"), (" a.png ", "a.png"),
])
def test_safe_relative_normalises(text, expected):
    assert safe_relative("/data", text, "R") == expected


@pytest.mark.parametrize("text", ["../secret.png", "a/../../b.png", "/etc/passwd", "C:\\x.png", "c:/x.png",
                                  "~/x.png", "", "   ", "..", ".", "a\x00b"])
def test_safe_relative_rejects_escapes(text):
    with pytest.raises(DataError, match="R"):
        safe_relative("/data", text, "R")


def test_require_helpers_name_file_and_columns(tmp_path):
    (tmp_path / "b.csv").write_text("x\n")
    assert require_file(tmp_path, ["a.csv", "b.csv"], "R").name == "b.csv"
    with pytest.raises(DataError) as error:
        require_file(tmp_path, ["a.csv", "c.csv"], "R")
    assert f"expected one of: {tmp_path / 'a.csv'}, {tmp_path / 'c.csv'}." in str(error.value)
    with pytest.raises(DataError, match="'y'.*found: x"):
        require_columns(pd.DataFrame({"x": [1]}), ["x", "y"], tmp_path / "b.csv", "R")


def _index(frame, task=TaskKind.MULTICLASS, classes=("a", "b", "c")):
    return ReleaseIndex("t", task, "xray", classes, frame, "CC0", "src")


def test_counts_single_label_lists_every_split_and_class():
    frame = pd.DataFrame({"image": list("pqrs"), "split": ["train", "train", "test", "train"],
                          "label": np.array([0, 2, 2, 0], dtype=np.int64)})
    counts = _index(frame).counts()
    assert counts["examples"] == {"train": 3, "val": 0, "test": 1}
    assert counts["classes"]["train"] == {"a": 2, "b": 0, "c": 1}
    assert counts["classes"]["val"] == {"a": 0, "b": 0, "c": 0}
    assert "unlabelled" not in counts


def test_counts_multilabel_positives_and_unlabelled():
    frame = pd.DataFrame({"image": ["p", "q", "r"], "split": ["train", "train", "val"],
                          label_column("a"): [1.0, np.nan, 1.0], label_column("b"): [0.0, 1.0, 0.0]})
    counts = _index(frame, TaskKind.MULTILABEL, ("a", "b")).counts()
    assert counts["classes"]["train"] == {"a": 1, "b": 1}
    assert counts["unlabelled"] == {"train": {"a": 1}}


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"image": ["p"], "split": ["dev"], "label": [0]}), "split values"),
    (pd.DataFrame({"image": ["p"], "split": ["train"], "label": [3]}), "0..2"),
    (pd.DataFrame({"image": ["p"], "split": ["train"]}), "lacks column"),
    (pd.DataFrame({"image": ["p"], "split": ["train"], "label": [0.5]}), "integer"),
])
def test_index_validates_frame(frame, message):
    with pytest.raises(DataError, match=message):
        _index(frame)


def test_index_rejects_unknown_modality_and_bad_multilabel_values():
    frame = pd.DataFrame({"image": ["p"], "split": ["train"], "label": [0]})
    with pytest.raises(UnknownNameError):
        ReleaseIndex("t", TaskKind.BINARY, "x-ray", ("a", "b"), frame, "", "")
    bad = pd.DataFrame({"image": ["p"], "split": ["train"], label_column("a"): [2.0]})
    with pytest.raises(DataError, match="0, 1 or NaN"):
        _index(bad, TaskKind.MULTILABEL, ("a",))


def test_index_split_and_info():
    frame = pd.DataFrame({"image": ["p", "q"], "split": ["train", "test"], "label": [0, 1]})
    index = _index(frame, TaskKind.BINARY, ("no", "yes"))
    assert index.split("test")["image"].tolist() == ["q"]
    assert index.info().class_names == ("no", "yes") and index.info().num_classes == 2
    with pytest.raises(DataError, match="unknown split"):
        index.split("validation")


def test_grouped_split_keeps_groups_together_and_is_stable_under_subsetting():
    groups = pd.Series([f"p{i // 3}" for i in range(3000)])
    split = grouped_split(groups, (0.7, 0.1, 0.2), seed=0)
    assert (pd.DataFrame({"g": groups, "s": split}).groupby("g")["s"].nunique() == 1).all()
    shares = split.value_counts(normalize=True)
    assert abs(shares["train"] - 0.7) < 0.05 and abs(shares["test"] - 0.2) < 0.05
    subset = groups[::7]
    assert (grouped_split(subset, (0.7, 0.1, 0.2), seed=0) == split[::7]).all()
    assert not (grouped_split(groups, (0.7, 0.1, 0.2), seed=1) == split).all()
    with pytest.raises(DataError, match="sum"):
        grouped_split(groups, (0.5, 0.1, 0.1), seed=0)
