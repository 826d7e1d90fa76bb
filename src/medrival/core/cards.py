"""Model cards: one YAML entry per checkpoint says what it is, where it comes from and what it saw.

In-domain / out-of-domain and generalist–specialist pairs are derived from cards, never written into studies.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medrival.core.errors import UnknownNameError
from medrival.core.types import DatasetInfo, check_modality


class ModelSource(BaseModel):
    """Where the weights come from. ``kind`` selects the loader."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["open_clip", "hf-hub", "local-dir", "demo"] = Field(
        description="open_clip: built-in config name + pretrained tag; hf-hub: an open_clip repo on the Hub; "
                    "local-dir: a folder with open_clip_config.json and weights; demo: shipped tiny model.")
    name: str = Field(description="open_clip model name, Hub repo id, folder path or demo model id.")
    pretrained: Optional[str] = Field(None, description="open_clip pretrained tag (kind=open_clip only).")
    revision: Optional[str] = Field(None, description="Hub revision (commit hash or tag) to pin.")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Name used in studies and on the command line.")
    family: Literal["contrastive", "generative"]
    role: Literal["generalist", "specialist"]
    source: ModelSource
    pretraining_modalities: list[str] = Field(description="Modalities seen in pretraining (controlled vocabulary).")
    pretraining_corpora: list[str] = Field(default_factory=list)
    generalist_counterpart: Optional[str] = Field(
        None, description="For a specialist: the generalist it is paired with (same architecture/size class).")
    licence: str
    paper: str = ""
    description: str = ""
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


def domain_of(card: ModelCard, dataset: DatasetInfo) -> str:
    """"ID" when the dataset's modality was in the model's pretraining, else "OOD"."""
    return "ID" if dataset.modality in card.pretraining_modalities else "OOD"
