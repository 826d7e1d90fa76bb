"""What a cell's result reads besides its spec, fingerprinted into ``CellSpec.inputs`` and so into its id.

A result is reused whenever its cell id is found in the store, so every input that can change the numbers must be
in the id, or an edited annotation file, prompt template or checkpoint silently reuses numbers computed from the
old one. ``attach_inputs`` adds, per cell:

- ``prompt_material``: the dataset's class names, descriptions and zero-shot sentence templates (methods build class
  text from them: zero-shot, CoOp, Tip-Adapter, CLIP-Adapter, training heads initialised from text);
- ``annotations``: ``index:<digest>`` of a real or custom dataset's parsed annotation index, or
  ``demo-world:<digest>`` of the synthetic world's generator (``medrival.data.fingerprint``);
- ``model_source``: the card's source (kind, name, pretrained tag, Hub revision, endpoint), and
  ``model_architecture`` (what the loader builds); ``model_files``: a fingerprint of the local weights folder the
  model loads from (a study's ``weights:``, ``$MEDRIVAL_WEIGHTS_DIR/<id>``, a local-dir card, shipped demo weights),
  None for Hub and API models, whose identity is their pinned source;
- ``vqa_prompts`` (generative models and VQA datasets): the prompt templates' text, not only ``PROMPT_VERSION``;
  ``prompt_sets`` (cells with ``prompt_selection: validation`` or ``prompt_sensitivity``): every alternative
  wording they may use; ``judge_prompt`` / ``extractor_prompt`` when the cell has an LLM judge / answer extractor.

Versions of code rules (normalisation, extraction, forms) are in ``CellSpec.vqa_rules``; method defaults are in
the normalised method config. Fingerprints are computed once per dataset and per model in a plan.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from medrival.core.types import CellSpec
from medrival.data.catalog import dataset_registry
from medrival.data.fingerprint import demo_world_fingerprint, index_fingerprint, prompt_material_fingerprint
from medrival.models.catalog import get_card
from medrival.study.spec import StudySpec, freeze

DIGEST_CHARS = 16
SMALL_FILE_BYTES = 4 << 20  # configs, tokenizers, shard indexes, chat templates and the demo weights: read whole
SAMPLE_BYTES = 64 << 10  # larger (weight) files: the safetensors header at the start, then evenly spaced samples
SAMPLES = 16  # interior samples of a large file: a tensor longer than 1/17 of the file is always sampled


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def attach_inputs(spec: StudySpec, cells: list[CellSpec]) -> list[CellSpec]:
    """``cells`` with ``inputs`` set: the fingerprints above, each dataset and model fingerprinted once."""
    datasets: dict[str, dict] = {}
    models: dict[tuple[str, str | None], dict] = {}
    rules = _rule_texts()  # read per plan, not cached per process: a changed template must show at once
    out = []
    for cell in cells:
        if cell.dataset not in datasets:
            datasets[cell.dataset] = dataset_inputs(cell.dataset, spec.data_roots.get(cell.dataset))
        if (cell.model, cell.weights) not in models:
            models[cell.model, cell.weights] = model_inputs(cell.model, cell.weights)
        inputs = {**datasets[cell.dataset], **models[cell.model, cell.weights]}
        if get_card(cell.model).family == "generative" or datasets[cell.dataset]["task"] == "vqa":
            inputs["vqa_prompts"] = rules["vqa_prompts"]  # VQA prompts and the diagnosis question (option scoring)
        config = dict(cell.method_config)
        if config.get("prompt_selection", "fixed") != "fixed" or config.get("prompt_sensitivity"):
            inputs["prompt_sets"] = rules["prompt_sets"]  # the alternative wordings it chooses among / reports
        if cell.judge is not None:
            inputs["judge_prompt"] = rules["judge_prompt"]
        if cell.extractor is not None:
            inputs["extractor_prompt"] = rules["extractor_prompt"]
        out.append(replace(cell, inputs=freeze(inputs)))
    return out


def _rule_texts() -> dict[str, str]:
    """Digests of the prompt texts that generative cells, judges and extractors send."""
    from medrival.core import prompts
    from medrival.metrics.answer_extractor import EXTRACTOR_PROMPT
    from medrival.metrics.llm_judge import JUDGE_PROMPT

    return {"vqa_prompts": _digest({"templates": prompts.TEMPLATES, "diagnosis": prompts.DIAGNOSIS_TEMPLATE,
                                    "max_new_tokens": prompts.DEFAULT_MAX_NEW_TOKENS}),
            "prompt_sets": _digest(prompts.prompt_set_texts()),
            "judge_prompt": _digest(JUDGE_PROMPT), "extractor_prompt": _digest(EXTRACTOR_PROMPT)}


def dataset_inputs(name: str, root: str | None = None) -> dict[str, Any]:
    """Prompt material and annotation fingerprint of dataset ``name`` (read from ``root`` for real releases)."""
    from medrival.data.zoo.api import read_release
    from medrival.data.zoo.registry import release_registry

    info = dataset_registry().get(name).info
    if name in release_registry():  # public releases and custom datasets; the read is cached by the planner's check
        annotations = "index:" + index_fingerprint(read_release(name, root))
    elif info.synthetic:
        annotations = "demo-world:" + demo_world_fingerprint()
    else:  # registered some other way (a test's or a plugin's loader): nothing on disk to fingerprint
        annotations = None
    return {"task": info.task.value, "prompt_material": prompt_material_fingerprint(info), "annotations": annotations}


def model_inputs(name: str, weights: str | None = None) -> dict[str, Any]:
    """The card's source and architecture, and a fingerprint of the local folder the weights load from."""
    from medrival.models.demo_weights import WEIGHTS_DIR
    from medrival.models.weights import local_folder

    card = get_card(name)
    folder = local_folder(card, weights)  # weights: > $MEDRIVAL_WEIGHTS_DIR/<id> > a local-dir card
    if folder is None and card.source.kind == "demo":
        folder = WEIGHTS_DIR / card.source.name
    # The API key variable names where a key is read from; it does not change an answer.
    source = card.source.model_dump(exclude={"api_key_env"}, exclude_none=True)
    architecture = card.architecture.model_dump(exclude_none=True) if card.architecture is not None else None
    return {"model_source": source, "model_architecture": architecture and _digest(architecture),
            "model_files": folder_fingerprint(folder) if folder is not None else None}


def folder_fingerprint(folder: Path) -> str:
    """Digest of a weights folder: every file's path and size, small files in full, large ones sampled.

    Reading multi-gigabyte shards whole would make planning take minutes; the header and 16 evenly spaced samples
    see any retrained weights in practice. Hidden entries (``.cache`` of ``huggingface-cli download``) are skipped."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return "missing"  # loading fails and the cell is recorded as failed; files put there later: a new id
    entries = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        stat = path.stat()
        entries.append([relative.as_posix(), stat.st_size, _file_digest(path, stat.st_size)])
    return _digest(entries)


def _file_digest(path: Path, size: int) -> str:
    """Content digest of one file. Not cached by modification time: file times tick coarsely (milliseconds), so a
    checkpoint rewritten in place at the same size could keep a cached digest; a plan reads each folder once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= SMALL_FILE_BYTES:
            digest.update(handle.read())
        else:
            span = size - SAMPLE_BYTES
            for offset in sorted({round(i * span / (SAMPLES + 1)) for i in range(SAMPLES + 2)}):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:DIGEST_CHARS]
