"""Everyday-picture stand-ins for the generalist's broad corpus: coloured shapes on coloured backgrounds."""
from __future__ import annotations

import numpy as np

from medrival.data.world.canvas import grid, paint, smooth_noise, soft_ellipse

MODALITY = "natural"
TASK = None
CLASS_NAMES: tuple[str, ...] = ()
COLOURS = {"red": (0.85, 0.15, 0.12), "green": (0.2, 0.7, 0.25), "blue": (0.15, 0.3, 0.85),
            "yellow": (0.95, 0.85, 0.2), "white": (0.95, 0.95, 0.95), "black": (0.05, 0.05, 0.05),
            "purple": (0.55, 0.2, 0.65), "orange": (0.95, 0.55, 0.1)}


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    names = list(COLOURS)
    background = str(rng.choice(names))
    img = np.broadcast_to(np.asarray(COLOURS[background], np.float32), (size, size, 3)).copy()
    img += 0.05 * smooth_noise(rng, size, 6)[..., None]
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        colour = str(rng.choice([n for n in names if n != background]))
        kind = str(rng.choice(["circle", "square", "bar"]))
        cx, cy = rng.uniform(-0.6, 0.6, size=2)
        radius = rng.uniform(0.15, 0.35)
        rx, ry = {"circle": (radius, radius), "square": (radius, radius), "bar": (radius * 1.8, radius * 0.4)}[kind]
        mask = soft_ellipse(size, cx, cy, rx, ry, 40.0) if kind == "circle" else _box(size, cx, cy, rx, ry)
        paint(img, mask, COLOURS[colour])
        shapes.append((colour, kind))
    return img, {"label": -1, "background": background, "shapes": shapes}


def _box(size, cx, cy, rx, ry):
    yy, xx = grid(size)
    return ((np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)).astype(np.float32)


def generic_caption(attrs: dict, rng: np.random.Generator, medical_rate: float) -> str:
    things = " and ".join(f"a {colour} {kind}" for colour, kind in attrs["shapes"])
    return str(rng.choice([f"{things} on a {attrs['background']} background",
                           f"a picture of {things} over {attrs['background']}"]))


def report(attrs: dict, rng: np.random.Generator) -> str:
    return generic_caption(attrs, rng, 0.0)


def vqa(attrs: dict) -> list[tuple[str, str, str]]:
    return [("what colour is the background?", attrs["background"], "open")]
