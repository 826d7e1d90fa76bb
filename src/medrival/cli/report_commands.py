"""``medrival report``: the self-contained HTML report (plus RQ tables as Markdown, LaTeX and CSV)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medrival.cli.app import app


@app.command("report")
def report(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite)."),
           out: Optional[Path] = typer.Option(None, "--out", "-o",
                                              help="HTML file to write (default RESULTS_DIR/report/report.html)."),
           resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples per comparison."),
           metric: str = typer.Option("auroc", "--metric", help="Metric of every comparison, CI and plot: auroc, "
                                                                "accuracy, balanced_accuracy, macro_f1 or brier "
                                                                "(lower is better; verdicts follow)."),
           seed: int = typer.Option(0, "--seed", help="Seed of the resampling (results repeat exactly).")) -> None:
    """Write one self-contained HTML report of a study (RQ1-RQ3 with forest plots, per-dataset bars, few-shot
    curves, cost vs performance, failed cells) and the RQ tables as rqN.md / rqN.tex / rqN.csv next to it.

    Example: medrival report results/
    Example: medrival report results/ --metric balanced_accuracy
    """
    from medrival.report.html import write_report

    path = write_report(results_dir, out, n_resamples=resamples, seed=seed, metric=metric)
    typer.echo(str(path))
