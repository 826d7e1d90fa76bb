"""``medrival datasets [check NAME]`` and ``medrival prepare NAME``: what data exists, whether it is here, and
whether the files on disk are what the release says."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medrival.cli.app import app

datasets_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
app.add_typer(datasets_app, name="datasets")

_ROOT_HELP = "Dataset folder (default: $MEDRIVAL_DATA_DIR/<folder>, else ~/medrival-data/<folder>)."


@datasets_app.callback()
def list_datasets(context: typer.Context) -> None:
    """List every dataset: task, modality, licence, whether its files are here, and how to obtain it; or check
    one dataset's files with the check subcommand.

    Example: medrival datasets

    Example: medrival datasets check ham10000 --root ~/data/HAM10000
    """
    if context.invoked_subcommand is not None:
        return
    from medrival.data.catalog import dataset_registry
    from medrival.data.zoo.api import is_available
    from medrival.data.zoo.entries import resolve_root
    from medrival.data.zoo.registry import release_registry

    releases = release_registry()
    table = Table(title="Datasets")
    for column in ("name", "task", "modality", "classes", "licence", "here", "how to obtain"):
        table.add_column(column, overflow="fold")
    for name, entry in dataset_registry().items():
        info = entry.info
        classes = ", ".join(info.class_names)
        if len(classes) > 60:  # long tables (MedMNIST's blood cells) would swamp the listing
            classes = f"{classes[:57].rsplit(', ', 1)[0]}, ... ({len(info.class_names)} classes)"
        if name in releases:
            release = releases.get(name)
            here = f"yes ({resolve_root(release)})" if is_available(name) else "no"
            obtain = release.obtain[0]
        else:
            here, obtain = "built in (synthetic)", "generated on demand"
        # Cells are data, not rich markup: "pip install 'medrival[download]'" must keep its brackets.
        table.add_row(*(escape(cell) for cell in (name, info.task.value, info.modality, classes or "(free text)",
                                                   info.licence, here, obtain)))
    Console(width=200).print(table)
    Console().print("Get one: medrival prepare NAME. Check one: medrival datasets check NAME --root DIR.")


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
