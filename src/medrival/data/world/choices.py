"""Choice and multiple-choice questions about demo-world images (synthetic), so the demo exercises every VQA form.

Choice questions state their options in the question ("is this lesion benign or malignant?"); the form parser of
``medrival.core.vqa_forms`` finds them there, as it would in a real release. Multiple-choice items come with
lettered options, like PMC-VQA or OmniMedVQA: the options are drawn per image (seeded, their own random stream, so
rendered images never change) and the gold is stored as its letter. They are not part of the demo models'
pretraining corpus: off-the-shelf, the tiny models have never seen these prompts, and ``vqa_lora`` teaches them.
Every word of a choice question and of the options is in the demo models' vocabulary; the letters B-D are not, so
the demo models answer a multiple-choice item with its option's text, which extraction maps to its letter.
"""
from __future__ import annotations

import numpy as np

# Distractors the demo vocabulary knows (findings of the other demo modalities): plainly wrong for a chest x-ray.
XRAY_FINDINGS = ("pneumonia", "normal", "melanoma", "glaucoma", "carcinoma")
XRAY_LOCATIONS = ("left upper lung", "left lower lung", "right upper lung", "right lower lung")
_MC_STREAM = 2  # random stream of the option draws (0: images, 1: demographics)


def choice_questions(modality: str, attrs: dict) -> list[tuple[str, str, str]]:
    """(question, answer, declared type) choice questions of one sample; the answer is one of the stated options."""
    malignant = "malignant" if attrs.get("label") == 1 else "benign"
    if modality == "xray":
        abnormal = attrs["label"] == 1
        items = [("is the main finding normal or pneumonia?", "pneumonia" if abnormal else "normal", "closed")]
        if abnormal:
            items += [("which lung is affected, left or right?", attrs["side"], "closed"),
                      ("is the opacity upper or lower?", attrs["zone"], "closed")]
        return items
    if modality == "dermoscopy":
        return [("is this lesion benign or malignant?", malignant, "closed"),
                ("is the border regular or irregular?", "irregular" if attrs["irregular"] else "regular", "closed")]
    if modality == "fundus":
        return [("which eye is shown, left or right?", attrs["eye"], "closed")]
    if modality == "pathology":
        return [("is this tissue benign or malignant?", malignant, "closed")]
    return []


def _lettered(gold: str, pool: tuple[str, ...], rng: np.random.Generator, k: int = 4) -> tuple[tuple[str, ...], str]:
    """``k`` options holding ``gold`` in a seeded order, and the gold's letter."""
    others = [option for option in pool if option != gold]
    chosen = [gold, *rng.choice(others, size=k - 1, replace=False).tolist()]
    order = rng.permutation(k)
    options = tuple(chosen[i] for i in order)
    return options, "ABCD"[options.index(gold)]


def xray_multiple_choice(attrs: dict, rng: np.random.Generator) -> list[tuple[str, tuple[str, ...], str]]:
    """(question, options, gold letter) multiple-choice items about one synthetic chest x-ray."""
    abnormal = attrs["label"] == 1
    options, letter = _lettered("pneumonia" if abnormal else "normal", XRAY_FINDINGS, rng)
    items = [("what is the main finding?", options, letter)]
    if abnormal:
        location = f"{attrs['side']} {attrs['zone']} lung"
        options, letter = _lettered(location, XRAY_LOCATIONS, rng)
        items.append(("where is the opacity?", options, letter))
    return items


def mc_rng(seed: int, modality_code: int, split_code: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, modality_code, split_code, index, _MC_STREAM])
