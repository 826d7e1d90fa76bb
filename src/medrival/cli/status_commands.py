"""``medrival status DIR``: done / failed / pending cells per model and dataset, and an ETA while a study runs."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from medrival.cli.app import app
from medrival.cli.output import Column, OutputFormat, fitted_table, stdout_console

STATUS_COLUMNS = (Column("model", identifier=True), Column("dataset", identifier=True),
                  Column("done", numeric=True), Column("failed", numeric=True), Column("pending", numeric=True))


def _headline(status: dict) -> str:
    from medrival.cli.live_display import format_seconds

    totals = status["totals"]
    text = (f"{status['study'] or 'study'} ({status['state']}): {totals['done']} done, {totals['failed']} failed, "
            f"{totals['pending']} pending of {status['planned']} planned")
    if status["state"] == "running":
        text += f"; run started {status['started_at']} (pid {status['pid']})"
        if status["eta_s"] is not None:
            text += f"; ETA {format_seconds(status['eta_s'])}"
    elif status["ended_at"]:
        text += f"; run {status['state']} at {status['ended_at']}"
    return text + "."


@app.command("status")
def status(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite)."),
           fmt: OutputFormat = typer.Option(OutputFormat.table, "--format",
                                            help="table (for people) or json (one object); csv: the per-model and "
                                                 "dataset rows.")) -> None:
    """Where a study stands: done / failed / pending cells per model and dataset, and the ETA while it runs
    (pending cells x the mean duration of the cells this run finished). Works during a run, from another terminal,
    and on a finished store.

    Example: medrival status results/my-study
    """
    from medrival.cli.output import to_csv
    from medrival.study.status import study_status

    report = study_status(results_dir)
    if fmt is OutputFormat.json:
        print(json.dumps(report, indent=1))
        return
    if fmt is OutputFormat.csv:
        print(to_csv(report["groups"]), end="")
        return
    console = stdout_console()
    rows = [[g["model"], g["dataset"], g["done"], g["failed"], g["pending"]] for g in report["groups"]]
    console.print(fitted_table(console, STATUS_COLUMNS, rows, title=f"Status of {report['store']}"))
    console.print(_headline(report), markup=False, highlight=False)
    if report["other_cells_in_store"]:
        console.print(f"({report['other_cells_in_store']} other cells in the store are not in the latest run's plan.)",
                      markup=False)
    if report["totals"]["failed"]:
        console.print("Failed cells: their errors are in the report's failed-cells section; running the study again "
                      "retries them.", markup=False)
