"""Generative (image-text-to-text) model cards: schema, pairs, the transformers classes they name, and how
``create_model`` finds their weights (local folder, shipped demo folder, Hub cache) and reports what is missing.

The generative adapter itself is not exercised here: ``medrival.models.generative`` is replaced by a recording
stand-in, so these tests check the routing only. Sockets are blocked by conftest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
import typing

import pytest
from pydantic import ValidationError

transformers = pytest.importorskip("transformers")

from medrival.core.cards import (  # noqa: E402
    CONTRASTIVE_CLASSES, GENERATIVE_CLASSES, Architecture, ModelCard, ModelClass)
from medrival.core.errors import MedrivalError  # noqa: E402
from medrival.models import demo_weights, hub, weights  # noqa: E402
from medrival.models.catalog import counterpart_pairs, get_card, model_registry  # noqa: E402
from medrival.models.factory import DEMO_VLM_SCRIPT, create_model  # noqa: E402

GENERATIVE = [name for name, card in model_registry().items() if card.family == "generative"]
HUB_GENERATIVE = [name for name in GENERATIVE if get_card(name).source.kind == "transformers"]
EXPECTED = {"llava-1.5-7b", "llava-med-v1.5-7b", "qwen2-vl-7b", "qwen2.5-vl-7b", "lingshu-7b", "gemma-3-4b",
            "medgemma-4b", "internvl3-8b", "smolvlm-256m", "demo-generalist-vlm", "demo-specialist-vlm"}
PAIRS = {("llava-1.5-7b", "llava-med-v1.5-7b"), ("qwen2.5-vl-7b", "lingshu-7b"), ("gemma-3-4b", "medgemma-4b"),
         ("demo-generalist-vlm", "demo-specialist-vlm")}


@pytest.fixture
def loader(monkeypatch):
    """A stand-in ``medrival.models.generative`` whose loader records its calls; returns the list of calls."""
    calls: list[dict] = []

    def load_generative_model(card, path_or_repo, weights_id, *, local_files_only=False, revision=None):
        calls.append({"card": card, "path": path_or_repo, "weights_id": weights_id,
                      "local_files_only": local_files_only, "revision": revision})
        return types.SimpleNamespace(card=card, family="generative", _weights_id=weights_id)

    module = types.ModuleType("medrival.models.generative")
    module.load_generative_model = load_generative_model
    monkeypatch.setitem(sys.modules, "medrival.models.generative", module)
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    return calls


# ----------------------------------------------------------------------------------------------- the cards
def test_the_generative_cards_are_registered_with_their_pairs():
    assert EXPECTED <= set(GENERATIVE)
    assert PAIRS <= set(counterpart_pairs())


@pytest.mark.parametrize("name", GENERATIVE)
def test_generative_card_validates_and_is_served_by_the_generative_adapter(name):
    card = get_card(name)
    assert ModelCard.model_validate(card.model_dump()) == card
    assert card.served_by == "transformers-generative"
    assert card.licence.strip() and card.description.strip() and card.pretraining_modalities
    if card.source.kind == "transformers":
        architecture = card.architecture
        assert architecture.model_class in GENERATIVE_CLASSES
        assert architecture.language_model and architecture.parameters_b > 0
        assert architecture.embed_dim is None and architecture.context_length is None
        assert card.paper.strip() and "/" in card.source.name
    else:
        assert card.source.kind == "demo" and card.synthetic


@pytest.mark.parametrize("name", [n for n in GENERATIVE if get_card(n).role == "specialist"])
def test_generative_specialists_pair_with_a_generative_generalist_of_the_same_class(name):
    card = get_card(name)
    pair = get_card(card.generalist_counterpart)
    assert pair.role == "generalist" and pair.family == "generative"
    if card.architecture is not None:
        assert pair.architecture.model_class == card.architecture.model_class
        assert pair.architecture.patch_size == card.architecture.patch_size
        assert 0.8 < pair.architecture.parameters_b / card.architecture.parameters_b < 1.25  # same size class
    else:
        assert pair.source.kind == card.source.kind


def test_llava_med_card_says_which_conversion_and_that_its_llm_differs():
    card, pair = get_card("llava-med-v1.5-7b"), get_card("llava-1.5-7b")
    assert card.source.name.endswith("-hf") and card.source.name in card.description
    assert "microsoft/llava-med-v1.5-mistral-7b" in card.description and "Mistral" in card.description
    assert "Vicuna" in pair.architecture.language_model and "Mistral" in card.architecture.language_model


def test_gated_generative_cards_say_how_to_get_access():
    gated = [name for name in GENERATIVE if get_card(name).gated]
    assert {"gemma-3-4b", "medgemma-4b"} <= set(gated)
    for name in gated:
        access = get_card(name).access
        assert "hf auth login" in access and "HF_TOKEN" in access
        assert f"huggingface.co/{get_card(name).source.name}" in access


# ----------------------------------------------------------------------------------------------- transformers classes
def test_schema_class_list_is_the_union_of_contrastive_and_generative_classes():
    assert set(typing.get_args(ModelClass)) == set(CONTRASTIVE_CLASSES) | set(GENERATIVE_CLASSES)


@pytest.mark.parametrize("model_class, model_type", sorted(GENERATIVE_CLASSES.items()))
def test_generative_class_exists_and_its_model_type_maps_to_it(model_class, model_type):
    """Offline: the config class for ``model_type`` maps to ``model_class`` in the image-text-to-text mapping."""
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    assert hasattr(transformers, model_class), f"transformers {transformers.__version__} has no {model_class}"
    config = AutoConfig.for_model(model_type)
    assert config.model_type == model_type
    assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[model_type] == model_class
    assert AutoModelForImageTextToText._model_mapping[type(config)].__name__ == model_class


def test_smolvlm_256m_names_the_class_its_config_names():
    """SmolVLM-256M-Instruct's config.json says model_type idefics3 (SmolVLM2 checkpoints say smolvlm)."""
    assert get_card("smolvlm-256m").architecture.model_class == "Idefics3ForConditionalGeneration"
    assert GENERATIVE_CLASSES["SmolVLMForConditionalGeneration"] == "smolvlm"


