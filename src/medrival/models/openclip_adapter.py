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


def preprocess_images(images: np.ndarray, preprocess_cfg: dict):
    """uint8 N x H x W x 3 -> normalised float tensor N x 3 x S x S, as open_clip's transform would."""
    import torch
    import torch.nn.functional as F

    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"images must be a uint8 array N x H x W x 3, got {type(images).__name__} "
                        f"{getattr(images, 'shape', '')}.")
    size = preprocess_cfg.get("size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else size
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        scale = size / min(height, width)  # shortest side to `size`, then centre crop
        new_hw = (max(size, round(height * scale)), max(size, round(width * scale)))
        mode = preprocess_cfg.get("interpolation", "bicubic")
        x = F.interpolate(x, size=new_hw, mode=mode, antialias=mode in ("bilinear", "bicubic"),
                          align_corners=False if mode != "nearest" else None).clamp_(0, 1)
        top, left = (new_hw[0] - size) // 2, (new_hw[1] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
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
        return getattr(self.model, "text", self.model.transformer)

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

    def encode_images(self, images: np.ndarray, batch_size: int = 256, normalize: bool = True):
        import torch

        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self.preprocess(images[start:start + batch_size])
                outputs.append(self.model.encode_image(batch, normalize=normalize).float())
        return torch.cat(outputs) if outputs else torch.zeros(0, self.embed_dim)

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True):
        import torch

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise DataError("texts must be a list of strings.")
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start:start + batch_size]))
                outputs.append(self.model.encode_text(tokens, normalize=normalize).float())
        return torch.cat(outputs) if outputs else torch.zeros(0, self.embed_dim)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else 0
