"""The names a study brings with it (its own datasets and model cards), registered in the current process.

The planner calls it before validating names, and every worker process calls it before running a cell: a fresh
process (a ``--jobs`` child, a Ray worker on another node) starts with the shipped registries only.
"""
from __future__ import annotations

from medrival.core.errors import ConfigError, MedrivalError


def register_custom_datasets(spec) -> None:
    """Make the study's own datasets known by name (their annotation files are read; no image is opened)."""
    from medrival.data.zoo.custom import register_custom_dataset

    for name, custom in spec.custom_datasets.items():
        try:
            register_custom_dataset(name, custom.format, custom.root, **custom.options)
        except (MedrivalError, TypeError) as error:  # TypeError: an option the reader does not take
            raise ConfigError(f"{spec.source}: custom_datasets.{name}: {error}") from None


def register_custom_models(spec) -> None:
    """Make the study's own model cards known by name (``custom_models``: an inline card or a card file)."""
    from medrival.models.catalog import register_card

    for name, card in getattr(spec, "custom_models", {}).items():
        try:
            register_card(card, name)
        except MedrivalError as error:
            raise ConfigError(f"{spec.source}: custom_models.{name}: {error}") from None


def register_study_names(spec) -> None:
    """Everything the study declares that the shipped registries do not know."""
    register_custom_models(spec)
    register_custom_datasets(spec)
