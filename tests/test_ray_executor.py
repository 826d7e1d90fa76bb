"""The Ray executor on a one-machine cluster, inside a network namespace that has only the loopback interface.

Ray is told to use 127.0.0.1, and the run happens in ``unshare -n`` (root, as in CI) with ``lo`` up, so nothing
can reach any other address; the script also lists every socket Ray listens on and the test checks each is on
loopback. Where namespaces are unavailable the test skips with the reason.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

STUDY = """
name: ray-study
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods: [zero_shot, knn]
"""

SCRIPT = textwrap.dedent("""
    import json, sys
    import psutil, ray
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    listening = sorted({c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN"})
    spec = load_study(sys.argv[1])
    spec = spec.model_copy(update={"executor": spec.executor.model_copy(update={"kind": "ray"})})
    run = run_study(spec, sys.argv[2])
    print(json.dumps({"listening": listening, "ran": len(run.ran), "failed": len(run.failed)}))
""")


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (iproute2) is not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"no network namespace here: {probe.stderr.strip()[:200]}"


def _run_in_namespace(tmp_path, study: str, script: str) -> dict:
    """Runs ``script`` on ``study`` in a loopback-only network namespace (skipping where there is none) and returns
    the JSON object it printed last; the Ray store is ``tmp_path/ray``."""
    pytest.importorskip("ray")
    problem = _namespace_problem()
    if problem:
        pytest.skip(f"Ray tests run only in a loopback-only network namespace: {problem}")
    (tmp_path / "study.yaml").write_text(study)
    (tmp_path / "script.py").write_text(script)
    command = (f"ip link set lo up && {sys.executable} {tmp_path / 'script.py'} {tmp_path / 'study.yaml'} "
               f"{tmp_path / 'ray'}")
    done = subprocess.run(["unshare", "-n", "bash", "-c", command], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _numbers(folder):
    from medrival.store import ResultStore

    frame = ResultStore(folder).results_frame()
    return frame.drop(columns=["wall_s", "peak_rss_mb"]).sort_values("cell_id").reset_index(drop=True)


def test_ray_run_gives_the_store_of_a_local_run_and_listens_on_loopback_only(tmp_path):
    outcome = _run_in_namespace(tmp_path, STUDY, SCRIPT)
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    assert outcome["ran"] == 4 and outcome["failed"] == 0
    assert outcome["listening"] and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
                                        for ip in outcome["listening"])
    run_study(load_study(tmp_path / "study.yaml"), tmp_path / "local")
    pd.testing.assert_frame_equal(_numbers(tmp_path / "local"), _numbers(tmp_path / "ray"), check_exact=False,
                                  rtol=1e-5)


CHAOS_STUDY = """
name: ray-chaos
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods:
  - linear_probe
  - name: lora
    config: {epochs: 3, lr: 0.001}
    seeds: [0, 1]
seeds: [0]
"""

# Runs the study on Ray in the main thread while a watcher thread SIGKILLs one Ray worker in the middle of a cell:
# once both models have written features (each worker has loaded its model and is inside its group's cells), no
# task has returned (nothing saved yet) and the victim still carries the task's process title. The watcher then
# keeps looking for a worker that (re-)enters the task, which is the retry. Every save the driver makes is counted
# per cell id (the store upserts by cell id, so a second save of a cell would not show as a second row).
CHAOS_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from collections import Counter
    from pathlib import Path
    import psutil, ray
    from medrival.store.results import ResultStore
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    TASK_TITLE = "ray::_run_group_task"
    saves = Counter()
    original_save = ResultStore.save

    def counting_save(self, record, *args, **kwargs):
        saves[record.cell_id] += 1
        return original_save(self, record, *args, **kwargs)

    ResultStore.save = counting_save
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    spec = load_study(sys.argv[1])
    spec = spec.model_copy(update={"executor": spec.executor.model_copy(update={"kind": "ray"})})
    features = Path(sys.argv[2]) / "features"
    finished, kill = threading.Event(), {}

    def executing():  # our own Ray workers (descendants of this process) now running a group task
        found = {}
        for process in psutil.Process().children(recursive=True):
            try:
                if (process.cmdline() or [""])[0].startswith(TASK_TITLE):
                    found[process.pid] = process
            except psutil.Error:
                pass
        return found

    def watcher():
        seen = {}
        while not finished.is_set():
            models = {path.name.split("-")[0] for path in features.glob("*.npy")} if features.is_dir() else set()
            busy = executing()
            if "pid" not in kill and len(models) >= 2 and busy:
                if sum(saves.values()):
                    kill["error"] = "a task returned before the kill"
                    return
                time.sleep(0.5)  # a little further into the cell
                busy = executing()
                if not busy or sum(saves.values()):
                    kill["error"] = "no task was running at the kill"
                    return
                pid, victim = sorted(busy.items())[0]
                cpu = sum(victim.cpu_times()[:2])
                os.kill(pid, signal.SIGKILL)
                kill.update(pid=pid, cpu_s=round(cpu, 2), saves_before=sum(saves.values()),
                            busy_at_kill=sorted(busy), model_features=len(models))
                seen = {p: None for p in busy if p != pid}  # the survivor, still in its first task
            elif "pid" in kill:
                for pid in busy:  # a new worker, or the survivor back in a task after going idle: the retry
                    if pid != kill["pid"] and (pid not in seen or seen[pid] == "idle"):
                        kill["retry_pid"] = pid
                for pid in seen:
                    if pid not in busy:
                        seen[pid] = "idle"
                if "retry_pid" in kill:
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    run = run_study(spec, sys.argv[2])
    finished.set()
    thread.join(10)
    store = ResultStore(sys.argv[2])
    records = store.records()
    print(json.dumps({"kill": kill, "planned": len(run.cells), "ran": run.ran, "failed": run.failed,
                      "saves": dict(saves), "records": [r.cell_id for r in records],
                      "statuses": sorted({r.status for r in records}),
                      "leases": len(store.active_leases())}))
""")


def test_a_ray_worker_killed_mid_cell_loses_no_cell_and_duplicates_none(tmp_path):
    outcome = _run_in_namespace(tmp_path, CHAOS_STUDY, CHAOS_SCRIPT)
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    kill = outcome["kill"]
    assert "error" not in kill and kill.get("pid"), f"no worker was killed mid-cell: {kill}"
    assert kill["saves_before"] == 0 and kill.get("retry_pid"), f"the killed task was not retried: {kill}"
    planned = outcome["planned"]
    assert planned == 6 and outcome["failed"] == []
    assert len(outcome["ran"]) == planned and len(set(outcome["ran"])) == planned
    assert sorted(outcome["saves"].values()) == [1] * planned  # the driver saved each cell exactly once
    assert len(outcome["records"]) == planned and set(outcome["records"]) == set(outcome["ran"])
    assert outcome["statuses"] == ["done"] and outcome["leases"] == 0
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray task runs (and several threads are far slower on a busy 2-core machine)
    try:
        run_study(load_study(tmp_path / "study.yaml"), tmp_path / "local")
    finally:
        torch.set_num_threads(threads)

    local, ray_run = _numbers(tmp_path / "local"), _numbers(tmp_path / "ray")
    assert len(local) == len(ray_run) == planned and ray_run["cell_id"].is_unique
    pd.testing.assert_frame_equal(local, ray_run, check_exact=False, rtol=1e-5)
