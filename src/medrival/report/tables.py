"""The v0 report: a rich table for the terminal, and Markdown + CSV files on disk, from a results frame.

The input is ``ResultStore.results_frame()`` (one row per cell) or any frame with some of its columns; missing
columns are simply not shown, so a report never fails on a partial frame. The Markdown and the terminal table
show the same rows and text: what a reader sees in a pull request is what the person running the study saw.
"""
from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from rich.table import Table
from rich.text import Text

from medrival.core.errors import MedrivalError
from medrival.metrics.registry import metric_names

IDENTITY_COLUMNS = ("model", "role", "dataset", "modality", "domain", "method", "budget", "draw", "seed")
# Column order of the metrics, from the metric registry (``medrival.metrics.registry``, display order): the headline
# metrics first (AUROC, accuracy, balanced accuracy, macro F1, closed_accuracy, open_token_f1, yes_no_auroc) --
# the names and meanings of the RQ tables and compare -- then the other VQA metrics.
PREFERRED_METRICS = metric_names(headline=True)
VQA_METRIC_ORDER = metric_names(task="vqa")
# The terminal shows these only (a mixed study has a dozen metrics, too wide for a terminal); the Markdown and
# CSV files have every metric.
TERMINAL_METRICS = frozenset(PREFERRED_METRICS)
# Numeric columns that are bookkeeping, not metrics, and so are never shown as metric columns.
NON_METRIC_COLUMNS = frozenset({
    "cell_id", "status", "model", "role", "dataset", "modality", "domain", "task", "method", "seed",
    "wall_s", "encode_s", "fit_s", "trainable_params", "error", "traceback", "synthetic", "spec",
    "started_at", "finished_at", "budget", "draw", "shots", "fraction", "peak_rss_mb", "n_train", "n_val",
    "n_closed", "n_open", "n_test", "n_yes_no", "n_choice", "n_multiple_choice", "n_closed_scored_open",
    "failed_questions", "llm_judge_failures",
})
ERROR_WIDTH = 80
NO_RESULTS = "no results"
SYNTHETIC_NOTE = ("Note: the data and models in this study are synthetic (generated for demonstration and "
                  "testing); these numbers say nothing about real medical performance.")


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns of ``frame``: the preferred ones in their fixed order, the other VQA metrics in theirs, then
    any others alphabetically."""
    numeric = [c for c in frame.columns
               if c not in NON_METRIC_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    first = [m for m in PREFERRED_METRICS if m in numeric]
    first += [m for m in VQA_METRIC_ORDER if m in numeric and m not in first]
    return first + sorted((c for c in numeric if c not in first), key=str)


def _has_errors(frame: pd.DataFrame) -> bool:
    return "error" in frame.columns and bool(frame["error"].map(_present).any())


def display_columns(frame: pd.DataFrame, terminal: bool = False) -> list[str]:
    """The columns a report shows, in order; ``error`` only when some cell has one. ``terminal``: the headline
    metrics only (``TERMINAL_METRICS``)."""
    cols = [c for c in IDENTITY_COLUMNS if c in frame.columns and not _only_defaults(frame, c)]
    cols += [c for c in metric_columns(frame) if not terminal or c in TERMINAL_METRICS]
    cols += ["wall_s"] if "wall_s" in frame.columns else []
    cols += ["status"]  # always shown: a missing status column reads as "done" (see _cell_text)
    return cols + (["error"] if _has_errors(frame) else [])


def _only_defaults(frame: pd.DataFrame, column: str) -> bool:
    """Budget and draw columns are noise in a study without label budgets: hide them there."""
    if column not in ("budget", "draw"):
        return False
    values = set(frame[column].dropna().tolist())
    return values <= ({"full"} if column == "budget" else {0})


def _present(value: Any) -> bool:
    """False for None/NaN/NA/empty text; true for anything else (lists and dicts included)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes: ambiguous truth value, but present
        return True


def one_line(text: Any, width: int = ERROR_WIDTH) -> str:
    """Collapse whitespace (newlines included) and truncate to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def _cell_text(column: str, value: Any, full_errors: bool = False) -> str:
    """How one value is shown: metrics with 3 decimals, NaN as n/a, seeds as integers, errors on one line
    (``full_errors``: whole, as the terminal shows them; else cut at ``ERROR_WIDTH`` for the Markdown table)."""
    if column == "status":
        return str(value) if _present(value) else "done"
    if column == "error":
        if not _present(value):
            return ""
        return " ".join(str(value).split()) if full_errors else one_line(value)
    if column == "seed":
        if not _present(value):
            return ""
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if column in IDENTITY_COLUMNS:
        return str(value) if _present(value) else ""
    if not _present(value):
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "n/a" if math.isnan(number) else str(number)
    return f"{number:.2f}" if column == "wall_s" else f"{number:.3f}"


def display_rows(frame: pd.DataFrame, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and the text of every row, shared by the terminal table and the Markdown file. The terminal
    (``terminal``) shows the headline metrics only, and errors whole: a cut message loses its fix."""
    columns = display_columns(frame, terminal)
    rows = []
    for record in frame.to_dict(orient="records"):
        rows.append([_cell_text(c, record.get(c), full_errors=terminal) for c in columns])
    return columns, rows


