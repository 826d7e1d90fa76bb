"""Loading real-layout checkpoints offline: the Hugging Face cache, local folders, fast errors, cache status.

Every checkpoint here is a tiny random-init model written by ``tiny_checkpoints`` in the exact layout its Hub repo
has, placed in a temporary Hugging Face cache (``models--org--name/{blobs,snapshots,refs}``) or in a folder.
Sockets are blocked by conftest, so any network access would fail the test.
"""
from __future__ import annotations

import shutil
import socket
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
pytest.importorskip("transformers")

import tiny_checkpoints as tiny  # noqa: E402

from medrival.core.cards import ModelCard, ModelSource  # noqa: E402
from medrival.core.errors import MedrivalError  # noqa: E402
from medrival.models import hub, weights  # noqa: E402
from medrival.models.catalog import get_card  # noqa: E402
from medrival.models.factory import create_model  # noqa: E402
from medrival.models.openclip_adapter import OpenClipModel  # noqa: E402
from medrival.models.preprocessing import preprocess_images  # noqa: E402
from medrival.models.transformers_adapter import TransformersClipModel, preprocess_cfg_from_processor  # noqa: E402

OPENAI_PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
IMAGES = np.random.default_rng(0).integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
TEXTS = tiny.SENTENCES[:3]


@pytest.fixture
def online(monkeypatch):
    """Offline mode off, as on a user's machine (the probe then meets conftest's blocked sockets)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def quilt_repo(tmp_path_factory):
    """A QuiltNet-shaped open_clip repo: tiny ViT-B-32 config + safetensors weights."""
    folder = tmp_path_factory.mktemp("quilt") / "repo"
    model = tiny.save_open_clip(folder, tiny.tiny_open_clip_cfg("ViT-B-32"), OPENAI_PREPROCESS)
    return folder, model.state_dict()


@pytest.fixture(scope="module")
def biomedclip_parts(tmp_path_factory):
    """(BiomedCLIP-shaped open_clip repo naming its text tower by Hub id, the tiny BERT text-tower repo)."""
    root = tmp_path_factory.mktemp("biomedclip")
    card = get_card("biomedclip")
    bert = tiny.save_tiny_bert(root / "bert")
    published, build = tiny.biomedclip_style_cfgs(card.architecture.text_tower, bert)
    model = tiny.save_open_clip(root / "repo", published, OPENAI_PREPROCESS, build_cfg=build)
    return root / "repo", bert, build, model.state_dict()


def _same_weights(served: dict, saved: dict, keys: list[str]) -> None:
    for key in keys:
        assert torch.equal(served[key], saved[key]), key


def _unit_rows(features, n: int, dim: int) -> None:
    assert features.shape == (n, dim) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert torch.allclose(features.norm(dim=1), torch.ones(n), atol=1e-5)


# ----------------------------------------------------------------------------------------------- open_clip repos
def test_open_clip_repo_loads_offline_through_open_clips_hub_path(hub_cache, quilt_repo, monkeypatch):
    folder, saved = quilt_repo
    card = get_card("quiltnet-b32")
    assert weights.weights_status(card).state == "missing"
    snapshot = tiny.put_in_hub_cache(hub_cache, card.source.name, folder)
    assert weights.weights_status(card) == weights.WeightsStatus("cached", str(hub_cache))

    calls = []
    real_download = open_clip.factory.download_pretrained_from_hf
    monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf",
                        lambda model_id, **kw: calls.append((model_id, kw.get("filename"))) or real_download(
                            model_id, **kw))
    model = create_model("quiltnet-b32")
    assert isinstance(model, OpenClipModel)
    assert ("wisdomik/QuiltNet-B-32", "open_clip_config.json") in calls  # open_clip's own hf-hub: loader ran
    _same_weights(model.model.state_dict(), saved, ["visual.conv1.weight", "token_embedding.weight"])
    assert model._weights_id == f"hub:wisdomik/QuiltNet-B-32@{snapshot.name}"  # the cached commit keys features
    _unit_rows(model.encode_images(IMAGES), 3, 16)
    _unit_rows(model.encode_texts(TEXTS), 3, 16)


def test_biomedclip_style_repo_with_hf_text_tower_from_hub_cache(hub_cache, biomedclip_parts):
    repo, bert, _, saved = biomedclip_parts
    card = get_card("biomedclip")
    tiny.put_in_hub_cache(hub_cache, card.source.name, repo)
    status = weights.weights_status(card)
    assert status.state == "missing" and status.where == card.architecture.text_tower  # the tower is needed too
    with pytest.raises(MedrivalError) as caught:
        create_model(card)
    assert f"hf download {card.architecture.text_tower}" in str(caught.value)

    tiny.put_in_hub_cache(hub_cache, card.architecture.text_tower, bert)
    assert weights.weights_status(card).state == "cached"
    model = create_model(card)
    assert type(model.model).__name__ == "CustomTextCLIP"
    assert model.text_tower.transformer.config.hidden_size == 32  # the tiny tower's config came from the cache
    assert model.tokenize(TEXTS).shape == (3, card.architecture.context_length)  # BERT ids padded to 256
    _same_weights(model.model.state_dict(), saved, ["text.proj.0.weight", "visual.head.proj.weight"])
    _unit_rows(model.encode_texts(TEXTS), 3, 16)
    _unit_rows(model.encode_images(IMAGES), 3, 16)


def test_biomedclip_style_folder_with_text_tower_pointing_at_a_local_bert(tmp_path, biomedclip_parts):
    """The open_clip config names a local BERT folder directly: built and run from a ``weights:`` folder."""
    _, bert, build, _ = biomedclip_parts
    card = get_card("biomedclip")
    folder = tmp_path / "biomedclip"
    local_cfg = {**build, "text_cfg": {k: v for k, v in build["text_cfg"].items() if k != "hf_model_pretrained"}}
    model_source = tiny.save_open_clip(folder, local_cfg, OPENAI_PREPROCESS, build_cfg=build)
    model = create_model(card, weights=folder)
    _same_weights(model.model.state_dict(), model_source.state_dict(), ["text.proj.0.weight"])
    features = model.encode_texts(TEXTS)
    _unit_rows(features, 3, 16)
    with torch.no_grad():
        reference = model_source.eval().encode_text(model.tokenize(TEXTS), normalize=True)
    assert torch.allclose(features, reference, atol=1e-5)


def test_biomedclip_style_folder_with_its_text_tower_files_copied_in(tmp_path, biomedclip_parts):
    """The config keeps the Hub id (as published); the tower's config and tokenizer sit beside the weights."""
    repo, bert, _, saved = biomedclip_parts
    folder = tmp_path / "biomedclip"
    shutil.copytree(repo, folder)
    for path in bert.iterdir():
        shutil.copy(path, folder)
    model = create_model(get_card("biomedclip"), weights=folder)
    _same_weights(model.model.state_dict(), saved, ["text.proj.0.weight"])
    _unit_rows(model.encode_texts(TEXTS), 3, 16)


