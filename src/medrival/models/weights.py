"""Where a card's weights are, and what to tell the user when they are not there.

Precedence: a ``weights`` folder given for the model (a study's ``weights:`` mapping) > ``$MEDRIVAL_WEIGHTS_DIR/<card
id>/`` when that folder exists > the card's own source (shipped demo weights, a local-dir, or the Hugging Face Hub
cache, downloading only when the Hub answers). Nothing here imports torch, so ``medrival models`` stays light.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from medrival.core.cards import ModelCard
from medrival.core.errors import MedrivalError
from medrival.models import hub
from medrival.models.hub import HubFiles

WEIGHTS_ENV = "MEDRIVAL_WEIGHTS_DIR"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "vocab.txt")
DEMO_VLM_WEIGHTS = "model.safetensors"  # a shipped demo generative model is a transformers save_pretrained folder
_SKIP_FRAMEWORKS = '--exclude "*.h5" --exclude "*.msgpack"'  # TensorFlow / Flax copies medrival never reads

T = TypeVar("T")
LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError)  # what open_clip, transformers and the Hub raise


@dataclass(frozen=True)
class WeightsStatus:
    """``state`` is shipped | local | cached | missing | api; ``where`` a folder, cache, the repos that are
    missing, or an API's endpoint."""

    state: str
    where: str = ""

    @property
    def label(self) -> str:
        """Short form for tables: yes / no / shipped / local: PATH."""
        return {"cached": "yes", "missing": "no", "shipped": "shipped"}.get(
            self.state, f"{'api' if self.state == 'api' else 'local'}: {self.where}")


# ----------------------------------------------------------------------------------------------- locating
def local_folder(card: ModelCard, weights: str | Path | None = None) -> Path | None:
    """The local folder to load ``card`` from, or None when it comes from the demo package or the Hub."""
    if weights is not None:
        folder = Path(weights).expanduser()
        if not folder.is_dir():
            raise MedrivalError(f"Weights folder for model {card.id!r} not found: {folder}. Give an existing folder "
                                f"holding the checkpoint ({_folder_layout(card)}).")
        return folder
    from_env = _env_folder(card)
    if from_env is not None:
        return from_env
    if card.source.kind == "local-dir":
        return Path(card.source.name).expanduser()
    return None


def demo_vlm_folder(card: ModelCard, script: str) -> tuple[Path, str]:
    """(folder, weights id) of a shipped demo generative model; the id names a hash of its weights, so features
    cached for one training run are not reused for another."""
    import hashlib

    from medrival.models.demo_weights import WEIGHTS_DIR

    folder = WEIGHTS_DIR / card.source.name
    weights_file = folder / DEMO_VLM_WEIGHTS
    if not weights_file.is_file():
        raise MedrivalError(f"Demo model {card.id!r} has no weights in the package: {folder} holds no "
                            f"{DEMO_VLM_WEIGHTS}. Re-create them with `python {script}`.")
    digest = hashlib.sha256()
    with weights_file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return folder, f"demo:{card.source.name}:{digest.hexdigest()[:16]}"


def _demo_shipped(card: ModelCard) -> bool:
    from medrival.models.demo_weights import WEIGHTS_DIR, shipped_ids

    if card.family == "generative":
        return (WEIGHTS_DIR / card.source.name / DEMO_VLM_WEIGHTS).is_file()
    return card.source.name in shipped_ids()


def hub_requirements(card: ModelCard) -> list[HubFiles]:
    """The Hub files loading ``card`` reads, per repo (empty when it does not come from the Hub)."""
    source, architecture = card.source, card.architecture
    if source.kind == "open_clip":
        return [HubFiles(source.weights_repo, None, (OPEN_CLIP_WEIGHTS,))] if source.weights_repo else []
    if source.kind == "hf-hub":
        needs = [HubFiles(source.name, None, (("open_clip_config.json",), OPEN_CLIP_WEIGHTS))]
        if architecture is not None and architecture.text_tower:
            needs.append(HubFiles(architecture.text_tower, None, (("config.json",), TOKENIZER_FILES)))
        return needs
    if source.kind == "transformers":
        return [HubFiles(source.name, source.revision, (("config.json",), TRANSFORMERS_WEIGHTS,
                                                         ("preprocessor_config.json",), TOKENIZER_FILES))]
    return []


def weights_status(card: ModelCard, weights: str | Path | None = None) -> WeightsStatus:
    """Whether ``card``'s weights are available without a download (never touches the network)."""
    if card.source.kind == "openai-api":  # no weights here: the model answers over HTTP
        return WeightsStatus("api", str(card.source.base_url))
    if card.source.kind == "demo" and weights is None and _env_folder(card) is None:
        return WeightsStatus("shipped") if _demo_shipped(card) else WeightsStatus("missing", "package")
    try:
        folder = local_folder(card, weights)
    except MedrivalError:
        return WeightsStatus("missing", str(weights))
    if folder is not None:
        return WeightsStatus("local", str(folder)) if folder.is_dir() else WeightsStatus("missing", str(folder))
    requirements = hub_requirements(card)
    missing = [files.repo_id for files in requirements if hub.missing_groups(files)]
    if requirements and not missing:
        return WeightsStatus("cached", str(hub.cache_dir()))
    return WeightsStatus("missing", ", ".join(missing) or card.source.name)


