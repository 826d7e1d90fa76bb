"""The results store: one SQLite row per cell plus one Parquet file of per-sample predictions per cell.

Crash safety is the point of this module. A study can be killed at any moment (Ctrl-C, OOM, a pre-empted GPU
node) and must resume by redoing only the cells that have no complete result. The rules that guarantee it:

* The predictions Parquet is written to a temporary file in the same directory and ``os.replace``d into place
  (atomic on POSIX and Windows) *before* the SQLite row is committed, in one transaction. So a row, once
  visible, always points at a complete file; a kill before the commit leaves no new row and the cell is redone.
* Re-saving a cell whose row already points at a predictions file first deletes that row (committed), because
  the file is about to be overwritten under the same name: the old row must never describe the new file.
* Temporary files carry the writer's pid; those of dead writers are removed when a store is opened.

Concurrency: a connection per operation, WAL journal and a busy timeout, so readers (a report, ``status``)
work while a study writes. Several writers share a store's cells through leases (``claim``/``heartbeat``,
``medrival.store.leases``); a store on a network file system is refused for writing (``medrival.store.netfs``).

Integrity (schema 2): each row records its predictions file's size and sha256; a finished cell whose file is
missing or changed is *damaged* (``damaged_cells``), is not finished (so a re-run redoes it), and makes readers
refuse the store (``require_intact``, ``open_intact_store``); ``medrival verify DIR`` lists such cells.

Outdated VQA cells: a VQA cell scored by earlier VQA rules (normalisation version "1", the old metric names such as
``token_f1`` = token F1 over *all* questions, or ``vqa_rules`` other than this medrival's) is kept in the store but
left out of every result a reader sees (``results_frame``, ``load_results``, the report, the RQ tables,
``compare``), with one note (``outdated_vqa_note``) naming how many and the command that re-runs them.
"""
from __future__ import annotations

import enum
import json
import math
import os
import sqlite3
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from medrival.core.errors import DataError, MedrivalError
from medrival.store import leases, netfs, schema
from medrival.store.files import (FileDigest, atomic_write_parquet, clean_temp_files, file_stem,  # noqa: F401
                                  pid_alive)
from medrival.store.integrity import DamagedStoreError, DigestCache, damaged_message, file_problem, repair_hint
from medrival.store.leases import Lease
from medrival.store.schema import COLUMNS as _COLUMNS
from medrival.store.schema import SCHEMA_VERSION  # noqa: F401 (re-exported)

_BUSY_TIMEOUT_S = 30.0
_STATUSES = ("done", "failed")
_SPEC_COLUMNS = ("model", "role", "dataset", "modality", "domain", "task", "method", "method_label", "budget",
                 "draw", "seed")
_COST_COLUMNS = ("wall_s", "trainable_params", "peak_rss_mb")
_SORT_KEYS = ["dataset", "model", "method", "budget", "draw", "seed"]


def config_text(config: dict | None) -> str:
    """A method config as canonical JSON (sorted keys): the key that tells two configs of one method apart."""
    return json.dumps(config or {}, sort_keys=True, separators=(",", ":"), default=str)


