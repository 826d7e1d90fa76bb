"""What ``medrival run`` and ``demo`` show while a study runs.

On a terminal: a live display (rich) with the cells done / failed / total, an ETA from the mean duration of the
cells finished so far, the cell now running, and an inner bar for its current stage (training epochs, generation
batches); each finished cell also leaves one line above it, so the history stays on screen. On a pipe or in a
file: one plain line per finished cell, nothing else and no escape codes.
"""
from __future__ import annotations

import time
from typing import Optional

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from medrival.core.progress import LineListener, StudyListener


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``: short and exact enough for an ETA."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _CountsColumn(ProgressColumn):
    """Done / failed / ETA on the cells' row (empty on the inner stage's row)."""

    def __init__(self, display: "LiveStudyDisplay"):
        super().__init__()
        self.display = display

    def render(self, task: Task) -> Text:
        return Text(self.display.counts() if task.id == self.display.cells else "")


class LiveStudyDisplay(StudyListener):
    """A ``StudyListener`` drawing the live display; use it as a context manager around ``run_study``."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 _CountsColumn(self), TimeElapsedColumn(), console=console, auto_refresh=False)
        self.cells: TaskID = self.progress.add_task("cells", total=None)
        self.inner: Optional[TaskID] = None
        self.now = Text("")
        self.live = Live(Group(self.now, self.progress), console=console, refresh_per_second=4, transient=True)
        self.durations: list[float] = []
        self.failed = 0
        self.total = 0
        self.cell_started_at = time.perf_counter()

    def __enter__(self) -> "LiveStudyDisplay":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    # -- study events ---------------------------------------------------------------------------------------
    def planned(self, pending: int, total: int, reused: int) -> None:
        self.total = pending
        self.progress.update(self.cells, total=pending)
        if reused:
            self.console.print(f"{reused} of {total} cells already in the store (reused); {pending} to run.")

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def cell_started(self, number: int, label: str) -> None:
        self.cell_started_at = time.perf_counter()
        # Its own line, wrapped at the spaces between names (never cut): it names model, dataset, method in full.
        self.now.plain = f"now [{number}/{self.total}]: {label}"
        self.now.overflow = "fold"

    def cell_finished(self, number: int, label: str, status: str, seconds: float, line: str) -> None:
        self.durations.append(seconds)
        self.failed += status != "done"
        self.console.print(Text(line, style=None if status == "done" else "red"))
        self.progress.update(self.cells, completed=len(self.durations))
        self.now.plain = ""

    def counts(self) -> str:
        """``done 3 · failed 1 · ETA 2 min 10 s``: the mean duration of the finished cells x the cells left, less
        the time the current cell has already run, recomputed at every refresh; a ``+`` once the current cell has
        run longer than the mean (the ETA is then a lower bound)."""
        done = len(self.durations) - self.failed
        text = f"done {done} · failed {self.failed}"
        left = self.total - len(self.durations)
        if self.durations and left > 0:
            mean = sum(self.durations) / len(self.durations)
            current = mean - (time.perf_counter() - self.cell_started_at)  # < 0: longer than the mean so far
            text += f" · ETA {format_seconds((left - 1) * mean + max(current, 0.0))}{'+' if current < 0 else ''}"
        return text

    # -- inner stages (epochs, generation batches) -----------------------------------------------------------
    def stage(self, name: str, total: Optional[int]) -> None:
        self.end_stage()
        self.inner = self.progress.add_task(f"  {name}", total=total)

    def advance(self, steps: int = 1) -> None:
        if self.inner is not None:
            self.progress.advance(self.inner, steps)

    def end_stage(self) -> None:
        if self.inner is not None:
            self.progress.remove_task(self.inner)
            self.inner = None


def study_listener(console: Console, quiet: bool) -> StudyListener:
    """The live display on a terminal, plain lines elsewhere, nothing with ``--quiet``."""
    if quiet:
        return StudyListener()
    if console.is_terminal:
        return LiveStudyDisplay(console)
    return LineListener(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
