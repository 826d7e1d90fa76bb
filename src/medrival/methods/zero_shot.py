"""Zero-shot classification with prompt ensembles: every class description in every template is encoded,
the normalised text embeddings of a class are averaged into one class embedding, and images are scored by
cosine similarity scaled by the model's logit scale (softmax over classes)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import METHODS, MethodSpec, Predictions
from medrival.methods.selection import softmax


@dataclass
class ZeroShotConfig:
    templates: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Prompt templates with one '{}' slot; default: the dataset's own."})
    use_descriptions: bool = field(
        default=True, metadata={"help": "Ensemble the dataset's class descriptions; false uses class names only."})

    def __post_init__(self) -> None:
        if self.templates is not None:
            self.templates = tuple(self.templates)
            bad = [t for t in self.templates if t.count("{}") != 1]
            if bad or not self.templates:
                raise ConfigError(f"zero_shot templates need exactly one '{{}}' slot each; got {bad or '[]'}.")


def class_prompts(info, config: ZeroShotConfig) -> list[list[str]]:
    """The prompts of each class: templates x descriptions (or the class name alone)."""
    templates = config.templates or info.prompt_templates or ("a photo of {}.",)
    prompts = []
    for index, name in enumerate(info.class_names):
        phrases = info.class_descriptions[index] if config.use_descriptions and info.class_descriptions else (name,)
        prompts.append([template.format(phrase) for template in templates for phrase in phrases])
    return prompts


def zero_shot_classifier(model, info, config: ZeroShotConfig | None = None, features=None) -> np.ndarray:
    """Class embeddings (K x D float32, unit rows): the normalised mean of each class's prompt embeddings.

    Shared by zero-shot and by every method that starts from the text classifier (Tip-Adapter, CLIP-Adapter,
    fine-tuning heads), so they all start from exactly the zero-shot decision rule. With ``features`` (the run's
    FeatureCache) the prompts are encoded once per model for all of those cells."""
    rows = []
    for prompts in class_prompts(info, config or ZeroShotConfig()):
        embedded = features.text_embeddings(model, prompts) if features is not None else \
            model.encode_texts(prompts).numpy()
        mean = embedded.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows).astype(np.float32)


def zero_shot_logits(logit_scale: float, image_features: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """Scaled cosine similarities N x K (features and class embeddings are unit-norm)."""
    return logit_scale * image_features @ class_embeddings.T


class ZeroShot:
    def __init__(self, config: ZeroShotConfig):
        self.config = config
        self.class_embeddings: np.ndarray | None = None

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features = model, features
        self.class_embeddings = zero_shot_classifier(model, val.info, self.config, features)

    def predict(self, test) -> Predictions:
        image_features = self.features.image_features(self.model, test)
        logits = zero_shot_logits(self.model.logit_scale, image_features, self.class_embeddings)
        return Predictions(softmax(logits), trainable_parameters=0)


METHODS.register("zero_shot", MethodSpec(
    name="zero_shot", config_class=ZeroShotConfig, build=ZeroShot, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Off-the-shelf: cosine similarity to prompt-ensembled class embeddings; nothing is trained."))
