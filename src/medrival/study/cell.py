"""Running one cell: load (cached) model and data, fit the method on train/val, predict test, score.

Models, dataset splits and image features are shared across the cells of a run through ``CellContext``.
Every aggregate is computed from the per-sample predictions, which are stored with the result.
"""
from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.cards import domain_of
from medrival.core.errors import DataError, MedrivalError, full_message
from medrival.core.prompts import PROMPT_SENSITIVITY, PROMPT_SET_OUTPUTS
from medrival.core.provenance import capture
from medrival.core.resources import PeakMemory
from medrival.core.types import CellSpec, ClassificationSplit, TaskKind
from medrival.data.catalog import dataset_registry, load_dataset
from medrival.data.fewshot import apply_budget, shots_warnings
from medrival.data.releases.index import split_class_warnings
from medrival.data.zoo.exposure import exposure_of
from medrival.methods import METHODS
from medrival.methods.features import FeatureCache
from medrival.methods.generation_cache import usage_from, usage_since
from medrival.metrics import compute_classification_metrics
from medrival.metrics.classification import UndefinedMetricWarning
from medrival.models.catalog import get_card
from medrival.store import CellRecord, utc_now
from medrival.study.spec import cell_id


def describe_cell(cell: CellSpec) -> dict:
    """The normalised spec stored with a result, plus fields derived from the card, the dataset and the method's
    declared capabilities (the research questions read these, never name lists)."""
    card, info = get_card(cell.model), dataset_registry().get(cell.dataset).info
    capabilities = dataclasses.asdict(METHODS.get(cell.method).capabilities)
    return {"model": cell.model, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
            "method_label": cell.label or cell.method, "capabilities": capabilities,
            "exposure": list(exposure_of(card, cell.dataset)),  # documented training on this dataset's data
            "method_config": cell.config_dict(), "role": card.role, "family": card.family,
            "modality": info.modality, "domain": domain_of(card, info), "task": info.task.value,
            "pair": card.generalist_counterpart, "synthetic": bool(card.synthetic or info.synthetic),
            "budget": cell.budget, "shots": cell.shots, "fraction": cell.fraction, "draw": cell.draw,
            "subsample_val": cell.subsample_val, "weights": cell.weights,
            **({"precision": dict(cell.precision)} if cell.precision is not None else {}),
            **({"llm_judge": dict(cell.judge)} if cell.judge is not None else {}),
            **({"vqa_rules": dict(cell.vqa_rules)} if cell.vqa_rules is not None else {}),
            **({"answer_extractor": dict(cell.extractor)} if cell.extractor is not None else {}),
            **({"inputs": dict(cell.inputs)} if cell.inputs is not None else {})}  # why a changed input re-ran


def failure_record(cell: CellSpec, error: BaseException, started_at: str, wall_s: float) -> CellRecord:
    message = full_message(error)  # never cut: the fix steps of an error follow its first line
    return CellRecord(cell_id(cell), describe_cell(cell), "failed", {}, {"wall_s": wall_s}, capture(cell.seed),
                      error=message, traceback=traceback.format_exc(), started_at=started_at, finished_at=utc_now())


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is usable, else "cpu"; an explicit device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MedrivalError(f"device {device!r} was asked for but torch sees no CUDA GPU "
                            f"(torch {torch.__version__}); use device: cpu or auto.")
    return device


