"""OmniMedVQA parser: open-access QA JSON files per sub-dataset, modality table, subsets and layout quirks."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medrival.core.errors import ConfigError, DataError
from medrival.data.releases.omnimedvqa import MODALITY_TYPES, QA_FOLDER, load_omnimedvqa, modality_word


def _rec(dataset, qid, qtype, question, answer, image, options, modality, key="modality_type"):
    record = {"dataset": dataset, "question_id": qid, "question_type": qtype, "question": question,
              "gt_answer": answer, "image_path": image}
    record.update({f"option_{letter}": text for letter, text in zip("ABCD", options)})
    record[key] = modality
    return record


ACRIMA = "Images/ACRIMA/Im001_g_ACRIMA.png"
FILES = {
    "ACRIMA": [
        _rec("ACRIMA", "ACRIMA_0000", "Modality Recognition", "What imaging technique was employed to obtain this "
             "picture?", "Fundus imaging", ACRIMA, ["PET scan", "Fundus imaging", "Mammogram", "Ultrasound"],
             "Fundus Photography"),
        _rec("ACRIMA", "ACRIMA_0001", "Disease Diagnosis", "Is there  glaucoma in this image?", "yes", ACRIMA,
             ["Yes", "No"], "Fundus Photography"),  # two-way question: no option_C/option_D keys
        _rec("ACRIMA", "ACRIMA_0002", "Disease Diagnosis", "What is the diagnosis?", "Normal",
             "Images/ACRIMA/Im002_ACRIMA.png", ["Glaucoma", "Normal", "Cataract", "AMD"], "Fundus Photography"),
    ],
    "Chest CT Scan": [
        _rec("Chest CT Scan", "Chest CT Scan_0000", "Disease Diagnosis", "What disease is shown?",
             "Adenocarcinoma", "Images/Chest CT Scan/test/adeno/000108.png",
             ["Adenocarcinoma", "Large cell carcinoma", "Normal", "Squamous cell carcinoma"],
             "CT(Computed Tomography)"),
        # The one record of the real file that spells the key "modality".
        _rec("Chest CT Scan", "Chest CT Scan_0001", "Anatomy Identification", "Which organ is shown?", "Lung",
             "Images/Chest CT Scan/test/adeno/000108.png", ["Liver", "Lung", "Heart", "Kidney"],
             "CT(Computed Tomography)", key="modality"),
    ],
    "Blood Cell": [
        _rec("Blood Cell", "Blood Cell_0000", "Disease Diagnosis", "Which cell type is this?", "Neutrophil",
             "Images/Blood Cell/TEST/NEUTROPHIL/_0_1095.jpeg", ["Eosinophil", "Lymphocyte", "Monocyte",
                                                                "Neutrophil"], "Microscopy Images"),
    ],
    "RadImageNet": [
        _rec("RadImageNet", "RadImageNet_0000", "Modality Recognition", "What modality is this?", "MR",
             "Images/RadImageNet/MR/knee/mr_knee_001.png", ["CT", "MR", "X-ray", "PET"],
             "MR (Mag-netic Resonance Imaging)"),
        _rec("RadImageNet", "RadImageNet_0001", "Anatomy Identification", "Which organ is shown?", "thyroid",
             "Images/RadImageNet/US/thyroid/us_thyroid_001.png", ["Thyroid", "Kidney", "Liver", "Spleen"],
             "ultrasound"),
    ],
    "OCT & X-ray 2017": [
        _rec("OCT & X-ray 2017", "OCT & X-ray 2017_0000", "Disease Diagnosis", "What is the finding?", "Drusen",
             "Images/OCT & X-ray 2017/OCT/test/DRUSEN/DRUSEN-1.jpeg", ["CNV", "DME", "Drusen", "Normal"],
             "OCT (Optical Coherence Tomography"),
        _rec("OCT & X-ray 2017", "OCT & X-ray 2017_0001", "Disease Diagnosis", "Is there pneumonia?", "No",
             "Images/OCT & X-ray 2017/chest_xray/test/NORMAL/IM-0001.jpeg", ["Yes", "No", "Unclear", "Maybe"],
             "X-Ray"),
    ],
    "ISIC2019": [
        # gt_answer that holds an option's text in a longer one (as in the real ISIC files): that option's letter.
        _rec("ISIC2019", "ISIC2019_0000", "Disease Diagnosis", "Is this lesion benign?", "Benign image.",
             "Images/ISIC2019/train/ISIC_0000001.jpg", ["Benign", "Malignant"], "Dermoscopy"),
    ],
}


def write_omnimedvqa_fixture(root: Path, files: dict | None = None) -> Path:
    """The unpacked OmniMedVQA.zip: QA_information/Open-access/<dataset>.json + the referenced Images/."""
    files = FILES if files is None else files
    qa = root / QA_FOLDER
    qa.mkdir(parents=True, exist_ok=True)
    (root / "QA_information" / "Restricted-access").mkdir(exist_ok=True)
    for dataset, records in files.items():
        (qa / f"{dataset}.json").write_text(json.dumps(records, indent=4, ensure_ascii=False), encoding="utf-8")
        for record in records:
            if isinstance(record, dict) and isinstance(record.get("image_path"), str) \
                    and not record["image_path"].startswith(("/", "..")):
                image = root / record["image_path"]
                image.parent.mkdir(parents=True, exist_ok=True)
                fmt = "PNG" if image.suffix == ".png" else "JPEG"
                Image.new("RGB", (32, 24), (40, 120, len(dataset) * 9 % 255)).save(image, fmt)
    return root


write_fixture = write_omnimedvqa_fixture


def test_fixture_parsing(tmp_path):
    index = load_omnimedvqa(write_omnimedvqa_fixture(tmp_path))
    frame = index.frame.set_index("question_id")
    assert len(frame) == 11 and index.name == "omnimedvqa" and index.splits == ("test",)
    assert set(frame["answer_type"]) == {"closed"} and set(frame["answer_type_source"]) == {"release"}
    row = frame.loc["ACRIMA_0000"]
    assert row["image"] == ACRIMA and row["image_id"] == ACRIMA and row["answer"] == "Fundus imaging"
    assert row["answer_label"] == "B" and row["option_d"] == "Ultrasound" and row["dataset"] == "ACRIMA"
    assert row["question_type"] == "Modality Recognition" and row["modality_tag"] == "fundus"
    two_way = frame.loc["ACRIMA_0001"]
    assert two_way["answer_label"] == "A" and pd.isna(two_way["option_c"]) and pd.isna(two_way["option_d"])
    assert two_way["question"] == "Is there glaucoma in this image?"
    assert frame.loc["RadImageNet_0001", "answer_label"] == "A"  # "thyroid" matches "Thyroid"
    assert frame.loc["ISIC2019_0000", "answer_label"] == "A"
    assert frame.loc["Chest CT Scan_0001", "modality_tag"] == "ct"  # key spelled "modality"
    assert frame.loc["Blood Cell_0000", "modality_tag"] == "pathology"
    assert frame.loc["OCT & X-ray 2017_0000", "modality_type"] == "OCT (Optical Coherence Tomography"
    assert index.modality == "xray,ct,mri,ultrasound,dermoscopy,fundus,oct,pathology"
    assert any("1 questions have a gt_answer that is one option's text inside" in n for n in index.notes)


def test_gold_among_no_option_is_an_error_naming_the_item(tmp_path):
    bad = {"ISIC2019": [_rec("ISIC2019", "ISIC2019_0009", "Disease Diagnosis", "Is this lesion benign?",
                              "Indeterminate", "Images/ISIC2019/train/ISIC_0000001.jpg", ["Benign", "Malignant"],
                              "Dermoscopy")]}
    root = write_omnimedvqa_fixture(tmp_path, bad)
    with pytest.raises(DataError, match=r"OmniMedVQA.*ISIC2019_0009.*'Indeterminate', which is not exactly one of"):
        load_omnimedvqa(root)


def test_modality_table():
    for spelling, word in MODALITY_TYPES.items():
        assert modality_word(spelling, where="t") == word
    assert modality_word("CT (Computed Tomography)", where="t") == "ct"
    assert modality_word(" Ultrasound ", where="t") == "ultrasound"
    assert modality_word("x-ray", where="t") == "xray"
    with pytest.raises(DataError, match=r"'Digital Photography'.*'X-Ray' -> xray"):
        modality_word("Digital Photography", where="t")


def test_unknown_modality_in_file(tmp_path):
    files = {"Derm": [_rec("Derm", "D_0", "Disease Diagnosis", "q?", "a", "Images/Derm/1.jpg", ["a", "b"],
                           "Digital Photography")]}
    with pytest.raises(DataError, match=r"Derm\.json' record #0.*Digital Photography.*mapping table"):
        load_omnimedvqa(write_omnimedvqa_fixture(tmp_path, files))


def test_subsets(tmp_path):
    files = dict(FILES, Derm=[_rec("Derm", "D_0", "Disease Diagnosis", "q?", "a", "Images/Derm/1.jpg",
                                   ["a", "b"], "Colposcopy")])
    root = write_omnimedvqa_fixture(tmp_path, files)
    index = load_omnimedvqa(root, subsets=["ACRIMA", "Blood Cell"])  # Derm's unknown modality is not read
    assert sorted(set(index.frame["dataset"])) == ["ACRIMA", "Blood Cell"] and len(index.frame) == 4
    assert index.modality == "fundus,pathology"
    with pytest.raises(ConfigError, match=r"\['acrima'\].*present: \['ACRIMA'"):
        load_omnimedvqa(root, subsets=["acrima"])


def test_zip_folder_layout_and_images(tmp_path):
    write_omnimedvqa_fixture(tmp_path / "OmniMedVQA")
    index = load_omnimedvqa(tmp_path)
    assert index.frame.loc[0, "image"] == f"OmniMedVQA/{ACRIMA}" and index.frame.loc[0, "image_id"] == ACRIMA
    assert index.missing_images(tmp_path).empty
    with Image.open(tmp_path / index.frame.loc[0, "image"]) as image:
        assert image.size == (32, 24)


def test_counts_and_summary(tmp_path):
    root = write_omnimedvqa_fixture(tmp_path)
    index = load_omnimedvqa(root)
    counts = index.counts()
    assert counts["questions"] == {"test": 11, "all": 11}
    assert counts["answer_types"]["all"] == {"closed": 11, "open": 0}
    assert counts["answer_type_source"]["test"] == {"release": 11, "derived": 0}
    assert counts["images"] == {"test": 9, "all": 9}  # ACRIMA Im001 and the chest CT image have 2 questions each
    (root / ACRIMA).unlink()
    summary = index.summary(root)
    assert summary["missing_images"] == {"questions": 2, "images": 1}
    json.dumps(summary)


def test_repeated_question_ids_get_dataset_prefix(tmp_path):
    files = {"A": [_rec("A", "0", "t", "q?", "x", "Images/A/1.png", ["x", "y"], "X-Ray")],
             "B": [_rec("B", "0", "t", "q?", "x", "Images/B/1.png", ["x", "y"], "X-Ray")]}
    index = load_omnimedvqa(write_omnimedvqa_fixture(tmp_path, files))
    assert list(index.frame["question_id"]) == ["A:0", "B:0"]


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match=r"OmniMedVQA.*QA_information/Open-access"):
        load_omnimedvqa(tmp_path)
    with pytest.raises(DataError, match="no JSON files"):
        load_omnimedvqa(write_omnimedvqa_fixture(tmp_path / "empty", {}))
    good = FILES["ACRIMA"][0]
    cases = {
        "lacks keys.*'gt_answer'": [{k: v for k, v in good.items() if k != "gt_answer"}],
        "lacks keys.*'modality_type'": [{k: v for k, v in good.items() if k != "modality_type"}],
        "lacks keys.*'dataset'": [{k: v for k, v in good.items() if k != "dataset"}],
        "escapes the dataset root": [dict(good, image_path="../../etc/passwd")],
        "absolute": [dict(good, image_path="/etc/passwd")],
        "expected an object": ["not a record"],
    }
    for i, (message, records) in enumerate(cases.items()):
        with pytest.raises(DataError, match=message):
            load_omnimedvqa(write_omnimedvqa_fixture(tmp_path / str(i), {"ACRIMA": records}))
    root = write_omnimedvqa_fixture(tmp_path / "obj", {})
    (root / QA_FOLDER / "X.json").write_text('{"question_id": 1}')
    with pytest.raises(DataError, match="JSON list"):
        load_omnimedvqa(root)
    (root / QA_FOLDER / "X.json").write_text('[{"question_id": ')
    with pytest.raises(DataError, match=r"could not parse .*X\.json"):
        load_omnimedvqa(root)
