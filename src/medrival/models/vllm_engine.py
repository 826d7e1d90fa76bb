"""A generative model served by vLLM (``engine: vllm``): generation through chat completions, option scoring
through vLLM's prompt log-probabilities, ``concurrency`` requests in flight.

Answers go through the same extraction, scoring and generation cache as a local model's. Greedy decoding is
``temperature: 0``. An option's log-likelihood is that of its tokens as the start of the assistant's reply, as the
local path computes it: the conversation with the reply set to the option is sent with ``continue_final_message``
(the reply left open, as the template writes it) and ``prompt_logprobs: 0`` (each prompt token's own
log-probability), and the option's tokens are those beyond the prompt alone (``usage.prompt_tokens`` of the same
conversation with ``add_generation_prompt``). The response schema is vLLM's (``ChatCompletionResponse`` with
``prompt_logprobs``: one entry per prompt token, None for the first, else ``{token_id: {logprob, rank,
decoded_token}}``); anything else is an error naming the field.

Not run against a real vLLM server here (none can be installed on this project's machines): tested against a
local stub that implements exactly this part of vLLM's API.
"""
from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import numpy as np

from medrival.core.errors import MedrivalError
from medrival.models.generative_inputs import as_images, check_lengths, option_rows, token_limits
from medrival.models.openai_api import image_data_url
from medrival.models.openai_http import ApiError, ChatClient, RetryPolicy, map_concurrently
from medrival.models.prefix_sharing import SharingStats
from medrival.models.preprocessing import check_texts
from medrival.models.vllm_server import VLLMSettings, ensure_server


class VLLMGenerativeModel:
    """A card's generative checkpoint answered by a vLLM server."""

    family = "generative"
    supports_option_scores = True
    supports_training = False
    answers_each_request_alone = True  # per-request failures (e.g. a prompt over the context) span a call

    def __init__(self, card: Any, client: ChatClient, settings: VLLMSettings, *, max_consecutive_failures: int = 20):
        self.card, self.client, self.settings = card, client, settings
        self.max_consecutive_failures = max_consecutive_failures
        self.failures: list[tuple[int, str]] = []
        self.sharing_stats = SharingStats(engine="vllm")
        self.dtype = "vllm"

    def __repr__(self) -> str:
        return f"VLLMGenerativeModel(model={self.client.model!r}, endpoint={self.client.endpoint!r})"

    @property
    def fingerprint(self) -> str:
        """The engine and the served model (not the address: a restarted server on another port serves the same
        weights), so vLLM answers are never taken for a local model's and the other way round."""
        return hashlib.sha256(f"vllm|{self.client.model}".encode()).hexdigest()[:16]

    @property
    def device(self):
        import torch

        return torch.device("cpu")  # nothing runs here

    def to(self, device) -> "VLLMGenerativeModel":
        return self

    def num_parameters(self) -> int:
        return 0

    def trainable_parameters(self) -> int:
        return 0

    # ----------------------------------------------------------------------------------------------- generation
    def generate(self, images, prompts: list[str], *, max_new_tokens: int | list[int] = 16,
                 batch_size: int = 16) -> list[str]:
        """Greedy replies, in input order; a request that fails (after retries) gives "" and a ``failures`` entry
        with the server's message (vLLM names both lengths for a prompt over the context)."""
        images, prompts = as_images(images), check_texts(prompts)
        count = check_lengths(images=images, prompts=prompts)
        limits = token_limits(max_new_tokens, count)

        def ask(index: int, stop: threading.Event) -> str:
            payload = {"messages": [_user_turn(images[index], prompts[index])], "temperature": 0,
                       "max_tokens": limits[index]}
            return reply_text(self.client.request(payload, stop), self.client.endpoint)

        with self._timed(count):
            replies, self.failures = map_concurrently(ask, count, concurrency=self.settings.concurrency,
                                                      max_consecutive_failures=self.max_consecutive_failures)
        return ["" if reply is None else reply for reply in replies]

    # --------------------------------------------------------------------------------------------- option scores
    def score_options(self, images, prompts: list[str], options, *, batch_size: int = 16) -> np.ndarray:
        """N x K float64: log p(option k | image i, prompt i) as the start of the reply, from prompt log-probs."""
        images, prompts = as_images(images), check_texts(prompts)
        count = check_lengths(images=images, prompts=prompts)
        rows = option_rows(list(options), count) if count else []
        width = len(rows[0]) if rows else len(list(options))
        if count == 0:
            return np.zeros((0, width), dtype=np.float64)
        jobs = [(i, None) for i in range(count)] + [(i, k) for i in range(count) for k in range(width)]

        def ask(index: int, stop: threading.Event) -> Any:
            row, option = jobs[index]
            turn = [_user_turn(images[row], prompts[row])]
            if option is None:  # the prompt alone: where the reply starts
                body = self.client.request({"messages": turn, "max_tokens": 1, "temperature": 0}, stop)
                return prompt_tokens(body, self.client.endpoint)
            payload = {"messages": turn + [{"role": "assistant", "content": rows[row][option]}],
                       "continue_final_message": True, "add_generation_prompt": False, "max_tokens": 1,
                       "temperature": 0, "prompt_logprobs": 0}
            return token_logprobs(self.client.request(payload, stop), self.client.endpoint)

        with self._timed(count):
            results, failures = map_concurrently(ask, len(jobs), concurrency=self.settings.concurrency,
                                                 max_consecutive_failures=self.max_consecutive_failures)
        if failures:
            raise MedrivalError(f"option scoring on the vLLM server failed for {len(failures)} request(s); the "
                                f"first: {failures[0][1]}")
        return _option_scores(results[:count], results[count:], count, width, self.client.endpoint)

    def _timed(self, questions: int):
        import contextlib
        import time

        @contextlib.contextmanager
        def timing():
            started = time.perf_counter()
            try:
                yield
            finally:
                self.sharing_stats.seconds += time.perf_counter() - started
                self.sharing_stats.questions += questions
        return timing()


