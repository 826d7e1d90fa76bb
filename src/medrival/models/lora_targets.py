"""Which modules LoRA adapts in each tower layout, resolved to full module names inside the model.

Paired arms must be adapted equally: the same logical modules, with the same LoRA parameter count for the same
architecture, and every update scaled alpha/r exactly once, whichever library serves the checkpoint. So every
layout's default is the six projections of each transformer block, attention q, k, v, output and the two MLP
layers, each one ``nn.Linear`` given its own rank-r pair (r·(in + out) parameters):

- open_clip transformer, blocks ``resblocks.<i>``: ``attn.q_proj``, ``attn.k_proj``, ``attn.v_proj``,
  ``attn.out_proj``, ``mlp.c_fc``, ``mlp.c_proj`` (the attention after splitting, see below).
- timm ViT (BiomedCLIP's image tower), blocks ``blocks.<i>``: ``attn.qkv.q_proj``, ``attn.qkv.k_proj``,
  ``attn.qkv.v_proj`` (the packed qkv after splitting), ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``.
- transformers CLIP / SigLIP, blocks ``layers.<i>``: ``self_attn.q_proj``, ``self_attn.k_proj``,
  ``self_attn.v_proj``, ``self_attn.out_proj``, ``mlp.fc1``, ``mlp.fc2``.
- Hugging Face BERT (BiomedCLIP's PubMedBERT), blocks ``layer.<i>``: ``attention.self.query``,
  ``attention.self.key``, ``attention.self.value``, ``attention.output.dense``, ``intermediate.dense``,
  ``output.dense``.

Packed projections are split first (``models.split_attention.split_packed_attention``, on the working copy LoRA
trains): open_clip's ``nn.MultiheadAttention`` becomes q/k/v/out Linear layers that its forward calls, so peft
never wraps an ``nn.MultiheadAttention`` and its double application of the ``out_proj`` update (peft 0.21, PR
#3774) cannot happen; timm's packed ``qkv`` becomes q/k/v Linear layers, so its LoRA costs 3·r·2d like the
other layouts instead of r·(d + 3d). With that, one architecture gets one budget whatever serves it: ViT-B/32 in
open_clip (clip-vit-b32) and in transformers (PLIP, PubMedCLIP) both get 1,327,104 image-tower LoRA parameters
over 72 modules at rank 8. ``resolve_targets`` refuses a tower that still holds packed attention. Different
architectures still differ: BiomedCLIP's BERT-base text tower (width 768) costs 1.5x the width-512 CLIP text tower
of its pair; tests/test_lora_capacity.py checks every card pair and lists such rows with their reasons.

Defaults are matched as full names anchored on the block (``…layer.<i>.output.dense`` is BERT's MLP output,
``…layer.<i>.attention.output.dense`` its attention output: each name matches exactly one role), so modules
outside the blocks (SigLIP's attention-pool head, BERT's pooler, projections) are never adapted by default.
User-given ``target_modules`` are module-name suffixes (``"q_proj"``, ``"mlp.c_fc"``) or full names; a suffix matches
every module ending with it (``"output.dense"`` also takes ``attention.output.dense``). Names are
resolved to an explicit list restricted to the chosen tower(s), so a text-tower module that happens to share a
suffix is never adapted by a vision-only run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from medrival.core.errors import ConfigError

TOWERS = ("vision", "text", "both")
ROLES = ("q", "k", "v", "out", "mlp_in", "mlp_out")  # the logical modules every layout adapts, in this order


@dataclass(frozen=True)
class TargetLayout:
    name: str
    block: str  # regex of a transformer block's name, e.g. r"resblocks\.\d+"
    roles: dict  # logical role (ROLES) -> module-name suffix inside the block

    def pattern(self, roles: Iterable[str] = ROLES) -> re.Pattern:
        """Full-name regex of the given roles' modules inside any block of this layout."""
        suffixes = "|".join(re.escape(self.roles[role]) for role in roles)
        return re.compile(rf"(?:^|\.){self.block}\.(?:{suffixes})$")


