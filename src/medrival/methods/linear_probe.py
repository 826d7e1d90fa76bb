"""Linear probe: logistic regression on frozen, cached image features.

The inverse regularisation C is chosen on the validation split only (best validation AUROC, then the simpler
model on ties); the probe is fitted on the training split (optionally refit on train + validation with that C).
Test data is never looked at.

The fitted probe is plain arrays (the scaler's mean and scale, the weights and bias, the classes seen), so it is
saved as safetensors + JSON and predictions always come from those arrays: a reloaded probe predicts exactly as
the fitted one.

Multilabel tasks are one-vs-rest: one binary logistic regression per label on the same standardised features
(weights L x D, bias L, a sigmoid per label at predict time, so the L probabilities are independent). A label with
a single class in the training split has nothing to separate; it predicts its training prevalence (0 or 1) as a
constant and is named in the predictions' extras. C is chosen by the macro validation AUROC over the labels that
have both classes in validation; ``class_balanced`` balances each label's positives against its negatives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError, DataError
from medrival.methods.base import ON_FROZEN_FEATURES, METHODS, MethodSpec, Predictions, is_multilabel, multilabel_targets
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


def _fit_one_vs_rest(features: np.ndarray, labels: np.ndarray, C: float, config: LinearProbeConfig,
                     seed: int) -> dict[str, np.ndarray]:
    """One binary logistic regression per label (N x L 0/1 ``labels``) on the standardised features; a label with
    one class in training keeps zero weights and predicts its prevalence (``fitted`` 0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(features) == 0:
        raise DataError("linear_probe got an empty training split (0 examples); it needs labelled training images. "
                        "Use a larger label budget or check the dataset's train split.")
    scaler = StandardScaler().fit(features)
    standardised = scaler.transform(features)
    prevalence = labels.mean(axis=0).astype(np.float64)
    fitted = (prevalence > 0) & (prevalence < 1)  # both classes present: something to separate
    coef = np.zeros((labels.shape[1], features.shape[1]), dtype=np.float64)
    intercept = np.zeros(labels.shape[1], dtype=np.float64)
    for label in np.flatnonzero(fitted):
        classifier = LogisticRegression(C=C, max_iter=config.max_iter, random_state=seed,
                                        class_weight="balanced" if config.class_balanced else None)
        classifier.fit(standardised, labels[:, label])
        coef[label], intercept[label] = classifier.coef_[0], classifier.intercept_[0]
    return {"mean": scaler.mean_, "scale": scaler.scale_, "coef": coef, "intercept": intercept,
            "prevalence": prevalence, "fitted": fitted.astype(np.int64)}


def one_vs_rest_probabilities(probe: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Independent label probabilities N x L: a sigmoid per fitted label (tanh form: finite for any score), the
    training prevalence for a label that had one class in training."""
    scores = ((features - probe["mean"]) / probe["scale"]) @ probe["coef"].T + probe["intercept"]
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * scores.astype(np.float64)))
    return np.where(probe["fitted"].astype(bool), sigmoid, probe["prevalence"])


def constant_labels(probe: dict[str, np.ndarray], class_names) -> dict[str, float]:
    """Label name -> constant probability, for the labels a one-vs-rest probe could not fit."""
    return {str(class_names[i]): float(probe["prevalence"][i]) for i in np.flatnonzero(probe["fitted"] == 0)}


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
        self.constant_labels: dict[str, float] | None = None  # multilabel only: labels with one training class

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features, info = model, features, train.info
        self.num_classes = info.num_classes
        x_train, x_val = features.image_features(model, train), features.image_features(model, val)
        y_train, y_val = self._targets(train), self._targets(val)
        scores = []
        for C in self.config.Cs:
            probe = self._fit_probe(x_train, y_train, C, seed)
            scores.append(validation_auroc(info.task, y_val, self._probabilities(probe, x_val)))
        # Ties (and an undefined validation AUROC) go to the smallest C: the most regularised (simplest) model.
        self.chosen_C = self.config.Cs[best_index(scores)]
        self.validation_auroc = json_score(max(scores))
        x_fit, y_fit = x_train, y_train
        if self.config.refit_on_train_val:
            x_fit, y_fit = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        self.probe = self._fit_probe(x_fit, y_fit, self.chosen_C, seed)
        if is_multilabel(train):
            self.constant_labels = constant_labels(self.probe, info.class_names)

    def _targets(self, split) -> np.ndarray:
        return multilabel_targets(split) if is_multilabel(split) else split.labels

    def _fit_probe(self, features: np.ndarray, labels: np.ndarray, C: float, seed: int) -> dict[str, np.ndarray]:
        fit = _fit_one_vs_rest if labels.ndim == 2 else _fit_logistic
        return fit(features, labels, C, self.config, seed)

    def _probabilities(self, probe: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        if "fitted" in probe:  # a one-vs-rest (multilabel) probe
            return one_vs_rest_probabilities(probe, features)
        return probe_probabilities(probe, features, self.num_classes)

    def predict(self, test) -> Predictions:
        x_test = self.features.image_features(self.model, test)
        probabilities = self._probabilities(self.probe, x_test)
        extras = {"chosen_C": self.chosen_C, "validation_auroc": self.validation_auroc}
        if self.constant_labels is None:
            trainable = int(self.probe["coef"].size + self.probe["intercept"].size)
        else:  # a constant label has no trained weights
            trainable = int(self.probe["fitted"].sum() * (self.probe["coef"].shape[1] + 1))
            extras["constant_labels"] = dict(self.constant_labels)
            if self.constant_labels:
                extras["notes"] = ["label(s) with one class in training, predicted as their training prevalence: "
                                   + ", ".join(f"{name} = {value:g}" for name, value in self.constant_labels.items())]
        return Predictions(probabilities, trainable_parameters=trainable, extras=extras)

    def save(self, directory) -> None:
        chosen = {"chosen_C": self.chosen_C, "validation_auroc": self.validation_auroc,
                  "num_classes": self.num_classes}
        if self.constant_labels is not None:  # as [name, value] pairs: JSON keeps their (label) order
            chosen["constant_labels"] = [[name, value] for name, value in self.constant_labels.items()]
        save_checkpoint(directory, NAME, self.config, chosen, self.probe)

    @classmethod
    def load(cls, directory, model, features) -> "LinearProbe":
        config, chosen, arrays = load_checkpoint(directory, NAME, LinearProbeConfig)
        method = cls(config)
        method.model, method.features, method.probe = model, features, arrays
        method.chosen_C, method.validation_auroc = chosen["chosen_C"], chosen["validation_auroc"]
        method.num_classes = chosen["num_classes"]
        pairs = chosen.get("constant_labels")
        method.constant_labels = None if pairs is None else {name: value for name, value in pairs}
        return method


METHODS.register(NAME, MethodSpec(
    name=NAME, config_class=LinearProbeConfig, build=LinearProbe, families=("contrastive",),
    tasks=("binary", "multiclass", "multilabel"),
    summary="Logistic regression on frozen image features (multilabel: one per label); C chosen on the validation "
            "split.",
    capabilities=ON_FROZEN_FEATURES))
