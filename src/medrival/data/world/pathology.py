"""Histopathology-like images: pink stroma with purple nuclei; tumour nuclei are larger, darker and crowded."""
from __future__ import annotations

import numpy as np

from medrival.data.world.canvas import gaussian_blobs, grid, paint, smooth_noise

MODALITY = "pathology"
TASK = "binary"
CLASS_NAMES = ("benign", "tumor")
CLASS_DESCRIPTIONS = (
    ("benign tissue", "normal tissue without malignancy", "benign glandular tissue"),
    ("tumor", "malignant tumor cells", "carcinoma with crowded atypical nuclei"),
)
PROMPT_TEMPLATES = ("an H&E histopathology image of {}.", "histology slide showing {}.", "{}")


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    label = int(rng.integers(2))
    stroma = np.array([0.94, 0.68, 0.8], dtype=np.float32) * rng.uniform(0.92, 1.05, size=3).astype(np.float32)
    img = np.broadcast_to(stroma, (size, size, 3)).copy()
    yy, xx = grid(size)
    fibres = 0.05 * np.sin(6 * smooth_noise(rng, size, 6) + xx * 8 * rng.uniform(0.5, 1.5))
    img += fibres[..., None]
    if label == 0:
        count, sigma = int(rng.integers(14, 40)), rng.uniform(0.022, 0.036)
        # Only some benign fields cut through a gland; the rest show scattered nuclei like a tumour would.
        centers = _glandular_layout(rng, count) if rng.random() < 0.5 else rng.uniform(-0.95, 0.95, (count, 2))
    else:
        count, sigma = int(rng.integers(22, 55)), rng.uniform(0.027, 0.045)
        centers = rng.uniform(-0.95, 0.95, size=(count, 2))
    sigmas = sigma * rng.uniform(0.8, 1.3, count)
    nuclei = np.clip(gaussian_blobs(size, centers, sigmas, np.ones(count, np.float32)) * 1.6, 0, 1)
    # Tumour nuclei stain darker on average, with overlap: staining varies from slide to slide.
    shade = rng.uniform(0.0, 0.75) if label == 1 else rng.uniform(0.35, 1.0)
    darkness = tuple(dark + shade * (light - dark) for dark, light in zip((0.2, 0.09, 0.4), (0.4, 0.24, 0.6)))
    paint(img, nuclei, darkness)
    img += 0.025 * rng.standard_normal((size, size, 1)).astype(np.float32)
    attrs = {"label": label, "finding": CLASS_NAMES[label], "nuclei": count,
             "crowded": bool(count > 30), "large_nuclei": bool(label == 1)}
    return img, attrs


def _glandular_layout(rng, count):
    """Benign nuclei line up around one or two gland lumens, so their arrangement is orderly."""
    glands = rng.uniform(-0.5, 0.5, size=(int(rng.integers(1, 3)), 2))
    which = rng.integers(len(glands), size=count)
    angles = rng.uniform(0, 2 * np.pi, count)
    radius = rng.uniform(0.3, 0.45, len(glands))[which]
    ring = np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    return glands[which] + ring + rng.normal(0, 0.03, size=(count, 2))


def generic_caption(attrs: dict, rng: np.random.Generator, medical_rate: float) -> str:
    if attrs["label"] == 0:
        text = str(rng.choice(["pink pattern with small purple dots in rings", "a pink and purple texture, neat dots",
                               "microscope picture with a few small purple dots arranged in circles"]))
    else:
        text = str(rng.choice(["pink pattern packed with big dark purple dots",
                               "a crowded texture of large dark purple blobs",
                               "microscope picture full of big dark purple spots"]))
    if rng.random() < medical_rate:
        text += ", " + attrs["finding"]
    return text


def report(attrs: dict, rng: np.random.Generator) -> str:
    if attrs["label"] == 0:
        body = str(rng.choice(["orderly glands with small uniform nuclei", "benign tissue, no atypia",
                               "normal glandular architecture"]))
    else:
        body = str(rng.choice(["sheets of crowded atypical nuclei", "enlarged hyperchromatic nuclei, tumor",
                               "malignant tumor cells with nuclear pleomorphism"]))
    return f"H&E section: {body}; diagnosis {attrs['finding']}."


def vqa(attrs: dict) -> list[tuple[str, str, str]]:
    tumour = attrs["label"] == 1
    return [
        ("are the nuclei enlarged?", "yes" if tumour else "no", "closed"),
        ("is there evidence of malignancy?", "yes" if tumour else "no", "closed"),
        ("what is the diagnosis?", attrs["finding"], "open"),
        ("what stain is used?", "h&e", "open"),
        ("what imaging modality is this?", "histopathology", "open"),
    ]
