"""One generic registry for models, datasets, methods and metrics.

Unknown names raise ``UnknownNameError`` listing the closest matches and everything that exists, so a typo in a
study file is fixed from the message alone.
"""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from medrival.core.errors import UnknownNameError

T = TypeVar("T")


def suggest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Closest matches to ``name`` among ``candidates`` (case-insensitive)."""
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[m] for m in matches]


class Registry(Generic[T]):
    """Name -> object mapping with did-you-mean errors. ``kind`` names what it holds ("model", "dataset"…)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; without ``obj`` returns a decorator."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o, overwrite=overwrite)
                return o
            return decorator
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = suggest(str(name), self.names())
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(self.names()) or "(none registered)"
        return f"Unknown {self.kind} {name!r}.{hint} Available {self.kind}s: {listing}."

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

