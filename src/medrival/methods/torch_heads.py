"""A small, seeded training loop for parameters trained on cached features, with validation-based epoch choice.

Tip-Adapter-F, CLIP-Adapter and CoOp all train a few tensors against frozen features: each epoch shuffles the
training rows with a seeded generator, steps AdamW on a cosine schedule, then scores the validation split. The
parameters of the best-scoring epoch (epoch 0 = the untrained start, so training can never make the chosen
model worse on validation) are restored at the end. Nothing here looks at test data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from medrival.core import progress as live_progress
from medrival.core.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    epochs: int
    lr: float
    weight_decay: float = 0.0
    batch_size: int = 32  # 0 trains full-batch


@dataclass
class TrainingOutcome:
    best_epoch: int
    best_score: float
    best_info: Any = None
    scores: list[float] = field(default_factory=list)  # validation score after each epoch, epoch 0 first


def is_number(value) -> bool:
    """A real number given as int or float (a bool or a string is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_schedule(method: str, epochs: int, lr: float, weight_decay: float, batch_size: int) -> None:
    """Raise ``ConfigError`` naming the option when a training option is out of range."""
    if not is_count(epochs, 0):
        raise ConfigError(f"{method} epochs must be a whole number >= 0, got {epochs!r}.")
    if not (is_number(lr) and lr > 0):
        raise ConfigError(f"{method} lr must be a number > 0, got {lr!r}.")
    if not (is_number(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"{method} weight_decay must be a number >= 0, got {weight_decay!r}.")
    if not is_count(batch_size, 0):
        raise ConfigError(f"{method} batch_size must be a whole number >= 0 (0 = full batch), got {batch_size!r}.")


def _batches(num_rows: int, batch_size: int, generator) -> list:
    import torch

    order = torch.randperm(num_rows, generator=generator)
    size = num_rows if batch_size == 0 else batch_size
    return [order[start:start + size] for start in range(0, num_rows, size)]


def train_with_validation(parameters: Sequence, batch_loss: Callable[[Any], Any], num_rows: int,
                          validate: Callable[[], tuple[float, Any]], schedule: Schedule,
                          seed: int) -> TrainingOutcome:
    """Train ``parameters`` to minimise ``batch_loss(row_indices)``; keep the epoch with the best validation score.

    ``validate()`` returns (score, info) for the current parameters; ``info`` (e.g. hyperparameters chosen
    alongside the epoch) is returned for the best epoch. Ties go to the earlier epoch."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(list(parameters), lr=schedule.lr, weight_decay=schedule.weight_decay)
    steps_per_epoch = len(_batches(num_rows, schedule.batch_size, torch.Generator().manual_seed(0)))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, schedule.epochs * steps_per_epoch))
    score, info = validate()
    outcome = TrainingOutcome(best_epoch=0, best_score=score, best_info=info, scores=[score])
    best_state = [p.detach().clone() for p in parameters]
    for epoch in live_progress.counted("epochs", range(1, schedule.epochs + 1)):
        for rows in _batches(num_rows, schedule.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            batch_loss(rows).backward()
            optimizer.step()
            scheduler.step()
        score, info = validate()
        outcome.scores.append(score)
        if score > outcome.best_score:
            outcome.best_epoch, outcome.best_score, outcome.best_info = epoch, score, info
            best_state = [p.detach().clone() for p in parameters]
    with torch.no_grad():
        for parameter, best in zip(parameters, best_state):
            parameter.copy_(best)
    return outcome
