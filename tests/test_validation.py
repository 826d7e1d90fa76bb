"""Errors in full, all at once: study validation reports every problem with its line in one error, method options
are checked by typed models (unknown names, types, ranges: all of one config together), the weights preflight names
every model that cannot be had before anything runs, and a failed cell keeps its whole error message."""
from __future__ import annotations

import textwrap

import pytest

from medrival.core.errors import ConfigError, ConfigProblems, MedrivalError
from medrival.core.types import CellSpec
from medrival.methods import METHODS
from medrival.study.preflight import check_weights
from medrival.study.spec import check_names, load_study, parse_study
from medrival.study.validation import registered_names


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_study(textwrap.dedent(text), "study.yaml")
    return str(info.value)


# ----------------------------------------------------------------------------------------------- one pass
def test_three_typos_in_three_layers_are_one_error_with_three_lines(tmp_path):
    """A top-level key (model layer), a model name (name layer) and a LoRA option (option layer)."""
    study = tmp_path / "study.yaml"
    study.write_text(textwrap.dedent("""\
        name: typos
        models: [demo-generalist-clip, biomedclp]
        datasets: [demo-xray]
        methods:
          - zero_shot
          - name: lora
            config: {rnak: 8}
        seed: [0, 1]
        """))
    with pytest.raises(ConfigError) as info:
        load_study(study)
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == f"{study} is not a valid study file (3 problems):"
    assert lines[1].startswith(f"  {study}, line 2: unknown model 'biomedclp'. Did you mean 'biomedclip'")
    assert lines[2] == f"  {study}, line 7: methods[1] (lora) config: unknown option 'rnak' (did you mean 'rank'?)"
    assert lines[3].startswith(f"  {study}, line 8: seed: unknown field; did you mean 'seeds'?")
    assert len(lines) == 4


def test_names_and_options_of_a_well_formed_study_are_reported_together():
    spec = parse_study(textwrap.dedent("""\
        models: [demo-generalist-clp]
        datasets: [demo-xary]
        methods:
          - name: linear_probe
            config:
              Cs: [0.1]
              max_itr: 10
        """), "study.yaml")
    with pytest.raises(ConfigError) as info:
        check_names(spec, registered_names())
    lines = str(info.value).splitlines()
    assert lines[0] == "study.yaml has 3 problems:"
    assert lines[1].startswith("  study.yaml, line 1: unknown model 'demo-generalist-clp'. "
                               "Did you mean 'demo-generalist-clip'")
    assert lines[2].startswith("  study.yaml, line 2: unknown dataset 'demo-xary'. Did you mean 'demo-xray'")
    assert lines[3] == ("  study.yaml, line 7: methods[0] (linear_probe) config: unknown option 'max_itr' "
                        "(did you mean 'max_iter'?)")


def test_option_typo_and_bad_value_are_both_reported_with_their_lines():
    message = error_of("""\
        models: [demo-generalist-clip]
        datasets: [demo-xray]
        methods:
          - name: lora
            config:
              rnak: 8
              epochs: -1
        seeds: [x]
        """)
    assert "(3 problems)" in message
    assert "study.yaml, line 6: methods[0] (lora) config: unknown option 'rnak' (did you mean 'rank'?)" in message
    assert "study.yaml, line 7: methods[0] (lora) config: epochs must be a whole number >= 1, got -1" in message
    assert "study.yaml, line 8: seeds[0]:" in message


def test_options_of_an_unknown_method_are_not_checked():
    message = error_of("""\
        models: [demo-generalist-clip]
        datasets: [demo-xray]
        methods:
          - name: lroa
            config: {rnak: 8}
        store: [not, a, folder]
        """)
    assert "study.yaml, line 4: unknown method 'lroa'. Did you mean 'lora'?" in message
    assert "rnak" not in message  # the options of a method that does not exist cannot be judged
    assert "(2 problems)" in message


def test_a_config_the_model_layer_rejects_is_not_checked_again():
    message = error_of("""\
        models: [demo-generalist-clip]
        datasets: [demo-xray]
        methods:
          - name: lora
            config: {epochs: .nan}
        """)
    assert "(1 problem)" in message and "methods[0].config" in message


