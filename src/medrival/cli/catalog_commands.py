"""``medrival models|datasets|methods``: what is available, with ID/OOD modalities, licences and pairs."""
from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table

from medrival.cli.app import app


@app.command("models")
def list_models() -> None:
    """List model cards: role, family, pretraining modalities (in-domain), pair and licence.

    Example: medrival models
    """
    from medrival.models.catalog import model_registry

    table = Table(title="Models", show_lines=False)
    for column in ("id", "role", "family", "pretraining modalities (ID)", "pair", "source", "licence"):
        table.add_column(column, overflow="fold")
    for name, card in model_registry().items():
        source = f"{card.source.kind}:{card.source.name}"
        table.add_row(name, card.role, card.family, ", ".join(card.pretraining_modalities),
                      card.generalist_counterpart or "", source, card.licence + (" [synthetic]" if card.synthetic else ""))
    Console().print(table)


@app.command("datasets")
def list_datasets() -> None:
    """List datasets: task, modality, classes, split sizes and licence.

    Example: medrival datasets
    """
    from medrival.data.catalog import dataset_registry

    table = Table(title="Datasets")
    for column in ("name", "task", "modality", "classes", "splits", "licence"):
        table.add_column(column, overflow="fold")
    for name, entry in dataset_registry().items():
        info = entry.info
        splits = ", ".join(f"{k} {v}" for k, v in entry.split_sizes.items())
        table.add_row(name, info.task.value, info.modality, ", ".join(info.class_names) or "(free text)", splits,
                      info.licence)
    Console().print(table)


@app.command("methods")
def list_methods() -> None:
    """List adaptation methods: supported model families and tasks, options and what each does.

    Example: medrival methods
    """
    from medrival.methods import METHODS
    from medrival.methods.base import help_of

    table = Table(title="Methods")
    for column in ("name", "families", "tasks", "what it does", "options (default)"):
        table.add_column(column, overflow="fold")
    for name, spec in METHODS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(spec.config_class)}
        options = "\n".join(f"{k} ({defaults[k]!r}): {text}" for k, text in help_of(spec.config_class).items())
        table.add_row(name, ", ".join(spec.families), ", ".join(spec.tasks), spec.summary, options)
    Console().print(table)
