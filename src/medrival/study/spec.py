"""Study files: what a study compares, and its expansion into cells with stable ids.

A study file names models, datasets, methods (each with an optional config) and seeds. ``expand_cells`` turns it
into the Cartesian product of ``CellSpec`` s and ``cell_id`` gives each cell a content hash, so a result stored
under that id is found again by any later run of the same (normalised) cell, in any process.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from medrival.core.config import (LineMap, line_for, load_yaml_with_lines, problems_error, read_config_text,
                                  validate)
from medrival.core.errors import ConfigError, ConfigProblems
from medrival.core.registry import suggest
from medrival.core.types import CellSpec

# Bump only on purpose: every stored result is keyed by ids computed with this scheme.
CELL_ID_VERSION = 1

EXAMPLE_STUDY = """\
name: my-study
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods:
  - zero_shot
  - name: linear_probe
    config: {Cs: [0.01, 0.1, 1.0]}
seeds: [0, 1, 2]
"""

Name = Annotated[str, Field(min_length=1)]
MAX_SEED = 2**32 - 1  # numpy, sklearn and torch seeds are 32-bit
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]  # strict: "3" or true in a seed list is a mistake, not a seed


def _check_config_value(value: Any, where: str) -> None:
    """Configs must be plain JSON-like data so that they hash to the same id in every process."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not allowed in a method config; use a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_config_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} must be a string; put it in quotes")
            _check_config_value(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: a {type(value).__name__} value ({value!r}) is not allowed in a method config; "
                     "use a string, number, boolean, list or mapping (quote dates)")


class MethodEntry(BaseModel):
    """One method of a study and its config. In YAML either ``zero_shot`` or ``{name: ..., config: {...}}``."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Registered method name, e.g. 'zero_shot' or 'linear_probe'.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Method settings; unset ones take the method's defaults.")
    seeds: list[Seed] | None = Field(
        None, min_length=1, description="Seeds of this method's cells, overriding the study's seeds (e.g. more "
                                        "seeds for a method whose training is noisy).")
    label: str | None = Field(
        None, min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.,=+\-\[\]() ]*$",
        description="The arm's name in tables, e.g. 'probe-strong' (default: the method name, and for a method "
                    "listed several times, the name with the options that differ from its defaults).")

    @field_validator("config")
    @classmethod
    def _plain_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        for key, value in config.items():
            _check_config_value(value, key)
        return config


def _duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    return [v for v in values if v in seen or seen.add(v)]


def _refuse_duplicates(values: list[Any], where: str) -> list[Any]:
    dups = _duplicates(values)
    if dups:
        raise ValueError(f"{dups[0]!r} is listed twice in {where}; list each once")
    return values


# Why a margin: "the adapted generalist rivals the specialist" is a non-inferiority claim, which needs the loss
# that still counts as "as good" to be stated before the numbers are seen.
class VerdictSpec(BaseModel):
    """How verdicts are read: non-inferiority margins per metric (``medrival.stats.verdicts.DEFAULT_MARGINS`` for
    metrics not listed)."""

    model_config = ConfigDict(extra="forbid")
    margin: dict[Name, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="Metric -> non-inferiority margin (absolute), e.g. {auroc: 0.02, "
                                          "closed_accuracy: 0.03}; unlisted metrics keep the documented defaults.")

    @field_validator("margin")
    @classmethod
    def _known_metrics(cls, margin: dict[str, float]) -> dict[str, float]:
        from medrival.stats.verdicts import DEFAULT_MARGINS

        for metric in margin:
            if metric not in DEFAULT_MARGINS:
                close = suggest(metric, list(DEFAULT_MARGINS))
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"no metric named {metric!r}{hint}; margins can be set for "
                                 f"{', '.join(DEFAULT_MARGINS)}")
        return margin


class FewShotSpec(BaseModel):
    """Label budgets: each listed budget becomes cells, once per seeded draw of the training subset."""

    model_config = ConfigDict(extra="forbid")

    shots: list[Annotated[int, Field(ge=1, le=100_000, strict=True)]] = Field(
        default_factory=list, description="Training examples per class, e.g. [1, 2, 4, 8, 16].")
    fractions: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=list, description="Class-stratified fractions of the training split, e.g. [0.01, 0.1, 1.0].")
    draws: int = Field(3, ge=1, le=100, description="Seeded draws of each budget (a fraction of 1.0 has one).")
    validation: Literal["matched", "full"] = Field(
        "matched", description="'matched': the validation split gets the same budget (selection sees no more "
                               "labels than training); 'full': the whole validation split.")

    @field_validator("shots", "fractions")
    @classmethod
    def _unique(cls, value: list[Any], info: Any) -> list[Any]:
        return _refuse_duplicates(value, f"fewshot.{info.field_name}")

    @model_validator(mode="after")
    def _some_budget(self) -> "FewShotSpec":
        if not self.shots and not self.fractions:
            raise ValueError("fewshot needs at least one budget: list 'shots' (e.g. [1, 4, 16]) and/or "
                             "'fractions' (e.g. [0.01, 0.1, 1.0]), or remove the fewshot section")
        return self

    def budgets(self) -> list[tuple[int | None, float | None, int]]:
        """(shots, fraction, draw) for every cell budget."""
        out = [(k, None, d) for k in self.shots for d in range(self.draws)]
        for fraction in self.fractions:
            out += [(None, fraction, d) for d in range(1 if fraction == 1 else self.draws)]
        return out


class CustomDatasetSpec(BaseModel):
    """A user dataset: ``format`` manifest | imagefolder | vqa, its ``root``, and the reader's options."""

    model_config = ConfigDict(extra="forbid")
    format: str = Field(description="manifest (CSV of paths and labels), imagefolder (class folders) or vqa.")
    root: str = Field(description="Folder holding the files; relative paths are relative to the study file.")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of the reader, e.g. csv_path, "
                                    "label_columns, modality (required), split_column, patient_column.")


