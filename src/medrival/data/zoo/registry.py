"""Every real release medrival can load by name, with its static facts and how to obtain it."""
from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

from medrival.core.registry import Registry
from medrival.core.types import TaskKind
from medrival.data.releases import camelyon17, chexpert, ham10000, medmnist, nih_chestxray14
from medrival.data.releases import pathvqa, slake, vqa_rad
from medrival.data.releases.medmnist_info import INFO
from medrival.data.zoo.downloads import download_medmnist, hf_dataset_download
from medrival.data.zoo.entries import ReleaseEntry, make_info


# MedMNIST ships arrays and labels only, so no statistic can group images of one patient or lesion.
MEDMNIST_CLUSTER_NOTE = (
    "No patient, lesion or source-volume ids in the MedMNIST files: clustered statistics use each image as its own "
    "cluster (cluster = image), so several images of one patient or lesion count as independent evidence; whether "
    "the official split keeps a patient's images together depends on the flag's source (MedMNIST v2 paper).")
DERMAMNIST_LEAKAGE_NOTE = (
    "DermaMNIST holds HAM10000's 10,015 dermatoscopic images split 7:1:2 by image, not by lesion; HAM10000 has "
    "several images of many lesions (lesion_id), so one lesion can be in train and test and near-duplicate images "
    "leak across the official split (Abhishek et al., Sci. Data 2025). Use ham10000 (split by lesion) when it matters.")
FLAG_NOTES = {"dermamnist": (DERMAMNIST_LEAKAGE_NOTE,)}


def _medmnist_entries() -> list[ReleaseEntry]:
    entries = []
    for flag, table in INFO.items():
        classes = medmnist.info_class_names(table)
        notes = (MEDMNIST_CLUSTER_NOTE, *FLAG_NOTES.get(flag, ()))
        for size in medmnist.SIZES:
            name = flag if size == 28 else f"{flag}_{size}"
            info = make_info(name, medmnist.INFO_TASKS[table["task"]], medmnist.MODALITY[flag], classes,
                             table["license"], "MedMNIST v3 (Yang et al., Sci. Data 2023), zenodo.org/records/10519652",
                             f"MedMNIST {flag} ({table['task']}, {len(classes)} classes) at {size}x{size} px.")
            file = medmnist.medmnist_file_names(flag, size)[0]
            entries.append(ReleaseEntry(
                info, "medmnist", partial(medmnist.read_medmnist, flag=flag, size=size),
                obtain=(f"medrival prepare {name}   (uses the medmnist package: pip install 'medrival[download]')",
                        f"or download {file} from https://zenodo.org/records/10519652 into <root>/"),
                download=partial(download_medmnist, flag=flag, size=size),
                parent=None if size == 28 else flag, notes=notes))
    return entries


def _chest_entries() -> list[ReleaseEntry]:
    nih = make_info("nih-chestxray14", TaskKind.MULTILABEL, "xray", nih_chestxray14.FINDINGS,
                    nih_chestxray14.LICENCE, nih_chestxray14.SOURCE,
                    "NIH ChestX-ray14: 112,120 frontal chest radiographs, 14 text-mined findings (multilabel).")
    entries = [ReleaseEntry(nih, "nih-chestxray14", nih_chestxray14.read_nih_chestxray14, obtain=(
        "download from https://nihcc.app.box.com/v/ChestXray-NIHCC: Data_Entry_2017_v2020.csv, "
        "train_val_list.txt, test_list.txt and images_001..012 (extract each images_XXX.tar.gz in <root>)",
        "or the Kaggle copy (nih-chest-xrays/data): unzip into <root>; images_XXX/images/ folders are found"))]
    # U-Ignore (policy "ignore") leaves unlabelled entries that every method and metric would have to mask; it
    # is available through read_chexpert(policy="ignore") but not registered for studies.
    for suffix, policy in (("", "zeros"), ("-uones", "ones")):
        info = make_info(f"chexpert{suffix}", TaskKind.MULTILABEL, "xray", chexpert.OBSERVATIONS, chexpert.LICENCE,
                         chexpert.SOURCE, f"CheXpert v1.0-small, 14 observations; uncertain labels -> {policy}.")
        entries.append(ReleaseEntry(info, "chexpert", partial(chexpert.read_chexpert, policy=policy), obtain=(
            "register and accept the research use agreement at "
            "https://stanfordmlgroup.github.io/competitions/chexpert/",
            "download CheXpert-v1.0-small.zip and unzip it into <root> (train.csv and valid.csv inside "
            "CheXpert-v1.0-small/ or directly in <root>)"), parent="chexpert" if suffix else None))
    return entries