# ----------------------------------------------------------------------------------------------- schema errors
BASE = {"id": "c", "role": "generalist", "pretraining_modalities": ["natural"], "licence": "MIT",
        "source": {"kind": "transformers", "name": "a/b"}}
CLIP_ARCH = {"model_class": "CLIPModel", "vision_tower": "ViT-B/32", "patch_size": 32, "embed_dim": 512,
             "context_length": 77}
LLAVA_ARCH = {"model_class": "LlavaForConditionalGeneration", "vision_tower": "CLIP ViT-L/14", "patch_size": 14,
              "language_model": "Vicuna-7B v1.5", "parameters_b": 7.06}


def test_a_generative_card_validates_and_a_contrastive_one_still_does():
    assert ModelCard.model_validate({**BASE, "family": "generative", "architecture": LLAVA_ARCH}).served_by == (
        "transformers-generative")
    assert ModelCard.model_validate({**BASE, "family": "contrastive", "architecture": CLIP_ARCH}).served_by == (
        "transformers")
    local = {**BASE, "family": "generative", "source": {"kind": "local-dir", "name": "/x"}}
    assert ModelCard.model_validate(local).served_by == "transformers-generative"  # its folder says what it is


@pytest.mark.parametrize("card, fragments", [
    ({**BASE, "family": "contrastive", "architecture": LLAVA_ARCH},
     ["LlavaForConditionalGeneration is a generative", "a contrastive card needs one of", "CLIPModel"]),
    ({**BASE, "family": "generative", "architecture": CLIP_ARCH},
     ["CLIPModel is a contrastive class", "a generative card needs one of", "LlavaForConditionalGeneration"]),
    ({**BASE, "family": "generative", "source": {"kind": "hf-hub", "name": "a/b"},
      "architecture": {**LLAVA_ARCH}}, ["open_clip source cannot have a transformers model_class"]),
    ({**BASE, "family": "generative"}, ["needs an 'architecture'"]),
])
def test_family_and_class_must_agree(card, fragments):
    with pytest.raises(ValidationError) as caught:
        ModelCard.model_validate(card)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("architecture, fragment", [
    ({**LLAVA_ARCH, "embed_dim": 512}, "architecture.embed_dim apply to contrastive classes only"),
    ({**LLAVA_ARCH, "context_length": 77, "text_tower": "x/y"}, "context_length, text_tower apply to contrastive"),
    ({k: v for k, v in LLAVA_ARCH.items() if k != "language_model"}, "architecture.language_model required"),
    ({k: v for k, v in LLAVA_ARCH.items() if k != "parameters_b"}, "architecture.parameters_b required"),
    ({k: v for k, v in CLIP_ARCH.items() if k != "embed_dim"}, "architecture.embed_dim required for the contrastive"),
    ({**CLIP_ARCH, "language_model": "x"}, "language_model apply to generative classes only"),
    ({**LLAVA_ARCH, "model_class": "LlavaNextForConditionalGeneration"}, "model_class"),
])
def test_architecture_fields_fit_the_class(architecture, fragment):
    with pytest.raises(ValidationError, match=fragment):
        Architecture.model_validate(architecture)


