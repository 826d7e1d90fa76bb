"""Parallel decoding of a :class:`FileImageSource` into model-sized uint8 batches.

File rows go through a torch ``DataLoader``: each worker process opens, decodes and resamples whole batches (one
task per batch keeps inter-process traffic to one array per batch), and batches come back in order. Rows that
reference npz arrays are decoded in the calling process (see ``medrival.data.images``). Small jobs skip the
workers: starting processes costs more than decoding a handful of images.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from medrival.core.errors import DataError
from medrival.core.images import ImageGeometry

# Below this many file rows per worker, decoding in the calling process is faster than starting workers.
MIN_ROWS_PER_WORKER = 16


class _BatchDataset:
    """Map-style dataset whose item ``b`` is the whole decoded batch ``b`` (a DataLoader with batch_size=None)."""

    def __init__(self, source, geometry: ImageGeometry, batch_size: int):
        self.source, self.geometry, self.batch_size = source, geometry, batch_size

    def __len__(self) -> int:
        return (len(self.source) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, batch: int) -> np.ndarray:
        from medrival.data.images import load_fitted

        start = batch * self.batch_size
        rows = range(start, min(start + self.batch_size, len(self.source)))
        return np.stack([load_fitted(self.source, row, self.geometry) for row in rows])


def iterate_batches(source, geometry: ImageGeometry, batch_size: int, workers: int) -> Iterator[np.ndarray]:
    """Yield uint8 B x S x S x 3 batches of every row of ``source`` in order."""
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}.")
    if workers < 0:
        raise DataError(f"loader workers must be 0 or more, got {workers}.")
    for batch in _items_in_order(_BatchDataset(source, geometry, batch_size), source, workers):
        yield batch.numpy() if hasattr(batch, "numpy") else batch  # worker batches arrive as tensors


def _items_in_order(dataset, source, workers: int, collate=None) -> Iterator:
    """Every item of ``dataset`` in order: in worker processes, or here when workers would not pay off (none
    asked for, too few rows per worker, or only npz/parquet rows, which are read in this process)."""
    if workers == 0 or len(source) < MIN_ROWS_PER_WORKER * max(1, workers) or _all_arrays(source):
        return (dataset[i] for i in range(len(dataset)))
    from torch.utils.data import DataLoader

    options = {"collate_fn": collate} if collate is not None else {}
    return iter(DataLoader(dataset, batch_size=None, shuffle=False, num_workers=min(workers, len(dataset)),
                           prefetch_factor=2, worker_init_fn=_single_thread_worker, **options))


def _single_thread_worker(_worker_id: int) -> None:
    # Each worker decodes one image at a time; letting torch spawn intra-op threads in every worker would
    # oversubscribe the cores the workers themselves are meant to fill.
    import torch

    torch.set_num_threads(1)


def _all_arrays(source) -> bool:
    from medrival.data.images import ARRAY_PREFIX, PARQUET_PREFIX

    return all(str(reference).startswith((ARRAY_PREFIX, PARQUET_PREFIX)) for reference in source.references)


class _ScanDataset:
    """Item ``b``: (reference, reason) for every row of chunk ``b`` that fails to decode."""

    def __init__(self, source, chunk: int):
        self.source, self.chunk = source, chunk

    def __len__(self) -> int:
        return (len(self.source) + self.chunk - 1) // self.chunk

    def __getitem__(self, index: int) -> list[tuple[str, str]]:
        from medrival.data.imageio import ImageDecodeError

        failures = []
        for row in range(index * self.chunk, min((index + 1) * self.chunk, len(self.source))):
            try:
                self.source.load(row)
            except ImageDecodeError as error:
                failures.append((str(self.source.references[row]), str(error)))
        return failures


def scan_decodable(source, workers: int | None = None, chunk: int = 32) -> dict[str, str]:
    """Decode every row of ``source`` (in parallel); reference -> error message for each one that fails."""
    from medrival.data.images import default_workers

    workers = default_workers() if workers is None else workers
    chunks = _items_in_order(_ScanDataset(source, chunk), source, workers, collate=_as_is)
    return {reference: reason for failures in chunks for reference, reason in failures}


def _as_is(item):
    return item
