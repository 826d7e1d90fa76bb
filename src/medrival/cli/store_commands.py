"""``medrival verify DIR``: is every finished cell of a store intact? (exit 0 intact, 1 damage found, 2 no store)."""
from __future__ import annotations

from pathlib import Path

import typer

from medrival.cli.app import app


@app.command("verify")
def verify(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite).")) -> None:
    """Check a results store: its database, and every finished cell's predictions file against the size and
    checksum recorded when it was saved. Lists each damaged cell with the reason and the command that redoes it.
    Exit code 0: intact; 1: damaged cells found; 2: DIR is not a (readable) store.

    Example: medrival verify results/my-study
    """
    from medrival.store import ResultStore, require_store
    from medrival.store.integrity import repair_hint

    store = ResultStore(require_store(results_dir), read_only=True)  # a damaged database raises: exit 2
    damaged = store.damaged_cells()
    finished = len(store._query("SELECT cell_id FROM cells WHERE status = 'done'"))
    if not damaged:
        typer.echo(f"{results_dir}: intact ({finished} finished cells checked).")
        return
    typer.echo(f"{results_dir}: {len(damaged)} of {finished} finished cells are damaged:")
    for cell_id in sorted(damaged):
        typer.echo(f"  {cell_id}: {damaged[cell_id]}")
    typer.echo(repair_hint(results_dir))
    raise typer.Exit(1)


@app.command("merge")
def merge(stores: list[Path] = typer.Argument(..., help="Stores to combine (e.g. shards run on local disks)."),
          out: Path = typer.Option(..., "--out", help="The combined store (created, or added to: merging is "
                                                      "idempotent).")) -> None:
    """Combine stores into one: every cell's row and checksum-verified predictions file. A done result beats a
    failed one; identical results are kept once; two different finished results for one cell, damaged cells or
    different analysis settings refuse the merge (nothing is written).

    Example: medrival merge shard1/ shard2/ --out results/all
    """
    from medrival.store.merge import merge_stores

    summary = merge_stores(list(stores), out)
    typer.echo(f"{out}: {len(summary.added)} cells merged in, {len(summary.unchanged)} already there.")
