"""Entries for the fundus (PAPILA, Harvard-FairVLMed/GF), paediatric chest X-ray / retinal OCT (Kermany 2018) and
multiple-choice VQA (PMC-VQA, OmniMedVQA, MedXpertQA MM) releases."""
from __future__ import annotations

from functools import partial

from medrival.core.types import TaskKind
from medrival.data.releases import fairvlmed, kermany, medxpertqa, omnimedvqa, papila, pmcvqa
from medrival.data.zoo.downloads import hf_dataset_download
from medrival.data.zoo.entries import ReleaseEntry, make_info

_PAPILA_STEPS = ("download the PAPILA archive from https://figshare.com/articles/dataset/PAPILA/14798004 and unzip "
                 "it into <root> (FundusImages/ and ClinicalData/patient_data_od.xlsx, patient_data_os.xlsx)",)
_KERMANY_STEPS = ("download ZhangLabData / ChestXRay2017.zip and OCT2017.tar.gz from Mendeley Data "
                  "doi:10.17632/rscbjbr9sj (CC BY 4.0) and extract them into <root>",
                  "or the Kaggle copy (paultimothymooney/chest-xray-pneumonia): unzip into <root>; the nested "
                  "chest_xray/ folder and __MACOSX/ junk are handled")
_FAIR_STEPS = ("request access at https://ophai.hms.harvard.edu/datasets/ (Harvard-FairVLMed or Harvard-GF, "
               "CC BY-NC-ND 4.0) and unzip into <root> (Training/, Validation/, Test/ with data_*.npz, and "
               "data_summary.csv when present)",)


def _fundus_entries() -> list[ReleaseEntry]:
    entries = []
    for suspects, name, classes, task in (
            ("exclude", "papila", ("healthy", "glaucoma"), TaskKind.BINARY),
            ("glaucoma", "papila-suspects-as-glaucoma", ("healthy", "glaucoma"), TaskKind.BINARY),
            ("class", "papila-3class", ("healthy", "glaucoma", "suspect"), TaskKind.MULTICLASS)):
        info = make_info(name, task, "fundus", classes, papila.LICENCE, papila.SOURCE,
                         f"PAPILA fundus photographs, glaucoma (suspects: {suspects}); split by patient.")
        entries.append(ReleaseEntry(info, "papila", partial(papila.read_papila, suspects=suspects),
                                    obtain=_PAPILA_STEPS, parent=None if name == "papila" else "papila"))
    for image_key, (name, release, modality) in fairvlmed.IMAGE_KEYS.items():
        info = make_info(name, TaskKind.BINARY, modality, fairvlmed.CLASS_NAMES, fairvlmed.LICENCE,
                         fairvlmed.SOURCE, f"{release} glaucoma from the {image_key} arrays; official split; "
                                           "subgroups age, gender, race, ethnicity, language.")
        entries.append(ReleaseEntry(info, name, partial(fairvlmed.read_fairvlmed, image_key=image_key),
                                    obtain=_FAIR_STEPS))
    return entries


def _kermany_entries() -> list[ReleaseEntry]:
    variants = (("kermany-cxr", "cxr", "binary", "xray", kermany.CXR_CLASSES, "paediatric chest X-ray, pneumonia"),
                ("kermany-cxr-3class", "cxr", "3class", "xray", kermany.CXR_3CLASSES,
                 "paediatric chest X-ray: normal, bacterial or viral pneumonia"),
                ("kermany-oct", "oct", "4class", "oct", kermany.OCT_CLASSES, "retinal OCT: CNV, DME, drusen, normal"))
    entries = []
    for name, part, task, modality, classes, what in variants:
        kind = TaskKind.BINARY if len(classes) == 2 else TaskKind.MULTICLASS
        info = make_info(name, kind, modality, classes, kermany.LICENCE, kermany.SOURCE,
                         f"Kermany 2018 {what}; validation carved from train by patient.")
        parent = "kermany-cxr" if name == "kermany-cxr-3class" else None  # same radiographs, 3 labels
        entries.append(ReleaseEntry(info, "kermany", partial(kermany.read_kermany, part=part, task=task),
                                    obtain=_KERMANY_STEPS, parent=parent))
    return entries


def _multiple_choice_vqa_entries() -> list[ReleaseEntry]:
    entries = []
    for name, options, what in (("pmc-vqa", {"version": 1}, "PMC-VQA v1 (test.csv)"),
                                ("pmc-vqa-clean", {"version": 1, "clean_test": True}, "PMC-VQA v1, test_clean.csv"),
                                ("pmc-vqa-v2", {"version": 2}, "PMC-VQA v2 (train_2/test_2)")):
        info = make_info(name, TaskKind.VQA, pmcvqa.DEFAULT_MODALITY, (), pmcvqa.LICENCE, pmcvqa.SOURCE,
                         f"{what}: 4-option multiple-choice questions on PubMed Central figures.")
        entries.append(ReleaseEntry(info, "pmc-vqa", partial(pmcvqa.load_pmcvqa, **options), obtain=(
            f"medrival prepare {name} (Hugging Face dataset xmcmic/PMC-VQA: CSVs + images.zip/figures.zip)",),
            download=partial(hf_dataset_download, repo="xmcmic/PMC-VQA", unzip=("images.zip", "images_2.zip")),
            parent=None if name == "pmc-vqa" else "pmc-vqa"))
    modalities = ",".join(dict.fromkeys(omnimedvqa.MODALITY_TYPES.values()))
    info = make_info("omnimedvqa", TaskKind.VQA, modalities, (), omnimedvqa.LICENCE, omnimedvqa.SOURCE,
                     "OmniMedVQA open-access part: multiple-choice questions over 12 modalities (test only).")
    entries.append(ReleaseEntry(info, "omnimedvqa", omnimedvqa.load_omnimedvqa, obtain=(
        "medrival prepare omnimedvqa (Hugging Face dataset foreverbeliever/OmniMedVQA; unzips OmniMedVQA.zip)",),
        download=partial(hf_dataset_download, repo="foreverbeliever/OmniMedVQA", unzip=("OmniMedVQA.zip",))))
    info = make_info(medxpertqa.NAME, TaskKind.VQA, medxpertqa.DEFAULT_MODALITY, (), medxpertqa.LICENCE,
                     medxpertqa.SOURCE, "MedXpertQA MM: expert-level 5-option multiple-choice questions with clinical "
                                        "images (2,000 test, 5 dev as val; first image of each question shown).")
    entries.append(ReleaseEntry(info, "medxpertqa", medxpertqa.load_medxpertqa, obtain=(
        "medrival prepare medxpertqa-mm (Hugging Face dataset TsinghuaC3I/MedXpertQA: MM/test.jsonl, MM/dev.jsonl "
        "and images.zip, unzipped into <root>/images/)",
        "or download MM/test.jsonl, MM/dev.jsonl and images.zip from "
        "https://huggingface.co/datasets/TsinghuaC3I/MedXpertQA into <root> and unzip images.zip there (the "
        "image files must end up in <root>/images/ or directly in <root>)"),
        download=partial(hf_dataset_download, repo="TsinghuaC3I/MedXpertQA", unzip=(medxpertqa.IMAGES_ZIP,))))
    return entries


def more_entries() -> list[ReleaseEntry]:
    return [*_fundus_entries(), *_kermany_entries(), *_multiple_choice_vqa_entries()]