def _user_turn(image, prompt: str) -> dict:
    """One user turn: the image first, then the question (as the local path renders it)."""
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_data_url(image)}},
                                        {"type": "text", "text": prompt}]}


def _schema_error(endpoint: str, field: str, detail: str) -> ApiError:
    # fatal: every request gets the same answer from a server that does not speak vLLM's schema
    return ApiError(f"{endpoint} answered in an unexpected schema: {field} {detail} (expected vLLM's "
                    "OpenAI-compatible chat completion)", status=200, fatal=True)


def reply_text(body: Any, endpoint: str) -> str:
    """``choices[0].message.content`` of a chat completion ("" for null)."""
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise _schema_error(endpoint, "choices[0].message", "is missing") from None
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise _schema_error(endpoint, "choices[0].message.content", f"is a {type(content).__name__}, not text")
    return (content or "").strip()


def prompt_tokens(body: Any, endpoint: str) -> int:
    """``usage.prompt_tokens``: the number of tokens of the rendered prompt."""
    value = body.get("usage", {}).get("prompt_tokens") if isinstance(body, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _schema_error(endpoint, "usage.prompt_tokens", f"is {value!r}, not a positive integer")
    return value


def token_logprobs(body: Any, endpoint: str) -> list[float]:
    """Each prompt token's own log-probability from ``prompt_logprobs`` (the first token has none: NaN)."""
    entries = body.get("prompt_logprobs") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise _schema_error(endpoint, "prompt_logprobs", "is missing or empty (was prompt_logprobs sent?)")
    values = [math.nan]
    for position, entry in enumerate(entries[1:], start=1):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise _schema_error(endpoint, f"prompt_logprobs[{position}]",
                                "is not one {token_id: {logprob}} entry (prompt_logprobs: 0 asks for exactly one)")
        logprob = next(iter(entry.values()))
        value = logprob.get("logprob") if isinstance(logprob, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _schema_error(endpoint, f"prompt_logprobs[{position}].logprob", f"is {value!r}, not a number")
        values.append(float(value))
    return values


def _option_scores(prompt_lengths: list[int], logprobs: list[list[float]], count: int, width: int,
                   endpoint: str) -> np.ndarray:
    scores = np.zeros((count, width), dtype=np.float64)
    for row in range(count):
        for option in range(width):
            values = logprobs[row * width + option]
            start = prompt_lengths[row]
            if len(values) <= start:
                raise MedrivalError(f"{endpoint}: an answer option added no tokens after the prompt ({len(values)} "
                                    f"tokens with it, {start} without); options must be non-empty text.")
            scores[row, option] = float(np.sum(values[start:]))
    return scores


def load_vllm_model(card: Any, settings: VLLMSettings, checkpoint: str) -> VLLMGenerativeModel:
    """The card's model on the vLLM server of ``settings`` (found, or started from its command)."""
    served = ensure_server(settings, settings.served_model or checkpoint)
    client = ChatClient(settings.url, served, api_key_env=settings.api_key_env,
                        timeout_s=settings.request_timeout_s, retry=RetryPolicy())
    return VLLMGenerativeModel(card, client, settings)
