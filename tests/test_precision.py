"""Precision (dtype / 4-bit), memory estimates and the memory preflight, your own model cards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import medrival
from medrival.core.errors import ConfigError
from medrival.models import catalog
from medrival.models.factory import create_model
from medrival.models.precision import memory_estimate
from medrival.study import preflight
from medrival.study.runner import plan_cells, run_study
from medrival.study.spec import cell_id, parse_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IMAGES = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)


def test_bf16_loads_in_bf16_and_generates_auto_on_cpu_is_fp32():
    bf16 = create_model("demo-generalist-vlm", dtype="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16 and bf16.dtype == "bf16"
    assert len(bf16.generate(IMAGES, ["is there a fracture?"] * 2, max_new_tokens=2)) == 2
    auto, plain = create_model("demo-generalist-vlm", dtype="auto"), create_model("demo-generalist-vlm")
    assert next(auto.model.parameters()).dtype == torch.float32
    assert auto.fingerprint == plain.fingerprint != bf16.fingerprint
    clip, clip16 = create_model("demo-generalist-clip"), create_model("demo-generalist-clip", dtype="bf16")
    assert clip.fingerprint != clip16.fingerprint and clip16.encode_images(IMAGES).dtype == torch.float32


def test_4bit_on_cpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="demo-generalist-vlm.*CUDA.*bitsandbytes.*dtype: bf16"):
        create_model("demo-generalist-vlm", quantization="4bit")


STUDY = "name: p\nmodels: [demo-generalist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\ndevice: cpu\n"


def test_cell_ids_unchanged_for_fp32_and_new_for_bf16():
    plain = plan_cells(parse_study(STUDY))
    assert plain[0].precision is None
    assert cell_id(plain[0]) == cell_id(plan_cells(parse_study(STUDY + "dtype: fp32\n"))[0])
    bf16 = plan_cells(parse_study(STUDY + "model_options: {demo-generalist-clip: {dtype: bf16}}\n"))
    assert dict(bf16[0].precision) == {"dtype": "bf16"} and cell_id(bf16[0]) != cell_id(plain[0])


def test_memory_estimate_and_preflight():
    llava = catalog.get_card("llava-1.5-7b")
    assert memory_estimate(llava, "fp32", 1) > 28e9 > memory_estimate(llava, "bf16", 1) > 14e9
    assert memory_estimate(llava, "bf16", 1, quantization="4bit") < 5e9
    spec = parse_study(STUDY)
    assert preflight.check_memory(spec, available=lambda device: (64 * 10**9, "available RAM")) == []
    with pytest.raises(ConfigError, match="demo-generalist-clip.*GB.*dtype: bf16.*4bit.*device_map.*batch_size"):
        preflight.check_memory(spec, available=lambda device: (1000, "available RAM"))


def test_custom_cards_are_validated_and_registered(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="clashes with a card shipped"):
        medrival.register_card({"id": "clip-vit-b16", "family": "contrastive", "role": "generalist",
                                "source": {"kind": "demo", "name": "demo-generalist-clip"},
                                "pretraining_modalities": ["xray"], "licence": "MIT"})
    with pytest.raises(ConfigError, match="did you mean 'licence'"):
        medrival.register_card({"id": "my-clip", "family": "contrastive", "role": "generalist",
                                "source": {"kind": "demo", "name": "demo-generalist-clip"},
                                "pretraining_modalities": ["xray"], "license": "MIT"})
    (tmp_path / "mine.yaml").write_text(
        "id: env-clip\nfamily: contrastive\nrole: generalist\n"
        "source: {kind: demo, name: demo-generalist-clip}\npretraining_modalities: [xray]\nlicence: MIT\n")
    monkeypatch.setenv(catalog.CARDS_ENV, str(tmp_path))
    catalog.model_registry.cache_clear()
    try:
        assert catalog.get_card("env-clip").role == "generalist"
    finally:
        monkeypatch.delenv(catalog.CARDS_ENV)
        catalog.model_registry.cache_clear()


def test_a_study_with_custom_models_runs_end_to_end(tmp_path):
    from tiny_checkpoints import save_open_clip, tiny_open_clip_cfg

    folder = tmp_path / "tiny-clip"
    save_open_clip(folder, tiny_open_clip_cfg("ViT-B-16"),
                   {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
                    "resize_mode": "shortest"})
    (tmp_path / "card.yaml").write_text(
        f"id: my-clip\nfamily: contrastive\nrole: generalist\nsource: {{kind: local-dir, name: '{folder}'}}\n"
        "pretraining_modalities: [natural]\nlicence: MIT\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: c\nmodels: [my-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\ndevice: cpu\n"
                     "custom_models: {my-clip: card.yaml}\n")
    run = run_study(medrival.load_study(study), tmp_path / "store")
    assert not run.failed and len(run.ran) == 1
    assert run.store.get(run.ran[0]).cost["dtype"] == "fp32"


def test_a_custom_generative_card_runs_in_bf16_end_to_end(tmp_path):
    from medrival.core.prompts import TEMPLATES
    from medrival.data import world
    from medrival.models.tiny_generative import build_tiny_llava

    texts = [t.format(question="", options="") for t in TEMPLATES.values()]
    texts += [f"{q} {a}" for attrs in world.render("xray", "train", 10, size=32).attrs
              for q, a, _ in world.questions("xray", attrs)]
    folder = build_tiny_llava(tmp_path / "vlm", texts, image_size=32, patch_size=16, text_layers=1)
    study = parse_study(
        "name: g\nmodels: [my-vlm]\ndatasets: [demo-xray-vqa]\nmethods: [vqa_zero_shot]\ndevice: cpu\n"
        "model_options: {my-vlm: {dtype: bf16}}\n"
        "custom_models:\n  my-vlm: {family: generative, role: generalist, licence: MIT, pretraining_modalities: "
        f"[natural], source: {{kind: local-dir, name: '{folder}'}}}}\n")
    run = run_study(study, tmp_path / "store")
    assert not run.failed and len(run.ran) == 1
    record = run.store.get(run.ran[0])
    assert record.cost["dtype"] == "bf16" and record.spec["precision"] == {"dtype": "bf16"}
