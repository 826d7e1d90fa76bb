"""Checksums of predictions files: damaged cells, v1 migration, readers that refuse, `medrival verify`."""
from __future__ import annotations

import shutil
import sqlite3
import time

import pandas as pd
import pytest

from medrival.cli.app import _exit_code, _register_commands
from medrival.core.errors import MedrivalError
from medrival.store import SCHEMA_VERSION, DamagedStoreError, ResultStore
from medrival.store import netfs
from medrival.study.results import load_results
from test_store import make_predictions, make_record


def _store_with(tmp_path, *ids):
    store = ResultStore(tmp_path)
    for i, cell in enumerate(ids):
        store.save(make_record(cell), make_predictions(seed=i))
    return store


def test_commit_records_size_and_sha256(tmp_path):
    import hashlib
    store = _store_with(tmp_path, "a")
    data = (store.paths.predictions_dir / "a.parquet").read_bytes()
    digest = store.stored_digest("a")
    assert (digest.size, digest.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert SCHEMA_VERSION == 2 and store.damaged_cells() == {}


def test_damaged_cells_name_each_kind_of_damage_and_are_not_finished(tmp_path):
    store = _store_with(tmp_path, "gone", "short", "changed", "ok")
    folder = store.paths.predictions_dir
    (folder / "gone.parquet").unlink()
    data = (folder / "short.parquet").read_bytes()
    (folder / "short.parquet").write_bytes(data[:20])
    changed = bytearray((folder / "changed.parquet").read_bytes())
    changed[10] ^= 0xFF
    (folder / "changed.parquet").write_bytes(bytes(changed))
    damaged = ResultStore(tmp_path).damaged_cells()
    assert sorted(damaged) == ["changed", "gone", "short"]
    assert damaged["gone"].startswith("missing file") and damaged["short"].startswith("wrong size")
    assert damaged["changed"].startswith("wrong checksum")
    assert store.finished_ids() == {"ok"}
    store.save(make_record("short"), make_predictions(seed=9))  # re-saving over a truncated file works
    store.save(make_record("gone"), make_predictions(seed=9))  # ... and over a missing one
    assert store.finished_ids() == {"ok", "short", "gone"}


def test_readers_refuse_a_damaged_store_with_the_fix(tmp_path):
    store = _store_with(tmp_path, *[f"c{i}" for i in range(8)])
    for i in range(7):
        (store.paths.predictions_dir / f"c{i}.parquet").unlink()
    with pytest.raises(DamagedStoreError) as caught:
        load_results(tmp_path)
    message = str(caught.value)
    assert "7 finished cells" in message and "c0: missing file" in message and "... and 2 more" in message
    assert f"medrival run STUDY.yaml --out {tmp_path}" in message and f"medrival verify {tmp_path}" in message
    assert len(caught.value.damaged) == 7


def test_v1_store_is_migrated_and_old_rows_are_checked_by_reading(tmp_path):
    store = _store_with(tmp_path, "good", "bad")
    with sqlite3.connect(store.paths.sqlite_path) as conn:  # make it look like a schema-1 store
        conn.execute("UPDATE cells SET predictions_size = NULL, predictions_sha256 = NULL")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    (store.paths.predictions_dir / "bad.parquet").write_bytes(b"not parquet at all")
    reopened = ResultStore(tmp_path)
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    damaged = reopened.damaged_cells()
    assert list(damaged) == ["bad"] and damaged["bad"].startswith("unreadable as Parquet")


def test_a_real_v1_schema_gets_the_new_columns(tmp_path):
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.executescript("""CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE cells (cell_id TEXT PRIMARY KEY, spec_json TEXT NOT NULL, status TEXT NOT NULL,
            metrics_json TEXT NOT NULL, cost_json TEXT NOT NULL, provenance_json TEXT NOT NULL, error TEXT,
            traceback TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, predictions_file TEXT);
            INSERT INTO cells VALUES ('x', '{}', 'done', '{}', '{}', '{}', NULL, NULL, '', '', NULL);""")
    store = ResultStore(tmp_path)
    assert store.finished_ids() == {"x"}
    store.save(make_record("y"), make_predictions())
    assert store.stored_digest("y") is not None


@pytest.mark.parametrize("cut", [0.5, None])
def test_truncated_or_garbage_database_is_a_clean_error(tmp_path, cut):
    store = _store_with(tmp_path, *[f"c{i}" for i in range(40)])
    path = store.paths.sqlite_path
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)] if cut else b"garbage" * 500)
    with pytest.raises(MedrivalError, match="not a usable medrival results database"):
        ResultStore(tmp_path)
    _register_commands()
    assert _exit_code(["verify", str(tmp_path)]) == 2


def test_verify_exit_codes_and_listing(tmp_path, capsys):
    _register_commands()
    assert _exit_code(["verify", str(tmp_path / "nothing")]) == 2
    store = _store_with(tmp_path, "a", "b")
    assert _exit_code(["verify", str(tmp_path)]) == 0
    (store.paths.predictions_dir / "b.parquet").unlink()
    capsys.readouterr()
    assert _exit_code(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 finished cells are damaged" in out and "b: missing file" in out and "medrival run" in out


def test_thousand_files_verify_fast(tmp_path):
    store = _store_with(tmp_path, "seed")
    source = store.paths.predictions_dir / "seed.parquet"
    digest = store.stored_digest("seed")
    row = sqlite3.connect(store.paths.sqlite_path).execute("SELECT * FROM cells").fetchone()
    rows = []
    for i in range(1000):
        shutil.copyfile(source, store.paths.predictions_dir / f"c{i}.parquet")
        rows.append((f"c{i}", *row[1:10], f"c{i}.parquet", digest.size, digest.sha256))
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        conn.executemany(f"INSERT INTO cells VALUES ({','.join('?' * 13)})", rows)
    started = time.perf_counter()
    fresh = ResultStore(tmp_path)
    assert fresh.damaged_cells() == {} and len(fresh.finished_ids()) == 1001
    assert time.perf_counter() - started < 5.0


def test_network_store_is_refused_with_the_ways_out(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw 0 0\n")
    monkeypatch.setattr(netfs, "MOUNTS_FILE", str(mounts))
    monkeypatch.delenv(netfs.ALLOW_ENV, raising=False)
    with pytest.raises(MedrivalError) as caught:
        ResultStore(tmp_path / "store")
    message = str(caught.value)
    assert "nfs4" in message and str(tmp_path) in message and "medrival merge" in message
    assert "--shard i/N" in message and netfs.ALLOW_ENV in message
    monkeypatch.setenv(netfs.ALLOW_ENV, "1")
    store = _store_with(tmp_path / "store", "a")
    with sqlite3.connect(store.paths.sqlite_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    monkeypatch.delenv(netfs.ALLOW_ENV)
    assert ResultStore(tmp_path / "store", read_only=True).finished_ids() == {"a"}  # reading is allowed


def test_local_mount_is_not_refused(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/x /mnt nfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    monkeypatch.setattr(netfs, "MOUNTS_FILE", str(mounts))
    assert netfs.network_mount(tmp_path) is None
    assert netfs.network_mount("/mnt/a/b").fstype == "nfs" and netfs.network_mount("/mntx") is None
