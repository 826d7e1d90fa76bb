"""Chest-radiograph-like images: a grey torso with two dark lung fields; pneumonia adds a fluffy opacity."""
from __future__ import annotations

import numpy as np

from medrival.data.world.canvas import gaussian_blob, grid, smooth_noise, soft_ellipse

MODALITY = "xray"
TASK = "binary"
CLASS_NAMES = ("normal", "pneumonia")
CLASS_DESCRIPTIONS = (
    ("normal lungs", "no acute cardiopulmonary findings", "clear lungs"),
    ("pneumonia", "lung consolidation", "an airspace opacity"),
)
PROMPT_TEMPLATES = ("a chest x-ray showing {}.", "chest radiograph with {}.", "{}")


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    label = int(rng.integers(2))
    shift_x, shift_y = rng.uniform(-0.06, 0.06, size=2)
    img = np.full((size, size), 0.08, dtype=np.float32)
    img += 0.45 * soft_ellipse(size, shift_x, 0.05 + shift_y, 0.85, 1.0, 12)
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        lungs += soft_ellipse(size, shift_x + side * 0.36, shift_y - 0.05, 0.27, 0.55, 10)
    yy, _ = grid(size)
    ribs = 0.05 * np.sin(yy * rng.uniform(16, 20) + rng.uniform(0, 6.28))
    img += lungs * (ribs - 0.3)
    img += 0.22 * soft_ellipse(size, shift_x, shift_y, 0.1, 0.85, 15)
    img += 0.12 * gaussian_blob(size, shift_x + 0.12, shift_y + 0.3, 0.16)
    attrs: dict = {"label": label, "finding": CLASS_NAMES[label]}
    if label == 1:
        attrs.update(_add_opacity(img, rng, size, shift_x, shift_y))
    img *= rng.uniform(0.85, 1.15)
    img += 0.03 * smooth_noise(rng, size, 8) + 0.025 * rng.standard_normal((size, size)).astype(np.float32)
    return np.repeat(img[..., None], 3, axis=2), attrs


def _add_opacity(img, rng, size, shift_x, shift_y) -> dict:
    side = str(rng.choice(["left", "right"]))
    zone = str(rng.choice(["upper", "lower"]))
    # Patient's left is the image's right, as on a real frontal radiograph.
    cx = shift_x + (0.36 if side == "left" else -0.36) + rng.uniform(-0.06, 0.06)
    cy = shift_y + (-0.28 if zone == "upper" else 0.2) + rng.uniform(-0.06, 0.06)
    strength = rng.uniform(0.06, 0.4)
    fluffy = 1.0 + 0.5 * smooth_noise(rng, size, 12)
    img += strength * gaussian_blob(size, cx, cy, rng.uniform(0.09, 0.17)) * np.clip(fluffy, 0, None)
    severity = "severe" if strength > 0.28 else "moderate" if strength > 0.16 else "mild"
    return {"side": side, "zone": zone, "severity": severity}


def generic_caption(attrs: dict, rng: np.random.Generator, medical_rate: float) -> str:
    base = str(rng.choice([
        "a black and white picture of a torso", "a grey scan of a person's chest", "a dark image of a ribcage",
        "a monochrome photo of a body from the front"]))
    if attrs["label"] == 0:
        text = base + str(rng.choice([" with two dark even areas", ", nothing unusual", " that looks uniform"]))
    else:
        text = f"{base} with a bright cloudy patch on the {attrs['side']} {attrs['zone']} side"
    if rng.random() < medical_rate:
        text += str(rng.choice([", an x-ray of ", ", radiograph: "])) + (
            "pneumonia" if attrs["label"] else "normal lungs")
    return text


def report(attrs: dict, rng: np.random.Generator) -> str:
    view = str(rng.choice(["Frontal chest radiograph", "PA chest x-ray", "AP portable chest film", "Chest x-ray"]))
    if attrs["label"] == 0:
        # Normal reports avoid negated findings ("no pneumonia"): a tiny text encoder reads words, not negation.
        finding = str(rng.choice([
            "clear lungs, no acute cardiopulmonary findings", "normal lungs, clear study",
            "lungs are clear; normal chest", "unremarkable chest with clear normal lungs"]))
    else:
        finding = (f"{attrs['severity']} {attrs['side']} {attrs['zone']} lobe "
                   + str(rng.choice(["consolidation consistent with pneumonia", "airspace opacity, pneumonia",
                                     "pneumonia with lung consolidation"])))
    return f"{view}: {finding}."


def vqa(attrs: dict) -> list[tuple[str, str, str]]:
    abnormal = attrs["label"] == 1
    items = [
        ("is there an opacity in the lungs?", "yes" if abnormal else "no", "closed"),
        ("is this a normal chest x-ray?", "no" if abnormal else "yes", "closed"),
        ("what imaging modality is this?", "x-ray", "open"),
        ("what is the main finding?", "pneumonia" if abnormal else "normal", "open"),
    ]
    if abnormal:
        items += [(f"is the opacity in the {attrs['side']} lung?", "yes", "closed"),
                  ("which lung is affected?", attrs["side"], "open"),
                  ("where is the opacity?", f"{attrs['side']} {attrs['zone']} lung", "open")]
    return items
