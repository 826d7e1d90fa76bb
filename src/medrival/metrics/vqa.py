"""Scoring answers to visual questions: one path, :func:`score_answers`, used by studies, ``compare`` and users alike.

Each item has a form (``medrival.core.vqa_forms``: yes_no, choice, multiple_choice, open) decided from its question
and its release, never from its gold answer. Closed forms are scored by extraction (``medrival.metrics.vqa_extract``:
what the answer commits to, or undecided); open items by token overlap of normalised text
(``medrival.metrics.vqa_text``). Rules are versioned (``NORMALISATION_VERSION``, ``EXTRACTION_VERSION``); the
versions are part of every VQA cell's id.

How an item is scored (``scored_as``)
    - yes_no: the reference must be yes or no; otherwise the item is scored as open and noted
      (``yes_no_reference_not_yes_no``): the prompt could not know.
    - choice: the reference must be one of the options parsed from the question (its normalised text, or by the
      extraction rules, "right" for "right kidney"); otherwise the item is scored as open and noted
      (``choice_reference_not_in_options``).
    - multiple_choice: the reference is a letter of the item's options, the text of one of them, or a text that
      names exactly one of them ("Benign image." for the option "Benign", as OmniMedVQA's ISIC files write it);
      anything else raises ``DataError`` naming the item (a release error, not a model error).
    - open: token metrics on the normalised texts.

Metrics (one per-item column each; a cell's metric is the mean of its column over the items it applies to)
    ==========================  ===============================  ==============================================
    name                        population (``scored_as``)        per-item score
    ==========================  ===============================  ==============================================
    ``closed_accuracy``         yes_no, choice, multiple_choice  1 if the extracted answer is the reference
    ``yes_no_accuracy``         yes_no                           the same, on yes/no items only
    ``choice_accuracy``         choice                           the same, on choice items only
    ``mc_accuracy``             multiple_choice                  the same, on multiple-choice items only
    ``undecided_rate``          yes_no, choice, multiple_choice  1 if no answer could be extracted (scores 0)
    ``open_exact_match``        open                             normalised strings equal
    ``open_token_f1``           open                             SQuAD multiset token F1
    ``open_token_recall``       open                             share of reference tokens in the answer
    ``open_bleu1``              open                             nltk sentence BLEU, unigram weights only
    ``open_rouge_l``            open                             rouge-score ROUGE-L F-measure
    ``open_recall_at_0_75``     open                             1 if token recall >= 0.75 (the legacy "accuracy")
    ==========================  ===============================  ==============================================

Token metrics (pure functions on paired answers; each returns float64 scores in [0, 1], one per item)
    - ``exact_match``: the normalised strings are equal. MedVLMBench reports a token ratio under the name "exact
      match", so the two are not comparable.
    - ``token_recall``, ``token_f1``: SQuAD-style multiset overlap of answer tokens: precision = common /
      #prediction tokens, recall = common / #reference tokens, F1 their harmonic mean. Both empty -> 1, one -> 0.
    - ``bleu1``: ``nltk.translate.bleu_score.sentence_bleu`` with ``weights=(1.0,)`` on answer tokens (clipped
      unigram precision times the brevity penalty); no smoothing; an empty side or no shared token gives 0.
    - ``rouge_l``: ROUGE-L F-measure from Google's ``rouge-score`` (``use_stemmer=False``) on the *normalised*
      answers; the package keeps only runs of ``[a-z0-9]`` (``3.5`` is two tokens). An empty side gives 0.
    - ``open_recall_at_0_75``: 1 when ``token_recall >= 0.75`` -- the open "accuracy" of MedVLMBench and
      MultiMedEval, named for what it is; it rewards long answers that contain the reference.

Where the legacy implementations differ (read in MultiMedEval ``utils.py``/``task_families.py`` and MedVLMBench
``eval/utils.py``/``eval/metrics.py``/``eval/vqa.py``): both clean text with the VQA-v2 recipe (a fixed punctuation
list; zero..ten as digits); MultiMedEval's recall uses token sets and calls a question closed when its reference
is yes/no, marking it correct when 40% of the reference tokens appear ("I cannot say yes or no" is right for both);
MedVLMBench's closed "accuracy" is a substring test ("no" is found in "not", "nodule" and "carcinoma"), and its
"exact match" is #distinct reference words found / #prediction words.
"""
from __future__ import annotations

