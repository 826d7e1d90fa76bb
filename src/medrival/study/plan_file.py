"""``<store>/plan.json``: the cells a run set out to do, so that ``medrival status`` can tell pending from
finished (and give an ETA) while the run is going, from another terminal.

Written at the start of ``run_study`` and marked ``finished`` or ``interrupted`` at its end; a run killed outright
leaves ``running`` behind, which ``status`` reports with the pid so a reader can check it. Written atomically
(temp file + ``os.replace``): a reader never sees half a plan.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from medrival.core.types import CellSpec
from medrival.store.results import utc_now

PLAN_FILE = "plan.json"


def _write(path: Path, plan: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def write_plan(store_root: Path, study: str, cells: Iterable[tuple[str, CellSpec]]) -> None:
    """Record the planned cells (id, model, dataset, method, budget, draw, seed) and when the run started."""
    planned = [{"cell_id": cid, "model": c.model, "dataset": c.dataset, "method": c.method, "budget": c.budget,
                "draw": c.draw, "seed": c.seed} for cid, c in cells]
    _write(Path(store_root) / PLAN_FILE, {"study": study, "started_at": utc_now(), "ended_at": None,
                                          "state": "running", "pid": os.getpid(), "cells": planned})


def end_plan(store_root: Path, state: str, others_running: bool = False) -> None:
    """Mark the plan ``finished`` or ``interrupted`` (the planned cells stay, for ``status``).

    ``others_running``: another run on this store still holds leases. Its work is not finished because ours is, so
    the plan stays ``running`` (that run marks it when it ends)."""
    plan = read_plan(store_root)
    if plan is None or others_running:
        return
    _write(Path(store_root) / PLAN_FILE, {**plan, "state": state, "ended_at": utc_now()})


def read_plan(store_root: Path) -> dict | None:
    """The plan of the latest run in ``store_root``; None when there is none (stores from older versions) or it
    cannot be read."""
    try:
        plan = json.loads((Path(store_root) / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and isinstance(plan.get("cells"), list) else None
