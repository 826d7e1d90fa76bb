"""A study store as tidy tables for other tools: ``cells``, ``metrics`` (long) and ``predictions`` (long).

Tidy means one observation per row and one variable per column, so pandas, R, DuckDB or a spreadsheet can join
and pivot them without knowing medrival: ``cells`` has one row per cell (its spec, method config, cost, status,
full error text, times); ``metrics`` one row per (cell, metric); ``predictions`` one row per (cell, split, item).
The files are written to a temporary name and moved into place, so an interrupted export never leaves half a
table under the final name; running the export again rewrites them from the store.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from medrival.core.errors import ConfigError
from medrival.store import ResultStore, is_outdated_vqa, require_store
from medrival.store.results import CellRecord, config_text

TABLE_FORMATS = ("parquet", "json")
SPEC_FIELDS = ("model", "role", "dataset", "modality", "domain", "task", "method", "method_label", "budget",
               "draw", "seed")
_ID_COLUMNS = ("cell_id", "model", "role", "dataset", "task", "method", "method_label", "budget", "draw", "seed")


def current_records(store: ResultStore) -> list[CellRecord]:
    """Every cell a reader sees: outdated VQA cells (scored by earlier rules) are left out, as in the report."""
    return [record for record in store.records() if not is_outdated_vqa(record)]


def _plain_number(value):
    """A finite float, or None: tidy tables say "missing" once (null), never NaN in one file and None in another."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cell_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell: identity, method config (canonical JSON), status, cost, times, full error, provenance."""
    rows = []
    for record in records:
        row = {"cell_id": record.cell_id, "status": record.status}
        row.update({name: record.spec.get(name) for name in SPEC_FIELDS})
        row["method_label"] = row["method_label"] or row["method"]
        row["config"] = config_text(record.spec.get("method_config"))
        row.update({f"cost_{key}": value for key, value in sorted(record.cost.items())
                    if not isinstance(value, (dict, list))})
        row.update({"started_at": record.started_at, "finished_at": record.finished_at, "error": record.error,
                    "provenance": json.dumps(record.provenance, sort_keys=True, default=str)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if frame.empty else frame.astype({"draw": "Int64", "seed": "Int64"}, errors="ignore")


def metric_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per (cell, metric) of the finished cells; an undefined metric (one class only) is a null value."""
    rows = []
    for record in records:
        if record.status != "done":
            continue
        identity = {"cell_id": record.cell_id, **{name: record.spec.get(name) for name in _ID_COLUMNS[1:]}}
        identity["method_label"] = identity["method_label"] or identity["method"]
        rows += [{**identity, "metric": name, "value": _plain_number(value)}
                 for name, value in sorted(record.metrics.items())]
    return pd.DataFrame(rows, columns=[*_ID_COLUMNS, "metric", "value"])


def prediction_table(store: ResultStore, records: list[CellRecord]) -> pd.DataFrame:
    """Every stored per-sample prediction with its cell id and split; columns are the union over cells (a VQA
    cell's answer text beside a classifier's probabilities), missing where a cell has no such column."""
    parts = []
    for record in records:
        if record.status != "done" or not store.has_predictions(record.cell_id):
            continue
        for split in ("test", "val"):
            frame = store.predictions(record.cell_id, split)
            if not frame.empty:
                parts.append(frame.assign(cell_id=record.cell_id, split=split))
    if not parts:
        return pd.DataFrame(columns=["cell_id", "split"])
    frame = pd.concat(parts, ignore_index=True, sort=False)
    first = ["cell_id", "split"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _atomic(target: Path, write) -> Path:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _write(frame: pd.DataFrame, folder: Path, name: str, fmt: str, lines: bool = False) -> Path:
    if fmt == "parquet":
        return _atomic(folder / f"{name}.parquet", lambda path: frame.to_parquet(path, index=False))
    suffix = "jsonl" if lines else "json"
    # pandas writes NaN as null: strict JSON that any reader accepts.
    return _atomic(folder / f"{name}.{suffix}",
                   lambda path: frame.to_json(path, orient="records", lines=lines, indent=None if lines else 1,
                                              force_ascii=False, date_format="iso"))


def check_format(fmt: str) -> str:
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"Table format {fmt!r} is not one of {', '.join(TABLE_FORMATS)}; "
                          "write e.g. `medrival export DIR --to parquet`.")
    return fmt


def write_tables(store_dir: str | Path, out_dir: str | Path, fmt: str = "parquet",
                 predictions: bool = True) -> list[Path]:
    """Write ``cells``, ``metrics`` and (unless ``predictions`` is False) ``predictions`` of the store in
    ``store_dir`` to ``out_dir`` as Parquet files or JSON (predictions as JSON lines: one object per line)."""
    check_format(fmt)
    store = ResultStore(require_store(store_dir), read_only=True).require_intact()  # refuse damaged cells
    records = current_records(store)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [_write(cell_table(records), folder, "cells", fmt), _write(metric_table(records), folder, "metrics", fmt)]
    if predictions:
        written.append(_write(prediction_table(store, records), folder, "predictions", fmt, lines=True))
    return written
