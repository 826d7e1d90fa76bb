"""Chaos: ``medrival run`` killed outright (``kill -9``) and run twice at once on one store, through the real CLI.

A killed driver must leave a store that the next run resumes to exactly the results of an uninterrupted run (every
cell once, the numbers equal, ``medrival verify`` clean); the child processes of a killed ``--jobs`` driver must end
by themselves; two runs sharing a store must split its cells (each cell run by exactly one of them) and give the
store of one run; ``status`` and ``report`` must work while a run is in progress.

Where a run is killed is drawn by a seeded RNG over counts of finished cells (not wall-clock delays), so the test
kills at the same places on every machine, however fast.
"""
from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from medrival.store import ResultStore
from medrival.study.plan_file import read_plan
from medrival.study.runner import cell_label, plan_cells
from medrival.study.spec import cell_id, parse_study

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL / SIGSTOP are POSIX signals")

# 2 models x 1 dataset = 2 groups (one per model; two child processes with --jobs 2) of 9 cells (zero_shot once,
# the others per seed): 18 cells, nearly all of them cheap once the group's features are encoded.
STUDY = """\
name: chaos
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods: [zero_shot, knn, tip_adapter]
seeds: [0, 1, 2, 3]
"""
SEED = 20261205  # of the kill points
KILLS = 5
RUN_TIMEOUT_S = 240.0  # one CLI run, generous: the machine running the suite may be busy
DONE_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.+): (done \(|FAILED \()")
HELD_LINE = re.compile(r"(\d+) cell\(s\) were being run by another process on this store")
OUTCOME_LINE = re.compile(r"ran (\d+) cells, reused (\d+) finished cells, (\d+) failed")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("chaos-study") / "study.yaml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def ids_by_label() -> dict[str, str]:
    """The planned cells: the label a per-cell line shows -> the cell id (unique labels in this study)."""
    cells = plan_cells(parse_study(STUDY))
    labels = {cell_label(c): cell_id(c) for c in cells}
    assert len(labels) == len(cells) == 18
    return labels


class CliRun:
    """``medrival run`` as a subprocess, its output read line by line as it comes (stdout and stderr together)."""

    def __init__(self, study: Path, store: Path, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        self.process = subprocess.Popen([sys.executable, "-m", "medrival", "run", str(study), "--out", str(store),
                                         *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, start_new_session=True)
        self.lines: list[str] = []
        self._news: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._news.put(line)
        self._news.put(None)  # end of output

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def finished_labels(self, outcome: str = "done") -> list[str]:
        """Labels of the cells whose per-cell line this run printed (in order), with the given outcome."""
        found = [DONE_LINE.match(line) for line in self.lines]
        return [m.group(3) for m in found if m and m.group(4).startswith(outcome)]

    def wait_for_cells(self, count: int, timeout: float = RUN_TIMEOUT_S) -> None:
        """Block until ``count`` per-cell lines were printed (fails if the run ends or stalls first)."""
        deadline = time.monotonic() + timeout
        while len(self.finished_labels()) + len(self.finished_labels("FAILED")) < count:
            try:
                line = self._news.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {count} finished cells within {timeout} s:\n{self.output}") from None
            if line is None:
                raise AssertionError(f"the run ended before {count} cells finished:\n{self.output}")

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def cleanup(self) -> None:
        """Whatever a failed test left: resume a stopped run and end it (its whole session)."""
        if self.process.poll() is None:
            for number in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, number)
                except ProcessLookupError:
                    pass
            self.process.wait(timeout=30)


def medrival(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "medrival", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def numbers(store: Path) -> pd.DataFrame:
    """The store's results, one row per cell, without the run-dependent costs (time and memory)."""
    frame = ResultStore(store, read_only=True).results_frame()
    return frame.drop(columns=["wall_s", "peak_rss_mb"]).sort_values("cell_id").reset_index(drop=True)


def assert_complete_and_clean(store: Path, ids: set[str]) -> None:
    """Every planned cell once and done, no lease or temporary file left, and ``medrival verify`` clean."""
    reader = ResultStore(store, read_only=True)
    stored = [record.cell_id for record in reader.records()]
    assert sorted(stored) == sorted(ids), "the store must hold every planned cell exactly once"
    assert {record.status for record in reader.records()} == {"done"}
    assert reader.active_leases() == []
    assert not list((store / "predictions").glob("*.tmp*")), "a temporary predictions file was left behind"
    check = medrival("verify", str(store))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"intact ({len(ids)} finished cells checked)" in check.stdout


@pytest.fixture(scope="module")
def uninterrupted(study, tmp_path_factory, ids_by_label) -> Path:
    """The study run once to the end, in the driver's process (``--jobs 1``): the store every chaos run must equal."""
    store = tmp_path_factory.mktemp("chaos-uninterrupted") / "store"
    run = CliRun(study, store)
    try:
        assert run.wait() == 0, run.output
    finally:
        run.cleanup()
    assert sorted(ids_by_label[label] for label in run.finished_labels()) == sorted(ids_by_label.values())
    return store


def _command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # ended meanwhile
        return [f"pid {process.pid} (ended)"]


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (an exited orphan nobody reaped yet is a zombie: it counts as ended)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


# ----------------------------------------------------------------------------------------------- kill -9
def test_driver_killed_five_times_then_resumed_gives_the_uninterrupted_results(study, tmp_path, ids_by_label,
                                                                              uninterrupted):
    """kill -9 at 5 seeded points on one store, each run resuming the last; then a run to the end."""
    rng, store, ids = random.Random(SEED), tmp_path / "store", set(ids_by_label.values())
    saved: set[str] = set()  # cells a killed run reported finished (so saved: the line follows the commit)
    for attempt in range(KILLS):
        before = ({record.cell_id for record in ResultStore(store, read_only=True).records()}
                  if (store / "results.sqlite").exists() else set())
        run = CliRun(study, store)
        try:
            run.wait_for_cells(rng.randint(1, 2))
            run.signal(signal.SIGKILL)
            assert run.wait() == -signal.SIGKILL, f"kill {attempt + 1} came too late:\n{run.output}"
        finally:
            run.cleanup()
        ran = [ids_by_label[label] for label in run.finished_labels()]
        assert len(ran) == len(set(ran)), f"a cell ran twice in one run:\n{run.output}"
        assert not set(ran) & before, f"a resumed run redid finished cells:\n{run.output}"
        assert not HELD_LINE.search(run.output) and "Traceback" not in run.output, run.output
        saved |= set(ran)
        store_now = ResultStore(store, read_only=True)
        assert store_now.damaged_cells() == {}, "a kill left a damaged cell"
        assert saved <= {record.cell_id for record in store_now.records()}
        assert len(store_now.records()) < len(ids), "the study ended before its last kill: nothing left to resume"
    resumed_from = {record.cell_id for record in ResultStore(store, read_only=True).records()}
    last = CliRun(study, store)
    try:
        assert last.wait() == 0, last.output
    finally:
        last.cleanup()
    # The dead driver's leases (same host, pid gone) are taken over at once: nothing is left for "another process".
    assert not HELD_LINE.search(last.output), last.output
    ran = {ids_by_label[label] for label in last.finished_labels()}
    assert ran == ids - resumed_from, "the last run must do exactly the cells no killed run saved"
    assert OUTCOME_LINE.search(last.output).groups() == (str(len(ran)), str(len(resumed_from)), "0")
    assert_complete_and_clean(store, ids)
    # Same process mode and threads as the uninterrupted run: bit-identical numbers.
    pd.testing.assert_frame_equal(numbers(store), numbers(uninterrupted), check_exact=True)


def test_children_of_a_killed_jobs_driver_exit_and_the_rerun_completes(study, tmp_path, ids_by_label, uninterrupted):
    """kill -9 of a ``--jobs 2`` driver: its worker processes end by themselves; a rerun finishes the study."""
    rng, store, ids = random.Random(SEED + 1), tmp_path / "store", set(ids_by_label.values())
    run = CliRun(study, store, "--jobs", "2")
    try:
        run.wait_for_cells(rng.randint(1, 4))
        children = psutil.Process(run.process.pid).children(recursive=True)
        commands = {child.pid: " ".join(_command(child)) for child in children}
        assert sum("spawn_main" in command for command in commands.values()) == 2, commands  # the two workers
        run.signal(signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL, run.output
        deadline = time.monotonic() + 15
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [commands[process.pid] for process in _alive(children)]
        for process in _alive(children):  # do not leak them into the rest of the suite
            process.kill()
        assert not left, f"orphaned processes of the killed driver still run 15 s after it: {left}"
    finally:
        run.cleanup()
    killed_saved = {ids_by_label[label] for label in run.finished_labels()}
    rerun = CliRun(study, store)  # resumed in the driver's process (cheaper to start; the leases work the same)
    try:
        assert rerun.wait() == 0, rerun.output
    finally:
        rerun.cleanup()
    assert not HELD_LINE.search(rerun.output), rerun.output
    ran = [ids_by_label[label] for label in rerun.finished_labels()]
    assert len(ran) == len(set(ran)) and not set(ran) & killed_saved, rerun.output
    assert_complete_and_clean(store, ids)
    # Children ran with one thread each (the uninterrupted run with the driver's): equal to float precision.
    pd.testing.assert_frame_equal(numbers(store), numbers(uninterrupted), check_exact=False, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- two runs at once
def test_two_concurrent_runs_on_one_store_run_every_cell_exactly_once(study, tmp_path, ids_by_label, uninterrupted):
    """Two ``medrival run`` on one fresh store, started together: they race for the first cells; the first to
    finish a cell is then paused (SIGSTOP) holding its group, so the other must meet held cells and go round them;
    ``status`` and ``report`` are taken while the paused run is still in progress; then it resumes."""
    store, ids = tmp_path / "store", set(ids_by_label.values())
    runs = [CliRun(study, store), CliRun(study, store)]
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any(run.finished_labels() for run in runs):
            assert time.monotonic() < deadline and all(r.process.poll() is None for r in runs), \
                "\n---\n".join(r.output for r in runs)
            time.sleep(0.02)
        paused, other = (runs[0], runs[1]) if runs[0].finished_labels() else (runs[1], runs[0])
        paused.signal(signal.SIGSTOP)

        during = medrival("status", str(store), "--format", "json", timeout=120)  # the other run is likely going on
        assert during.returncode == 0 and "Traceback" not in during.stderr, during.stdout + during.stderr
        assert json.loads(during.stdout)["planned"] == len(ids)

        assert other.wait() == 0, other.output
        status = medrival("status", str(store), "--format", "json", timeout=120)
        assert status.returncode == 0, status.stdout + status.stderr
        totals = json.loads(status.stdout)["totals"]  # the paused run's cells still to do are pending
        assert totals["pending"] == len(ids) - len(ResultStore(store, read_only=True).records()) > 0, totals
        report = medrival("report", str(store), "--out", str(tmp_path / "during" / "report.html"),
                          "--resamples", "50", timeout=180)
        assert report.returncode == 0 and "Traceback" not in report.stdout + report.stderr, \
            report.stdout + report.stderr
        assert (tmp_path / "during" / "report.html").stat().st_size > 0
        assert paused.process.poll() is None, "the paused run must still be in progress during status and report"
        if ResultStore(store, read_only=True).active_leases():  # the paused run is inside a cell (nearly always)
            assert read_plan(store)["state"] == "running", "the first run to end must not mark the plan finished"

        paused.signal(signal.SIGCONT)
        assert paused.wait() == 0, paused.output
        assert read_plan(store)["state"] == "finished"
    finally:
        for run in runs:
            run.cleanup()

    done = [{ids_by_label[label] for label in run.finished_labels()} for run in runs]
    assert all(len(run.finished_labels()) == len(d) for run, d in zip(runs, done)), "a cell ran twice in one run"
    assert all(done), "each run started together must have run some cells"
    assert not done[0] & done[1], f"cells run by both runs: {sorted(done[0] & done[1])}"
    assert done[0] | done[1] == ids
    assert not any(run.finished_labels("FAILED") for run in runs)
    for run, mine in zip(runs, done):
        held = HELD_LINE.search(run.output)
        assert held, f"a run sharing the store must say some cells were run by another process:\n{run.output}"
        ran, reused, failed = map(int, OUTCOME_LINE.search(run.output).groups())
        assert (ran, failed) == (len(mine), 0)
        assert ran + reused + int(held.group(1)) == len(ids), run.output  # every planned cell accounted for once
    assert_complete_and_clean(store, ids)
    # Both runs work in their driver's process with the same threads as the single run: bit-identical numbers.
    pd.testing.assert_frame_equal(numbers(store), numbers(uninterrupted), check_exact=True)
