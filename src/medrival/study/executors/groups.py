"""Cells into groups (one model load per group), a cost estimate per cell, and deterministic shards.

Every executor runs groups, never loose cells: a group is the pending cells of one model (and its weights) on one
dataset, in plan order, so a worker loads the model once for all of them and reads the dataset once. Groups are
small enough to spread a study over several workers (a model's datasets go to different workers) and large
enough that a 7B model is not reloaded per cell.

The cost estimate is a relative weight, not seconds: it only has to rank groups so that the longest start first
(longest-processing-time-first keeps workers busy to the end) and shards of a SLURM array get similar work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from medrival.core.errors import ConfigError
from medrival.core.types import CellSpec

# Relative cost of a cell by what its method does (declared capabilities, never method names): off-the-shelf
# methods read each test item once; methods on frozen features train a small head on cached features; methods
# that train through the encoder run forward and backward passes for every epoch.
_COST_OFF_THE_SHELF = 1.0
_COST_ON_FEATURES = 2.0
_COST_TRAINS_ENCODER = 8.0
_GENERATIVE_FACTOR = 3.0  # a generative model's forward pass dwarfs a contrastive encoder's


@dataclass(frozen=True)
class CellGroup:
    """Cells sharing one model (and weights) and one dataset; ``index`` orders groups in the plan."""

    index: int
    model: str
    weights: str | None
    dataset: str
    cells: tuple[CellSpec, ...]
    cost: float

    @property
    def label(self) -> str:
        return f"{self.model} | {self.dataset} ({len(self.cells)} cells)"


def cell_cost(cell: CellSpec) -> float:
    """Relative cost of one cell (see the module docstring)."""
    from medrival.methods import METHODS
    from medrival.models.catalog import get_card

    capabilities = METHODS.get(cell.method).capabilities
    if capabilities.off_the_shelf:
        cost = _COST_OFF_THE_SHELF
    elif getattr(capabilities, "trains_encoder", False):
        cost = _COST_TRAINS_ENCODER
    else:
        cost = _COST_ON_FEATURES
    epochs = dict(cell.method_config).get("epochs")
    if isinstance(epochs, int) and epochs > 0 and not capabilities.off_the_shelf:
        cost *= max(1.0, epochs / 10)  # long training runs dominate; short ones cost at least the base
    return cost * (_GENERATIVE_FACTOR if get_card(cell.model).family == "generative" else 1.0)


def group_cells(cells: list[CellSpec]) -> list[CellGroup]:
    """Cells grouped by (model, weights, dataset), groups in first-appearance order, cells in plan order."""
    members: dict[tuple, list[CellSpec]] = {}
    for cell in cells:
        members.setdefault((cell.model, cell.weights, cell.dataset), []).append(cell)
    return [CellGroup(index, model, weights, dataset, tuple(group), sum(cell_cost(c) for c in group))
            for index, ((model, weights, dataset), group) in enumerate(members.items())]


def longest_first(groups: list[CellGroup]) -> list[CellGroup]:
    """Groups ordered for dispatch: costliest first, ties in plan order (deterministic)."""
    return sorted(groups, key=lambda group: (-group.cost, group.index))


def parse_jobs(text: str) -> int | str:
    """``--jobs``: a whole number from 1 to 1024, or ``auto``."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    if not value.isdigit() or not 1 <= int(value) <= 1024:
        raise ConfigError(f"--jobs {text!r} is not a number of jobs: give a whole number from 1 to 1024 (model "
                          "groups run at once) or auto (chosen from the cores and GPUs).")
    return int(value)


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N (shards count from 0, like ``$SLURM_ARRAY_TASK_ID``)."""
    match = _SHARD.match(str(text))
    if not match:
        raise ConfigError(f"--shard {text!r} is not of the form i/N (e.g. --shard 0/4 for the first of four "
                          "shards; in a SLURM array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: the shard index must be in 0..N-1 and N >= 1 (got index {index} of "
                          f"{count}); shards count from 0, like $SLURM_ARRAY_TASK_ID.")
    return index, count


def shard_groups(groups: list[CellGroup], index: int, count: int) -> list[CellGroup]:
    """The groups of shard ``index`` of ``count``: costliest group first onto the least-loaded shard (ties: the
    lowest shard), so shards get similar work and every group lands in exactly one shard. Depends only on the
    planned groups, so every array task computes the same split without talking to the others."""
    loads = [0.0] * count
    owner: dict[int, int] = {}
    for group in longest_first(groups):
        shard = min(range(count), key=lambda s: (loads[s], s))
        owner[group.index] = shard
        loads[shard] += group.cost
    return [group for group in groups if owner[group.index] == index]
