"""The LLM judge for open answers: repeated judgments and their spread, the parsing rule, the prompt, failures.

The judge endpoint is a local stub server (``openai_stub``) on 127.0.0.1.
"""
from __future__ import annotations

import math
import statistics
import subprocess
import sys
import threading

import pytest

from medrival.core.errors import DataError, MedrivalError
from medrival.metrics.llm_judge import (
    JUDGE_PROMPT_VERSION, judge_open_answers, judge_prompt, parse_score, summarise_judgments)
from openai_stub import serve  # noqa: F401 (a fixture)

KEY_ENV = "MEDRIVAL_TEST_JUDGE_KEY"
KEY = "sk-judge-ZEBRA-41c9-never-show-me"
QUESTIONS = ["What organ is shown?", "Where is the lesion?", "What modality is this?"]
REFERENCES = ["liver", "left lower lobe", "CT"]
RESPONSES = ["the liver", "right upper lobe", "computed tomography"]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def judge(url: str, responses=RESPONSES, **options):
    settings = {"model": "stub-judge", "api_key_env": KEY_ENV, "backoff_s": 0.001, "timeout_s": 5, **options}
    return judge_open_answers(QUESTIONS, REFERENCES, responses, base_url=url, **settings)


def scripted(replies: dict[str, list[str]]):
    """A handler giving, for the answer its prompt holds, the next reply of that answer's list."""
    lock, served = threading.Lock(), {answer: 0 for answer in replies}

    def handler(request):
        answer = next(a for a in replies if f"<answer>{a}</answer>" in request.prompt)
        with lock:
            reply = replies[answer][served[answer] % len(replies[answer])]
            served[answer] += 1
        return reply
    return handler


# ----------------------------------------------------------------------------------------------- judgments
def test_repeated_judgments_give_a_mean_and_a_sample_sd(serve, key):
    stub = serve(scripted({"the liver": ["Score: 1", "Score: 0.9", "Score: 0.8"],
                           "right upper lobe": ["Score: 0", "Score: 0.1", "Score: 0"],
                           "computed tomography": ["8/10", "Score: 0.6", "Score: 1.0"]}))
    frame = judge(stub.url, repeats=3, concurrency=4)
    assert list(frame.columns) == ["judge_mean", "judge_sd", "judge_scores", "judge_failures"] and len(frame) == 3
    expected = [[1.0, 0.9, 0.8], [0.0, 0.1, 0.0], [0.8, 0.6, 1.0]]
    for row, scores in enumerate(expected):
        assert sorted(frame.at[row, "judge_scores"]) == pytest.approx(sorted(scores))
        assert frame.at[row, "judge_mean"] == pytest.approx(statistics.fmean(scores))
        assert frame.at[row, "judge_sd"] == pytest.approx(statistics.stdev(scores))
        assert frame.at[row, "judge_failures"] == 0
    assert len(stub.requests) == 9
    for request in stub.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.body["model"] == "stub-judge" and request.body["temperature"] == 0.7
        assert request.body["max_tokens"] > 0 and isinstance(request.content, str)  # text only, no image


def test_one_judgment_each_has_zero_spread(serve, key):
    stub = serve(lambda request: "Score: 0.5")
    frame = judge(stub.url, repeats=1, temperature=0)
    assert list(frame["judge_sd"]) == [0.0] * 3 and list(frame["judge_mean"]) == [0.5] * 3
    assert all(request.body["temperature"] == 0 for request in stub.requests) and len(stub.requests) == 3


def test_the_prompt_holds_question_reference_and_answer(serve, key):
    stub = serve(lambda request: "Score: 1")
    judge(stub.url, repeats=1)
    prompts = sorted(request.prompt for request in stub.requests)
    assert prompts == sorted(judge_prompt(q, r, a) for q, r, a in zip(QUESTIONS, REFERENCES, RESPONSES))
    for question, reference, answer in zip(QUESTIONS, REFERENCES, RESPONSES):
        text = judge_prompt(question, reference, answer)
        assert question in text and reference in text and answer in text and "Score:" in text


def test_the_prompt_version_is_recorded(serve, key):
    stub = serve(lambda request: "Score: 0.75")
    frame = judge(stub.url, repeats=2)
    assert frame.attrs["judge_prompt_version"] == JUDGE_PROMPT_VERSION == "llm-judge-v1"
    assert frame.attrs["judge_model"] == "stub-judge" and frame.attrs["judge_repeats"] == 2
    assert frame.attrs["judge_endpoint"] == f"{stub.url}/chat/completions"
    summary = summarise_judgments(frame)
    assert summary == {"judge_mean": 0.75, "judge_sd_mean": 0.0, "judge_failures": 0, "answers": 3,
                       "unscored": 0, "judge_prompt_version": JUDGE_PROMPT_VERSION}