def _env_folder(card: ModelCard) -> Path | None:
    """``$MEDRIVAL_WEIGHTS_DIR/<card id>`` when the variable is set and that folder exists."""
    root = os.environ.get(WEIGHTS_ENV, "").strip()
    folder = Path(root).expanduser() / card.id if root else None
    return folder if folder is not None and folder.is_dir() else None


def hub_weights_id(card: ModelCard) -> str:
    """Repo ids with the commits found in the cache: features cached for one commit are not reused for another."""
    parts = []
    for files in hub_requirements(card):
        commit = next((c for group in files.groups for name in group
                       if (c := hub.cached_commit(files.repo_id, name, files.revision))), None)
        parts.append(f"{files.repo_id}@{commit or files.revision or 'main'}")
    return "hub:" + "|".join(parts)


# ----------------------------------------------------------------------------------------------- loading
def load_from_hub(card: ModelCard, load: Callable[[], T]) -> T:
    """Run ``load`` (which reads the Hub through huggingface_hub) without ever waiting on a dead network.

    Cached checkpoints load in offline mode; otherwise a quick probe decides between downloading and an
    immediate, actionable error.
    """
    requirements = hub_requirements(card)
    if requirements and hub.all_cached(requirements):
        try:
            with hub.offline_mode():
                return load()
        except MedrivalError:
            raise  # already says what is wrong with the checkpoint
        except LOAD_ERRORS as error:  # e.g. a shard or file the cache check does not cover
            reason = hub.hub_unreachable_reason()
            if reason:
                raise MedrivalError(unavailable_message(card, reason, detail=str(error))) from error
    else:
        reason = hub.hub_unreachable_reason()
        if reason:
            raise MedrivalError(unavailable_message(card, reason))
    try:
        return load()
    except MedrivalError:
        raise
    except LOAD_ERRORS as error:
        if hub.is_gated_error(error):
            raise MedrivalError(gated_message(card)) from error
        raise MedrivalError(f"Could not load model {card.id!r} from the Hugging Face Hub "
                            f"({', '.join(f.repo_id for f in requirements) or card.source.name}): {error}") from error


# ----------------------------------------------------------------------------------------------- messages
def _folder_layout(card: ModelCard) -> str:
    if card.served_by in ("transformers", "transformers-generative"):
        return "a transformers save_pretrained folder: config.json, model weights, tokenizer and preprocessor files"
    text = ""
    if card.architecture is not None and card.architecture.text_tower:
        text = f"; plus config.json and tokenizer files of the text tower {card.architecture.text_tower}"
    config = "open_clip_config.json (optional for a built-in config)" if card.source.kind == "open_clip" else (
        "open_clip_config.json")
    return f"{config} + open_clip_model.safetensors or open_clip_pytorch_model.bin{text}"


def download_commands(card: ModelCard, local_dir: str | None = None) -> list[str]:
    """``hf download`` commands that fetch what ``card`` needs (into the cache, or into ``local_dir``)."""
    target = f" --local-dir {local_dir}" if local_dir else ""
    commands = []
    for files in hub_requirements(card):
        revision = f" --revision {files.revision}" if files.revision else ""
        if card.architecture is not None and files.repo_id == card.architecture.text_tower:
            what = ' --include "*.json" --include "*.txt"'  # config and tokenizer; its weights are in the CLIP file
        elif card.source.kind == "open_clip":
            what = f" {OPEN_CLIP_WEIGHTS[0]}"  # only the safetensors copy; the repo also holds other formats
        elif card.source.kind == "transformers":
            what = f" {_SKIP_FRAMEWORKS}"
        else:
            what = ""
        commands.append(f"hf download {files.repo_id}{what}{revision}{target}")
    return commands


def gated_message(card: ModelCard) -> str:
    return (f"Model {card.id!r} ({card.source.name}) is gated on the Hugging Face Hub and this machine has no "
            f"access to it. To get access: {card.access or 'accept its terms on its Hub page, then `hf auth login`.'}")


def unavailable_message(card: ModelCard, reason: str, detail: str = "") -> str:
    """What is missing, why it cannot be fetched, and the two ways to fix it.

    The first line says what is wrong; the numbered lines after it give the exact commands, so whoever shows
    or stores this message must keep every line (a failed cell stores it whole).
    """
    repos = [files.repo_id for files in hub_requirements(card)] or [card.source.name]
    example = f"/path/to/weights/{card.id}"
    lines = [
        f"Model {card.id!r} cannot be loaded: its weights ({', '.join(repos)}) are not in the local Hugging Face "
        f"cache ({hub.cache_dir()}) and the Hub is unreachable ({reason}); pre-download them with `hf download` "
        f"or point medrival at a local copy (study `weights:` or {WEIGHTS_ENV}), as below."
        + (f" ({detail})" if detail else ""),
    ]
    if card.gated:
        lines.append(f"This checkpoint is gated: {card.access}")
    lines += [
        "(1) Pre-download into the cache on a machine with internet access, then copy that cache folder here "
        "(or point HF_HUB_CACHE at it): " + " ; ".join(download_commands(card))
        + "   (or in Python: from huggingface_hub import snapshot_download; "
        + "; ".join(f"snapshot_download({repo!r})" for repo in repos) + ")",
        f"(2) Put a local copy in a folder ({_folder_layout(card)}) and point medrival at it: in the study file "
        f"`weights: {{{card.id}: {example}}}`, or set {WEIGHTS_ENV}=/path/to/weights with the copy in "
        f"{example}/ , e.g. " + " ; ".join(download_commands(card, example)),
    ]
    return "\n".join(lines)
