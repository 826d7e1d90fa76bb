"""The model catalog: cards read from YAML files shipped in ``models/cards`` (checkpoints are data)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from medrival.core.cards import ModelCard
from medrival.core.errors import ConfigError
from medrival.core.registry import Registry

CARDS_DIR = Path(__file__).parent / "cards"


def read_cards(path: Path) -> list[ModelCard]:
    """Cards from one YAML file holding a list of card mappings."""
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: could not parse the card file as YAML: {error}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: a card file must hold a list of cards, got {type(entries).__name__}.")
    cards = []
    for index, entry in enumerate(entries):
        try:
            cards.append(ModelCard.model_validate(entry))
        except ValidationError as error:
            raise ConfigError(f"{path}: card #{index + 1} is invalid:\n{error}") from None
    return cards


def build_registry(paths: list[Path]) -> Registry[ModelCard]:
    """Cards from ``paths``, checked as a whole: unique ids, and every pair names an existing generalist."""
    registry: Registry[ModelCard] = Registry("model")
    origin: dict[str, Path] = {}
    for path in paths:
        for card in read_cards(path):
            if card.id in registry:
                raise ConfigError(f"{path}: model card id {card.id!r} is already defined in {origin[card.id]}; "
                                  "card ids must be unique.")
            registry.register(card.id, card)
            origin[card.id] = path
    for name, card in registry.items():
        _check_counterpart(card, registry, origin[name])
    return registry


def _check_counterpart(card: ModelCard, registry: Registry[ModelCard], path: Path) -> None:
    pair = card.generalist_counterpart
    if pair is None:
        return
    if pair not in registry:
        raise ConfigError(f"{path}: specialist {card.id!r} names generalist_counterpart {pair!r}, which is not a "
                          f"model card. {registry.unknown_message(pair)}")
    counterpart = registry.get(pair)
    if counterpart.role != "generalist" or counterpart.family != card.family:
        raise ConfigError(f"{path}: specialist {card.id!r} is paired with {pair!r}, a {counterpart.family} "
                          f"{counterpart.role}; the pair must be a {card.family} generalist.")


@lru_cache(maxsize=1)
def model_registry() -> Registry[ModelCard]:
    return build_registry(sorted(CARDS_DIR.glob("*.yaml")))


def get_card(name: str) -> ModelCard:
    return model_registry().get(name)


def counterpart_pairs() -> list[tuple[str, str]]:
    """(generalist, specialist) pairs derived from the cards' ``generalist_counterpart`` fields."""
    return [(card.generalist_counterpart, card.id) for _, card in model_registry().items()
            if card.role == "specialist" and card.generalist_counterpart]
