"""``medrival datasets [check NAME]`` and ``medrival prepare NAME``: what data exists, whether it is here, and
whether the files on disk are what the release says."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from medrival.cli.app import app
from medrival.cli.output import FORMAT_HELP, Column, OutputFormat, print_listing, stdout_console

datasets_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
app.add_typer(datasets_app, name="datasets")

_ROOT_HELP = "Dataset folder (default: $MEDRIVAL_DATA_DIR/<folder>, else ~/medrival-data/<folder>)."


DATASET_COLUMNS = (Column("name", identifier=True), Column("task", drop=2), Column("modality", drop=3),
                   Column("classes", drop=4), Column("licence", drop=5), Column("here"),
                   Column("how to obtain", drop=6))


def _dataset_record(name: str, entry, releases) -> dict:
    from medrival.data.zoo.api import is_available
    from medrival.data.zoo.entries import resolve_root

    info = entry.info
    if name in releases:
        release = releases.get(name)
        here = f"yes ({resolve_root(release)})" if is_available(name) else "no"
        obtain = release.obtain[0]
    else:
        here, obtain = "built in (synthetic)", "generated on demand"
    return {"name": name, "task": info.task.value, "modality": info.modality, "classes": list(info.class_names),
            "licence": info.licence, "here": here, "how_to_obtain": obtain}


def _short_classes(names: list[str]) -> str:
    classes = ", ".join(names)
    if len(classes) > 60:  # long tables (MedMNIST's blood cells) would swamp the listing; json has them all
        classes = f"{classes[:57].rsplit(', ', 1)[0]}, ... ({len(names)} classes)"
    return classes or "(free text)"


@datasets_app.callback()
def list_datasets(context: typer.Context,
                  fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP)) -> None:
    """List every dataset: task, modality, classes, licence, whether its files are here, and how to obtain it;
    or check one dataset's files with the check subcommand.

    Example: medrival datasets

    Example: medrival datasets --format csv > datasets.csv

    Example: medrival datasets check ham10000 --root ~/data/HAM10000
    """
    if context.invoked_subcommand is not None:
        return
    from medrival.data.catalog import dataset_registry
    from medrival.data.zoo.registry import release_registry

    releases = release_registry()
    records = [_dataset_record(name, entry, releases) for name, entry in dataset_registry().items()]
    rows = [[r["name"], r["task"], r["modality"], _short_classes(r["classes"]), r["licence"], r["here"],
             r["how_to_obtain"]] for r in records]
    console = stdout_console()
    print_listing(console, fmt, DATASET_COLUMNS, rows, records, title="Datasets")
    if fmt is OutputFormat.table:
        console.print("Get one: medrival prepare NAME. Check one: medrival datasets check NAME --root DIR.",
                      markup=False)


@datasets_app.command("check")
def check(name: str = typer.Argument(..., help="Registered dataset name (see `medrival datasets`)."),
          root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
          annotations_only: bool = typer.Option(False, "--annotations-only",
                                                help="Validate annotation files only; do not open any image."),
          strict: bool = typer.Option(False, "--strict", help="Exit with an error if any image is missing or "
                                      "unreadable (default: report them)."),
          workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes (default: cores).")
          ) -> None:
    """Validate a dataset's files; prints per-split counts, per-class (or per-answer-type) counts, missing and
    unreadable files, and a JSON summary as the last line.

    Example: medrival datasets check ham10000 --root ~/data/HAM10000
    """
    from medrival.data.zoo.api import check_release

    summary = check_release(name, root, annotations_only=annotations_only, strict=strict, workers=workers)
    _print_summary(summary)
    typer.echo(json.dumps(summary, sort_keys=False))


def _print_summary(summary: dict) -> None:
    console = Console(stderr=False)
    console.print(f"[bold]{escape(summary['dataset'])}[/bold] ({summary['task']}, {escape(summary['modality'])}) at "
                  f"{escape(summary['root'])}")
    counts = summary.get("examples") or summary.get("questions") or {}
    console.print("examples per split: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for split, forms in (summary.get("vqa_forms") or {}).items():
        if isinstance(forms, dict):
            asked = ", ".join(f"{form} {count}" for form, count in forms["asked"].items())
            scored = ", ".join(f"{form} {count}" for form, count in forms["scored_as"].items())
            console.print(f"{split}: asked as {asked}; scored as {scored}", markup=False)
    for note in summary.get("notes", []):
        console.print(f"  note: {note}", markup=False)
    for warning in summary.get("warnings", []):
        console.print(f"  warning: {warning}", markup=False, style="yellow")
    files = summary.get("files")
    if files:
        console.print(f"images: {files['referenced']} referenced, {files['decoded']} decoded, "
                      f"{files['missing']} missing, {files['unreadable']} unreadable")
        for example in files["examples"]:
            console.print(f"  {example}", markup=False)


@app.command("prepare")
def prepare(name: str = typer.Argument(..., help="Registered dataset name (see `medrival datasets`)."),
            root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP)) -> None:
    """Download a dataset where its host allows it (MedMNIST, Hugging Face datasets); otherwise print the exact
    steps to obtain it (licence agreements, registration).

    Example: medrival prepare pneumoniamnist
    """
    from medrival.data.zoo.prepare import prepare_release

    for line in prepare_release(name, root):
        typer.echo(line)
