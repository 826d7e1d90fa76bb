"""The synthetic demo world: seeded images of several imaging "modalities" with diagnosis labels, VQA pairs,
lay captions (the generalist's corpus) and report-style sentences (the specialist's corpus).

Every sample draws from its own generator seeded by (world seed, modality, split, index), so any slice of a split
is byte-identical however it is produced, and generation parallelises trivially. Everything here is synthetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from medrival.core.errors import UnknownNameError
from medrival.core.registry import suggest
from medrival.data.world import derm, fundus, pathology, shapes, xray
from medrival.data.world.canvas import to_uint8

GENERATORS: dict[str, ModuleType] = {
    "xray": xray, "dermoscopy": derm, "fundus": fundus, "pathology": pathology, "natural": shapes}
DIAGNOSTIC_MODALITIES = ("xray", "dermoscopy", "fundus", "pathology")
_MODALITY_CODES = {name: code for code, name in enumerate(GENERATORS)}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "pretrain": 3}


@dataclass
class WorldSample:
    """Rendered images (N x S x S x 3 uint8) and the attributes each was drawn from."""

    modality: str
    split: str
    images: np.ndarray
    attrs: list[dict]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([a["label"] for a in self.attrs], dtype=np.int64)


def generator(modality: str) -> ModuleType:
    if modality not in GENERATORS:
        close = suggest(modality, list(GENERATORS))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"The demo world has no modality {modality!r}.{hint} "
                               f"It has: {', '.join(GENERATORS)}.")
    return GENERATORS[modality]


def sample_rng(seed: int, modality: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _MODALITY_CODES[modality], _SPLIT_CODES[split], index])


def render(modality: str, split: str, n: int, *, seed: int = 0, size: int = 64, start: int = 0) -> WorldSample:
    """Render samples ``start .. start+n-1`` of one modality's split."""
    if split not in _SPLIT_CODES:
        close = suggest(split, list(_SPLIT_CODES))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"Unknown split {split!r}.{hint} The demo world has {', '.join(_SPLIT_CODES)}.")
    module = generator(modality)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    attrs = []
    for offset in range(n):
        rng = sample_rng(seed, modality, split, start + offset)
        image, sample_attrs = module.draw(rng, size)
        images[offset] = to_uint8(image)
        attrs.append(sample_attrs)
    return WorldSample(modality, split, images, attrs)


_DEMOGRAPHICS_STREAM = 1  # a stream of its own, so adding attributes never changes a rendered image
SEXES = ("female", "male")


def demographics(modality: str, split: str, n: int, *, seed: int = 0, start: int = 0) -> dict[str, np.ndarray]:
    """Synthetic patient attributes (``sex``, ``age`` in years) for samples ``start .. start+n-1``.

    They are drawn independently of the image and its label, so any subgroup gap a study finds on the demo
    world is chance: the demo shows how subgroup CIs read when there is nothing to find.
    """
    sex = np.empty(n, dtype=object)
    age = np.empty(n, dtype=np.int64)
    for offset in range(n):
        rng = np.random.default_rng([seed, _MODALITY_CODES[modality], _SPLIT_CODES[split], start + offset,
                                     _DEMOGRAPHICS_STREAM])
        sex[offset] = SEXES[int(rng.integers(2))]
        age[offset] = int(rng.integers(18, 91))
    return {"sex": sex, "age": age}


def caption(modality: str, attrs: dict, rng: np.random.Generator, style: str, medical_rate: float = 0.0) -> str:
    """A lay caption (``style="generic"``) or a report-style sentence (``style="report"``) for one sample."""
    module = generator(modality)
    if style == "generic":
        return module.generic_caption(attrs, rng, medical_rate)
    if style == "report":
        return module.report(attrs, rng)
    raise ValueError(f"caption style must be 'generic' or 'report', got {style!r}")


def questions(modality: str, attrs: dict) -> list[tuple[str, str, str]]:
    """(question, answer, answer_type) triples for one sample; answer_type is "closed" or "open". These are the
    questions the demo models are pretrained on (yes/no and open); ``vqa_questions`` adds choice questions."""
    return generator(modality).vqa(attrs)


def vqa_questions(modality: str, attrs: dict) -> list[tuple[str, str, str]]:
    """Every question of a demo VQA set about one sample: the pretraining questions plus choice questions."""
    from medrival.data.world.choices import choice_questions

    return questions(modality, attrs) + choice_questions(modality, attrs)


def multiple_choice(modality: str, split: str, index: int, attrs: dict, seed: int = 0):
    """(question, options, gold letter) multiple-choice items about sample ``index`` of a split (x-ray only)."""
    from medrival.data.world.choices import mc_rng, xray_multiple_choice

    if modality != "xray":
        raise UnknownNameError(f"the demo world has multiple-choice questions for x-ray only, not {modality!r}.")
    rng = mc_rng(seed, _MODALITY_CODES[modality], _SPLIT_CODES[split], index)
    return xray_multiple_choice(attrs, rng)
