"""What every adaptation method is: a config dataclass, fit/predict, and a registry entry saying which model
families and tasks it supports (peft's tuner layout: config + implementation + register call)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from medrival.core.errors import ConfigProblems, DataError
from medrival.core.registry import Registry
from medrival.core.types import TaskKind
from medrival.methods.options import option_problems, own_words, render_problems


@dataclass
class Predictions:
    """Per-sample outputs of a classification method: class probabilities (N x K) for the split's examples."""

    probabilities: np.ndarray
    trainable_parameters: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. the chosen regularisation


@dataclass(frozen=True)
class Capabilities:
    """What a method is, declared once and read by the planner, the research questions and the report.

    ``off_the_shelf``: the model is used as released, nothing is learned from the dataset (the baseline arm of
    every research question). ``uses_labels``: the method reads training labels, so its result depends on the
    label budget (an off-the-shelf method runs once and is the baseline of every budget). ``trains_encoder``:
    the method changes the model's own weights (LoRA, full fine-tuning), not only a head or cache on frozen
    features. ``prompt_selection``: the method accepts ``prompt_selection``/``prompt_sensitivity``."""

    off_the_shelf: bool
    uses_labels: bool
    trains_encoder: bool = False
    prompt_selection: bool = False

    def __post_init__(self):
        if self.off_the_shelf and (self.uses_labels or self.trains_encoder):
            raise ValueError("an off-the-shelf method neither reads training labels nor trains the encoder")


OFF_THE_SHELF = Capabilities(off_the_shelf=True, uses_labels=False)
ON_FROZEN_FEATURES = Capabilities(off_the_shelf=False, uses_labels=True)
TRAINS_ENCODER = Capabilities(off_the_shelf=False, uses_labels=True, trains_encoder=True)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_class: type
    build: Callable[[Any], Any]  # config -> method instance with fit(model, train, val, seed) / predict(test)
    families: tuple[str, ...]
    tasks: tuple[str, ...]
    summary: str
    capabilities: Capabilities = ON_FROZEN_FEATURES

    def make_config(self, values: dict[str, Any]):
        """Validate user values against the config dataclass and build it.

        Every problem is reported at once (``ConfigProblems``, one entry per option): unknown options with a
        did-you-mean, then each known option's type (a strict pydantic check) and range (the config's own
        checks), so ``{rnak: 8, epochs: -1}`` names both."""
        problems = option_problems(self.name, self.config_class, values)
        if not problems:
            try:
                return self.config_class(**values)
            except (TypeError, ValueError) as error:  # a rule across options (each one alone was fine)
                problems = [((), own_words(str(error)))]
        raise ConfigProblems(render_problems(self.name, self.config_class, problems), problems)

    def normalised_config(self, values: dict[str, Any]) -> dict[str, Any]:
        """All options with defaults filled in, so a default written explicitly gives the same cell id."""
        return dataclasses.asdict(self.make_config(values))

    def check_supports(self, family: str, task: str) -> str | None:
        """None when the method can run this (family, task); else a sentence saying why not."""
        if family not in self.families:
            return f"method {self.name!r} supports {'/'.join(self.families)} models, not {family} ones"
        if task not in self.tasks:
            return f"method {self.name!r} supports {'/'.join(self.tasks)} tasks, not {task}"
        return None


METHODS: Registry[MethodSpec] = Registry("method")


def capabilities_of(method: str) -> Capabilities:
    """The declared capabilities of a registered method (unknown names suggest close ones)."""
    return METHODS.get(method).capabilities


def is_off_the_shelf(method: str) -> bool:
    """True for a method that uses the model as released (zero_shot, vqa_zero_shot, option_zero_shot, ...)."""
    return capabilities_of(method).off_the_shelf


def help_of(config_class: type) -> dict[str, str]:
    """Field name -> help text, from ``field(metadata={"help": ...})``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(config_class)}


def is_multilabel(split) -> bool:
    """True for a split whose examples carry several independent 0/1 labels (N x L targets)."""
    return split.info.task is TaskKind.MULTILABEL


def multilabel_targets(split) -> np.ndarray:
    """The split's N x L 0/1 target matrix as int64, checked against its class names."""
    labels = np.asarray(split.labels)
    expected = (len(split), split.info.num_classes)
    if labels.shape != expected or (labels.size and not np.isin(labels, (0, 1)).all()):
        raise DataError(f"{split.info.name}/{split.split} is multilabel, so its labels must be a 0/1 matrix of shape "
                        f"{expected} (examples x labels {', '.join(split.info.class_names)}); got {labels.dtype} "
                        f"{labels.shape}. Check the dataset's label columns.")
    return labels.astype(np.int64)
