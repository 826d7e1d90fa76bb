"""The in-process executor: groups one after another in the driver's own process (``--jobs 1``, no isolation).

The cheapest way to run a study: no process start, and inner progress (epochs, generation batches) reaches the
live display. A crash of the process ends the study; finished cells are safe in the store and a rerun resumes.
"""
from __future__ import annotations

from medrival.study.executors.base import Driver
from medrival.study.executors.groups import CellGroup
from medrival.study.executors.worker import WorkerSettings, limit_threads, run_group


def run_in_process(groups: list[CellGroup], settings: WorkerSettings, driver: Driver, context=None) -> None:
    """Run ``groups`` in plan order here (one context: each model is loaded once per run of its groups)."""
    import torch

    saved_threads = torch.get_num_threads()
    limit_threads(settings.threads, environment=False)  # same threads as a child would get: the same floating-point results
    try:
        _run_groups(groups, context if context is not None else settings.context(), driver)
    finally:
        torch.set_num_threads(saved_threads)


def _run_groups(groups: list[CellGroup], context, driver: Driver) -> None:
    for group in groups:
        cells = driver.claim(group.cells)
        if not cells:
            continue

        def emit(event: str, index: int, payload, cells=cells) -> None:
            if event == "started":
                driver.started(cells[index])
            else:
                driver.finished(cells[index], *payload)

        run_group(cells, context, emit)
