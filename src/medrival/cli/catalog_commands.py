"""``medrival models|methods``: what is available, with ID/OOD modalities, licences and pairs (datasets: see
``dataset_commands``)."""
from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table

from medrival.cli.app import app


@app.command("models")
def list_models() -> None:
    """List model cards: role, family, source, pretraining modalities (in-domain), pair, licence, gated, and
    whether the weights are already here (yes: in the Hugging Face cache; no: to download; shipped: inside
    medrival; local: a folder from MEDRIVAL_WEIGHTS_DIR or the card).

    Example: medrival models
    """
    from medrival.models.catalog import model_registry
    from medrival.models.weights import weights_status

    table = Table(title="Models", show_lines=False)
    for column in ("id", "role", "family", "source", "pretraining modalities (ID)", "pair", "licence", "gated",
                   "weights here"):
        table.add_column(column, overflow="fold")
    for name, card in model_registry().items():
        source = f"{card.source.kind}:{card.source.name}"
        licence = card.licence + (" [synthetic]" if card.synthetic else "")
        table.add_row(name, card.role, card.family, source, ", ".join(card.pretraining_modalities),
                      card.generalist_counterpart or "", licence, "yes" if card.gated else "no",
                      weights_status(card).label)
    Console().print(table)
    Console().print("Weights marked 'no' download on first use. Offline: pre-download them (`hf download REPO`) "
                    "or give a local copy (a study's `weights:` entry, or MEDRIVAL_WEIGHTS_DIR/<id>/). Gated models "
                    "need their terms accepted on the Hub page and `hf auth login`.")


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
