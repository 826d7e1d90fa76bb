"""The first screen of the report: a plain-language answer to each research question, generated from the numbers
of its RQ table (the corrected verdicts, the datasets, the exposure flags), and ``summary.json`` for the terminal.

The paragraph never says more than the verdicts do: "superior" and "inferior" are the corrected verdicts, an
inconclusive comparison is never read as a win or a tie, and comparisons on data a model was trained on are
counted and named.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from medrival.report.exports import fmt_num

CONCLUSIVE = ("superior", "non-inferior", "inferior")
# Who is A and who is B in each RQ table (``medrival.stats.questions.planned_comparisons``).
SUBJECTS = {"RQ1": ("the off-the-shelf specialist", "the generalist"),
            "RQ2": ("the adapted generalist", "the specialist"),
            "RQ3": ("the adapted generalist", "the specialist")}
_CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _where(rows: pd.DataFrame) -> str:
    """ "demo-xray 3, demo-fundus 1": how many rows per dataset, most first."""
    counts = Counter(str(d) for d in rows["dataset"])
    return ", ".join(f"{dataset} {n}" for dataset, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _scope(table: pd.DataFrame) -> str:
    datasets = list(dict.fromkeys(str(d) for d in table["dataset"]))
    metrics = ", ".join(dict.fromkeys(str(m) for m in table.get("metric", pd.Series(dtype=str))))
    correction = str(table["correction"].iloc[0]) if "correction" in table.columns else "holm"
    after = "uncorrected" if correction == "none" else f"corrected by {_CORRECTIONS.get(correction, correction)}"
    return (f"{_plural(len(table), 'comparison')} on {_plural(len(datasets), 'dataset')} "
            f"({', '.join(datasets)}; {metrics}; {after})")


def _verdict_counts(table: pd.DataFrame, subject: str) -> str:
    verdicts = table["verdict_corrected"].astype(str)
    parts = [f"{word} in {int((verdicts == word).sum())} ({_where(table[verdicts == word])})"
             for word in CONCLUSIVE if (verdicts == word).any()]
    inconclusive = int((~verdicts.isin(CONCLUSIVE)).sum())
    if not parts:
        return f"None is conclusive: all {_plural(inconclusive, 'comparison')} leave the question open."
    text = f"{subject[0].upper()}{subject[1:]} is " + "; ".join(parts)
    return text + (f". {_plural(inconclusive, 'comparison')} {'is' if inconclusive == 1 else 'are'} inconclusive."
                   if inconclusive else ".")


def _largest(table: pd.DataFrame) -> str:
    """The conclusive comparison with the largest absolute difference, in full, or ""."""
    conclusive = table[table["verdict_corrected"].astype(str).isin(("superior", "inferior"))]
    differences = pd.to_numeric(conclusive["difference"], errors="coerce").abs()
    if conclusive.empty or differences.isna().all():
        return ""
    r = conclusive.loc[differences.idxmax()]
    return (f" The largest conclusive difference: {r['a']} vs {r['b']} on {r['dataset']}, "
            f"{fmt_num(r['difference'], signed=True)} [{fmt_num(r['low'])}, {fmt_num(r['high'])}] {r['metric']}.")


def _exposure(table: pd.DataFrame, other: pd.DataFrame | None, exposure: str) -> str:
    exposed = int(table["exposed"].astype(bool).sum()) if "exposed" in table.columns else 0
    if exposure == "exclude":
        return " Comparisons on data a model was trained on are left out (exposure: exclude)."
    if not exposed:
        return ""
    text = (f" {_plural(exposed, 'comparison')} ({_where(table[table['exposed'].astype(bool)])}) "
            f"{'is' if exposed == 1 else 'are'} on data a model was trained on (marked)")
    if other is not None and not other.empty and "verdict_corrected" in other.columns:
        kept = int(other["verdict_corrected"].astype(str).isin(CONCLUSIVE).sum())
        text += f"; leaving them out, {kept} of {len(other)} stay conclusive"
    return text + "."


def verdict_paragraph(rq: str, table: pd.DataFrame | None, other: pd.DataFrame | None = None,
                      exposure: str = "mark") -> str:
    """The answer to ``rq`` in words, from its RQ table (``other``: the table under the other exposure reading)."""
    if table is None or table.empty:
        return f"No comparison in this store answers {rq}."
    subject, opponent = SUBJECTS.get(rq, ("A", "B"))
    conclusive = int(table["verdict_corrected"].astype(str).isin(CONCLUSIVE).sum())
    head = (f"{subject[0].upper()}{subject[1:]} against {opponent}: {_scope(table)}; "
            f"{conclusive} of {len(table)} {'is' if conclusive == 1 else 'are'} conclusive. ")
    return head + _verdict_counts(table, subject) + _largest(table) + _exposure(table, other, exposure)


def write_summary(path: Path, title: str, html: Path, rqs: dict[str, list[str]], figures: list[Path]) -> Path:
    """``summary.json``: {"title", "html", "rqs": {RQ: [summary line, ...]}, "figures": [path, ...]} -- what the
    terminal prints at the end of a run (the headline and the paths)."""
    data = {"title": title, "html": str(html), "rqs": {key: list(lines) for key, lines in rqs.items()},
            "figures": [str(p) for p in figures]}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
