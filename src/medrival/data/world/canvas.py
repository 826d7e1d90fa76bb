"""Drawing primitives for the synthetic world: coordinate grids, soft shapes and smooth noise, all NumPy.

Images are drawn as float32 arrays in [0, 1] on a square grid whose coordinates run from -1 to 1, so every
generator is resolution-independent; ``to_uint8`` quantises at the end.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinate arrays in [-1, 1] for a size x size image."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def soft_ellipse(size: int, cx: float, cy: float, rx: float, ry: float, sharpness: float = 25.0,
                 angle: float = 0.0) -> np.ndarray:
    """Ellipse mask in [0, 1] with a soft edge (a sigmoid of the normalised radius)."""
    yy, xx = grid(size)
    dx, dy = xx - cx, yy - cy
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    radius = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip(sharpness * (radius - 1.0), -30, 30)))


def gaussian_blob(size: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    yy, xx = grid(size)
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * sigma * sigma))


def gaussian_blobs(size: int, centers: np.ndarray, sigmas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of many Gaussian blobs at once (centers: K x 2 as (x, y)); separable, so O(K * size) per axis."""
    if len(centers) == 0:
        return np.zeros((size, size), dtype=np.float32)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gx = np.exp(-((axis[None, :] - centers[:, :1]) ** 2) / (2 * sigmas[:, None] ** 2))  # K x size
    gy = np.exp(-((axis[None, :] - centers[:, 1:2]) ** 2) / (2 * sigmas[:, None] ** 2))
    return ((gy * weights[:, None]).T @ gx).astype(np.float32)


@lru_cache(maxsize=16)
def _upsampler(size: int, coarse: int) -> np.ndarray:
    """Linear-interpolation matrix (size x coarse) used to upsample coarse noise smoothly."""
    positions = np.linspace(0, coarse - 1, size)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, coarse - 1)
    frac = positions - lower
    matrix = np.zeros((size, coarse), dtype=np.float32)
    matrix[np.arange(size), lower] += 1 - frac
    matrix[np.arange(size), upper] += frac
    return matrix


def smooth_noise(rng: np.random.Generator, size: int, coarse: int = 8) -> np.ndarray:
    """Smooth random field with zero mean and unit-ish scale: coarse Gaussian noise, bilinearly upsampled."""
    up = _upsampler(size, coarse)
    return up @ rng.standard_normal((coarse, coarse)).astype(np.float32) @ up.T


def paint(canvas: np.ndarray, mask: np.ndarray, color) -> None:
    """Alpha-blend ``color`` (RGB) into an H x W x 3 canvas where ``mask`` (H x W, in [0,1]) is set."""
    canvas += mask[..., None] * (np.asarray(color, dtype=np.float32) - canvas)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
