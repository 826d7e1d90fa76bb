"""The OpenAI-compatible API model: requests it sends, retries, per-question failures, the key's secrecy, cards.

Every request goes to a local stub server (``openai_stub``) on 127.0.0.1; conftest still blocks other addresses.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from medrival.core.cards import ModelCard, ModelSource
from medrival.core.errors import MedrivalError
from medrival.models.factory import create_model
from medrival.models.openai_api import ApiGenerativeModel, load_api_model
from medrival.models.openai_http import ApiError, RetryPolicy
from openai_stub import serve  # noqa: F401 (a fixture)

KEY_ENV = "MEDRIVAL_TEST_API_KEY"
KEY = "sk-test-ZEBRA-7f3a9c41-never-show-me"  # distinctive, so any leak is found by a plain search
FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.01)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def api_card(base_url: str, **source) -> ModelCard:
    return ModelCard.model_validate({
        "id": "api-vlm", "family": "generative", "role": "generalist", "pretraining_modalities": ["natural"],
        "licence": "proprietary", "source": {"kind": "openai-api", "name": "stub-vlm", "base_url": base_url,
                                             "api_key_env": KEY_ENV, **source}})


def api_model(base_url: str, retry: RetryPolicy = FAST, **options) -> ApiGenerativeModel:
    return load_api_model(api_card(base_url), retry=retry, timeout_s=5, **options)


def images(count: int) -> list[np.ndarray]:
    """Images of distinct sizes (height 20 + i, width 30 + 2i), so each request's image can be told apart."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (20 + i, 30 + 2 * i, 3), dtype=np.uint8) for i in range(count)]


def question_index(request) -> int:
    return int(request.prompt.split()[-1])


# ----------------------------------------------------------------------------------------------- requests
def test_generate_sends_openai_chat_requests_and_returns_replies_in_input_order(serve, key):
    def handler(request):
        time.sleep(0.05 * (5 - question_index(request)))  # later questions answer first
        return f"  answer {question_index(request)}\n"

    stub = serve(handler)
    model = api_model(stub.url)
    limits = [4, 8, 16, 8, 4]
    replies = model.generate(images(5), [f"what is shown in image {i}" for i in range(5)],
                             max_new_tokens=limits, batch_size=5)
    assert replies == [f"answer {i}" for i in range(5)] and model.failures == []
    assert len(stub.requests) == 5
    for request in stub.requests:
        index = question_index(request)
        assert request.path == "/v1/chat/completions"
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["Content-Type"] == "application/json"
        body = request.body
        assert body["model"] == "stub-vlm" and body["temperature"] == 0 and body["max_tokens"] == limits[index]
        assert body["messages"][0]["role"] == "user" and len(body["messages"]) == 1
        assert [part["type"] for part in request.content] == ["text", "image_url"]
        image = request.image()
        assert image.size == (30 + 2 * index, 20 + index) and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), images(5)[index])  # PNG: the pixels sent are the pixels given


def test_generate_runs_batch_size_requests_at_once(serve, key):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def handler(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.15)
        with lock:
            in_flight[0] -= 1
        return "yes"

    stub = serve(handler)
    replies = api_model(stub.url).generate(images(7), [f"q {i}" for i in range(7)], batch_size=3)
    assert replies == ["yes"] * 7 and len(stub.requests) == 7
    assert peak[0] == 3


def test_generate_with_no_questions_sends_nothing(serve, key):
    stub = serve(lambda request: "x")
    assert api_model(stub.url).generate([], []) == [] and stub.requests == []


def test_generate_checks_its_inputs_before_sending(serve, key):
    stub = serve(lambda request: "x")
    model = api_model(stub.url)
    with pytest.raises(MedrivalError, match="same lengths"):
        model.generate(images(2), ["only one prompt"])
    with pytest.raises(MedrivalError, match="max_new_tokens"):
        model.generate(images(2), ["a", "b"], max_new_tokens=[1])
    assert stub.requests == []


