"""The weights preflight: before a study runs anything, every model whose weights can be neither read here nor
downloaded is named at once, each with its fix.

Without it a long study finds a missing checkpoint only when that model's first cell runs, possibly hours in, and
then once per model. The check never touches the network: it decides from local folders, the shipped demo weights,
the Hugging Face cache and the environment (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``). A model that is not
cached while downloads are allowed passes: its loader probes the Hub when it runs and fails fast with the same fix.
"""
from __future__ import annotations

from typing import Iterable

from medrival.core.config import where
from medrival.core.errors import MedrivalError, UnknownNameError


def check_weights(spec, models: Iterable[str] | None = None, offline: bool | None = None) -> None:
    """Raise one MedrivalError naming every model of ``spec`` whose weights are missing and not downloadable.

    ``models``: only these (e.g. the models of the cells still pending: a finished model needs no weights);
    default every model of the study. ``offline``: whether downloads are impossible (default: the user asked
    for offline mode)."""
    problems = weights_problems(spec, models, offline)
    if problems:
        count = f"{len(problems)} model" + ("s" if len(problems) != 1 else "")
        raise MedrivalError(
            f"{spec.source}: the weights of {count} are neither on this machine nor downloadable, so nothing was "
            "run. Fix each one below (or remove it from models:), then run again.\n" + "\n".join(problems))


def weights_problems(spec, models: Iterable[str] | None = None, offline: bool | None = None) -> list[str]:
    """One entry (a few lines) per model of ``spec`` whose weights cannot be had (empty when all can)."""
    from medrival.models import hub
    from medrival.models.catalog import get_card
    from medrival.models.weights import weights_status

    offline = hub.offline_requested() if offline is None else offline
    wanted = set(spec.models if models is None else models)
    problems = []
    for index, model in enumerate(spec.models):
        if model not in wanted:
            continue
        try:
            card = get_card(model)
        except UnknownNameError:
            continue  # the name check reports it, with a did-you-mean
        options = spec.model_options.get(model)
        if options is not None and options.engine == "vllm":
            continue  # the vLLM server holds the weights
        given = spec.weights.get(model)
        status = weights_status(card, given)
        if status.state in ("shipped", "local", "cached", "api"):
            continue
        place = where(spec.source, spec.lines, ("weights", model) if given else ("models", index))
        problem = _missing_problem(card, given, status.where, offline)
        if problem:
            problems.append(f"- {place}: model {model!r}: {problem}")
    return problems


def _missing_problem(card, given: str | None, missing: str, offline: bool) -> str | None:
    """What is missing and how to fix it, or None when a download at run time can still fetch it."""
    from medrival.models import hub
    from medrival.models.weights import WEIGHTS_ENV, download_commands, hub_requirements

    example = f"/path/to/weights/{card.id}"
    if given is not None:
        return (f"its weights folder {given} (study `weights:`) does not exist. Create it with the checkpoint, e.g. "
                + " ; ".join(download_commands(card, given) or [f"copy the checkpoint into {given}"])
                + ", or fix the path.")
    if card.source.kind == "demo":
        script = "pretrain_demo_vlms.py" if card.family == "generative" else "pretrain_demo_models.py"
        return ("the package holds no weights for this demo model; reinstall medrival or re-create them with "
                f"`python scripts/{script}`.")
    if card.source.kind == "local-dir":
        return (f"its card's folder {card.source.name} does not exist; put the checkpoint there, or give another "
                f"folder in the study: weights: {{{card.id}: {example}}}.")
    if not hub_requirements(card) or not offline:
        return None  # downloadable (or a source this check cannot see): the loader decides when it runs
    gated = f"\n    This checkpoint is gated: {card.access}" if card.gated else ""
    return (f"not in the Hugging Face cache ({hub.cache_dir()}; missing: {missing}) and downloads are off "
            f"(offline mode: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set; unset it to download at run time)."
            f"{gated}\n"
            f"    Fix 1, download into the cache (on a machine with internet, then copy the cache here): "
            + " ; ".join(download_commands(card)) + "\n"
            f"    Fix 2, a local copy: " + " ; ".join(download_commands(card, example))
            + f", then in the study file `weights: {{{card.id}: {example}}}` (or set {WEIGHTS_ENV}=/path/to/weights).")


# ----------------------------------------------------------------------------------------------- memory
DEFAULT_BATCH = 16


def _batch_size(spec) -> int:
    sizes = [m.config.get("batch_size") for m in spec.methods if isinstance(m.config.get("batch_size"), int)]
    return max(sizes, default=DEFAULT_BATCH)


def memory_problems(spec, models: Iterable[str] | None = None, available=None) -> tuple[list[str], list[str]]:
    """(problems, notes): a problem per model whose estimated memory (``medrival.models.precision``) exceeds what
    the device has free, a note per model whose size is unknown (its check is skipped). ``available``: a callable
    device -> (bytes, what), default ``available_memory``."""
    from medrival.models.catalog import get_card
    from medrival.models.precision import (GB, available_memory, card_parameters, check_quantization,
                                           memory_estimate, resolve_device)
    from medrival.study.spec import model_load_options

    wanted = set(spec.models if models is None else models)
    device = resolve_device(spec.device)
    problems, notes, free = [], [], None
    for model in spec.models:
        if model not in wanted:
            continue
        try:
            card = get_card(model)
        except UnknownNameError:
            continue
        options = model_load_options(spec, model)
        if card.source.kind == "openai-api" or options.engine == "vllm":
            continue  # the weights are on the server
        try:
            check_quantization(model, options)
        except MedrivalError as error:
            problems.append(f"- {error}")
            continue
        if options.placement is not None:
            notes.append(f"model {model!r}: memory not checked (device_map / max_memory place it).")
            continue
        count, origin = card_parameters(card, spec.weights.get(model))
        if count is None:
            notes.append(f"model {model!r}: memory not checked ({origin}).")
            continue
        batch = _batch_size(spec)
        need = memory_estimate(card, options.dtype, batch, quantization=options.quantization, parameters=count)
        if free is None:
            free = (available or available_memory)(device)
        if need > free[0]:
            problems.append(
                f"- model {model!r} needs about {need / GB:.1f} GB ({count / 1e9:.2f}B parameters from the {origin}, "
                f"{options.label}, batch {batch}) but {device} has {free[0] / GB:.1f} GB {free[1]}. Options: "
                f"model_options: {{{model}: {{dtype: bf16}}}} (half of fp32), {{quantization: 4bit}} (CUDA + "
                f"bitsandbytes), {{device_map: auto, max_memory: {{0: 20GiB, cpu: 64GiB}}}} (spread over devices), "
                "or a smaller batch_size in the method configs.")
    return problems, notes


def check_memory(spec, models: Iterable[str] | None = None, available=None) -> list[str]:
    """Raise one ConfigError naming every model too large for the device (before any cell runs); returns the
    notes of models whose size is unknown."""
    from medrival.core.errors import ConfigError

    problems, notes = memory_problems(spec, models, available)
    if problems:
        raise ConfigError(f"{spec.source}: these models do not fit, so nothing was run:\n" + "\n".join(problems))
    return notes
