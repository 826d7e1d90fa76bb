"""Rows of the report's tables (spec, provenance, arms, subgroups, operating points, VQA answers, failures), as
plain strings: the template escapes them."""
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


def probability(value) -> str:
    """A probability for people: "<0.001" and ">0.999" at the ends (a threshold of 2.8e-16 is "<0.001"), else
    3 decimals; a value outside [0, 1] (a raw score, not a probability) keeps 4 significant digits."""
    if value is None or pd.isna(value):
        return "n/a"
    value = float(value)
    if not 0.0 <= value <= 1.0:
        return f"{value:.4g}"
    if value < 0.001:
        return "<0.001"
    return ">0.999" if value > 0.999 else f"{value:.3f}"


# What stats.calibration.brier_score computes, in the words a reader checks the numbers against.
BRIER_TEXT = ("Brier score: the mean squared error between the predicted probabilities and the 0/1 outcomes, lower "
              "is better; binary tasks use the positive-class probability (range 0-1), multiclass tasks sum the "
              "squared errors over the classes (Brier's original score, range 0-2), multilabel tasks average the "
              "binary score over the labels (range 0-1).")
ARM_HEADERS = ("dataset", "model+method", "budget", "draws", "metric", "estimate [CI]", "ECE",
               "Brier (0-1; multiclass 0-2)", "n (clusters)")
GAP_HEADERS = ("dataset", "model+method", "attribute", "best group", "worst group", "gap", "groups")
SUBGROUP_HEADERS = ("dataset", "model+method", "attribute", "group", "n", "estimate [CI]", "note")
POINT_HEADERS = ("dataset", "model+method", "threshold (probability)", "sensitivity [CI]", "specificity [CI]", "PPV",
                 "NPV", "validation n")
SKIPPED_HEADERS = ("RQ", "dataset", "A", "B", "items left out")
SKIPPED_IMAGE_HEADERS = ("cell id", "model", "dataset", "method", "left out")
POOLED_HEADERS = ("method", "versus", "budget", "metric", "datasets (k)", "pooled A - B [CI]", "p", "I²", "tau²")
SENSITIVITY_HEADERS = ("dataset", "model+method", "metric", "selection", "sets", "min", "median", "max", "IQR",
                       "set used (its value)")


def spec_rows(records) -> list[tuple[str, list[str]]]:
    """The study's models, datasets, methods, budgets and seeds, from the stored cell specs."""
    keys = ("model", "dataset", "method", "budget", "seed")
    values = {k: sorted({str(r.spec.get(k)) for r in records if r.spec.get(k) is not None}) for k in keys}
    return [(k + "s", values[k]) for k in keys] + [("cells", [str(len(records))])]


def provenance_rows(records) -> list[tuple[str, str]]:
    """Versions and commit from the first finished record (all cells of one run share them)."""
    record = next((r for r in records if r.status == "done" and r.provenance), None)
    if record is None:
        return [("provenance", "not recorded")]
    prov = record.provenance
    rows = [(k, str(prov[k])) for k in ("git_commit", "python", "platform", "machine") if prov.get(k)]
    rows += [(f"package {name}", str(version)) for name, version in sorted((prov.get("packages") or {}).items())]
    return rows


def failed_rows(records) -> list[list[str]]:
    """cell id, model, dataset, method and the whole error message (its numbered fix steps included)."""
    return [[r.cell_id, str(r.spec.get("model", "")), str(r.spec.get("dataset", "")),
             str(r.spec.get("method", "")), str(r.error or "").strip()] for r in records if r.status == "failed"]


def pooled_rows(pooled: pd.DataFrame, rq: str) -> list[list[str]]:
    from medrival.report.exports import fmt_p

    rows = pooled[pooled["rq"] == rq] if not pooled.empty else pooled
    return [[str(r["method_label"]), str(r["versus"]), str(r["budget"]), str(r["metric"]),
             f"{r['datasets']} ({r['k']})", f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]",
             fmt_p(r["p_value"]), number(r["i2"]), number(r["tau2"])] for r in rows.to_dict("records")]


def sensitivity_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[str(r["dataset"]), str(r["arm"]), str(r["metric"]), str(r["selection"]), str(r["n_sets"]),
             number(r["min"]), number(r["median"]), number(r["max"]), number(r["iqr"]),
             f"{r['chosen_set']} ({number(r['chosen_value'])})"] for r in table.to_dict("records")]


def arm_rows(arms: pd.DataFrame) -> list[list[str]]:
    return [[str(r["dataset"]), str(r["arm"]), str(r["budget"]), str(r["draws"]), str(r["metric"]),
             f"{number(r['estimate'])} [{number(r['low'])}, {number(r['high'])}]", number(r["ece"]),
             number(r["brier"]), f"{r['n_items']} ({r['n_clusters']})"] for r in arms.to_dict("records")]


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
        rows.append([str(r["dataset"]), str(r["arm"]), probability(r["threshold"]),
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
