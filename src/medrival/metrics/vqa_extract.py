"""What a free-text answer commits to, per question form: yes/no, one of the stated options, or a letter.

An answer the rules cannot decide gives None ("undecided"): it scores as wrong and is counted in the cell's
``undecided_rate``; an optional answer extractor (an LLM) may decide those items only. The rules are versioned by
``EXTRACTION_VERSION``, which is part of every VQA cell's id. The README has a table of examples.

Before any rule (all forms)
    - Reasoning blocks (``<think>...</think>``, ``<thinking>``, ``<reasoning>``, ``<reflection>``) are removed; text
      after a lone closing tag is the answer; an unclosed opening tag (a truncated reasoning trace) leaves only what
      came before it. The raw answer is stored untouched.
    - When the answer says "final answer is ..." / "final answer: ...", what follows the last such phrase is the
      answer. A leading "Answer:" / "The answer is" is dropped.

yes/no (:func:`extract_yes_no`), first rule that applies
    1. Instruction echoes ("Yes/No", "yes or no", "yes and no", "no or yes") -> undecided.
    2. A leading commitment wins: yes, yep, yeah, correct, affirmative, indeed, true, positive, present,
       absolutely/certainly/definitely -> yes; no, nope, nah, negative, absent, none, false, never, not,
       certainly/absolutely/definitely not -> no. Leading hedges ("not sure", "no idea", "not possible") are not
       commitments.
    3. A hedge anywhere ("cannot determine", "it is not clear whether", "unable to", "uncertain", "possibly",
       "maybe", "difficult to say", "can't tell") -> undecided.
    4. A bare "yes" or "no" standing as an answer ("Looking at the film, no.") -> that answer, when only one of
       the two stands so.
    5. A restatement of what the question asks: the question's finding is its words up to the first preposition
       that follows one, question words, auxiliaries, pronouns and image words dropped ("granulomas" in "Are there
       granulomas in this lymph node?"; "hip dislocation" in "Is there a hip dislocation?"), and its head is the
       finding's last word. The first clause (sentences split at . ; : ! ? , and "but", "however", "although")
       that names the head is "no" when negated before the finding's last word or within three words after it
       (no, not, n't, without, absent, negative, none, neither, nor, never, lacks, excluded; "free of", "ruled
       out"; "abnormal" for an asked "normal") and "yes" otherwise. An answer that restates a different finding
       never names the head and stays undecided.

choice and multiple choice (:func:`extract_option`)
    1. Multiple choice: a letter -- the whole answer ("B", "(B)"), a leading "B." / "B)" / "(B)" / "B:", or "answer
       is B", "Answer: (C)", "option D". "A" and "I" are words as well as letters, so they count only in brackets
       or followed by punctuation ("A. Pneumothorax" is A; "A large mass..." is not). Letters outside the item's
       options are ignored; two different letters are undecided.
    2. Else the text of an option as whole words (normalised: "2" and "two" agree): an option the answer starts
       with wins (the longest, when several do); else the only option mentioned. A mention right after "not",
       "no", "non" or "than" does not count ("not supratentorial"), nor one inside a longer option's mention.
       A multi-word option also matches by its first words when no other option starts with them ("right" for
       "right kidney" when the question asked "left or right kidney"; "T2" for "T2 weighted MRI" beside "T1
       weighted").
    3. Else (no option, or several) -> undecided.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

from medrival.core.errors import DataError
from medrival.core.vqa_forms import LETTERS
from medrival.metrics.vqa_text import answer_tokens, as_text, normalise_answer

EXTRACTION_VERSION = "1"

_REASONING_BLOCK = re.compile(r"<(think|thinking|reasoning|reflection)>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_CLOSING_TAG = re.compile(r"</(?:think|thinking|reasoning|reflection)\s*>", re.IGNORECASE)
_OPENING_TAG = re.compile(r"<(?:think|thinking|reasoning|reflection)>", re.IGNORECASE)
_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is|:|-)\s*", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^\W*(?:(?:the|my)\s+)?(?:correct\s+)?answer\s*(?:is|:|-)\s*", re.IGNORECASE)
_ECHO = re.compile(r"^\W*(?:yes\s*(?:/|\bor\b|\band\b|,)?\s*no|no\s*(?:/|\bor\b)\s*yes)\W*(?:$|\bor\b)",
                   re.IGNORECASE)
_CLAUSES = re.compile(r"[.;:!?,\n]+|\b(?:but|however|although|though|whereas)\b", re.IGNORECASE)

_YES_LEADS = frozenset({"yes", "yep", "yeah", "yup", "correct", "affirmative", "indeed", "true", "positive",
                        "present", "absolutely", "certainly", "definitely"})
_NO_LEADS = frozenset({"no", "nope", "nah", "negative", "absent", "none", "false", "never", "not", "incorrect"})
_EMPHATIC = frozenset({"absolutely", "certainly", "definitely"})
_HEDGES = tuple(phrase.split() for phrase in (
    "cannot", "can not", "can t", "unable", "not possible", "impossible", "not clear", "unclear", "uncertain",
    "not certain", "not sure", "unsure", "difficult to", "hard to", "indeterminate", "inconclusive", "possibly",
    "maybe", "may be", "might", "could be", "perhaps", "don t know", "do not know", "no idea",
    "insufficient", "not enough", "equivocal", "not able", "undetermined", "cannot be determined", "yes or no",
    "yes and no", "no or yes"))
_NEGATIONS = frozenset({"no", "not", "without", "absent", "negative", "none", "neither", "nor", "never", "t",
                        "nothing", "cannot", "lacks", "lack", "excluded"})
_NEGATION_PAIRS = (("free", "of"), ("ruled", "out"), ("rule", "out"))
_ANTONYMS = {"normal": "abnormal", "regular": "irregular", "symmetric": "asymmetric",
             "symmetrical": "asymmetrical", "remarkable": "unremarkable"}
_NOT_FINDING = frozenset("""
is are was were does do did can could will would should has have had may might must shall be been being there
this that these those it its they them image images picture scan film photo photograph slide study radiograph
view shown show shows showing see seen visible present evidence any sign signs of in on at to for with from by
here what which where how who patient noted demonstrate demonstrated demonstrates identified identify appear
appears appearing contain contains containing depicted depict depicts observed observe visualized visualised
region area part we you i there s
""".split())
_LOCATORS = frozenset({"in", "on", "at", "of", "within", "after", "before", "during", "near", "along", "around",
                       "through", "under", "over", "above", "below", "between", "from", "to", "into", "involving"})
_NEGATORS_BEFORE_OPTION = frozenset({"not", "no", "non", "than"})
_LETTER_LIST = re.compile(r"(?<![A-Za-z])\(?([A-J])\)?\s*(?:,|/|\bor\b|\band\b)\s*\(?([A-J])\)?(?![A-Za-z])")
_LETTER_ANYWHERE = re.compile(r"(?<![A-Za-z])[\(\[]([A-J])[\)\]]")


# ---------------------------------------------------------------------------------------------------- answer text


def strip_reasoning(response: Any) -> str:
    """The answer part of ``response``: reasoning blocks removed, the text after "final answer" when stated."""
    text = _REASONING_BLOCK.sub(" ", as_text(response))
    closings = list(_CLOSING_TAG.finditer(text))
    if closings:
        text = text[closings[-1].end():]
    opening = _OPENING_TAG.search(text)
    if opening:
        text = text[:opening.start()]
    finals = list(_FINAL_ANSWER.finditer(text))
    if finals:
        text = text[finals[-1].end():]
    return _ANSWER_PREFIX.sub("", text.strip(), count=1).strip()


def _contains(tokens: list[str], phrase: list[str]) -> bool:
    width = len(phrase)
    return any(tokens[i:i + width] == phrase for i in range(len(tokens) - width + 1))


def _not_determinable(tokens: list[str]) -> bool:
    """"not determinable", "not determined": a hedge whatever the word's ending."""
    return any(a == "not" and b.startswith("determin") for a, b in zip(tokens, tokens[1:]))


