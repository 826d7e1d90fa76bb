"""The model catalog: cards read from YAML files shipped in ``models/cards`` (checkpoints are data)."""
from __future__ import annotations

import os
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


CARDS_ENV = "MEDRIVAL_CARDS_DIR"  # every *.yaml there is loaded with the shipped cards
_CUSTOM: dict[str, ModelCard] = {}  # cards registered in this process (register_card, a study's custom_models)


@lru_cache(maxsize=1)
def shipped_registry() -> Registry[ModelCard]:
    return build_registry(sorted(CARDS_DIR.glob("*.yaml")))


@lru_cache(maxsize=1)
def model_registry() -> Registry[ModelCard]:
    """The shipped cards, the cards in ``$MEDRIVAL_CARDS_DIR`` and those registered in this process."""
    shipped = shipped_registry()
    registry: Registry[ModelCard] = Registry("model")
    for name, card in shipped.items():
        registry.register(name, card)
    root = os.environ.get(CARDS_ENV, "").strip()
    if root:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{CARDS_ENV}={root}: not a folder; point it at a folder of card YAML files.")
        for path in sorted(folder.glob("*.yaml")):
            for card in _card_entries(path):
                _refuse_clash(card, shipped, str(path))
                registry.register(card.id, card, overwrite=True)
    for card in _CUSTOM.values():
        registry.register(card.id, card, overwrite=True)
    for name, card in registry.items():
        if name not in shipped:
            _check_counterpart(card, registry, Path(f"card {name!r}"))
    return registry


def _refuse_clash(card: ModelCard, shipped: Registry[ModelCard], where: str) -> None:
    if card.id in shipped:
        raise ConfigError(f"{where}: model card {card.id!r} clashes with a card shipped with medrival; give your "
                          "card another id (e.g. my-" + card.id + ").")


def _validate_card(entry, where: str) -> ModelCard:
    """A card mapping validated exactly like the shipped cards, with did-you-mean for unknown fields."""
    from medrival.core.config import validate
    from medrival.core.errors import ConfigProblems

    if isinstance(entry, ModelCard):
        return entry
    try:
        return validate(ModelCard, entry, {}, where)
    except ConfigProblems as error:
        raise ConfigError(str(error)) from None


def _card_entries(path: Path) -> list[ModelCard]:
    """Cards of a YAML file holding one card mapping or a list of them."""
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: could not read the card file: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: could not parse the card file as YAML: {error}") from None
    entries = entries if isinstance(entries, list) else [entries]
    return [_validate_card(entry, f"{path}" + (f" card #{i + 1}" if len(entries) > 1 else ""))
            for i, entry in enumerate(entries)]


def register_card(card, name: str | None = None) -> ModelCard:
    """Make your own model card known by id: a ``ModelCard``, a card mapping, or the path of a card YAML file
    (one card, or a list of which ``name`` picks one). Validated like the shipped cards (schema, role, modalities,
    generalist_counterpart, source); an id of a shipped card is refused. Registering an id again replaces it."""
    if isinstance(card, (str, Path)):
        cards = _card_entries(Path(card).expanduser())
        chosen = [c for c in cards if name is None or c.id == name]
        if len(chosen) != 1:
            ids = ", ".join(c.id for c in cards)
            raise ConfigError(f"{card}: holds the cards {ids}; " + (f"none is {name!r}." if name else
                                                                   "give the name of the one to register."))
        parsed = chosen[0]
    else:
        if isinstance(card, dict) and name is not None:
            card = {"id": name, **card}
        parsed = _validate_card(card, f"card {name or (card.get('id') if isinstance(card, dict) else '')!r}")
    if name is not None and parsed.id != name:
        raise ConfigError(f"card {name!r}: its id is {parsed.id!r}; the id must be the name the study lists.")
    _refuse_clash(parsed, shipped_registry(), f"card {parsed.id!r}")
    previous = _CUSTOM.get(parsed.id)
    _CUSTOM[parsed.id] = parsed
    model_registry.cache_clear()
    try:
        model_registry()
    except ConfigError:
        if previous is None:
            _CUSTOM.pop(parsed.id)
        else:
            _CUSTOM[parsed.id] = previous
        model_registry.cache_clear()
        raise
    return parsed


def get_card(name: str) -> ModelCard:
    return model_registry().get(name)


def counterpart_pairs() -> list[tuple[str, str]]:
    """(generalist, specialist) pairs derived from the cards' ``generalist_counterpart`` fields."""
    return [(card.generalist_counterpart, card.id) for _, card in model_registry().items()
            if card.role == "specialist" and card.generalist_counterpart]
