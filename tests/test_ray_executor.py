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


def test_ray_run_gives_the_store_of_a_local_run_and_listens_on_loopback_only(tmp_path):
    pytest.importorskip("ray")
    problem = _namespace_problem()
    if problem:
        pytest.skip(f"Ray tests run only in a loopback-only network namespace: {problem}")
    from medrival.store import ResultStore
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "script.py").write_text(SCRIPT)
    command = (f"ip link set lo up && {sys.executable} {tmp_path / 'script.py'} {tmp_path / 'study.yaml'} "
               f"{tmp_path / 'ray'}")
    done = subprocess.run(["unshare", "-n", "bash", "-c", command], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["ran"] == 4 and outcome["failed"] == 0
    assert outcome["listening"] and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
                                        for ip in outcome["listening"])
    run_study(load_study(tmp_path / "study.yaml"), tmp_path / "local")

    def numbers(folder):
        frame = ResultStore(tmp_path / folder).results_frame()
        return frame.drop(columns=["wall_s", "peak_rss_mb"]).sort_values("cell_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(numbers("local"), numbers("ray"), check_exact=False, rtol=1e-5)
