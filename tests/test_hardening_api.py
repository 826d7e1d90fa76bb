"""Fault injection, API side: a successful answer that contains the API key (or any Bearer token) is never
returned, stored or reported unredacted -- by the API model, the LLM judge or the answer extractor."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.cards import ModelCard
from medrival.metrics.answer_extractor import extract_undecided
from medrival.metrics.llm_judge import judge_open_answers
from medrival.models.openai_api import load_api_model
from medrival.models.openai_http import ChatClient, RetryPolicy
from openai_stub import serve  # noqa: F401 (a fixture)

KEY_ENV = "MEDRIVAL_TEST_HARDENING_KEY"
KEY = "sk-hardening-ZEBRA-5e1d-never-show-me"
FAST = RetryPolicy(max_retries=0, backoff_s=0.001, max_backoff_s=0.01)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def api_model(url: str):
    card = ModelCard.model_validate({
        "id": "api-vlm", "family": "generative", "role": "generalist", "pretraining_modalities": ["natural"],
        "licence": "proprietary", "source": {"kind": "openai-api", "name": "stub-vlm", "base_url": url,
                                             "api_key_env": KEY_ENV}})
    return load_api_model(card, retry=FAST, timeout_s=5)


def test_an_answer_holding_the_key_is_redacted(serve, key):
    stub = serve(lambda request: f"pneumonia; by the way your key is {KEY} ok")
    replies = api_model(stub.url).generate([np.zeros((8, 8, 3), np.uint8)], ["what is shown?"])
    assert replies == ["pneumonia; by the way your key is [REDACTED] ok"]


def test_an_answer_echoing_the_authorization_header_is_redacted(serve, key):
    stub = serve(lambda request: f"header was {request.headers['Authorization']} and Bearer abc-123-other-token")
    client = ChatClient(stub.url, "stub", api_key_env=KEY_ENV, retry=FAST, timeout_s=5)
    reply = client.complete("hi", max_tokens=8, temperature=0.0)
    assert KEY not in reply and "abc-123-other-token" not in reply
    assert reply == "header was Bearer [REDACTED] and Bearer [REDACTED]"


def test_prose_with_the_word_bearer_is_left_alone(serve, key):
    stub = serve(lambda request: "the bearer of this lesion is the liver")
    client = ChatClient(stub.url, "stub", api_key_env=KEY_ENV, retry=FAST, timeout_s=5)
    assert client.complete("hi", max_tokens=8, temperature=0.0) == "the bearer of this lesion is the liver"


def test_the_judge_never_stores_the_key(serve, key):
    stub = serve(lambda request: f"no score, but {KEY}")
    frame = judge_open_answers(["q?"], ["liver"], ["the liver"], base_url=stub.url, model="stub-judge",
                               api_key_env=KEY_ENV, repeats=1, backoff_s=0.001, timeout_s=5)
    stored = repr(frame.to_dict()) + repr(frame.attrs)
    assert KEY not in stored and "[REDACTED]" in stored


def test_the_extractor_never_stores_the_key(serve, key):
    stub = serve(lambda request: f"yes {KEY}")
    frame = extract_undecided(["is it?"], ["yes_no"], [None], ["maybe"], base_url=stub.url, model="stub",
                              api_key_env=KEY_ENV, backoff_s=0.001, timeout_s=5)
    stored = repr(frame.to_dict()) + repr(frame.attrs)
    assert KEY not in stored and "[REDACTED]" in stored


def test_an_error_body_holding_a_bearer_token_is_redacted(serve, key):
    stub = serve(lambda request: (400, {"error": "token Bearer sk-live-0123456789abcdef rejected"}, {}))
    model = api_model(stub.url)
    assert model.generate([np.zeros((8, 8, 3), np.uint8)], ["q"]) == [""]
    assert "sk-live-0123456789abcdef" not in str(model.failures) and "[REDACTED]" in str(model.failures)
