"""``medrival compare``: a paired comparison of two models, methods or cells, in the terminal."""
from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from medrival.cli.app import app
from medrival.cli.output import FORMAT_HELP, Column, OutputFormat, print_listing, stdout_console
from medrival.metrics.registry import metric_names, metric_spec  # light: names only, no NumPy

# The choices, read from the metric registry: classification metrics the bootstrap evaluates by name, and the
# per-question VQA columns (the headline ones are the default).
BOOTSTRAPPED = tuple(f"{name} (lower is better)" if not metric_spec(name).higher_is_better else name
                     for name in metric_names(bootstrap="weighted"))
VQA_PER_ITEM = metric_names(source="score_answers")
VQA_HEADLINE = metric_names(source="score_answers", headline=True)
VQA_LOWER = tuple(name for name in VQA_PER_ITEM if not metric_spec(name).higher_is_better)
# Dataset and metric are identifiers (never shortened); on a narrow terminal the columns with the highest `drop`
# go first (`--format json` keeps every field).
COMPARE_COLUMNS = (Column("dataset", identifier=True), Column("metric", identifier=True),
                   Column("A", numeric=True, drop=3), Column("B", numeric=True, drop=3),
                   Column("A - B", numeric=True), Column("CI", drop=2), Column("p", numeric=True, drop=4),
                   Column("p (Holm)", numeric=True, drop=1), Column("DeLong p (by cluster)", numeric=True, drop=6),
                   Column("verdict", identifier=True), Column("n (clusters)", drop=5))


@app.command("compare")
def compare(results_dir: Path = typer.Argument(..., help="A study's results folder (holding results.sqlite)."),
            a: str = typer.Option(..., "--a", help="MODEL, MODEL:METHOD, MODEL:METHOD@BUDGET or a cell id."),
            b: str = typer.Option(..., "--b", help="The other side, written the same way."),
            metric: str = typer.Option("auroc", "--metric", help=f"Classification datasets: one of "
                                                                 f"{', '.join(BOOTSTRAPPED)}."),
            resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
            level: float = typer.Option(0.95, "--level", help="Confidence level of the intervals."),
            seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1,
                                     help="Seed of the resampling (results repeat exactly)."),
            vqa_metrics: str = typer.Option(",".join(VQA_HEADLINE), "--vqa-metrics",
                                            help=f"VQA datasets: comma-separated per-question metrics among "
                                                 f"{', '.join(VQA_PER_ITEM)} ({', '.join(VQA_LOWER)}: lower is "
                                                 f"better)."),
            fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP)) -> None:
    """Paired comparison A - B on every dataset both sides scored: estimates, difference with its CI (paired
    cluster bootstrap), p-values (bootstrap, Holm across datasets, DeLong for binary AUROC) and the verdict. A VQA
    dataset gives one row per VQA metric: closed_accuracy (over the questions scored as closed) and open_token_f1
    (over those scored as open), means of per-question scores, as in the report and load_results.

    Example: medrival compare results/ --a clip-vit-b16:lora --b biomedclip:zero_shot
    Example: medrival compare results/ --a llava-1.5-7b:vqa_lora --b llava-med-v1.5-7b:vqa_zero_shot
    """
    import warnings

    from medrival.stats.compare import compare as run_compare
    from medrival.store import OutdatedResultsWarning, ResultStore, outdated_vqa_note, require_store

    store = ResultStore(require_store(results_dir), read_only=True).require_intact()  # refuse damaged cells
    note = outdated_vqa_note(store.records())
    if note:
        Console(stderr=True).print(f"[yellow]note:[/yellow] {escape(note)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutdatedResultsWarning)  # printed above, once
        frame = run_compare(store, a, b, metric=metric, n_resamples=resamples, level=level, seed=seed,
                            vqa_metrics=vqa_metrics)
    records = [_record(row) for row in frame.to_dict("records")]
    rows = [[r["dataset"], r["metric"], _num(r["estimate_a"]), _num(r["estimate_b"]), _num(r["difference"], signed=True),
             f"[{_num(r['low'])}, {_num(r['high'])}]", _p(r["p_value"]), _p(r["p_holm"]), _p(r["delong_p"]),
             r["verdict"], f"{r['n_items']} ({r['n_clusters']})"] for r in records]
    print_listing(stdout_console(), fmt, COMPARE_COLUMNS, rows, records,
                  title=f"{a}  vs  {b}  ({metric}, {level:.0%} CI)")


def _record(row: dict) -> dict:
    """One comparison as plain JSON-able values (NaN as None)."""
    plain = {}
    for key, value in row.items():
        if hasattr(value, "item"):  # NumPy scalars
            value = value.item()
        plain[key] = None if isinstance(value, float) and math.isnan(value) else value
    return plain


def _num(value: float, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
