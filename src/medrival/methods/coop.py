"""CoOp (Zhou et al., IJCV 2022): learnable prompt context for the frozen text encoder.

Each class is described by ``[v_1 ... v_n] <class text>.``, where the n context vectors live in the text tower's
token-embedding space. They start from the embeddings of a phrase ("a photo of a") or from seeded Gaussian
noise, are shared by all classes (unified) or learned per class (``class_specific``, CoOp's CSC), and are the only
thing trained: the text and image encoders stay frozen and image features come from the feature cache. Logits are
logit_scale * cos(image feature, prompt embedding); the epoch is chosen on the validation split (epoch 0 = the
initial prompt).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from medrival.core.errors import ConfigError
from medrival.methods.base import ON_FROZEN_FEATURES, METHODS, MethodSpec, Predictions
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.selection import json_score, softmax, validation_auroc
from medrival.methods.torch_heads import Schedule, check_schedule, is_count, train_with_validation
from medrival.methods.zero_shot import zero_shot_logits

NAME = "coop"
CLASS_TEXTS = ("name", "description")
RANDOM_INIT_STD = 0.02  # CoOp's random context initialisation


@dataclass
class CoOpConfig:
    n_ctx: int = field(default=4, metadata={
        "help": "Number of learned context vectors; with context_init it must equal the phrase's token count."})
    context_init: str = field(default="a photo of a", metadata={
        "help": "Phrase whose token embeddings initialise the context; '' initialises from seeded noise."})
    class_specific: bool = field(default=False, metadata={
        "help": "Learn one context per class (CoOp's CSC) instead of one shared by all classes."})
    class_text: str = field(default="name", metadata={
        "help": "What follows the context: the class 'name' or its first 'description' from the dataset."})
    epochs: int = field(default=50, metadata={"help": "Training epochs over the cached training features."})
    lr: float = field(default=0.002, metadata={"help": "AdamW learning rate for the context (cosine decay)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on the context."})
    batch_size: int = field(default=32, metadata={"help": "Training images per step (0 = full batch)."})

    def __post_init__(self) -> None:
        if not is_count(self.n_ctx, 1):
            raise ConfigError(f"coop n_ctx must be a whole number >= 1, got {self.n_ctx!r}.")
        if not isinstance(self.context_init, str):
            raise ConfigError(f"coop context_init must be a phrase (or '' for random), got {self.context_init!r}.")
        self.context_init = self.context_init.strip()
        if self.class_text not in CLASS_TEXTS:
            raise ConfigError(f"coop class_text must be one of {', '.join(CLASS_TEXTS)}, got {self.class_text!r}.")
        check_schedule("coop", self.epochs, self.lr, self.weight_decay, self.batch_size)


def class_texts(info, config: CoOpConfig) -> list[str]:
    """The text after the context for each class, ending with a full stop as in CoOp's prompts."""
    if config.class_text == "description" and info.class_descriptions:
        return [f"{descriptions[0]}." for descriptions in info.class_descriptions]
    return [f"{name}." for name in info.class_names]


def initial_context(adapter, config: CoOpConfig, num_classes: int, seed: int):
    """Context tensor n_ctx x width (or classes x n_ctx x width), from the init phrase or seeded noise."""
    import torch

    from medrival.models.text_context import context_width, phrase_embeddings

    if config.context_init:
        context = phrase_embeddings(adapter, config.context_init).float().cpu()
        if len(context) != config.n_ctx:
            raise ConfigError(f"coop context_init {config.context_init!r} is {len(context)} tokens for this model's "
                              f"tokenizer but n_ctx is {config.n_ctx}; set n_ctx: {len(context)}, or "
                              "context_init: '' for a random start.")
    else:
        generator = torch.Generator().manual_seed(seed)
        context = torch.randn(config.n_ctx, context_width(adapter), generator=generator) * RANDOM_INIT_STD
    if config.class_specific:
        context = context.unsqueeze(0).repeat(num_classes, 1, 1)
    return context


@contextmanager
def frozen(module):
    """Encoder weights take no gradient and dropout is off while the context trains; both restored after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    was_training = module.training
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    module.eval()
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        module.train(was_training)


class CoOp:
    def __init__(self, config: CoOpConfig):
        self.config = config

    def fit(self, model, train, val, features, seed: int = 0) -> None:
        import torch

        from medrival.models.text_context import encode_with_context

        self.model, self.features, self.logit_scale = model, features, model.logit_scale
        texts = class_texts(val.info, self.config)
        device = model.device
        x_train = torch.from_numpy(features.image_features(model, train)).to(device)
        x_val = features.image_features(model, val)
        labels = torch.as_tensor(np.asarray(train.labels, dtype=np.int64), device=device)
        context = torch.nn.Parameter(initial_context(model, self.config, val.info.num_classes, seed).to(device))

        def batch_loss(rows):
            rows = rows.to(device)
            prompts = encode_with_context(model, context, texts).float()
            logits = self.logit_scale * x_train[rows] @ prompts.T
            return torch.nn.functional.cross_entropy(logits, labels[rows])

        def validate():
            with torch.no_grad():
                prompts = encode_with_context(model, context, texts).float().cpu().numpy()
            probabilities = softmax(zero_shot_logits(self.logit_scale, x_val, prompts))
            return validation_auroc(val.info.task, val.labels, probabilities), None

        config = self.config
        schedule = Schedule(config.epochs, config.lr, config.weight_decay, config.batch_size)
        with frozen(model.model):
            outcome = train_with_validation([context], batch_loss, len(x_train), validate, schedule, seed)
            with torch.no_grad():
                self.class_embeddings = encode_with_context(model, context, texts).float().cpu().numpy()
        self.context = context.detach().cpu()
        self.best_epoch, self.validation_auroc = outcome.best_epoch, json_score(outcome.best_score)

    def predict(self, test) -> Predictions:
        logits = zero_shot_logits(self.logit_scale, self.features.image_features(self.model, test),
                                  self.class_embeddings)
        return Predictions(softmax(logits), trainable_parameters=int(self.context.numel()),
                           extras={"best_epoch": self.best_epoch, "validation_auroc": self.validation_auroc})

    def save(self, directory) -> None:
        chosen = {"best_epoch": self.best_epoch, "validation_auroc": self.validation_auroc,
                  "logit_scale": self.logit_scale}
        save_checkpoint(directory, NAME, self.config, chosen,
                        {"context": self.context.float(), "class_embeddings": self.class_embeddings})

    @classmethod
    def load(cls, directory, model, features) -> "CoOp":
        import torch

        config, chosen, arrays = load_checkpoint(directory, NAME, CoOpConfig)
        method = cls(config)
        method.model, method.features = model, features
        method.context = torch.from_numpy(arrays["context"])
        method.class_embeddings = arrays["class_embeddings"]
        method.best_epoch, method.validation_auroc = chosen["best_epoch"], chosen["validation_auroc"]
        method.logit_scale = chosen["logit_scale"]
        return method


METHODS.register(NAME, MethodSpec(
    name=NAME, config_class=CoOpConfig, build=CoOp, families=("contrastive",), tasks=("binary", "multiclass"),
    summary="Learnable prompt context for the frozen text encoder (CoOp); image features cached, epoch by val.",
    capabilities=ON_FROZEN_FEATURES))