class ChatEndpointSpec(BaseModel):
    """An OpenAI-compatible chat endpoint a study sends text to (the LLM judge, the answer extractor): its base
    URL, model and the environment variable holding the key, checked as an ``openai-api`` card's are."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(description="The endpoint's base URL, e.g. https://api.openai.com/v1 or a local server.")
    model: Name = Field(description="The model's name at that endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key (never stored).")

    @field_validator("base_url", "api_key_env")
    @classmethod
    def _checked_like_api_cards(cls, value: str, info: Any) -> str:
        """The same checks as an ``openai-api`` card's (no secrets in the URL, a plausible variable name)."""
        from medrival.core.cards import check_base_url, check_key_env_name

        check = check_base_url if info.field_name == "base_url" else check_key_env_name
        try:
            return check(value)
        except ConfigError as error:  # pydantic collects ValueErrors only
            raise ValueError(str(error)) from None


class LlmJudgeSpec(ChatEndpointSpec):
    """An LLM judge for the open answers of VQA cells (optional, off by default): an OpenAI-compatible chat
    endpoint grades each answer against its reference ``repeats`` times; the mean and spread are stored."""

    model: Name = Field(description="The judge model's name at that endpoint.")
    repeats: int = Field(3, ge=1, le=20, description="Judgments per answer; their spread is reported.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature of each judgment.")


class AnswerExtractorSpec(ChatEndpointSpec):
    """An answer extractor for the closed answers of VQA cells that the extraction rules leave undecided
    (optional, off by default): an OpenAI-compatible chat endpoint says which option such an answer commits to,
    or "undecided" (``medrival.metrics.answer_extractor``). The rules' decisions are never overridden."""

    model: Name = Field(description="The extractor model's name at that endpoint.")

    def cell_settings(self) -> dict[str, Any]:
        """What a VQA cell records of the extractor (part of its id): these settings and the prompt version, so
        a new prompt makes new cells. The key itself is never among them, only the variable's name."""
        from medrival.metrics.answer_extractor import EXTRACTOR_PROMPT_VERSION

        return {**self.model_dump(), "prompt_version": EXTRACTOR_PROMPT_VERSION}


Dtype = Literal["auto", "bf16", "fp16", "fp32"]


