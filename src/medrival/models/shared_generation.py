"""Greedy generation and option scoring over shared image prefixes (see ``prefix_sharing``) for a
``GenerativeModel``: each image's prefix is filled once, then every question on it continues from that cache.

``plan`` groups questions by image, encodes them with the checkpoint's processor and finds each image's prefix;
``fill_prefixes`` runs the prefixes of several images in one forward pass; ``generate_chunk`` decodes a batch of
questions from gathered prefix rows with transformers' ``generate``; ``fill_prompts`` fills whole prompts (for
option scoring) from the prefixes, with explicit positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medrival.models import prefix_sharing as sharing

EXTRA_TOKEN_INPUTS = ("token_type_ids", "mm_token_type_ids")


@dataclass
class ImageGroup:
    """The questions on one image: rows (indices into the call's inputs), their expanded token ids, per-token
    extras (token type ids), the image's own inputs and the shared prefix length (None: take the plain path)."""

    rows: list[int]
    ids: list[Any]
    extras: dict[str, list[Any]]
    image_inputs: dict
    prefix: int | None
    reason: str | None = None


def encode_group(model, image, texts: list[str], rows: list[int]) -> ImageGroup:
    """Encode the questions on one image (right padding, then unpadded per row) and find their shared prefix."""
    encoded = model._encode([image] * len(texts), texts, "right")
    lengths = [int(n) for n in encoded["attention_mask"].sum(1).tolist()]
    ids = [encoded["input_ids"][row, :n] for row, n in enumerate(lengths)]
    extras = {name: [encoded[name][row, :n] for row, n in enumerate(lengths)]
              for name in EXTRA_TOKEN_INPUTS if name in encoded}
    token = sharing.image_token_id(model.model)
    prefix, reason = (None, "the model has no image token id") if token is None else sharing.prefix_length(ids, token)
    return ImageGroup(rows, ids, extras, sharing.image_inputs(encoded, len(texts)), prefix, reason)


def inner_model(model):
    """The model under the generation head (and under peft): where Qwen2-VL keeps its ``rope_deltas``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "model", base)


def fill_prefixes(model, groups: list[ImageGroup]):
    """(cache, rope deltas or None): one forward pass over the prefixes of ``groups`` (equal prefix lengths),
    cache row i holding group i's image prefix."""
    import torch

    length = groups[0].prefix
    ids = torch.stack([group.ids[0][:length] for group in groups])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              **sharing.concat_inputs([group.image_inputs for group in groups])}
    for name in groups[0].extras:
        inputs[name] = torch.stack([group.extras[name][0][:length] for group in groups])
    if model._keeps_some_logits:
        inputs["logits_to_keep"] = 1  # only the cache is wanted
    output = model.model(**inputs, use_cache=True)
    deltas = getattr(inner_model(model.model), "rope_deltas", None)
    return output.past_key_values, (deltas.clone() if deltas is not None else None)


def _extras_for(groups_of_rows: list[ImageGroup], picks: list[tuple[int, int]], width: int, device) -> dict:
    """Token-type inputs for middle-padded rows: the prefix's values, zeros for padding, the question's values."""
    import torch

    extras = {}
    for name in groups_of_rows[0].extras:
        rows = []
        for group_index, member in picks:
            group = groups_of_rows[group_index]
            values = group.extras[name][member]
            prefix, suffix = values[:group.prefix], values[group.prefix:]
            padding = torch.zeros(width - len(suffix), dtype=values.dtype, device=device)
            rows.append(torch.cat([prefix, padding, suffix]))
        extras[name] = torch.stack(rows)
    return extras


def middle_padded_rows(model, groups: list[ImageGroup], picks: list[tuple[int, int]]):
    """(input ids, attention mask, extras) of the questions ``picks`` ((group index, member) pairs), each row
    ``[prefix | padding | question]``."""
    import torch

    prefixes = torch.stack([groups[g].ids[m][:groups[g].prefix] for g, m in picks])
    suffixes = [groups[g].ids[m][groups[g].prefix:] for g, m in picks]
    ids, mask = sharing.middle_padded(prefixes, suffixes, model.processor.tokenizer.pad_token_id)
    width = max(len(suffix) for suffix in suffixes)
    return ids, mask, _extras_for(groups, picks, width, ids.device)


def set_rope_deltas(model, deltas, cache_rows: list[int]) -> None:
    """Point Qwen2-VL's stored rope deltas at the rows of this batch (its positions after the image)."""
    if deltas is not None:
        import torch

        index = torch.as_tensor(cache_rows, dtype=torch.long, device=deltas.device)
        inner_model(model.model).rope_deltas = deltas.index_select(0, index)


