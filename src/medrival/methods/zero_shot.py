"""Zero-shot classification with prompt ensembles: every class description in every template is encoded,
the normalised text embeddings of a class are averaged into one class embedding, and images are scored by
cosine similarity scaled by the model's logit scale (softmax over classes).

Multilabel tasks (several findings per image) score every label on its own, as CheXzero does (Tiu et al., Nat.
Biomed. Eng. 2022): label j has a positive prompt set (the templates filled with its descriptions, exactly as a
class above) and a negative prompt set (the templates filled with "no <description>", a leading "a"/"an" dropped
so "a large lesion" reads "no large lesion"); each set is ensembled into one unit embedding, and

    p(label j | image) = softmax([s * cos(image, pos_j), s * cos(image, neg_j)])[0]
                       = sigmoid(s * (cos(image, pos_j) - cos(image, neg_j)))

with s the model's logit scale. The L probabilities are independent (rows need not sum to 1).

Template sets (``medrival.core.prompts.CLASS_PROMPT_SETS``; the first is the dataset's own templates, used by
default). ``prompt_selection: validation`` scores every set on the validation split by AUROC (the rule of
``methods.selection``: multilabel macro over the labels defined there, ties to the earlier set) and predicts with
the best; test is never read for it. ``prompt_sensitivity: K`` also predicts test with the first K sets and hands
their probabilities to the cell runner, which scores them: a spread for the report, never used to choose. Images
are encoded once (the feature cache); only each set's prompts are encoded again."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from medrival.core.errors import ConfigError
from medrival.core.prompts import (
    CLASS_PROMPT_SETS, PROMPT_SELECTION, PROMPT_SET_OUTPUTS, PROMPT_SETS_VERSION, ClassPromptSet, check_prompt_options,
    class_option, class_set_templates,
)
from medrival.methods.base import (
    OFF_THE_SHELF, METHODS, MethodSpec, Predictions, is_multilabel, multilabel_targets,
)
from medrival.methods.selection import best_index, json_score, softmax, validation_auroc

DEFAULT_SET = CLASS_PROMPT_SETS[0]


@dataclass
class ZeroShotConfig:
    templates: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Prompt templates with one '{}' slot; default: the dataset's own."})
    use_descriptions: bool = field(
        default=True, metadata={"help": "Ensemble the dataset's class descriptions; false uses class names only."})
    prompt_selection: str = field(default="fixed", metadata={
        "help": "'fixed': the default template set (the dataset's own, or 'templates'); 'validation': each model "
                "uses the template set with its best validation AUROC among medrival.core.prompts."
                "CLASS_PROMPT_SETS (test is never read to choose)."})
    prompt_sensitivity: int = field(default=0, metadata={
        "help": "K > 0: also predict test with the first K template sets and record each set's test metrics "
                "(the spread of the report's prompt-sensitivity table; never used to choose); 0: off."})

    def __post_init__(self) -> None:
        if self.templates is not None:
            self.templates = tuple(self.templates)
            bad = [t for t in self.templates if t.count("{}") != 1]
            if bad or not self.templates:
                raise ConfigError(f"zero_shot templates need exactly one '{{}}' slot each; got {bad or '[]'}.")
        check_prompt_options("zero_shot", self.prompt_selection, self.prompt_sensitivity, len(CLASS_PROMPT_SETS))


def _prompt_material(info, config: ZeroShotConfig,
                     prompt_set: ClassPromptSet = DEFAULT_SET) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(templates, phrases of each class): the descriptions, or the class name alone."""
    templates = class_set_templates(prompt_set, info, config.templates or info.prompt_templates or ("a photo of {}.",))
    if prompt_set.class_names:  # a set worded around the class names, as CLIP's "a photo of a {class}"
        return templates, [(class_option(name),) for name in info.class_names]
    phrases = [info.class_descriptions[index] if config.use_descriptions and info.class_descriptions else (name,)
               for index, name in enumerate(info.class_names)]
    return templates, phrases


def class_prompts(info, config: ZeroShotConfig, prompt_set: ClassPromptSet = DEFAULT_SET) -> list[list[str]]:
    """The prompts of each class: templates x descriptions (or the class name alone)."""
    templates, phrases_of = _prompt_material(info, config, prompt_set)
    return [[template.format(phrase) for template in templates for phrase in phrases] for phrases in phrases_of]


_ARTICLES = ("a ", "an ")


def _negated(phrase: str) -> str:
    """The negation "no <phrase>", a leading indefinite article dropped ("an effusion" -> "no effusion")."""
    lowered = phrase.lower()
    article = next((a for a in _ARTICLES if lowered.startswith(a)), "")
    return f"no {phrase[len(article):]}"


def multilabel_prompts(info, config: ZeroShotConfig,
                       prompt_set: ClassPromptSet = DEFAULT_SET) -> list[tuple[list[str], list[str]]]:
    """(positive prompts, negative prompts) of each label: the positives are ``class_prompts``; the negatives fill
    the same templates with the negated descriptions (CheXzero's "{finding}" / "no {finding}" pair)."""
    templates, phrases_of = _prompt_material(info, config, prompt_set)
    return [([template.format(phrase) for template in templates for phrase in phrases],
             [template.format(_negated(phrase)) for template in templates for phrase in phrases])
            for phrases in phrases_of]


