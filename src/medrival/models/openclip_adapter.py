"""The contrastive-model protocol served over open_clip models (demo, local folders, Hub repos, built-in names).

Methods only see the protocol (``models/protocol.py``): ``encode_images``, ``encode_texts``, ``logit_scale``, the
towers and a ``fingerprint`` that keys the feature cache. Images arrive as uint8 arrays (N x H x W x 3) and are
preprocessed in batched tensor form following the model's own open_clip preprocessing config.
"""
from __future__ import annotations

from typing import Any

from medrival.core.cards import ModelCard
from medrival.models.adapter_base import ContrastiveAdapter, encode_in_batches, encode_texts_in_batches
from medrival.models.preprocessing import check_images, check_texts, preprocess_images

# Re-exported: other layers and tests import these names from here.
__all__ = ["OpenClipModel", "check_images", "check_texts", "encode_in_batches", "encode_texts_in_batches",
           "preprocess_images"]


class OpenClipModel(ContrastiveAdapter):
    """An ``open_clip`` CLIP or CustomTextCLIP behind the contrastive protocol."""

    def __init__(self, card: ModelCard, model: Any, tokenizer: Any, preprocess_cfg: dict, weights_id: str):
        super().__init__(card, model, preprocess_cfg, weights_id)
        self.tokenizer = tokenizer

    @property
    def image_tower(self):
        return self.model.visual

    @property
    def text_tower(self):
        # Not getattr(model, "text", model.transformer): the default would be evaluated (and fail) for models
        # with a separate text tower (CustomTextCLIP has ``text`` and no ``transformer``).
        return self.model.text if hasattr(self.model, "text") else self.model.transformer

    @property
    def embed_dim(self) -> int:
        """Width of the shared image-text embedding space."""
        for tower in (self.model.visual, getattr(self.model, "text", None)):  # timm/HF towers carry output_dim
            dim = getattr(tower, "output_dim", None)
            if isinstance(dim, int):
                return dim
        projection = getattr(self.model, "text_projection", None)
        if hasattr(projection, "out_features"):  # nn.Linear projection
            return int(projection.out_features)
        if projection is not None:  # (width x embed_dim) parameter
            return int(projection.shape[1])
        return 0

    # ------------------------------------------------------------------ differentiable forward passes
    def tokenize(self, texts: list[str]):
        """Token ids (M x context length) on the model's device."""
        return self.tokenizer(check_texts(texts)).to(self.device)

    def image_features(self, pixels, normalize: bool = True):
        """Embeddings of preprocessed pixels (N x 3 x S x S), with gradients (for LoRA / fine-tuning)."""
        return self.model.encode_image(self._pixels(pixels), normalize=normalize)

    def text_features(self, texts: list[str], normalize: bool = True):
        """Embeddings of texts, with gradients."""
        return self.model.encode_text(self.tokenize(texts), normalize=normalize)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.model.set_grad_checkpointing(enabled)
