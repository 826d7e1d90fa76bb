"""User-facing errors.

Every error a user can cause is a ``MedrivalError``: its message says what was given, what was expected and how
to fix it. The CLI prints the message and exits with code 2 (no traceback unless ``--debug``).
"""
from __future__ import annotations


class MedrivalError(Exception):
    """An error caused by user input (a name, a file, a value); the message is meant for a person."""


class UnknownNameError(MedrivalError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(MedrivalError, ValueError):
    """A study file or configuration value that does not validate."""


class DataError(MedrivalError, ValueError):
    """Input data of the wrong shape, type or content."""


class ConfigProblems(ConfigError):
    """Several configuration problems reported together (the message lists them all), each also kept with the
    path of the value it is about, so that a caller that knows the file can merge them with its own problems and
    put line numbers on them."""

    def __init__(self, message: str, problems: list[tuple[tuple, str]]):
        super().__init__(message)
        self.problems = list(problems)


def full_message(error: BaseException) -> str:
    """``Type: message`` with every line of the message: fix steps often follow the first line, so a stored or
    printed error must never be cut to its first line or to a width."""
    return f"{type(error).__name__}: {error}"
