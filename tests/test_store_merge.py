"""merge_stores / `medrival merge`: idempotent, verified, refusing conflicts and damage by name."""
from __future__ import annotations

import json

import pytest

from medrival.cli.app import _exit_code, _register_commands
from medrival.core.errors import MedrivalError
from medrival.store import ResultStore
from medrival.store.merge import merge_stores
from test_store import make_predictions, make_record


def _store(root, cells, *, settings=None):
    store = ResultStore(root)
    for cell_id, status, seed in cells:
        store.save(make_record(cell_id, status), make_predictions(seed=seed) if status == "done" else None)
    if settings is not None:
        (root / "analysis.json").write_text(json.dumps(settings))
    return store


def test_merge_combines_keeps_identical_once_and_is_idempotent(tmp_path):
    a = _store(tmp_path / "a", [("x", "done", 1), ("shared", "done", 3), ("f", "failed", 0)], settings={"m": 1})
    _store(tmp_path / "b", [("y", "done", 2), ("shared", "done", 3), ("f", "done", 4)], settings={"m": 1})
    summary = merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    out = ResultStore(tmp_path / "out")
    assert sorted(summary.added) == ["f", "shared", "x", "y"] and out.damaged_cells() == {}
    assert out.finished_ids() == {"x", "y", "shared", "f"}  # the done "f" beat the failed one
    assert len(out.get("shared").provenance["merged_from"]) == 2
    assert out.stored_digest("x") == a.stored_digest("x")
    assert json.loads((tmp_path / "out" / "analysis.json").read_text()) == {"m": 1}
    again = merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert again.added == [] and sorted(again.unchanged) == ["f", "shared", "x", "y"]


def test_different_results_for_one_cell_refuse_and_write_nothing(tmp_path):
    _store(tmp_path / "a", [("x", "done", 1), ("ok", "done", 5)])
    _store(tmp_path / "b", [("x", "done", 2)])
    with pytest.raises(MedrivalError) as caught:
        merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    message = str(caught.value)
    assert "'x'" in message and str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "Nothing was merged" in message and ResultStore(tmp_path / "out").records() == []


def test_damaged_source_cells_and_different_settings_refuse(tmp_path):
    a = _store(tmp_path / "a", [("x", "done", 1)], settings={"m": 1})
    _store(tmp_path / "b", [("y", "done", 2)], settings={"m": 2})
    with pytest.raises(MedrivalError, match="different analysis settings"):
        merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    (a.paths.predictions_dir / "x.parquet").unlink()
    with pytest.raises(MedrivalError, match="x: missing file"):
        merge_stores([tmp_path / "a"], tmp_path / "out")


def test_merge_command(tmp_path, capsys):
    _register_commands()
    _store(tmp_path / "a", [("x", "done", 1)])
    assert _exit_code(["merge", str(tmp_path / "a"), "--out", str(tmp_path / "out")]) == 0
    assert "1 cells merged in" in capsys.readouterr().out
    assert _exit_code(["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2


def test_plans_are_combined(tmp_path):
    for name, cell in (("a", "x"), ("b", "y")):
        _store(tmp_path / name, [(cell, "done", 1 if cell == "x" else 2)])
        (tmp_path / name / "plan.json").write_text(json.dumps(
            {"study": "s", "started_at": "2025", "ended_at": "2026", "state": "finished", "pid": 1,
             "cells": [{"cell_id": cell}]}))
    merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert sorted(c["cell_id"] for c in plan["cells"]) == ["x", "y"] and plan["state"] == "finished"
    assert plan["pid"] is None