def utc_now() -> str:
    """Current time as ISO-8601 UTC, the format of ``started_at``/``finished_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class CellRecord:
    """Everything the store keeps about one cell, except its per-sample predictions."""

    cell_id: str
    spec: dict
    status: str  # "done" | "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    started_at: str = ""
    finished_at: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Outdated VQA cells: numbers under names that meant something else when they were written.
# ---------------------------------------------------------------------------------------------------------------

VQA_TASK = "vqa"
RERUN_COMMAND = "medrival run STUDY.yaml --out DIR"
# Metric names of the first VQA scoring (token_f1 was averaged over every question, closed ones included).
_LEGACY_VQA_METRICS = ("token_f1", "exact_match", "token_recall", "bleu1", "rouge_l", "closed_auroc")


class OutdatedResultsWarning(UserWarning):
    """The store holds VQA cells scored by earlier rules; they were left out (see ``outdated_vqa_note``)."""


def current_vqa_rules() -> dict[str, str]:
    """The VQA rule versions this medrival scores with (prompt, form, normalisation, extraction)."""
    from medrival.metrics.vqa import VQA_VERSIONS  # imported here: only VQA stores need the scoring rules

    return {str(rule): str(version) for rule, version in VQA_VERSIONS.items()}


def is_outdated_vqa(record: CellRecord) -> bool:
    """True for a finished VQA cell scored by earlier rules: normalisation version "1", the old metric names
    without ``open_token_f1``, or recorded ``vqa_rules`` that differ from ``current_vqa_rules()``. Such a cell's
    numbers must not be averaged or compared with current ones (``closed_accuracy`` is a name in both)."""
    if record.status != "done" or (record.spec or {}).get("task") != VQA_TASK:
        return False
    cost, metrics = record.cost or {}, record.metrics or {}
    if str(cost.get("normalisation_version")) == "1":
        return True
    if "open_token_f1" not in metrics and any(name in metrics for name in _LEGACY_VQA_METRICS):
        return True
    rules = record.spec.get("vqa_rules")
    return isinstance(rules, dict) and {str(k): str(v) for k, v in rules.items()} != current_vqa_rules()


def outdated_vqa_note(records) -> str | None:
    """The one note every reader shows when ``records`` hold outdated VQA cells (None when they hold none)."""
    n = sum(is_outdated_vqa(record) for record in records)
    if not n:
        return None
    cells = "1 VQA cell" if n == 1 else f"{n} VQA cells"
    verb = "was" if n == 1 else "were"
    return (f"{cells} in this store {verb} scored by earlier VQA rules (metric names such as token_f1 and "
            f"closed_accuracy meant something else then) and {'is' if n == 1 else 'are'} left out of these results. "
            f"Re-run the study to score {'it' if n == 1 else 'them'} again: `{RERUN_COMMAND}` (the cell ids "
            f"changed, so {'it runs' if n == 1 else 'they run'} again; the old rows stay in the store, ignored).")


def warn_outdated_vqa(records, stacklevel: int = 2) -> set[str]:
    """Warn once (``OutdatedResultsWarning``) when ``records`` hold outdated VQA cells; returns their ids."""
    note = outdated_vqa_note(records)
    if note is not None:
        warnings.warn(note, OutdatedResultsWarning, stacklevel=stacklevel + 1)
    return {record.cell_id for record in records if is_outdated_vqa(record)}


# ---------------------------------------------------------------------------------------------------------------
# JSON encoding. Strict JSON has no NaN/Infinity; metrics are NaN whenever a metric is undefined (one class only),
# so they must survive a round trip: NaN is stored as null, infinities as the strings "inf"/"-inf".
# ---------------------------------------------------------------------------------------------------------------

def _plain(obj: Any) -> Any:
    """``json.dumps`` default hook: numpy scalars/arrays, paths, enums, sets and tuples into JSON types."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in the results store: {obj!r}")


