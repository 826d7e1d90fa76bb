"""Asking a generative model every question of a VQA split: batched generation, plus yes/no option scores.

Each question is asked with its form's prompt and token limit (``medrival.core.prompts``). Yes/no questions are
answered twice over: by generation (the free-text answer that is scored for accuracy) and by the log-likelihood of
"yes" and "no" as the start of the reply, which gives a probability of "yes" per question and so an AUROC for
yes/no VQA, comparable across models whatever wording they generate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrival.core import progress as live_progress
from medrival.core.errors import ConfigError
from medrival.core.types import VQASplit
from medrival.core.prompts import DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT_SET, training_answer, vqa_prompt
from medrival.methods.generation_cache import (
    GenerationCache, active, answer_keys, cached_api_answers, cached_batches, cached_option_scores, image_hashes,
    is_api_model,
)
from medrival.models.prefix_sharing import image_units

YES_NO_OPTIONS = ("yes", "no")
FAILED = "\x00medrival-failed\x00"  # marks a question the model refused (the message follows), in replies and cache


@dataclass
class VQAGenerationConfig:
    """How questions are asked: batch size, answer lengths and whether closed questions get option scores."""

    batch_size: int = field(default=16, metadata={"help": "Questions per generation batch (left-padded)."})
    max_new_tokens_closed: int = field(default=DEFAULT_MAX_NEW_TOKENS["yes_no"],
                                       metadata={"help": "Longest answer generated for a yes/no question."})
    max_new_tokens_choice: int = field(
        default=DEFAULT_MAX_NEW_TOKENS["choice"],
        metadata={"help": "Longest answer generated for a choice or multiple-choice question."})
    max_new_tokens_open: int = field(default=DEFAULT_MAX_NEW_TOKENS["open"],
                                     metadata={"help": "Longest answer generated for an open question."})
    score_closed_options: bool = field(
        default=True, metadata={"help": "Also score 'yes'/'no' by log-likelihood on yes/no questions (gives a "
                                        "yes/no AUROC); costs one extra pass over them."})

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens_closed", "max_new_tokens_choice", "max_new_tokens_open"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}.")
        if not isinstance(self.score_closed_options, bool):
            raise ConfigError(f"score_closed_options must be true or false, got {self.score_closed_options!r}.")


@dataclass
class VQAOutput:
    """Per-question outputs of a VQA method, in the split's question order."""

    responses: list[str]
    yes_probability: np.ndarray  # P("yes") among yes/no on yes/no questions; NaN elsewhere or when not scored
    trainable_parameters: int = 0
    # (question row, message) of questions whose answer could not be obtained (an API that kept failing): their
    # answer is empty, so they score as wrong, and the record lists them.
    failures: list[tuple[int, str]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def question_images(split: VQASplit, rows: np.ndarray | None = None) -> list[np.ndarray]:
    """The image of each question in ``rows`` (all by default), decoding each distinct image once."""
    rows = np.arange(len(split)) if rows is None else np.asarray(rows)
    decoded: dict[int, np.ndarray] = {}
    images = []
    for row in rows:
        index = int(split.image_index[row])
        if index not in decoded:
            decoded[index] = split.images[index] if isinstance(split.images, np.ndarray) \
                else split.images.load(index)
        images.append(decoded[index])
    return images


def question_prompts(split: VQASplit, template_set: str = DEFAULT_PROMPT_SET) -> list[str]:
    """Every question's user turn under its form (choice and multiple choice list their options), worded by the
    prompt set ``template_set`` (``medrival.core.prompts.VQA_TEMPLATE_SETS``)."""
    return [vqa_prompt(q, form, options, template_set)
            for q, form, options in zip(split.questions, split.forms, split.options)]


def training_answers(split: VQASplit) -> list[str]:
    """What a fine-tuned model is taught to reply: the answer, or "B. option text" for multiple choice."""
    return [training_answer(answer, form, options)
            for answer, form, options in zip(split.answers, split.forms, split.options)]


def token_limits(split: VQASplit, config: VQAGenerationConfig) -> list[int]:
    by_form = {"yes_no": config.max_new_tokens_closed, "choice": config.max_new_tokens_choice,
               "multiple_choice": config.max_new_tokens_choice, "open": config.max_new_tokens_open}
    return [by_form[form] for form in split.forms]


def answer_questions(model, split: VQASplit, config: VQAGenerationConfig,
                     template_set: str = DEFAULT_PROMPT_SET, cache: GenerationCache | None = None) -> VQAOutput:
    """Generate an answer to every question and, for yes/no ones, score yes/no; questions are worded by the
    prompt set ``template_set`` (the default set unless a method chose another).

    ``cache`` (``medrival.methods.generation_cache``; the cell's one is ``features.generations``): answers and
    scores already computed for this model state, prompt, image and settings are reused, the others are computed
    in the batches a cold run forms and stored batch by batch as they come, so the output is the same either way."""
    images, prompts = question_images(split), question_prompts(split, template_set)
    responses, failures = _generate_with_failures(model, images, prompts, token_limits(split, config),
                                                  config.batch_size, cache)
    yes = np.full(len(split), np.nan)
    closed = np.flatnonzero(np.asarray(split.forms) == "yes_no")
    # API models return text only: they have no option log-likelihoods, so their closed AUROC stays undefined.
    if config.score_closed_options and closed.size and getattr(model, "supports_option_scores", True):
        scores = cached_option_scores(cache, model, [images[i] for i in closed], [prompts[i] for i in closed],
                                      YES_NO_OPTIONS, config.batch_size)
        yes[closed] = yes_probability(scores)
    return VQAOutput(list(responses), yes, failures=failures)


def generation_batches(images: list, limits: list[int], batch_size: int) -> list[list[int]]:
    """The units ``generate`` works in: the questions on up to ``batch_size`` images at a time (each image's
    prefix filled once), whatever their token limits; one call per unit forms the batches one call over all does."""
    return image_units(image_hashes(images), batch_size)


def _generate_in_batches(model, images: list, prompts: list[str], limits: list[int], batch_size: int,
                         cache: GenerationCache | None = None) -> list[str]:
    """The replies of ``_generate_with_failures``."""
    return _generate_with_failures(model, images, prompts, limits, batch_size, cache)[0]


def _generate_with_failures(model, images: list, prompts: list[str], limits: list[int], batch_size: int,
                            cache: GenerationCache | None = None) -> tuple[list[str], list[tuple[int, str]]]:
    """(replies, failures by question row): ``model.generate`` one batch per call, so a live display can count
    generation batches and each batch's answers are cached as soon as they exist; cached batches are not generated
    again.

    The batches are the ones ``generate`` itself forms, so every answer is what one call over all questions gives.
    API models (they keep ``failures``) get one call over the questions not cached: their failure rows and their
    stop-after-many-failures-in-a-row rule span the whole call; only their successful answers are cached."""
    if is_api_model(model):
        with live_progress.stage("generation batches", 1):
            replies, failures = cached_api_answers(cache, model, images, prompts, limits, batch_size)
            live_progress.advance()
        return replies, failures
    batches = generation_batches(images, limits, batch_size)

    def generate(rows: list[int]) -> list[str]:
        replies = list(model.generate([images[i] for i in rows], [prompts[i] for i in rows],
                                      max_new_tokens=[limits[i] for i in rows], batch_size=batch_size))
        for index, message in getattr(model, "failures", []):  # e.g. a prompt longer than the model's context
            replies[index] = FAILED + message  # cached as such: the same question fails the same way again
        return replies

    with live_progress.stage("generation batches", len(batches)):
        keys = answer_keys(model, images, prompts, limits) if active(cache) else [""] * len(prompts)
        replies = cached_batches(cache, "answer", keys, batches, generate, encode=str, decode=str,
                                 on_batch=live_progress.advance)
    failures = [(row, reply[len(FAILED):]) for row, reply in enumerate(replies) if reply.startswith(FAILED)]
    return ["" if reply.startswith(FAILED) else reply for reply in replies], failures


def yes_probability(log_likelihoods: np.ndarray) -> np.ndarray:
    """P(yes) from N x 2 (yes, no) log-likelihoods: a softmax over the two options."""
    scores = np.asarray(log_likelihoods, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(scores[:, 1] - scores[:, 0]))
