"""Off-the-shelf diagnosis with a generative model: each class name is scored by its log-likelihood as the
answer to "what is the diagnosis?", so a generative model gets class probabilities and a real AUROC, side by side
with the contrastive models on the same diagnosis datasets.

Scores are summed token log-probabilities; with ``length_normalise`` they are averaged per token instead, which
stops long class names ("pleural effusion") from losing to short ones by length alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError, DataError, MedrivalError
from medrival.methods.base import OFF_THE_SHELF, METHODS, MethodSpec, Predictions
from medrival.methods.generation_cache import cached_option_scores
from medrival.core.prompts import class_option, diagnosis_prompt


@dataclass
class OptionZeroShotConfig:
    batch_size: int = field(default=16, metadata={"help": "Images per scoring batch."})
    length_normalise: bool = field(default=False, metadata={
        "help": "Average the log-probability per option token instead of summing it."})

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}.")
        if not isinstance(self.length_normalise, bool):
            raise ConfigError(f"length_normalise must be true or false, got {self.length_normalise!r}.")


def split_images(split) -> np.ndarray | list[np.ndarray]:
    """Every image of a classification split (decoded now when the split is lazy)."""
    return split.images if not split.lazy else [split.image(i) for i in range(len(split))]


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


TASKS = ("binary", "multiclass")


class OptionZeroShot:
    def __init__(self, config: OptionZeroShotConfig):
        self.config = config
        self.model = None
        self.cache = None  # the run's generation cache (``features.generations``), when it has one

    def fit(self, model, train, val, features=None, seed: int = 0) -> None:
        if not getattr(model, "supports_option_scores", True):
            name = model.card.id if getattr(model, "card", None) is not None else "this model"
            raise MedrivalError(f"option_zero_shot needs the log-likelihood of each class name, but {name} is served "
                                "by an API that returns text only; evaluate it with vqa_zero_shot instead.")
        self.model = model
        self.cache = getattr(features, "generations", None)

    def predict(self, test) -> Predictions:
        if test.info.task.value not in TASKS:  # a softmax over labels is not a multilabel answer
            raise DataError(f"option_zero_shot gives one distribution over the classes (tasks {', '.join(TASKS)}); "
                            f"{test.info.name} is {test.info.task.value}. Use a method that declares that task.")
        options = [class_option(name) for name in test.info.class_names]
        prompts = [diagnosis_prompt(test.info)] * len(test)
        scores = cached_option_scores(self.cache, self.model, split_images(test), prompts, options,
                                      self.config.batch_size)
        if self.config.length_normalise:
            lengths = np.asarray([len(self.model.processor.tokenizer(o, add_special_tokens=False)["input_ids"])
                                  for o in options], dtype=np.float64)
            scores = scores / np.maximum(lengths, 1.0)
        return Predictions(softmax_rows(np.asarray(scores, dtype=np.float64)), trainable_parameters=0)


METHODS.register("option_zero_shot", MethodSpec(
    name="option_zero_shot", config_class=OptionZeroShotConfig, build=OptionZeroShot, families=("generative",),
    tasks=TASKS,
    summary="Off-the-shelf diagnosis by a generative model: the log-likelihood of each class name as the answer "
            "to 'what is the diagnosis?', softmaxed into class probabilities (gives an AUROC).",
    capabilities=OFF_THE_SHELF))
