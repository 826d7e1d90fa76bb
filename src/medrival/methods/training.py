"""The engine shared by the methods that train the encoder itself (LoRA, full fine-tuning).

One fit: copy the shared model (the runner reuses one loaded model across cells, so training never touches it),
let the method choose what trains, preprocess the train and validation images once (uint8 -> pixels, on the CPU),
then train mini-batches (seeded shuffling) with AdamW under a linear-warmup + cosine schedule. After every epoch the
validation AUROC is measured; the trainable state of the best epoch (epoch 0 = the zero-shot start) is restored at
the end, so checkpoint selection uses the validation split only. Before the first step every trainable parameter
must receive a gradient: an adapter placed where the forward pass never goes (or an encoder run under ``no_grad``,
MedVLMBench's LoRA bug) is an error, not a silent linear probe.

The classifier is CLIP's own decision rule made trainable:
``logits = logit_scale * normalize(image_features(pixels)) @ normalize(W).T + b``, with ``W`` (K x D) initialised
from the zero-shot text embeddings. When the text tower trains too, ``W`` is instead recomputed from the class
prompts through the text tower at every step (with gradients).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medrival.core import progress as live_progress
from medrival.core.errors import ConfigError, MedrivalError
from medrival.methods.selection import softmax, validation_auroc

PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainingConfig:
    """Options of the shared training loop (LoRA and full fine-tuning add their own and change defaults)."""

    epochs: int = field(default=10, metadata={"help": "Passes over the training split (best epoch chosen on val)."})
    batch_size: int = field(default=32, metadata={"help": "Training images per optimisation step."})
    lr: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (after warmup)."})
    head_lr: float | None = field(
        default=None, metadata={"help": "Learning rate of the classifier head; default: the same as lr."})
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay on matrices (biases and norms are not decayed)."})
    warmup_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of all steps with a linear warmup before the cosine decay."})
    patience: int | None = field(
        default=None, metadata={"help": "Stop after this many epochs without a better validation AUROC; "
                                        "default: run every epoch."})
    grad_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass: less activation memory, one extra forward pass per step."})
    precision: str = field(
        default="fp32", metadata={"help": "fp32 or bf16 (torch.autocast with bfloat16). bf16 pays off on GPUs "
                                          "that support it; on CPU, bf16 autocast on open_clip's stock attention "
                                          "is SLOWER than fp32 (weight copies every step), so keep fp32 there."})
    eval_batch_size: int = field(default=128, metadata={"help": "Images per batch when scoring val/test."})

    def __post_init__(self) -> None:
        check_training_config(type(self).__name__, self)


def check_training_config(name: str, config: TrainingConfig) -> None:
    """Raise one ``ConfigError`` naming every training option that is out of range."""
    problems = training_config_problems(config)
    if problems:
        raise ConfigError(f"{name}: " + "; ".join(problems) + ".")


def training_config_problems(config: TrainingConfig) -> list[str]:
    """``"<option> must be ..., got <value>"`` for each out-of-range training option."""
    problems = []
    for option in ("epochs", "batch_size", "eval_batch_size"):  # epoch 0 is the untrained start, always measured
        value = getattr(config, option)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{option} must be a whole number >= 1, got {value!r}")
    for option in ("lr", "head_lr"):
        value = getattr(config, option)
        if value is not None and not (_is_number(value) and value > 0):
            problems.append(f"{option} must be a positive number, got {value!r}")
    if not (_is_number(config.weight_decay) and config.weight_decay >= 0):
        problems.append(f"weight_decay must be >= 0, got {config.weight_decay!r}")
    if not (_is_number(config.warmup_fraction) and 0 <= config.warmup_fraction < 1):
        problems.append(f"warmup_fraction must be in [0, 1), got {config.warmup_fraction!r}")
    if config.patience is not None and (not isinstance(config.patience, int) or isinstance(config.patience, bool)
                                        or config.patience < 1):
        problems.append(f"patience must be a whole number >= 1 or null (no early stopping), got {config.patience!r}")
    if config.precision not in PRECISIONS:
        problems.append(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------------ precision


def check_precision(device, precision: str) -> None:
    """Raise ``MedrivalError`` when ``precision`` cannot run on ``device``."""
    import torch

    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MedrivalError(f"precision 'bf16' is not supported by this GPU ({torch.cuda.get_device_name(device)}); "
                            "use precision: fp32.")
    if device.type not in ("cuda", "cpu"):
        raise MedrivalError(f"precision 'bf16' autocast is not available on device {device.type!r} here; "
                            "use precision: fp32.")


def autocast(device, precision: str):
    """bf16 autocast on the model's device, or nothing for fp32."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded(seed: int, device):
    """Seed torch's global RNG (LoRA initialisation, dropout) for the block, then restore the caller's state."""
    import torch

    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------------------------------------ network


