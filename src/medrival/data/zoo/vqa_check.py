"""What ``datasets check`` says of a VQA release's questions: how each is asked (its form) and how it is scored.

Forms come from the questions and the release's fields (``build.frame_forms``); how an item is scored comes from
``medrival.metrics.vqa.reference_forms`` -- the first step of the study's own scoring path, which reads the
references only -- so the counts here are exactly what a study will score: a choice question whose reference is not among its parsed
options, or a yes/no question whose reference is not yes or no, is scored as open and counted with its reason. A
multiple-choice item whose gold is not among its options raises the scoring path's DataError, naming the item.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from medrival.core.vqa_forms import FORMS
from medrival.data.zoo.build import frame_forms, gold_answers, release_options
from medrival.metrics.vqa import reference_forms


def _split_report(rows: pd.DataFrame, release: str) -> dict:
    forms, options = frame_forms(rows)
    scored = reference_forms(gold_answers(rows), forms, options, item_ids=rows["question_id"].astype(str).tolist(),
                             source=release)
    declared_closed = (rows["answer_type"] == "closed") & (rows["answer_type_source"] == "release")
    asked_open = pd.Series(forms, index=rows.index) == "open"
    return {"asked": {form: int(count) for form, count in Counter(forms).items()},
            "scored_as": {form: int(count) for form, count in Counter(scored["scored_as"]).items()},
            "scored_open_because": {str(k): int(v) for k, v in Counter(scored["score_note"].dropna()).items()},
            "declared_closed_asked_open": int((declared_closed & asked_open).sum()),
            "choice_in_question": int(sum(form == "choice" for form in forms))}


def vqa_form_report(index, release: str) -> tuple[dict, list[str]]:
    """Per split: forms asked, forms scored, reasons for scoring a closed item as open; and notes to print."""
    frame = index.frame
    report = {split: _split_report(frame[frame["split"] == split].reset_index(drop=True), release)
              for split in index.splits}
    totals: Counter = Counter()
    for part in report.values():
        totals.update(part["scored_open_because"])
    notes = [f"{count} questions scored as open because {reason.replace('_', ' ')} (the prompt cannot know)"
             for reason, count in sorted(totals.items())]
    declared_closed_open = sum(part["declared_closed_asked_open"] for part in report.values())
    if declared_closed_open:
        notes.append(f"{declared_closed_open} questions the release calls closed are neither yes/no shaped nor "
                     "state options: asked and scored as open.")
    lettered = any(option is not None for option in release_options(frame))
    stated = sum(part["choice_in_question"] for part in report.values())
    if stated and not lettered:
        notes.append(f"{stated} questions state their options in the question text in a release that declares "
                     "none: asked as choice questions with the parsed options.")
    report["forms"] = list(FORMS)
    return report, notes
