"""What the tiny generative demo models are taught: (image, prompt, answer) triples from the world's "pretrain"
split (never train/val/test), and the text inventory their shared vocabulary is trained on.

- generalist: "describe the image." -> a lay caption, for every modality and everyday shapes, plus generic
  yes/no and short-answer questions about the shapes, asked with the VQA prompt templates. It learns to answer
  questions in general but never sees a medical question.
- specialist: "describe the image." -> a report sentence, for x-ray and pathology only, plus the world's medical
  questions on those images (like LLaVA-Med: strong in its domain, never sees dermoscopy or fundus).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medrival.core.prompts import diagnosis_question, vqa_prompt
from medrival.data import world
from medrival.data.world.corpus import Corpus, build_corpus
from medrival.data.world.shapes import COLOURS

DESCRIBE_PROMPT = "describe the image."
KINDS = ("generalist", "specialist")
SHAPE_KINDS = ("circle", "square", "bar")


# ----------------------------------------------------------------------------------------------- vocabulary
def vocabulary_texts(seed: int = 0, per_modality: int = 300, draws: int = 4) -> list[str]:
    """Every kind of text the demo world holds: the tokenizer of both demo models is trained on these."""
    rng = np.random.default_rng([seed, 104729])
    texts = [DESCRIBE_PROMPT, vqa_prompt("is it?", "closed"), vqa_prompt("what is it?", "open")]
    for modality, module in world.GENERATORS.items():
        attrs = world.render(modality, "pretrain", per_modality, seed=seed, size=32).attrs
        for item in attrs:
            for _ in range(draws):
                texts += [world.caption(modality, item, rng, "generic", rate) for rate in (0.0, 1.0)]
                texts.append(world.caption(modality, item, rng, "report"))
            texts += [f"{vqa_prompt(q, t)} {a}" for q, a, t in world.questions(modality, item)]
            if modality == "natural":
                texts += [f"{p} {a}" for p, a in shape_questions(item, rng)]
        if modality in world.DIAGNOSTIC_MODALITIES:
            texts += [diagnosis_question(module.CLASS_NAMES), *module.CLASS_NAMES]
            texts += [d for row in module.CLASS_DESCRIPTIONS for d in row]
            texts += [t.format(name) for t in module.PROMPT_TEMPLATES for name in module.CLASS_NAMES]
    return texts


# ----------------------------------------------------------------------------------------------- questions
def shape_questions(attrs: dict, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Generic (prompt, answer) pairs about a picture of shapes: two yes/no questions (each answer drawn 50/50)
    and one short-answer question."""
    colours = list(COLOURS)
    background, present = attrs["background"], list(attrs["shapes"])
    kinds = {kind for _, kind in present}
    closed = []
    if rng.random() < 0.5:
        closed.append((f"is the background {background}?", "yes"))
    else:
        closed.append((f"is the background {rng.choice([c for c in colours if c != background])}?", "no"))
    absent = [(c, k) for c in colours for k in SHAPE_KINDS if c != background and (c, k) not in present]
    colour, kind = present[rng.integers(len(present))] if rng.random() < 0.5 else absent[rng.integers(len(absent))]
    closed.append((f"is there a {colour} {kind}?", "yes" if (colour, kind) in present else "no"))
    missing = [k for k in SHAPE_KINDS if k not in kinds]
    if missing and rng.random() < 0.5:
        closed.append((f"is there a {rng.choice(missing)}?", "no"))
    else:
        closed.append((f"is there a {rng.choice(sorted(kinds))}?", "yes"))
    chosen = [closed[i] for i in sorted(rng.choice(len(closed), size=2, replace=False))]
    unique = [(c, k) for c, k in present if sum(k == other for _, other in present) == 1]
    if unique and rng.random() < 0.5:
        colour, kind = unique[rng.integers(len(unique))]
        opened = (f"what colour is the {kind}?", colour)
    else:
        opened = ("what colour is the background?", background)
    return [(vqa_prompt(q, "closed"), a) for q, a in chosen] + [(vqa_prompt(opened[0], "open"), opened[1])]


# ----------------------------------------------------------------------------------------------- corpus
@dataclass
class VLMCorpus:
    """Images of the "pretrain" split with what a demo model is taught about them."""

    kind: str
    corpus: Corpus

    @property
    def images(self) -> np.ndarray:
        return self.corpus.images

    def examples(self, epoch: int, seed: int) -> list[tuple[int, str, str]]:
        """(image index, prompt, answer) triples of one epoch; captions and shape questions are redrawn."""
        captions = self.corpus.captions(epoch, seed)
        rng = np.random.default_rng([seed, 15485863, epoch])
        triples = [(i, DESCRIBE_PROMPT, text) for i, text in enumerate(captions)]
        for i, (modality, attrs) in enumerate(zip(self.corpus.modalities, self.corpus.attrs)):
            if self.kind == "generalist" and modality == "natural":
                triples += [(i, prompt, answer) for prompt, answer in shape_questions(attrs, rng)]
            elif self.kind == "specialist":
                triples += [(i, vqa_prompt(q, t), a) for q, a, t in world.questions(modality, attrs)]
        return triples


def build_vlm_corpus(kind: str, per_modality: int, seed: int = 0, size: int = 64) -> VLMCorpus:
    """The generalist's or the specialist's corpus (modalities and caption style as the contrastive demo models)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return VLMCorpus(kind, build_corpus(kind, per_modality, seed=seed, size=size))
