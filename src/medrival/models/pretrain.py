"""Contrastive (CLIP-loss) pretraining of the tiny demo models on a synthetic corpus.

Deterministic for a fixed seed and thread count: the same run writes byte-identical weights.
Token-embedding rows of tokens absent from the corpus are zeroed at the start and stay zero (no gradient,
and weight decay of zero is zero), which is what lets ``demo_weights.save_compact`` store only used rows.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class PretrainConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0


def _zero_unused_token_rows(model, token_batches) -> None:
    import torch

    used = torch.unique(torch.cat([t.flatten() for t in token_batches]))
    keep = torch.zeros(model.token_embedding.weight.shape[0], dtype=torch.bool)
    keep[used] = True
    keep[0] = False  # padding id: never attended to by the EOT-pooled output
    with torch.no_grad():
        model.token_embedding.weight[~keep] = 0.0


def _lr_at(step: int, total: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(model, preprocess, tokenizer, corpus, config: PretrainConfig, log=print):
    """Train ``model`` in place on ``corpus`` (images + per-epoch captions); returns per-epoch mean losses."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed)
    epoch_tokens = [tokenizer(corpus.captions(epoch, config.seed)) for epoch in range(config.epochs)]
    _zero_unused_token_rows(model, epoch_tokens)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    n = len(corpus.images)
    steps_per_epoch = n // config.batch_size
    total, step, losses = steps_per_epoch * config.epochs, 0, []
    generator = np.random.default_rng(config.seed)
    model.train()
    for epoch in range(config.epochs):
        order, started, running = generator.permutation(n), time.time(), 0.0
        for batch in range(steps_per_epoch):
            index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
            images = preprocess(corpus.images[index])
            image_f, text_f, scale = model(images, epoch_tokens[epoch][index])
            logits = scale * image_f @ text_f.T
            targets = torch.arange(len(index))
            loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running += loss.item()
            step += 1
        losses.append(running / max(1, steps_per_epoch))
        log(f"epoch {epoch + 1}/{config.epochs} loss {losses[-1]:.4f} ({time.time() - started:.1f}s)")
    model.eval()
    return losses
