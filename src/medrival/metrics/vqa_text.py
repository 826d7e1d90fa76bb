"""Normalising VQA answers before they are compared: one function applied alike to predictions and references.

Every rule is versioned by ``NORMALISATION_VERSION``, which is part of every VQA cell's id: change any rule (even one
character class or one spelling pair) and bump it, so scores computed under different rules are never pooled.

Rules of :func:`normalise_answer`, in order
    1. A missing answer (None, NaN, ``pd.NA``) is the empty string. A number becomes its decimal text, a float with
       an integral value without its ``.0`` (``2.0`` -> ``"2"``). Any other non-string raises ``DataError``.
    2. Unicode NFKC (full-width ``ＹＥＳ`` -> ``YES``, ligatures, superscript digits), then ``str.casefold``.
       Accents are kept.
    3. A possessive ``'s`` (or ``’s``) at the end of a word is removed: ``Crohn's disease`` -> ``crohn disease``.
    4. Every punctuation or symbol character (Unicode P* and S*: hyphen, slash, brackets, ``%``...) and every
       invisible control or format character becomes a space, so ``x-ray`` and ``x - ray`` and ``x/ray`` agree.
       A ``.`` or ``,`` between two digits is kept (``3.5``, ``1,000``).
    5. The articles ``a``, ``an``, ``the`` are removed as whole words.
    6. British spellings common in radiology and pathology become American ones, word by word
       (:data:`SPELLING_FRAGMENTS`: ``oesophagus`` -> ``esophagus``, ``haemorrhage`` -> ``hemorrhage``,
       ``tumour`` -> ``tumor``, ``oedema`` -> ``edema``, ``anaemia`` -> ``anemia``, ``paediatric`` -> ``pediatric``).
    7. Number words from zero to one hundred become digits: ``two`` -> ``2``, ``twenty one`` and ``twenty-one`` ->
       ``21``, ``one hundred`` -> ``100``. "a single" is not a count and stays a word (``single``); ordinals
       ("first") are not numbers.
    8. Runs of whitespace become one space; the ends are stripped.

:func:`answer_tokens` is the normalised answer split on spaces; every token metric and every extraction rule uses it.
"""
from __future__ import annotations

import functools
import math
import numbers
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

from medrival.core.errors import DataError

NORMALISATION_VERSION = "2"

_ARTICLES = frozenset({"a", "an", "the"})
_SEPARATOR_MAJOR_CATEGORIES = frozenset("PS")
_SEPARATOR_CATEGORIES = frozenset({"Cc", "Cf"})
_NUMBER_SEPARATORS = frozenset(".,")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")

# (British fragment, American fragment), applied inside a word, longest first. Each pair was checked not to occur
# inside an American medical word (no American spelling contains "oesoph", "haem", "aemia"...).
SPELLING_FRAGMENTS: tuple[tuple[str, str], ...] = (
    ("oesophag", "esophag"), ("ischaem", "ischem"), ("anaesth", "anesth"), ("gynaec", "gynec"),
    ("oedem", "edem"), ("oestr", "estr"), ("aemia", "emia"), ("haem", "hem"), ("paed", "ped"), ("foet", "fet"),
    ("caec", "cec"), ("faec", "fec"), ("tumour", "tumor"), ("colour", "color"), ("centre", "center"),
    ("fibre", "fiber"), ("litre", "liter"),
)
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen").split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_NUMBER_WORDS = {word: value for value, word in enumerate(_UNITS)} | _TENS


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: an answer that was never given."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def as_text(value: Any) -> str:
    """The raw text of an answer, option or reference (rule 1)."""
    if is_missing(value):
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


@functools.lru_cache(maxsize=65536)
def american_spelling(word: str) -> str:
    """``word`` with the British fragments of :data:`SPELLING_FRAGMENTS` replaced by their American ones."""
    for british, american in SPELLING_FRAGMENTS:
        if british in word:
            word = word.replace(british, american)
    return word


def _numbers_as_digits(words: list[str]) -> list[str]:
    """Number words zero..one hundred as digits (rule 7); "twenty one" is one number, "one hundred" is 100."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "one" and i + 1 < len(words) and words[i + 1] == "hundred":
            out.append("100")
            i += 2
            continue
        if word in _TENS and i + 1 < len(words) and words[i + 1] in _UNITS[1:10]:
            out.append(str(_TENS[word] + _NUMBER_WORDS[words[i + 1]]))
            i += 2
            continue
        out.append(str(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else word)
        i += 1
    return out


@functools.lru_cache(maxsize=65536)
def _normalise_text(text: str) -> str:
    folded = _POSSESSIVE.sub("", unicodedata.normalize("NFKC", text).casefold())
    words = [american_spelling(word) for word in _spaces_for_punctuation(folded).split() if word not in _ARTICLES]
    return " ".join(_numbers_as_digits(words))


def normalise_answer(text: Any) -> str:
    """Normalise an answer for comparison (rules in the module docstring, versioned by ``NORMALISATION_VERSION``).

    ``"The Left Lung."`` -> ``"left lung"``; ``"Two kidneys"`` -> ``"2 kidneys"``; ``"Oesophageal tumour"`` ->
    ``"esophageal tumor"``; ``"Crohn's"`` -> ``"crohn"``; None/NaN -> ``""``.
    """
    return _normalise_text(as_text(text))


def answer_tokens(text: Any) -> list[str]:
    """The whitespace tokens of :func:`normalise_answer` -- the unit of every token metric and extraction rule."""
    return normalise_answer(text).split()
