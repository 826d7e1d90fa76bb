"""Linear probe: logistic regression on frozen, cached image features.

The inverse regularisation C is chosen on the validation split only (best validation AUROC, then the simpler
model on ties); the final probe is refit on train + validation with that C. Test data is never looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import METHODS, MethodSpec, Predictions
from medrival.metrics import compute_classification_metrics


@dataclass
class LinearProbeConfig:
    Cs: tuple[float, ...] = field(default=(0.001, 0.01, 0.1, 1.0, 10.0),
                                  metadata={"help": "Candidate inverse regularisation strengths (chosen on val)."})
    max_iter: int = field(default=2000, metadata={"help": "L-BFGS iterations per fit."})
    refit_on_train_val: bool = field(default=True, metadata={"help": "Refit the chosen C on train + val."})

    def __post_init__(self) -> None:
        self.Cs = tuple(float(c) for c in self.Cs)
        if not self.Cs or any(c <= 0 for c in self.Cs):
            raise ConfigError(f"linear_probe Cs must be positive numbers, got {list(self.Cs)}.")


def _fit_logistic(features: np.ndarray, labels: np.ndarray, C: float, max_iter: int, seed: int):
    """Standardise then fit, so one C grid suits features of any scale (embeddings are unit-norm)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), classifier).fit(features, labels)


def _full_probabilities(classifier, features: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities for every class, including classes absent from the training labels (probability 0)."""
    probabilities = np.zeros((len(features), num_classes), dtype=np.float64)
    probabilities[:, classifier.classes_] = classifier.predict_proba(features)
    return probabilities


class LinearProbe:
    def __init__(self, config: LinearProbeConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        import warnings

        self.model, self.features, info = model, features, train.info
        x_train, x_val = features.image_features(model, train), features.image_features(model, val)
        scores = []
        for C in self.config.Cs:
            classifier = _fit_logistic(x_train, train.labels, C, self.config.max_iter, seed)
            probabilities = _full_probabilities(classifier, x_val, info.num_classes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                auroc = compute_classification_metrics(info.task, val.labels, probabilities)["auroc"]
            scores.append(-np.inf if np.isnan(auroc) else auroc)
        # Ties go to the smallest C: the most regularised (simplest) model.
        self.chosen_C = self.config.Cs[int(np.argmax(scores))]
        self.validation_auroc = float(max(scores))
        x_fit, y_fit = x_train, train.labels
        if self.config.refit_on_train_val:
            x_fit, y_fit = np.concatenate([x_train, x_val]), np.concatenate([train.labels, val.labels])
        self.classifier = _fit_logistic(x_fit, y_fit, self.chosen_C, self.config.max_iter, seed)
        self.num_classes = info.num_classes

    def predict(self, test) -> Predictions:
        x_test = self.features.image_features(self.model, test)
        probabilities = _full_probabilities(self.classifier, x_test, self.num_classes)
        linear = self.classifier[-1]
        trainable = int(linear.coef_.size + linear.intercept_.size)
        return Predictions(probabilities, trainable_parameters=trainable,
                           extras={"chosen_C": self.chosen_C, "validation_auroc": self.validation_auroc})


METHODS.register("linear_probe", MethodSpec(
    name="linear_probe", config_class=LinearProbeConfig, build=LinearProbe, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Logistic regression on frozen image features; C chosen on the validation split."))
