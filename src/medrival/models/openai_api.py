"""Generative models served by an OpenAI-compatible HTTP API, behind the generative protocol where it applies.

A card with ``source.kind: openai-api`` names the API's model (``source.name``), the endpoint (``source.base_url``,
e.g. ``https://api.openai.com/v1`` or a local vLLM server's ``http://localhost:8000/v1``) and the environment
variable that holds the key (``source.api_key_env``, default ``OPENAI_API_KEY``).

``generate`` sends one chat request per question: the user message holds the prompt and the image as a base64 PNG
data URL, decoded greedily (``temperature: 0``) with ``max_tokens`` the question's token limit. Questions go out
``batch_size`` at a time on a thread pool and come back in input order.

Failures are per question, not per run: a question whose request still fails after its retries gets the empty
answer "" (which scores as wrong, as a model that said nothing would) and an ``(index, message)`` entry in
``failures``, so a study records which samples failed instead of losing every answer. A run stops with an error
only when retrying cannot help: a rejected key, a wrong URL or model name, or many failures in a row (see
``medrival.models.openai_http``).

API models return text only: ``supports_option_scores`` is False (no option log-likelihoods, so no closed-question
AUROC) and ``supports_training`` is False (no weights to fine-tune).
"""
from __future__ import annotations

import base64
import hashlib
import io
import threading
from typing import Any, Optional

from medrival.core.errors import MedrivalError
from medrival.models.generative_inputs import as_images, check_lengths, token_limits
from medrival.models.openai_http import ChatClient, RetryPolicy, map_concurrently
from medrival.models.preprocessing import check_texts

__all__ = ["ApiGenerativeModel", "image_data_url", "load_api_model"]


def image_data_url(image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (PNG: lossless, so the API sees the pixels we have)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ApiGenerativeModel:
    """A generative model behind an OpenAI-compatible chat endpoint (no local weights, text answers only)."""

    family = "generative"
    supports_option_scores = False
    supports_training = False
    answers_each_request_alone = True  # failures span a whole call: the method asks once over what is not cached

    def __init__(self, card: Any, client: ChatClient, *, max_consecutive_failures: Optional[int] = 20):
        self.card = card
        self.client = client
        self.max_consecutive_failures = max_consecutive_failures
        self.failures: list[tuple[int, str]] = []  # of the latest generate call: (question index, message)

    def __repr__(self) -> str:
        card = self.card.id if self.card is not None else None
        return f"ApiGenerativeModel(card={card!r}, endpoint={self.client.endpoint!r}, model={self.client.model!r})"

    # ----------------------------------------------------------------------------------------- identity, device
    @property
    def fingerprint(self) -> str:
        """Endpoint and model name (never the key): cached answers are reused only for the same served model."""
        text = f"openai-api|{self.client.endpoint}|{self.client.model}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def device(self):
        import torch  # lazily: the rest of this module needs no torch

        return torch.device("cpu")  # nothing runs here; callers may still move their own tensors to it

    def to(self, device) -> "ApiGenerativeModel":
        return self  # the model runs on the server

    def num_parameters(self) -> int:
        return 0  # unknown for a hosted model; 0 says "none here", as a card's parameters_b may say the real size

    def trainable_parameters(self) -> int:
        return 0

    # ------------------------------------------------------------------------------------------------ inference
    def generate(self, images, prompts: list[str], *, max_new_tokens: int | list[int] = 16,
                 batch_size: int = 16) -> list[str]:
        """The API's replies to ``prompts[i]`` about ``images[i]``, in input order; ``batch_size`` requests at once.

        A question whose request failed after its retries gets "" and an entry in ``self.failures``.
        """
        images, prompts = as_images(images), check_texts(prompts)
        count = check_lengths(images=images, prompts=prompts)
        limits = token_limits(max_new_tokens, count)

        def ask(index: int, stop: threading.Event) -> str:
            # The image is encoded in the worker: only the requests in flight hold their base64 copy.
            content = [{"type": "text", "text": prompts[index]},
                       {"type": "image_url", "image_url": {"url": image_data_url(images[index])}}]
            return self.client.complete(content, max_tokens=limits[index], temperature=0, stop=stop)

        self.failures = []
        replies, failures = map_concurrently(ask, count, concurrency=batch_size,
                                             max_consecutive_failures=self.max_consecutive_failures)
        self.failures = failures
        return ["" if reply is None else reply for reply in replies]

    def score_options(self, images, prompts: list[str], options, *, batch_size: int = 16):
        """Not available: a chat API returns text, not the log-likelihood of given answers."""
        name = self.card.id if self.card is not None else "this API model"
        raise MedrivalError(f"{name} is served by an API that returns text only, so it cannot score answer options "
                            "(check `supports_option_scores` first); use generate() and score the text.")


def load_api_model(card: Any, *, timeout_s: float = 60.0, retry: RetryPolicy = RetryPolicy(),
                   max_consecutive_failures: Optional[int] = 20) -> ApiGenerativeModel:
    """The API model a card of source kind ``openai-api`` describes; fails now when its key variable is unset."""
    source = card.source
    if source.kind != "openai-api":
        raise MedrivalError(f"Model {card.id!r} has source kind {source.kind!r}; load_api_model serves kind "
                            "openai-api only.")
    try:
        client = ChatClient(source.base_url, source.name, api_key_env=source.api_key_env, timeout_s=timeout_s,
                            retry=retry)
    except MedrivalError as error:
        raise MedrivalError(f"Model {card.id!r}: {error}") from None
    return ApiGenerativeModel(card, client, max_consecutive_failures=max_consecutive_failures)
