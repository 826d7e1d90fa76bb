"""Progress reporting without a display: a tiny observer that deep loops call and a front end may listen to.

Two layers:
- *Inner stages* (training epochs, generation batches): ``with stage("epochs", total): ... advance()``. The
  loops live in ``methods`` and must not import rich or the CLI (imports point downward), so they talk to whatever
  reporter the caller installed with ``reporting_to``; by default nothing listens and every call is a no-op.
- *Study events* (a cell starts, a cell finishes): ``StudyListener``, which the runner calls. A plain callable
  ``progress(line)`` (``print``, a lambda) is still accepted everywhere and receives one line per finished cell.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional, Sequence, TypeVar, Union

T = TypeVar("T")


class StageReporter:
    """Receives inner progress; the base class ignores everything (subclass what you want to show)."""

    def stage(self, name: str, total: Optional[int]) -> None:
        """A stage of ``total`` steps (None: unknown) begins, e.g. ("epochs", 20) or ("generation batches", 7)."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current stage are done."""

    def end_stage(self) -> None:
        """The current stage is over (finished, stopped early or failed)."""


_REPORTER: ContextVar[StageReporter] = ContextVar("medrival_stage_reporter", default=StageReporter())


@contextmanager
def reporting_to(reporter: StageReporter) -> Iterator[StageReporter]:
    """Install ``reporter`` for the code run inside the ``with`` block (this thread / task only)."""
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


@contextmanager
def stage(name: str, total: Optional[int] = None) -> Iterator[None]:
    """Report a stage of ``total`` steps to the installed reporter; always ends it, even on an exception."""
    reporter = _REPORTER.get()
    reporter.stage(name, total)
    try:
        yield
    finally:
        reporter.end_stage()


def advance(steps: int = 1) -> None:
    """One (or ``steps``) more step(s) of the current stage: a no-op when nothing listens."""
    _REPORTER.get().advance(steps)


def counted(name: str, items: Sequence[T]) -> Iterator[T]:
    """``for epoch in counted("epochs", range(1, n + 1))``: a stage of ``len(items)`` steps, one per item once
    its loop body is done; a ``break`` or an exception ends the stage (the generator is closed)."""
    with stage(name, len(items)):
        for item in items:
            yield item
            advance()


class StudyListener(StageReporter):
    """Study-level events from the runner; every method is a no-op here. ``label`` reads
    ``model | dataset | method | budget | seed``; ``line`` is the finished-cell line a plain log prints."""

    def planned(self, pending: int, total: int, reused: int) -> None:
        """``pending`` cells will run out of ``total`` planned; ``reused`` were already finished in the store."""

    def message(self, text: str) -> None:
        """A note for the person running the study (e.g. combinations left out)."""

    def cell_started(self, number: int, label: str) -> None:
        """Cell ``number`` (1-based among the pending ones) starts."""

    def cell_finished(self, number: int, label: str, status: str, seconds: float, line: str) -> None:
        """Cell ``number`` ended with ``status`` ("done" or "failed") after ``seconds``."""


class LineListener(StudyListener):
    """Adapts a plain callable: it receives notes and one line per finished cell, nothing else."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def message(self, text: str) -> None:
        self.write(text)

    def cell_finished(self, number: int, label: str, status: str, seconds: float, line: str) -> None:
        self.write(line)


ProgressArg = Union[Callable[[str], None], StudyListener, None]


def as_listener(progress: ProgressArg) -> StudyListener:
    """A ``StudyListener`` from what a caller passed: a listener as is, a callable wrapped, None silent."""
    if isinstance(progress, StudyListener):
        return progress
    return StudyListener() if progress is None else LineListener(progress)
