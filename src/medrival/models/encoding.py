"""Batched image encoding; on a GPU the next batch's preprocessing overlaps the current forward pass.

Preprocessing (uint8 -> resized, normalised float pixels) runs on the CPU. With the model on a GPU the CPU is
otherwise idle during the forward pass, so one background thread prepares the next batch meanwhile (torch
releases the GIL inside its kernels). With the model on the CPU the forward pass already keeps every core busy:
measured here, a background thread then costs more than it hides (ratio 0.74 vs 0.93 serial on 2 cores), so the
batches run one after the other. ``benchmarks/encode.py`` measures pipeline against bare forward.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from medrival.core.errors import DataError
from medrival.models.preprocessing import check_images


def _prefetched(model, images: np.ndarray, batch_size: int):
    """Yield preprocessed batches, preparing the next one in a background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medrival-preprocess") as pool:
        pending = pool.submit(model.preprocess, images[0:batch_size])
        for start in range(0, len(images), batch_size):
            pixels = pending.result()
            following = start + batch_size
            if following < len(images):
                pending = pool.submit(model.preprocess, images[following:following + batch_size])
            yield pixels


def _in_turn(model, images: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield model.preprocess(images[start:start + batch_size])


def encode_in_batches(model, images: np.ndarray, batch_size: int = 256, normalize: bool = True):
    """Embeddings (float32, CPU) of uint8 images via ``model.preprocess`` and ``model.image_features``."""
    import torch

    check_images(images)
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}.")
    if len(images) == 0:
        return torch.zeros(0, model.embed_dim)
    batches = _in_turn if model.device.type == "cpu" else _prefetched
    outputs = []
    with torch.inference_mode():
        for pixels in batches(model, images, batch_size):
            outputs.append(model.image_features(pixels, normalize).float().cpu())
    return torch.cat(outputs)
