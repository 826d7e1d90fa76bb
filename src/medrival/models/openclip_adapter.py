"""The contrastive-model protocol, served by one adapter over open_clip models (demo, local, Hub, built-in).

Methods only see this protocol: ``encode_images``, ``encode_texts``, ``logit_scale``, the towers and a
``fingerprint`` that keys the feature cache. Images arrive as uint8 arrays (N x H x W x 3) and are preprocessed in
batched tensor form following the model's own open_clip preprocessing config (resize, centre crop, normalise).
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from medrival.core.cards import ModelCard
from medrival.core.errors import DataError


def _resize(x, new_hw: tuple[int, int], mode: str):
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(new_hw):
        return x  # torchvision's Resize leaves an image of the requested size untouched
    return F.interpolate(x, size=new_hw, mode=mode, antialias=mode in ("bilinear", "bicubic"),
                         align_corners=False if mode != "nearest" else None).clamp_(0, 1)


def _centre_crop(x, size: int):
    """torchvision's ``center_crop`` offsets (round half to even), for an image at least ``size`` each way."""
    height, width = x.shape[-2:]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
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


def encode_in_batches(model, images: np.ndarray, batch_size: int, normalize: bool):
    """Preprocess and encode in batches under inference mode; float32 embeddings on the CPU."""
    import torch

    check_images(images)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            pixels = model.preprocess(images[start:start + batch_size])
            outputs.append(model.image_features(pixels, normalize).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, model.embed_dim)


def preprocess_images(images: np.ndarray, preprocess_cfg: dict):
    """uint8 N x H x W x 3 -> normalised float tensor N x 3 x S x S, as open_clip's transform would.

    Follows open_clip's inference transform for each ``resize_mode`` (output sizes and crop offsets computed as
    torchvision computes them); only the interpolation kernels differ slightly (torch's antialiased resize on
    floats vs PIL's on uint8).
    """
    import torch
    import torch.nn.functional as F

    check_images(images)
    size = preprocess_cfg.get("size", 224)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise DataError(f"non-square preprocessing size {tuple(size)} is not supported.")
        size = size[0]
    size = int(size)
    mode = preprocess_cfg.get("interpolation") or "bicubic"
    mode = "bilinear" if mode == "bilinear" else "bicubic"  # open_clip maps anything else ("random") to bicubic
    resize_mode = preprocess_cfg.get("resize_mode") or "shortest"
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = x.shape[-2:]
    if resize_mode == "shortest":
        # torchvision Resize(int): shortest side to `size`, the other int(size * long / short); then centre crop.
        short, long = min(height, width), max(height, width)
        new_long = int(size * long / short)
        new_hw = (size, new_long) if height <= width else (new_long, size)
        x = _centre_crop(_resize(x, new_hw, mode), size)
    elif resize_mode == "squash":
        x = _resize(x, (size, size), mode)
    elif resize_mode == "longest":
        # open_clip ResizeKeepRatio(longest=1) then CenterCropOrPad with fill_color.
        ratio = max(height / size, width / size)
        new_hw = (round(height / ratio), round(width / ratio))
        x = _resize(x, new_hw, mode)
        pad_h, pad_w = max(0, size - new_hw[0]), max(0, size - new_hw[1])
        if pad_h or pad_w:
            fill = float(preprocess_cfg.get("fill_color", 0) or 0) / 255.0
            x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), value=fill)
        x = _centre_crop(x, size)
    else:
        raise DataError(f"unknown resize_mode {resize_mode!r} in the preprocessing config; "
                        "expected 'shortest', 'longest' or 'squash'.")
    mean = torch.tensor(preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = torch.tensor(preprocess_cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    return (x - mean[:, None, None]) / std[:, None, None]


class OpenClipModel:
    family = "contrastive"

    def __init__(self, card: ModelCard, model: Any, tokenizer: Any, preprocess_cfg: dict, weights_id: str):
        self.card = card
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocess_cfg = dict(preprocess_cfg)
        self._weights_id = weights_id

    @property
    def image_tower(self):
        return self.model.visual

    @property
    def text_tower(self):
        # Not getattr(model, "text", model.transformer): the default would be evaluated (and fail) for models
        # with a separate text tower (CustomTextCLIP has ``text`` and no ``transformer``).
        return self.model.text if hasattr(self.model, "text") else self.model.transformer

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def fingerprint(self) -> str:
        """Identifies weights + preprocessing, so cached features are reused only when both match."""
        text = f"{self._weights_id}|{sorted(self.preprocess_cfg.items())}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def preprocess(self, images: np.ndarray):
        return preprocess_images(images, self.preprocess_cfg)

    # ------------------------------------------------------------------ differentiable forward passes
    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> "OpenClipModel":
        self.model.to(device)
        return self

    def tokenize(self, texts: list[str]):
        """Token ids (M x context length) on the model's device."""
        return self.tokenizer(check_texts(texts)).to(self.device)

    def image_features(self, pixels, normalize: bool = True):
        """Embeddings of preprocessed pixels (N x 3 x S x S), with gradients (for LoRA / fine-tuning)."""
        return self.model.encode_image(pixels.to(self.device), normalize=normalize)

    def text_features(self, texts: list[str], normalize: bool = True):
        """Embeddings of texts, with gradients."""
        return self.model.encode_text(self.tokenize(texts), normalize=normalize)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.model.set_grad_checkpointing(enabled)

    # ------------------------------------------------------------------ inference
    def encode_images(self, images: np.ndarray, batch_size: int = 256, normalize: bool = True):
        """L2-normalised (by default) float32 CPU embeddings of uint8 images N x H x W x 3."""
        return encode_in_batches(self, images, batch_size, normalize)

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True):
        import torch

        texts = check_texts(texts)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                outputs.append(self.text_features(texts[start:start + batch_size], normalize).float().cpu())
        return torch.cat(outputs) if outputs else torch.zeros(0, self.embed_dim)

    @property
    def embed_dim(self) -> int:
        """Width of the shared image-text embedding space."""
        dim = getattr(self.model.visual, "output_dim", None)
        if isinstance(dim, int):
            return dim
        projection = getattr(self.model, "text_projection", None)
        if hasattr(projection, "out_features"):  # nn.Linear projection
            return int(projection.out_features)
        if projection is not None:  # (width x embed_dim) parameter
            return int(projection.shape[1])
        return 0