# ----------------------------------------------------------------------------------------------- failures
def test_a_500_is_retried_and_then_succeeds(serve, key):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return 500, {"error": {"message": "overloaded"}}, {}
        if len(calls) == 2:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        return "fine"

    stub = serve(handler)
    model = api_model(stub.url)
    assert model.generate(images(1), ["q 0"], batch_size=1) == ["fine"]
    assert model.failures == [] and len(stub.requests) == 3


def test_a_question_failing_after_its_retries_gets_an_empty_answer_and_a_failure(serve, key):
    def handler(request):
        if question_index(request) == 1:
            return 503, {"error": {"message": "model busy"}}, {}
        return f"answer {question_index(request)}"

    stub = serve(handler)
    model = api_model(stub.url)
    replies = model.generate(images(3), [f"q {i}" for i in range(3)], batch_size=2)
    assert replies == ["answer 0", "", "answer 2"]
    assert [index for index, _ in model.failures] == [1]
    message = model.failures[0][1]
    assert f"{stub.url}/chat/completions answered HTTP 503" in message and "model busy" in message
    assert "gave up after 3 attempts" in message
    assert sum(question_index(r) == 1 for r in stub.requests) == 3  # first try + FAST's 2 retries
    # the next call starts a fresh failure list
    assert model.generate(images(1), ["q 0"]) == ["answer 0"] and model.failures == []


def test_a_400_for_one_question_is_not_retried(serve, key):
    stub = serve(lambda request: (400, {"error": {"message": "image too large"}}, {}))
    model = api_model(stub.url)
    assert model.generate(images(1), ["q 0"]) == [""]
    assert "HTTP 400" in model.failures[0][1] and len(stub.requests) == 1


def test_an_unreachable_endpoint_is_retried_then_recorded(key):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = api_model(f"http://127.0.0.1:{port}/v1", max_consecutive_failures=None)
    assert model.generate(images(2), ["q 0", "q 1"]) == ["", ""]
    assert len(model.failures) == 2
    assert all("could not reach" in message and "gave up after 3 attempts" in message
               for _, message in model.failures)


def test_many_failures_in_a_row_stop_the_run(serve, key):
    stub = serve(lambda request: (502, "bad gateway", {}))
    model = api_model(stub.url, retry=RetryPolicy(max_retries=0), max_consecutive_failures=3)
    with pytest.raises(MedrivalError, match="stopped after 3 requests in a row failed") as caught:
        model.generate(images(30), [f"q {i}" for i in range(30)], batch_size=1)
    assert "HTTP 502" in str(caught.value)
    assert len(stub.requests) < 30  # the queued questions were not sent


def test_a_rejected_key_stops_at_once_and_never_shows_the_key(serve, key):
    # A server that echoes the header back: the key must still not reach the message.
    stub = serve(lambda request: (401, {"error": {"message": f"bad key {request.headers['Authorization']}"}}, {}))
    model = api_model(stub.url)
    with pytest.raises(ApiError) as caught:
        model.generate(images(4), [f"q {i}" for i in range(4)], batch_size=1)
    message = str(caught.value)
    assert caught.value.status == 401 and caught.value.fatal
    assert "HTTP 401" in message and stub.url in message and "[REDACTED]" in message
    assert KEY not in message
    # Not retried; the queued questions are cancelled (the one worker may have taken the next one already).
    assert len(stub.requests) <= 2


def test_a_redirect_is_refused_so_the_key_does_not_travel(serve, key):
    other = serve(lambda request: "should never be asked")
    stub = serve(lambda request: (307, "", {"Location": f"{other.url}/chat/completions"}))
    with pytest.raises(ApiError, match="HTTP 307.*redirects are not followed"):
        api_model(stub.url).generate(images(1), ["q 0"])
    assert other.requests == []


# ----------------------------------------------------------------------------------------------- the key
def test_a_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MedrivalError, match=f"{KEY_ENV} is not set") as caught:
        create_model(api_card("http://127.0.0.1:9/v1"))
    assert "'api-vlm'" in str(caught.value)
    monkeypatch.setenv(KEY_ENV, "   ")
    with pytest.raises(MedrivalError, match=f"{KEY_ENV} is not set or is empty"):
        create_model(api_card("http://127.0.0.1:9/v1"))


