"""Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022), written from the paper's equations.

A key-value cache is built from the few-shot training set: keys are the training images' normalised features
F (N x D), values their one-hot labels L (N x K). For a test feature f the affinities to the keys are
A = exp(-beta * (1 - f F^T)), and the logits add the cache's votes to the zero-shot classifier W (K x D):

    logits = logit_scale * f W^T + alpha * A L

alpha (how much to trust the cache) and beta (how sharply affinity decays) are chosen on the validation split
by grid search; alpha = 0 gives zero-shot exactly. Tip-Adapter-F trains the keys (initialised from F, values
and W frozen) with cross-entropy on the cached training features; the epoch and alpha/beta are chosen together
on validation (epoch 0 = the training-free cache).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import ON_FROZEN_FEATURES, METHODS, MethodSpec, Predictions
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.selection import best_index, json_score, softmax, validation_auroc
from medrival.methods.torch_heads import Schedule, check_schedule, train_with_validation
from medrival.methods.zero_shot import zero_shot_classifier, zero_shot_logits


def _check_grid(method: str, option: str, values, allow_zero: bool) -> tuple[float, ...]:
    """The option's values as floats, or ``ConfigError`` naming it (a single number counts as a list of one)."""
    given = values
    bound = ">= 0" if allow_zero else "> 0"
    try:
        values = tuple(float(v) for v in (values if isinstance(values, (list, tuple)) else (values,)))
    except (TypeError, ValueError):
        values = ()
    low_ok = (lambda v: v >= 0) if allow_zero else (lambda v: v > 0)
    if not values or not all(low_ok(v) and np.isfinite(v) for v in values):
        raise ConfigError(f"{method} {option} must be finite numbers {bound} (a list for a grid), got {given!r}.")
    return values


@dataclass
class TipAdapterConfig:
    alphas: tuple[float, ...] = field(default=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0), metadata={
        "help": "Candidate cache weights alpha (0 = zero-shot), chosen on validation with beta."})
    betas: tuple[float, ...] = field(default=(0.5, 1.0, 2.0, 3.5, 5.5, 7.0, 10.0), metadata={
        "help": "Candidate affinity sharpness values beta, chosen on validation with alpha."})

    def __post_init__(self) -> None:
        self.alphas = _check_grid("tip_adapter", "alphas", self.alphas, allow_zero=True)
        self.betas = _check_grid("tip_adapter", "betas", self.betas, allow_zero=False)


