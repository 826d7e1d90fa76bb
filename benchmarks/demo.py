#!/usr/bin/env python
"""Benchmark of the offline demo study, cold then warm, plus the world generator's speed.

    .venv/bin/python benchmarks/demo.py

Last line: JSON with wall_s, data_s, pretrain_s (0: weights ship in the package), encode_s, fit_s, n_cells,
rerun_wall_s, rerun_speedup and world_10k_images_s (10,000 images at 64 px).
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path


def time_world(n_total: int = 10_000) -> float:
    from medrival.data import world

    per_modality = n_total // len(world.GENERATORS)
    started = time.perf_counter()
    for modality in world.GENERATORS:
        world.render(modality, "train", per_modality, seed=123)
    return time.perf_counter() - started


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="medrival-bench-"))
    os.environ["MEDRIVAL_CACHE_DIR"] = str(scratch / "cache")  # cold: the demo models are materialised too
    from medrival.study.demo import run_demo

    started = time.perf_counter()
    run = run_demo(scratch / "demo")
    wall = time.perf_counter() - started
    frame = run.store.results_frame()
    fit_s = sum(r.cost.get("fit_s", 0.0) for r in run.store.records())
    started = time.perf_counter()
    rerun = run_demo(scratch / "demo")
    rerun_wall = time.perf_counter() - started
    result = {
        "wall_s": round(wall, 2), "data_s": round(run.timings["data_s"], 2), "pretrain_s": 0.0,
        "encode_s": round(run.timings["encode_s"], 2), "load_model_s": round(run.timings["load_model_s"], 2),
        "fit_s": round(fit_s, 2), "n_cells": len(frame), "n_failed": len(run.failed),
        "rerun_wall_s": round(rerun_wall, 3), "rerun_speedup": round(wall / max(rerun_wall, 1e-9), 1),
        "rerun_reused_cells": len(rerun.skipped), "world_10k_images_s": round(time_world(), 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