def test_built_in_config_folder_may_hold_only_the_weights_file(tmp_path):
    """For kind open_clip a folder with just open_clip_model.safetensors is served with the built-in config."""
    import json

    cfg = tiny.tiny_open_clip_cfg("ViT-B-32-quickgelu")
    config_file = tmp_path / "medrival-test-tiny-b32.json"
    config_file.write_text(json.dumps(cfg))
    open_clip.add_model_config(config_file)
    folder = tmp_path / "weights-only"
    saved = tiny.save_open_clip(folder, cfg, OPENAI_PREPROCESS).state_dict()
    (folder / "open_clip_config.json").unlink()
    card = ModelCard(id="tiny-builtin", family="contrastive", role="generalist",
                     source={"kind": "open_clip", "name": "medrival-test-tiny-b32", "pretrained": "openai"},
                     architecture={"model_class": "CLIP", "vision_tower": "ViT-B/32", "patch_size": 32,
                                   "embed_dim": 16, "context_length": 77,
                                   "open_clip_config": "medrival-test-tiny-b32"},
                     pretraining_modalities=["natural"], licence="test")
    model = create_model(card, weights=folder)
    _same_weights(model.model.state_dict(), saved, ["visual.conv1.weight", "positional_embedding"])


def test_open_clip_tag_loads_from_the_hub_repo_open_clip_downloads_it_from(hub_cache, tmp_path, monkeypatch):
    """kind open_clip: the tag's weights file is looked up in its Hub repo (``weights_repo``) and loaded offline.

    A tiny config and tag are registered with open_clip the way its built-in ViT-B-32 / openai pair is.
    """
    import json

    cfg = tiny.tiny_open_clip_cfg("ViT-B-32-quickgelu")
    (tmp_path / "medrival-test-tag-b32.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "medrival-test-tag-b32.json")
    tag = {**open_clip.get_pretrained_cfg("ViT-B-32-quickgelu", "openai"), "hf_hub": "medrival-test/tiny-b32.openai/"}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "medrival-test-tag-b32", {"openai": tag})
    card = ModelCard(id="tiny-tag", family="contrastive", role="generalist",
                     source={"kind": "open_clip", "name": "medrival-test-tag-b32", "pretrained": "openai",
                             "weights_repo": "medrival-test/tiny-b32.openai"},
                     architecture={"model_class": "CLIP", "vision_tower": "ViT-B/32", "patch_size": 32,
                                   "embed_dim": 16, "context_length": 77, "open_clip_config": "medrival-test-tag-b32"},
                     pretraining_modalities=["natural"], licence="test")
    with pytest.raises(MedrivalError, match="hf download medrival-test/tiny-b32.openai open_clip_model.safetensors"):
        create_model(card)
    repo = tmp_path / "repo"
    saved = tiny.save_open_clip(repo, cfg, OPENAI_PREPROCESS).state_dict()
    (repo / "open_clip_config.json").unlink()  # the timm/*.openai repos hold more; open_clip reads only this file
    tiny.put_in_hub_cache(hub_cache, "medrival-test/tiny-b32.openai", repo)
    assert weights.weights_status(card).label == "yes"
    model = create_model(card)
    _same_weights(model.model.state_dict(), saved, ["visual.conv1.weight", "token_embedding.weight"])
    assert model._weights_id == "open_clip:medrival-test-tag-b32:openai"