def _has_hedge(tokens: list[str]) -> bool:
    return any(_contains(tokens, phrase) for phrase in _HEDGES) or _not_determinable(tokens)


# ----------------------------------------------------------------------------------------------------------- yes/no


def _leading_commitment(tokens: list[str]) -> str | None:
    if not tokens or _starts_with_hedge(tokens):
        return None
    first = tokens[0]
    if first in _EMPHATIC:
        return "no" if tokens[1:2] == ["not"] else "yes"
    if first in _NO_LEADS:
        return "no"
    return "yes" if first in _YES_LEADS else None


def _starts_with_hedge(tokens: list[str]) -> bool:
    return any(tokens[:len(phrase)] == phrase for phrase in _HEDGES) or _not_determinable(tokens[:2])


def _standalone_yes_no(text: str) -> str | None:
    found = {match.lower() for match in re.findall(r"\b(yes|no)\b\s*(?=[.,;!]|$)", text, re.IGNORECASE)}
    return found.pop() if len(found) == 1 else None


def finding_words(question: Any) -> list[str]:
    """The words naming what ``question`` asks about: its words up to the first preposition that follows one
    (the finding, not its location: "granulomas" in "Are there granulomas in this lymph node?"), question,
    verb, pronoun and image words dropped."""
    words = [word for word in answer_tokens(question) if word not in _NOT_FINDING or word in _LOCATORS]
    core: list[str] = []
    for word in words:
        if word in _LOCATORS:
            if core:
                break
            continue
        core.append(word)
    return core