def test_the_key_is_in_no_repr_fingerprint_message_or_log(serve, key, caplog):
    stub = serve(lambda request: (500, {"echo": request.headers["Authorization"]}, {}))
    model = api_model(stub.url, max_consecutive_failures=None)
    with caplog.at_level(logging.DEBUG, logger="medrival"):
        assert model.generate(images(1), ["q 0"]) == [""]
    texts = [repr(model), repr(model.client), str(vars(model)), str(vars(model.client)), model.fingerprint,
             str(model.failures), caplog.text]
    assert "retrying" in caplog.text and "[REDACTED]" in str(model.failures)
    for text in texts:
        assert KEY not in text and "ZEBRA" not in text


def test_the_key_is_read_per_request_not_kept(serve, monkeypatch):
    stub = serve(lambda request: request.headers["Authorization"])
    monkeypatch.setenv(KEY_ENV, "first-key")
    model = api_model(stub.url)
    monkeypatch.setenv(KEY_ENV, "rotated-key")
    assert model.generate(images(1), ["q 0"]) == ["Bearer [REDACTED]"]  # an echoed key is never returned
    assert stub.requests[-1].headers["Authorization"] == "Bearer rotated-key"


# ----------------------------------------------------------------------------------------------- the protocol
def test_the_api_model_serves_the_generative_surface_it_can(serve, key):
    torch = pytest.importorskip("torch")
    model = create_model(api_card(serve(lambda request: "x").url))
    assert isinstance(model, ApiGenerativeModel) and model.card.id == "api-vlm"
    assert model.family == "generative" and model.supports_option_scores is False
    assert model.supports_training is False
    assert model.device == torch.device("cpu") and model.to("cuda") is model
    assert model.num_parameters() == 0 and model.trainable_parameters() == 0
    with pytest.raises(MedrivalError, match="text only"):
        model.score_options(images(1), ["q"], ["yes", "no"])


def test_fingerprint_is_endpoint_and_model_name(key):
    first = api_model("http://127.0.0.1:9/v1").fingerprint
    assert len(first) == 16 and int(first, 16) >= 0
    assert api_model("http://127.0.0.1:9/v1/").fingerprint == first  # a trailing slash is the same endpoint
    assert api_model("http://127.0.0.1:10/v1").fingerprint != first
    other_name = load_api_model(api_card("http://127.0.0.1:9/v1").model_copy(update={
        "source": ModelSource(kind="openai-api", name="other", base_url="http://127.0.0.1:9/v1",
                              api_key_env=KEY_ENV)}), retry=FAST)
    assert other_name.fingerprint != first


def test_create_model_refuses_a_weights_folder_for_an_api_card(key, tmp_path):
    with pytest.raises(MedrivalError, match="served by an API .* has no local weights"):
        create_model(api_card("http://127.0.0.1:9/v1"), weights=tmp_path)


# ----------------------------------------------------------------------------------------------- cards
def test_an_api_card_validates_with_the_default_key_variable():
    card = ModelCard.model_validate({
        "id": "gpt", "family": "generative", "role": "generalist", "pretraining_modalities": ["natural"],
        "licence": "proprietary", "source": {"kind": "openai-api", "name": "gpt-4o-mini",
                                             "base_url": "https://api.openai.com/v1/"}})
    assert card.source.api_key_env == "OPENAI_API_KEY" and card.source.base_url == "https://api.openai.com/v1"
    assert card.architecture is None and card.served_by == "openai-api"
    assert ModelCard.model_validate(card.model_dump()) == card


@pytest.mark.parametrize("source, fragment", [
    ({"kind": "openai-api", "name": "m"}, "source.base_url (the endpoint"),
    ({"kind": "openai-api", "name": "m", "base_url": "ftp://host/v1"}, "must be an http(s) address"),
    ({"kind": "openai-api", "name": "m", "base_url": "http://h/v1", "revision": "abc"},
     "do not apply to kind openai-api"),
    ({"kind": "openai-api", "name": " ", "base_url": "http://h/v1"}, "the API's model name"),
    ({"kind": "transformers", "name": "a/b", "base_url": "http://h/v1"}, "apply to kind openai-api only"),
    ({"kind": "demo", "name": "x", "api_key_env": "OPENAI_API_KEY"}, "apply to kind openai-api only"),
])
def test_api_source_fields_fit_the_kind(source, fragment):
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ModelSource.model_validate(source)