# ----------------------------------------------------------------------------------------------- transformers repos
_BUILT: dict = {}


def _tiny_transformers_repo(name: str, tmp_path_factory):
    """(card, save_pretrained folder, reference model, processor), built once per module run."""
    if name not in _BUILT:
        card = get_card(name)
        if card.architecture.model_class == "SiglipModel":
            pytest.importorskip("sentencepiece")
        folder = tmp_path_factory.mktemp(card.id) / "repo"
        model, _, processor = tiny.save_tiny_transformers(
            folder, card.architecture.model_class, card.preprocessing.image_size, card.architecture.patch_size,
            card.architecture.context_length)
        _BUILT[name] = (card, folder, model.eval(), processor)
    return _BUILT[name]


@pytest.fixture(scope="module", params=["pubmedclip-vit-b32", "siglip-base-patch16-224"])
def transformers_repo(request, tmp_path_factory):
    return _tiny_transformers_repo(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def clip_repo(tmp_path_factory):
    return _tiny_transformers_repo("pubmedclip-vit-b32", tmp_path_factory)


def test_transformers_repo_from_hub_cache_and_from_weights_folder(hub_cache, transformers_repo):
    card, folder, reference, _ = transformers_repo
    assert weights.weights_status(card).state == "missing"
    snapshot = tiny.put_in_hub_cache(hub_cache, card.source.name, folder)
    assert weights.weights_status(card).state == "cached"
    from_hub, from_folder = create_model(card), create_model(card, weights=folder)
    for model in (from_hub, from_folder):
        assert isinstance(model, TransformersClipModel)
        _same_weights(model.model.state_dict(), reference.state_dict(),
                      ["vision_model.embeddings.patch_embedding.weight"])
    assert from_hub._weights_id == f"hub:{card.source.name}@{snapshot.name}"
    assert from_hub.fingerprint != from_folder.fingerprint  # different weights ids, same preprocessing
    assert torch.allclose(from_hub.encode_images(IMAGES), from_folder.encode_images(IMAGES), atol=1e-6)


def test_transformers_adapter_embeddings_are_the_models_own(transformers_repo):
    """image/text features equal the embeddings the model's forward pass produces, with gradients."""
    card, folder, reference, _ = transformers_repo
    model = create_model(card, weights=folder)
    pixels = model.preprocess(IMAGES)
    tokens = model.tokenize(TEXTS)
    siglip = card.architecture.model_class == "SiglipModel"
    # SigLIP: fixed-length padding, no attention mask (as trained); CLIP: pad to the longest text, with a mask.
    assert set(tokens) == ({"input_ids"} if siglip else {"input_ids", "attention_mask"})
    if siglip:
        assert tokens["input_ids"].shape == (3, card.architecture.context_length)
    with torch.no_grad():
        out = reference(pixel_values=pixels, **tokens)
    image, text = model.image_features(pixels), model.text_features(TEXTS)
    assert torch.allclose(image, out.image_embeds, atol=1e-5) and torch.allclose(text, out.text_embeds, atol=1e-5)
    assert model.logit_scale == pytest.approx(float(reference.logit_scale.detach().exp()))
    assert model.embed_dim == image.shape[1]
    weight = torch.randn(image.shape[1])
    ((image @ weight).sum() + (text @ weight).sum()).backward()
    assert model.image_tower.embeddings.patch_embedding.weight.grad.abs().sum() > 0
    assert model.text_tower.embeddings.token_embedding.weight.grad.abs().sum() > 0

    def checkpointing() -> bool:
        return any(getattr(module, "gradient_checkpointing", False) for module in model.model.modules())

    model.set_grad_checkpointing(True)
    assert checkpointing()
    model.model.train()
    model.model.zero_grad()
    (model.image_features(pixels) @ weight).sum().backward()  # recomputed blocks still deliver gradients
    assert model.image_tower.encoder.layers[0].mlp.fc1.weight.grad.abs().sum() > 0
    model.model.eval()
    model.set_grad_checkpointing(False)
    assert not checkpointing()


def test_transformers_checkpoint_without_weights_is_refused(tmp_path, transformers_repo):
    card, folder, _, _ = transformers_repo
    broken = tmp_path / "no-weights"
    shutil.copytree(folder, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(MedrivalError, match=card.id):
        create_model(card, weights=broken)


def test_transformers_card_with_the_wrong_class_is_refused(transformers_repo):
    card, folder, _, _ = transformers_repo
    other = "SiglipModel" if card.architecture.model_class == "CLIPModel" else "CLIPModel"
    wrong = card.model_copy(update={"architecture": card.architecture.model_copy(update={"model_class": other})})
    with pytest.raises(MedrivalError, match="fix the card's architecture"):
        create_model(wrong, weights=folder)


def test_legacy_clip_feature_extractor_config_is_read(tmp_path, clip_repo):
    """Older CLIP repos (openai/clip-vit-base-patch32 and its fine-tunes) store ints and a feature-extractor type."""
    import json

    card, folder, _, _ = clip_repo
    legacy = tmp_path / "legacy"
    shutil.copytree(folder, legacy)
    config = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
              "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
              "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 2, "size": 256}
    (legacy / "preprocessor_config.json").write_text(json.dumps(config))
    model = create_model(card, weights=legacy)
    assert model.preprocess_cfg == {"mean": tuple(config["image_mean"]), "std": tuple(config["image_std"]),
                                    "interpolation": "bilinear", "size": 224, "resize_size": 256,
                                    "resize_mode": "shortest", "crop_offsets": "floor"}
    assert model.preprocess(IMAGES).shape == (3, 3, 224, 224)


# ----------------------------------------------------------------------------------------------- preprocessing
def _smooth(shape, rng, n=3):
    small = rng.integers(0, 256, (n, shape[0] // 8 + 1, shape[1] // 8 + 1, 3), dtype=np.uint8)
    big = torch.nn.functional.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2).float(), size=shape,
                                          mode="bilinear")
    return np.ascontiguousarray(big.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("processor_name", ["clip", "siglip"])
@pytest.mark.parametrize("shape", [(300, 401), (500, 333), (99, 150), (224, 224)])
def test_preprocessing_matches_the_transformers_image_processor(processor_name, shape):
    """Our batched tensor preprocessing equals transformers' own processor output.

    Tolerance (normalised units; one uint8 step is 0.015 for CLIP's std, 0.008 for SigLIP's): mean |diff| < 0.01
    on every image, max < 0.05 on smooth images and < 0.5 on pure noise, where bicubic overshoot is clamped and
    rounded to uint8 by the processor but not by us. Output size and crop offsets match exactly: a crop placed
    one pixel off (torchvision's rounding instead of transformers' truncation) gives a mean |diff| above 0.03.
    """
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    processor = (CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
                 if processor_name == "clip" else SiglipImageProcessor(size={"height": 448, "width": 448}))
    cfg = preprocess_cfg_from_processor(processor)
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    for images, max_tolerance in ((noise, 0.5), (_smooth(shape, rng), 0.05)):
        reference = processor(images=list(images), return_tensors="pt")["pixel_values"]
        ours = preprocess_images(images, cfg)
        assert ours.shape == reference.shape
        difference = (ours - reference).abs()
        assert difference.mean() < 0.01, float(difference.mean())
        assert difference.max() < max_tolerance, float(difference.max())
    if processor_name == "clip" and shape == (300, 401):  # an odd crop margin: offsets matter
        misplaced = preprocess_images(noise, {**cfg, "crop_offsets": "round"})
        reference = processor(images=list(noise), return_tensors="pt")["pixel_values"]
        assert (misplaced - reference).abs().mean() > 0.03


# ----------------------------------------------------------------------------------------------- offline errors
HUB_CARDS = ["biomedclip", "clip-vit-b16", "pubmedclip-vit-b32", "quiltnet-b32", "medsiglip-448"]


def _offline_error(name: str) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(MedrivalError) as caught:
        create_model(name)
    return str(caught.value), time.perf_counter() - started


@pytest.mark.parametrize("name", HUB_CARDS)
def test_offline_error_is_immediate_and_says_how_to_fix(hub_cache, name):
    message, seconds = _offline_error(name)
    card = get_card(name)
    assert seconds < 5, seconds
    repo = card.source.weights_repo or card.source.name
    for expected in (repr(name), repo, f"hf download {repo}", "snapshot_download", "HF_HUB_OFFLINE",
                     f"weights: {{{name}: /path/to/weights/{name}}}", "MEDRIVAL_WEIGHTS_DIR=/path/to/weights",
                     f"/path/to/weights/{name}/", str(hub_cache)):
        assert expected in message, expected
    first_line = message.splitlines()[0]  # what a study keeps of a failed cell's error
    for expected in (repr(name), repo, "hf download", "weights:", "MEDRIVAL_WEIGHTS_DIR"):
        assert expected in first_line, expected


def test_offline_error_when_the_hub_refuses_connections(hub_cache, online):
    message, seconds = _offline_error("quiltnet-b32")
    assert seconds < 5, seconds
    assert "could not connect to huggingface.co:443" in message and "NetworkBlocked" in message


def test_offline_error_when_the_network_swallows_packets(hub_cache, online, monkeypatch):
    """A connect that never answers (no route, black-holed DNS) still gives the error within seconds."""
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(30))
    message, seconds = _offline_error("plip")
    assert seconds < hub.PROBE_TIMEOUT_S + 1.5, seconds
    assert f"no answer from huggingface.co:443 within {hub.PROBE_TIMEOUT_S:g} s" in message


def test_probe_honours_hf_endpoint_and_proxies(online, monkeypatch):
    targets = []
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: targets.append(address) or _Closable())
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert hub.hub_unreachable_reason() is None
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub.hub_unreachable_reason() is None
    monkeypatch.setenv("NO_PROXY", "hub.example")
    assert hub.hub_unreachable_reason() is None
    assert targets == [("mirror.example", 8080), ("proxy.example", 3128), ("hub.example", 443)]


class _Closable:
    def close(self):
        pass


def test_cached_weights_load_without_probing_or_requests(hub_cache, online, quilt_repo, monkeypatch):
    """With the files cached, loading never asks the network (it would wait ~23 s in retries when down)."""
    tiny.put_in_hub_cache(hub_cache, "wisdomik/QuiltNet-B-32", quilt_repo[0])

    def no_probe(*args, **kwargs):
        raise AssertionError("the Hub was probed although the weights are cached")

    monkeypatch.setattr(hub, "hub_unreachable_reason", no_probe)
    started = time.perf_counter()
    create_model("quiltnet-b32")
    assert time.perf_counter() - started < 5
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # offline mode was only lent for the load


def test_gated_checkpoint_error_says_how_to_get_access(hub_cache):
    message, seconds = _offline_error("medsiglip-448")
    assert seconds < 5
    for expected in ("gated", "https://huggingface.co/google/medsiglip-448", "Health AI Developer Foundations",
                     "hf auth login", "HF_TOKEN"):
        assert expected in message, expected


def test_refused_access_to_a_gated_repo_becomes_the_access_message(hub_cache, monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    card = get_card("medsiglip-448")
    monkeypatch.setattr(hub, "hub_unreachable_reason", lambda timeout=None: None)  # the Hub answers
    request = httpx2.Request("GET", "https://huggingface.co/google/medsiglip-448/resolve/main/config.json")

    def refused():
        try:
            raise GatedRepoError("403 Client Error: cannot access gated repo",
                                 response=httpx2.Response(403, request=request))
        except GatedRepoError as error:  # transformers re-raises it as an OSError
            raise OSError("You are trying to access a gated repo.") from error

    with pytest.raises(MedrivalError) as caught:
        weights.load_from_hub(card, refused)
    assert str(caught.value) == weights.gated_message(card)
    assert "hf auth login" in str(caught.value) and "is gated" in str(caught.value)


# ----------------------------------------------------------------------------------------------- precedence
def test_weights_argument_beats_environment_beats_hub(hub_cache, tmp_path, monkeypatch):
    cfg = tiny.tiny_open_clip_cfg("ViT-B-32")
    saved = {}
    for seed, where in ((1, tmp_path / "argument"), (2, tmp_path / "env" / "quiltnet-b32"), (3, tmp_path / "hub")):
        saved[seed] = tiny.save_open_clip(where, cfg, OPENAI_PREPROCESS, seed=seed).state_dict()
    tiny.put_in_hub_cache(hub_cache, "wisdomik/QuiltNet-B-32", tmp_path / "hub")

    def served_seed(**kwargs):
        conv = create_model("quiltnet-b32", **kwargs).model.state_dict()["visual.conv1.weight"]
        return next(seed for seed, state in saved.items() if torch.equal(state["visual.conv1.weight"], conv))

    assert served_seed() == 3
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "env"))
    assert weights.weights_status(get_card("quiltnet-b32")).label == f"local: {tmp_path / 'env' / 'quiltnet-b32'}"
    assert served_seed() == 2
    assert served_seed(weights=tmp_path / "argument") == 1
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "elsewhere"))  # no folder for this card there
    assert served_seed() == 3
    with pytest.raises(MedrivalError, match="not found"):
        create_model("quiltnet-b32", weights=tmp_path / "missing")