def test_a_custom_dataset_name_is_known_when_the_study_fails_for_another_reason():
    message = error_of("""\
        models: [demo-generalist-clip]
        datasets: [mine]
        methods: [zero_shot]
        custom_datasets:
          mine: {format: manifest, root: data, optons: {}}
        """)
    assert "unknown dataset" not in message and "optons: unknown field" in message


# ----------------------------------------------------------------------------------------------- options
def test_every_problem_of_one_config_is_reported_together():
    with pytest.raises(ConfigProblems) as info:
        METHODS.get("lora").make_config({"rnak": 8, "epochs": -1, "lr": 0, "train_head": "yes"})
    assert info.value.problems == [
        (("rnak",), "unknown option 'rnak' (did you mean 'rank'?)"),
        (("epochs",), "epochs must be a whole number >= 1, got -1"),
        (("lr",), "lr must be a positive number, got 0"),
        (("train_head",), "train_head must be true or false, got the text 'yes'"),
    ]
    message = str(info.value)
    assert message.startswith("method 'lora' config has 4 problems:\n  lora: unknown option 'rnak'")
    assert "\n  lora epochs must be a whole number >= 1, got -1\n" in message
    assert message.endswith("Options of lora: " + ", ".join(METHODS.get("lora").normalised_config({})) + ".")


@pytest.mark.parametrize("method, option, value, expected", [
    ("lora", "epochs", 0, "epochs must be a whole number >= 1, got 0"),
    ("lora", "rank", 0, "rank must be a whole number in 1..4096, got 0"),
    ("lora", "batch_size", 0, "batch_size must be a whole number >= 1, got 0"),
    ("lora", "lr", -1e-4, "lr must be a positive number, got -0.0001"),
    ("lora", "dropout", 1.0, "dropout must be in [0, 1), got 1.0"),
    ("full_finetune", "epochs", 0, "epochs must be a whole number >= 1, got 0"),
    ("full_finetune", "warmup_fraction", 1, "warmup_fraction must be in [0, 1), got 1"),
    ("vqa_lora", "rank", 0, "rank must be a whole number >= 1"),
    ("vqa_lora", "epochs", 0, "epochs must be a whole number >= 1"),
    ("linear_probe", "max_iter", 0, "max_iter must be a whole number >= 1, got 0"),
    ("knn", "ks", [0, 3], "ks must be whole numbers >= 1, got [0, 3]"),
    # Types, checked strictly: YAML gives real numbers and booleans, so text or a float for a count is a mistake.
    ("lora", "epochs", "3", "epochs must be a whole number, got the text '3'"),
    ("lora", "rank", 8.0, "rank must be a whole number, got the number 8.0"),
    ("lora", "head_lr", "fast", "head_lr must be a number or null, got the text 'fast'"),
    ("linear_probe", "Cs", [0.1, "big"], "Cs must be a list of numbers, got [0.1, 'big'] (item 1 is the text 'big')"),
    ("zero_shot", "use_descriptions", 1, "use_descriptions must be true or false, got the number 1"),
    # PyYAML (YAML 1.1) reads 1e-4 as text: the message says how to write the number.
    ("lora", "lr", "1e-4", "lr must be a number, got the text '1e-4' (YAML reads 1e-4 as text: write 1.0e-4 or "
                           "0.0001)"),
])
def test_ranges_and_types_name_the_option_the_value_and_the_rule(method, option, value, expected):
    with pytest.raises(ConfigProblems) as info:
        METHODS.get(method).make_config({option: value})
    [(path, message)] = info.value.problems
    assert path == (option,) and message.startswith(expected), message


def test_valid_values_pass_unchanged():
    """Checking converts nothing: 16 stays 16 and a list stays as the config's own code makes it, so cell ids of
    existing results do not move."""
    config = METHODS.get("lora").normalised_config({"alpha": 16, "target_modules": "q_proj", "dropout": 0})
    assert config["alpha"] == 16 and isinstance(config["alpha"], int)
    assert config["target_modules"] == ("q_proj",) and config["dropout"] == 0
    assert METHODS.get("linear_probe").normalised_config({"Cs": 0.5})["Cs"] == (0.5,)


