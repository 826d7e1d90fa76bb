"""What runs a group of cells wherever it runs: in the driver, in a child process, or in a Ray task.

A worker builds its own ``CellContext`` (model, splits and the on-disk feature cache; workers of one study share
the cache folder, whose files are content-addressed and written atomically), runs each cell of the group in order
and hands every result to ``emit`` as soon as it exists. It never writes the store: the driver is its only writer.

A CUDA out-of-memory failure is retried with every batch size of the method halved (down to 1), so a cell that
fits at a smaller batch still runs; the halvings are recorded in the cell's cost (``oom_retries`` and the batch
sizes used). The cell keeps its id and spec: the batch size is a resource setting here, not a study choice.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from medrival.core.types import CellSpec

OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED", "out of memory")
MAX_OOM_RETRIES = 4


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs besides its cells, picklable (it crosses process and node boundaries)."""

    feature_dir: str | None
    device: str = "auto"
    checkpoint_dir: str | None = None
    data_roots: dict = field(default_factory=dict)
    strict_images: bool = False
    threads: int | None = None  # torch intra-op threads of this worker (None: torch's default)

    def context(self):
        from medrival.study.cell import CellContext

        return CellContext(Path(self.feature_dir) if self.feature_dir else None, self.device,
                           Path(self.checkpoint_dir) if self.checkpoint_dir else None,
                           data_roots=self.data_roots, strict_images=self.strict_images)


def limit_threads(threads: int | None, environment: bool = True) -> None:
    """One worker's share of the cores: torch and (in a worker process, ``environment``) the BLAS/OpenMP pools
    of whatever it starts, so N workers do not oversubscribe."""
    if not threads:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS") if environment else ():
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def prepare_worker(spec) -> None:
    """Make the study's own names (custom datasets and models) known in this process: a fresh worker process
    starts with the shipped registries only. Checkpoint-loading progress bars are off (unless the user set
    HF_HUB_DISABLE_PROGRESS_BARS): several workers' bars would interleave with the driver's per-cell lines."""
    from medrival.study.registration import register_study_names

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is first imported
    register_study_names(spec)


def is_out_of_memory(error: str | None) -> bool:
    return bool(error) and any(marker in error for marker in OOM_MARKERS)


def halved_batches(cell: CellSpec) -> tuple[CellSpec, dict[str, int]] | None:
    """The cell with every ``*batch_size`` option of its method halved, and the new sizes; None at 1 already."""
    from medrival.methods import METHODS
    from medrival.study.spec import freeze

    method = METHODS.get(cell.method)
    config = method.make_config(cell.config_dict())
    sizes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
             if f.name.endswith("batch_size") and isinstance(getattr(config, f.name), int)}
    halved = {name: size // 2 for name, size in sizes.items() if size > 1}
    if not halved:
        return None
    options = {**cell.config_dict(), **halved}
    return replace(cell, method_config=freeze(method.normalised_config(options))), halved


def run_cell(cell: CellSpec, context):
    """(record, predictions) of one cell, retried at halved batch sizes after a CUDA out-of-memory failure."""
    from medrival.study.cell import describe_cell, execute_cell
    from medrival.study.spec import cell_id

    attempt, retries, sizes = cell, 0, {}
    while True:
        record, predictions = execute_cell(attempt, context)
        if record.status == "done" or not is_out_of_memory(record.error) or retries >= MAX_OOM_RETRIES:
            break
        smaller = halved_batches(attempt)
        if smaller is None:
            break
        _free_device_memory()
        attempt, new_sizes = smaller
        sizes.update(new_sizes)
        retries += 1
    if retries:  # the result belongs to the planned cell; the cost says how it was made to fit
        record.cell_id, record.spec = cell_id(cell), describe_cell(cell)
        record.cost = {**record.cost, "oom_retries": retries, "batch_sizes": sizes}
        if record.status == "failed":
            record.error = (f"{record.error}\n(still out of memory after {retries} retries at halved batch sizes "
                            f"{sizes}; use a smaller dtype (dtype: bf16), quantization: 4bit or a larger device)")
    return record, predictions


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - freeing memory is best effort before a retry
        pass


Emit = Callable[[str, int, object], None]  # (event, index of the cell in its group, payload)


def run_group(cells: tuple[CellSpec, ...], context, emit: Emit) -> None:
    """Run ``cells`` in order with one context; ``emit("started", i, None)`` then ``emit("result", i,
    (record, predictions))`` for each."""
    for index, cell in enumerate(cells):
        emit("started", index, None)
        emit("result", index, run_cell(cell, context))