def _clauses(text: str) -> list[list[str]]:
    return [tokens for part in _CLAUSES.split(text) if (tokens := answer_tokens(part))]


def _negated_near(tokens: list[str], last: int, finding: list[str]) -> bool:
    """A negation in the clause before the finding's last word, or within three words after it ("X is not
    seen"), "free of", "ruled out", or the antonym of an asked "normal"."""
    if any(token in _NEGATIONS for token in tokens[:last]) or any(
            token in _NEGATIONS for token in tokens[last + 1:last + 4]):
        return True
    if any(tokens[i:i + 2] == list(pair) for pair in _NEGATION_PAIRS for i in range(len(tokens) - 1)):
        return True
    return any(asked in finding and opposite in tokens and asked not in tokens
               for asked, opposite in _ANTONYMS.items())


def _restatement(text: str, question: Any) -> str | None:
    """yes/no from the first clause that names the asked finding's head word (the last word of the finding)."""
    finding = finding_words(question)
    if not finding:
        return None
    head = finding[-1]
    names_head = {head, _ANTONYMS.get(head, head)}
    for tokens in _clauses(text):
        present = [i for i, token in enumerate(tokens) if token in finding or token in names_head]
        if any(tokens[i] in names_head for i in present):
            return "no" if _negated_near(tokens, present[-1], finding) else "yes"
    return None


def extract_yes_no(response: Any, question: Any = None) -> str | None:
    """"yes", "no" or None (undecided) for an answer to a yes/no question (rules: module docstring)."""
    text = strip_reasoning(response)
    if not text or _ECHO.search(text):
        return None
    tokens = answer_tokens(text)
    leading = _leading_commitment(tokens)
    if leading is not None:
        return leading
    if _has_hedge(tokens):
        return None
    standalone = _standalone_yes_no(text)
    if standalone is not None:
        return standalone
    return _restatement(text, question) if question is not None else None


# --------------------------------------------------------------------------------------------- options and letters


def _option_key(option: Any) -> str:
    """An option's normalised text; an option that normalises to nothing (the option "A", an article) keeps its
    casefolded text, so options that are themselves letters stay distinguishable."""
    return normalise_answer(option) or " ".join(as_text(option).casefold().split())


def normalised_options(options: Sequence[Any]) -> tuple[str, ...]:
    """The options normalised, validated: none empty, no two alike (a DataError names the clash)."""
    present = [option for option in options if as_text(option).strip()]
    normalised = tuple(_option_key(option) for option in present)
    if not normalised:
        raise DataError(f"options {tuple(options)!r} has no option; give the candidate answers.")
    if not all(normalised):
        empty = [option for option, norm in zip(present, normalised) if not norm]
        raise DataError(f"option(s) {', '.join(map(repr, empty))} of {tuple(options)!r} are empty; give the "
                        "options' texts.")
    if len(set(normalised)) != len(normalised):
        raise DataError(f"options {tuple(options)!r} contain duplicates after normalisation {normalised!r}; each "
                        "option must be distinguishable.")
    return normalised