def _finite_or_none(obj: Any) -> Any:
    """Replace non-finite floats by None at any depth, so strict JSON accepts spec/cost/provenance."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    # Convert through _plain first so numpy floats are seen as floats by _finite_or_none.
    plain = json.loads(json.dumps(obj, default=_plain, allow_nan=True))
    return json.dumps(_finite_or_none(plain), allow_nan=False, sort_keys=True)


def _encode_metrics(metrics: dict) -> str:
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        value = _plain(value) if hasattr(value, "item") else value
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, float) and math.isinf(value):
            value = "inf" if value > 0 else "-inf"
        out[str(name)] = value
    return json.dumps(out, default=_plain, allow_nan=False, sort_keys=True)


def _decode_metrics(text: str) -> dict[str, float]:
    def restore(v: Any) -> Any:
        if v is None:
            return float("nan")
        if v in ("inf", "-inf"):
            return float(v)
        return v
    return {k: restore(v) for k, v in json.loads(text).items()}


# ---------------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------------

PREDICTION_SPLITS = ("test", "val")
SPLIT_COLUMN = "split"  # which split a stored prediction row belongs to
# Kept under their old names: files.py now holds them.
_file_stem, _clean_temp_files, _pid_alive = file_stem, clean_temp_files, pid_alive
_DIGEST_SQL = "SELECT cell_id, status, predictions_file, predictions_size, predictions_sha256 FROM cells"


@dataclass(frozen=True)
class StorePaths:
    root: Path
    sqlite_path: Path
    predictions_dir: Path


class ResultStore:
    """Cell results under ``root``: ``results.sqlite`` (one row per cell) and ``predictions/<cell_id>.parquet``.

    ``read_only``: open an existing store to read it (no folder or temp-file changes, writes refused; allowed on
    a network file system). ``single_writer``: the caller is the only writer (``merge``), which makes a network
    file system acceptable in the safe mode (see ``medrival.store.netfs``)."""

    def __init__(self, root: str | Path, *, read_only: bool = False, single_writer: bool = False):
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise MedrivalError(
                f"Results directory {str(root)!r} exists but is a file, not a directory. "
                "Pass a directory path (it is created if missing) or move the file away.")
        self._paths = StorePaths(root, root / "results.sqlite", root / "predictions")
        self._read_only = read_only
        self._digests = DigestCache()
        self._network = netfs.network_mount(root)
        if self._network is not None and not (read_only or single_writer or netfs.network_allowed()):
            raise MedrivalError(netfs.refusal(root, self._network))
        if read_only:
            require_store(root)
        else:
            try:
                self._paths.predictions_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MedrivalError(f"Cannot create results directory {str(root)!r}: {exc}.") from exc
        self._init_db()
        if not read_only:
            clean_temp_files(self._paths.predictions_dir)

    @property
    def paths(self) -> StorePaths:
        return self._paths

    @property
    def root(self) -> Path:
        return self._paths.root

    def _connect(self) -> sqlite3.Connection:
        # A fresh connection per operation: safe across threads and never holds a lock between calls.
        conn = sqlite3.connect(self._paths.sqlite_path, timeout=_BUSY_TIMEOUT_S)
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _init_db(self) -> None:
        conn = None
        try:
            conn = self._connect()
            if self._network is None:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block on the writer
            elif not self._read_only:
                conn.execute("PRAGMA journal_mode=DELETE")  # the network safe mode: no shared-memory WAL index
            schema.create_or_upgrade(conn, self._paths.sqlite_path)
        except sqlite3.DatabaseError as exc:
            raise schema.unusable(self._paths.sqlite_path, exc) from exc
        finally:
            if conn is not None:
                conn.close()

    def _writable(self) -> None:
        if self._read_only:
            raise MedrivalError(f"The store {str(self.root)!r} was opened read-only (to report on it); open it "
                                "with ResultStore(path) to write.")

    # -- writing ------------------------------------------------------------------------------------------------

    def save(self, record: CellRecord, predictions: pd.DataFrame | None = None, *, owner: str | None = None) -> None:
        """Insert or replace the row of ``record.cell_id``; with ``predictions``, its Parquet file too (its size
        and sha256 go in the row). The cell's lease is released in the same transaction: ``owner``'s lease, or
        whichever lease it has when ``owner`` is None (the saver is then the store's one writer)."""
        self._writable()
        row = self._row(record)
        if predictions is not None and not isinstance(predictions, pd.DataFrame):
            raise DataError(f"predictions for cell {record.cell_id!r} must be a pandas DataFrame, "
                            f"got {type(predictions).__name__}.")
        write = None if predictions is None else (lambda target: atomic_write_parquet(predictions, target))
        self._commit(row, write, owner)

    def _commit(self, row: dict[str, Any], write_file, owner: str | None) -> None:
        """Order matters (see the module docstring): drop a row (and file) that the new file would overwrite,
        write the file atomically (``write_file(target) -> FileDigest``), then commit the new row. Any failure
        leaves no row, or the old complete one."""
        old_file = self._predictions_file_of(row["cell_id"])
        target = None
        if write_file is not None:
            target = self._paths.predictions_dir / f"{file_stem(row['cell_id'])}.parquet"
            row["predictions_file"] = target.name
            if old_file is not None:  # from here until the commit below the cell reads as "not run"
                self._delete_row(row["cell_id"])
                (self._paths.predictions_dir / old_file).unlink(missing_ok=True)
            digest = write_file(target)
            row["predictions_size"], row["predictions_sha256"] = digest.size, digest.sha256
        try:
            self._write_row(row, owner)
        except BaseException:
            if target is not None:  # no row points at it any more; do not leave an orphan behind
                target.unlink(missing_ok=True)
            raise
        if old_file is not None and old_file != row["predictions_file"]:
            (self._paths.predictions_dir / old_file).unlink(missing_ok=True)

    def _row(self, record: CellRecord) -> dict[str, Any]:
        if not isinstance(record, CellRecord):
            raise DataError(f"ResultStore.save expects a CellRecord, got {type(record).__name__}.")
        if not record.cell_id or not isinstance(record.cell_id, str):
            raise DataError(f"A cell id must be a non-empty string, got {record.cell_id!r}.")
        if record.status not in _STATUSES:
            raise DataError(f"Cell {record.cell_id!r} has status {record.status!r}; "
                            f"expected one of {', '.join(_STATUSES)}.")
        return {
            "cell_id": record.cell_id, "spec_json": _dumps(record.spec), "status": record.status,
            "metrics_json": _encode_metrics(record.metrics), "cost_json": _dumps(record.cost),
            "provenance_json": _dumps(record.provenance), "error": record.error, "traceback": record.traceback,
            "started_at": record.started_at or "", "finished_at": record.finished_at or "",
            "predictions_file": None, "predictions_size": None, "predictions_sha256": None,
        }

    def _write_row(self, row: dict[str, Any], owner: str | None = None) -> None:
        """Upsert one row and end the cell's lease in one transaction (the commit is when the cell is 'done')."""
        names = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS if c != "cell_id")
        sql = f"INSERT INTO cells ({names}) VALUES ({marks}) ON CONFLICT(cell_id) DO UPDATE SET {updates}"
        conn = self._connect()
        try:
            conn.execute(sql, [row[c] for c in _COLUMNS])
            leases.release_on_save(conn, row["cell_id"], owner)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _delete_row(self, cell_id: str) -> None:
        conn = self._connect()
        try:
            conn.execute("DELETE FROM cells WHERE cell_id = ?", (cell_id,))
            conn.commit()
        finally:
            conn.close()

    # -- leases (see medrival.store.leases) ----------------------------------------------------------------------

    def _lease_op(self, operation, *args):
        self._writable()
        conn = self._connect()
        try:
            return operation(conn, *args)
        except sqlite3.DatabaseError as exc:
            raise (schema.unusable(self._paths.sqlite_path, exc) if schema.is_damage(exc) else exc) from exc
        finally:
            conn.close()

    def claim(self, cell_id: str, owner: str, ttl_s: float) -> bool:
        """Take ``cell_id`` for ``owner`` for ``ttl_s`` seconds: True when it had no lease, or an expired one (or
        one of a dead process of this host), and no intact finished result; False otherwise. Atomic across
        processes (one ``BEGIN IMMEDIATE`` transaction)."""
        leases.check_lease_args(owner, ttl_s)

        def finished(conn: sqlite3.Connection) -> bool:
            row = conn.execute(f"{_DIGEST_SQL} WHERE cell_id = ?", (cell_id,)).fetchone()
            return row is not None and row[1] == "done" and self._file_problem(*row[2:]) is None
        return self._lease_op(leases.claim, cell_id, owner, ttl_s, finished)

    def heartbeat(self, owner: str, ttl_s: float) -> int:
        """Extend all of ``owner``'s leases to now + ``ttl_s``; returns how many it still holds."""
        leases.check_lease_args(owner, ttl_s)
        return self._lease_op(leases.heartbeat, owner, ttl_s)

    def release(self, cell_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease of ``cell_id`` (the cell was not saved); False when it held none."""
        return bool(self._lease_op(leases.release, owner, cell_id))

    def release_all(self, owner: str) -> int:
        """Give up every lease of ``owner``; returns how many."""
        return self._lease_op(leases.release, owner, None)

    def active_leases(self) -> list[Lease]:
        """The leases that have not expired (cell id, owner, heartbeat_at, expires_at), by cell id."""
        conn = self._connect()
        try:
            return leases.active(conn)
        finally:
            conn.close()

    # -- integrity (see medrival.store.integrity) ----------------------------------------------------------------

    def _file_problem(self, name: str | None, size: int | None, sha256: str | None) -> str | None:
        if name is None:
            return None  # a finished cell saved without predictions: nothing to check
        return file_problem(self._paths.predictions_dir / name, size, sha256, self._digests)

    def damaged_cells(self) -> dict[str, str]:
        """Finished cells whose predictions file is missing, of another size or checksum than saved, or (rows
        of schema-1 stores) unreadable as Parquet: cell id -> reason. Each file is hashed once per store object."""
        damaged = {}
        for cell_id, _, name, size, sha256 in self._query(f"{_DIGEST_SQL} WHERE status = 'done'"):
            reason = self._file_problem(name, size, sha256)
            if reason is not None:
                damaged[cell_id] = reason
        return damaged

    def require_intact(self) -> "ResultStore":
        """This store, when no finished cell is damaged; else ``DamagedStoreError`` naming the first few damaged
        cells, their count, and the commands that redo (``medrival run``) and list (``medrival verify``) them."""
        damaged = self.damaged_cells()
        if damaged:
            raise DamagedStoreError(damaged_message(self.root, damaged), damaged)
        return self

    def stored_digest(self, cell_id: str) -> FileDigest | None:
        """Size and sha256 recorded for a cell's predictions file; None without a file or a schema-1 row."""
        rows = self._query("SELECT predictions_size, predictions_sha256 FROM cells WHERE cell_id = ?", (cell_id,))
        return FileDigest(int(rows[0][0]), rows[0][1]) if rows and rows[0][1] is not None else None

    # -- reading ------------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:  # damaged after opening: the same clean error as at opening
            raise (schema.unusable(self._paths.sqlite_path, exc) if schema.is_damage(exc) else exc) from exc
        finally:
            conn.close()

    def _predictions_file_of(self, cell_id: str) -> str | None:
        rows = self._query("SELECT predictions_file FROM cells WHERE cell_id = ?", (cell_id,))
        return rows[0][0] if rows else None

    @staticmethod
    def _record(row: tuple) -> CellRecord:
        r = dict(zip(_COLUMNS, row))
        return CellRecord(
            cell_id=r["cell_id"], spec=json.loads(r["spec_json"]), status=r["status"],
            metrics=_decode_metrics(r["metrics_json"]), cost=json.loads(r["cost_json"]),
            provenance=json.loads(r["provenance_json"]), error=r["error"], traceback=r["traceback"],
            started_at=r["started_at"], finished_at=r["finished_at"])

    def get(self, cell_id: str) -> CellRecord | None:
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM cells WHERE cell_id = ?", (cell_id,))
        return self._record(rows[0]) if rows else None

    def finished_ids(self) -> set[str]:
        """Ids of cells with status 'done' and an intact predictions file. Failed and damaged cells are not
        finished, so a re-run retries them."""
        done = {r[0] for r in self._query("SELECT cell_id FROM cells WHERE status = 'done'")}
        return done - set(self.damaged_cells())

    def records(self) -> list[CellRecord]:
        """All records, ordered by cell id (deterministic regardless of the order cells finished in)."""
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM cells ORDER BY cell_id")
        return [self._record(r) for r in rows]

    def has_predictions(self, cell_id: str) -> bool:
        return self.predictions_path(cell_id) is not None

    def predictions_path(self, cell_id: str) -> Path | None:
        """The Parquet file of a cell's per-sample predictions (to copy or export it whole); None without one."""
        name = self._predictions_file_of(cell_id)
        path = None if name is None else self._paths.predictions_dir / name
        return path if path is not None and path.is_file() else None

    def predictions(self, cell_id: str, split: str = "test") -> pd.DataFrame:
        """The per-sample predictions of a cell on ``split`` ("test", or "val" where the cell stored its
        validation predictions: binary tasks, for thresholds chosen on validation); raises ``MedrivalError``
        when the cell has none. A file without a ``split`` column (older stores) holds test predictions only."""
        if split not in PREDICTION_SPLITS:
            raise DataError(f"split must be one of {', '.join(PREDICTION_SPLITS)}, got {split!r}.")
        frame = self._prediction_file(cell_id)
        if SPLIT_COLUMN not in frame.columns:
            return frame if split == "test" else frame.iloc[0:0]
        chosen = frame[frame[SPLIT_COLUMN] == split].drop(columns=SPLIT_COLUMN)
        return chosen.reset_index(drop=True)

    def _prediction_file(self, cell_id: str) -> pd.DataFrame:
        rows = self._query(f"{_DIGEST_SQL} WHERE cell_id = ?", (cell_id,))
        if not rows:
            raise MedrivalError(f"No result for cell {cell_id!r} in {str(self.root)!r}; "
                                "run the study first (or check the cell id with `medrival status`).")
        _, status, name, size, sha256 = rows[0]
        if name is None:
            raise MedrivalError(f"Cell {cell_id!r} has status {status!r} and no stored predictions.")
        problem = self._file_problem(name, size, sha256)
        if problem is not None:
            raise DamagedStoreError(f"The predictions of cell {cell_id!r} in {str(self.root)!r} are damaged "
                                    f"({problem}). {repair_hint(self.root)}", {cell_id: problem})
        return pd.read_parquet(self._paths.predictions_dir / name)

    def results_frame(self, include_outdated: bool = False) -> pd.DataFrame:
        """One row per cell: ids and spec fields, one column per metric, then cost, error (sorted stably).

        Outdated VQA cells (``is_outdated_vqa``) and their old metric columns are left out unless
        ``include_outdated``; ``medrival.load_results`` warns about them, the report shows the same note."""
        records = self.records()
        if not include_outdated:
            records = [record for record in records if not is_outdated_vqa(record)]
        metric_names = sorted({m for rec in records for m in rec.metrics})
        fixed = {"cell_id", "status", *_SPEC_COLUMNS, "config", *_COST_COLUMNS, "error", "synthetic"}
        # A metric named like a fixed column would silently overwrite it; prefix it instead.
        metric_cols = {m: (f"metric_{m}" if m in fixed else m) for m in metric_names}
        with_synthetic = any("synthetic" in rec.spec for rec in records)
        columns = ["cell_id", "status", *_SPEC_COLUMNS, "config", *metric_cols.values(), *_COST_COLUMNS, "error"]
        columns += ["synthetic"] if with_synthetic else []
        rows = []
        for rec in records:
            row: dict[str, Any] = {"cell_id": rec.cell_id, "status": rec.status, "error": rec.error}
            row.update({c: rec.spec.get(c) for c in _SPEC_COLUMNS})
            row["method_label"] = rec.spec.get("method_label") or rec.spec.get("method")  # older records: the name
            row["config"] = config_text(rec.spec.get("method_config"))
            row.update({col: rec.metrics.get(m, float("nan")) for m, col in metric_cols.items()})
            row.update({c: rec.cost.get(c) for c in _COST_COLUMNS})
            if with_synthetic:
                row["synthetic"] = bool(rec.spec.get("synthetic", False))
            rows.append(row)
        frame = pd.DataFrame(rows, columns=columns)
        for col in [*metric_cols.values(), "wall_s", "peak_rss_mb"]:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        if frame.empty:
            return frame
        frame = frame.sort_values(_SORT_KEYS, kind="mergesort", na_position="last", key=_sort_key)
        return frame.reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    # Mixed types in one key column (a seed missing on a failed cell) must not make sorting raise.
    if col.name in ("seed", "draw"):
        return pd.to_numeric(col, errors="coerce")
    return col.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def require_store(store_dir: str | Path) -> Path:
    """``store_dir`` when it holds a medrival store, else an error saying which folder to pass."""
    from medrival.core.errors import MedrivalError

    root = Path(store_dir)
    if not (root / "results.sqlite").is_file():
        raise MedrivalError(f"No medrival store in {root} (no results.sqlite). Pass the folder given to "
                            f"`medrival run --out` or `medrival demo --out`.")
    return root


def open_intact_store(store_dir: str | Path) -> ResultStore:
    """The store in ``store_dir`` opened read-only for a reader (report, compare, export, ``load_results``),
    refusing (``DamagedStoreError``) when a finished cell's predictions file is damaged."""
    return ResultStore(require_store(store_dir), read_only=True).require_intact()
