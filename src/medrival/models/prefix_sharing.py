"""Shared image prefixes: the part of a rendered conversation that is the same for every question about one
image (template start, system prompt, the image's tokens) is filled once per image, and its key/value cache is
reused for each question on that image.

The prefix ends at the image's last token. Every question's tokens up to there must be equal (checked): a template
that writes the question before the image has no shared prefix, and its questions take the plain path.

A batch of questions continues from its images' prefix caches (rows gathered from one prefix forward over several
images). Questions differ in length, so each row is laid out ``[prefix | padding | question]``: the padding sits
between the cached prefix and the question, is masked out, and positions are counted over real tokens only (the
mask's cumulative sum), so every real token has the position it has in the plain, left-padded batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# Processor outputs laid out per token (sliced with the prefix); the rest are image inputs.
TOKEN_ALIGNED = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


@dataclass
class SharingStats:
    """What a model's generative calls did, for the cost record of the cell that made them: questions answered or
    scored and the seconds spent, prefill tokens a plain pass would fill and those a shared prefix saved, the
    engine, and why some questions took the plain path."""

    engine: str = "transformers"
    attention: str | None = None  # the attention kernel (sdpa, eager ...) of a transformers model
    questions: int = 0
    seconds: float = 0.0
    prefill_tokens: int = 0  # tokens a plain pass would fill (prompt tokens of every question, or option rows)
    prefill_tokens_saved: int = 0  # of those, tokens taken from a shared prefix cache instead
    plain_reasons: set[str] = field(default_factory=set)  # why some questions took the plain path

    def fresh(self) -> "SharingStats":
        """An empty tally for the same engine."""
        return SharingStats(engine=self.engine, attention=self.attention)

    def as_cost(self) -> dict[str, Any]:
        cost: dict[str, Any] = {"engine": self.engine, **({"attention": self.attention} if self.attention else {}),
                                "questions": self.questions,
                                "seconds": round(self.seconds, 3),
                                "questions_per_s": round(self.questions / self.seconds, 2) if self.seconds else None,
                                "prefill_tokens": self.prefill_tokens,
                                "prefill_tokens_saved": self.prefill_tokens_saved}
        if self.plain_reasons:
            cost["prefix_sharing_off"] = "; ".join(sorted(self.plain_reasons))
        return cost


def image_key(image) -> str:
    """A content key of one PIL image (mode, size and pixels): equal images share a prefix."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}|{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def group_rows(keys: list[str]) -> list[list[int]]:
    """Row indices grouped by key, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    return list(groups.values())


def pack_groups(groups: list[list[int]], batch_size: int) -> list[list[list[int]]]:
    """Whole image groups packed into chunks of at most ``batch_size`` images: one prefix pass per chunk (as
    wide as a plain batch), each image's prefix filled once, and decoding batches drawn across the chunk's
    images so they stay full."""
    size = max(1, batch_size)
    return [groups[start:start + size] for start in range(0, len(groups), size)]


def image_units(keys: list[str], batch_size: int) -> list[list[int]]:
    """The rows of each chunk ``pack_groups`` forms for these image keys: a caller that hands the model one unit
    per call gets exactly the batches one call over every row gets."""
    return [[row for group in chunk for row in group] for chunk in pack_groups(group_rows(keys), batch_size)]


def image_token_id(model) -> int | None:
    """The id of the image placeholder token in the expanded prompt (LLaVA, Qwen2-VL, Gemma 3, Idefics3)."""
    config = model.config
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def prefix_length(ids: list[Any], image_token: int) -> tuple[int | None, str | None]:
    """(P, None) where P = one past the last image token, the same tokens in every row; (None, reason) otherwise."""
    import torch

    ends = []
    for row in ids:
        where = (row == image_token).nonzero()
        if len(where) == 0:
            return None, "no image token in the rendered prompt"
        ends.append(int(where[-1]) + 1)
    length, first = ends[0], ids[0]
    if any(end != length for end in ends) or not all(torch.equal(row[:length], first[:length]) for row in ids[1:]):
        return None, "the chat template writes question text before the image"
    if any(len(row) <= length for row in ids):
        return None, "the prompt ends with the image (no question after it)"
    return length, None


def image_inputs(encoded: dict, count: int) -> dict:
    """The non-token inputs (pixels, grids, sizes) of the first of ``count`` rows encoded with one image each."""
    inputs = {}
    grid = encoded.get("image_grid_thw")
    for name, value in encoded.items():
        if name in TOKEN_ALIGNED:
            continue
        if name == "pixel_values" and grid is not None:  # Qwen2-VL: patches of all images in one flat tensor
            inputs[name] = value[: int(grid[0].prod())]
        elif hasattr(value, "shape") and value.shape[:1] == (count,):
            inputs[name] = value[:1]
        else:
            inputs[name] = value
    return inputs


def concat_inputs(parts: list[dict]) -> dict:
    """Per-image input dicts concatenated along the first dimension."""
    import torch

    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def gather_cache(cache, rows: list[int], config, max_length: int | None = None):
    """A new cache holding ``rows`` of ``cache`` (rows may repeat): each layer's keys and values index-selected.

    With ``max_length`` it is a static cache of that many positions, for decoding: a dynamic cache concatenates
    its whole length at every new token, which on a ~600-token image prefix costs more than the step itself."""
    import torch
    from transformers import DynamicCache, StaticCache

    index = torch.as_tensor(rows, dtype=torch.long, device=cache.layers[0].keys.device)
    gathered = DynamicCache(config=config) if max_length is None else StaticCache(config=config,
                                                                                 max_cache_len=max_length)
    for layer_index, layer in enumerate(cache.layers):
        gathered.update(layer.keys.index_select(0, index), layer.values.index_select(0, index), layer_index)
    return gathered


def cache_problem(cache, length: int) -> str | None:
    """Why a prefix cache cannot be reused (a sliding-window layer that already dropped prefix tokens)."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False) and layer.keys.shape[-2] < length:
            return "a sliding-window layer is shorter than the shared prefix"
    return None


def middle_padded(prefix_ids, suffixes: list, pad_id: int):
    """``[prefix | padding | suffix]`` rows and their attention mask, as tensors; ``prefix_ids`` is P x ... one
    row per suffix."""
    import torch

    width = max(len(suffix) for suffix in suffixes)
    device = prefix_ids.device
    rows, masks = [], []
    for prefix, suffix in zip(prefix_ids, suffixes):
        padding = width - len(suffix)
        rows.append(torch.cat([prefix, torch.full((padding,), pad_id, dtype=prefix.dtype, device=device), suffix]))
        masks.append(torch.cat([torch.ones(len(prefix), dtype=torch.long, device=device),
                                torch.zeros(padding, dtype=torch.long, device=device),
                                torch.ones(len(suffix), dtype=torch.long, device=device)]))
    return torch.stack(rows), torch.stack(masks)


def text_positions(mask):
    """Position of each token counted over real tokens only (padding gets 0, and is masked anyway)."""
    positions = mask.long().cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 0)