def working_copy(adapter):
    """The adapter over a deep copy of its module: training it leaves the shared model bit-identical."""
    clone = copy.copy(adapter)
    clone.model = copy.deepcopy(adapter.model)
    return clone


def _class_weights_from_prompts(adapter, prompts: list[list[str]]):
    """Normalised mean of each class's normalised prompt embeddings, with gradients through the text tower."""
    import torch
    import torch.nn.functional as F

    flat = [text for class_prompts in prompts for text in class_prompts]
    embedded = adapter.text_features(flat, normalize=True).float()
    sizes = [len(class_prompts) for class_prompts in prompts]
    means = torch.stack([chunk.mean(0) for chunk in torch.split(embedded, sizes)])
    return F.normalize(means, dim=-1)


def _contrastive_classifier_class():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ContrastiveClassifier(nn.Module):
        """logit_scale * cos(image embedding, class weight) + bias, over the adapter's (copied) model."""

        def __init__(self, adapter, class_init, prompts: list[list[str]] | None, cached_features: bool):
            super().__init__()
            self.backbone = adapter.model  # registered, so .parameters() covers the encoder
            self.adapter = adapter
            self.prompts = prompts  # set: class weights come from the text tower (it trains)
            self.cached_features = cached_features  # the image tower is frozen: inputs are cached embeddings
            self.logit_scale = float(adapter.logit_scale)
            self.freeze_norm_statistics = False
            self.head_weight = None if prompts else nn.Parameter(torch.as_tensor(class_init).float().clone())
            self.head_bias = None if prompts else nn.Parameter(torch.zeros(len(class_init)))

        def class_weights(self):
            if self.prompts:
                return _class_weights_from_prompts(self.adapter, self.prompts)
            return F.normalize(self.head_weight, dim=-1)

        def forward(self, inputs, class_weights=None):
            if self.cached_features:
                image = F.normalize(inputs.float(), dim=-1)
            else:
                image = self.adapter.image_features(inputs, normalize=True)
            weights = self.class_weights() if class_weights is None else class_weights
            logits = self.logit_scale * image.float() @ weights.float().T
            return logits if self.head_bias is None else logits + self.head_bias

        def train(self, mode: bool = True):
            super().train(mode)
            if mode and self.freeze_norm_statistics:  # a frozen encoder keeps its BatchNorm statistics
                for module in self.backbone.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
            return self

    return ContrastiveClassifier


def build_classifier(adapter, class_init, prompts: list[list[str]] | None = None, cached_features: bool = False):
    """The trainable classifier over ``adapter`` (already a working copy); every parameter starts frozen."""
    network = _contrastive_classifier_class()(adapter, class_init, prompts, cached_features)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.to(adapter.device)


def head_parameters(network) -> list:
    return [p for p in (network.head_weight, network.head_bias) if p is not None]


def trainable_parameters(network) -> list:
    return [p for p in network.parameters() if p.requires_grad]


def count_trainable(network) -> int:
    return int(sum(p.numel() for p in trainable_parameters(network)))


# ------------------------------------------------------------------------------------------------ inputs