class CellContext:
    """Caches shared by the cells of one run: one loaded model at a time, dataset splits, image features."""

    def __init__(self, feature_dir: Path | None, device: str = "auto", checkpoint_dir: Path | None = None,
                 data_roots: dict[str, str] | None = None, strict_images: bool = False):
        self.features = FeatureCache(feature_dir)
        self.data_roots = dict(data_roots or {})
        self.strict_images = strict_images
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self._model_key: tuple | None = None
        self._model = None
        self.model_dtype: str | None = None  # precision of the loaded model (fp32, bf16, 4bit ...), for records
        self._splits: dict[tuple[str, str], ClassificationSplit] = {}
        self.load_model_s = 0.0
        self.data_s = 0.0

    def model(self, name: str, weights: str | None = None, options=None):
        """The loaded model ``name`` (one at a time); ``options``: its ``LoadOptions`` (default fp32, whole)."""
        key = (name, weights, options)
        if key != self._model_key:
            from medrival.models.factory import create_model
            started = time.perf_counter()
            self._model, self._model_key = None, None  # free the previous model before loading the next
            self.features.release_memory()
            model = create_model(name, weights=weights, options=options)
            self._model, self._model_key = model.to(resolve_device(self.device)), key
            self.model_dtype = getattr(model, "dtype", None) if isinstance(getattr(model, "dtype", None), str) \
                else None
            self.load_model_s += time.perf_counter() - started
        return self._model

    @property
    def loaded_model(self):
        """The model now loaded (None before the first)."""
        return self._model

    def model_for(self, cell: CellSpec):
        """The model of ``cell``, loaded in the precision and placement the cell carries."""
        from medrival.models.precision import LoadOptions

        options = LoadOptions.from_cell(cell.precision, cell.placement, self.device)
        plain = options.identity is None and options.placement is None
        return self.model(cell.model, cell.weights, None if plain else options)

    def split(self, dataset: str, split: str) -> ClassificationSplit:
        key = (dataset, split)
        if key not in self._splits:
            started = time.perf_counter()
            options = {} if dataset_registry().get(dataset).info.synthetic else \
                {"root": self.data_roots.get(dataset), "strict": self.strict_images}
            self._splits[key] = load_dataset(dataset, split, **options)
            self.data_s += time.perf_counter() - started
        return self._splits[key]

    def drop_undecodable(self, dataset: str) -> dict[str, str]:
        """Decode every image of ``dataset``'s loaded lazy splits in full and leave out (counted as unreadable)
        the rows whose image fails; reference -> reason for each. Called when a corrupt body passed the header
        probe and failed a cell's encoding, so that the cell can run again without it."""
        from medrival.data.zoo.build import without_undecodable

        started, bad = time.perf_counter(), {}
        for key in [k for k in self._splits if k[0] == dataset]:
            self._splits[key], found = without_undecodable(self._splits[key])
            bad.update(found)
        self.data_s += time.perf_counter() - started
        return bad

    def timings(self) -> dict[str, float]:
        return {"data_s": self.data_s, "load_model_s": self.load_model_s,
                "encode_s": self.features.encode_seconds, "encoded_images": self.features.encoded_images}


# Per-example attributes stored beside each prediction: the cluster key for cluster-aware statistics (patient,
# lesion or image; several test items of one cluster are not independent) and subgroup attributes.
CLUSTER_KEYS = ("patient_id", "group_id", "image_id")
SUBGROUP_KEYS = ("sex", "age", "race", "ethnicity", "language", "view", "hospital")


