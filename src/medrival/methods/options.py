"""Checking a method's options: every problem of one config at once, in words a study author can act on.

A method's options are a config dataclass (fields with help text); its ``__post_init__`` holds the range rules.
Here the user's values are checked in three passes that all run: unknown option names (did-you-mean), each known
option's type against the field's annotation (pydantic, strict, so ``"3"`` or ``true`` is not a count), and each
option's range by building the config with that option alone (the other options keep their valid defaults, so a
failure belongs to that option). The values themselves are passed to the dataclass untouched: pydantic only
checks here, because a converted value (``16`` -> ``16.0``) would change the cell ids of existing results.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from typing import Any

import pydantic

from medrival.core.config import describe_input
from medrival.core.registry import suggest

Problem = tuple[tuple, str]  # (option path, e.g. ("rank",) or () for the whole config; message)

_EXPECTED = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"),
             bool: ("true or false", "true/false values"), str: ("a text", "texts")}


def option_problems(method: str, config_class: type, values: Any) -> list[Problem]:
    """Every problem of ``values`` as options of ``method`` (empty when they build a valid config)."""
    if not isinstance(values, dict):
        return [((), f"config must be a mapping of options (option: value), got {describe_input(values)}")]
    fields = [f.name for f in dataclasses.fields(config_class)]
    hints = _hints(config_class)
    problems: list[Problem] = []
    for key, value in values.items():
        if key not in fields:
            close = suggest(str(key), fields, n=1)
            # Without a close match the author needs the list to choose from; with one, the hint is enough.
            hint = f" (did you mean {close[0]!r}?)" if close else f"; the options of {method} are {', '.join(fields)}"
            problems.append(((key,), f"unknown option {key!r}{hint}"))
            continue
        problem = _type_problem(key, hints.get(key), value)
        if problem:  # the config's own rule still says which values it takes ("expected one of ...")
            allowed = _expected_clause(_range_problem(config_class, key, value))
            problem += f"; {allowed}" if allowed else ""
        else:
            problem = _range_problem(config_class, key, value)
        if problem:
            problems.append(((key,), problem))
    return problems


def _hints(config_class: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_class)
    except (NameError, TypeError):  # an annotation that cannot be resolved: leave types to the config's checks
        return {}


def _type_problem(option: str, hint: Any, value: Any) -> str | None:
    """``"<option> must be <type>, got <value>"`` when ``value`` does not have the field's type."""
    if hint is None:
        return None
    try:
        _adapter(hint).validate_python(_as_tuple(hint, value))
    except pydantic.ValidationError as error:
        return f"{option} must be {_expected(hint)}, got {_given(value, error)}{_yaml_number_hint(value)}"
    except pydantic.PydanticSchemaGenerationError:  # a type pydantic cannot check: the config's checks decide
        return None
    return None


@functools.lru_cache(maxsize=None)
def _adapter(hint: Any) -> pydantic.TypeAdapter:
    # Strict: YAML gives real ints, floats and booleans, so "3", 3.0 for a count or 1 for a flag are mistakes.
    return pydantic.TypeAdapter(hint, config=pydantic.ConfigDict(strict=True))


def _tuple_hint(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(hint))


def _as_tuple(hint: Any, value: Any) -> Any:
    """YAML lists are lists; and the configs accept one value where they take several (``Cs: 0.1``)."""
    if not _tuple_hint(hint) or value is None or isinstance(value, tuple):
        return value
    return tuple(value) if isinstance(value, list) else (value,)


def _given(value: Any, error: pydantic.ValidationError) -> str:
    """How the value reads, and for a list which item is wrong (``['big'] (item 0 is the text 'big')``)."""
    if not isinstance(value, (list, tuple)):
        return describe_input(value)
    loc = error.errors()[0]["loc"]
    index = next((part for part in loc if isinstance(part, int)), None)
    shown = repr(list(value)) if len(repr(list(value))) <= 80 else "a list"  # the item named below says enough
    if index is None or index >= len(value):
        return shown
    return f"{shown} (item {index} is {describe_input(value[index])})"


def _expected_clause(message: str | None) -> str:
    """The "expected ..." part of a config check's message, if it has one."""
    return message[message.index("expected "):] if message and "expected " in message else ""


def _yaml_number_hint(value: Any) -> str:
    """YAML (1.1, as PyYAML reads it) takes ``1e-4`` for text: a number needs a dot (``1.0e-4``)."""
    if not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    mantissa, sep, exponent = value.lower().partition("e")
    dotted = f"{mantissa}.0e{exponent}" if sep and "." not in mantissa else repr(float(value))
    return f" (YAML reads {value} as text: write {dotted} or {float(value)!r})"


def _expected(hint: Any) -> str:
    """``int | None`` -> "a whole number or null"; ``tuple[float, ...]`` -> "a list of numbers"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [_expected(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in typing.get_args(hint) else "")
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return f"a list of {_EXPECTED.get(item, (None, getattr(item, '__name__', str(item))))[1]}"
    return _EXPECTED.get(hint, (getattr(hint, "__name__", str(hint)),))[0]


def _range_problem(config_class: type, option: str, value: Any) -> str | None:
    """The config's own check of ``option`` alone (every other option at its default, which is valid)."""
    try:
        config_class(**{option: value})
    except (TypeError, ValueError, AttributeError) as error:  # ConfigError is a ValueError
        return own_words(str(error))
    return None


_OWNER = re.compile(r"^\s*([A-Za-z_][\w]*):? (?=\w)")


def own_words(message: str) -> str:
    """Drop the owner prefix of a config check's message (``lora: `` / ``coop ``): the caller names the method."""
    match = _OWNER.match(message)
    if match and (match.group(1).endswith("Config") or match.group(1) in _method_names()):
        message = message[match.end():]
    return message.rstrip(".").rstrip()


def _method_names() -> set[str]:
    from medrival.methods.base import METHODS

    return set(METHODS.names())


def render_problems(method: str, config_class: type, problems: list[Problem]) -> str:
    """The message on its own: one line per problem (``lora rank must be ...``), then the options when a name was
    unknown."""
    lines = [f"{method} {text}" if path and text.startswith(f"{path[0]} ") else f"{method}: {text}"
             for path, text in problems]
    options = ""
    if any(text.startswith("unknown option") and "(did you mean" in text for _, text in problems):
        options = f"Options of {method}: {', '.join(f.name for f in dataclasses.fields(config_class))}."
    if len(problems) == 1:
        return " ".join([lines[0] + ("" if lines[0].endswith(".") else "."), options]).strip()
    listing = "\n".join(f"  {line}" for line in lines)
    return f"method {method!r} config has {len(problems)} problems:\n{listing}" + (f"\n{options}" if options else "")