def prompt_set_embedding(model, prompts: list[str], features=None) -> np.ndarray:
    """The normalised mean of a prompt set's embeddings (one unit vector, D)."""
    embedded = features.text_embeddings(model, prompts) if features is not None else \
        model.encode_texts(prompts).numpy()
    mean = embedded.mean(axis=0)
    return mean / np.linalg.norm(mean)


def zero_shot_classifier(model, info, config: ZeroShotConfig | None = None, features=None,
                         prompt_set: ClassPromptSet = DEFAULT_SET) -> np.ndarray:
    """Class embeddings (K x D float32, unit rows): the normalised mean of each class's prompt embeddings.

    Shared by zero-shot and by every method that starts from the text classifier (Tip-Adapter, CLIP-Adapter,
    fine-tuning heads), so they all start from exactly the zero-shot decision rule. With ``features`` (the run's
    FeatureCache) the prompts are encoded once per model for all of those cells."""
    rows = [prompt_set_embedding(model, prompts, features)
            for prompts in class_prompts(info, config or ZeroShotConfig(), prompt_set)]
    return np.stack(rows).astype(np.float32)


def multilabel_classifier(model, info, config: ZeroShotConfig | None = None, features=None,
                          prompt_set: ClassPromptSet = DEFAULT_SET) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) label embeddings, each L x D float32 with unit rows (see the module docstring)."""
    pairs = multilabel_prompts(info, config or ZeroShotConfig(), prompt_set)
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
        self.multilabel = False
        self.prompt_set = DEFAULT_SET
        # Text classifier of each template set in use (the chosen one and the sensitivity sets), by set name:
        # K x D class embeddings, or (positive, negative) L x D label embeddings for a multilabel task.
        self.classifiers: dict[str, object] = {}
        self.selection: dict | None = None  # what was chosen and why, for the record (None: default options)

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features = model, features
        self.multilabel = is_multilabel(val)
        config = self.config
        candidates = CLASS_PROMPT_SETS if config.prompt_selection == "validation" else (DEFAULT_SET,)
        wanted = {s.name: s for s in (*candidates, *CLASS_PROMPT_SETS[:config.prompt_sensitivity])}
        self.classifiers = {name: self._classifier(val.info, s) for name, s in wanted.items()}
        # An empty validation split cannot rank sets: the default is kept and the record shows no scores.
        scores = self._validation_scores(val, candidates) if len(candidates) > 1 and len(val) else {}
        self.prompt_set = candidates[best_index(list(scores.values()))] if scores else DEFAULT_SET
        if config.prompt_selection != "fixed" or config.prompt_sensitivity:
            self.selection = {"mode": config.prompt_selection, "chosen": self.prompt_set.name, "metric": "auroc",
                              "validation": {name: json_score(score) for name, score in scores.items()},
                              "sets_version": PROMPT_SETS_VERSION}

    def _classifier(self, info, prompt_set: ClassPromptSet):
        if self.multilabel:
            return multilabel_classifier(self.model, info, self.config, self.features, prompt_set)
        return zero_shot_classifier(self.model, info, self.config, self.features, prompt_set)

    def _validation_scores(self, val, candidates) -> dict[str, float]:
        """Each candidate set's validation AUROC (-inf where undefined): the only data selection reads."""
        image_features = self.features.image_features(self.model, val)
        labels = multilabel_targets(val) if self.multilabel else np.asarray(val.labels)
        return {s.name: validation_auroc(val.info.task, labels, self._probabilities(image_features, s.name))
                for s in candidates}

    def _probabilities(self, image_features: np.ndarray, set_name: str) -> np.ndarray:
        if self.multilabel:
            positive, negative = self.classifiers[set_name]
            return multilabel_probabilities(self.model.logit_scale, image_features, positive, negative)
        return softmax(zero_shot_logits(self.model.logit_scale, image_features, self.classifiers[set_name]))

    def predict(self, test) -> Predictions:
        image_features = self.features.image_features(self.model, test)
        output = Predictions(self._probabilities(image_features, self.prompt_set.name), trainable_parameters=0)
        if self.selection is not None:
            output.extras[PROMPT_SELECTION] = dict(self.selection)
        if self.config.prompt_sensitivity:  # scored by the cell runner, which owns the test labels
            output.extras[PROMPT_SET_OUTPUTS] = {
                s.name: self._probabilities(image_features, s.name)
                for s in CLASS_PROMPT_SETS[:self.config.prompt_sensitivity]}
        return output


METHODS.register("zero_shot", MethodSpec(
    name="zero_shot", config_class=ZeroShotConfig, build=ZeroShot, families=("contrastive",),
    tasks=("binary", "multiclass", "multilabel"),
    summary="Off-the-shelf: cosine similarity to prompt-ensembled class embeddings (multilabel: each label's "
            "prompts against their 'no ...' negations); nothing is trained. Optionally picks each model's "
            "template set on validation and reports the test spread over template sets.",
    capabilities=replace(OFF_THE_SHELF, prompt_selection=True)))
