"""What every contrastive adapter shares: fingerprint, preprocessing, device moves and batched inference.

Concrete adapters (open_clip, transformers) add the towers, ``logit_scale``, ``embed_dim``, ``tokenize`` and
the differentiable ``image_features`` / ``text_features`` (see ``models/protocol.py``).
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from medrival.core.cards import ModelCard
from medrival.models.encoding import encode_in_batches  # preprocessing of batch k+1 overlaps encoding of batch k
from medrival.models.precision import LoadOptions
from medrival.models.preprocessing import check_texts, decode_geometry, preprocess_images

__all__ = ["ContrastiveAdapter", "encode_in_batches", "encode_texts_in_batches"]


def encode_texts_in_batches(model, texts, batch_size: int, normalize: bool):
    """Texts to float32 CPU embeddings in batches under inference mode."""
    import torch

    texts = check_texts(texts)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            outputs.append(model.text_features(texts[start:start + batch_size], normalize).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, model.embed_dim)


class ContrastiveAdapter:
    """Base of the adapters: holds the card, the module, its preprocessing config and a weights id."""

    family = "contrastive"

    def __init__(self, card: ModelCard, model: Any, preprocess_cfg: dict, weights_id: str):
        self.card = card
        self.model = model.eval()
        self.preprocess_cfg = dict(preprocess_cfg)
        self._weights_id = weights_id
        self.load_options = LoadOptions()

    @property
    def fingerprint(self) -> str:
        """Identifies weights + preprocessing (+ precision when not fp32), so cached features are reused only
        when all match; fp32 adds nothing, so features cached before precision was an option stay valid."""
        text = f"{self._weights_id}|{sorted(self.preprocess_cfg.items())}{self.load_options.fingerprint_suffix}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def dtype(self) -> str:
        """The precision the weights are held in: fp32, bf16 or fp16."""
        return self.load_options.label

    def with_precision(self, options: LoadOptions) -> "ContrastiveAdapter":
        """Cast the weights to ``options.dtype`` (fp32 leaves them as loaded) and remember it for the fingerprint."""
        if options.dtype != "fp32":
            from medrival.models.precision import torch_dtype

            self.model.to(torch_dtype(options.dtype))
        self.load_options = LoadOptions(options.dtype)
        return self

    def _pixels(self, pixels):
        """Preprocessed pixels on the model's device, in its parameters' dtype."""
        parameter = next(self.model.parameters())
        return pixels.to(parameter.device, parameter.dtype)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, exponentiated (both open_clip and transformers store its log). SigLIP also
        learns a logit_bias; it adds the same constant to every class's logit for an image, so it cancels in a
        softmax over classes and the protocol leaves it out."""
        return float(self.model.logit_scale.exp().item())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def preprocess(self, images: np.ndarray):
        return preprocess_images(images, self.preprocess_cfg)

    @property
    def geometry(self):
        """Square input size and resize rule, for decoding file images straight to what the model takes."""
        return decode_geometry(self.preprocess_cfg)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device):
        self.model.to(device)
        return self

    def encode_images(self, images: np.ndarray, batch_size: int = 256, normalize: bool = True):
        """L2-normalised (by default) float32 CPU embeddings of uint8 images N x H x W x 3."""
        return encode_in_batches(self, images, batch_size, normalize)

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True):
        """L2-normalised (by default) float32 CPU embeddings of texts."""
        return encode_texts_in_batches(self, texts, batch_size, normalize)
