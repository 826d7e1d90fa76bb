"""The answer extractor for closed VQA answers the rules leave undecided: the prompt, the strict parsing rule,
requests and failures against a local stub server (``openai_stub``, 127.0.0.1), and a study's VQA cell using it
(only undecided items sent, decided_by "extractor", failures recorded, the cell id, no key in the record)."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError, MedrivalError
from medrival.metrics.answer_extractor import (
    EXTRACTOR_PROMPT_VERSION, extract_undecided, extractor_prompt, parse_decision)
from openai_stub import serve  # noqa: F401 (a fixture)

KEY_ENV = "MEDRIVAL_TEST_EXTRACTOR_KEY"
KEY = "sk-extract-OKAPI-77d1-never-show-me"
MC = ("Pneumothorax", "Effusion", "Normal")
SIDES = ("left", "right kidney")


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def scripted(replies: dict[str, object]):
    """A handler answering by the first key of ``replies`` found in the prompt's response; counts per key."""
    lock, served = threading.Lock(), {text: 0 for text in replies}

    def handler(request):
        text = next(t for t in replies if f"<response>{t}</response>" in request.prompt)
        with lock:
            served[text] += 1
        return replies[text]
    handler.served = served
    return handler


# ----------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("reply, form, options, decision", [
    ("yes", "yes_no", None, "yes"),
    ("No.", "yes_no", None, "no"),
    ("**YES**", "yes_no", None, "yes"),
    ("  `no`  ", "yes_no", None, "no"),
    ("right kidney", "choice", SIDES, "right kidney"),
    ("Right Kidney.", "choice", SIDES, "right kidney"),
    ('"left"', "choice", SIDES, "left"),
    ("B", "multiple_choice", MC, "B"),
    ("(c)", "multiple_choice", MC, "C"),
    ("B. Effusion", "multiple_choice", MC, "B"),
    ("Effusion", "multiple_choice", MC, "B"),
    ("**A**", "multiple_choice", MC, "A"),
])
def test_parse_decision_reads_one_option_or_letter(reply, form, options, decision):
    assert parse_decision(reply, form, options) == decision


@pytest.mark.parametrize("reply, form, options", [
    ("undecided", "yes_no", None), ("Undecided.", "multiple_choice", MC), ("UNDECIDED", "choice", SIDES),
    ("Yes, there is an effusion.", "yes_no", None),  # a sentence, even one that starts with the answer
    ("yes or no", "yes_no", None), ("maybe", "yes_no", None), ("", "yes_no", None), (None, "yes_no", None),
    ("right", "choice", SIDES),  # not an option as written
    ("left or right kidney", "choice", SIDES), ("The answer is left.", "choice", SIDES),
    ("D", "multiple_choice", MC),  # a letter the item does not have
    ("B. Normal", "multiple_choice", MC),  # a letter and another option's text
    ("The answer is B", "multiple_choice", MC), ("B or C", "multiple_choice", MC), ("Answer: B", "multiple_choice", MC),
    ("garbage", "multiple_choice", MC),
])
def test_parse_decision_leaves_anything_else_undecided(reply, form, options):
    assert parse_decision(reply, form, options) is None


def test_the_prompt_shows_question_options_and_response():
    mc = extractor_prompt("Which finding is shown?", "multiple_choice", MC, "Fluid in the recess.")
    assert "<question>Which finding is shown?</question>" in mc and "<response>Fluid in the recess.</response>" in mc
    assert "A. Pneumothorax\nB. Effusion\nC. Normal" in mc and "letter" in mc and "undecided" in mc
    yes_no = extractor_prompt("Is there an effusion?", "yes_no", None, "Angles are sharp.")
    assert "<options>\nyes\nno\n</options>" in yes_no and "undecided" in yes_no
    choice = extractor_prompt("Is it in the left or right kidney?", "choice", SIDES, "The right one.")
    assert "- left\n- right kidney" in choice and "exactly as written" in choice
    with pytest.raises(DataError, match="not 'open'"):
        extractor_prompt("What organ?", "open", None, "liver")


# ----------------------------------------------------------------------------------------------- requests
def ask(url: str, items, **options):
    questions, forms, option_sets, responses = zip(*items) if items else ((), (), (), ())
    settings = {"model": "stub-extractor", "api_key_env": KEY_ENV, "backoff_s": 0.001, "timeout_s": 5, **options}
    return extract_undecided(questions, forms, option_sets, responses, base_url=url, **settings)


ITEMS = [("Is there an effusion?", "yes_no", None, "Angles are sharp."),
         ("Which finding is shown?", "multiple_choice", MC, "Fluid in the recess."),
         ("Is it in the left or right kidney?", "choice", SIDES, "The one on the right.")]


