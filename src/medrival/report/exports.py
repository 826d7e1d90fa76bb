"""RQ tables (from ``medrival.stats.questions.research_questions``) as Markdown, LaTeX and CSV.

All three share one text rendering of each row (``rq_rows``): 3 decimals, p-values below 0.001 as "<0.001" and
the CI as "[low, high]", so the paper's table, the pull-request table and the HTML report read the same.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from medrival.core.errors import DataError

# (header, function of a row) for every shown column; the CSV keeps the raw numbers instead.
RQ_HEADERS = ("dataset", "A", "B", "versus", "budget", "metric", "A est.", "B est.", "A - B", "CI", "margin", "p",
              "p (corrected)", "verdict", "verdict (corrected)", "n (clusters)", "flags")
_REQUIRED = ("dataset", "a", "b", "estimate_a", "estimate_b", "difference", "low", "high", "p_value")
# LaTeX specials and what replaces them; the backslash first so later replacements are not re-escaped.
_LATEX = (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
          ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}"))


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_num(value: Any, signed: bool = False) -> str:
    """A number with 3 decimals ("+" sign when ``signed``); missing or NaN as "n/a"."""
    if _missing(value):
        return "n/a"
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    return f"{number:+.3f}" if signed else f"{number:.3f}"


def fmt_p(value: Any) -> str:
    """A p-value: "<0.001" below 0.001, else 3 decimals; missing as "n/a"."""
    if _missing(value):
        return "n/a"
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _check(table: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"an RQ table must be a pandas DataFrame (from research_questions), got "
                        f"{type(table).__name__}.")
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise DataError(f"the RQ table lacks columns {missing}; expected the columns of "
                        f"medrival.stats.questions.research_questions (got {list(table.columns)}).")


def rq_rows(table: pd.DataFrame) -> list[list[str]]:
    """The text of every row of an RQ table, in the order of ``RQ_HEADERS``."""
    _check(table)
    rows = []
    for r in table.to_dict("records"):
        clusters = f"{_text(r.get('n_items'))} ({_text(r.get('n_clusters'))})" if "n_items" in r else ""
        rows.append([_text(r["dataset"]), _text(r["a"]), _text(r["b"]), _text(r.get("versus")),
                     _text(r.get("budget")), _text(r.get("metric")), fmt_num(r["estimate_a"]),
                     fmt_num(r["estimate_b"]), fmt_num(r["difference"], signed=True),
                     f"[{fmt_num(r['low'])}, {fmt_num(r['high'])}]", _margin(r.get("margin")),
                     fmt_p(r["p_value"]), fmt_p(r.get("p_corrected")), _text(r.get("verdict")),
                     _text(r.get("verdict_corrected")), clusters, row_flags(r)])
    return rows


def _margin(value: Any) -> str:
    return "" if _missing(value) else f"{float(value):g}"


def _count(value: Any) -> str:
    """A parameter count as 1.18M / 295k / 512."""
    number = float(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= size:
            return f"{number / size:.3g}{suffix}"
    return f"{number:.0f}"


def row_flags(row: dict) -> str:
    """What a reviewer must know about a row: exposure of either model to the dataset, and trainable-parameter
    counts more than 10 % apart (``medrival.stats.questions.capacity_mismatch``); "" when neither."""
    flags = []
    if row.get("exposed") and not _missing(row.get("exposed")):
        flags.append(f"exposed ({_text(row.get('exposure'))})")
    if row.get("capacity_mismatch") and not _missing(row.get("capacity_mismatch")):
        flags.append(f"trainable {_count(row['trainable_a'])} vs {_count(row['trainable_b'])}")
    return "; ".join(flags)


def _md_cell(text: str) -> str:
    # A "|" would end the cell and a newline the row: escape one, flatten the other.
    return " ".join(text.replace("|", "\\|").split())


def rq_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table: header, separator, one line per comparison."""
    rows = rq_rows(table)
    lines = ["| " + " | ".join(RQ_HEADERS) + " |", "|" + "|".join("---" for _ in RQ_HEADERS) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latex_escape(text: Any) -> str:
    """``text`` with every LaTeX special character (& % $ # _ { } ~ ^ \\) escaped."""
    out = []
    for char in str(text):
        out.append(next((rep for special, rep in _LATEX if char == special), char))
    return "".join(out)


def rq_latex(table: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``); every cell and the caption escaped."""
    rows = rq_rows(table)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        # A label is a key, not text: only characters LaTeX accepts in \label are kept.
        lines.append(r"\label{" + "".join(c for c in label if c.isalnum() or c in ":-.") + "}")
    lines += [r"\begin{tabular}{" + "l" * 6 + "r" * 6 + "l" * 2 + "r" + "}", r"\toprule",
              " & ".join(latex_escape(h) for h in RQ_HEADERS) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def rq_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """The RQ table with its raw (unrounded) numbers as CSV at ``path``; returns the path."""
    _check(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


# Compact tables: the arms as short aliases (G1, G2 for generalist arms, S1, S2 for specialist ones, in order of
# first appearance across RQ1-RQ3, so one alias means one arm on the whole page), the essential columns only.
COMPACT_HEADERS = ("dataset", "A", "B", "budget", "A - B [CI]", "p (corr.)", "verdict (corr.)", "flags")


def _sides(row: dict) -> tuple[str, str]:
    """Alias prefixes of (A, B): in RQ1 the specialist is A (its opponent is "off-the-shelf generalist"), in
    RQ2/RQ3 the adapted generalist is A."""
    return ("S", "G") if "generalist" in _text(row.get("versus")) else ("G", "S")


def arm_aliases(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Full arm label -> short alias ("G1", "S2", ...) over every row of every RQ table, first-seen order."""
    aliases: dict[str, str] = {}
    counts = {"G": 0, "S": 0}
    for key in sorted(tables):
        table = tables[key]
        for row in ([] if table is None or table.empty else table.to_dict("records")):
            for label, prefix in zip((_text(row["a"]), _text(row["b"])), _sides(row)):
                if label not in aliases:
                    counts[prefix] += 1
                    aliases[label] = f"{prefix}{counts[prefix]}"
    return aliases


def _short_flags(row: dict) -> str:
    flags = []
    if row.get("exposed") and not _missing(row.get("exposed")):
        flags.append("exposed")
    if row.get("capacity_mismatch") and not _missing(row.get("capacity_mismatch")):
        flags.append(f"params {_count(row['trainable_a'])}/{_count(row['trainable_b'])}")
    return ", ".join(flags)


def compact_headers(table: pd.DataFrame) -> tuple[str, ...]:
    """``COMPACT_HEADERS``, with a metric column when the table mixes metrics."""
    if "metric" in table.columns and table["metric"].nunique() > 1:
        return COMPACT_HEADERS[:4] + ("metric",) + COMPACT_HEADERS[4:]
    return COMPACT_HEADERS


def compact_rows(table: pd.DataFrame, aliases: dict[str, str]) -> list[list[str]]:
    """The text of every row in the order of ``compact_headers(table)``: arms by alias, difference with CI."""
    _check(table)
    mixed = len(compact_headers(table)) > len(COMPACT_HEADERS)
    rows = []
    for r in table.to_dict("records"):
        row = [_text(r["dataset"]), aliases.get(_text(r["a"]), _text(r["a"])),
               aliases.get(_text(r["b"]), _text(r["b"])), _text(r.get("budget"))]
        row += [_text(r.get("metric"))] if mixed else []
        row += [f"{fmt_num(r['difference'], signed=True)} [{fmt_num(r['low'])}, {fmt_num(r['high'])}]",
                fmt_p(r.get("p_corrected")), _text(r.get("verdict_corrected")), _short_flags(r)]
        rows.append(row)
    return rows


def legend_rows(table: pd.DataFrame, aliases: dict[str, str]) -> list[list[str]]:
    """[alias, full arm label] for the arms of ``table``, by alias."""
    labels = {_text(v) for column in ("a", "b") for v in table[column]}
    return sorted(([aliases.get(label, label), label] for label in labels),
                  key=lambda row: (row[0][0], int(row[0][1:]) if row[0][1:].isdigit() else 0, row[0]))


def rq_compact_latex(table: pd.DataFrame, aliases: dict[str, str], caption: str = "", label: str = "") -> str:
    """A narrow booktabs table for a paper: arms by alias, A - B with its CI, corrected p and verdict, and the
    alias legend as a footnote-size paragraph under it; every cell and the caption escaped."""
    headers, rows = compact_headers(table), compact_rows(table, aliases)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + "".join(c for c in label if c.isalnum() or c in ":-.") + "}")
    spec = "l" * (len(headers) - 4) + "rrll"
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(latex_escape(h) for h in headers) + r" \\",
              r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    legend = "; ".join(f"{latex_escape(alias)}: {latex_escape(full)}" for alias, full in legend_rows(table, aliases))
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize " + legend + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_exports(tables: dict[str, pd.DataFrame], folder: Path, titles: dict[str, str] | None = None
                  ) -> list[Path]:
    """``rqN.md``, ``rqN.tex``, ``rqN.csv`` and the narrow ``rqN-compact.tex`` for every non-empty RQ table, in
    ``folder``; ``titles`` (RQ -> caption) default to the RQ names."""
    written = []
    aliases = arm_aliases(tables)
    for key, table in tables.items():
        if table is None or table.empty:
            continue
        stem = Path(folder) / key.lower()
        caption = (titles or {}).get(key, key)
        compact = stem.with_name(f"{stem.name}-compact.tex")
        stem.with_suffix(".md").write_text(rq_markdown(table), encoding="utf-8")
        stem.with_suffix(".tex").write_text(rq_latex(table, caption, f"tab:{key.lower()}"), encoding="utf-8")
        compact.write_text(rq_compact_latex(table, aliases, caption, f"tab:{key.lower()}-compact"), encoding="utf-8")
        written += [stem.with_suffix(".md"), stem.with_suffix(".tex"), compact, rq_csv(table, stem.with_suffix(".csv"))]
    return written
