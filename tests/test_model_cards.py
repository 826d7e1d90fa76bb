"""Registry-wide contract: every model card's architecture is rebuilt at tiny size in its real layout and run.

Looping over the registry (timm's ``tests/test_models.py`` pattern) means a new card is tested without a new test.
This file covers the contrastive cards; generative ones are checked in ``tests/test_generative_cards.py``.
For each card: shrink the network the card names (open_clip built-in config, timm image tower + Hugging Face text
tower, or a transformers CLIPModel / SiglipModel) keeping image size, patch size and context length; save it as
its Hub repo lays it out; load it through ``create_model`` with a ``weights`` override; serve the protocol.
Card facts that can be checked offline are checked against the libraries' own registries.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
pytest.importorskip("transformers")

import tiny_checkpoints as tiny  # noqa: E402

from medrival.core.cards import ModelCard  # noqa: E402
from medrival.core.errors import ConfigError  # noqa: E402
from medrival.models.catalog import build_registry, model_registry  # noqa: E402
from medrival.models.factory import create_model  # noqa: E402
from medrival.models.protocol import ContrastiveModel  # noqa: E402

CARDS = [name for name in model_registry().names() if model_registry().get(name).family == "contrastive"]
IMAGES = np.random.default_rng(1).integers(0, 256, (3, 70, 90, 3), dtype=np.uint8)


def _cards(predicate) -> list[str]:
    return [name for name in CARDS if predicate(model_registry().get(name))]


def _preprocess_cfg(card: ModelCard) -> dict:
    """The preprocess_cfg an open_clip repo for this card publishes."""
    source = card.source
    if source.kind == "open_clip":  # the tag's own preprocessing in open_clip's registry, not the card's copy
        tag = open_clip.get_pretrained_cfg(source.name, source.pretrained)
        return {key: tag[key] for key in ("mean", "std", "interpolation", "resize_mode")}
    return {"mean": list(card.preprocessing.mean), "std": list(card.preprocessing.std)}  # as BiomedCLIP/PMC do


def build_tiny_checkpoint(card: ModelCard, root):
    """A tiny random-init checkpoint of ``card``'s architecture, in that card's real layout; returns the folder."""
    import shutil

    folder, architecture = root / card.id, card.architecture
    if card.served_by == "transformers":
        if architecture.model_class == "SiglipModel":
            pytest.importorskip("sentencepiece")
        tiny.save_tiny_transformers(folder, architecture.model_class, card.preprocessing.image_size,
                                    architecture.patch_size, architecture.context_length)
    elif architecture.model_class == "CustomTextCLIP":
        bert = tiny.save_tiny_bert(root / "text-tower", max_positions=max(512, architecture.context_length))
        published, build = tiny.biomedclip_style_cfgs(architecture.text_tower, bert, architecture.context_length,
                                                      architecture.timm_model)
        tiny.save_open_clip(folder, published, _preprocess_cfg(card), build_cfg=build)
        for path in bert.iterdir():  # a folder copy carries the text tower's config and tokenizer
            shutil.copy(path, folder)
    else:
        tiny.save_open_clip(folder, tiny.tiny_open_clip_cfg(architecture.open_clip_config), _preprocess_cfg(card))
    return folder


def _check_gradients(model, pixels) -> None:
    model.model.zero_grad()
    image, text = model.image_features(pixels), model.text_features(tiny.SENTENCES[:2])
    weight = torch.randn(image.shape[1])  # normalised features: a plain sum of squares has no gradient
    ((image @ weight).sum() + (text @ weight).sum()).backward()
    for name, tower in (("image", model.image_tower), ("text", model.text_tower)):
        grads = [p.grad for p in tower.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"no gradient reached the {name} tower"


def _check_protocol(model, card: ModelCard, image_size: int) -> None:
    assert isinstance(model, ContrastiveModel)
    assert model.card is card and model.family == "contrastive" and model.num_parameters() > 0
    assert np.isfinite(model.logit_scale) and model.logit_scale > 0
    images, texts = model.encode_images(IMAGES), model.encode_texts(tiny.SENTENCES[:4])
    for features, n in ((images, 3), (texts, 4)):
        assert features.shape == (n, model.embed_dim) and features.dtype == torch.float32
        assert torch.isfinite(features).all()
        assert torch.allclose(features.norm(dim=1), torch.ones(n), atol=1e-5)
    pixels = model.preprocess(IMAGES)
    assert pixels.shape == (3, 3, image_size, image_size)
    with torch.no_grad():
        assert torch.allclose(model.image_features(pixels), images, atol=1e-5)
    _check_gradients(model, pixels)


@pytest.mark.parametrize("name", CARDS)
def test_card_architecture_rebuilt_tiny_loads_and_serves_the_protocol(name, tmp_path):
    card = model_registry().get(name)
    if card.source.kind == "demo":  # shipped weights, already tiny
        model = create_model(card)
        _check_protocol(model, card, int(np.atleast_1d(model.preprocess_cfg["size"])[0]))
        return
    model = create_model(card, weights=build_tiny_checkpoint(card, tmp_path))
    _check_protocol(model, card, card.preprocessing.image_size)
    served = model.preprocess_cfg  # read from the checkpoint's own config files
    declared = card.preprocessing
    assert tuple(np.atleast_1d(served["size"])) in ((declared.image_size,), (declared.image_size,) * 2)
    assert served["resize_mode"] == declared.resize and served["interpolation"] == declared.interpolation
    assert np.allclose(served["mean"], declared.mean) and np.allclose(served["std"], declared.std)


# ----------------------------------------------------------------------------------------------- card facts
@pytest.mark.parametrize("name", _cards(lambda c: c.source.kind == "open_clip"))
def test_open_clip_tag_cards_match_open_clips_registry(name):
    card = model_registry().get(name)
    source, architecture = card.source, card.architecture
    tag = open_clip.get_pretrained_cfg(source.name, source.pretrained)
    assert tag, f"open_clip has no tag {source.pretrained!r} for {source.name!r}"
    assert tag["hf_hub"].rstrip("/").split("/")[:2] == source.weights_repo.split("/")  # where the cache is checked
    config = open_clip.get_model_config(source.name)
    # A tag trained with QuickGELU on a config without it loads with the wrong activation (open_clip only warns).
    assert config.get("quick_gelu", False) == tag.get("quick_gelu", False)
    assert card.preprocessing.image_size == config["vision_cfg"]["image_size"]
    assert card.preprocessing.resize == tag["resize_mode"]
    assert card.preprocessing.interpolation == tag["interpolation"]
    assert np.allclose(card.preprocessing.mean, tag["mean"]) and np.allclose(card.preprocessing.std, tag["std"])
    assert architecture.open_clip_config == source.name


@pytest.mark.parametrize("name", _cards(lambda c: c.architecture and c.architecture.open_clip_config))
def test_architecture_matches_the_built_in_open_clip_config(name):
    architecture = model_registry().get(name).architecture
    config = open_clip.get_model_config(architecture.open_clip_config)
    assert config is not None, architecture.open_clip_config
    assert architecture.patch_size == config["vision_cfg"]["patch_size"]
    assert architecture.embed_dim == config["embed_dim"]
    assert architecture.context_length == config["text_cfg"]["context_length"]
    assert model_registry().get(name).preprocessing.image_size == config["vision_cfg"]["image_size"]


@pytest.mark.parametrize("name", _cards(lambda c: c.architecture and c.architecture.timm_model))
def test_timm_image_tower_matches_timm(name):
    import timm

    card = model_registry().get(name)
    trunk = timm.create_model(tiny.register_tiny_timm(card.architecture.timm_model))  # the real tower's geometry
    assert trunk.patch_embed.patch_size == (card.architecture.patch_size,) * 2
    assert timm.get_pretrained_cfg(card.architecture.timm_model).input_size[-1] == card.preprocessing.image_size


@pytest.mark.parametrize("name", _cards(lambda c: c.served_by == "transformers"))
def test_transformers_cards_document_their_processor_family(name):
    """CLIP checkpoints use CLIPImageProcessor's defaults (OpenAI statistics, bicubic, shortest edge + crop);
    SigLIP ones SiglipImageProcessor's (0.5 statistics, bicubic, squash)."""
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    from medrival.models.transformers_adapter import preprocess_cfg_from_processor

    card = model_registry().get(name)
    size = card.preprocessing.image_size
    processor = (CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
                 if card.architecture.model_class == "CLIPModel"
                 else SiglipImageProcessor(size={"height": size, "width": size}))
    cfg = preprocess_cfg_from_processor(processor)
    assert (cfg["resize_mode"], cfg["interpolation"]) == (card.preprocessing.resize, card.preprocessing.interpolation)
    assert np.allclose(cfg["mean"], card.preprocessing.mean) and np.allclose(cfg["std"], card.preprocessing.std)


