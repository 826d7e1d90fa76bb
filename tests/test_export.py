"""``medrival export``: tidy Parquet / JSON tables and one MLflow run per cell, on a real study store."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from medrival.core.errors import ConfigError, MedrivalError
from medrival.export.tables import write_tables
from medrival.store import ResultStore
from medrival.store.results import CellRecord
from medrival.study.runner import run_study
from medrival.study.spec import parse_study

STUDY = """
name: export study
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods: [zero_shot, linear_probe]
"""
# A failed cell whose message has numbered fix steps on several lines: an export must keep all of it.
ERROR = "Weights of 'x' are not here, as below.\n  1. hf download org/x\n  2. or set weights: /path/to/x"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    run_study(parse_study(STUDY), out)
    ResultStore(out).save(CellRecord(
        cell_id="failedcell0001", status="failed", error=ERROR, traceback="Traceback ...",
        spec={"model": "demo-generalist-clip", "dataset": "demo-xray", "method": "lora", "seed": 0},
        started_at="2026-12-05T06:00:00+00:00", finished_at="2026-12-05T06:00:05+00:00"))
    return out


def test_parquet_tables_hold_every_cell_metric_and_prediction(store_dir, tmp_path):
    paths = write_tables(store_dir, tmp_path, "parquet")
    assert [p.name for p in paths] == ["cells.parquet", "metrics.parquet", "predictions.parquet"]
    store = ResultStore(store_dir)
    records = {r.cell_id: r for r in store.records()}
    cells = pd.read_parquet(tmp_path / "cells.parquet")
    assert set(cells["cell_id"]) == set(records) and len(cells) == 5
    failed = cells.set_index("cell_id").loc["failedcell0001"]
    assert failed["status"] == "failed" and failed["error"] == ERROR  # never cut
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    done = [r for r in records.values() if r.status == "done"]
    assert len(metrics) == sum(len(r.metrics) for r in done)
    for record in done:  # every number equals the store's, NaN (undefined) as a missing value
        mine = metrics[metrics["cell_id"] == record.cell_id].set_index("metric")["value"]
        for name, value in record.metrics.items():
            assert (pd.isna(mine[name]) and math.isnan(value)) or mine[name] == pytest.approx(value)
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    for record in done:
        test = store.predictions(record.cell_id)
        mine = predictions[(predictions["cell_id"] == record.cell_id) & (predictions["split"] == "test")]
        assert len(mine) == len(test)
        shared = [c for c in test.columns if c in mine.columns]
        pd.testing.assert_frame_equal(mine[shared].reset_index(drop=True), test[shared].reset_index(drop=True),
                                      check_dtype=False)


def test_json_tables_are_strict_json_with_nulls(store_dir, tmp_path):
    paths = write_tables(store_dir, tmp_path, "json", predictions=False)
    assert [p.name for p in paths] == ["cells.json", "metrics.json"]
    cells = json.loads((tmp_path / "cells.json").read_text(encoding="utf-8"),
                       parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    by_id = {row["cell_id"]: row for row in cells}
    assert by_id["failedcell0001"]["error"] == ERROR and by_id["failedcell0001"]["draw"] is None
    assert {row["model"] for row in cells} == {"demo-generalist-clip", "demo-specialist-clip"}


def test_rerunning_the_table_export_rewrites_the_same_tables(store_dir, tmp_path):
    first = pd.read_parquet(write_tables(store_dir, tmp_path, "parquet")[0])
    second = pd.read_parquet(write_tables(store_dir, tmp_path, "parquet")[0])
    pd.testing.assert_frame_equal(first, second)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_table_format_and_missing_store_are_clear(store_dir, tmp_path):
    with pytest.raises(ConfigError, match="'xlsx' is not one of parquet, json"):
        write_tables(store_dir, tmp_path, "xlsx")
    with pytest.raises(MedrivalError, match="No medrival store"):
        write_tables(tmp_path / "nothing", tmp_path, "json")


mlflow = pytest.importorskip("mlflow", reason="the MLflow export is an optional extra: pip install 'medrival[tracking]'")


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=1000)


def test_mlflow_export_logs_one_complete_run_per_cell(store_dir, tmp_path):
    from medrival.export.mlflow_runs import export_to_mlflow

    summary = export_to_mlflow(store_dir, str(tmp_path / "mlruns"))
    assert summary["experiment"] == "export study"  # the study's name
    assert (summary["logged"], summary["replaced"], summary["unchanged"]) == (5, 0, 0)
    client, runs = _runs(summary["tracking_uri"], "export study")
    by_cell = {run.data.tags["medrival.cell_id"]: run for run in runs}
    store = ResultStore(store_dir)
    assert set(by_cell) == {r.cell_id for r in store.records()}
    for record in store.records():
        run = by_cell[record.cell_id]
        assert run.data.tags["medrival.model"] == record.spec["model"]
        assert run.data.tags["medrival.dataset"] == record.spec["dataset"]
        if record.status == "failed":
            assert run.info.status == "FAILED"
            error = client.download_artifacts(run.info.run_id, "medrival/error.txt", str(tmp_path))
            assert open(error, encoding="utf-8").read() == ERROR
            continue
        assert run.info.status == "FINISHED"
        finite = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
        assert {k: run.data.metrics[k] for k in finite} == pytest.approx(finite)
        assert run.data.metrics["cost.wall_s"] == pytest.approx(record.cost["wall_s"])
        assert run.data.params["seed"] == str(record.spec["seed"])
        for key, value in (record.spec.get("method_config") or {}).items():
            logged = run.data.params[f"config.{key}"]
            assert logged == value if isinstance(value, str) else json.loads(logged) == value
        local = client.download_artifacts(run.info.run_id, "predictions", str(tmp_path / record.cell_id))
        parquet = next(__import__("pathlib").Path(local).glob("*.parquet"))
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), pd.read_parquet(store.predictions_path(record.cell_id)))


def test_mlflow_export_is_idempotent_and_replaces_re_run_cells(store_dir, tmp_path):
    from medrival.export.mlflow_runs import export_to_mlflow

    uri = str(tmp_path / "mlruns")
    export_to_mlflow(store_dir, uri, "runs")
    again = export_to_mlflow(store_dir, uri, "runs")
    assert (again["logged"], again["replaced"], again["unchanged"]) == (0, 0, 5)
    store = ResultStore(store_dir)
    record = store.get("failedcell0001")
    record.finished_at = "2026-12-05T07:00:00+00:00"  # the cell ran again
    store.save(record)
    third = export_to_mlflow(store_dir, uri, "runs")
    assert (third["logged"], third["replaced"], third["unchanged"]) == (0, 1, 4)
    _, runs = _runs(third["tracking_uri"], "runs")
    assert len(runs) == 5  # the old run of the re-run cell is gone, not duplicated


def test_cli_export_writes_tables_and_rejects_an_unknown_target(store_dir, tmp_path):
    from test_cli import medrival_cli

    result = medrival_cli("export", str(store_dir), "--to", "parquet", "--out", str(tmp_path / "t"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t" / "cells.parquet").is_file()
    bad = medrival_cli("export", str(store_dir), "--to", "mlflw")
    assert bad.returncode == 2 and "Did you mean 'mlflow'?" in bad.stderr and "Traceback" not in bad.stderr
