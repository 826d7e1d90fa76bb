"""Where a study stands: done / failed / pending cells per model and dataset, and an ETA while it runs.

Reads the store and ``plan.json`` (the cells the latest run set out to do, written by ``run_study``), so it works
from another terminal during a run and on a finished store alike. Without a plan (stores written before plans
existed) every stored cell counts and nothing is pending.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from medrival.store import ResultStore, require_store
from medrival.study.plan_file import read_plan

STATES = ("done", "failed", "pending")


def _cell_state(record, plan: dict | None) -> str:
    """done / failed / pending; a failure older than a running plan is pending (that run retries it)."""
    if record is None:
        return "pending"
    if record.status == "done":
        return "done"
    running = plan is not None and plan.get("state") == "running"
    return "pending" if running and (record.finished_at or "") < plan.get("started_at", "") else "failed"


def _planned(plan: dict | None, records: dict) -> list[dict]:
    if plan is not None:
        return [c for c in plan["cells"] if isinstance(c, dict) and "cell_id" in c]
    return [{"cell_id": cid, "model": r.spec.get("model", "?"), "dataset": r.spec.get("dataset", "?")}
            for cid, r in records.items()]


def _eta_seconds(plan: dict | None, records: list, pending: int) -> float | None:
    """pending x the mean duration of the cells this run finished; None when not running or nothing to go on."""
    if plan is None or plan.get("state") != "running" or not pending:
        return None
    started = plan.get("started_at", "")
    durations = [float(r.cost["wall_s"]) for r in records
                 if r is not None and (r.finished_at or "") >= started and isinstance(r.cost.get("wall_s"), (int, float))]
    return pending * sum(durations) / len(durations) if durations else None


def study_status(store_dir: str | Path) -> dict:
    """The status of the store in ``store_dir``: totals, one group per (model, dataset), the run's state and ETA.

    Raises ``MedrivalError`` when the folder holds no store."""
    root = require_store(store_dir)
    records = {r.cell_id: r for r in ResultStore(root, read_only=True).records()}
    plan = read_plan(root)
    planned = _planned(plan, records)
    groups: dict[tuple[str, str], Counter] = {}
    totals: Counter = Counter()
    for cell in planned:
        state = _cell_state(records.get(cell["cell_id"]), plan)
        groups.setdefault((str(cell.get("model")), str(cell.get("dataset"))), Counter())[state] += 1
        totals[state] += 1
    others = len(set(records) - {c["cell_id"] for c in planned})
    return {"store": str(root), "study": (plan or {}).get("study"), "state": (plan or {}).get("state", "unknown"),
            "started_at": (plan or {}).get("started_at"), "ended_at": (plan or {}).get("ended_at"),
            "pid": (plan or {}).get("pid"), "planned": len(planned),
            "totals": {s: totals[s] for s in STATES}, "other_cells_in_store": others,
            "eta_s": _eta_seconds(plan, [records.get(c["cell_id"]) for c in planned], totals["pending"]),
            "groups": [{"model": m, "dataset": d, **{s: counts[s] for s in STATES}}
                       for (m, d), counts in sorted(groups.items())]}  # by model, then dataset: easy to scan
