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


def _medmnist_entries() -> list[ReleaseEntry]:
    entries = []
    for flag, table in INFO.items():
        classes = medmnist.info_class_names(table)
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
                download=partial(download_medmnist, flag=flag, size=size)))
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
            "CheXpert-v1.0-small/ or directly in <root>)")))
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
        ReleaseEntry(malignant, "ham10000", partial(ham10000.read_ham10000, task="malignant"), obtain=steps),
        ReleaseEntry(camelyon, "camelyon17_v1.0", camelyon17.read_camelyon17, obtain=(
            "pip install wilds; python -c \"from wilds import get_dataset; "
            "get_dataset('camelyon17', download=True, root_dir='<data dir>')\"",
            "or download camelyon17_v1.0/archive.tar.gz from https://worksheets.codalab.org (WILDS) and extract it "
            "into <root> (metadata.csv and patches/ inside)"))]


def _vqa_entries() -> list[ReleaseEntry]:
    rad = make_info("vqa-rad", TaskKind.VQA, "ct,mri,xray", (), vqa_rad.LICENCE, vqa_rad.SOURCE,
                    "VQA-RAD: 3,515 clinician-written questions on 315 radiology images (official OSF JSON).")
    slake_info = make_info("slake", TaskKind.VQA, "ct,mri,xray", (), slake.LICENCE, slake.SOURCE,
                           "SLAKE 1.0 English questions on CT, MRI and X-ray images.")
    path_info = make_info("pathvqa", TaskKind.VQA, "pathology", (), pathvqa.LICENCE, pathvqa.SOURCE,
                          "PathVQA: questions on pathology images (release pickles or HF parquet).")
    return [
        ReleaseEntry(rad, "vqa-rad", vqa_rad.load_vqa_rad, obtain=(
            "download 'VQA_RAD Dataset Public.json' and 'VQA_RAD Image Folder' from https://osf.io/89kps/ "
            "into <root>",)),
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
