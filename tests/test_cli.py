"""The ``medrival`` command line, run as a subprocess exactly as a user runs it (``python -m medrival``).

Nothing here runs a study: every ``run`` invocation fails validation before any model is loaded.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import medrival

COMMANDS = ("models", "datasets", "methods", "demo", "run", "prepare", "compare", "report", "status")


def medrival_cli(*args: str, cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    # A wide terminal keeps rich from wrapping names and messages across lines.
    import os

    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "medrival", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def _output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def _flat(text: str) -> str:
    """Output with rich's box drawing and line wrapping removed, for substring checks."""
    return " ".join(text.replace("│", " ").split())


# ----------------------------------------------------------------------------------------------- help
def test_help_lists_every_command():
    result = medrival_cli("--help")
    assert result.returncode == 0, _output(result)
    for command in COMMANDS:
        assert command in result.stdout
    assert "--debug" in result.stdout and "--version" in result.stdout


def test_no_arguments_shows_help():
    result = medrival_cli()
    assert "Usage" in _output(result)
    assert "Traceback" not in _output(result)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_shows_an_example(command):
    result = medrival_cli(command, "--help")
    assert result.returncode == 0, _output(result)
    assert f"Example: medrival {command}" in _flat(result.stdout)


def test_version():
    result = medrival_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"medrival {medrival.__version__}"


# ----------------------------------------------------------------------------------------------- listings
def test_models_lists_demo_cards():
    result = medrival_cli("models")
    assert result.returncode == 0, _output(result)
    flat = _flat(result.stdout)
    for expected in ("demo-generalist-clip", "demo-specialist-clip", "generalist", "specialist", "xray"):
        assert expected in flat


def test_datasets_lists_demo_datasets():
    result = medrival_cli("datasets")
    assert result.returncode == 0, _output(result)
    flat = _flat(result.stdout)
    for expected in ("demo-xray", "demo-dermoscopy", "demo-fundus", "demo-pathology", "demo-xray-vqa",
                     "pneumonia", "binary", "multiclass"):
        assert expected in flat


def test_methods_lists_builtin_methods():
    from medrival.methods import METHODS

    result = medrival_cli("methods")
    assert result.returncode == 0, _output(result)
    flat = _flat(result.stdout)
    assert METHODS.names()
    for name in METHODS.names():
        assert name in flat
    assert "zero_shot" in flat and "linear_probe" in flat


# ----------------------------------------------------------------------------------------------- errors
def test_unknown_command_suggests_close_match():
    result = medrival_cli("modls")
    assert result.returncode == 2
    assert "'models'" in result.stderr and "Did you mean" in result.stderr
    assert "Traceback" not in _output(result)


def test_unknown_option_is_a_usage_error():
    result = medrival_cli("models", "--colour")
    assert result.returncode == 2
    assert "--colour" in result.stderr
    assert "Traceback" not in _output(result)


def test_run_missing_file_is_one_paragraph_without_traceback(tmp_path):
    result = medrival_cli("run", "no-such-study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    output = _output(result)
    assert "Traceback" not in output
    assert "no-such-study.yaml" in result.stderr and "not found" in result.stderr
    assert result.stderr.startswith("Error:")
    assert "\n\n" not in result.stderr.strip()  # one paragraph
    assert not (tmp_path / "medrival-results").exists()


_BAD_FIELD_STUDY = textwrap.dedent("""\
    name: typo-study
    models: [demo-generalist-clip]
    dataset: [demo-xray]
    methods: [zero_shot]
""")

_BAD_MODEL_STUDY = textwrap.dedent("""\
    name: typo-model
    models: [demo-specialst-clip]
    datasets: [demo-xray]
    methods: [zero_shot]
""")


def test_run_malformed_study_names_field_and_line(tmp_path):
    (tmp_path / "study.yaml").write_text(_BAD_FIELD_STUDY)
    result = medrival_cli("run", "study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in _output(result)
    assert "line 3" in result.stderr and "dataset" in result.stderr
    assert "did you mean 'datasets'" in result.stderr
    assert not (tmp_path / "medrival-results").exists()


def test_run_unknown_model_suggests_close_match(tmp_path):
    (tmp_path / "study.yaml").write_text(_BAD_MODEL_STUDY)
    result = medrival_cli("run", "study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in _output(result)
    assert "'demo-specialst-clip'" in result.stderr
    assert "Did you mean 'demo-specialist-clip'" in result.stderr
    assert "line 2" in result.stderr
    assert not (tmp_path / "medrival-results").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_traceback(tmp_path, where):
    (tmp_path / "study.yaml").write_text(_BAD_MODEL_STUDY)
    args = ["--debug", "run", "study.yaml"] if where == "before" else ["run", "study.yaml", "--debug"]
    result = medrival_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "ConfigError" in result.stderr
    assert "Did you mean 'demo-specialist-clip'" in result.stderr


# ----------------------------------------------------------------------------------------------- start-up
def test_cli_and_light_modules_do_not_import_torch():
    code = textwrap.dedent("""\
        import sys
        import medrival.cli.app, medrival.study.spec, medrival.store, medrival.report, medrival.metrics
        heavy = sorted(m for m in ("torch", "open_clip", "transformers", "peft") if m in sys.modules)
        print(",".join(heavy) or "none")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_listing_commands_do_not_import_torch():
    """``medrival models``, ``datasets`` and ``methods`` stay light (they read cards, dataset metadata and method
    declarations only)."""
    code = textwrap.dedent("""\
        import sys
        from medrival.cli.app import main
        try:
            main(sys.argv[1:])
        except SystemExit:
            pass
        print("torch" in sys.modules, file=sys.stderr)
    """)
    for command in ("models", "datasets", "methods"):
        result = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip().splitlines()[-1] == "False", command


def test_empty_study_shows_an_example_that_names_real_entries(tmp_path):
    (tmp_path / "study.yaml").write_text("# nothing yet\n")
    result = medrival_cli("run", "study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in _output(result)
    assert "empty" in result.stderr
    # The example printed for an empty file must itself be a valid study naming registered entries.
    from medrival.study.runner import plan_cells
    from medrival.study.spec import EXAMPLE_STUDY, parse_study

    assert "demo-generalist-clip" in result.stderr
    # plan_cells checks names, method configs and model/dataset support without loading any model.
    # 2 models x 1 dataset x (zero_shot once: off-the-shelf cells do not repeat per seed + linear_probe x 3 seeds)
    assert len(plan_cells(parse_study(EXAMPLE_STUDY))) == 2 * 1 * (1 + 3)


def test_run_ends_with_the_html_report(tmp_path):
    (tmp_path / "study.yaml").write_text("models: [demo-generalist-clip, demo-specialist-clip]\n"
                                         "datasets: [demo-xray]\nmethods: [zero_shot]\n")
    result = medrival_cli("run", "study.yaml", "--out", "out", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, _output(result)
    report = tmp_path / "out" / "report" / "report.html"
    assert str(report.name) in result.stdout
    page = report.read_text()
    assert "RQ1" in page and "<svg" in page and "demo-specialist-clip+zero_shot" in page