def predictions_frame(test: ClassificationSplit, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test example: id, cluster id, subgroup attributes, label(s) and class probabilities.

    Single-label tasks store ``label`` and the argmax ``prediction``; multilabel tasks store one 0/1
    ``label_<class>`` column per class (a row has several positives, so there is no single prediction)."""
    ids = test.ids.astype(str)
    frame = pd.DataFrame({"sample_id": ids})
    cluster = next((test.meta[key] for key in CLUSTER_KEYS if key in test.meta), ids)
    frame["cluster_id"] = np.asarray(cluster).astype(str)
    for key in SUBGROUP_KEYS:
        if key in test.meta:
            frame[f"sg_{key}"] = test.meta[key]
    if test.info.task is TaskKind.MULTILABEL:
        for index, name in enumerate(test.info.class_names):
            frame[f"label_{name}"] = np.asarray(test.labels)[:, index]
    else:
        frame["label"] = test.labels
        frame["prediction"] = probabilities.argmax(axis=1)
    for index, name in enumerate(test.info.class_names):
        frame[f"prob_{name}"] = probabilities[:, index]
    return frame


def budgeted_splits(cell: CellSpec, context: CellContext):
    """(train, val, test) under the cell's label budget; test is always whole."""
    train, val, test = (context.split(cell.dataset, s) for s in ("train", "val", "test"))
    train = apply_budget(train, cell.shots, cell.fraction, cell.draw)
    if cell.subsample_val:
        val = apply_budget(val, cell.shots, cell.fraction, cell.draw)
    return train, val, test


def check_label_variety(split: ClassificationSplit) -> None:
    """A single-label split with examples of one class only cannot train a classifier: say so by name."""
    if split.info.task is TaskKind.MULTILABEL or len(split) == 0:
        return
    present = np.unique(split.labels)
    if len(present) < 2:
        only = split.info.class_names[int(present[0])] if len(present) else "none"
        raise DataError(f"{split.info.name}/{split.split} holds one class only ({only!r}, {len(split)} examples); "
                        "a classifier needs examples of at least two classes. Use a larger label budget or "
                        "check the dataset's split (medrival datasets check).")


def skipped_images(cell: CellSpec, context: CellContext) -> dict[str, dict[str, int]]:
    """Images left out of each split (missing or unreadable files), for the record."""
    splits = {name: context.split(cell.dataset, name) for name in ("train", "val", "test")}
    return {name: split.skipped for name, split in splits.items() if split.skipped}


def _fit_and_predict(cell: CellSpec, context: CellContext):
    """Fit on train/val, predict test; returns (output, test split, timing and size facts, validation
    predictions or None)."""
    model = context.model_for(cell)
    train, val, test = budgeted_splits(cell, context)
    spec = METHODS.get(cell.method)
    if spec.capabilities.uses_labels:
        check_label_variety(train)
    method = spec.build(spec.make_config(cell.config_dict()))
    encode_before, generations = context.features.encode_seconds, usage_from(context.features)
    fit_started = time.perf_counter()
    method.fit(model, train, val, context.features, seed=cell.seed)
    output = method.predict(test)
    facts = {"fit_s": time.perf_counter() - fit_started - (context.features.encode_seconds - encode_before),
             "encode_s": context.features.encode_seconds - encode_before,
             "n_train": len(train), "n_val": len(val), "device": str(model.device)}
    skipped = skipped_images(cell, context)
    if skipped:
        facts["skipped_images"] = skipped
    warned = split_class_warnings({s: context.split(cell.dataset, s) for s in ("train", "val", "test")}) \
        + shots_warnings(context.split(cell.dataset, "train"), cell.shots)
    if warned:
        facts["data_warnings"] = warned
    if context.checkpoint_dir is not None and hasattr(method, "save"):
        method.save(context.checkpoint_dir / cell_id(cell))
    val_frame = _validation_predictions(method, val, facts)
    reused = usage_since(context.features, generations)
    if reused["hits"] or reused["misses"]:  # a generative model scored options: what the cache gave
        facts["generation_cache"] = reused
    return output, test, facts, val_frame


def _validation_predictions(method, val: ClassificationSplit, facts: dict) -> pd.DataFrame | None:
    """Binary cells also store their validation predictions, so that a report can fix a decision threshold on
    validation and show the operating point it gives on test (never choosing it on test)."""
    if val.info.task is not TaskKind.BINARY or len(val) == 0:
        return None
    started = time.perf_counter()
    frame = predictions_frame(val, method.predict(val).probabilities)
    facts["val_predict_s"] = time.perf_counter() - started
    return frame


def _run_classification(cell: CellSpec, context: CellContext) -> tuple[dict, dict, pd.DataFrame]:
    """(metrics, cost facts, predictions frame) of a diagnosis cell."""
    output, test, facts, val_frame = _fit_and_predict(cell, context)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        metrics = compute_classification_metrics(test.info.task, test.labels, output.probabilities,
                                                 test.info.class_names)
    set_outputs = output.extras.pop(PROMPT_SET_OUTPUTS, None)  # per-template-set test outputs: scored here
    facts = {**facts, "trainable_params": output.trainable_parameters, **output.extras}
    if set_outputs:
        facts[PROMPT_SENSITIVITY] = prompt_set_metrics(test, set_outputs)
    notes = [str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)]
    if notes:  # e.g. a test split with one class: AUROC is NaN, and the record says why
        facts["metric_notes"] = notes
    frame = predictions_frame(test, output.probabilities).assign(split="test")
    if val_frame is not None:
        frame = pd.concat([frame, val_frame.assign(split="val")], ignore_index=True)
    return metrics, facts, frame


