"""Off-the-shelf VQA with a generative model: ask every question with its declared answer type's prompt."""
from __future__ import annotations

from dataclasses import dataclass

from medrival.methods.base import OFF_THE_SHELF, METHODS, MethodSpec
from medrival.methods.vqa_answers import VQAGenerationConfig, VQAOutput, answer_questions


@dataclass
class VQAZeroShotConfig(VQAGenerationConfig):
    pass


class VQAZeroShot:
    """Nothing is trained: ``fit`` only keeps the model."""

    def __init__(self, config: VQAZeroShotConfig):
        self.config = config
        self.model = None

    def fit(self, model, train, val, features=None, seed: int = 0) -> None:
        self.model = model

    def predict(self, test) -> VQAOutput:
        return answer_questions(self.model, test, self.config)


METHODS.register("vqa_zero_shot", MethodSpec(
    name="vqa_zero_shot", config_class=VQAZeroShotConfig, build=VQAZeroShot, families=("generative",),
    tasks=("vqa",),
    summary="Off-the-shelf VQA: batched greedy generation with a prompt chosen by the question's declared answer "
            "type (closed questions also get yes/no option scores).",
    capabilities=OFF_THE_SHELF))
