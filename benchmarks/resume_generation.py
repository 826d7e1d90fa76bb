#!/usr/bin/env python
"""Work redone when a killed VQA cell is run again: the generation cache resumes at the first missing answer.

    .venv/bin/python benchmarks/resume_generation.py            # demo generative model, CPU, demo-xray-vqa test

A subprocess runs a ``vqa_zero_shot`` cell (demo-generalist-vlm on demo-xray-vqa, batch 8) with a fresh feature
cache folder and is SIGKILLed once the generation cache holds about half of the test answers (the parent polls the
sqlite count); the cell is then run again to the end, and once more without any cache (the reference).
Last line: JSON with redone_fraction (answers generated in the rerun / total; target <= 0.55), total_questions,
generated_before_kill, generated_after_resume, identical_answers (resumed == uninterrupted) and machine.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import machine

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from medrival.core.types import CellSpec
    from medrival.study.cell import CellContext, execute_cell
    folder, out = sys.argv[1], sys.argv[2]
    context = CellContext(Path(folder) if folder else None, device="cpu")
    cell = CellSpec("demo-generalist-vlm", "demo-xray-vqa", "vqa_zero_shot", method_config=(("batch_size", 8),))
    record, frame = execute_cell(cell, context)
    Path(out).write_text(json.dumps({"status": record.status, "error": record.error,
                                     "responses": frame["response"].tolist(),
                                     "generation_cache": record.cost.get("generation_cache")}))
""")


def answers_stored(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM generations WHERE kind = 'answer'").fetchone()[0])
    except sqlite3.Error:
        return 0  # the table is not there yet


def run(folder: str, out: Path, kill_at: int | None = None) -> dict | None:
    process = subprocess.Popen([sys.executable, "-c", CHILD, folder, str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    if kill_at is None:
        if process.wait(600) != 0:
            raise SystemExit(f"the cell run failed (exit {process.returncode})")
        return json.loads(out.read_text())
    database = Path(folder) / "generations.sqlite"
    while process.poll() is None:
        if answers_stored(database) >= kill_at:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(60)
    if process.returncode != -signal.SIGKILL:
        raise SystemExit("the cell finished before it could be killed")
    return None


def main() -> None:
    from medrival.data.catalog import load_dataset

    total = len(load_dataset("demo-xray-vqa", "test"))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = str(scratch / "features")
        started = time.perf_counter()
        run(folder, scratch / "killed.json", kill_at=total // 2)
        before = answers_stored(Path(folder) / "generations.sqlite")
        resumed = run(folder, scratch / "resumed.json")
        closed = sum(form == "yes_no" for form in load_dataset("demo-xray-vqa", "test").forms)
        after = resumed["generation_cache"]["misses"] - closed  # yes/no scores come after every answer
        reference = run("", scratch / "cold.json")
        print(f"killed at {before}/{total} answers; the rerun generated {after}; "
              f"{time.perf_counter() - started:.1f} s in all", file=sys.stderr)
    print(json.dumps({"redone_fraction": round(after / total, 4), "total_questions": total,
                      "generated_before_kill": before, "generated_after_resume": after,
                      "reused_answers": resumed["generation_cache"]["hits"],
                      "identical_answers": resumed["responses"] == reference["responses"],
                      "machine": machine()}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
