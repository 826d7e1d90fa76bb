"""``create_model``: from a card name to a ready model behind the contrastive or the generative protocol.

Where the weights come from (first match wins): the ``weights`` folder argument (a study's ``weights:`` entry),
``$MEDRIVAL_WEIGHTS_DIR/<card id>/`` when it exists, then the card's own source. The card picks the adapter:
``medrival.models.generative`` for family generative, transformers for CLIPModel / SiglipModel, open_clip otherwise.
A card of source kind ``openai-api`` has no weights: it is served by ``medrival.models.openai_api`` over HTTP.
"""
from __future__ import annotations

from pathlib import Path

from medrival.core.cards import API_KIND, ModelCard
from medrival.core.errors import ConfigError, MedrivalError
from medrival.models.catalog import get_card
from medrival.models.precision import LoadOptions, check_quantization, load_options
from medrival.models.openclip_loading import folder_version as _folder_version
from medrival.models.weights import LOAD_ERRORS, demo_vlm_folder, hub_weights_id, load_from_hub, local_folder

DEMO_VLM_SCRIPT = "scripts/pretrain_demo_vlms.py"


def create_model(name_or_card: str | ModelCard, weights: str | Path | None = None, *, dtype: str | None = None,
                 device_map=None, max_memory=None, quantization: str | None = None,
                 options: LoadOptions | None = None):
    """Build the model a card describes (eval mode; on CPU and in float32 unless asked otherwise).

    ``weights``: a local folder holding this checkpoint (open_clip files, or a transformers ``save_pretrained``
    folder); it overrides ``$MEDRIVAL_WEIGHTS_DIR`` and the card's source. A generative card is served by
    ``medrival.models.generative.load_generative_model``; a contrastive one by the open_clip or transformers adapter;
    an ``openai-api`` card by ``medrival.models.openai_api.load_api_model`` (its key variable must be set).

    Precision and placement (``medrival.models.precision``): ``dtype`` auto | bf16 | fp16 | fp32 (auto: bf16 on a
    CUDA GPU with bf16, fp16 on an older one, fp32 on CPU / MPS; default fp32); ``quantization="4bit"`` (generative
    models, CUDA + bitsandbytes only); ``device_map`` / ``max_memory`` spread a generative model over devices
    through accelerate. ``options`` (resolved ``LoadOptions``) replaces the four. The dtype and 4-bit are part of
    the model's fingerprint, so outputs cached in one precision are never served for another.
    """
    card = name_or_card if isinstance(name_or_card, ModelCard) else get_card(name_or_card)
    if options is None:
        options = load_options(dtype or "fp32", "auto" if dtype == "auto" or quantization else "cpu",
                               quantization, device_map, max_memory)
    if card.source.kind == API_KIND:
        return _api_model(card, weights)
    if options.engine == "vllm":
        return _vllm_model(card, weights, options)
    if card.family == "generative":
        check_quantization(card.id, options)  # before any file is read: CUDA + bitsandbytes, or a clear error
        return _generative(card, weights, options)
    _check_contrastive_options(card, options)
    folder = local_folder(card, weights)
    if folder is not None:
        model = _from_folder(card, folder)
    elif card.source.kind == "demo":
        model = _open_clip_from_source(card)
    else:
        model = load_from_hub(card, lambda: _from_hub(card))
    return model.with_precision(options)


def _check_contrastive_options(card: ModelCard, options: LoadOptions) -> None:
    if options.quantization:
        raise ConfigError(f"model {card.id!r}: quantization: 4bit applies to generative (transformers) models only; "
                          "a contrastive model is small enough for dtype: bf16 (or fp16) instead.")
    if options.placement is not None:
        raise ConfigError(f"model {card.id!r}: device_map / max_memory apply to generative (transformers) models "
                          "only; a contrastive model runs whole on the study's device.")


def _from_folder(card: ModelCard, folder: Path):
    from medrival.models.openclip_loading import build_open_clip, folder_spec, folder_version

    if not folder.is_dir():
        raise MedrivalError(f"Could not load model {card.id!r}: folder {folder} does not exist.")
    weights_id = f"local-dir:{folder_version(folder)}"
    try:
        if card.served_by == "transformers":
            from medrival.models.transformers_adapter import load_transformers_model

            return load_transformers_model(card, str(folder), weights_id, local_files_only=True)
        return build_open_clip(card, folder_spec(card, folder), weights_id)
    except MedrivalError:
        raise
    except LOAD_ERRORS as error:
        raise MedrivalError(f"Could not load model {card.id!r} from {folder}: {error}") from error