def test_patch_size_is_optional_for_generative_classes():
    architecture = Architecture.model_validate({k: v for k, v in LLAVA_ARCH.items() if k != "patch_size"})
    assert architecture.patch_size is None and architecture.generative


# ----------------------------------------------------------------------------------------------- create_model
def test_gated_generative_card_offline_gives_the_offline_and_access_message(hub_cache):
    started = time.perf_counter()
    with pytest.raises(MedrivalError) as caught:
        create_model("medgemma-4b")
    message = str(caught.value)
    assert time.perf_counter() - started < 5
    for expected in ("'medgemma-4b'", "google/medgemma-4b-it", "hf download google/medgemma-4b-it", "gated",
                     "https://huggingface.co/google/medgemma-4b-it", "hf auth login", "HF_TOKEN",
                     "weights: {medgemma-4b: /path/to/weights/medgemma-4b}", "MEDRIVAL_WEIGHTS_DIR"):
        assert expected in message, expected
    assert "google/medgemma-4b-it" in message.splitlines()[0]


def test_refused_access_to_a_gated_generative_repo_becomes_the_access_message(hub_cache, loader, monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    monkeypatch.setattr(hub, "hub_unreachable_reason", lambda timeout=None: None)  # the Hub answers
    request = httpx2.Request("GET", "https://huggingface.co/google/gemma-3-4b-it/resolve/main/config.json")

    def refused(card, path_or_repo, weights_id, *, local_files_only=False, revision=None):
        try:
            raise GatedRepoError("403 Client Error: cannot access gated repo",
                                 response=httpx2.Response(403, request=request))
        except GatedRepoError as error:  # transformers re-raises it as an OSError
            raise OSError("You are trying to access a gated repo.") from error

    monkeypatch.setattr(sys.modules["medrival.models.generative"], "load_generative_model", refused)
    with pytest.raises(MedrivalError) as caught:
        create_model("gemma-3-4b")
    assert str(caught.value) == weights.gated_message(get_card("gemma-3-4b"))


def test_cached_hub_checkpoint_loads_through_the_generative_loader(hub_cache, loader, tmp_path, monkeypatch):
    import tiny_checkpoints as tiny

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"):
        (repo / name).write_text("{}")
    tiny.put_in_hub_cache(hub_cache, "HuggingFaceTB/SmolVLM-256M-Instruct", repo, commit="c0ffee")

    def no_probe(*args, **kwargs):
        raise AssertionError("the Hub was probed although the files are cached")

    monkeypatch.setattr(hub, "hub_unreachable_reason", no_probe)
    model = create_model("smolvlm-256m")
    (call,) = loader
    assert call["path"] == "HuggingFaceTB/SmolVLM-256M-Instruct" and call["revision"] is None
    assert call["local_files_only"] is False and call["card"] is get_card("smolvlm-256m")
    assert model._weights_id == "hub:HuggingFaceTB/SmolVLM-256M-Instruct@c0ffee"
    assert weights.weights_status(get_card("smolvlm-256m")).state == "cached"


def test_local_weights_folder_loads_offline_with_a_folder_version(loader, tmp_path, monkeypatch):
    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    create_model("llava-1.5-7b", weights=folder)
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path))
    (tmp_path / "qwen2-vl-7b").mkdir()
    create_model("qwen2-vl-7b")
    first, second = loader
    assert first["path"] == str(folder) and first["local_files_only"] is True
    assert first["weights_id"].startswith(f"local-dir:{folder.resolve()}|model.safetensors:7:")
    assert second["path"] == str(tmp_path / "qwen2-vl-7b") and second["local_files_only"] is True


