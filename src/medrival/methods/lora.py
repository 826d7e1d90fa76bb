"""LoRA (peft) on the image tower, the text tower or both, trained end to end through the encoder.

Adapters are injected into a deep copy of the model (the shared one stays bit-identical for the next cell).
Vision-only: logits come from the (optionally trained) head initialised from the zero-shot text embeddings.
With the text tower adapted, class weights are recomputed from the class prompts through the adapted text tower at
every step. Text-only LoRA leaves the image tower frozen, so its image features come from the shared feature cache.
Default target modules per tower layout live in ``medrival.models.lora_targets``.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any

from medrival.core.errors import ConfigError
from medrival.methods.base import TRAINS_ENCODER, METHODS, MethodSpec
from medrival.methods.training import (EncoderTrainingMethod, TrainingConfig, build_classifier, check_training_config,
                                       head_parameters, working_copy)
from medrival.models.lora_targets import TOWERS, resolve_targets


@dataclass
class LoraConfig(TrainingConfig):
    lr: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate of the LoRA weights."})
    head_lr: float | None = field(default=1e-3, metadata={"help": "Learning rate of the classifier head; "
                                                                  "null: the same as lr."})
    tower: str = field(default="vision", metadata={"help": "Which tower gets adapters: vision, text or both."})
    rank: int = field(default=8, metadata={"help": "LoRA rank r."})
    alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (updates are scaled by alpha/r)."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA branch's input during training."})
    target_modules: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Module-name suffixes to adapt inside the chosen tower(s) (e.g. "
                                        "['q_proj', 'v_proj']); default: per layout (open_clip: attn + mlp.c_fc + "
                                        "mlp.c_proj; timm ViT: attn.qkv/proj + mlp.fc1/fc2; transformers CLIP/"
                                        "SigLIP: q_proj + v_proj; BERT: query + value)."})
    train_head: bool = field(
        default=True, metadata={"help": "Vision-only LoRA: also train the classifier head (initialised from the "
                                        "zero-shot text embeddings); false keeps the zero-shot head fixed."})

    def __post_init__(self) -> None:
        check_training_config("lora", self)
        if self.tower not in TOWERS:
            raise ConfigError(f"lora tower must be one of {TOWERS}, got {self.tower!r}.")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"lora rank must be a whole number >= 1, got {self.rank!r}.")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise ConfigError(f"lora alpha must be a positive number, got {self.alpha!r}.")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"lora dropout must be in [0, 1), got {self.dropout!r}.")
        if self.target_modules is not None:
            if isinstance(self.target_modules, str):
                self.target_modules = (self.target_modules,)
            self.target_modules = tuple(self.target_modules)
            if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
                raise ConfigError(f"lora target_modules must be a non-empty list of module-name suffixes, "
                                  f"got {list(self.target_modules)!r}.")


def adapted_towers(adapter, tower: str) -> dict[str, Any]:
    """{"vision": module, "text": module} restricted to the configured tower(s)."""
    towers = {"vision": adapter.image_tower, "text": adapter.text_tower}
    return towers if tower == "both" else {tower: towers[tower]}


def inject_lora(adapter, config: LoraConfig) -> list[str]:
    """Add LoRA adapters to ``adapter.model`` in place (call on a working copy); returns the adapted modules."""
    import peft

    targets = resolve_targets(adapter.model, adapted_towers(adapter, config.tower), config.target_modules)
    # A regex of exact full names: peft matches a list by suffix, so the list entry "transformer.resblocks.0.attn"
    # (text tower) would also adapt "visual.transformer.resblocks.0.attn".
    exact_names = "|".join(re.escape(name) for name in targets)
    lora_config = peft.LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                  target_modules=f"(?:{exact_names})", bias="none")
    peft.inject_adapter_in_model(lora_config, adapter.model)
    pin_multihead_base_weights(adapter.model)
    return targets


def pin_multihead_base_weights(module) -> int:
    """Keep the frozen weights of LoRA-wrapped ``nn.MultiheadAttention`` layers exactly frozen.

    peft 0.21 runs such a layer by merging (W + dW into new tensors), calling the attention, then unmerging by
    subtraction, (W + dW) - dW, which is W only up to rounding: the "frozen" weights drift a little at every forward
    pass, so a trained copy and a reloaded one disagree (~1e-6 here). The original tensors are never written to, so
    re-registering them after each forward pass keeps the base bit-exact. Returns the number of layers pinned."""
    import torch.nn as nn
    from peft.tuners.lora.layer import MultiheadAttention as LoraMultiheadAttention

    layers = [m for m in module.modules() if isinstance(m, LoraMultiheadAttention)]
    for layer in layers:
        attention = layer.get_base_layer()
        out_projection = attention.out_proj.get_base_layer()
        originals = (attention.in_proj_weight, out_projection.weight)

        def restore(_module, _inputs, _output, attention=attention, out_projection=out_projection,
                    originals=originals):
            for owner, name, original in ((attention, "in_proj_weight", originals[0]),
                                          (out_projection, "weight", originals[1])):
                delattr(owner, name)
                owner.register_parameter(name, original if isinstance(original, nn.Parameter)
                                         else nn.Parameter(original, requires_grad=False))

        layer.register_forward_hook(restore)
    return len(layers)


def lora_parameters(module) -> list:
    return [p for name, p in module.named_parameters() if ".lora_" in name]


class Lora(EncoderTrainingMethod):
    name = "lora"

    def _build(self, adapter, class_init, prompts):
        adapter = working_copy(adapter)
        self.targets = inject_lora(adapter, self.config)
        text_trains = self.config.tower in ("text", "both")
        network = build_classifier(adapter, class_init, prompts if text_trains else None,
                                   cached_features=self.config.tower == "text")
        network.freeze_norm_statistics = True  # the base encoder stays frozen, BatchNorm statistics included
        for parameter in lora_parameters(network.backbone):
            parameter.requires_grad_(True)
        if self.config.train_head and not text_trains:
            for parameter in head_parameters(network):
                parameter.requires_grad_(True)
        if self.config.grad_checkpointing:
            adapter.set_grad_checkpointing(True)
        return network

    def _extras(self) -> dict[str, Any]:
        return {**super()._extras(), "adapted_modules": len(self.targets)}

    def _chosen(self) -> dict[str, Any]:
        import peft

        return {**super()._chosen(), "peft_version": peft.__version__}

    def _check_loaded(self, chosen: dict[str, Any]) -> None:
        """peft's LoRA on nn.MultiheadAttention applies the out_proj update twice in 0.21 (peft PR #3774 fixes
        it): adapters trained on packed attention may predict differently under another peft version."""
        import warnings

        import peft

        saved = chosen.get("peft_version")
        if saved != peft.__version__ and any(name.endswith(".attn") for name in self.targets):
            warnings.warn(f"this LoRA checkpoint was trained with peft {saved} and is loaded with peft "
                          f"{peft.__version__}; its adapters on nn.MultiheadAttention layers may act differently "
                          f"(peft changed how their out_proj update is applied). Re-check its predictions.",
                          stacklevel=3)

    def _state_arrays(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.network.backbone)
        return {f"lora.{name}": tensor for name, tensor in state.items()}

    def _load_state_arrays(self, arrays: dict[str, Any]) -> None:
        import torch
        from peft import set_peft_model_state_dict

        from medrival.core.errors import DataError

        state = {name[len("lora."):]: torch.from_numpy(value) for name, value in arrays.items()
                 if name.startswith("lora.")}
        expected = set(get_state_names(self.network.backbone))
        if set(state) != expected:
            raise DataError(f"this LoRA checkpoint does not fit the model: {len(set(state) ^ expected)} adapter "
                            "tensors differ in name; load it over the model (and tower/targets) it was trained on.")
        set_peft_model_state_dict(self.network.backbone, state)


def get_state_names(module) -> list[str]:
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(module))


METHODS.register("lora", MethodSpec(
    name="lora", config_class=LoraConfig, build=Lora, families=("contrastive",), tasks=("binary", "multiclass"),
    summary="LoRA (peft) on the image/text tower(s), trained through the encoder; head from zero-shot text "
            "embeddings; best epoch chosen on validation.",
    capabilities=TRAINS_ENCODER))
