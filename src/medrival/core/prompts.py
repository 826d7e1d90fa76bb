"""The prompts a generative model is asked with, chosen from what the dataset *declares*, never from the answer.

MedVLMBench picks a question's template from its gold answer (a yes/no template when the reference is yes or no),
which leaks the answer type into the prompt. Here the template depends only on the question's declared
``answer_type`` ("closed" or "open"), so a model is asked exactly what it would be asked in deployment.
Templates are versioned by ``PROMPT_VERSION``: change any wording and bump it (it is stored with every result).
The wrapping into a conversation (roles, image placeholder) is the processor's own chat template.
"""
from __future__ import annotations

from medrival.core.errors import DataError
from medrival.core.types import DatasetInfo

PROMPT_VERSION = "1"
TEMPLATES = {
    "closed": "{question} answer yes or no.",
    "open": "{question} answer with a short phrase.",
}
# Short closed answers need a few tokens; open answers ("left lower lung") a few more.
DEFAULT_MAX_NEW_TOKENS = {"closed": 4, "open": 16}
DIAGNOSIS_TEMPLATE = "what is the diagnosis? answer with one of: {options}."


def vqa_prompt(question: str, answer_type: str) -> str:
    """The user turn for ``question`` under its declared answer type."""
    if answer_type not in TEMPLATES:
        raise DataError(f"answer type {answer_type!r} of question {question!r:.80} is not one of "
                        f"{', '.join(TEMPLATES)}; the dataset must declare each question closed or open.")
    return TEMPLATES[answer_type].format(question=question.strip())


def class_option(name: str) -> str:
    """A class name as a model would say it ("pleural_effusion" -> "pleural effusion")."""
    return name.replace("_", " ").strip()


def diagnosis_prompt(info: DatasetInfo) -> str:
    """One question asking for the diagnosis among the dataset's class names (option order as registered)."""
    return diagnosis_question(info.class_names)


def diagnosis_question(class_names) -> str:
    """The diagnosis question over ``class_names`` (what ``diagnosis_prompt`` asks of a dataset)."""
    return DIAGNOSIS_TEMPLATE.format(options=", ".join(class_option(c) for c in class_names))
