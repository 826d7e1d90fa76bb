"""Off-the-shelf VQA with a generative model: ask every question with its declared answer type's prompt.

Prompt sets (``medrival.core.prompts.VQA_TEMPLATE_SETS``: per-form wordings, the first is the default).
``prompt_selection: validation`` answers the validation questions with every set, scores them with
``medrival.metrics.vqa.score_answers`` (the one scoring path) and asks test with the set of best closed accuracy
(open token F1 when validation has no closed question; ties to the earlier set). ``prompt_sensitivity: K`` also
answers test with the first K sets and hands those answers to the cell runner, which scores them (a spread for
the report, never used to choose).

Cost: generation dominates, and it multiplies. Selection generates the validation split once per set (4 sets:
4 x |val| answers) and sensitivity the test split once per further set (up to K - 1 more x |test|, the chosen
set's answers are reused). Both are off by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from medrival.core.prompts import (
    DEFAULT_PROMPT_SET, PROMPT_SELECTION, PROMPT_SET_OUTPUTS, PROMPT_SETS_VERSION, VQA_TEMPLATE_SETS,
    check_prompt_options,
)
from medrival.methods.base import OFF_THE_SHELF, METHODS, MethodSpec
from medrival.methods.selection import best_index, json_score
from medrival.methods.vqa_answers import VQAGenerationConfig, VQAOutput, answer_questions

VQA_SET_NAMES = tuple(VQA_TEMPLATE_SETS)


@dataclass
class VQAZeroShotConfig(VQAGenerationConfig):
    prompt_selection: str = field(default="fixed", metadata={
        "help": "'fixed': the default prompts; 'validation': each model asks test with the prompt set of its best "
                "validation closed accuracy among medrival.core.prompts.VQA_TEMPLATE_SETS (generates the "
                "validation split once per set)."})
    prompt_sensitivity: int = field(default=0, metadata={
        "help": "K > 0: also answer test with the first K prompt sets and record each set's test metrics (the "
                "report's prompt-sensitivity table; never used to choose); multiplies test generation by up to K. "
                "0: off."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_prompt_options("vqa_zero_shot", self.prompt_selection, self.prompt_sensitivity, len(VQA_SET_NAMES))


def validation_score(split, output: VQAOutput) -> float:
    """Closed accuracy of ``output`` on a validation split (open token F1 when it has no closed question); -inf
    when neither is defined, so such a set is never preferred."""
    from medrival.metrics.vqa import score_answers

    scores = score_answers(output.responses, split.answers, split.forms, split.options, questions=split.questions,
                           item_ids=split.ids.astype(str).tolist(), source=split.info.name)
    for metric in ("closed_accuracy", "open_token_f1"):
        value = float(np.nanmean(scores[metric])) if scores[metric].notna().any() else float("nan")
        if np.isfinite(value):
            return value
    return -np.inf


class VQAZeroShot:
    """Nothing is trained: ``fit`` keeps the model and, with ``prompt_selection: validation``, picks its prompt
    set on the validation questions."""

    def __init__(self, config: VQAZeroShotConfig):
        self.config = config
        self.model = None
        self.cache = None  # the run's generation cache (``features.generations``), when it has one
        self.prompt_set = DEFAULT_PROMPT_SET
        self.selection: dict | None = None  # what was chosen and why, for the record (None: default options)

    def fit(self, model, train, val, features=None, seed: int = 0) -> None:
        self.model = model
        self.cache = getattr(features, "generations", None)
        scores = {}
        if self.config.prompt_selection == "validation":
            scores = {name: validation_score(val, answer_questions(model, val, self.config, name, self.cache))
                      for name in VQA_SET_NAMES}
            self.prompt_set = VQA_SET_NAMES[best_index(list(scores.values()))]
        if self.config.prompt_selection != "fixed" or self.config.prompt_sensitivity:
            self.selection = {"mode": self.config.prompt_selection, "chosen": self.prompt_set,
                              "metric": "closed_accuracy",
                              "validation": {name: json_score(score) for name, score in scores.items()},
                              "sets_version": PROMPT_SETS_VERSION}

    def predict(self, test) -> VQAOutput:
        output = answer_questions(self.model, test, self.config, self.prompt_set, self.cache)
        if self.selection is not None:
            output.extras[PROMPT_SELECTION] = dict(self.selection)
        if self.config.prompt_sensitivity:  # scored by the cell runner, which owns the test answers
            output.extras[PROMPT_SET_OUTPUTS] = {
                name: replace(output, extras={}) if name == self.prompt_set
                else answer_questions(self.model, test, self.config, name, self.cache)
                for name in VQA_SET_NAMES[:self.config.prompt_sensitivity]}
        return output


METHODS.register("vqa_zero_shot", MethodSpec(
    name="vqa_zero_shot", config_class=VQAZeroShotConfig, build=VQAZeroShot, families=("generative",),
    tasks=("vqa",),
    summary="Off-the-shelf VQA: batched greedy generation with a prompt chosen by the question's declared answer "
            "type (closed questions also get yes/no option scores); optionally picks each model's prompt set on "
            "validation and reports the test spread over prompt sets.",
    capabilities=replace(OFF_THE_SHELF, prompt_selection=True)))
