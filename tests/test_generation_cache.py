"""The generation cache: identical answers cold, warm and partly warm; trained models miss their base's answers;
API failures are never cached; a broken cache never fails a cell; a SIGKILLed VQA cell resumes where it stopped."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from medrival.data.catalog import load_dataset
from medrival.methods.generation_cache import GenerationCache, cached_option_scores, model_state
from medrival.models.prefix_sharing import image_units
from medrival.methods.vqa_answers import VQAGenerationConfig, answer_questions

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    from medrival.models.factory import create_model

    return create_model("demo-generalist-vlm")


@pytest.fixture(scope="module")
def split():
    return load_dataset("demo-xray-vqa", "test", n=22, size=32)


def _same(a, b) -> None:
    assert a.responses == b.responses
    np.testing.assert_array_equal(a.yes_probability, b.yes_probability)  # NaN where unscored, equal as NaN


def _answer_rows(path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [key for (key,) in connection.execute("SELECT key FROM generations WHERE kind = 'answer'")]


def test_cold_warm_and_partly_warm_runs_give_identical_answers(model, split, tmp_path):
    config = VQAGenerationConfig(batch_size=4)
    plain = answer_questions(model, split, config)
    cache = GenerationCache(tmp_path / "generations.sqlite")
    cold = answer_questions(model, split, config, cache=cache)
    _same(plain, cold)
    closed = int(np.sum(np.asarray(split.forms) == "yes_no"))
    assert cache.counts() == {"hits": 0, "misses": len(split) + closed}
    warm = answer_questions(model, split, config, cache=GenerationCache(cache.path))
    _same(plain, warm)
    # Drop a third of the answers (whole rows, any batches): only their batches are generated again, as before.
    keys = _answer_rows(cache.path)
    with sqlite3.connect(cache.path) as connection:
        connection.executemany("DELETE FROM generations WHERE key = ?", [(k,) for k in keys[::3]])
    partial = GenerationCache(cache.path)
    again = answer_questions(model, split, config, cache=partial)
    _same(plain, again)
    assert 0 < partial.misses < len(split) + closed and partial.hits + partial.misses == len(split) + closed


def test_option_scores_are_cached_in_the_image_chunks_score_options_forms(model, tmp_path):
    keys = ["a", "b", "a", "c", "d", "b", "e"]
    assert image_units(keys, 2) == [[0, 2, 1, 5], [3, 4], [6]]  # whole images, at most 2 images per unit
    test = load_dataset("demo-xray", "test", n=7, size=32)
    images, prompts, options = list(test.images), ["what is the diagnosis?"] * 7, ["normal", "pneumonia", "effusion"]
    direct = model.score_options(images, prompts, options, batch_size=4)
    cache = GenerationCache(tmp_path / "g.sqlite")
    np.testing.assert_array_equal(cached_option_scores(cache, model, images, prompts, options, 4), direct)
    np.testing.assert_array_equal(cached_option_scores(cache, model, images, prompts, options, 4), direct)
    assert cache.counts() == {"hits": 7, "misses": 7}


def test_a_lora_tuned_model_never_gets_its_base_models_answers(model, split, tmp_path):
    from medrival.methods.vqa_lora import VQALora, VQALoraConfig

    cache = GenerationCache(tmp_path / "g.sqlite")
    config = VQAGenerationConfig(batch_size=8, score_closed_options=False)
    answer_questions(model, split, config, cache=cache)
    base_state = model_state(model)
    method = VQALora(VQALoraConfig(epochs=1, lr=5e-3, train_batch_size=8, batch_size=8,
                                   score_closed_options=False))

    class Features:
        generations = cache

    method.fit(model, split, split, Features(), seed=0)
    try:
        assert model_state(method.tuned) != base_state
        before = cache.counts()
        output = method.predict(split)
        assert cache.hits == before["hits"] and cache.misses == before["misses"] + len(split)
        assert output.responses == answer_questions(method.tuned, split, config).responses
    finally:
        method.close()
    assert model_state(model) == base_state  # adapters removed: the base's answers are served again
    hits = cache.hits
    answer_questions(model, split, config, cache=cache)
    assert cache.hits == hits + len(split)


class FlakyApi:
    """An API-like model: question texts containing 'fail' fail (on the first call only)."""

    fingerprint = "flaky-api"
    supports_option_scores = False
    answers_each_request_alone = True

    def __init__(self):
        self.failures, self.asked, self.calls = [], [], 0

    def generate(self, images, prompts, *, max_new_tokens, batch_size):
        self.calls += 1
        self.asked.append(list(prompts))
        self.failures = [(i, "boom") for i, p in enumerate(prompts) if "fail" in p and self.calls == 1]
        failed = {i for i, _ in self.failures}
        return ["" if i in failed else f"answer to {p}" for i, p in enumerate(prompts)]


def test_api_models_cache_successful_answers_only(tmp_path):
    from medrival.methods.vqa_answers import _generate_with_failures

    api, cache = FlakyApi(), GenerationCache(tmp_path / "g.sqlite")
    images = [np.full((8, 8, 3), i, np.uint8) for i in range(4)]
    prompts = ["a", "b fail", "c", "d fail"]
    replies, failures = _generate_with_failures(api, images, prompts, [4] * 4, 2, cache)
    assert replies == ["answer to a", "", "answer to c", ""] and failures == [(1, "boom"), (3, "boom")]
    replies, failures = _generate_with_failures(api, images, prompts, [4] * 4, 2, cache)
    assert api.asked[-1] == ["b fail", "d fail"] and failures == []  # only the failed ones asked again
    assert replies == [f"answer to {p}" for p in prompts] and cache.counts() == {"hits": 2, "misses": 6}


def test_a_corrupt_cache_warns_once_and_runs_uncached(model, split, tmp_path):
    path = tmp_path / "generations.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    config = VQAGenerationConfig(batch_size=8)
    cache = GenerationCache(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        output = answer_questions(model, split, config, cache=cache)
        answer_questions(model, split, config, cache=cache)
    assert len([w for w in caught if "generation cache" in str(w.message)]) == 1
    assert cache.broken and output.responses == answer_questions(model, split, config).responses


def _store_many(path: str, worker: int) -> None:
    cache = GenerationCache(path)
    for batch in range(20):
        cache.store("answer", [(f"{worker}-{batch}-{i}", "x") for i in range(10)])
    assert cache.broken is None


def test_several_processes_write_at_once(tmp_path):
    import multiprocessing

    path = str(tmp_path / "g.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_store_many, args=(path, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert GenerationCache(path).count() == 3 * 20 * 10


CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from medrival.core.types import CellSpec
    from medrival.study.cell import CellContext, execute_cell
    folder, out = sys.argv[1], sys.argv[2]
    context = CellContext(Path(folder) if folder else None, device="cpu")
    cell = CellSpec("demo-generalist-vlm", "demo-xray-vqa", "vqa_zero_shot", method_config=(("batch_size", 8),))
    record, frame = execute_cell(cell, context)
    Path(out).write_text(json.dumps({"status": record.status, "error": record.error,
                                     "responses": frame["response"].tolist(),
                                     "generation_cache": record.cost.get("generation_cache")}))
""")