class VLLMOptions(BaseModel):
    """The vLLM server of a model with ``engine: vllm`` (see medrival.models.vllm_server)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field("http://127.0.0.1:8000/v1", description="The server's OpenAI-compatible base URL (loopback "
                                                            "by default).")
    command: str | None = Field(None, description="Run when nothing answers at url, e.g. '/opt/vllm/bin/vllm serve "
                                                  "llava-hf/llava-1.5-7b-hf --host 127.0.0.1 --port 8000'; stopped "
                                                  "when medrival exits. None: connect only.")
    served_model: str | None = Field(None, description="The model name the server serves (default: the card's "
                                                       "checkpoint, or the one model it serves).")
    concurrency: int = Field(16, ge=1, le=1024, description="Requests in flight.")
    start_timeout_s: float = Field(900.0, gt=0, description="Seconds a started server has to answer.")
    request_timeout_s: float = Field(300.0, gt=0, description="Seconds one request may take.")
    api_key_env: str | None = Field(None, description="Environment variable holding the server's --api-key "
                                                      "(None: no key is sent).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from medrival.core.cards import check_base_url

        try:
            return check_base_url(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None


class ModelOptions(BaseModel):
    """How one model of a study is loaded: its precision and, for transformers models, where its weights go."""

    model_config = ConfigDict(extra="forbid")
    engine: Literal["transformers", "vllm"] | None = Field(
        None, description="transformers (default: in this process) or vllm (a generative model answered by a vLLM "
                          "server in its own environment; see vllm:).")
    vllm: VLLMOptions | None = Field(None, description="With engine: vllm, where the server is and how to start it.")
    dtype: Dtype | None = Field(
        None, description="auto | bf16 | fp16 | fp32 for this model (default: the study's dtype). auto: bf16 on a "
                          "CUDA GPU with bf16 support, fp16 on an older GPU, fp32 on CPU and MPS.")
    quantization: Literal["4bit"] | None = Field(
        None, description="4bit: NF4 4-bit weights through bitsandbytes (generative models, CUDA only).")
    device_map: str | dict[str, int | str] | None = Field(
        None, description="transformers/accelerate device_map for a generative model, e.g. auto (spread over the "
                          "GPUs and the CPU) or a module -> device mapping.")
    max_memory: dict[int | str, str] | None = Field(
        None, description="Most memory per device for device_map, e.g. {0: 20GiB, cpu: 64GiB}.")

    @model_validator(mode="after")
    def _engine_settings(self) -> "ModelOptions":
        if self.engine == "vllm" and (self.quantization or self.device_map is not None or self.max_memory):
            raise ValueError("engine: vllm runs the model on the vLLM server: quantization, device_map and "
                             "max_memory are the server's options (put them in vllm.command)")
        if self.vllm is not None and self.engine != "vllm":
            raise ValueError("vllm: settings apply with engine: vllm only; add engine: vllm or remove vllm:")
        return self

    @field_validator("max_memory")
    @classmethod
    def _gpu_indices(cls, value: dict | None) -> dict | None:
        """GPU indices as ints (accelerate's form), whether YAML read ``0`` or ``"0"``."""
        if value is None:
            return None
        return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()}


