"""Study validation in one pass: every problem of a study file, each with its line, in one error.

A study is checked in layers: its shape and field types (the pydantic model, ``core.config.validate``), the
names it uses (models, datasets, methods: did-you-mean), and each method's options (``MethodSpec.make_config``:
unknown options, types, ranges). Every layer runs, so three typos are reported by one run, not three; a check
that depends on an earlier one is skipped for that entry only (the options of an unknown method, or of a method
whose ``config`` mapping is already reported as malformed).
"""
from __future__ import annotations

from typing import Any

from medrival.core.config import KeyPath, LineMap, where
from medrival.core.errors import ConfigProblems
from medrival.core.registry import suggest

Problem = tuple[KeyPath, str]
_SINGULAR = {"models": "model", "datasets": "dataset", "methods": "method"}


def registered_names(custom_datasets: Any = None) -> dict[str, list[str]]:
    """Names a study may use: registered models, datasets (plus the study's own ``custom_datasets``) and methods."""
    from medrival.data.catalog import dataset_registry
    from medrival.methods import METHODS
    from medrival.models.catalog import model_registry

    custom = [name for name in custom_datasets if isinstance(name, str)] if isinstance(custom_datasets, dict) else []
    return {"models": list(model_registry().names()), "datasets": [*dataset_registry().names(), *custom],
            "methods": list(METHODS.names())}


def method_entries(methods: Any) -> list[tuple[int, str, Any]]:
    """(index, name, config) of each method entry whose name can be read (``- lora`` or ``{name: lora, ...}``)."""
    entries = []
    for index, entry in enumerate(methods if isinstance(methods, list) else []):
        if isinstance(entry, str):
            entries.append((index, entry, {}))
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entries.append((index, entry["name"], entry.get("config", {})))
        elif hasattr(entry, "name") and hasattr(entry, "config"):  # a validated MethodEntry
            entries.append((index, entry.name, entry.config))
    return entries


def name_problems(names: dict[str, list[Any]], known: dict[str, list[str]], lines: LineMap,
                  source: str) -> list[Problem]:
    """One problem per model/dataset/method name not in ``known`` (kinds absent from ``known`` are skipped).

    ``names`` maps a kind to its list as written (``methods``: the method names, by entry index)."""
    problems: list[Problem] = []
    for kind, singular in _SINGULAR.items():
        if kind not in known:
            continue
        available = sorted(known[kind])
        for index, name in enumerate(names.get(kind) or []):
            if not isinstance(name, str) or name in available:
                continue  # a non-text name is a type problem, reported by the model layer
            # A method's name sits under "name" in the mapping form; the line falls back to the list item.
            path = (kind, index, "name") if kind == "methods" else (kind, index)
            close = suggest(name, available)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            listing = ", ".join(available) or "(none registered)"
            problems.append((path, f"{where(source, lines, path)}: unknown {singular} {name!r}.{hint} "
                                   f"Available {kind}: {listing}."))
    return problems


def option_problems(entries: list[tuple[int, str, Any]], lines: LineMap, source: str,
                    skip: set[int] = frozenset()) -> list[Problem]:
    """Every problem of every registered method's options, as ``<where>: methods[i] (name) config: <problem>``.

    Entries in ``skip`` (their config is already reported malformed) and unregistered methods are not checked."""
    from medrival.methods import METHODS

    problems: list[Problem] = []
    for index, name, config in entries:
        if index in skip or name not in METHODS.names():
            continue
        try:
            METHODS.get(name).make_config(config)
        except ConfigProblems as error:
            for path, message in error.problems:
                full = ("methods", index, "config", *path)
                problems.append((full, f"{where(source, lines, full)}: methods[{index}] ({name}) config: {message}"))
    return problems


def study_problems(data: Any, lines: LineMap, source: str, known: dict[str, list[str]],
                   malformed_configs: set[int] = frozenset()) -> list[Problem]:
    """Name and option problems of study ``data`` (the YAML as read, or a validated spec's fields)."""
    get = data.get if isinstance(data, dict) else (lambda key, default=None: getattr(data, key, default))
    entries = method_entries(get("methods"))
    names = {"models": _list(get("models")), "datasets": _list(get("datasets")),
             "methods": _names_by_index(entries, get("methods"))}
    problems = name_problems(names, known, lines, source)
    if "methods" in known:
        problems += option_problems(entries, lines, source, skip=set(malformed_configs))
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names_by_index(entries: list[tuple[int, str, Any]], methods: Any) -> list[Any]:
    by_index = {index: name for index, name, _ in entries}
    return [by_index.get(i) for i in range(len(_list(methods)))]
