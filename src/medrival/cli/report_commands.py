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
           seed: int = typer.Option(0, "--seed", help="Seed of the resampling (results repeat exactly)."),
           vqa_metrics: str = typer.Option("closed_accuracy,open_token_f1", "--vqa-metrics",
                                           help="VQA datasets: comma-separated per-question metrics, e.g. "
                                                "closed_accuracy,open_token_f1,undecided_rate (lower is better).")
           ) -> None:
    """Write one self-contained HTML report of a study (RQ1-RQ3 with forest plots, per-dataset bars, few-shot
    curves, cost vs performance, failed cells) and the RQ tables as rqN.md / rqN.tex / rqN.csv next to it.

    Example: medrival report results/
    Example: medrival report results/ --metric balanced_accuracy
    """
    from medrival.report.html import write_report
    from medrival.store import ResultStore, outdated_vqa_note, require_store

    path = write_report(results_dir, out, n_resamples=resamples, seed=seed, metric=metric, vqa_metrics=vqa_metrics)
    note = outdated_vqa_note(ResultStore(require_store(results_dir)).records())
    if note:
        typer.echo(f"note: {note}", err=True)
    typer.echo(str(path))