def test_each_item_is_asked_once_at_temperature_zero(serve, key):
    handler = scripted({"Angles are sharp.": "no", "Fluid in the recess.": "B",
                        "The one on the right.": "I'd say the right kidney"})
    stub = serve(handler)
    frame = ask(stub.url, ITEMS)
    assert list(frame["extractor_decision"]) == ["no", "B", "I'd say the right kidney"]
    assert list(frame["extractor_answer"]) == ["no", "B", None]  # the third reply is not an option as written
    assert not frame["extractor_failed"].any() and len(stub.requests) == 3
    assert handler.served == {"Angles are sharp.": 1, "Fluid in the recess.": 1, "The one on the right.": 1}
    for request in stub.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}" and request.body["temperature"] == 0
        assert request.body["model"] == "stub-extractor" and isinstance(request.content, str)  # text only
    assert frame.attrs["extractor_prompt_version"] == EXTRACTOR_PROMPT_VERSION == "answer-extractor-v1"
    assert frame.attrs["extractor_model"] == "stub-extractor"
    assert frame.attrs["extractor_endpoint"] == f"{stub.url}/chat/completions"
    assert sorted(r.prompt for r in stub.requests) == sorted(extractor_prompt(*item) for item in ITEMS)


def test_a_request_failing_after_its_retries_is_recorded_and_the_rest_go_on(serve, key):
    def handler(request):
        if "<response>Angles are sharp.</response>" in request.prompt:
            return 500, {"error": {"message": f"echo {request.headers['Authorization']}"}}, {}
        return "B" if "Fluid" in request.prompt else "right kidney"

    stub = serve(handler)
    frame = ask(stub.url, ITEMS, max_retries=1)
    assert list(frame["extractor_failed"]) == [True, False, False]
    assert frame.at[0, "extractor_decision"] is None and frame.at[0, "extractor_answer"] is None
    assert list(frame["extractor_answer"][1:]) == ["B", "right kidney"]
    assert sum("Angles are sharp." in r.prompt for r in stub.requests) == 2  # 1 try + 1 retry
    [(row, message)] = frame.attrs["extractor_failure_messages"]
    assert row == 0 and "HTTP 500" in message and "gave up after 2 attempts" in message and KEY not in message


def test_a_dead_endpoint_costs_a_few_requests_not_the_run(serve, key):
    stub = serve(lambda request: (503, {"error": {"message": "down"}}, {}))
    items = [(f"Is there finding {i}?", "yes_no", None, f"Text {i}.") for i in range(8)]
    frame = ask(stub.url, items, max_retries=0, concurrency=1, max_consecutive_failures=3)
    assert frame["extractor_failed"].all() and frame["extractor_answer"].isna().all()
    assert len(stub.requests) == 3  # the rest were not sent
    messages = [message for _, message in frame.attrs["extractor_failure_messages"]]
    assert len(messages) == 8 and sum("not sent" in message for message in messages) == 5


def test_a_rejected_key_stops_the_extractor(serve, key):
    stub = serve(lambda request: (401, {"error": {"message": "invalid key"}}, {}))
    with pytest.raises(MedrivalError, match="HTTP 401") as caught:
        ask(stub.url, ITEMS)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("items, fragment", [
    ([("What organ?", "open", None, "liver")], "not 'open'"),
    ([("Which?", "choice", None, "left")], "needs its options"),
    ([("Which?", "multiple_choice", (), "B")], "needs its options"),
])
def test_items_are_checked_before_anything_is_sent(serve, key, items, fragment):
    stub = serve(lambda request: "yes")
    with pytest.raises(DataError, match=fragment):
        ask(stub.url, ITEMS + items)
    assert stub.requests == []


def test_lengths_must_agree(key):
    with pytest.raises(DataError, match="same lengths"):
        extract_undecided(["q"], ["yes_no"], [None, None], ["a"], base_url="http://127.0.0.1:9/v1", model="m",
                          api_key_env=KEY_ENV)


def test_a_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MedrivalError, match=f"{KEY_ENV} is not set"):
        ask("http://127.0.0.1:9/v1", ITEMS)


def test_the_extractor_imports_no_torch():
    code = "import sys, medrival.metrics.answer_extractor; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# ----------------------------------------------------------------------------------------------- study specs
STUDY = ("name: x\nmodels: [demo-generalist-vlm]\ndatasets: [demo-xray-vqa]\n"
         "methods: [{name: vqa_zero_shot, config: {batch_size: 8}}]\n")


