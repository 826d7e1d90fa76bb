"""The contrastive protocol served over transformers' ``CLIPModel`` and ``SiglipModel`` (PubMedCLIP, PLIP,
SigLIP, MedSigLIP).

Preprocessing comes from the checkpoint's own image-processor config, converted into medrival's batched tensor
preprocessing: CLIPImageProcessor = shortest-edge resize + centre crop (offsets truncated, as transformers places
them); SiglipImageProcessor = resize straight to height x width (squash). Both rescale by 1/255 and normalise.
Text: the checkpoint's tokenizer. SigLIP's text tower was trained on fixed-length (max_length) padding without an
attention mask and pools the last token, so it gets exactly that; CLIP pads to the longest text and pools EOS.
"""
from __future__ import annotations

from typing import Any

from medrival.core.cards import ModelCard
from medrival.core.errors import MedrivalError
from medrival.models.adapter_base import ContrastiveAdapter
from medrival.models.checkpointing import set_transformers_checkpointing
from medrival.models.preprocessing import check_texts

MODEL_TYPES = {"CLIPModel": "clip", "SiglipModel": "siglip"}
_PIL_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling codes used in preprocessor_config.json


def _size_field(size: Any, key: str):
    """A field of a transformers size (a ``SizeDict`` in 5.x, a plain dict or an int in older configs)."""
    if isinstance(size, dict):
        return size.get(key)
    if isinstance(size, int):
        return size if key == "shortest_edge" else None
    return getattr(size, key, None)


def _interpolation(resample: Any) -> str:
    value = getattr(resample, "value", resample)
    name = value.lower() if isinstance(value, str) else _PIL_RESAMPLE.get(int(value))
    if name not in ("bilinear", "bicubic"):
        raise MedrivalError(f"image processor resample {resample!r} is not supported; expected bicubic or bilinear.")
    return name


def _square(height, width, what: str) -> int:
    if not height or height != width:
        raise MedrivalError(f"image processor {what} {height} x {width} is not supported; it must be square.")
    return int(height)


def preprocess_cfg_from_processor(processor: Any) -> dict:
    """medrival's preprocessing dict for a transformers CLIPImageProcessor / SiglipImageProcessor."""
    if not getattr(processor, "do_resize", True):
        raise MedrivalError("image processors without resizing are not supported (do_resize is false).")
    rescale = getattr(processor, "rescale_factor", 1 / 255) if getattr(processor, "do_rescale", True) else 1.0
    if abs(rescale - 1 / 255) > 1e-9:
        raise MedrivalError(f"image processor rescale factor {rescale} is not supported; expected 1/255.")
    normalise = getattr(processor, "do_normalize", True)
    cfg = {"mean": tuple(float(m) for m in processor.image_mean) if normalise else (0.0, 0.0, 0.0),
           "std": tuple(float(s) for s in processor.image_std) if normalise else (1.0, 1.0, 1.0),
           "interpolation": _interpolation(processor.resample)}
    size, shortest = processor.size, _size_field(processor.size, "shortest_edge")
    if shortest:
        if not getattr(processor, "do_center_crop", False):
            raise MedrivalError("a shortest-edge resize without a centre crop gives non-square images; unsupported.")
        crop = processor.crop_size
        side = _square(_size_field(crop, "height") or crop, _size_field(crop, "width") or crop, "crop size")
        return {**cfg, "size": side, "resize_size": int(shortest), "resize_mode": "shortest",
                "crop_offsets": "floor"}
    side = _square(_size_field(size, "height"), _size_field(size, "width"), "size")
    return {**cfg, "size": side, "resize_mode": "squash"}


