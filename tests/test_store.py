"""ResultStore: round trips, upserts, NaN metrics, crash safety and concurrent reading."""
from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import DataError, MedrivalError
from medrival.store import SCHEMA_VERSION, CellRecord, ResultStore

DEAD_PID = 2**22 + 1  # above Linux's largest pid_max, so never a live process


def make_record(cell_id: str = "clip__toy__linear__s0", status: str = "done", *, model: str = "clip",
                dataset: str = "toy", method: str = "linear", seed: int = 0, metrics: dict | None = None,
                cost: dict | None = None, **extra) -> CellRecord:
    spec = {"model": model, "dataset": dataset, "method": method, "seed": seed, "method_config": {"lr": 0.01},
            "role": "generalist", "modality": "xray", "domain": "ID", "task": "binary"}
    if status == "failed":
        extra.setdefault("error", "RuntimeError: CUDA out of memory")
        extra.setdefault("traceback", "Traceback (most recent call last):\n  ...\nRuntimeError: boom")
    return CellRecord(
        cell_id=cell_id, spec=spec, status=status,
        metrics=({"auroc": 0.875, "accuracy": 0.8} if metrics is None else metrics) if status == "done" else {},
        cost={"wall_s": 1.25, "encode_s": 0.5, "fit_s": 0.7, "trainable_params": 1026} if cost is None else cost,
        provenance={"python": "3.11", "git_commit": "abc123", "seed": seed},
        started_at="2025-01-01T00:00:00+00:00", finished_at="2025-01-01T00:00:01+00:00", **extra)


def make_predictions(n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"img{i:03d}" for i in range(n)],
        "label": rng.integers(0, 2, n),
        "prob": rng.random(n),
        "pred": rng.integers(0, 2, n).astype(np.int8),
        "correct": rng.random(n) > 0.5,
    })


def sqlite_rows(store: ResultStore) -> list[tuple]:
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        return conn.execute("SELECT cell_id, status, predictions_file FROM cells ORDER BY cell_id").fetchall()


def leftovers(store: ResultStore) -> list[str]:
    return sorted(p.name for p in store.paths.predictions_dir.iterdir())


# -- layout and opening -------------------------------------------------------------------------------------------

def test_new_root_is_created_with_layout(tmp_path):
    root = tmp_path / "a" / "b" / "results"
    store = ResultStore(root)
    assert store.paths.sqlite_path == root / "results.sqlite" and store.paths.sqlite_path.is_file()
    assert store.paths.predictions_dir == root / "predictions" and store.paths.predictions_dir.is_dir()
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION
    assert store.records() == [] and store.finished_ids() == set()
    ResultStore(root)  # reopening an existing store is fine


def test_root_that_is_a_file_raises(tmp_path):
    path = tmp_path / "results"
    path.write_text("not a directory")
    with pytest.raises(MedrivalError, match="is a file"):
        ResultStore(path)


def test_corrupt_database_raises_medrival_error(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(MedrivalError, match="not a usable medrival results database"):
        ResultStore(tmp_path)


def test_newer_schema_version_is_refused(tmp_path):
    ResultStore(tmp_path)
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(MedrivalError, match="newer"):
        ResultStore(tmp_path)


# -- round trips --------------------------------------------------------------------------------------------------

def test_record_and_predictions_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    record, preds = make_record(), make_predictions()
    store.save(record, preds)
    assert store.get(record.cell_id) == record
    assert store.records() == [record]
    pd.testing.assert_frame_equal(store.predictions(record.cell_id), preds, check_exact=True)
    assert (store.paths.predictions_dir / f"{record.cell_id}.parquet").is_file()
    assert store.get("no-such-cell") is None


def test_predictions_with_custom_index_and_unsafe_cell_id(tmp_path):
    store = ResultStore(tmp_path)
    preds = make_predictions().set_index("id")
    cell_id = "org/model:v1|data set/../x"
    store.save(make_record(cell_id), preds)
    pd.testing.assert_frame_equal(store.predictions(cell_id), preds, check_exact=True)
    files = leftovers(store)
    assert len(files) == 1 and files[0].endswith(".parquet") and "/" not in files[0]
    assert not (tmp_path / "x.parquet").exists()  # the id cannot escape the predictions directory


def test_nan_and_infinite_metrics_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    metrics = {"auroc": float("nan"), "accuracy": 0.5, "ece": np.float64(0.125), "ratio": float("inf"),
               "neg": float("-inf")}
    store.save(make_record(metrics=metrics, cost={"wall_s": float("nan")}))
    got = store.get("clip__toy__linear__s0")
    assert math.isnan(got.metrics["auroc"])
    assert got.metrics["accuracy"] == 0.5 and got.metrics["ece"] == 0.125
    assert got.metrics["ratio"] == math.inf and got.metrics["neg"] == -math.inf
    assert got.cost == {"wall_s": None}  # non-metric NaNs are stored as null (strict JSON)

    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token} stored")
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        for row in conn.execute("SELECT spec_json, metrics_json, cost_json, provenance_json FROM cells"):
            for text in row:
                json.loads(text, parse_constant=refuse)
    assert math.isnan(store.results_frame().loc[0, "auroc"])


