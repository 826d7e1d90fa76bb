"""The prompts a generative model is asked with: one template per question form, never chosen from the answer.

MedVLMBench picks a question's template from its gold answer (a yes/no template when the reference is yes or no),
which leaks the answer into the prompt. Here the template depends only on the item's form (``core.vqa_forms``:
decided from the question text and the release's fields), so a model is asked what it would be asked in
deployment. Templates are versioned by ``PROMPT_VERSION``: change any wording and bump it (the version is part of
every VQA cell's id). The wrapping into a conversation (roles, image placeholder) is the processor's chat template.

=================  =================================================================  ==========
form               user turn                                                          max tokens
=================  =================================================================  ==========
yes_no             ``{question} answer yes or no.``                                   4
choice             ``{question} answer with one of: {option 1}, {option 2}.``         8
multiple_choice    ``{question}`` then one line per option ``A. {text}``, then        8
                   ``answer with the option's letter.``
open               ``{question} answer with a short phrase.``                         16
=================  =================================================================  ==========

A model fine-tuned on multiple-choice items (``vqa_lora``) is taught the letter plus the option's text ("B.
pneumothorax"), which the extraction rules read as the letter.
"""
from __future__ import annotations

from typing import Sequence

from medrival.core.errors import DataError
from medrival.core.types import DatasetInfo
from medrival.core.vqa_forms import FORMS, LETTERS

PROMPT_VERSION = "2"
TEMPLATES = {
    "yes_no": "{question} answer yes or no.",
    "choice": "{question} answer with one of: {options}.",
    "multiple_choice": "{question}\n{options}\nanswer with the option's letter.",
    "open": "{question} answer with a short phrase.",
}
# Short closed answers need a few tokens; a letter with its option text or an open phrase a few more.
DEFAULT_MAX_NEW_TOKENS = {"yes_no": 4, "choice": 8, "multiple_choice": 8, "open": 16}
DIAGNOSIS_TEMPLATE = "what is the diagnosis? answer with one of: {options}."
_COARSE_FORMS = {"closed": "yes_no"}  # the version-1 answer types, still accepted by vqa_prompt


def lettered_options(options: Sequence[str]) -> list[str]:
    """["A. first", "B. second", ...] for the options in letter order."""
    if len(options) > len(LETTERS):
        raise DataError(f"{len(options)} options, more than the {len(LETTERS)} letters A-{LETTERS[-1]}.")
    return [f"{letter}. {str(text).strip()}" for letter, text in zip(LETTERS, options)]


def vqa_prompt(question: str, form: str, options: Sequence[str] | None = None) -> str:
    """The user turn for ``question`` asked as ``form`` (with its ``options`` for choice and multiple choice)."""
    form = _COARSE_FORMS.get(form, form)
    if form not in TEMPLATES:
        raise DataError(f"form {form!r} of question {question!r:.80} is not one of {', '.join(FORMS)}.")
    if form in ("choice", "multiple_choice") and not options:
        raise DataError(f"a {form} question needs its options: {question!r:.80}.")
    listed = ""
    if form == "choice":
        listed = ", ".join(str(option).strip() for option in options)
    elif form == "multiple_choice":
        listed = "\n".join(lettered_options(options))
    return TEMPLATES[form].format(question=question.strip(), options=listed)


def training_answer(answer: str, form: str, options: Sequence[str] | None = None) -> str:
    """The target a model is fine-tuned on: the answer itself, or for multiple choice "B. option text" (the gold
    may be given as a letter or as the option's text)."""
    if form != "multiple_choice":
        return str(answer)
    texts = [str(option).strip() for option in options or ()]
    gold = str(answer).strip().strip("().: ")
    if len(gold) == 1 and gold.upper() in LETTERS[:len(texts)]:
        index = LETTERS.index(gold.upper())
    else:
        lowered = [text.casefold() for text in texts]
        if gold.casefold() not in lowered:
            raise DataError(f"the multiple-choice answer {answer!r} is neither a letter nor one of the options "
                            f"{texts!r}.")
        index = lowered.index(gold.casefold())
    return f"{LETTERS[index]}. {texts[index]}"


def class_option(name: str) -> str:
    """A class name as a model would say it ("pleural_effusion" -> "pleural effusion")."""
    return name.replace("_", " ").strip()


def diagnosis_prompt(info: DatasetInfo) -> str:
    """One question asking for the diagnosis among the dataset's class names (option order as registered)."""
    return diagnosis_question(info.class_names)


def diagnosis_question(class_names) -> str:
    """The diagnosis question over ``class_names`` (what ``diagnosis_prompt`` asks of a dataset)."""
    return DIAGNOSIS_TEMPLATE.format(options=", ".join(class_option(c) for c in class_names))
