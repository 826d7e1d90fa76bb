"""Process isolation and ``--jobs N``: groups run in child processes, N at a time, results stream to the driver.

Why child processes: a CUDA out-of-memory error can leave a device unusable for the rest of a process, and a
segfault (or the kernel's OOM killer) ends it; in a child, only that child's cells are affected. A child that dies
has its cell in flight retried once in a fresh child (a pre-empted or killed worker loses nothing), then recorded as
failed with the signal; the rest of its group is handed to a fresh child. The study goes on either way.

Children are started with ``spawn`` (a forked copy of a process that already holds torch threads or a CUDA
context is unsafe), each limited to its share of the cores, and pinned to one GPU each when there are several.
Results travel back through a queue as each cell finishes; the driver alone writes the store.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from collections import deque
from dataclasses import dataclass, field

from medrival.core.types import CellSpec
from medrival.study.executors.base import Driver, crash_record, signal_text
from medrival.study.executors.groups import CellGroup, longest_first
from medrival.study.executors.worker import WorkerSettings

CRASH_RETRIES = 1  # a cell whose worker died is run once more in a fresh worker, then recorded as failed
_POLL_S = 0.2
PARENT_GONE_EXIT = 3  # a child's exit code when it ended because its driver had died


def _child_main(spec, settings: WorkerSettings, inbox, outbox, slot: int) -> None:
    """A child's loop: take a job (cells), run it, stream events; ``None`` ends the child."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it ends the children
    _exit_with_parent()
    from medrival.core.errors import full_message
    from medrival.study.executors.worker import limit_threads, prepare_worker, run_group

    limit_threads(settings.threads)
    try:
        prepare_worker(spec)
        context = settings.context()
    except Exception as error:  # noqa: BLE001 - reported to the driver, which fails the cells with the reason
        outbox.put((slot, None, "fatal", -1, full_message(error)))
        return
    while (job := inbox.get()) is not None:
        job_id, cells = job
        run_group(cells, context, lambda event, index, payload: outbox.put((slot, job_id, event, index, payload)))
        outbox.put((slot, job_id, "done", -1, None))


def _exit_with_parent() -> None:
    """End this child as soon as the driver is gone. A driver killed outright (``kill -9``, the OOM killer, a
    pre-empted node) cannot tell its children to stop, and no one would read what they send or give them more work:
    they would run on, then wait for a job forever. A watcher thread waits on the parent's sentinel (a pipe that
    closes when the parent dies; a process handle on Windows) and ends the process at once: the cell in flight is
    lost, as it would be had the child been killed with the driver (its lease names the dead driver, so the next run
    takes it over at once)."""
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing: nothing to watch
        return

    def watch() -> None:
        parent.join()  # returns when the parent process has ended
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="medrival-parent-watch", daemon=True).start()


@dataclass
class _Job:
    job_id: int
    cells: tuple[CellSpec, ...]
    reported: set[int] = field(default_factory=set)
    running: int | None = None  # index of the cell started and not yet reported


@dataclass
class _Slot:
    process: multiprocessing.Process
    inbox: object
    job: _Job | None = None