def test_saving_again_upserts_one_row(tmp_path):
    store = ResultStore(tmp_path)
    failed = make_record(status="failed")
    store.save(failed)
    assert store.get(failed.cell_id).status == "failed"
    assert store.finished_ids() == set()  # failed cells are retried on re-run
    done = make_record()
    store.save(done, make_predictions())
    store.save(done, make_predictions())
    assert sqlite_rows(store) == [(done.cell_id, "done", f"{done.cell_id}.parquet")]
    got = store.get(done.cell_id)
    assert got.error is None and got.traceback is None and got == done
    assert store.finished_ids() == {done.cell_id}


def test_finished_ids_excludes_failed(tmp_path):
    store = ResultStore(tmp_path)
    store.save(make_record("a"), make_predictions())
    store.save(make_record("b", status="failed"))
    store.save(make_record("c"))
    assert store.finished_ids() == {"a", "c"}
    assert [r.cell_id for r in store.records()] == ["a", "b", "c"]


def test_resave_replaces_predictions_and_removes_stale_file(tmp_path):
    store = ResultStore(tmp_path)
    store.save(make_record(), make_predictions(seed=1))
    new = make_predictions(n=9, seed=2)
    store.save(make_record(), new)
    pd.testing.assert_frame_equal(store.predictions("clip__toy__linear__s0"), new, check_exact=True)
    assert leftovers(store) == ["clip__toy__linear__s0.parquet"]
    store.save(make_record(status="failed"))  # a later failure without predictions drops the old file
    assert leftovers(store) == []
    with pytest.raises(MedrivalError, match="no stored predictions"):
        store.predictions("clip__toy__linear__s0")