@pytest.mark.parametrize("name", _cards(lambda c: c.role == "specialist" and c.architecture))
def test_specialists_pair_with_a_generalist_of_the_same_architecture(name):
    card = model_registry().get(name)
    pair = model_registry().get(card.generalist_counterpart)
    assert pair.role == "generalist" and pair.family == card.family
    assert pair.architecture is not None
    assert (pair.architecture.patch_size, pair.architecture.embed_dim) == (
        card.architecture.patch_size, card.architecture.embed_dim), "pair differs in architecture/size class"


def test_gated_cards_say_how_to_get_access():
    gated = _cards(lambda c: c.gated)
    assert "medsiglip-448" in gated
    for name in gated:
        access = model_registry().get(name).access
        assert "hf auth login" in access and "HF_TOKEN" in access and "huggingface.co/" in access


# ----------------------------------------------------------------------------------------------- schema and registry
_BASE = """\
- id: g
  family: contrastive
  role: generalist
  source: {kind: local-dir, name: /tmp/nowhere}
  pretraining_modalities: [natural]
  licence: MIT
"""


def _specialist(pair: str, role_of_pair: str = "generalist") -> str:
    return _BASE.replace("role: generalist", f"role: {role_of_pair}") + f"""\
- id: s
  family: contrastive
  role: specialist
  source: {{kind: local-dir, name: /tmp/nowhere}}
  pretraining_modalities: [xray]
  generalist_counterpart: {pair}
  licence: MIT
"""


