"""``medrival demo`` and ``medrival run``: run a study, print the table, write the reports (tables and the HTML
report with the research questions)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from medrival.cli.app import app


def _console() -> Console:
    """A wide console when output is piped (CI logs, files): the results table then stays one row per cell."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _finish(run, out_dir: Path, console: Console) -> None:
    from medrival.report import results_table, write_reports

    frame = run.frame()
    console.print(results_table(frame, title=f"medrival results ({len(frame)} cells)"))
    paths = write_reports(frame, out_dir / "report")
    console.print(f"ran {len(run.ran)} cells, reused {len(run.skipped)} finished cells, {len(run.failed)} failed "
                  f"({run.timings.get('wall_s', 0.0):.1f} s)")
    console.print(f"store:    {run.store.paths.sqlite_path}")
    console.print(f"          {run.store.paths.predictions_dir} (per-sample predictions, Parquet)")
    for kind, path in paths.items():
        console.print(f"{kind + ':':<9} {path}")
    if run.frame()["status"].eq("done").any():
        from medrival.report.html import write_report

        # The study's answer: RQ tables with paired CIs and verdicts, plots, failures (one self-contained page).
        console.print(f"{'html:':<9} {write_report(out_dir)}")


@app.command("demo")
def demo(out: Path = typer.Option(Path("medrival-demo"), "--out", "-o",
                                  help="Folder for the store, feature cache and report; reusing it resumes."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-cell progress lines.")) -> None:
    """Run the built-in offline demo study (synthetic world, tiny models shipped in the package).

    Both demo models x four synthetic modalities x the whole adaptation ladder (zero-shot, kNN, linear probe,
    Tip-Adapter(-F), CLIP-Adapter, CoOp, LoRA, full fine-tuning; about 1.5 min on 2 CPU cores); prints the results
    table and the paths of the store and report. Running it again with the same --out reuses every finished cell.

    Example: medrival demo --out medrival-demo
    """
    from medrival.study.demo import run_demo

    console = _console()
    console.print("[bold]medrival demo[/bold]: synthetic data and tiny synthetic models (offline).")
    run = run_demo(out, progress=(lambda _: None) if quiet else console.print)
    _finish(run, out, console)


@app.command("run")
def run(study_file: Path = typer.Argument(..., help="Study YAML: models, datasets, methods, seeds."),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Store folder (default: the study's `store`, else "
                                                "./medrival-results/<study name>).")) -> None:
    """Run a study file: every model x dataset x method x label budget x seed cell, skipping finished cells.

    Example: medrival run study.yaml --out results/my-study
    """
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    spec = load_study(study_file)
    out_dir = out or Path(spec.store or Path("medrival-results") / spec.name)
    console = _console()
    result = run_study(spec, out_dir, progress=console.print)
    _finish(result, out_dir, console)
