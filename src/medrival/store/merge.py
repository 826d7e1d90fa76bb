"""``merge_stores``: combine stores (e.g. shards run on local disks) into one, idempotently.

Rules: every source is checked before anything is written (damaged cells, conflicting results, different analysis
settings all refuse the merge by name); a done result beats a failed one; one cell found with the same metrics and
the same predictions checksum in several places is kept once; two different done results for one cell refuse.
Each merged row's provenance gets ``merged_from`` (the source stores that held it). The output is written by this
one process, so it may lie on a network file system (the safe mode of ``medrival.store.netfs``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from medrival.core.errors import MedrivalError
from medrival.store.files import FileDigest, atomic_copy, file_digest
from medrival.store.integrity import damaged_message
from medrival.store.results import ResultStore, _encode_metrics, require_store


@dataclass
class MergeSummary:
    out: Path
    added: list[str] = field(default_factory=list)  # cells written into out
    unchanged: list[str] = field(default_factory=list)  # already in out with the same result


@dataclass
class _Candidate:
    store: ResultStore
    record: object
    digest: FileDigest | None

    def key(self) -> tuple:
        return (self.record.status, _encode_metrics(self.record.metrics), self.digest)


def _candidates(store: ResultStore) -> dict[str, _Candidate]:
    found = {}
    for record in store.records():
        path = store.predictions_path(record.cell_id)
        digest = store.stored_digest(record.cell_id) or (file_digest(path) if path is not None else None)
        found[record.cell_id] = _Candidate(store, record, digest)
    return found


def _choose(cell_id: str, options: list[_Candidate]) -> _Candidate:
    """A done result beats a failed one; two different done results for one cell refuse the merge."""
    done = [c for c in options if c.record.status == "done"]
    if not done:
        return options[0]
    for other in done[1:]:
        if other.key() != done[0].key():
            raise MedrivalError(
                f"Cell {cell_id!r} has two different finished results: one in {str(done[0].store.root)!r}, another "
                f"in {str(other.store.root)!r} (different metrics or predictions). Nothing was merged. Keep one: "
                f"remove the store with the wrong result from the merge, or re-run the cell into one of them.")
    return done[0]


def _check_analysis(stores: list[ResultStore]) -> str | None:
    from medrival.stats.questions import ANALYSIS_FILE

    texts = {}
    for store in stores:
        path = store.root / ANALYSIS_FILE
        if path.is_file():
            texts[str(store.root)] = json.loads(path.read_text(encoding="utf-8"))
    if len({json.dumps(t, sort_keys=True) for t in texts.values()}) > 1:
        raise MedrivalError(f"The stores have different analysis settings ({ANALYSIS_FILE}: margins, exposure): "
                            + "; ".join(f"{root}: {t}" for root, t in texts.items())
                            + ". Nothing was merged. Merge only stores of one study run with the same settings.")
    return json.dumps(next(iter(texts.values())), indent=2, sort_keys=True) if texts else None


def merge_stores(sources: list[str | Path], out: str | Path) -> MergeSummary:
    """Copy every cell of ``sources`` (rows and checksum-verified predictions files) into the store ``out``."""
    if not sources:
        raise MedrivalError("Give at least one store to merge, e.g. `medrival merge shard1/ shard2/ --out all/`.")
    stores = [ResultStore(require_store(s), read_only=True) for s in sources]
    target = ResultStore(out, single_writer=True)
    for store in stores:
        damaged = store.damaged_cells()
        if damaged:
            raise MedrivalError("Nothing was merged. " + damaged_message(store.root, damaged))
    settings = _check_analysis([*stores, target])
    existing = {k: v for k, v in _candidates(target).items() if k not in target.damaged_cells()}
    options: dict[str, list[_Candidate]] = {}
    for store in stores:
        for cell_id, cand in _candidates(store).items():
            options.setdefault(cell_id, []).append(cand)
    chosen = {cell_id: _choose(cell_id, ([existing[cell_id]] if cell_id in existing else []) + found)
              for cell_id, found in options.items()}
    summary = MergeSummary(Path(out))
    for cell_id, cand in sorted(chosen.items()):
        if cell_id in existing and existing[cell_id].key() == cand.key():
            summary.unchanged.append(cell_id)
            continue
        _copy(target, cand, [str(c.store.root.resolve()) for c in options[cell_id] if c.key() == cand.key()])
        summary.added.append(cell_id)
    if settings is not None:
        from medrival.stats.questions import ANALYSIS_FILE
        (target.root / ANALYSIS_FILE).write_text(settings, encoding="utf-8")
    _merge_plans([target, *stores], target.root)
    return summary


def _merge_plans(stores: list[ResultStore], out: Path) -> None:
    """``plan.json`` of the merged store: the union of the planned cells (``status`` counts pending cells from
    it), finished only when every plan finished; no pid, since no single run writes the merged store."""
    plans = []
    for store in stores:
        try:
            plan = json.loads((store.root / "plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(plan, dict) and isinstance(plan.get("cells"), list):
            plans.append(plan)
    if not plans:
        return
    cells = {c.get("cell_id"): c for plan in plans for c in plan["cells"] if isinstance(c, dict)}
    ended = [p.get("ended_at") for p in plans]
    merged = {"study": plans[-1].get("study"), "started_at": min(str(p.get("started_at") or "") for p in plans),
              "ended_at": max((e for e in ended if e), default=None), "pid": None,
              "state": "finished" if all(p.get("state") == "finished" for p in plans) else "interrupted",
              "cells": list(cells.values())}
    tmp = out / f".plan.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(merged, indent=1), encoding="utf-8")
    os.replace(tmp, out / "plan.json")


def _copy(target: ResultStore, cand: _Candidate, sources: list[str]) -> None:
    record = cand.record
    record.provenance = {**record.provenance, "merged_from": sources}
    row = target._row(record)
    source_file = cand.store.predictions_path(record.cell_id)
    write = None if source_file is None else (lambda path: atomic_copy(source_file, path, cand.digest))
    target._commit(row, write, None)