def test_registry_accepts_a_valid_pair(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(_specialist("g"))
    assert build_registry([path]).names() == ["g", "s"]


@pytest.mark.parametrize("text, fragments", [
    (_specialist("gg"), ["'s'", "'gg'", "not a model card", "Did you mean 'g'"]),
    (_BASE + _BASE, ["'g'", "already defined"]),
])
def test_registry_rejects_broken_pairs_and_duplicates(tmp_path, text, fragments):
    path = tmp_path / "cards.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        build_registry([path])
    for fragment in (str(path), *fragments):
        assert fragment in str(caught.value)


def test_registry_rejects_a_pair_that_is_not_a_generalist(tmp_path):
    third = """\
- id: t
  family: contrastive
  role: specialist
  source: {kind: local-dir, name: /tmp/nowhere}
  pretraining_modalities: [xray]
  generalist_counterpart: s
  licence: MIT
"""
    path = tmp_path / "cards.yaml"
    path.write_text(_specialist("g") + third)
    with pytest.raises(ConfigError, match="'t' is paired with 's', a contrastive specialist; the pair must be a "
                                          "contrastive generalist"):
        build_registry([path])


CARD = {"id": "c", "family": "contrastive", "role": "generalist", "pretraining_modalities": ["natural"],
        "licence": "MIT", "source": {"kind": "local-dir", "name": "/x"}}
TRANSFORMERS_ARCH = {"model_class": "CLIPModel", "vision_tower": "ViT-B/32", "patch_size": 32, "embed_dim": 512,
                     "context_length": 77}


@pytest.mark.parametrize("change, fragment", [
    ({"role": "specialist"}, "needs generalist_counterpart"),
    ({"generalist_counterpart": "x"}, "only specialists"),
    ({"gated": True}, "how to get access"),
    ({"source": {"kind": "open_clip", "name": "ViT-B-32"}}, "source.pretrained"),
    ({"source": {"kind": "hf-hub", "name": "a/b", "revision": "abc"}}, "kind transformers only"),
    ({"source": {"kind": "transformers", "name": "a/b"}}, "needs an 'architecture'"),
    ({"source": {"kind": "transformers", "name": "a/b"},
      "architecture": {**TRANSFORMERS_ARCH, "model_class": "CLIP", "open_clip_config": "ViT-B-32"}},
     "needs architecture.model_class"),
    ({"architecture": {**TRANSFORMERS_ARCH, "model_class": "CustomTextCLIP"}}, "text_tower"),
    ({"pretraining_modalities": ["xary"]}, "Did you mean 'xray'"),
])
def test_card_schema_rejects_inconsistent_cards(change, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=fragment):
        ModelCard.model_validate({**CARD, **change})


def test_transformers_revision_is_allowed_and_used_for_cache_lookups():
    from medrival.models.weights import hub_requirements

    card = ModelCard.model_validate({**CARD, "source": {"kind": "transformers", "name": "a/b", "revision": "v1"},
                                     "architecture": TRANSFORMERS_ARCH})
    assert card.served_by == "transformers"
    assert [files.revision for files in hub_requirements(card)] == ["v1"]


@pytest.mark.parametrize("name", _cards(lambda c: c.source.kind in ("transformers", "hf-hub")))
def test_repo_names_agree_with_the_card(name):
    """Repo names that state patch size or resolution (google/siglip-base-patch16-224) must agree with the card:
    offline, this is the one independent check of a transformers card's geometry."""
    import re

    card = model_registry().get(name)
    repo = card.source.name.lower()
    patch = re.search(r"patch_?(\d+)", repo)
    if patch:
        assert int(patch.group(1)) == card.architecture.patch_size
    resolution = re.search(r"[-_](\d{3})$", repo)
    if resolution:
        assert int(resolution.group(1)) == card.preprocessing.image_size