def test_predictions_absent_raise_clear_errors(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(MedrivalError, match="No result for cell 'nope'"):
        store.predictions("nope")
    store.save(make_record("f", status="failed"))
    with pytest.raises(MedrivalError, match="status 'failed' and no stored predictions"):
        store.predictions("f")
    store.save(make_record("d"), make_predictions())
    (store.paths.predictions_dir / "d.parquet").unlink()
    with pytest.raises(MedrivalError, match="is missing"):
        store.predictions("d")


def test_invalid_input_raises_data_error(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(DataError, match="status 'running'"):
        store.save(make_record(status="running"))
    with pytest.raises(DataError, match="DataFrame"):
        store.save(make_record(), predictions=[1, 2, 3])
    with pytest.raises(DataError, match="non-empty string"):
        store.save(make_record(cell_id=""))
    assert sqlite_rows(store) == [] and leftovers(store) == []


# -- crash safety -------------------------------------------------------------------------------------------------

class _CommitCrashes(sqlite3.Connection):
    """A connection whose commit dies, the way a kill between the Parquet rename and the commit would."""

    parquet_seen_at_commit: list[str] = []

    def commit(self):
        directory = os.path.join(os.path.dirname(self.db_path), "predictions")
        _CommitCrashes.parquet_seen_at_commit = sorted(f for f in os.listdir(directory) if f.endswith(".parquet"))
        raise RuntimeError("killed during commit")


def test_crash_at_commit_leaves_no_row_and_resave_works(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.save(make_record("other"), make_predictions())

    def crashing_connect():
        conn = sqlite3.connect(store.paths.sqlite_path, timeout=5, factory=_CommitCrashes)
        conn.db_path = str(store.paths.sqlite_path)
        return conn
    monkeypatch.setattr(store, "_connect", crashing_connect)
    with pytest.raises(RuntimeError, match="killed during commit"):
        store.save(make_record(), make_predictions())
    assert "clip__toy__linear__s0.parquet" in _CommitCrashes.parquet_seen_at_commit  # file came first
    monkeypatch.undo()

    fresh = ResultStore(tmp_path)
    assert fresh.get("clip__toy__linear__s0") is None
    assert fresh.finished_ids() == {"other"}
    assert leftovers(fresh) == ["other.parquet"]  # the orphan file was removed, no temp file remains
    preds = make_predictions(seed=5)
    fresh.save(make_record(), preds)
    pd.testing.assert_frame_equal(fresh.predictions("clip__toy__linear__s0"), preds, check_exact=True)
    assert fresh.finished_ids() == {"other", "clip__toy__linear__s0"}


def _write_half_then_fail(self, path, *args, **kwargs):
    with open(path, "wb") as fh:
        fh.write(b"PAR1 half a parquet file")
    raise OSError("disk full while writing parquet")


def test_crash_while_writing_parquet_leaves_no_row_and_no_partial_file(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.save(make_record(), make_predictions())
    assert sqlite_rows(store) == [] and leftovers(store) == []


def test_failed_overwrite_of_a_done_cell_leaves_it_to_be_redone(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.save(make_record(), make_predictions(seed=1))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _write_half_then_fail)
    with pytest.raises(OSError):
        store.save(make_record(metrics={"auroc": 0.1}), make_predictions(seed=2))
    # Never the old row with a new file or the reverse: the cell is simply not finished any more.
    assert sqlite_rows(store) == [] and leftovers(store) == [] and store.finished_ids() == set()


_KILL_SCRIPT = textwrap.dedent("""
    import os, sqlite3, sys
    import numpy as np, pandas as pd
    from medrival.store import CellRecord, ResultStore
    root, where = sys.argv[1], sys.argv[2]
    store = ResultStore(root)
    record = CellRecord("killed", {"model": "m", "dataset": "d", "method": "x", "seed": 0}, "done", {"auroc": 0.5})
    preds = pd.DataFrame({"id": ["a", "b"], "prob": [0.1, 0.9]})
    if where == "parquet":
        real = pd.DataFrame.to_parquet
        def die_midway(self, path, *a, **k):
            real(self, path, *a, **k)
            with open(path, "r+b") as fh:
                fh.truncate(10)  # a torn write
            os._exit(9)
        pd.DataFrame.to_parquet = die_midway
    else:
        class Dies(sqlite3.Connection):
            def commit(self):
                os._exit(9)
        store._connect = lambda: sqlite3.connect(store.paths.sqlite_path, factory=Dies)
    store.save(record, preds)
""")


@pytest.mark.parametrize("where", ["parquet", "commit"])
def test_hard_kill_leaves_a_consistent_store(tmp_path, where):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path), where], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    names = sorted(os.listdir(tmp_path / "predictions"))
    if where == "parquet":  # killed mid-write: only the torn temp file exists
        assert len(names) == 1 and names[0].endswith(".tmp")
    else:  # killed after the rename, before the commit: a complete file that no row points at
        assert names == ["killed.parquet"]
    store = ResultStore(tmp_path)  # opening removes the dead writer's temp file
    assert store.get("killed") is None and store.finished_ids() == set()
    assert all(n == "killed.parquet" for n in leftovers(store))
    preds = make_predictions()
    store.save(make_record("killed"), preds)
    pd.testing.assert_frame_equal(store.predictions("killed"), preds, check_exact=True)


def test_leftover_temp_files_are_ignored_and_cleaned_on_open(tmp_path):
    store = ResultStore(tmp_path)
    directory = store.paths.predictions_dir
    dead = directory / f".cell.{DEAD_PID}.deadbeef.tmp"
    live = directory / f".cell.{os.getpid()}.0badf00d.tmp"
    stale = directory / f".old.cell.{os.getpid()}.12345678.tmp"
    for path in (dead, live, stale):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    assert store.finished_ids() == set() and store.records() == []  # ignored
    ResultStore(tmp_path)
    assert leftovers(store) == [live.name]  # a live writer's file is kept


# -- concurrency --------------------------------------------------------------------------------------------------

def test_reader_reads_while_a_writer_holds_a_transaction(tmp_path):
    store = ResultStore(tmp_path)
    store.save(make_record("a"), make_predictions())
    writer = sqlite3.connect(store.paths.sqlite_path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE cells SET status = 'failed' WHERE cell_id = 'a'")
        started = time.monotonic()
        assert store.finished_ids() == {"a"}  # sees the last committed state, without waiting
        assert len(store.results_frame()) == 1 and len(store.predictions("a")) == 6
        assert time.monotonic() - started < 5
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert store.finished_ids() == set()


def test_concurrent_reader_and_writer_threads(tmp_path):
    store = ResultStore(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write():
        try:
            for i in range(25):
                store.save(make_record(f"cell{i:02d}", seed=i), make_predictions(seed=i))
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            stop.set()

    def read():
        reader = ResultStore(tmp_path)
        try:
            while not stop.is_set():
                for cell_id in reader.finished_ids():
                    assert len(reader.predictions(cell_id)) == 6  # a visible row always has its file
                reader.results_frame()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(store.finished_ids()) == 25


# -- results frame ------------------------------------------------------------------------------------------------

def test_results_frame_columns_rows_and_order(tmp_path):
    store = ResultStore(tmp_path)
    store.save(make_record("z", dataset="b_ds", model="m1", seed=1, metrics={"auroc": 0.9, "ece": 0.1}))
    store.save(make_record("y", dataset="a_ds", model="m2", seed=0, metrics={"accuracy": 0.7}))
    store.save(make_record("x", dataset="a_ds", model="m1", seed=1, metrics={"auroc": 0.6}))
    store.save(make_record("w", dataset="a_ds", model="m1", seed=0, status="failed"))
    frame = store.results_frame()
    assert list(frame.columns) == [
        "cell_id", "status", "model", "role", "dataset", "modality", "domain", "task", "method", "method_label",
        "budget", "draw", "seed", "config", "accuracy", "auroc", "ece", "wall_s", "trainable_params", "peak_rss_mb",
        "error"]
    assert frame.shape == (4, 21)
    assert list(frame["cell_id"]) == ["w", "x", "y", "z"]  # sorted by dataset, model, method, seed
    failed = frame.iloc[0]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: CUDA out of memory"
    assert all(math.isnan(failed[m]) for m in ("accuracy", "auroc", "ece"))
    assert frame.loc[1, "auroc"] == 0.6 and math.isnan(frame.loc[1, "accuracy"])
    assert list(frame["wall_s"]) == [1.25] * 4 and list(frame["trainable_params"]) == [1026] * 4
    assert frame["seed"].tolist() == [0, 1, 0, 1]


def test_results_frame_empty_and_synthetic(tmp_path):
    store = ResultStore(tmp_path)
    empty = store.results_frame()
    assert empty.empty and "cell_id" in empty.columns and "error" in empty.columns
    record = make_record()
    record.spec["synthetic"] = True
    store.save(record)
    store.save(make_record("b", metrics={"seed": 3.0}))  # a metric named like a column keeps both
    frame = store.results_frame()
    assert list(frame["cell_id"]) == ["b", record.cell_id]  # equal sort keys: stable, by cell id
    assert list(frame["synthetic"]) == [False, True]
    assert frame["seed"].tolist() == [0, 0] and "metric_seed" in frame.columns


# -- outdated VQA cells -------------------------------------------------------------------------------------------

def _vqa_record(cell_id: str, *, metrics: dict, cost: dict | None = None, rules: dict | None = None,
                status: str = "done") -> CellRecord:
    record = make_record(cell_id, status, metrics=metrics, cost=cost or {})
    record.spec = {**record.spec, "task": "vqa", **({"vqa_rules": rules} if rules is not None else {})}
    return record


def test_outdated_vqa_cells_are_recognised_and_left_out_of_the_frame(tmp_path):
    from medrival.store import is_outdated_vqa, outdated_vqa_note
    from medrival.store.results import current_vqa_rules

    rules = current_vqa_rules()
    assert set(rules) == {"prompt", "form", "normalisation", "extraction"}
    new = {"closed_accuracy": 0.5, "open_token_f1": 0.25, "n_open": 4.0}
    old = {"closed_accuracy": 0.5, "token_f1": 0.4, "closed_auroc": 0.7, "n_open": 4.0}
    records = {
        "current": _vqa_record("current", metrics=new, rules=rules,
                               cost={"normalisation_version": rules["normalisation"]}),
        "hand-built": _vqa_record("hand-built", metrics=new),  # no versions recorded: judged by its metric names
        "normalisation-1": _vqa_record("normalisation-1", metrics=new, cost={"normalisation_version": "1"}),
        "old-names": _vqa_record("old-names", metrics=old),
        "other-rules": _vqa_record("other-rules", metrics=new, rules={**rules, "extraction": "0"}),
        "failed-old": _vqa_record("failed-old", metrics={}, cost={"normalisation_version": "1"}, status="failed"),
        "classification": make_record("classification", metrics={"token_f1": 0.3}),
    }
    outdated = {name for name, record in records.items() if is_outdated_vqa(record)}
    assert outdated == {"normalisation-1", "old-names", "other-rules"}
    assert outdated_vqa_note([records["current"]]) is None
    one = outdated_vqa_note([records["old-names"]])
    assert one.startswith("1 VQA cell in this store was scored by earlier VQA rules")
    assert "`medrival run STUDY.yaml --out DIR`" in one

    store = ResultStore(tmp_path)
    for record in records.values():
        store.save(record)
    frame = store.results_frame()
    assert set(frame["cell_id"]) == set(records) - outdated
    assert "closed_auroc" not in frame.columns  # only the outdated cell had it
    assert set(store.results_frame(include_outdated=True)["cell_id"]) == set(records)
