"""How images reach a model when they are files rather than arrays: a decode geometry and the source protocol.

Real releases hold images of every size as files (PNG, JPEG, DICOM, arrays inside npz/parquet). A split of such
a release holds an :class:`ImageSource` instead of one big uint8 array: nothing is decoded when a dataset is
indexed or a split is built; the data loader decodes batches on demand, in parallel, and brings each image to
the model's own square input with :class:`ImageGeometry` (the geometric half of the model's preprocessing, done
per image on the decoded picture), so the model's tensor preprocessing then only converts and normalises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

RESIZE_MODES: tuple[str, ...] = ("shortest", "longest", "squash")
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear")


@dataclass(frozen=True)
class ImageGeometry:
    """Square output of side ``size``, as open_clip's / transformers' inference transforms produce it.

    - ``shortest``: scale so the shorter side is ``resize_size``, then centre-crop ``size`` x ``size``.
    - ``longest``: scale so the longer side is ``size``, pad to a square with ``fill`` (grey level 0-255).
    - ``squash``: scale each side to ``size`` independently.
    ``crop_offsets`` places the centre crop as torchvision ("round") or transformers ("floor") does.
    """

    size: int
    resize_size: int | None = None
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    fill: int = 0
    crop_offsets: str = "round"

    def __post_init__(self) -> None:
        if self.size < 1 or (self.resize_size is not None and self.resize_size < self.size):
            raise ValueError(f"ImageGeometry: size {self.size} must be >= 1 and resize_size {self.resize_size} "
                             "(when given) at least size.")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"ImageGeometry: resize_mode {self.resize_mode!r} not in {RESIZE_MODES}.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"ImageGeometry: interpolation {self.interpolation!r} not in {INTERPOLATIONS}.")

    @property
    def shortest_side(self) -> int:
        return self.resize_size or self.size


@runtime_checkable
class ImageSource(Protocol):
    """Images of a split that are decoded on demand (files, array members, parquet cells).

    Row ``i`` of the source is the image of row ``i`` of its split. Implementations live in ``medrival.data``.
    """

    def __len__(self) -> int: ...

    def take(self, rows: Sequence[int] | np.ndarray) -> "ImageSource":
        """The rows ``rows`` (in that order) as a new source; nothing is decoded."""

    def identities(self) -> list[str]:
        """One string per row naming the stored image (same string = same image): dedupe without decoding."""

    def fingerprint(self) -> str:
        """A content key for the feature cache, computed without decoding (paths, sizes, modification times)."""

    def load(self, row: int) -> np.ndarray:
        """Row ``row`` decoded at its stored size as H x W x 3 uint8 (grey replicated, 16-bit scaled)."""

    def batches(self, geometry: ImageGeometry, batch_size: int, workers: int) -> Iterator[np.ndarray]:
        """Every row in order, as uint8 B x size x size x 3 batches, decoded by ``workers`` parallel workers."""
