"""engine: vllm against a local stub of vLLM's OpenAI-compatible server (tests/vllm_stub.py, 127.0.0.1 only):
generation through chat completions with bounded concurrency, option scores from prompt log-probabilities, a
server found or started from its command, and clear failures (unreachable server, prompt over the context,
unexpected schema). Not run against a real vLLM server here."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from vllm_stub import MODEL, Stub, reply_for, token_logprob

from medrival.core.errors import MedrivalError
from medrival.models.catalog import get_card
from medrival.models.vllm_engine import load_vllm_model
from medrival.models.vllm_server import VLLMSettings, served_models

IMAGES = [np.full((16, 16, 3), value, np.uint8) for value in (10, 200, 90)]
QUESTIONS = ["is there a fracture?", "which organ is shown?", "where is the lesion?"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stub():
    with Stub(delay_s=0.02) as server:
        yield server


def _model(stub, **settings):
    return load_vllm_model(get_card("demo-specialist-vlm"), VLLMSettings(url=stub.url, **settings), MODEL)


def test_generation_goes_through_chat_completions_with_bounded_concurrency(stub):
    model = _model(stub, concurrency=2)
    questions = QUESTIONS * 3
    answers = model.generate(IMAGES * 3, questions, max_new_tokens=[4, 16, 16] * 3)
    assert answers == [reply_for(q) for q in questions] and model.failures == []
    assert stub.most_in_flight <= 2 and len(stub.requests) == len(questions)
    request = stub.requests[0]
    assert request["model"] == MODEL and request["temperature"] == 0
    image, text = request["messages"][0]["content"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,") and text["type"] == "text"
    assert model.sharing_stats.as_cost()["engine"] == "vllm"


def test_option_scores_are_the_option_tokens_prompt_logprobs(stub):
    model = _model(stub)
    options = ["yes", "no", "the left lung"]
    scores = model.score_options(IMAGES, QUESTIONS, options)
    for row, question in enumerate(QUESTIONS):
        start = 1 + len(question.split()) + 1  # <image>, the question, ASSISTANT:
        for column, option in enumerate(options):
            expected = sum(token_logprob(token, start + t) for t, token in enumerate(option.split()))
            assert scores[row, column] == pytest.approx(expected, abs=1e-12)
    sent = [r for r in stub.requests if r.get("prompt_logprobs") is not None]
    assert len(sent) == len(QUESTIONS) * len(options)
    assert all(r["continue_final_message"] and not r["add_generation_prompt"] and r["prompt_logprobs"] == 0
               for r in sent)


def test_a_prompt_over_the_servers_context_fails_that_question_with_the_lengths(stub):
    model = _model(stub)
    long_question = " ".join(["word"] * 70)
    answers = model.generate(IMAGES[:2], [QUESTIONS[0], long_question], max_new_tokens=8)
    assert answers[0] == reply_for(QUESTIONS[0]) and answers[1] == ""
    assert [row for row, _ in model.failures] == [1]
    assert "maximum context length is 64 tokens" in model.failures[0][1] and "80 tokens" in model.failures[0][1]


def test_an_unreachable_server_names_its_address_and_the_start_command():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(MedrivalError) as caught:
        load_vllm_model(get_card("demo-specialist-vlm"), VLLMSettings(url=url), "llava-hf/llava-1.5-7b-hf")
    message = str(caught.value)
    assert url in message and "vllm serve llava-hf/llava-1.5-7b-hf --host 127.0.0.1 --port" in message


@pytest.mark.parametrize("schema, field", [("no-prompt-logprobs", "prompt_logprobs"),
                                           ("no-choices", "choices[0].message")])
def test_an_unexpected_schema_is_an_error_naming_the_field(schema, field):
    with Stub(schema=schema) as server:
        model = _model(server)
        with pytest.raises(MedrivalError, match=r"unexpected schema: " + field.replace("[", r"\[").replace("]", r"\]")):
            if field == "prompt_logprobs":
                model.score_options(IMAGES[:1], QUESTIONS[:1], ["yes", "no"])
            else:
                model.generate(IMAGES[:1], QUESTIONS[:1])


def test_a_server_is_started_from_its_command_and_stopped(tmp_path):
    from medrival.models import vllm_server

    port = _free_port()
    script = Path(__file__).with_name("vllm_stub.py")
    settings = VLLMSettings(url=f"http://127.0.0.1:{port}/v1", command=f"{sys.executable} {script} --port {port}",
                            start_timeout_s=60)
    model = load_vllm_model(get_card("demo-specialist-vlm"), settings, MODEL)
    assert model.generate(IMAGES[:1], QUESTIONS[:1]) == [reply_for(QUESTIONS[0])]
    process, _ = vllm_server._STARTED.processes[settings.url]
    vllm_server._STARTED.stop_all()
    assert process.poll() is not None
    with pytest.raises(OSError):
        served_models(settings.url, timeout_s=1)


def test_a_study_cell_on_vllm_records_the_engine_and_has_its_own_id(stub, tmp_path):
    from medrival.store import ResultStore
    from medrival.study.runner import plan_cells, run_study
    from medrival.study.spec import cell_id, parse_study

    study = f"""
name: vllm-cell
models: [demo-specialist-vlm]
datasets: [demo-xray-vqa]
methods: [{{name: vqa_zero_shot, config: {{score_closed_options: true}}}}]
model_options:
  demo-specialist-vlm: {{engine: vllm, vllm: {{url: "{stub.url}", served_model: "{MODEL}"}}}}
"""
    spec = parse_study(study)
    run = run_study(spec, tmp_path / "store")
    assert run.failed == []
    record = ResultStore(tmp_path / "store").records()[0]
    assert record.cost["generation"]["engine"] == "vllm" and record.metrics
    local = parse_study(study.split("model_options:")[0])
    assert cell_id(plan_cells(spec)[0]) != cell_id(plan_cells(local)[0])


def test_vllm_settings_are_checked_in_the_study():
    from medrival.core.errors import ConfigError
    from medrival.study.spec import parse_study

    base = "name: x\nmodels: [demo-specialist-vlm]\ndatasets: [demo-xray-vqa]\nmethods: [vqa_zero_shot]\n"
    with pytest.raises(ConfigError, match="engine: vllm"):
        parse_study(base + "model_options: {demo-specialist-vlm: {vllm: {url: 'http://127.0.0.1:9/v1'}}}")
    with pytest.raises(ConfigError, match="concurrency"):
        parse_study(base + "model_options: {demo-specialist-vlm: {engine: vllm, vllm: {concurrency: 0}}}")