def extractor_yaml(url: str, model: str = "extractor-1", key_env: str = KEY_ENV) -> str:
    return f"answer_extractor: {{base_url: '{url}', model: {model}, api_key_env: {key_env}}}\n"


@pytest.mark.parametrize("field, value, expected", [
    ("base_url", "https://user:secret@host/v1", "base_url"),
    ("base_url", "ftp://host/v1", "base_url"),
    ("api_key_env", "sk-pasted-key", "api_key_env"),
    ("model", "", "model"),
    ("repeats", 3, "repeats"),  # a judge's setting, not the extractor's
])
def test_extractor_settings_are_checked_like_the_judges(field, value, expected):
    from medrival.study.spec import parse_study

    settings = {"base_url": "http://127.0.0.1:1/v1", "model": "extractor", field: value}
    with pytest.raises(ConfigError, match=expected) as error:
        parse_study(STUDY + f"answer_extractor: {settings}\n".replace("'", '"'))
    assert "secret" not in str(error.value) and "sk-pasted-key" not in str(error.value)


def test_the_extractor_changes_the_cell_id_and_only_of_vqa_cells():
    from medrival.study.runner import plan_cells
    from medrival.study.spec import cell_id, parse_study

    mixed = STUDY.replace("[demo-xray-vqa]", "[demo-xray, demo-xray-vqa]").replace(
        "methods: [", "methods: [option_zero_shot, ")
    plain = plan_cells(parse_study(mixed + "unsupported: skip\n"))
    with_one = plan_cells(parse_study(mixed + "unsupported: skip\n" + extractor_yaml("http://127.0.0.1:1/v1")))
    with_other = plan_cells(parse_study(mixed + "unsupported: skip\n"
                                        + extractor_yaml("http://127.0.0.1:1/v1", model="extractor-2")))
    ids = {name: {c.dataset: cell_id(c) for c in cells}
           for name, cells in (("plain", plain), ("one", with_one), ("other", with_other))}
    assert ids["plain"]["demo-xray"] == ids["one"]["demo-xray"] == ids["other"]["demo-xray"]
    assert len({ids[name]["demo-xray-vqa"] for name in ids}) == 3
    vqa = next(c for c in with_one if c.dataset == "demo-xray-vqa")
    assert dict(vqa.extractor) == {"base_url": "http://127.0.0.1:1/v1", "model": "extractor-1",
                                   "api_key_env": KEY_ENV, "prompt_version": EXTRACTOR_PROMPT_VERSION}
    assert all(c.extractor is None for c in plain)


# ----------------------------------------------------------------------------------------------- a VQA cell
# item: (question, form, options, reference, response). The rules decide 0, leave 1-4 undecided, score 5 as
# open; 6 has no response (undecided, but nothing to send).
CELL_ITEMS = [
    ("Is there a pneumothorax?", "yes_no", None, "yes", "Yes."),
    ("Is there an effusion?", "yes_no", None, "no", "The costophrenic angles look sharp."),
    ("Is the heart enlarged?", "yes_no", None, "yes", "The cardiothoracic ratio measures about 0.45."),
    ("Is the lesion in the left or right lung?", "choice", ("left", "right"), "left",
     "The lesion sits on the side opposite the cardiac apex."),
    ("Which finding is shown?", "multiple_choice", MC, "B", "Fluid layering in the costophrenic recess."),
    ("What organ is shown?", "open", None, "lung", "lungs"),
    ("Is there a fracture?", "yes_no", None, "no", ""),
]
REPLIES = {"The costophrenic angles look sharp.": "no",  # right
           "The cardiothoracic ratio measures about 0.45.": "No",  # wrong: the reference is yes
           "The lesion sits on the side opposite the cardiac apex.": "I think it is probably the left one",  # garbage
           "Fluid layering in the costophrenic recess.": "B"}  # right


def script_cell(monkeypatch, items):
    """The VQA cell's model answers replaced by ``items``' responses (no model is loaded)."""
    from medrival.core.types import VQASplit
    from medrival.data.catalog import dataset_info
    from medrival.methods.vqa_answers import VQAOutput
    import medrival.study.vqa_cell as vqa_cell

    questions, forms, options, answers, responses = (list(column) for column in zip(*items))
    n = len(items)
    split = VQASplit(dataset_info("demo-xray-vqa"), "test", np.zeros((n, 4, 4, 3), np.uint8), np.arange(n),
                     questions, answers, ["open" if f == "open" else "closed" for f in forms],
                     np.array([f"q{i}" for i in range(n)]), np.array([f"img{i}" for i in range(n)]),
                     forms=forms, options=options)

    def fit_and_answer(cell, context, method):
        return VQAOutput(list(responses), np.full(n, np.nan)), split, {"n_test": n}

    monkeypatch.setattr(vqa_cell, "fit_and_answer", fit_and_answer)


