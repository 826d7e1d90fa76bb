"""Scoring free-text answers to visual questions (VQA): normalisation, choice extraction and per-item metrics.

Every rule below is versioned by ``NORMALISATION_VERSION``, which is stored with results: change any rule (even
one character class) and bump it, so scores computed under different rules are never pooled.

Normalisation (:func:`normalise_answer`)
    1. A missing answer (None, NaN, ``pd.NA``) is the empty string. A number becomes its decimal text, a float
       with an integral value without its ``.0`` (``2.0`` -> ``"2"``, as the release parsers store answers).
       Any other non-string raises ``DataError``.
    2. Unicode NFKC, so compatibility forms compare equal to their plain form (full-width ``ＹＥＳ`` -> ``YES``,
       ligatures, superscript digits), then ``str.casefold`` (a stronger lower-casing; ``ß`` -> ``ss``).
       Accents are kept: ``café`` and ``cafe`` differ.
    3. Every punctuation or symbol character (Unicode categories P* and S*: ``.,;:!?'"()[]-/%+<>°×``...) and every
       invisible control or format character (Cc, Cf: zero-width space, byte-order mark) becomes a space, so
       ``x-ray`` -> ``x ray`` and ``don't`` -> ``don t``. Exception: a ``.`` or ``,`` with a decimal digit on both
       sides is kept, so ``3.5`` and ``1,000`` stay single tokens (``.5`` loses its point: no digit before it).
    4. The articles ``a``, ``an``, ``the`` are removed as whole words; runs of whitespace become one space and
       the ends are stripped.

    :func:`answer_tokens` is the normalised answer split on spaces; every token metric uses it.

Closed questions (:func:`extract_choice`)
    Options (``("yes", "no")`` unless given; multi-word class names such as ``"pleural effusion"`` are fine) and
    the response are normalised as above, and options are matched as whole-word token sequences:

    1. If the response *starts with* an option, that option is the answer; when several do (one option is a
       prefix of another, "pleural" / "pleural effusion"), the longest wins.
    2. Otherwise, if exactly one option occurs anywhere in the response, it is the answer. An occurrence that
       lies inside an occurrence of a longer option does not count ("effusion" inside "pleural effusion").
    3. Otherwise (no option, or several different options) the answer is None, which scores as wrong: a
       response that commits to neither option is not given the benefit of the doubt.

    Rule 1 takes a leading option at face value ("No idea" and "yes or no" give "no" and "yes"). Negation is
    not understood and negation words are not options: "The image looks normal" gives None for yes/no, "There
    is no effusion" gives "no" (the word *no* occurs once), but "There is no pleural effusion" with the options
    ("pleural effusion", "pneumothorax") gives "pleural effusion"; prompts for class-name options should
    therefore ask for the name alone. Whole words only: "yesterday" does not contain "yes".
    Options that are missing (None/NaN, e.g. the absent option_c of a two-way question) are skipped; an option
    that normalises to nothing (``"?"``, or the letter ``"A"``, which is an article) or two options that
    normalise to the same text raise ``DataError``: extract from the choices' texts, not their letters.

Per-item metrics (each takes paired sequences ``predictions``, ``references`` and returns float64 scores in
[0, 1], one per item; averaging is the caller's job)
    - ``closed_accuracy``: 1 when the extracted choice equals the normalised reference, else 0 (None is 0). A
      reference that is not among its item's options raises ``DataError``.
    - ``exact_match``: the normalised strings are equal. This is real equality; MedVLMBench reports a token
      ratio under the name "exact match" (see below), so the two are not comparable.
    - ``token_recall``, ``token_f1``: SQuAD-style multiset overlap of answer tokens: ``common`` counts each token
      as often as it occurs in both; precision = common / #prediction tokens, recall = common / #reference
      tokens, F1 their harmonic mean. Both empty -> 1, exactly one empty -> 0.
    - ``bleu1``: sentence BLEU with unigram weights only (``nltk.translate.bleu_score.sentence_bleu`` with
      ``weights=(1.0,)``) on answer tokens: clipped unigram precision times the brevity penalty
      ``exp(1 - r/c)`` when the prediction (c tokens) is shorter than the reference (r tokens). No smoothing;
      an empty prediction or no shared token gives 0 (two empty answers: 0 here, 1 for exact/token metrics).
    - ``rouge_l``: ROUGE-L F-measure from Google's ``rouge-score`` (``RougeScorer(["rougeL"],
      use_stemmer=False)``, ``score(target=reference, prediction=prediction).fmeasure``) applied to the
      *normalised* answers, so articles, case and punctuation are treated as in every other metric here. The
      package then tokenises once more, keeping only runs of ``[a-z0-9]``: ``3.5`` counts as two tokens ``3 5``
      and letters outside a-z (accents, non-Latin scripts) are dropped. An empty side gives 0.
    - ``open_recall_at_0_75``: 1 when ``token_recall >= 0.75``, else 0 -- the open-question "accuracy" of
      MedVLMBench and MultiMedEval, named for what it is. It rewards long answers that contain the reference.

Where the legacy implementations differ (read in ``corentin-ryr/MultiMedEval``: ``multimedeval/utils.py``
``clean_str`` and ``multimedeval/task_families.py`` ``VQA.evaluate``; ``ubc-tea/MedVLMBench``:
``eval/utils.py``, ``eval/metrics.py``, ``eval/vqa.py``)
    - Both clean text with the VQA-v2 recipe: lower-case; a fixed list of punctuation (``; / [ ] " { } ( ) = +
      \\ _ - > < @ ` , ? !``) becomes a space, or is deleted outright when the text has that mark next to a space
      or any digit-comma-digit; a period not followed by a digit is deleted; the words zero..ten and "none" become
      digits; articles are removed; some contractions are restored ("dont" -> "don't"); commas are removed. Marks
      outside the list (``: ' % * #``) stay attached to words. We split on all Unicode punctuation/symbols and
      map no number words ("two" and "2" differ here).
    - MultiMedEval's recall uses token *sets* (repeats ignored) and is 0 for an empty reference; ours counts
      repeats (SQuAD). It calls a question closed when its cleaned reference is yes/no (not the release label)
      and marks it correct when at least 40% of the reference tokens -- {"yes"}, or {"no", "not"} -- appear in the
      prediction, so "I cannot say yes or no" is correct for both references; ours extracts None from it.
    - MedVLMBench's "exact match" is (#distinct reference words found in the prediction) / (#prediction words);
      its recall counts prediction occurrences of shared words (a repeated word can lift it); its closed
      "accuracy" is a substring test of the reference in the lower-cased prediction ("no" is found in "not" and
      "nodule").

Tables (:func:`score_answers`, :func:`summarise`)
    ``score_answers`` returns one row per item with ``answer_type``, one column per metric of ``VQA_METRICS``
    (NaN where the metric does not apply to the item's answer type) and ``extracted`` (the choice extracted for
    closed items, None otherwise). ``summarise`` averages each metric over the items it applies to.
"""
from __future__ import annotations