class ExecutorSpec(BaseModel):
    """Where the study's model groups run: ``local`` (this machine; see ``jobs``) or ``ray`` (a Ray cluster)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = Field("local", description="local, or ray (pip install 'medrival[ray]').")
    address: str | None = Field(None, description="Ray only: 'local' or absent starts a one-machine cluster bound "
                                                  "to 127.0.0.1; 'auto' joins this machine's cluster; HOST:PORT "
                                                  "or ray://HOST:PORT joins that one.")
    num_cpus: int | None = Field(None, ge=1, le=100000, description="Ray with a local cluster: CPUs it may use.")


class StudySpec(BaseModel):
    """A paired study: every model x dataset x method x seed."""

    model_config = ConfigDict(extra="forbid")
    LABEL: ClassVar[str] = "study file"
    EXAMPLE_YAML: ClassVar[str] = EXAMPLE_STUDY

    name: Name = Field("study", description="Short name of the study; used in reports and output folders.")
    description: str = Field("", description="Free text describing what the study asks.")
    models: list[Name] = Field(min_length=1, description="Registered model names to compare (at least one).")
    datasets: list[Name] = Field(min_length=1, description="Registered dataset names to evaluate on.")
    methods: list[MethodEntry] = Field(
        min_length=1, description="Methods to run: a name, or a mapping with 'name' and 'config'.")
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1,
                              description="Non-negative random seeds; each cell is run once per seed.")
    store: str | None = Field(None, description="Output folder for results; default chosen by the runner.")
    fewshot: FewShotSpec | None = Field(
        None, description="Label budgets (shots per class / fractions) and draws; absent: the full training split.")
    weights: dict[Name, Name] = Field(
        default_factory=dict, description="Model name -> local folder holding its weights (overrides the Hub); "
                                          "relative paths are relative to the study file.")
    dtype: Dtype = Field(
        "auto", description="Precision of every model: auto (bf16 on a CUDA GPU with bf16 support, fp16 on an "
                            "older GPU, fp32 on CPU and MPS), bf16, fp16 or fp32; model_options overrides it per "
                            "model. A precision other than fp32 is part of each cell's id.")
    model_options: dict[Name, ModelOptions] = Field(
        default_factory=dict, description="Model name -> {dtype, quantization: 4bit, device_map, max_memory}.")
    custom_models: dict[Name, dict[str, Any] | str] = Field(
        default_factory=dict, description="Your own model cards under a name listed in models: an inline card "
                                          "mapping, or the path of a card YAML file (relative to the study file).")
    data_roots: dict[Name, str] = Field(
        default_factory=dict, description="Dataset name -> folder holding that release's files (default: "
                                          "$MEDRIVAL_DATA_DIR/<folder>); relative paths are relative to the study file.")
    custom_datasets: dict[Name, CustomDatasetSpec] = Field(
        default_factory=dict, description="Your own data under a name listed in datasets: format, root, options.")
    strict_images: bool = Field(
        False, description="Fail a cell when an image is missing or unreadable (default: skip it and record the "
                           "count with the result).")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$",
                        description="Where models run: auto (CUDA when available), cpu, cuda, cuda:N or mps.")
    feature_cache: str | None = Field(
        None, description="Folder of the content-addressed image-feature cache; share one between studies to "
                          "encode each image once per model across them (default: STORE/features, or "
                          "$MEDRIVAL_FEATURE_CACHE when set).")
    unsupported: Literal["refuse", "skip"] = Field(
        "refuse", description="What to do with a (model, dataset, method) combination the method cannot run (a "
                              "contrastive model on a VQA dataset, a generative one with linear_probe, a label "
                              "budget on a VQA dataset): 'refuse' the study, or 'skip' the combination (mixed "
                              "contrastive + generative studies; the skipped combinations are listed).")
    llm_judge: LlmJudgeSpec | None = Field(
        None, description="Optional LLM judge of open VQA answers (base_url, model, api_key_env, repeats, "
                          "temperature); off when absent.")
    answer_extractor: AnswerExtractorSpec | None = Field(
        None, description="Optional answer extractor (base_url, model, api_key_env): an LLM asked which option a "
                          "closed VQA answer commits to, for the answers the extraction rules leave undecided "
                          "only; off when absent.")
    save_checkpoints: bool = Field(
        False, description="Save each trained cell's learned state (heads, adapters) under STORE/checkpoints/.")
    verdicts: VerdictSpec = Field(
        default_factory=VerdictSpec, description="Non-inferiority margins of the verdicts, per metric: "
                                                 "{margin: {auroc: 0.02}}.")
    exposure: Literal["mark", "exclude"] = Field(
        "mark", description="Comparisons where a model was trained on the dataset's images or questions (its card's "
                            "trained_on): 'mark' them, or 'exclude' them from the verdicts; the report shows both.")
    jobs: int | Literal["auto"] = Field(
        1, description="Model groups run at once, each in its own child process with its share of the cores (and "
                       "one GPU each when there are several); auto picks from the cores and GPUs. 1: one at a time.")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec,
                                   description="Where groups run: {kind: local} (default) or {kind: ray, address: "
                                               "auto}.")
    isolation: Literal["none", "process"] = Field(
        "none", description="'process' runs each model group in a child process, so an out-of-memory error or a "
                            "crash fails only its cells and the study goes on (implied by jobs > 1).")

    @field_validator("jobs")
    @classmethod
    def _jobs_positive(cls, value):
        if value != "auto" and not 1 <= value <= 1024:
            raise ValueError(f"jobs must be a whole number from 1 to 1024 or 'auto', got {value!r}")
        return value

    # Where the spec came from, kept so that later checks (unknown names) can cite file and line.
    _lines: LineMap = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr("<string>")

    @field_validator("methods", mode="before")
    @classmethod
    def _bare_method_names(cls, value: Any) -> Any:
        # Allow the short form "- zero_shot" for a method without config.
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("methods")
    @classmethod
    def _unique_labels(cls, value: list[MethodEntry]) -> list[MethodEntry]:
        labels = [m.label for m in value if m.label is not None]
        dups = _duplicates(labels)
        if dups:
            raise ValueError(f"the label {dups[0]!r} is given to two methods; each arm needs its own label")
        return value

    @field_validator("models", "datasets", "seeds")
    @classmethod
    def _no_duplicate_values(cls, value: list[Any], info: Any) -> list[Any]:
        return _refuse_duplicates(value, info.field_name)

    @field_validator("methods")
    @classmethod
    def _no_duplicate_methods(cls, value: list[MethodEntry]) -> list[MethodEntry]:
        # The same method twice with different configs is fine (a sweep); the identical entry twice is not.
        keys = [json.dumps([m.name, m.config], sort_keys=True) for m in value]
        dups = _duplicates(keys)
        if dups:
            name = json.loads(dups[0])[0]
            raise ValueError(f"method {name!r} is listed twice with the same config; list each once")
        return value

    @field_validator("weights", "data_roots", "custom_datasets", "model_options", "custom_models")
    @classmethod
    def _keys_listed_in_study(cls, value: dict[str, str], info: Any) -> dict[str, str]:
        kind, what = ("models", info.field_name.replace("_", " ")) \
            if info.field_name in ("weights", "model_options", "custom_models") else \
            ("datasets", info.field_name.replace("_", " "))
        listed = info.data.get(kind) or []
        problems = []  # every stray name at once, not the first only
        for name in value:
            if name not in listed:
                close = suggest(name, listed)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                problems.append(f"{what} are given for {name!r}, which is not in {kind}.{hint}")
        if problems:
            raise ValueError(" ".join(problems) + f" {kind.capitalize()} of this study: {', '.join(listed)}")
        return value

    @property
    def lines(self) -> LineMap:
        """Path -> line of the file this spec was read from (empty when built in code)."""
        return self._lines

    @property
    def source(self) -> str:
        """The file name (or ``<string>``) this spec was read from."""
        return self._source


# ----------------------------------------------------------------------------------------------- loading
def parse_study(text: str, source: str = "<string>") -> StudySpec:
    """Parse and validate study YAML; the returned spec remembers ``source`` and line numbers.

    When the file's shape is wrong, the error also lists its unknown names and bad method options (every layer
    of ``medrival.study.validation`` runs), so one run reports every problem; a well-shaped file's names are
    checked later (``check_names``), against the registries and the study's custom datasets."""
    data, lines = load_yaml_with_lines(text, source, EXAMPLE_STUDY)
    try:
        spec = validate(StudySpec, data, lines, source)
    except ConfigProblems as error:
        raise _with_name_and_option_problems(error, data, lines, source) from None
    spec._lines = lines
    spec._source = source
    return spec


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file (missing file, directory, bad YAML or values -> ConfigError).

    Relative ``weights`` folders are resolved against the study file's folder, so a study runs the same from
    any working directory."""
    spec = parse_study(read_config_text(path), str(path))
    base = Path(path).expanduser().resolve().parent

    def resolved(folder: str) -> str:
        folder_path = Path(folder).expanduser()
        return str(folder_path if folder_path.is_absolute() else (base / folder_path).resolve())

    spec.weights = {name: resolved(folder) for name, folder in spec.weights.items()}
    spec.data_roots = {name: resolved(folder) for name, folder in spec.data_roots.items()}
    for custom in spec.custom_datasets.values():
        custom.root = resolved(custom.root)
    spec.custom_models = {name: resolved(card) if isinstance(card, str) else card
                          for name, card in spec.custom_models.items()}
    if spec.feature_cache:
        spec.feature_cache = resolved(spec.feature_cache)
    return spec


def check_weights(spec: StudySpec) -> None:
    """Every ``weights`` folder must exist before anything runs."""
    missing = [f"{name}: {folder}" for name, folder in spec.weights.items() if not Path(folder).is_dir()]
    if missing:
        raise ConfigError(f"{spec.source}: these weights folders do not exist:\n- " + "\n- ".join(missing)
                          + "\nDownload the checkpoint there (e.g. `hf download REPO --local-dir "
                            "FOLDER`) or fix the path.")


def _with_name_and_option_problems(error: ConfigProblems, data: Any, lines: LineMap, source: str) -> ConfigProblems:
    """``error`` (the model layer's problems) merged with the name and option layers' problems, in file order."""
    from medrival.study.validation import registered_names, study_problems

    # An entry whose config the model layer already rejects (a non-finite number, a non-mapping) is not re-checked.
    malformed = {path[1] for path, _ in error.problems if len(path) > 2 and path[0] == "methods"
                 and isinstance(path[1], int) and path[2] == "config"}
    custom = data.get("custom_datasets") if isinstance(data, dict) else None
    more = study_problems(data, lines, source, registered_names(custom), malformed)
    return problems_error(StudySpec, [*error.problems, *more], lines, source) if more else error


def check_names(spec: StudySpec, known: dict[str, list[str]]) -> None:
    """Raise one ConfigError listing every model/dataset/method name not in ``known`` (kinds absent are skipped)
    and, when methods are checked, every problem of every registered method's options, each with its line."""
    from medrival.study.validation import study_problems

    problems = [text for _, text in sorted(study_problems(spec, spec.lines, spec.source, known),
                                           key=lambda item: line_for(spec.lines, item[0]) or 0)]
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        names_only = all(": unknown " in p and " config: " not in p for p in problems)
        header = (f"{spec.source} names {len(problems)} unknown names:" if names_only
                  else f"{spec.source} has {len(problems)} problems:")
        raise ConfigError(header + "\n" + "\n".join(f"  {p}" for p in problems))


# ----------------------------------------------------------------------------------------------- cells
def freeze(value: Any) -> Any:
    """Hashable form of config data: lists -> tuples, dicts -> key-sorted tuples of (key, value), recursively.

    Note a nested dict and a list of [key, value] pairs freeze alike; methods should not accept both shapes.
    """
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(f"method config keys must be strings, got {sorted(map(repr, value))}")
        return tuple((k, freeze(value[k])) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def expand_cells(spec: StudySpec,
                 normalise_config: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
                 ) -> list[CellSpec]:
    """Every dataset x model x method x label budget x draw x seed, in that nesting order (datasets outermost).

    Datasets are outermost because cells sharing a dataset (and then a model) share encoded features: running
    them together keeps one dataset's images and one encoder's features warm. Within each level the order is the
    order of the study file, so the list is deterministic. ``normalise_config(method, config)`` (the runner
    passes one that fills defaults) makes an explicitly written default give the same cell and id as omitting it.
    """
    configs = []
    for method, label in zip(spec.methods, arm_labels(spec, normalise_config)):
        config = dict(method.config)
        if normalise_config is not None:
            config = normalise_config(method.name, config)
        configs.append((method.name, freeze(config), label, tuple(method.seeds or spec.seeds)))
    budgets = spec.fewshot.budgets() if spec.fewshot else [(None, None, 0)]
    subsample_val = bool(spec.fewshot and spec.fewshot.validation == "matched")
    loading = {model: _cell_loading(spec, model) for model in spec.models}
    return [
        CellSpec(model=model, dataset=dataset, method=method, seed=seed, method_config=config,
                 shots=shots, fraction=fraction, draw=draw, subsample_val=subsample_val and (shots, fraction) != (None, None),
                 weights=spec.weights.get(model), label=label, precision=loading[model][0],
                 placement=loading[model][1])
        for dataset, model, (method, config, label, seeds), (shots, fraction, draw) in itertools.product(
            spec.datasets, spec.models, configs, budgets)
        for seed in seeds
    ]


def model_load_options(spec: StudySpec, model: str):
    """The resolved ``medrival.models.precision.LoadOptions`` of ``model`` in this study (its model_options over
    the study's dtype, resolved for the study's device); plain fp32 for a model served over an API."""
    from medrival.core.errors import UnknownNameError
    from medrival.models.catalog import get_card
    from medrival.models.precision import LoadOptions, load_options

    try:
        if get_card(model).source.kind == "openai-api":
            return LoadOptions()
    except UnknownNameError:
        pass  # the name check reports it
    options = spec.model_options.get(model) or ModelOptions()
    server = (options.vllm or VLLMOptions()).model_dump() if options.engine == "vllm" else None
    return load_options(options.dtype or spec.dtype, spec.device, options.quantization, options.device_map,
                        options.max_memory, engine=options.engine, server=server)


def _cell_loading(spec: StudySpec, model: str) -> tuple[Any, str | None]:
    """(precision, placement) a cell of ``model`` carries: the precision as frozen data (None for fp32), the
    placement as canonical JSON (None when the model is moved whole to the device)."""
    options = model_load_options(spec, model)
    identity, placement = options.identity, options.placement
    return (freeze(identity) if identity is not None else None,
            json.dumps(placement, sort_keys=True, default=str) if placement is not None else None)


def _option_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).replace('"', "")


def arm_labels(spec: StudySpec,
               normalise_config: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None) -> list[str | None]:
    """The arm label of each method entry: its ``label:``; else, for a method listed more than once (a sweep),
    the name with the options that differ from the method's defaults, e.g. ``linear_probe(Cs=[0.001])``; else
    None (the arm is named by its method). Sweeps are never pooled into one arm; the label only names them."""
    counts: dict[str, int] = {}
    for method in spec.methods:
        counts[method.name] = counts.get(method.name, 0) + 1
    labels: list[str | None] = []
    for method in spec.methods:
        if method.label is not None or counts[method.name] == 1:
            labels.append(method.label)
            continue
        defaults = normalise_config(method.name, {}) if normalise_config is not None else {}
        changed = {k: v for k, v in sorted(method.config.items()) if defaults.get(k, object()) != v}
        options = ", ".join(f"{k}={_option_text(v)}" for k, v in changed.items())
        labels.append(f"{method.name}({options})" if options else method.name)
    return labels


def _jsonable(value: Any) -> Any:
    """Tuples -> lists so the canonical JSON does not depend on which container type was used."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def cell_id(cell: CellSpec) -> str:
    """16 hex chars of sha256 over the cell's canonical JSON; stable across processes and Python versions.

    Planned cells carry ``inputs`` (``study.fingerprints``: annotations, prompt texts, model files and source), so
    their ids change when what they read changes, not only when their spec does."""
    payload = {
        "id_version": CELL_ID_VERSION,
        "model": cell.model,
        "dataset": cell.dataset,
        "method": cell.method,
        "seed": cell.seed,
        "method_config": _jsonable(freeze(dict(cell.method_config))),
    }
    # Added fields enter the payload only when set, so ids of cells that do not use them never change.
    if cell.shots is not None or cell.fraction is not None:
        payload.update(shots=cell.shots, fraction=cell.fraction, draw=cell.draw, subsample_val=cell.subsample_val)
    if cell.weights is not None:
        payload["weights"] = cell.weights
    if cell.precision is not None:  # bf16, fp16 or 4-bit weights give other numbers than fp32: another cell
        payload["precision"] = _jsonable(freeze(dict(cell.precision)))
    if cell.judge is not None:  # a judged cell is another result than the same cell unjudged
        payload["judge"] = _jsonable(freeze(dict(cell.judge)))
    if cell.vqa_rules is not None:  # new prompt, form or scoring rules make new numbers: a new cell
        payload["vqa_rules"] = _jsonable(freeze(dict(cell.vqa_rules)))
    if cell.extractor is not None:
        payload["extractor"] = _jsonable(freeze(dict(cell.extractor)))
    if cell.inputs is not None:  # changed annotations, prompt texts or model files make new numbers: a new cell
        payload["inputs"] = _jsonable(freeze(dict(cell.inputs)))
    # Refusing NaN keeps the JSON standard; sort_keys/separators make the text (hence the hash) canonical.
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