# ----------------------------------------------------------------------------------------------- failures
def test_an_unparsable_reply_is_a_failure_not_a_zero(serve, key):
    stub = serve(scripted({"the liver": ["I cannot grade this."], "right upper lobe": ["Score: 0", "no idea"],
                           "computed tomography": ["Score: 1"]}))
    frame = judge(stub.url, repeats=2, concurrency=1)
    assert frame.at[0, "judge_scores"] == [] and frame.at[0, "judge_failures"] == 2
    assert math.isnan(frame.at[0, "judge_mean"]) and math.isnan(frame.at[0, "judge_sd"])
    assert frame.at[1, "judge_scores"] == [0.0] and frame.at[1, "judge_failures"] == 1
    assert frame.at[1, "judge_mean"] == 0.0 and math.isnan(frame.at[1, "judge_sd"])  # one score: no spread
    assert frame.at[2, "judge_mean"] == 1.0 and frame.at[2, "judge_sd"] == 0.0
    rows = [row for row, _ in frame.attrs["judge_failure_messages"]]
    assert rows == [0, 0, 1]
    assert all("unparsable judge reply" in message for _, message in frame.attrs["judge_failure_messages"])
    summary = summarise_judgments(frame)
    assert summary["judge_mean"] == 0.5 and summary["judge_failures"] == 3 and summary["unscored"] == 1


def test_a_request_failing_after_its_retries_is_counted(serve, key):
    def handler(request):
        if "<answer>the liver</answer>" in request.prompt:
            return 500, {"error": {"message": f"echo {request.headers['Authorization']}"}}, {}
        return "Score: 1"

    stub = serve(handler)
    frame = judge(stub.url, repeats=2, max_retries=1)
    assert list(frame["judge_failures"]) == [2, 0, 0] and math.isnan(frame.at[0, "judge_mean"])
    assert sum("<answer>the liver</answer>" in r.prompt for r in stub.requests) == 4  # 2 judgments x 2 attempts
    messages = frame.attrs["judge_failure_messages"]
    assert [row for row, _ in messages] == [0, 0]
    assert all("HTTP 500" in m and "gave up after 2 attempts" in m and KEY not in m for _, m in messages)


def test_a_rejected_key_stops_the_judge(serve, key):
    stub = serve(lambda request: (401, {"error": {"message": "invalid key"}}, {}))
    with pytest.raises(MedrivalError, match="HTTP 401") as caught:
        judge(stub.url, repeats=3)
    assert KEY not in str(caught.value)


def test_missing_answers_are_judged_as_empty(serve, key):
    stub = serve(lambda request: "Score: 0")
    frame = judge(stub.url, responses=["liver", None, float("nan")], repeats=1)
    assert list(frame["judge_mean"]) == [0.0] * 3
    assert sum("<answer></answer>" in request.prompt for request in stub.requests) == 2


@pytest.mark.parametrize("options, fragment", [
    ({"responses": RESPONSES[:2]}, "same lengths"),
    ({"responses": ["a", 3, "b"]}, r"responses\[1\] is int"),
    ({"repeats": 0}, "repeats must be a positive integer"),
    ({"temperature": -1}, "temperature must be a number in"),
])
def test_inputs_are_checked_before_anything_is_sent(serve, key, options, fragment):
    stub = serve(lambda request: "Score: 1")
    with pytest.raises(DataError, match=fragment):
        judge(stub.url, **options)
    assert stub.requests == []


def test_a_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MedrivalError, match=f"{KEY_ENV} is not set"):
        judge("http://127.0.0.1:9/v1")


def test_summarise_refuses_other_frames_and_never_guesses_a_version():
    import pandas as pd

    with pytest.raises(DataError, match="judge_sd"):
        summarise_judgments(pd.DataFrame({"judge_mean": [1.0]}))
    frame = pd.DataFrame({"judge_mean": [math.nan], "judge_sd": [math.nan], "judge_scores": [[]],
                          "judge_failures": [3]})
    summary = summarise_judgments(frame)
    assert math.isnan(summary["judge_mean"]) and summary["judge_prompt_version"] is None
    assert summary["unscored"] == 1 and summary["judge_failures"] == 3


# ----------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("reply, score", [
    ("Score: 0.8", 0.8),
    ("score:0.25", 0.25),
    ("**Score:** 1", 1.0),
    ("Score: .5", 0.5),
    ("Score: 1.", 1.0),
    ("The answer names the same organ. Score: 0.9", 0.9),
    ("On a 0-1 scale, my score is 0.4", 0.4),  # the labelled number wins over the first number
    ("8/10", 0.8),
    ("Score: 7 / 10", 0.7),
    ("0.6/1", 0.6),
    ("55/100", 0.55),
    ("0.3", 0.3),
    ("0", 0.0),
])
def test_parse_score_reads_the_documented_forms(reply, score):
    assert parse_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", [
    "garbage", "", "Score: 8", "Score: -0.5", "80%", "3/7", "12/10", "Score: high", "1.5", None,
])
def test_parse_score_gives_none_for_anything_else(reply):
    assert parse_score(reply) is None


def test_the_judge_imports_no_torch():
    code = ("import sys, medrival.metrics, medrival.metrics.llm_judge, medrival.models.openai_http; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
