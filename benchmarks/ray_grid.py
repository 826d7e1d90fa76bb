#!/usr/bin/env python
"""Ray executor scaling on CPU: the same study on a one-machine Ray cluster with 2 workers vs 1.

    .venv/bin/python benchmarks/ray_grid.py          # as root; re-executes itself in a loopback-only namespace

The study is 2 demo CLIP models x 2 demo diagnosis datasets (demo-xray, demo-pathology) x linear probe + LoRA
(10 epochs): 4 model groups of similar, CPU-bound work, each a Ray task of one CPU running one torch thread
(the runner sets ``threads=1`` on Ray). For each configuration a fresh cluster is started with
``ray.init(num_cpus=N)`` (N = 1, then 2; tasks ask for one CPU each, so N tasks run at once) before the timer,
the study runs into a fresh store with its own fresh feature cache (the store's ``features`` folder), and the
cluster is shut down after the timer. The cluster's worker processes are started (torch and medrival imported)
before the timer, as on a long-lived cluster; only the study run is timed.

Network safety: Ray must never see a real interface. Unless it already runs in a network namespace whose only
interface is ``lo``, the script re-executes itself under ``unshare -n bash -c 'ip link set lo up; ...'`` (root
needed) and refuses to run otherwise; every Ray address is 127.0.0.1 and the listening sockets are checked.

Last line: JSON with workers_1_s, workers_2_s, speedup (workers_1_s / workers_2_s; target >= 1.6), cells,
identical_results (both stores give the same numbers, rtol 1e-5), loopback_only (every listening socket of
each cluster is on loopback), load (/proc/loadavg before the runs) and machine.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSIDE = "MEDRIVAL_RAY_GRID_NAMESPACE"
LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")
STUDY = """
name: ray-grid
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-pathology]
methods:
  - linear_probe
  - name: lora
    config: {epochs: 10, lr: 0.001}
seeds: [0]
"""


def interfaces() -> list[str]:
    """This process's network namespace's interfaces (/proc/self/net/dev; /sys/class/net shows the namespace
    sysfs was mounted in, not necessarily ours)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return sorted(line.split(":")[0].strip() for line in lines if ":" in line)


def loopback_only_namespace() -> bool:
    return interfaces() == ["lo"]


def reexecute_in_namespace() -> None:
    """Run this script again in a new network namespace with only ``lo`` (up); exit with its status."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise SystemExit("ray_grid.py runs Ray only in a loopback-only network namespace, and unshare or ip "
                         "(util-linux, iproute2) is not installed: install them and run it as root.")
    inner = " ".join(shlex.quote(part) for part in [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    command = f"ip link set lo up && {INSIDE}=1 exec {inner}"
    done = subprocess.run(["unshare", "-n", "bash", "-c", command])
    if done.returncode != 0:
        print(f"ray_grid.py: the run in `unshare -n` ended with exit code {done.returncode} (unshare needs root; "
              "Ray is never started outside a loopback-only namespace)", file=sys.stderr)
    raise SystemExit(done.returncode)


def listening_addresses() -> list[str]:
    import psutil

    return sorted({c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN"})


def start_workers(workers: int) -> None:
    """Start the cluster's ``workers`` Ray worker processes (torch and medrival imported) before the timer, as a
    long-lived cluster has them: the timed run then measures the cells, not interpreter start-up. Ray reuses idle
    workers of the job for later tasks."""
    import ray

    @ray.remote(num_cpus=1)
    def warm() -> int:
        import medrival.study.executors.worker  # noqa: F401  (imports torch and the study machinery)

        time.sleep(1.0)  # held long enough that each warm-up task gets a worker of its own
        return os.getpid()

    pids = ray.get([warm.remote() for _ in range(workers)])
    if len(set(pids)) != workers:
        print(f"ray_grid.py: warm-up reached {len(set(pids))} of {workers} workers", file=sys.stderr)


def run_with_workers(workers: int, study_file: Path, store: Path) -> tuple[float, list[str], int]:
    """(seconds of the study run, listening addresses, cells run) on a fresh cluster of ``workers`` CPUs."""
    import ray

    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    spec = load_study(study_file)
    spec = spec.model_copy(update={"executor": spec.executor.model_copy(update={"kind": "ray"}),
                                   "feature_cache": None})  # the store's own (fresh) features folder
    ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    try:
        listening = listening_addresses()
        start_workers(workers)
        started = time.perf_counter()
        run = run_study(spec, store)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    if run.failed:
        raise SystemExit(f"{len(run.failed)} cell(s) failed with {workers} worker(s)")
    return seconds, listening, len(run.ran)


def numbers(store: Path):
    from medrival.store import ResultStore

    frame = ResultStore(store).results_frame()
    return frame.drop(columns=["wall_s", "peak_rss_mb"]).sort_values("cell_id").reset_index(drop=True)


def main() -> None:
    import pandas as pd

    from common import machine

    os.environ.pop("MEDRIVAL_FEATURE_CACHE", None)  # each store keeps its own cache: both runs encode alike
    load = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").is_file() else ""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "study.yaml").write_text(STUDY)
        one, listening_one, cells = run_with_workers(1, scratch / "study.yaml", scratch / "workers_1")
        two, listening_two, cells_two = run_with_workers(2, scratch / "study.yaml", scratch / "workers_2")
        try:
            pd.testing.assert_frame_equal(numbers(scratch / "workers_1"), numbers(scratch / "workers_2"),
                                          check_exact=False, rtol=1e-5)
            identical = True
        except AssertionError:
            identical = False
    listening = listening_one + listening_two
    print(f"1 worker {one:.1f} s, 2 workers {two:.1f} s ({cells} cells); load before: {load}", file=sys.stderr)
    print(json.dumps({"workers_1_s": round(one, 2), "workers_2_s": round(two, 2), "speedup": round(one / two, 3),
                      "cells": cells, "identical_results": identical and cells == cells_two,
                      "loopback_only": bool(listening) and all(ip in LOOPBACK for ip in listening),
                      "load": load, "machine": machine()}))


if __name__ == "__main__":
    if not loopback_only_namespace():
        if os.environ.get(INSIDE):
            raise SystemExit("ray_grid.py: the namespace it re-executed into has interfaces other than lo "
                             f"({interfaces()}); refusing to start Ray.")
        reexecute_in_namespace()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
