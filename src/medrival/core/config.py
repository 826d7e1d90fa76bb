"""Configuration files: YAML parsing that remembers line numbers, and pydantic validation with readable errors.

A study file is written by hand, so every error names the file, the line and the dotted path of the bad value
(``study.yaml, line 7: methods[1].config: ...``) and, where it can, how to fix it. Line numbers come from the YAML
node tree: we compose the document once, record where each node starts keyed by its path (the same path shape as
a pydantic error ``loc``), then construct plain Python data from the same nodes.
"""
from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from medrival.core.errors import ConfigError, ConfigProblems
from medrival.core.registry import suggest

KeyPath = tuple[Any, ...]
LineMap = dict[KeyPath, int]
"""Path tuple (e.g. ``("methods", 1, "config", "C")``) -> 1-based line where that entry starts."""

M = TypeVar("M", bound=pydantic.BaseModel)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


# ----------------------------------------------------------------------------------------------- YAML with lines
def load_yaml_with_lines(text: str, source: str, example: str | None = None) -> tuple[Any, LineMap]:
    """Parse ``text`` with the safe loader; return the data and the line of every node, keyed by path.

    ``example`` (a minimal valid file) is shown when the file is empty, so the user knows what to write.
    """
    # SafeLoader only: a study file must never be able to build arbitrary Python objects.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
            raise ConfigError(_empty_message(source, example))
        _check_duplicate_keys(node, source)
        data = loader.construct_document(node)
        lines: LineMap = {}
        # Constructing flattened any '<<' merge keys in place, so this walk sees the keys the data has.
        _record_lines(loader, node, (), lines, set())
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_message(exc, source)) from None
    finally:
        loader.dispose()
    return data, lines


def _empty_message(source: str, example: str | None) -> str:
    shown = example or "name: value\n"
    indented = "".join(f"    {line}\n" for line in shown.rstrip("\n").splitlines())
    return f"{source} is empty (no YAML content). Write a mapping of settings, for example:\n{indented}"


def _yaml_error_message(exc: yaml.YAMLError, source: str) -> str:
    """One line naming where the parser stopped, what it found and the usual causes."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        # Reader errors (bad bytes or control characters) carry no mark; their text already says where.
        return f"{source}: could not parse YAML: {exc}."
    mark = exc.problem_mark or exc.context_mark
    place = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    problem = exc.problem or exc.context or "syntax error"
    context = ""
    if exc.context and exc.context_mark and exc.problem:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    hint = " YAML does not allow tabs; indent with spaces." if "\\t" in problem or "\t" in problem else ""
    return f"{place}: could not parse YAML: {problem}{context}. Check indentation and quoting.{hint}"


def _check_duplicate_keys(node: yaml.Node, source: str, seen: set[int] | None = None) -> None:
    """Reject a key written twice in one mapping: YAML would silently keep only the last value."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # aliases share nodes (and may be recursive); each node is checked once
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                ident = (key.tag, key.value)
                line = key.start_mark.line + 1
                if ident in first:
                    raise ConfigError(
                        f"{source}, line {line}: duplicate key {key.value!r} (first given at line "
                        f"{first[ident]}). Keep one of them.")
                first[ident] = line
            _check_duplicate_keys(value, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, source, seen)


