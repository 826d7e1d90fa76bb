"""Generative methods on a tiny LLaVA built offline: what is specific to each (prompts by form, option scoring,
LoRA variants and training, VQA scoring). The contract every method meets is in tests/test_methods_contract.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import ConfigError, MedrivalError
from medrival.data.catalog import load_dataset
from medrival.methods import METHODS
from medrival.methods.option_zero_shot import softmax_rows, split_images
from medrival.methods.vqa_answers import question_prompts, yes_probability
from medrival.methods.vqa_lora import VQALora, VQALoraConfig, lora_target_names
from medrival.core.prompts import TEMPLATES, diagnosis_prompt
from medrival.study.vqa_cell import score_vqa, vqa_metrics

torch = pytest.importorskip("torch")


def _texts() -> list[str]:
    from medrival.data import world

    texts = [template.format(question="", options="") for template in TEMPLATES.values()]
    for modality in ("xray", "dermoscopy"):
        for attrs in world.render(modality, "train", 30, size=32).attrs:
            texts += [f"{q} {a}" for q, a, _ in world.questions(modality, attrs)]
    texts.append(diagnosis_prompt(load_dataset("demo-xray", "test", n=2, size=32).info))
    return texts


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from medrival.models.generative import load_generative_model
    from medrival.models.tiny_generative import build_tiny_llava

    folder = build_tiny_llava(tmp_path_factory.mktemp("tiny-vlm"), _texts(), image_size=32, patch_size=8,
                              text_layers=2, seed=0)
    return load_generative_model(None, str(folder), "test:tiny")


@pytest.fixture(scope="module")
def splits():
    return {split: load_dataset("demo-xray-vqa", split, n=n, size=32)
            for split, n in (("train", 40), ("val", 12), ("test", 16))}


def _build(name: str, **config):
    spec = METHODS.get(name)
    return spec.build(spec.make_config(config))


def test_prompts_depend_on_the_form_only(splits):
    test = splits["test"]
    prompts = question_prompts(test)
    fresh = {k: v for k, v in test.__dict__.items() if k not in ("forms", "options")}
    swapped = type(test)(**{**fresh, "answers": ["no" if a == "yes" else "yes" for a in test.answers]})
    assert question_prompts(swapped) == prompts and swapped.forms == test.forms
    assert all(p.endswith(TEMPLATES[f].split("}")[-1]) for p, f in zip(prompts, test.forms))


def test_zero_shot_answers_every_question_and_scores_closed_ones(model, splits):
    method = _build("vqa_zero_shot", batch_size=8)
    method.fit(model, splits["train"], splits["val"])
    output = method.predict(splits["test"])
    closed = np.asarray(splits["test"].forms) == "yes_no"
    assert len(output.responses) == len(splits["test"])
    assert np.isfinite(output.yes_probability[closed]).all() and np.isnan(output.yes_probability[~closed]).all()
    images = [splits["test"].images[i] for i in splits["test"].image_index[closed]]
    prompts = [p for p, c in zip(question_prompts(splits["test"]), closed) if c]
    direct = yes_probability(model.score_options(images, prompts, ("yes", "no")))
    np.testing.assert_allclose(output.yes_probability[closed], direct, atol=1e-6)


def test_score_vqa_is_score_answers_and_unusable_references_are_scored_open(model, splits):
    from medrival.metrics.vqa import score_answers
    from medrival.methods.vqa_answers import VQAOutput

    test = splits["test"]
    answers = list(test.answers)
    first_yes_no = test.forms.index("yes_no")
    answers[first_yes_no] = "left"  # a yes/no question whose reference is not yes or no
    edited = type(test)(**{**test.__dict__, "answers": answers})
    responses = ["Left."] + ["yes"] * (len(test) - 1)
    frame = score_vqa(edited, VQAOutput(responses, np.full(len(test), 0.5)))
    assert frame.loc[first_yes_no, "scored_as"] == "open"
    assert frame.loc[first_yes_no, "score_note"] == "yes_no_reference_not_yes_no"
    assert np.isnan(frame.loc[first_yes_no, "prob_yes"]) and np.isnan(frame.loc[first_yes_no, "closed_accuracy"])
    assert list(frame["cluster_id"]) == [str(test.image_ids[i]) for i in test.image_index]
    direct = score_answers(responses, answers, edited.forms, edited.options, questions=edited.questions)
    for column in direct.columns:  # the study's table is the user's function, column for column
        if column != "form":
            pd.testing.assert_series_equal(frame[column], direct[column], check_names=False)
    metrics = vqa_metrics(frame)
    assert metrics["closed_accuracy"] == pytest.approx(frame["closed_accuracy"].mean())
    assert metrics["open_token_f1"] == pytest.approx(frame.loc[frame["scored_as"] == "open", "open_token_f1"].mean())


def test_option_zero_shot_is_the_softmax_of_option_log_likelihoods(model):
    test = load_dataset("demo-xray", "test", n=6, size=32)
    method = _build("option_zero_shot", batch_size=4)
    method.fit(model, test, test)
    probabilities = method.predict(test).probabilities
    # the method's batch size: one-pass scores depend on the batch's layout at the level of float rounding
    scores = model.score_options(split_images(test), [diagnosis_prompt(test.info)] * len(test),
                                 list(test.info.class_names), batch_size=4)
    np.testing.assert_allclose(probabilities, softmax_rows(scores), atol=1e-9)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def _closed_accuracy(model_like, split) -> float:
    from medrival.methods.vqa_answers import VQAGenerationConfig, answer_questions

    frame = score_vqa(split, answer_questions(model_like, split, VQAGenerationConfig(batch_size=16)))
    return float(frame["closed_accuracy"].mean())


def test_lora_learns_restores_the_base_and_reloads_identically(model, splits, tmp_path):
    before = model.generate(split_images_of(splits["test"], 4), question_prompts(splits["test"])[:4])
    zero_shot = _closed_accuracy(model, splits["train"])
    method = _build("vqa_lora", epochs=4, lr=5e-3, train_batch_size=8, rank=8, batch_size=16)
    method.fit(model, splits["train"], splits["val"], seed=0)
    trained = _closed_accuracy(method.tuned, splits["train"])
    assert trained >= zero_shot + 0.3  # the untrained model commits to neither yes nor no
    assert method.result.best_epoch >= 1 and len(method.result.validation_losses) == 5
    assert method.result.validation_losses[method.result.best_epoch] == min(method.result.validation_losses)
    output = method.predict(splits["test"])
    assert 0 < output.trainable_parameters < model.num_parameters() // 5
    method.save(tmp_path / "adapter")
    method.close()
    assert model.generate(split_images_of(splits["test"], 4), question_prompts(splits["test"])[:4]) == before
    reloaded = VQALora.load(model, tmp_path / "adapter")
    try:
        again = reloaded.predict(splits["test"])
        assert again.responses == output.responses
    finally:
        reloaded.close()


def split_images_of(split, count: int) -> list[np.ndarray]:
    return [split.images[i] for i in split.image_index[:count]]


def test_lora_variants_pick_their_parts(model):
    groups = model.module_groups()
    for variant, parts in (("llm", ("llm",)), ("projector", ("projector",)), ("vision_llm", ("vision", "llm"))):
        names = lora_target_names(model, VQALoraConfig(variant=variant))
        assert names and all(any(n.startswith(p + ".") for part in parts for p in groups[part]) for n in names)
    assert {"vision", "llm"} == {part for part in ("vision", "llm", "projector")
                                 if any(n.startswith(p + ".") for p in groups[part]
                                        for n in lora_target_names(model, VQALoraConfig(variant="vision_llm")))}


def test_lora_bad_options_and_targets(model):
    with pytest.raises(ConfigError, match="variant must be one of llm, projector, vision_llm"):
        VQALoraConfig(variant="everything")
    with pytest.raises(ConfigError, match="rank must be a whole number"):
        VQALoraConfig(rank=0)
    with pytest.raises(ConfigError, match="matches no linear layer.*q_proj"):
        lora_target_names(model, VQALoraConfig(target_modules=("nonexistent",)))


def test_qlora_without_cuda_says_what_is_missing(model, splits):
    method = _build("vqa_lora", quantization="4bit")
    with pytest.raises(MedrivalError, match="needs a CUDA GPU.*quantization: none"):
        method.fit(model, splits["train"], splits["val"])


# That every method -- these generative ones included -- never reads the test answers or labels, repeats for a
# seed, reloads, and reads training labels exactly when it declares it, is the registry-wide contract of
# tests/test_methods_contract.py, which loops over METHODS.names(); no method list is kept here.


def test_gradient_checkpointing_trains_the_same_weights(model, splits):
    """Recomputing activations changes memory, not the result: same validation losses, same answers."""
    results = []
    for checkpointing in (False, True):
        method = _build("vqa_lora", epochs=1, lr=5e-3, train_batch_size=8, dropout=0.0,
                        grad_checkpointing=checkpointing)
        method.fit(model, splits["train"], splits["val"], seed=0)
        try:
            results.append((method.result.validation_losses, method.predict(splits["test"]).responses))
        finally:
            method.close()
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    assert results[0][1] == results[1][1]
