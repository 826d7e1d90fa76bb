"""Image–text pretraining corpora for the two demo models, drawn from the world's "pretrain" split.

The generalist sees every modality plus everyday shapes with lay captions (medical words are rare); the
specialist sees only its modalities, always with report-style sentences. Captions are redrawn each epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medrival.data import world

# medical_rate: how often a lay caption also names the diagnosis (web alt-text sometimes does).
CORPORA = {
    "generalist": {"modalities": ("xray", "dermoscopy", "fundus", "pathology", "natural"), "style": "generic",
                   "medical_rate": 0.15},
    "specialist": {"modalities": ("xray", "pathology"), "style": "report", "medical_rate": 0.0},
}


@dataclass
class Corpus:
    images: np.ndarray  # N x S x S x 3 uint8
    modalities: list[str]
    attrs: list[dict]
    style: str
    medical_rate: float

    def captions(self, epoch: int, seed: int) -> list[str]:
        """One caption per image, redrawn per epoch from a generator seeded by (seed, epoch)."""
        rng = np.random.default_rng([seed, 7919, epoch])
        return [world.caption(m, a, rng, self.style, self.medical_rate)
                for m, a in zip(self.modalities, self.attrs)]


def build_corpus(kind: str, per_modality: int, seed: int = 0, size: int = 64) -> Corpus:
    spec = CORPORA[kind]
    images, modalities, attrs = [], [], []
    for modality in spec["modalities"]:
        sample = world.render(modality, "pretrain", per_modality, seed=seed, size=size)
        images.append(sample.images)
        modalities += [modality] * per_modality
        attrs += sample.attrs
    return Corpus(np.concatenate(images), modalities, attrs, spec["style"], spec["medical_rate"])
