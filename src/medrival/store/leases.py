"""Leases: which writer is running which cell, so that several processes can share one store's pending cells.

A lease row (``cell_id``, ``owner``, ``heartbeat_at``, ``expires_at``; times are Unix seconds) says "``owner`` is
running this cell until ``expires_at``". ``claim`` takes a cell in one ``BEGIN IMMEDIATE`` transaction (SQLite's
write lock is taken before reading, so two claimers of one cell are serialised and exactly one wins); it succeeds
when the cell has no lease, or its lease expired, or its owner is a dead process on this host, and the cell has no
intact finished result. The owner keeps its leases alive with ``heartbeat`` (``LeaseKeeper`` does it from a
thread); a killed owner stops heart-beating, its leases expire and other writers take its cells over. Saving a
cell releases its lease in the same transaction that commits the row.

Expiry compares wall clocks, so hosts sharing a store need roughly synchronised clocks (NTP); the ttl should be
well above any clock skew and any pause of the owner (e.g. 10 minutes with a heartbeat every ttl/3).
"""
from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable

from medrival.core.errors import DataError
from medrival.store.files import pid_alive

LEASES_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    cell_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases (owner);
"""


@dataclass(frozen=True)
class Lease:
    cell_id: str
    owner: str
    heartbeat_at: float
    expires_at: float


def new_owner() -> str:
    """A lease owner name for this process: ``host:pid:random token`` (the token tells apart two owners of one
    process, and an owner from a later process that reused the pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs (its leases need not be waited for)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another host, or a name not made by new_owner: only expiry can tell
    return not pid_alive(int(parts[1]))


def check_lease_args(owner: str, ttl_s: float) -> None:
    if not isinstance(owner, str) or not owner:
        raise DataError(f"A lease owner must be a non-empty string (see medrival.store.new_owner()), got {owner!r}.")
    if not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
        raise DataError(f"A lease ttl must be a positive number of seconds, got {ttl_s!r}; use e.g. 600.")


def claim(conn: sqlite3.Connection, cell_id: str, owner: str, ttl_s: float,
          finished: Callable[[sqlite3.Connection], bool]) -> bool:
    """Take the lease of ``cell_id`` for ``owner`` in one immediate transaction; ``finished(conn)`` says, inside
    the transaction, whether the cell already has an intact finished result (then nothing is claimed)."""
    conn.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves: the write lock is held from the first read
    conn.execute("BEGIN IMMEDIATE")
    try:
        if finished(conn):
            conn.execute("ROLLBACK")
            return False
        row = conn.execute("SELECT owner, expires_at FROM leases WHERE cell_id = ?", (cell_id,)).fetchone()
        now = time.time()
        if row is not None and row[0] != owner and row[1] > now and not owner_is_dead(row[0]):
            conn.execute("ROLLBACK")
            return False
        conn.execute("INSERT OR REPLACE INTO leases (cell_id, owner, heartbeat_at, expires_at) VALUES (?, ?, ?, ?)",
                      (cell_id, owner, now, now + ttl_s))
        conn.execute("COMMIT")
        return True
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def heartbeat(conn: sqlite3.Connection, owner: str, ttl_s: float) -> int:
    """Extend every lease of ``owner`` to now + ``ttl_s``; returns how many it holds (0: all were taken over)."""
    now = time.time()
    count = conn.execute("UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE owner = ?",
                         (now, now + ttl_s, owner)).rowcount
    conn.commit()
    return count


def release(conn: sqlite3.Connection, owner: str, cell_id: str | None = None) -> int:
    """Drop ``owner``'s lease of ``cell_id`` (or all its leases when ``cell_id`` is None); returns how many."""
    if cell_id is None:
        count = conn.execute("DELETE FROM leases WHERE owner = ?", (owner,)).rowcount
    else:
        count = conn.execute("DELETE FROM leases WHERE cell_id = ? AND owner = ?", (cell_id, owner)).rowcount
    conn.commit()
    return count


def release_on_save(conn: sqlite3.Connection, cell_id: str, owner: str | None) -> None:
    """Inside the save's transaction: the cell's lease is over. Without ``owner`` the saver is the store's one
    writer (results streamed to it by workers), so whoever held the lease is done with it."""
    if owner is None:
        conn.execute("DELETE FROM leases WHERE cell_id = ?", (cell_id,))
    else:
        conn.execute("DELETE FROM leases WHERE cell_id = ? AND owner = ?", (cell_id, owner))


def active(conn: sqlite3.Connection) -> list[Lease]:
    """Leases that have not expired, by cell id."""
    rows = conn.execute("SELECT cell_id, owner, heartbeat_at, expires_at FROM leases WHERE expires_at > ? "
                        "ORDER BY cell_id", (time.time(),)).fetchall()
    return [Lease(*row) for row in rows]


class LeaseKeeper:
    """``with LeaseKeeper(store, owner, ttl_s):`` heart-beats ``owner``'s leases every ``ttl_s / 3`` seconds from
    a daemon thread, so a long cell keeps its lease; on exit the thread stops (joined) and, unless
    ``release_on_exit`` is False, the owner's remaining leases are released so others can take those cells at once
    (a cell saved meanwhile already released its own). A failed heartbeat is kept in ``error`` and retried."""

    def __init__(self, store, owner: str, ttl_s: float, *, release_on_exit: bool = True):
        check_lease_args(owner, ttl_s)
        self.store, self.owner, self.ttl_s = store, owner, float(ttl_s)
        self.release_on_exit = release_on_exit
        self.error: BaseException | None = None
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"medrival-lease-{owner}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.store.heartbeat(self.owner, self.ttl_s)
                self.beats += 1
            except Exception as exc:  # noqa: BLE001 -- a busy or briefly unreachable store: try again next beat
                self.error = exc

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self.ttl_s, 5.0))
        if self.release_on_exit:
            self.store.release_all(self.owner)
