"""Activation (gradient) checkpointing of transformers models, for every adapter that serves one."""
from __future__ import annotations

from typing import Any


def set_transformers_checkpointing(model: Any, enabled: bool) -> None:
    """Turn activation (gradient) checkpointing of a transformers model on or off."""
    # transformers 5.x renamed gradient_checkpointing_* to activation_checkpointing_*; 4.x has only the old.
    new_api = hasattr(model, "activation_checkpointing_enable")
    if not enabled:
        (model.activation_checkpointing_disable if new_api else model.gradient_checkpointing_disable)()
        return
    # Non-reentrant checkpointing keeps gradients flowing to adapter weights (LoRA) even when the checkpointed
    # block's inputs do not require grad, which the reentrant variant would drop.
    options = {"use_reentrant": False}
    if new_api:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
