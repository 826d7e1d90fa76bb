"""``create_model``: from a card name to a ready model behind the family protocol."""
from __future__ import annotations

from pathlib import Path

from medrival.core.cards import ModelCard
from medrival.core.errors import MedrivalError
from medrival.models.catalog import get_card
from medrival.models.openclip_adapter import OpenClipModel


def _folder_version(folder: str) -> str:
    """Path plus size and modification time of every weight file: retrained weights in the same folder must
    not reuse features cached for the old ones (hashing multi-GB checkpoints on every load would be too slow)."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        return str(root)
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(root.iterdir())
              if p.suffix in (".safetensors", ".bin", ".pth", ".pt")]
    return f"{root}|{'|'.join(stamps)}"


def _open_clip_identifier(card: ModelCard) -> tuple[str, str | None, str]:
    """(model name for open_clip, pretrained tag, weights id for the feature cache)."""
    source = card.source
    if source.kind == "demo":
        from medrival.models.demo_weights import materialize
        folder = materialize(source.name)
        return f"local-dir:{folder}", None, f"demo:{folder.name}"
    if source.kind == "local-dir":
        return f"local-dir:{source.name}", None, f"local-dir:{_folder_version(source.name)}"
    if source.kind == "hf-hub":
        return f"hf-hub:{source.name}", None, f"hf-hub:{source.name}@{source.revision or 'main'}"
    return source.name, source.pretrained, f"open_clip:{source.name}:{source.pretrained}"


def create_model(name: str | ModelCard) -> OpenClipModel:
    """Build the model a card describes (weights on CPU, eval mode)."""
    card = name if isinstance(name, ModelCard) else get_card(name)
    if card.family != "contrastive":
        raise MedrivalError(f"Model {card.id!r} is {card.family}; this version serves contrastive models only.")
    import open_clip

    identifier, pretrained, weights_id = _open_clip_identifier(card)
    try:
        # require_pretrained: a folder or name without weights must fail, not silently give a random model.
        model, _, preprocess = open_clip.create_model_and_transforms(identifier, pretrained=pretrained,
                                                                     require_pretrained=True)
        tokenizer = open_clip.get_tokenizer(identifier)
    except (OSError, RuntimeError, ValueError) as error:
        raise MedrivalError(f"Could not load model {card.id!r} from {identifier}: {error}") from error
    preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
    return OpenClipModel(card, model, tokenizer, preprocess_cfg, weights_id)
