"""Building open_clip models from each kind of source: built-in names + tags, ``hf-hub:`` repos, local folders.

A local folder holds ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
``open_clip_model.safetensors`` (or ``open_clip_pytorch_model.bin``, read with ``weights_only=True``); for a
built-in config the weights file alone is enough. A checkpoint with a Hugging Face text tower (BiomedCLIP) names
that tower's Hub repo in ``text_cfg.hf_model_name``; a folder copy carries the tower's ``config.json`` and tokenizer
files beside the open_clip files, and medrival points the config at them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medrival.core.cards import ModelCard
from medrival.core.errors import MedrivalError
from medrival.models.openclip_adapter import OpenClipModel

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


@dataclass
class OpenClipSpec:
    """Arguments for ``open_clip.create_model_and_transforms`` and ``get_tokenizer``."""

    identifier: str
    pretrained: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    tokenizer_source: str | None = None  # an HF tokenizer folder or repo, when it is not where open_clip looks


def folder_version(folder: str | Path) -> str:
    """Path plus size and modification time of every weight file: retrained weights in the same folder must
    not reuse features cached for the old ones (hashing multi-GB checkpoints on every load would be too slow)."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        return str(root)
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(root.iterdir())
              if p.suffix in (".safetensors", ".bin", ".pth", ".pt")]
    return f"{root}|{'|'.join(stamps)}"


def _hf_text_override(folder: Path, config: dict) -> tuple[dict, str | None]:
    """``text_cfg`` pointing an HF text tower at the folder's own copy, and where its tokenizer is."""
    text_cfg = dict(config.get("model_cfg", {}).get("text_cfg", {}))
    name = text_cfg.get("hf_model_name")
    if not name:
        return {}, None
    has_tokenizer = any((folder / f).is_file() for f in TOKENIZER_FILES)
    tokenizer = None if has_tokenizer else text_cfg.get("hf_tokenizer_name") or name
    if (folder / "config.json").is_file():
        name = str(folder)  # the tower's config copied beside the open_clip files wins over the Hub id
    # The tower's weights are inside the open_clip checkpoint: never fetch the tower's own pretrained weights.
    override = {**text_cfg, "hf_model_name": name, "hf_model_pretrained": False}
    if has_tokenizer:
        override["hf_tokenizer_name"] = str(folder)
    return {"text_cfg": override}, tokenizer


def folder_spec(card: ModelCard, folder: Path) -> OpenClipSpec:
    """How to build ``card`` from a local ``folder``."""
    config_path = folder / "open_clip_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise MedrivalError(f"Model {card.id!r}: could not read {config_path}: {error}") from error
        kwargs, tokenizer = _hf_text_override(folder, config)
        return OpenClipSpec(f"local-dir:{folder}", model_kwargs=kwargs, tokenizer_source=tokenizer)
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if card.source.kind == "open_clip" and weights is not None:
        return OpenClipSpec(card.source.name, pretrained=str(weights))  # built-in config + a weights file
    raise MedrivalError(f"Model {card.id!r}: {folder} holds no open_clip checkpoint; expected "
                        f"open_clip_config.json and one of {', '.join(WEIGHT_FILES)}.")


def source_spec(card: ModelCard) -> OpenClipSpec:
    """How to build ``card`` from its own (non-folder) source."""
    source = card.source
    if source.kind == "demo":
        from medrival.models.demo_weights import materialize

        return OpenClipSpec(f"local-dir:{materialize(source.name)}")
    if source.kind == "hf-hub":
        return OpenClipSpec(f"hf-hub:{source.name}")
    return OpenClipSpec(source.name, pretrained=source.pretrained)


def _tokenizer(spec: OpenClipSpec, model_cfg_text: dict):
    import open_clip

    if spec.tokenizer_source is None:
        return open_clip.get_tokenizer(spec.identifier)
    from open_clip.tokenizer import HFTokenizer

    return HFTokenizer(spec.tokenizer_source, context_length=model_cfg_text.get("context_length", 77),
                       tokenizer_mode=model_cfg_text.get("tokenizer_mode"),
                       **model_cfg_text.get("tokenizer_kwargs", {}))


def build_open_clip(card: ModelCard, spec: OpenClipSpec, weights_id: str) -> OpenClipModel:
    """Build the model (CPU, float32, eval mode) and its tokenizer; open_clip's errors pass through."""
    import open_clip

    # require_pretrained: a folder or name without weights must fail, not silently give a random model.
    model, _, _ = open_clip.create_model_and_transforms(spec.identifier, pretrained=spec.pretrained,
                                                        require_pretrained=True, **spec.model_kwargs)
    tokenizer = _tokenizer(spec, spec.model_kwargs.get("text_cfg", {}))
    return OpenClipModel(card, model, tokenizer, open_clip.get_model_preprocess_cfg(model), weights_id)
