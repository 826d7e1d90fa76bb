"""The driver side of a run: claims cells in the store, numbers them for progress, saves each result at once.

Whatever executor runs the groups (this process, child processes), results come back here and only here are
written to the store, so the store has one writer per run. Each cell is claimed with a lease before it is
dispatched: a second ``medrival run`` on the same store skips the cells this one holds (and the other way
round), so concurrent runs never run a cell twice; a dead run's leases expire (at once on the same host).
"""
from __future__ import annotations

import time

from medrival.core.progress import StudyListener
from medrival.core.types import CellSpec
from medrival.study.spec import cell_id

LEASE_TTL_S = 120.0  # a claim lives this long without a heartbeat (the keeper beats every TTL/3)


class StoreDriver:
    def __init__(self, run, listener: StudyListener, total: int, owner: str, label):
        self.run, self.listener, self.total, self.owner, self.label = run, listener, total, owner, label
        self.numbers: dict[CellSpec, int] = {}
        self.clock: dict[CellSpec, float] = {}
        self.held_elsewhere: list[str] = []

    def claim(self, cells: tuple[CellSpec, ...]) -> tuple[CellSpec, ...]:
        mine = []
        for cell in cells:
            if self.run.store.claim(cell_id(cell), self.owner, LEASE_TTL_S):
                mine.append(cell)
            else:  # done meanwhile, or running in another process on this store
                self.held_elsewhere.append(cell_id(cell))
        return tuple(mine)

    def started(self, cell: CellSpec) -> None:
        self.numbers[cell] = len(self.numbers) + 1
        self.clock[cell] = time.perf_counter()
        self.listener.cell_started(self.numbers[cell], self.label(cell))

    def finished(self, cell: CellSpec, record, predictions) -> None:
        if cell not in self.numbers:  # a result without a start event (a worker died before it said so)
            self.started(cell)
        self.run.store.save(record, predictions, owner=self.owner)  # atomic; releases the lease
        (self.run.ran if record.status == "done" else self.run.failed).append(record.cell_id)
        number, label = self.numbers[cell], self.label(cell)
        seconds = time.perf_counter() - self.clock[cell]
        outcome = f"done ({seconds:.1f} s)" if record.status == "done" else f"FAILED ({record.error})"
        self.listener.cell_finished(number, label, record.status, seconds,
                                    f"[{number}/{self.total}] {label}: {outcome}")
