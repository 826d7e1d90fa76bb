"""CLIP-Adapter (Gao et al., IJCV 2023) on cached image features.

A bottleneck MLP A(f) = ReLU(ReLU(f W1) W2) (D -> D/reduction -> D) is blended with the frozen feature through a
residual ratio r: f' = r A(f) + (1 - r) f. Logits are logit_scale * cos(f', w_k) against the frozen zero-shot
class embeddings w_k. The adapter is trained with cross-entropy on the cached training features; the epoch (and
r, when several are given) are chosen on the validation split.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import ON_FROZEN_FEATURES, METHODS, MethodSpec, Predictions
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.selection import best_index, json_score, softmax, validation_auroc
from medrival.methods.torch_heads import Schedule, check_schedule, is_count, is_number, train_with_validation
from medrival.methods.zero_shot import zero_shot_classifier

NAME = "clip_adapter"


@dataclass
class ClipAdapterConfig:
    residual_ratios: tuple[float, ...] = field(default=(0.2, 0.6), metadata={
        "help": "Candidate residual ratios r in (0, 1] (share of the adapted feature); one adapter is trained per "
                "value and the best on validation is kept."})
    reduction: int = field(default=4, metadata={"help": "Bottleneck reduction: hidden width = embed_dim / reduction."})
    epochs: int = field(default=100, metadata={"help": "Training epochs over the cached training features."})
    lr: float = field(default=0.01, metadata={"help": "AdamW learning rate (cosine decay)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    batch_size: int = field(default=32, metadata={"help": "Training rows per step (0 = full batch)."})

    def __post_init__(self) -> None:
        given = self.residual_ratios
        ratios = tuple(given) if isinstance(given, (list, tuple)) else (given,)
        if not ratios or not all(is_number(r) and 0 < r <= 1 for r in ratios):
            raise ConfigError(f"clip_adapter residual_ratios must be numbers in (0, 1], got {given!r}.")
        self.residual_ratios = tuple(float(r) for r in ratios)
        if not is_count(self.reduction, 1):
            raise ConfigError(f"clip_adapter reduction must be a whole number >= 1, got {self.reduction!r}.")
        check_schedule("clip_adapter", self.epochs, self.lr, self.weight_decay, self.batch_size)


def build_adapter(embed_dim: int, reduction: int, seed: int):
    """The bottleneck MLP, initialised from ``seed`` alone (independent of the global torch RNG)."""
    import torch
    from torch import nn

    hidden = max(1, embed_dim // reduction)
    adapter = nn.Sequential(nn.Linear(embed_dim, hidden, bias=False), nn.ReLU(),
                            nn.Linear(hidden, embed_dim, bias=False), nn.ReLU())
    generator = torch.Generator().manual_seed(seed)
    for layer in (adapter[0], adapter[2]):
        bound = 1.0 / layer.in_features ** 0.5  # nn.Linear's default scale
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
    return adapter


def adapted_logits(adapter, ratio: float, features, class_embeddings, logit_scale: float):
    """logit_scale * cos(r A(f) + (1 - r) f, w_k) for torch tensors."""
    import torch.nn.functional as F

    blended = ratio * adapter(features) + (1.0 - ratio) * features
    return logit_scale * F.normalize(blended, dim=-1) @ class_embeddings.T


class ClipAdapter:
    def __init__(self, config: ClipAdapterConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        import torch

        self.model, self.features, self.logit_scale = model, features, model.logit_scale
        self.class_embeddings = zero_shot_classifier(model, val.info, features=features)
        device = model.device
        x_train = torch.from_numpy(features.image_features(model, train)).to(device)
        x_val = torch.from_numpy(features.image_features(model, val)).to(device)
        labels = torch.as_tensor(np.asarray(train.labels, dtype=np.int64), device=device)
        runs = [self._train_one(ratio, x_train, labels, x_val, val, seed) for ratio in self.config.residual_ratios]
        best = best_index([outcome.best_score for _, outcome in runs])
        self.adapter, outcome = runs[best]
        self.ratio, self.best_epoch = self.config.residual_ratios[best], outcome.best_epoch
        self.validation_auroc = json_score(outcome.best_score)

    def _train_one(self, ratio, x_train, labels, x_val, val, seed: int):
        import torch
        import torch.nn.functional as F

        adapter = build_adapter(x_train.shape[1], self.config.reduction, seed).to(x_train.device)
        classes = torch.from_numpy(self.class_embeddings).to(x_train.device)

        def batch_loss(rows):
            rows = rows.to(x_train.device)
            return F.cross_entropy(adapted_logits(adapter, ratio, x_train[rows], classes, self.logit_scale),
                                   labels[rows])

        def validate():
            with torch.no_grad():
                logits = adapted_logits(adapter, ratio, x_val, classes, self.logit_scale).cpu().numpy()
            return validation_auroc(val.info.task, val.labels, softmax(logits)), None

        config = self.config
        schedule = Schedule(config.epochs, config.lr, config.weight_decay, config.batch_size)
        outcome = train_with_validation(list(adapter.parameters()), batch_loss, len(x_train), validate, schedule, seed)
        return adapter.eval(), outcome

    def predict(self, test) -> Predictions:
        import torch

        device = next(self.adapter.parameters()).device
        x_test = torch.from_numpy(self.features.image_features(self.model, test)).to(device)
        classes = torch.from_numpy(self.class_embeddings).to(device)
        with torch.no_grad():
            logits = adapted_logits(self.adapter, self.ratio, x_test, classes, self.logit_scale).cpu().numpy()
        trainable = sum(p.numel() for p in self.adapter.parameters())
        return Predictions(softmax(logits), trainable_parameters=int(trainable),
                           extras={"residual_ratio": self.ratio, "best_epoch": self.best_epoch,
                                   "validation_auroc": self.validation_auroc})

    def save(self, directory) -> None:
        chosen = {"residual_ratio": self.ratio, "best_epoch": self.best_epoch, "logit_scale": self.logit_scale,
                  "validation_auroc": self.validation_auroc}
        arrays = {f"adapter.{k}": v for k, v in self.adapter.state_dict().items()}
        save_checkpoint(directory, NAME, self.config, chosen, {**arrays, "class_embeddings": self.class_embeddings})

    @classmethod
    def load(cls, directory, model, features) -> "ClipAdapter":
        import torch

        config, chosen, arrays = load_checkpoint(directory, NAME, ClipAdapterConfig)
        method = cls(config)
        method.model, method.features = model, features
        method.class_embeddings = arrays.pop("class_embeddings")
        method.adapter = build_adapter(method.class_embeddings.shape[1], config.reduction, seed=0).eval()
        method.adapter.load_state_dict({k.removeprefix("adapter."): torch.from_numpy(v) for k, v in arrays.items()})
        method.adapter.to(model.device)
        method.ratio, method.best_epoch = chosen["residual_ratio"], chosen["best_epoch"]
        method.logit_scale, method.validation_auroc = chosen["logit_scale"], chosen["validation_auroc"]
        return method


METHODS.register(NAME, MethodSpec(
    name=NAME, config_class=ClipAdapterConfig, build=ClipAdapter, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Residual bottleneck MLP on frozen image features against the zero-shot text classifier; "
            "epoch and residual ratio chosen on val.",
    capabilities=ON_FROZEN_FEATURES))
