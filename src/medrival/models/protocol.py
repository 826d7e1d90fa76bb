"""The contrastive-model protocol every adapter serves (open_clip and transformers alike).

Methods only use this surface, never the concrete model class, so one method runs on every card:

- ``card``, ``family`` ("contrastive"), ``model`` (the underlying ``torch.nn.Module``), ``fingerprint`` (weights +
  preprocessing; keys the feature cache), ``embed_dim``, ``logit_scale``, ``num_parameters()``.
- ``preprocess(images)``: uint8 N x H x W x 3 -> float pixels N x 3 x S x S (CPU), as the checkpoint expects.
- ``encode_images(images)`` / ``encode_texts(texts)``: inference-mode, L2-normalised float32 CPU embeddings.
- ``image_features(pixels)`` / ``text_features(texts)``: the same embeddings with gradients, on ``device``
  (LoRA, full fine-tuning, CLIP-Adapter, CoOp).
- ``tokenize(texts)``, ``device``, ``to(device)``, ``set_grad_checkpointing(enabled)``.
- ``image_tower`` / ``text_tower``: the towers' modules (LoRA targets, freezing).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ContrastiveModel(Protocol):
    card: Any
    family: str
    model: Any

    @property
    def fingerprint(self) -> str: ...

    @property
    def embed_dim(self) -> int: ...

    @property
    def geometry(self) -> Any:
        """``ImageGeometry``: the square input and resize rule file images are decoded to."""

    @property
    def logit_scale(self) -> float: ...

    @property
    def device(self) -> Any: ...

    @property
    def image_tower(self) -> Any: ...

    @property
    def text_tower(self) -> Any: ...

    def num_parameters(self) -> int: ...

    def to(self, device: Any) -> "ContrastiveModel": ...

    def preprocess(self, images: np.ndarray) -> Any: ...

    def encode_images(self, images: np.ndarray, batch_size: int = 256, normalize: bool = True) -> Any: ...

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True) -> Any: ...

    def image_features(self, pixels: Any, normalize: bool = True) -> Any: ...

    def text_features(self, texts: list[str], normalize: bool = True) -> Any: ...

    def tokenize(self, texts: list[str]) -> Any: ...

    def set_grad_checkpointing(self, enabled: bool = True) -> None: ...
