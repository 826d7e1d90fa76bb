"""PathVQA parsers: release pickles read without executing code, and the Hugging Face parquet layout."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medrival.core.errors import DataError
from medrival.data.releases.pathvqa import (
    load_pathvqa, load_pathvqa_parquet, load_pathvqa_pickles, safe_load_pickle,
)

RECORDS = {
    "train": [{"image": "train_0422", "question": "Where are liver stem cells (oval cells) located?",
               "answer": "in the canals of hering"},
              {"image": "train_0422", "question": "Are liver stem cells located in the canals of hering?",
               "answer": "yes"},
              {"image": "train_0001", "question": "What  is present?", "answer": "Yes "}],
    "val": [{"image": "val_0007", "question": "Is this a liver?", "answer": "no"}],
    "test": [{"image": "test_0003", "question": "How many nuclei?", "answer": 2}],
}


def write_pickles(root: Path, records=RECORDS, protocol: int = 2) -> Path:
    """The release layout; protocol 2 like the original (Python 2 era) files."""
    for split, items in records.items():
        (root / "qas" / split).mkdir(parents=True, exist_ok=True)
        with open(root / "qas" / split / f"{split}_qa.pkl", "wb") as handle:
            pickle.dump(items, handle, protocol=protocol)
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "images" / "train" / "train_0422.jpg").write_bytes(b"never decoded")
    return root


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_pickle_layout(tmp_path, protocol):
    index = load_pathvqa(write_pickles(tmp_path, protocol=protocol))
    frame = index.frame
    assert list(frame["question_id"]) == ["train-000000", "train-000001", "train-000002", "val-000000",
                                          "test-000000"]
    assert frame.loc[0, "image"] == "images/train/train_0422.jpg" and frame.loc[0, "image_id"] == "train_0422"
    assert list(frame["answer"]) == ["in the canals of hering", "yes", "Yes", "no", "2"]
    # from the questions: "What is present?" is open although its answer is "Yes"
    assert list(frame["answer_type"]) == ["open", "closed", "open", "closed", "open"]
    assert set(frame["answer_type_source"]) == {"derived"}
    assert frame.loc[2, "question"] == "What is present?"
    assert index.modality == "pathology"
    counts = index.counts()
    assert counts["questions"] == {"train": 3, "val": 1, "test": 1, "all": 5}
    assert counts["images"] == {"train": 2, "val": 1, "test": 1, "all": 4}
    assert len(index.missing_images(tmp_path)) == 3  # only train_0422.jpg exists


class _Exploit:
    """Pickles to ``os.system(<touch marker>)``: what a hostile annotation file would contain."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    root = write_pickles(tmp_path / "release")
    payload = [{"image": "train_0001", "question": "q", "answer": _Exploit(marker)}]
    (root / "qas" / "train" / "train_qa.pkl").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load (posix|os|nt)\.system"):
        load_pathvqa_pickles(root)
    assert not marker.exists()
    # A pickled class instance (not code, but still a global) is refused too.
    (root / "qas" / "train" / "train_qa.pkl").write_bytes(pickle.dumps([Path("x")]))
    with pytest.raises(DataError, match="refusing to load pathlib"):
        load_pathvqa_pickles(root)


def test_bad_pickles(tmp_path):
    root = write_pickles(tmp_path)
    target = root / "qas" / "val" / "val_qa.pkl"
    target.write_bytes(b"\x80\x02]q\x00(")  # truncated
    with pytest.raises(DataError, match=r"val_qa.pkl.*plain-data pickle"):
        load_pathvqa_pickles(root)
    target.write_bytes(pickle.dumps({"image": "x"}))
    with pytest.raises(DataError, match="must hold a list"):
        load_pathvqa_pickles(root)
    target.write_bytes(pickle.dumps([{"image": "x", "question": "q"}]))
    with pytest.raises(DataError, match="keys image, question, answer"):
        load_pathvqa_pickles(root)
    target.write_bytes(pickle.dumps([{"image": "../../x", "question": "q", "answer": "a"}]))
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_pathvqa_pickles(root)
    target.unlink()
    with pytest.raises(DataError, match=r"qas/val/val_qa.pkl"):
        load_pathvqa_pickles(root)
    assert safe_load_pickle(root / "qas" / "test" / "test_qa.pkl")[0]["answer"] == 2


def _image(data: bytes, path: str | None) -> dict:
    return {"bytes": data, "path": path}


def write_parquet(root: Path) -> Path:
    """HF layout: data/{split}-0000k-of-0000n.parquet, image struct<bytes, path>, question, answer."""
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("question", pa.string()), ("answer", pa.string())])
    tables = {
        "train-00000-of-00002": [(_image(b"jpeg-A", None), "Is this a liver?", "yes"),
                                 (_image(b"jpeg-A", None), "What organ is this?", "liver")],
        "train-00001-of-00002": [(_image(b"jpeg-B", "train_0009.jpg"), "Are  nuclei present?", "No")],
        "validation-00000-of-00001": [(_image(b"jpeg-C", None), "What stain?", "h&e")],
        "test-00000-of-00001": [(_image(b"jpeg-A", None), "Is it normal?", "no")],
    }
    (root / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        columns = {key: [r[i] for r in rows] for i, key in enumerate(("image", "question", "answer"))}
        pq.write_table(pa.table(columns, schema=schema), root / "data" / f"{name}.parquet")
    return root


def test_parquet_layout(tmp_path):
    index = load_pathvqa(write_parquet(tmp_path))
    frame = index.frame
    assert list(frame["split"]) == ["train", "train", "train", "val", "test"]
    assert list(frame["question_id"]) == ["train-000000", "train-000001", "train-000002", "val-000000",
                                          "test-000000"]
    assert frame.loc[2, "image"] == "parquet:data/train-00001-of-00002.parquet#0"
    assert frame.loc[1, "image"] == "parquet:data/train-00000-of-00002.parquet#1"
    assert frame.loc[0, "image_id"] == frame.loc[1, "image_id"] == frame.loc[4, "image_id"]
    assert frame.loc[0, "image_id"].startswith("sha1:") and frame.loc[2, "image_id"] == "train_0009"
    assert list(frame["answer_type"]) == ["closed", "open", "closed", "open", "closed"]
    assert frame.loc[2, "question"] == "Are nuclei present?"
    assert index.counts()["images"] == {"train": 2, "val": 1, "test": 1, "all": 3}
    assert index.missing_images(tmp_path).empty  # parquet references: the file exists
    (tmp_path / "data" / "test-00000-of-00001.parquet").unlink()
    assert len(index.missing_images(tmp_path)) == 1


def test_bad_parquet(tmp_path):
    with pytest.raises(DataError, match="no parquet files"):
        load_pathvqa_parquet(tmp_path)
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"image": ["a.jpg"], "question": ["q"], "answer": ["a"]}),
                   tmp_path / "data" / "train-0.parquet")
    with pytest.raises(DataError, match="must be a struct"):
        load_pathvqa_parquet(tmp_path)
    pq.write_table(pa.table({"img": ["a.jpg"], "question": ["q"]}), tmp_path / "data" / "train-0.parquet")
    with pytest.raises(DataError, match="image, question, answer"):
        load_pathvqa_parquet(tmp_path)
    (tmp_path / "data" / "train-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="could not read"):
        load_pathvqa_parquet(tmp_path)
    (tmp_path / "data" / "train-0.parquet").unlink()
    (tmp_path / "data" / "extra-0.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="<split>"):
        load_pathvqa_parquet(tmp_path)