def test_missing_weights_folder_is_named(loader, tmp_path):
    with pytest.raises(MedrivalError, match="not found"):
        create_model("llava-1.5-7b", weights=tmp_path / "nowhere")
    assert not loader


def test_demo_generative_card_without_its_folder_names_the_folder_and_the_script(loader, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", tmp_path / "demo_weights")
    with pytest.raises(MedrivalError) as caught:
        create_model("demo-generalist-vlm")
    message = str(caught.value)
    assert str(tmp_path / "demo_weights" / "demo-generalist-vlm") in message
    assert DEMO_VLM_SCRIPT == "scripts/pretrain_demo_vlms.py" and DEMO_VLM_SCRIPT in message
    assert not loader
    assert weights.weights_status(get_card("demo-generalist-vlm")).state == "missing"


def test_demo_generative_card_loads_its_shipped_folder_with_a_content_hash(loader, tmp_path, monkeypatch):
    import hashlib

    folder = tmp_path / "demo_weights" / "demo-specialist-vlm"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"tiny weights")
    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", tmp_path / "demo_weights")
    create_model("demo-specialist-vlm")
    (call,) = loader
    digest = hashlib.sha256(b"tiny weights").hexdigest()[:16]
    assert call["path"] == str(folder) and call["local_files_only"] is True
    assert call["weights_id"] == f"demo:demo-specialist-vlm:{digest}"
    assert weights.weights_status(get_card("demo-specialist-vlm")).label == "shipped"


# ----------------------------------------------------------------------------------------------- command line
def test_models_command_lists_the_generative_cards(hub_cache):
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb", "HF_HUB_CACHE": str(hub_cache)}
    result = subprocess.run([sys.executable, "-m", "medrival", "models", "--format", "json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    for name in EXPECTED:
        assert name in rows, name
        assert rows[name]["family"] == "generative"
    assert rows["medgemma-4b"]["pair"] == "gemma-3-4b" and rows["medgemma-4b"]["gated"] is True
    assert rows["smolvlm-256m"]["weights_here"] == "no" and rows["smolvlm-256m"]["gated"] is False
    # The table a person reads names every card whole, on one line, at 250 columns too.
    table = subprocess.run([sys.executable, "-m", "medrival", "models"], capture_output=True, text=True, env=env,
                           timeout=60).stdout
    assert all(any(name in line for line in table.splitlines()) for name in EXPECTED)


# ----------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    """A tiny random LLaVA save_pretrained folder (the layout of llava-hf checkpoints), built offline."""
    pytest.importorskip("torch")
    tiny_generative = pytest.importorskip("medrival.models.tiny_generative")
    folder = tmp_path_factory.mktemp("tiny-llava") / "demo-generalist-vlm"
    return tiny_generative.build_tiny_llava(folder, ["what is shown?", "a chest x-ray.", "yes", "no"])


def test_real_adapter_serves_a_weights_folder_and_the_demo_folder(tiny_llava, tmp_path, monkeypatch):
    pytest.importorskip("medrival.models.generative")
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    model = create_model("llava-1.5-7b", weights=tiny_llava)
    assert model.family == "generative" and model.card is get_card("llava-1.5-7b")
    assert type(model.model).__name__ == get_card("llava-1.5-7b").architecture.model_class
    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", tiny_llava.parent)
    demo = create_model("demo-generalist-vlm")
    assert demo.card is get_card("demo-generalist-vlm") and demo.fingerprint != model.fingerprint
    assert demo._weights_id.startswith("demo:demo-generalist-vlm:")