def results_table(frame: pd.DataFrame, title: str = "medrival results") -> Table:
    """A rich table of the results; an empty frame gives a one-cell table saying "no results"."""
    if frame is None or frame.empty:
        table = Table(title=title)
        table.add_column("")
        table.add_row(NO_RESULTS)
        return table
    columns, rows = display_rows(frame, terminal=True)
    table = Table(title=title, caption=summary_line(frame))
    numeric = set(metric_columns(frame)) | {"wall_s", "seed"}
    for col in columns:
        # Names are never wrapped or shortened (they are what people grep and compare); an error wraps, whole.
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=col in IDENTITY_COLUMNS,
                         overflow="fold", max_width=ERROR_WIDTH if col == "error" else None)
    status_at = columns.index("status")
    for row in rows:
        style = "red" if row[status_at] == "failed" else None
        # Text (not str) so that brackets in names or errors are never parsed as rich markup.
        table.add_row(*(Text(cell) for cell in row), style=style)
    return table


def summary_line(frame: pd.DataFrame) -> str:
    """'N cells: X done, Y failed.' (other statuses, if any, are counted too)."""
    if frame is None or frame.empty:
        return NO_RESULTS
    statuses = frame["status"] if "status" in frame.columns else pd.Series(["done"] * len(frame))
    counts = statuses.fillna("done").astype(str).value_counts()
    parts = [f"{int(counts.get('done', 0))} done", f"{int(counts.get('failed', 0))} failed"]
    parts += [f"{int(n)} {s}" for s, n in counts.items() if s not in ("done", "failed")]
    noun = "cell" if len(frame) == 1 else "cells"
    return f"{len(frame)} {noun}: {', '.join(parts)}."


def is_synthetic(frame: pd.DataFrame) -> bool:
    """True when any row is marked synthetic, by a ``synthetic`` column or a ``spec`` column of dicts."""
    if frame is None or frame.empty:
        return False
    if "synthetic" in frame.columns and frame["synthetic"].map(_truthy).any():
        return True
    if "spec" in frame.columns:
        return bool(frame["spec"].map(lambda s: isinstance(s, dict) and _truthy(s.get("synthetic"))).any())
    return False


def _truthy(value: Any) -> bool:
    # A CSV round trip turns booleans into the strings "True"/"False"; accept those too.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return _present(value) and bool(value)


def _md_escape(text: str) -> str:
    """Make text safe inside a GitHub table cell: a raw `|` would split the cell, a newline end the row."""
    flat = " ".join(text.replace("\r", "\n").split("\n"))
    return flat.replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(frame: pd.DataFrame, title: str = "medrival results") -> str:
    """The Markdown report: title, done/failed counts, synthetic note when relevant, GitHub-style table."""
    lines = [f"# {one_line(title, 200)}", ""]
    if frame is None or frame.empty:
        return "\n".join(lines + [f"_{NO_RESULTS}_", ""])
    lines += [summary_line(frame), ""]
    if is_synthetic(frame):
        lines += [f"> **{SYNTHETIC_NOTE}**", ""]
    columns, rows = display_rows(frame)
    numeric = set(metric_columns(frame)) | {"wall_s", "seed"}
    lines.append("| " + " | ".join(_md_escape(c) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c in numeric else "---" for c in columns) + "|")
    lines += ["| " + " | ".join(_md_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines + _full_errors(frame)) + "\n"


def _full_errors(frame: pd.DataFrame) -> list[str]:
    """Each failed cell's whole error below the table (the table cell holds its first 80 characters): a cut
    message loses the numbered fix steps that follow its first line."""
    if not _has_errors(frame):
        return []
    lines = ["", "## Failed cells: full errors"]
    for record in frame[frame["error"].map(_present)].to_dict("records"):
        who = " | ".join(str(record[c]) for c in ("model", "dataset", "method") if _present(record.get(c)))
        fence = "~~~~" if "```" in str(record["error"]) else "```"
        lines += ["", f"**{_md_escape(who or str(record.get('cell_id', 'cell')))}**", "", fence,
                  str(record["error"]).strip(), fence]
    return lines


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then ``os.replace(tmp, path)``: a reader never sees a half-written report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_reports(frame: pd.DataFrame, out_dir: str | Path, stem: str = "results",
                  title: str = "medrival results") -> dict[str, Path]:
    """Write ``<stem>.md`` (the table) and ``<stem>.csv`` (the full frame, full precision) into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MedrivalError(f"Report directory {str(out)!r} exists but is a file; pass a directory path.")
    if not stem or any(sep in stem for sep in ("/", "\\")) or stem in (".", ".."):
        raise MedrivalError(f"Report name {stem!r} must be a plain file name without directories.")
    out.mkdir(parents=True, exist_ok=True)
    frame = frame if frame is not None else pd.DataFrame()
    paths = {"markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv"}
    text = to_markdown(frame, title)
    _atomic_write(paths["markdown"], lambda p: p.write_text(text, encoding="utf-8"))
    _atomic_write(paths["csv"], lambda p: frame.to_csv(p, index=False))
    return paths