@dataclass
class TipAdapterFConfig(TipAdapterConfig):
    epochs: int = field(default=20, metadata={"help": "Training epochs over the cached training features."})
    lr: float = field(default=0.001, metadata={"help": "AdamW learning rate for the cache keys (cosine decay)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on the cache keys."})
    batch_size: int = field(default=256, metadata={"help": "Training rows per step (0 = full batch)."})
    train_alpha: float = field(default=1.0, metadata={"help": "alpha used inside the training loss."})
    train_beta: float = field(default=1.0, metadata={"help": "beta used inside the training loss."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_schedule("tip_adapter_f", self.epochs, self.lr, self.weight_decay, self.batch_size)
        _check_grid("tip_adapter_f", "train_alpha", self.train_alpha, allow_zero=True)
        _check_grid("tip_adapter_f", "train_beta", self.train_beta, allow_zero=False)


def cache_logits(features, keys, values, beta: float):
    """A L with A = exp(-beta (1 - f keys^T)); works on NumPy arrays and torch tensors alike."""
    return _cache_from_similarity(features @ keys.T, values, beta)


def _cache_from_similarity(similarity, values, beta: float):
    exp = np.exp if isinstance(similarity, np.ndarray) else (lambda t: t.exp())
    return exp(-beta * (1.0 - similarity)) @ values


def search_alpha_beta(zero_shot: np.ndarray, features: np.ndarray, keys: np.ndarray, values: np.ndarray,
                      val, config: TipAdapterConfig) -> tuple[float, float, float]:
    """(alpha, beta, validation AUROC) of the best grid point; ties go to the smallest alpha, then beta."""
    similarity = features @ keys.T  # computed once; each beta is one exp, each alpha one addition
    scores = np.empty((len(config.alphas), len(config.betas)))
    for j, beta in enumerate(config.betas):
        cache = _cache_from_similarity(similarity, values, beta)
        for i, alpha in enumerate(config.alphas):
            scores[i, j] = validation_auroc(val.info.task, val.labels, softmax(zero_shot + alpha * cache))
    i, j = np.unravel_index(best_index(scores.ravel()), scores.shape)
    return config.alphas[i], config.betas[j], float(scores[i, j])


class TipAdapter:
    name = "tip_adapter"
    config_class = TipAdapterConfig

    def __init__(self, config: TipAdapterConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        self.model, self.features, self.logit_scale = model, features, model.logit_scale
        self.class_embeddings = zero_shot_classifier(model, val.info, features=features)
        self.keys = features.image_features(model, train).copy()
        self.values = np.eye(val.info.num_classes, dtype=np.float32)[np.asarray(train.labels, dtype=np.int64)]
        x_val = features.image_features(model, val)
        self.val_zero_shot = zero_shot_logits(self.logit_scale, x_val, self.class_embeddings)
        self._fit_cache(train, val, x_val, seed)

    def _fit_cache(self, train, val, x_val, seed: int) -> None:
        self.alpha, self.beta, score = search_alpha_beta(self.val_zero_shot, x_val, self.keys, self.values, val,
                                                         self.config)
        self.validation_auroc = json_score(score)

    def logits(self, image_features: np.ndarray) -> np.ndarray:
        zero_shot = zero_shot_logits(self.logit_scale, image_features, self.class_embeddings)
        return zero_shot + self.alpha * cache_logits(image_features, self.keys, self.values, self.beta)

    def predict(self, test) -> Predictions:
        probabilities = softmax(self.logits(self.features.image_features(self.model, test)))
        return Predictions(probabilities, trainable_parameters=self.trainable_parameters(), extras=self.chosen())

    def trainable_parameters(self) -> int:
        return 0  # the training-free cache is built, not trained

    def chosen(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "validation_auroc": self.validation_auroc}

    def save(self, directory) -> None:
        chosen = {**self.chosen(), "logit_scale": self.logit_scale}
        arrays = {"keys": self.keys, "values": self.values, "class_embeddings": self.class_embeddings}
        save_checkpoint(directory, self.name, self.config, chosen, arrays)

    @classmethod
    def load(cls, directory, model, features):
        config, chosen, arrays = load_checkpoint(directory, cls.name, cls.config_class)
        method = cls(config)
        method.model, method.features = model, features
        method.keys, method.values = arrays["keys"], arrays["values"]
        method.class_embeddings = arrays["class_embeddings"]
        method.alpha, method.beta, method.logit_scale = chosen["alpha"], chosen["beta"], chosen["logit_scale"]
        method.validation_auroc = chosen["validation_auroc"]
        method.restore_extra(chosen)
        return method

    def restore_extra(self, chosen: dict) -> None:
        pass


class TipAdapterF(TipAdapter):
    name = "tip_adapter_f"
    config_class = TipAdapterFConfig

    def _fit_cache(self, train, val, x_val, seed: int) -> None:
        import torch
        import torch.nn.functional as F

        device, config = self.model.device, self.config
        x_train = torch.from_numpy(self.features.image_features(self.model, train)).to(device)
        labels = torch.as_tensor(np.asarray(train.labels, dtype=np.int64), device=device)
        train_zero_shot = torch.from_numpy(
            zero_shot_logits(self.logit_scale, x_train.cpu().numpy(), self.class_embeddings)).to(device)
        keys = torch.nn.Parameter(torch.from_numpy(self.keys.copy()).to(device))
        values = torch.from_numpy(self.values).to(device)

        def batch_loss(rows):
            rows = rows.to(device)
            cache = cache_logits(x_train[rows], keys, values, config.train_beta)
            return F.cross_entropy(train_zero_shot[rows] + config.train_alpha * cache, labels[rows])

        def validate():
            current = keys.detach().cpu().numpy()
            alpha, beta, score = search_alpha_beta(self.val_zero_shot, x_val, current, self.values, val, config)
            return score, (alpha, beta)

        schedule = Schedule(config.epochs, config.lr, config.weight_decay, config.batch_size)
        outcome = train_with_validation([keys], batch_loss, len(x_train), validate, schedule, seed)
        self.keys = keys.detach().cpu().numpy().astype(np.float32)
        (self.alpha, self.beta), self.best_epoch = outcome.best_info, outcome.best_epoch
        self.validation_auroc = json_score(outcome.best_score)

    def trainable_parameters(self) -> int:
        return int(self.keys.size)

    def chosen(self) -> dict:
        return {**super().chosen(), "best_epoch": self.best_epoch}

    def restore_extra(self, chosen: dict) -> None:
        self.best_epoch = chosen["best_epoch"]


METHODS.register("tip_adapter", MethodSpec(
    name="tip_adapter", config_class=TipAdapterConfig, build=TipAdapter, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Training-free key-value cache of few-shot features added to zero-shot; alpha/beta chosen on val.",
    capabilities=ON_FROZEN_FEATURES))
METHODS.register("tip_adapter_f", MethodSpec(
    name="tip_adapter_f", config_class=TipAdapterFConfig, build=TipAdapterF, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Tip-Adapter with the cache keys fine-tuned on the training features; epoch and alpha/beta by val.",
    capabilities=ON_FROZEN_FEATURES))