def preprocess_split(adapter, split, chunk: int = 256):
    """Model inputs of every image of ``split``, prepared once per fit.

    In-memory splits (the demo world's small arrays) become float pixels (N x 3 x S x S) at once. Lazy splits
    (real releases) are decoded in parallel straight to the model's geometry and kept as uint8
    (:class:`PixelStore`), a quarter of the memory of float pixels, normalised a batch at a time."""
    import torch

    if split.lazy:
        batches = list(split.images.batches(adapter.geometry, chunk))
        size = adapter.geometry.size
        return PixelStore(adapter, np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8))
    parts = [adapter.preprocess(split.images[start:start + chunk]) for start in range(0, len(split), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)


class PixelStore:
    """uint8 images already at the model's input size; indexing (rows or a slice) gives normalised pixels.

    10,000 images at 224 px take 1.5 GB here against 6 GB as float pixels; normalising a batch of images already
    at the model's size is the cheap path of ``preprocess_images`` (no resampling)."""

    def __init__(self, adapter, pixels: np.ndarray):
        self.adapter, self.pixels = adapter, pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            rows = np.asarray(rows.cpu() if hasattr(rows, "cpu") else rows, dtype=np.int64)
        return self.adapter.preprocess(self.pixels[rows])


def parameters_reached(network, inputs, precision: str, class_weights=None) -> set[int]:
    """ids of the trainable parameters that receive a gradient from one forward/backward on ``inputs``."""
    was_training = network.training
    network.eval()
    with autocast(network.adapter.device, precision):
        logits = network(inputs.to(network.adapter.device), class_weights)
    logits.float().sum().backward()
    reached = {id(p) for p in trainable_parameters(network) if p.grad is not None}
    for parameter in network.parameters():
        parameter.grad = None
    network.train(was_training)
    return reached


def check_gradients_reach(network, inputs, precision: str) -> None:
    """Raise ``MedrivalError`` when some trainable parameter would never be updated by training."""
    if not trainable_parameters(network):
        raise MedrivalError("nothing to train: the method left every parameter frozen.")
    reached = parameters_reached(network, inputs[:2], precision)
    missing = [name for name, p in network.named_parameters() if p.requires_grad and id(p) not in reached]
    if missing:
        raise MedrivalError(
            f"{len(missing)} trainable parameter(s) get no gradient from the forward pass, so training would never "
            f"change them (e.g. {missing[:3]}). The adapted module is not on the path the model's forward takes; "
            "choose other target modules.")


# ------------------------------------------------------------------------------------------------ loop


@dataclass
class TrainingResult:
    best_epoch: int
    best_validation_auroc: float
    epochs_run: int
    validation_aurocs: list[float] = field(default_factory=list)  # epoch 0 (untrained start) first
    train_seconds: float = 0.0


def _parameter_groups(network, config: TrainingConfig) -> list[dict[str, Any]]:
    """AdamW groups: head vs encoder learning rate, and no weight decay on vectors (biases, norms)."""
    head_ids = {id(p) for p in head_parameters(network)}
    groups = []
    for is_head, lr in ((False, config.lr), (True, config.head_lr or config.lr)):
        chosen = [p for p in trainable_parameters(network) if (id(p) in head_ids) == is_head]
        decayed = [p for p in chosen if p.ndim >= 2]
        plain = [p for p in chosen if p.ndim < 2]
        groups += [{"params": ps, "lr": lr, "weight_decay": wd}
                   for ps, wd in ((decayed, config.weight_decay), (plain, 0.0)) if ps]
    return groups


def _warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = int(round(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def batch_order(num_rows: int, batch_size: int, generator) -> list:
    """Shuffled index batches; a trailing batch of one row joins the previous one (BatchNorm needs two)."""
    import torch

    order = torch.randperm(num_rows, generator=generator)
    batches = [order[start:start + batch_size] for start in range(0, num_rows, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def batch_loss(network, inputs, labels, precision: str):
    """Cross-entropy of one batch (logits in float32 even under bf16 autocast)."""
    import torch.nn.functional as F

    device = network.adapter.device
    with autocast(device, precision):
        logits = network(inputs.to(device))
    return F.cross_entropy(logits.float(), labels.to(device))


def predict_probabilities(network, inputs, batch_size: int, precision: str) -> np.ndarray:
    """Softmax probabilities (N x K float64) in eval mode, class weights computed once."""
    import torch

    device = network.adapter.device
    network.eval()
    outputs = []
    with torch.no_grad(), autocast(device, precision):
        weights = network.class_weights()
        for start in range(0, len(inputs), batch_size):
            outputs.append(network(inputs[start:start + batch_size].to(device), weights).float().cpu())
    logits = torch.cat(outputs).double().numpy() if outputs else np.zeros((0, 0))
    return softmax(logits)


def _snapshot(network) -> dict[str, Any]:
    """CPU copies of the trainable parameters and every buffer (BatchNorm statistics move in training)."""
    state = {name: p.detach().to("cpu", copy=True) for name, p in network.named_parameters() if p.requires_grad}
    state.update({name: b.detach().to("cpu", copy=True) for name, b in network.named_buffers()})
    return state


def _restore(network, state: dict[str, Any]) -> None:
    import torch

    tensors = dict(network.named_parameters())
    tensors.update(dict(network.named_buffers()))
    with torch.no_grad():
        for name, value in state.items():
            tensors[name].copy_(value)


def train_network(network, train_inputs, train_labels, val_inputs, val_labels, task, config: TrainingConfig,
                  seed: int) -> TrainingResult:
    """Train the network's trainable parameters; restore those of the best validation epoch (epoch 0 included)."""
    import torch

    started = time.perf_counter()
    train_labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    steps = config.epochs * len(batch_order(len(train_labels), config.batch_size, torch.Generator()))
    optimizer = torch.optim.AdamW(_parameter_groups(network, config))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(max(1, steps), config.warmup_fraction))
    score = lambda: validation_auroc(  # noqa: E731
        task, val_labels, predict_probabilities(network, val_inputs, config.eval_batch_size, config.precision))
    result = TrainingResult(0, score(), 0)
    result.validation_aurocs.append(result.best_validation_auroc)
    best_state, stale = _snapshot(network), 0
    with live_progress.stage("epochs", config.epochs):  # a live display shows the epochs; a no-op otherwise
        for epoch in range(1, config.epochs + 1):
            network.train()
            for rows in batch_order(len(train_labels), config.batch_size, generator):
                optimizer.zero_grad(set_to_none=True)
                batch_loss(network, train_inputs[rows], train_labels[rows], config.precision).backward()
                optimizer.step()
                scheduler.step()
            result.epochs_run, current = epoch, score()
            result.validation_aurocs.append(current)
            live_progress.advance()
            stale += 1
            if current > result.best_validation_auroc:
                result.best_epoch, result.best_validation_auroc, stale = epoch, current, 0
                best_state = _snapshot(network)
            if config.patience is not None and stale >= config.patience:
                break
    _restore(network, best_state)
    network.eval()
    result.train_seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------ method base


class EncoderTrainingMethod:
    """fit/predict/save/load around the engine; subclasses decide what trains (``_build``) and what is saved."""

    name = ""

    def __init__(self, config):
        self.config = config
        self.network = None

    # subclasses ---------------------------------------------------------------------------------------------
    def _build(self, adapter, class_init, prompts: list[list[str]]):
        """Return the network over a working copy of ``adapter`` with the chosen parameters trainable."""
        raise NotImplementedError

    def _state_arrays(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state_arrays(self, arrays: dict[str, Any]) -> None:
        raise NotImplementedError

    def _check_loaded(self, chosen: dict[str, Any]) -> None:
        """Hook: compare what the checkpoint recorded with this environment (default: nothing to check)."""

    # shared -------------------------------------------------------------------------------------------------
    def fit(self, model, train, val, features, seed: int = 0) -> None:
        from medrival.methods.zero_shot import ZeroShotConfig, class_prompts, zero_shot_classifier

        check_precision(model.device, self.config.precision)
        self.model, self.features = model, features
        self.prompts = class_prompts(train.info, ZeroShotConfig())
        with seeded(seed, model.device):
            self.network = self._build(model, zero_shot_classifier(model, train.info, features=features), self.prompts)
            self.trainable_count = count_trainable(self.network)
            train_inputs, val_inputs = self._inputs(train), self._inputs(val)
            check_gradients_reach(self.network, train_inputs, self.config.precision)
            self.result = train_network(self.network, train_inputs, train.labels, val_inputs, val.labels,
                                        train.info.task, self.config, seed)
        self._finish_training()

    def _finish_training(self) -> None:
        """Leave the copy frozen and in eval mode, with gradient checkpointing off."""
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        if self.config.grad_checkpointing:
            self.network.adapter.set_grad_checkpointing(False)

    def _inputs(self, split):
        import torch

        if self.network.cached_features:
            return torch.from_numpy(np.ascontiguousarray(self.features.image_features(self.model, split)))
        return preprocess_split(self.network.adapter, split)

    def predict(self, test):
        from medrival.methods.base import Predictions

        if self.network is None:
            raise MedrivalError(f"{self.name}: call fit() (or load()) before predict().")
        probabilities = predict_probabilities(self.network, self._inputs(test), self.config.eval_batch_size,
                                              self.config.precision)
        return Predictions(probabilities, trainable_parameters=self.trainable_count, extras=self._extras())

    def _extras(self) -> dict[str, Any]:
        from medrival.methods.selection import json_score

        return {"chosen_epoch": self.result.best_epoch,
                "best_validation_auroc": json_score(self.result.best_validation_auroc),
                "epochs_run": self.result.epochs_run, "precision": self.config.precision,
                "train_seconds": round(self.result.train_seconds, 3)}

    def _chosen(self) -> dict[str, Any]:
        return {**self._extras(), "prompts": self.prompts, "trainable_parameters": self.trainable_count,
                "num_classes": self._num_classes()}

    def _num_classes(self) -> int:
        return len(self.prompts)

    def save(self, directory) -> None:
        from medrival.methods.checkpoint import save_checkpoint

        if self.network is None:
            raise MedrivalError(f"{self.name}: nothing to save; call fit() first.")
        arrays = {f"head.{k}": v for k, v in (("weight", self.network.head_weight),
                                              ("bias", self.network.head_bias)) if v is not None}
        arrays.update(self._state_arrays())
        save_checkpoint(directory, self.name, self.config, self._chosen(), arrays)

    @classmethod
    def load(cls, directory, model, features):
        """A fitted method from ``save(directory)``, over ``model`` (the same checkpoint it was trained on)."""
        import torch

        from medrival.methods.checkpoint import load_checkpoint
        from medrival.methods.base import METHODS

        config, chosen, arrays = load_checkpoint(directory, cls.name, METHODS.get(cls.name).config_class)
        method = cls(config)
        method.model, method.features, method.prompts = model, features, chosen["prompts"]
        placeholder = np.zeros((chosen["num_classes"], model.embed_dim), dtype=np.float32)
        with seeded(0, model.device):  # adapter initialisation is overwritten below; keep the caller's RNG
            method.network = method._build(model, placeholder, method.prompts)
        method.trainable_count = int(chosen["trainable_parameters"])
        with torch.no_grad():
            for key, parameter in (("head.weight", method.network.head_weight),
                                   ("head.bias", method.network.head_bias)):
                if parameter is not None:
                    parameter.copy_(torch.from_numpy(arrays.pop(key)))
        method._load_state_arrays(arrays)
        method._check_loaded(chosen)
        method.result = TrainingResult(chosen["chosen_epoch"], chosen["best_validation_auroc"] or -math.inf,
                                       chosen["epochs_run"], train_seconds=chosen["train_seconds"])
        method._finish_training()
        return method


def tensors_by_name(module, names: Sequence[str]) -> dict[str, Any]:
    """CPU copies of named parameters/buffers of ``module`` (for checkpoints)."""
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    return {name: tensors[name].detach().cpu().contiguous() for name in names}
