"""``medrival demo`` and ``medrival run``: run a study with live progress, write the reports, print the headline.

Exit codes: 0 when every cell is done; 1 when any cell failed (0 with ``--allow-failures``); 2 for user errors
(``medrival.cli.app``); 130 on Ctrl-C, after the cells that finished are saved and their report is written.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from medrival.cli.app import INTERRUPTED, app, interrupt_reported
from medrival.cli.output import stdout_console

TABLE_HELP = "Also print the per-cell results table (always in report/results.md and results.csv)."
ALLOW_HELP = "Exit with 0 even when some cells failed (default: 1, so scripts and CI notice)."
QUIET_HELP = "No progress display or per-cell lines."


def run_with_progress(start: Callable, out_dir: Path, console: Console, quiet: bool, show_table: bool,
                      allow_failures: bool) -> None:
    """Run ``start(progress)`` (it returns a ``StudyRun``), then report; raise ``typer.Exit`` with the exit code."""
    from medrival.cli.live_display import study_listener
    from medrival.cli.run_summary import print_outcome, write_all_reports
    from medrival.study.runner import StudyInterrupted

    listener = study_listener(console, quiet)
    try:
        with listener if isinstance(listener, contextlib.AbstractContextManager) else contextlib.nullcontext():
            run = start(listener)
    except StudyInterrupted as interrupted:
        _report_interrupted(interrupted.run, out_dir, console, show_table)
        raise typer.Exit(INTERRUPTED) from None
    print_outcome(console, run, write_all_reports(run, out_dir), show_table)
    if run.failed and not allow_failures:
        raise typer.Exit(1)


def _report_interrupted(run, out_dir: Path, console: Console, show_table: bool) -> None:
    """Ctrl-C: every cell in the store is whole (the one in flight was not saved); report what finished."""
    from medrival.cli.run_summary import print_outcome, write_all_reports

    interrupt_reported()
    paths = write_all_reports(run, out_dir)
    print_outcome(console, run, paths, show_table)
    finished = len(run.ran) + len(run.skipped)
    typer.echo(f"Interrupted: {finished} cells finished and saved; run the same command again to resume.", err=True)


@app.command("demo")
def demo(out: Path = typer.Option(Path("medrival-demo"), "--out", "-o",
                                  help="Folder for the store, feature cache and report; reusing it resumes."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
         table: bool = typer.Option(False, "--table", help=TABLE_HELP),
         allow_failures: bool = typer.Option(False, "--allow-failures", help=ALLOW_HELP),
         jobs: Optional[str] = typer.Option(None, "--jobs", "-j",
                                            help="Model groups run at once in child processes (a number or auto; "
                                                 "default auto: one per core; 1 runs everything in this process).")
         ) -> None:
    """Run the built-in offline demo study (synthetic world, tiny models shipped in the package).

    Both demo models x four synthetic modalities x the whole adaptation ladder (zero-shot, kNN, linear probe,
    Tip-Adapter(-F), CLIP-Adapter, CoOp, LoRA, full fine-tuning; a few minutes, see the README's benchmark); prints
    the headline of the report and the paths of the store and report. Running it again with the same --out reuses
    every finished cell.

    Example: medrival demo --out medrival-demo
    """
    from medrival.study.demo import run_demo
    from medrival.study.executors.groups import parse_jobs

    chosen_jobs = parse_jobs(jobs) if jobs is not None else None
    console = stdout_console()
    console.print("[bold]medrival demo[/bold]: synthetic data and tiny synthetic models (offline).")
    run_with_progress(lambda progress: run_demo(out, progress=progress, jobs=chosen_jobs), out, console, quiet, table,
                      allow_failures)


def with_executor(spec, kind: str | None, address: str | None):
    """The study with ``--executor`` / ``--address`` applied over its own ``executor:``."""
    from medrival.core.errors import ConfigError

    chosen = kind if kind is not None else spec.executor.kind
    if chosen not in ("local", "ray"):
        raise ConfigError(f"--executor {kind!r} is not an executor: use local or ray.")
    if address is not None and chosen != "ray":
        raise ConfigError("--address applies to --executor ray only (the Ray cluster to join).")
    changes = {"kind": chosen, **({"address": address} if address is not None else {})}
    return spec.model_copy(update={"executor": spec.executor.model_copy(update=changes)})


@app.command("run")
def run(study_file: Path = typer.Argument(..., help="Study YAML: models, datasets, methods, seeds."),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Store folder (default: the study's `store`, else "
                                                "./medrival-results/<study name>)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        table: bool = typer.Option(False, "--table", help=TABLE_HELP),
        allow_failures: bool = typer.Option(False, "--allow-failures", help=ALLOW_HELP),
        jobs: Optional[str] = typer.Option(None, "--jobs", "-j",
                                           help="Model groups run at once, each in a child process (a number or "
                                                "auto; default: the study's jobs, else 1)."),
        executor: Optional[str] = typer.Option(None, "--executor",
                                               help="local or ray (default: the study's executor, else local)."),
        address: Optional[str] = typer.Option(None, "--address",
                                              help="With --executor ray: auto (this machine's cluster), HOST:PORT, "
                                                   "or local (a one-machine cluster on 127.0.0.1, the default)."),
        shard: Optional[str] = typer.Option(None, "--shard",
                                            help="Run only shard i of N (i/N, from 0) of the planned cells into "
                                                 "this store, e.g. in a SLURM array; combine with medrival merge.")
        ) -> None:
    """Run a study file: every model x dataset x method x label budget x seed cell, skipping finished cells.

    Shows live progress on a terminal (one line per cell elsewhere); ends with the headline of the report and the
    paths. Exit code 0: every cell done; 1: some failed (see --allow-failures); 2: the study is invalid; 130:
    interrupted (finished cells are saved; run again to resume).

    Example: medrival run study.yaml --out results/my-study
    """
    from medrival.study.runner import run_study
    from medrival.study.spec import load_study

    from medrival.study.executors.groups import parse_jobs, parse_shard

    spec = load_study(study_file)
    if executor is not None or address is not None:
        spec = with_executor(spec, executor, address)
    out_dir = out or Path(spec.store or Path("medrival-results") / spec.name)
    chosen_jobs, chosen_shard = parse_jobs(jobs) if jobs is not None else None, parse_shard(shard) if shard else None
    run_with_progress(lambda progress: run_study(spec, out_dir, progress=progress, jobs=chosen_jobs,
                                                 shard=chosen_shard),
                      out_dir, stdout_console(), quiet, table, allow_failures)