def _skin_and_pathology_entries() -> list[ReleaseEntry]:
    steps = ("download from Harvard Dataverse doi:10.7910/DVN/DBW86T: HAM10000_metadata(.tab), "
             "HAM10000_images_part_1.zip and HAM10000_images_part_2.zip",
             "unzip both image archives into <root>/HAM10000_images_part_1/ and <root>/HAM10000_images_part_2/")
    dx = make_info("ham10000", TaskKind.MULTICLASS, "dermoscopy", ham10000.DX_CLASSES, ham10000.LICENCE,
                   ham10000.SOURCE, "HAM10000 dermoscopy, 7 diagnoses; split by lesion.")
    malignant = make_info("ham10000-malignant", TaskKind.BINARY, "dermoscopy", ham10000.BINARY_CLASSES,
                          ham10000.LICENCE, ham10000.SOURCE,
                          "HAM10000 benign vs malignant (mel, bcc, akiec malignant); split by lesion.")
    camelyon = make_info("camelyon17-wilds", TaskKind.BINARY, "pathology", ("normal", "tumor"), camelyon17.LICENCE,
                         camelyon17.SOURCE, "Camelyon17-WILDS 96 px patches; test hospital 2, OOD val hospital 1.")
    return [
        ReleaseEntry(dx, "ham10000", partial(ham10000.read_ham10000, task="dx"), obtain=steps),
        ReleaseEntry(malignant, "ham10000", partial(ham10000.read_ham10000, task="malignant"), obtain=steps,
                     parent="ham10000"),
        ReleaseEntry(camelyon, "camelyon17_v1.0", camelyon17.read_camelyon17, obtain=(
            "pip install wilds; python -c \"from wilds import get_dataset; "
            "get_dataset('camelyon17', download=True, root_dir='<data dir>')\"",
            "or download camelyon17_v1.0/archive.tar.gz from https://worksheets.codalab.org (WILDS) and extract it "
            "into <root> (metadata.csv and patches/ inside)"))]


# Measured by medrival on the full official JSON (2,248 questions, 314 images; tests/test_vqa_rad_image_disjoint.py).
VQA_RAD_OVERLAP_NOTE = (
    "The official split is by question, not image: on the full OSF release 446 of the 451 test questions are about "
    "images that also have train questions (202 of the 203 test images), so training on train (vqa_lora, or a model "
    "whose training mix holds VQA-RAD) sees the test images. vqa-rad-image-disjoint re-splits by image.")
VQA_RAD_DISJOINT_NOTE = (
    "Same files as vqa-rad, split by image: every question about an official test image is test (official train "
    "questions about those images included), other images go to train or val (10 % of images, seeded hash). On the "
    "full release: train 670 / val 64 / test 1,514 questions on 101 / 10 / 203 images.")


def _vqa_entries() -> list[ReleaseEntry]:
    rad = make_info("vqa-rad", TaskKind.VQA, "ct,mri,xray", (), vqa_rad.LICENCE, vqa_rad.SOURCE,
                    "VQA-RAD: 3,515 clinician-written questions on 315 radiology images (official OSF JSON).")
    slake_info = make_info("slake", TaskKind.VQA, "ct,mri,xray", (), slake.LICENCE, slake.SOURCE,
                           "SLAKE 1.0 English questions on CT, MRI and X-ray images.")
    path_info = make_info("pathvqa", TaskKind.VQA, "pathology", (), pathvqa.LICENCE, pathvqa.SOURCE,
                          "PathVQA: questions on pathology images (release pickles or HF parquet).")
    disjoint = make_info("vqa-rad-image-disjoint", TaskKind.VQA, "ct,mri,xray", (), vqa_rad.LICENCE, vqa_rad.SOURCE,
                         "VQA-RAD re-split by image: val and test images never appear in train (same files).")
    rad_steps = ("download 'VQA_RAD Dataset Public.json' and 'VQA_RAD Image Folder' from https://osf.io/89kps/ "
                 "into <root>",)
    return [
        ReleaseEntry(rad, "vqa-rad", vqa_rad.load_vqa_rad, obtain=rad_steps, notes=(VQA_RAD_OVERLAP_NOTE,)),
        ReleaseEntry(disjoint, "vqa-rad", vqa_rad.load_vqa_rad_image_disjoint, obtain=rad_steps, parent="vqa-rad",
                     notes=(VQA_RAD_DISJOINT_NOTE,)),
        ReleaseEntry(slake_info, "slake", slake.load_slake, obtain=(
            "medrival prepare slake (Hugging Face dataset BoKelvin/SLAKE: JSON files + imgs.zip, unzipped)",
            "or download from https://www.med-vqa.com/slake/ and unzip into <root> (train.json, validate.json, "
            "test.json, imgs/)"), download=partial(hf_dataset_download, repo="BoKelvin/SLAKE", unzip=("imgs.zip",))),
        ReleaseEntry(path_info, "pathvqa", pathvqa.load_pathvqa, obtain=(
            "medrival prepare pathvqa (Hugging Face dataset flaviagiammarino/path-vqa, parquet files)",
            "or the original release from https://github.com/UCSD-AI4H/PathVQA (qas/ pickles + images/) into "
            "<root>"), download=partial(hf_dataset_download, repo="flaviagiammarino/path-vqa")),
    ]


def _all_entries() -> list[ReleaseEntry]:
    from medrival.data.zoo.more_entries import more_entries

    return [*_chest_entries(), *_skin_and_pathology_entries(), *more_entries(), *_medmnist_entries(),
            *_vqa_entries()]


@lru_cache(maxsize=1)
def release_registry() -> Registry[ReleaseEntry]:
    registry: Registry[ReleaseEntry] = Registry("dataset")
    for entry in _all_entries():
        registry.register(entry.name, entry)
    return registry


def root_for(name: str, root: str | Path | None = None) -> Path:
    from medrival.data.zoo.entries import resolve_root

    return resolve_root(release_registry().get(name), root)
