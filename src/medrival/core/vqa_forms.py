"""The form of a VQA item -- yes/no, choice, multiple choice or open -- decided from the question and the release.

A form decides the prompt a model is asked with, how its answer is extracted and which metrics score it. It is
decided from what a deployed model would see: the question text and the release's own fields (its declared answer
type, its lettered options). The gold answer is never read here, so no prompt, form or option can leak it.

Forms (``FORMS``)
    ``multiple_choice``  the release gives lettered options (PMC-VQA, OmniMedVQA, MedXpertQA): the item's options
                         are those texts in letter order.
    ``choice``           the question states two or more options itself ("Is this supratentorial or
                         infratentorial?", "Is this axial, coronal or sagittal?", "Which lung, left or right?"):
                         the options are parsed from the question text (:func:`parse_choice_options`).
    ``yes_no``           a question shaped for yes or no (it opens with an auxiliary verb: "Is there ...", "Does
                         the image show ...") that the release calls closed or does not type.
    ``open``             everything else, including a question the release calls closed that is neither yes/no
                         shaped nor states options ("How many ...?"): without options there is nothing to choose
                         from, so it is asked and scored as open.

Choice parsing (versioned by ``FORM_VERSION``; bump it when any rule below changes)
    1. The trailing "?" and context phrases ("in this image", "on the scan", "here") are dropped; the last word
       "or" splits the question. Existence questions ("Is there X or Y?", "Are there any ...") and questions
       opening with do/does/did/has/have/can ("Does the liver show a mass or lesion?") are yes/no questions,
       not choices, and are never parsed.
    2. The right option is what follows "or" without a leading article, cut before a preposition ("normal in
       size" -> "normal"), without trailing words the options share or that go on the sentence ("left or right
       side", "axial or sagittal view", "CT or MRI used"); it must end the question (no verb after it) and have
       at most four words. A right
       option that opens with a preposition keeps it, and so does the first option ("with contrast or without
       contrast").
    3. Options between commas ("axial, coronal, or sagittal") are items of the list. The first option is the
       end of the text before the list: as many words as the longest other option has, stopping at an article,
       pronoun, auxiliary verb, preposition or question word ("Is the lesion in the left or right kidney?" ->
       "left", "right kidney"). After a question word and a comma the head is not an option ("What is the
       modality, CT or MRI?" -> "CT", "MRI").
    4. Two options that are the same once case and punctuation are ignored mean no choice was parsed.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

FORM_VERSION = "1"
FORMS: tuple[str, ...] = ("yes_no", "choice", "multiple_choice", "open")
CLOSED_FORMS: tuple[str, ...] = ("yes_no", "choice", "multiple_choice")
LETTERS: tuple[str, ...] = tuple("ABCDEFGHIJ")

_AUXILIARIES = frozenset({"is", "are", "was", "were", "does", "do", "did", "can", "could", "will", "would",
                          "should", "has", "have", "had", "may", "might", "must", "shall", "isn't", "aren't",
                          "doesn't", "don't", "didn't", "wasn't", "weren't", "can't", "won't"})
_QUESTION_WORDS = frozenset({"what", "which", "where", "who", "whom", "whose", "when", "why", "how"})
_ARTICLES = frozenset({"a", "an", "the"})
_PREPOSITIONS = frozenset({"in", "on", "of", "at", "for", "with", "to", "than", "from", "by", "within", "into",
                           "compared", "relative", "versus", "vs", "without"})
_PRONOUNS = frozenset({"this", "that", "these", "those", "it", "they", "there", "image", "picture", "scan"})
_HEAD_STOPS = _AUXILIARIES | _QUESTION_WORDS | _ARTICLES | _PREPOSITIONS | _PRONOUNS | {"either", "both", "or",
                                                                                         "and", "seen", "shown"}
# Words after the last option that the options share ("left or right side", "axial or sagittal view") or that
# go on the sentence ("CT or MRI used to ..."): not part of the option.
_SHARED_TAILS = frozenset({"side", "sides", "sided", "view", "views", "image", "images", "scan", "scans", "section",
                           "plane", "projection", "film", "sequence", "used", "seen", "shown", "noted", "present",
                           "visible", "taken", "performed", "obtained", "acquired"})
# Yes/no questions opening with these verbs keep "or" inside their finding ("Does the liver show a mass or
# lesion?" is answered yes or no); existence questions too ("Is there X or Y?").
_YES_NO_OPENERS = frozenset({"does", "do", "did", "has", "have", "had", "can", "could", "doesn't", "don't"})
_TRAILING_CONTEXT = re.compile(
    r"\s+(?:(?:in|on|of|within|from)\s+(?:this|the|these)\s+(?:image|images|picture|scan|slide|film|photo|"
    r"photograph|radiograph|study|x-ray|ct|mri)|here|shown|seen|visible|present)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[^\s,;:]+|[,;:]")
_EDGE_PUNCTUATION = " \t\"'`.!?()[]{}"
_MAX_OPTION_WORDS = 4


def _words(text: str) -> list[str]:
    """Words and the separators , ; : as their own tokens (the question's list structure)."""
    return _WORD.findall(text)


def _bare(word: str) -> str:
    return word.strip(_EDGE_PUNCTUATION).lower()


def is_yes_no_shaped(question: str) -> bool:
    """True when the question (or its clause after a leading comma phrase) opens with an auxiliary verb."""
    for clause in (question, question.split(",", 1)[-1]):
        words = [_bare(w) for w in clause.split()]
        if words and words[0] in _AUXILIARIES:
            return True
    return False


def _is_existence_question(words: list[str]) -> bool:
    bare = [_bare(w) for w in words]
    existence = len(bare) >= 2 and bare[0] in {"is", "are", "was", "were"} and bare[1] == "there"
    return existence or "any" in bare or (bool(bare) and bare[0] in _YES_NO_OPENERS)


def _right_option(words: list[str]) -> list[str] | None:
    """The option after "or": articles dropped, cut before a preposition; None when a verb follows it."""
    while words and _bare(words[0]) in _ARTICLES:
        words = words[1:]
    option = []
    for position, word in enumerate(words):
        bare = _bare(word)
        if (bare in _PREPOSITIONS and position > 0) or bare in {",", ";", ":"}:
            break
        if bare in _AUXILIARIES or bare in _QUESTION_WORDS or bare in {"or", "and"}:
            return None  # a clause goes on after the option: "or structure is shown" is no option
        option.append(word)
    while len(option) > 1 and _bare(option[-1]) in _SHARED_TAILS:
        option.pop()
    return option if 0 < len(option) <= _MAX_OPTION_WORDS else None


def _head_option(words: list[str], width: int, prepositional: bool) -> list[str]:
    """Up to ``width`` words from the end of ``words``, stopping at an article, pronoun, verb or preposition; a
    ``prepositional`` right option ("without contrast") takes its preposition along ("with contrast")."""
    option: list[str] = []
    for word in reversed(words):
        bare = _bare(word)
        if len(option) == width or not bare or bare.endswith(("'s", "’s")):  # "the patient's left"
            break
        if bare in _HEAD_STOPS:
            if prepositional and bare in _PREPOSITIONS and option:
                option.insert(0, word)
            break
        option.insert(0, word)
    return option


def _list_items(before: list[str]) -> tuple[list[str], list[list[str]]]:
    """(head words before the comma list, the list's middle items) of the words before "or"."""
    segments: list[list[str]] = [[]]
    for word in before:
        if word in {",", ";", ":"}:
            segments.append([])
        else:
            segments[-1].append(word)
    head, items = segments[0], [segment for segment in segments[1:] if segment]
    return head, items


def _clean(option: list[str]) -> str:
    return " ".join(option).strip(_EDGE_PUNCTUATION + ",;:")


def parse_choice_options(question: Any) -> tuple[str, ...] | None:
    """The options a question states ("Is this CT or MRI?" -> ("CT", "MRI")), or None (rules: module docstring)."""
    if not isinstance(question, str) or " or " not in f" {question.lower()} ":
        return None
    text = _TRAILING_CONTEXT.sub("", question.strip().rstrip("?. ").strip())
    words = _words(text)
    if _is_existence_question(words):
        return None
    split_at = max(i for i, word in enumerate(words) if _bare(word) == "or")
    right = _right_option(words[split_at + 1:])
    before = words[:split_at]
    if right is None or not before:
        return None
    head, items = _list_items(before)
    if any(len(item) > _MAX_OPTION_WORDS for item in items):
        return None
    wh_head = bool(head) and _bare(head[0]) in _QUESTION_WORDS
    prepositional = _bare(right[0]) in _PREPOSITIONS
    width = max([len(right), *(len(item) for item in items)])
    first = [] if (wh_head and items) else _head_option(head, width, prepositional)
    if prepositional and first and _bare(first[0]) not in _PREPOSITIONS:
        right = [w for w in right[1:] if _bare(w) not in _ARTICLES] or right  # "left lung or in the right lung"
    options = [option for option in ([first] if first else []) + items + [right]]
    texts = tuple(_clean(option) for option in options)
    keys = [" ".join(re.sub(r"[^\w]+", " ", t.lower()).split()) for t in texts]
    if len(texts) < 2 or not all(keys) or len(set(keys)) != len(keys):
        return None
    return texts


def _present_options(options: Any) -> tuple[str, ...]:
    return tuple(str(o).strip() for o in options if o is not None and o == o and str(o).strip())


def question_form(question: Any, declared: str | None = None,
                  release_options: Sequence[Any] | None = None) -> tuple[str, tuple[str, ...] | None]:
    """(form, options) of one item from its question, the release's declared answer type ("closed", "open" or
    None when the release has none) and the release's lettered options (None when it gives none).

    The gold answer is not an argument: a form can never depend on it.
    """
    if release_options is not None:
        present = _present_options(release_options)
        if present:
            return "multiple_choice", present
    text = question if isinstance(question, str) else ""
    choice = parse_choice_options(text)
    if choice is not None:
        return "choice", choice
    if declared != "open" and is_yes_no_shaped(text):
        return "yes_no", None
    return "open", None


def item_forms(questions: Sequence[Any], declared: Sequence[str | None] | None = None,
               release_options: Sequence[Sequence[Any] | None] | None = None
               ) -> tuple[list[str], list[tuple[str, ...] | None]]:
    """``question_form`` for every item: (forms, options) lists in item order."""
    n = len(questions)
    declared = list(declared) if declared is not None else [None] * n
    release_options = list(release_options) if release_options is not None else [None] * n
    pairs = [question_form(q, d, o) for q, d, o in zip(questions, declared, release_options)]
    return [form for form, _ in pairs], [options for _, options in pairs]


def closed_or_open(form: str) -> str:
    """The coarse answer type of a form: "closed" for yes/no, choice and multiple choice, else "open"."""
    return "closed" if form in CLOSED_FORMS else "open"