import functools
import warnings
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from medrival.core.errors import DataError
from medrival.core.prompts import PROMPT_VERSION
from medrival.core.vqa_forms import CLOSED_FORMS, FORM_VERSION, FORMS, LETTERS
from medrival.metrics.registry import lower_is_better_names, metric_spec, metric_specs
from medrival.metrics.vqa_extract import EXTRACTION_VERSION, extract_answer, extract_option, normalised_options
from medrival.metrics.vqa_text import (
    NORMALISATION_VERSION, is_missing, answer_tokens, as_text, normalise_answer,
)

YES_NO: tuple[str, str] = ("yes", "no")
OPEN_RECALL_THRESHOLD = 0.75
_MAX_LISTED = 10  # how many bad values an error message lists before "..."
# Every rule that decides what a VQA number means: part of every VQA cell's id and stored with its result.
VQA_VERSIONS = {"prompt": PROMPT_VERSION, "form": FORM_VERSION, "normalisation": NORMALISATION_VERSION,
                "extraction": EXTRACTION_VERSION}


# ------------------------------------------------------------------------------------------------- input checks


def _is_collection(value: Any) -> bool:
    """A sized iterable that is not a string: a tuple/list/array of options."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") and hasattr(value, "__len__")


def _as_answer_list(values: Any, name: str) -> list[Any]:
    """``values`` (list, tuple, array, Series) as a list; a bare string is refused, it is not a sequence of answers."""
    if isinstance(values, pd.DataFrame):  # iterating a frame yields its column names, not its rows
        raise DataError(f"{name} must be one column of answers, got a DataFrame with columns {list(values.columns)}; "
                        "pass the column (frame['answer']).")
    if not _is_collection(values):
        raise DataError(f"{name} must be a sequence of answers (list, array or Series), got "
                        f"{type(values).__name__} {values!r:.80}.")
    return list(values)


def _paired(predictions: Any, references: Any) -> tuple[list[Any], list[Any]]:
    """Predictions and references as lists of equal length."""
    preds = _as_answer_list(predictions, "predictions")
    refs = _as_answer_list(references, "references")
    if len(preds) != len(refs):
        raise DataError(f"predictions has {len(preds)} items but references has {len(refs)}; they must be "
                        "paired item by item (prediction i answers the question of reference i).")
    return preds, refs


# --------------------------------------------------------------------------------------------- per-item metrics


def exact_match(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """1.0 where the normalised prediction equals the normalised reference (true equality, not a token ratio)."""
    preds, refs = _paired(predictions, references)
    return np.array([normalise_answer(p) == normalise_answer(r) for p, r in zip(preds, refs)], dtype=np.float64)


def _precision_recall(prediction: Any, reference: Any) -> tuple[float, float]:
    """SQuAD-style multiset token precision and recall; both empty -> (1, 1), one empty -> (0, 0)."""
    pred_tokens, ref_tokens = answer_tokens(prediction), answer_tokens(reference)
    if not pred_tokens or not ref_tokens:
        both_empty = float(not pred_tokens and not ref_tokens)
        return both_empty, both_empty
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    return common / len(pred_tokens), common / len(ref_tokens)


def token_recall(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """Share of reference tokens found in the prediction (multiset; see the module docstring for empties)."""
    preds, refs = _paired(predictions, references)
    return np.array([_precision_recall(p, r)[1] for p, r in zip(preds, refs)], dtype=np.float64)


def token_f1(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """Harmonic mean of multiset token precision and recall (SQuAD F1)."""
    preds, refs = _paired(predictions, references)
    scores = np.zeros(len(preds), dtype=np.float64)
    for i, (prediction, reference) in enumerate(zip(preds, refs)):
        precision, recall = _precision_recall(prediction, reference)
        if precision + recall > 0:
            scores[i] = 2 * precision * recall / (precision + recall)
    return scores


def bleu1(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """Sentence BLEU-1 (nltk, unigram weights only, brevity penalty included) on answer tokens; empty -> 0."""
    from nltk.translate.bleu_score import sentence_bleu  # imported here: nltk is slow to import

    preds, refs = _paired(predictions, references)
    scores = np.zeros(len(preds), dtype=np.float64)
    with warnings.catch_warnings():
        # nltk warns when a precision count is zero; the score is then 0.0, which says the same thing.
        warnings.simplefilter("ignore", UserWarning)
        for i, (prediction, reference) in enumerate(zip(preds, refs)):
            pred_tokens, ref_tokens = answer_tokens(prediction), answer_tokens(reference)
            if pred_tokens and ref_tokens:
                scores[i] = float(sentence_bleu([ref_tokens], pred_tokens, weights=(1.0,)))
    return scores


@functools.lru_cache(maxsize=1)
def _rouge_l_scorer() -> Any:
    """One shared scorer: building it sets up the tokenizer, which need not happen per item."""
    from rouge_score import rouge_scorer  # imported here: pulls in nltk and absl

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """ROUGE-L F-measure (Google's rouge-score) between the normalised prediction and reference; empty -> 0."""
    preds, refs = _paired(predictions, references)
    scorer = _rouge_l_scorer()
    return np.array([scorer.score(target=normalise_answer(r), prediction=normalise_answer(p))["rougeL"].fmeasure
                     for p, r in zip(preds, refs)], dtype=np.float64)


def open_recall_at_0_75(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """1.0 where :func:`token_recall` >= 0.75: the legacy open-question "accuracy" of MedVLMBench/MultiMedEval."""
    return (token_recall(predictions, references) >= OPEN_RECALL_THRESHOLD).astype(np.float64)


MetricFunction = Callable[[Sequence[Any], Sequence[Any]], np.ndarray]

# The per-item metric columns of ``score_answers``, computed from the metric registry (``medrival.metrics.registry``,
# source "score_answers"), where each is declared once with its population and orientation; kept as public names.
# Open-answer metrics: table name -> token function.
_COLUMNS = metric_specs(source="score_answers")
OPEN_METRICS: dict[str, MetricFunction] = {spec.name: spec.per_item for spec in _COLUMNS if spec.per_item_path}
# Every per-item metric column of ``score_answers`` -> the ``scored_as`` forms it is averaged over (report order).
VQA_METRICS: dict[str, tuple[str, ...]] = {spec.name: spec.population for spec in _COLUMNS}
# Metrics where lower is better (a verdict's "win" is mirrored for them).
LOWER_IS_BETTER = lower_is_better_names(source="score_answers")
_FORM_ACCURACY = {"yes_no": "yes_no_accuracy", "choice": "choice_accuracy", "multiple_choice": "mc_accuracy"}
# Form names accepted besides FORMS: the coarse answer types of releases ("closed" = yes/no, or choice with options).
_COARSE = ("closed", "open")


# ------------------------------------------------------------------------------------------------------- tables


def _checked_forms(forms: Any, n: int, option_sets: list[tuple | None]) -> list[str]:
    values = _as_answer_list(forms, "forms")
    if len(values) != n:
        raise DataError(f"predictions and references have {n} items but forms has {len(values)}; give one form "
                        "per item.")
    bad = [i for i, value in enumerate(values) if value not in FORMS + _COARSE]
    if bad:
        listed = ", ".join(sorted({repr(values[i]) for i in bad})[:_MAX_LISTED])
        raise DataError(f"forms must be one of {', '.join(FORMS)} (or closed/open); got {listed} ({len(bad)} "
                        f"items, the first at position {bad[0]}).")
    resolved = []
    for value, options in zip(values, option_sets):
        if value == "closed":
            value = "choice" if options else "yes_no"
        resolved.append(value)
    missing = [i for i, (form, options) in enumerate(zip(resolved, option_sets))
               if form in ("choice", "multiple_choice") and not options]
    if missing:
        raise DataError(f"{len(missing)} choice/multiple-choice items have no options (the first at position "
                        f"{missing[0]}); give each such item its options.")
    return resolved


def _options_per_item(options: Any, n: int) -> list[tuple | None]:
    """One option tuple (or None) per item from None, per-item entries, or a DataFrame of option columns."""
    if options is None:
        return [None] * n
    if isinstance(options, pd.DataFrame):  # option columns (option_a..option_e), one row per item
        options = list(options.itertuples(index=False, name=None))
    if not _is_collection(options) or len(options) != n:
        raise DataError(f"options must hold one entry per item ({n}): a tuple of option texts, or None for an "
                        f"item without options; got {type(options).__name__} of length "
                        f"{len(options) if _is_collection(options) else 'n/a'}.")
    per_item: list[tuple | None] = []
    for position, entry in enumerate(options):
        if entry is None or (not _is_collection(entry) and is_missing(entry)):
            per_item.append(None)
        elif _is_collection(entry):
            present = tuple(o for o in entry if not is_missing(o) and as_text(o).strip())
            per_item.append(present or None)
        else:
            raise DataError(f"options[{position}] is {entry!r}; each entry must be a tuple of option texts or None.")
    return per_item


def _where(position: int, item_ids: list[Any] | None, source: str) -> str:
    item = f"item {item_ids[position]!r}" if item_ids is not None else f"item at position {position}"
    return f"{item} of {source}" if source else item


def _mc_reference(reference: Any, options: tuple, where: str) -> str:
    """The letter of a multiple-choice reference (a letter, "(B)", or an option's text)."""
    letters = LETTERS[:len(options)]
    text = as_text(reference).strip().strip("().:[] ")
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    normalised = normalised_options(options)
    key = normalise_answer(reference)
    if key in normalised:
        return letters[normalised.index(key)]
    named = extract_option(reference, options, lettered=True)  # "Benign image." names the option "Benign"
    if named is not None:
        return named
    raise DataError(f"{where}: the reference {as_text(reference)!r} is neither a letter of its {len(options)} "
                    f"options ({', '.join(letters)}) nor one of their texts {list(options)!r}. Check the release's "
                    "gold column for this item.")


def _closed_reference(reference: Any, form: str, options: tuple | None, where: str) -> tuple[str, str | None]:
    """(scored_as, the reference's key) of a closed item; an unusable yes/no or choice reference is scored open."""
    if form == "multiple_choice":
        return form, _mc_reference(reference, options, where)
    key = normalise_answer(reference)
    if form == "yes_no":
        return ("yes_no", key) if key in YES_NO else ("open", "yes_no_reference_not_yes_no")
    normalised = normalised_options(options)
    if key in normalised:
        return "choice", key
    chosen = extract_option(reference, options)
    return ("choice", chosen) if chosen is not None else ("open", "choice_reference_not_in_options")


def _decision(response: Any, form: str, options, question, fallback) -> tuple[str | None, str | None]:
    """(extracted answer, who decided: "rules" | "extractor" | None)."""
    extracted = extract_answer(response, form, options, question)
    if extracted is not None:
        return extracted, "rules"
    if fallback is None or is_missing(fallback) or not as_text(fallback).strip():
        return None, None
    decided = (extract_option(fallback, options, lettered=form == "multiple_choice") if form != "yes_no"
               else extract_answer(fallback, form, options, None))
    return (decided, "extractor") if decided is not None else (None, None)


def _optional_list(values: Any, n: int, name: str) -> list[Any] | None:
    if values is None:
        return None
    items = _as_answer_list(values, name)
    if len(items) != n:
        raise DataError(f"{name} has {len(items)} entries but there are {n} items; give one per item.")
    return items


def _resolved_references(refs, forms, option_sets, item_ids, source) -> list[tuple[str, str | None]]:
    """(scored_as, the reference's key -- or, for a closed item scored as open, the reason) per item."""
    return [("open", None) if form == "open"
            else _closed_reference(refs[i], form, option_sets[i], _where(i, item_ids, source))
            for i, form in enumerate(forms)]


def reference_forms(references: Sequence[Any], forms: Sequence[str], options: Any = None, *,
                    item_ids: Sequence[Any] | None = None, source: str = "") -> pd.DataFrame:
    """How each item will be scored, from its reference alone: ``form``, ``scored_as`` and ``score_note`` (why a
    closed item is scored as open) -- what ``score_answers`` decides before it reads any answer. A
    multiple-choice gold outside its options raises the same ``DataError``, so a split can be checked when it is
    built, before a model answers anything."""
    refs = _as_answer_list(references, "references")
    option_sets = _options_per_item(options, len(refs))
    resolved = _checked_forms(forms, len(refs), option_sets)
    pairs = _resolved_references(refs, resolved, option_sets, _optional_list(item_ids, len(refs), "item_ids"),
                                 source)
    return pd.DataFrame({"form": resolved, "scored_as": [scored_as for scored_as, _ in pairs],
                         "score_note": [key if scored_as == "open" and form != "open" else None
                                        for form, (scored_as, key) in zip(resolved, pairs)]})


def _closed_rows(preds, refs, forms, option_sets, questions, fallback, item_ids, source) -> dict[str, list]:
    """Per-item scored_as, note, extracted, decided_by and correctness (NaN for items scored as open)."""
    out: dict[str, list] = {"scored_as": [], "score_note": [], "extracted": [], "decided_by": [], "correct": []}
    resolved = _resolved_references(refs, forms, option_sets, item_ids, source)
    for i, (form, (scored_as, key)) in enumerate(zip(forms, resolved)):
        note, extracted, decided_by, correct = None, None, None, np.nan
        if scored_as == "open":
            note = key if form != "open" else None
        else:
            question = questions[i] if questions is not None else None
            hint = fallback[i] if fallback is not None else None
            extracted, decided_by = _decision(preds[i], form, option_sets[i], question, hint)
            correct = float(extracted is not None and extracted == key)
        for column, value in zip(out, (scored_as, note, extracted, decided_by, correct)):
            out[column].append(value)
    return out


def score_answers(predictions: Sequence[Any], references: Sequence[Any], forms: Sequence[str],
                  options: Any = None, *, questions: Sequence[Any] | None = None,
                  fallback: Sequence[Any] | None = None, item_ids: Sequence[Any] | None = None,
                  source: str = "") -> pd.DataFrame:
    """Score every item; row i is item i. The one scoring path of medrival (see the module docstring).

    ``forms``: one of ``FORMS`` per item ("closed" is accepted: choice when the item has options, else yes_no;
    "open" as is). ``options``: None, or one entry per item (a tuple of option texts in letter order, None for
    items without), or a DataFrame of option columns. ``questions`` lets the yes/no rules read a restatement of
    the question. ``fallback``: an answer extractor's decision per item, used only where the rules are undecided.
    ``item_ids`` and ``source`` name an item in errors.

    Columns: ``form``, ``scored_as``, ``score_note`` (why a closed item is scored as open), ``extracted``,
    ``decided_by``, and one column per metric of ``VQA_METRICS`` (NaN where it does not apply).
    """
    preds, refs = _paired(predictions, references)
    n = len(preds)
    option_sets = _options_per_item(options, n)
    resolved = _checked_forms(forms, n, option_sets)
    rows = _closed_rows(preds, refs, resolved, option_sets, _optional_list(questions, n, "questions"),
                        _optional_list(fallback, n, "fallback"), _optional_list(item_ids, n, "item_ids"), source)
    scored_as = np.asarray(rows["scored_as"], dtype=object)
    correct = np.asarray(rows["correct"], dtype=np.float64)
    closed = np.isin(scored_as, CLOSED_FORMS)
    table: dict[str, Any] = {"form": resolved, "scored_as": rows["scored_as"], "score_note": rows["score_note"],
                             "extracted": pd.Series(rows["extracted"], dtype=object),
                             "decided_by": pd.Series(rows["decided_by"], dtype=object)}
    table["closed_accuracy"] = np.where(closed, correct, np.nan)
    for form, name in _FORM_ACCURACY.items():
        table[name] = np.where(scored_as == form, correct, np.nan)
    undecided = np.array([value is None for value in rows["extracted"]], dtype=np.float64)
    table["undecided_rate"] = np.where(closed, undecided, np.nan)
    open_rows = np.flatnonzero(scored_as == "open")
    for name, metric in OPEN_METRICS.items():
        column = np.full(n, np.nan)
        if open_rows.size:
            column[open_rows] = metric([preds[i] for i in open_rows], [refs[i] for i in open_rows])
        table[name] = column
    return pd.DataFrame(table)


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """Each metric's mean over the items it applies to (NaN when none), plus item counts per ``scored_as`` form
    and the number of closed items scored as open (``n_closed_scored_open``)."""
    missing = [column for column in ("scored_as", *VQA_METRICS) if column not in scores.columns]
    if missing:
        raise DataError(f"scores lacks the column(s) {', '.join(missing)}; pass the frame returned by "
                        "score_answers.")
    summary: dict[str, float] = {name: metric_spec(name).aggregate(scores[name]) for name in VQA_METRICS}
    for form in FORMS:
        summary[f"n_{form}"] = int((scores["scored_as"] == form).sum())
    summary["n_closed"] = int(scores["scored_as"].isin(CLOSED_FORMS).sum())
    summary["n_closed_scored_open"] = int(scores["score_note"].notna().sum()) if "score_note" in scores else 0
    return summary
