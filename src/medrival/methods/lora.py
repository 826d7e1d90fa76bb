"""LoRA (peft) on the image tower, the text tower or both, trained end to end through the encoder.

Adapters are injected into a deep copy of the model (the shared one stays bit-identical for the next cell).
Vision-only: logits come from the (optionally trained) head initialised from the zero-shot text embeddings.
With the text tower adapted, class weights are recomputed from the class prompts through the adapted text tower at
every step. Text-only LoRA leaves the image tower frozen, so its image features come from the shared feature cache.
Default target modules per tower layout live in ``medrival.models.lora_targets``: the same six projections of
every block whichever library serves the model, packed attention split first so that each update is scaled alpha/r
once. ``lora_budget`` gives a configuration's LoRA size without training; a fitted method reports it as
``lora_parameters`` in its extras, which a study cell stores in its record's ``cost`` (beside ``trainable_params``,
which also counts the classifier head).
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

from medrival.core.errors import ConfigError
from medrival.methods.base import TRAINS_ENCODER, METHODS, MethodSpec
from medrival.methods.training import (EncoderTrainingMethod, TrainingConfig, build_classifier, check_training_config,
                                       head_parameters, working_copy)
from medrival.models.lora_targets import TOWERS, resolve_targets, tower_prefix


MAX_LORA_RANK = 4096  # far above any useful rank; a larger one is a typo (10**8 would exhaust memory)


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
                                        "['q_proj', 'v_proj']); default: attention q, k, v, output and both MLP "
                                        "layers of every block, in every layout (open_clip: attn.q_proj/k_proj/"
                                        "v_proj/out_proj + mlp.c_fc/c_proj; timm ViT: attn.qkv.q_proj/k_proj/"
                                        "v_proj + attn.proj + mlp.fc1/fc2; transformers CLIP/SigLIP: self_attn."
                                        "q/k/v/out_proj + mlp.fc1/fc2; BERT: attention.self.query/key/value + "
                                        "attention.output.dense + intermediate.dense + output.dense)."})
    train_head: bool = field(
        default=True, metadata={"help": "Vision-only LoRA: also train the classifier head (initialised from the "
                                        "zero-shot text embeddings); false keeps the zero-shot head fixed."})

    def __post_init__(self) -> None:
        check_training_config("lora", self)
        if self.tower not in TOWERS:
            raise ConfigError(f"lora tower must be one of {TOWERS}, got {self.tower!r}.")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or not 1 <= self.rank <= MAX_LORA_RANK:
            raise ConfigError(f"lora rank must be a whole number in 1..{MAX_LORA_RANK}, got {self.rank!r}; "
                              "typical ranks are 4 to 64.")
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
    """Add LoRA adapters to ``adapter.model`` in place (call on a working copy); returns the adapted modules.

    Packed attention in the adapted tower(s) is split into separate Linear layers first (same outputs), so that
    peft wraps only ordinary layers: every update is scaled alpha/r once and q, k, v get a rank-r pair each, as
    in every serving library (``medrival.models.lora_targets``)."""
    towers = adapted_towers(adapter, config.tower)
    return _inject(adapter.model, towers, config.rank, config.alpha, config.dropout, config.target_modules)


def _inject(model, towers: dict[str, Any], rank: int, alpha: float, dropout: float,
            target_modules: tuple[str, ...] | None) -> list[str]:
    import peft

    from medrival.models.split_attention import split_packed_attention

    split_packed_attention(model, [tower_prefix(model, module) for module in towers.values()])
    targets = resolve_targets(model, towers, target_modules)
    check_rank_fits(model, targets, rank)
    # A regex of exact full names: peft matches a list by suffix, so the list entry "transformer.resblocks.0.mlp.c_fc"
    # (text tower) would also adapt "visual.transformer.resblocks.0.mlp.c_fc".
    exact_names = "|".join(re.escape(name) for name in targets)
    lora_config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                  target_modules=f"(?:{exact_names})", bias="none")
    peft.inject_adapter_in_model(lora_config, model)
    return targets


def check_rank_fits(model, targets: Iterable[str], rank: int, method: str = "lora") -> None:
    """A rank-r update of a d_in x d_out layer has rank at most min(d_in, d_out): a larger r only adds parameters
    (and memory). Raise naming the rank and the narrowest adapted layer's width."""
    widths = {}
    for name in targets:
        module = model.get_submodule(name)
        sizes = [getattr(module, side) for side in ("in_features", "out_features")
                 if isinstance(getattr(module, side, None), int)]
        if sizes:
            widths[name] = min(sizes)
    if widths:
        narrowest = min(widths, key=widths.get)
        if rank > widths[narrowest]:
            raise ConfigError(f"{method} rank {rank} exceeds the width {widths[narrowest]} of the adapted layer "
                              f"{narrowest!r} (a rank-r update of a layer this narrow has rank at most "
                              f"{widths[narrowest]}); choose a rank <= {widths[narrowest]}.")


