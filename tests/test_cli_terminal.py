"""The terminal layer: tables at 80 and 120 columns (identifiers whole), --format json|csv, live progress and its
plain fallback, the end-of-run headline, ``medrival status``, exit codes (0 / 1 / 2 / 130) and Ctrl-C.

Commands run in-process through ``medrival.cli.app.main`` (as ``python -m medrival`` does); a cell is made to
fail or to be interrupted by patching ``execute_cell`` in the runner, so only two tests run real (tiny) cells.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import numpy as np
import pytest
from rich.console import Console

from medrival.cli.app import main
from medrival.core import progress
from medrival.store import CellRecord, ResultStore, utc_now

WIDTHS = (80, 120)
ANSI = "\x1b["


def run_cli(args, capsys, monkeypatch, columns: int | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``medrival ARGS``; ``columns`` as the width a pipe asks for (COLUMNS)."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def whole(name: str, text: str) -> bool:
    """``name`` appears on some line as a whole token (not a piece of a longer name, not split over lines)."""
    pattern = re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])")
    return any(pattern.search(line) for line in text.splitlines())


def assert_fits(text: str, width: int) -> None:
    long = [line for line in text.splitlines() if len(line) > width]
    assert not long, f"{len(long)} lines wider than {width}: {long[:2]}"
    assert "…" not in text and ANSI not in text


# ------------------------------------------------------------------------------------------------ listings
def _names(listing: str) -> list[str]:
    if listing == "models":
        from medrival.models.catalog import model_registry
        return model_registry().names()
    if listing == "datasets":
        from medrival.data.catalog import dataset_registry
        return dataset_registry().names()
    from medrival.methods import METHODS
    return METHODS.names()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("listing", ["models", "datasets", "methods"])
def test_listing_fits_the_width_and_never_splits_an_identifier(listing, width, capsys, monkeypatch):
    code, out, _ = run_cli([listing], capsys, monkeypatch, columns=width)
    assert code == 0
    assert_fits(out, width)
    names = _names(listing)
    assert names
    for name in names:
        assert whole(name, out), f"{name!r} is not whole on one line at {width} columns"


def test_piped_listing_keeps_every_row_on_one_line(capsys, monkeypatch):
    """``medrival models | grep biomedclip`` finds the whole row: id, role and pair on one line."""
    code, out, _ = run_cli(["models"], capsys, monkeypatch)
    assert code == 0 and ANSI not in out
    rows = [line for line in out.splitlines() if re.match(r"\s*biomedclip\s", line)]
    assert len(rows) == 1 and "specialist" in rows[0] and "clip-vit-b16" in rows[0]


@pytest.mark.parametrize("listing,key", [("models", "id"), ("datasets", "name"), ("methods", "name")])
def test_listing_as_json_and_csv(listing, key, capsys, monkeypatch):
    code, out, _ = run_cli([listing, "--format", "json"], capsys, monkeypatch, columns=80)
    assert code == 0
    records = json.loads(out)
    assert isinstance(records, list) and {r[key] for r in records} == set(_names(listing))
    code, out, _ = run_cli([listing, "--format", "csv"], capsys, monkeypatch, columns=80)
    assert code == 0 and ANSI not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r[key] for r in rows] == [r[key] for r in records]


def test_unknown_format_is_a_usage_error(capsys, monkeypatch):
    code, _, err = run_cli(["models", "--format", "yaml"], capsys, monkeypatch)
    assert code == 2 and "yaml" in err


def _fake_comparison(*args, **kwargs) -> pd.DataFrame:
    row = {"dataset": "demo-xray-vqa", "metric": "closed_accuracy", "estimate_a": 0.61, "estimate_b": 0.58,
           "difference": 0.03, "low": -0.01, "high": 0.07, "p_value": 0.2, "p_holm": 0.4, "delong_p": float("nan"),
           "verdict": "non-inferior", "n_items": 120, "n_clusters": 40}
    return pd.DataFrame([row, {**row, "dataset": "papila-suspects-as-glaucoma", "metric": "auroc"}])


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_never_shortens_a_dataset_name(width, tmp_path, capsys, monkeypatch):
    import medrival.stats.compare

    ResultStore(tmp_path)
    monkeypatch.setattr(medrival.stats.compare, "compare", _fake_comparison)
    code, out, _ = run_cli(["compare", tmp_path, "--a", "demo-generalist-vlm:vqa_lora", "--b",
                            "demo-specialist-vlm:vqa_zero_shot"], capsys, monkeypatch, columns=width)
    assert code == 0
    assert_fits(out, width)
    for name in ("demo-xray-vqa", "papila-suspects-as-glaucoma", "closed_accuracy", "non-inferior"):
        assert whole(name, out)
    code, out, _ = run_cli(["compare", tmp_path, "--a", "x", "--b", "y", "--format", "json"], capsys, monkeypatch)
    records = json.loads(out)
    assert records[0]["dataset"] == "demo-xray-vqa" and records[0]["delong_p"] is None


@pytest.mark.parametrize("width", WIDTHS)
def test_results_table_fits_with_cell_names_whole(width):
    from medrival.cli.run_summary import print_results_table

    error = "RuntimeError: weights of 'llava-med-v1.5-7b' are not here; run `hf download microsoft/llava-med` " * 2
    frame = pd.DataFrame({
        "model": ["siglip-so400m-patch14-384", "llava-med-v1.5-mistral-7b"], "role": ["generalist", "specialist"],
        "dataset": ["papila-suspects-as-glaucoma", "demo-xray-vqa"], "modality": ["fundus", "xray"],
        "domain": ["OOD", "ID"], "method": ["tip_adapter_f", "vqa_zero_shot"], "seed": [0, 1],
        "auroc": [0.81234, None], "accuracy": [0.7, None], "closed_accuracy": [None, 0.55],
        "wall_s": [12.5, 3.0], "status": ["done", "failed"], "error": [None, error]})
    console = Console(width=width, record=True, file=io.StringIO())
    print_results_table(console, frame)
    text = console.export_text()
    assert_fits(text, width)
    for name in ("siglip-so400m-patch14-384", "llava-med-v1.5-mistral-7b", "papila-suspects-as-glaucoma",
                 "demo-xray-vqa", "tip_adapter_f", "vqa_zero_shot"):
        assert whole(name, text)
    assert "microsoft/llava-med" in " ".join(text.split())  # the error is whole (wrapped, never cut)


# ------------------------------------------------------------------------------------------------ progress
def test_stage_reports_go_nowhere_by_default_and_to_the_installed_reporter():
    progress.advance()  # nothing listens: a no-op
    with progress.stage("epochs", 3):
        progress.advance()

    class Recorder(progress.StageReporter):
        def __init__(self):
            self.events = []

        def stage(self, name, total):
            self.events.append(("stage", name, total))

        def advance(self, steps=1):
            self.events.append(("advance", steps))

        def end_stage(self):
            self.events.append(("end",))

    recorder = Recorder()
    with progress.reporting_to(recorder):
        for epoch in progress.counted("epochs", range(1, 5)):
            if epoch == 3:
                break  # early stopping still ends the stage
    assert recorder.events == [("stage", "epochs", 4), ("advance", 1), ("advance", 1), ("end",)]
    progress.advance()
    assert len(recorder.events) == 4  # uninstalled on leaving the block


def test_generation_is_reported_per_batch_and_answers_are_unchanged():
    from medrival.methods.vqa_answers import _generate_in_batches

    class Model:
        calls = []

        def generate(self, images, prompts, *, max_new_tokens, batch_size):
            self.calls.append(list(prompts))
            limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
            return [f"{p}/{limit}" for p, limit in zip(prompts, limits)]

    prompts = [f"q{i}" for i in range(7)]
    limits = [4, 16, 4, 4, 16, 4, 4]
    seen = []

    class Recorder(progress.StageReporter):
        def stage(self, name, total):
            seen.append((name, total))

    model = Model()
    pictures = [np.full((4, 4, 3), value, np.uint8) for value in (1, 2, 3, 4)]
    images = [pictures[i] for i in (0, 0, 1, 2, 2, 2, 3)]  # q0, q1 on one image; q3..q5 on another
    with progress.reporting_to(Recorder()):
        replies = _generate_in_batches(model, images, prompts, limits, batch_size=2)
    assert replies == [f"q{i}/{limit}" for i, limit in enumerate(limits)]
    # generate's own units: the questions on 2 images at a time, whatever their token limits
    assert model.calls == [["q0", "q1", "q2"], ["q3", "q4", "q5", "q6"]]
    assert seen == [("generation batches", 2)]


def test_live_display_shows_counts_eta_the_running_cell_and_its_stage():
    from medrival.cli.live_display import LiveStudyDisplay

    console = Console(width=100, record=True, file=io.StringIO(), force_terminal=True)
    with LiveStudyDisplay(console) as display:
        display.planned(pending=3, total=4, reused=1)
        display.cell_started(1, "demo-generalist-clip | demo-xray | lora | seed 0")
        display.stage("epochs", 5)
        display.advance()
        display.end_stage()
        display.cell_finished(1, "x", "done", 2.0, "[1/3] demo-generalist-clip | demo-xray | lora | seed 0: done")
        display.cell_started(2, "demo-specialist-clip | demo-xray | lora | seed 0")
        assert "done 1 · failed 0 · ETA" in display.counts()
        display.live.refresh()  # what the next automatic refresh draws
        live = console.export_text(clear=False)
        display.cell_finished(2, "y", "failed", 1.0, "[2/3] demo-specialist-clip | demo-xray | lora | seed 0: FAILED")
    text = console.export_text()
    assert "1 of 4 cells already in the store" in text
    assert "[1/3] demo-generalist-clip | demo-xray | lora | seed 0: done" in text and "FAILED" in text
    assert "now [2/3]: demo-specialist-clip | demo-xray | lora | seed 0" in live
    assert "done 1 · failed 1" in display.counts()


def test_plain_output_is_one_line_per_cell_without_escape_codes():
    from medrival.cli.live_display import study_listener

    buffer = io.StringIO()
    listener = study_listener(Console(file=buffer, width=100_000), quiet=False)
    listener.planned(2, 2, 0)
    listener.cell_started(1, "m | d | zero_shot | seed 0")
    listener.cell_finished(1, "m | d | zero_shot | seed 0", "done", 2.1, "[1/2] m | d | zero_shot | seed 0: done (2.1 s)")
    assert buffer.getvalue() == "[1/2] m | d | zero_shot | seed 0: done (2.1 s)\n"


# ------------------------------------------------------------------------------------------------ runs
STUDY = "models: [demo-generalist-clip, demo-specialist-clip]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n"
# Whole, with its fix on later lines: what the CLI must never cut.
LONG_ERROR = ("weights of 'demo-generalist-clip' are neither local nor downloadable, as below.\n"
              "  1. hf download org/some-very-long-repository-name --local-dir ~/weights/demo-generalist-clip\n"
              "  2. weights: {demo-generalist-clip: ~/weights/demo-generalist-clip} in the study")


def _failing(cell, context):
    from medrival.study.cell import failure_record

    try:
        raise RuntimeError(LONG_ERROR)
    except RuntimeError as error:
        return failure_record(cell, error, utc_now(), 0.01), None


@pytest.fixture
def study(tmp_path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    return path


@pytest.mark.parametrize("allow", [False, True])
def test_failed_cells_exit_1_with_their_errors_in_full(allow, study, tmp_path, capsys, monkeypatch):
    import medrival.study.cell  # noqa: F401 - patched below
    import medrival.study.runner  # noqa: F401

    monkeypatch.setattr(medrival.study.cell, "execute_cell", _failing)
    args = ["run", study, "--out", tmp_path / "out"] + (["--allow-failures"] if allow else [])
    code, out, _ = run_cli(args, capsys, monkeypatch, columns=80)
    assert code == (0 if allow else 1)
    assert "2 cell(s) failed" in out and "medrival status" in out
    flat = " ".join(out.split())
    for line in LONG_ERROR.splitlines():
        assert " ".join(line.split()) in flat  # every line of the message, the fix steps included
    assert "…" not in out and ANSI not in out
    assert (tmp_path / "out" / "report" / "results.csv").is_file()


def test_user_error_exits_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "bad.yaml").write_text("models: [no-such-model]\ndatasets: [demo-xray]\nmethods: [zero_shot]\n")
    code, _, err = run_cli(["run", tmp_path / "bad.yaml", "--out", tmp_path / "out"], capsys, monkeypatch)
    assert code == 2 and err.startswith("Error:")


def test_ctrl_c_saves_what_finished_writes_the_report_and_exits_130_then_resumes(study, tmp_path, capsys,
                                                                                monkeypatch):
    import medrival.study.cell  # noqa: F401 - patched below
    import medrival.study.runner  # noqa: F401
    from medrival.study.cell import execute_cell

    calls = []

    def interrupt_second(cell, context):
        calls.append(cell)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return execute_cell(cell, context)

    out_dir = tmp_path / "out"
    monkeypatch.setattr(medrival.study.cell, "execute_cell", interrupt_second)
    code, out, err = run_cli(["run", study, "--out", out_dir], capsys, monkeypatch, columns=120)
    assert code == 130
    assert "Interrupted: 1 cells finished and saved; run the same command again to resume." in err
    assert (out_dir / "report" / "report.html").is_file() and "report.html" in out
    assert len(ResultStore(out_dir).records()) == 1  # the cell in flight left nothing behind

    code, out, _ = run_cli(["status", out_dir, "--format", "json"], capsys, monkeypatch)
    status = json.loads(out)
    assert code == 0 and status["state"] == "interrupted"
    assert status["totals"] == {"done": 1, "failed": 0, "pending": 1}

    monkeypatch.setattr(medrival.study.cell, "execute_cell", execute_cell)
    code, out, _ = run_cli(["run", study, "--out", out_dir], capsys, monkeypatch, columns=80)
    assert code == 0 and "reused 1 finished cells" in out
    assert_fits("\n".join(line for line in out.splitlines() if str(tmp_path) not in line), 80)  # paths stay whole
    if (out_dir / "report" / "summary.json").is_file():  # the headline: the RQ summary lines from the report
        assert re.search(r"^RQ1: ", out, re.MULTILINE)
    code, out, _ = run_cli(["status", out_dir], capsys, monkeypatch, columns=80)
    assert code == 0 and whole("demo-specialist-clip", out) and "2 done, 0 failed, 0 pending" in out


def test_ctrl_c_outside_a_study_exits_130(capsys, monkeypatch):
    import medrival.models.catalog

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(medrival.models.catalog, "model_registry", interrupted)
    code, _, err = run_cli(["models"], capsys, monkeypatch)
    assert code == 130 and "Interrupted" in err


# ------------------------------------------------------------------------------------------------ status
def _record(cid: str, model: str, status: str, finished_at: str, wall_s: float) -> CellRecord:
    return CellRecord(cid, {"model": model, "dataset": "demo-xray"}, status, {}, {"wall_s": wall_s},
                      error="boom" if status == "failed" else None, started_at=finished_at, finished_at=finished_at)


def test_status_of_a_running_study_counts_per_model_and_gives_an_eta(tmp_path, capsys, monkeypatch):
    from medrival.study.plan_file import PLAN_FILE

    store = ResultStore(tmp_path)
    store.save(_record("a", "demo-generalist-clip", "done", "2030-01-01T00:00:10+00:00", 10.0))
    store.save(_record("b", "demo-generalist-clip", "failed", "2030-01-01T00:00:20+00:00", 30.0))
    store.save(_record("c", "demo-specialist-clip", "failed", "2029-01-01T00:00:00+00:00", 99.0))  # older run
    cells = [{"cell_id": c, "model": m, "dataset": "demo-xray"} for c, m in
             [("a", "demo-generalist-clip"), ("b", "demo-generalist-clip"), ("c", "demo-specialist-clip"),
              ("d", "demo-specialist-clip")]]
    (tmp_path / PLAN_FILE).write_text(json.dumps({"study": "s", "state": "running", "pid": 1, "ended_at": None,
                                                  "started_at": "2030-01-01T00:00:00+00:00", "cells": cells}))
    code, out, _ = run_cli(["status", tmp_path, "--format", "json"], capsys, monkeypatch)
    status = json.loads(out)
    assert status["totals"] == {"done": 1, "failed": 1, "pending": 2}  # c failed before this run: it is retried
    assert status["eta_s"] == pytest.approx(2 * (10.0 + 30.0) / 2)
    groups = {g["model"]: g for g in status["groups"]}
    assert groups["demo-specialist-clip"]["pending"] == 2 and groups["demo-generalist-clip"]["failed"] == 1
    code, out, _ = run_cli(["status", tmp_path], capsys, monkeypatch, columns=80)
    assert code == 0 and "ETA 40 s" in out and "1 done, 1 failed, 2 pending of 4 planned" in out
    assert_fits(out, 80)


def test_status_of_a_folder_without_a_store_is_a_clear_error(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["status", tmp_path / "nowhere"], capsys, monkeypatch)
    assert code == 2 and "No medrival store" in err and not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------------------------------------ headline
def test_headline_prints_each_rq_summary_line_and_nothing_without_a_summary(tmp_path):
    from medrival.cli.run_summary import print_headline, read_headline

    assert read_headline(tmp_path) is None
    (tmp_path / "report").mkdir()
    summary = {"title": "My [bold]study", "html": "x", "figures": [],
               "rqs": {"RQ1": ["specialist vs generalist: 3 superior, 1 inconclusive", "second line"], "RQ2": []}}
    (tmp_path / "report" / "summary.json").write_text(json.dumps(summary))
    console = Console(width=80, record=True, file=io.StringIO())
    print_headline(console, read_headline(tmp_path))
    text = console.export_text()
    assert "My [bold]study" in text
    assert "RQ1: specialist vs generalist: 3 superior, 1 inconclusive" in text and "\n     second line" in text