class ChildPool:
    """N child processes fed one job (a group's claimed cells) at a time; see the module docstring."""

    def __init__(self, spec, settings: WorkerSettings, jobs: int, driver: Driver, gpus: list[str] | None = None):
        self.spec, self.settings, self.jobs, self.driver = spec, settings, jobs, driver
        self.gpus = gpus or []
        self.context = multiprocessing.get_context("spawn")
        self.outbox = self.context.Queue()
        self.slots: dict[int, _Slot] = {}
        self.waiting: deque[_Job] = deque()
        self.crashes: dict[CellSpec, int] = {}
        self._next_job = 0

    def run(self, groups: list[CellGroup]) -> None:
        self._pending_groups = deque(longest_first(groups))
        try:
            while self._pending_groups or self.waiting or any(s.job for s in self.slots.values()):
                self._dispatch()
                self._receive()
        finally:
            self.close()

    def _start_slot(self, slot: int) -> None:
        inbox = self.context.Queue()
        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpu is not None:  # the child inherits the environment at start: one GPU each
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        try:
            process = self.context.Process(target=_child_main, name=f"medrival-worker-{slot}", daemon=True,
                                           args=(self.spec, self.settings, inbox, self.outbox, slot))
            process.start()
        finally:
            if gpu is not None:
                _restore_env("CUDA_VISIBLE_DEVICES", saved)
        self.slots[slot] = _Slot(process, inbox)

    def _next(self) -> _Job | None:
        if self.waiting:
            return self.waiting.popleft()
        while self._pending_groups:
            cells = self.driver.claim(self._pending_groups.popleft().cells)
            if cells:
                self._next_job += 1
                return _Job(self._next_job, cells)
        return None

    def _dispatch(self) -> None:
        for slot in range(self.jobs):
            if slot in self.slots and self.slots[slot].job is not None:
                continue
            job = self._next()
            if job is None:
                return
            if slot not in self.slots or not self.slots[slot].process.is_alive():
                self._start_slot(slot)
            self.slots[slot].job = job
            self.slots[slot].inbox.put((job.job_id, job.cells))

    def _receive(self) -> None:
        try:
            message = self.outbox.get(timeout=_POLL_S)
        except queue_module.Empty:
            self._reap_dead()
            return
        self._handle(*message)

    def _handle(self, slot: int, job_id, event: str, index: int, payload) -> None:
        job = self.slots[slot].job
        if event == "fatal":  # the child could not even start: its job's cells fail with the reason
            self._fail_job(slot, f"the worker process could not start: {payload}")
            return
        if job is None or job.job_id != job_id:
            return  # a late message of a job already settled
        if event == "started":
            job.running = index
            self.driver.started(job.cells[index])
        elif event == "result":
            job.reported.add(index)
            job.running = None
            self.driver.finished(job.cells[index], *payload)
        elif event == "done":
            self.slots[slot].job = None

    def _reap_dead(self) -> None:
        for slot, state in list(self.slots.items()):
            if state.job is None or state.process.is_alive():
                continue
            self._drain()  # results a child sent just before it died are still in the pipe: take them first
            if state.job is not None:
                self._recover(slot, state)

    def _drain(self) -> None:
        while True:
            try:
                self._handle(*self.outbox.get_nowait())
            except queue_module.Empty:
                return

    def _recover(self, slot: int, state: _Slot) -> None:
        """A child died under a job: retry or fail its cell in flight, hand the rest of the job to a new child."""
        job, how = state.job, signal_text(state.process.exitcode)
        state.job = None
        left = [i for i in range(len(job.cells)) if i not in job.reported]
        if job.running is not None and job.running in left:
            cell = job.cells[job.running]
            self.crashes[cell] = self.crashes.get(cell, 0) + 1
            if self.crashes[cell] > CRASH_RETRIES:
                reason = (f"the worker process died ({how}) while running this cell, {self.crashes[cell]} times; "
                          "an out-of-memory kill or a crash in native code (see the system log). The other cells "
                          "went on; rerun the study to try it again.")
                self.driver.finished(cell, crash_record(cell, reason), None)
                left.remove(job.running)
        if left:
            self._next_job += 1
            self.waiting.appendleft(_Job(self._next_job, tuple(job.cells[i] for i in left)))

    def _fail_job(self, slot: int, reason: str) -> None:
        job, self.slots[slot].job = self.slots[slot].job, None
        for index, cell in enumerate(job.cells if job is not None else ()):
            if index not in job.reported:
                self.driver.finished(cell, crash_record(cell, reason), None)

    def close(self) -> None:
        for state in self.slots.values():
            if state.process.is_alive():
                try:
                    state.inbox.put(None)
                except (OSError, ValueError):
                    pass
        for state in self.slots.values():
            state.process.join(timeout=5)
            if state.process.is_alive():
                state.process.kill()
                state.process.join(timeout=5)
        self.slots.clear()


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_in_children(groups: list[CellGroup], spec, settings: WorkerSettings, jobs: int, driver: Driver,
                    gpus: list[str] | None = None) -> None:
    """Run ``groups`` in ``jobs`` child processes (see the module docstring)."""
    ChildPool(spec, settings, jobs, driver, gpus).run(groups)
