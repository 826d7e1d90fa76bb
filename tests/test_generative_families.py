"""The generative adapter, unchanged, over tiny random-init Qwen2-VL and Gemma 3 built offline
(``models/tiny_families.py``): the families' own model and processor classes, special tokens and chat templates."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from generative_helpers import overfit

from medrival.models.generative import GenerativeModel, load_generative_model
from medrival.models.tiny_families import build_tiny_gemma3, build_tiny_qwen2_vl, tiny_gemma3, tiny_qwen2_vl

TEXTS = ["a chest x-ray showing pneumonia.", "is there a fracture in this image?", "what organ is shown?",
         "the lungs are clear.", "a dermoscopy image of a melanoma.", "which side is the effusion on?",
         "left", "right", "heart", "brain", "yes", "no"]
PROMPTS = ["is there a fracture?", "what organ is shown in this image?", "which side?",
           "a chest x-ray showing pneumonia. is there an effusion on the left side?"]

# family: (builder, in-memory twin, end-of-turn token, module groups)
FAMILIES = {
    "qwen2_vl": (build_tiny_qwen2_vl, tiny_qwen2_vl, "<|im_end|>",
                 {"llm": ["model.language_model"], "projector": ["model.visual.merger"],
                  "vision": ["model.visual"]}),
    "gemma3": (build_tiny_gemma3, tiny_gemma3, "<end_of_turn>",
               {"llm": ["model.language_model"], "projector": ["model.multi_modal_projector"],
                "vision": ["model.vision_tower"]}),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def folder(family, tmp_path_factory):
    return FAMILIES[family][0](tmp_path_factory.mktemp(f"tiny-{family}"), TEXTS)


@pytest.fixture(scope="module")
def model(folder, family) -> GenerativeModel:
    return load_generative_model(None, str(folder), f"tiny-{family}@test", local_files_only=True)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Four sizes: Qwen2-VL's dynamic resolution gives them different numbers of image tokens."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 48), (56, 56), (30, 70), (64, 40)]]


def _encoded(model: GenerativeModel, image, text: str) -> dict:
    """One rendered text with its image, unpadded, encoded as transformers' own chat rule says (no second bos)."""
    bos = model.processor.tokenizer.bos_token
    encoded = model.processor(images=[[image]], text=[text], return_tensors="pt",
                              add_special_tokens=not (bos and text.startswith(bos)))
    return encoded


def _prompt_text(model: GenerativeModel, prompt: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return model.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_reload_is_bit_exact(model, family, folder):
    built, _ = FAMILIES[family][1](TEXTS)  # the same seeded model, never saved
    reference = built.state_dict()
    state = model.model.state_dict()
    assert type(model.model) is type(built) and state.keys() == reference.keys()
    assert all(torch.equal(state[name], reference[name]) for name in reference)
    assert model.num_parameters() == model.trainable_parameters() > 50_000
    assert type(model.processor).__name__ == {"qwen2_vl": "Qwen2VLProcessor", "gemma3": "Gemma3Processor"}[family]
    # The config's token ids are the tokenizer's.
    config, tokenizer = model.model.config, model.processor.tokenizer
    named = ({"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
              "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
             if family == "qwen2_vl" else
             {"image_token_id": "<image_soft_token>", "boi_token_id": "<start_of_image>",
              "eoi_token_id": "<end_of_image>"})
    for attribute, token in named.items():
        assert getattr(config, attribute) == tokenizer.convert_tokens_to_ids(token), attribute
    assert config.get_text_config().vocab_size == len(tokenizer)
    assert tokenizer.eos_token_id == config.get_text_config().eos_token_id


def test_batched_generation_equals_one_by_one(model, images):
    batched = model.generate(images, PROMPTS, max_new_tokens=5, batch_size=4)
    single = [model.generate(images[i:i + 1], [PROMPTS[i]], max_new_tokens=5, batch_size=1)[0] for i in range(4)]
    assert batched == single
    assert all(isinstance(text, str) and text == text.strip() for text in batched)
    assert model.processor.tokenizer.padding_side == "right"  # left padding is set for generation only


def _manual_scores(model: GenerativeModel, image, prompt: str, options: list[str]) -> list[float]:
    """log p(option | image, prompt) from unpadded forward passes, written independently of the adapter."""
    prompt_text = _prompt_text(model, prompt)
    start = _encoded(model, image, prompt_text)["input_ids"].shape[1]
    scores = []
    for option in options:
        encoded = _encoded(model, image, prompt_text + option)  # both templates open a reply with nothing
        with torch.no_grad():
            logits = model.model(**encoded).logits[0].double()
        ids = encoded["input_ids"][0]
        logprobs = torch.log_softmax(logits[start - 1:-1], dim=-1)
        scores.append(logprobs.gather(-1, ids[start:, None]).sum().item())
    return scores


def test_score_options_match_a_manual_computation(model, images, family):
    assert model._reply_format == ("", FAMILIES[family][2])
    options = ["yes", "no", "a chest x-ray"]
    scores = model.score_options(images, PROMPTS, options, batch_size=5)
    assert scores.shape == (4, 3) and np.all(scores < 0)
    expected = np.array([_manual_scores(model, images[i], PROMPTS[i], options) for i in range(4)])
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)


def test_training_batch_labels_only_the_answer(model, images, family):
    answers = ["yes", "the lungs are clear.", "left", "no"]
    end = FAMILIES[family][2]
    batch = model.training_batch(images, PROMPTS, answers)
    tokenizer = model.processor.tokenizer
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape and len(set(mask.sum(1).tolist())) > 1  # rows of different lengths
    assert torch.all(labels[ids == model.model.config.image_token_id] == -100)
    assert torch.all(labels[mask == 0] == -100)
    for row, (prompt, answer) in enumerate(zip(PROMPTS, answers)):
        labelled = torch.nonzero(labels[row] != -100).flatten()
        start, stop = labelled[0].item(), int(mask[row].sum())
        assert labelled.tolist() == list(range(start, stop))  # one span, reaching the last real token
        assert torch.equal(labels[row, start:stop], ids[row, start:stop])
        assert tokenizer.decode(labels[row, start:stop]) == answer + end
        prompt_ids = _encoded(model, images[row], _prompt_text(model, prompt))["input_ids"][0]
        assert torch.equal(ids[row, :start], prompt_ids)  # everything before the answer is the prompt
    assert torch.isfinite(model.loss(batch))


def test_module_groups_exist(model, family):
    groups = model.module_groups()
    assert groups == FAMILIES[family][3]
    names = dict(model.model.named_modules())
    assert all(prefix in names for prefixes in groups.values() for prefix in prefixes)


def test_training_reduces_the_loss(folder, family, images):
    tuned = load_generative_model(None, folder, f"tiny-{family}@train")
    answers = ["yes", "heart", "left", "no"]
    losses = overfit(tuned, images, PROMPTS, answers, steps=25, lr=3e-3)
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    # The images reach the loss: the vision tower got gradients.
    vision = dict(tuned.model.named_modules())[tuned.module_groups()["vision"][0]]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision.parameters())
    assert tuned.generate(images, PROMPTS, max_new_tokens=4) == answers
    assert tuned.model.training  # generation restored the caller's mode
