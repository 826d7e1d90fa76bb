"""The generative adapter over a tiny random-init LLaVA built offline (``models/tiny_generative.py``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from generative_helpers import overfit

from medrival.core.errors import DataError, MedrivalError
from medrival.models.generative import GenerativeModel, load_generative_model
from medrival.models.tiny_generative import build_tiny_llava

TEXTS = ["a chest x-ray showing pneumonia.", "is there a fracture in this image?", "what organ is shown?",
         "the lungs are clear.", "a dermoscopy image of a melanoma.", "which side is the effusion on?",
         "left", "right", "heart", "brain", "yes", "no"]
SIZE = {"image_size": 32}  # 16 image tokens instead of 64: same code paths, a quarter of the sequence
PROMPTS = ["is there a fracture?", "what organ is shown in this image?", "which side?",
           "a chest x-ray showing pneumonia. is there an effusion on the left side?"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"), TEXTS, **SIZE)


@pytest.fixture(scope="module")
def model(folder) -> GenerativeModel:
    return load_generative_model(None, str(folder), "tiny-llava@test", local_files_only=True)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)


def _prompt_text(model: GenerativeModel, prompt: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return model.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_reload_is_bit_exact_and_deterministic(model, folder, tmp_path):
    again = load_generative_model(None, folder, "tiny-llava@test", local_files_only=True)
    rebuilt = load_generative_model(None, build_tiny_llava(tmp_path / "again", TEXTS, **SIZE), "tiny-llava@test")
    assert again.fingerprint == model.fingerprint == rebuilt.fingerprint
    assert model.family == "generative" and model.device.type == "cpu"
    reference = model.model.state_dict()
    for other in (again, rebuilt):
        state = other.model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[name], reference[name]) for name in reference)
    assert load_generative_model(None, folder, "other-weights").fingerprint != model.fingerprint
    assert model.num_parameters() == model.trainable_parameters() > 100_000


def test_batched_generation_equals_one_by_one(model, images):
    batched = model.generate(images, PROMPTS, max_new_tokens=5, batch_size=4)
    single = [model.generate(images[i:i + 1], [PROMPTS[i]], max_new_tokens=5, batch_size=1)[0] for i in range(4)]
    assert batched == single
    assert all(isinstance(text, str) and text == text.strip() for text in batched)
    assert model.processor.tokenizer.padding_side == "right"  # left padding is set for generation only


def test_per_prompt_token_limits(model, images):
    limits = [1, 4, 2, 3]
    replies = model.generate(list(images), PROMPTS, max_new_tokens=limits, batch_size=2)
    tokenizer = model.processor.tokenizer
    for reply, limit in zip(replies, limits):
        assert len(tokenizer(reply, add_special_tokens=False)["input_ids"]) <= limit
    assert replies[0] == model.generate(images[:1], PROMPTS[:1], max_new_tokens=1)[0]


def _manual_scores(model: GenerativeModel, image, prompt: str, options: list[str]) -> list[float]:
    """log p(option | image, prompt) from unpadded forward passes, written independently of the adapter."""
    prompt_text = _prompt_text(model, prompt)
    start = model.processor(images=[image], text=[prompt_text], return_tensors="pt")["input_ids"].shape[1]
    scores = []
    for option in options:
        encoded = model.processor(images=[image], text=[prompt_text + " " + option], return_tensors="pt")
        with torch.no_grad():
            logits = model.model(**encoded).logits[0].double()
        ids = encoded["input_ids"][0]
        logprobs = torch.log_softmax(logits[start - 1:-1], dim=-1)
        scores.append(logprobs.gather(-1, ids[start:, None]).sum().item())
    return scores


def test_score_options_match_a_manual_computation(model, images):
    options = ["yes", "no", "a chest x-ray"]
    shared = model.score_options(images, PROMPTS, options, batch_size=5)
    assert shared.shape == (4, 3) and shared.dtype == np.float64
    expected = np.array([_manual_scores(model, images[i], PROMPTS[i], options) for i in range(4)])
    np.testing.assert_allclose(shared, expected, atol=1e-5, rtol=0)
    per_row = [["left", "right"], ["heart", "brain"], ["yes", "no"], ["left", "no"]]
    scores = model.score_options(images, PROMPTS, per_row, batch_size=3)
    expected = np.array([_manual_scores(model, images[i], PROMPTS[i], per_row[i]) for i in range(4)])
    assert scores.shape == (4, 2)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert np.all(scores < 0)


def test_training_batch_labels_only_the_answer(model, images):
    answers = ["yes", "the lungs are clear.", "left", "no"]
    batch = model.training_batch(images, PROMPTS, answers)
    tokenizer = model.processor.tokenizer
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape and len(set(mask.sum(1).tolist())) > 1  # rows of different lengths
    image_id = model.model.config.image_token_id
    assert torch.all(labels[ids == image_id] == -100) and torch.all(labels[mask == 0] == -100)
    for row, (prompt, answer) in enumerate(zip(PROMPTS, answers)):
        labelled = torch.nonzero(labels[row] != -100).flatten()
        start, end = labelled[0].item(), int(mask[row].sum())
        assert labelled.tolist() == list(range(start, end))  # one span, reaching the last real token
        assert torch.equal(labels[row, start:end], ids[row, start:end])
        assert tokenizer.decode(ids[row, start:end]) == answer + tokenizer.eos_token
        prompt_ids = model.processor(images=[images[row]], text=[_prompt_text(model, prompt)],
                                     return_tensors="pt")["input_ids"][0]
        assert torch.equal(ids[row, :start], prompt_ids)  # everything before the answer is the prompt
    assert torch.isfinite(model.loss(batch))


def test_training_overfits_four_examples(folder, images):
    tuned = load_generative_model(None, folder, "tiny-llava@train")
    answers = ["yes", "heart", "left", "no"]
    losses = overfit(tuned, images, PROMPTS, answers, steps=30, lr=2e-3)
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    assert tuned.generate(images, PROMPTS, max_new_tokens=4) == answers
    assert tuned.model.training  # generation restored the caller's mode
    best = tuned.score_options(images, PROMPTS, ["yes", "heart", "left", "no"]).argmax(1)
    assert best.tolist() == [0, 1, 2, 3]


def test_module_groups_and_checkpointing(model, images):
    groups = model.module_groups()
    assert groups == {"llm": ["model.language_model"], "projector": ["model.multi_modal_projector"],
                      "vision": ["model.vision_tower"]}
    names = dict(model.model.named_modules())
    assert all(prefix in names for prefixes in groups.values() for prefix in prefixes)
    model.set_grad_checkpointing(True)
    try:
        model.model.train()
        model.loss(model.training_batch(images[:2], PROMPTS[:2], ["yes", "no"])).backward()
        assert model.model.model.language_model.layers[0].self_attn.q_proj.weight.grad is not None
    finally:
        model.set_grad_checkpointing(False)
        model.model.zero_grad(set_to_none=True)
        model.model.eval()


def test_bad_inputs_are_data_errors(model, images):
    with pytest.raises(DataError, match="4 images, 3 prompts"):
        model.generate(images, PROMPTS[:3])
    with pytest.raises(DataError, match="4 images, 4 prompts, 2 answers"):
        model.training_batch(images, PROMPTS, ["yes", "no"])
    with pytest.raises(DataError, match="options is empty"):
        model.score_options(images, PROMPTS, [])
    with pytest.raises(DataError, match="3 lists for 4 prompts"):
        model.score_options(images, PROMPTS, [["yes"], ["no"], ["yes"]])
    with pytest.raises(DataError, match="same number of options"):
        model.score_options(images[:2], PROMPTS[:2], [["yes", "no"], ["yes"]])
    with pytest.raises(DataError, match="H x W x 3"):
        model.generate(images[..., 0], PROMPTS)
    with pytest.raises(DataError, match="max_new_tokens"):
        model.generate(images, PROMPTS, max_new_tokens=[1, 2])


def test_a_folder_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(MedrivalError, match="image-text-to-text checkpoint: its config did not load") as caught:
        load_generative_model(None, str(tmp_path), "none", local_files_only=True)
    assert str(tmp_path) in str(caught.value) and "config.json" in str(caught.value)
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                num_attention_heads=2).save_pretrained(tmp_path / "text-only")
    with pytest.raises(MedrivalError, match="'llama' model, which AutoModelForImageTextToText does not serve"):
        load_generative_model(None, tmp_path / "text-only", "none", local_files_only=True)