LAYOUTS: tuple[TargetLayout, ...] = (
    TargetLayout("open_clip transformer", r"resblocks\.\d+", {
        "q": "attn.q_proj", "k": "attn.k_proj", "v": "attn.v_proj", "out": "attn.out_proj",
        "mlp_in": "mlp.c_fc", "mlp_out": "mlp.c_proj"}),
    TargetLayout("timm vision transformer", r"blocks\.\d+", {
        "q": "attn.qkv.q_proj", "k": "attn.qkv.k_proj", "v": "attn.qkv.v_proj", "out": "attn.proj",
        "mlp_in": "mlp.fc1", "mlp_out": "mlp.fc2"}),
    TargetLayout("transformers CLIP/SigLIP encoder", r"layers\.\d+", {
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "out": "self_attn.out_proj",
        "mlp_in": "mlp.fc1", "mlp_out": "mlp.fc2"}),
    TargetLayout("Hugging Face BERT encoder", r"layer\.\d+", {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "out": "attention.output.dense", "mlp_in": "intermediate.dense", "mlp_out": "output.dense"}),
)


def _adaptable_types() -> tuple[type, ...]:
    """Module types peft's LoRA wraps as ordinary layers (nn.MultiheadAttention is split beforehand)."""
    import torch.nn as nn

    return (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


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
    """The first known layout whose query projection exists in the tower, else None."""
    names = list(_tower_modules(model, prefix))
    for layout in LAYOUTS:
        query = layout.pattern(["q"])
        if any(query.search(name) for name in names):
            return layout
    return None


def _examples(modules: Iterable[str], count: int = 6) -> str:
    names = list(modules)
    shown = ", ".join(names[:count])
    return f"{shown}{', ...' if len(names) > count else ''} ({len(names)} adaptable modules)"


def _refuse_packed_attention(model, prefixes: list[str]) -> None:
    """LoRA on packed attention skews the comparison (see the module docstring): it must be split first."""
    from medrival.models.split_attention import packed_attention

    packed = packed_attention(model, prefixes)
    if packed:
        raise ConfigError(
            f"the tower(s) still hold packed attention ({_examples(packed, 3)}): LoRA on it would apply the out_proj "
            f"update twice (nn.MultiheadAttention) or size q/k/v differently from other libraries (timm qkv). "
            f"Expected split q/k/v/out Linear layers. Fix: call medrival.models.split_attention."
            f"split_packed_attention(model, prefixes) on a working copy first (methods.lora.inject_lora does).")


def _tower_targets(model, tower: str, prefix: str, requested: tuple[str, ...] | None) -> list[str]:
    modules = _tower_modules(model, prefix)
    if requested is not None:
        return [name for name in modules if any(_matches(name, target) for target in requested)]
    layout = detect_layout(model, prefix)
    if layout is None:
        raise ConfigError(
            f"no default LoRA targets for the {tower} tower ({prefix or 'the whole model'}): its layout is not "
            f"one of {[l.name for l in LAYOUTS]}. Expected transformer blocks with separate q/k/v/out and MLP "
            f"projections. Fix: pass target_modules=[...] naming module suffixes; its modules include "
            f"{_examples(modules)}.")
    pattern = layout.pattern()
    return [name for name in modules if pattern.search(name)]


def resolve_targets(model, towers: dict[str, object], requested: Iterable[str] | None = None) -> list[str]:
    """Full module names to adapt inside ``model`` for the given towers ({"vision": module, "text": module}).

    ``requested`` are module-name suffixes (``"q_proj"``, ``"mlp.c_fc"``) or full names; None uses each tower's
    layout default (the module docstring's table). The towers' packed attention must already be split. Raises
    ``ConfigError`` when a requested target matches nothing in the chosen tower(s).
    """
    requested = None if requested is None else tuple(requested)
    prefixes = {tower: tower_prefix(model, module) for tower, module in towers.items()}
    _refuse_packed_attention(model, list(prefixes.values()))
    names: list[str] = []
    for tower, prefix in prefixes.items():
        names.extend(n for n in _tower_targets(model, tower, prefix, requested) if n not in names)
    if requested is not None:
        unmatched = [t for t in requested if not any(_matches(n, t) for n in names)]
        if unmatched:
            available = [n for p in prefixes.values() for n in _tower_modules(model, p)]
            raise ConfigError(
                f"LoRA target_modules {unmatched} match no adaptable module in the {'/'.join(towers)} tower(s). "
                f"Expected module-name suffixes of Linear/Conv/Embedding layers (packed attention is split into "
                f"q_proj/k_proj/v_proj/out_proj first); the tower(s) contain {_examples(available)}.")
    if not names:
        raise ConfigError(f"LoRA found no module to adapt in the {'/'.join(towers)} tower(s).")
    return names