import functools
import math
import numbers
import unicodedata
import warnings
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from medrival.core.errors import DataError

NORMALISATION_VERSION = "1"

YES_NO: tuple[str, str] = ("yes", "no")
ANSWER_TYPES: tuple[str, str] = ("closed", "open")
OPEN_RECALL_THRESHOLD = 0.75

_ARTICLES = frozenset({"a", "an", "the"})
# Unicode categories turned into spaces: all punctuation (P*), all symbols (S*), controls and invisible formats.
_SEPARATOR_MAJOR_CATEGORIES = frozenset("PS")
_SEPARATOR_CATEGORIES = frozenset({"Cc", "Cf"})
_NUMBER_SEPARATORS = frozenset(".,")
_MAX_LISTED = 10  # how many bad values an error message lists before "..."


# ------------------------------------------------------------------------------------------------ normalisation


def _is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: an answer that was never given."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _as_text(value: Any) -> str:
    """The raw text of an answer, option or reference (rule 1 of the module docstring)."""
    if _is_missing(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Number):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))  # 2.0 read from a CSV is the answer "2"
        return str(value)
    raise DataError(f"an answer must be a string (or a number, None or NaN), got {type(value).__name__} "
                    f"{value!r}; convert the model outputs and references to text first.")


@functools.lru_cache(maxsize=4096)
def _is_separator(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in _SEPARATOR_MAJOR_CATEGORIES or category in _SEPARATOR_CATEGORIES


def _spaces_for_punctuation(text: str) -> str:
    """Replace punctuation/symbols with spaces, keeping a '.' or ',' between two decimal digits (3.5, 1,000)."""
    chars = list(text)
    last = len(chars) - 1
    for i, char in enumerate(chars):
        if not _is_separator(char):
            continue
        inside_number = (char in _NUMBER_SEPARATORS and 0 < i < last
                         and text[i - 1].isdecimal() and text[i + 1].isdecimal())
        if not inside_number:
            chars[i] = " "
    return "".join(chars)


def normalise_answer(text: Any) -> str:
    """Normalise an answer for comparison: NFKC, casefold, punctuation to spaces, no articles, single spaces.

    ``"The Left Lung."`` -> ``"left lung"``; ``"3.5 cm"`` -> ``"3.5 cm"``; ``"ＹＥＳ!"`` -> ``"yes"``;
    None/NaN -> ``""``. The exact rules are in the module docstring (versioned by ``NORMALISATION_VERSION``).
    """
    folded = unicodedata.normalize("NFKC", _as_text(text)).casefold()
    words = _spaces_for_punctuation(folded).split()
    return " ".join(word for word in words if word not in _ARTICLES)


def answer_tokens(text: Any) -> list[str]:
    """The whitespace tokens of :func:`normalise_answer` -- the unit of every token-overlap metric."""
    return normalise_answer(text).split()


# --------------------------------------------------------------------------------------------- choice extraction


def _is_collection(value: Any) -> bool:
    """A sized iterable that is not a string: a tuple/list/array of options."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") and hasattr(value, "__len__")


@functools.lru_cache(maxsize=1024)
def _normalised_options_cached(options: tuple) -> tuple[str, ...]:
    present = [option for option in options if not _is_missing(option)]
    if not present:
        raise DataError(f"options {options!r} has no option; give the candidate answers, e.g. ('yes', 'no').")
    normalised = [normalise_answer(option) for option in present]
    empty = [option for option, norm in zip(present, normalised) if not norm]
    if empty:
        raise DataError(
            f"option(s) {', '.join(map(repr, empty))} of {options!r} normalise to an empty string (punctuation "
            f"and the articles a/an/the are removed); use the choices' texts, not their letters.")
    first_raw: dict[str, Any] = {}
    clashes = []
    for option, norm in zip(present, normalised):
        if norm in first_raw:
            clashes.append(f"{first_raw[norm]!r} and {option!r} both normalise to {norm!r}")
        first_raw.setdefault(norm, option)
    if clashes:
        raise DataError(f"options {options!r} contain duplicates after normalisation: {'; '.join(clashes)}. "
                        "Each option must be distinguishable; remove or reword the duplicates.")
    return tuple(normalised)


def _normalised_options(options: Any) -> tuple[str, ...]:
    """The normalised options, validated (non-empty, no duplicates); missing entries are skipped."""
    if not _is_collection(options):
        raise DataError(f"options must be a sequence of candidate answers such as ('yes', 'no'), got "
                        f"{type(options).__name__} {options!r}.")
    try:
        return _normalised_options_cached(tuple(options))
    except TypeError:  # an unhashable entry (a list inside the options): validate without the cache
        return _normalised_options_cached.__wrapped__(tuple(options))


def _occurrences(tokens: list[str], option: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) token spans where ``option`` occurs in ``tokens`` as whole words."""
    width = len(option)
    return [(start, start + width) for start in range(len(tokens) - width + 1)
            if tuple(tokens[start:start + width]) == option]


def _options_found(tokens: list[str], option_tokens: dict[str, tuple[str, ...]]) -> set[str]:
    """Options occurring in ``tokens``, ignoring occurrences inside an occurrence of a longer option."""
    spans = [(start, end, option) for option, words in option_tokens.items()
             for start, end in _occurrences(tokens, words)]
    found = set()
    for start, end, option in spans:
        inside_longer = any(other_start <= start and end <= other_end and other_end - other_start > end - start
                            for other_start, other_end, _ in spans)
        if not inside_longer:
            found.add(option)
    return found


def extract_choice(response: Any, options: Sequence[Any] = YES_NO) -> str | None:
    """The option a free-text ``response`` commits to (normalised), or None when it commits to none or several.

    Rules (see the module docstring): (1) the longest option the normalised response starts with, as whole
    words; (2) else the only option occurring anywhere as whole words (occurrences inside a longer option's do
    not count); (3) else None. ``"No."`` -> ``"no"``; ``"There is no effusion"`` -> ``"no"``; ``"no, yes"`` ->
    ``"no"``; ``"I cannot say yes or no"``, ``"not sure"`` and ``"yesterday"`` -> None.

    Raises ``DataError`` when ``options`` is empty, or an option normalises to nothing or to the same text as
    another option.
    """
    normalised = _normalised_options(options)
    option_tokens = {option: tuple(option.split()) for option in normalised}
    tokens = answer_tokens(response)
    leading = [option for option, words in option_tokens.items() if tuple(tokens[:len(words)]) == words]
    if leading:
        return max(leading, key=lambda option: len(option_tokens[option]))
    found = _options_found(tokens, option_tokens)
    return found.pop() if len(found) == 1 else None


# ------------------------------------------------------------------------------------------------- input checks


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


def _is_scalar_option(value: Any) -> bool:
    return isinstance(value, (str, numbers.Number)) and not _is_missing(value)


def _options_per_item(options: Any, n: int) -> list[Any]:
    """One option set per item from None (yes/no), one shared set, or per-item sets (a sequence whose None entries
    mean yes/no, or a DataFrame of option columns)."""
    if options is None:
        return [YES_NO] * n
    if isinstance(options, pd.DataFrame):  # option columns (option_a..option_d), one row per item
        options = list(options.itertuples(index=False, name=None))
    if not _is_collection(options):
        raise DataError(f"options must be one set of choices such as ('yes', 'no') or one set per item, got "
                        f"{type(options).__name__} {options!r:.80}.")
    entries = list(options)
    if all(_is_scalar_option(entry) for entry in entries):
        return [tuple(entries)] * n  # one set of choices shared by every item
    if len(entries) != n:
        raise DataError(f"options has {len(entries)} per-item entries but there are {n} items; give one set of "
                        "choices per item (None for yes/no), or a single set shared by all items.")
    per_item = []
    for position, entry in enumerate(entries):
        if _is_missing(entry):
            per_item.append(YES_NO)
        elif _is_collection(entry):
            per_item.append(tuple(entry))
        else:
            raise DataError(f"options[{position}] is {entry!r}; each per-item entry must be a tuple of choices "
                            "(or None for yes/no).")
    return per_item


# --------------------------------------------------------------------------------------------- per-item metrics


def _score_closed(predictions: list[Any], references: list[Any], option_sets: list[Any],
                  positions: Sequence[int]) -> tuple[np.ndarray, list[str | None]]:
    """Closed accuracy and the extracted choices; ``positions`` are the items' row numbers, for error messages."""
    normalised_refs = [normalise_answer(reference) for reference in references]
    unknown = [k for k, (ref, options) in enumerate(zip(normalised_refs, option_sets))
               if ref not in _normalised_options(options)]
    if unknown:
        k = unknown[0]
        raise DataError(
            f"reference {references[k]!r} (normalised {normalised_refs[k]!r}) at position {positions[k]} is not "
            f"among its options {tuple(option_sets[k])!r}; {len(unknown)} of {len(references)} closed items have "
            "such a reference. Pass each question's candidate answers as its options, or score these questions "
            "as 'open'.")
    extracted = [extract_choice(prediction, options) for prediction, options in zip(predictions, option_sets)]
    scores = np.array([choice == ref for choice, ref in zip(extracted, normalised_refs)], dtype=np.float64)
    return scores, extracted


def closed_accuracy(predictions: Sequence[Any], references: Sequence[Any],
                    options: Sequence[Any] = YES_NO) -> np.ndarray:
    """1.0 where :func:`extract_choice` of the prediction equals the normalised reference, else 0.0.

    ``options`` is one set of choices for every item (default yes/no) or one set per item (multiple choice;
    a None entry means yes/no). A reference outside its item's options raises ``DataError``.
    """
    preds, refs = _paired(predictions, references)
    scores, _ = _score_closed(preds, refs, _options_per_item(options, len(preds)), range(len(preds)))
    return scores


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


MetricFunction = Callable[..., np.ndarray]

# name -> (function, the answer type it applies to: "closed", "open" or "all"). Functions for "closed" take
# ``options=`` as well. Column order of ``score_answers`` follows this dict.
VQA_METRICS: dict[str, tuple[MetricFunction, str]] = {
    "closed_accuracy": (closed_accuracy, "closed"),
    "open_recall_at_0_75": (open_recall_at_0_75, "open"),
    "exact_match": (exact_match, "all"),
    "token_f1": (token_f1, "all"),
    "token_recall": (token_recall, "all"),
    "bleu1": (bleu1, "all"),
    "rouge_l": (rouge_l, "all"),
}


# ------------------------------------------------------------------------------------------------------- tables


def _checked_answer_types(answer_types: Any, n_predictions: int, n_references: int) -> list[str]:
    types = _as_answer_list(answer_types, "answer_types")
    if not n_predictions == n_references == len(types):
        raise DataError(f"predictions has {n_predictions} items, references {n_references} and answer_types "
                        f"{len(types)}; all three must be paired item by item.")
    bad_positions = [i for i, value in enumerate(types) if not (isinstance(value, str) and value in ANSWER_TYPES)]
    if bad_positions:
        bad_values = sorted({repr(types[i]) for i in bad_positions})
        listed = ", ".join(bad_values[:_MAX_LISTED]) + (", ..." if len(bad_values) > _MAX_LISTED else "")
        raise DataError(f"answer_types must be 'closed' or 'open'; got {listed} ({len(bad_positions)} items, the "
                        f"first at position {bad_positions[0]}).")
    return types


def score_answers(predictions: Sequence[Any], references: Sequence[Any], answer_types: Sequence[str],
                  options: Sequence[Any] | None = None) -> pd.DataFrame:
    """Score every item with every metric of ``VQA_METRICS``; row i is item i.

    Columns: ``answer_type``, one per metric (NaN where the metric does not apply to the item's answer type),
    and ``extracted`` (the choice extracted from a closed item's prediction, None for open items). ``options``:
    None (yes/no for every closed item), one set of choices shared by all closed items, or one entry per item
    (a tuple of choices, or None for yes/no; a DataFrame of option columns gives one tuple per row; missing
    choices in a tuple are skipped; entries of open items are not used).
    """
    preds, refs = _paired(predictions, references)
    types = _checked_answer_types(answer_types, len(preds), len(refs))
    n = len(preds)
    option_sets = _options_per_item(options, n)
    rows_of = {kind: np.array([i for i, t in enumerate(types) if t == kind], dtype=np.int64)
               for kind in ANSWER_TYPES}
    rows_of["all"] = np.arange(n, dtype=np.int64)

    closed = rows_of["closed"]
    closed_scores, closed_choices = _score_closed([preds[i] for i in closed], [refs[i] for i in closed],
                                                  [option_sets[i] for i in closed], closed.tolist())
    table: dict[str, Any] = {"answer_type": types}
    for name, (metric, applies_to) in VQA_METRICS.items():
        column = np.full(n, np.nan, dtype=np.float64)
        rows = rows_of[applies_to]
        if metric is closed_accuracy:
            column[rows] = closed_scores  # already computed with row numbers for error messages
        elif rows.size:
            column[rows] = metric([preds[i] for i in rows], [refs[i] for i in rows])
        table[name] = column
    extracted: list[str | None] = [None] * n
    for row, choice in zip(closed.tolist(), closed_choices):
        extracted[row] = choice
    table["extracted"] = pd.Series(extracted, dtype=object)
    return pd.DataFrame(table)


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """Mean of each metric over the items it applies to (NaN-skipping; NaN when none), plus n_closed, n_open."""
    missing = [column for column in ("answer_type", *VQA_METRICS) if column not in scores.columns]
    if missing:
        raise DataError(f"scores lacks the column(s) {', '.join(missing)}; pass the frame returned by "
                        "score_answers.")
    summary: dict[str, float] = {}
    for name, (_, applies_to) in VQA_METRICS.items():
        column = scores[name] if applies_to == "all" else scores.loc[scores["answer_type"] == applies_to, name]
        summary[name] = float(column.mean())  # pandas skips NaN, and gives NaN for no values without a warning
    summary["n_closed"] = int((scores["answer_type"] == "closed").sum())
    summary["n_open"] = int((scores["answer_type"] == "open").sum())
    return summary
