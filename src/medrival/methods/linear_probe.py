"""Linear probe: logistic regression on frozen, cached image features.

The inverse regularisation C is chosen on the validation split only (best validation AUROC, then the simpler
model on ties); the probe is fitted on the training split (optionally refit on train + validation with that C).
Test data is never looked at.

The fitted probe is plain arrays (the scaler's mean and scale, the weights and bias, the classes seen), so it is
saved as safetensors + JSON and predictions always come from those arrays: a reloaded probe predicts exactly as
the fitted one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError, DataError
from medrival.methods.base import METHODS, MethodSpec, Predictions
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.selection import best_index, json_score, softmax, validation_auroc

NAME = "linear_probe"


@dataclass
class LinearProbeConfig:
    Cs: tuple[float, ...] = field(default=(0.001, 0.01, 0.1, 1.0, 10.0),
                                  metadata={"help": "Candidate inverse regularisation strengths (chosen on val)."})
    max_iter: int = field(default=2000, metadata={"help": "L-BFGS iterations per fit."})
    # Off by default: like every other method of the ladder, the probe learns from the training split alone and
    # uses validation only to choose; refitting on train + val would give a "1-shot" probe hundreds of labels.
    refit_on_train_val: bool = field(default=False, metadata={
        "help": "Refit the chosen C on train + val (uses validation labels for fitting, not only selection)."})
    class_balanced: bool = field(default=False, metadata={
        "help": "Weight classes inversely to their frequency (sklearn class_weight='balanced')."})

    def __post_init__(self) -> None:
        given = self.Cs
        values = tuple(given) if isinstance(given, (list, tuple)) else (given,)
        if not values or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in values):
            raise ConfigError(f"linear_probe Cs must be positive numbers, got {given!r}.")
        self.Cs = tuple(float(c) for c in values)
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise ConfigError(f"linear_probe max_iter must be a whole number >= 1, got {self.max_iter!r}.")


def _fit_logistic(features: np.ndarray, labels: np.ndarray, C: float, config: LinearProbeConfig,
                  seed: int) -> dict[str, np.ndarray]:
    """Standardise then fit (so one C grid suits features of any scale); returns the probe as arrays."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(labels)) < 2:
        raise DataError(f"linear_probe needs training examples of at least two classes; got only class "
                        f"{int(labels[0]) if len(labels) else 'none'} in {len(labels)} examples. Use a training "
                        "subset with examples of every class (e.g. K >= 1 per class).")
    scaler = StandardScaler().fit(features)
    classifier = LogisticRegression(C=C, max_iter=config.max_iter, random_state=seed,
                                    class_weight="balanced" if config.class_balanced else None)
    classifier.fit(scaler.transform(features), labels)
    return {"mean": scaler.mean_, "scale": scaler.scale_, "coef": classifier.coef_,
            "intercept": classifier.intercept_, "classes": classifier.classes_.astype(np.int64)}


def probe_probabilities(probe: dict[str, np.ndarray], features: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities N x K from the probe's arrays, as sklearn computes them (sigmoid for two classes seen,
    softmax otherwise); classes absent from the training labels get probability 0."""
    scores = ((features - probe["mean"]) / probe["scale"]) @ probe["coef"].T + probe["intercept"]
    if len(probe["classes"]) == 2:
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        seen = np.stack([1.0 - positive, positive], axis=1)
    else:
        seen = softmax(scores)
    probabilities = np.zeros((len(features), num_classes), dtype=np.float64)
    probabilities[:, probe["classes"]] = seen
    return probabilities


class LinearProbe:
    def __init__(self, config: LinearProbeConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features, info = model, features, train.info
        self.num_classes = info.num_classes
        x_train, x_val = features.image_features(model, train), features.image_features(model, val)
        scores = []
        for C in self.config.Cs:
            probe = _fit_logistic(x_train, train.labels, C, self.config, seed)
            scores.append(validation_auroc(info.task, val.labels, probe_probabilities(probe, x_val, self.num_classes)))
        # Ties (and an undefined validation AUROC) go to the smallest C: the most regularised (simplest) model.
        self.chosen_C = self.config.Cs[best_index(scores)]
        self.validation_auroc = json_score(max(scores))
        x_fit, y_fit = x_train, train.labels
        if self.config.refit_on_train_val:
            x_fit, y_fit = np.concatenate([x_train, x_val]), np.concatenate([train.labels, val.labels])
        self.probe = _fit_logistic(x_fit, y_fit, self.chosen_C, self.config, seed)

    def predict(self, test) -> Predictions:
        x_test = self.features.image_features(self.model, test)
        probabilities = probe_probabilities(self.probe, x_test, self.num_classes)
        trainable = int(self.probe["coef"].size + self.probe["intercept"].size)
        return Predictions(probabilities, trainable_parameters=trainable,
                           extras={"chosen_C": self.chosen_C, "validation_auroc": self.validation_auroc})

    def save(self, directory) -> None:
        chosen = {"chosen_C": self.chosen_C, "validation_auroc": self.validation_auroc,
                  "num_classes": self.num_classes}
        save_checkpoint(directory, NAME, self.config, chosen, self.probe)

    @classmethod
    def load(cls, directory, model, features) -> "LinearProbe":
        config, chosen, arrays = load_checkpoint(directory, NAME, LinearProbeConfig)
        method = cls(config)
        method.model, method.features, method.probe = model, features, arrays
        method.chosen_C, method.validation_auroc = chosen["chosen_C"], chosen["validation_auroc"]
        method.num_classes = chosen["num_classes"]
        return method


METHODS.register(NAME, MethodSpec(
    name=NAME, config_class=LinearProbeConfig, build=LinearProbe, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Logistic regression on frozen image features; C chosen on the validation split."))
