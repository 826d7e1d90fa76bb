"""Model cards: one YAML entry per checkpoint says what it is, where it comes from and what it saw.

In-domain / out-of-domain and generalist–specialist pairs are derived from cards, never written into studies.
A card's ``architecture`` and ``preprocessing`` are documentation that the registry-wide contract test checks
against the real configs; at load time the preprocessing always comes from the checkpoint's own config files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medrival.core.errors import ConfigError, UnknownNameError
from medrival.core.types import DatasetInfo, check_modality

SourceKind = Literal["open_clip", "hf-hub", "local-dir", "demo", "transformers", "openai-api"]
HUB_KINDS = ("open_clip", "hf-hub", "transformers")  # kinds whose weights come from the Hugging Face Hub
API_KIND = "openai-api"  # a generative model behind an OpenAI-compatible HTTP endpoint: no local weights
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")  # upper case only, so a pasted key (mixed case, dashes) fails
_HIDDEN = "<refused value, not shown> "  # prefixes the reason that stands for a refused value in pydantic errors
OPEN_CLIP_CLASSES = ("CLIP", "CustomTextCLIP")
TRANSFORMERS_CLASSES = ("CLIPModel", "SiglipModel")  # contrastive checkpoints served by transformers
CONTRASTIVE_CLASSES = OPEN_CLIP_CLASSES + TRANSFORMERS_CLASSES
# Generative (image-text-to-text) transformers classes, each with the config ``model_type`` that maps to it in
# transformers' image-text-to-text auto mapping (tests/test_generative_cards.py checks the pairs).
GENERATIVE_CLASSES: dict[str, str] = {
    "LlavaForConditionalGeneration": "llava",
    "Qwen2VLForConditionalGeneration": "qwen2_vl",
    "Qwen2_5_VLForConditionalGeneration": "qwen2_5_vl",
    "Gemma3ForConditionalGeneration": "gemma3",
    "InternVLForConditionalGeneration": "internvl",
    "Idefics3ForConditionalGeneration": "idefics3",  # SmolVLM (v1) checkpoints, e.g. SmolVLM-256M-Instruct
    "SmolVLMForConditionalGeneration": "smolvlm",  # SmolVLM2 checkpoints
}
ModelClass = Literal[
    "CLIP", "CustomTextCLIP", "CLIPModel", "SiglipModel",
    "LlavaForConditionalGeneration", "Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration",
    "Gemma3ForConditionalGeneration", "InternVLForConditionalGeneration", "Idefics3ForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
]
_CONTRASTIVE_ONLY = ("embed_dim", "context_length", "open_clip_config", "timm_model", "text_tower")


# ------------------------------------------------------------------------------------------------ API sources
# Messages about api_key_env and base_url never repeat the value given: a key may have been pasted there.
def _key_env_problem(name: object) -> Optional[str]:
    if isinstance(name, str) and _ENV_NAME.fullmatch(name):
        return None
    return ("api_key_env must be the NAME of the environment variable that holds the API key (upper-case letters, "
            "digits and underscores, e.g. OPENAI_API_KEY), not the key itself; the value given is not shown.")


def _base_url_problem(url: object) -> Optional[str]:
    try:
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        port = parts.port if parts is not None else None  # parsing the port raises on a malformed one
    except ValueError:
        parts = port = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return ("base_url must be an http(s) address such as https://api.openai.com/v1 or http://localhost:8000/v1 "
                "(requests go to BASE_URL/chat/completions); the value given is not shown.")
    if "@" in parts.netloc or parts.query or parts.fragment:
        return ("base_url must not hold credentials, a query string or a fragment: it is shown in messages and "
                "stored with results. Put the key in the environment variable named by api_key_env; the value "
                "given is not shown.")
    return None


def check_key_env_name(name: object) -> str:
    """``name`` when it can be the name of the environment variable holding an API key, else ``ConfigError``."""
    problem = _key_env_problem(name)
    if problem:
        raise ConfigError(problem)
    return name


def check_base_url(url: object) -> str:
    """``url`` without a trailing slash when it is a plain http(s) address, else ``ConfigError``.

    Credentials (``user:pass@``), query strings and fragments are refused: the endpoint is printed in messages and
    hashed into fingerprints, so it must hold no secret.
    """
    problem = _base_url_problem(url)
    if problem:
        raise ConfigError(problem)
    return url.strip().rstrip("/")


class ModelSource(BaseModel):
    """Where the weights come from. ``kind`` selects the loader."""

    model_config = ConfigDict(extra="forbid")
    kind: SourceKind = Field(
        description="open_clip: built-in config name + pretrained tag; hf-hub: an open_clip repo on the Hub; "
                    "transformers: a Hub repo served by transformers (CLIPModel / SiglipModel, or a generative "
                    "image-text-to-text class); local-dir: a local checkpoint folder; demo: shipped tiny model; "
                    "openai-api: a generative model behind an OpenAI-compatible HTTP endpoint (base_url).")
    name: str = Field(description="open_clip model name, Hub repo id, folder path, demo model id, or the API's "
                                  "model name (kind=openai-api, e.g. gpt-4o-mini).")
    pretrained: Optional[str] = Field(None, description="open_clip pretrained tag (kind=open_clip only).")
    revision: Optional[str] = Field(
        None, description="Hub revision (commit hash, branch or tag) to pin (kind=transformers only).")
    weights_repo: Optional[str] = Field(
        None, description="kind=open_clip: the Hub repo open_clip downloads this tag's weights from (checked against "
                          "open_clip's registry by the contract test; used for cache status and download hints).")
    base_url: Optional[str] = Field(
        None, description="kind=openai-api (required): the OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 "
                          "or http://localhost:8000/v1; requests go to BASE_URL/chat/completions.")
    api_key_env: Optional[str] = Field(
        None, description=f"kind=openai-api: the environment variable holding the API key (default "
                          f"{DEFAULT_API_KEY_ENV}). The key itself never goes in a card.")

    @model_validator(mode="before")
    @classmethod
    def _hide_secrets(cls, data):
        """Swap a refused api_key_env / base_url for a placeholder holding the reason before validation: pydantic
        prints each failing field's input, and a value pasted there may be the key itself."""
        if isinstance(data, dict):
            for field, problem_of in (("api_key_env", _key_env_problem), ("base_url", _base_url_problem)):
                problem = problem_of(data[field]) if data.get(field) is not None else None
                if problem:
                    data = {**data, field: _HIDDEN + problem}
        return data

    @field_validator("api_key_env", "base_url")
    @classmethod
    def _refused(cls, value: Optional[str]) -> Optional[str]:
        if isinstance(value, str) and value.startswith(_HIDDEN):
            raise ValueError(value[len(_HIDDEN):])
        return value

    @field_validator("base_url")
    @classmethod
    def _plain_url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_base_url(value)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> "ModelSource":
        if self.kind == API_KIND:
            return self._api_fields()
        if self.base_url is not None or self.api_key_env is not None:
            raise ValueError(f"source.base_url and source.api_key_env apply to kind {API_KIND} only, not "
                             f"{self.kind!r}; remove them.")
        if self.kind == "open_clip" and not self.pretrained:
            raise ValueError("source.pretrained (an open_clip tag such as 'openai') is required for kind open_clip; "
                             "list tags with `python -c \"import open_clip; print(open_clip.list_pretrained())\"`.")
        if self.kind != "open_clip" and (self.pretrained or self.weights_repo):
            raise ValueError(f"source.pretrained and source.weights_repo apply to kind open_clip only, "
                             f"not {self.kind!r}; remove them.")
        if self.revision and self.kind != "transformers":
            # open_clip's hub loader always reads the main branch, so a pin here would silently not be honoured.
            raise ValueError(f"source.revision is honoured for kind transformers only, not {self.kind!r}: "
                             "open_clip reads a repo's main branch. To pin, download that revision into a folder "
                             "(`hf download REPO --revision REV --local-dir DIR`) and give it as the study's weights.")
        return self

    def _api_fields(self) -> "ModelSource":
        if self.base_url is None:
            raise ValueError(f"source.base_url (the endpoint, e.g. https://api.openai.com/v1 or "
                             f"http://localhost:8000/v1) is required for kind {API_KIND}.")
        if self.pretrained or self.weights_repo or self.revision:
            raise ValueError(f"source.pretrained, source.weights_repo and source.revision do not apply to kind "
                             f"{API_KIND}: the server decides which weights answer; remove them.")
        if not self.name.strip():
            raise ValueError(f"source.name must be the API's model name (e.g. gpt-4o-mini) for kind {API_KIND}.")
        if self.api_key_env is None:
            self.api_key_env = DEFAULT_API_KEY_ENV  # written out, so a dumped card says where its key comes from
        return self


