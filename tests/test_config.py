"""Study files: YAML with line numbers, validation errors that cite file/line/path, name checks, cells and ids."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from medrival.core.config import load_config_file, load_yaml_with_lines
from medrival.core.errors import ConfigError, MedrivalError
from medrival.core.types import CellSpec
from medrival.study.spec import StudySpec, cell_id, check_names, expand_cells, load_study, parse_study

VALID = textwrap.dedent("""\
    name: demo
    models: [gen, spec]
    datasets:
      - demo-xray
      - demo-derm
    methods:
      - zero_shot
      - name: linear_probe
        config:
          C: 0.5
          grid: [0.1, 1.0]
    seeds: [0, 1]
    """)

KNOWN = {
    "models": ["gen", "spec", "biomedclip"],
    "datasets": ["demo-xray", "demo-derm", "demo-fundus"],
    "methods": ["zero_shot", "linear_probe", "lora"],
}

# A fixed cell and its id, computed once. If this changes, every stored result loses its key: change it only
# together with CELL_ID_VERSION, on purpose.
FIXED_CELL = CellSpec(model="demo-generalist", dataset="demo-xray", method="linear_probe", seed=1,
                      method_config=(("C", 1.0), ("grid", (0.1, 1.0)), ("penalty", "l2")))
FIXED_ID = "b00da887e34e72e6"


def error_of(text: str, source: str = "study.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_study(text, source)
    return str(info.value)


# ----------------------------------------------------------------------------------------------- parsing
def test_valid_study_parses_both_method_forms():
    spec = parse_study(VALID, "study.yaml")
    assert spec.name == "demo"
    assert spec.models == ["gen", "spec"]
    assert [m.name for m in spec.methods] == ["zero_shot", "linear_probe"]
    assert spec.methods[0].config == {}
    assert spec.methods[1].config == {"C": 0.5, "grid": [0.1, 1.0]}
    assert spec.seeds == [0, 1] and spec.store is None
    assert spec.source == "study.yaml"


def test_defaults_and_field_help():
    spec = parse_study("models: [a]\ndatasets: [b]\nmethods: [c]\n")
    assert spec.seeds == [0] and spec.name == "study" and spec.source == "<string>"
    assert all(f.description for f in StudySpec.model_fields.values())


def test_lines_are_recorded_by_path():
    _, lines = load_yaml_with_lines(VALID, "study.yaml")
    assert lines[("models",)] == 2
    assert lines[("datasets", 1)] == 5
    assert lines[("methods", 1, "name")] == 8
    assert lines[("methods", 1, "config", "C")] == 10
    assert lines[("methods", 1, "config", "grid", 1)] == 11


def test_unsafe_tags_are_refused():
    message = error_of("models: !!python/object/apply:os.system ['echo hi']\n")
    assert "line 1" in message and "could not parse YAML" in message


# ----------------------------------------------------------------------------------------------- errors
def test_unknown_top_level_field_cites_line_and_suggests():
    text = "models: [a]\nmethods: [zero_shot]\ndataset: [demo-xray]\n"
    message = error_of(text)
    assert "study.yaml, line 3: dataset:" in message
    assert "did you mean 'datasets'" in message
    # The missing field points at the parent mapping (the top level, line 1).
    assert "study.yaml, line 1: datasets: required field is missing" in message


def test_unknown_nested_field_suggests_among_nested_fields():
    text = "models: [a]\ndatasets: [b]\nmethods:\n  - name: lp\n    confg: {C: 1}\n"
    message = error_of(text)
    assert "line 5: methods[0].confg:" in message and "did you mean 'config'?" in message


def test_wrong_types_deep_inside_cite_dotted_path_and_line():
    text = textwrap.dedent("""\
        models: [demo-generalist-clip]
        datasets: [demo-xray]
        methods:
          - zero_shot
          - name: linear_probe
            config: [1, 2]
        seeds:
          - 0
          - abc
        """)
    message = error_of(text)
    assert "study.yaml, line 6: methods[1].config:" in message
    assert "study.yaml, line 9: seeds[1]:" in message
    assert "2 problems" in message


def test_negative_seed_and_empty_list_rejected():
    message = error_of("models: []\ndatasets: [b]\nmethods: [c]\nseeds: [-1]\n")
    assert "line 1: models:" in message and "line 4: seeds[0]:" in message


def test_yaml_syntax_error_cites_line():
    message = error_of("models: [a, b]\ndatasets: [x\nmethods: [zero_shot]\n")
    assert message.startswith("study.yaml, line 3, column")
    assert "could not parse YAML" in message and "indentation and quoting" in message


def test_duplicate_yaml_key_rejected():
    message = error_of("models: [a]\ndatasets: [b]\nmethods: [c]\nmodels: [d]\n")
    assert "line 4: duplicate key 'models'" in message and "line 1" in message


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_file(text):
    message = error_of(text)
    assert "study.yaml is empty" in message and "models:" in message


def test_top_level_must_be_mapping():
    assert "expected a mapping" in error_of("- a\n- b\n")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_study(tmp_path)


def test_load_from_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(VALID + "datasest: [x]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert f"{path}, line 13: datasest:" in str(info.value)
    path.write_text(VALID, encoding="utf-8")
    assert load_study(path).lines[("seeds",)] == 12
    assert load_config_file(path, StudySpec).models == ["gen", "spec"]


def test_duplicates_rejected():
    message = error_of("models: [a, a]\ndatasets: [b]\nmethods: [c, c]\nseeds: [1, 1]\n")
    assert "'a' is listed twice in models" in message
    assert "method 'c' is listed twice" in message
    assert "1 is listed twice in seeds" in message
    # The same method with different configs is a sweep, not a duplicate.
    parse_study("models: [a]\ndatasets: [b]\nmethods: [{name: c, config: {x: 1}}, {name: c, config: {x: 2}}]\n")


# ----------------------------------------------------------------------------------------------- names
def test_check_names_reports_every_unknown_name_with_line():
    text = textwrap.dedent("""\
        models: [gen, spex]
        datasets:
          - demo-xray
          - demo-xary
        methods:
          - zero_shot
          - name: linear_prob
        """)
    spec = parse_study(text, "study.yaml")
    with pytest.raises(MedrivalError) as info:
        check_names(spec, KNOWN)
    message = str(info.value)
    assert "study.yaml, line 1: unknown model 'spex'. Did you mean 'spec'?" in message
    assert "study.yaml, line 4: unknown dataset 'demo-xary'. Did you mean 'demo-xray'" in message
    assert "Available datasets: demo-derm, demo-fundus, demo-xray." in message
    assert "study.yaml, line 7: unknown method 'linear_prob'. Did you mean 'linear_probe'?" in message
    assert message.count(": unknown ") == 3 and message.startswith("study.yaml names 3 unknown names")


def test_check_names_accepts_known_names():
    # check_names also checks the options of registered methods: VALID's C/grid are placeholders, not options.
    check_names(parse_study(VALID.replace("C: 0.5", "Cs: [0.5]").replace("grid: [0.1, 1.0]", "max_iter: 100")),
                KNOWN)


# ----------------------------------------------------------------------------------------------- cells
def test_expand_cells_count_and_order():
    cells = expand_cells(parse_study(VALID))
    assert len(cells) == 2 * 2 * 2 * 2
    # Datasets outermost, then models, then methods, then seeds, each in file order.
    assert [(c.dataset, c.model, c.method, c.seed) for c in cells[:5]] == [
        ("demo-xray", "gen", "zero_shot", 0), ("demo-xray", "gen", "zero_shot", 1),
        ("demo-xray", "gen", "linear_probe", 0), ("demo-xray", "gen", "linear_probe", 1),
        ("demo-xray", "spec", "zero_shot", 0)]
    assert cells[8].dataset == "demo-derm"
    assert cells[2].method_config == (("C", 0.5), ("grid", (0.1, 1.0)))
    assert len({cell_id(c) for c in cells}) == len(cells)
    hash(cells[2])  # cells are hashable (frozen configs)


def test_nested_config_is_frozen_sorted():
    text = "models: [a]\ndatasets: [b]\nmethods: [{name: m, config: {z: {y: [1, {b: 2, a: 1}], x: 0}, a: 1}}]\n"
    (cell,) = expand_cells(parse_study(text))
    assert cell.method_config == (("a", 1), ("z", (("x", 0), ("y", (1, (("a", 1), ("b", 2)))))))


def test_cell_id_known_value():
    assert cell_id(FIXED_CELL) == FIXED_ID


def test_cell_id_same_in_another_process():
    code = ("from medrival.core.types import CellSpec; from medrival.study.spec import cell_id; "
            "print(cell_id(CellSpec(model='demo-generalist', dataset='demo-xray', method='linear_probe', seed=1, "
            "method_config=(('penalty', 'l2'), ('C', 1.0), ('grid', (0.1, 1.0))))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == FIXED_ID


@pytest.mark.parametrize("change", [
    {"model": "other"}, {"dataset": "other"}, {"method": "lora"}, {"seed": 2},
    {"method_config": (("C", 2.0), ("grid", (0.1, 1.0)), ("penalty", "l2"))},
    {"method_config": (("C", 1.0), ("grid", (0.1, 1.0)))},
])
def test_cell_id_changes_with_every_field(change):
    fields = {"model": FIXED_CELL.model, "dataset": FIXED_CELL.dataset, "method": FIXED_CELL.method,
              "seed": FIXED_CELL.seed, "method_config": FIXED_CELL.method_config, **change}
    assert cell_id(CellSpec(**fields)) != FIXED_ID


def test_normalise_config_makes_explicit_defaults_share_ids():
    explicit = parse_study("models: [a]\ndatasets: [b]\nmethods: [{name: linear_probe, config: {C: 1.0}}]\n")
    implicit = parse_study("models: [a]\ndatasets: [b]\nmethods: [linear_probe]\n")

    def fill_defaults(method: str, config: dict) -> dict:
        return {"C": 1.0, **config} if method == "linear_probe" else config

    assert cell_id(expand_cells(explicit)[0]) != cell_id(expand_cells(implicit)[0])
    a, b = expand_cells(explicit, fill_defaults)[0], expand_cells(implicit, fill_defaults)[0]
    assert a == b and cell_id(a) == cell_id(b)
