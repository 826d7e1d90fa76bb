"""The SQLite schema of a results store, its versions and the migration of older stores.

Version 1: ``meta`` and ``cells``. Version 2 adds to ``cells`` the size and sha256 of each predictions file (so
damage is found: ``medrival.store.integrity``) and the ``leases`` table (``medrival.store.leases``). A version-1
store is migrated in place when opened (``ALTER TABLE ADD COLUMN``, one immediate transaction, so two processes
opening it at once do not both migrate); its old rows keep NULL digests and are checked by reading the file.
"""
from __future__ import annotations

import sqlite3

from medrival.core.errors import MedrivalError
from medrival.store.leases import LEASES_SCHEMA

SCHEMA_VERSION = 2
_DIGEST_COLUMNS = (("predictions_size", "INTEGER"), ("predictions_sha256", "TEXT"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    cost_json TEXT NOT NULL,
    provenance_json TEXT NOT NULL,
    error TEXT,
    traceback TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    predictions_file TEXT,
    predictions_size INTEGER,
    predictions_sha256 TEXT
);
""" + LEASES_SCHEMA
COLUMNS = ("cell_id", "spec_json", "status", "metrics_json", "cost_json", "provenance_json", "error",
           "traceback", "started_at", "finished_at", "predictions_file", "predictions_size", "predictions_sha256")


def unusable(path, exc: BaseException) -> MedrivalError:
    """The error for a ``results.sqlite`` that is not a database, or a damaged (truncated, overwritten) one."""
    return MedrivalError(
        f"{str(path)!r} is not a usable medrival results database ({exc}): it is not an SQLite file, or it was "
        "truncated or overwritten. Point the study at a fresh results directory, or move the damaged file away "
        "(restore it from a backup if you have one) and run the study again to redo its cells.")


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """A corrupt or foreign file, as opposed to a busy database or a bad statement (OperationalError)."""
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in str(exc) or "not a database" in str(exc)


def create_or_upgrade(conn: sqlite3.Connection, path) -> None:
    """Create missing tables, migrate a version-1 store, refuse a newer one, and check the file is whole."""
    # Readers of a current store write nothing (a write would wait for a running study's write lock).
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'").fetchone() is None:
        conn.executescript(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.commit()
    found = int(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise MedrivalError(f"{str(path)!r} has schema version {found}, newer than this medrival understands "
                            f"({SCHEMA_VERSION}). Upgrade medrival to read it.")
    if found < SCHEMA_VERSION:
        _migrate(conn)
    # A truncated file can still open and answer the first queries; quick_check reads every page once.
    problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        raise sqlite3.DatabaseError(f"database disk image is malformed: {problem}")


def _migrate(conn: sqlite3.Connection) -> None:
    conn.isolation_level = None
    conn.execute("BEGIN IMMEDIATE")  # re-read the columns under the write lock: another opener may have migrated
    try:
        have = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
        for name, kind in _DIGEST_COLUMNS:
            if name not in have:
                conn.execute(f"ALTER TABLE cells ADD COLUMN {name} {kind}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.isolation_level = ""
