"""``medrival models|methods``: what is available, with ID/OOD modalities, licences and pairs (datasets: see
``dataset_commands``). Tables fit the terminal without splitting an id; ``--format json|csv`` has every field."""
from __future__ import annotations

import dataclasses

import typer

from medrival.cli.app import app
from medrival.cli.output import FORMAT_HELP, Column, OutputFormat, print_listing, stdout_console

WEIGHTS_NOTE = ("Weights marked 'no' download on first use. Offline: pre-download them (`hf download REPO`) or give "
                "a local copy (a study's `weights:` entry, or MEDRIVAL_WEIGHTS_DIR/<id>/). Gated models need their "
                "terms accepted on the Hub page and `hf auth login`.")
# Dropped right to left (highest first) when the terminal is too narrow; `--format json` keeps them all.
MODEL_COLUMNS = (Column("id", identifier=True), Column("role"), Column("family", drop=4),
                 Column("pretraining modalities (ID)"), Column("pair", identifier=True, drop=3),
                 Column("weights here", drop=5), Column("licence", drop=6), Column("gated", drop=7),
                 Column("source", drop=8))
METHOD_COLUMNS = (Column("name", identifier=True), Column("families", drop=2), Column("tasks", drop=1),
                  Column("what it does"), Column("options (default)", drop=3))


def _model_record(name: str, card) -> dict:
    from medrival.models.weights import weights_status

    return {"id": name, "role": card.role, "family": card.family,
            "pretraining_modalities": list(card.pretraining_modalities), "pair": card.generalist_counterpart or "",
            "weights_here": weights_status(card).label, "licence": card.licence, "synthetic": bool(card.synthetic),
            "gated": bool(card.gated), "source": f"{card.source.kind}:{card.source.name}"}


@app.command("models")
def list_models(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP)) -> None:
    """List model cards: role, family, pretraining modalities (in-domain), pair, whether the weights are already
    here (yes: in the Hugging Face cache; no: to download; shipped: inside medrival; local: a folder from
    MEDRIVAL_WEIGHTS_DIR or the card), licence, gated, source.

    Example: medrival models

    Example: medrival models --format csv > models.csv
    """
    from medrival.models.catalog import model_registry

    records = [_model_record(name, card) for name, card in model_registry().items()]
    rows = [[r["id"], r["role"], r["family"], ", ".join(r["pretraining_modalities"]), r["pair"], r["weights_here"],
             r["licence"] + (" [synthetic]" if r["synthetic"] else ""), "yes" if r["gated"] else "no", r["source"]]
            for r in records]
    console = stdout_console()
    print_listing(console, fmt, MODEL_COLUMNS, rows, records, title="Models")
    if fmt is OutputFormat.table:
        console.print(WEIGHTS_NOTE, markup=False)


def _options(config_class) -> dict[str, tuple[object, str]]:
    """Option name -> (default, help) of a method's config (a dataclass, or a pydantic model)."""
    if dataclasses.is_dataclass(config_class):
        return {f.name: (f.default, f.metadata.get("help", "")) for f in dataclasses.fields(config_class)}
    fields = getattr(config_class, "model_fields", {})
    return {name: (info.default, info.description or "") for name, info in fields.items()}


@app.command("methods")
def list_methods(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP)) -> None:
    """List adaptation methods: supported model families and tasks, what each does and its options.

    Example: medrival methods

    Example: medrival methods --format json
    """
    from medrival.methods import METHODS

    records, rows = [], []
    for name, spec in METHODS.items():
        options = _options(spec.config_class)
        records.append({"name": name, "families": list(spec.families), "tasks": list(spec.tasks),
                        "summary": spec.summary,
                        "options": {k: {"default": default, "help": text} for k, (default, text) in options.items()}})
        rows.append([name, ", ".join(spec.families), ", ".join(spec.tasks), spec.summary,
                     "\n".join(f"{k} ({default!r}): {text}" for k, (default, text) in options.items())])
    print_listing(stdout_console(), fmt, METHOD_COLUMNS, rows, records, title="Methods")
