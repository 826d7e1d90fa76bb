"""Rows of the report's subgroup and VQA sections, as plain strings (the template escapes them)."""
from __future__ import annotations

import pandas as pd

from medrival.report.tables import one_line

VQA_EXAMPLES = 8  # wrong answers shown per VQA cell: enough to see a failure pattern, short enough to read
ANSWER_WIDTH = 160
# Per-item score columns that say whether an answer was right, in order of preference: the extracted answer on
# questions scored as closed, normalised exact match on those scored as open (NaN outside each population).
CORRECTNESS_COLUMNS = ("closed_accuracy", "open_exact_match")
VQA_EXAMPLE_HEADERS = ("question", "form", "scored as", "reference", "extracted", "model's answer")


def number(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def subgroup_rows(groups: pd.DataFrame) -> list[list[str]]:
    """dataset, model+method, attribute, group, n, estimate [CI], note (too small / undefined / no CI)."""
    if groups.empty:
        return []
    return [[str(r["dataset"]), str(r["arm"]), str(r["attribute"]), str(r["group"]), str(r["n"]),
             f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]", str(r["note"])]
            for r in groups.to_dict("records")]


def gap_rows(gaps: pd.DataFrame) -> list[list[str]]:
    """dataset, model+method, attribute, best group, worst group, gap, groups compared (excluded)."""
    if gaps.empty:
        return []
    rows = []
    for r in gaps.to_dict("records"):
        best = f"{r['best_group']} ({number(r['best'])})" if r["best_group"] is not None else "n/a"
        worst = f"{r['worst_group']} ({number(r['worst'])})" if r["worst_group"] is not None else "n/a"
        gap = number(r["gap"]) if not pd.isna(r["gap"]) else f"n/a: {r['note']}"
        rows.append([str(r["dataset"]), str(r["arm"]), str(r["attribute"]), best, worst, gap,
                     f"{r['n_groups']} ({r['n_excluded']} excluded)"])
    return rows


def operating_point_rows(points: pd.DataFrame) -> list[list[str]]:
    """dataset, model+method, threshold, sensitivity [CI], specificity [CI], PPV, NPV, validation n (or the note
    saying why a row has no numbers)."""
    rows = []
    for r in points.to_dict("records") if not points.empty else []:
        if r.get("note"):
            rows.append([str(r["dataset"]), str(r["arm"]), "n/a", "n/a", "n/a", "n/a", "n/a", str(r["note"])])
            continue
        rows.append([str(r["dataset"]), str(r["arm"]), f"{r['threshold']:.4g}",
                     f"{number(r['sensitivity'])} [{number(r['sensitivity_low'])}, {number(r['sensitivity_high'])}]",
                     f"{number(r['specificity'])} [{number(r['specificity_low'])}, {number(r['specificity_high'])}]",
                     number(r["ppv"]), number(r["npv"]), str(r["n_val"])])
    return rows


def skipped_image_rows(records) -> list[list[str]]:
    """cell id, model, dataset, method, "train: 3 missing; test: 1 unreadable" for cells that skipped images."""
    rows = []
    for r in records:
        skipped = (r.cost or {}).get("skipped_images") or {}
        if r.status != "done" or not skipped:
            continue
        text = "; ".join(f"{split}: " + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
                         for split, reasons in sorted(skipped.items()))
        rows.append([r.cell_id, str(r.spec.get("model", "")), str(r.spec.get("dataset", "")),
                     str(r.spec.get("method", "")), text])
    return rows


def _wrong_answers(frame: pd.DataFrame) -> pd.DataFrame:
    """Items scored 0 by the first correctness column that applies to them (closed_accuracy for questions scored
    as closed, open_exact_match for those scored as open); all items when the frame has no score column."""
    wrong = pd.Series(False, index=frame.index)
    decided = pd.Series(False, index=frame.index)
    for column in CORRECTNESS_COLUMNS:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            use = ~decided & values.notna()  # the first score that applies to the item decides
            wrong |= use & (values < 1)
            decided |= use
    return frame[wrong] if decided.any() else frame


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _extracted(row: dict) -> str:
    """What the answer was read as: the extracted answer of a question scored as closed ("undecided" when no
    answer could be read); nothing for one scored as open (its whole answer is compared)."""
    if _text(row.get("scored_as")) in ("", "open"):
        return _text(row.get("extracted"))
    return _text(row.get("extracted")) or "undecided"


def _counts(frame: pd.DataFrame) -> str:
    """ "30 yes_no, 10 open; 2 scored as open (reference not among the options)" -- questions per form asked."""
    if "form" not in frame.columns:
        return "no forms"
    counts = frame["form"].astype(str).value_counts().sort_index()
    text = ", ".join(f"{n} {form}" for form, n in counts.items())
    if "scored_as" in frame.columns:
        moved = int(((frame["form"].astype(str) != "open") & (frame["scored_as"].astype(str) == "open")).sum())
        text += f"; {moved} scored as open (reference not among the options)" if moved else ""
    return text


def vqa_sections(store, records) -> list[dict]:
    """One entry per finished VQA cell: its name, question counts per form and a few wrong answers (question,
    form, the form it was scored as, reference, extracted answer, raw answer)."""
    sections = []
    for record in records:
        spec = record.spec
        if record.status != "done" or spec.get("task") != "vqa" or not store.has_predictions(record.cell_id):
            continue
        frame = store.predictions(record.cell_id)
        shown = _wrong_answers(frame).head(VQA_EXAMPLES)
        rows = [[one_line(_text(r.get("question")), ANSWER_WIDTH), _text(r.get("form")), _text(r.get("scored_as")),
                 one_line(_text(r.get("answer")), ANSWER_WIDTH), one_line(_extracted(r), ANSWER_WIDTH),
                 one_line(_text(r.get("response")), ANSWER_WIDTH)]
                for r in shown.to_dict("records")]
        sections.append({"cell": record.cell_id, "dataset": str(spec.get("dataset", "")),
                         "arm": f"{spec.get('model', '')}+{spec.get('method', '')}", "counts": _counts(frame),
                         "rows": rows})
    return sections
