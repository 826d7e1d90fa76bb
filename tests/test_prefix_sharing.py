"""Shared image prefixes and one-pass option scoring give the plain path's answers and scores, on every tiny
family (fp32, CPU): LLaVA, Qwen2-VL and Qwen2.5-VL (M-RoPE positions, images of different sizes), Gemma 3 (token types, sliding
and full attention), Idefics3 (SmolVLM's class) and the demo VLMs."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.models.generative import load_generative_model
from medrival.models.prefix_sharing import image_units
from medrival.models.tiny_families import (build_tiny_gemma3, build_tiny_idefics3, build_tiny_qwen2_5_vl,
                                           build_tiny_qwen2_vl)
from medrival.models.tiny_generative import build_tiny_llava

TEXTS = ["a chest x-ray showing pneumonia.", "is there a fracture in this image?", "what organ is shown?",
         "the lungs are clear.", "yes", "no", "left", "right", "which side is the effusion on?"]
PROMPTS = ["is there a fracture?", "what organ is shown in this image?", "which side?",
           "a chest x-ray showing pneumonia. is there an effusion on the left side?", "yes or no?"]
OPTIONS = ["yes", "no", "left side", "the heart"]
BUILDERS = {"llava": build_tiny_llava, "qwen2_vl": build_tiny_qwen2_vl, "gemma3": build_tiny_gemma3,
            "qwen2_5_vl": build_tiny_qwen2_5_vl, "idefics3": build_tiny_idefics3}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param), TEXTS)
    return load_generative_model(None, str(folder), f"tiny-{request.param}@test", local_files_only=True)


def _questions(seed: int = 0):
    """2 to 5 questions on each of four images of different sizes, shuffled, with two token limits."""
    rng = np.random.default_rng(seed)
    pictures = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 48), (56, 56), (30, 70), (64, 40)]]
    rows = [(image, prompt, 4 if j % 2 else 9) for i, image in enumerate(pictures)
            for j, prompt in enumerate(PROMPTS[:2 + i])]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _plain_and_shared(model, call):
    model.share_image_prefix, model.one_pass_options = False, False
    try:
        plain = call()
    finally:
        model.share_image_prefix, model.one_pass_options = True, True
    return plain, call()


def test_shared_prefixes_give_the_plain_greedy_answers(model):
    images, prompts, limits = _questions()
    model.sharing_stats.prefill_tokens_saved = 0
    plain, shared = _plain_and_shared(
        model, lambda: model.generate(images, prompts, max_new_tokens=limits, batch_size=4))
    assert shared == plain
    assert len(set(plain)) > 3, "answers must vary for the comparison to mean something"
    assert model.sharing_stats.prefill_tokens_saved > 0 and not model.sharing_stats.plain_reasons


@pytest.mark.parametrize("batch_size", [3, 16])
def test_one_pass_option_scores_equal_k_passes(model, batch_size):
    images, prompts, _ = _questions(1)
    plain, one_pass = _plain_and_shared(
        model, lambda: model.score_options(images, prompts, OPTIONS, batch_size=batch_size))
    assert one_pass.shape == (len(prompts), len(OPTIONS))
    np.testing.assert_allclose(one_pass, plain, atol=1e-5, rtol=0)
    assert np.ptp(plain) > 1.0  # options differ in likelihood


def test_the_demo_vlm_shares_its_prefixes():
    from medrival.models import factory

    model = factory.create_model("demo-specialist-vlm")
    images, prompts, limits = _questions(2)
    plain, shared = _plain_and_shared(
        model, lambda: model.generate(images, prompts, max_new_tokens=limits, batch_size=8))
    assert shared == plain
    plain, one_pass = _plain_and_shared(model, lambda: model.score_options(images, prompts, ["yes", "no"]))
    np.testing.assert_allclose(one_pass, plain, atol=1e-5, rtol=0)


def test_a_template_with_the_question_before_the_image_takes_the_plain_path(tmp_path):
    folder = build_tiny_llava(tmp_path / "llava", TEXTS)
    model = load_generative_model(None, str(folder), "tiny-llava@test", local_files_only=True)
    model.processor.chat_template = model.processor.chat_template.replace(
        "{%- for item in message['content'] -%}", "{%- for item in message['content'] | reverse -%}")
    images, prompts, limits = _questions(3)
    plain, shared = _plain_and_shared(
        model, lambda: model.generate(images, prompts, max_new_tokens=limits, batch_size=4))
    assert shared == plain
    assert model.sharing_stats.plain_reasons == {"the chat template writes question text before the image"}
    assert model.sharing_stats.as_cost()["prefix_sharing_off"] == \
        "the chat template writes question text before the image"


def test_image_units_keep_each_image_whole():
    assert image_units(["a", "b", "a", "c", "b"], 2) == [[0, 2, 1, 4], [3]]
    assert image_units([], 4) == []


@pytest.mark.parametrize("shared", [True, False])
def test_a_prompt_longer_than_the_context_fails_alone_with_its_lengths(tmp_path, shared):
    from medrival.methods.generation_cache import GenerationCache
    from medrival.methods.vqa_answers import _generate_with_failures

    folder = build_tiny_llava(tmp_path / "llava", TEXTS)
    model = load_generative_model(None, str(folder), "tiny-llava@test", local_files_only=True)
    model.share_image_prefix = shared
    images, prompts, limits = _questions(4)
    long_row = 2
    prompts[long_row] = " ".join(["is there a fracture in this image?"] * 80)  # ~560 words: over 512 tokens
    expected = model.generate([im for i, im in enumerate(images) if i != long_row],
                              [p for i, p in enumerate(prompts) if i != long_row],
                              max_new_tokens=[n for i, n in enumerate(limits) if i != long_row], batch_size=4)
    cache = GenerationCache(tmp_path / "generations.sqlite")
    for _ in range(2):  # cold, then every answer (and the refusal) from the cache
        replies, failures = _generate_with_failures(model, images, prompts, limits, 4, cache)
        assert [row for row, _ in failures] == [long_row]
        message = failures[0][1]
        assert "tokens (image tokens included)" in message and "at most 512 tokens" in message, message
        assert replies[long_row] == "" and [r for i, r in enumerate(replies) if i != long_row] == expected
    assert cache.hits == len(prompts)


def test_a_cell_records_engine_throughput_and_saved_prefill(tmp_path):
    from medrival.study.runner import run_study
    from medrival.study.spec import parse_study
    from medrival.store import ResultStore

    spec = parse_study("""
name: sharing-cost
models: [demo-specialist-vlm]
datasets: [demo-xray-vqa]
methods: [{name: vqa_zero_shot, config: {batch_size: 8}}]
""")
    run_study(spec, tmp_path / "store")
    record = ResultStore(tmp_path / "store").records()[0]
    generation = record.cost["generation"]
    assert generation["engine"] == "transformers" and generation["questions"] > 0
    assert generation["attention"] == "sdpa"  # transformers' scaled-dot-product attention, the default
    assert generation["questions_per_s"] > 0 and 0 < generation["prefill_tokens_saved"] < generation["prefill_tokens"]
    assert "prefix_sharing_off" not in generation