def run_child(folder: str, out, *, kill_at: int | None = None) -> dict | None:
    """Run the VQA cell in a subprocess; with ``kill_at``, SIGKILL it once the cache holds that many answers."""
    process = subprocess.Popen([sys.executable, "-c", CHILD, folder, str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
    if kill_at is None:
        assert process.wait(300) == 0
        return json.loads(out.read_text())
    cache, deadline = GenerationCache(os.path.join(folder, "generations.sqlite")), time.time() + 300
    while process.poll() is None and time.time() < deadline:
        if cache.path.is_file() and cache.count() >= kill_at:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, "the cell finished before it could be killed"
    return None


def test_a_killed_vqa_cell_resumes_at_the_first_missing_answer(tmp_path):
    folder = str(tmp_path / "features")
    test = load_dataset("demo-xray-vqa", "test")
    total, closed = len(test), int(np.sum(np.asarray(test.forms) == "yes_no"))
    run_child(folder, tmp_path / "killed.json", kill_at=total // 2)
    cached = len(_answer_rows(os.path.join(folder, "generations.sqlite")))
    assert 0 < cached < total
    resumed = run_child(folder, tmp_path / "resumed.json")
    assert resumed["status"] == "done", resumed["error"]
    # every stored answer reused; only the missing answers (and the yes/no scores, which come after) computed
    assert resumed["generation_cache"] == {"hits": cached, "misses": total - cached + closed}
    cold = run_child("", tmp_path / "cold.json")
    assert resumed["responses"] == cold["responses"]
