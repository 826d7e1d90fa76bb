"""The end of ``medrival run`` / ``demo``: write the reports, then print the headline (the research questions'
summary lines with their verdict counts), where everything is, and every failed cell's error in full.

The per-cell results table is printed only on request (``--table``): at a real study's size it is hundreds of rows
and buries the answer; the report and ``results.md`` / ``results.csv`` have it.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

SUMMARY_FILE = "summary.json"  # written by the HTML report: {"title", "html", "rqs": {"RQ1": [lines]}, ...}


def write_all_reports(run, out_dir: Path) -> dict[str, Path]:
    """``results.md`` / ``results.csv`` always; the HTML report (the study's answer) once any cell is done."""
    from medrival.report import write_reports

    frame = run.frame()
    paths = dict(write_reports(frame, out_dir / "report"))
    if "status" in frame.columns and frame["status"].eq("done").any():
        from medrival.report.html import write_report

        paths["html"] = Path(write_report(out_dir))
    return paths


def read_headline(out_dir: Path) -> dict | None:
    """The report's summary (title and RQ summary lines), or None when the report wrote none."""
    try:
        summary = json.loads((out_dir / "report" / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def print_headline(console: Console, summary: dict | None) -> None:
    """The report's title, then each research question's summary lines (verdict counts), wrapped with a hanging
    indent under the question's name."""
    if not summary or not isinstance(summary.get("rqs"), dict) or not any(summary["rqs"].values()):
        return
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for question, lines in summary["rqs"].items():
        lines = [lines] if isinstance(lines, str) else list(lines or [])
        for number, line in enumerate(lines):
            grid.add_row(Text(f"{question}:" if number == 0 else ""), Text(str(line)))
    console.print()
    console.print(Text(str(summary.get("title") or "Results"), style="bold"))
    console.print(grid)


def print_paths(console: Console, run, paths: dict[str, Path]) -> None:
    console.print()
    rows = [("store", run.store.paths.sqlite_path), ("", f"{run.store.paths.predictions_dir} (per-sample "
                                                         "predictions, Parquet)")]
    rows += [(kind, path) for kind, path in paths.items() if kind != "html"]
    figures = run.store.root / "report" / "figures"
    rows += [("figures", figures)] if figures.is_dir() else []
    rows += [("html", paths["html"])] if "html" in paths else []
    for kind, path in rows:
        # Paths are data (a folder may contain brackets) and must stay whole for copy and paste.
        console.print(Text(f"{kind + ':' if kind else '':<9} {path}"), soft_wrap=True)


def print_failures(console: Console, run) -> None:
    """Every failed cell with its whole error message (wrapped on a terminal, never cut)."""
    if not run.failed:
        return
    from medrival.study.runner import cell_label
    from medrival.study.spec import cell_id

    labels = {cell_id(cell): cell_label(cell) for cell in run.cells}
    console.print()
    console.print(Text(f"{len(run.failed)} cell(s) failed:", style="bold red"))
    for failed in run.failed:
        record = run.store.get(failed)
        error = record.error if record is not None and record.error else "(no message recorded)"
        console.print(Text(f"- {labels.get(failed, failed)}:", style="red"))
        console.print(Text("  " + error.replace("\n", "\n  ")))
    console.print(Text(f"The errors are also in the report's failed-cells section, and with their tracebacks in "
                       f"the store ({run.store.paths.sqlite_path}); `medrival status {run.store.root}` counts them. "
                       "Running the same command again retries failed cells only."))


# Which result columns go first when the terminal is narrow (highest first); the names of a cell never go.
_DROP_ORDER = {"wall_s": 100, "draw": 13, "role": 12, "modality": 11, "domain": 10}
_NAMES = ("model", "dataset", "method", "budget", "seed", "status")


def print_results_table(console: Console, frame) -> None:
    """The per-cell table (``--table``), fitted to the terminal: cell names whole, later metrics dropped first."""
    from medrival.cli.output import Column, fitted_table
    from medrival.report.tables import NO_RESULTS, display_rows, metric_columns, summary_line

    if frame is None or frame.empty:
        console.print(NO_RESULTS)
        return
    names, rows = display_rows(frame, terminal=True)
    metrics = [name for name in metric_columns(frame) if name in names]
    columns = [Column(name, identifier=name in _NAMES, numeric=name in metrics or name in ("wall_s", "seed"),
                      drop=_DROP_ORDER.get(name, 20 + metrics.index(name) if name in metrics[1:] else 0))
               for name in names]
    console.print(fitted_table(console, columns, rows, title=f"medrival results ({len(frame)} cells)",
                               caption=summary_line(frame)))


def print_outcome(console: Console, run, paths: dict[str, Path], show_table: bool) -> None:
    """Everything printed after a (finished or interrupted) run."""
    if show_table:
        print_results_table(console, run.frame())
    console.print(f"ran {len(run.ran)} cells, reused {len(run.skipped)} finished cells, {len(run.failed)} failed "
                  f"({run.timings.get('wall_s', 0.0):.1f} s)")
    print_headline(console, read_headline(run.store.root))
    print_paths(console, run, paths)
    print_failures(console, run)