@pytest.fixture
def scripted_answers(monkeypatch):
    script_cell(monkeypatch, CELL_ITEMS)


def values(column) -> list:
    """A stored column's values, its missing entries (None or NaN after the round trip) as None."""
    return [None if value is None or value != value else value for value in column]


def run_cell(tmp_path, text: str):
    from medrival.study.runner import run_study
    from medrival.study.spec import parse_study

    run = run_study(parse_study(text), tmp_path)
    assert not run.failed and len(run.ran) == 1, run.failed and run.store.get(run.failed[0]).error
    return run.store.get(run.ran[0]), run.store.predictions(run.ran[0])


def test_only_undecided_items_are_sent_and_their_decisions_score(serve, key, scripted_answers, tmp_path):
    handler = scripted(REPLIES)
    stub = serve(handler)
    plain_record, plain = run_cell(tmp_path / "plain", STUDY)
    record, frame = run_cell(tmp_path / "extracted", STUDY + extractor_yaml(stub.url))
    assert len(stub.requests) == 4 and all(count == 1 for count in handler.served.values())
    assert "extractor_decision" not in plain.columns and (plain["decided_by"] != "extractor").all()

    assert values(frame["decided_by"]) == ["rules", "extractor", "extractor", None, "extractor", None, None]
    assert values(frame["extracted"]) == ["yes", "no", "no", None, "B", None, None]
    closed = frame["scored_as"] != "open"
    assert list(frame.loc[closed, "closed_accuracy"]) == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert list(frame.loc[closed, "undecided_rate"]) == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert values(frame["extractor_decision"]) == [None, "no", "No", REPLIES[CELL_ITEMS[3][4]], "B", None, None]
    sent = [False, True, True, True, True, False, False]
    assert list(frame["extractor_model"].notna()) == sent and set(frame["extractor_model"].dropna()) == {"extractor-1"}
    assert values(frame["extractor_prompt_version"]) == [EXTRACTOR_PROMPT_VERSION if was_sent else None
                                                         for was_sent in sent]

    assert record.metrics["closed_accuracy"] == pytest.approx(3 / 6)
    assert plain_record.metrics["closed_accuracy"] == pytest.approx(1 / 6)
    assert record.metrics["undecided_rate"] == pytest.approx(2 / 6)
    assert record.cost["extractor_prompt_version"] == EXTRACTOR_PROMPT_VERSION
    assert record.cost["extractor_items"] == 4 and record.cost["extractor_failures"] == 0
    assert record.spec["answer_extractor"] == {"base_url": stub.url, "model": "extractor-1", "api_key_env": KEY_ENV,
                                               "prompt_version": EXTRACTOR_PROMPT_VERSION}
    assert record.cell_id != plain_record.cell_id
    assert KEY not in str(record)
    for path in Path(tmp_path / "extracted").rglob("*"):  # the key is in no stored file (records, predictions)
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_a_failing_extractor_is_recorded_and_the_cell_still_finishes(serve, key, scripted_answers, tmp_path,
                                                                    monkeypatch):
    from medrival.models.openai_http import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.0)  # retry at once
    stub = serve(lambda request: (500, {"error": {"message": "overloaded"}}, {}))
    record, frame = run_cell(tmp_path, STUDY + extractor_yaml(stub.url))
    assert len(stub.requests) == 4 * 4  # 4 undecided items x (1 try + 3 retries)
    assert record.cost["extractor_items"] == 4 and record.cost["extractor_failures"] == 4
    assert len(record.cost["extractor_failure_messages"]) == 4
    assert all("HTTP 500" in message and KEY not in message for message in record.cost["extractor_failure_messages"])
    assert (frame["decided_by"] != "extractor").all() and frame["extractor_decision"].isna().all()
    assert list(frame["extractor_model"].notna()) == [False, True, True, True, True, False, False]
    assert record.metrics["closed_accuracy"] == pytest.approx(1 / 6)  # as without an extractor


def test_a_cell_without_undecided_answers_sends_nothing(serve, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)  # no request, so no key is needed
    script_cell(monkeypatch, [item for item in CELL_ITEMS if item[4] in ("Yes.", "lungs")])
    stub = serve(lambda request: "yes")
    record, frame = run_cell(tmp_path, STUDY + extractor_yaml(stub.url))
    assert stub.requests == [] and record.cost["extractor_items"] == 0 and record.cost["extractor_failures"] == 0
    assert frame["extractor_decision"].isna().all() and values(frame["decided_by"]) == ["rules", None]
