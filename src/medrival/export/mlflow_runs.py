"""A study store as MLflow runs: one run per cell, so a lab's tracker holds medrival studies beside its others.

Each run carries the cell's identity as tags (``medrival.cell_id``, model, dataset, method, role, ...), its
method options and label budget as parameters, its metrics and numeric cost (``cost.wall_s``, ...) as metrics,
its start and end times, and as artifacts the per-sample predictions (the store's Parquet file), the full spec
and provenance (JSON) and, for a failed cell, the full error and traceback (the run's status is then FAILED).

The export is idempotent: a cell already in the experiment with the same ``medrival.finished_at`` is left alone;
a cell that was re-run since (another finish time) replaces its old run. MLflow is an optional extra
(``pip install 'medrival[tracking]'``), imported only here. MLflow's own usage telemetry is switched off: medrival
never sends data anywhere the user did not name.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from medrival.core.errors import ConfigError
from medrival.export.tables import SPEC_FIELDS, current_records
from medrival.store import ResultStore, require_store
from medrival.store.results import CellRecord

CELL_TAG = "medrival.cell_id"
FINISHED_TAG = "medrival.finished_at"
_BATCH = 100  # MLflow accepts at most 100 params and 100 tags per log_batch call
_TEXT_LIMIT = 5000  # MLflow caps tag values (8000) and param values (6000); longer text goes to artifacts


def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if urlparse(tracking_uri).scheme in ("", "file"):
        # MLflow 3 keeps its file store only on request; a local folder is what a laptop user has.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("`medrival export --to mlflow` needs MLflow: pip install 'medrival[tracking]' "
                          "(or pip install mlflow-skinny).") from None
    return MlflowClient(tracking_uri=tracking_uri)


def tracking_uri_of(value: str | None, store_dir: Path) -> str:
    """The URI to log to: the one given, else $MLFLOW_TRACKING_URI, else ``<store>/mlruns`` (a local file store).
    A plain path becomes a ``file:`` URI (MLflow would read "C:" or a relative path ambiguously)."""
    chosen = value or os.environ.get("MLFLOW_TRACKING_URI") or str(store_dir / "mlruns")
    if urlparse(chosen).scheme in ("", "file") and not chosen.startswith("file:"):
        return Path(chosen).expanduser().resolve().as_uri()
    return chosen


def _millis(timestamp: str) -> int | None:
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def run_params(record: CellRecord) -> dict[str, str]:
    """Budget, draw, seed and every method option (``config.<name>``, also when null) as MLflow parameters."""
    params = {name: record.spec.get(name) for name in ("method_label", "budget", "draw", "seed")}
    params.update({f"config.{key}": value for key, value in (record.spec.get("method_config") or {}).items()})
    # Options as JSON (null, true, [1, 2]) so a reader can parse them back; plain strings stay as they are.
    return {key: (value if isinstance(value, str) else json.dumps(value, default=str))[:_TEXT_LIMIT]
            for key, value in params.items() if value is not None or key.startswith("config.")}


def run_tags(record: CellRecord) -> dict[str, str]:
    """Identity and status as tags (searchable in the MLflow UI), plus scalar provenance entries."""
    tags = {CELL_TAG: record.cell_id, FINISHED_TAG: record.finished_at, "medrival.status": record.status}
    tags.update({f"medrival.{name}": record.spec.get(name) for name in SPEC_FIELDS})
    tags.update({f"provenance.{key}": value for key, value in record.provenance.items()
                 if isinstance(value, (str, int, float, bool))})
    if "synthetic" in record.spec:
        tags["medrival.synthetic"] = record.spec["synthetic"]
    return {key: str(value)[:_TEXT_LIMIT] for key, value in tags.items() if value is not None}


def run_metrics(record: CellRecord) -> dict[str, float]:
    """Finite metrics under their names and numeric cost as ``cost.<name>``; an undefined metric is left out
    (MLflow has no missing value, and NaN would plot as a point)."""
    values = {name: _finite(value) for name, value in record.metrics.items()} if record.status == "done" else {}
    values.update({f"cost.{name}": _finite(value) for name, value in record.cost.items()
                   if not isinstance(value, bool)})
    return {name: value for name, value in values.items() if value is not None}


def _log_values(client, run_id: str, record: CellRecord) -> None:
    from mlflow.entities import Metric, Param, RunTag

    stamp = _millis(record.finished_at) or 0
    params = [Param(k, v) for k, v in run_params(record).items()]
    tags = [RunTag(k, v) for k, v in run_tags(record).items()]
    metrics = [Metric(k, v, stamp, 0) for k, v in run_metrics(record).items()]
    for start in range(0, max(len(params), len(tags), len(metrics)), _BATCH):
        end = start + _BATCH
        client.log_batch(run_id, metrics=metrics[start:end], params=params[start:end], tags=tags[start:end])


def _log_artifacts(client, run_id: str, store: ResultStore, record: CellRecord) -> None:
    with tempfile.TemporaryDirectory(prefix="medrival-mlflow-") as scratch:
        folder = Path(scratch)
        (folder / "spec.json").write_text(json.dumps(record.spec, indent=1, sort_keys=True, default=str), "utf-8")
        (folder / "provenance.json").write_text(json.dumps(record.provenance, indent=1, sort_keys=True,
                                                           default=str), "utf-8")
        if record.error:
            (folder / "error.txt").write_text(record.error, "utf-8")
        if record.traceback:
            (folder / "traceback.txt").write_text(record.traceback, "utf-8")
        client.log_artifacts(run_id, scratch, "medrival")
    source = store.predictions_path(record.cell_id) if record.status == "done" else None
    if source is not None:
        client.log_artifact(run_id, str(source), "predictions")


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"MLflow experiment {name!r} is deleted; restore it in MLflow or pass another name "
                          "with --experiment.")
    return experiment.experiment_id


def _existing_runs(client, experiment_id: str) -> dict[str, object]:
    """cell id -> the run already logged for it (the latest, should a cell appear twice)."""
    runs, token = {}, None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{CELL_TAG}` != ''", max_results=1000,
                                  page_token=token, order_by=["attributes.start_time ASC"])
        runs.update({run.data.tags[CELL_TAG]: run for run in page if CELL_TAG in run.data.tags})
        token = page.token
        if not token:
            return runs


def _log_cell(client, experiment_id: str, store: ResultStore, record: CellRecord) -> str:
    spec = record.spec
    name = " | ".join(str(spec.get(k)) for k in ("model", "dataset", "method_label", "budget") if spec.get(k))
    run = client.create_run(experiment_id, run_name=f"{name} | seed {spec.get('seed')}",
                            start_time=_millis(record.started_at), tags={CELL_TAG: record.cell_id})
    run_id = run.info.run_id
    try:
        _log_values(client, run_id, record)
        _log_artifacts(client, run_id, store, record)
    except BaseException:
        client.delete_run(run_id)  # no half-logged run that a later export would take as complete
        raise
    client.set_terminated(run_id, "FINISHED" if record.status == "done" else "FAILED",
                          end_time=_millis(record.finished_at))
    return run_id


def export_to_mlflow(store_dir: str | Path, tracking_uri: str | None = None,
                     experiment: str | None = None) -> dict[str, int | str]:
    """Log every cell of the store as one MLflow run; returns counts (``logged``, ``replaced``, ``unchanged``)
    and where they went (``tracking_uri``, ``experiment``)."""
    from medrival.stats.questions import analysis_settings

    root = require_store(store_dir)
    store = ResultStore(root, read_only=True).require_intact()  # refuse damaged cells
    uri = tracking_uri_of(tracking_uri, root)
    name = experiment or analysis_settings(store).get("study") or root.resolve().name
    client = _client(uri)
    experiment_id = _experiment_id(client, name)
    existing = _existing_runs(client, experiment_id)
    counts = {"logged": 0, "replaced": 0, "unchanged": 0}
    for record in current_records(store):
        old = existing.get(record.cell_id)
        if old is not None and old.data.tags.get(FINISHED_TAG) == record.finished_at \
                and old.info.status in ("FINISHED", "FAILED"):
            counts["unchanged"] += 1
            continue
        if old is not None:
            client.delete_run(old.info.run_id)
        _log_cell(client, experiment_id, store, record)
        counts["replaced" if old is not None else "logged"] += 1
    return {**counts, "tracking_uri": uri, "experiment": name}
