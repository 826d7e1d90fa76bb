"""Zero-shot classification with prompt ensembles: every class description in every template is encoded,
the normalised text embeddings of a class are averaged into one class embedding, and images are scored by
cosine similarity scaled by the model's logit scale (softmax over classes).

Multilabel tasks (several findings per image) score every label on its own, as CheXzero does (Tiu et al., Nat.
Biomed. Eng. 2022): label j has a positive prompt set (the templates filled with its descriptions, exactly as a
class above) and a negative prompt set (the templates filled with "no <description>", a leading "a"/"an" dropped
so "a large lesion" reads "no large lesion"); each set is ensembled into one unit embedding, and

    p(label j | image) = softmax([s * cos(image, pos_j), s * cos(image, neg_j)])[0]
                       = sigmoid(s * (cos(image, pos_j) - cos(image, neg_j)))

with s the model's logit scale. The L probabilities are independent (rows need not sum to 1)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import OFF_THE_SHELF, METHODS, MethodSpec, Predictions, is_multilabel
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


def _prompt_material(info, config: ZeroShotConfig) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(templates, phrases of each class): the descriptions, or the class name alone."""
    templates = config.templates or info.prompt_templates or ("a photo of {}.",)
    phrases = [info.class_descriptions[index] if config.use_descriptions and info.class_descriptions else (name,)
               for index, name in enumerate(info.class_names)]
    return templates, phrases


def class_prompts(info, config: ZeroShotConfig) -> list[list[str]]:
    """The prompts of each class: templates x descriptions (or the class name alone)."""
    templates, phrases_of = _prompt_material(info, config)
    return [[template.format(phrase) for template in templates for phrase in phrases] for phrases in phrases_of]


_ARTICLES = ("a ", "an ")


def _negated(phrase: str) -> str:
    """The negation "no <phrase>", a leading indefinite article dropped ("an effusion" -> "no effusion")."""
    lowered = phrase.lower()
    article = next((a for a in _ARTICLES if lowered.startswith(a)), "")
    return f"no {phrase[len(article):]}"


def multilabel_prompts(info, config: ZeroShotConfig) -> list[tuple[list[str], list[str]]]:
    """(positive prompts, negative prompts) of each label: the positives are ``class_prompts``; the negatives fill
    the same templates with the negated descriptions (CheXzero's "{finding}" / "no {finding}" pair)."""
    templates, phrases_of = _prompt_material(info, config)
    return [([template.format(phrase) for template in templates for phrase in phrases],
             [template.format(_negated(phrase)) for template in templates for phrase in phrases])
            for phrases in phrases_of]


def prompt_set_embedding(model, prompts: list[str], features=None) -> np.ndarray:
    """The normalised mean of a prompt set's embeddings (one unit vector, D)."""
    embedded = features.text_embeddings(model, prompts) if features is not None else \
        model.encode_texts(prompts).numpy()
    mean = embedded.mean(axis=0)
    return mean / np.linalg.norm(mean)


def zero_shot_classifier(model, info, config: ZeroShotConfig | None = None, features=None) -> np.ndarray:
    """Class embeddings (K x D float32, unit rows): the normalised mean of each class's prompt embeddings.

    Shared by zero-shot and by every method that starts from the text classifier (Tip-Adapter, CLIP-Adapter,
    fine-tuning heads), so they all start from exactly the zero-shot decision rule. With ``features`` (the run's
    FeatureCache) the prompts are encoded once per model for all of those cells."""
    rows = [prompt_set_embedding(model, prompts, features)
            for prompts in class_prompts(info, config or ZeroShotConfig())]
    return np.stack(rows).astype(np.float32)


def multilabel_classifier(model, info, config: ZeroShotConfig | None = None,
                          features=None) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) label embeddings, each L x D float32 with unit rows (see the module docstring)."""
    pairs = multilabel_prompts(info, config or ZeroShotConfig())
    positive = np.stack([prompt_set_embedding(model, pos, features) for pos, _ in pairs]).astype(np.float32)
    negative = np.stack([prompt_set_embedding(model, neg, features) for _, neg in pairs]).astype(np.float32)
    return positive, negative


def multilabel_probabilities(logit_scale: float, image_features: np.ndarray, positive: np.ndarray,
                             negative: np.ndarray) -> np.ndarray:
    """Independent label probabilities N x L: the 2-way softmax of the scaled similarities to each label's
    positive and negative embedding, computed as the equivalent sigmoid of their difference; tanh keeps it
    finite for any margin, where exp would overflow. Float64 throughout: the logit scale (~100) would magnify
    float32 rounding of the similarities into the probabilities."""
    image_features = image_features.astype(np.float64)
    margin = logit_scale * (image_features @ positive.astype(np.float64).T
                            - image_features @ negative.astype(np.float64).T)
    return 0.5 * (1.0 + np.tanh(0.5 * margin))


def zero_shot_logits(logit_scale: float, image_features: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """Scaled cosine similarities N x K (features and class embeddings are unit-norm)."""
    return logit_scale * image_features @ class_embeddings.T


class ZeroShot:
    def __init__(self, config: ZeroShotConfig):
        self.config = config
        self.class_embeddings: np.ndarray | None = None
        self.label_embeddings: tuple[np.ndarray, np.ndarray] | None = None  # multilabel: (positive, negative)
        self.multilabel = False

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features = model, features
        self.multilabel = is_multilabel(val)
        if self.multilabel:
            self.label_embeddings = multilabel_classifier(model, val.info, self.config, features)
        else:
            self.class_embeddings = zero_shot_classifier(model, val.info, self.config, features)

    def predict(self, test) -> Predictions:
        image_features = self.features.image_features(self.model, test)
        if self.multilabel:
            positive, negative = self.label_embeddings
            probabilities = multilabel_probabilities(self.model.logit_scale, image_features, positive, negative)
            return Predictions(probabilities, trainable_parameters=0)
        logits = zero_shot_logits(self.model.logit_scale, image_features, self.class_embeddings)
        return Predictions(softmax(logits), trainable_parameters=0)


METHODS.register("zero_shot", MethodSpec(
    name="zero_shot", config_class=ZeroShotConfig, build=ZeroShot, families=("contrastive",),
    tasks=("binary", "multiclass", "multilabel"),
    summary="Off-the-shelf: cosine similarity to prompt-ensembled class embeddings (multilabel: each label's "
            "prompts against their 'no ...' negations); nothing is trained.",
    capabilities=OFF_THE_SHELF))
