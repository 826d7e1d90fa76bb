"""What every executor needs from the driver, and the failure record of a cell whose worker died.

An executor decides only *where* groups run. The driver (``medrival.study.runner``) decides what runs: it claims
cells in the store before they are dispatched (another run on the same store may hold some), hears when a cell
starts, and saves each result the moment it arrives, being the store's single writer.
"""
from __future__ import annotations

from typing import Protocol

from medrival.core.types import CellSpec


class Driver(Protocol):
    def claim(self, cells: tuple[CellSpec, ...]) -> tuple[CellSpec, ...]:
        """The cells of ``cells`` this run may execute now (the others are done or held by another run)."""

    def started(self, cell: CellSpec) -> None:
        """``cell`` began running somewhere."""

    def finished(self, cell: CellSpec, record, predictions) -> None:
        """``cell``'s result (a ``CellRecord`` and its predictions or None): saved by the driver at once."""


def crash_record(cell: CellSpec, reason: str):
    """A failed record for a cell whose worker died under it (a signal, an out-of-memory kill, a segfault)."""
    from medrival.study.cell import failure_record
    from medrival.store import utc_now

    return failure_record(cell, WorkerDied(reason), utc_now(), 0.0)


class WorkerDied(RuntimeError):
    """A worker process (a ``--jobs`` child or a Ray worker) ended while it ran a cell."""


def signal_text(exitcode: int | None) -> str:
    """``-9`` -> ``"signal 9 (SIGKILL)"``; a positive code -> ``"exit code N"``."""
    import signal

    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