def test_epochs_zero_stays_allowed_where_it_means_the_untrained_start():
    # CoOp and Tip-Adapter-F with epochs 0 are their untrained initialisation, which the tests compare against.
    assert METHODS.get("coop").make_config({"epochs": 0}).epochs == 0
    assert METHODS.get("tip_adapter_f").make_config({"epochs": 0}).epochs == 0


# ----------------------------------------------------------------------------------------------- weights preflight
def _spec(models: str, weights: str = ""):
    return parse_study(f"models: [{models}]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n{weights}", "study.yaml")


def test_preflight_names_every_model_without_weights_offline(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = _spec("demo-generalist-clip, biomedclip, clip-vit-b16")
    with pytest.raises(MedrivalError) as info:
        check_weights(spec)
    message = str(info.value)
    assert message.startswith("study.yaml: the weights of 2 models are neither on this machine nor downloadable")
    assert "model 'demo-generalist-clip'" not in message  # shipped with the package
    for name, command in [
            ("biomedclip", "hf download microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"),
            ("clip-vit-b16", "hf download timm/vit_base_patch16_clip_224.openai open_clip_model.safetensors")]:
        assert f"- study.yaml, line 1: model {name!r}: not in the Hugging Face cache ({hub_cache}" in message
        assert command in message
        assert f"{command} --local-dir /path/to/weights/{name}" in message
        assert f"`weights: {{{name}: /path/to/weights/{name}}}`" in message
    assert "HF_HUB_OFFLINE" in message


def test_preflight_passes_demo_models_and_downloadable_ones(hub_cache, monkeypatch):
    check_weights(_spec("demo-generalist-clip, demo-specialist-clip, demo-generalist-vlm"))
    # Downloads allowed: not cached is fine, the loader fetches it when it runs (the check never probes the Hub).
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    check_weights(_spec("biomedclip"), offline=False)
    # Only the models asked about (the runner passes those of the pending cells: finished ones need no weights).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_weights(_spec("demo-generalist-clip, biomedclip"), models=["demo-generalist-clip"])


def test_preflight_names_a_missing_weights_folder_with_its_line(hub_cache, tmp_path):
    folder = tmp_path / "nowhere"
    spec = _spec("demo-generalist-clip, biomedclip", f"weights:\n  biomedclip: {folder}\n")
    with pytest.raises(MedrivalError) as info:
        check_weights(spec, offline=False)
    message = str(info.value)
    assert f"- study.yaml, line 5: model 'biomedclip': its weights folder {folder} (study `weights:`) does not " \
           f"exist. Create it with the checkpoint, e.g. hf download " in message
    assert f"--local-dir {folder}" in message


def test_preflight_accepts_a_local_weights_folder(hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "biomedclip").mkdir()
    check_weights(_spec("biomedclip", f"weights:\n  biomedclip: {tmp_path / 'biomedclip'}\n"))


# ----------------------------------------------------------------------------------------------- full messages
def test_a_failed_cell_keeps_every_fix_step_in_the_results_frame(hub_cache, tmp_path):
    from medrival.models.catalog import get_card
    from medrival.models.weights import unavailable_message
    from medrival.store import ResultStore, utc_now
    from medrival.study.cell import failure_record

    card = get_card("biomedclip")
    error = MedrivalError(unavailable_message(card, "offline mode is on: HF_HUB_OFFLINE=1"))
    cell = CellSpec(model="biomedclip", dataset="demo-xray", method="zero_shot", seed=0, method_config=())
    try:
        raise error
    except MedrivalError as raised:
        record = failure_record(cell, raised, utc_now(), 0.1)
    store = ResultStore(tmp_path / "store")
    store.save(record)
    stored = store.results_frame()["error"].iloc[0]
    assert stored == f"MedrivalError: {error}"
    assert "as below." in stored.splitlines()[0]
    for step in ["(1) Pre-download into the cache", "hf download microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
                 "(2) Put a local copy in a folder", "`weights: {biomedclip: /path/to/weights/biomedclip}`",
                 "MEDRIVAL_WEIGHTS_DIR=/path/to/weights"]:
        assert step in stored, step
    assert "Traceback" in store.get(record.cell_id).traceback  # the traceback stays separate, as before
