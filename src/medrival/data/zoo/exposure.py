"""Training exposure, the data side: which registered datasets a checkpoint's training data overlaps.

A model card says what the checkpoint was trained on (``trained_on``: datasets and corpora, each with the
SOURCES.md key that states it). This module knows what each registered dataset is made of -- the release a variant
re-splits, relabels or resizes (its entry's ``parent``) and the corpora or datasets it shares images with
(``IMAGE_SOURCES``) -- and joins the two through core's pure ``exposure_of_lineage``. Modality alone says nothing
about this: Lingshu-7B is "in domain" on VQA-RAD because its training mix holds VQA-RAD itself.

Only stated facts go in the tables; a link inferred from two corpora drawing on one pool is marked ``likely``.
"""
from __future__ import annotations

from dataclasses import dataclass

from medrival.core.cards import DatasetLineage, ImageLink, ModelCard, exposure_of_lineage
from medrival.core.errors import ConfigError
from medrival.core.registry import suggest
from medrival.data.zoo.registry import release_registry

# Corpora a card's trained_on may name besides registered releases. One line each: what the corpus is.
CORPORA: dict[str, str] = {
    "PMC-OA": "figure-caption pairs from PubMed Central open-access articles (Lin et al. 2023; MedGemma's card "
              "uses the name for the PMC Open Access Subset itself)",
    "PMC-15M": "15M figure-caption pairs from 4.4M PubMed Central articles (Zhang et al., BiomedCLIP)",
    "ROCO": "radiology figures and captions from PubMed Central open-access articles (Pelka et al. 2018)",
    "MIMIC-CXR": "chest radiographs with free-text reports from Beth Israel Deaconess (Johnson et al. 2019)",
    "MedPix": "the NLM's online radiology teaching-case database",
    "CAMELYON17": "lymph-node whole-slide images of the CAMELYON17 challenge (5 Dutch hospitals)",
}


@dataclass(frozen=True)
class ImageSource:
    """``origin`` (a corpus or registered release) supplied some or all of a dataset's images; ``source`` is the
    SOURCES.md key that says so; ``likely`` when it is inferred (both drawn from one pool), not stated."""

    origin: str
    source: str
    likely: bool = False


# Release -> where its images come from. Keys are releases (never variants: those follow their parent).
IMAGE_SOURCES: dict[str, tuple[ImageSource, ...]] = {
    "pmc-vqa": (ImageSource("PMC-OA", "pmc-vqa-paper"), ImageSource("PMC-15M", "pmc-figure-pool", likely=True)),
    "vqa-rad": (ImageSource("MedPix", "vqa-rad-paper"),),
    "slake": (ImageSource("nih-chestxray14", "slake-paper"),),  # its chest X-rays; CT/MRI come from elsewhere
    "camelyon17-wilds": (ImageSource("CAMELYON17", "wilds-paper"),),
    "dermamnist": (ImageSource("ham10000", "medmnist-paper"),),
    "chestmnist": (ImageSource("nih-chestxray14", "medmnist-paper"),),
    "pneumoniamnist": (ImageSource("kermany-cxr", "medmnist-paper"),),
    "octmnist": (ImageSource("kermany-oct", "medmnist-paper"),),
}


def dataset_lineage(name: str) -> DatasetLineage:
    """The lineage of any registered dataset (demo, release, variant or custom): its parent release and every
    image link of that release, in both directions (DermaMNIST's images come from HAM10000, so HAM10000's are in
    DermaMNIST). Unknown names raise UnknownNameError with close matches."""
    from medrival.data.catalog import dataset_registry

    dataset_registry().get(name)
    releases = release_registry()
    parent = releases.get(name).parent if name in releases else None
    release = parent or name
    links = [ImageLink(s.origin, "source", s.source, s.likely) for s in IMAGE_SOURCES.get(release, ())]
    links += [ImageLink(derived, "derived", s.source, s.likely)
              for derived, sources in sorted(IMAGE_SOURCES.items()) for s in sources if s.origin == release]
    return DatasetLineage(name, parent, tuple(links))


def exposure_of(card: ModelCard, dataset_name: str) -> tuple[str, ...]:
    """Why ``card`` has seen images or questions of ``dataset_name`` (one reason per documented overlap, each
    naming its source); empty when nothing is documented -- which is not proof that nothing was seen."""
    return exposure_of_lineage(card, dataset_lineage(dataset_name))


def trained_on_names() -> list[str]:
    """Names a card's trained_on may use: built-in releases that are not variants, and the declared corpora."""
    releases = [name for name, entry in release_registry().items() if entry.parent is None and not entry.custom]
    return sorted([*releases, *CORPORA])


def check_trained_on(card: ModelCard) -> None:
    """ConfigError, with close matches, for a trained_on name that is neither a release nor a declared corpus; a
    variant is refused with its release named (variants share their release's exposure)."""
    known = trained_on_names()
    releases = release_registry()
    for entry in card.trained_on:
        if entry.name in known:
            continue
        if entry.name in releases and releases.get(entry.name).parent:
            parent = releases.get(entry.name).parent
            raise ConfigError(f"card {card.id!r}: trained_on names {entry.name!r}, a variant of {parent!r}; name "
                              f"the release {parent!r} instead (its variants share its exposure).")
        close = suggest(entry.name, known)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"card {card.id!r}: trained_on names {entry.name!r}, which is neither a registered dataset "
                          f"release nor a declared corpus.{hint} Known: {', '.join(known)}. A new corpus goes in "
                          "medrival.data.zoo.exposure.CORPORA.")