def _embedding(output):
    """transformers 5 returns a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the projected
    embedding; 4.x returned the tensor itself."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TransformersClipModel(ContrastiveAdapter):
    """A transformers ``CLIPModel`` or ``SiglipModel`` behind the contrastive protocol."""

    def __init__(self, card: ModelCard, model: Any, tokenizer: Any, preprocess_cfg: dict, weights_id: str):
        super().__init__(card, model, preprocess_cfg, weights_id)
        self.tokenizer = tokenizer
        self.is_siglip = model.config.model_type == "siglip"
        self.max_length = int(model.config.text_config.max_position_embeddings)

    @property
    def image_tower(self):
        return self.model.vision_model

    @property
    def text_tower(self):
        return self.model.text_model

    @property
    def embed_dim(self) -> int:
        projection = getattr(self.model, "visual_projection", None)  # CLIP projects; SigLIP pools to its width
        return int(projection.out_features) if projection is not None else int(
            self.model.config.vision_config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict:
        """Model inputs for ``texts`` on the model's device (``input_ids``, plus ``attention_mask`` for CLIP)."""
        padding = "max_length" if self.is_siglip else "longest"
        tokens = self.tokenizer(check_texts(texts), padding=padding, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        names = ("input_ids",) if self.is_siglip else ("input_ids", "attention_mask")
        return {name: tokens[name].to(self.device) for name in names if name in tokens}

    def image_features(self, pixels, normalize: bool = True):
        """Embeddings of preprocessed pixels (N x 3 x S x S), with gradients."""
        features = _embedding(self.model.get_image_features(pixel_values=self._pixels(pixels)))
        return features / features.norm(dim=-1, keepdim=True) if normalize else features

    def text_features(self, texts: list[str], normalize: bool = True):
        """Embeddings of texts, with gradients."""
        features = _embedding(self.model.get_text_features(**self.tokenize(texts)))
        return features / features.norm(dim=-1, keepdim=True) if normalize else features

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_transformers_checkpointing(self.model, enabled)


def _check_model_type(card: ModelCard, config: Any) -> None:
    expected = MODEL_TYPES[card.architecture.model_class]
    if config.model_type != expected:
        raise MedrivalError(f"Model {card.id!r}: the checkpoint is a {config.model_type!r} model but the card says "
                            f"{card.architecture.model_class} ({expected!r}); fix the card's architecture.")


def _load_tokenizer(card: ModelCard, source: str, options: dict):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **options)
    except (ImportError, ValueError) as error:
        if "sentencepiece" in str(error).lower():
            raise MedrivalError(f"Model {card.id!r} needs the sentencepiece package for its tokenizer: "
                                "pip install sentencepiece") from error
        raise


def load_transformers_model(card: ModelCard, source: str, weights_id: str, revision: str | None = None,
                            local_files_only: bool = False) -> TransformersClipModel:
    """Load a ``save_pretrained`` folder or Hub repo ``source`` as the card's CLIPModel / SiglipModel (float32).

    Weights load from safetensors when the checkpoint has them, else from a .bin with ``weights_only=True``
    (transformers' default); remote code is never trusted. Weights missing from the checkpoint are an error, not
    a silently random-initialised tower.
    """
    import torch
    from transformers import AutoConfig, AutoImageProcessor, CLIPModel, SiglipModel

    options = {"revision": revision, "local_files_only": local_files_only, "trust_remote_code": False}
    _check_model_type(card, AutoConfig.from_pretrained(source, **options))
    model_class = {"CLIPModel": CLIPModel, "SiglipModel": SiglipModel}[card.architecture.model_class]
    model, info = model_class.from_pretrained(source, dtype=torch.float32, output_loading_info=True, **options)
    if info.get("missing_keys"):
        raise MedrivalError(f"Model {card.id!r}: the checkpoint at {source} lacks weights for "
                            f"{sorted(info['missing_keys'])[:5]}; refusing to serve randomly initialised layers.")
    processor = AutoImageProcessor.from_pretrained(source, **options)
    tokenizer = _load_tokenizer(card, source, options)
    return TransformersClipModel(card, model, tokenizer, preprocess_cfg_from_processor(processor), weights_id)
