"""Issue 14, finding 8: everything a result reads enters its cell id, so changed inputs never reuse old results.

Each test changes one input (a zero-shot template, a VQA prompt's text, a normalisation or extraction version, a
byte of an annotation file, a model's Hub revision or weights folder, a method default) and sees new ids, while
an unchanged study keeps every id and a re-run reuses every cell.
"""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from medrival.core import prompts
from medrival.data.catalog import dataset_registry
from medrival.data.zoo.api import forget_cached
from medrival.methods import METHODS
from medrival.metrics.vqa import VQA_VERSIONS
from medrival.models.catalog import model_registry
from medrival.study.fingerprints import attach_inputs, folder_fingerprint
from medrival.study.runner import plan_cells, run_study
from medrival.study.spec import cell_id, parse_study

DEMO = """
models: [demo-generalist-clip, demo-generalist-vlm]
datasets: [demo-xray, demo-xray-vqa]
methods: [zero_shot, linear_probe, vqa_zero_shot, option_zero_shot]
unsupported: skip
"""


def ids(text: str) -> dict[tuple[str, str, str], str]:
    """(model, dataset, method) -> cell id of every planned cell of the study ``text``."""
    return {(c.model, c.dataset, c.method): cell_id(c) for c in plan_cells(parse_study(text))}


def changed(before: dict, after: dict) -> set:
    assert before.keys() == after.keys()
    return {key for key in before if before[key] != after[key]}


@pytest.fixture
def swap_registered():
    """Replace a registry entry for one test, the original put back afterwards."""
    restore = []

    def swap(registry, name, obj):
        restore.append((registry, name, registry.get(name)))
        registry.register(name, obj, overwrite=True)
    yield swap
    for registry, name, original in reversed(restore):
        registry.register(name, original, overwrite=True)


def test_finding8_an_unchanged_study_plans_the_same_ids_and_every_cell_has_inputs():
    cells = plan_cells(parse_study(DEMO))
    assert cells and all(c.inputs is not None for c in cells)
    inputs = dict(cells[0].inputs)
    assert inputs["annotations"].startswith("demo-world:") and inputs["model_files"] and inputs["prompt_material"]
    assert ids(DEMO) == ids(DEMO)


def test_finding8_the_datasets_zero_shot_templates_are_in_the_id(swap_registered):
    before = ids(DEMO)
    entry = dataset_registry().get("demo-xray")
    swap_registered(dataset_registry(), "demo-xray",
                    replace(entry, info=replace(entry.info, prompt_templates=("an x-ray with {}.",))))
    assert changed(before, ids(DEMO)) == {key for key in before if key[1] == "demo-xray"}


def test_finding8_the_vqa_prompt_templates_text_is_in_the_id(monkeypatch):
    before = ids(DEMO)
    monkeypatch.setitem(prompts.TEMPLATES, "open", "{question} answer in one word.")  # PROMPT_VERSION unchanged
    generative = {key for key in before if key[0] == "demo-generalist-vlm"}
    assert generative and changed(before, ids(DEMO)) == generative
    monkeypatch.undo()
    monkeypatch.setattr(prompts, "DIAGNOSIS_TEMPLATE", "which finding is shown? one of: {options}.")
    assert changed(before, ids(DEMO)) == generative  # the diagnosis question of option_zero_shot too


@pytest.mark.parametrize("rule", ["normalisation", "extraction", "prompt", "form"])
def test_finding8_normalisation_and_extraction_versions_are_in_the_id(monkeypatch, rule):
    before = ids(DEMO)
    monkeypatch.setitem(VQA_VERSIONS, rule, VQA_VERSIONS[rule] + "-next")
    assert changed(before, ids(DEMO)) == {key for key in before if key[1] == "demo-xray-vqa"}


def test_finding8_alternative_prompt_sets_are_in_the_ids_of_cells_that_use_them(monkeypatch):
    study = """
models: [demo-generalist-clip]
datasets: [demo-xray]
methods: [zero_shot, {name: zero_shot, label: selected, config: {prompt_selection: validation}}]
"""
    def by_selection() -> dict[str, str]:
        return {c.config_dict()["prompt_selection"]: cell_id(c) for c in plan_cells(parse_study(study))}
    before = by_selection()
    monkeypatch.setitem(prompts.VQA_TEMPLATE_SETS, "bare", {**prompts.VQA_TEMPLATE_SETS["bare"], "open": "{question}?"})
    after = by_selection()
    assert after["fixed"] == before["fixed"] and after["validation"] != before["validation"]


def test_finding8_judge_and_extractor_prompt_texts_are_in_the_id(monkeypatch):
    from medrival.metrics import answer_extractor, llm_judge

    spec = parse_study(DEMO)
    vqa = next(c for c in plan_cells(spec) if c.dataset == "demo-xray-vqa")
    cell = replace(vqa, inputs=None, judge=(("model", "judge"),), extractor=(("model", "extractor"),))
    before = cell_id(attach_inputs(spec, [cell])[0])
    monkeypatch.setattr(llm_judge, "JUDGE_PROMPT", llm_judge.JUDGE_PROMPT + " Be strict.")
    after_judge = cell_id(attach_inputs(spec, [cell])[0])
    monkeypatch.setattr(answer_extractor, "EXTRACTOR_PROMPT", answer_extractor.EXTRACTOR_PROMPT + " Be brief.")
    assert len({before, after_judge, cell_id(attach_inputs(spec, [cell])[0])}) == 3


