"""The shipped tiny generative demo models (demo-generalist-vlm, demo-specialist-vlm) behave as the demo needs:
one vocabulary covering every demo question and answer, an in-domain advantage of the specialist off the shelf,
no out-of-domain one, LoRA teaching the generalist a new modality, and a reproducible pretraining script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from medrival.data import world
from medrival.data.catalog import dataset_info, load_dataset
from medrival.methods import METHODS
from medrival.core.prompts import diagnosis_prompt
from medrival.methods.vqa_answers import question_prompts
from medrival.models.demo_weights import WEIGHTS_DIR
from medrival.models.factory import create_model
from medrival.study.vqa_cell import score_vqa

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_demo_vlms.py"
KINDS = ("generalist", "specialist")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def models() -> dict:
    return {kind: create_model(f"demo-{kind}-vlm") for kind in KINDS}


@pytest.fixture(scope="module")
def accuracy_cache() -> dict:
    return {}


def _run(method_name: str, model, train, val, test, **config):
    spec = METHODS.get(method_name)
    method = spec.build(spec.make_config(config))
    try:
        method.fit(model, train, val, seed=0)
        return method.predict(test), method
    finally:
        if hasattr(method, "close"):
            method.close()


def _yes_no_accuracy(test, output) -> float:
    frame = score_vqa(test, output)
    return float(frame["yes_no_accuracy"].mean())  # the questions the demo models were pretrained on


def _off_the_shelf(models, cache, kind: str, dataset: str, n: int) -> float:
    """Yes/no accuracy of vqa_zero_shot on the first ``n`` test images (cached across tests)."""
    key = (kind, dataset, n)
    if key not in cache:
        test = load_dataset(dataset, "test", n=n)
        output, _ = _run("vqa_zero_shot", models[kind], None, None, test, batch_size=32)
        cache[key] = _yes_no_accuracy(test, output)
    return cache[key]


def test_both_load_and_are_small(models):
    total = 0
    for kind, model in models.items():
        folder = WEIGHTS_DIR / f"demo-{kind}-vlm"
        total += sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
        assert model.family == "generative" and model.card.id == f"demo-{kind}-vlm"
        assert 300_000 < model.num_parameters() < 2_000_000
    assert total <= 10 * 2 ** 20
    # One shared vocabulary: the same words have the same ids in both models.
    assert models["generalist"].processor.tokenizer.get_vocab() == models["specialist"].processor.tokenizer.get_vocab()


def test_vocabulary_covers_every_demo_question_and_answer(models):
    tokenizer = models["generalist"].processor.tokenizer
    texts = []
    for modality in world.DIAGNOSTIC_MODALITIES:
        split = load_dataset(f"demo-{modality}-vqa", "test", n=60, size=32)
        texts += question_prompts(split) + list(split.answers)
        info = dataset_info(f"demo-{modality}")
        texts += [diagnosis_prompt(info), *info.class_names]
    unknown = [text for text in set(texts)
               if tokenizer.unk_token_id in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert not unknown


def test_specialist_wins_in_domain_only(models, accuracy_cache):
    specialist_xray = _off_the_shelf(models, accuracy_cache, "specialist", "demo-xray-vqa", 40)
    generalist_xray = _off_the_shelf(models, accuracy_cache, "generalist", "demo-xray-vqa", 40)
    specialist_derm = _off_the_shelf(models, accuracy_cache, "specialist", "demo-dermoscopy-vqa", 40)
    # Measured at shipping: 0.94 vs 0.60 on x-ray; the specialist scores 0.62 on dermoscopy (never seen; always
    # answering "no" would give 0.68 there).
    assert specialist_xray >= 0.85 and specialist_xray >= generalist_xray + 0.2
    assert specialist_derm <= 0.72 and specialist_derm <= specialist_xray - 0.2


def test_lora_teaches_the_generalist_dermoscopy(models, accuracy_cache):
    train, val, test = (load_dataset("demo-dermoscopy-vqa", split, n=n)
                        for split, n in (("train", 150), ("val", 40), ("test", 60)))
    before = _off_the_shelf(models, accuracy_cache, "generalist", "demo-dermoscopy-vqa", 60)
    output, method = _run("vqa_lora", models["generalist"], train, val, test, epochs=4, lr=5e-3,
                          train_batch_size=16, batch_size=32)
    after = _yes_no_accuracy(test, output)
    # Measured: 0.33 (answers "yes" to everything) -> 0.87 with 2 epochs before choice questions joined the set;
    # with them, 0.89 after 4 epochs (as the demo runs).
    assert after >= 0.7 and after >= before + 0.2
    assert method.result.best_epoch >= 1
    assert not any("lora_" in name for name, _ in models["generalist"].model.named_parameters())  # closed again


def _script():
    spec = importlib.util.spec_from_file_location("pretrain_demo_vlms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pretraining_script_is_reproducible(tmp_path):
    script = _script()
    for run in ("a", "b"):
        script.main(["--only", "specialist", "--epochs", "1", "--per-modality", "6", "--threads", "1",
                     "--out", str(tmp_path / run)])
    first, second = (tmp_path / run / "demo-specialist-vlm" for run in ("a", "b"))
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    # The shipped folders come from this script: everything but the trained weights is what it writes.
    shipped = WEIGHTS_DIR / "demo-specialist-vlm"
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in shipped.iterdir())
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        assert (first / name).read_bytes() == (shipped / name).read_bytes(), name
