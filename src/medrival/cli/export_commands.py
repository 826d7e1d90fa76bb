"""``medrival export``: a study store as MLflow runs (one per cell) or as tidy Parquet / JSON tables."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medrival.cli.app import app
from medrival.core.errors import ConfigError
from medrival.core.registry import suggest

TARGETS = ("mlflow", "parquet", "json")


def _check_target(target: str) -> str:
    if target not in TARGETS:
        close = suggest(target, list(TARGETS))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--to {target!r} is not an export target.{hint} Targets: {', '.join(TARGETS)}.")
    return target


@app.command("export")
def export(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite)."),
           to: str = typer.Option(..., "--to", help="mlflow (one run per cell), parquet or json (tidy tables)."),
           tracking_uri: Optional[str] = typer.Option(
               None, "--tracking-uri", help="MLflow tracking URI or folder (default: $MLFLOW_TRACKING_URI, else "
                                            "RESULTS_DIR/mlruns)."),
           experiment: Optional[str] = typer.Option(
               None, "--experiment", help="MLflow experiment (default: the study's name)."),
           out: Optional[Path] = typer.Option(
               None, "--out", "-o", help="Folder for the tables (default RESULTS_DIR/export)."),
           no_predictions: bool = typer.Option(
               False, "--no-predictions", help="Tables only: leave out the per-sample predictions table.")) -> None:
    """Export a study: to MLflow (parameters, metrics, cost, provenance, predictions as an artifact; running it
    again logs only new or re-run cells) or to tidy tables cells / metrics / predictions (Parquet or JSON).

    Example: medrival export results/ --to mlflow --tracking-uri http://127.0.0.1:5000
    Example: medrival export results/ --to parquet --out tables/
    """
    _check_target(to)
    if to == "mlflow":
        from medrival.export.mlflow_runs import export_to_mlflow

        summary = export_to_mlflow(results_dir, tracking_uri, experiment)
        typer.echo(f"MLflow {summary['tracking_uri']}, experiment {summary['experiment']!r}: "
                   f"{summary['logged']} runs logged, {summary['replaced']} replaced (cell re-run), "
                   f"{summary['unchanged']} unchanged.")
        return
    from medrival.export.tables import write_tables

    for path in write_tables(results_dir, out or Path(results_dir) / "export", to, predictions=not no_predictions):
        typer.echo(str(path))
