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

The table above is the ``default`` set. ``VQA_TEMPLATE_SETS`` (VQA) and ``CLASS_PROMPT_SETS`` (zero-shot
classification) add alternative wordings, used only when a study asks ``vqa_zero_shot`` / ``zero_shot`` to choose
a set per model on validation or to report the spread of test metrics over sets (``PROMPT_SETS_VERSION``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from medrival.core.errors import ConfigError, DataError
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

# ---------------------------------------------------------------------------------------------- prompt sets
# Alternative wordings for choosing a prompt per model on validation (``prompt_selection: validation``) and for
# measuring how much a verdict depends on the wording (``prompt_sensitivity: K``): Jeong et al. (2024, "The
# Limited Impact of Medical Adaptation") show that picking prompts per model changes generalist-vs-specialist
# verdicts. The first set of each kind is the default above, unchanged, so a study that never asks for selection
# asks exactly what it asked before. Sets are listed in a fixed order (sensitivity uses the first K) and versioned
# by ``PROMPT_SETS_VERSION``: change any alternative wording and bump it (recorded with every cell that used one).
PROMPT_SETS_VERSION = "1"
DEFAULT_PROMPT_SET = "default"
VQA_TEMPLATE_SETS: dict[str, dict[str, str]] = {
    DEFAULT_PROMPT_SET: TEMPLATES,
    "instruct": {
        "yes_no": "{question} please reply with yes or no only.",
        "choice": "{question} choose one of: {options}.",
        "multiple_choice": "{question}\noptions:\n{options}\nreply with the letter of the correct option.",
        "open": "{question} reply in a few words.",
    },
    "qa": {
        "yes_no": "question: {question} (yes or no)\nanswer:",
        "choice": "question: {question} ({options})\nanswer:",
        "multiple_choice": "question: {question}\n{options}\nanswer (letter):",
        "open": "question: {question}\nanswer:",
    },
    "bare": {
        "yes_no": "{question}",
        "choice": "{question} {options}.",
        "multiple_choice": "{question}\n{options}",
        "open": "{question}",
    },
}


def vqa_template_set(name: str) -> dict[str, str]:
    """The per-form templates of the VQA prompt set ``name``."""
    if name not in VQA_TEMPLATE_SETS:
        raise DataError(f"VQA prompt set {name!r} does not exist; the sets are {', '.join(VQA_TEMPLATE_SETS)}.")
    return VQA_TEMPLATE_SETS[name]


@dataclass(frozen=True)
class ClassPromptSet:
    """One zero-shot template set for classification. ``templates`` None: the dataset's own templates (or those a
    study gives); ``{modality}`` reads the dataset's modality with its article ("an x-ray"). ``class_names``:
    fill the templates with the readable class names instead of the dataset's class descriptions."""

    name: str
    templates: tuple[str, ...] | None
    class_names: bool = False


CLASS_PROMPT_SETS: tuple[ClassPromptSet, ...] = (
    ClassPromptSet(DEFAULT_PROMPT_SET, None),
    ClassPromptSet("modality",
                   ("{modality} image showing {}.", "{modality} image of {}.", "{modality} image with {}.")),
    ClassPromptSet("clip_photo", ("a photo of {}.", "an image of {}.", "a picture of {}.", "a close-up photo of {}.")),
    ClassPromptSet("medical", ("a medical image showing {}.", "a medical image of {}.")),
    ClassPromptSet("bare", ("{}",)),
    ClassPromptSet("class_names", None, class_names=True),
    ClassPromptSet("modality_class_names", ("{modality} image showing {}.",), class_names=True),
)
# The modality as a prompt says it, article included; mixed or unknown modalities read "a medical".
_MODALITY_PHRASES = {
    "xray": "an x-ray", "ct": "a CT", "mri": "an MRI", "ultrasound": "an ultrasound", "dermoscopy": "a dermoscopy",
    "fundus": "a fundus", "oct": "an OCT", "pathology": "a histopathology", "endoscopy": "an endoscopy",
    "mammography": "a mammography", "pet": "a PET", "natural": "a natural",
}


def modality_phrase(modality: str) -> str:
    """"xray" -> "an x-ray"; a mixed release ("ct,mri,xray") or an unlisted modality -> "a medical"."""
    words = [word.strip() for word in modality.split(",") if word.strip()]
    return _MODALITY_PHRASES.get(words[0], "a medical") if len(words) == 1 else "a medical"


def class_set_templates(prompt_set: ClassPromptSet, info: DatasetInfo,
                        own_templates: tuple[str, ...]) -> tuple[str, ...]:
    """The templates (one '{}' slot each) of ``prompt_set`` for the dataset ``info``; ``own_templates`` are what
    the default set uses (the study's templates or the dataset's)."""
    if prompt_set.templates is None:
        return own_templates
    phrase = modality_phrase(info.modality)
    return tuple(template.replace("{modality}", phrase) for template in prompt_set.templates)


def lettered_options(options: Sequence[str]) -> list[str]:
    """["A. first", "B. second", ...] for the options in letter order."""
    if len(options) > len(LETTERS):
        raise DataError(f"{len(options)} options, more than the {len(LETTERS)} letters A-{LETTERS[-1]}.")
    return [f"{letter}. {str(text).strip()}" for letter, text in zip(LETTERS, options)]


def vqa_prompt(question: str, form: str, options: Sequence[str] | None = None,
               template_set: str = DEFAULT_PROMPT_SET) -> str:
    """The user turn for ``question`` asked as ``form`` (with its ``options`` for choice and multiple choice), in
    the wording of ``template_set`` (one of ``VQA_TEMPLATE_SETS``; the default is ``TEMPLATES``)."""
    form = _COARSE_FORMS.get(form, form)
    templates = vqa_template_set(template_set)
    if form not in templates:
        raise DataError(f"form {form!r} of question {question!r:.80} is not one of {', '.join(FORMS)}.")
    if form in ("choice", "multiple_choice") and not options:
        raise DataError(f"a {form} question needs its options: {question!r:.80}.")
    listed = ""
    if form == "choice":
        listed = ", ".join(str(option).strip() for option in options)
    elif form == "multiple_choice":
        listed = "\n".join(lettered_options(options))
    return templates[form].format(question=question.strip(), options=listed)


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


# How a method hands each template set's test outputs to the cell runner, which scores them (a method never reads
# test labels); the runner stores the scores in the record's cost under ``PROMPT_SENSITIVITY``.
PROMPT_SET_OUTPUTS = "prompt_set_outputs"
PROMPT_SENSITIVITY = "prompt_sensitivity"
PROMPT_SELECTION = "prompt_selection"
SELECTION_MODES = ("fixed", "validation")


def check_prompt_options(method: str, selection: str, sensitivity: int, n_sets: int) -> None:
    """``prompt_selection`` must be a mode of ``SELECTION_MODES``; ``prompt_sensitivity`` a whole number from 0 (off)
    to the number of template sets."""
    if selection not in SELECTION_MODES:
        raise ConfigError(f"{method} prompt_selection is {selection!r}; expected one of {', '.join(SELECTION_MODES)}. "
                          "Use 'fixed' for the default prompts or 'validation' to pick each model's template set "
                          "on the validation split.")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int) or not 0 <= sensitivity <= n_sets:
        raise ConfigError(f"{method} prompt_sensitivity is {sensitivity!r}; expected a whole number from 0 (off) to "
                          f"{n_sets} (the number of template sets). Set it to how many sets' test metrics to report.")


def prompt_set_texts() -> dict:
    """Every alternative wording, as plain data: what a cell with ``prompt_selection: validation`` or
    ``prompt_sensitivity`` may ask with, so a study can fingerprint it into such cells' ids."""
    return {"version": PROMPT_SETS_VERSION, "vqa": VQA_TEMPLATE_SETS, "modality_phrases": _MODALITY_PHRASES,
            "classification": [[s.name, list(s.templates or ()), s.class_names] for s in CLASS_PROMPT_SETS]}
