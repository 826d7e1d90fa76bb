"""Supervised fine-tuning of a generative model on VQA questions: the loop, validation loss and checkpoint choice.

Questions are asked with their form's prompt and taught their form's answer (``vqa_answers.training_answers``:
"B. option text" for multiple choice). The loss covers answer tokens only (``GenerativeModel.training_batch`` labels everything else -100). After every
epoch the mean validation loss per answer token is measured, and the trainable weights of the epoch with the
lowest one are restored at the end (epoch 0, the untrained start, included): the checkpoint is chosen on
validation data, never on test.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrival.core import progress as live_progress
from medrival.core.types import VQASplit
from medrival.methods.training import _warmup_cosine, autocast
from medrival.methods.vqa_answers import question_images, question_prompts, training_answers


@dataclass
class SFTSettings:
    epochs: int
    lr: float
    batch_size: int
    eval_batch_size: int
    weight_decay: float
    warmup_fraction: float
    precision: str
    max_val_questions: int | None


@dataclass
class SFTResult:
    best_epoch: int = 0
    validation_losses: list[float] = field(default_factory=list)  # epoch 0 (untrained start) first
    train_seconds: float = 0.0
    steps: int = 0


def validation_rows(split: VQASplit, limit: int | None, seed: int) -> np.ndarray:
    """All validation questions, or a seeded subset of ``limit`` of them (the same for every model)."""
    rows = np.arange(len(split))
    if limit is None or limit >= len(rows):
        return rows
    return np.sort(np.random.default_rng([seed, 7]).choice(rows, size=limit, replace=False))


def _batch(model, split: VQASplit, rows: np.ndarray, prompts: list[str], answers: list[str]) -> dict:
    return model.training_batch(question_images(split, rows), [prompts[i] for i in rows],
                                [answers[i] for i in rows])


def validation_loss(model, split: VQASplit, rows: np.ndarray, settings: SFTSettings) -> float:
    """Mean cross-entropy per answer token over ``rows`` (batches weighted by their answer-token counts)."""
    import torch

    prompts, answers = question_prompts(split), training_answers(split)
    total, tokens = 0.0, 0
    model.model.eval()
    with torch.inference_mode(), autocast(model.device, settings.precision):
        for start in range(0, len(rows), settings.eval_batch_size):
            batch = _batch(model, split, rows[start:start + settings.eval_batch_size], prompts, answers)
            count = int((batch["labels"][:, 1:] != -100).sum())  # the model predicts each label from the one before
            total += float(model.loss(batch)) * count
            tokens += count
    return total / max(tokens, 1)


def _snapshot(parameters: dict[str, Any]) -> dict[str, Any]:
    return {name: p.detach().to("cpu", copy=True) for name, p in parameters.items()}


def train_sft(model, train: VQASplit, val: VQASplit, settings: SFTSettings, seed: int) -> SFTResult:
    """Train the model's trainable parameters on ``train``; keep those of the best validation epoch."""
    import torch

    started = time.perf_counter()
    trainable = {name: p for name, p in model.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=settings.lr, weight_decay=settings.weight_decay)
    per_epoch = -(-len(train) // settings.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(max(1, settings.epochs * per_epoch), settings.warmup_fraction))
    val_rows, prompts = validation_rows(val, settings.max_val_questions, seed), question_prompts(train)
    answers = training_answers(train)
    result = SFTResult(validation_losses=[validation_loss(model, val, val_rows, settings)])
    best, generator = _snapshot(trainable), torch.Generator().manual_seed(seed)
    for epoch in live_progress.counted("epochs", range(1, settings.epochs + 1)):
        model.model.train()
        for rows in torch.randperm(len(train), generator=generator).split(settings.batch_size):
            optimizer.zero_grad(set_to_none=True)
            with autocast(model.device, settings.precision):
                loss = model.loss(_batch(model, train, rows.numpy(), prompts, answers))
            loss.backward()
            optimizer.step()
            scheduler.step()
            result.steps += 1
        result.validation_losses.append(validation_loss(model, val, val_rows, settings))
        if result.validation_losses[-1] < min(result.validation_losses[:-1]):
            result.best_epoch, best = epoch, _snapshot(trainable)
    with torch.no_grad():
        for name, value in best.items():
            trainable[name].copy_(value)
    model.model.eval()
    if all(p.requires_grad for p in model.model.parameters()):
        # Every weight trained in place: the generation cache hashes adapters and tuned subsets, not whole
        # models, so this model's answers are keyed by a state of their own and never meet the base model's.
        model.trained_state = uuid.uuid4().hex
    result.train_seconds = time.perf_counter() - started
    return result