def test_finding8_a_method_default_is_in_the_id(swap_registered):
    before = ids(DEMO)
    spec = METHODS.get("zero_shot")
    fields = [(f.name, f.type, dataclasses.field(default=False if f.name == "use_descriptions" else f.default))
              for f in dataclasses.fields(spec.config_class)]
    swap_registered(METHODS, "zero_shot", replace(spec, config_class=dataclasses.make_dataclass("Config", fields)))
    assert changed(before, ids(DEMO)) == {key for key in before if key[2] == "zero_shot"}


# ----------------------------------------------------------------------------------------------- annotations
def _ham_study(root: Path) -> str:
    return f"models: [demo-specialist-clip]\ndatasets: [ham10000]\nmethods: [zero_shot]\n" \
           f"data_roots: {{ham10000: '{root}'}}\n"


def test_finding8_a_byte_of_a_real_releases_annotation_file_is_in_the_id(tmp_path):
    from test_releases_ham10000 import ROWS, write_release

    write_release(tmp_path / "ham")
    forget_cached()
    before = ids(_ham_study(tmp_path / "ham"))
    shutil.copytree(tmp_path / "ham", tmp_path / "moved")  # the same files elsewhere: the same cells
    assert ids(_ham_study(tmp_path / "moved")) == before
    write_release(tmp_path / "ham", rows=[ROWS[0].replace(",bkl,", ",mel,"), *ROWS[1:]])  # one label edited
    forget_cached()  # a new process would read the files afresh; this one caches the index it read
    assert changed(before, ids(_ham_study(tmp_path / "ham"))) == set(before)


def _manifest_study(root: Path) -> str:
    return f"""
models: [demo-specialist-clip]
datasets: [my-cxr]
methods: [zero_shot, knn]
custom_datasets:
  my-cxr: {{format: manifest, root: '{root}', options: {{csv_path: manifest.csv, split_column: split,
                                                       patient_column: patient, modality: xray}}}}
"""


def test_finding8_a_custom_manifests_bytes_are_in_the_id(tmp_path):
    from test_releases_manifest import ROWS, write_manifest

    write_manifest(tmp_path / "mine")
    before = ids(_manifest_study(tmp_path / "mine"))
    assert ids(_manifest_study(tmp_path / "mine")) == before  # registered again, unchanged: the same cells
    write_manifest(tmp_path / "mine", rows=[(*ROWS[0][:4], "M", ROWS[0][5]), *ROWS[1:]])
    assert ids(_manifest_study(tmp_path / "mine")) == before  # a column the study does not read: the same cells
    write_manifest(tmp_path / "mine", rows=[(ROWS[0][0], "normal", *ROWS[0][2:]), *ROWS[1:]])  # a label edited
    assert changed(before, ids(_manifest_study(tmp_path / "mine"))) == set(before)


# ----------------------------------------------------------------------------------------------- models
def test_finding8_a_models_hub_revision_is_in_the_id(swap_registered):
    study = "models: [llava-1.5-7b]\ndatasets: [demo-xray-vqa]\nmethods: [vqa_zero_shot]\n"
    before = ids(study)
    card = model_registry().get("llava-1.5-7b")
    pinned = card.model_copy(update={"source": card.source.model_copy(update={"revision": "8c85e9a"})})
    swap_registered(model_registry(), "llava-1.5-7b", pinned)
    assert changed(before, ids(study)) == set(before)


def test_finding8_a_local_weights_folders_files_are_in_the_id(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 64}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    study = f"models: [demo-generalist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n" \
            f"weights: {{demo-generalist-clip: '{folder}'}}\n"
    before = ids(study)
    assert ids(study) == before
    (folder / "config.json").write_text('{"hidden_size": 128}')
    after_config = ids(study)
    (folder / "model.safetensors").write_bytes(bytes(range(256))[::-1] * 64)  # same size, new weights
    assert len({*before.values(), *after_config.values(), *ids(study).values()}) == 3
    (folder / ".cache").mkdir()  # huggingface-cli download's bookkeeping is not the checkpoint
    (folder / ".cache" / "lock").write_text("x")
    assert ids(study) == ids(study)


def test_finding8_large_weight_files_are_sampled_not_read_whole(tmp_path, monkeypatch):
    from medrival.study import fingerprints

    monkeypatch.setattr(fingerprints, "SMALL_FILE_BYTES", 1024)
    monkeypatch.setattr(fingerprints, "SAMPLE_BYTES", 16)
    (tmp_path / "model.safetensors").write_bytes(bytes(4096))
    before = folder_fingerprint(tmp_path)
    data = bytearray(4096)
    data[round(8 * (4096 - 16) / 17) + 5] = 1  # inside the 8th of the 16 evenly spaced interior samples
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    assert folder_fingerprint(tmp_path) != before
    assert folder_fingerprint(tmp_path / "absent") == "missing"


def test_finding8_the_weights_dir_variable_folder_is_in_the_id(tmp_path, monkeypatch):
    study = "models: [demo-generalist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n"
    before = ids(study)
    (tmp_path / "demo-generalist-clip").mkdir()
    (tmp_path / "demo-generalist-clip" / "open_clip_config.json").write_text("{}")
    monkeypatch.setenv("MEDRIVAL_WEIGHTS_DIR", str(tmp_path))  # loading now reads this folder, not the shipped one
    assert changed(before, ids(study)) == set(before)


# ----------------------------------------------------------------------------------------------- reuse
def test_finding8_rerunning_an_unchanged_study_reuses_every_cell(tmp_path):
    spec = parse_study("models: [demo-generalist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n")
    first = run_study(spec, tmp_path / "store")
    assert first.ran and not first.failed and not first.skipped
    second = run_study(parse_study("models: [demo-generalist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n"),
                       tmp_path / "store")
    assert second.ran == [] and sorted(second.skipped) == sorted(first.ran)