class Architecture(BaseModel):
    """The network a checkpoint has: enough to rebuild a contrastive one at tiny size (the contract test does), and
    to say what a generative one is made of."""

    model_config = ConfigDict(extra="forbid")
    model_class: ModelClass = Field(
        description="open_clip CLIP / CustomTextCLIP, transformers CLIPModel / SiglipModel (contrastive), or a "
                    "transformers image-text-to-text class such as LlavaForConditionalGeneration (generative).")
    vision_tower: str = Field(description="Readable name of the image tower, e.g. 'ViT-B/16'.")
    patch_size: Optional[int] = Field(None, gt=0, description="Image-tower patch size (required for contrastive).")
    embed_dim: Optional[int] = Field(
        None, gt=0, description="Width of the shared image-text embedding space (contrastive only, required).")
    context_length: Optional[int] = Field(
        None, gt=0, description="Longest text, in tokens, the text tower reads (contrastive only, required).")
    open_clip_config: Optional[str] = Field(
        None, description="Built-in open_clip config with this checkpoint's shapes (e.g. 'ViT-B-16-quickgelu').")
    timm_model: Optional[str] = Field(None, description="timm model name of the image tower (CustomTextCLIP).")
    text_tower: Optional[str] = Field(
        None, description="Hub repo of a Hugging Face text tower (CustomTextCLIP); its config and tokenizer are "
                          "read from that repo at load time.")
    language_model: Optional[str] = Field(
        None, description="Readable name of the language model (generative only, required), e.g. 'Vicuna-7B v1.5'.")
    parameters_b: Optional[float] = Field(
        None, gt=0, description="Total parameters in billions (generative only, required).")

    @property
    def generative(self) -> bool:
        return self.model_class in GENERATIVE_CLASSES

    @model_validator(mode="after")
    def _consistent(self) -> "Architecture":
        if self.generative:
            return self._generative_fields()
        missing = [name for name in ("patch_size", "embed_dim", "context_length") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"architecture.{', '.join(missing)} required for the contrastive class "
                             f"{self.model_class}.")
        extra = [name for name in ("language_model", "parameters_b") if getattr(self, name) is not None]
        if extra:
            raise ValueError(f"architecture.{', '.join(extra)} apply to generative classes only, not the "
                             f"contrastive {self.model_class}; remove them.")
        if self.model_class == "CustomTextCLIP" and not self.text_tower:
            raise ValueError("architecture.text_tower (the Hub repo of the text model) is required for "
                             "CustomTextCLIP.")
        if self.model_class == "CLIP" and not self.open_clip_config:
            raise ValueError("architecture.open_clip_config (a built-in open_clip config name) is required for "
                             "an open_clip CLIP.")
        return self

    def _generative_fields(self) -> "Architecture":
        extra = [name for name in _CONTRASTIVE_ONLY if getattr(self, name) is not None]
        if extra:
            raise ValueError(f"architecture.{', '.join(extra)} apply to contrastive classes only, not the "
                             f"generative {self.model_class}; remove them.")
        missing = [name for name in ("language_model", "parameters_b") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"architecture.{', '.join(missing)} required for the generative class "
                             f"{self.model_class} (e.g. language_model: 'Vicuna-7B v1.5', parameters_b: 7.1).")
        return self


