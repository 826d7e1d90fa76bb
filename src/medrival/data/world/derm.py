"""Dermoscopy-like images: a lesion on skin; its border, colours and texture decide the diagnosis."""
from __future__ import annotations

import numpy as np

from medrival.data.world.canvas import gaussian_blobs, grid, paint, smooth_noise

MODALITY = "dermoscopy"
TASK = "multiclass"
CLASS_NAMES = ("nevus", "melanoma", "seborrheic keratosis")
CLASS_DESCRIPTIONS = (
    ("a benign nevus", "a regular mole", "a symmetric pigmented nevus"),
    ("melanoma", "a malignant melanoma", "an irregular pigmented lesion with blue-grey areas"),
    ("seborrheic keratosis", "a waxy stuck-on keratosis", "a light brown keratosis"),
)
PROMPT_TEMPLATES = ("a dermoscopy image of {}.", "dermoscopic view of {}.", "{}")

# Per class: (border irregularity range, radius range, base colour).
_STYLE = {
    0: ((0.0, 0.10), (0.22, 0.40), (0.48, 0.30, 0.19)),
    1: ((0.06, 0.24), (0.28, 0.48), (0.36, 0.21, 0.13)),
    2: ((0.02, 0.12), (0.24, 0.42), (0.64, 0.45, 0.28)),
}


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    label = int(rng.integers(3))
    skin = np.array([0.86, 0.66, 0.55], dtype=np.float32) * rng.uniform(0.9, 1.08, size=3).astype(np.float32)
    img = np.broadcast_to(skin, (size, size, 3)).copy()
    img += 0.03 * smooth_noise(rng, size, 16)[..., None]
    (irr_lo, irr_hi), (r_lo, r_hi), color = _STYLE[label]
    cx, cy = rng.uniform(-0.15, 0.15, size=2)
    irregularity = rng.uniform(irr_lo, irr_hi)
    mask, radius = _lesion_mask(rng, size, cx, cy, rng.uniform(r_lo, r_hi), irregularity, label)
    paint(img, mask, np.asarray(color) * rng.uniform(0.9, 1.1))
    if label == 1:
        _melanoma_colours(img, rng, size, cx, cy, radius, mask)
    elif label == 2:
        yy, xx = grid(size)
        texture = rng.uniform(0.02, 0.07) * np.sin(xx * 40 + rng.uniform(0, 6)) * np.sin(yy * 40 + rng.uniform(0, 6))
        img += (mask * texture)[..., None]
    if rng.random() < 0.3:
        _hairs(img, rng, size)
    img += 0.02 * rng.standard_normal((size, size, 1)).astype(np.float32)
    attrs = {"label": label, "finding": CLASS_NAMES[label], "irregular": bool(irregularity > 0.1),
             "colour": ("dark brown" if label == 1 else "tan" if label == 2 else "brown"),
             "size": "large" if radius > 0.38 else "small"}
    return img, attrs


def _lesion_mask(rng, size, cx, cy, radius, irregularity, label):
    yy, xx = grid(size)
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = sum(rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 6.28)) for k in (2, 3, 5))
    edge = radius * (1.0 + irregularity * wobble / 1.5)
    distance = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    sharpness = 25.0 if label == 1 else 60.0
    return 1.0 / (1.0 + np.exp(np.clip(sharpness * (distance - edge), -30, 30))), radius


def _melanoma_colours(img, rng, size, cx, cy, radius, mask):
    count = int(rng.integers(1, 6))
    centers = np.stack([cx + rng.uniform(-radius, radius, count), cy + rng.uniform(-radius, radius, count)], 1)
    dark = gaussian_blobs(size, centers, rng.uniform(0.04, 0.09, count), np.ones(count, dtype=np.float32))
    paint(img, np.clip(dark, 0, 1) * mask * rng.uniform(0.3, 0.8), (0.08, 0.05, 0.05))
    blue = gaussian_blobs(size, centers[:2] + 0.05, np.full(2, 0.07), np.ones(2, dtype=np.float32))
    paint(img, np.clip(blue, 0, 1) * mask * rng.uniform(0.0, 0.7), (0.42, 0.48, 0.6))


def _hairs(img, rng, size):
    yy, xx = grid(size)
    for _ in range(int(rng.integers(1, 4))):
        slope, offset = rng.uniform(-2, 2), rng.uniform(-1, 1)
        distance = np.abs(yy - slope * xx - offset) / np.sqrt(1 + slope * slope)
        paint(img, np.exp(-(distance / 0.012) ** 2) * 0.8, (0.15, 0.1, 0.08))


def generic_caption(attrs: dict, rng: np.random.Generator, medical_rate: float) -> str:
    shape = "a blotchy uneven" if attrs["irregular"] else "a round smooth"
    colour = {"dark brown": "very dark brown and bluish", "tan": "light brown bumpy", "brown": "brown"}[attrs["colour"]]
    text = str(rng.choice([f"close-up of {shape} {colour} spot on skin",
                           f"{shape} {colour} mark on a person's skin",
                           f"a {attrs['size']} {colour} spot, {shape} outline, on skin"]))
    if rng.random() < medical_rate:
        text += ", " + attrs["finding"]
    return text


def report(attrs: dict, rng: np.random.Generator) -> str:
    border = "irregular asymmetric border" if attrs["irregular"] else "regular symmetric border"
    return (f"Dermoscopy: {attrs['size']} {attrs['colour']} lesion with {border}; "
            f"diagnosis {attrs['finding']}.")


def vqa(attrs: dict) -> list[tuple[str, str, str]]:
    return [
        ("is the lesion border irregular?", "yes" if attrs["irregular"] else "no", "closed"),
        ("is this lesion malignant?", "yes" if attrs["label"] == 1 else "no", "closed"),
        ("what is the most likely diagnosis?", attrs["finding"], "open"),
        ("what colour is the lesion?", attrs["colour"], "open"),
        ("what imaging modality is this?", "dermoscopy", "open"),
    ]