def _aliases(options: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Each option's token sequences: itself, plus each of its leading parts that no other option starts with
    ("right" for "right kidney" beside "left"; "t2" for "t2 weighted mri" beside "t1 weighted")."""
    words = {option: tuple(option.split()) for option in options}
    aliases = {}
    for option, tokens in words.items():
        forms = [tokens]
        for width in range(len(tokens) - 1, 0, -1):
            short = tokens[:width]
            if any(other != option and other_tokens[:width] == short for other, other_tokens in words.items()):
                break
            forms.append(short)
        aliases[option] = forms
    return aliases


def _mentions(tokens: list[str], aliases: dict[str, list[tuple[str, ...]]]) -> list[tuple[int, int, str]]:
    spans = []
    for option, forms in aliases.items():
        for form in forms:
            width = len(form)
            spans += [(i, i + width, option) for i in range(len(tokens) - width + 1)
                      if tuple(tokens[i:i + width]) == form]
    return spans


def _option_by_text(text: str, options: tuple[str, ...]) -> str | None:
    tokens = answer_tokens(text)
    if not tokens:
        return None
    spans = _mentions(tokens, _aliases(options))
    counted = {option for start, end, option in spans
               if not (start > 0 and tokens[start - 1] in _NEGATORS_BEFORE_OPTION)
               and not any(s <= start and end <= e and e - s > end - start for s, e, _ in spans)}
    return counted.pop() if len(counted) == 1 else None


def _letter_pattern_hits(text: str, letters: str) -> set[str]:
    """Letters named by the whole answer, a leading marker or an "answer is X" / "option X" phrase."""
    bare = r"(?:[B-HJ]\b|[AI](?=\s*(?:$|[.):\],;])))"  # "A"/"I" are words too: only with punctuation
    keyword = r"(?i:\b(?:answer|option|choice))(?:\s+(?i:is)|\s*[:\-])?\s*(?:(?i:option)\s+)?"
    patterns = (r"^\W*[\(\[]?([A-Ja-j])[\)\]]?\W*$",
                rf"^\s*[\(\[]([A-J])[\)\]]", rf"^\s*([A-J])\s*[.):\]](?:\s|$)", rf"^\s*({bare})",
                rf"{keyword}[\(\[]([A-J])[\)\]]", rf"{keyword}({bare})")
    hits = set()
    for pattern in patterns:
        hits |= {match.strip().upper() for match in re.findall(pattern, text)}
    for pair in _LETTER_LIST.findall(text):  # "B, C", "C or D", "A and B": a list of letters is no choice
        hits |= set(pair)
    return {hit for hit in hits if hit in letters}


def extract_letter(response: Any, n_options: int) -> str | None:
    """The option letter an answer names (A.. for ``n_options`` options), or None; see the module docstring."""
    return _letter_in(strip_reasoning(response), n_options)


def _letter_in(text: str, n_options: int) -> str | None:
    """``extract_letter`` on an answer whose reasoning blocks are already stripped."""
    letters = "".join(LETTERS[:n_options])
    hits = _letter_pattern_hits(text, letters)
    if not hits:
        hits = {letter for letter in _LETTER_ANYWHERE.findall(text) if letter in letters}
    return hits.pop() if len(hits) == 1 else None


def extract_option(response: Any, options: Sequence[Any], lettered: bool = False) -> str | None:
    """The option ``response`` commits to: its normalised text, or with ``lettered`` its letter; None if undecided."""
    normalised = normalised_options(options)
    text = strip_reasoning(response)
    if lettered:
        letter = _letter_in(text, len(normalised))
        if letter is not None:
            return letter
    chosen = _option_by_text(text, normalised)
    if chosen is None:
        return None
    return LETTERS[normalised.index(chosen)] if lettered else chosen


def extract_answer(response: Any, form: str, options: Sequence[Any] | None = None,
                   question: Any = None) -> str | None:
    """The committed answer of ``response`` under ``form``: "yes"/"no", an option's normalised text, a letter
    (multiple choice), or None when undecided. Open answers are not extracted (their text is scored)."""
    if form == "yes_no":
        return extract_yes_no(response, question)
    if form in ("choice", "multiple_choice"):
        if not options:
            raise DataError(f"a {form} item needs its options, got {options!r}.")
        return extract_option(response, options, lettered=form == "multiple_choice")
    raise DataError(f"answers are extracted for yes_no, choice and multiple_choice items, not {form!r}.")
