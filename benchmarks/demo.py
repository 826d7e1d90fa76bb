#!/usr/bin/env python
"""Benchmark of the offline demo study, cold then warm, plus the world generator's speed.

    .venv/bin/python benchmarks/demo.py [--with-jobs-1]

The demo runs as shipped (jobs: auto, model groups in child processes). Last line: JSON with wall_s, jobs,
pretrain_s (0: weights ship in the package), fit_s, n_cells, rerun_wall_s, rerun_speedup and world_10k_images_s
(10,000 images at 64 px); data_s, encode_s and load_model_s only when everything ran in this process (jobs 1).
With --with-jobs-1 the demo also runs cold with --jobs 1 in another folder, side by side: jobs_1_wall_s,
jobs_speedup and max_rel_diff (largest relative difference of any metric between the two stores).
"""
from __future__ import annotations

import json
import os
import platform
import sys
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


def max_relative_difference(frame_a, frame_b) -> float:
    """Largest relative difference of any numeric result column of two stores of the same cells."""
    import numpy as np

    skip = {"wall_s", "peak_rss_mb"}
    a, b = (f.sort_values("cell_id").reset_index(drop=True) for f in (frame_a, frame_b))
    if list(a["cell_id"]) != list(b["cell_id"]):
        return float("inf")
    columns = [c for c in a.select_dtypes("number").columns if c not in skip and c in b.columns]
    x, y = a[columns].to_numpy(float), b[columns].to_numpy(float)
    both = ~(np.isnan(x) & np.isnan(y))
    return float(np.max(np.abs(x - y)[both] / np.maximum(np.abs(y[both]), 1e-12), initial=0.0))


def cold_run(folder: Path, jobs=None):
    from medrival.study.demo import run_demo

    os.environ["MEDRIVAL_CACHE_DIR"] = str(folder / "cache")  # cold: the demo models are materialised too
    started = time.perf_counter()
    run = run_demo(folder / "demo", jobs=jobs)
    return run, time.perf_counter() - started


def main() -> None:
    from medrival.study.demo import demo_spec, run_demo

    scratch = Path(tempfile.mkdtemp(prefix="medrival-bench-"))
    run, wall = cold_run(scratch / "auto")
    frame = run.store.results_frame()
    fit_s = sum(r.cost.get("fit_s", 0.0) for r in run.store.records())
    started = time.perf_counter()
    rerun = run_demo(scratch / "auto" / "demo")
    rerun_wall = time.perf_counter() - started
    result = {
        "wall_s": round(wall, 2), "jobs": demo_spec().jobs, "pretrain_s": 0.0, "fit_s": round(fit_s, 2),
        "n_cells": len(frame), "n_failed": len(run.failed),
        "rerun_wall_s": round(rerun_wall, 3), "rerun_speedup": round(wall / max(rerun_wall, 1e-9), 1),
        "rerun_reused_cells": len(rerun.skipped), "world_10k_images_s": round(time_world(), 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version(),
    }
    for key in ("data_s", "encode_s", "load_model_s"):  # measured only where the cells ran (this process)
        if key in run.timings:
            result[key] = round(run.timings[key], 2)
    if "--with-jobs-1" in sys.argv[1:]:
        single, single_wall = cold_run(scratch / "jobs-1", jobs=1)
        result.update(jobs_1_wall_s=round(single_wall, 2), jobs_speedup=round(single_wall / wall, 2),
                      max_rel_diff=max_relative_difference(frame, single.store.results_frame()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
