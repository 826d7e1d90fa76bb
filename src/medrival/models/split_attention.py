"""Packed attention projections rebuilt as separate ``nn.Linear`` layers, so that LoRA adapts them one by one.

Two serving libraries pack the attention projections, and each packing skews LoRA:

- ``nn.MultiheadAttention`` (open_clip's transformer blocks and attentional pooler, SigLIP's attention-pool head)
  keeps q/k/v in one ``in_proj_weight`` and reads ``out_proj.weight`` directly, never calling ``out_proj``. peft
  wraps it by merging the LoRA update into those weights around each forward pass, and peft 0.21 applies the
  ``out_proj`` update twice (W + 2·dW, peft PR #3774): an effective scale of 2·alpha/r on the generalist side only.
  ``SplitMultiheadAttention`` computes the same attention from ``q_proj``/``k_proj``/``v_proj``/``out_proj``
  ``nn.Linear`` layers that it calls, so peft wraps four ordinary Linear layers and every update is scaled alpha/r
  exactly once (peft never sees an ``nn.MultiheadAttention``).
- timm's ``Attention.qkv`` is one Linear to 3·dim. LoRA on it is a single application, but one rank-r pair for
  the three projections costs r·(d + 3d) parameters where three separate ones (transformers, BERT, open_clip)
  cost 3·r·2d: BiomedCLIP's image tower would get 11 % less LoRA than its ViT-B/16 pair at the same rank.
  ``SplitQKV`` is three Linear layers whose outputs are concatenated in q, k, v order, what ``qkv`` returned.

Both give the outputs of the module they replace before training (float rounding aside: within 1e-6, checked
in tests/test_lora_targets.py). ``split_packed_attention`` swaps them in place, so call it on a working copy.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from medrival.core.errors import ConfigError


def _linear_from(weight, bias) -> nn.Linear:
    """An nn.Linear holding copies of ``weight`` (out x in) and ``bias`` on their device and dtype."""
    # Built on the meta device (no memory, no random init), then given the copied tensors.
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=bias.requires_grad)
    return layer


def _additive(mask, dtype):
    """A boolean mask (True: may not attend) or an additive float mask, as an additive mask of ``dtype``."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


class SplitMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s forward, computed through separate q/k/v/out ``nn.Linear`` layers."""

    def __init__(self, packed: nn.MultiheadAttention):
        super().__init__()
        if packed.bias_k is not None or packed.add_zero_attn:
            raise ConfigError(
                "LoRA cannot split this nn.MultiheadAttention: it uses add_bias_kv or add_zero_attn, which "
                "SplitMultiheadAttention does not reproduce. Expected a plain multi-head attention (as in open_clip "
                "and SigLIP). Fix: pass target_modules=[...] naming other modules of the tower.")
        self.embed_dim, self.num_heads, self.dropout = packed.embed_dim, packed.num_heads, packed.dropout
        self.batch_first, self.head_dim = packed.batch_first, packed.embed_dim // packed.num_heads
        if packed._qkv_same_embed_dim:
            weights = packed.in_proj_weight.chunk(3)
        else:
            weights = (packed.q_proj_weight, packed.k_proj_weight, packed.v_proj_weight)
        biases = packed.in_proj_bias.chunk(3) if packed.in_proj_bias is not None else (None,) * 3
        self.q_proj, self.k_proj, self.v_proj = (_linear_from(w, b) for w, b in zip(weights, biases))
        self.out_proj = _linear_from(packed.out_proj.weight, packed.out_proj.bias)

    def _heads(self, x, batch: int):
        return x.view(batch, x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _mask(self, attn_mask, key_padding_mask, shape, dtype):
        """The attention mask and the key padding mask merged into one additive (N|1, H|1, L, S) mask."""
        batch, length, source = shape
        masks = []
        if attn_mask is not None:  # (L, S) for every sequence and head, or (N * H, L, S)
            mask = _additive(attn_mask, dtype)
            masks.append(mask.view(1, 1, length, source) if mask.dim() == 2 else
                         mask.view(batch, self.num_heads, length, source))
        if key_padding_mask is not None:  # (N, S)
            masks.append(_additive(key_padding_mask, dtype).view(batch, 1, 1, source))
        return None if not masks else masks[0] if len(masks) == 1 else masks[0] + masks[1]

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.dim() == 2
        if unbatched:  # (L, E) whatever batch_first says
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            attn_mask = torch.ones(length, source, dtype=torch.bool, device=query.device).triu(1)
        q = self._heads(self.q_proj(query), batch)
        k, v = self._heads(self.k_proj(key), batch), self._heads(self.v_proj(value), batch)
        mask = self._mask(attn_mask, key_padding_mask, (batch, length, source), q.dtype)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # as nn.MultiheadAttention: q scaled first, the probabilities returned
            scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
            weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            weights = F.dropout(weights, dropout) if dropout else weights
            out = weights @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
            weights = weights.squeeze(0) if unbatched else weights
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


class SplitQKV(nn.Module):
    """timm's packed ``qkv`` Linear as three Linear layers; the output is their concatenation (q, k, v)."""

    def __init__(self, packed: nn.Linear):
        super().__init__()
        if packed.out_features % 3:
            raise ConfigError(f"LoRA cannot split the packed qkv projection: its {packed.out_features} outputs are "
                              "not three equal parts. Expected timm's Attention.qkv (dim -> 3 x dim). Fix: pass "
                              "target_modules=[...] naming other modules of the tower.")
        self.in_features, self.out_features = packed.in_features, packed.out_features
        biases = packed.bias.chunk(3) if packed.bias is not None else (None,) * 3
        self.q_proj, self.k_proj, self.v_proj = (_linear_from(w, b) for w, b in zip(packed.weight.chunk(3), biases))

    def forward(self, x):
        return torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)


def _timm_attention_class():
    try:
        from timm.layers import Attention
    except ImportError:  # timm serves only BiomedCLIP-style image towers; without it there is nothing to split
        return None
    return Attention


def packed_attention(module, prefixes: list[str] | None = None) -> list[str]:
    """Names of the packed attention modules (nn.MultiheadAttention, timm Attention.qkv) under ``prefixes``."""
    timm_attention = _timm_attention_class()
    names = []
    modules = dict(module.named_modules())
    for name, child in modules.items():
        if prefixes is not None and not any(p == "" or name.startswith(p + ".") for p in prefixes):
            continue
        parent = modules.get(name.rsplit(".", 1)[0] if "." in name else "")
        if isinstance(child, nn.MultiheadAttention) or (
                timm_attention is not None and isinstance(parent, timm_attention) and name.rpartition(".")[2] == "qkv"
                and type(child) is nn.Linear):
            names.append(name)
    return names


def split_packed_attention(module, prefixes: list[str] | None = None) -> int:
    """Replace, in place, every packed attention module under ``prefixes`` (default: all) by its split
    equivalent; returns how many were replaced."""
    names = packed_attention(module, prefixes)
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        child = getattr(parent, child_name)
        split = SplitMultiheadAttention(child) if isinstance(child, nn.MultiheadAttention) else SplitQKV(child)
        split.train(child.training)
        setattr(parent, child_name, split)
    return len(names)
