"""Input checks and small torch helpers shared by the generative models (local, API, vLLM): images and texts
as the protocol takes them, token limits, option lists, padding side, continuation log-likelihoods, eval mode."""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np

from medrival.core.errors import DataError


def as_images(images) -> list:
    """uint8 N x H x W x 3 array or list of H x W x 3 arrays (or PIL images) -> list of RGB PIL images."""
    from PIL import Image

    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise DataError(f"images must be a uint8 array N x H x W x 3 or a list of H x W x 3 arrays; got an array "
                        f"of shape {images.shape}.")
    if isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
        raise DataError(f"images must be a uint8 array N x H x W x 3 or a list of H x W x 3 arrays; got "
                        f"{type(images).__name__}.")
    result = []
    for index, image in enumerate(images):
        if isinstance(image, Image.Image):
            result.append(image.convert("RGB"))
            continue
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise DataError(f"image {index} has shape {image.shape} and dtype {image.dtype}; expected an RGB "
                            "uint8 array H x W x 3 (convert grey images with np.repeat(x[..., None], 3, -1)).")
        result.append(Image.fromarray(image))
    return result


def check_lengths(**named: Sequence) -> int:
    """The common length of the named sequences, or ``DataError`` naming them all."""
    lengths = {name: len(values) for name, values in named.items()}
    if len(set(lengths.values())) > 1:
        given = ", ".join(f"{count} {name}" for name, count in lengths.items())
        raise DataError(f"got {given}; each image needs exactly one of each (same lengths, same order).")
    return next(iter(lengths.values()))


def token_limits(max_new_tokens, count: int) -> list[int]:
    """``max_new_tokens`` as one positive int per prompt."""
    limits = [max_new_tokens] * count if isinstance(max_new_tokens, (int, np.integer)) else list(max_new_tokens)
    if len(limits) != count:
        raise DataError(f"max_new_tokens has {len(limits)} values for {count} prompts; give one int for all or "
                        "one per prompt.")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in limits):
        raise DataError(f"max_new_tokens must be positive integers; got {max_new_tokens!r}.")
    return [int(v) for v in limits]


def option_rows(options, count: int) -> list[list[str]]:
    """``options`` (one list of K strings for all prompts, or N lists of K strings) as N lists of K strings."""
    if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
        raise DataError(f"options must be a list of strings (or one list per prompt); got {type(options).__name__}.")
    options = list(options)
    if not options:
        raise DataError("options is empty; give at least one answer option (e.g. ['yes', 'no']).")
    if all(isinstance(o, str) for o in options):
        rows = [options] * count
    elif all(not isinstance(o, (str, bytes)) and hasattr(o, "__iter__") for o in options):
        rows = [list(row) for row in options]
        if len(rows) != count:
            raise DataError(f"options holds {len(rows)} lists for {count} prompts; give one list for all prompts "
                            "or one list per prompt.")
    else:
        raise DataError("options must be a list of strings or a list of lists of strings, not a mix.")
    widths = {len(row) for row in rows}
    if 0 in widths:
        raise DataError("some prompt has an empty list of options; give at least one answer option per prompt.")
    if len(widths) > 1:
        raise DataError(f"every prompt needs the same number of options; got {sorted(widths)}.")
    for index, row in enumerate(rows):
        if not all(isinstance(o, str) and o.strip() for o in row):
            raise DataError(f"options for prompt {index} must be non-empty strings; got {row!r}.")
    return rows


@contextlib.contextmanager
def padding_side(tokenizer, side: str):
    """Pad on ``side`` for one call: generation needs left padding, teacher forcing right padding."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        yield
    finally:
        tokenizer.padding_side = previous


def continuation_logprobs(logits, input_ids, first_position: int, starts, ends):
    """Sum over rows of log p(token t | tokens < t) for t in [starts[r], ends[r]).

    ``logits`` holds the positions from ``first_position`` on; the logit predicting token t sits at t - 1.
    """
    import torch

    logprobs = torch.log_softmax(logits.float(), dim=-1)
    totals = []
    for row, (start, end) in enumerate(zip(starts, ends)):
        targets = input_ids[row, start:end]
        rows = logprobs[row, start - 1 - first_position:end - 1 - first_position]
        totals.append(rows.gather(-1, targets[:, None]).sum().item())
    return totals


@contextlib.contextmanager
def evaluating(model):
    """Eval mode (no dropout) for inference, restoring the caller's mode: methods evaluate mid-training."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
