"""Shared steps of the generative-adapter tests."""
from __future__ import annotations

import torch


def overfit(model, images, prompts: list[str], answers: list[str], *, steps: int, lr: float) -> list[float]:
    """Train every weight of ``model`` on one batch with Adam for ``steps`` steps; the loss of each step."""
    batch = model.training_batch(images, prompts, answers)
    optimizer = torch.optim.Adam(model.model.parameters(), lr=lr)
    model.model.train()
    losses = []
    for _ in range(steps):
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