def _record_lines(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, lines: LineMap,
                  active: set[int]) -> None:
    """Fill ``lines`` for ``node`` and its children. A mapping entry's line is the line of its key."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:  # a recursive alias: stop rather than loop forever
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            # Construct the key exactly as the data has it (``1:`` is the int 1), so paths match pydantic locs.
            key = loader.construct_object(key_node, deep=True)
            child = (*path, key)
            if child in lines:
                # A key given after a '<<' merge overrides the merged one, as in the data: drop the stale lines.
                for stale in [p for p in lines if p[:len(child)] == child]:
                    del lines[stale]
            lines[child] = key_node.start_mark.line + 1
            _record_lines(loader, value_node, child, lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(loader, item, (*path, index), lines, active)
    active.discard(id(node))


def line_for(lines: LineMap, path: KeyPath) -> int | None:
    """Line of the deepest prefix of ``path`` that has one (a missing key points at its parent mapping)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def format_path(path: KeyPath) -> str:
    """``("methods", 1, "config")`` -> ``methods[1].config``; the empty path is the whole file."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def where(source: str, lines: LineMap, path: KeyPath) -> str:
    """``study.yaml, line 4`` (or just the source when no line is known)."""
    line = line_for(lines, path)
    return f"{source}, line {line}" if line is not None else source


# ----------------------------------------------------------------------------------------------- validation
def validate(model_cls: type[M], data: Any, lines: LineMap, source: str) -> M:
    """Validate ``data`` against ``model_cls``; on failure raise one ConfigProblems listing every problem.

    Each problem is kept with its path (a pydantic ``loc``) so a caller can add its own checks and sort by line."""
    try:
        return model_cls.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [(_loc(err), _describe_error(model_cls, err, lines, source)) for err in exc.errors()]
    raise problems_error(model_cls, problems, lines, source)


def problems_error(model_cls: type[pydantic.BaseModel], problems: list[tuple[KeyPath, str]], lines: LineMap,
                   source: str) -> ConfigProblems:
    """One error listing ``problems`` (path, text), in file order, under ``<source> is not a valid ...``."""
    ordered = sorted(problems, key=lambda item: line_for(lines, item[0]) or 0)  # stable: same line keeps order
    unique = list(dict.fromkeys(ordered))
    count = f"{len(unique)} problem" + ("s" if len(unique) != 1 else "")
    body = "\n".join(f"  {text}" for _, text in unique)
    return ConfigProblems(f"{source} is not a valid {_model_label(model_cls)} ({count}):\n{body}", unique)


def _loc(err: Any) -> KeyPath:
    return tuple(part for part in err["loc"] if part != "[key]")


def _model_label(model_cls: type[pydantic.BaseModel]) -> str:
    return getattr(model_cls, "LABEL", None) or "configuration file"


def _describe_error(model_cls: type[pydantic.BaseModel], err: Any, lines: LineMap, source: str) -> str:
    """``<source>, line N: <dotted.path>: <message>[; hint]`` for one pydantic error."""
    loc = _loc(err)
    kind, message = err["type"], str(err["msg"])
    if message.startswith("Value error, "):  # our own validators' messages are already written for people
        message = message[len("Value error, "):]
    if kind == "extra_forbidden":
        names = list(_fields_at(model_cls, loc[:-1]))
        close = suggest(str(loc[-1]), names)
        allowed = ", ".join(names)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        message = f"unknown field{hint} Allowed fields here: {allowed}."
    elif kind == "missing":
        fields = _fields_at(model_cls, loc[:-1])
        described = fields.get(str(loc[-1])) if loc else None
        about = f" ({described.description.rstrip('.')})" if described is not None and described.description else ""
        message = f"required field is missing{about}."
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping (key: value lines), got {describe_input(err.get('input'))}."
    elif kind == "string_type" and (isinstance(err.get("input"), (bool, int, float)) or err.get("input") is None):
        # YAML 1.1 reads yes/no/on/off/null and bare numbers as non-strings; quoting fixes it.
        message += f", got {describe_input(err.get('input'))}. Put the value in quotes."
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message += f", got {describe_input(err.get('input'))}."
    return f"{where(source, lines, loc)}: {format_path(loc)}: {message}"


def describe_input(value: Any) -> str:
    """How YAML read a value, in the user's terms (``no`` is a boolean, ``[1, 2]`` a list)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _fields_at(model_cls: type[pydantic.BaseModel], loc: KeyPath) -> dict[str, Any]:
    """Field infos of the model reached by following ``loc`` from ``model_cls`` (top-level fields if lost)."""
    current: Any = model_cls
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, pydantic.BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            current = None
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return dict(current.model_fields)
    return dict(model_cls.model_fields)


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X`` so that optional nested models are still followed."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


# ----------------------------------------------------------------------------------------------- files
def read_config_text(path: str | Path) -> str:
    """The text of a config file, with a ConfigError for every way reading it can fail."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"study file not found: {p} (looked in {p.resolve().parent}). Check the path.")
    if p.is_dir():
        raise ConfigError(f"{p} is a directory, not a study file. Pass the path of a .yaml file inside it.")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p} is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"could not read {p}: {exc.strerror or exc}.") from None


def load_config_file(path: str | Path, model_cls: type[M]) -> M:
    """Read, parse and validate a YAML file into ``model_cls``."""
    source = str(path)
    data, lines = load_yaml_with_lines(read_config_text(path), source, getattr(model_cls, "EXAMPLE_YAML", None))
    return validate(model_cls, data, lines, source)
