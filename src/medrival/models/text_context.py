"""Text encoding with learnable context vectors (CoOp's prompts), for every supported text tower.

A CoOp prompt is ``[context_1 ... context_n] class text``: n learned vectors take the place of the first n word
embeddings. Rather than re-implementing each tower's forward pass (masks, pooling and projections differ between
open_clip's CLIP, BiomedCLIP's BERT tower, transformers' CLIP and SigLIP), the prompt is written with n copies of
a one-token placeholder word, the model's own tokenizer and ``text_features`` run unchanged, and a forward hook
on the tower's token-embedding layer replaces the placeholders' embeddings by the context vectors. Everything
after the embedding lookup (positions, causal or padding masks, EOT/CLS/last-token pooling, projection) is the
model's own code, so with the context set to the embeddings of "a photo of a" the result equals encoding the
text "a photo of a <class>"; gradients flow to the context only through that replacement.
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from medrival.core.errors import MedrivalError

PLACEHOLDER_WORDS = ("X", "x", "*", "the")  # the first that the tokenizer keeps as one token is used

SUPPORTED_TOWERS = ("open_clip CLIP", "open_clip CustomTextCLIP (TextTransformer or Hugging Face text tower)",
                    "transformers CLIPModel", "transformers SiglipModel")


def token_embedding_layer(adapter) -> Any:
    """The ``nn.Embedding`` that turns the text tower's token ids into vectors (dispatch on the model's type)."""
    model = adapter.model
    kind = type(model).__name__
    if kind in ("CLIPModel", "SiglipModel") and hasattr(model, "text_model"):
        return model.text_model.embeddings.token_embedding
    if kind == "CLIP" and hasattr(model, "token_embedding"):
        return model.token_embedding
    if kind == "CustomTextCLIP":
        text = model.text
        if hasattr(text, "token_embedding"):  # open_clip TextTransformer (e.g. SigLIP towers in open_clip)
            return text.token_embedding
        if hasattr(text, "transformer") and hasattr(text.transformer, "get_input_embeddings"):  # HFTextEncoder
            return text.transformer.get_input_embeddings()
    raise MedrivalError(f"CoOp does not support the text tower of {kind} models yet (model card "
                        f"{getattr(getattr(adapter, 'card', None), 'id', '?')!r}). Supported towers: "
                        f"{'; '.join(SUPPORTED_TOWERS)}. Use another method (e.g. linear_probe, tip_adapter) "
                        "for this model.")


def context_width(adapter) -> int:
    """Width of one context vector: the text tower's token-embedding width."""
    return int(token_embedding_layer(adapter).weight.shape[1])


def _token_ids(adapter, texts: list[str]):
    """Token ids (M x L tensor) from the adapter's tokenizer, whatever container it returns."""
    tokens = adapter.tokenize(texts)
    if isinstance(tokens, Mapping):
        tokens = tokens["input_ids"]
    elif hasattr(tokens, "input_ids"):
        tokens = tokens.input_ids
    return tokens.cpu()


def placeholder(adapter) -> tuple[str, int, int]:
    """(word, token id, number of tokens before the text) for the first placeholder word kept as one token."""
    for word in PLACEHOLDER_WORDS:
        one, two = _token_ids(adapter, [word, f"{word} {word}"])
        grown = [int(t) for t in set(two.tolist()) if two.tolist().count(t) - one.tolist().count(t) == 1]
        if len(grown) == 1 and one.tolist().count(grown[0]) == 1:
            return word, grown[0], one.tolist().index(grown[0])
    raise MedrivalError("CoOp could not find a placeholder word that this model's tokenizer keeps as one token "
                        f"(tried {', '.join(PLACEHOLDER_WORDS)}); this tokenizer is not supported yet.")


def phrase_embeddings(adapter, phrase: str):
    """The token embeddings (m x width, detached copy) of ``phrase`` as the tokenizer splits it mid-sentence."""
    import torch

    word, token_id, prefix = placeholder(adapter)
    ids = _token_ids(adapter, [f"{phrase} {word}"])[0].tolist()
    end = len(ids) - 1 - ids[::-1].index(token_id)  # the trailing placeholder marks where the phrase ends
    layer = token_embedding_layer(adapter)
    with torch.no_grad():
        return layer.weight[torch.tensor(ids[prefix:end], device=layer.weight.device)].detach().clone()


def _too_long_error(n_ctx: int, texts: list[str]) -> MedrivalError:
    return MedrivalError(f"a CoOp prompt of {n_ctx} context tokens followed by a class text (longest: "
                         f"{max(texts, key=len)!r}) does not fit the text tower's context length; use fewer "
                         "context tokens (n_ctx) or shorter class texts (class_text: name).")


def _check_prompts_fit(adapter, prompts: list[str], word: str, token_id: int, n_ctx: int, texts: list[str]) -> None:
    """Raise unless every prompt survives tokenisation whole: a tokenizer truncates silently, so the test is that
    one more placeholder appended to the prompt is still there."""
    plain = _token_ids(adapter, prompts)
    longer = _token_ids(adapter, [f"{prompt} {word}" for prompt in prompts])
    if bool(((longer == token_id).sum(dim=1) <= (plain == token_id).sum(dim=1)).any()):
        raise _too_long_error(n_ctx, texts)


def _context_starts(ids, token_id: int, n_ctx: int):
    """Index of the first run of ``n_ctx`` placeholder ids in every row (rows without one raise)."""
    import torch

    runs = (ids == token_id).unfold(1, n_ctx, 1).all(dim=-1) if ids.shape[1] >= n_ctx else None
    if runs is None or not bool(runs.any(dim=1).all()):
        raise MedrivalError(f"the tokenised CoOp prompts lack their run of {n_ctx} context tokens; the prompt does "
                            "not fit the text tower's context length (use fewer context tokens, n_ctx).")
    return runs.int().argmax(dim=1).to(torch.long)


@contextmanager
def _spliced_embeddings(layer, token_id: int, context):
    """While active, the embedding layer's output has the context vectors at each row's placeholder run."""
    n_ctx = context.shape[-2]

    def replace(module, inputs, output):
        ids = inputs[0]
        starts = _context_starts(ids, token_id, n_ctx)
        rows = starts.new_tensor(range(ids.shape[0]))[:, None].expand(-1, n_ctx)
        positions = starts[:, None] + starts.new_tensor(range(n_ctx))[None, :]
        vectors = context if context.dim() == 3 else context.unsqueeze(0).expand(ids.shape[0], -1, -1)
        spliced = output.clone()
        spliced[rows, positions] = vectors.to(device=output.device, dtype=output.dtype)
        return spliced

    handle = layer.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def encode_with_context(adapter, context, class_texts: list[str], normalize: bool = True):
    """Text embeddings C x D of ``[context] class_text`` for every class text, with gradients to ``context``.

    ``context`` is n_ctx x width (one context shared by all classes) or C x n_ctx x width (class-specific)."""
    if context.dim() not in (2, 3) or (context.dim() == 3 and context.shape[0] != len(class_texts)):
        raise MedrivalError(f"context must be n_ctx x width or one n_ctx x width block per class "
                            f"({len(class_texts)} classes); got shape {tuple(context.shape)}.")
    word, token_id, _ = placeholder(adapter)
    n_ctx = context.shape[-2]
    prompts = [" ".join([word] * n_ctx + [text]) for text in class_texts]
    _check_prompts_fit(adapter, prompts, word, token_id, n_ctx, class_texts)
    with _spliced_embeddings(token_embedding_layer(adapter), token_id, context):
        return adapter.text_features(prompts, normalize=normalize)