def generate_chunk(model, groups: list[ImageGroup], cache, deltas, picks: list[tuple[int, int]],
                   limit: int) -> list[str]:
    """Greedy replies of the questions ``picks``, continuing from the prefix cache rows of their groups."""
    tokenizer = model.processor.tokenizer
    cache_rows = [g for g, _ in picks]
    ids, mask, extras = middle_padded_rows(model, groups, picks)
    set_rope_deltas(model, deltas, cache_rows)
    batch_cache = sharing.gather_cache(cache, cache_rows, model.model.config, max_length=ids.shape[1] + limit)
    output = model.model.generate(input_ids=ids, attention_mask=mask, past_key_values=batch_cache, **extras,
                                  max_new_tokens=limit, do_sample=False, num_beams=1,
                                  pad_token_id=tokenizer.pad_token_id)
    new_tokens = output[:, ids.shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def positions_for(deltas, cache_rows: list[int], mask, new_tokens: int):
    """Position ids of the last ``new_tokens`` columns of ``mask`` (real tokens counted): 2-D, or for models with
    rope deltas (Qwen2-VL) the 4 x B x L layout its ``generate`` builds (text positions, then 3 M-RoPE axes)."""
    import torch

    text = sharing.text_positions(mask)[:, -new_tokens:]
    if deltas is None:
        return text
    index = torch.as_tensor(cache_rows, dtype=torch.long, device=deltas.device)
    shifted = text + deltas.index_select(0, index).to(text.device)
    return torch.cat([text[None], shifted[None].expand(3, -1, -1)])


@dataclass
class FilledPrompts:
    """Whole prompts in a cache, one row per question (group by group, member by member): the attention mask of
    ``[prefix | padding | question]``, the logits that predict the reply's first token (float32), each row's
    group (its rope delta row) and the token-type inputs the model takes."""

    cache: Any
    mask: Any
    last_logits: Any
    deltas: Any
    groups: list[int]
    extra_names: list[str]


def fill_prompts(model, groups: list[ImageGroup], cache, deltas, picks: list[tuple[int, int]]) -> FilledPrompts:
    """The questions ``picks`` ((group, member) pairs) filled from their images' prefix rows of ``cache`` in one
    forward pass, in that order."""
    cache_rows = [g for g, _ in picks]
    ids, mask, extras = middle_padded_rows(model, groups, picks)
    length = groups[0].prefix
    filled = sharing.gather_cache(cache, cache_rows, model.model.config)
    extras = {name: value[:, length:] for name, value in extras.items()}
    output = model.model(input_ids=ids[:, length:], attention_mask=mask, past_key_values=filled, use_cache=True,
                         position_ids=positions_for(deltas, cache_rows, mask, ids.shape[1] - length), **extras,
                         **({"logits_to_keep": 1} if model._keeps_some_logits else {}))
    return FilledPrompts(output.past_key_values, mask, output.logits[:, -1].float(), deltas, cache_rows,
                         list(extras))


def option_logprobs(model, filled, rows: list[int], continuations: list[list[list[int]]]):
    """log p(option) for the filled prompts ``rows`` (indices into ``filled``, a ``FilledPrompts``) and their K
    options each (token id lists): one batch of len(rows) x K rows continuing from the prompts' cache. Returns a
    len(rows) x K float64 array."""
    import numpy as np
    import torch

    width, device = len(continuations[0]), filled.mask.device
    flat = [tokens for options in continuations for tokens in options]
    longest = max(len(tokens) for tokens in flat)
    ids = torch.full((len(flat), longest), model.processor.tokenizer.pad_token_id, dtype=torch.long, device=device)
    option_mask = torch.zeros((len(flat), longest), dtype=torch.long, device=device)
    for row, tokens in enumerate(flat):
        ids[row, :len(tokens)] = torch.as_tensor(tokens, device=device)
        option_mask[row, :len(tokens)] = 1
    repeat = [row for row in rows for _ in range(width)]
    index = torch.as_tensor(repeat, device=device)
    full_mask = torch.cat([filled.mask.index_select(0, index), option_mask], dim=1)
    extras = {name: torch.zeros_like(ids) for name in filled.extra_names}
    logits = model.model(input_ids=ids, attention_mask=full_mask, use_cache=True,
                         past_key_values=sharing.gather_cache(filled.cache, repeat, model.model.config),
                         position_ids=positions_for(filled.deltas, [filled.groups[r] for r in repeat], full_mask,
                                                    longest), **extras).logits
    first = torch.log_softmax(filled.last_logits.index_select(0, index), dim=-1)
    # token 0 of an option is predicted by the prompt's last position, token t > 0 by option position t - 1
    predicted = torch.cat([first[:, None], torch.log_softmax(logits.float(), dim=-1)[:, :-1]], dim=1)
    picked = predicted.gather(-1, ids[:, :, None])[..., 0] * option_mask
    return picked.sum(1).double().cpu().numpy().reshape(len(rows), width).astype(np.float64)
