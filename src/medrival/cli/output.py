"""How commands print: a console for a terminal or a pipe, tables that never split identifiers, and the
machine-readable formats (``--format json|csv``) of every listing.

Identifiers (card ids, dataset names, method names, cell labels) are what people copy, grep and compare, so a
table never wraps or shortens them: their columns are ``no_wrap`` and as wide as their longest value, descriptive
columns wrap instead, and when even that does not fit the terminal the least important columns are dropped
(``--format json`` always has every field). Piped output (``medrival models | grep biomedclip``) is not laid out
for a screen at all: every row stays on one line, however long.
"""
from __future__ import annotations

import csv
import enum
import io
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

# Width of piped output: wide enough that no row of any listing wraps (rows are then one line each, for grep).
PIPE_WIDTH = 100_000
# Narrowest a descriptive column is allowed to get when fitting a table (longer words fold there).
WORD_CAP = 16


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT_HELP = "table (for people), json (a list of objects) or csv (header + rows); json and csv have every field."


def stdout_console(stderr: bool = False) -> Console:
    """The console of a command: the terminal's width on a terminal; on a pipe the width COLUMNS asks for, else
    unlimited (one line per row), and never colour codes."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(stderr=stderr, width=width, no_color=True, highlight=False, emoji=False)


@dataclass(frozen=True)
class Column:
    """One column of a listing. ``identifier``: never wrapped or shortened. ``drop``: 0 is always shown; columns
    with a higher number are dropped first when the table does not fit the width."""

    name: str
    identifier: bool = False
    drop: int = 0
    numeric: bool = False


def _table(title: Optional[str], columns: Sequence[Column], rows: Sequence[Sequence[Any]], keep: list[int],
           caption: Optional[str], cap: Optional[int] = None) -> Table:
    # Titles and cells are Text, not str: brackets in names and messages are data, never rich markup.
    table = Table(title=_text(title), caption=_text(caption), box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
                  caption_justify="left")
    for index in keep:
        column = columns[index]
        longest = max([len(column.name)] + [len(_plain(row[index])) for row in rows]) if column.identifier else None
        table.add_column(column.name, no_wrap=column.identifier, min_width=longest, overflow="fold",
                         max_width=None if column.identifier else cap, justify="right" if column.numeric else "left")
    for row in rows:
        table.add_row(*(row[i] if isinstance(row[i], Text) else Text(_plain(row[i])) for i in keep))
    return table


def _text(value: Optional[str]) -> Optional[Text]:
    return None if value is None else Text(value)


def _plain(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value.plain if isinstance(value, Text) else str(value)


def fitted_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
                 title: Optional[str] = None, caption: Optional[str] = None) -> RenderableType:
    """A table that fits ``console.width`` without splitting an identifier: optional columns are dropped, highest
    ``drop`` first, until its narrowest layout fits; when even the required columns do not fit, one block per
    row instead (``stacked``)."""
    keep = list(range(len(columns)))
    unlimited = console.options.update(max_width=PIPE_WIDTH)  # a measurement is clamped to its limit: lift it
    while True:
        # Descriptive columns may fold a long word (a URL) at WORD_CAP: only identifiers count in full.
        needed = Measurement.get(console, unlimited, _table(title, columns, rows, keep, caption, WORD_CAP)).minimum
        if needed <= console.width:
            return _table(title, columns, rows, keep, caption)
        optional = [i for i in keep if columns[i].drop > 0]
        if not optional:
            return stacked(columns, rows, title, caption)
        keep.remove(max(optional, key=lambda i: (columns[i].drop, i)))


def stacked(columns: Sequence[Column], rows: Sequence[Sequence[Any]], title: Optional[str] = None,
            caption: Optional[str] = None) -> RenderableType:
    """One block per row for narrow terminals: the identifiers on the first line (`` | `` between them), then
    ``name: value`` for the other non-empty fields, wrapped at spaces."""
    parts: list[RenderableType] = [Text(title, style="bold")] if title else []
    ids = [i for i, column in enumerate(columns) if column.identifier]
    for row in rows:
        parts.append(Text(" | ".join(_plain(row[i]) for i in ids), style="bold"))
        fields = [f"{columns[i].name}: {_plain(row[i])}" for i in range(len(columns))
                  if i not in ids and _plain(row[i])]
        if fields:
            parts.append(Padding(Text(" · ".join(fields)), (0, 0, 0, 2)))
    return Group(*parts, *([Text(caption)] if caption else []))


def print_listing(console: Console, fmt: OutputFormat, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
                  records: Sequence[dict], title: Optional[str] = None, caption: Optional[str] = None) -> None:
    """``rows`` as a fitted table, or ``records`` (every field, raw values) as JSON or CSV on stdout."""
    if fmt is OutputFormat.json:
        print(json.dumps(list(records), indent=1, default=str))
    elif fmt is OutputFormat.csv:
        print(to_csv(records), end="")
    else:
        console.print(fitted_table(console, columns, rows, title, caption))


def _csv_value(value: Any) -> Any:
    """Lists as "a; b" (readable in a spreadsheet); nested objects as JSON."""
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return json.dumps(value, default=str) if isinstance(value, dict) else value


def to_csv(records: Sequence[dict]) -> str:
    """Header + one line per record (lists joined with "; "), quoted by the csv module."""
    fields = list(dict.fromkeys(key for record in records for key in record))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_value(v) for k, v in record.items()})
    return buffer.getvalue()
