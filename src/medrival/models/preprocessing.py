"""Batched tensor preprocessing shared by every adapter, driven by a plain dict read from the checkpoint's config.

The dict (``preprocess_cfg``) has open_clip's keys: ``size``, ``mean``, ``std``, ``interpolation`` (bicubic or
bilinear), ``resize_mode`` (shortest, longest, squash) and ``fill_color``; plus two keys for transformers'
CLIP-style processors: ``resize_size`` (the shortest edge when it differs from the crop ``size``) and
``crop_offsets`` ("round" as torchvision places a centre crop, "floor" as transformers does).
"""
from __future__ import annotations

import numpy as np

from medrival.core.errors import DataError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _resize(x, new_hw: tuple[int, int], mode: str):
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(new_hw):
        return x  # torchvision's Resize leaves an image of the requested size untouched
    return F.interpolate(x, size=new_hw, mode=mode, antialias=mode in ("bilinear", "bicubic"),
                         align_corners=False if mode != "nearest" else None).clamp_(0, 1)


def _centre_crop(x, size: int, offsets: str = "round"):
    """Centre crop of an image at least ``size`` each way.

    ``offsets="round"`` places the window as torchvision's ``center_crop`` does (round half to even; open_clip);
    ``"floor"`` as transformers' image processors do (truncate): they differ by one pixel when the margin is odd.
    """
    height, width = x.shape[-2:]
    place = (lambda margin: int(round(margin / 2.0))) if offsets == "round" else (lambda margin: int(margin / 2.0))
    top, left = place(height - size), place(width - size)
    return x[:, :, top:top + size, left:left + size]


def check_images(images) -> None:
    """Raise ``DataError`` unless ``images`` is a uint8 NumPy array N x H x W x 3."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"images must be a uint8 array N x H x W x 3, got {type(images).__name__} "
                        f"{getattr(images, 'shape', '')}.")
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8 (0-255), got dtype {images.dtype}; convert with "
                        "(np.clip(x, 0, 1) * 255).round().astype(np.uint8) if they are floats in [0, 1].")


def check_texts(texts) -> list[str]:
    """The texts as a list, or ``DataError`` when they are not a list of strings."""
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise DataError(f"texts must be a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise DataError("texts must be a list of strings; some items are not strings.")
    return texts


def _square_size(value) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise DataError(f"non-square preprocessing size {tuple(value)} is not supported.")
        value = value[0]
    return int(value)


def _resize_shortest(x, cfg: dict, size: int, mode: str):
    """torchvision Resize(int): shortest side to the target, the other int(target * long / short); centre crop."""
    target = _square_size(cfg.get("resize_size") or size)
    height, width = x.shape[-2:]
    short, long = min(height, width), max(height, width)
    new_long = int(target * long / short)
    new_hw = (target, new_long) if height <= width else (new_long, target)
    return _centre_crop(_resize(x, new_hw, mode), size, cfg.get("crop_offsets", "round"))


def _resize_longest(x, cfg: dict, size: int, mode: str):
    """open_clip ResizeKeepRatio(longest=1) then CenterCropOrPad with ``fill_color``."""
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    ratio = max(height / size, width / size)
    new_hw = (round(height / ratio), round(width / ratio))
    x = _resize(x, new_hw, mode)
    pad_h, pad_w = max(0, size - new_hw[0]), max(0, size - new_hw[1])
    if pad_h or pad_w:
        fill = float(cfg.get("fill_color", 0) or 0) / 255.0
        x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), value=fill)
    return _centre_crop(x, size)


def preprocess_images(images: np.ndarray, preprocess_cfg: dict):
    """uint8 N x H x W x 3 -> normalised float tensor N x 3 x S x S, as the checkpoint's own transform would.

    Follows open_clip's inference transform for each ``resize_mode`` (output sizes and crop offsets computed as
    torchvision computes them, or as transformers does with ``crop_offsets="floor"``); only the interpolation
    kernels differ slightly (torch's antialiased resize on floats vs PIL's or torchvision's on uint8).
    """
    import torch

    check_images(images)
    size = _square_size(preprocess_cfg.get("size", 224))
    mode = preprocess_cfg.get("interpolation") or "bicubic"
    mode = "bilinear" if mode == "bilinear" else "bicubic"  # open_clip maps anything else ("random") to bicubic
    resize_mode = preprocess_cfg.get("resize_mode") or "shortest"
    mean = torch.tensor(preprocess_cfg.get("mean", OPENAI_MEAN), dtype=torch.float32)
    std = torch.tensor(preprocess_cfg.get("std", OPENAI_STD), dtype=torch.float32)
    resize_size = _square_size(preprocess_cfg.get("resize_size") or size)
    if images.shape[1] == images.shape[2] == size == resize_size and resize_mode in ("shortest", "squash", "longest"):
        # Already at the model's size: every resize mode is the identity, so only convert and normalise. One
        # converting copy from the channels-last uint8 view into a float NCHW buffer, then scale and shift in
        # place, was the cheapest order measured here (about 4x faster than the general path).
        channels_first = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        pixels = torch.empty(channels_first.shape, dtype=torch.float32).copy_(channels_first)
        return pixels.mul_((1.0 / (255.0 * std))[:, None, None]).sub_((mean / std)[:, None, None])
    channels_first = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    x = torch.empty(channels_first.shape, dtype=torch.float32).copy_(channels_first).div_(255.0)
    if resize_mode == "shortest":
        x = _resize_shortest(x, preprocess_cfg, size, mode)
    elif resize_mode == "squash":
        x = _resize(x, (size, size), mode)
    elif resize_mode == "longest":
        x = _resize_longest(x, preprocess_cfg, size, mode)
    else:
        raise DataError(f"unknown resize_mode {resize_mode!r} in the preprocessing config; "
                        "expected 'shortest', 'longest' or 'squash'.")
    # In place: x is this function's own float copy, and two fewer batch-sized allocations keep the
    # preprocessing thread well ahead of the forward pass it overlaps with (benchmarks/encode.py).
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])


def decode_geometry(preprocess_cfg: dict):
    """The geometric half of ``preprocess_cfg`` as an ``ImageGeometry``: lazy (file) splits are decoded straight
    to the model's square input with it, so :func:`preprocess_images` then takes its convert-and-normalise path."""
    from medrival.core.images import ImageGeometry

    size = _square_size(preprocess_cfg.get("size", 224))
    resize_size = _square_size(preprocess_cfg.get("resize_size") or size)
    interpolation = "bilinear" if preprocess_cfg.get("interpolation") == "bilinear" else "bicubic"
    return ImageGeometry(size=size, resize_size=resize_size, resize_mode=preprocess_cfg.get("resize_mode") or "shortest",
                         interpolation=interpolation, fill=int(preprocess_cfg.get("fill_color", 0) or 0),
                         crop_offsets=preprocess_cfg.get("crop_offsets") or "round")