def _open_clip_from_source(card: ModelCard):
    from medrival.models.openclip_loading import build_open_clip, source_spec

    spec = source_spec(card)
    try:
        return build_open_clip(card, spec, _source_weights_id(card, spec.identifier))
    except MedrivalError:
        raise
    except LOAD_ERRORS as error:
        raise MedrivalError(f"Could not load model {card.id!r} from {spec.identifier}: {error}") from error


def _source_weights_id(card: ModelCard, identifier: str) -> str:
    source = card.source
    if source.kind == "demo":
        return f"demo:{Path(identifier.split(':', 1)[1]).name}"
    if source.kind == "open_clip":
        return f"open_clip:{source.name}:{source.pretrained}"
    return hub_weights_id(card)


def _from_hub(card: ModelCard):
    """Load from the Hub cache (or by downloading); errors are turned into messages by ``load_from_hub``."""
    if card.served_by == "transformers":
        from medrival.models.transformers_adapter import load_transformers_model

        model = load_transformers_model(card, card.source.name, "", revision=card.source.revision)
    else:
        from medrival.models.openclip_loading import build_open_clip, source_spec

        model = build_open_clip(card, source_spec(card), "")
    # Named after loading: only now does the cache hold the files, and so the commit they came from.
    model._weights_id = _source_weights_id(card, card.source.name)
    return model


# ----------------------------------------------------------------------------------------------- generative
def _generative(card: ModelCard, weights: str | Path | None, options: LoadOptions):
    """A generative card: a local folder, the shipped demo folder, or the Hub (all transformers folders).

    Where the weights are is settled (and a missing folder reported) before the adapter module is imported.
    """
    folder = local_folder(card, weights)
    if folder is None and card.source.kind == "demo":
        folder, weights_id = demo_vlm_folder(card, DEMO_VLM_SCRIPT)
    elif folder is not None:
        if not folder.is_dir():
            raise MedrivalError(f"Could not load model {card.id!r}: folder {folder} does not exist.")
        weights_id = f"local-dir:{_folder_version(folder)}"
    else:
        return load_from_hub(card, lambda: _generative_from_hub(card, options))
    from medrival.models.generative import load_generative_model  # lazily: torch + transformers

    try:
        return load_generative_model(card, str(folder), weights_id, local_files_only=True, **_given(options))
    except MedrivalError:
        raise
    except LOAD_ERRORS as error:
        raise MedrivalError(f"Could not load model {card.id!r} from {folder}: {error}") from error


def _given(options: LoadOptions) -> dict:
    """``options=`` for the loader only when they differ from plain fp32 on one device (the loader's default)."""
    return {} if options.identity is None and options.placement is None else {"options": options}


def _generative_from_hub(card: ModelCard, options: LoadOptions):
    """Load from the Hub cache (or by downloading); ``load_from_hub`` turns errors into messages."""
    from medrival.models.generative import load_generative_model

    model = load_generative_model(card, card.source.name, hub_weights_id(card), revision=card.source.revision,
                                  **_given(options))
    # Named again after loading: only now does the cache surely hold the files, and so the commit they came from.
    model._weights_id = hub_weights_id(card)
    return model


def _vllm_model(card: ModelCard, weights: str | Path | None, options: LoadOptions):
    """A generative card answered by a vLLM server: the server holds the weights (a checkpoint the card names, or
    the folder given as weights, which the server must be serving)."""
    if card.family != "generative":
        raise ConfigError(f"model {card.id!r}: engine: vllm serves generative models only; {card.id!r} is "
                          f"{card.family}. Remove engine: vllm from its model_options.")
    from medrival.models.vllm_engine import load_vllm_model
    from medrival.models.vllm_server import VLLMSettings

    checkpoint = str(weights) if weights is not None else card.source.name
    return load_vllm_model(card, VLLMSettings.from_mapping(options.server), checkpoint)


# ----------------------------------------------------------------------------------------------- API models
def _api_model(card: ModelCard, weights: str | Path | None):
    """A card served by an OpenAI-compatible endpoint; a weights folder cannot apply to it, so one is refused."""
    if weights is not None:
        raise MedrivalError(f"Model {card.id!r} is served by an API ({card.source.base_url}) and has no local "
                            "weights; remove its entry from the study's weights.")
    from medrival.models.openai_api import load_api_model

    return load_api_model(card)
