"""MedXpertQA MM parser: MM/test.jsonl + MM/dev.jsonl (JSON Lines) and images/ from images.zip, in the exact
published format; questions, options, gold letter and text, several images per question, splits, bad inputs,
``datasets check`` and ``prepare`` (with a stand-in for the Hugging Face download: no network)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medrival.core.errors import DataError, MedrivalError
from medrival.data.releases.medxpertqa import (
    DEFAULT_MODALITY, EXTRA_COLUMNS, LICENCE, load_medxpertqa, strip_choices,
)

# Made-up questions in the release's exact record format (the field order, the "\nAnswer Choices: (A) ..." block
# inside the question, the bare image file names): benchmark questions are not copied into the repository.
OPTIONS_0 = {"A": "Lateral ligament repair", "B": "Capsular plication", "C": "Radial head replacement",
             "D": "Radial head fixation", "E": "Medial ligament reconstruction"}
OPTIONS_1 = {"A": "Erythema infectiosum", "B": "Cutaneous larva migrans", "C": "Cold agglutinin disease",
             "D": "Cutis marmorata", "E": "Erythema ab igne"}
OPTIONS_2 = {"A": "Anterior spinal artery", "B": "Posterior spinal artery", "C": "Artery of Adamkiewicz",
             "D": "Vertebral artery", "E": "None of the above"}
# The release has questions whose options are letters labelled in a figure (the dataset viewer shows one:
# options C, D, A, B, "None of the above"); the gold *text* is then itself a letter.
LETTER_OPTIONS = {"A": "C", "B": "D", "C": "A", "D": "B", "E": "None of the above"}


def _record(qid: str, stem: str, options: dict, label: str, images: list[str], task: str, system: str,
            qtype: str) -> dict:
    choices = " ".join(f"({letter}) {text}" for letter, text in options.items())
    return {"id": qid, "question": f"{stem}\nAnswer Choices: {choices}", "options": options, "label": label,
            "images": images, "medical_task": task, "body_system": system, "question_type": qtype}


TABLE = ("A 40-year-old man presents after a fall.\n| Vital sign | Value |\n|---|---|\n| HR | 92 |\n"
         "Radiographs are shown in Figures A and B. Which step contributes most to stability?")
TEST = [
    _record("MM-0", TABLE, OPTIONS_0, "A", ["MM-0-a.jpeg", "MM-0-b.jpeg"], "Treatment", "Skeletal", "Reasoning"),
    _record("MM-1", "A 70-year-old woman has a   purplish rash after a viral infection. What is the most probable "
            "diagnosis?", OPTIONS_1, "D", ["MM-1-a.png"], "Diagnosis", "Integumentary", "Understanding"),
    _record("MM-2", "Which artery supplies most of the lower spinal cord?", OPTIONS_2, "C",
            ["MM-2-a.jpeg", "MM-2-b.png", "MM-2-c.jpeg"], "Basic Science", "Cardiovascular", "Understanding"),
]
LETTER_RECORD = _record("MM-5", "Which artery labeled in Figure A supplies the spinal cord?", LETTER_OPTIONS, "C",
                        ["MM-5-a.jpeg"], "Basic Medicine", "Cardiovascular", "Understanding")
DEV = [
    _record("MM-2000", "Which imaging study is best next?", {"A": "Endoscopic ultrasound", "B": "Cholescintigraphy",
            "C": "ERCP", "D": "Abdominal ultrasound", "E": "MRCP"}, "D", ["MM-2000-a.jpeg"], "Diagnosis",
            "Digestive", "Reasoning"),
]


def _write_jsonl(path: Path, records: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _write_images(folder: Path, records: list) -> None:
    for position, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("images"), list):
            continue
        for i, name in enumerate(record["images"]):
            if not isinstance(name, str) or name.startswith(("/", "..")) or not name:
                continue
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = (40 + 30 * position, 90 + 20 * i, 150)
            Image.new("RGB", (36, 28), colour).save(path, "PNG" if path.suffix == ".png" else "JPEG")


def write_medxpertqa_fixture(root: Path, test: list | None = None, dev: list | None = DEV, *,
                             images: str = "images") -> Path:
    """The Hugging Face snapshot of TsinghuaC3I/MedXpertQA with images.zip unpacked: MM/test.jsonl, MM/dev.jsonl
    (``dev=None``: absent) and every referenced image under ``root/<images>`` (decodable JPEG/PNG)."""
    test = TEST if test is None else test
    _write_jsonl(root / "MM" / "test.jsonl", test)
    if dev is not None:
        _write_jsonl(root / "MM" / "dev.jsonl", dev)
    _write_images(root / images if images else root, [*test, *(dev or [])])
    return root


def test_fixture_parsing(tmp_path):
    index = load_medxpertqa(write_medxpertqa_fixture(tmp_path))
    frame = index.frame.set_index("question_id")
    assert index.name == "medxpertqa-mm" and index.licence == LICENCE and index.modality == DEFAULT_MODALITY
    assert list(index.frame["question_id"]) == ["MM-2000", "MM-0", "MM-1", "MM-2"] and index.splits == ("val", "test")
    assert list(frame["split"]) == ["val", "test", "test", "test"]
    assert set(EXTRA_COLUMNS) <= set(index.frame.columns)
    assert set(frame["answer_type"]) == {"closed"} and set(frame["answer_type_source"]) == {"release"}
    first = frame.loc["MM-0"]
    assert first["question"] == ("A 40-year-old man presents after a fall. | Vital sign | Value | |---|---| | HR | 92 "
                                 "| Radiographs are shown in Figures A and B. Which step contributes most to "
                                 "stability?")
    assert first["question_raw"] == TEST[0]["question"] and "Answer Choices" not in first["question"]
    assert first["answer_label"] == "A" and first["answer"] == "Lateral ligament repair"
    assert [first[f"option_{c}"] for c in "abcde"] == list(OPTIONS_0.values())
    assert first["image"] == "images/MM-0-a.jpeg" and first["image_id"] == "MM-0-a.jpeg"
    assert first["n_images"] == 2 and json.loads(first["image_files"]) == ["MM-0-a.jpeg", "MM-0-b.jpeg"]
    assert (first["medical_task"], first["body_system"], first["question_type"]) == (
        "Treatment", "Skeletal", "Reasoning")
    assert first["source_file"] == "MM/test.jsonl" and frame.loc["MM-2000", "source_file"] == "MM/dev.jsonl"
    second = frame.loc["MM-1"]
    assert second["question"].startswith("A 70-year-old woman has a purplish rash")  # whitespace normalised
    assert second["answer"] == "Cutis marmorata" and second["answer_label"] == "D" and second["n_images"] == 1
    assert second["image"] == "images/MM-1-a.png"
    third = frame.loc["MM-2"]
    assert third["answer"] == "Artery of Adamkiewicz" and third["answer_label"] == "C"
    assert third["option_e"] == "None of the above" and third["question"] == ("Which artery supplies most of the "
                                                                                "lower spinal cord?")
    assert third["n_images"] == 3 and third["image"] == "images/MM-2-a.jpeg"
    notes = " ".join(index.notes)
    assert "2 of 4 questions have more than one image (up to 3); only the first is shown" in notes
    assert "no training split" in notes and "dev.jsonl (few-shot exemplars) -> val" in notes
    assert "question_raw" in notes and "without" not in notes
    assert index.counts()["questions"] == {"val": 1, "test": 3, "all": 4}
    assert index.missing_images(tmp_path).empty


def test_options_that_are_letters(tmp_path):
    index = load_medxpertqa(write_medxpertqa_fixture(tmp_path, [LETTER_RECORD], dev=None))
    row = index.frame.iloc[0]
    assert row["answer"] == "A" and row["answer_label"] == "C" and row["option_a"] == "C"
    assert row["question"] == "Which artery labeled in Figure A supplies the spinal cord?"


def test_check_and_scoring_accept_options_that_are_letters(tmp_path):
    from medrival.data.zoo.api import check_release
    from medrival.data.zoo.build import vqa_split
    from medrival.data.zoo.registry import release_registry
    from medrival.metrics.vqa import score_answers

    root = write_medxpertqa_fixture(tmp_path, [LETTER_RECORD], dev=None)
    summary = check_release("medxpertqa-mm", root, workers=0)
    assert summary["files"]["missing"] == 0 and summary["vqa_forms"]["test"]["scored_as"] == {"multiple_choice": 1}
    entry = release_registry().get("medxpertqa-mm")
    test = vqa_split(entry.info, entry.read(root), "test", root)
    assert test.answers == ["C"] and test.options[0][:4] == ("C", "D", "A", "B")  # the gold is the letter C
    scored = score_answers(["C", "A", "The answer is (C)."], test.answers * 3, test.forms * 3, test.options * 3)
    assert scored["mc_accuracy"].tolist() == [1.0, 0.0, 1.0]


def test_fewer_options_are_none_and_labels_are_case_insensitive(tmp_path):
    record = _record("MM-7", "Which finding?", {"A": "One", "B": "Two", "C": "Three"}, "b", ["MM-7-a.jpeg"],
                     "Diagnosis", "Nervous", "Reasoning")
    index = load_medxpertqa(write_medxpertqa_fixture(tmp_path, [record], dev=None))
    row = index.frame.iloc[0]
    assert row["answer_label"] == "B" and row["answer"] == "Two"
    assert row["option_c"] == "Three" and pd.isna(row["option_d"]) and pd.isna(row["option_e"])
    assert index.splits == ("test",) and any("dev.jsonl not found: no val split" in n for n in index.notes)


def test_question_without_choices_block_is_kept_whole(tmp_path):
    record = dict(TEST[1], id="MM-9", question="What is the diagnosis?")
    index = load_medxpertqa(write_medxpertqa_fixture(tmp_path, [record], dev=None))
    assert index.frame.loc[0, "question"] == "What is the diagnosis?"
    assert any("1 questions have no inline 'Answer Choices:' block" in n and "MM-9" in n for n in index.notes)


def test_strip_choices():
    assert strip_choices("Stem?\nAnswer Choices: (A) x (B) y") == ("Stem?", True)
    # Only a block that opens with "(A)" counts, and the last one is removed.
    text = "Note: Answer Choices: are listed below.\nWhich?\nAnswer Choices: (A) 1 (B) 2"
    assert strip_choices(text) == ("Note: Answer Choices: are listed below. Which?", True)
    assert strip_choices("No block here") == ("No block here", False)


def test_image_folder_layouts(tmp_path):
    flat = load_medxpertqa(write_medxpertqa_fixture(tmp_path / "flat", images=""))  # zip extracted without folder
    assert flat.frame.loc[1, "image"] == "MM-0-a.jpeg" and flat.missing_images(tmp_path / "flat").empty
    custom = load_medxpertqa(write_medxpertqa_fixture(tmp_path / "custom", images="pics"), image_folder="pics")
    assert custom.frame.loc[1, "image"] == "pics/MM-0-a.jpeg" and custom.missing_images(tmp_path / "custom").empty
    # Without images at all the default folder is assumed and every image is reported missing.
    root = tmp_path / "none"
    _write_jsonl(root / "MM" / "test.jsonl", TEST)
    index = load_medxpertqa(root)
    assert index.frame.loc[0, "image"] == "images/MM-0-a.jpeg" and len(index.missing_images(root)) == 3
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_medxpertqa(root, image_folder="../elsewhere")


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match=r"MedXpertQA MM.*MM/test\.jsonl' not found.*medrival prepare medxpertqa-mm"):
        load_medxpertqa(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_medxpertqa(tmp_path / "absent")
    good = TEST[1]
    cases = {
        r"MedXpertQA MM: question 'MM-1' \(MM/test\.jsonl\) has label 'F'": [dict(good, label="F")],
        r"MedXpertQA MM.*question 'MM-1'.*label 'E'.*\['A', 'B', 'C', 'D'\]":
            [dict(good, label="E", options={k: v for k, v in OPTIONS_1.items() if k != "E"})],
        r"'test\.jsonl' line 1 \(id 'MM-1'\) lacks keys \['label'\]": [{k: v for k, v in good.items() if k != "label"}],
        r"'test\.jsonl' line 2 \(id None\) lacks keys \['id'\]":
            [TEST[0], {k: v for k, v in good.items() if k != "id"}],
        r"line 1 \(id 'MM-1'\) lacks keys \['images'\]": [{k: v for k, v in good.items() if k != "images"}],
        r"line 1 \(id 'MM-1'\) has images \[\].*non-empty list": [dict(good, images=[])],
        r"line 1 \(id 'MM-1'\) has images 'MM-1-a\.png'": [dict(good, images="MM-1-a.png")],
        r"option letters \['F', 'G'\].*Text subset": [dict(good, options=dict(OPTIONS_1, F="x", G="y"))],
        r"options of type list": [dict(good, options=list(OPTIONS_1.values()))],
        "escapes the dataset root": [dict(good, images=["../../etc/passwd"])],
        r"'\.\./MM-0-b\.jpeg' escapes the dataset root": [dict(TEST[0], images=["MM-0-a.jpeg", "../MM-0-b.jpeg"])],
        "absolute": [dict(good, images=["/etc/passwd"])],
        r"line 1 is a str, expected a question object": ["not a record"],
        "question ids are not unique.*'MM-1'": [good, good],
    }
    for i, (message, records) in enumerate(cases.items()):
        with pytest.raises(DataError, match=message):
            load_medxpertqa(write_medxpertqa_fixture(tmp_path / str(i), records, dev=None))
    root = write_medxpertqa_fixture(tmp_path / "json", dev=None)
    (root / "MM" / "test.jsonl").write_text(json.dumps(TEST[0]) + '\n{"id": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"'test\.jsonl' line 2 is not a JSON object"):
        load_medxpertqa(root)
    (root / "MM" / "test.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="hold no questions"):
        load_medxpertqa(root)


def test_dev_and_test_share_no_ids(tmp_path):
    with pytest.raises(DataError, match="not unique.*'MM-0'"):
        load_medxpertqa(write_medxpertqa_fixture(tmp_path, dev=[TEST[0]]))


def test_registry_check_and_splits(tmp_path):
    from medrival.data.catalog import dataset_info
    from medrival.data.zoo.api import check_release, load_release_split
    from medrival.data.zoo.registry import release_registry

    entry = release_registry().get("medxpertqa-mm")
    assert entry.folder == "medxpertqa" and entry.is_vqa and entry.download is not None
    assert dataset_info("medxpertqa-mm").modalities == ("xray", "ct", "mri", "ultrasound", "pathology")
    root = write_medxpertqa_fixture(tmp_path)
    summary = check_release("medxpertqa-mm", root, workers=0)
    assert summary["questions"] == {"val": 1, "test": 3, "all": 4}
    assert summary["files"] == {"referenced": 4, "missing": 0, "unreadable": 0, "decoded": 4, "examples": []}
    test = load_release_split("medxpertqa-mm", "test", root)
    assert len(test) == 3 and test.questions[0].startswith("A 40-year-old man")
    assert "Answer Choices" not in " ".join(test.questions)
    golds = [options["ABCDE".index(letter)] for letter, options in zip(test.answers, test.options)]
    assert golds == ["Lateral ligament repair", "Cutis marmorata", "Artery of Adamkiewicz"]  # gold as its letter
    assert set(test.forms) == {"multiple_choice"} and all(len(options) == 5 for options in test.options)
    image = test[0].image
    assert image.dtype.name == "uint8" and image.shape == (28, 36, 3)
    assert len(load_release_split("medxpertqa-mm", "val", root)) == 1
    assert len(load_release_split("medxpertqa-mm", "train", root)) == 0
    (root / "images" / "MM-1-a.png").unlink()
    summary = check_release("medxpertqa-mm", root, workers=0)
    assert summary["files"]["missing"] == 1 and summary["files"]["examples"] == ["images/MM-1-a.png: missing"]


def _fake_snapshot(layout: str):
    """A stand-in for huggingface_hub.snapshot_download writing the repository's files: MM/*.jsonl, Text/ and
    images.zip (image files inside ``images/`` or at the top level of the archive)."""
    def snapshot_download(repo_id, repo_type, local_dir):
        assert (repo_id, repo_type) == ("TsinghuaC3I/MedXpertQA", "dataset")
        root = Path(local_dir)
        _write_jsonl(root / "MM" / "test.jsonl", TEST)
        _write_jsonl(root / "MM" / "dev.jsonl", DEV)
        _write_jsonl(root / "Text" / "test.jsonl", [{"id": "Text-0"}])
        staging = root.parent / f"staging-{layout}"
        _write_images(staging, [*TEST, *DEV])
        with zipfile.ZipFile(root / "images.zip", "w") as bundle:
            for path in sorted(staging.iterdir()):
                bundle.write(path, f"{layout}{path.name}")
        return str(root)
    return snapshot_download


@pytest.mark.parametrize("layout", ["images/", ""])
def test_prepare_downloads_and_unzips(tmp_path, monkeypatch, layout):
    import huggingface_hub

    from medrival.data.zoo.api import check_release
    from medrival.data.zoo.prepare import prepare_release

    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot(layout))
    root = tmp_path / "medxpertqa"
    lines = prepare_release("medxpertqa-mm", root)
    assert lines[0].startswith(f"medxpertqa-mm: downloaded to {root} (")
    assert (root / f"{layout}MM-0-b.jpeg").is_file()
    summary = check_release("medxpertqa-mm", root, workers=0)
    assert summary["files"]["missing"] == 0 and summary["files"]["decoded"] == 4
    assert "already here" in prepare_release("medxpertqa-mm", root)[0]


def test_prepare_failure_says_how(tmp_path, monkeypatch):
    import huggingface_hub

    from medrival.data.zoo.prepare import obtain_steps, prepare_release

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(MedrivalError, match="TsinghuaC3I/MedXpertQA failed: no network"):
        prepare_release("medxpertqa-mm", tmp_path / "m")
    steps = obtain_steps("medxpertqa-mm", tmp_path / "m")
    assert "medrival prepare medxpertqa-mm" in steps[0] and f"{tmp_path / 'm'}/images/" in steps[0]