@pytest.mark.parametrize("source", [
    {"kind": "openai-api", "name": "m", "base_url": "http://h/v1", "api_key_env": KEY},
    {"kind": "openai-api", "name": "m", "base_url": "http://h/v1", "api_key_env": "abcdef0123456789ZEBRA"},
    {"kind": "openai-api", "name": "m", "base_url": f"https://user:{KEY}@h/v1"},
    {"kind": "openai-api", "name": "m", "base_url": f"https://h/v1?api-key={KEY}"},
    {"kind": "openai-api", "name": "m", "base_url": KEY},  # the key in the wrong field
])
def test_a_key_pasted_into_a_card_is_refused_without_being_echoed(source):
    card = {"id": "c", "family": "generative", "role": "generalist", "pretraining_modalities": ["natural"],
            "licence": "x", "source": source}
    with pytest.raises(ValidationError) as caught:
        ModelCard.model_validate(card)
    message = str(caught.value)
    assert "not shown" in message and "ZEBRA" not in message


def test_an_api_card_must_be_generative():
    with pytest.raises(ValidationError, match="serves generative .* models only"):
        ModelCard.model_validate({
            "id": "c", "family": "contrastive", "role": "generalist", "pretraining_modalities": ["natural"],
            "licence": "x", "source": {"kind": "openai-api", "name": "m", "base_url": "http://h/v1"}})


# ----------------------------------------------------------------------------------------------- the guard
def test_the_network_guard_still_blocks_other_addresses():
    with pytest.raises(Exception, match="must not touch the network"):
        socket.create_connection(("10.255.255.1", 80), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        with pytest.raises(Exception, match="must not touch the network"):
            sock.connect(("10.255.255.1", 80))
    with pytest.raises(Exception, match="must not touch the network"):
        socket.create_connection(("example.com", 80), timeout=1)


def test_a_key_with_line_breaks_is_refused_without_being_shown(monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"{KEY}\nX-Injected: 1")
    with pytest.raises(MedrivalError, match=f"{KEY_ENV} is not a plain API key") as caught:
        create_model(api_card("http://127.0.0.1:9/v1"))
    assert "ZEBRA" not in str(caught.value)


def test_off_the_shelf_vqa_through_an_api_records_failed_questions(serve, key):
    """vqa_zero_shot on an API model: answers scored, no option scores (no AUROC), a question whose request kept
    failing is an empty answer scored wrong and named in the stored frame; LoRA and option scoring are refused."""
    from medrival.data.catalog import load_dataset
    from medrival.methods import METHODS
    from medrival.study.vqa_cell import score_vqa, vqa_metrics

    split = load_dataset("demo-xray-vqa", "test", n=3, size=32)
    broken = split.questions[1]

    def handler(request):
        if broken in request.prompt:
            return 500, {"error": {"message": "overloaded"}}, {}
        return "Yes." if "answer yes or no" in request.prompt else "pneumonia"

    stub = serve(handler)
    model = api_model(stub.url)
    spec = METHODS.get("vqa_zero_shot")
    method = spec.build(spec.make_config({"batch_size": 4}))
    method.fit(model, split, split)
    frame = score_vqa(split, method.predict(split))
    failed = frame["question"] == broken
    assert failed.any() and frame.loc[failed, "response"].eq("").all()
    assert frame.loc[failed, "failure"].str.contains("500").all() and frame.loc[~failed, "failure"].isna().all()
    assert frame["prob_yes"].isna().all() and "yes_no_auroc" not in vqa_metrics(frame)
    yes_no = frame[(frame["scored_as"] == "yes_no") & ~failed]
    assert (yes_no["closed_accuracy"] == (yes_no["answer"] == "yes")).all()
    for name in ("vqa_lora", "option_zero_shot"):
        other = METHODS.get(name)
        with pytest.raises(MedrivalError, match="served by an API"):
            other.build(other.make_config({})).fit(model, split, split)