class Preprocessing(BaseModel):
    """The checkpoint's image preprocessing, as its own config states it (contract-checked)."""

    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(gt=0, description="Side of the square input, in pixels.")
    resize: Literal["shortest", "squash"] = Field(
        description="shortest: shortest edge to image_size then centre crop; squash: resize to image_size².")
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


ExposureContent = Literal["images", "questions", "both"]
_CONTENT_WORDS = {"images": "images", "questions": "questions", "both": "images and questions"}


class TrainedOn(BaseModel):
    """One dataset or corpus a checkpoint was trained on that holds a benchmark's images or questions.

    Only facts a public source states: ``source`` is the key of a row in ``models/cards/SOURCES.md`` (checked by
    ``tests/test_exposure.py``). ``name`` is a registered dataset release (``vqa-rad``, never a variant such as
    ``vqa-rad-image-disjoint``) or a corpus declared in ``medrival.data.zoo.exposure.CORPORA`` (``PMC-OA``);
    names are checked against those by ``medrival.data.zoo.exposure.check_trained_on`` (core cannot see data).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="A registered dataset release (e.g. vqa-rad) or a declared corpus (e.g. PMC-OA).")
    contains: ExposureContent = Field(
        description="What of it the checkpoint saw: images (images with their captions, reports or labels), "
                    "questions (the question-answer text), or both (the dataset's own items).")
    source: str = Field(description="Key of the SOURCES.md row that states it.")
    note: str = Field("", description="Qualification, e.g. 'training split' or 'via LLaVA-Med alignment data'.")

    @field_validator("name", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("trained_on entries need a non-empty name and source.")
        return value.strip()


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Name used in studies and on the command line.")
    family: Literal["contrastive", "generative"]
    role: Literal["generalist", "specialist"]
    source: ModelSource
    architecture: Optional[Architecture] = Field(
        None, description="The network (required for Hub sources; demo and local-dir folders carry their own).")
    preprocessing: Optional[Preprocessing] = Field(None, description="Documented preprocessing (contract-checked).")
    pretraining_modalities: list[str] = Field(description="Modalities seen in pretraining (controlled vocabulary).")
    pretraining_corpora: list[str] = Field(default_factory=list)
    trained_on: list[TrainedOn] = Field(
        default_factory=list,
        description="Datasets and corpora known, from a cited source, to contain a benchmark's images or questions; "
                    "empty means none is documented (not that none was seen).")
    generalist_counterpart: Optional[str] = Field(
        None, description="For a specialist: the generalist it is paired with (same architecture/size class).")
    parameters: Optional[int] = Field(
        None, gt=0, description="Total parameter count when publicly known (memory preflight; generative cards "
                                "also have architecture.parameters_b). Not part of any cell id.")
    licence: str
    paper: str = ""
    description: str = ""
    gated: bool = Field(False, description="True when the Hub asks users to accept terms before downloading.")
    access: str = Field("", description="How to get access to a gated checkpoint.")
    synthetic: bool = False

    @field_validator("pretraining_modalities")
    @classmethod
    def _known_modalities(cls, value: list[str]) -> list[str]:
        # pydantic only collects ValueErrors; an UnknownNameError (a KeyError) would escape validation raw,
        # without the file and card it came from.
        try:
            return [check_modality(m) for m in value]
        except UnknownNameError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _consistent(self) -> "ModelCard":
        if self.role == "generalist" and self.generalist_counterpart:
            raise ValueError(f"generalist {self.id!r} names a generalist_counterpart; only specialists have one.")
        if self.role == "specialist" and not self.generalist_counterpart:
            raise ValueError(f"specialist {self.id!r} needs generalist_counterpart: the generalist card it is "
                             "compared with (same architecture and size class).")
        if self.gated and not self.access.strip():
            raise ValueError(f"gated card {self.id!r} must say how to get access (field 'access').")
        if self.source.kind == API_KIND and self.family != "generative":
            raise ValueError(f"card {self.id!r}: source kind {API_KIND} serves generative (text-answering) models "
                             "only; set family: generative.")
        names = [entry.name for entry in self.trained_on]
        if len(set(names)) != len(names):
            raise ValueError(f"card {self.id!r}: trained_on names {sorted({n for n in names if names.count(n) > 1})} "
                             "more than once; give each dataset or corpus one entry (contains: both covers both).")
        if self.source.kind in HUB_KINDS and self.architecture is None:
            raise ValueError(f"card {self.id!r} loads from the Hub and needs an 'architecture' section.")
        self._check_family_and_class()
        return self

    def _check_family_and_class(self) -> None:
        """family generative <=> a generative model_class (demo and local-dir cards may omit the architecture)."""
        if self.architecture is None:
            return
        model_class = self.architecture.model_class
        if self.family == "contrastive" and self.architecture.generative:
            raise ValueError(f"card {self.id!r}: {model_class} is a generative (image-text-to-text) class; a "
                             f"contrastive card needs one of {', '.join(CONTRASTIVE_CLASSES)} (or family: "
                             "generative).")
        if self.family == "generative" and not self.architecture.generative:
            raise ValueError(f"card {self.id!r}: {model_class} is a contrastive class; a generative card needs "
                             f"one of {', '.join(GENERATIVE_CLASSES)} (or family: contrastive).")
        if self.source.kind == "transformers" and model_class in OPEN_CLIP_CLASSES:
            raise ValueError(f"card {self.id!r}: source kind transformers needs architecture.model_class "
                             f"{' or '.join(TRANSFORMERS_CLASSES)} (contrastive) or a generative class "
                             f"({', '.join(GENERATIVE_CLASSES)}).")
        if self.source.kind in ("open_clip", "hf-hub") and model_class not in OPEN_CLIP_CLASSES:
            raise ValueError(f"card {self.id!r}: an open_clip source cannot have a transformers model_class.")

    @property
    def served_by(self) -> str:
        """The adapter that serves this card: "openai-api" (an HTTP endpoint, no local weights),
        "transformers-generative" (every other generative card: Hub, local-dir and demo checkpoints are
        transformers save_pretrained folders), "transformers" (CLIPModel / SiglipModel) or "open_clip"."""
        if self.source.kind == API_KIND:
            return API_KIND
        if self.family == "generative":
            return "transformers-generative"
        if self.architecture is not None and self.architecture.model_class in TRANSFORMERS_CLASSES:
            return "transformers"
        return "open_clip"


def domain_of(card: ModelCard, dataset: DatasetInfo) -> str:
    """"ID" when the dataset's modality was in the model's pretraining, else "OOD"; a mixed-modality dataset is
    "ID" when all of its modalities were, "OOD" when none was, and "mixed" otherwise."""
    seen = [m in card.pretraining_modalities for m in dataset.modalities]
    return "ID" if all(seen) else "OOD" if not any(seen) else "mixed"


# ------------------------------------------------------------------------------------------------- exposure
@dataclass(frozen=True)
class ImageLink:
    """Another dataset or corpus that shares images with a dataset: ``direction`` "source" when the dataset's images
    come from ``name`` (PMC-VQA's from PMC-OA), "derived" when ``name`` took some of its images from the dataset
    (SLAKE's chest X-rays from NIH ChestX-ray14). ``likely`` marks overlap inferred from both drawing on one pool
    (PMC-15M and PMC-OA both collect PubMed Central figures), not stated by a source."""

    name: str
    direction: Literal["source", "derived"]
    source: str  # SOURCES.md key of the statement
    likely: bool = False


@dataclass(frozen=True)
class DatasetLineage:
    """What exposure needs to know of a dataset: its name, the release it is a variant of (same images and
    questions: a re-split, relabelling or resize), and the datasets or corpora it shares images with. Built by
    ``medrival.data.zoo.exposure.dataset_lineage`` from the dataset entries; core cannot read them itself."""

    name: str
    parent: Optional[str] = None
    image_links: tuple[ImageLink, ...] = ()

    @property
    def release(self) -> str:
        return self.parent or self.name


def exposure_of_lineage(card: ModelCard, lineage: DatasetLineage) -> tuple[str, ...]:
    """Why ``card``'s training data overlaps the dataset ``lineage`` describes: one reason per overlapping
    ``trained_on`` entry, empty when none is documented. A variant shares its release's exposure; another dataset
    or corpus counts through a shared-image link, for images only (its questions are not this benchmark's)."""
    reasons = []
    for entry in card.trained_on:
        if entry.name == lineage.release:
            reasons.append(f"trained on {entry.name} {_CONTENT_WORDS[entry.contains]} (source: {entry.source})")
        elif entry.contains != "questions":
            reasons += [_link_reason(entry, lineage.release, link) for link in lineage.image_links
                        if link.name == entry.name]
    return tuple(reasons)


def _link_reason(entry: TrainedOn, release: str, link: ImageLink) -> str:
    hedge = "likely " if link.likely else ""
    shared = (f"{hedge}a source of {release}'s images" if link.direction == "source"
              else f"which {hedge}took images from {release}")
    return f"trained on {entry.name} images, {shared} (source: {entry.source}; link: {link.source})"
