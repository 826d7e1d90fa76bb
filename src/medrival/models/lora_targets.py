"""Which modules LoRA adapts in each tower layout, resolved to full module names inside the model.

A tower's layout is recognised from the modules it contains, not from the checkpoint's name, so one rule covers
every card that shares an architecture:

- open_clip transformer blocks (CLIP towers, the text tower of CustomTextCLIP): ``attn`` is an
  ``nn.MultiheadAttention`` that packs q/k/v in one ``in_proj_weight`` and uses ``out_proj.weight`` directly
  (never calling ``out_proj``). Targeting ``attn`` itself makes peft adapt both packed projections; targeting
  ``attn.out_proj`` alone silently trains nothing (peft 0.21: its LoRA branch is never called), so it is refused.
  Defaults: ``attn``, ``mlp.c_fc``, ``mlp.c_proj``. Two peft 0.21 quirks of this path, measured here: the
  out_proj update is applied twice (W + 2·dW, in forward and in merge alike; peft PR #3774), so its effective
  scale is 2·alpha/r, and unmerging by subtraction makes the frozen weights drift by rounding at every forward
  pass (``methods.lora.pin_multihead_base_weights`` keeps them exact).
- timm ViT trunks (BiomedCLIP's image tower ``visual.trunk.blocks.*``): ``attn.qkv``, ``attn.proj``, ``mlp.fc1``,
  ``mlp.fc2`` (the same four projections as the open_clip default).
- transformers CLIP / SigLIP encoders (``*.encoder.layers.*.self_attn``): ``q_proj``, ``v_proj`` (LoRA's
  original choice); ``k_proj``, ``out_proj``, ``mlp.fc1``, ``mlp.fc2`` may be added by the user.
- Hugging Face BERT text towers (BiomedCLIP's PubMedBERT): ``attention.self.query``, ``attention.self.value``.

Names are resolved to an explicit list of full module names restricted to the chosen tower(s), so a text-tower
module that happens to share a suffix is never adapted by a vision-only run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from medrival.core.errors import ConfigError

TOWERS = ("vision", "text", "both")


@dataclass(frozen=True)
class TargetLayout:
    name: str
    signature: str  # a module-name suffix whose presence identifies the layout
    defaults: tuple[str, ...]  # module-name suffixes adapted by default


LAYOUTS: tuple[TargetLayout, ...] = (
    TargetLayout("open_clip transformer (packed q/k/v nn.MultiheadAttention)", "attn.in_proj",
                 ("attn", "mlp.c_fc", "mlp.c_proj")),
    TargetLayout("timm vision transformer", "attn.qkv", ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")),
    TargetLayout("transformers CLIP/SigLIP encoder", "self_attn.q_proj", ("self_attn.q_proj", "self_attn.v_proj")),
    TargetLayout("Hugging Face BERT encoder", "attention.self.query",
                 ("attention.self.query", "attention.self.value")),
)


def _adaptable_types() -> tuple[type, ...]:
    """Module types peft's LoRA can wrap."""
    import torch.nn as nn

    return (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.MultiheadAttention)


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def tower_prefix(model, tower_module) -> str:
    """The name of ``tower_module`` inside ``model`` ("" when the tower is the whole model)."""
    for name, module in model.named_modules():
        if module is tower_module:
            return name
    raise ConfigError(f"the tower module {type(tower_module).__name__} is not part of the model "
                      f"{type(model).__name__}; the adapter's image_tower/text_tower must be submodules of .model.")


def _tower_modules(model, prefix: str) -> dict[str, object]:
    """Full name -> module for every module inside the tower that peft can wrap."""
    found = {}
    for name, module in model.named_modules():
        if prefix and not name.startswith(prefix + "."):
            continue
        if isinstance(module, _adaptable_types()):
            found[name] = module
    return found


def detect_layout(model, prefix: str) -> TargetLayout | None:
    """The first known layout whose signature module exists in the tower, else None."""
    import torch.nn as nn

    modules = _tower_modules(model, prefix)
    for layout in LAYOUTS:
        for name, module in modules.items():
            if layout.signature == "attn.in_proj":
                if isinstance(module, nn.MultiheadAttention) and _matches(name, "attn"):
                    return layout
            elif _matches(name, layout.signature):
                return layout
    return None


def _examples(modules: Iterable[str], count: int = 6) -> str:
    names = list(modules)
    shown = ", ".join(names[:count])
    return f"{shown}{', ...' if len(names) > count else ''} ({len(names)} adaptable modules)"


def _refuse_unused_projection(model, names: list[str]) -> None:
    """open_clip's nn.MultiheadAttention never calls ``out_proj``: LoRA there would train nothing."""
    import torch.nn as nn

    modules = dict(model.named_modules())
    for name in names:
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if name.endswith("out_proj") and isinstance(modules.get(parent), nn.MultiheadAttention):
            raise ConfigError(
                f"LoRA target {name!r} is the out_proj of an nn.MultiheadAttention, whose forward uses the weight "
                f"directly and never calls the module, so its LoRA weights would never train. Target the attention "
                f"module itself ({parent.rsplit('.', 1)[-1]!r}), which adapts the packed q/k/v and out_proj.")


def _tower_targets(model, tower: str, prefix: str, requested: tuple[str, ...] | None) -> list[str]:
    modules = _tower_modules(model, prefix)
    if requested is None:
        layout = detect_layout(model, prefix)
        if layout is None:
            raise ConfigError(
                f"no default LoRA targets for the {tower} tower ({prefix or 'the whole model'}): its layout is not "
                f"one of {[l.name for l in LAYOUTS]}. Pass target_modules=[...] naming module suffixes; its modules "
                f"include {_examples(modules)}.")
        requested = layout.defaults
    return [name for name in modules if any(_matches(name, target) for target in requested)]


def resolve_targets(model, towers: dict[str, object], requested: Iterable[str] | None = None) -> list[str]:
    """Full module names to adapt inside ``model`` for the given towers ({"vision": module, "text": module}).

    ``requested`` are module-name suffixes (``"q_proj"``, ``"mlp.c_fc"``) or full names; None uses each tower's
    default. Raises ``ConfigError`` when a requested target matches nothing in the chosen tower(s).
    """
    requested = None if requested is None else tuple(requested)
    names: list[str] = []
    prefixes = {tower: tower_prefix(model, module) for tower, module in towers.items()}
    for tower, prefix in prefixes.items():
        names.extend(n for n in _tower_targets(model, tower, prefix, requested) if n not in names)
    if requested is not None:
        unmatched = [t for t in requested if not any(_matches(n, t) for n in names)]
        if unmatched:
            available = [n for p in prefixes.values() for n in _tower_modules(model, p)]
            raise ConfigError(
                f"LoRA target_modules {unmatched} match no adaptable module in the {'/'.join(towers)} tower(s). "
                f"Targets are module-name suffixes; the tower(s) contain {_examples(available)}.")
    if not names:
        raise ConfigError(f"LoRA found no module to adapt in the {'/'.join(towers)} tower(s).")
    _refuse_unused_projection(model, names)
    return names