class LoraBudget(NamedTuple):
    parameters: int  # trainable LoRA parameters (the A and B matrices; the classifier head not included)
    modules: int  # adapted modules


def lora_budget(model_or_adapter, rank: int = 8, tower: str = "vision",
                target_modules: Iterable[str] | None = None) -> LoraBudget:
    """The LoRA parameters and modules that ``lora`` with these options trains, without training or copying
    weights: the same injection runs on a skeleton of the model whose tensors live on the meta device.

    ``model_or_adapter``: a contrastive adapter (``.model``, ``.image_tower``, ``.text_tower``) or a bare open_clip /
    transformers model. The method records the same count as ``lora_parameters`` in its extras (a cell's ``cost``).
    """
    if tower not in TOWERS:
        raise ConfigError(f"lora_budget: tower must be one of {TOWERS}, got {tower!r}. Fix: pass one of them.")
    model, towers = _model_and_towers(model_or_adapter, tower)
    prefixes = {name: tower_prefix(model, module) for name, module in towers.items()}
    skeleton = _meta_skeleton(model)
    skeleton_towers = {name: skeleton.get_submodule(prefix) for name, prefix in prefixes.items()}
    targets = _inject(skeleton, skeleton_towers, rank, 1.0, 0.0,
                      None if target_modules is None else tuple(target_modules))
    return LoraBudget(sum(p.numel() for p in lora_parameters(skeleton)), len(targets))


def _model_and_towers(model_or_adapter, tower: str) -> tuple[Any, dict[str, Any]]:
    """(model, {"vision": module, "text": module}) of an adapter, or of a bare open_clip / transformers model."""
    if hasattr(model_or_adapter, "image_tower"):
        return model_or_adapter.model, adapted_towers(model_or_adapter, tower)
    model = model_or_adapter
    found = {"vision": next((getattr(model, a) for a in ("visual", "vision_model") if hasattr(model, a)), None),
             "text": next((getattr(model, a) for a in ("text", "transformer", "text_model") if hasattr(model, a)),
                          None)}
    wanted = ("vision", "text") if tower == "both" else (tower,)
    missing = [name for name in wanted if found[name] is None]
    if missing:
        raise ConfigError(f"lora_budget: found no {'/'.join(missing)} tower in {type(model).__name__}. Expected an "
                          "adapter or an open_clip/transformers CLIP-style model (visual/vision_model and "
                          "text/transformer/text_model). Fix: pass the adapter that serves the model.")
    return model, {name: found[name] for name in wanted}


def _meta_skeleton(model):
    """A deep copy of ``model`` whose parameters and buffers are empty meta-device tensors (no memory used)."""
    import copy

    import torch

    memo: dict[int, Any] = {}
    for parameter in model.parameters():
        memo[id(parameter)] = torch.nn.Parameter(torch.empty_like(parameter, device="meta"),
                                                 requires_grad=parameter.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


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
        adapter_parameters = lora_parameters(network.backbone)
        self.lora_count = int(sum(p.numel() for p in adapter_parameters))
        for parameter in adapter_parameters:
            parameter.requires_grad_(True)
        if self.config.train_head and not text_trains:
            for parameter in head_parameters(network):
                parameter.requires_grad_(True)
        if self.config.grad_checkpointing:
            adapter.set_grad_checkpointing(True)
        return network

    def _extras(self) -> dict[str, Any]:
        # lora_parameters: the adapter's size alone (trainable_params adds the head), to compare paired arms.
        return {**super()._extras(), "adapted_modules": len(self.targets), "lora_parameters": self.lora_count}

    def _chosen(self) -> dict[str, Any]:
        import peft

        return {**super()._chosen(), "peft_version": peft.__version__}

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
                            "tensors differ in name; load it over the model (and tower/targets) it was trained on. "
                            "Checkpoints saved before packed attention was split (adapters on '...attn' modules) "
                            "must be retrained.")
        set_peft_model_state_dict(self.network.backbone, state)


def get_state_names(module) -> list[str]:
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(module))


METHODS.register("lora", MethodSpec(
    name="lora", config_class=LoraConfig, build=Lora, families=("contrastive",), tasks=("binary", "multiclass"),
    summary="LoRA (peft) on the image/text tower(s), trained through the encoder; head from zero-shot text "
            "embeddings; best epoch chosen on validation.",
    capabilities=TRAINS_ENCODER))
