"""k-nearest neighbours on cached, L2-normalised image features (cosine similarity).

The probability of a class is the fraction of the k nearest training images that carry it (optionally weighted by
exp(similarity / temperature)). k is chosen on the validation split from a candidate list capped at the training
size. Neighbours with equal similarity are taken in training order, so results are deterministic.

Multilabel tasks use the same neighbours and weights: the probability of label j is the (weighted) fraction of the
k nearest training images that carry label j, so each label is scored independently (rows need not sum to 1), and
k is chosen by the macro validation AUROC over the labels with both classes in validation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError, DataError
from medrival.methods.base import ON_FROZEN_FEATURES, METHODS, MethodSpec, Predictions, is_multilabel, multilabel_targets
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.selection import best_index, json_score, validation_auroc
from medrival.methods.torch_heads import is_number

NAME = "knn"
WEIGHTINGS = ("uniform", "similarity")
MAX_K = 10_000  # neighbours: far above any useful k
_CHUNK_ROWS = 2048  # query rows per similarity block: bounds memory for large splits


@dataclass
class KnnConfig:
    ks: tuple[int, ...] = field(default=(1, 3, 5, 7, 11, 15, 21, 31), metadata={
        "help": "Candidate numbers of neighbours, chosen on validation; values above the training size are capped."})
    weighting: str = field(default="uniform", metadata={
        "help": "'uniform': each neighbour votes 1; 'similarity': votes weighted by exp(cosine / temperature)."})
    temperature: float = field(default=0.07, metadata={
        "help": "Temperature of the similarity weighting (smaller = nearer neighbours count more)."})

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks) if not isinstance(self.ks, int) else (self.ks,)
        if not self.ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in self.ks):
            raise ConfigError(f"knn ks must be whole numbers >= 1, got {list(self.ks)}.")
        if max(self.ks) > MAX_K:
            raise ConfigError(f"knn ks must be at most {MAX_K}, got {max(self.ks)}; typical values are 1 to 31 "
                              "(candidates above the training size would vote with the whole training split).")
        self.ks = tuple(sorted({int(k) for k in self.ks}))
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"knn weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}.")
        if not (is_number(self.temperature) and self.temperature > 0):
            raise ConfigError(f"knn temperature must be > 0, got {self.temperature!r}.")


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the ``k`` most cosine-similar keys per query, most similar first; a stable sort
    breaks ties by training order."""
    indices, similarities = [], []
    for start in range(0, len(queries), _CHUNK_ROWS):
        block = queries[start:start + _CHUNK_ROWS] @ keys.T
        order = np.argsort(-block, axis=1, kind="stable")[:, :k]
        indices.append(order)
        similarities.append(np.take_along_axis(block, order, axis=1))
    if not indices:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(indices), np.concatenate(similarities)


def _vote_weights(similarities: np.ndarray, config: KnnConfig) -> np.ndarray:
    """Each neighbour's vote (N x k): 1, or exp(similarity / temperature) relative to the row's nearest."""
    if config.weighting == "uniform":
        return np.ones_like(similarities, dtype=np.float64)
    # subtract each row's top similarity before exp: same fractions, no overflow
    return np.exp((similarities - similarities[:, :1]).astype(np.float64) / config.temperature)


def label_fractions(neighbour_labels: np.ndarray, similarities: np.ndarray, config: KnnConfig) -> np.ndarray:
    """Multilabel: the weighted fraction N x L of each query's neighbours carrying each label, from the
    neighbours' 0/1 label rows (N x k x L)."""
    weights = _vote_weights(similarities, config)
    carried = np.einsum("nk,nkl->nl", weights, neighbour_labels.astype(np.float64))
    return carried / weights.sum(axis=1, keepdims=True)


def vote_probabilities(neighbour_labels: np.ndarray, similarities: np.ndarray, num_classes: int,
                       config: KnnConfig) -> np.ndarray:
    """Class vote fractions N x K from the labels (and similarities) of each query's neighbours; multilabel
    neighbour labels (N x k x L) give independent label fractions instead."""
    if neighbour_labels.ndim == 3:
        return label_fractions(neighbour_labels, similarities, config)
    weights = _vote_weights(similarities, config)
    votes = np.zeros((len(neighbour_labels), num_classes), dtype=np.float64)
    np.add.at(votes, (np.arange(len(neighbour_labels))[:, None], neighbour_labels), weights)
    return votes / votes.sum(axis=1, keepdims=True)


class Knn:
    def __init__(self, config: KnnConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features, info = model, features, train.info
        self.num_classes = info.num_classes
        self.keys = features.image_features(model, train)
        if len(self.keys) == 0:
            raise DataError(f"knn got an empty training split ({info.name}/{train.split}, 0 examples); it needs "
                            "labelled training images to vote. Use a larger label budget or check the split.")
        self.key_labels = multilabel_targets(train) if is_multilabel(train) else \
            np.asarray(train.labels, dtype=np.int64)
        val_labels = multilabel_targets(val) if is_multilabel(val) else val.labels
        if min(self.config.ks) > len(self.keys):
            raise DataError(f"knn: every candidate k ({list(self.config.ks)}) exceeds the {len(self.keys)} training "
                            f"examples of {info.name}/{train.split}; a k that large votes with the whole training "
                            f"split (chance-level AUROC). Give a k <= {len(self.keys)} or a larger label budget.")
        candidates = sorted({min(k, len(self.keys)) for k in self.config.ks})
        indices, similarities = nearest_neighbours(features.image_features(model, val), self.keys, candidates[-1])
        scores = []
        for k in candidates:
            probabilities = vote_probabilities(self.key_labels[indices[:, :k]], similarities[:, :k],
                                               self.num_classes, self.config)
            scores.append(validation_auroc(info.task, val_labels, probabilities))
        self.chosen_k = candidates[best_index(scores)]  # ties: the smallest k
        self.validation_auroc = json_score(max(scores))

    def predict(self, test) -> Predictions:
        indices, similarities = nearest_neighbours(self.features.image_features(self.model, test), self.keys,
                                                   self.chosen_k)
        probabilities = vote_probabilities(self.key_labels[indices], similarities, self.num_classes, self.config)
        return Predictions(probabilities, trainable_parameters=0,
                           extras={"chosen_k": self.chosen_k, "validation_auroc": self.validation_auroc})

    def save(self, directory) -> None:
        chosen = {"chosen_k": self.chosen_k, "validation_auroc": self.validation_auroc,
                  "num_classes": self.num_classes}
        save_checkpoint(directory, NAME, self.config, chosen, {"keys": self.keys, "key_labels": self.key_labels})

    @classmethod
    def load(cls, directory, model, features) -> "Knn":
        config, chosen, arrays = load_checkpoint(directory, NAME, KnnConfig)
        method = cls(config)
        method.model, method.features = model, features
        method.keys, method.key_labels = arrays["keys"], arrays["key_labels"]
        method.chosen_k, method.validation_auroc = chosen["chosen_k"], chosen["validation_auroc"]
        method.num_classes = chosen["num_classes"]
        return method


METHODS.register(NAME, MethodSpec(
    name=NAME, config_class=KnnConfig, build=Knn, families=("contrastive",),
    tasks=("binary", "multiclass", "multilabel"),
    summary="Cosine k-nearest neighbours on frozen image features; k chosen on the validation split.",
    capabilities=ON_FROZEN_FEATURES))
