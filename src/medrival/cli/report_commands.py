"""``medrival report``: the self-contained HTML report (plus RQ tables as Markdown, LaTeX and CSV)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medrival.cli.app import app


def parse_margins(values: list[str]) -> dict[str, float]:
    """``["auroc=0.01", ...]`` -> {"auroc": 0.01}; a malformed entry or an unknown metric is a clear error."""
    from medrival.core.errors import ConfigError
    from medrival.core.registry import suggest
    from medrival.stats.verdicts import DEFAULT_MARGINS, check_margin

    margins = {}
    for text in values:
        metric, sep, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise ConfigError(f"--margin {text!r} is not METRIC=VALUE; write e.g. --margin auroc=0.02.")
        if metric not in DEFAULT_MARGINS:
            close = suggest(metric, list(DEFAULT_MARGINS))
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--margin names no metric {metric!r}.{hint} Metrics: {', '.join(DEFAULT_MARGINS)}.")
        margins[metric] = check_margin(number, metric)
    return margins


@app.command("report")
def report(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite)."),
           out: Optional[Path] = typer.Option(None, "--out", "-o",
                                              help="HTML file to write (default RESULTS_DIR/report/report.html)."),
           resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples per comparison."),
           metric: str = typer.Option("auroc", "--metric", help="Metric of every comparison, CI and plot: auroc, "
                                                                "accuracy, balanced_accuracy, macro_f1 or brier "
                                                                "(lower is better; verdicts follow)."),
           seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1,
                                     help="Seed of the resampling (results repeat exactly)."),
           vqa_metrics: str = typer.Option("closed_accuracy,open_token_f1", "--vqa-metrics",
                                           help="VQA datasets: comma-separated per-question metrics, e.g. "
                                                "closed_accuracy,open_token_f1,undecided_rate (lower is better)."),
           margin: list[str] = typer.Option([], "--margin", help="Non-inferiority margin METRIC=VALUE, e.g. "
                                                                 "auroc=0.01 (repeatable; overrides the study's)."),
           exposure: Optional[str] = typer.Option(None, "--exposure", help="Comparisons on data a model was "
                                                                           "trained on: mark or exclude (default: "
                                                                           "the study's setting).")
           ) -> None:
    """Write one self-contained HTML report of a study (RQ1-RQ3 with forest plots, per-dataset bars, few-shot
    curves, cost vs performance, failed cells) and the RQ tables as rqN.md / rqN.tex / rqN.csv next to it.

    Example: medrival report results/
    Example: medrival report results/ --metric balanced_accuracy
    Example: medrival report results/ --margin auroc=0.01 --exposure exclude
    """
    from medrival.report.html import write_report
    from medrival.store import ResultStore, outdated_vqa_note, require_store

    path = write_report(results_dir, out, n_resamples=resamples, seed=seed, metric=metric, vqa_metrics=vqa_metrics,
                        margins=parse_margins(margin), exposure=exposure)
    note = outdated_vqa_note(ResultStore(require_store(results_dir), read_only=True).records())
    if note:
        typer.echo(f"note: {note}", err=True)
    typer.echo(str(path))
