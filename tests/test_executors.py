"""Executors: groups and shards of a plan, and child processes giving the same results as the driver's process."""
from __future__ import annotations

import pandas as pd
import pytest

from medrival.core.errors import ConfigError
from medrival.study.executors.groups import group_cells, parse_shard, shard_groups
from medrival.study.executors.local import run_in_process
from medrival.study.executors.processes import run_in_children
from medrival.study.executors.worker import WorkerSettings
from medrival.study.runner import plan_cells
from medrival.study.spec import cell_id, parse_study

STUDY = """
name: executors
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-pathology]
methods: [zero_shot, knn, linear_probe]
"""


class Driver:
    """Claims everything and keeps each result by cell id (a cell delivered twice fails the test)."""

    def __init__(self):
        self.results, self.started_ids = {}, []

    def claim(self, cells):
        return cells

    def started(self, cell):
        self.started_ids.append(cell_id(cell))

    def finished(self, cell, record, predictions):
        assert cell_id(cell) not in self.results, "a cell was delivered twice"
        self.results[cell_id(cell)] = (record, predictions)


@pytest.fixture(scope="module")
def cells():
    return plan_cells(parse_study(STUDY))


def test_groups_keep_one_model_and_dataset_each(cells):
    groups = group_cells(cells)
    assert len(groups) == 4 and sum(len(g.cells) for g in groups) == len(cells) == 12
    assert all({(c.model, c.dataset) for c in g.cells} == {(g.model, g.dataset)} for g in groups)


def test_shards_cover_every_group_once_and_balance_cost(cells):
    groups = group_cells(cells)
    shards = [shard_groups(groups, i, 3) for i in range(3)]
    indices = sorted(g.index for shard in shards for g in shard)
    assert indices == [g.index for g in groups]
    assert shard_groups(groups, 1, 3) == shards[1]  # deterministic: every array task computes the same split
    loads = [sum(g.cost for g in shard) for shard in shards]
    assert max(loads) - min(loads) <= max(g.cost for g in groups)


@pytest.mark.parametrize("text", ["3", "3/3", "-1/2", "a/b", "1/0"])
def test_bad_shard_is_refused_with_the_form(text):
    with pytest.raises(ConfigError, match="i/N|0..N-1"):
        parse_shard(text)


def test_child_processes_give_the_results_of_the_driver_process(cells, tmp_path):
    spec, groups = parse_study(STUDY), group_cells(cells)
    here, there = Driver(), Driver()
    run_in_process(groups, WorkerSettings(str(tmp_path / "a"), "cpu", threads=1), here)
    run_in_children(groups, spec, WorkerSettings(str(tmp_path / "b"), "cpu", threads=1), 2, there)
    assert set(here.results) == set(there.results) == {cell_id(c) for c in cells}
    for key, (record, predictions) in here.results.items():
        other, other_predictions = there.results[key]
        assert record.status == other.status == "done"
        assert record.metrics == other.metrics
        pd.testing.assert_frame_equal(predictions, other_predictions, check_exact=True)
    assert sorted(there.started_ids) == sorted(here.started_ids)


def test_cli_jobs_2_and_shards_merged_give_the_store_of_one_job(tmp_path, capsys, monkeypatch):
    """`run --jobs 2` and two `--shard i/2` stores merged hold the same cells and numbers as `run --jobs 1`."""
    from medrival.cli.app import main
    from medrival.store import ResultStore
    from medrival.store.merge import merge_stores

    study = tmp_path / "study.yaml"
    study.write_text(STUDY.replace("methods: [zero_shot, knn, linear_probe]", "methods: [zero_shot, knn]"))
    for args in (["--jobs", "1"], ["--jobs", "2"], ["--shard", "0/2"], ["--shard", "1/2"]):
        name = "-".join(a.strip("-").replace("/", "of") for a in args)
        with pytest.raises(SystemExit) as leave:
            main(["run", str(study), "--out", str(tmp_path / name), "--quiet", *args])
        assert leave.value.code == 0
    merge_stores([tmp_path / "shard-0of2", tmp_path / "shard-1of2"], tmp_path / "merged")
    sizes = [len(ResultStore(tmp_path / f"shard-{i}of2").records()) for i in range(2)]
    assert all(sizes) and sum(sizes) == 8

    def numbers(folder):
        frame = ResultStore(tmp_path / folder).results_frame()
        return frame.drop(columns=["wall_s", "peak_rss_mb"]).sort_values("cell_id").reset_index(drop=True)

    # Same threads (shards run like --jobs 1): bit-identical. Children get one thread each, so float sums may
    # round differently in the last digits; the numbers agree to that precision.
    pd.testing.assert_frame_equal(numbers("jobs-1"), numbers("merged"), check_exact=True)
    pd.testing.assert_frame_equal(numbers("jobs-1"), numbers("jobs-2"), check_exact=False, rtol=1e-5)


@pytest.mark.parametrize("text", ["0", "x", "2000"])
def test_bad_jobs_is_refused(text):
    from medrival.study.executors.groups import parse_jobs

    with pytest.raises(ConfigError, match="auto"):
        parse_jobs(text)


@pytest.mark.parametrize("args, expected", [(["--executor", "dask"], "local or ray"),
                                            (["--address", "auto"], "--executor ray only")])
def test_bad_executor_options_exit_2_with_the_choices(args, expected, tmp_path, capsys):
    from medrival.cli.app import main

    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    with pytest.raises(SystemExit) as leave:
        main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", *args])
    assert leave.value.code == 2 and expected in capsys.readouterr().err
