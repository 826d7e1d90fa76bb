"""Fundus-photograph-like images: an orange retina with an optic disc and vessels.

Diabetic retinopathy adds red haemorrhage dots and yellow exudates; glaucoma enlarges the pale optic cup.
"""
from __future__ import annotations

import numpy as np

from medrival.data.world.canvas import gaussian_blobs, grid, paint, smooth_noise, soft_ellipse

MODALITY = "fundus"
TASK = "multiclass"
CLASS_NAMES = ("normal", "diabetic retinopathy", "glaucoma")
CLASS_DESCRIPTIONS = (
    ("a healthy retina", "a normal fundus", "no retinopathy"),
    ("diabetic retinopathy", "retinal haemorrhages and exudates", "diabetic retinopathy with microaneurysms"),
    ("glaucoma", "an enlarged optic cup", "glaucomatous optic disc cupping"),
)
PROMPT_TEMPLATES = ("a fundus photograph showing {}.", "retinal image of {}.", "{}")


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    label = int(rng.integers(3))
    yy, xx = grid(size)
    img = np.zeros((size, size, 3), dtype=np.float32)
    retina = soft_ellipse(size, 0, 0, 0.92, 0.92, 30)
    vignette = 1.0 - 0.45 * (xx ** 2 + yy ** 2)
    tone = np.array([0.82, 0.36, 0.14], dtype=np.float32) * rng.uniform(0.85, 1.1)
    paint(img, retina, tone)
    img *= vignette[..., None]
    img += (0.03 * smooth_noise(rng, size, 12) * retina)[..., None]
    side = 1 if rng.random() < 0.5 else -1
    disc_x, disc_y = side * rng.uniform(0.4, 0.5), rng.uniform(-0.08, 0.08)
    _vessels(img, rng, size, disc_x, disc_y, retina)
    paint(img, soft_ellipse(size, disc_x, disc_y, 0.13, 0.14, 20), (0.97, 0.82, 0.5))
    cup = rng.uniform(0.52, 0.85) if label == 2 else rng.uniform(0.25, 0.55)
    paint(img, soft_ellipse(size, disc_x, disc_y, 0.13 * cup, 0.14 * cup, 20), (1.0, 0.96, 0.85))
    attrs = {"label": label, "finding": CLASS_NAMES[label], "cup_ratio": round(float(cup), 2),
             "eye": "right" if side == 1 else "left", "lesions": 0}
    if label == 1:
        attrs["lesions"] = _lesions(img, rng, size, retina)
    img += 0.02 * rng.standard_normal((size, size, 1)).astype(np.float32)
    return img, attrs


def _vessels(img, rng, size, disc_x, disc_y, retina):
    yy, xx = grid(size)
    for direction in (-1, 1):
        for _ in range(2):
            curve = disc_y + direction * rng.uniform(0.2, 0.9) * np.abs(xx - disc_x) ** rng.uniform(0.8, 1.4)
            mask = np.exp(-((yy - curve) / rng.uniform(0.012, 0.02)) ** 2) * retina
            paint(img, mask * 0.8, (0.5, 0.08, 0.05))


def _lesions(img, rng, size, retina) -> int:
    haemorrhages = int(rng.integers(1, 12))
    centers = rng.uniform(-0.65, 0.65, size=(haemorrhages, 2))
    dots = gaussian_blobs(size, centers, rng.uniform(0.015, 0.03, haemorrhages), np.ones(haemorrhages, np.float32))
    paint(img, np.clip(dots * 1.5, 0, 1) * retina, (0.45, 0.02, 0.02))
    exudates = int(rng.integers(0, 7))
    centers = rng.uniform(-0.6, 0.6, size=(exudates, 2))
    spots = gaussian_blobs(size, centers, rng.uniform(0.02, 0.04, exudates), np.ones(exudates, np.float32))
    paint(img, np.clip(spots * 1.5, 0, 1) * retina, (0.98, 0.9, 0.35))
    return haemorrhages + exudates


def generic_caption(attrs: dict, rng: np.random.Generator, medical_rate: float) -> str:
    base = str(rng.choice(["an orange circle with red branching lines", "a round orange picture of an eye",
                           "a glowing orange disc on black"]))
    detail = {0: " and a small bright spot", 1: " with many red and yellow specks",
              2: " and a big pale bright spot"}[attrs["label"]]
    text = base + detail
    if rng.random() < medical_rate:
        text += ", " + attrs["finding"]
    return text


def report(attrs: dict, rng: np.random.Generator) -> str:
    disc = f"cup-to-disc ratio {attrs['cup_ratio']:.1f}"
    body = {0: "no haemorrhages or exudates", 1: "scattered haemorrhages and hard exudates",
            2: "enlarged optic cup"}[attrs["label"]]
    return f"Fundus photograph, {attrs['eye']} eye: {disc}, {body}; impression {attrs['finding']}."


def vqa(attrs: dict) -> list[tuple[str, str, str]]:
    return [
        ("are there haemorrhages in the retina?", "yes" if attrs["label"] == 1 else "no", "closed"),
        ("is the optic cup enlarged?", "yes" if attrs["label"] == 2 else "no", "closed"),
        ("what is the most likely diagnosis?", attrs["finding"], "open"),
        ("which eye is shown?", attrs["eye"], "open"),
        ("what imaging modality is this?", "fundus photography", "open"),
    ]