def test_cache_status_labels(hub_cache, tmp_path, monkeypatch):
    assert weights.weights_status(get_card("demo-specialist-clip")).label == "shipped"
    assert weights.weights_status(get_card("clip-vit-b16")).label == "no"
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "open_clip_model.safetensors").write_bytes(b"x")
    tiny.put_in_hub_cache(hub_cache, "timm/vit_base_patch16_clip_224.openai", tmp_path / "w")
    assert weights.weights_status(get_card("clip-vit-b16")).label == "yes"
    assert weights.weights_status(get_card("clip-vit-b32")).label == "no"
    local = get_card("demo-specialist-clip").model_copy(
        update={"source": ModelSource(kind="local-dir", name=str(tmp_path / "w"))})
    assert weights.weights_status(local).label == f"local: {tmp_path / 'w'}"


def test_models_command_shows_whether_weights_are_here(hub_cache, quilt_repo, tmp_path):
    """``medrival models`` (a subprocess, as a user runs it): yes / no / shipped / local, and the gated flag."""
    import json
    import os
    import subprocess
    import sys

    tiny.put_in_hub_cache(hub_cache, "wisdomik/QuiltNet-B-32", quilt_repo[0])
    (tmp_path / "weights" / "plip").mkdir(parents=True)
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb", "HF_HUB_CACHE": str(hub_cache),
           weights.WEIGHTS_ENV: str(tmp_path / "weights")}
    result = subprocess.run([sys.executable, "-m", "medrival", "models", "--format", "json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows["quiltnet-b32"]["weights_here"] == "yes" and rows["quiltnet-b32"]["gated"] is False
    assert rows["biomedclip"]["weights_here"] == "no"
    assert rows["demo-specialist-clip"]["weights_here"] == "shipped"
    assert rows["medsiglip-448"]["gated"] is True
    assert rows["plip"]["weights_here"].startswith("local:")
    assert rows["biomedclip"]["pair"] == "clip-vit-b16"