def prompt_set_metrics(test: ClassificationSplit, set_outputs: dict) -> dict[str, dict[str, float]]:
    """Each template set's test metrics, from the probabilities a method with ``prompt_sensitivity`` returns: scored
    here because the runner, not the method, reads test labels. A spread for the report, never used to choose;
    undefined metrics are already noted for the cell's own prediction, so their warnings are not repeated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {name: compute_classification_metrics(test.info.task, test.labels, probabilities,
                                                     test.info.class_names)
                for name, probabilities in set_outputs.items()}


def _run_vqa(cell: CellSpec, context: CellContext) -> tuple[dict, dict, pd.DataFrame]:
    """(metrics, cost facts, per-question frame) of a VQA cell."""
    from medrival.study.vqa_cell import (
        extract_undecided_answers, fit_and_answer, judge_open_answers, prompt_set_vqa_metrics, score_vqa, vqa_metrics)

    spec = METHODS.get(cell.method)
    method = spec.build(spec.make_config(cell.config_dict()))
    try:
        output, test, facts = fit_and_answer(cell, context, method)
        if context.checkpoint_dir is not None and hasattr(method, "save"):
            method.save(context.checkpoint_dir / cell_id(cell))
    finally:
        if hasattr(method, "close"):  # trained adapters are removed so the shared model is the base model again
            method.close()
    frame = score_vqa(test, output)
    set_outputs = output.extras.pop(PROMPT_SET_OUTPUTS, None)  # per-prompt-set test answers: scored here
    facts = {**facts, "trainable_params": output.trainable_parameters, **output.extras}
    if set_outputs:
        facts[PROMPT_SENSITIVITY] = prompt_set_vqa_metrics(test, set_outputs)
    if cell.extractor is not None:  # the answers the rules left undecided, decided by the study's extractor
        frame, extracted = extract_undecided_answers(test, output, frame, dict(cell.extractor))
        facts.update(extracted)
    metrics = vqa_metrics(frame)
    if cell.judge is not None:
        frame, judged, facts["judge_prompt_version"] = judge_open_answers(frame, dict(cell.judge))
        metrics.update(judged)
    return metrics, facts, frame.assign(split="test")


def _run_skipping_undecodable(run, cell: CellSpec, context: CellContext):
    """``run(cell, context)``; when an image with a sound header fails to decode (a corrupt body) and the study
    does not ask for strict images, every undecodable image of the dataset is left out and counted, and the cell
    runs once more. With ``strict_images`` the error, naming the file, fails the cell."""
    from medrival.data.imageio import ImageDecodeError

    try:
        return run(cell, context)
    except ImageDecodeError:
        if context.strict_images or not context.drop_undecodable(cell.dataset):
            raise
    return run(cell, context)


def generation_facts(context: CellContext) -> dict:
    """``{"generation": {...}}`` when the loaded model generated or scored text since the last call (engine,
    questions/s, prefill tokens saved by shared prefixes, why any question took the plain path); the tally is
    reset."""
    model = context.loaded_model
    stats = getattr(model, "sharing_stats", None)
    if stats is None:
        return {}
    model.sharing_stats = stats.fresh()
    return {"generation": stats.as_cost()} if stats.questions else {}


def execute_cell(cell: CellSpec, context: CellContext) -> tuple[CellRecord, pd.DataFrame | None]:
    """Run one cell; any exception becomes a failed record (the study goes on)."""
    started_at, started = utc_now(), time.perf_counter()
    task = dataset_registry().get(cell.dataset).info.task
    run = _run_vqa if task is TaskKind.VQA else _run_classification
    generation_facts(context)  # a tally left by an earlier cell on the same model is not this cell's
    try:
        with PeakMemory() as peak:
            metrics, facts, frame = _run_skipping_undecodable(run, cell, context)
    except Exception as error:  # noqa: BLE001 - a cell's failure is data, not a crash of the study
        return failure_record(cell, error, started_at, time.perf_counter() - started), None
    cost = {"wall_s": time.perf_counter() - started, **facts, **peak.as_dict(), **generation_facts(context)}
    if context.model_dtype is not None:
        cost["dtype"] = context.model_dtype
    record = CellRecord(cell_id(cell), describe_cell(cell), "done", metrics, cost, capture(cell.seed),
                        started_at=started_at, finished_at=utc_now())
    return record, frame
